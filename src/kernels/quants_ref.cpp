// Scalar reference of the Q4_1, Q5_0, Q5_1, IQ4_NL and K-quant weight types: row conversions
// (quants_ref.h), the activation quantizers and per-block dot products the matmul kernels
// reproduce (matmul_internal.h). Layouts: ggml_type.h. This file is compiled with
// -ffp-contract=off so that `d * q - m` stays two roundings, as in ggml and numpy.
#include "kernels/quants_ref.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/matmul_internal.h"
#include "util/check.h"

namespace frugal::kernels {

namespace {

float h2f(uint16_t h) { return fp16_to_fp32(h); }
int nearest(float v) { return static_cast<int>(std::nearbyint(v)); }
uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// ---------------------------------------------------------------- dequantization

void dequantize_q4_1(const BlockQ4_1* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = h2f(b[i].d), m = h2f(b[i].m);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>(b[i].qs[j] & 15) + m;
      y[j + 16] = d * static_cast<float>(b[i].qs[j] >> 4) + m;
    }
  }
}

// The 5-bit value of element j (< 32) of a Q5_0/Q5_1 block.
int q5_value(const uint8_t* qs, uint32_t qh, int j) {
  const int low = j < 16 ? qs[j] & 15 : qs[j - 16] >> 4;
  return low | static_cast<int>((qh >> j) & 1u) << 4;
}

void dequantize_q5_0(const BlockQ5_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = h2f(b[i].d);
    const uint32_t qh = load_u32(b[i].qh);
    for (int j = 0; j < 32; ++j) y[j] = d * static_cast<float>(q5_value(b[i].qs, qh, j) - 16);
  }
}

void dequantize_q5_1(const BlockQ5_1* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = h2f(b[i].d), m = h2f(b[i].m);
    const uint32_t qh = load_u32(b[i].qh);
    for (int j = 0; j < 32; ++j) y[j] = d * static_cast<float>(q5_value(b[i].qs, qh, j)) + m;
  }
}

void dequantize_iq4_nl(const BlockIQ4_NL* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = h2f(b[i].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>(kIq4nlValues[b[i].qs[j] & 15]);
      y[j + 16] = d * static_cast<float>(kIq4nlValues[b[i].qs[j] >> 4]);
    }
  }
}

// The 2-bit field of element e of a Q2_K/Q3_K super-block: e = 128 h + 32 k + l.
int q2_field(const uint8_t* qs, int e) {
  const int h = e / 128, k = (e / 32) % 4, l = e % 32;
  return (qs[32 * h + l] >> (2 * k)) & 3;
}

void dequantize_q2_k(const BlockQ2_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK_K) {
    const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
    for (int e = 0; e < kQK_K; ++e) {
      const uint8_t sc = b[i].scales[e / 16];
      const float dl = d * static_cast<float>(sc & 15);
      const float ml = dmin * static_cast<float>(sc >> 4);
      y[e] = dl * static_cast<float>(q2_field(b[i].qs, e)) - ml;
    }
  }
}

// The signed 3-bit value (-4..3) of element e of a Q3_K super-block.
int q3_value(const BlockQ3_K& b, int e) {
  const int h = e / 128, k = (e / 32) % 4, l = e % 32;
  const bool high = (b.hmask[l] >> (4 * h + k)) & 1;
  return q2_field(b.qs, e) - (high ? 0 : 4);
}

void dequantize_q3_k(const BlockQ3_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK_K) {
    const float d = h2f(b[i].d);
    uint8_t sc[16];
    unpack_scales_q3_k(b[i].scales, sc);
    for (int e = 0; e < kQK_K; ++e) {
      const float dl = d * static_cast<float>(sc[e / 16] - 32);
      y[e] = dl * static_cast<float>(q3_value(b[i], e));
    }
  }
}

// The 4-bit value of element e of a Q4_K/Q5_K super-block (e = 64 c + 32 half + l).
int q4k_nibble(const uint8_t* qs, int e) {
  const int c = e / 64, half = (e / 32) % 2, l = e % 32;
  return (qs[32 * c + l] >> (4 * half)) & 15;
}

