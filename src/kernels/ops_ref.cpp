// Scalar reference kernels (ops_ref.h): straightforward loops in float/double.
#include "kernels/ops_ref.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/matmul_internal.h"
#include "kernels/quants_ref.h"
#include "util/check.h"

namespace frugal::kernels {

namespace {

void quantize_q8_0(const float* x, BlockQ8_0* out, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b) {
    const float* xb = x + b * kQK8_0;
    float amax = 0.0f;
    for (int j = 0; j < kQK8_0; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    out[b].d = fp32_to_fp16(d);
    for (int j = 0; j < kQK8_0; ++j) {
      const float q = std::round(xb[j] * id);
      out[b].qs[j] = static_cast<int8_t>(std::clamp(q, -127.0f, 127.0f));
    }
  }
}

void quantize_q4_0(const float* x, BlockQ4_0* out, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b) {
    const float* xb = x + b * kQK4_0;
    float amax = 0.0f;
    float m = 0.0f;  // the value of largest magnitude, with its sign
    for (int j = 0; j < kQK4_0; ++j) {
      if (std::fabs(xb[j]) > amax) {
        amax = std::fabs(xb[j]);
        m = xb[j];
      }
    }
    const float d = m / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    out[b].d = fp32_to_fp16(d);
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      const int lo = static_cast<int>(std::clamp(std::round(xb[j] * id) + 8.0f, 0.0f, 15.0f));
      const int hi =
          static_cast<int>(std::clamp(std::round(xb[j + kQK4_0 / 2] * id) + 8.0f, 0.0f, 15.0f));
      out[b].qs[j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

// Integer dot product of one weight block with one activation block [32].
int32_t block_dot_q8_0(const BlockQ8_0& w, const int8_t* xq) {
  int32_t s = 0;
  for (int j = 0; j < kQK8_0; ++j) s += static_cast<int32_t>(w.qs[j]) * xq[j];
  return s;
}

int32_t block_dot_q4_0(const BlockQ4_0& w, const int8_t* xq) {
  int32_t s = 0;
  for (int j = 0; j < kQK4_0 / 2; ++j) {
    s += ((w.qs[j] & 0x0f) - 8) * static_cast<int32_t>(xq[j]);
    s += ((w.qs[j] >> 4) - 8) * static_cast<int32_t>(xq[j + kQK4_0 / 2]);
  }
  return s;
}

}  // namespace

void quantize_row_ref(GgmlType type, const float* x, void* out, int64_t n) {
  CHECK(ggml_type_info(type) != nullptr && ggml_type_info(type)->computable,
        "quantize_row: unsupported type %u", static_cast<unsigned>(type));
  CHECK(n % ggml_type_info(type)->block_size == 0, "quantize_row: n=%lld", (long long)n);
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(out, x, static_cast<size_t>(n) * 4);
      return;
    case GgmlType::kF16: {
      auto* o = static_cast<uint16_t*>(out);
      for (int64_t i = 0; i < n; ++i) o[i] = fp32_to_fp16(x[i]);
      return;
    }
    case GgmlType::kBF16: {
      auto* o = static_cast<uint16_t*>(out);
      for (int64_t i = 0; i < n; ++i) o[i] = fp32_to_bf16(x[i]);
      return;
    }
    case GgmlType::kQ8_0:
      quantize_q8_0(x, static_cast<BlockQ8_0*>(out), n / kQK8_0);
      return;
    case GgmlType::kQ4_0:
      quantize_q4_0(x, static_cast<BlockQ4_0*>(out), n / kQK4_0);
      return;
    default:
      if (is_extra_quant_type(type)) return quantize_extra_ref(type, x, out, n);
      CHECK(false, "quantize_row: unsupported type");
  }
}

void dequantize_row_ref(GgmlType type, const void* x, float* out, int64_t n) {
  CHECK(ggml_type_info(type) != nullptr && ggml_type_info(type)->computable,
        "dequantize_row: unsupported type %u", static_cast<unsigned>(type));
  CHECK(n % ggml_type_info(type)->block_size == 0, "dequantize_row: n=%lld", (long long)n);
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(out, x, static_cast<size_t>(n) * 4);
      return;
    case GgmlType::kF16: {
      const auto* h = static_cast<const uint16_t*>(x);
      for (int64_t i = 0; i < n; ++i) out[i] = fp16_to_fp32(h[i]);
      return;
    }
    case GgmlType::kBF16: {
      const auto* h = static_cast<const uint16_t*>(x);
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_fp32(h[i]);
      return;
    }
    case GgmlType::kQ8_0: {
      const auto* blocks = static_cast<const BlockQ8_0*>(x);
      for (int64_t b = 0; b < n / kQK8_0; ++b) {
        const float d = fp16_to_fp32(blocks[b].d);
        for (int j = 0; j < kQK8_0; ++j) out[b * kQK8_0 + j] = d * blocks[b].qs[j];
      }
      return;
    }
    case GgmlType::kQ4_0: {
      const auto* blocks = static_cast<const BlockQ4_0*>(x);
      for (int64_t b = 0; b < n / kQK4_0; ++b) {
        const float d = fp16_to_fp32(blocks[b].d);
        float* o = out + b * kQK4_0;
        for (int j = 0; j < kQK4_0 / 2; ++j) {
          o[j] = d * static_cast<float>((blocks[b].qs[j] & 0x0f) - 8);
          o[j + kQK4_0 / 2] = d * static_cast<float>((blocks[b].qs[j] >> 4) - 8);
        }
      }
      return;
    }
    default:
      if (is_extra_quant_type(type)) return dequantize_extra_ref(type, x, out, n);
      CHECK(false, "dequantize_row: unsupported type");
  }
}

void quantize_activations_ref(const float* x, int64_t n, int8_t* q, float* d) {
  CHECK(n % 32 == 0, "quantize_activations: n=%lld", (long long)n);
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* xb = x + b * 32;
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    d[b] = fp16_to_fp32(fp32_to_fp16(amax / 127.0f));
    for (int j = 0; j < 32; ++j) q[b * 32 + j] = static_cast<int8_t>(std::nearbyint(xb[j] * id));
  }
}

