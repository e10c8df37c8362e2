// Scalar row conversions of the weight types beyond Q8_0/Q4_0 (Q4_1, Q5_0, Q5_1, IQ4_NL and
// the K-quants Q2_K..Q6_K), used by ops_ref.cpp's quantize_row_ref / dequantize_row_ref.
#pragma once

#include <cstdint>

#include "kernels/ggml_type.h"

namespace frugal::kernels {

// True for the types this file converts.
bool is_extra_quant_type(GgmlType type);

// One row of n elements (a multiple of the type's block size).
// Dequantization performs ggml's float operations in ggml's order (d * q - m as two roundings,
// never fused), so it equals the gguf package's dequantize bit for bit.
void dequantize_extra_ref(GgmlType type, const void* x, float* out, int64_t n);
// Quantization: each block's (sub-block) scales are searched to minimise the squared error,
// then the integers are rounded to nearest against the scales as stored (fp16, 4/6/8-bit).
void quantize_extra_ref(GgmlType type, const float* x, void* out, int64_t n);

}  // namespace frugal::kernels
