#!/usr/bin/env bash
# The request path's cost in instructions, which (unlike requests/s on a
# shared 2-core machine) repeats run after run: two strangler binaries, each
# under callgrind in front of the same nginx origin, each sent exactly N
# requests per case over one keep-alive connection; prints instructions per
# request for the four cases of benches/fallback_cost.sh.
#
# Usage: benches/fallback_instructions.sh BIN_A BIN_B [N, default 2000]
# ROLLBACK_ROUTE=1 measures GET on /plain, /fb and /rb (a route with
# [routes.rollback]) instead of the POST cases.
# RUST_LOG=info measures with the JSON access log on (stderr to a file).
# Needs nginx and valgrind. Loopback only.
set -euo pipefail

A="$1"
B="$2"
N="${3:-2000}"
source "$(dirname "$0")/lib.sh"
need nginx valgrind callgrind_control
start_origin

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

if [[ "${ROLLBACK_ROUTE:-0}" == 1 ]]; then
    CASES=("GET /plain/x" "GET /fb/x" "GET /rb/x")
else
    CASES=("GET /plain/x" "GET /fb/x" "POST /plain/x" "POST /fb/x")
fi
declare -A IR
measure() { # name binary
    local port admin pid
    port=$(free_port); admin=$(free_port)
    fallback_routes_config "$port" "$admin" > "$WORK/$1.toml"
    RUST_LOG="${RUST_LOG:-warn}" valgrind --tool=callgrind --callgrind-out-file="$WORK/$1.%p.out" \
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