namespace {

// The extra quantized types: activations quantized per token as the type's kernel does
// (Q8_0 blocks with sums for 32-element types, Q8_K super-blocks for K-quants), then one
// block_dot_ref per weight block, summed in block order.
void matmul_blocks_ref(const WeightView& w, const float* x, int64_t n_tokens, float* y) {
  const int64_t rb = w.row_bytes();
  const auto* base = static_cast<const uint8_t*>(w.data);
  const GgmlTypeInfo* info = ggml_type_info(w.type);
  const int64_t n_blocks = w.n_cols / info->block_size;
  const bool k_quant = info->block_size == kQK_K;
  std::vector<ActivationBlock32> a32(k_quant ? 0 : static_cast<size_t>(n_blocks));
  std::vector<ActivationBlockK> ak(k_quant ? static_cast<size_t>(n_blocks) : 0);
  for (int64_t t = 0; t < n_tokens; ++t) {
    if (k_quant) {
      quantize_activations_k_ref(x + t * w.n_cols, n_blocks, ak.data());
    } else {
      quantize_activations32_ref(x + t * w.n_cols, n_blocks, 0, a32.data());
    }
    for (int64_t r = 0; r < w.n_rows; ++r) {
      float sum = 0.0f;
      for (int64_t b = 0; b < n_blocks; ++b) {
        const void* act = k_quant ? static_cast<const void*>(&ak[b]) : &a32[b];
        sum += block_dot_ref(w.type, base + r * rb + b * info->type_size, act);
      }
      y[t * w.n_rows + r] = sum;
    }
  }
}

}  // namespace

