// Per-target building blocks of the matmul kernels for Q4_1, Q5_0, Q5_1, IQ4_NL and the
// K-quants (Highway foreach_target include, after matmul-inl.h). Each matmul_<type>.cpp
// defines a kernel struct K that unpacks its blocks; this file runs it over a tile of kQRows
// weight rows (one row per 128-bit lane, as the Q4_0/Q8_0 tile) and up to 4 tokens.
//
// A kernel K provides:
//   kType, kBlockBytes, kBiasMul, Act (ActivationBlock32 or ActivationBlockK);
//   on x86 targets also
//   Header LoadHeader(p, spread): the block's scales for the kQRows rows starting at p[r];
//   template <int kT> Dot(p, header, a, isum): isum[t] += the block's integer sums against
//     token t's activation block *a[t] (each row's sum spread over its four int32 lanes);
//   VF32 Finish(acc, isum, header, a): acc + the block's float contribution.
// Numbers must match block_dot_ref (quants_ref.cpp) to float rounding, integer sums exactly.

#if defined(FRUGAL_KERNELS_MATMUL_BLOCKS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef FRUGAL_KERNELS_MATMUL_BLOCKS_INL_H_
#undef FRUGAL_KERNELS_MATMUL_BLOCKS_INL_H_
#else
#define FRUGAL_KERNELS_MATMUL_BLOCKS_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <vector>

#include "hwy/highway.h"
#include "kernels/matmul-inl.h"
#include "kernels/matmul_internal.h"
#include "util/check.h"

