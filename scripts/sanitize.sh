#!/usr/bin/env bash
# Builds the whole project with AddressSanitizer and UndefinedBehaviorSanitizer (CMake option
# FRUGAL_SANITIZE) in SANITIZE_BUILD_DIR (default build-asan) and runs the CTest suite there,
# so every test, and every frugal command the tests run, is checked for memory errors, leaks
# and undefined behaviour. Any report fails the run. Too slow for CI on two cores (see
# README, "Errors"): run it before each release. Usage: scripts/sanitize.sh [CTEST ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
B="${SANITIZE_BUILD_DIR:-build-asan}"
JOBS="${JOBS:-$(nproc)}"
cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFRUGAL_SANITIZE=ON >/dev/null
cmake --build "$B" -j "$JOBS"
# halt_on_error: a UBSan report ends the test (by default it prints and carries on).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
(cd "$B" && ctest --output-on-failure -j "$JOBS" "$@")
