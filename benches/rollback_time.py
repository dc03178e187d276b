#!/usr/bin/env python3
"""How long from new starting to fail to the route's trip, through the proxy.

A legacy and a new backend (Python, in this process) sit behind a release
strangler on a route with weight 100 and [routes.rollback] (window 60s,
min_requests 20, max_error_rate 5%). A client sends GETs at a fixed 200 req/s.
After HEALTHY seconds of good answers, new starts answering 503 to every
request; the script records when that happened, when /routes first shows the
route tripped, and how many requests new answered with 503 in between.
New's passive ejection is off, so the rollback alone is measured.

    cargo build --release && python3 benches/rollback_time.py [HEALTHY_SECONDS]
"""

import http.client
import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

BINARY = os.environ.get("STRANGLER", "target/release/strangler")
RATE = 200
HEALTHY = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class State:
    failing_since = None
    failed = 0
    lock = threading.Lock()


def backend(name, fails):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self):
            status = 200
            if fails and State.failing_since is not None:
                status = 503
                with State.lock:
                    State.failed += 1
            body = name.encode()
            self.send_response(status)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def main():
    legacy, new = backend("legacy", False), backend("new", True)
    listen, admin = free_port(), free_port()
    config = f"""
[server]
listen = "127.0.0.1:{listen}"
admin_listen = "127.0.0.1:{admin}"
[backends.legacy]
url = "http://127.0.0.1:{legacy}"
[backends.new]
url = "http://127.0.0.1:{new}"
[backends.new.outlier]
consecutive_failures = 0
[[routes]]
name = "orders"
path = "/"
weight = 100
[routes.rollback]
window = "60s"
min_requests = 20
max_error_rate = 5.0
"""
    with tempfile.TemporaryDirectory() as dir:
        path = os.path.join(dir, "strangler.toml")
        with open(path, "w") as f:
            f.write(config)
        proxy = subprocess.Popen(
            [BINARY, "run", "-c", path],
            env={**os.environ, "RUST_LOG": "warn"},
            stderr=subprocess.DEVNULL,
        )
        try:
            measure(listen, admin)
        finally:
            proxy.terminate()
            proxy.wait(10)


def tripped(admin):
    conn = http.client.HTTPConnection("127.0.0.1", admin, timeout=2)
    conn.request("GET", "/routes")
    routes = json.loads(conn.getresponse().read())
    conn.close()
    orders = next(r for r in routes if r["name"] == "orders")
    return orders["rollback"]["state"] == "tripped", orders


def measure(listen, admin):
    for _ in range(200):
        try:
            tripped(admin)
            break
        except OSError:
            time.sleep(0.05)
    stop = threading.Event()
    sent = [0]

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", listen, timeout=5)
        next_at = time.monotonic()
        while not stop.is_set():
            conn.request("GET", "/api/orders/1")
            conn.getresponse().read()
            sent[0] += 1
            next_at += 1 / RATE
            time.sleep(max(0, next_at - time.monotonic()))

    threading.Thread(target=client, daemon=True).start()
    time.sleep(HEALTHY)
    State.failing_since = time.monotonic()
    seen = None
    deadline = State.failing_since + 30
    while time.monotonic() < deadline:
        done, route = tripped(admin)
        if done:
            seen = time.monotonic()
            break
        time.sleep(0.002)
    stop.set()
    if seen is None:
        print("no trip within 30 s")
        sys.exit(1)
    print(f"healthy for {HEALTHY:.0f} s at {RATE} req/s, then new answered 503 to everything")
    print(f"trip seen in /routes after {(seen - State.failing_since) * 1000:.0f} ms; "
          f"new answered {State.failed} requests with 503 before it")
    print(f"reason: {route['rollback']['reason']}")


main()
