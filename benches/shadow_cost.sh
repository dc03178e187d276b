#!/usr/bin/env bash
# What shadow traffic costs the client path: one strangler binary in front of
# the same nginx origin (legacy and new are both the origin, so every
# comparison is a match), on three routes served by legacy:
#
#   GET /plain/x   no [routes.shadow]
#   GET /zero/x    [routes.shadow] percent = 0
#   GET /full/x    [routes.shadow] percent = 100, noise_sample = 0
#
# For each it prints requests/s, wrk's p50 and p99 latency, and the proxy's
# CPU seconds per 100k client requests (utime + stime from /proc: for /full
# that includes the mirrored request and the comparison, which run in the
# proxy's background tasks), over ROUNDS interleaved rounds (medians).
#
# Usage: benches/shadow_cost.sh BIN [seconds per run, default 5] [connections, default 32]
# Needs nginx and wrk (Debian: apt-get install nginx-light wrk). Loopback only.
set -euo pipefail

BIN="$1"
DURATION="${2:-5}"
CONNECTIONS="${3:-32}"
ROUNDS="${ROUNDS:-3}"
source "$(dirname "$0")/lib.sh"
need nginx wrk
start_origin

PORT=$(free_port)
ADMIN=$(free_port)
shadow_routes_config "$PORT" "$ADMIN" > "$WORK/shadow.toml"
RUST_LOG=warn "$BIN" run -c "$WORK/shadow.toml" 2>"$WORK/shadow.log" &
PID=$!
PIDS+=($PID)
wait_port "$PORT"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }

# ms of a wrk latency such as 1.23ms, 456.00us or 1.02s

run() { # path -> "rps p50_ms p99_ms cpu_s_per_100k"
    local before after
    before=$(cpu_ticks)
    wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://127.0.0.1:$PORT$1" > "$WORK/out.wrk"
    # The background shadow work of the last requests is the run's too.
    python3 - "$ADMIN" <<'PY'
import json, sys, time, urllib.request
for _ in range(500):
    routes = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/shadow"))
    if all(r["inflight"] == 0 for r in routes):
        break
    time.sleep(0.01)
PY
    after=$(cpu_ticks)
    wrk_summary "$WORK/out.wrk" $((after - before))
}


echo "wrk -t1 -c$CONNECTIONS, ${DURATION}s a run, $ROUNDS interleaved rounds, medians; proxy with 1 worker on $(nproc) cores"
run /plain/x > /dev/null
CASES=(/plain/x /zero/x /full/x)
declare -A RPS P50 P99 CPU
for round in $(seq 1 "$ROUNDS"); do
    for case in "${CASES[@]}"; do
        read -r rps p50 p99 cpu <<< "$(run "$case")"
        RPS[$case]+="$rps "; P50[$case]+="$p50 "; P99[$case]+="$p99 "; CPU[$case]+="$cpu "
    done
done
pick() { tr ' ' '\n' <<< "$1" | grep . | median; }
printf '%-10s %10s %10s %10s %12s\n' route 'req/s' 'p50 ms' 'p99 ms' 'cpu s/100k'
for case in "${CASES[@]}"; do
    printf '%-10s %10s %10s %10s %12s\n' "$case" "$(pick "${RPS[$case]}")" \
        "$(pick "${P50[$case]}")" "$(pick "${P99[$case]}")" "$(pick "${CPU[$case]}")"
done
curl -s "http://127.0.0.1:$ADMIN/shadow" | python3 -c 'import json,sys; [print(r["name"], r["counts"]) for r in json.load(sys.stdin)]'
