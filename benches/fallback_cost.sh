#!/usr/bin/env bash
# What a fallback route costs, and what the streaming body copy costs: two
# strangler binaries (for example the release build before and after a change)
# side by side in front of the same nginx origin, each on four routes:
#
#   GET  /plain/x   weight 100, fallback off     (no copy is possible)
#   GET  /fb/x      weight 100, fallback on      (a body-less request: no copy)
#   POST /plain/x   100 KiB body, fallback off   (POST is not replayable: no copy)
#   POST /fb/x      100 KiB body, fallback on    (the body is copied while sent)
#
# For each it prints requests/s and the proxy's CPU seconds per 100k requests
# (utime + stime from /proc, so the load generator and origin do not count),
# over ROUNDS interleaved rounds (median of the rounds).
#
# Usage: benches/fallback_cost.sh BIN_A BIN_B [seconds per run, default 5] [connections, default 32]
# Needs nginx and wrk (Debian: apt-get install nginx-light wrk). Loopback only.
set -euo pipefail

A="$1"
B="$2"
DURATION="${3:-5}"
CONNECTIONS="${4:-32}"
ROUNDS="${ROUNDS:-3}"
source "$(dirname "$0")/lib.sh"
need nginx wrk
start_origin

declare -A PORT PID
start() { # name binary
    local port admin
    port=$(free_port); admin=$(free_port)
    fallback_routes_config "$port" "$admin" > "$WORK/$1.toml"
    RUST_LOG=warn "$2" run -c "$WORK/$1.toml" 2>"$WORK/$1.log" &
    PID[$1]=$!
    PIDS+=($!)
    PORT[$1]=$port
    wait_port "$port"
}
start a "$A"
start b "$B"

head -c 102400 /dev/urandom > "$WORK/body"
cat > "$WORK/post.lua" <<LUA
local f = io.open("$WORK/body", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/octet-stream"
LUA

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() { # proxy method path -> "rps cpu_s_per_100k"
    local script=() before after
    [ "$2" = POST ] && script=(-s "$WORK/post.lua")
    before=$(cpu_ticks "${PID[$1]}")
    wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "${script[@]}" \
        "http://127.0.0.1:${PORT[$1]}$3" > "$WORK/out.wrk"
    after=$(cpu_ticks "${PID[$1]}")
    local rps requests
    rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/out.wrk")
    requests=$(awk '/requests in/ {print $1}' "$WORK/out.wrk")
    if grep -q "Non-2xx" "$WORK/out.wrk"; then echo "non-2xx answers: $1 $2 $3" >&2; exit 1; fi
    awk -v r="$rps" -v n="$requests" -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" \
        'BEGIN {printf "%.0f %.3f\n", r, (t / hz) / n * 100000}'
}

echo "wrk -t1 -c$CONNECTIONS, ${DURATION}s a run, $ROUNDS interleaved rounds, medians; proxies with 1 worker on $(nproc) cores"
run a GET /plain/x > /dev/null; run b GET /plain/x > /dev/null
declare -A RPS CPU
CASES=("GET /plain/x" "GET /fb/x" "POST /plain/x" "POST /fb/x")
for round in $(seq 1 "$ROUNDS"); do
    for case in "${CASES[@]}"; do
        for proxy in a b; do
            read -r rps cpu <<< "$(run "$proxy" $case)"
            RPS["$proxy $case"]+="$rps "
            CPU["$proxy $case"]+="$cpu "
        done
    done
done
printf '%-15s %12s %12s %14s %14s %8s\n' case 'A req/s' 'B req/s' 'A cpu/100k' 'B cpu/100k' 'B/A cpu'
for case in "${CASES[@]}"; do
    ra=$(tr ' ' '\n' <<< "${RPS[a $case]}" | grep . | median)
    rb=$(tr ' ' '\n' <<< "${RPS[b $case]}" | grep . | median)
    ca=$(tr ' ' '\n' <<< "${CPU[a $case]}" | grep . | median)
    cb=$(tr ' ' '\n' <<< "${CPU[b $case]}" | grep . | median)
    printf '%-15s %12s %12s %14s %14s %8s\n' "$case" "$ra" "$rb" "$ca" "$cb" \
        "$(awk -v a="$ca" -v b="$cb" 'BEGIN {printf "%.2f", b / a}')"
done
