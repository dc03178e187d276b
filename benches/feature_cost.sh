#!/usr/bin/env bash
# What the wave-2 features cost a route that has them configured but idle:
# instructions per request (callgrind, repeatable on a noisy machine) of a
# bare weighted sticky route against the same route with live statistics, a
# rollback, a fallback, a rate limit far above the load and a shadow at 0%,
# in one proxy, 2,000 GETs each on one keep-alive connection.
#
# Usage: benches/feature_cost.sh [BIN, default target/release/strangler] [N, default 2000]
# Needs nginx, valgrind and python3. Loopback only.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${1:-$ROOT/target/release/strangler}"
N="${2:-2000}"
source "$(dirname "$0")/lib.sh"
need nginx valgrind callgrind_control python3
start_origin
PORT=$(free_port); ADMIN=$(free_port)
proxy_head "$PORT" "$ADMIN" > "$WORK/features.toml"
cat >> "$WORK/features.toml" <<CONF

[defaults]
legacy = "legacy"
new = "new"

[[routes]]
path = "/bare"
weight = 50
sticky = "header:x-user"
[routes.fallback]
enabled = false

[[routes]]
path = "/full"
weight = 50
sticky = "header:x-user"
[routes.fallback]
enabled = true
[routes.rollback]
window = "60s"
min_requests = 20
max_error_rate = 0.5
max_p95 = "5s"
[routes.rate_limit]
rps = 1000000
burst = 1000000
key = "ip"
[routes.shadow]
percent = 0
compare = true
CONF
cat > "$WORK/client.py" <<'PY'
import http.client, sys
port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
conn = http.client.HTTPConnection("127.0.0.1", port)
for i in range(n):
    conn.request("GET", path, headers={"x-user": "u%d" % (i % 100)})
    r = conn.getresponse(); r.read()
    if r.status != 200: sys.exit(f"{path}: {r.status}")
PY
RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.%p.out" \
    "$BIN" run -c "$WORK/features.toml" 2>"$WORK/proxy.log" &
pid=$!
PIDS+=($pid)
wait_port "$PORT"
declare -A IR
for path in /bare/x /full/x; do
    python3 "$WORK/client.py" "$PORT" "$path" 200
    callgrind_control -z "$pid" >/dev/null
    python3 "$WORK/client.py" "$PORT" "$path" "$N"
    rm -f "$WORK/cg.$pid.out"*
    callgrind_control -d "$pid" >/dev/null
    IR[$path]=$(( $(cat "$WORK/cg.$pid.out"* | awk '/^summary:/ {s += $2} END {print s}') / N ))
done
echo "instructions per request (callgrind, $N GETs a route, one keep-alive connection, 1 worker)"
printf '%-40s %12s\n' "bare weighted sticky route" "${IR[/bare/x]}"
printf '%-40s %12s\n' "+ stats, rollback, fallback, rate limit, shadow 0%" "${IR[/full/x]}"
awk -v a="${IR[/bare/x]}" -v b="${IR[/full/x]}" 'BEGIN {printf "ratio %.3f\n", b / a}'
