#!/usr/bin/env bash
# Builds the libFuzzer targets (preset `fuzz`: clang-14, ASan + UBSan) and runs each for
# SECONDS (default 30) on a scratch copy of its seed corpus in fuzz/corpus/<target>/: the repo
# is never written to. Prints each target's executions; exits non-zero when a target finds a
# crash (sanitizer report, abort, timeout or out-of-memory), naming the saved input.
#   scripts/run-fuzz.sh          # CI: 30 s per target
#   scripts/run-fuzz.sh 600      # longer; or run a target by hand, see README "Fuzzing"
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
targets=(decoder_protobuf decoder_json decoder_csv config http_request)

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j"$(nproc)"

work="$(mktemp -d "${TMPDIR:-/tmp}/streamrec-fuzz.XXXXXX")"
failed=()
for t in "${targets[@]}"; do
  mkdir -p "$work/$t/corpus" "$work/$t/artifacts"
  cp -R "fuzz/corpus/$t/." "$work/$t/corpus/"
  args=(-max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$work/$t/artifacts/")
  if [ -f "fuzz/$t.dict" ]; then args+=(-dict="fuzz/$t.dict"); fi
  log="$work/$t/log"
  status=0
  "build-fuzz/fuzz/${t}_fuzz" "${args[@]}" "$work/$t/corpus" >"$log" 2>&1 || status=$?
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  corpus="$(find "$work/$t/corpus" -type f | wc -l)"
  if [ "$status" -eq 0 ]; then
    echo "fuzz: $t: ${execs:-?} executions in ${seconds}s, corpus $corpus inputs: ok"
  else
    echo "fuzz: $t: FAILED (exit $status) after ${execs:-?} executions"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz check failed)' "$log" | head -5 || true
    for input in "$work/$t/artifacts/"*; do
      [ -e "$input" ] && echo "fuzz: $t: crash input: $input (reproduce: build-fuzz/fuzz/${t}_fuzz $input)"
    done
    echo "fuzz: $t: full log: $log"
    failed+=("$t")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]} (inputs and logs kept in $work)"
  exit 1
fi
rm -rf "$work"
echo "fuzz: all ${#targets[@]} targets ran ${seconds}s without a crash"
