#!/usr/bin/env bash
# Side-by-side comparison of strangler, nginx and HAProxy (and no proxy at all)
# in front of the same nginx origin on loopback: max requests/s (wrk), the
# proxy's CPU seconds per 100k requests (its process tree's utime+stime from
# /proc), p50/p99 at a fixed request rate (an open-loop load generator that
# measures from the intended send time, examples/loadgen.rs) and RSS, over
# several interleaved rounds; prints a markdown table with the median, the
# min–max, the best round and the ratio to nginx, and writes it into
# benches/RESULTS.md.
#
# Usage (from a clean clone; installs nginx-light, haproxy, wrk, openssl from
# Debian's packages when missing, builds the release binary and the load
# generator):
#   benches/compare.sh
# Knobs (environment):
#   ROUNDS=3          interleaved rounds (the target order rotates each round)
#   DURATION=10       seconds of each wrk run (max req/s, CPU)
#   RATE_DURATION=    seconds of each fixed-rate run (default: DURATION)
#   RATE=2000         the fixed rate, requests/s
#   CONNECTIONS=64    wrk connections (1 thread); RATE_CONNECTIONS=32 for the fixed rate
#   SCENARIOS=plain,sticky,log,fallback,post,https,h2,idle,reload
#                     (reload: benches/reload_under_load.sh, p99 while a
#                     10,000-route file reloads every 100 ms)
#   TARGETS=direct,strangler,nginx,haproxy   (direct runs only where it means something)
#   IDLE_CONNECTIONS=10000   for the idle scenario
#   PROXY_THREADS=1   worker threads/processes of each proxy
#   USER_KEY=user-42  the x-user-id every request sends: on the sticky route
#                     user-42 falls on legacy (as in issue 13's figures),
#                     user-1 on new
#   RESULTS=benches/RESULTS.md (RESULTS= to skip writing); BUILD=0 to skip cargo build
#   SAVE_RAW=DIR      keep the raw rows (results.tsv, idle.tsv, reload.md) there
# A smoke run in about a minute: ROUNDS=1 DURATION=2 SCENARIOS=plain,sticky benches/compare.sh
#
# The proxy under test runs on core 1 (taskset -c 1), everything else (the
# origin, wrk, the load generator, this script) on core 0. Loopback only; every
# process started is stopped on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CMDLINE="$0 $*"
if [[ -z "${COMPARE_PINNED:-}" && "$(nproc --all)" -ge 2 ]]; then
    COMPARE_PINNED=1 exec taskset -c 0 "$0" "$@"
fi

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10}"
RATE_DURATION="${RATE_DURATION:-$DURATION}"
RATE="${RATE:-2000}"
CONNECTIONS="${CONNECTIONS:-64}"
RATE_CONNECTIONS="${RATE_CONNECTIONS:-32}"
SCENARIOS="${SCENARIOS:-plain,sticky,log,fallback,post,https,h2,idle,reload}"
TARGETS="${TARGETS:-direct,strangler,nginx,haproxy}"
IDLE_CONNECTIONS="${IDLE_CONNECTIONS:-10000}"
PROXY_THREADS="${PROXY_THREADS:-1}"
USER_KEY="${USER_KEY:-user-42}"
RESULTS="${RESULTS-$ROOT/benches/RESULTS.md}"
BUILD="${BUILD:-1}"
PROXY_CORE=1
[[ "$(nproc --all)" -ge 2 ]] || PROXY_CORE=0

SUDO=""; [[ "$(id -u)" == 0 ]] || SUDO=sudo
missing=()
for pair in nginx:nginx-light haproxy:haproxy wrk:wrk openssl:openssl taskset:util-linux python3:python3 curl:curl; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}" >&2
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >&2
fi
if [[ "$BUILD" == 1 ]]; then
    (cd "$ROOT" && cargo build --release --locked --bin strangler --example loadgen >&2)
