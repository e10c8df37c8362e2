#!/usr/bin/env bash
# The scheduler's batched decode against llama.cpp's llama-batched-bench on the same GGUF file,
# same threads, same run (docs/BENCHMARKS.md, "Continuous batching"). Not run by the tests or CI.
#   bench/sched_vs_llamacpp.sh MODEL.gguf [LEVELS=1,4,16,64] [PROMPT=128] [GEN=128]
# Environment: THREADS (2), LLAMA_BIN (default /work/peer/llama.cpp-build/bin, built by
# bench/build_llamacpp.sh), SHARED_PREFIX (1000; 0 skips the cached-prefix TTFT).
set -euo pipefail
cd "$(dirname "$0")/.."
model=$(realpath "$1")
levels=${2:-1,4,16,64}
n_prompt=${3:-128}
n_gen=${4:-128}
threads=${THREADS:-2}
llama_bin=${LLAMA_BIN:-/work/peer/llama.cpp-build/bin}
prefix=${SHARED_PREFIX:-1000}
max_level=$(echo "$levels" | tr ',' '\n' | sort -n | tail -1)

lscpu | grep -m1 'Model name'
echo "== frugal bench --parallel $levels (-p $n_prompt -n $n_gen, $threads threads)"
build/frugal bench -m "$model" -t "$threads" -p "$n_prompt" -n "$n_gen" --parallel "$levels"
if [ "$prefix" -gt 0 ]; then
  echo "== frugal bench --shared-prefix $prefix"
  build/frugal bench -m "$model" -t "$threads" -p 32 -n 16 --parallel 1 --shared-prefix "$prefix"
fi
echo "== llama-batched-bench ($("$llama_bin/llama-batched-bench" --version 2>&1 | grep -m1 version || true))"
ctx=$(( max_level * (n_prompt + n_gen) + 64 ))
"$llama_bin/llama-batched-bench" -m "$model" -t "$threads" -c "$ctx" -b 2048 -ub 512 \
  -npp "$n_prompt" -ntg "$n_gen" -npl "$levels" 2>/dev/null
