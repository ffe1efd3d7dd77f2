#!/usr/bin/env bash
# Quick start, command 1: install what is missing, build, run the main job (streamrec demo).
# Arguments go to `streamrec demo` (default: --events 200000; none of them: see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset default >/dev/null
cmake --build --preset default -j"$(nproc)"
# Without arguments: process 200,000 events through the embedded Kafka, print, exit.
if [ $# -eq 0 ]; then set -- --events 200000; fi
exec ./build/streamrec demo "$@"