void dequantize_q4_k(const BlockQ4_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK_K) {
    const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
    uint8_t sc[8], m[8];
    unpack_scales_k4(b[i].scales, sc, m);
    for (int e = 0; e < kQK_K; ++e) {
      const float dl = d * static_cast<float>(sc[e / 32]);
      const float ml = dmin * static_cast<float>(m[e / 32]);
      y[e] = dl * static_cast<float>(q4k_nibble(b[i].qs, e)) - ml;
    }
  }
}

int q5k_value(const BlockQ5_K& b, int e) {
  return q4k_nibble(b.qs, e) | ((b.qh[e % 32] >> (e / 32)) & 1) << 4;
}

void dequantize_q5_k(const BlockQ5_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK_K) {
    const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
    uint8_t sc[8], m[8];
    unpack_scales_k4(b[i].scales, sc, m);
    for (int e = 0; e < kQK_K; ++e) {
      const float dl = d * static_cast<float>(sc[e / 32]);
      const float ml = dmin * static_cast<float>(m[e / 32]);
      y[e] = dl * static_cast<float>(q5k_value(b[i], e)) - ml;
    }
  }
}

// The unsigned 6-bit value (0..63, the weight is value - 32) of element e of a Q6_K block.
int q6k_value(const BlockQ6_K& b, int e) {
  const int h = e / 128, k = (e / 32) % 4, l = e % 32;
  const uint8_t low = b.ql[64 * h + 32 * (k % 2) + l];
  const int nibble = k < 2 ? low & 15 : low >> 4;
  return nibble | ((b.qh[32 * h + l] >> (2 * k)) & 3) << 4;
}

void dequantize_q6_k(const BlockQ6_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK_K) {
    const float d = h2f(b[i].d);
    for (int e = 0; e < kQK_K; ++e) {
      const float dl = d * static_cast<float>(b[i].scales[e / 16]);
      y[e] = dl * static_cast<float>(q6k_value(b[i], e) - 32);
    }
  }
}

// ---------------------------------------------------------------- scale searches

// Fits x[i] ≈ scale * L[i] - offset, L[i] integer in [0, nmax], scale >= 0, offset >= 0 (the
// represented minimum is never above zero, as the K-quant formats assume), minimising the
// squared error: for a range of level spacings around (max - min) / nmax it rounds to the
// grid, solves the least-squares scale and offset for those levels, and keeps the best.
// Returns scale; *offset receives the offset.
float fit_scale_offset(const float* x, int n, int nmax, float* offset) {
  float lo = 0.0f, hi = x[0];
  for (int i = 0; i < n; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
  if (!(hi > lo)) {
    *offset = -lo;
    return 0.0f;
  }
  double sum_x = 0;
  for (int i = 0; i < n; ++i) sum_x += x[i];
  double best_err = INFINITY;
  float best_scale = (hi - lo) / static_cast<float>(nmax), best_min = lo;
  constexpr int kSteps = 12;  // spacings stretched by -1 .. +1.2 levels over the range
  for (int is = 0; is <= kSteps; ++is) {
    const float iscale = (static_cast<float>(nmax) - 1.0f + 0.2f * is) / (hi - lo);
    double sl = 0, sl2 = 0, sxl = 0;
    int levels[256];
    for (int i = 0; i < n; ++i) {
      levels[i] = std::clamp(nearest(iscale * (x[i] - lo)), 0, nmax);
      sl += levels[i], sl2 += double{1.0} * levels[i] * levels[i], sxl += double{x[i]} * levels[i];
    }
    const double det = n * sl2 - sl * sl;
    if (!(det > 0)) continue;
    double scale = (n * sxl - sum_x * sl) / det;
    double mn = (sl2 * sum_x - sl * sxl) / det;
    if (mn > 0) mn = 0, scale = sxl / sl2;
    if (!(scale > 0)) continue;
    double err = 0;
    for (int i = 0; i < n; ++i) {
      const double diff = scale * levels[i] + mn - x[i];
      err += diff * diff;
    }
    if (err < best_err) {
      best_err = err;
      best_scale = static_cast<float>(scale);
      best_min = static_cast<float>(mn);
    }
  }
  *offset = -best_min;
  return best_scale;
}

// Fits x[i] ≈ scale * L[i], L[i] integer in [-nmax, nmax - 1]: tries reciprocal scales around
// the one that maps the element of largest magnitude to -nmax, takes the least-squares scale
// for each rounding, keeps the one of least squared error. The scale may be negative.
float fit_scale_symmetric(const float* x, int n, int nmax) {
  float amax = 0.0f, m = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) amax = std::fabs(x[i]), m = x[i];
  }
  if (amax < 1e-30f) return 0.0f;
  double best_score = -1.0;  // (sum x L)^2 / sum L^2: the error is sum x^2 minus this
  float best = m / static_cast<float>(-nmax);
  for (int is = -9; is <= 9; ++is) {
    const float iscale = -(static_cast<float>(nmax) + 0.1f * is) / m;
    double sxl = 0, sl2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest(iscale * x[i]), -nmax, nmax - 1);
      sxl += double{x[i]} * l, sl2 += double{1.0} * l * l;
    }
    if (sl2 > 0 && sxl * sxl / sl2 > best_score) {
      best_score = sxl * sxl / sl2;
      best = static_cast<float>(sxl / sl2);
    }
  }
  return best;
}

