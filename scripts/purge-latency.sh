#!/usr/bin/env bash
# Cluster purge latency: from `meridian purge` sending a purge to the last
# node's confirmation, on a local cluster of separate processes: an origin,
# SHIELDS shields and EDGES edges (10 nodes by default), all following the
# purge log, plus the director keeping it (http) or a JetStream server (nats).
# Two figures, each over REPEAT purges, median, p99, min and max; every node
# must confirm every purge:
#   - in one process: `meridian purge --repeat N` times each publish call;
#   - per command: N separate `meridian purge` runs, timed from the start of
#     the process to its exit (so including process start and reading the
#     cluster file).
#
# Usage: scripts/purge-latency.sh [http|nats]     (default http)
#
# Environment (defaults in brackets):
#   REPEAT [100]  SHIELDS [2]  EDGES [8]  BASE_PORT [19100]
#   MERIDIAN_BIN  the binary to run [builds target/release/meridian]
#   NATS_SERVER   [nats-server] for the nats backend (nats-server -js)
#   KEEP_TMP=1    keeps the temp dir (logs, state)
set -euo pipefail
{
BACKEND=${1:-http}
REPEAT=${REPEAT:-100}
SHIELDS=${SHIELDS:-2}
EDGES=${EDGES:-8}
BASE_PORT=${BASE_PORT:-19100}
NATS_SERVER=${NATS_SERVER:-nats-server}
cd "$(dirname "$0")/.."
case "$BACKEND" in
  http | nats) ;;
  *) echo "usage: $0 [http|nats]" >&2; exit 2 ;;
esac
if [[ -z "${MERIDIAN_BIN:-}" ]]; then
  cargo build --release --quiet --bin meridian
  MERIDIAN_BIN=target/release/meridian
fi
BIN=$(realpath "$MERIDIAN_BIN")
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n "${KEEP_TMP:-}" ]]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT INT TERM
export MERIDIAN_ADMIN_TOKEN=purge-latency-token-0123456789
export NO_COLOR=1

port() { echo $((BASE_PORT + $1)); }
start() { # name, args...
  local name=$1; shift
  "$BIN" "$@" >"$TMP/$name.log" 2>&1 &
  PIDS+=($!)
}
wait_http() { # url
  for _ in $(seq 1 200); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "not answering: $1" >&2; exit 1
}

ORIGIN=$(port 0)
DIRECTOR=$(port 1)
DIRECTOR_ADMIN=$(port 2)
NATS=$(port 3)
mkdir -p "$TMP/www"
echo hello >"$TMP/www/page.txt"
start origin origin --listen "127.0.0.1:$ORIGIN" --root "$TMP/www" --cache-control "public, max-age=3600"

if [[ $BACKEND == nats ]]; then
  command -v "$NATS_SERVER" >/dev/null || { echo "$NATS_SERVER is not installed" >&2; exit 1; }
  "$NATS_SERVER" -js -sd "$TMP/jetstream" -a 127.0.0.1 -p "$NATS" >"$TMP/nats.log" 2>&1 &
  PIDS+=($!)
  LOG="nats://127.0.0.1:$NATS"
  PURGE_LOG=$'[purge-log]\n'"url = \"$LOG\""
else
  LOG="http://127.0.0.1:$DIRECTOR_ADMIN"
  PURGE_LOG=$'[purge-log]\n'"url = \"$LOG\""$'\nstate-dir = "'"$TMP/purge-state"'"'
fi

{
  echo '[director]'
  echo 'health-checks = "off"'
  for i in $(seq 1 "$EDGES"); do
    p=$(port $((40 + i)))
    printf '[[edge]]\nname = "edge-%d"\nregion = "local"\nurl = "http://127.0.0.1:%d"\nadmin = "http://127.0.0.1:%d"\nlatitude = 0\nlongitude = 0\n' \
      "$i" "$p" "$((p + 100))"
  done
  for i in $(seq 1 "$SHIELDS"); do
    p=$(port $((20 + i)))
    printf '[[shield]]\nname = "shield-%d"\nurl = "http://127.0.0.1:%d"\nadmin = "http://127.0.0.1:%d"\n' \
      "$i" "$p" "$((p + 100))"
  done
  echo "$PURGE_LOG"
} >"$TMP/cluster.toml"

if [[ $BACKEND == http ]]; then
  start director director --config "$TMP/cluster.toml" --listen "127.0.0.1:$DIRECTOR" \
    --admin-listen "127.0.0.1:$DIRECTOR_ADMIN"
  wait_http "http://127.0.0.1:$DIRECTOR_ADMIN/healthz"
else
  sleep 1
fi

UPSTREAMS=()
for i in $(seq 1 "$SHIELDS"); do
  p=$(port $((20 + i)))
  start "shield-$i" shield --name "shield-$i" --listen "127.0.0.1:$p" --admin-listen "127.0.0.1:$((p + 100))" \
    --origin "http://127.0.0.1:$ORIGIN" --health-interval 0s --control "$LOG" --workers 1
  UPSTREAMS+=(--upstream "http://127.0.0.1:$p")
done
for i in $(seq 1 "$EDGES"); do
  p=$(port $((40 + i)))
  start "edge-$i" edge --name "edge-$i" --listen "127.0.0.1:$p" --admin-listen "127.0.0.1:$((p + 100))" \
    "${UPSTREAMS[@]}" --control "$LOG" --workers 1
done
for i in $(seq 1 "$SHIELDS"); do wait_http "http://127.0.0.1:$(($(port $((20 + i))) + 100))/healthz"; done
for i in $(seq 1 "$EDGES"); do wait_http "http://127.0.0.1:$(($(port $((40 + i))) + 100))/healthz"; done

# Every node has reached the log (a purge answered by all of them).
for _ in $(seq 1 100); do
  "$BIN" purge --config "$TMP/cluster.toml" --url http://cdn.test/warmup --deadline 1s >/dev/null 2>&1 && break
  sleep 0.1
done

echo "backend $BACKEND: $SHIELDS shields + $EDGES edges, $REPEAT purges, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo -n "in one process: "
"$BIN" purge --config "$TMP/cluster.toml" --url http://cdn.test/page.txt --repeat "$REPEAT" --deadline 5s | tail -n 1
: >"$TMP/times"
for _ in $(seq 1 "$REPEAT"); do
  t0=$(date +%s%N)
  "$BIN" purge --config "$TMP/cluster.toml" --url http://cdn.test/page.txt --deadline 5s >/dev/null
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000)) >>"$TMP/times"
done
echo -n "per command:    "
sort -n "$TMP/times" | awk '{ t[NR] = $1 } END {
  p = int(0.99 * NR); if (p < 0.99 * NR) p++; m = int(0.5 * NR); if (m < 0.5 * NR) m++
  printf "%d purges: median %.1f ms, p99 %.1f ms, min %.1f ms, max %.1f ms\n", NR, t[m] / 1000, t[p] / 1000, t[1] / 1000, t[NR] / 1000
}'
}
