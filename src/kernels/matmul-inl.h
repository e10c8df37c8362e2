// Per-target matmul building blocks shared by the matmul_<type>.cpp files (Highway
// foreach_target include): a float-FMA tile for F32/F16/BF16 weights and an int8 tile for
// Q8_0/Q4_0 weights against activations quantized once per call (matmul_internal.h).
// Numbers must match matmul_ref (ops_ref.cpp) to float rounding; integer block sums exactly.

#if defined(FRUGAL_KERNELS_MATMUL_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef FRUGAL_KERNELS_MATMUL_INL_H_
#undef FRUGAL_KERNELS_MATMUL_INL_H_
#else
#define FRUGAL_KERNELS_MATMUL_INL_H_
#endif

#include <algorithm>
#include <array>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "hwy/highway.h"
#include "kernels/matmul_internal.h"

HWY_BEFORE_NAMESPACE();
#if HWY_TARGET == HWY_AVX3_DL
// Highway 1.0.3's AVX3_DL target string names the VEX "avxvnni", which Zen 4 lacks; the
// target is only chosen on CPUs with AVX512-VNNI, so enable that for the int8 kernels.
#pragma GCC target("avx512vnni")
#endif
// FRUGAL_DPBUSD (see DotU8I8): set on every pass, so that no pass sees an earlier one's.
#undef FRUGAL_DPBUSD
#if HWY_TARGET == HWY_AVX3_DL && !defined(__clang__)
#define FRUGAL_DPBUSD 1
#else
#define FRUGAL_DPBUSD 0
#endif
namespace frugal::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// ---------------------------------------------------------------- float weights

HWY_INLINE float WeightToFloat(float v) { return v; }
HWY_INLINE float WeightToFloat(hwy::float16_t v) {
  uint16_t bits;
  std::memcpy(&bits, &v, 2);
  return fp16_to_fp32(bits);
}
HWY_INLINE float WeightToFloat(hwy::bfloat16_t v) {
  uint16_t bits;
  std::memcpy(&bits, &v, 2);
  return bf16_to_fp32(bits);
}

template <class DF>
HWY_INLINE hn::VFromD<DF> LoadWeightsAsFloat(DF df, const float* p) {
  return hn::LoadU(df, p);
}
template <class DF>
HWY_INLINE hn::VFromD<DF> LoadWeightsAsFloat(DF df, const hwy::float16_t* p) {
  return hn::PromoteTo(df, hn::LoadU(hn::Rebind<hwy::float16_t, DF>(), p));
}
template <class DF>
HWY_INLINE hn::VFromD<DF> LoadWeightsAsFloat(DF df, const hwy::bfloat16_t* p) {
  return hn::PromoteTo(df, hn::LoadU(hn::Rebind<hwy::bfloat16_t, DF>(), p));
}

constexpr int kFloatTileRows = 4;
constexpr int kFloatTileTokens = 4;

// out [kT, kFloatTileRows] = x [kT, n_cols] · rows[r][0..n_cols). Each weight vector loaded is
// reused for kT tokens from registers; 4 x kT independent accumulators hide the FMA latency.
template <typename TW, int kT>
HWY_NOINLINE void FloatTile(const TW* const* rows, const float* x, int64_t n_cols, float* out) {
  const hn::ScalableTag<float> df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  using V = hn::VFromD<decltype(df)>;
  V acc[kFloatTileRows][kT];
  for (int r = 0; r < kFloatTileRows; ++r)
    for (int t = 0; t < kT; ++t) acc[r][t] = hn::Zero(df);
  int64_t c = 0;
  for (; c + n <= n_cols; c += n) {
    V w[kFloatTileRows];
    for (int r = 0; r < kFloatTileRows; ++r) w[r] = LoadWeightsAsFloat(df, rows[r] + c);
    for (int t = 0; t < kT; ++t) {
      const V xv = hn::LoadU(df, x + t * n_cols + c);
      for (int r = 0; r < kFloatTileRows; ++r) acc[r][t] = hn::MulAdd(w[r], xv, acc[r][t]);
    }
  }
  for (int t = 0; t < kT; ++t) {
    for (int r = 0; r < kFloatTileRows; ++r) {
      float s = hn::GetLane(hn::SumOfLanes(df, acc[r][t]));
      for (int64_t cc = c; cc < n_cols; ++cc) s += WeightToFloat(rows[r][cc]) * x[t * n_cols + cc];
      out[t * kFloatTileRows + r] = s;
    }
  }
}