fi
BIN="$ROOT/target/release/strangler"
LOADGEN="$ROOT/target/release/examples/loadgen"
source "$ROOT/benches/lib.sh"
need nginx haproxy wrk openssl taskset python3 curl
[[ -x "$BIN" && -x "$LOADGEN" ]] || { echo "missing $BIN or $LOADGEN (cargo build --release --bin strangler --example loadgen)" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
FD_LIMIT=$(ulimit -n)
# HAProxy refuses to start unless it has two descriptors per connection: under
# a hard limit of 20,000 (some containers) it holds at most about 9,950.
HAPROXY_MAXCONN=$(( (FD_LIMIT - 100) / 2 > 30000 ? 30000 : (FD_LIMIT - 100) / 2 ))
PROCTREE="python3 $ROOT/benches/proctree.py"
TSV="$WORK/results.tsv"
: > "$TSV"

# --- the origin, on core 0: 256-byte answers on plain HTTP/1.1, HTTPS, h2c,
# and a "new" that answers 503 for the fallback scenario.
BODY="$(head -c 255 /dev/zero | tr '\0' 'x')"
ORIGIN=$(free_port); ORIGIN_TLS=$(free_port); ORIGIN_H2=$(free_port); FAILING=$(free_port)
mkdir -p "$WORK/origin" "$WORK/tls"
# A CA and a certificate for 127.0.0.1 signed by it, made for this run.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench-ca \
    -keyout "$WORK/tls/ca.key" -out "$WORK/tls/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 \
    -keyout "$WORK/tls/server.key" -out "$WORK/tls/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$WORK/tls/ext"
openssl x509 -req -in "$WORK/tls/server.csr" -CA "$WORK/tls/ca.crt" -CAkey "$WORK/tls/ca.key" \
    -CAcreateserial -days 2 -extfile "$WORK/tls/ext" -out "$WORK/tls/server.crt" 2>/dev/null
cat "$WORK/tls/server.crt" "$WORK/tls/server.key" > "$WORK/tls/server.pem"
CERT="$WORK/tls/server.crt"; KEY="$WORK/tls/server.key"

# Shared by every nginx here: keep-alive connections are never closed for
# their request count (nginx's default closes them every 1,000 requests).
# No access_log here: an `access_log off` on the same level cancels any other.
NGINX_HTTP_COMMON="keepalive_requests 1000000; keepalive_timeout 300s;
    client_body_temp_path $WORK/t; proxy_temp_path $WORK/t;
    fastcgi_temp_path $WORK/t; uwsgi_temp_path $WORK/t; scgi_temp_path $WORK/t;"
mkdir -p "$WORK/t"
cat > "$WORK/origin.conf" <<CONF
worker_processes 1;
worker_rlimit_nofile $FD_LIMIT;
pid $WORK/origin/nginx.pid;
error_log $WORK/origin/error.log crit;
events { worker_connections 20000; }
http {
    $NGINX_HTTP_COMMON
    access_log off;
    client_body_buffer_size 256k;
    server {
        listen 127.0.0.1:$ORIGIN;
        listen 127.0.0.1:$ORIGIN_TLS ssl;
        listen 127.0.0.1:$ORIGIN_H2 http2;
        ssl_certificate $CERT; ssl_certificate_key $KEY;
        location / { return 200 '$BODY\n'; }
    }
    server {
        listen 127.0.0.1:$FAILING;
        location / { return 503 'new is failing\n'; }
    }
}
CONF
nginx -c "$WORK/origin.conf" -g 'daemon off;' &
PIDS+=($!)
for port in $ORIGIN $ORIGIN_TLS $ORIGIN_H2 $FAILING; do wait_port "$port"; done

cat > "$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = string.rep("x", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
LUA

# --- each scenario's proxy configs. Every proxy: one worker, HTTP/1.1
# keep-alive to the origin, X-Forwarded-For added.
PORT_STRANGLER=0; PORT_NGINX=0; PORT_HAPROXY=0; ADMIN=0

strangler_config() { # scenario
    local scenario=$1
    cat <<CONF
[server]
listen = "127.0.0.1:$PORT_STRANGLER"
admin_listen = "127.0.0.1:$ADMIN"
workers = $PROXY_THREADS
max_connections = 30000
CONF
    [[ $scenario == https ]] && printf '[server.tls]\ncert_file = "%s"\nkey_file = "%s"\n' "$CERT" "$KEY"
    if [[ $scenario == h2 ]]; then
        # legacy spoken to in h2c (prior knowledge).
        printf '\n[backends.legacy]\nurl = "http://127.0.0.1:%s"\nprotocol = "http2"\n' "$ORIGIN_H2"
    else
        printf '\n[backends.legacy]\nurl = "http://127.0.0.1:%s"\n' "$ORIGIN"
    fi
    case $scenario in
    sticky | log)
        # new is the same origin: every request does the whole decision.
        printf '\n[backends.new]\nurl = "http://127.0.0.1:%s"\n' "$ORIGIN"
        printf '\n[[routes]]\npath = "/"\nweight = 50\nsticky = "header:x-user-id"\n'
        ;;
    fallback)
        # new answers 503 to everything; passive ejection off so every request
        # keeps taking the fallback path.
        printf '\n[backends.new]\nurl = "http://127.0.0.1:%s"\n[backends.new.outlier]\nconsecutive_failures = 0\n' "$FAILING"
        printf '\n[[routes]]\npath = "/"\nweight = 100\n'
        ;;
    esac
}

