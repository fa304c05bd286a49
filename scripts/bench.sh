#!/usr/bin/env bash
# Meridian vs nginx proxy_cache vs Varnish, side by side on one core each.
#
# Usage: scripts/bench.sh            (as root on Debian/Ubuntu; not part of CI)
#
# Installs nginx, varnish and wrk with apt-get when they are missing (after
# `apt-get update`), builds `meridian` in release mode, starts a static
# origin (`meridian origin`) on loopback and, in front of it, the Meridian
# edge, nginx (proxy_cache, proxy_cache_lock on) and Varnish (default VCL,
# malloc storage). Every server is pinned to SERVER_CPU; wrk, the Python
# clients and the origins are pinned to CLIENT_CPUS. Scenarios run in
# interleaved rounds (Meridian, nginx, Varnish, then again). Everything it
# started is stopped on exit, also on Ctrl-C. See docs/benchmarks.md.
#
# Environment (defaults in brackets):
#   ROUNDS [5]  DURATION [10] seconds per measured run  CONNECTIONS [64]
#   QUICK=1     2 rounds x 3 s, 20,000 objects in the memory scenario,
#               miss_memory clients stay 15 s and memory is read 15 s later
#   SCENARIOS   [hit_1k hit_100k hit_1m hotset_10k hit_1k_html hit_1k_br
#                h2_hit_1k miss_storm miss_stream memory miss_memory]
#               hit_1k_html / hit_1k_br: one compressible 1 KiB HTML page,
#               asked without Accept-Encoding (identity) / with
#               `Accept-Encoding: br` (Meridian serves its stored br form)
#   H2_CONNECTIONS [8]  H2_STREAMS [64]  h2_hit_1k: h2load connections and
#               streams per connection (-c, -m), h2c with prior knowledge
#               against Meridian and nginx (Varnish has no h2 here)
#               TLS scenarios (Meridian and nginx; Varnish has no TLS): both
#               serve the same ECDSA P-256 certificate, TLS 1.3 only:
#               tls_hit_1k / tls_hotset_10k: wrk over HTTPS keep-alive;
#               tls_h2_hit_1k: h2load over TLS (ALPN h2), as h2_hit_1k;
#               tls_new_full / tls_new_resumed: new TLS connections per
#               second, one GET each (crates/proxy/examples/tls_load.rs,
#               TLS_CONNS [32] at once), full handshakes / resumed sessions
#   SERVERS     [meridian nginx varnish]
#   SERVER_CPU [0]  CLIENT_CPUS [1, or 1-(nproc-1)]
#   SERVER_CPU_QUOTA [off]  percent of SERVER_CPU each server may use
#               (a cgroup v1 `cpu` controller per server, CFS quota): with
#               large bodies wrk's own core is the bottleneck, and a quota
#               makes the server the bottleneck again, so req/s compares
#               servers rather than the load generator (docs/benchmarks.md)
#   MEM_OBJECTS [100000]  STORM_CLIENTS [200]  STORM_DELAY_MS [500]
#   STREAM_MIB [16]  STREAM_RATE [8MiB]  STREAM_WAITERS [10]
#   STREAM_SPREAD_MS [50-200]  STREAM_ORIGIN_DELAY_MS [0]
#   MM_CLIENTS [40]  MM_MB [60]  MM_READ_RATE [262144] bytes/s per client
#   MM_HOLD_S [30]  MM_SETTLE_S [60]  MM_SERVERS [$SERVERS]
#   BASE_PORT [18100]     MERIDIAN_BIN (skip the build and use this binary)
#   ORIGIN_BIN [the meridian binary] runs `origin` (miss_stream needs --rate)
#   COMPARE_BIN  a second meridian binary, measured as server `meridian-b`
#               in the same interleaved rounds (before/after in one run)
#   NGINX_OPEN_FILE_CACHE [1] nginx keeps cached files open (0: stock config)
#   OUT [scripts/bench-results/latest.json]  KEEP_TMP=1 keeps the temp dir
#   UPDATE_DOC=docs/benchmarks.md  also puts the report between that file's
#               <!-- bench-table-start --> and <!-- bench-table-end --> markers
#   TLS_LOAD_BIN  the tls_load example binary (skips building it)
set -euo pipefail
# The whole script is one compound command, parsed before it runs, so editing
# this file while a benchmark is running cannot derail that run.
{

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPTS="$REPO/scripts"

if [[ ${QUICK:-0} == 1 ]]; then
    ROUNDS=${ROUNDS:-2}
    DURATION=${DURATION:-3}
    MEM_OBJECTS=${MEM_OBJECTS:-20000}
    MM_HOLD_S=${MM_HOLD_S:-15}
    MM_SETTLE_S=${MM_SETTLE_S:-15}
fi
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
MEM_OBJECTS=${MEM_OBJECTS:-100000}
STORM_CLIENTS=${STORM_CLIENTS:-200}
STORM_DELAY_MS=${STORM_DELAY_MS:-500}
SCENARIOS=${SCENARIOS:-"hit_1k hit_100k hit_1m hotset_10k hit_1k_html hit_1k_br h2_hit_1k tls_hit_1k tls_hotset_10k tls_h2_hit_1k tls_new_full tls_new_resumed miss_storm miss_stream memory miss_memory"}
TLS_CONNS=${TLS_CONNS:-32}
H2_CONNECTIONS=${H2_CONNECTIONS:-8}
H2_STREAMS=${H2_STREAMS:-64}
if [[ -n ${COMPARE_BIN:-} ]]; then
    SERVERS=${SERVERS:-"meridian meridian-b nginx varnish"}
else
    SERVERS=${SERVERS:-"meridian nginx varnish"}
fi
STREAM_MIB=${STREAM_MIB:-16}
STREAM_RATE=${STREAM_RATE:-8MiB}
STREAM_WAITERS=${STREAM_WAITERS:-10}
STREAM_SPREAD_MS=${STREAM_SPREAD_MS:-50-200}
STREAM_ORIGIN_DELAY_MS=${STREAM_ORIGIN_DELAY_MS:-0}
MM_CLIENTS=${MM_CLIENTS:-40}
MM_MB=${MM_MB:-60}
MM_READ_RATE=${MM_READ_RATE:-262144}
MM_HOLD_S=${MM_HOLD_S:-30}
MM_SETTLE_S=${MM_SETTLE_S:-60}
MM_SERVERS=${MM_SERVERS:-$SERVERS}
BASE_PORT=${BASE_PORT:-18100}
NGINX_OPEN_FILE_CACHE=${NGINX_OPEN_FILE_CACHE:-1}
OUT=${OUT:-"$REPO/scripts/bench-results/latest.json"}
HOTSET_N=10000

NCPU=$(nproc)
SERVER_CPU=${SERVER_CPU:-0}
if [[ -z ${CLIENT_CPUS:-} ]]; then
    if ((NCPU > 2)); then CLIENT_CPUS="1-$((NCPU - 1))"; else CLIENT_CPUS=1; fi
fi
if ((NCPU < 2)); then
    echo "bench: needs at least 2 cores (one for the servers, one for the load generator)" >&2
    exit 1
fi
# One wrk thread per client core.
WRK_THREADS=$(taskset -c "$CLIENT_CPUS" nproc)

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

SERVER_CPU_QUOTA=${SERVER_CPU_QUOTA:-}
CGROUP_CPU=/sys/fs/cgroup/cpu
if [[ -n $SERVER_CPU_QUOTA ]]; then
    [[ $SERVER_CPU_QUOTA =~ ^[0-9]+$ ]] && ((SERVER_CPU_QUOTA >= 5 && SERVER_CPU_QUOTA <= 100)) ||
        die "SERVER_CPU_QUOTA must be a percent from 5 to 100, not '$SERVER_CPU_QUOTA'"
    [[ -w $CGROUP_CPU/cgroup.procs ]] ||
        die "SERVER_CPU_QUOTA needs a writable cgroup v1 cpu controller at $CGROUP_CPU"
fi

# ---------------------------------------------------------------- prerequisites
need_install=()
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need_install+=(nginx)
command -v varnishd >/dev/null || [[ -x /usr/sbin/varnishd ]] || need_install+=(varnish)
command -v wrk >/dev/null || need_install+=(wrk)
if [[ " $SCENARIOS " == *" h2_hit_1k "* || " $SCENARIOS " == *" tls_h2_hit_1k "* ]]; then
    command -v h2load >/dev/null || need_install+=(nghttp2-client)
fi
if [[ " $SCENARIOS " == *" tls_"* ]]; then
    command -v openssl >/dev/null || need_install+=(openssl)
fi
command -v taskset >/dev/null || need_install+=(util-linux)
command -v curl >/dev/null || need_install+=(curl)
command -v python3 >/dev/null || need_install+=(python3)
if ((${#need_install[@]})); then
    ((EUID == 0)) || die "missing ${need_install[*]}; run as root or install them"
    log "installing ${need_install[*]} (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_install[@]}" >/dev/null
    # Debian may start the packaged services; this benchmark never uses them.
fi
PATH="$PATH:/usr/sbin:/sbin"

# The revision built (dirty: the working tree has uncommitted changes).
MERIDIAN_REV=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)
if [[ -n ${MERIDIAN_BIN:-} ]]; then
    MERIDIAN=$MERIDIAN_BIN
    MERIDIAN_REV="binary $MERIDIAN_BIN"
else
    log "building meridian (cargo build --release)"
    (cd "$REPO" && cargo build --release --quiet --bin meridian)
    MERIDIAN="${CARGO_TARGET_DIR:-$REPO/target}/release/meridian"
fi
[[ -x $MERIDIAN ]] || die "no meridian binary at $MERIDIAN"
has_tls() { [[ " $SCENARIOS " == *" tls_"* ]]; }
TLS_LOAD=""
if [[ " $SCENARIOS " == *" tls_new_"* ]]; then
    if [[ -n ${TLS_LOAD_BIN:-} ]]; then
        TLS_LOAD=$TLS_LOAD_BIN
    else
        log "building the TLS handshake load generator (example tls_load)"
        (cd "$REPO" && cargo build --release --quiet -p meridian-proxy --example tls_load)
        TLS_LOAD="${CARGO_TARGET_DIR:-$REPO/target}/release/examples/tls_load"
    fi
    [[ -x $TLS_LOAD ]] || die "no tls_load binary at $TLS_LOAD"
fi
# The origins can come from another build than the edge under test (an
# older edge binary may predate `origin --rate`).
ORIGIN_BIN=${ORIGIN_BIN:-$MERIDIAN}
[[ -x $ORIGIN_BIN ]] || die "no origin binary at $ORIGIN_BIN"
if [[ " $SERVERS " == *" meridian-b "* ]]; then
    [[ -x ${COMPARE_BIN:-} ]] || die "server meridian-b needs COMPARE_BIN=<a meridian binary>"
fi

has_scenario() { [[ " $SCENARIOS " == *" $1 "* ]]; }

if has_scenario miss_stream && ! "$ORIGIN_BIN" origin --help 2>/dev/null | grep -q -- '--rate'; then
    die "$ORIGIN_BIN origin has no --rate (miss_stream needs it): set ORIGIN_BIN to a newer meridian"
fi

ulimit -n 65536 2>/dev/null || true

# ------------------------------------------------------------ process control
TMP=$(mktemp -d /tmp/meridian-bench.XXXXXX)
chmod 755 "$TMP"
PIDS=()

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    local cg
    if ((${#PIDS[@]})); then
        log "stopping ${#PIDS[@]} processes"
        for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
        for _ in $(seq 50); do
            local alive=0
            for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
            ((alive)) || break
            sleep 0.1
        done
        for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
        wait 2>/dev/null || true
    fi
    for cg in "$CGROUP_CPU"/meridian-bench-$$-*; do [[ -d $cg ]] && rmdir "$cg" 2>/dev/null; done
    if [[ ${KEEP_TMP:-0} == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # port pid name
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        kill -0 "$2" 2>/dev/null || die "$3 exited at start; see $TMP/$3.log"
        sleep 0.1
    done
    die "$3 did not listen on port $1 within 10 s; see $TMP/$3.log"
}

# start NAME PORT CPUS CMD...: runs CMD pinned to CPUS, logs to $TMP/NAME.log.
start() {
    local name=$1 port=$2 cpus=$3
    shift 3
    port_free "$port" || die "port $port is taken (set BASE_PORT)"
    taskset -c "$cpus" "$@" >"$TMP/$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    eval "PID_${name//-/_}=$pid"
    wait_port "$port" "$pid" "$name"
    if [[ -n $SERVER_CPU_QUOTA && $cpus == "$SERVER_CPU" ]]; then limit_cpu "$name" "$pid"; fi
}

# limit_cpu NAME PID: NAME's whole process tree (nginx and Varnish fork their
# workers at start, before the port answers) into a cgroup of its own that
# may use SERVER_CPU_QUOTA percent of one CPU.
limit_cpu() {
    local cg="$CGROUP_CPU/meridian-bench-$$-$1" p
    mkdir -p "$cg"
    echo 100000 >"$cg/cpu.cfs_period_us"
    echo $((SERVER_CPU_QUOTA * 1000)) >"$cg/cpu.cfs_quota_us"
    for p in $(tree "$2"); do echo "$p" >"$cg/cgroup.procs"; done
}

pid_of() { local v="PID_${1//-/_}"; echo "${!v}"; }

# stop NAME: ends a process started by `start` (and waits up to 10 s), so a
# scenario's instance does not hold memory through the next one.
stop() {
    local pid p keep=()
    pid=$(pid_of "$1")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# A process and all its descendants (nginx workers, the varnish cache child).
tree() {
    local p
    echo "$1"
    for p in $(ps -o pid= --ppid "$1" 2>/dev/null); do tree "$p"; done
}

# utime + stime (clock ticks) summed over a process tree, from /proc.
cpu_ticks() {
    local total=0 p s rest
    for p in $(tree "$1"); do
        s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        rest=${s##*) }
        read -ra f <<<"$rest"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

CLK_TCK=$(getconf CLK_TCK)

# ------------------------------------------------------------------ test data
P_ORIGIN=$BASE_PORT
P_SLOW=$((BASE_PORT + 1))
P_STREAM_ORIGIN=$((BASE_PORT + 2))
declare -A PORT STORM_PORT STREAM_PORT MM_PORT
PORT[meridian]=$((BASE_PORT + 10))
P_ADMIN=$((BASE_PORT + 11))
STORM_PORT[meridian]=$((BASE_PORT + 12))
P_MEM=$((BASE_PORT + 13))
P_MEM_ADMIN=$((BASE_PORT + 14))
STREAM_PORT[meridian]=$((BASE_PORT + 15))
MM_PORT[meridian]=$((BASE_PORT + 16))
P_MM_ADMIN=$((BASE_PORT + 17))
PORT[meridian-b]=$((BASE_PORT + 40))
STORM_PORT[meridian-b]=$((BASE_PORT + 42))
STREAM_PORT[meridian-b]=$((BASE_PORT + 45))
MM_PORT[meridian-b]=$((BASE_PORT + 46))
P_MM_ADMIN_B=$((BASE_PORT + 47))
PORT[nginx]=$((BASE_PORT + 20))
# HTTP/2 (h2c, prior knowledge): Meridian's plain listener speaks both
# protocols; nginx 1.22 needs a listener of its own (`listen ... http2`).
# An HTTPS variant adds a TLS port per server and a scheme here.
declare -A H2_PORT
H2_PORT[meridian]=${PORT[meridian]}
H2_PORT[meridian-b]=${PORT[meridian-b]}
H2_PORT[nginx]=$((BASE_PORT + 21))
STORM_PORT[nginx]=$((BASE_PORT + 22))
STREAM_PORT[nginx]=$((BASE_PORT + 25))
MM_PORT[nginx]=$((BASE_PORT + 26))
# HTTPS listeners (Meridian's main instance and nginx's; no Varnish).
declare -A TLS_PORT
TLS_PORT[meridian]=$((BASE_PORT + 18))
TLS_PORT[meridian-b]=$((BASE_PORT + 48))
TLS_PORT[nginx]=$((BASE_PORT + 28))
PORT[varnish]=$((BASE_PORT + 30))
STORM_PORT[varnish]=$((BASE_PORT + 32))
STREAM_PORT[varnish]=$((BASE_PORT + 35))
MM_PORT[varnish]=$((BASE_PORT + 36))

ROOT="$TMP/www"
log "generating test files in $ROOT"
stream_mib=0 mm_mb=0
has_scenario miss_stream && stream_mib=$STREAM_MIB
has_scenario miss_memory && mm_mb=$MM_MB
python3 - "$ROOT" "$HOTSET_N" "$MEM_OBJECTS" "$ROUNDS" "$stream_mib" "$mm_mb" <<'EOF'
import os, sys
root, hot, mem, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
stream_mib, mm_mb = int(sys.argv[5]), int(sys.argv[6])
for d in ("obj", "hot", "mem", "storm", "stream", "big"):
    os.makedirs(os.path.join(root, d), exist_ok=True)
def fill(n, seed):
    return bytes((seed + i * 7) % 251 for i in range(n))
for name, size in (("1k", 1024), ("100k", 100 * 1024), ("1m", 1024 * 1024)):
    open(os.path.join(root, "obj", name + ".bin"), "wb").write(fill(size, size))
# A compressible page (text/html by its name) for hit_1k_html / hit_1k_br.
page = b"".join(b"<p>line %04d of a page</p>\n" % i for i in range(64))[:1024]
open(os.path.join(root, "obj", "1k.html"), "wb").write(page)
kib = fill(1024, 1)
for i in range(hot):
    open(os.path.join(root, "hot", "f%05d.bin" % i), "wb").write(kib)
small = fill(100, 2)
for i in range(mem):
    open(os.path.join(root, "mem", "m%06d.bin" % i), "wb").write(small)
for r in range(1, rounds + 1):
    for s in ("meridian", "meridian-b", "nginx", "varnish"):
        open(os.path.join(root, "storm", "%s-r%d.bin" % (s, r)), "wb").write(kib)
# Random bytes, so a proxy that serves any wrong offset fails the hash check.
if stream_mib:
    base = os.path.join(root, "stream", "base.bin")
    with open(base, "wb") as f:
        for _ in range(stream_mib):
            f.write(os.urandom(1 << 20))
    # One name per server and round (hard links: no extra disk), so each
    # round is a cold miss everywhere.
    for r in range(1, rounds + 1):
        for s in ("meridian", "meridian-b", "nginx", "varnish"):
            os.link(base, os.path.join(root, "stream", "%s-r%d.bin" % (s, r)))
if mm_mb:
    with open(os.path.join(root, "big", "%dm.bin" % mm_mb), "wb") as f:
        for _ in range(mm_mb):
            f.write(os.urandom(1000 * 1000))
EOF

# One ECDSA P-256 certificate for every TLS server (the issue's setup).
TLS_DIR="$TMP/tls"
if has_tls; then
    mkdir -p "$TLS_DIR"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$TLS_DIR/key.pem" -out "$TLS_DIR/cert.pem" 2>/dev/null ||
        die "openssl could not make the test certificate"
fi

# ------------------------------------------------------------------ servers
CC_HEADER='public, max-age=3600'
log "starting origins on CPU $CLIENT_CPUS (:$P_ORIGIN, and :$P_SLOW with ${STORM_DELAY_MS} ms delay)"
# The origins log each request at debug level: the files count origin hits.
RUST_LOG=meridian_origin=debug NO_COLOR=1 start origin "$P_ORIGIN" "$CLIENT_CPUS" \
    "$ORIGIN_BIN" origin --listen "127.0.0.1:$P_ORIGIN" --root "$ROOT" --cache-control "$CC_HEADER"
RUST_LOG=meridian_origin=debug NO_COLOR=1 start origin-slow "$P_SLOW" "$CLIENT_CPUS" \
    "$ORIGIN_BIN" origin --listen "127.0.0.1:$P_SLOW" --root "$ROOT" --cache-control "$CC_HEADER" \
    --delay-ms "$STORM_DELAY_MS"
if has_scenario miss_stream; then
    log "starting the streaming origin (:$P_STREAM_ORIGIN, $STREAM_RATE/s per response, ${STREAM_ORIGIN_DELAY_MS} ms delay)"
    # It logs `origin first byte ... unix_us=` when each body starts.
    RUST_LOG=meridian_origin=debug NO_COLOR=1 start origin-stream "$P_STREAM_ORIGIN" "$CLIENT_CPUS" \
        "$ORIGIN_BIN" origin --listen "127.0.0.1:$P_STREAM_ORIGIN" --root "$ROOT" \
        --cache-control "$CC_HEADER" --rate "$STREAM_RATE" --delay-ms "$STREAM_ORIGIN_DELAY_MS"
fi

start_meridian() { # name port upstream-port [admin-port [tls-port]]; MERIDIAN_EXE overrides the binary
    local admin=() tls=()
    [[ -n ${4:-} ]] && admin=(--admin-listen "127.0.0.1:$4")
    [[ -n ${5:-} ]] && tls=(--tls-listen "127.0.0.1:$5" --tls-cert "$TLS_DIR/cert.pem" --tls-key "$TLS_DIR/key.pem")
    RUST_LOG=${MERIDIAN_LOG:-info} start "$1" "$2" "$SERVER_CPU" \
        "${MERIDIAN_EXE:-$MERIDIAN}" edge --listen "127.0.0.1:$2" --upstream "http://127.0.0.1:$3" \
        --workers 1 --name "$1" --cache-size 1GiB "${admin[@]}" "${tls[@]}"
}

start_nginx() { # name port upstream-port [h2c-port [tls-port]]
    local dir="$TMP/$1" ofc="" h2="" tls=""
    [[ -n ${4:-} ]] && h2="listen 127.0.0.1:$4 http2 backlog=4096;"
    # TLS as Meridian's: TLS 1.3, the same certificate, a session cache
    # and tickets for resumption (nginx's TLS 1.3 resumption uses tickets).
    [[ -n ${5:-} ]] && tls="listen 127.0.0.1:$5 ssl http2 backlog=4096;
        ssl_certificate $TLS_DIR/cert.pem;
        ssl_certificate_key $TLS_DIR/key.pem;
        ssl_protocols TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        ssl_session_tickets on;"
    mkdir -p "$dir/cache" "$dir/tmp"
    # Keep cached files' descriptors open, as a tuned proxy_cache does;
    # without it every hit costs open + fstat + close (NGINX_OPEN_FILE_CACHE=0).
    if [[ $NGINX_OPEN_FILE_CACHE == 1 ]]; then
        ofc="open_file_cache max=20000 inactive=60s; open_file_cache_valid 60s;"
    fi
    cat >"$dir/nginx.conf" <<EOF
user root;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush off;
    tcp_nodelay on;
    keepalive_timeout 65s;
    keepalive_requests 100000000;
    $ofc
    client_body_temp_path $dir/tmp/client;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    proxy_cache_path $dir/cache levels=1:2 keys_zone=bench:64m max_size=2g inactive=1h use_temp_path=off;
    upstream origin {
        server 127.0.0.1:$3;
        keepalive 32;
    }
    server {
        listen 127.0.0.1:$2 backlog=4096;
        $h2
        $tls
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache bench;
            proxy_cache_lock on;
            proxy_cache_valid 200 1h;
            add_header X-Cache-Status \$upstream_cache_status;
        }
    }
}
EOF
    start "$1" "$2" "$SERVER_CPU" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" \
        -g 'daemon off; master_process on;'
}

start_varnish() { # name port upstream-port
    local dir="$TMP/$1"
    mkdir -p "$dir"
    # Default VCL (-b), malloc storage, no management port, no privilege
    # separation jail (the work dir lives under a root-owned temp dir).
    start "$1" "$2" "$SERVER_CPU" varnishd -F -j none -n "$dir/work" -a "127.0.0.1:$2" \
        -b "127.0.0.1:$3" -s malloc,256m -T none
}

# start_server SERVER INSTANCE PORT UPSTREAM-PORT: the bench's setup of each.
start_server() {
    case $1 in
    meridian) start_meridian "$2" "$3" "$4" ;;
    meridian-b) MERIDIAN_EXE=$COMPARE_BIN start_meridian "$2" "$3" "$4" ;;
    nginx) start_nginx "$2" "$3" "$4" ;;
    varnish) start_varnish "$2" "$3" "$4" ;;
    *) die "unknown server $1" ;;
    esac
}

for s in $SERVERS; do
    log "starting $s on CPU $SERVER_CPU (:${PORT[$s]}, storm instance :${STORM_PORT[$s]})"
    case $s in
    meridian) start_meridian meridian "${PORT[meridian]}" "$P_ORIGIN" "$P_ADMIN" "$(has_tls && echo "${TLS_PORT[meridian]}")" ;;
    meridian-b) MERIDIAN_EXE=$COMPARE_BIN start_meridian meridian-b "${PORT[meridian-b]}" "$P_ORIGIN" "" \
        "$(has_tls && "$COMPARE_BIN" edge --help 2>/dev/null | grep -q -- --tls-listen && echo "${TLS_PORT[meridian-b]}")" ;;
    nginx) start_nginx nginx "${PORT[nginx]}" "$P_ORIGIN" "${H2_PORT[nginx]}" "$(has_tls && echo "${TLS_PORT[nginx]}")" ;;
    *) start_server "$s" "$s" "${PORT[$s]}" "$P_ORIGIN" ;;
    esac
    start_server "$s" "$s-storm" "${STORM_PORT[$s]}" "$P_SLOW"
    if has_scenario miss_stream; then
        log "  and its stream instance :${STREAM_PORT[$s]}"
        start_server "$s" "$s-stream" "${STREAM_PORT[$s]}" "$P_STREAM_ORIGIN"
    fi
