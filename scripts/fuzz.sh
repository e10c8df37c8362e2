#!/usr/bin/env bash
# Builds the libFuzzer targets with clang-14 (libFuzzer + ASan + UBSan) in build-fuzz and runs
# each for SECONDS (default 30):
#   gguf_fuzz       GgufFile::parse over arbitrary bytes, from the committed seed corpus
#   tokenizer_fuzz  the SentencePiece and BPE tokenizers over arbitrary text (vocab fixtures
#                   from ../shared/fixtures/tokenizer)
#   jinja_fuzz      the Jinja chat-template interpreter over arbitrary template text, seeded
#                   with the real templates of tests/fixtures/chat_templates
# Usage: scripts/fuzz.sh [SECONDS] [TARGET ...]. Crashes land in build-fuzz/fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN="${1:-30}"
shift || true
TARGETS=("$@")
[ "${#TARGETS[@]}" -gt 0 ] || TARGETS=(gguf_fuzz tokenizer_fuzz jinja_fuzz)
CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DFRUGAL_FUZZ=ON -DFRUGAL_TESTS=OFF >/dev/null
cmake --build build-fuzz --target "${TARGETS[@]}"
mkdir -p build-fuzz/fuzz/artifacts
for t in "${TARGETS[@]}"; do
  # The fuzzer adds what it finds to a scratch copy, never to the committed seeds.
  work="build-fuzz/fuzz/corpus-$t"
  mkdir -p "$work"
  seeds="fuzz/corpus/${t%_fuzz}"
  [ -d "$seeds" ] && cp -n "$seeds"/* "$work"/ 2>/dev/null || true
  echo "fuzz: $t for ${SECONDS_TO_RUN} s"
  "build-fuzz/fuzz/$t" -max_total_time="$SECONDS_TO_RUN" -max_len=8192 -rss_limit_mb=2048 \
    -artifact_prefix=build-fuzz/fuzz/artifacts/ -print_final_stats=1 "$work"
done