// Quantizes a positive sub-block scale to an integer level in [0, max_level] of step dh.
int scale_level(float value, float dh, int max_level) {
  return dh > 0 ? std::clamp(nearest(value / dh), 0, max_level) : 0;
}

// ---------------------------------------------------------------- quantization

void quantize_q4_1(const float* x, BlockQ4_1* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 32) {
    const float lo = *std::min_element(x, x + 32), hi = *std::max_element(x, x + 32);
    b[i].d = fp32_to_fp16((hi - lo) / 15.0f);
    b[i].m = fp32_to_fp16(lo);
    const float d = h2f(b[i].d), m = h2f(b[i].m);
    auto q = [&](float v) { return d > 0 ? std::clamp(nearest((v - m) / d), 0, 15) : 0; };
    for (int j = 0; j < 16; ++j) b[i].qs[j] = static_cast<uint8_t>(q(x[j]) | q(x[j + 16]) << 4);
  }
}

// Packs 32 5-bit values into a Q5_0/Q5_1 block's qs and qh.
void pack_q5(const int* q, uint8_t* qs, uint8_t* qh_bytes) {
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>((q[j] & 15) | (q[j + 16] & 15) << 4);
  for (int j = 0; j < 32; ++j) qh |= static_cast<uint32_t>(q[j] >> 4) << j;
  std::memcpy(qh_bytes, &qh, 4);
}

void quantize_q5_0(const float* x, BlockQ5_0* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 32) {
    float m = 0.0f;  // the value of largest magnitude, with its sign
    for (int j = 0; j < 32; ++j)
      if (std::fabs(x[j]) > std::fabs(m)) m = x[j];
    b[i].d = fp32_to_fp16(m / -16.0f);
    const float d = h2f(b[i].d);
    int q[32];
    for (int j = 0; j < 32; ++j) q[j] = d != 0 ? std::clamp(nearest(x[j] / d) + 16, 0, 31) : 16;
    pack_q5(q, b[i].qs, b[i].qh);
  }
}

void quantize_q5_1(const float* x, BlockQ5_1* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 32) {
    const float lo = *std::min_element(x, x + 32), hi = *std::max_element(x, x + 32);
    b[i].d = fp32_to_fp16((hi - lo) / 31.0f);
    b[i].m = fp32_to_fp16(lo);
    const float d = h2f(b[i].d), m = h2f(b[i].m);
    int q[32];
    for (int j = 0; j < 32; ++j) q[j] = d > 0 ? std::clamp(nearest((x[j] - m) / d), 0, 31) : 0;
    pack_q5(q, b[i].qs, b[i].qh);
  }
}

// Index of the table entry nearest to v (the table is sorted).
int nearest_iq4nl(float v) {
  int best = 0;
  for (int k = 1; k < 16; ++k)
    if (std::fabs(v - kIq4nlValues[k]) < std::fabs(v - kIq4nlValues[best])) best = k;
  return best;
}