void matmul_ref(const WeightView& w, const float* x, int64_t n_tokens, float* y) {
  CHECK(!w.interleaved, "matmul_ref reads the file's layout: pass the view before interleave_rows");
  if (is_extra_quant_type(w.type)) return matmul_blocks_ref(w, x, n_tokens, y);
  const int64_t rb = w.row_bytes();
  const auto* base = static_cast<const uint8_t*>(w.data);
  if (w.type == GgmlType::kQ8_0 || w.type == GgmlType::kQ4_0) {
    const int64_t n_blocks = w.n_cols / 32;
    std::vector<int8_t> xq(static_cast<size_t>(w.n_cols));
    std::vector<float> xd(static_cast<size_t>(n_blocks));
    for (int64_t t = 0; t < n_tokens; ++t) {
      quantize_activations_ref(x + t * w.n_cols, w.n_cols, xq.data(), xd.data());
      for (int64_t r = 0; r < w.n_rows; ++r) {
        float sum = 0.0f;
        for (int64_t b = 0; b < n_blocks; ++b) {
          int32_t isum;
          float wd;
          if (w.type == GgmlType::kQ8_0) {
            const auto& blk = reinterpret_cast<const BlockQ8_0*>(base + r * rb)[b];
            isum = block_dot_q8_0(blk, xq.data() + b * 32);
            wd = fp16_to_fp32(blk.d);
          } else {
            const auto& blk = reinterpret_cast<const BlockQ4_0*>(base + r * rb)[b];
            isum = block_dot_q4_0(blk, xq.data() + b * 32);
            wd = fp16_to_fp32(blk.d);
          }
          sum += static_cast<float>(isum) * (wd * xd[b]);
        }
        y[t * w.n_rows + r] = sum;
      }
    }
    return;
  }
  std::vector<float> row(static_cast<size_t>(w.n_cols));
  for (int64_t r = 0; r < w.n_rows; ++r) {
    dequantize_row_ref(w.type, base + r * rb, row.data(), w.n_cols);
    for (int64_t t = 0; t < n_tokens; ++t) {
      const float* xt = x + t * w.n_cols;
      double sum = 0.0;
      for (int64_t c = 0; c < w.n_cols; ++c) sum += static_cast<double>(row[c]) * xt[c];
      y[t * w.n_rows + r] = static_cast<float>(sum);
    }
  }
}

void rms_norm_ref(const float* x, const float* w, float eps, int64_t n, float* out) {
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * inv * w[i];
}

void silu_mul_ref(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void gelu_mul_ref(const float* gate, const float* up, int64_t n, float* out) {
  constexpr double k = 0.7978845608028654;  // sqrt(2 / pi)
  for (int64_t i = 0; i < n; ++i) {
    const double g = gate[i];
    out[i] = static_cast<float>(0.5 * g * (1.0 + std::tanh(k * (g + 0.044715 * g * g * g))) * up[i]);
  }
}

void soft_cap_ref(float* x, float cap, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = cap * std::tanh(x[i] / cap);
}

void add_inplace_ref(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

float dot_ref(const float* a, const float* b, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
  return static_cast<float>(s);
}

void axpy_ref(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void scale_ref(float* y, float a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] *= a;
}

float softmax_ref(float* x, int64_t n) {
  if (n <= 0) return 0.0f;
  float mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, x[i]);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
  return static_cast<float>(sum);
}

void rope_ref(float* x, int64_t head_dim, int64_t pos, const float* inv_freq, RopeStyle style) {
  const int64_t half = head_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float angle = static_cast<float>(pos) * inv_freq[i];
    const float c = std::cos(angle);
    const float s = std::sin(angle);
    const int64_t i0 = style == RopeStyle::kNormal ? 2 * i : i;
    const int64_t i1 = style == RopeStyle::kNormal ? 2 * i + 1 : i + half;
    const float a = x[i0];
    const float b = x[i1];
    x[i0] = a * c - b * s;
    x[i1] = a * s + b * c;
  }
}

