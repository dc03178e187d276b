#!/usr/bin/env python3
"""The fleet's figures (SPEC §3.10): three strangler processes sharing one
redis-server, all on loopback.

1. Propagation: 20 times, an override is set (alternately 0 and 100) through
   one proxy's admin API (in turn A, B, C), and the other two are polled
   every millisecond until their /routes shows it; prints the median and the
   maximum of the time from sending the POST to the change on all three.
2. Redis round trips under load: wrk drives about RATE req/s in total
   through the three proxies (round-robin by process) for SECONDS, on a route
   with a rollback and fleet_statistics on. Each proxy reaches Redis through
   its own counting TCP relay in this script, which counts the proxy's writes
   (a command or a pipeline each: one round trip); prints round trips per
   second per proxy, and Redis's commands per second per proxy.

    cargo build --release && python3 benches/fleet_load.py [SECONDS] [RATE]

Needs redis-server and wrk. The backends are `strangler echo`.
"""

import asyncio
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BINARY = os.environ.get("STRANGLER", "target/release/strangler")
SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
RATE = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
PROCS = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, deadline=10.0):
    end = time.time() + deadline
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    sys.exit(f"nothing listening on {port}")


def spawn(args, **kw):
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    PROCS.append(proc)
    return proc


class Relay:
    """Forwards 127.0.0.1:port to Redis and counts the client's writes."""

    def __init__(self, redis_port):
        self.redis_port = redis_port
        self.port = free_port()
        self.writes = 0

    async def pipe(self, reader, writer, count):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if count:
                    self.writes += 1
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(self, reader, writer):
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.redis_port)
        await asyncio.gather(
            self.pipe(reader, up_writer, True), self.pipe(up_reader, writer, False)
        )

    async def serve(self):
        server = await asyncio.start_server(self.handle, "127.0.0.1", self.port)
        async with server:
            await server.serve_forever()


def admin_json(conn, path):
    conn.request("GET", path)
    return json.loads(conn.getresponse().read())


def override_of(conn):
    for route in admin_json(conn, "/routes"):
        if route["name"] == "api":
            return (route["override"] or {}).get("weight")
    return None


def redis_commands(port):
    out = subprocess.run(
        ["redis-cli", "-p", str(port), "info", "stats"], capture_output=True, text=True
    ).stdout
    for line in out.splitlines():
        if line.startswith("total_commands_processed:"):
            return int(line.split(":")[1])
    return 0


def main():
    work = tempfile.mkdtemp()
    redis_port = free_port()
    spawn(["redis-server", "--save", "", "--appendonly", "no", "--bind", "127.0.0.1",
           "--port", str(redis_port), "--dir", work])
    wait_port(redis_port)
    legacy, new = free_port(), free_port()
    spawn([BINARY, "echo", "--name", "legacy", "--listen", f"127.0.0.1:{legacy}"])
    spawn([BINARY, "echo", "--name", "new", "--listen", f"127.0.0.1:{new}"])
    wait_port(legacy)
    wait_port(new)

    loop = asyncio.new_event_loop()
    relays = [Relay(redis_port) for _ in range(3)]
    for relay in relays:
        loop.create_task(relay.serve())
    threading.Thread(target=loop.run_forever, daemon=True).start()

    proxies = []
    for i, relay in enumerate(relays):
        listen, admin = free_port(), free_port()
        path = os.path.join(work, f"p{i}.toml")
        with open(path, "w") as f:
            f.write(f"""
[server]
listen = "127.0.0.1:{listen}"
admin_listen = "127.0.0.1:{admin}"
workers = 1

[backends.legacy]
url = "http://127.0.0.1:{legacy}"

[backends.new]
url = "http://127.0.0.1:{new}"

[[routes]]
name = "api"
path = "/api"
weight = 50

[routes.rollback]
window = "60s"

[control]
redis = "redis://127.0.0.1:{relay.port}/0"
fleet_statistics = true
""")
        spawn([BINARY, "run", "-c", path], env={**os.environ, "RUST_LOG": "warn"})
        proxies.append((listen, admin))
    for listen, admin in proxies:
        wait_port(listen)
        conn = http.client.HTTPConnection("127.0.0.1", admin)
        for _ in range(500):
            if admin_json(conn, "/config")["control"]["connected"]:
                break
            time.sleep(0.01)

    # 1. Propagation.
    conns = [http.client.HTTPConnection("127.0.0.1", admin) for _, admin in proxies]
    took = []
    for attempt in range(20):
        weight = 0.0 if attempt % 2 == 0 else 100.0
        origin = conns[attempt % 3]
        start = time.perf_counter()
        origin.request("POST", "/routes/api/override", body=json.dumps({"weight": weight}))
        origin.getresponse().read()
        pending = [c for c in conns if c is not origin]
        deadline = start + 5
        while pending and time.perf_counter() < deadline:
            pending = [c for c in pending if override_of(c) != weight]
            if pending:
                time.sleep(0.001)
        if pending:
            sys.exit(f"try {attempt}: not propagated within 5 s")
        took.append((time.perf_counter() - start) * 1000)
        time.sleep(0.05)
    print(f"override on one proxy -> visible on all three, 20 tries: "
          f"median {statistics.median(took):.1f} ms, max {max(took):.1f} ms")
    for c in conns:
        c.request("DELETE", "/routes/api/override")
        c.getresponse().read()

    # 2. Round trips under load.
    per_proxy = RATE / 3
    connections = 8
    # wrk's delay() is per request, per connection: about `connections`
    # requests per (delay + latency).
    delay_ms = max(0, int(connections * 1000 / per_proxy) - 1)
    script = os.path.join(work, "delay.lua")
    with open(script, "w") as f:
        f.write(f"function delay() return {delay_ms} end\n")
    before = [r.writes for r in relays]
    commands_before = redis_commands(redis_port)
    wrks = [
        subprocess.Popen(["wrk", "-t1", f"-c{connections}", f"-d{int(SECONDS)}s", "-s", script,
                          f"http://127.0.0.1:{listen}/api/x"],
                         stdout=subprocess.PIPE, text=True)
        for listen, _ in proxies
    ]
    outputs = [w.communicate()[0] for w in wrks]
    after = [r.writes for r in relays]
    commands = redis_commands(redis_port) - commands_before
    total = 0.0
    for out in outputs:
        for line in out.splitlines():
            if line.startswith("Requests/sec:"):
                total += float(line.split()[1])
        if "Non-2xx" in out:
            sys.exit(f"non-2xx answers:\n{out}")
    print(f"load: {total:.0f} req/s in total through 3 proxies for {SECONDS:.0f} s")
    for i, (b, a) in enumerate(zip(before, after)):
        print(f"proxy {'ABC'[i]}: {(a - b) / SECONDS:.1f} Redis round trips/s")
    print(f"Redis commands: {commands / SECONDS / 3:.1f}/s per proxy")


try:
    main()
finally:
    for proc in PROCS:
        proc.terminate()
    for proc in PROCS:
        proc.wait()