template <typename TW>
void FloatRows(const WeightView& w, const float* x, int64_t n_tokens, float* y, int64_t r0,
               int64_t r1) {
  const int64_t rb = w.row_bytes();
  const auto* base = static_cast<const uint8_t*>(w.data);
  for (int64_t tc = 0; tc < n_tokens; tc += kTokenChunk) {
    const int64_t tn = std::min(kTokenChunk, n_tokens - tc);
    for (int64_t rg = r0; rg < r1; rg += kFloatTileRows) {
      // Rows past the end repeat the last valid row; their results are dropped.
      const TW* rows[kFloatTileRows];
      for (int r = 0; r < kFloatTileRows; ++r)
        rows[r] = reinterpret_cast<const TW*>(base + std::min(rg + r, r1 - 1) * rb);
      const int64_t n_valid = std::min<int64_t>(kFloatTileRows, r1 - rg);
      for (int64_t t = 0; t < tn; t += kFloatTileTokens) {
        const int64_t nt = std::min<int64_t>(kFloatTileTokens, tn - t);
        const float* xt = x + (tc + t) * w.n_cols;
        float out[kFloatTileTokens * kFloatTileRows];
        switch (nt) {
          case 1: FloatTile<TW, 1>(rows, xt, w.n_cols, out); break;
          case 2: FloatTile<TW, 2>(rows, xt, w.n_cols, out); break;
          case 3: FloatTile<TW, 3>(rows, xt, w.n_cols, out); break;
          default: FloatTile<TW, 4>(rows, xt, w.n_cols, out); break;
        }
        for (int64_t tt = 0; tt < nt; ++tt)
          for (int64_t r = 0; r < n_valid; ++r)
            y[(tc + t + tt) * w.n_rows + rg + r] = out[tt * kFloatTileRows + r];
      }
    }
  }
}

template <typename TW>
void MatmulFloat(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                 ThreadPool* pool) {
  auto work = [&](int64_t r0, int64_t r1, int) { FloatRows<TW>(w, x, n_tokens, y, r0, r1); };
  if (pool != nullptr) {
    pool->parallel_for(w.n_rows, parallel_grain(w.n_cols * n_tokens, kRowGrain), work);
  } else {
    work(0, w.n_rows, 0);
  }
}

// ---------------------------------------------------------------- activation quantization

// Quantizes one token's activations x [n_blocks * 32] into blocks (see quantize_activations_ref,
// whose integers and scales this reproduces exactly) with bias = -kBiasMul * sum(qs).
template <int kBiasMul>
void QuantizeActivations(const float* x, int64_t n_blocks, ActivationBlock* out, float* d) {
  const hn::ScalableTag<float> df;
  const hn::RebindToSigned<decltype(df)> di;
  const hn::Rebind<int8_t, decltype(df)> di8;
  const size_t n = hn::Lanes(df);
  for (int64_t b = 0; b < n_blocks; ++b) {
    const float* xb = x + b * 32;
    auto vmax = hn::Zero(df);
    for (size_t j = 0; j < 32; j += n) vmax = hn::Max(vmax, hn::Abs(hn::LoadU(df, xb + j)));
    const float amax = hn::GetLane(hn::MaxOfLanes(df, vmax));
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    d[b] = fp16_to_fp32(fp32_to_fp16(amax / 127.0f));  // llama.cpp keeps Q8_0's d as fp16
    const auto vid = hn::Set(df, id);
    auto vsum = hn::Zero(di);
    for (size_t j = 0; j < 32; j += n) {
      const auto q = hn::NearestInt(hn::Mul(hn::LoadU(df, xb + j), vid));
      vsum = hn::Add(vsum, q);
      hn::StoreU(hn::DemoteTo(di8, q), di8, out[b].qs + j);
    }
    out[b].bias[0] = -kBiasMul * hn::GetLane(hn::SumOfLanes(di, vsum));
    out[b].bias[1] = out[b].bias[2] = out[b].bias[3] = 0;
  }
}

// ---------------------------------------------------------------- int8 block kernels

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
#define FRUGAL_INT8_VECTOR_KERNELS 1

// A vector holds one 16-byte chunk of kQRows weight rows, one row per 128-bit lane; each
// activation chunk is broadcast to every 128-bit lane, so lane group r accumulates row r.
constexpr int kQRows = HWY_TARGET == HWY_AVX2 ? 2 : 4;
using DU8 = hn::Simd<uint8_t, 16 * kQRows, 0>;
using DI8 = hn::Simd<int8_t, 16 * kQRows, 0>;
using DI32 = hn::Simd<int32_t, 4 * kQRows, 0>;
using DF32 = hn::Simd<float, 4 * kQRows, 0>;
using VU8 = hn::VFromD<DU8>;
using VI8 = hn::VFromD<DI8>;
using VI32 = hn::VFromD<DI32>;
using VF32 = hn::VFromD<DF32>;

