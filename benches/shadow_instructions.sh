#!/usr/bin/env bash
# Shadow traffic's cost in instructions (repeatable, unlike requests/s on a
# shared machine): one strangler binary under callgrind in front of an nginx
# origin, sent exactly N requests per route over one keep-alive connection,
# on the three routes of benches/shadow_cost.sh (no shadow, shadow at 0%,
# shadow at 100%). Prints the proxy's instructions per client request; for
# the 100% route they include the mirrored request and the comparison, which
# run in background tasks (the count is taken once none is in flight).
#
# Usage: benches/shadow_instructions.sh BIN [N, default 2000]
# Needs nginx and valgrind. Loopback only.
set -euo pipefail

BIN="$1"
N="${2:-2000}"
source "$(dirname "$0")/lib.sh"
need nginx valgrind callgrind_control
start_origin

# Sends exactly $3 GETs to $2 on one connection, then waits until no shadow
# request is in flight.
cat > "$WORK/client.py" <<'PY'
import http.client, json, sys, time, urllib.request
port, admin, path, n = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
conn = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(n):
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        sys.exit(f"GET {path}: {response.status}")
for _ in range(3000):
    routes = json.load(urllib.request.urlopen(f"http://127.0.0.1:{admin}/shadow"))
    if all(r["inflight"] == 0 for r in routes):
        break
    time.sleep(0.01)
else:
    sys.exit("shadow requests still in flight")
PY

PORT=$(free_port)
ADMIN=$(free_port)
shadow_routes_config "$PORT" "$ADMIN" > "$WORK/shadow.toml"
RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.%p.out" \
    "$BIN" run -c "$WORK/shadow.toml" 2>"$WORK/shadow.log" &
PID=$!
PIDS+=($PID)
wait_port "$PORT"

echo "instructions per client request (callgrind, $N requests a route, one keep-alive connection, 1 worker)"
printf '%-10s %12s\n' route instructions
for path in /plain/x /zero/x /full/x; do
    python3 "$WORK/client.py" "$PORT" "$ADMIN" "$path" 200
    callgrind_control -z "$PID" >/dev/null
    python3 "$WORK/client.py" "$PORT" "$ADMIN" "$path" "$N"
    rm -f "$WORK/cg.$PID.out"*
    callgrind_control -d "$PID" >/dev/null
    total=$(cat "$WORK/cg.$PID.out"* | awk '/^summary:/ {s += $2} END {print s}')
    printf '%-10s %12s\n' "$path" "$((total / N))"
done
curl -s "http://127.0.0.1:$ADMIN/shadow" | python3 -c 'import json,sys; [print(r["name"], r["counts"]) for r in json.load(sys.stdin)]'