nginx_config() { # scenario
    local scenario=$1 listen="127.0.0.1:$PORT_NGINX" log="access_log off;" location
    [[ $scenario == https ]] && listen="$listen ssl"
    location="proxy_pass http://origin;"
    case $scenario in
    sticky | log)
        # split_clients hashes the header into 50% / 50%, like the sticky route.
        location='proxy_pass http://$pool;'
        ;;
    fallback)
        location="proxy_pass http://fallback; proxy_next_upstream error timeout http_503;"
        ;;
    esac
    if [[ $scenario == log ]]; then
        log="log_format json escape=json '{\"time\":\"\$time_iso8601\",\"method\":\"\$request_method\",\"path\":\"\$uri\",\"query\":\"\$args\",\"client\":\"\$remote_addr\",\"upstream\":\"\$upstream_addr\",\"status\":\$status,\"duration_ms\":\$request_time,\"request_id\":\"\$request_id\"}';
    access_log $WORK/nginx-access.log json;"
    fi
    cat <<CONF
worker_processes $PROXY_THREADS;
worker_rlimit_nofile $FD_LIMIT;
pid $WORK/proxy-nginx.pid;
error_log $WORK/proxy-nginx.error.log crit;
events { worker_connections 20000; }
http {
    $NGINX_HTTP_COMMON
    $log
    upstream origin { server 127.0.0.1:$ORIGIN; keepalive 128; }
    upstream legacy_pool { server 127.0.0.1:$ORIGIN; keepalive 128; }
    upstream new_pool { server 127.0.0.1:$ORIGIN; keepalive 128; }
    # max_fails=0: a 503 never marks new down, so every request tries it first.
    upstream fallback { server 127.0.0.1:$FAILING max_fails=0; server 127.0.0.1:$ORIGIN backup; keepalive 128; }
    split_clients "\${http_x_user_id}" \$pool { 50% new_pool; * legacy_pool; }
    server {
        listen $listen;
        ssl_certificate $CERT; ssl_certificate_key $KEY;
        location / {
            $location
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }
}
CONF
}