// acc[i] += sum over the 4 bytes j of lane i: u[4i+j] * s[4i+j] (u unsigned, s signed).
// Highway 1.0.3 has no u8 x i8 dot product, hence the intrinsics. Without VNNI the pairwise
// int16 sums saturate beyond 32767, so callers keep |u * s| pairs below that (u <= 128).
// Highway 1.0.3's AVX3_DL target names "avxvnni", not "avx512vnni": GCC accepts the 512-bit
// VNNI intrinsic under it, clang (the fuzz and sanitizer builds) does not, so clang takes the
// maddubs path, which gives the same sums under the callers' bound.
//
// FRUGAL_DPBUSD says this pass has the unsaturated product. The kernels that bias signed
// weights to unsigned (w + 128: Q8_0, IQ4_NL, the 16-row Q8_0 tile) need it — through maddubs
// their pairs reach 2 * 255 * 127 and saturate — so without it they take the |w| * sign(w) x
// form that every other target uses.
// (FRUGAL_DPBUSD itself is set at the top of this file, on every foreach_target pass.)
HWY_INLINE VI32 DotU8I8(VI32 acc, VU8 u, VI8 s) {
#if FRUGAL_DPBUSD
  return VI32{_mm512_dpbusd_epi32(acc.raw, u.raw, s.raw)};
#elif HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  const __m512i pairs = _mm512_maddubs_epi16(u.raw, s.raw);
  return hn::Add(acc, VI32{_mm512_madd_epi16(pairs, _mm512_set1_epi16(1))});
#else
  const __m256i pairs = _mm256_maddubs_epi16(u.raw, s.raw);
  return hn::Add(acc, VI32{_mm256_madd_epi16(pairs, _mm256_set1_epi16(1))});
#endif
}

// Bytes [offset, offset + 16) of each row's block, row r in 128-bit lane r.
HWY_INLINE VU8 LoadRowChunks(const uint8_t* const* p, int offset) {
  const hn::Full128<uint8_t> d128;
#if HWY_TARGET == HWY_AVX2
  return hn::Combine(DU8(), hn::LoadU(d128, p[1] + offset), hn::LoadU(d128, p[0] + offset));
#else
  const hn::Full256<uint8_t> d256;
  return hn::Combine(DU8(),
                     hn::Combine(d256, hn::LoadU(d128, p[3] + offset), hn::LoadU(d128, p[2] + offset)),
                     hn::Combine(d256, hn::LoadU(d128, p[1] + offset), hn::LoadU(d128, p[0] + offset)));
#endif
}

struct SpreadIndices {
  int32_t idx[4 * kQRows];
  SpreadIndices() {
    for (int i = 0; i < 4 * kQRows; ++i) idx[i] = i / 4;
  }
};

// Each row's fp16 block scale (the first two bytes of its block) spread over its lane group.
HWY_INLINE VF32 RowScales(const uint8_t* const* p, const int32_t* spread) {
  // Packed in a general register: four 2-byte stores read back as one 8-byte load would
  // miss store forwarding.
  uint64_t packed = 0;
  for (int r = 0; r < kQRows; ++r) {
    uint16_t s;
    std::memcpy(&s, p[r], 2);
    packed |= uint64_t{s} << (16 * r);
  }
  const hn::Simd<uint64_t, 1, 0> d64;
  const hn::Simd<hwy::float16_t, 4, 0> dh4;
  const hn::Full128<float> d4;
  const auto v4 = hn::PromoteTo(d4, hn::BitCast(dh4, hn::Set(d64, packed)));
#if HWY_TARGET == HWY_AVX2
  const auto wide = hn::ZeroExtendVector(DF32(), v4);
#else
  const auto wide = hn::ZeroExtendVector(DF32(), hn::ZeroExtendVector(hn::Full256<float>(), v4));
#endif
  return hn::TableLookupLanes(wide, hn::SetTableIndices(DF32(), spread));
}

// Decode reads every weight once, from DRAM. The kQRows rows of a tile lie back to back, so
// the next tiles' rows follow the last one: at block b of this tile, stream-prefetch the
// matching bytes of the next tile into L1 and of the tile after it into L2, at the rate this
// tile consumes bytes. Four interleaved short row streams alone keep too few misses in
// flight (1-thread Q4_0 decode on Zen 4: 8 GB/s without the L1 prefetch, 19 GB/s with it);
// the L2 prefetch a tile further adds 5-8 % for Q4_0/Q8_0 and 15 % for the K-quants on the
// Intel Xeon (AVX-512 FP16/VNNI) dev VM, whose cores each stream at most ~15 GB/s.
template <int64_t kBlockBytes>
HWY_INLINE void PrefetchNextTiles(const uint8_t* last_row, int64_t n_blocks, int64_t b) {
  const int64_t tile_bytes = n_blocks * kQRows * kBlockBytes;
  const uint8_t* next = last_row + (n_blocks + b * kQRows) * kBlockBytes;
  for (int64_t off = 0; off < kQRows * kBlockBytes; off += 64) {
    __builtin_prefetch(next + off);
    __builtin_prefetch(next + tile_bytes + off, 0, 1);
  }
}

struct Q4_0Kernel {
  static constexpr int64_t kBlockBytes = 18;
  static constexpr int kBiasMul = 8;  // nibbles are stored as value + 8
  struct Regs {
    VU8 lo, hi;
  };
  static HWY_INLINE Regs Load(const uint8_t* const* p) {
    const VU8 v = LoadRowChunks(p, 2);
    const VU8 mask = hn::Set(DU8(), 0x0f);
    const hn::RepartitionToWide<DU8> du16;
    return {hn::And(v, mask), hn::And(hn::BitCast(DU8(), hn::ShiftRight<4>(hn::BitCast(du16, v))),
                                      mask)};
  }
  static HWY_INLINE VI32 Dot(VI32 acc, const Regs& w, VI8 xa, VI8 xb) {
    return DotU8I8(DotU8I8(acc, w.lo, xa), w.hi, xb);
  }
};

