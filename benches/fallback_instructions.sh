#!/usr/bin/env bash
# The request path's cost in instructions, which (unlike requests/s on a
# shared 2-core machine) repeats run after run: two strangler binaries, each
# under callgrind in front of the same nginx origin, each sent exactly N
# requests per case over one keep-alive connection; prints instructions per
# request for the four cases of benches/fallback_cost.sh.
#
# Usage: benches/fallback_instructions.sh BIN_A BIN_B [N, default 2000]
# Needs nginx and valgrind. Loopback only.
set -euo pipefail

A="$1"
B="$2"
N="${3:-2000}"
WORK="$(mktemp -d)"
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

for tool in nginx valgrind callgrind_control; do
    command -v "$tool" >/dev/null || { echo "missing: $tool (apt-get install nginx-light valgrind)" >&2; exit 1; }
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 1 600); do
        (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listening on $1" >&2; exit 1
}

ORIGIN=$(free_port)
mkdir -p "$WORK/nginx"
cat > "$WORK/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log crit;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx;
    fastcgi_temp_path $WORK/nginx; uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
    client_body_buffer_size 256k;
    server {
        listen 127.0.0.1:$ORIGIN;
        location / { return 200 'hello from the origin\n'; }
    }
}
CONF
nginx -c "$WORK/nginx.conf" -g 'daemon off;' &
PIDS+=($!)
wait_port "$ORIGIN"

# Sends exactly $4 requests ($2 $3, 100 KiB body for POST) on one connection.
cat > "$WORK/client.py" <<'PY'
import http.client, sys
port, method, path, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
body = bytes(i * 31 % 251 for i in range(102400)) if method == "POST" else None
conn = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(n):
    conn.request(method, path, body=body)
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        sys.exit(f"{method} {path}: {response.status}")
PY

CASES=("GET /plain/x" "GET /fb/x" "POST /plain/x" "POST /fb/x")
declare -A IR
measure() { # name binary
    local port admin pid
    port=$(free_port); admin=$(free_port)
    cat > "$WORK/$1.toml" <<CONF
[server]
listen = "127.0.0.1:$port"
admin_listen = "127.0.0.1:$admin"
workers = 1

[backends.legacy]
url = "http://127.0.0.1:$ORIGIN"

[backends.new]
url = "http://127.0.0.1:$ORIGIN"

[[routes]]
path = "/plain"
weight = 100
[routes.fallback]
enabled = false

[[routes]]
path = "/fb"
weight = 100
CONF
    RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$WORK/$1.%p.out" \
        "$2" run -c "$WORK/$1.toml" 2>"$WORK/$1.log" &
    pid=$!
    PIDS+=($pid)
    wait_port "$port"
    for case in "${CASES[@]}"; do
        python3 "$WORK/client.py" "$port" $case 200
        callgrind_control -z "$pid" >/dev/null
        python3 "$WORK/client.py" "$port" $case "$N"
        rm -f "$WORK/$1.$pid.out"*
        callgrind_control -d "$pid" >/dev/null
        local total
        total=$(cat "$WORK/$1.$pid.out"* | awk '/^summary:/ {s += $2} END {print s}')
        IR["$1 $case"]=$((total / N))
    done
    kill "$pid"
}
measure a "$A"
measure b "$B"

echo "instructions per request (callgrind, $N requests a case, one keep-alive connection, 1 worker)"
printf '%-15s %12s %12s %8s\n' case A B 'B/A'
for case in "${CASES[@]}"; do
    printf '%-15s %12s %12s %8s\n' "$case" "${IR[a $case]}" "${IR[b $case]}" \
        "$(awk -v a="${IR[a $case]}" -v b="${IR[b $case]}" 'BEGIN {printf "%.3f", b / a}')"
done