// IQ4_NL: tries scales that map the element of largest magnitude to the table's ends and
// between, assigns each element its nearest entry, takes the least-squares d for that
// assignment and keeps the best; then reassigns against the stored fp16 d.
void quantize_iq4_nl(const float* x, BlockIQ4_NL* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 32) {
    float m = 0.0f;
    for (int j = 0; j < 32; ++j)
      if (std::fabs(x[j]) > std::fabs(m)) m = x[j];
    float best_d = 0.0f;
    if (m != 0.0f) {
      double best_score = -1.0;
      for (int is = -8; is <= 8; ++is) {
        const float id = (static_cast<float>(kIq4nlValues[0]) + is) / m;
        double sxv = 0, sv2 = 0;
        for (int j = 0; j < 32; ++j) {
          const double v = kIq4nlValues[nearest_iq4nl(x[j] * id)];
          sxv += x[j] * v, sv2 += v * v;
        }
        if (sv2 > 0 && sxv * sxv / sv2 > best_score) {
          best_score = sxv * sxv / sv2;
          best_d = static_cast<float>(sxv / sv2);
        }
      }
    }
    b[i].d = fp32_to_fp16(best_d);
    const float d = h2f(b[i].d);
    auto q = [&](float v) { return d != 0 ? nearest_iq4nl(v / d) : 8; };
    for (int j = 0; j < 16; ++j) b[i].qs[j] = static_cast<uint8_t>(q(x[j]) | q(x[j + 16]) << 4);
  }
}

// Q2_K / Q4_K / Q5_K share the scheme: fit (scale, offset) per sub-block, store both as
// levels of the super-block's fp16 d and dmin (the largest fitted value at the top level),
// then round each element against the stored scale and offset.
struct SubBlockFit {
  int n_sub;        // sub-blocks per super-block
  int sub;          // elements per sub-block
  int nmax;         // largest element level
  int scale_max;    // largest scale / offset level
};

void fit_k_scales(const float* x, const SubBlockFit& f, uint16_t* d_out, uint16_t* dmin_out,
                  int* ls, int* lm, int* levels) {
  float scales[16], offsets[16], max_scale = 0.0f, max_offset = 0.0f;
  for (int j = 0; j < f.n_sub; ++j) {
    scales[j] = fit_scale_offset(x + f.sub * j, f.sub, f.nmax, &offsets[j]);
    max_scale = std::max(max_scale, scales[j]);
    max_offset = std::max(max_offset, offsets[j]);
  }
  *d_out = fp32_to_fp16(max_scale / static_cast<float>(f.scale_max));
  *dmin_out = fp32_to_fp16(max_offset / static_cast<float>(f.scale_max));
  const float d = h2f(*d_out), dmin = h2f(*dmin_out);
  for (int j = 0; j < f.n_sub; ++j) {
    ls[j] = scale_level(scales[j], d, f.scale_max);
    lm[j] = scale_level(offsets[j], dmin, f.scale_max);
    const float dl = d * static_cast<float>(ls[j]), ml = dmin * static_cast<float>(lm[j]);
    for (int i = 0; i < f.sub; ++i) {
      const float v = x[f.sub * j + i];
      levels[f.sub * j + i] = dl > 0 ? std::clamp(nearest((v + ml) / dl), 0, f.nmax) : 0;
    }
  }
}

void quantize_q2_k(const float* x, BlockQ2_K* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    int ls[16], lm[16], q[kQK_K];
    fit_k_scales(x, {16, 16, 3, 15}, &b[i].d, &b[i].dmin, ls, lm, q);
    for (int j = 0; j < 16; ++j) b[i].scales[j] = static_cast<uint8_t>(ls[j] | lm[j] << 4);
    std::memset(b[i].qs, 0, sizeof(b[i].qs));
    for (int e = 0; e < kQK_K; ++e)
      b[i].qs[32 * (e / 128) + e % 32] |= static_cast<uint8_t>(q[e] << (2 * ((e / 32) % 4)));
  }
}

