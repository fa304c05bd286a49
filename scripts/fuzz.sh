#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time, one at a time
# (one core), and prints a line per target: seconds, executions, corpus
# size and whether it crashed. Not part of CI: it needs a nightly
# toolchain and `cargo install cargo-fuzz`. See docs/fuzzing.md.
#
#   scripts/fuzz.sh            # 180 s per target
#   scripts/fuzz.sh 60 range   # 60 s, only the `range` target
set -uo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-180}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build -O
printf '%-14s %6s %12s %8s %s\n' target seconds executions corpus result
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  log="$(mktemp)"
  # The committed seeds start the corpus; what the run adds stays in
  # fuzz/corpus/ (ignored by git).
  cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 >"$log" 2>&1
  rc=$?
  execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)"
  if [ -z "$execs" ]; then
    execs="$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')"
  fi
  result=ok
  [ $rc -ne 0 ] && result="crash (see $log, fuzz/artifacts/$t)"
  printf '%-14s %6s %12s %8s %s\n' "$t" "$secs" "${execs:-?}" "$(ls "corpus/$t" | wc -l)" "$result"
done