// rope() split in two (ops.h), here because this file is built without fused multiply-adds:
// the pair is bit for bit rope_ref.
void rope_table(int64_t pos, const float* inv_freq, int64_t half, float* cs) {
  for (int64_t i = 0; i < half; ++i) {
    const float angle = static_cast<float>(pos) * inv_freq[i];  // as rope_ref, bit for bit
    cs[i] = std::cos(angle);
    cs[half + i] = std::sin(angle);
  }
}

void rope_rotate(float* x, int64_t head_dim, const float* cs, RopeStyle style) {
  const int64_t half = head_dim / 2;
  const float* sn = cs + half;
  if (style == RopeStyle::kNormal) {
    for (int64_t i = 0; i < half; ++i) {
      const float a = x[2 * i], b = x[2 * i + 1];
      x[2 * i] = a * cs[i] - b * sn[i];
      x[2 * i + 1] = a * sn[i] + b * cs[i];
    }
  } else {
    for (int64_t i = 0; i < half; ++i) {
      const float a = x[i], b = x[i + half];
      x[i] = a * cs[i] - b * sn[i];
      x[i + half] = a * sn[i] + b * cs[i];
    }
  }
}

void attention_ref(const float* q, int64_t n_q, const float* const* k_blocks,
                   const float* const* v_blocks, int64_t block_size, int64_t head_dim, int64_t n,
                   float scale, float* scores, float* out, int64_t start, float softcap) {
  const int64_t m = n - start;  // positions attended
  for (int64_t g = 0; g < n_q; ++g) {
    float* s = scores + g * m;
    for (int64_t j = start; j < n; ++j)
      s[j - start] = dot_ref(q + g * head_dim,
                             k_blocks[j / block_size] + (j % block_size) * head_dim, head_dim) *
                     scale;
    if (softcap > 0.0f) soft_cap_ref(s, softcap, m);
    softmax_ref(s, m);
    float* o = out + g * head_dim;
    for (int64_t i = 0; i < head_dim; ++i) o[i] = 0.0f;
    for (int64_t j = start; j < n; ++j)
      axpy_ref(s[j - start], v_blocks[j / block_size] + (j % block_size) * head_dim, o, head_dim);
  }
}

// The F16-cache variant: each key and value widened to float, then as attention_ref.
void attention_f16_ref(const float* q, int64_t n_q, const uint16_t* const* k_blocks,
                       const uint16_t* const* v_blocks, int64_t block_size, int64_t head_dim,
                       int64_t n, float scale, float* scores, float* out, int64_t start,
                       float softcap) {
  const int64_t m = n - start;
  std::vector<float> k(head_dim), v(head_dim);
  for (int64_t g = 0; g < n_q; ++g) {
    float* s = scores + g * m;
    for (int64_t j = start; j < n; ++j) {
      const uint16_t* kt = k_blocks[j / block_size] + j % block_size;  // keys transposed
      for (int64_t i = 0; i < head_dim; ++i) k[i] = fp16_to_fp32(kt[i * block_size]);
      s[j - start] = dot_ref(q + g * head_dim, k.data(), head_dim) * scale;
    }
    if (softcap > 0.0f) soft_cap_ref(s, softcap, m);
    softmax_ref(s, m);
    float* o = out + g * head_dim;
    for (int64_t i = 0; i < head_dim; ++i) o[i] = 0.0f;
    for (int64_t j = start; j < n; ++j) {
      const uint16_t* vh = v_blocks[j / block_size] + (j % block_size) * head_dim;
      for (int64_t i = 0; i < head_dim; ++i) v[i] = fp16_to_fp32(vh[i]);
      axpy_ref(s[j - start], v.data(), o, head_dim);
    }
  }
}

float log_sum_exp_ref(const float* x, int64_t n) {
  if (n <= 0) return -std::numeric_limits<float>::infinity();
  double mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max<double>(mx, x[i]);
  if (!std::isfinite(mx)) return static_cast<float>(mx);
  double z = 0.0;
  for (int64_t i = 0; i < n; ++i) z += std::exp(x[i] - mx);
  return static_cast<float>(mx + std::log(z));
}

int64_t argmax_ref(const float* x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return best;
}

}  // namespace frugal::kernels
