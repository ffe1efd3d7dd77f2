#!/usr/bin/env bash
# Quick start, command 2: install what is missing, build, run every test (ctest), run every test
# again under ASan + UBSan (scripts/run-sanitizers.sh), then each fuzz target for 30 s
# (scripts/run-fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
cmake --preset default >/dev/null
cmake --build --preset default -j"$(nproc)"
ctest --preset default
bash scripts/run-sanitizers.sh
bash scripts/run-fuzz.sh 30
