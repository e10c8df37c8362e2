// Quantization: round-trip error bounds per type (derived below) and fp16/bf16 conversions
// against known bit patterns, including subnormals, infinities, NaN and rounding ties.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/ggml_type.h"
#include "kernels/matmul_internal.h"
#include "kernels/ops.h"
#include "kernels/ops_ref.h"

namespace frugal {
namespace {

using kernels::dequantize_row;
using kernels::quantize_row;

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

std::vector<float> test_row(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& f : x) f = dist(rng);
  // Blocks with very different ranges, a zero block and a constant block.
  for (int j = 0; j < 32; ++j) x[32 + j] *= 1e-3f, x[64 + j] = 0.0f, x[96 + j] = -2.5f;
  return x;
}

TEST(Fp16, KnownBitPatterns) {
  EXPECT_EQ(fp32_to_fp16(1.0f), 0x3c00);
  EXPECT_EQ(fp32_to_fp16(-2.0f), 0xc000);
  EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7bff);               // largest finite half
  EXPECT_EQ(fp32_to_fp16(65519.0f), 0x7bff);               // below the halfway point
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7c00);               // halfway, ties to even: inf
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);  // tie between 0 and 1 ulp: even
  EXPECT_EQ(fp32_to_fp16(std::ldexp(3.0f, -25)), 0x0002);  // tie between 1 and 2 ulps: even
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1023.0f, -24)), 0x03ff);  // largest subnormal
  EXPECT_EQ(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);       // tie: stays even
  EXPECT_EQ(fp32_to_fp16(1.0f + std::ldexp(3.0f, -11)), 0x3c02);       // tie: rounds up to even
  EXPECT_EQ(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11) * 1.01f), 0x3c01);  // above tie
  EXPECT_EQ(fp32_to_fp16(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(fp32_to_fp16(-std::numeric_limits<float>::infinity()), 0xfc00);
  const uint16_t nan = fp32_to_fp16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x03ff, 0);
  EXPECT_EQ(fp32_to_fp16(-0.0f), 0x8000);
  EXPECT_EQ(fp32_to_fp16(1e-10f), 0x0000);  // underflows to zero

  EXPECT_EQ(fp16_to_fp32(0x3c00), 1.0f);
  EXPECT_EQ(fp16_to_fp32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(fp16_to_fp32(0x03ff), std::ldexp(1023.0f, -24));
  EXPECT_EQ(fp16_to_fp32(0x8001), -std::ldexp(1.0f, -24));
  EXPECT_EQ(fp16_to_fp32(0x7bff), 65504.0f);
  EXPECT_EQ(fp16_to_fp32(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(fp16_to_fp32(0x7e00)));
  EXPECT_EQ(bits_of(fp16_to_fp32(0x8000)), 0x80000000u);

  // Every finite half survives a round trip exactly.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00) == 0x7c00) continue;
    ASSERT_EQ(fp32_to_fp16(fp16_to_fp32(static_cast<uint16_t>(h))), h) << std::hex << h;
  }
}

TEST(Bf16, KnownBitPatterns) {
  EXPECT_EQ(fp32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(fp32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);  // tie: stays even
  EXPECT_EQ(fp32_to_bf16(1.0f + std::ldexp(3.0f, -8)), 0x3f82);  // tie: rounds up to even
  EXPECT_EQ(fp32_to_bf16(float_of(0x3f808001)), 0x3f81);         // just above the tie
  EXPECT_EQ(fp32_to_bf16(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(fp32_to_bf16(std::numeric_limits<float>::max()), 0x7f80);  // rounds to inf
  EXPECT_EQ(fp32_to_bf16(float_of(0x00010000)), 0x0001);  // subnormal kept
  EXPECT_EQ(fp32_to_bf16(float_of(0x00018000)), 0x0002);  // subnormal tie to even
  const uint16_t nan = fp32_to_bf16(float_of(0x7f800001));  // a NaN whose payload is cut off
  EXPECT_EQ(nan & 0x7f80, 0x7f80);
  EXPECT_NE(nan & 0x007f, 0) << "NaN must not become infinity";
  EXPECT_EQ(bf16_to_fp32(0x3f80), 1.0f);
  EXPECT_EQ(bf16_to_fp32(0xc040), -3.0f);
  EXPECT_EQ(bits_of(bf16_to_fp32(0x0001)), 0x00010000u);
}

TEST(Quantize, F16AndBf16RowsRoundToNearest) {
  const std::vector<float> x = test_row(256, 1);
  std::vector<uint16_t> q(256);
  std::vector<float> back(256);
  quantize_row(GgmlType::kF16, x.data(), q.data(), 256);
  dequantize_row(GgmlType::kF16, q.data(), back.data(), 256);
  for (int i = 0; i < 256; ++i) {  // half precision: 11 significant bits (normal range)
    if (std::fabs(x[i]) > 6.2e-5f) {
      ASSERT_LE(std::fabs(back[i] - x[i]), std::ldexp(std::fabs(x[i]), -11));
    }
  }
  quantize_row(GgmlType::kBF16, x.data(), q.data(), 256);
  dequantize_row(GgmlType::kBF16, q.data(), back.data(), 256);
  for (int i = 0; i < 256; ++i) ASSERT_LE(std::fabs(back[i] - x[i]), std::ldexp(std::fabs(x[i]), -8));
  quantize_row(GgmlType::kF32, x.data(), back.data(), 256);
  EXPECT_EQ(back, x);
}

// Q8_0: d = amax / 127, so x / d lies in [-127, 127] and rounding moves it by at most 1/2:
// |x - d q| <= d / 2. The stored scale is dh = fp16(d), which adds |q| |d - dh| <= 127 |d - dh|.
TEST(Quantize, Q8_0RoundTripWithinHalfAStep) {
  const int64_t n = 32 * 40;
  const std::vector<float> x = test_row(n, 2);
  std::vector<BlockQ8_0> q(n / 32);
  std::vector<float> back(n);
  quantize_row(GgmlType::kQ8_0, x.data(), q.data(), n);
  dequantize_row(GgmlType::kQ8_0, q.data(), back.data(), n);
  for (int64_t b = 0; b < n / 32; ++b) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    const float d = amax / 127.0f;
    const float dh = fp16_to_fp32(q[b].d);
    const float bound = d / 2 + 127 * std::fabs(d - dh) + 1e-7f * amax;
    for (int j = 0; j < 32; ++j) {
      ASSERT_LE(std::fabs(back[b * 32 + j] - x[b * 32 + j]), bound) << "block " << b;
      ASSERT_GE(q[b].qs[j], -127);
    }
  }
}

// Q4_0: m is the value of largest magnitude and d = m / -8, so x / d lies in [-8, 8] and m maps
// to exactly -8 (nibble 0). Rounding gives |x - d (q - 8)| <= |d| / 2 except where x / d > 7.5,
// which rounds to 8, is clamped to nibble 15 (value 7) and so may be off by up to |d| (at
// x = -m exactly). The fp16 scale adds |q - 8| |d - dh| <= 8 |d - dh|.
TEST(Quantize, Q4_0RoundTripWithinDerivedBound) {
  const int64_t n = 32 * 40;
  std::vector<float> x = test_row(n, 3);
  // Block 4 holds both 3 and -3: whichever is m, the other is -m, the clamped worst case.
  for (int j = 128; j < 160; ++j) x[j] = std::clamp(x[j], -2.9f, 2.9f);
  x[128] = 3.0f, x[129] = -3.0f;
  std::vector<BlockQ4_0> q(n / 32);
  std::vector<float> back(n);
  quantize_row(GgmlType::kQ4_0, x.data(), q.data(), n);
  dequantize_row(GgmlType::kQ4_0, q.data(), back.data(), n);
  for (int64_t b = 0; b < n / 32; ++b) {
    float m = 0;
    for (int j = 0; j < 32; ++j)
      if (std::fabs(x[b * 32 + j]) > std::fabs(m)) m = x[b * 32 + j];
    const float d = m / -8.0f;
    const float dh = fp16_to_fp32(q[b].d);
    const float fp16_err = 8 * std::fabs(d - dh) + 1e-6f * std::fabs(m);
    for (int j = 0; j < 32; ++j) {
      const float xv = x[b * 32 + j];
      const float err = std::fabs(back[b * 32 + j] - xv);
      const bool clamped = d != 0 && xv / d > 7.5f;
      ASSERT_LE(err, (clamped ? std::fabs(d) : std::fabs(d) / 2) + fp16_err) << b << "," << j;
    }
  }
  // The clamped case really costs a full step (d = 3/8: -m comes back as 7 d = 2.625 in
  // magnitude) while m itself is exact, so the bound above is tight.
  const float d4 = fp16_to_fp32(q[4].d);
  EXPECT_NEAR(std::fabs(back[128] - x[128]) + std::fabs(back[129] - x[129]), std::fabs(d4), 1e-6f);
}

TEST(Quantize, DequantizeKnownBlocks) {
  BlockQ4_0 b4;
  b4.d = fp32_to_fp16(0.5f);
  for (int j = 0; j < 16; ++j) b4.qs[j] = static_cast<uint8_t>((j & 0x0f) | ((15 - j) << 4));
  float out[32];
  dequantize_row(GgmlType::kQ4_0, &b4, out, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(out[j], 0.5f * (j - 8));  // low nibble -> element j
    EXPECT_EQ(out[j + 16], 0.5f * (7 - j));  // high nibble -> element j + 16
  }
  BlockQ8_0 b8;
  b8.d = fp32_to_fp16(0.25f);
  for (int j = 0; j < 32; ++j) b8.qs[j] = static_cast<int8_t>(j * 8 - 128);
  dequantize_row(GgmlType::kQ8_0, &b8, out, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(out[j], 0.25f * (j * 8 - 128));
}

TEST(Quantize, ActivationQuantizationRoundsToNearestStep) {
  const std::vector<float> x = test_row(128, 4);
  std::vector<int8_t> q(128);
  std::vector<float> d(4);
  kernels::quantize_activations_ref(x.data(), 128, q.data(), d.data());
  // The integers round x / s to nearest with s = max|x| / 127; the stored d is s rounded to
  // fp16 (as llama.cpp stores it), which adds |q| |s - d| <= 127 |s - d|: 2^-11 relative for a
  // normal half, up to 2^-25 absolute where s is below fp16's normal range (block 1's 1e-3).
  for (int i = 0; i < 128; ++i) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[i / 32 * 32 + j]));
    const float s = amax / 127;
    ASSERT_LE(std::fabs(d[i / 32] * q[i] - x[i]), s / 2 * 1.0001f + 127 * std::fabs(s - d[i / 32]));
    ASSERT_LE(std::fabs(s - d[i / 32]), std::max(s / 2048, std::ldexp(1.0f, -25)));
    ASSERT_LE(std::abs(int{q[i]}), 127);
    ASSERT_EQ(fp16_to_fp32(fp32_to_fp16(d[i / 32])), d[i / 32]) << "d is an fp16 value";
  }
}


// ---- Q4_1, Q5_0, Q5_1, IQ4_NL and the K-quants -------------------------------------------------
//
// Every format stores, per (sub-)block, a grid of representable values: offset + step * k for
// integers k in [k_min, k_max] (IQ4_NL: step * table[k]). The quantizers pick the block's
// scales by a least-squares search and then round each element to the NEAREST grid value of
// the scales as stored, so: (a) each element comes back as its nearest grid value, which (b)
// for an element inside the grid's range is within step / 2; the search may trade a few
// clipped extremes for a finer step, so (c) bounds the clipped fraction and (d) the relative
// RMS error, which for rounding uniform over one step is step / sqrt(12) / RMS(x) (~ range /
// (levels - 1) / sqrt(12) for a sub-block of Gaussian values; the limits below are that
// estimate for blocks of 16 / 32 Gaussian samples with ~15 % headroom).

struct Grid {
  float step, offset;
  int k_min, k_max;
};

uint16_t u16_at(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// The grid of element e of the block at `b` (e counts from the block start).
Grid grid_of(GgmlType type, const uint8_t* b, int e) {
  const float h0 = fp16_to_fp32(u16_at(b));
  switch (type) {
    case GgmlType::kQ4_1: return {h0, fp16_to_fp32(u16_at(b + 2)), 0, 15};
    case GgmlType::kQ5_1: return {h0, fp16_to_fp32(u16_at(b + 2)), 0, 31};
    case GgmlType::kQ5_0: return {h0, -16 * h0, 0, 31};
    case GgmlType::kQ2_K: {
      const auto& q = *reinterpret_cast<const BlockQ2_K*>(b);
      const uint8_t s = q.scales[e / 16];
      return {fp16_to_fp32(q.d) * (s & 15), -fp16_to_fp32(q.dmin) * (s >> 4), 0, 3};
    }
    case GgmlType::kQ3_K: {
      const auto& q = *reinterpret_cast<const BlockQ3_K*>(b);
      uint8_t s[16];
      unpack_scales_q3_k(q.scales, s);
      return {fp16_to_fp32(q.d) * (s[e / 16] - 32), 0.0f, -4, 3};
    }
    case GgmlType::kQ4_K:
    case GgmlType::kQ5_K: {
      const auto& q = *reinterpret_cast<const BlockQ4_K*>(b);  // same header in both
      uint8_t sc[8], m[8];
      unpack_scales_k4(q.scales, sc, m);
      return {fp16_to_fp32(q.d) * sc[e / 32], -fp16_to_fp32(q.dmin) * m[e / 32], 0,
              type == GgmlType::kQ4_K ? 15 : 31};
    }
    case GgmlType::kQ6_K: {
      const auto& q = *reinterpret_cast<const BlockQ6_K*>(b);
      return {fp16_to_fp32(q.d) * q.scales[e / 16], 0.0f, -32, 31};
    }
    default: ADD_FAILURE() << "no grid for this type"; return {};
  }
}

struct RoundTripCase {
  GgmlType type;
  double max_rel_rms;  // (d) on the Gaussian blocks
  double max_clipped = 0.02;  // (c): a 2- or 3-bit grid fitted for least squares clips ~6 %
};

class ExtraTypeRoundTrip : public ::testing::TestWithParam<RoundTripCase> {};

TEST_P(ExtraTypeRoundTrip, NearestGridValueWithinHalfAStep) {
  const GgmlType type = GetParam().type;
  const GgmlTypeInfo* info = ggml_type_info(type);
  const int64_t bs = info->block_size, n = 256 * 24;
  std::vector<float> x = test_row(n, 7);
  // Whole super-blocks: zero, constant, all-positive, and one with a single outlier.
  for (int j = 0; j < 256; ++j) {
    x[256 * 2 + j] = 0.0f;
    x[256 * 3 + j] = 0.75f;
    x[256 * 4 + j] = std::fabs(x[256 * 4 + j]) + 0.5f;
    x[256 * 5 + j] *= 0.01f;
  }
  x[256 * 5 + 17] = 3.0f;
  std::vector<uint8_t> q(static_cast<size_t>(ggml_row_bytes(type, n)));
  std::vector<float> back(n);
  quantize_row(type, x.data(), q.data(), n);
  dequantize_row(type, q.data(), back.data(), n);
  int clipped = 0;
  double err2 = 0, ref2 = 0;
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* blk = q.data() + (i / bs) * info->type_size;
    const int e = static_cast<int>(i % bs);
    const float xv = x[i], err = std::fabs(back[i] - xv);
    if (i >= 256 * 6) err2 += double{err} * err, ref2 += double{xv} * xv;
    if (type == GgmlType::kIQ4_NL) {  // (a) against the table
      const float d = fp16_to_fp32(u16_at(blk));
      for (int8_t v : kIq4nlValues) ASSERT_LE(err, std::fabs(d * v - xv) * (1 + 1e-6f) + 1e-7f);
      continue;
    }
    const Grid g = grid_of(type, blk, e);
    const float s = std::fabs(g.step);
    float nearest_err = INFINITY;
    for (int k = g.k_min; k <= g.k_max; ++k)
      nearest_err = std::min(nearest_err, std::fabs(g.offset + g.step * k - xv));
    const float slack = 1e-6f * (std::fabs(xv) + std::fabs(g.offset) + s * 32) + 1e-7f;
    ASSERT_LE(err, nearest_err + slack) << "element " << i << " is not at its nearest grid value";
    const float lo = std::min(g.offset + g.step * g.k_min, g.offset + g.step * g.k_max);
    const float hi = std::max(g.offset + g.step * g.k_min, g.offset + g.step * g.k_max);
    if (xv >= lo - s / 2 && xv <= hi + s / 2) {
      ASSERT_LE(err, s / 2 + slack) << "element " << i;  // (b)
    } else {
      ++clipped;
    }
  }
  // The special blocks come back exactly (zero) or nearly so (constant: one grid value).
  for (int j = 0; j < 256; ++j) ASSERT_EQ(back[256 * 2 + j], 0.0f);
  for (int j = 0; j < 256; ++j) ASSERT_NEAR(back[256 * 3 + j], 0.75f, 0.75f * 2e-3f);
  EXPECT_NEAR(back[256 * 5 + 17], 3.0f, 3.0f * 0.1f) << "the outlier keeps its size";
  EXPECT_LE(clipped, GetParam().max_clipped * n) << "(c) clipped elements";
  const double rel = std::sqrt(err2 / ref2);
  std::printf("%s: relative RMS error %.4f on Gaussian blocks, %d clipped\n", info->name, rel,
              clipped);
  EXPECT_LE(rel, GetParam().max_rel_rms) << "(d)";
  EXPECT_GT(rel, GetParam().max_rel_rms / 4) << "(d) suspiciously exact";
}

// Limits: step / sqrt(12) / sigma with step = (expected range of the block) / levels; the
// expected range of 32 (16) standard normal samples is 4.1 (3.5); +15 %.
INSTANTIATE_TEST_SUITE_P(
    Types, ExtraTypeRoundTrip,
    ::testing::Values(RoundTripCase{GgmlType::kQ4_1, 4.1 / 15 / 3.464 * 1.15},
                      RoundTripCase{GgmlType::kQ5_1, 4.1 / 31 / 3.464 * 1.15},
                      RoundTripCase{GgmlType::kQ5_0, 2 * 2.05 / 31 / 3.464 * 1.25},
                      RoundTripCase{GgmlType::kIQ4_NL, 4.1 / 15 / 3.464 * 1.15},
                      RoundTripCase{GgmlType::kQ2_K, 3.5 / 3 / 3.464 * 1.15, 0.1},
                      RoundTripCase{GgmlType::kQ3_K, 3.5 / 7 / 3.464 * 1.15, 0.1},
                      RoundTripCase{GgmlType::kQ4_K, 4.1 / 15 / 3.464 * 1.15},
                      RoundTripCase{GgmlType::kQ5_K, 4.1 / 31 / 3.464 * 1.15},
                      RoundTripCase{GgmlType::kQ6_K, 3.5 / 63 / 3.464 * 1.15}),
    [](const auto& info) { return std::string(ggml_type_info(info.param.type)->name); });

TEST(Quantize, ActivationSuperBlocksAsLlamaCppQ8K) {
  // Q8_K: d = max / -127 with max the element of largest magnitude (its sign kept), so that
  // element becomes exactly -127; bsums are the sums of each 16 integers.
  std::vector<float> x = test_row(512, 9);
  x[300] = -9.0f;  // the largest magnitude of the second super-block, negative
  std::vector<kernels::ActivationBlockK> a(2);
  kernels::quantize_activations_k_ref(x.data(), 2, a.data());
  EXPECT_EQ(a[1].qs[300 - 256], -127);
  EXPECT_FLOAT_EQ(a[1].d, 9.0f / 127.0f);
  for (int b = 0; b < 2; ++b) {
    for (int j = 0; j < 16; ++j) {
      int s = 0;
      for (int i = 0; i < 16; ++i) s += a[b].qs[16 * j + i];
      ASSERT_EQ(a[b].bsums[j], s);
    }
    for (int i = 0; i < 256; ++i)
      ASSERT_LE(std::fabs(a[b].d * a[b].qs[i] - x[256 * b + i]), std::fabs(a[b].d) * 0.5001f);
  }
}

}  // namespace
}  // namespace frugal
