// Per-weight-type matmul entry points (one SIMD file each, so they compile in parallel) and
// the quantized-activation layouts the integer kernels share.
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

// One block of 32 activations for the Q4_1/Q5_0/Q5_1/IQ4_NL kernels: Q8_0's integers with
// the scale d = max|x| / 127 and s = d * sum(qs) (llama.cpp's Q8_1 sum, for weight types with a
// minimum), both rounded to fp16 as llama.cpp stores them; `bias` as in ActivationBlock.
struct alignas(64) ActivationBlock32 {
  int8_t qs[32];
  int32_t bias[4];
  float d;
  float s;
  float unused[2];
};
static_assert(sizeof(ActivationBlock32) == 64);

// One super-block of 256 activations for the K-quant kernels (llama.cpp's Q8_K): d = max / -127
// where max is the element of largest magnitude, qs = min(127, nearest(x / d)), and the sums
// of qs over every 16 (bsums) and every 32 (bsums32) elements.
struct alignas(64) ActivationBlockK {
  int8_t qs[256];
  int16_t bsums[16];
  int16_t bsums32[8];
  float d;
  float unused[3];
};
static_assert(sizeof(ActivationBlockK) == 320);

// Scalar references shared by matmul_ref and the HWY_SCALAR kernels (ops_ref.cpp). The
// quantizers write `bias` = {-bias_mul * sum(qs), 0, 0, 0}.
void quantize_activations32_ref(const float* x, int64_t n_blocks, int bias_mul,
                                ActivationBlock32* out);
void quantize_activations_k_ref(const float* x, int64_t n_blocks, ActivationBlockK* out);
// Returns one weight block's dot product with one activation block (an ActivationBlock32 for
// 32-element types, an ActivationBlockK for K-quants); the SIMD kernels reproduce it to float
// rounding, their integer sums exactly.
float block_dot_ref(GgmlType type, const uint8_t* w, const void* act);

// Each matmul_<type>(): Y [n_tokens, n_rows] = X [n_tokens, n_cols] · Wᵀ; see ops.h matmul().
void matmul_f32(const WeightView& w, const float* x, int64_t n_tokens, float* y, ThreadPool* pool);
void matmul_f16(const WeightView& w, const float* x, int64_t n_tokens, float* y, ThreadPool* pool);
void matmul_bf16(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                 ThreadPool* pool);
void matmul_q8_0(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                 ThreadPool* pool);
void matmul_q4_0(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                 ThreadPool* pool);
void matmul_q4_1(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                 ThreadPool* pool);
void matmul_q5_0(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                 ThreadPool* pool);
void matmul_q5_1(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                 ThreadPool* pool);
void matmul_iq4_nl(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                   ThreadPool* pool);
void matmul_q2_k(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                 ThreadPool* pool);
void matmul_q3_k(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                 ThreadPool* pool);
void matmul_q4_k(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                 ThreadPool* pool);
void matmul_q5_k(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                 ThreadPool* pool);
// The row group the dispatched target's block tile reads interleaved weights in (its
// kQRows), or 0 where it reads only the file's layout. Behind interleave_group (ops.h).
int block_tile_interleave_group();
// Q4_K's group: 16 where the pass has VNNI (its own 16-row tile, matmul_q4_k.cpp), else
// block_tile_interleave_group().
int q4_k_interleave_group();
// 16 where the Q6_K VNNI tile runs (matmul_q6_k.cpp), else 0: Q6_K blocks are 210 bytes.
int q6_k_interleave_group();
// The same for Q8_0's 16-row tile (16 where the pass has VNNI's vpdpbusd, else 0).
int q8_tile_interleave_group();
void matmul_q6_k(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                 ThreadPool* pool);

// Rows handed to one thread at a time are a multiple of this (a multiple of every target's
// row group).
constexpr int64_t kRowGrain = 16;
// Tokens whose activations stay in cache while a group of weight rows is reused across them.
constexpr int64_t kTokenChunk = 64;

}  // namespace frugal::kernels
