# Shared by the load scripts in benches/: a work dir and the processes to stop
# on exit, tool checks, free loopback ports, and the nginx origin that every
# proxy under test forwards to. Source it; it sets WORK and PIDS.

WORK="$(mktemp -d)"
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# need TOOL... : exits naming the first one missing.
need() {
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "missing: $tool (Debian: apt-get install nginx-light haproxy wrk valgrind)" >&2; exit 1; }
    done
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_port PORT: until something listens there (at most 60 s, for valgrind).
wait_port() {
    for _ in $(seq 1 600); do
        (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listening on $1" >&2; exit 1
}

# start_origin: nginx with one worker answering 200 to everything (bodies up to
# 1 MiB read and discarded) on $ORIGIN, which it sets.
start_origin() {
    ORIGIN=$(free_port)
    mkdir -p "$WORK/origin"
    cat > "$WORK/origin.conf" <<CONF
worker_processes 1;
pid $WORK/origin/nginx.pid;
error_log $WORK/origin/error.log crit;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/origin; proxy_temp_path $WORK/origin;
    fastcgi_temp_path $WORK/origin; uwsgi_temp_path $WORK/origin; scgi_temp_path $WORK/origin;
    client_body_buffer_size 256k;
    server {
        listen 127.0.0.1:$ORIGIN;
        location / { return 200 'hello from the origin\n'; }
    }
}
CONF
    nginx -c "$WORK/origin.conf" -g 'daemon off;' &
    PIDS+=($!)
    wait_port "$ORIGIN"
}

# proxy_head LISTEN ADMIN: the [server] (one worker) and the two backends,
# legacy and new, both the origin, that the bench configs share.
proxy_head() {
    cat <<CONF
[server]
listen = "127.0.0.1:$1"
admin_listen = "127.0.0.1:$2"
workers = 1

[backends.legacy]
url = "http://127.0.0.1:$ORIGIN"

[backends.new]
url = "http://127.0.0.1:$ORIGIN"
CONF
}

# fallback_routes_config LISTEN ADMIN: strangler with one worker, legacy and new
# both the origin, a route /plain without fallback and a route /fb with it
# (and /rb, see below).
fallback_routes_config() {
    proxy_head "$1" "$2"
    cat <<CONF

[[routes]]
path = "/plain"
weight = 100
[routes.fallback]
enabled = false

[[routes]]
path = "/fb"
weight = 100
CONF
    # With ROLLBACK_ROUTE=1, also /rb: /fb with an automatic rollback.
    if [[ "${ROLLBACK_ROUTE:-0}" == 1 ]]; then
        printf '\n[[routes]]\npath = "/rb"\nweight = 100\n[routes.rollback]\nmax_p95 = "500ms"\n'
    fi
}

# shadow_routes_config LISTEN ADMIN: strangler with one worker, legacy and new
# both the origin, three routes served by legacy: /plain without shadow, /zero
# with a shadow at 0%, /full mirroring every GET (noise learning off).
shadow_routes_config() {
    cat <<CONF
[server]
listen = "127.0.0.1:$1"
admin_listen = "127.0.0.1:$2"
workers = 1

[backends.legacy]
url = "http://127.0.0.1:$ORIGIN"

[backends.new]
url = "http://127.0.0.1:$ORIGIN"

[[routes]]
path = "/plain"
weight = 0

[[routes]]
path = "/zero"
weight = 0
[routes.shadow]
percent = 0

[[routes]]
path = "/full"
weight = 0
[routes.shadow]
percent = 100
noise_sample = 0
max_inflight = 100000
CONF
}