struct Q8_0Kernel {
  static constexpr int64_t kBlockBytes = 34;
#if FRUGAL_DPBUSD
  // VNNI multiplies unsigned by signed bytes without saturation: use w + 128 and subtract
  // 128 * sum(x) through the activation bias.
  static constexpr int kBiasMul = 128;
  struct Regs {
    VU8 a, b;
  };
  static HWY_INLINE Regs Load(const uint8_t* const* p) {
    const VU8 flip = hn::Set(DU8(), 0x80);
    return {hn::Xor(LoadRowChunks(p, 2), flip), hn::Xor(LoadRowChunks(p, 18), flip)};
  }
  static HWY_INLINE VI32 Dot(VI32 acc, const Regs& w, VI8 xa, VI8 xb) {
    return DotU8I8(DotU8I8(acc, w.a, xa), w.b, xb);
  }
#else
  // maddubs saturates int16 pair sums: use |w| * (x with w's sign), at most 2 * 128 * 127.
  static constexpr int kBiasMul = 0;
  struct Regs {
    VU8 a, b;
    VI8 sa, sb;
  };
  static HWY_INLINE Regs Load(const uint8_t* const* p) {
    const VI8 sa = hn::BitCast(DI8(), LoadRowChunks(p, 2));
    const VI8 sb = hn::BitCast(DI8(), LoadRowChunks(p, 18));
    return {hn::BitCast(DU8(), hn::Abs(sa)), hn::BitCast(DU8(), hn::Abs(sb)), sa, sb};
  }
  static HWY_INLINE VI32 Dot(VI32 acc, const Regs& w, VI8 xa, VI8 xb) {
    acc = DotU8I8(acc, w.a, hn::IfNegativeThenElse(w.sa, hn::Neg(xa), xa));
    return DotU8I8(acc, w.b, hn::IfNegativeThenElse(w.sb, hn::Neg(xb), xb));
  }
#endif
};

constexpr int kQuantTileTokens = 4;

// out [kT, kQRows] = the activations of kT tokens · kQRows weight rows (row starts `rows`).
// `xq` / `xd` point at the first token's blocks; tokens are n_blocks apart.
// `prefetch`: this tile is the first to read its rows (from DRAM), so it pulls the next
// tiles' rows; the tiles of later tokens find them in L1.
template <class K, int kT>
HWY_NOINLINE void QuantTile(const uint8_t* const* rows, int64_t n_blocks,
                            const ActivationBlock* xq, const float* xd, bool prefetch,
                            float* out) {
  static const SpreadIndices spread;
  const DF32 df;
  const DI32 di32;
  const DI8 di8;
  VF32 acc[kT];
  for (int t = 0; t < kT; ++t) acc[t] = hn::Zero(df);
  const uint8_t* p[kQRows];
  for (int r = 0; r < kQRows; ++r) p[r] = rows[r];
  for (int64_t b = 0; b < n_blocks; ++b) {
    if (prefetch) PrefetchNextTiles<K::kBlockBytes>(rows[kQRows - 1], n_blocks, b);
    const typename K::Regs regs = K::Load(p);
    const VF32 ws = RowScales(p, spread.idx);
    for (int r = 0; r < kQRows; ++r) p[r] += K::kBlockBytes;
    for (int t = 0; t < kT; ++t) {
      const ActivationBlock& a = xq[t * n_blocks + b];
      VI32 isum = hn::LoadDup128(di32, a.bias);
      isum = K::Dot(isum, regs, hn::LoadDup128(di8, a.qs), hn::LoadDup128(di8, a.qs + 16));
      acc[t] = hn::MulAdd(hn::ConvertTo(df, isum), hn::Mul(ws, hn::Set(df, xd[t * n_blocks + b])),
                          acc[t]);
    }
  }
  HWY_ALIGN float buf[4 * kQRows];
  for (int t = 0; t < kT; ++t) {
    hn::Store(acc[t], df, buf);
    for (int r = 0; r < kQRows; ++r)
      out[t * kQRows + r] = (buf[4 * r] + buf[4 * r + 1]) + (buf[4 * r + 2] + buf[4 * r + 3]);
  }
}

#if FRUGAL_DPBUSD
// Q8_0 on AVX-512 VNNI, for batches as for one token: a tile is 16 weight rows, one row per
// int32 lane, so one vpdpbusd against a broadcast 4-byte group of a token's activations
// advances 16 row sums, and each (row, token) costs one float convert and FMA per block
// instead of one per 4 rows. The rows' blocks are transposed in registers (three shuffle
// levels), once per block for up to kQ8Tokens tokens. Each (row, token) sum is
// acc = fma(float(isum_b), d_w[b] * d_x[b], acc) over the blocks b in order, whatever the
// tile holds, so a token's outputs do not depend on the other tokens of the batch.
constexpr int kQ8Rows = 16;
constexpr int kQ8Tokens = 16;