done

client() { taskset -c "$CLIENT_CPUS" python3 "$SCRIPTS/bench_client.py" "$@"; }

origin_count() { # log-file [pattern]
    grep -c -- "${2:-origin request}" "$TMP/$1.log" || true
}

# Requests for one path in an origin's log (not its `first byte` lines).
origin_fetches() { # log-file path
    grep -- 'origin request' "$TMP/$1.log" | grep -cF -e "path=\"$2\"" -e "path=$2 " || true
}

# The wall clock (unix us) of the first body byte the origin sent for a
# path, the earliest if it was fetched more than once; "null" if none.
origin_first_byte() { # log-file path
    grep -- 'origin first byte' "$TMP/$1.log" | grep -F -e "path=\"$2\"" -e "path=$2 " |
        sed -n 's/.*unix_us=\([0-9]*\).*/\1/p' | sort -n | head -1 | grep . || echo null
}

# The cache indicator each server sets, to check that a warm object is a hit.
cache_indicator() { # server path
    curl -s -o /dev/null -D - "http://127.0.0.1:${PORT[$1]}$2" |
        tr -d '\r' | grep -iE '^(cache-status|x-cache-status|age|x-varnish):' | tr '\n' ' '
}

# ------------------------------------------------------------- warm-up
declare -A PATH_OF=([hit_1k]=/obj/1k.bin [hit_100k]=/obj/100k.bin [hit_1m]=/obj/1m.bin
    [hit_1k_html]=/obj/1k.html [hit_1k_br]=/obj/1k.html [tls_hit_1k]=/obj/1k.bin)
