#!/usr/bin/env bash
# Quick start, command 1: install what is missing, build, run the main job (streamrec demo).
# Extra arguments go to `streamrec demo` (e.g. --events 500000).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset default >/dev/null
cmake --build --preset default -j"$(nproc)"
exec ./build/streamrec demo "$@"