// The 16-row VNNI tiles' walk (Q8_0 here, Q4_K and Q6_K in their files): for the 16-row
// groups g that rows [r0, r1) fall in, and the tiles of up to kTokens tokens of each
// kTokenChunk, calls tile(g, lanes, t, nt) with t the tile's first token and nt its token
// count. `lanes` masks the group's rows inside the range: a thread's range need not start on
// a group. t % kTokenChunk == 0 marks the first tile to read a group in a chunk.
template <int kTokens, class Tile>
HWY_INLINE void ForEachGroup16(int64_t r0, int64_t r1, int64_t n_tokens, const Tile& tile) {
  static_assert(kTokenChunk % kTokens == 0);
  for (int64_t tc = 0; tc < n_tokens; tc += kTokenChunk) {
    const int64_t tn = std::min(kTokenChunk, n_tokens - tc);
    for (int64_t g = r0 / 16; g * 16 < r1; ++g) {
      const int64_t lo = std::max(r0, g * 16) - g * 16;
      const int64_t hi = std::min(r1, (g + 1) * 16) - g * 16;
      const auto lanes = static_cast<__mmask16>(((1u << hi) - 1u) & ~((1u << lo) - 1u));
      for (int64_t t = 0; t < tn; t += kTokens)
        tile(g, lanes, tc + t, std::min<int64_t>(kTokens, tn - t));
    }
  }
}

// w[k] lane i = bytes 4k .. 4k + 3 of the 32 quants of row i's block (p[i] = block start),
// as unsigned w + 128.
HWY_INLINE void LoadQ8Transposed(const uint8_t* const* p, __m512i* w) {
  // z[j] = [row j | row j + 4] for j < 4 and [row j + 4 | row j + 8] above: the order that
  // leaves row i in lane i after the three levels below.
  __m512i z[8], t[8];
  for (int j = 0; j < 8; ++j) {
    const int lo = j < 4 ? j : j + 4;
    z[j] = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p[lo] + 2))),
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p[lo + 4] + 2)), 1);
  }
  for (int j = 0; j < 8; j += 2) {
    t[j] = _mm512_unpacklo_epi32(z[j], z[j + 1]);
    t[j + 1] = _mm512_unpackhi_epi32(z[j], z[j + 1]);
  }
  // u[k] (and u[k + 4] for the rows in z[4..7]): dword k in 128-bit chunks 0 and 2, k + 4 in
  // chunks 1 and 3.
  const __m512i u[8] = {_mm512_unpacklo_epi64(t[0], t[2]), _mm512_unpackhi_epi64(t[0], t[2]),
                        _mm512_unpacklo_epi64(t[1], t[3]), _mm512_unpackhi_epi64(t[1], t[3]),
                        _mm512_unpacklo_epi64(t[4], t[6]), _mm512_unpackhi_epi64(t[4], t[6]),
                        _mm512_unpacklo_epi64(t[5], t[7]), _mm512_unpackhi_epi64(t[5], t[7])};
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int k = 0; k < 4; ++k) {
    w[k] = _mm512_xor_si512(_mm512_shuffle_i64x2(u[k], u[k + 4], 0x88), flip);
    w[k + 4] = _mm512_xor_si512(_mm512_shuffle_i64x2(u[k], u[k + 4], 0xDD), flip);
  }
}

HWY_INLINE __m512i Dpbusd(__m512i acc, __m512i u, __m512i s) {
  return DotU8I8(VI32{acc}, VU8{u}, VI8{s}).raw;
}

// One token's block b against the tile's 16 rows: w[k] lane i holds quants 4k .. 4k + 3 of
// row i as w + 128, wd the rows' scales. Each activation group is a broadcast load of its own.
template <class Act>  // ActivationBlock or ActivationBlock32: qs and bias alike
HWY_INLINE void Q8TokenBlock(const __m512i* w, __m512 wd, const Act& a, float xd, __m512& acc) {
  __m512i s = _mm512_set1_epi32(a.bias[0]);
#pragma GCC unroll 8
  for (int k = 0; k < 8; ++k)
    s = Dpbusd(s, w[k], _mm512_broadcastd_epi32(_mm_loadu_si32(a.qs + 4 * k)));
  acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(wd, _mm512_set1_ps(xd)), acc);
}

