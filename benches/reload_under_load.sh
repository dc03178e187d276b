#!/usr/bin/env bash
# p99 at a fixed rate while a 10,000-route file is reloaded every 100 ms,
# against the same load without reloads: strangler (one worker, on core 1)
# in front of the nginx origin, the load generator on core 0. Each reload
# rewrites the file (one route's weight changes) and POSTs /reload; its
# response time is the whole reload (read, parse, validate, compile, swap).
# Prints a markdown table.
#
# Usage: benches/reload_under_load.sh [seconds per run, default 10] [routes, default 10000]
# RATE (default 2000), ROUNDS (default 3: without / with reloads, interleaved).
# Needs nginx, curl and a release build of strangler and examples/loadgen.
set -euo pipefail

SECONDS_PER_RUN="${1:-10}"
ROUTES="${2:-10000}"
RATE="${RATE:-2000}"
ROUNDS="${ROUNDS:-3}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/target/release/strangler"
LOADGEN="$ROOT/target/release/examples/loadgen"
source "$ROOT/benches/lib.sh"
need nginx curl taskset
[[ -x "$BIN" && -x "$LOADGEN" ]] || { echo "missing $BIN or $LOADGEN (cargo build --release --bin strangler --example loadgen)" >&2; exit 1; }
CORE_PROXY=1; CORE_LOAD=0
[[ "$(nproc --all)" -ge 2 ]] || CORE_PROXY=0

taskset -c $CORE_LOAD true  # fails early where taskset cannot pin
start_origin
PORT=$(free_port); ADMIN=$(free_port)

write_file() { # weight of the last route -> the config file, atomically
    python3 - "$PORT" "$ADMIN" "$ORIGIN" "$ROUTES" "$1" > "$WORK/routes.toml.tmp" <<'PY'
import sys
port, admin, origin, n, last = sys.argv[1:]
out = [f'[server]\nlisten = "127.0.0.1:{port}"\nadmin_listen = "127.0.0.1:{admin}"\nworkers = 1\n',
       f'[backends.legacy]\nurl = "http://127.0.0.1:{origin}"\n[backends.new]\nurl = "http://127.0.0.1:{origin}"\n']
n = int(n)
for i in range(n):
    # Every third route weighted and sticky, the others all-legacy or
    # all-new (a partial weight without a sticky key draws a warning per
    # route on every reload, which real files do not have by the thousand).
    weight = last if i == n - 1 else (i % 101 if i % 3 == 0 else i % 2 * 100)
    out.append(f'[[routes]]\npath = "/svc{i}/api"\nweight = {weight}\n')
    if i % 3 == 0 or i == n - 1:
        out.append('sticky = "header:x-user-id"\n')
    if i % 7 == 0:
        out.append('[routes.fallback]\non_status = [502, 503]\n')
print("".join(out))
PY
    mv "$WORK/routes.toml.tmp" "$WORK/routes.toml"
}
write_file 0
RUST_LOG=warn taskset -c $CORE_PROXY "$BIN" run -c "$WORK/routes.toml" 2> "$WORK/strangler.log" &
PIDS+=($!)
wait_port "$PORT"
URL="http://127.0.0.1:$PORT/svc$((ROUTES / 2))/api/orders/42"

load() { # -> loadgen's key=value line
    taskset -c $CORE_LOAD "$LOADGEN" rate --url "$URL" --rate "$RATE" --duration "$SECONDS_PER_RUN" \
        --connections 32 --header 'x-user-id: user-42'
}

reload_loop() { # until $WORK/stop exists (at most 10 per second of the run, plus 20)
    local i=0 max=$((SECONDS_PER_RUN * 10 + 20))
    while [[ ! -e "$WORK/stop" && $i -lt $max ]]; do
        i=$((i + 1))
        write_file $((i % 2 * 50))
        taskset -c $CORE_LOAD curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -X POST \
            --max-time 10 "http://127.0.0.1:$ADMIN/reload" >> "$WORK/reloads" || echo "000 0" >> "$WORK/reloads"
        sleep 0.1
    done
}

taskset -c $CORE_LOAD "$LOADGEN" rate --url "$URL" --rate "$RATE" --duration 2 --connections 32 > /dev/null
: > "$WORK/reloads"
for ((round = 1; round <= ROUNDS; round++)); do
    echo "quiet $round $(load)" >> "$WORK/runs"
    rm -f "$WORK/stop"
    reload_loop &
    loop=$!
    echo "reloading $round $(load)" >> "$WORK/runs"
    touch "$WORK/stop"
    wait "$loop"
done

python3 - "$WORK/runs" "$WORK/reloads" "$ROUTES" "$RATE" "$SECONDS_PER_RUN" <<'PY'
import statistics, sys
runs, reloads, routes, rate, secs = sys.argv[1:]
rows = {}
for line in open(runs):
    kind, rnd, *kv = line.split()
    d = dict(x.split("=", 1) for x in kv)
    rows.setdefault(kind, []).append(d)
def cell(kind, key):
    v = [float(d[key]) for d in rows.get(kind, []) if key in d]
    if not v:
        return "—"
    return f"{statistics.median(v):.2f} ({min(v):.2f}–{max(v):.2f})" if len(v) > 1 else f"{v[0]:.2f}"
print(f"{int(routes):,} routes, {rate} req/s for {secs} s per run, rounds interleaved; median (min–max).")
print()
print("| | p50 ms | p99 ms | p99.9 ms | max ms | errors |")
print("|---|---:|---:|---:|---:|---:|")
for kind, name in (("quiet", "no reload"), ("reloading", "reload every 100 ms")):
    errs = sum(int(d.get("errors", 0)) + int(d.get("non2xx", 0)) for d in rows.get(kind, []))
    print(f"| {name} | {cell(kind, 'p50_ms')} | {cell(kind, 'p99_ms')} | {cell(kind, 'p999_ms')} | {cell(kind, 'max_ms')} | {errs} |")
times = [float(l.split()[1]) * 1000 for l in open(reloads) if l.startswith("200")]
failed = sum(1 for l in open(reloads) if not l.startswith("200"))
if times:
    times.sort()
    print()
    print(f"Reloads: {len(times)} answered 200 ({failed} other); `POST /reload` round trip (read, parse, "
          f"validate, compile, swap) median {statistics.median(times):.1f} ms, "
          f"p90 {times[int(len(times) * 0.9) - 1 if len(times) > 1 else 0]:.1f} ms, max {times[-1]:.1f} ms.")
PY
