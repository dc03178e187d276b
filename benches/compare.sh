#!/usr/bin/env bash
# Side-by-side load comparison: strangler, nginx and HAProxy proxying the same
# origin on loopback, driven by the same wrk run; prints requests/s, latency
# percentiles and each proxy's throughput as a ratio of nginx's.
#
# Usage: benches/compare.sh [seconds per run, default 10] [connections, default 64]
# PROXY_THREADS (default 1) sets each proxy's worker threads alike: nginx
# worker_processes, HAProxy nbthread, strangler workers. On a small machine the
# load generator and the origin share the cores, so 1 is the fair default.
# Needs: nginx, haproxy, wrk (Debian: apt-get install nginx-light haproxy wrk)
# and a release build (cargo build --release). Everything listens on 127.0.0.1.
set -euo pipefail

DURATION="${1:-10}"
CONNECTIONS="${2:-64}"
THREADS=1
PROXY_THREADS="${PROXY_THREADS:-1}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/target/release/strangler"
source "$(dirname "$0")/lib.sh"
need nginx haproxy wrk
[ -x "$BIN" ] || { echo "missing: $BIN (cargo build --release)" >&2; exit 1; }

ORIGIN=$(free_port); NGINX=$(free_port); HAPROXY=$(free_port); STRANGLER=$(free_port); ADMIN=$(free_port)

# The origin: nginx answering a fixed 200 body, so the backend costs the same for every proxy.
mkdir -p "$WORK/nginx"
cat > "$WORK/nginx.conf" <<CONF
worker_processes $PROXY_THREADS;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log crit;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx;
    fastcgi_temp_path $WORK/nginx; uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
    upstream origin { server 127.0.0.1:$ORIGIN; keepalive 128; }
    server {
        listen 127.0.0.1:$ORIGIN;
        location / { return 200 'hello from the origin\n'; }
    }
    server {
        listen 127.0.0.1:$NGINX;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }
}
CONF
nginx -c "$WORK/nginx.conf" -g 'daemon off;' &
PIDS+=($!)

cat > "$WORK/haproxy.cfg" <<CONF
global
    nbthread $PROXY_THREADS
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    option forwardfor
    http-reuse always
frontend fe
    bind 127.0.0.1:$HAPROXY
    default_backend be
backend be
    server origin 127.0.0.1:$ORIGIN
CONF
haproxy -f "$WORK/haproxy.cfg" -q &
PIDS+=($!)

# strangler with a real route table: the request matches a weighted sticky
# route, and new points at the same origin, so every request does the full
# decision.
cat > "$WORK/strangler.toml" <<CONF
[server]
listen = "127.0.0.1:$STRANGLER"
admin_listen = "127.0.0.1:$ADMIN"
debug_headers = true
workers = $PROXY_THREADS

[backends.legacy]
url = "http://127.0.0.1:$ORIGIN"

[backends.new]
url = "http://127.0.0.1:$ORIGIN"

[[routes]]
path = "/api/users"
weight = 50
sticky = "header:x-user-id"

[[routes]]
path = "/"
weight = 0
CONF
RUST_LOG=warn "$BIN" run -c "$WORK/strangler.toml" 2>"$WORK/strangler.log" &
PIDS+=($!)

for port in $ORIGIN $NGINX $HAPROXY $STRANGLER; do wait_port "$port"; done

run() { # name port -> "rps p50 p99"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -H 'x-user-id: user-42' \
        "http://127.0.0.1:$2/api/users/42" > "$WORK/$1.wrk"
    local rps p50 p99
    rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/$1.wrk")
    p50=$(awk '$1=="50%" {print $2}' "$WORK/$1.wrk")
    p99=$(awk '$1=="99%" {print $2}' "$WORK/$1.wrk")
    echo "$rps $p50 $p99"
}

echo "wrk: ${DURATION}s, $CONNECTIONS connections, $THREADS thread, GET /api/users/42 on $(nproc) cores; $PROXY_THREADS proxy thread(s) each"
run warmup "$STRANGLER" > /dev/null
declare -A RESULT
for proxy in nginx haproxy strangler; do
    case $proxy in nginx) port=$NGINX ;; haproxy) port=$HAPROXY ;; strangler) port=$STRANGLER ;; esac
    RESULT[$proxy]=$(run "$proxy" "$port")
done
base=$(echo "${RESULT[nginx]}" | cut -d' ' -f1)
printf '%-10s %12s %10s %10s %14s\n' proxy requests/s p50 p99 'vs nginx'
for proxy in nginx haproxy strangler; do
    read -r rps p50 p99 <<< "${RESULT[$proxy]}"
    printf '%-10s %12s %10s %10s %14s\n' "$proxy" "$rps" "$p50" "$p99" \
        "$(awk -v a="$rps" -v b="$base" 'BEGIN {printf "%.2f", a / b}')"
done
