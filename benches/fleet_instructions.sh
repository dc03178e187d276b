#!/usr/bin/env bash
# What [control] costs per request in instructions, which repeat run after
# run (unlike CPU time on a shared 2-core machine): one strangler binary run
# three times under callgrind, each in front of the same nginx origin on one
# route (weight 50, with a rollback), and sent exactly N requests over one
# keep-alive connection:
#
#   none    no [control]
#   shared  [control] with fleet_statistics = false
#   fleet   [control] with fleet_statistics = true
#
# callgrind counts every thread, so the Redis link's background work during
# the N requests (its once-a-second statistics, its resyncs) is included;
# under callgrind requests are slow, so the link's share per request is
# larger than at full speed: an upper bound.
#
# Usage: benches/fleet_instructions.sh BIN [N, default 2000]
# Needs nginx, valgrind and redis-server. Loopback only.
set -euo pipefail

BIN="$1"
N="${2:-2000}"
source "$(dirname "$0")/lib.sh"
need nginx valgrind callgrind_control redis-server
start_origin

REDIS=$(free_port)
redis-server --save "" --appendonly no --bind 127.0.0.1 --port "$REDIS" --dir "$WORK" >/dev/null &
PIDS+=($!)
wait_port "$REDIS"

cat > "$WORK/client.py" <<'PY'
import http.client, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
conn = http.client.HTTPConnection("127.0.0.1", port)
start = time.time()
for _ in range(n):
    conn.request("GET", "/api/x")
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        sys.exit(f"GET /api/x: {response.status}")
print(f"{n / (time.time() - start):.0f}")
PY

declare -A IR RATE
for case in none shared fleet; do
    case $case in
        none) control="" ;;
        shared) control=$'[control]\nredis = "redis://127.0.0.1:'"$REDIS"$'/0"\nkey_prefix = "shared:"\nfleet_statistics = false' ;;
        fleet) control=$'[control]\nredis = "redis://127.0.0.1:'"$REDIS"$'/0"\nkey_prefix = "fleet:"\nfleet_statistics = true' ;;
    esac
    port=$(free_port); admin=$(free_port)
    proxy_head "$port" "$admin" > "$WORK/$case.toml"
    cat >> "$WORK/$case.toml" <<CONF

[[routes]]
path = "/api"
weight = 50

[routes.rollback]
window = "60s"

$control
CONF
    RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$WORK/$case.%p.out" \
        "$BIN" run -c "$WORK/$case.toml" 2>"$WORK/$case.log" &
    pid=$!
    PIDS+=($pid)
    wait_port "$port"
    python3 "$WORK/client.py" "$port" 200 >/dev/null
    callgrind_control -z "$pid" >/dev/null
    RATE[$case]=$(python3 "$WORK/client.py" "$port" "$N")
    rm -f "$WORK/$case.$pid.out"*
    callgrind_control -d "$pid" >/dev/null
    total=$(cat "$WORK/$case.$pid.out"* | awk '/^summary:/ {s += $2} END {print s}')
    IR[$case]=$((total / N))
    kill "$pid"
done

echo "instructions per request (callgrind, $N GETs, one keep-alive connection, 1 worker; link included)"
printf '%-8s %12s %10s %14s\n' case 'instr/req' 'vs none' 'req/s (valgrind)'
for case in none shared fleet; do
    printf '%-8s %12s %10s %14s\n' "$case" "${IR[$case]}" \
        "$(awk -v a="${IR[none]}" -v b="${IR[$case]}" 'BEGIN {printf "%.3f", b / a}')" "${RATE[$case]}"
done