// y[t * n_rows + i] for the kT tokens and the n_valid rows of the tile (row i's block b at
// rows[i] + 34 b); `xq` / `xd` point at the first token's blocks, tokens n_blocks apart.
// `prefetch`: this tile is the first to read its rows, so it pulls the next tiles' rows.
template <int kT>
HWY_NOINLINE void Q8Tile16(const uint8_t* const* rows, int64_t n_blocks,
                           const ActivationBlock* xq, const float* xd, bool prefetch,
                           int64_t n_valid, int64_t n_rows, float* y) {
  constexpr int64_t kBlockBytes = 34;
  alignas(64) int32_t offsets[kQ8Rows];
  for (int i = 0; i < kQ8Rows; ++i) offsets[i] = static_cast<int32_t>(rows[i] - rows[0]);
  const __m512i gather_idx = _mm512_load_si512(offsets);
  __m512 acc[kT];
  for (int t = 0; t < kT; ++t) acc[t] = _mm512_setzero_ps();
  const uint8_t* p[kQ8Rows];
  for (int i = 0; i < kQ8Rows; ++i) p[i] = rows[i];
  // The next tiles' rows follow the last row (see PrefetchNextTiles).
  const uint8_t* next = rows[kQ8Rows - 1] + n_blocks * kBlockBytes;
  const int64_t tile_bytes = n_blocks * kQ8Rows * kBlockBytes;
  for (int64_t b = 0; b < n_blocks; ++b) {
    if (prefetch) {
      const uint8_t* at = next + b * kQ8Rows * kBlockBytes;
      for (int64_t off = 0; off < kQ8Rows * kBlockBytes; off += 64) {
        __builtin_prefetch(at + off);
        __builtin_prefetch(at + tile_bytes + off, 0, 1);
      }
    }
    __m512i w[8];
    LoadQ8Transposed(p, w);
    // Each row's fp16 scale d: the low half of the first dword of its block.
    const __m512 wd = _mm512_cvtph_ps(
        _mm512_cvtepi32_epi16(_mm512_i32gather_epi32(gather_idx, p[0], 1)));
    for (int i = 0; i < kQ8Rows; ++i) p[i] += kBlockBytes;
#pragma GCC unroll 16
    for (int t = 0; t < kT; ++t) Q8TokenBlock(w, wd, xq[t * n_blocks + b], xd[t * n_blocks + b], acc[t]);
  }
  const __mmask16 valid = static_cast<__mmask16>((1u << n_valid) - 1u);
  for (int t = 0; t < kT; ++t) _mm512_mask_storeu_ps(y + t * n_rows, valid, acc[t]);
}

using Q8TileFn = void (*)(const uint8_t* const*, int64_t, const ActivationBlock*, const float*,
                         bool, int64_t, int64_t, float*);
template <size_t... kI>
constexpr std::array<Q8TileFn, sizeof...(kI)> MakeQ8Tiles(std::index_sequence<kI...>) {
  return {&Q8Tile16<static_cast<int>(kI) + 1>...};
}
// Q8Tile16<n> for n = 1 .. kQ8Tokens, at index n - 1.
constexpr std::array<Q8TileFn, kQ8Tokens> kQ8Tiles =
    MakeQ8Tiles(std::make_index_sequence<kQ8Tokens>());

// The 16-row tile over 32-element blocks interleaved at load (WeightView::interleaved; the
// layouts are interleave_rows's in ops.cpp), for Q8_0, Q4_0 and Q5_0: a group of 16 rows holds
// its blocks' quants, L::kQuantBytes a block, then the blocks' scales, 32 bytes a block (row
// i's fp16 at 2 i). L::Load(q, w) builds a block's eight vectors from its quants: w[k] lane
// i = elements 4k .. 4k + 3 of row i as unsigned bytes, the stored value + L's bias (the
// activation block's `bias` takes the bias times sum(x) back off). So a block is a few vector
// loads and one convert: no transposes, no gather, and one pointer instead of 16, which leaves
// the registers to the kT accumulators. `lanes` masks the rows of the group to store.
//
// Q8_0: 512 bytes a block, the vectors themselves (w + 128).
struct Q8Lanes {
  static constexpr int64_t kBlockBytes = 34, kQuantBytes = 512;
  static HWY_INLINE void Load(const uint8_t* q, __m512i* w) {
    for (int k = 0; k < 8; ++k) w[k] = _mm512_loadu_si512(q + 64 * k);
  }
};

// Q4_0: 256 bytes a block; vector m's byte 4 i + j holds element 4 m + j of row i in its low
// nibble and element 16 + 4 m + j in its high one (the value + 8, as the file stores it).
struct Q4Lanes {
  static constexpr int64_t kBlockBytes = 18, kQuantBytes = 256;
  static HWY_INLINE void Load(const uint8_t* q, __m512i* w) {
    const __m512i low = _mm512_set1_epi8(0x0f);
    for (int m = 0; m < 4; ++m) {
      const __m512i v = _mm512_loadu_si512(q + 64 * m);
      w[m] = _mm512_and_si512(v, low);
      w[m + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
    }
  }
};

// The activation scale of block i: ActivationBlock keeps it beside the blocks (xd),
// ActivationBlock32 inside.
HWY_INLINE float ActScale(const ActivationBlock*, const float* xd, int64_t i) { return xd[i]; }
HWY_INLINE float ActScale(const ActivationBlock32* xq, const float*, int64_t i) { return xq[i].d; }

template <class L, class Act, int kT>
HWY_NOINLINE void Tile16Blocks32(const uint8_t* group, int64_t n_blocks, const Act* xq,
                                 const float* xd, bool prefetch, __mmask16 lanes, int64_t n_rows,
                                 float* y) {
  const int64_t group_bytes = n_blocks * kQ8Rows * L::kBlockBytes;
  const uint8_t* qs = group;
  const uint8_t* sc = group + n_blocks * L::kQuantBytes;
  __m512 acc[kT];
  for (int t = 0; t < kT; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < n_blocks; ++b) {
    if (prefetch) {
      // The next group into L1, the one after into L2, at this group's own pace.
      for (int64_t off = 0; off < L::kQuantBytes; off += 64) {
        __builtin_prefetch(qs + group_bytes + off);
        __builtin_prefetch(qs + 2 * group_bytes + off, 0, 1);
      }
      if (b % 2 == 0) {
        __builtin_prefetch(sc + group_bytes);
        __builtin_prefetch(sc + 2 * group_bytes, 0, 1);
      }
    }
    __m512i w[8];
    L::Load(qs, w);
    const __m512 wd = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sc)));
    qs += L::kQuantBytes;
    sc += 32;
