// Kernel entry points used by the forward pass. Each has a scalar reference (`*_ref`, in
// ops_ref.cpp) and a SIMD version chosen once per call with HWY_DYNAMIC_DISPATCH.
// Shapes are row-major; `n` counts elements.
#pragma once

#include <cstdint>

#include "kernels/ggml_type.h"
#include "util/thread_pool.h"

namespace frugal::kernels {

// A weight matrix W [n_rows, n_cols] stored row by row in `type` (a view into the model file).
struct WeightView {
  const void* data = nullptr;
  GgmlType type = GgmlType::kF32;
  int64_t n_rows = 0;
  int64_t n_cols = 0;
  int64_t row_bytes() const { return ggml_row_bytes(type, n_cols); }
  // Rows rearranged by interleave_rows for the SIMD tile; only matmul reads such a view.
  bool interleaved = false;
};

// The group of rows in which this machine's matmul reads `type` interleaved (Q5_K: 4 on
// AVX-512, 2 on AVX2; Q4_K likewise, but 16 on AVX-512 with VNNI; Q8_0, Q4_0, Q5_0 and Q6_K:
// 16 on AVX-512 with VNNI), or 0 where it reads only the file's layout.
int interleave_group(GgmlType type);
// Bytes of w interleaved in groups of `group` rows: the rows rounded up to a whole group.
int64_t interleaved_bytes(const WeightView& w, int group);
// Writes w's rows in groups of `group`, the last group padded with copies of the last row:
// within group g, block b's 16-byte chunk c of row r goes to
// g * group * row_bytes + b * group * block_bytes + 16 * (group * c + r). One vector load then
// reads a chunk of every row of the tile. The 16-row VNNI tiles' types (Q8_0, Q4_0, Q5_0,
// Q4_K, Q6_K) have layouts of their own, one row per 32-bit lane (ops.cpp). `out` holds interleaved_bytes(w, group).
void interleave_rows(const WeightView& w, int group, uint8_t* out);

// Y [n_tokens, n_rows] = X [n_tokens, n_cols] · Wᵀ, spread over `pool` (may be null).
// For quantized W the activations are quantized per block to 8 bits first, as llama.cpp does;
// matmul_ref does the same, so SIMD and reference agree to float rounding.
void matmul(const WeightView& w, const float* x, int64_t n_tokens, float* y, ThreadPool* pool);
void matmul_ref(const WeightView& w, const float* x, int64_t n_tokens, float* y);

// Row conversions. n must be a multiple of the type's block size.
void quantize_row(GgmlType type, const float* x, void* out, int64_t n);
void dequantize_row(GgmlType type, const void* x, float* out, int64_t n);

// out = x / rms(x) * w, rms over n elements with eps inside the root. out may alias x.
void rms_norm(const float* x, const float* w, float eps, int64_t n, float* out);
// out[i] = silu(gate[i]) * up[i]. out may alias gate.
void silu_mul(const float* gate, const float* up, int64_t n, float* out);
// out[i] = gelu(gate[i]) * up[i] with GELU in its tanh form,
// gelu(x) = x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³))) (Gemma's gelu_pytorch_tanh).
// out may alias gate.
void gelu_mul(const float* gate, const float* up, int64_t n, float* out);
// x[i] = cap · tanh(x[i] / cap): Gemma 2's soft-capping of logits into (-cap, cap).
void soft_cap(float* x, float cap, int64_t n);
// y[i] += x[i]
void add_inplace(float* y, const float* x, int64_t n);
// Returns sum a[i] * b[i].
float dot(const float* a, const float* b, int64_t n);
// y[i] += a * x[i]
void axpy(float a, const float* x, float* y, int64_t n);
// y[i] *= a
void scale(float* y, float a, int64_t n);
// In place, numerically stable (subtracts the max). Returns the sum of exp before scaling.
float softmax(float* x, int64_t n);

// log(sum_i exp(x[i])) over n elements, computed stably (max subtracted first); -inf for n = 0.
float log_sum_exp(const float* x, int64_t n);
// The first index of the largest of x[0 .. n) (0 for n = 0); NaN elements never win, except
// at index 0, exactly as the loop `if (x[i] > x[best]) best = i` from best = 0.
int64_t argmax(const float* x, int64_t n);

// Causal attention of n_q query heads that share one KV head (grouped-query attention) over
// the cached positions start .. n-1 held in blocks: for each g < n_q,
// out[g] = softmax(cap(scale · q[g]·Kᵀ)) · V. q and out are [n_q, head_dim]; position j's key
// is row j % block_size of k_blocks[j / block_size] (each block [block_size, head_dim]), and
// likewise its value; entries of k_blocks / v_blocks before block start / block_size are not
// read. start > 0 is a sliding window (Gemma 2/3, Mistral-style local layers). softcap > 0
// replaces each score s by softcap · tanh(s / softcap) before the softmax (Gemma 2); 0 leaves
// scores as they are. `scores` is scratch [n_q, n - start] (left holding the attention weights).
void attention(const float* q, int64_t n_q, const float* const* k_blocks,
               const float* const* v_blocks, int64_t block_size, int64_t head_dim, int64_t n,
               float scale, float* scores, float* out, int64_t start = 0, float softcap = 0.0f);

// The same over keys and values stored as IEEE half floats (bits), as an F16 KV cache holds
// them; each is widened to float as it is read. The keys of a block are TRANSPOSED: element
// d of position j is k_blocks[j / block_size][d * block_size + j % block_size] (each block
// [head_dim, block_size]), so that one vector holds a dimension of consecutive positions and
// the scores of a block come out a vector at a time, with no horizontal sums. Values keep
// rows ([block_size, head_dim]), as attention() has both.
void attention_f16(const float* q, int64_t n_q, const uint16_t* const* k_blocks,
                   const uint16_t* const* v_blocks, int64_t block_size, int64_t head_dim,
                   int64_t n, float scale, float* scores, float* out, int64_t start = 0,
                   float softcap = 0.0f);
// out[i] = the half nearest x[i] (ties to even), as fp32_to_fp16.
void f32_to_f16_row(const float* x, uint16_t* out, int64_t n);

// Rotary position embedding on one head vector of head_dim elements at position `pos`.
// `inv_freq` [head_dim / 2] holds each pair's frequency (Llama-3 scaling already applied).
// kNormal rotates adjacent pairs (x[2i], x[2i+1]) — GGUF llama layout;
// kNeox rotates halves (x[i], x[i + head_dim/2]) — qwen2.
enum class RopeStyle { kNormal, kNeox };
void rope(float* x, int64_t head_dim, int64_t pos, const float* inv_freq, RopeStyle style);
// rope() in two halves, so that a forward pass takes each token's cos and sin once for all
// layers and heads instead of once per head (sincos was the largest scalar cost of a batched
// decode step): rope_table writes cs[i] = cos(pos · inv_freq[i]) and cs[half + i] = its sin
// for i < half = head_dim / 2; rope_rotate applies such a table. Together they compute
// exactly what rope() does.
void rope_table(int64_t pos, const float* inv_freq, int64_t half, float* cs);
void rope_rotate(float* x, int64_t head_dim, const float* cs, RopeStyle style);

// The SIMD target the dispatched kernels run on here ("AVX3_ZEN4", "AVX2", ...).
const char* simd_target_name();

}  // namespace frugal::kernels