# Request headers a scenario sends (wrk -H, and the warm-up's curl).
declare -A HEADER_OF=([hit_1k_br]='Accept-Encoding: br')
# The servers measured over TLS: those whose HTTPS listener answers (an
# older COMPARE_BIN may predate TLS; Varnish has none here).
TLS_SERVERS=""
if has_tls; then
    for s in $SERVERS; do
        if [[ -n ${TLS_PORT[$s]:-} ]] && curl -skf -o /dev/null "https://127.0.0.1:${TLS_PORT[$s]}${PATH_OF[hit_1k]}"; then
            TLS_SERVERS+=" $s"
        else
            log "TLS scenarios: $s has no HTTPS listener here; not measured"
        fi
    done
fi

for s in $SERVERS; do
    log "warming $s: 3 objects and the $HOTSET_N-URL hot set"
    for sc in hit_1k hit_100k hit_1m; do
        curl -sf -o /dev/null "http://127.0.0.1:${PORT[$s]}${PATH_OF[$sc]}" || die "$s: GET ${PATH_OF[$sc]} failed"
    done
    for sc in hit_1k_html hit_1k_br; do
        has_scenario "$sc" || continue
        # Twice: the first fills identity, the second makes the br form.
        for _ in 1 2; do
            curl -sf -o /dev/null -H "${HEADER_OF[$sc]:-X-Bench: 1}" "http://127.0.0.1:${PORT[$s]}${PATH_OF[$sc]}" ||
                die "$s: GET ${PATH_OF[$sc]} failed"
        done
    done
    if has_scenario hotset_10k; then
        client load --port "${PORT[$s]}" --pattern '/hot/f%05d.bin' --count "$HOTSET_N" --conns 8 >"$TMP/warm-$s.json"
        log "  $(cat "$TMP/warm-$s.json")"
    fi
    # The scheme is in the cache key: HTTPS objects are filled on their own.
    if has_scenario tls_hotset_10k && [[ " $TLS_SERVERS " == *" $s "* ]]; then
        client load --tls --port "${TLS_PORT[$s]}" --pattern '/hot/f%05d.bin' --count "$HOTSET_N" --conns 8 >"$TMP/warm-tls-$s.json"
        log "  over TLS: $(cat "$TMP/warm-tls-$s.json")"
    fi
    sleep 0.5
    for sc in hit_1k hit_100k hit_1m; do
        log "  $s ${PATH_OF[$sc]}: $(cache_indicator "$s" "${PATH_OF[$sc]}")"
    done