haproxy_config() { # scenario
    local scenario=$1 bind="127.0.0.1:$PORT_HAPROXY" backend log=""
    [[ $scenario == https ]] && bind="$bind ssl crt $WORK/tls/server.pem alpn http/1.1"
    backend="server origin 127.0.0.1:$ORIGIN"
    case $scenario in
    sticky | log)
        # Two servers (the same origin) weighted 50/50, chosen by a hash of the header.
        backend="balance hdr(x-user-id)
    hash-type consistent
    server legacy 127.0.0.1:$ORIGIN weight 50
    server new 127.0.0.1:$ORIGIN weight 50"
        ;;
    fallback)
        # new first; a 503 is retried once on another server (redispatch avoids
        # the one that failed), which is legacy.
        backend="balance first
    retry-on 503
    retries 1
    option redispatch 1
    server new 127.0.0.1:$FAILING
    server legacy 127.0.0.1:$ORIGIN"
        ;;
    h2)
        backend="server origin 127.0.0.1:$ORIGIN_H2 proto h2"
        ;;
    esac
    if [[ $scenario == log ]]; then
        log='log stdout format raw local0
    option httplog
    log-format "{\"time\":\"%t\",\"method\":\"%HM\",\"path\":\"%HP\",\"client\":\"%ci\",\"server\":\"%s\",\"status\":%ST,\"duration_ms\":%Ta,\"request_id\":\"%ID\"}"
    unique-id-format %{+X}o\ %ci:%cp_%fi:%fp_%Ts_%rt:%pid'
    fi
    cat <<CONF
global
    nbthread $PROXY_THREADS
    maxconn $HAPROXY_MAXCONN
defaults
    mode http
    timeout connect 2s
    timeout client 300s
    timeout server 30s
    timeout http-keep-alive 300s
    option forwardfor
    http-reuse always
    maxconn $HAPROXY_MAXCONN
    $log
frontend fe
    bind $bind
    default_backend be
backend be
    $backend
CONF
}

SCEN_PIDS=()
declare -A PID_OF PORT_OF
start_proxies() { # scenario
    local scenario=$1
    local env=(RUST_LOG=warn)
    PORT_STRANGLER=$(free_port); PORT_NGINX=$(free_port); PORT_HAPROXY=$(free_port); ADMIN=$(free_port)
    strangler_config "$scenario" > "$WORK/strangler.toml"
    nginx_config "$scenario" > "$WORK/proxy-nginx.conf"
    haproxy_config "$scenario" > "$WORK/haproxy.cfg"
    [[ $scenario == log ]] && env=(RUST_LOG=info)
    env "${env[@]}" taskset -c $PROXY_CORE "$BIN" --log-format json run -c "$WORK/strangler.toml" 2> "$WORK/strangler-$scenario.log" &
    PID_OF[strangler]=$!
    taskset -c $PROXY_CORE nginx -c "$WORK/proxy-nginx.conf" -g 'daemon off;' &
    PID_OF[nginx]=$!
    if [[ $scenario == log ]]; then
        taskset -c $PROXY_CORE haproxy -f "$WORK/haproxy.cfg" > "$WORK/haproxy-access.log" 2>&1 &
    else
        taskset -c $PROXY_CORE haproxy -f "$WORK/haproxy.cfg" -q &
    fi
    PID_OF[haproxy]=$!
    SCEN_PIDS=("${PID_OF[strangler]}" "${PID_OF[nginx]}" "${PID_OF[haproxy]}")
    PIDS+=("${SCEN_PIDS[@]}")
    PORT_OF=([direct]=$ORIGIN [strangler]=$PORT_STRANGLER [nginx]=$PORT_NGINX [haproxy]=$PORT_HAPROXY)
    [[ $scenario == https ]] && PORT_OF[direct]=$ORIGIN_TLS
    for port in $PORT_STRANGLER $PORT_NGINX $PORT_HAPROXY; do wait_port "$port"; done
    PID_OF[direct]=""
}

