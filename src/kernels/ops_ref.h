// Scalar reference kernels: the plain loops every SIMD kernel in ops.h is tested against.
// Slow on purpose; correctness is the contract (see ops.h for each op's meaning).
#pragma once

#include <cstdint>

#include "kernels/ggml_type.h"
#include "kernels/ops.h"

namespace frugal::kernels {

// Row conversions of one row of n elements (n a multiple of the type's block size).
// Q8_0: d = max|x| / 127, q = round(x / d). Q4_0: m = the value of largest magnitude (with its
// sign), d = m / -8, q = clamp(round(x / d) + 8, 0, 15). Scales are stored as fp16.
void quantize_row_ref(GgmlType type, const float* x, void* out, int64_t n);
void dequantize_row_ref(GgmlType type, const void* x, float* out, int64_t n);

// Activation quantization used by matmul for Q8_0/Q4_0 weights: blocks of 32 with the scale
// d = max|x| / 127 rounded to fp16 (as llama.cpp's Q8_0 blocks store it) and
// q = nearest-even(x * (127 / max|x|)), so that the SIMD kernels can reproduce the exact same
// integers. `q` [n], `d` [n / 32].
void quantize_activations_ref(const float* x, int64_t n, int8_t* q, float* d);

void rms_norm_ref(const float* x, const float* w, float eps, int64_t n, float* out);
void silu_mul_ref(const float* gate, const float* up, int64_t n, float* out);
void gelu_mul_ref(const float* gate, const float* up, int64_t n, float* out);
void soft_cap_ref(float* x, float cap, int64_t n);
void add_inplace_ref(float* y, const float* x, int64_t n);
float dot_ref(const float* a, const float* b, int64_t n);
void axpy_ref(float a, const float* x, float* y, int64_t n);
void scale_ref(float* y, float a, int64_t n);
float softmax_ref(float* x, int64_t n);
float log_sum_exp_ref(const float* x, int64_t n);
int64_t argmax_ref(const float* x, int64_t n);
void attention_ref(const float* q, int64_t n_q, const float* const* k_blocks,
                   const float* const* v_blocks, int64_t block_size, int64_t head_dim, int64_t n,
                   float scale, float* scores, float* out, int64_t start = 0,
                   float softcap = 0.0f);
void attention_f16_ref(const float* q, int64_t n_q, const uint16_t* const* k_blocks,
                       const uint16_t* const* v_blocks, int64_t block_size, int64_t head_dim,
                       int64_t n, float scale, float* scores, float* out, int64_t start = 0,
                       float softcap = 0.0f);
void rope_ref(float* x, int64_t head_dim, int64_t pos, const float* inv_freq, RopeStyle style);

}  // namespace frugal::kernels