done

# ------------------------------------------------------------- measurement
RUNS="$TMP/runs.jsonl"
: >"$RUNS"

# The servers measured over HTTP/2: those whose h2 URL answers (an older
# COMPARE_BIN may predate h2c). Varnish has no h2 listener here.
H2_SERVERS=""
if has_scenario h2_hit_1k; then
    for s in $SERVERS; do
        if [[ -n ${H2_PORT[$s]:-} ]] &&
            h2load -n 1 -c 1 "http://127.0.0.1:${H2_PORT[$s]}${PATH_OF[hit_1k]}" 2>/dev/null |
            grep -q '^requests: 1 total.* 1 succeeded'; then
            H2_SERVERS+=" $s"
        else
            log "h2_hit_1k: $s does not speak h2c here; not measured"
        fi
    done
fi

TLS_H2_SERVERS=""
if has_scenario tls_h2_hit_1k; then
    for s in $TLS_SERVERS; do
        if h2load -n 1 -c 1 "https://127.0.0.1:${TLS_PORT[$s]}${PATH_OF[hit_1k]}" 2>/dev/null |
            grep -q '^requests: 1 total.* 1 succeeded'; then
            TLS_H2_SERVERS+=" $s"
        else
            log "tls_h2_hit_1k: $s does not negotiate h2 here; not measured"
        fi
    done