// Packs eight 6-bit scales and minima into Q4_K/Q5_K's 12 bytes (inverse of unpack_scales_k4).
void pack_scales_k4(const int* ls, const int* lm, uint8_t* s) {
  for (int j = 0; j < 4; ++j) {
    s[j] = static_cast<uint8_t>(ls[j] | (ls[j + 4] >> 4) << 6);
    s[j + 4] = static_cast<uint8_t>(lm[j] | (lm[j + 4] >> 4) << 6);
    s[j + 8] = static_cast<uint8_t>((ls[j + 4] & 15) | (lm[j + 4] & 15) << 4);
  }
}

void quantize_q4_k(const float* x, BlockQ4_K* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    int ls[8], lm[8], q[kQK_K];
    fit_k_scales(x, {8, 32, 15, 63}, &b[i].d, &b[i].dmin, ls, lm, q);
    pack_scales_k4(ls, lm, b[i].scales);
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l)
        b[i].qs[32 * c + l] = static_cast<uint8_t>(q[64 * c + l] | q[64 * c + 32 + l] << 4);
  }
}

void quantize_q5_k(const float* x, BlockQ5_K* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    int ls[8], lm[8], q[kQK_K];
    fit_k_scales(x, {8, 32, 31, 63}, &b[i].d, &b[i].dmin, ls, lm, q);
    pack_scales_k4(ls, lm, b[i].scales);
    std::memset(b[i].qh, 0, sizeof(b[i].qh));
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        const int a = q[64 * c + l], h = q[64 * c + 32 + l];
        b[i].qs[32 * c + l] = static_cast<uint8_t>((a & 15) | (h & 15) << 4);
        b[i].qh[l] |= static_cast<uint8_t>((a >> 4) << (2 * c) | (h >> 4) << (2 * c + 1));
      }
    }
  }
}

// Q3_K / Q6_K: symmetric sub-blocks of 16; the signed scale of largest magnitude maps to the
// most negative scale level (-32 / -128) and fixes the fp16 d.
void fit_symmetric_scales(const float* x, int nmax, int scale_min, int scale_top,
                          uint16_t* d_out, int* ls, int* levels) {
  float scales[16], max_scale = 0.0f;
  for (int j = 0; j < 16; ++j) {
    scales[j] = fit_scale_symmetric(x + 16 * j, 16, nmax);
    if (std::fabs(scales[j]) > std::fabs(max_scale)) max_scale = scales[j];
  }
  *d_out = fp32_to_fp16(max_scale / static_cast<float>(scale_min));
  const float d = h2f(*d_out);
  for (int j = 0; j < 16; ++j) {
    ls[j] = d != 0 ? std::clamp(nearest(scales[j] / d), scale_min, scale_top) : 0;
    const float dl = d * static_cast<float>(ls[j]);
    for (int i = 0; i < 16; ++i)
      levels[16 * j + i] = dl != 0 ? std::clamp(nearest(x[16 * j + i] / dl), -nmax, nmax - 1) : 0;
  }
}

void quantize_q3_k(const float* x, BlockQ3_K* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    int ls[16], q[kQK_K];
    fit_symmetric_scales(x, 4, -32, 31, &b[i].d, ls, q);
    std::memset(b[i].scales, 0, sizeof(b[i].scales));
    for (int j = 0; j < 16; ++j) {
      const int s = ls[j] + 32;
      b[i].scales[j % 8] |= static_cast<uint8_t>((s & 15) << (j < 8 ? 0 : 4));
      b[i].scales[8 + j % 4] |= static_cast<uint8_t>((s >> 4) << (2 * (j / 4)));
    }
    std::memset(b[i].qs, 0, sizeof(b[i].qs));
    std::memset(b[i].hmask, 0, sizeof(b[i].hmask));
    for (int e = 0; e < kQK_K; ++e) {
      const int u = q[e] + 4, h = e / 128, k = (e / 32) % 4, l = e % 32;
      b[i].qs[32 * h + l] |= static_cast<uint8_t>((u & 3) << (2 * k));
      b[i].hmask[l] |= static_cast<uint8_t>((u >> 2) << (4 * h + k));
    }
  }
}

