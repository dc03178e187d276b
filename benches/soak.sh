#!/usr/bin/env bash
# Soak: RELOADS config reloads under steady load through a weighted fallback
# route, with zero failed requests, and the proxy's file descriptors and RSS
# flat (sampled every 10 s from /proc). Not a CI test: it takes minutes.
#
#   legacy = the nginx origin; new = a loopback port nothing listens on, so
#   every request the weight sends to new fails to connect and falls back
#   (then new is ejected, and requests go to legacy as "unhealthy" until the
#   half-open trial); the route's weight flips between 40 and 60 on every
#   reload (written to a temp file and renamed, as the README says, then
#   POST /reload).
#
# Load: wrk with a fixed number of connections (wrk has no fixed-rate mode;
# wrk2 has, where installed). Any non-2xx answer or socket error fails the soak.
#
# Usage: benches/soak.sh BIN [reloads, default 1000] [connections, default 8]
# Needs nginx, wrk, curl. Loopback only. Results by hand into benches/RESULTS.md.
set -euo pipefail

BIN="$1"
RELOADS="${2:-1000}"
CONNECTIONS="${3:-8}"
source "$(dirname "$0")/lib.sh"
need nginx wrk curl
start_origin

PORT=$(free_port)
ADMIN=$(free_port)
DEAD=$(free_port)
config() { # weight
    cat <<CONF
[server]
listen = "127.0.0.1:$PORT"
admin_listen = "127.0.0.1:$ADMIN"

[backends.legacy]
url = "http://127.0.0.1:$ORIGIN"

[backends.new]
url = "http://127.0.0.1:$DEAD"
connect_timeout = "100ms"

[[routes]]
path = "/soak"
weight = $1
sticky = "header:x-user"
CONF
}
config 50 > "$WORK/strangler.toml"
RUST_LOG=warn "$BIN" run -c "$WORK/strangler.toml" 2>"$WORK/strangler.log" &
PROXY=$!
PIDS+=($PROXY)
wait_port "$PORT"

sample() {
    local rss fds
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$PROXY/status")
    fds=$(ls "/proc/$PROXY/fd" | wc -l)
    echo "$(date -u +%H:%M:%S) rss_kib=$rss fds=$fds"
}

# Long enough to outlast the reloads; stopped once they are done.
wrk -t 1 -c "$CONNECTIONS" -d 3600s -H 'x-user: soak' "http://127.0.0.1:$PORT/soak/x" > "$WORK/wrk.txt" 2>&1 &
WRK=$!
PIDS+=($WRK)

sample
( while kill -0 "$PROXY" 2>/dev/null; do sleep 10; sample; done ) &
SAMPLER=$!
PIDS+=($SAMPLER)

for i in $(seq 1 "$RELOADS"); do
    config $(( i % 2 == 0 ? 40 : 60 )) > "$WORK/next.toml"
    mv "$WORK/next.toml" "$WORK/strangler.toml"
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$ADMIN/reload")
    [ "$code" = 200 ] || { echo "reload $i answered $code" >&2; exit 1; }
done

kill -INT "$WRK"; wait "$WRK" 2>/dev/null || true
kill "$SAMPLER" 2>/dev/null || true
sample
echo "generation: $(curl -s "http://127.0.0.1:$ADMIN/config" | python3 -c 'import json,sys; print(json.load(sys.stdin)["generation"])')"
cat "$WORK/wrk.txt"
if grep -qE 'Non-2xx|Socket errors' "$WORK/wrk.txt"; then
    echo "FAILED: some requests failed" >&2
    exit 1
fi
echo "ok: $RELOADS reloads, no failed request"
