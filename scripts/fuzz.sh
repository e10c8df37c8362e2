#!/usr/bin/env bash
# Builds the GGUF parser fuzzer with clang-14 (libFuzzer + ASan + UBSan) in build-fuzz and runs
# it for SECONDS (default 30) from the committed seed corpus. Crashes land in build-fuzz/fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN="${1:-30}"
CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DFRUGAL_FUZZ=ON -DFRUGAL_TESTS=OFF >/dev/null
cmake --build build-fuzz --target gguf_fuzz
# The fuzzer adds what it finds to a scratch copy, never to the committed seeds.
WORK=build-fuzz/fuzz/corpus
mkdir -p "$WORK" build-fuzz/fuzz/artifacts
cp -n fuzz/corpus/gguf/* "$WORK"/ 2>/dev/null || true
build-fuzz/fuzz/gguf_fuzz -max_total_time="$SECONDS_TO_RUN" -max_len=8192 -rss_limit_mb=2048 \
  -artifact_prefix=build-fuzz/fuzz/artifacts/ -print_final_stats=1 "$WORK"
