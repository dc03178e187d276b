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

# wrk_summary WRK_OUTPUT CPU_TICKS: "requests/s p50_ms p99_ms cpu_s_per_100k"
# from a `wrk --latency` output and the proxy's CPU ticks over the run; exits
# when wrk saw an answer that was not 2xx.
wrk_summary() {
    if grep -q "Non-2xx" "$1"; then echo "non-2xx answers: $1" >&2; exit 1; fi
    local rps requests p50 p99
    rps=$(awk '/Requests\/sec/ {print $2}' "$1")
    requests=$(awk '/requests in/ {print $1}' "$1")
    p50=$(awk '$1 == "50%" {print $2}' "$1" | to_ms)
    p99=$(awk '$1 == "99%" {print $2}' "$1" | to_ms)
    awk -v r="$rps" -v n="$requests" -v t="$2" -v hz="$(getconf CLK_TCK)" \
        -v p50="$p50" -v p99="$p99" \
        'BEGIN {printf "%.0f %s %s %.3f\n", r, p50, p99, (t / hz) / n * 100000}'
}

# to_ms: a wrk duration (`850.00us`, `1.20ms`, `2.00s`) as milliseconds.
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; printf "%.3f\n", v}'; }

# median: the median of the numbers on stdin, one a line.
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

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
    proxy_head "$1" "$2"
    cat <<CONF

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
