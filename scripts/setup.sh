#!/usr/bin/env bash
# Installs the Debian 12 packages streamrec builds and tests with. Idempotent: a package already
# installed is not touched, and apt is not called at all when nothing is missing.
# `--tests` adds what only the tests use: headless Chromium (renders the analyst report),
# Prometheus (a real server scrapes streamrec; promtool checks the alert rules) and
# docker-compose (validates docker-compose.yml; no Docker engine is needed for that), and
# clang-14 with its sanitizer runtimes and lld (the libFuzzer targets, scripts/run-fuzz.sh).
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  librdkafka-dev librocksdb-dev libeigen3-dev prometheus-cpp-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev libprotobuf-dev protobuf-compiler
  libyaml-cpp-dev libcli11-dev libsimdjson-dev zlib1g-dev libcpp-httplib-dev libjemalloc-dev
)
if [ "${1:-}" = "--tests" ]; then
  PACKAGES+=(chromium prometheus docker-compose clang-14 libclang-rt-14-dev lld-14)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