stop_proxies() {
    local pid
    for pid in "${SCEN_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${SCEN_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    local keep=() p
    for p in "${PIDS[@]}"; do [[ " ${SCEN_PIDS[*]} " == *" $p "* ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
    SCEN_PIDS=()
}

url_of() { # scenario target
    local scheme=http
    [[ $1 == https ]] && scheme=https
    echo "$scheme://127.0.0.1:${PORT_OF[$2]}/api/users/42"
}

cpu_of() { if [[ -n "$1" ]]; then $PROCTREE cpu "$1"; else echo 0; fi; }
rss_of() { if [[ -n "$1" ]]; then $PROCTREE rss "$1"; else echo 0; fi; }

# measure scenario target round: one wrk run and one fixed-rate run; appends a TSV row.
measure() {
    local scenario=$1 target=$2 round=$3 pid=${PID_OF[$2]} url wrk_args=() gen_args=()
    url=$(url_of "$scenario" "$target")
    if [[ $scenario == post ]]; then
        wrk_args=(-s "$WORK/post.lua"); gen_args=(--method POST --body-bytes 1024)
    fi
    [[ $scenario == https ]] && gen_args+=(--ca "$WORK/tls/ca.crt")
    local c0 c1 c2 c3 out
    c0=$(cpu_of "$pid")
    wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -H "x-user-id: $USER_KEY" "${wrk_args[@]}" "$url" > "$WORK/wrk.out" 2>&1 || true
    c1=$(cpu_of "$pid")
    local rps requests werr
    rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out")
    requests=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
    werr=$(awk '/Non-2xx/ {n += $NF} /Socket errors/ {gsub(",", ""); n += $4 + $6 + $8 + $10} END {print n + 0}' "$WORK/wrk.out")
    c2=$(cpu_of "$pid")
    out=$("$LOADGEN" rate --url "$url" --rate "$RATE" --duration "$RATE_DURATION" \
        --connections "$RATE_CONNECTIONS" --header "x-user-id: $USER_KEY" "${gen_args[@]}" 2>&1 || true)
    c3=$(cpu_of "$pid")
    local rss
    rss=$(rss_of "$pid")
    kv() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<< "$out"; }
    local gen_requests
    gen_requests=$(kv requests)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$scenario" "$target" "$round" \
        "${rps:-0}" "${requests:-0}" "$(awk -v a="$c0" -v b="$c1" 'BEGIN {print b - a}')" "$werr" \
        "$(kv p50_ms)" "$(kv p99_ms)" "${gen_requests:-0}" "$(awk -v a="$c2" -v b="$c3" 'BEGIN {print b - a}')" \
        "$(( $(kv errors) + $(kv non2xx) ))" "$rss" >> "$TSV"
    printf '  %-9s %-9s round %s: %8s req/s, p50 %s ms, p99 %s ms, RSS %s KiB, errors %s/%s\n' "$scenario" "$target" "$round" \
        "${rps:-?}" "$(kv p50_ms)" "$(kv p99_ms)" "$rss" "$werr" "$(( $(kv errors) + $(kv non2xx) ))" >&2
}

# idle_measure target round: RSS with IDLE_CONNECTIONS idle keep-alive clients.
idle_measure() {
    local target=$1 round=$2 pid=${PID_OF[$1]} before after held ready="$WORK/idle.ready"
    before=$(rss_of "$pid")
    rm -f "$ready"
    "$LOADGEN" idle --addr "127.0.0.1:${PORT_OF[$target]}" --path /api/users/42 \
        --connections "$IDLE_CONNECTIONS" --hold 3 --ready-file "$ready" --timeout 30 > "$WORK/idle.out" 2>&1 &
    local gen=$!
    for _ in $(seq 1 700); do [[ -s "$ready" ]] && break; sleep 0.1; done
    after=$(rss_of "$pid")
    held=$(sed -n 's/.*held=\([0-9]*\).*/\1/p' "$ready" 2>/dev/null)
    wait "$gen" || true
    printf 'idle\t%s\t%s\t%s\t%s\t%s\n' "$target" "$round" "$before" "$after" "${held:-0}" >> "$WORK/idle.tsv"
    printf '  idle      %-9s round %s: RSS %s KiB idle, %s KiB with %s connections held\n' "$target" "$round" "$before" "$after" "${held:-0}" >&2
}
: > "$WORK/idle.tsv"

targets_for() { # scenario -> the targets run in it (no proxy only where it differs)
    local t out=()
    for t in ${TARGETS//,/ }; do
        if [[ $t == direct ]]; then
            case $1 in plain | post | https) ;; *) continue ;; esac
        fi
        [[ $1 == idle && $t == direct ]] && continue
        out+=("$t")
    done
    echo "${out[@]}"
}