HWY_BEFORE_NAMESPACE();
#if HWY_TARGET == HWY_AVX3_DL
#pragma GCC target("avx512vnni")  // see matmul-inl.h
#endif
namespace frugal::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Whether this target has the int8 vector kernels (matmul-inl.h's x86 targets). Set again on
// every pass of foreach_target.
#undef FRUGAL_BLOCK_KERNELS
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
#define FRUGAL_BLOCK_KERNELS 1
#else
#define FRUGAL_BLOCK_KERNELS 0
#endif

template <class Act>
constexpr int64_t kActElems = sizeof(Act) == sizeof(ActivationBlockK) ? 256 : 32;

// ---------------------------------------------------------------- activation quantization

// x [n_blocks * 32] -> blocks with the integers of quantize_activations32_ref.
template <int kBiasMul>
void QuantizeActs(const float* x, int64_t n_blocks, ActivationBlock32* out) {
  const hn::ScalableTag<float> df;
  const hn::RebindToSigned<decltype(df)> di;
  const hn::Rebind<int8_t, decltype(df)> di8;
  const size_t n = hn::Lanes(df);
  for (int64_t b = 0; b < n_blocks; ++b, x += 32) {
    auto vmax = hn::Zero(df);
    for (size_t j = 0; j < 32; j += n) vmax = hn::Max(vmax, hn::Abs(hn::LoadU(df, x + j)));
    const float amax = hn::GetLane(hn::MaxOfLanes(df, vmax));
    const auto vid = hn::Set(df, amax > 0.0f ? 127.0f / amax : 0.0f);
    auto vsum = hn::Zero(di);
    for (size_t j = 0; j < 32; j += n) {
      const auto q = hn::NearestInt(hn::Mul(hn::LoadU(df, x + j), vid));
      vsum = hn::Add(vsum, q);
      hn::StoreU(hn::DemoteTo(di8, q), di8, out[b].qs + j);
    }
    const int32_t sum = hn::GetLane(hn::SumOfLanes(di, vsum));
    out[b].d = fp16_to_fp32(fp32_to_fp16(amax / 127.0f));
    out[b].s = fp16_to_fp32(fp32_to_fp16(amax / 127.0f * static_cast<float>(sum)));
    out[b].bias[0] = -kBiasMul * sum;
    out[b].bias[1] = out[b].bias[2] = out[b].bias[3] = 0;
  }
}

// x [n_blocks * 256] -> Q8_K super-blocks with the integers of quantize_activations_k_ref.
// Which of two opposite elements of largest magnitude sets the sign of d does not matter:
// it negates d and every qs, leaving each product d * qs unchanged.
template <int kBiasMul>
void QuantizeActs(const float* x, int64_t n_blocks, ActivationBlockK* out) {
  const hn::ScalableTag<float> df;
  const hn::RebindToSigned<decltype(df)> di;
  const hn::Rebind<int8_t, decltype(df)> di8;
  const size_t n = hn::Lanes(df);
  for (int64_t b = 0; b < n_blocks; ++b, x += kQK_K) {
    ActivationBlockK& o = out[b];
    auto vmax = hn::Zero(df);
    for (size_t j = 0; j < kQK_K; j += n) vmax = hn::Max(vmax, hn::Abs(hn::LoadU(df, x + j)));
    const float amax = hn::GetLane(hn::MaxOfLanes(df, vmax));
    float m = 0.0f;
    for (int j = 0; j < kQK_K && amax > 0.0f; ++j) {
      if (std::fabs(x[j]) == amax) {
        m = x[j];
        break;
      }
    }
    const float iscale = amax > 0.0f ? -127.0f / m : 0.0f;
    const auto vis = hn::Set(df, iscale);
    const auto top = hn::Set(di, 127);
    for (int j = 0; j < 16; ++j) {
      auto vsum = hn::Zero(di);
      for (size_t i = 0; i < 16; i += n) {
        const auto q = hn::Min(hn::NearestInt(hn::Mul(hn::LoadU(df, x + 16 * j + i), vis)), top);
        vsum = hn::Add(vsum, q);
        hn::StoreU(hn::DemoteTo(di8, q), di8, o.qs + 16 * j + i);
      }
      o.bsums[j] = static_cast<int16_t>(hn::GetLane(hn::SumOfLanes(di, vsum)));
    }
    for (int j = 0; j < 8; ++j)
      o.bsums32[j] = static_cast<int16_t>(o.bsums[2 * j] + o.bsums[2 * j + 1]);
    o.d = amax > 0.0f ? 1.0f / iscale : 0.0f;
  }
}

#if FRUGAL_BLOCK_KERNELS

using DU16 = hn::Simd<uint16_t, 8 * kQRows, 0>;
using DI16 = hn::Simd<int16_t, 8 * kQRows, 0>;
using VI16 = hn::VFromD<DI16>;

// Pairwise products: out[i] = u[2i] s[2i] + u[2i+1] s[2i+1] (u unsigned, s signed; int16
// saturation, so callers keep both products small), and int16 pairs into int32.
HWY_INLINE VI16 MulPairsU8I8(VU8 u, VI8 s) {
#if HWY_TARGET == HWY_AVX2
  return VI16{_mm256_maddubs_epi16(u.raw, s.raw)};
#else
  return VI16{_mm512_maddubs_epi16(u.raw, s.raw)};
#endif
}
HWY_INLINE VI32 MulPairsI16(VI16 a, VI16 b) {
#if HWY_TARGET == HWY_AVX2
  return VI32{_mm256_madd_epi16(a.raw, b.raw)};
#else
  return VI32{_mm512_madd_epi16(a.raw, b.raw)};
#endif
}
// acc + MulPairsI16(a, b): one VNNI instruction where there is one (the same int32
// wrap-around sums; FRUGAL_DPBUSD says this pass has VNNI, matmul-inl.h).
HWY_INLINE VI32 AddMulPairsI16(VI32 acc, VI16 a, VI16 b) {
#if FRUGAL_DPBUSD
  return VI32{_mm512_dpwssd_epi32(acc.raw, a.raw, b.raw)};
#else
  return hn::Add(acc, MulPairsI16(a, b));
#endif
}

// Byte shifts through 16-bit lanes: bits cross into the neighbouring byte, so callers mask
// the result to bits that came from the byte itself.
template <int kBits>
HWY_INLINE VU8 ShiftBytesRight(VU8 v) {
  return hn::BitCast(DU8(), hn::ShiftRight<kBits>(hn::BitCast(DU16(), v)));
}
template <int kBits>
HWY_INLINE VU8 ShiftBytesLeft(VU8 v) {
  return hn::BitCast(DU8(), hn::ShiftLeft<kBits>(hn::BitCast(DU16(), v)));
}
// Bit kFrom of every byte moved to bit kTo (other bits zero).
template <int kFrom, int kTo>
HWY_INLINE VU8 MoveBit(VU8 v) {
  VU8 shifted;
  if constexpr (kFrom > kTo) {
    shifted = ShiftBytesRight<kFrom - kTo>(v);
  } else if constexpr (kFrom < kTo) {
    shifted = ShiftBytesLeft<kTo - kFrom>(v);
  } else {
    shifted = v;
  }
  return hn::And(shifted, hn::Set(DU8(), static_cast<uint8_t>(1u << kTo)));
}
HWY_INLINE VU8 LowNibbles(VU8 v) { return hn::And(v, hn::Set(DU8(), 0x0f)); }
HWY_INLINE VU8 HighNibbles(VU8 v) { return hn::And(ShiftBytesRight<4>(v), hn::Set(DU8(), 0x0f)); }

// The same 16 bytes in every 128-bit lane (a shuffle pattern or an activation chunk).
HWY_INLINE VU8 Dup16(const uint8_t* p) { return hn::LoadDup128(DU8(), p); }
HWY_INLINE VI8 DupAct(const int8_t* p) { return hn::LoadDup128(DI8(), p); }
HWY_INLINE VI16 DupI16(const int16_t* p) { return hn::LoadDup128(DI16(), p); }

// Bytes [k0, k0 + 8) of each lane of v widened to int16 (zero-extended).
template <int kFirst>
HWY_INLINE VI16 WidenBytes(VU8 v) {
  alignas(16) static constexpr uint8_t kIdx[16] = {
      kFirst,     0x80, kFirst + 1, 0x80, kFirst + 2, 0x80, kFirst + 3, 0x80,
      kFirst + 4, 0x80, kFirst + 5, 0x80, kFirst + 6, 0x80, kFirst + 7, 0x80};
  return hn::BitCast(DI16(), hn::TableLookupBytesOr0(v, Dup16(kIdx)));
}
// As WidenBytes, sign-extended.
template <int kFirst>
HWY_INLINE VI16 WidenBytesSigned(VU8 v) {
  alignas(16) static constexpr uint8_t kIdx[16] = {
      0x80, kFirst,     0x80, kFirst + 1, 0x80, kFirst + 2, 0x80, kFirst + 3,
      0x80, kFirst + 4, 0x80, kFirst + 5, 0x80, kFirst + 6, 0x80, kFirst + 7};
  return hn::ShiftRight<8>(hn::BitCast(DI16(), hn::TableLookupBytesOr0(v, Dup16(kIdx))));
}

// Q4_K/Q5_K's 12 scale bytes of each row (the first 12 bytes of its lane) unpacked as
// unpack_scales_k4 does: byte j < 8 of a lane is sub-block j's scale, byte 8 + j its minimum.
HWY_INLINE VU8 UnpackScalesK4(VU8 raw) {
  alignas(16) static constexpr uint8_t kA[16] = {0, 1, 2, 3, 8, 9, 10, 11,
                                                 4, 5, 6, 7, 8, 9, 10, 11};
  alignas(16) static constexpr uint8_t kLowMask[16] = {63, 63, 63, 63, 15, 15, 15, 15,
                                                       63, 63, 63, 63, 0,  0,  0,  0};
  alignas(16) static constexpr uint8_t kHighMask[16] = {0, 0, 0, 0, 0,  0,  0,  0,
                                                        0, 0, 0, 0, 15, 15, 15, 15};
  alignas(16) static constexpr uint8_t kB[16] = {0x80, 0x80, 0x80, 0x80, 0, 1, 2, 3,
                                                 0x80, 0x80, 0x80, 0x80, 4, 5, 6, 7};
  const VU8 a = hn::TableLookupBytes(raw, Dup16(kA));
  const VU8 low = hn::And(a, Dup16(kLowMask));
  const VU8 high = hn::And(ShiftBytesRight<4>(a), Dup16(kHighMask));
  const VU8 top = hn::And(ShiftBytesRight<2>(hn::TableLookupBytesOr0(raw, Dup16(kB))),
                          hn::Set(DU8(), 0x30));
  return hn::Or(hn::Or(low, high), top);
}

// Q5_0/Q5_1: the 5-bit values of each row's block, elements 0..15 in *lo and 16..31 in *hi,
// from the row's 16 nibble bytes (`qs`) and its 4 bytes of fifth bits (first in `qh`'s lane).
HWY_INLINE void Q5Values(VU8 qs, VU8 qh, VU8* lo, VU8* hi) {
  alignas(16) static constexpr uint8_t kLoBytes[16] = {0, 0, 0, 0, 0, 0, 0, 0,
                                                       1, 1, 1, 1, 1, 1, 1, 1};
  alignas(16) static constexpr uint8_t kHiBytes[16] = {2, 2, 2, 2, 2, 2, 2, 2,
                                                       3, 3, 3, 3, 3, 3, 3, 3};
  alignas(16) static constexpr uint8_t kBits[16] = {1, 2, 4, 8, 16, 32, 64, 128,
                                                    1, 2, 4, 8, 16, 32, 64, 128};
  const VU8 bits = Dup16(kBits), fifth = hn::Set(DU8(), 0x10);
  const auto lo_set = hn::TestBit(hn::TableLookupBytes(qh, Dup16(kLoBytes)), bits);
  const auto hi_set = hn::TestBit(hn::TableLookupBytes(qh, Dup16(kHiBytes)), bits);
  *lo = hn::Or(LowNibbles(qs), hn::IfThenElseZero(lo_set, fifth));
  *hi = hn::Or(HighNibbles(qs), hn::IfThenElseZero(hi_set, fifth));
}

// Each row's fp16 at byte `offset` of its block, spread over the row's lane group.
HWY_INLINE VF32 RowHalfs(const uint8_t* const* p, int offset, const int32_t* spread) {
  uint64_t packed = 0;
  for (int r = 0; r < kQRows; ++r) {
    uint16_t s;
    std::memcpy(&s, p[r] + offset, 2);
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

// Two adjacent fp16 values at byte `offset` of each row's block (d and m, or d and dmin),
// each spread over the row's lane group: one conversion for both.
struct HalfPair {
  VF32 first, second;
};
HWY_INLINE HalfPair RowHalfPair(const uint8_t* const* p, int offset) {
  alignas(64) static constexpr int32_t kFirst[16] = {0, 0, 0, 0, 2, 2, 2, 2, 4, 4, 4, 4, 6, 6, 6, 6};
  alignas(64) static constexpr int32_t kSecond[16] = {1, 1, 1, 1, 3, 3, 3, 3,
                                                      5, 5, 5, 5, 7, 7, 7, 7};
  uint32_t v[kQRows];
  for (int r = 0; r < kQRows; ++r) std::memcpy(&v[r], p[r] + offset, 4);
  const hn::Full128<uint64_t> d64;
  const hn::Full128<hwy::float16_t> dh;
#if HWY_TARGET == HWY_AVX2
  const auto packed = hn::Set(d64, uint64_t{v[0]} | uint64_t{v[1]} << 32);  // 2 rows
  const auto halves = hn::PromoteTo(hn::Full128<float>(), hn::LowerHalf(hn::BitCast(dh, packed)));
  const VF32 wide = hn::ZeroExtendVector(DF32(), halves);
#else
  const auto packed = hn::InterleaveLower(d64, hn::Set(d64, uint64_t{v[0]} | uint64_t{v[1]} << 32),
                                          hn::Set(d64, uint64_t{v[2]} | uint64_t{v[3]} << 32));
  const auto halves = hn::PromoteTo(hn::Full256<float>(), hn::BitCast(dh, packed));
  const VF32 wide = hn::ZeroExtendVector(DF32(), halves);
#endif
  return {hn::TableLookupLanes(wide, hn::SetTableIndices(DF32(), kFirst)),
          hn::TableLookupLanes(wide, hn::SetTableIndices(DF32(), kSecond))};
}

// Interleaved weights (WeightView::interleaved, interleave_rows in ops.h): rows in groups of
// kQRows, and within a group block b's 16-byte chunk c of row r at
// group + b * kQRows * kBlockBytes + 16 * (kQRows * c + r). One vector load then holds a chunk
// of every row of the tile, where the plain layout takes kQRows loads and kQRows - 1 inserts:
// on Zen 4 those inserts made the Q4_K decode tile compute-bound (22 GB/s a core from L2,
// against 25 GB/s of DRAM bandwidth). For kernels whose blocks are whole chunks
// (kInterleaves); `block` is the current block of the group.
struct InterleavedRows {
  const uint8_t* block;
};
template <class K>
constexpr bool kCanInterleave = requires { K::kInterleaves; };
// A 16-row tile of the kernel's own over its own interleaved layout (Q4_K, Q6_K, Q5_0 on VNNI).
template <class K>
constexpr bool kHasRows16 = requires { &K::Rows16; };

#if FRUGAL_DPBUSD
// ---------------------------------------------------------------- 16-row super-block tiles

// The K-quant tiles on AVX-512 VNNI: 16 rows x up to 16 tokens, over weights interleaved by
// interleave_rows (ops.cpp) in groups of 16 rows, one row per 32-bit lane.
constexpr int kTileK16Rows = 16;
constexpr int kTileK16Tokens = 16;
using TileK16Fn = void (*)(const uint8_t* group, int64_t n_sb, const ActivationBlockK* xa,
                           bool prefetch, __mmask16 lanes, int64_t n_rows, float* y);

// The groups that rows [r0, r1) fall in, storing only the rows inside the range, through
// tiles[nt - 1] for a tile of nt tokens. `prefetch` marks the first tile over a group.
inline void RowsK16(const TileK16Fn* tiles, const WeightView& w, const ActivationBlockK* xa,
                    int64_t n_tokens, float* y, int64_t r0, int64_t r1) {
  const int64_t n_sb = w.n_cols / 256;
  const int64_t group_bytes = kTileK16Rows * w.row_bytes();
  const auto* base = static_cast<const uint8_t*>(w.data);
  ForEachGroup16<kTileK16Tokens>(r0, r1, n_tokens, [&](int64_t g, __mmask16 lanes, int64_t t, int64_t nt) {
    tiles[nt - 1](base + g * group_bytes, n_sb, xa + t * n_sb, t % kTokenChunk == 0, lanes,
                  w.n_rows, y + t * w.n_rows + g * kTileK16Rows);
  });
}
#endif  // FRUGAL_DPBUSD

// Bytes [kOffset, kOffset + 16) of each row's block, row r in 128-bit lane r, in either layout.
template <int kOffset>
HWY_INLINE VU8 RowChunks(const uint8_t* const* p) {
  return LoadRowChunks(p, kOffset);
}
template <int kOffset>
HWY_INLINE VU8 RowChunks(InterleavedRows q) {
  const uint8_t* chunk = q.block + (kOffset / 16) * 16 * kQRows;
  if constexpr (kOffset % 16 == 0) {
    return hn::LoadU(DU8(), chunk);
  } else {
    return hn::CombineShiftRightBytes<kOffset % 16>(DU8(), hn::LoadU(DU8(), chunk + 16 * kQRows),
                                                    hn::LoadU(DU8(), chunk));
  }
}
// RowHalfPair for bytes of the first chunk (offset + 4 <= 16).
HWY_INLINE HalfPair RowHalfPair(InterleavedRows q, int offset) {
  const uint8_t* p[kQRows];
  for (int r = 0; r < kQRows; ++r) p[r] = q.block + 16 * r;
  return RowHalfPair(p, offset);
}

// 1.0 in the first lane of each row's group, 0 elsewhere: adds a per-row term once.
HWY_INLINE VF32 FirstLaneOfRow() {
  alignas(64) static constexpr float kMask[16] = {1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0};
  return hn::Load(DF32(), kMask);
}

HWY_INLINE VI32 InitSum(const ActivationBlock32& a) { return hn::LoadDup128(DI32(), a.bias); }
HWY_INLINE VI32 InitSum(const ActivationBlockK&) { return hn::Zero(DI32()); }

// out [kT, kQRows] = the activations of kT tokens (blocks n_blocks apart) · kQRows rows:
// rows[r] starts row r, or with kInterleaved rows[0] starts the tile's interleaved group.
// `prefetch`: the first tile to read these rows pulls the next tiles' rows, whatever kT
// (small batches, a speculative verification's 2-16 tokens, stream weights from DRAM too).
template <class K, int kT, bool kInterleaved = false>
HWY_NOINLINE void BlockTile(const uint8_t* const* rows, int64_t n_blocks,
                            const typename K::Act* xa, bool prefetch, float* out) {
  static const SpreadIndices spread;
  const DF32 df;
  VF32 acc[kT];
  for (int t = 0; t < kT; ++t) acc[t] = hn::Zero(df);
  const uint8_t* p[kQRows];
  for (int r = 0; r < kQRows; ++r) p[r] = rows[r];
  // Either layout spans the same bytes, so the next tiles start at the same addresses.
  const uint8_t* last_row =
      kInterleaved ? rows[0] + (kQRows - 1) * n_blocks * K::kBlockBytes : rows[kQRows - 1];
  for (int64_t b = 0; b < n_blocks; ++b) {
    if (prefetch) PrefetchNextTiles<K::kBlockBytes>(last_row, n_blocks, b);
    const typename K::Act* a[kT];
    VI32 isum[kT];
    for (int t = 0; t < kT; ++t) {
      a[t] = xa + t * n_blocks + b;
      isum[t] = InitSum(*a[t]);
    }
    if constexpr (kInterleaved) {
      const InterleavedRows q{rows[0] + b * kQRows * K::kBlockBytes};
      const typename K::Header h = K::LoadHeader(q, spread.idx);
      K::template Dot<kT>(q, h, a, isum);
      for (int t = 0; t < kT; ++t) acc[t] = K::Finish(acc[t], isum[t], h, *a[t]);
    } else {
      const typename K::Header h = K::LoadHeader(p, spread.idx);
      K::template Dot<kT>(p, h, a, isum);
      for (int t = 0; t < kT; ++t) acc[t] = K::Finish(acc[t], isum[t], h, *a[t]);
      for (int r = 0; r < kQRows; ++r) p[r] += K::kBlockBytes;
    }
  }
  HWY_ALIGN float buf[4 * kQRows];
  for (int t = 0; t < kT; ++t) {
    hn::Store(acc[t], df, buf);
    for (int r = 0; r < kQRows; ++r)
      out[t * kQRows + r] = (buf[4 * r] + buf[4 * r + 1]) + (buf[4 * r + 2] + buf[4 * r + 3]);
  }
}

// The tiles of the interleaved groups that rows [r0, r1) fall in; rows of a group outside
// the range are computed and not written (a thread's range need not start on a group).
template <class K>
void InterleavedBlockRows(const WeightView& w, const typename K::Act* xa, int64_t n_tokens,
                          float* y, int64_t r0, int64_t r1) {
  const int64_t group_bytes = kQRows * w.row_bytes();
  const int64_t n_blocks = w.n_cols / kActElems<typename K::Act>;
  const auto* base = static_cast<const uint8_t*>(w.data);
  for (int64_t tc = 0; tc < n_tokens; tc += kTokenChunk) {
    const int64_t tn = std::min(kTokenChunk, n_tokens - tc);
    for (int64_t g = r0 / kQRows; g * kQRows < r1; ++g) {
      const uint8_t* rows[kQRows] = {base + g * group_bytes};
      const int64_t lo = std::max(r0, g * kQRows), hi = std::min(r1, (g + 1) * kQRows);
      for (int64_t t = 0; t < tn; t += kQuantTileTokens) {
        const int64_t nt = std::min<int64_t>(kQuantTileTokens, tn - t);
        const typename K::Act* xt = xa + (tc + t) * n_blocks;
        float out[kQuantTileTokens * kQRows];
        switch (nt) {
          case 1: BlockTile<K, 1, true>(rows, n_blocks, xt, t == 0, out); break;
          case 2: BlockTile<K, 2, true>(rows, n_blocks, xt, t == 0, out); break;
          case 3: BlockTile<K, 3, true>(rows, n_blocks, xt, t == 0, out); break;
          default: BlockTile<K, 4, true>(rows, n_blocks, xt, t == 0, out); break;
        }
        for (int64_t tt = 0; tt < nt; ++tt)
          for (int64_t r = lo; r < hi; ++r)
            y[(tc + t + tt) * w.n_rows + r] = out[tt * kQRows + (r - g * kQRows)];
      }
    }
  }
}

template <class K>
void BlockRows(const WeightView& w, const typename K::Act* xa, int64_t n_tokens, float* y,
               int64_t r0, int64_t r1) {
  if (w.interleaved) {
    if constexpr (kHasRows16<K>) {
      return K::Rows16(w, xa, n_tokens, y, r0, r1);
    } else if constexpr (kCanInterleave<K>) {
      return InterleavedBlockRows<K>(w, xa, n_tokens, y, r0, r1);
    }
  }
  const int64_t rb = w.row_bytes();
  const int64_t n_blocks = w.n_cols / kActElems<typename K::Act>;
  const auto* base = static_cast<const uint8_t*>(w.data);
  for (int64_t tc = 0; tc < n_tokens; tc += kTokenChunk) {
    const int64_t tn = std::min(kTokenChunk, n_tokens - tc);
    for (int64_t rg = r0; rg < r1; rg += kQRows) {
      const uint8_t* rows[kQRows];
      for (int r = 0; r < kQRows; ++r) rows[r] = base + std::min(rg + r, r1 - 1) * rb;
      const int64_t n_valid = std::min<int64_t>(kQRows, r1 - rg);
      for (int64_t t = 0; t < tn; t += kQuantTileTokens) {
        const int64_t nt = std::min<int64_t>(kQuantTileTokens, tn - t);
        const typename K::Act* xt = xa + (tc + t) * n_blocks;
        float out[kQuantTileTokens * kQRows];
        switch (nt) {
          case 1: BlockTile<K, 1>(rows, n_blocks, xt, t == 0, out); break;
          case 2: BlockTile<K, 2>(rows, n_blocks, xt, t == 0, out); break;
          case 3: BlockTile<K, 3>(rows, n_blocks, xt, t == 0, out); break;
          default: BlockTile<K, 4>(rows, n_blocks, xt, t == 0, out); break;
        }
        for (int64_t tt = 0; tt < nt; ++tt)
          for (int64_t r = 0; r < n_valid; ++r)
            y[(tc + t + tt) * w.n_rows + rg + r] = out[tt * kQRows + r];
      }
    }
  }
}

#else  // targets without the int8 kernels: the scalar reference block by block

template <class K>
void BlockRows(const WeightView& w, const typename K::Act* xa, int64_t n_tokens, float* y,
               int64_t r0, int64_t r1) {
  const int64_t rb = w.row_bytes();
  const int64_t n_blocks = w.n_cols / kActElems<typename K::Act>;
  const auto* base = static_cast<const uint8_t*>(w.data);
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t r = r0; r < r1; ++r) {
      float sum = 0.0f;
      for (int64_t b = 0; b < n_blocks; ++b)
        sum += block_dot_ref(K::kType, base + r * rb + b * K::kBlockBytes, &xa[t * n_blocks + b]);
      y[t * w.n_rows + r] = sum;
    }
  }
}

#endif  // FRUGAL_BLOCK_KERNELS

template <class K>
void MatmulBlocks(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                  ThreadPool* pool) {
  using Act = typename K::Act;
#if FRUGAL_BLOCK_KERNELS
  CHECK(!w.interleaved || kCanInterleave<K> || kHasRows16<K>, "matmul: %s weights cannot be interleaved",
        ggml_type_info(K::kType)->name);
#else
  CHECK(!w.interleaved, "matmul: this SIMD target reads no interleaved weights");
#endif
  const int64_t n_blocks = w.n_cols / kActElems<Act>;
  // Scratch grows to the largest call seen and is then reused: no allocation once warm.
  thread_local std::vector<Act> xa_buf;
  const size_t need = static_cast<size_t>(n_tokens * n_blocks);
  if (xa_buf.size() < need) xa_buf.resize(need);
  Act* xa = xa_buf.data();
  auto quantize = [&](int64_t t0, int64_t t1, int) {
    for (int64_t t = t0; t < t1; ++t)
      QuantizeActs<K::kBiasMul>(x + t * w.n_cols, n_blocks, xa + t * n_blocks);
  };
  auto work = [&](int64_t r0, int64_t r1, int) { BlockRows<K>(w, xa, n_tokens, y, r0, r1); };
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
