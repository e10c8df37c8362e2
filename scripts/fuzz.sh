#!/usr/bin/env bash
# Builds the libFuzzer targets with clang-14 (libFuzzer + ASan + UBSan) in build-fuzz and runs
# each for SECONDS (default 30):
#   gguf_fuzz       GgufFile::parse over arbitrary bytes, from the committed seed corpus
#   tokenizer_fuzz  the SentencePiece and BPE tokenizers over arbitrary text (vocab fixtures
#                   from ../shared/fixtures/tokenizer)
#   jinja_fuzz      the Jinja chat-template interpreter over arbitrary template text, seeded
#                   with the real templates of tests/fixtures/chat_templates
#   model_fuzz      mutated GGUF models through Model::load, the tokenizer and a forward step
#                   (seeds: tiny models from tests/tiny_model.h, a few KB each)
#   config_fuzz     cascade configs through parse_cascade_config and, when their tiers name the
#                   two tiny seed models, Cascade::create and one answer
#   tasks_fuzz      task-item JSONL through parse_task_items and the answer checks
#   request_fuzz    OpenAI request bodies through parse_request for both endpoints, and the
#                   responses and stream chunks built from answers made of the same bytes
# Usage: scripts/fuzz.sh [SECONDS] [TARGET ...]. FUZZ_BUILD_DIR (default build-fuzz) is the
# build folder; crashes land in $FUZZ_BUILD_DIR/fuzz/artifacts/. Extra libFuzzer flags (such as
# -runs=N) can be given in FUZZ_FLAGS.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN="${1:-30}"
shift || true
TARGETS=("$@")
[ "${#TARGETS[@]}" -gt 0 ] || TARGETS=(gguf_fuzz tokenizer_fuzz jinja_fuzz model_fuzz config_fuzz tasks_fuzz request_fuzz)
B="${FUZZ_BUILD_DIR:-build-fuzz}"
CC=clang-14 CXX=clang++-14 cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DFRUGAL_FUZZ=ON -DFRUGAL_TESTS=OFF >/dev/null
cmake --build "$B" --target "${TARGETS[@]}"
mkdir -p "$B/fuzz/artifacts"
for t in "${TARGETS[@]}"; do
  # The fuzzer adds what it finds to a scratch copy, never to the committed seeds.
  work="$B/fuzz/corpus-$t"
  mkdir -p "$work"
  seeds="fuzz/corpus/${t%_fuzz}"
  [ -d "$seeds" ] && cp -n "$seeds"/* "$work"/ 2>/dev/null || true
  # Whole models need room: the tiny seed models are about 12 KB.
  max_len=8192
  [ "$t" = model_fuzz ] && max_len=32768
  echo "fuzz: $t for ${SECONDS_TO_RUN} s"
  # shellcheck disable=SC2086
  "$B/fuzz/$t" -max_total_time="$SECONDS_TO_RUN" -max_len="$max_len" -rss_limit_mb=2048 \
    -artifact_prefix="$B/fuzz/artifacts/" -print_final_stats=1 ${FUZZ_FLAGS:-} "$work"
done