void quantize_q6_k(const float* x, BlockQ6_K* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    int ls[16], q[kQK_K];
    fit_symmetric_scales(x, 32, -128, 127, &b[i].d, ls, q);
    for (int j = 0; j < 16; ++j) b[i].scales[j] = static_cast<int8_t>(ls[j]);
    std::memset(b[i].ql, 0, sizeof(b[i].ql));
    std::memset(b[i].qh, 0, sizeof(b[i].qh));
    for (int e = 0; e < kQK_K; ++e) {
      const int u = q[e] + 32, h = e / 128, k = (e / 32) % 4, l = e % 32;
      b[i].ql[64 * h + 32 * (k % 2) + l] |= static_cast<uint8_t>((u & 15) << (k < 2 ? 0 : 4));
      b[i].qh[32 * h + l] |= static_cast<uint8_t>((u >> 4) << (2 * k));
    }
  }
}

// ---------------------------------------------------------------- block dot products

float dot_q4_1(const BlockQ4_1& w, const ActivationBlock32& a) {
  int32_t s = 0;
  for (int j = 0; j < 16; ++j) s += (w.qs[j] & 15) * a.qs[j] + (w.qs[j] >> 4) * a.qs[j + 16];
  return h2f(w.d) * a.d * static_cast<float>(s) + h2f(w.m) * a.s;
}

float dot_q5_0(const BlockQ5_0& w, const ActivationBlock32& a) {
  const uint32_t qh = load_u32(w.qh);
  int32_t s = 0;
  for (int j = 0; j < 32; ++j) s += (q5_value(w.qs, qh, j) - 16) * a.qs[j];
  return h2f(w.d) * a.d * static_cast<float>(s);
}

float dot_q5_1(const BlockQ5_1& w, const ActivationBlock32& a) {
  const uint32_t qh = load_u32(w.qh);
  int32_t s = 0;
  for (int j = 0; j < 32; ++j) s += q5_value(w.qs, qh, j) * a.qs[j];
  return h2f(w.d) * a.d * static_cast<float>(s) + h2f(w.m) * a.s;
}

float dot_iq4_nl(const BlockIQ4_NL& w, const ActivationBlock32& a) {
  int32_t s = 0;
  for (int j = 0; j < 16; ++j)
    s += kIq4nlValues[w.qs[j] & 15] * a.qs[j] + kIq4nlValues[w.qs[j] >> 4] * a.qs[j + 16];
  return h2f(w.d) * a.d * static_cast<float>(s);
}

float dot_q2_k(const BlockQ2_K& w, const ActivationBlockK& a) {
  int32_t s = 0, mins = 0;
  for (int j = 0; j < 16; ++j) {
    int32_t sub = 0;
    for (int e = 16 * j; e < 16 * j + 16; ++e) sub += q2_field(w.qs, e) * a.qs[e];
    s += (w.scales[j] & 15) * sub;
    mins += (w.scales[j] >> 4) * a.bsums[j];
  }
  return h2f(w.d) * a.d * static_cast<float>(s) - h2f(w.dmin) * a.d * static_cast<float>(mins);
}

float dot_q3_k(const BlockQ3_K& w, const ActivationBlockK& a) {
  uint8_t sc[16];
  unpack_scales_q3_k(w.scales, sc);
  int32_t s = 0;
  for (int j = 0; j < 16; ++j) {
    int32_t sub = 0;
    for (int e = 16 * j; e < 16 * j + 16; ++e) sub += q3_value(w, e) * a.qs[e];
    s += (sc[j] - 32) * sub;
  }
  return h2f(w.d) * a.d * static_cast<float>(s);
}

float dot_q4_k(const BlockQ4_K& w, const ActivationBlockK& a) {
  uint8_t sc[8], m[8];
  unpack_scales_k4(w.scales, sc, m);
  int32_t s = 0, mins = 0;
  for (int j = 0; j < 8; ++j) {
    int32_t sub = 0;
    for (int e = 32 * j; e < 32 * j + 32; ++e) sub += q4k_nibble(w.qs, e) * a.qs[e];
    s += sc[j] * sub;
    mins += m[j] * a.bsums32[j];
  }
  return h2f(w.d) * a.d * static_cast<float>(s) - h2f(w.dmin) * a.d * static_cast<float>(mins);
}

