#!/usr/bin/env bash
# What [control] costs per request: three strangler processes (one worker
# each) in front of the same nginx origin, on one route (weight 50, sticky
# off, with a rollback, so both sides' statistics and the verdict run):
#
#   none    no [control]
#   shared  [control] with fleet_statistics = false (runtime state only)
#   fleet   [control] with fleet_statistics = true
#
# The two with [control] share one redis-server on a free loopback port. For
# each it prints requests/s, wrk's p50 and p99, and the proxy's CPU seconds per
# 100k requests (utime + stime from /proc, background tasks included: the
# Redis link's are the point), medians over ROUNDS interleaved rounds; then
# the Redis commands each proxy sent per second during its runs.
#
# Usage: benches/fleet_cost.sh BIN [seconds per run, default 5] [connections, default 32]
# Needs nginx, wrk and redis-server (Debian: apt-get install nginx-light wrk redis-server).
set -euo pipefail

BIN="$1"
DURATION="${2:-5}"
CONNECTIONS="${3:-32}"
ROUNDS="${ROUNDS:-3}"
source "$(dirname "$0")/lib.sh"
need nginx wrk redis-server redis-cli
start_origin

REDIS=$(free_port)
redis-server --save "" --appendonly no --bind 127.0.0.1 --port "$REDIS" --dir "$WORK" >/dev/null &
PIDS+=($!)
wait_port "$REDIS"

config() { # LISTEN ADMIN CONTROL
    proxy_head "$1" "$2"
    cat <<CONF

[[routes]]
path = "/api"
weight = 50

[routes.rollback]
window = "60s"

$3
CONF
}

CASES=(none shared fleet)
declare -A PORT PID_OF
for case in "${CASES[@]}"; do
    case $case in
        none) control="" ;;
        shared) control=$'[control]\nredis = "redis://127.0.0.1:'"$REDIS"$'/0"\nkey_prefix = "shared:"\nfleet_statistics = false' ;;
        fleet) control=$'[control]\nredis = "redis://127.0.0.1:'"$REDIS"$'/0"\nkey_prefix = "fleet:"\nfleet_statistics = true' ;;
    esac
    PORT[$case]=$(free_port)
    admin=$(free_port)
    config "${PORT[$case]}" "$admin" "$control" > "$WORK/$case.toml"
    RUST_LOG=warn "$BIN" run -c "$WORK/$case.toml" 2>"$WORK/$case.log" &
    PID_OF[$case]=$!
    PIDS+=($!)
    wait_port "${PORT[$case]}"
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
commands() { redis-cli -p "$REDIS" info stats | awk -F: '/^total_commands_processed/ {print $2+0}'; }

run() { # case -> "rps p50_ms p99_ms cpu_s_per_100k"
    local case=$1 pid=${PID_OF[$1]} before after
    before=$(cpu_ticks "$pid")
    wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://127.0.0.1:${PORT[$case]}/api/x" > "$WORK/out.wrk"
    after=$(cpu_ticks "$pid")
    wrk_summary "$WORK/out.wrk" $((after - before))
}


echo "wrk -t1 -c$CONNECTIONS, ${DURATION}s a run, $ROUNDS interleaved rounds, medians; each proxy 1 worker on $(nproc) cores"
for case in "${CASES[@]}"; do run "$case" > /dev/null; done
declare -A RPS P50 P99 CPU COMMANDS SECONDS_RUN
for round in $(seq 1 "$ROUNDS"); do
    for case in "${CASES[@]}"; do
        c0=$(commands)
        read -r rps p50 p99 cpu <<< "$(run "$case")"
        c1=$(commands)
        COMMANDS[$case]=$(( ${COMMANDS[$case]:-0} + c1 - c0 ))
        SECONDS_RUN[$case]=$(( ${SECONDS_RUN[$case]:-0} + DURATION ))
        RPS[$case]+="$rps "; P50[$case]+="$p50 "; P99[$case]+="$p99 "; CPU[$case]+="$cpu "
    done
done
pick() { tr ' ' '\n' <<< "$1" | grep . | median; }
printf '%-8s %10s %10s %10s %12s %16s\n' case 'req/s' 'p50 ms' 'p99 ms' 'cpu s/100k' 'redis cmds/s'
for case in "${CASES[@]}"; do
    # Redis counts every client's commands: during a run the other proxy
    # with [control] idles along, so this is an upper bound.
    cmds=$(awk -v c="${COMMANDS[$case]}" -v s="${SECONDS_RUN[$case]}" 'BEGIN {printf "%.0f", c / s}')
    printf '%-8s %10s %10s %10s %12s %16s\n' "$case" "$(pick "${RPS[$case]}")" \
        "$(pick "${P50[$case]}")" "$(pick "${P99[$case]}")" "$(pick "${CPU[$case]}")" "$cmds"
done

# The link's own cost, without the noise of the request path: each proxy's
# CPU time (all threads, ns from /proc/PID/task/*/schedstat) over IDLE
# seconds with no traffic, while the windows still hold the runs' counts, so
# the link sends and reads them as it does under load.
IDLE="${IDLE:-20}"
cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {printf "%.0f\n", s}'; }
declare -A NS0
for case in "${CASES[@]}"; do NS0[$case]=$(cpu_ns "${PID_OF[$case]}"); done
sleep "$IDLE"
echo "no traffic for ${IDLE}s (windows still full): background CPU per second"
for case in "${CASES[@]}"; do
    ns=$(( $(cpu_ns "${PID_OF[$case]}") - NS0[$case] ))
    awk -v c="$case" -v ns="$ns" -v s="$IDLE" \
        'BEGIN {printf "%-8s %8.3f ms/s  (%.2f µs a request at 2,000 req/s)\n", c, ns / s / 1e6, ns / s / 2000 / 1e3}'
done