rotate() { # n word... -> the words rotated left by n
    local n=$1; shift
    local words=("$@") i
    for ((i = 0; i < ${#words[@]}; i++)); do echo -n "${words[(i + n) % ${#words[@]}]} "; done
}

COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo '+dirty')"
STARTED="$(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
echo "compare.sh: rounds=$ROUNDS duration=${DURATION}s rate=$RATE/s for ${RATE_DURATION}s scenarios=$SCENARIOS; proxy on core $PROXY_CORE" >&2
for scenario in ${SCENARIOS//,/ }; do
    read -r -a targets <<< "$(targets_for "$scenario")"
    if [[ $scenario == reload ]]; then
        ROUNDS=$ROUNDS RATE=$RATE "$ROOT/benches/reload_under_load.sh" "$RATE_DURATION" 10000 > "$WORK/reload.md"
        cat "$WORK/reload.md" >&2
        continue
    fi
    if [[ $scenario == idle ]]; then
        for ((round = 1; round <= ROUNDS; round++)); do
            start_proxies plain
            for target in $(rotate "$round" "${targets[@]}"); do idle_measure "$target" "$round"; done
            stop_proxies
        done
        continue
    fi
    start_proxies "$scenario"
    for target in "${targets[@]}"; do  # idle RSS, then a short warm-up of each
        printf 'rss_idle\t%s\t%s\t%s\n' "$scenario" "$target" "$(rss_of "${PID_OF[$target]}")" >> "$WORK/idle.tsv"
        wrk -t1 -c"$CONNECTIONS" -d1s -H "x-user-id: $USER_KEY" "$(url_of "$scenario" "$target")" > /dev/null 2>&1 || true
    done
    for ((round = 1; round <= ROUNDS; round++)); do
        for target in $(rotate "$round" "${targets[@]}"); do measure "$scenario" "$target" "$round"; done
    done
    stop_proxies
    if [[ $scenario == log ]]; then  # each proxy really wrote its log
        lines() { if [[ -f "$1" ]]; then wc -l < "$1"; else echo 0; fi; }
        s_lines=$(grep -c '"strangler::access"' "$WORK/strangler-log.log" || true)
        echo "Access-log lines written: strangler ${s_lines:-0}, nginx $(lines "$WORK/nginx-access.log"), HAProxy $(lines "$WORK/haproxy-access.log")." | tee -a "$WORK/notes.md" >&2
        rm -f "$WORK/strangler-log.log" "$WORK/nginx-access.log" "$WORK/haproxy-access.log"
    fi
done

if [[ -n "${SAVE_RAW:-}" ]]; then
    mkdir -p "$SAVE_RAW" && cp "$TSV" "$WORK/idle.tsv" "$SAVE_RAW/" && { cp "$WORK/reload.md" "$WORK/notes.md" "$SAVE_RAW/" 2>/dev/null || true; }
fi
python3 "$ROOT/benches/summarize.py" "$TSV" "$WORK/idle.tsv" \
    --started "$STARTED" --command "$(printf 'ROUNDS=%s DURATION=%s RATE_DURATION=%s RATE=%s SCENARIOS=%s %s' "$ROUNDS" "$DURATION" "$RATE_DURATION" "$RATE" "$SCENARIOS" "$CMDLINE")" \
    --commit "$COMMIT" \
    --rate "$RATE" --connections "$CONNECTIONS" --rate-connections "$RATE_CONNECTIONS" \
    --extra "$WORK/reload.md" --notes "$WORK/notes.md" ${RESULTS:+--results "$RESULTS"}
