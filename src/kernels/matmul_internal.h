// Per-weight-type matmul entry points (one SIMD file each, so they compile in parallel) and
// the quantized-activation layout shared by the Q8_0 and Q4_0 kernels.
#pragma once

#include <cstdint>

#include "kernels/ops.h"
#include "util/thread_pool.h"

namespace frugal::kernels {

// One block of 32 activations quantized to int8 for the integer dot products. `bias` holds
// {-k * sum(qs), 0, 0, 0} so that a kernel computing sum((w + k) * qs) with unsigned weights
// can start its int32 accumulator from it (k = 8 for Q4_0 nibbles, 128 for Q8_0 with VNNI).
struct alignas(16) ActivationBlock {
  int8_t qs[32];
  int32_t bias[4];
};
static_assert(sizeof(ActivationBlock) == 48);

// Each matmul_<type>(): Y [n_tokens, n_rows] = X [n_tokens, n_cols] · Wᵀ; see ops.h matmul().
void matmul_f32(const WeightView& w, const float* x, int64_t n_tokens, float* y, ThreadPool* pool);
void matmul_f16(const WeightView& w, const float* x, int64_t n_tokens, float* y, ThreadPool* pool);
void matmul_bf16(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                 ThreadPool* pool);
void matmul_q8_0(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                 ThreadPool* pool);
void matmul_q4_0(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                 ThreadPool* pool);

// Rows handed to one thread at a time are a multiple of this (a multiple of every target's
// row group).
constexpr int64_t kRowGrain = 16;
// Tokens whose activations stay in cache while a group of weight rows is reused across them.
constexpr int64_t kTokenChunk = 64;

}  // namespace frugal::kernels