#pragma GCC unroll 16
    for (int t = 0; t < kT; ++t) {
      const int64_t i = t * n_blocks + b;
      Q8TokenBlock(w, wd, xq[i], ActScale(xq, xd, i), acc[t]);
    }
  }
  for (int t = 0; t < kT; ++t) _mm512_mask_storeu_ps(y + t * n_rows, lanes, acc[t]);
}

// The groups that rows [r0, r1) fall in, storing only the rows inside the range; `xd` as in
// ActScale.
template <class L, class Act>
void Rows16Blocks32(const WeightView& w, const Act* xq, const float* xd, int64_t n_tokens,
                    float* y, int64_t r0, int64_t r1) {
  // Tile16Blocks32<L, Act, n> for n = 1 .. kQ8Tokens, at index n - 1.
  static constexpr auto kTiles = []<size_t... kI>(std::index_sequence<kI...>) {
    return std::array{&Tile16Blocks32<L, Act, static_cast<int>(kI) + 1>...};
  }(std::make_index_sequence<kQ8Tokens>());
  const int64_t n_blocks = w.n_cols / 32;
  const int64_t group_bytes = kQ8Rows * w.row_bytes();
  const auto* base = static_cast<const uint8_t*>(w.data);
  ForEachGroup16<kQ8Tokens>(r0, r1, n_tokens, [&](int64_t g, __mmask16 lanes, int64_t t, int64_t nt) {
    kTiles[nt - 1](base + g * group_bytes, n_blocks, xq + t * n_blocks,
                   xd == nullptr ? nullptr : xd + t * n_blocks, t % kTokenChunk == 0, lanes,
                   w.n_rows, y + t * w.n_rows + g * kQ8Rows);
  });
}

// QuantRows for Q8_0 in tiles of 16 rows x up to kQ8Tokens tokens.
inline void Q8Rows16(const WeightView& w, const ActivationBlock* xq, const float* xd,
                     int64_t n_tokens, float* y, int64_t r0, int64_t r1) {
  if (w.interleaved) return Rows16Blocks32<Q8Lanes>(w, xq, xd, n_tokens, y, r0, r1);
  const int64_t rb = w.row_bytes();
  const int64_t n_blocks = w.n_cols / 32;
  const auto* base = static_cast<const uint8_t*>(w.data);
  for (int64_t tc = 0; tc < n_tokens; tc += kTokenChunk) {
    const int64_t tn = std::min(kTokenChunk, n_tokens - tc);
    for (int64_t rg = r0; rg < r1; rg += kQ8Rows) {
      // Rows past the end repeat the last valid row; their results are not stored.
      const uint8_t* rows[kQ8Rows];
      for (int r = 0; r < kQ8Rows; ++r) rows[r] = base + std::min(rg + r, r1 - 1) * rb;
      const int64_t n_valid = std::min<int64_t>(kQ8Rows, r1 - rg);
      for (int64_t t = 0; t < tn; t += kQ8Tokens) {
        const int64_t nt = std::min<int64_t>(kQ8Tokens, tn - t);
        const int64_t off = (tc + t) * n_blocks;
        float* yt = y + (tc + t) * w.n_rows + rg;
        kQ8Tiles[nt - 1](rows, n_blocks, xq + off, xd + off, t == 0, n_valid, w.n_rows, yt);
      }
    }
  }
}
#endif  // HWY_AVX3_DL

