#!/usr/bin/env bash
# Runs every fuzz target for SECONDS seconds each (libFuzzer, built by `make fuzz-build`).
# New inputs go to a scratch copy of the corpus, never into the repository; a crash stops the run with the input's
# path: copy it into Tests/Fuzz/regressions/<target>/ so that `make test` replays it from then on. The regressions
# are replayed by the tests, not mutated here: they are large, and would slow every mutation down.
set -euo pipefail
seconds=${1:-300}
# A fixed seed (FUZZ_SEED, as `make test` sets it) makes a short run try the same inputs every time, so CI does not
# flip on a lucky mutation; `make fuzz` leaves it random to explore.
seed_option=()
[ -n "${FUZZ_SEED:-}" ] && seed_option=(-seed="$FUZZ_SEED")
root=$(cd "$(dirname "$0")/../.." && pwd)
binary="$root/.build-fuzz/debug/consentry-fuzz"
[ -x "$binary" ] || { echo "error: $binary is missing; run \`make fuzz-build\`" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
targets=(csv jsonl body yaml rule template)
for target in "${targets[@]}"; do
  mkdir -p "$work/$target"
  cp "$root/Tests/Fuzz/corpus/$target/"* "$work/$target/"
  # Swift's backtracer would take the crash signal first; with it off, libFuzzer writes the input that crashed.
  if ! SWIFT_BACKTRACE=enable=no CONSENTRY_FUZZ_TARGET=$target "$binary" "${seed_option[@]}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="$work/$target-" "$work/$target" \
      >"$work/$target.log" 2>&1; then
    tail -40 "$work/$target.log" >&2
    found=$(ls "$work/$target-"* 2>/dev/null | head -1 || true)
    kept="$root/.build-fuzz/findings"
    mkdir -p "$kept"
    [ -n "$found" ] && cp "$found" "$kept/" && echo "error: fuzz target \`$target\` failed; the input is in $kept/$(basename "$found"): add it to Tests/Fuzz/regressions/$target/" >&2
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$target.log" | grep -o '[0-9]*$' || echo "?")
  echo "fuzz $target: $runs inputs in ${seconds}s, no crash"
done
echo "fuzz: ${#targets[@]} targets, 0 crashes"
