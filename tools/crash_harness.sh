#!/usr/bin/env bash
# The crash harness (README, "Reliability"): `streamrec run` in its own process against the
# embedded Kafka cluster in another, SIGKILLed at N seeded points while a fixed stream arrives,
# restarted each time, then compared with an uninterrupted run of the same events. The last line
# is one JSON object: kills, digest_equal, model_equal, missing_versions, conflicting_versions, ...
# Exit status 0 when every check holds.
#
#   tools/crash_harness.sh [--kills N] [--seed S] [--events E] [--customers C]
#
# ctest runs the same harness (CrashHarnessTest) with 20 kills and seed 1.
set -euo pipefail
cd "$(dirname "$0")/.."

kills=20 seed=1 events=12000 customers=1500
while [ $# -gt 0 ]; do
  case "$1" in
    --kills) kills="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --events) events="$2"; shift 2 ;;
    --customers) customers="$2"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "crash_harness.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for n in "$kills" "$seed" "$events" "$customers"; do
  case "$n" in ''|*[!0-9]*) echo "crash_harness.sh: '$n' is not a non-negative integer" >&2; exit 2 ;; esac
done

if [ ! -f build/build.ninja ]; then cmake --preset default >/dev/null; fi
cmake --build --preset default --target streamrec streamrec_tests >&2

result="$(mktemp)"
trap 'rm -f "$result"' EXIT
status=0
STREAMREC_CRASH_KILLS="$kills" STREAMREC_CRASH_SEED="$seed" STREAMREC_CRASH_EVENTS="$events" \
STREAMREC_CRASH_CUSTOMERS="$customers" STREAMREC_CRASH_JSON="$result" \
  ./build/streamrec_tests --gtest_filter='CrashHarnessTest.*' >&2 || status=$?
if [ -s "$result" ]; then
  cat "$result"
else
  echo "{\"kills\":$kills,\"seed\":$seed,\"error\":\"the harness stopped before its checks (see above)\"}"
fi
exit "$status"