fi

# h2load's summary and per-request log (start, status, microseconds) as
# the JSON line report.lua prints for wrk, so the report treats both alike.
h2load_json() { # stdout-file log-file duration-s
    python3 - "$1" "$2" "$3" <<'PY'
import json, re, statistics, sys
out, log, dur = open(sys.argv[1]).read(), sys.argv[2], float(sys.argv[3])
def num(pat):
    m = re.search(pat, out)
    return int(m.group(1)) if m else 0
m = re.search(r"finished in ([0-9.]+)(m?s)", out)
secs = (float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)) if m else dur
lat = sorted(int(f[2]) for f in (l.split() for l in open(log)) if len(f) >= 3)
pct = lambda p: lat[min(len(lat) - 1, len(lat) * p // 100)] if lat else 0
print(json.dumps({
    "requests": num(r"(\d+) succeeded"),
    "duration_us": int(secs * 1e6),
    "bytes": num(r"traffic: .*?\((\d+)\) total"),
    "socket_errors": num(r"(\d+) errored") + num(r"(\d+) timeout") + num(r"(\d+) failed"),
    "non2xx": num(r"(\d+) 3xx") + num(r"(\d+) 4xx") + num(r"(\d+) 5xx"),
    "p50_us": pct(50), "p99_us": pct(99),
    "mean_us": round(statistics.fmean(lat), 1) if lat else 0,
    "tool": "h2load",
}))
PY
}

run_h2load() { # server scenario round
    local s=$1 sc=$2 r=$3 url pid t0 t1 o0 o1 json
    if [[ $sc == tls_* ]]; then
        url="https://127.0.0.1:${TLS_PORT[$s]}${PATH_OF[hit_1k]}"
    else
        url="http://127.0.0.1:${H2_PORT[$s]}${PATH_OF[hit_1k]}"
    fi
    pid=$(pid_of "$s")
    local h2=(h2load -t "$WRK_THREADS" -c "$H2_CONNECTIONS" -m "$H2_STREAMS")
    # One second unmeasured first, as for wrk.
    taskset -c "$CLIENT_CPUS" timeout 30 "${h2[@]}" -D 1 "$url" >/dev/null 2>&1 || true
    o0=$(origin_count origin)
    t0=$(cpu_ticks "$pid")
    taskset -c "$CLIENT_CPUS" timeout $((DURATION + 60)) "${h2[@]}" -D "$DURATION" \
        --log-file "$TMP/h2load.log" "$url" >"$TMP/h2load.out" 2>&1 ||
        log "h2load exited with an error: $(tail -3 "$TMP/h2load.out")"
    kill -0 "$pid" 2>/dev/null || die "$s exited during the $sc run; see $TMP/$s.log"
    t1=$(cpu_ticks "$pid")
    o1=$(origin_count origin)
    json=$(h2load_json "$TMP/h2load.out" "$TMP/h2load.log" "$DURATION")
    rm -f "$TMP/h2load.log"
    [[ -n $json ]] || { log "$s $sc: no h2load summary: $(cat "$TMP/h2load.out")"; return 0; }
    printf '{"kind":"wrk","scenario":"%s","server":"%s","round":%d,"cpu_ticks":%d,"clk_tck":%d,"origin_requests":%d,"wrk":%s}\n' \
        "$sc" "$s" "$r" "$((t1 - t0))" "$CLK_TCK" "$((o1 - o0))" "$json" >>"$RUNS"
    log "  $sc $s: $(python3 "$SCRIPTS/bench_report.py" --one "$(tail -1 "$RUNS")")"
}

run_wrk() { # server scenario round
    local s=$1 sc=$2 r=$3 url lua out t0 t1 o0 o1 pid hdr=()
    if [[ $sc == tls_* ]]; then
        url="https://127.0.0.1:${TLS_PORT[$s]}"
    else
        url="http://127.0.0.1:${PORT[$s]}"
    fi
    [[ -n ${HEADER_OF[$sc]:-} ]] && hdr=(-H "${HEADER_OF[$sc]}")
    if [[ $sc == *hotset_10k ]]; then
        lua="$SCRIPTS/bench-lua/hotset.lua"
        url+="/"
    else
        lua="$SCRIPTS/bench-lua/report.lua"
        url+="${PATH_OF[$sc]}"
    fi
    pid=$(pid_of "$s")
    # One second unmeasured first: connections up, caches warm.
    HOTSET_N=$HOTSET_N taskset -c "$CLIENT_CPUS" timeout 30 \
        wrk -t "$WRK_THREADS" -c "$CONNECTIONS" -d 1s "${hdr[@]}" -s "$lua" "$url" >/dev/null 2>&1 || true
    o0=$(origin_count origin)
    t0=$(cpu_ticks "$pid")
    out=$(HOTSET_N=$HOTSET_N taskset -c "$CLIENT_CPUS" timeout $((DURATION + 60)) \
        wrk -t "$WRK_THREADS" -c "$CONNECTIONS" -d "${DURATION}s" --latency "${hdr[@]}" -s "$lua" "$url" 2>&1) ||
        log "wrk exited with an error: $out"
    kill -0 "$pid" 2>/dev/null || die "$s exited during the $sc run; see $TMP/$s.log"
    t1=$(cpu_ticks "$pid")
    o1=$(origin_count origin)
    local json
    json=$(grep '^{"requests"' <<<"$out" | tail -1)
    [[ -n $json ]] || { log "$s $sc: no wrk summary: $out"; return 0; }
    printf '{"kind":"wrk","scenario":"%s","server":"%s","round":%d,"cpu_ticks":%d,"clk_tck":%d,"origin_requests":%d,"wrk":%s}\n' \
        "$sc" "$s" "$r" "$((t1 - t0))" "$CLK_TCK" "$((o1 - o0))" "$json" >>"$RUNS"
    log "  $sc $s: $(python3 "$SCRIPTS/bench_report.py" --one "$(tail -1 "$RUNS")")"
}

# New TLS connections per second, each with one GET (tls_load prints a
# wrk-shaped JSON line): the server's CPU per connection is the figure
# that matters when the load generator's core saturates first.
run_tls_load() { # server scenario round
    local s=$1 sc=$2 r=$3 pid t0 t1 o0 o1 json
    local cmd=("$TLS_LOAD" --addr "127.0.0.1:${TLS_PORT[$s]}" --path "${PATH_OF[hit_1k]}"
        --mode "${sc#tls_new_}" --conns "$TLS_CONNS")
    pid=$(pid_of "$s")
    # One second unmeasured first, as for wrk.
    taskset -c "$CLIENT_CPUS" timeout 30 "${cmd[@]}" --duration 1 >/dev/null 2>&1 || true
    o0=$(origin_count origin)
    t0=$(cpu_ticks "$pid")
    json=$(taskset -c "$CLIENT_CPUS" timeout $((DURATION + 30)) "${cmd[@]}" --duration "$DURATION" 2>&1 |
        grep '^{' | tail -1) || true
    kill -0 "$pid" 2>/dev/null || die "$s exited during the $sc run; see $TMP/$s.log"
    t1=$(cpu_ticks "$pid")
    o1=$(origin_count origin)
    [[ -n $json ]] || { log "$s $sc: no tls_load summary"; return 0; }
    printf '{"kind":"wrk","scenario":"%s","server":"%s","round":%d,"cpu_ticks":%d,"clk_tck":%d,"origin_requests":%d,"wrk":%s}\n' \
        "$sc" "$s" "$r" "$((t1 - t0))" "$CLK_TCK" "$((o1 - o0))" "$json" >>"$RUNS"
    log "  $sc $s: $(python3 "$SCRIPTS/bench_report.py" --one "$(tail -1 "$RUNS")")"
}

run_storm() { # server round
    local s=$1 r=$2 path token out o0 o1
    token="storm/$s-r$r.bin"
    path="/$token"
    o0=$(origin_count origin-slow "$token")
    out=$(client storm --port "${STORM_PORT[$s]}" --path "$path" --clients "$STORM_CLIENTS" --timeout 30)
    sleep 0.3
    o1=$(origin_count origin-slow "$token")
    printf '{"kind":"storm","scenario":"miss_storm","server":"%s","round":%d,"origin_requests":%d,"origin_delay_ms":%d,"storm":%s}\n' \
        "$s" "$r" "$((o1 - o0))" "$STORM_DELAY_MS" "$out" >>"$RUNS"
    log "  miss_storm $s: $(python3 "$SCRIPTS/bench_report.py" --one "$(tail -1 "$RUNS")")"
}

run_stream() { # server round
    local s=$1 r=$2 path out
    path="/stream/$s-r$r.bin"
    out=$(client stream --port "${STREAM_PORT[$s]}" --path "$path" --expect "$ROOT$path" \
        --waiters "$STREAM_WAITERS" --spread "$STREAM_SPREAD_MS" --timeout 120)
    sleep 0.3
    printf '{"kind":"stream","scenario":"miss_stream","server":"%s","round":%d,"origin_requests":%d,"origin_first_byte_us":%s,"rate":"%s","origin_delay_ms":%d,"stream":%s}\n' \
        "$s" "$r" "$(origin_fetches origin-stream "$path")" "$(origin_first_byte origin-stream "$path")" \
        "$STREAM_RATE" "$STREAM_ORIGIN_DELAY_MS" "$out" >>"$RUNS"
    log "  miss_stream $s: $(python3 "$SCRIPTS/bench_report.py" --one "$(tail -1 "$RUNS")")"
}

for r in $(seq "$ROUNDS"); do
    log "round $r of $ROUNDS"
    for sc in hit_1k hit_100k hit_1m hotset_10k hit_1k_html hit_1k_br; do
        has_scenario "$sc" || continue
        for s in $SERVERS; do run_wrk "$s" "$sc" "$r"; done
    done
    if has_scenario h2_hit_1k; then
        for s in $H2_SERVERS; do run_h2load "$s" h2_hit_1k "$r"; done
    fi
    for sc in tls_hit_1k tls_hotset_10k; do
        has_scenario "$sc" || continue
        for s in $TLS_SERVERS; do run_wrk "$s" "$sc" "$r"; done
    done
    if has_scenario tls_h2_hit_1k; then
        for s in $TLS_H2_SERVERS; do run_h2load "$s" tls_h2_hit_1k "$r"; done
    fi
    for sc in tls_new_full tls_new_resumed; do
        has_scenario "$sc" || continue
        for s in $TLS_SERVERS; do run_tls_load "$s" "$sc" "$r"; done
    done
    if has_scenario miss_storm; then
        for s in $SERVERS; do run_storm "$s" "$r"; done
    fi
    if has_scenario miss_stream; then
        for s in $SERVERS; do run_stream "$s" "$r"; done
    fi
done

# ------------------------------------------------------------- memory
if has_scenario memory; then
    log "memory: $MEM_OBJECTS objects of 100 bytes into a fresh Meridian edge"
    start_meridian meridian-mem "$P_MEM" "$P_ORIGIN" "$P_MEM_ADMIN"
    mpid=$(pid_of meridian-mem)
    # One request first, so buffers and the connection pool exist.
    curl -sf -o /dev/null "http://127.0.0.1:$P_MEM/obj/1k.bin"
    curl -sf -o /dev/null "http://127.0.0.1:$P_MEM_ADMIN/stats"
    sleep 0.5
    rss0=$(rss_kb "$mpid")
    stats0=$(curl -sf "http://127.0.0.1:$P_MEM_ADMIN/stats")
    load=$(client load --port "$P_MEM" --pattern '/mem/m%06d.bin' --count "$MEM_OBJECTS" --conns 16 --timeout 60)
    sleep 1
    stats1=$(curl -sf "http://127.0.0.1:$P_MEM_ADMIN/stats")
    rss1=$(rss_kb "$mpid")
    hdr=$(client headers --port "$P_ORIGIN" --path /mem/m000000.bin)
    printf '{"kind":"memory","scenario":"memory","server":"meridian","objects":%d,"rss0_kb":%d,"rss1_kb":%d,"load":%s,"stats0":%s,"stats1":%s,"origin_response":%s}\n' \
        "$MEM_OBJECTS" "$rss0" "$rss1" "$load" "$stats0" "$stats1" "$hdr" >>"$RUNS"
    log "  $(python3 "$SCRIPTS/bench_report.py" --one "$(tail -1 "$RUNS")")"
fi

# ------------------------------------------------------------- miss_memory
# Each server gets a fresh instance (Meridian with its default settings:
# no --cache-size, no --workers), stopped again afterwards so the next one
# starts on a quiet machine.
if has_scenario miss_memory; then
    for s in $MM_SERVERS; do
        log "miss_memory $s: $MM_CLIENTS clients, distinct ${MM_MB} MB misses, ${MM_READ_RATE} B/s each for ${MM_HOLD_S} s, then ${MM_SETTLE_S} s idle"
        name="$s-mm"
        admin=$P_MM_ADMIN exe=$MERIDIAN
        [[ $s == meridian-b ]] && admin=$P_MM_ADMIN_B exe=$COMPARE_BIN
        if [[ $s == meridian* ]]; then
            RUST_LOG=${MERIDIAN_LOG:-info} start "$name" "${MM_PORT[$s]}" "$SERVER_CPU" \
                "$exe" edge --listen "127.0.0.1:${MM_PORT[$s]}" --upstream "http://127.0.0.1:$P_ORIGIN" \
                --name "$name" --admin-listen "127.0.0.1:$admin"
        else
            start_server "$s" "$name" "${MM_PORT[$s]}" "$P_ORIGIN"
        fi
        curl -sf -o /dev/null "http://127.0.0.1:${MM_PORT[$s]}/obj/1k.bin" || die "$name: GET /obj/1k.bin failed"
        sleep 0.5
        o0=$(origin_count origin "big/${MM_MB}m.bin")
        out=$(client slow --port "${MM_PORT[$s]}" --pid "$(pid_of "$name")" \
            --pattern "/big/${MM_MB}m.bin?s=$s&c=%d" --clients "$MM_CLIENTS" \
            --read-rate "$MM_READ_RATE" --hold "$MM_HOLD_S" --settle "$MM_SETTLE_S")
        o1=$(origin_count origin "big/${MM_MB}m.bin")
        stats=null
        if [[ $s == meridian* ]]; then stats=$(curl -sf "http://127.0.0.1:$admin/stats" || echo null); fi
        kill -0 "$(pid_of "$name")" 2>/dev/null || log "  $name exited during the run; see $TMP/$name.log"
        printf '{"kind":"miss_memory","scenario":"miss_memory","server":"%s","object_bytes":%d,"origin_requests":%d,"stats":%s,"slow":%s}\n' \
            "$s" "$((MM_MB * 1000 * 1000))" "$((o1 - o0))" "$stats" "$out" >>"$RUNS"
        log "  $(python3 "$SCRIPTS/bench_report.py" --one "$(tail -1 "$RUNS")")"
        stop "$name"
    done
fi

# ------------------------------------------------------------- report
mkdir -p "$(dirname "$OUT")"
cpu_model=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
[[ -n $cpu_model ]] || cpu_model=$(lscpu 2>/dev/null | awk -F': *' '/Model name/ {print $2; exit}')
python3 "$SCRIPTS/bench_report.py" --runs "$RUNS" --out "$OUT" \
    --meta date="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --meta nproc="$NCPU" --meta cpu="$cpu_model" --meta kernel="$(uname -r)" \
    --meta server_cpu="$SERVER_CPU${SERVER_CPU_QUOTA:+ at most $SERVER_CPU_QUOTA%}" --meta client_cpus="$CLIENT_CPUS" \
    --meta nginx_open_file_cache="$NGINX_OPEN_FILE_CACHE" \
    --meta rounds="$ROUNDS" --meta duration_s="$DURATION" --meta connections="$CONNECTIONS" \
    --meta meridian="$MERIDIAN_REV" ${COMPARE_BIN:+--meta meridian_b="binary $COMPARE_BIN"} \
    --meta nginx="$(nginx -v 2>&1 | sed 's/^nginx version: //')" \
    --meta varnish="$(varnishd -V 2>&1 | head -1 | sed 's/^varnishd (\(.*\) revision.*/\1/')" \
    --meta wrk="$(wrk -v 2>&1 | head -1 | awk '{print $2}')" \
    ${H2_SERVERS:+--meta h2load="$(h2load --version 2>&1 | head -1 | awk '{print $2}'), -c $H2_CONNECTIONS -m $H2_STREAMS"} \
    ${TLS_SERVERS:+--meta tls="TLS 1.3, ECDSA P-256 (openssl $(openssl version | awk '{print $2}')), tls_load --conns $TLS_CONNS"} \
    ${UPDATE_DOC:+--doc "$UPDATE_DOC"}
log "results written to $OUT"
exit 0
}
