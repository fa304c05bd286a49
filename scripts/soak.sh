#!/usr/bin/env bash
# The soak and chaos run (issue 13; not in CI): a `meridian cluster up
# --processes` cluster (every shield and edge its own process, so a kill is
# a real SIGKILL), driven by `meridian soak` for a bounded time with mixed
# traffic (hits, misses, every Accept-Encoding, ranges, If-None-Match,
# HEAD), purges of every kind, the origin slow and failing, each shield
# killed with SIGKILL and restarted, an edge stopped and started. Every body
# is compared with the origin's bytes; errors are put down to the fault that
# was on or counted as unexpected; RSS and descriptors of every process are
# sampled; every log is scanned for panics. Exit status 0: it passed.
# Method and figures: docs/reliability.md, "Soak and failover".
#
# Usage: scripts/soak.sh [--duration 10m] [more `meridian soak` flags]
#
# Environment (defaults in brackets):
#   MERIDIAN_BIN  the binary [builds target/release/meridian]
#   CONFIG        the cluster file [config/cluster.toml]; its ports must be
#                 free (the shipped file's: 8000, 8080, 81xx, 85xx, 8600, 9xxx)
#   KEEP_TMP=1    keeps the temp dir (cluster file, node logs, report) even
#                 when the run passed (it is kept anyway when it failed)
set -euo pipefail
{
cd "$(dirname "$0")/.."
DURATION=10m
ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --duration=*) DURATION=${1#--duration=}; shift ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
CONFIG=${CONFIG:-config/cluster.toml}
if [[ -z "${MERIDIAN_BIN:-}" ]]; then
  cargo build --release --quiet --bin meridian
  MERIDIAN_BIN=target/release/meridian
fi
BIN=$(realpath "$MERIDIAN_BIN")
TMP=$(mktemp -d -t meridian-soak.XXXXXX)
CLUSTER_PID=
RC=1
cleanup() {
  if [[ -n "$CLUSTER_PID" ]] && kill -0 "$CLUSTER_PID" 2>/dev/null; then
    kill -TERM "$CLUSTER_PID" 2>/dev/null || true
    for _ in $(seq 1 150); do # at most 15 s, then SIGKILL
      kill -0 "$CLUSTER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$CLUSTER_PID" 2>/dev/null || true
  fi
  # Children the cluster did not reap (it kills them on exit).
  for f in "$TMP"/state/nodes/*.pid; do
    [[ -e "$f" ]] && kill -KILL "$(cat "$f")" 2>/dev/null || true
  done
  if [[ "$RC" -eq 0 && -z "${KEEP_TMP:-}" ]]; then
    rm -rf "$TMP"
  else
    echo "soak: logs, cluster file and report kept in $TMP" >&2
  fi
}
trap cleanup EXIT INT TERM
export NO_COLOR=1

# The cluster file with its state (token, purge log, node configs, logs
# and pids) in the temp dir.
mkdir -p "$TMP/state"
awk -v dir="$TMP/state" '
  /^\[cluster\]/ { print; print "state-dir = \"" dir "\""; next }
  /^state-dir *=/ && !seen_other { next }
  /^\[/ { seen_other = 1 }
  { print }' "$CONFIG" > "$TMP/cluster.toml"

echo "soak: starting the cluster ($BIN cluster up --processes), logs in $TMP" >&2
"$BIN" cluster up --processes --config "$TMP/cluster.toml" >"$TMP/cluster.out" 2>"$TMP/cluster.log" &
CLUSTER_PID=$!
for i in $(seq 1 600); do # at most 60 s
  if grep -q "Dashboard" "$TMP/cluster.out" 2>/dev/null; then break; fi
  if ! kill -0 "$CLUSTER_PID" 2>/dev/null; then
    echo "soak: the cluster did not start:" >&2; tail -20 "$TMP/cluster.log" >&2; exit 1
  fi
  if [[ $i -eq 600 ]]; then echo "soak: the cluster did not start within 60 s" >&2; exit 1; fi
  sleep 0.1
done

set +e
"$BIN" soak --config "$TMP/cluster.toml" --duration "$DURATION" \
  --cluster-pid "$CLUSTER_PID" --log "$TMP/cluster.log" --json "$TMP/soak.json" \
  "${ARGS[@]}" | tee "$TMP/soak.txt"
RC=${PIPESTATUS[0]}
set -e
exit "$RC"
}
