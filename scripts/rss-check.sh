#!/usr/bin/env bash
# Does the edge give memory back? RSS of `meridian edge` while slow clients
# pull large misses, and after they have gone.
#
# Usage: scripts/rss-check.sh                      (builds the release binary)
#        BINS="system=/tmp/m-sys jemalloc=target/release/meridian" scripts/rss-check.sh
#
# Per run: a `meridian origin` serving one SIZE_MB file and a `meridian edge`
# with default settings (cache.size 256 MiB) start on loopback; CLIENTS
# clients (curl, each read-limited to RATE) ask at once for distinct query
# strings of the file, so every one is a separate miss, and hang up after
# HOLD seconds. Once the last client has left, the admin `/stats` is read:
# that reports the bytes the cache holds and runs the store's pending
# housekeeping (the moka store drops evicted bodies only then, and an idle
# node runs none). The edge's peak RSS (VmHWM), its RSS then, and AFTER
# seconds later are printed, then the median and the range over RUNS runs.
# What stays is the cache's bytes, what else the edge still holds, and what
# the allocator kept. Everything runs on 127.0.0.1, every wait is bounded,
# and all it started is stopped on exit.
#
# Environment (defaults in brackets):
#   BINS   [jemalloc=target/release/meridian, built first]  label=path ...
#   RUNS [3]  CLIENTS [40]  SIZE_MB [60]  RATE [256k]  HOLD [8] seconds
#   AFTER ["10 30 60"] seconds after the clients left  BASE_PORT [18300]
set -euo pipefail
{

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-3}
CLIENTS=${CLIENTS:-40}
SIZE_MB=${SIZE_MB:-60}
RATE=${RATE:-256k}
HOLD=${HOLD:-8}
AFTER=${AFTER:-"10 30 60"}
BASE_PORT=${BASE_PORT:-18300}
P_ORIGIN=$BASE_PORT
P_EDGE=$((BASE_PORT + 1))
P_ADMIN=$((BASE_PORT + 2))

log() { echo "rss-check: $*" >&2; }
die() {
    log "$*"
    exit 1
}

for tool in curl python3; do
    command -v "$tool" >/dev/null || die "needs $tool"
done

if [[ -z ${BINS:-} ]]; then
    log "building the release binary"
    (cd "$REPO" && cargo build --release --quiet --bin meridian)
    BINS="jemalloc=$REPO/target/release/meridian"
fi

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    local rc=$? p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

mkdir -p "$TMP/root"
head -c $((SIZE_MB * 1024 * 1024)) /dev/urandom >"$TMP/root/big.bin"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # port pid name
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        kill -0 "$2" 2>/dev/null || die "$3 exited at start; see $TMP/$3.log"
        sleep 0.1
    done
    die "$3 did not listen on port $1 within 10 s"
}

# start NAME PORT CMD...: sets $STARTED to the pid.
start() {
    local name=$1 port=$2
    shift 2
    port_free "$port" || die "port $port is taken (set BASE_PORT)"
    "$@" >"$TMP/$name.log" 2>&1 &
    STARTED=$!
    PIDS+=("$STARTED")
    wait_port "$port" "$STARTED" "$name"
}

stop() { # pid
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

mib() { # pid field: a /proc/PID/status field (kB) in MiB
    awk -v f="$2:" '$1 == f { printf "%d", $2 / 1024 }' "/proc/$1/status"
}

RESULTS="$TMP/results.tsv"
for run in $(seq "$RUNS"); do
    for spec in $BINS; do
        label=${spec%%=*}
        bin=${spec#*=}
        [[ -x $bin ]] || die "$label: $bin is not an executable"
        start origin "$P_ORIGIN" "$bin" origin --listen "127.0.0.1:$P_ORIGIN" \
            --root "$TMP/root" --cache-control 'public, max-age=3600'
        origin=$STARTED
        start edge "$P_EDGE" "$bin" edge --listen "127.0.0.1:$P_EDGE" \
            --upstream "http://127.0.0.1:$P_ORIGIN" --admin-listen "127.0.0.1:$P_ADMIN"
        edge=$STARTED
        idle=$(mib "$edge" VmRSS)
        clients=()
        for i in $(seq "$CLIENTS"); do
            curl -s -o /dev/null --limit-rate "$RATE" --max-time "$HOLD" \
                "http://127.0.0.1:$P_EDGE/big.bin?client=$run-$i" &
            clients+=($!)
        done
        for c in "${clients[@]}"; do wait "$c" || true; done
        kill -0 "$edge" 2>/dev/null || die "$label: the edge exited; see $TMP/edge.log"
        cached=$(curl -s --max-time 10 "http://127.0.0.1:$P_ADMIN/stats" |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["bytes"] >> 20)')
        row="$label	$run	$idle	$(mib "$edge" VmHWM)	$cached	$(mib "$edge" VmRSS)"
        waited=0
        for t in $AFTER; do
            sleep $((t - waited))
            waited=$t
            row+="	$(mib "$edge" VmRSS)"
        done
        echo "$row" >>"$RESULTS"
        log "$row"
        stop "$edge"
        stop "$origin"
    done
done

python3 - "$RESULTS" "$AFTER" "$CLIENTS" "$SIZE_MB" "$RATE" "$HOLD" <<'EOF'
import statistics, sys
path, after, clients, size, rate, hold = sys.argv[1:]
cols = ["idle", "peak", "cached", "left"] + ["+%ss" % t for t in after.split()]
rows = {}
for line in open(path):
    f = line.rstrip("\n").split("\t")
    rows.setdefault(f[0], []).append([int(x) for x in f[2:]])
print("%s clients x %s MiB misses, read at %s/s for %s s. MiB, median (min-max) "
      "over runs: edge RSS idle, at its peak, when the clients had left (left) and "
      "later; cached: what the cache held then." % (clients, size, rate, hold))
print()
print("| allocator | runs | " + " | ".join(cols) + " |")
print("|---|---|" + "---|" * len(cols))
for label, rs in rows.items():
    cells = []
    for i in range(len(cols)):
        v = [r[i] for r in rs]
        cells.append("%d (%d-%d)" % (statistics.median(v), min(v), max(v)))
    print("| %s | %d | %s |" % (label, len(rs), " | ".join(cells)))
EOF

}
