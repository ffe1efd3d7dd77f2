#!/usr/bin/env bash
# Builds the library, the streamrec binary and the tests with AddressSanitizer (LeakSanitizer
# included) and UndefinedBehaviorSanitizer (preset `asan`: build-asan/, -O1) and runs the whole
# test suite on them (`ctest --preset asan`, whose environment sets the sanitizer options, the
# leak suppressions of .ci/lsan.supp and smaller workloads for the slowest tests). Prints a
# summary line; exits non-zero when a test fails or a sanitizer reports (a report fails the test
# that triggered it). Extra arguments go to ctest, e.g. `-R 'Outbox*'`.
set -euo pipefail
cd "$(dirname "$0")/.."

start=$(date +%s)
cmake --preset asan >/dev/null
cmake --build --preset asan -j"$(nproc)"
built=$(date +%s)

log="$(mktemp "${TMPDIR:-/tmp}/streamrec-asan-ctest.XXXXXX")"
status=0
# The two quality checks on the whole shared data set (a full Online Retail replay, an evaluation
# slice run twice) take 6 and 3 minutes here under the sanitizers (Eigen's kernels are not inlined
# under UBSan) against 10 and 40 s in the default build, which runs them; their code paths
# (replay, K-Means, evaluation) run under the sanitizers in the smaller tests. STREAMREC_ASAN_ALL=1
# runs them too.
exclude=()
if [ "${STREAMREC_ASAN_ALL:-0}" != 1 ]; then
  exclude=(-E 'KMeansSegmenterTest\.OnlineRetailReplayGivesPlausibleNamedSegments|EvaluationSharedDataTest\.BaselinesOnASliceAreSaneAndDeterministic')
fi
ctest --preset asan "${exclude[@]}" "$@" 2>&1 | tee "$log" || status=$?
done_at=$(date +%s)
result="$(grep -E 'tests passed|tests failed' "$log" | tail -1 || true)"
rm -f "$log"
echo "sanitizers: ASan+UBSan build $((built - start)) s, ctest $((done_at - built)) s: ${result:-no ctest summary}"
exit "$status"