template <class K>
void QuantRows(const WeightView& w, const ActivationBlock* xq, const float* xd, int64_t n_tokens,
               float* y, int64_t r0, int64_t r1) {
#if FRUGAL_DPBUSD
  if constexpr (std::is_same_v<K, Q8_0Kernel>) return Q8Rows16(w, xq, xd, n_tokens, y, r0, r1);
  if constexpr (std::is_same_v<K, Q4_0Kernel>) {
    if (w.interleaved) return Rows16Blocks32<Q4Lanes>(w, xq, xd, n_tokens, y, r0, r1);
  }
#endif
  CHECK(!w.interleaved, "matmul: this SIMD target reads no interleaved %s weights",
        ggml_type_info(w.type)->name);
  const int64_t rb = w.row_bytes();
  const int64_t n_blocks = w.n_cols / 32;
  const auto* base = static_cast<const uint8_t*>(w.data);
  for (int64_t tc = 0; tc < n_tokens; tc += kTokenChunk) {
    const int64_t tn = std::min(kTokenChunk, n_tokens - tc);
    for (int64_t rg = r0; rg < r1; rg += kQRows) {
      const uint8_t* rows[kQRows];
      for (int r = 0; r < kQRows; ++r) rows[r] = base + std::min(rg + r, r1 - 1) * rb;
      const int64_t n_valid = std::min<int64_t>(kQRows, r1 - rg);
      for (int64_t t = 0; t < tn; t += kQuantTileTokens) {
        const int64_t nt = std::min<int64_t>(kQuantTileTokens, tn - t);
        const int64_t off = (tc + t) * n_blocks;
        float out[kQuantTileTokens * kQRows];
        switch (nt) {
          case 1: QuantTile<K, 1>(rows, n_blocks, xq + off, xd + off, t == 0, out); break;
          case 2: QuantTile<K, 2>(rows, n_blocks, xq + off, xd + off, t == 0, out); break;
          case 3: QuantTile<K, 3>(rows, n_blocks, xq + off, xd + off, t == 0, out); break;
          default: QuantTile<K, 4>(rows, n_blocks, xq + off, xd + off, t == 0, out); break;
        }
        for (int64_t tt = 0; tt < nt; ++tt)
          for (int64_t r = 0; r < n_valid; ++r)
            y[(tc + t + tt) * w.n_rows + rg + r] = out[tt * kQRows + r];
      }
    }
  }
}

#else  // targets without the int8 kernels (HWY_SCALAR): plain loops, same arithmetic

struct Q4_0Kernel {
  static constexpr int kBiasMul = 8;
  static int32_t BlockDot(const uint8_t* blk, const int8_t* xq, float* wd) {
    BlockQ4_0 b;
    std::memcpy(&b, blk, sizeof(b));
    *wd = fp16_to_fp32(b.d);
    int32_t s = 0;
    for (int j = 0; j < 16; ++j)
      s += ((b.qs[j] & 0x0f) - 8) * int32_t{xq[j]} + ((b.qs[j] >> 4) - 8) * int32_t{xq[j + 16]};
    return s;
  }
};
struct Q8_0Kernel {
  static constexpr int kBiasMul = 0;
  static int32_t BlockDot(const uint8_t* blk, const int8_t* xq, float* wd) {
    BlockQ8_0 b;
    std::memcpy(&b, blk, sizeof(b));
    *wd = fp16_to_fp32(b.d);
    int32_t s = 0;
    for (int j = 0; j < 32; ++j) s += int32_t{b.qs[j]} * xq[j];
    return s;
  }
};

template <class K>
void QuantRows(const WeightView& w, const ActivationBlock* xq, const float* xd, int64_t n_tokens,
               float* y, int64_t r0, int64_t r1) {
  CHECK(!w.interleaved, "matmul: this SIMD target reads no interleaved %s weights",
        ggml_type_info(w.type)->name);
  const int64_t rb = w.row_bytes();
  const int64_t bb = ggml_type_info(w.type)->type_size;
  const int64_t n_blocks = w.n_cols / 32;
  const auto* base = static_cast<const uint8_t*>(w.data);
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t r = r0; r < r1; ++r) {
      float sum = 0.0f;
      for (int64_t b = 0; b < n_blocks; ++b) {
        float wd;
        const int32_t s = K::BlockDot(base + r * rb + b * bb, xq[t * n_blocks + b].qs, &wd);
        sum += static_cast<float>(s) * (wd * xd[t * n_blocks + b]);
      }
      y[t * w.n_rows + r] = sum;
    }
  }
}

#endif  // int8 vector kernels

template <class K>
void MatmulQuant(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                 ThreadPool* pool) {
  const int64_t n_blocks = w.n_cols / 32;
  // Scratch grows to the largest call seen and is then reused: no allocation once warm.
  thread_local std::vector<ActivationBlock> xq_buf;
  thread_local std::vector<float> xd_buf;
  const size_t need = static_cast<size_t>(n_tokens * n_blocks);
  if (xq_buf.size() < need) {
    xq_buf.resize(need);
    xd_buf.resize(need);
  }
  ActivationBlock* xq = xq_buf.data();
  float* xd = xd_buf.data();
  auto quantize = [&](int64_t t0, int64_t t1, int) {
    for (int64_t t = t0; t < t1; ++t)
      QuantizeActivations<K::kBiasMul>(x + t * w.n_cols, n_blocks, xq + t * n_blocks,
                                       xd + t * n_blocks);
  };
  auto work = [&](int64_t r0, int64_t r1, int) { QuantRows<K>(w, xq, xd, n_tokens, y, r0, r1); };
  if (pool != nullptr) {
    if (n_tokens >= 8) {
      pool->parallel_for(n_tokens, parallel_grain(w.n_cols), quantize);
    } else {
      quantize(0, n_tokens, 0);
    }
    pool->parallel_for(w.n_rows, parallel_grain(w.n_cols * n_tokens, kRowGrain), work);
  } else {
    quantize(0, n_tokens, 0);
    work(0, w.n_rows, 0);
  }
}

}  // namespace frugal::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard (toggle)
