#!/usr/bin/env bash
# Builds the project with ThreadSanitizer (CMake option FRUGAL_TSAN) in TSAN_BUILD_DIR (default
# build-tsan) and runs the tests of the code that runs threads: the scheduler, the server, the
# speculative decoders, the cascade, the thread pool and the remote tiers (TSAN_TESTS, a ctest
# regex, chooses others). Any data race or lock-order report fails its test (TSan exits 66).
# Too slow for CI (tens of minutes on two cores); run it before each release, beside
# scripts/sanitize.sh. Usage: scripts/tsan.sh [CTEST ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
B="${TSAN_BUILD_DIR:-build-tsan}"
JOBS="${JOBS:-$(nproc)}"
TESTS="${TSAN_TESTS:-Sched|Server|Spec|ThreadPool|Cascade|Util|Remote}"
cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFRUGAL_TSAN=ON >/dev/null
cmake --build "$B" -j "$JOBS"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1}"
# The sampled speculative test draws thousands of sequences: 166 s in Release, past its 600 s
# limit under TSan. Its threads are the scheduler's, which the other Spec tests cover.
(cd "$B" && ctest --output-on-failure -j "$JOBS" -R "$TESTS" \
   -E "SampledSpeculationFollowsTheTargetsDistribution" "$@")