float dot_q5_k(const BlockQ5_K& w, const ActivationBlockK& a) {
  uint8_t sc[8], m[8];
  unpack_scales_k4(w.scales, sc, m);
  int32_t s = 0, mins = 0;
  for (int j = 0; j < 8; ++j) {
    int32_t sub = 0;
    for (int e = 32 * j; e < 32 * j + 32; ++e) sub += q5k_value(w, e) * a.qs[e];
    s += sc[j] * sub;
    mins += m[j] * a.bsums32[j];
  }
  return h2f(w.d) * a.d * static_cast<float>(s) - h2f(w.dmin) * a.d * static_cast<float>(mins);
}

float dot_q6_k(const BlockQ6_K& w, const ActivationBlockK& a) {
  int32_t s = 0;
  for (int j = 0; j < 16; ++j) {
    int32_t sub = 0;
    for (int e = 16 * j; e < 16 * j + 16; ++e) sub += (q6k_value(w, e) - 32) * a.qs[e];
    s += w.scales[j] * sub;
  }
  return h2f(w.d) * a.d * static_cast<float>(s);
}

template <class B>
const B& as(const void* p) {
  return *static_cast<const B*>(p);
}

}  // namespace

bool is_extra_quant_type(GgmlType type) {
  switch (type) {
    case GgmlType::kQ4_1:
    case GgmlType::kQ5_0:
    case GgmlType::kQ5_1:
    case GgmlType::kIQ4_NL:
    case GgmlType::kQ2_K:
    case GgmlType::kQ3_K:
    case GgmlType::kQ4_K:
    case GgmlType::kQ5_K:
    case GgmlType::kQ6_K:
      return true;
    default:
      return false;
  }
}

void dequantize_extra_ref(GgmlType type, const void* x, float* out, int64_t n) {
  const int64_t nb = n / ggml_type_info(type)->block_size;
  switch (type) {
    case GgmlType::kQ4_1: return dequantize_q4_1(static_cast<const BlockQ4_1*>(x), out, nb);
    case GgmlType::kQ5_0: return dequantize_q5_0(static_cast<const BlockQ5_0*>(x), out, nb);
    case GgmlType::kQ5_1: return dequantize_q5_1(static_cast<const BlockQ5_1*>(x), out, nb);
    case GgmlType::kIQ4_NL: return dequantize_iq4_nl(static_cast<const BlockIQ4_NL*>(x), out, nb);
    case GgmlType::kQ2_K: return dequantize_q2_k(static_cast<const BlockQ2_K*>(x), out, nb);
    case GgmlType::kQ3_K: return dequantize_q3_k(static_cast<const BlockQ3_K*>(x), out, nb);
    case GgmlType::kQ4_K: return dequantize_q4_k(static_cast<const BlockQ4_K*>(x), out, nb);
    case GgmlType::kQ5_K: return dequantize_q5_k(static_cast<const BlockQ5_K*>(x), out, nb);
    case GgmlType::kQ6_K: return dequantize_q6_k(static_cast<const BlockQ6_K*>(x), out, nb);
    default: CHECK(false, "dequantize_extra_ref: type %u", static_cast<unsigned>(type));
  }
}

void quantize_extra_ref(GgmlType type, const float* x, void* out, int64_t n) {
  const int64_t nb = n / ggml_type_info(type)->block_size;
  switch (type) {
    case GgmlType::kQ4_1: return quantize_q4_1(x, static_cast<BlockQ4_1*>(out), nb);
    case GgmlType::kQ5_0: return quantize_q5_0(x, static_cast<BlockQ5_0*>(out), nb);
    case GgmlType::kQ5_1: return quantize_q5_1(x, static_cast<BlockQ5_1*>(out), nb);
    case GgmlType::kIQ4_NL: return quantize_iq4_nl(x, static_cast<BlockIQ4_NL*>(out), nb);
    case GgmlType::kQ2_K: return quantize_q2_k(x, static_cast<BlockQ2_K*>(out), nb);
    case GgmlType::kQ3_K: return quantize_q3_k(x, static_cast<BlockQ3_K*>(out), nb);
    case GgmlType::kQ4_K: return quantize_q4_k(x, static_cast<BlockQ4_K*>(out), nb);
    case GgmlType::kQ5_K: return quantize_q5_k(x, static_cast<BlockQ5_K*>(out), nb);
    case GgmlType::kQ6_K: return quantize_q6_k(x, static_cast<BlockQ6_K*>(out), nb);
    default: CHECK(false, "quantize_extra_ref: type %u", static_cast<unsigned>(type));
  }
}

