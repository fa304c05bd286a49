#!/usr/bin/env bash
# Starts a static origin and an edge in front of it on loopback, with a few
# demo files, until Ctrl-C: the smallest setup. (The whole multi-region CDN
# is `cargo run --release -- cluster up`.)
#
#   scripts/demo.sh            # origin on 127.0.0.1:9000, edge on 127.0.0.1:8080, admin on 127.0.0.1:9080
#   then: curl -sI http://127.0.0.1:8080/index.html   (twice: fwd=miss, then hit)
set -euo pipefail
cd "$(dirname "$0")/.."
ORIGIN=${ORIGIN:-127.0.0.1:9000}
EDGE=${EDGE:-127.0.0.1:8080}
ADMIN=${ADMIN:-127.0.0.1:9080}

cargo build --release --quiet
BIN=${CARGO_TARGET_DIR:-target}/release/meridian
WWW=$(mktemp -d -t meridian-www.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WWW"
}
trap cleanup EXIT INT TERM

mkdir -p "$WWW/img"
printf '<!doctype html><title>Meridian</title><h1>Served through a Meridian edge</h1>\n' > "$WWW/index.html"
head -c 1024 /dev/urandom > "$WWW/img/logo.png"
head -c 1048576 /dev/urandom > "$WWW/big.bin"

"$BIN" origin --listen "$ORIGIN" --root "$WWW" --cache-control 'public, max-age=60' &
pids+=($!)
"$BIN" edge --listen "$EDGE" --upstream "http://$ORIGIN" --admin-listen "$ADMIN" --name edge-1 --region local &
pids+=($!)
sleep 0.5
cat <<MSG

  origin  http://$ORIGIN   (files in $WWW)
  edge    http://$EDGE     admin http://$ADMIN/stats

  try:  curl -sI http://$EDGE/index.html      # twice: Cache-Status fwd=miss, then hit
        curl -s  http://$ADMIN/stats
  Ctrl-C stops both.
MSG
wait