void quantize_activations32_ref(const float* x, int64_t n_blocks, int bias_mul,
                                ActivationBlock32* out) {
  for (int64_t b = 0; b < n_blocks; ++b, x += 32) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    int32_t sum = 0;
    for (int j = 0; j < 32; ++j) {
      out[b].qs[j] = static_cast<int8_t>(std::nearbyint(x[j] * id));
      sum += out[b].qs[j];
    }
    // Scales rounded to fp16 as llama.cpp's Q8_0 / Q8_1 blocks store them (s from the
    // unrounded d), so that products match llama.cpp's to float rounding.
    out[b].d = fp16_to_fp32(fp32_to_fp16(amax / 127.0f));
    out[b].s = fp16_to_fp32(fp32_to_fp16(amax / 127.0f * static_cast<float>(sum)));
    out[b].bias[0] = -bias_mul * sum;
    out[b].bias[1] = out[b].bias[2] = out[b].bias[3] = 0;
    out[b].unused[0] = out[b].unused[1] = 0.0f;
  }
}

void quantize_activations_k_ref(const float* x, int64_t n_blocks, ActivationBlockK* out) {
  for (int64_t b = 0; b < n_blocks; ++b, x += kQK_K) {
    ActivationBlockK& o = out[b];
    float amax = 0.0f, m = 0.0f;
    for (int j = 0; j < kQK_K; ++j) {
      if (std::fabs(x[j]) > amax) amax = std::fabs(x[j]), m = x[j];
    }
    const float iscale = amax > 0.0f ? -127.0f / m : 0.0f;
    for (int j = 0; j < kQK_K; ++j)
      o.qs[j] = static_cast<int8_t>(std::min(127, nearest(iscale * x[j])));
    for (int j = 0; j < 16; ++j) {
      int s = 0;
      for (int i = 0; i < 16; ++i) s += o.qs[16 * j + i];
      o.bsums[j] = static_cast<int16_t>(s);
    }
    for (int j = 0; j < 8; ++j) o.bsums32[j] = static_cast<int16_t>(o.bsums[2 * j] + o.bsums[2 * j + 1]);
    o.d = amax > 0.0f ? 1.0f / iscale : 0.0f;
    o.unused[0] = o.unused[1] = o.unused[2] = 0.0f;
  }
}

float block_dot_ref(GgmlType type, const uint8_t* w, const void* act) {
  switch (type) {
    case GgmlType::kQ4_1: return dot_q4_1(as<BlockQ4_1>(w), as<ActivationBlock32>(act));
    case GgmlType::kQ5_0: return dot_q5_0(as<BlockQ5_0>(w), as<ActivationBlock32>(act));
    case GgmlType::kQ5_1: return dot_q5_1(as<BlockQ5_1>(w), as<ActivationBlock32>(act));
    case GgmlType::kIQ4_NL: return dot_iq4_nl(as<BlockIQ4_NL>(w), as<ActivationBlock32>(act));
    case GgmlType::kQ2_K: return dot_q2_k(as<BlockQ2_K>(w), as<ActivationBlockK>(act));
    case GgmlType::kQ3_K: return dot_q3_k(as<BlockQ3_K>(w), as<ActivationBlockK>(act));
    case GgmlType::kQ4_K: return dot_q4_k(as<BlockQ4_K>(w), as<ActivationBlockK>(act));
    case GgmlType::kQ5_K: return dot_q5_k(as<BlockQ5_K>(w), as<ActivationBlockK>(act));
    case GgmlType::kQ6_K: return dot_q6_k(as<BlockQ6_K>(w), as<ActivationBlockK>(act));
    default: CHECK(false, "block_dot_ref: type %u", static_cast<unsigned>(type));
  }
  return 0.0f;
}

}  // namespace frugal::kernels
