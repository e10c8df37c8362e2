// Matmul for Q4_K weights, compiled for every SIMD target (Highway foreach_target).
// Sub-blocks of 32 with 6-bit scales and minima; activations as Q8_K super-blocks.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matmul_q4_k.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include <array>
#include <cstring>
#include <utility>

#include "hwy/highway.h"
#include "kernels/matmul_blocks-inl.h"

HWY_BEFORE_NAMESPACE();
#if HWY_TARGET == HWY_AVX3_DL
#pragma GCC target("avx512vnni")  // see matmul-inl.h
#endif
namespace frugal::kernels::HWY_NAMESPACE {

#if FRUGAL_DPBUSD
// Q4_K on AVX-512 VNNI in the 16-row tile (RowsK16, matmul_blocks-inl.h). A super-block
// of the group is 2304 bytes, the size of its 16 rows in the file:
//   [0, 2048)     quants: sub-block pair c's vector k (0..7) at 512 c + 64 k, lane r = bytes
//                 32 c + 4 k .. + 3 of row r's qs (low nibbles: sub-block 2c, high: 2c + 1);
//   [2048, 2112)  the 16 rows' d, then their dmin (fp16);
//   [2112, 2304)  scale byte i (of the file's 12) of row r at 2112 + 16 i + r.
// So one vpdpbusd advances 16 rows' sums of a sub-block, the nibbles are their own unsigned
// operand, and each sub-block scale multiplies 16 rows at once. Per (row, token) and
// super-block, the integer sums sum_j sc_j * isum_j and sum_j m_j * bsum_j are exact, then
// acc = fma(float(isum), d * dx, acc) - float(mins) * dmin * dx, in super-block order, so a
// token's outputs do not depend on the other tokens of the tile. A thread reads its rows as
// one stream, which the hardware prefetcher follows: explicit prefetches of the next group
// (all of a super-block's 36 lines at once, or a few per sub-block) cost decode 10-25 % and
// gained prefill nothing measurable, so there are none.
//
// Q5_K in the same tile (its fifth bits as a 64-bit mask per vector, added under the mask:
// 2816-byte super-blocks) ran 1.7x the 4-row tile with 16 tokens from L2, but streamed
// 11-14 GB/s a core from DRAM against the 4-row tile's 14-17, with the scales leading or
// trailing and with an L2 prefetch of the next group, so Q5_K keeps the 4-row tile.
constexpr int64_t kQ4KGroupBlockBytes = kTileK16Rows * 144;

template <int kT>
HWY_NOINLINE void Q4KTile16(const uint8_t* group, int64_t n_sb, const ActivationBlockK* xa,
                            bool /*prefetch*/, __mmask16 lanes, int64_t n_rows, float* y) {
  const __m512i nibble = _mm512_set1_epi8(0x0f);
  const __m128i m4 = _mm_set1_epi8(0x0f), m6 = _mm_set1_epi8(0x3f), hi2 = _mm_set1_epi8(0x30);
  __m512 acc[kT];
  for (int t = 0; t < kT; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < n_sb; ++b) {
    const uint8_t* blk = group + b * kQ4KGroupBlockBytes;
    // The 16 rows' sub-block scales and minima, one byte per row (unpack_scales_k4).
    __m128i raw[12], sc[8], mn[8];
    for (int i = 0; i < 12; ++i)
      raw[i] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2112 + 16 * i));
    for (int j = 0; j < 4; ++j) {
      sc[j] = _mm_and_si128(raw[j], m6);
      mn[j] = _mm_and_si128(raw[j + 4], m6);
      sc[j + 4] = _mm_or_si128(_mm_and_si128(raw[j + 8], m4),
                               _mm_and_si128(_mm_srli_epi16(raw[j], 2), hi2));
      mn[j + 4] = _mm_or_si128(_mm_and_si128(_mm_srli_epi16(raw[j + 8], 4), m4),
                               _mm_and_si128(_mm_srli_epi16(raw[j + 4], 2), hi2));
    }
    __m512i isum[kT];
    for (int t = 0; t < kT; ++t) isum[t] = _mm512_setzero_si512();
    for (int j = 0; j < 8; ++j) {
      const uint8_t* q = blk + 512 * (j / 2);
      __m512i w[8];
      for (int k = 0; k < 8; ++k) {
        const __m512i v = _mm512_loadu_si512(q + 64 * k);
        w[k] = _mm512_and_si512(j % 2 == 0 ? v : _mm512_srli_epi16(v, 4), nibble);
      }
      const __m512i scj = _mm512_cvtepu8_epi32(sc[j]);
#pragma GCC unroll 16
      for (int t = 0; t < kT; ++t) {
        const int8_t* x = xa[t * n_sb + b].qs + 32 * j;
        __m512i s = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int k = 0; k < 8; ++k)
          s = _mm512_dpbusd_epi32(s, w[k], _mm512_broadcastd_epi32(_mm_loadu_si32(x + 4 * k)));
        isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(s, scj));
      }
    }
    // Minima as int16 pairs (m_2i, m_2i+1) per row, against the pairs of 32-element sums.
    __m512i mpair[4];
    for (int i = 0; i < 4; ++i)
      mpair[i] = _mm512_or_si512(_mm512_cvtepu8_epi32(mn[2 * i]),
                                 _mm512_slli_epi32(_mm512_cvtepu8_epi32(mn[2 * i + 1]), 16));
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2048)));
    const __m512 dmin =
        _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2080)));
#pragma GCC unroll 16
    for (int t = 0; t < kT; ++t) {
      const ActivationBlockK& a = xa[t * n_sb + b];
      __m512i mins = _mm512_setzero_si512();
      for (int i = 0; i < 4; ++i) {
        int32_t pair;
        std::memcpy(&pair, a.bsums32 + 2 * i, 4);
        mins = _mm512_dpwssd_epi32(mins, mpair[i], _mm512_set1_epi32(pair));
      }
      const __m512 dx = _mm512_set1_ps(a.d);
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), _mm512_mul_ps(d, dx), acc[t]);
      acc[t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(mins), _mm512_mul_ps(dmin, dx), acc[t]);
    }
  }
  for (int t = 0; t < kT; ++t) _mm512_mask_storeu_ps(y + t * n_rows, lanes, acc[t]);
}
#endif  // FRUGAL_DPBUSD


// Block (144 bytes): d, dmin (fp16), 12 bytes of 6-bit scales and minima, 128 bytes of nibbles
// (ggml_type.h). Activations: Q8_K super-blocks.
struct Q4_KKernel {
  static constexpr GgmlType kType = GgmlType::kQ4_K;
  using Act = ActivationBlockK;
  static constexpr int64_t kBlockBytes = 144;
  static constexpr int kBiasMul = 0;
  static constexpr bool kInterleaves = true;  // 144-byte blocks: 9 chunks of 16
#if FRUGAL_DPBUSD
  // Interleaved weights are in the 16-row tile's layout (Q4KTile16), not the 4-row one.
  static void Rows16(const WeightView& w, const Act* xa, int64_t n_tokens, float* y, int64_t r0,
                     int64_t r1) {
    static constexpr auto kTiles = []<size_t... kI>(std::index_sequence<kI...>) {
      return std::array<TileK16Fn, sizeof...(kI)>{&Q4KTile16<kI + 1>...};
    }(std::make_index_sequence<kTileK16Tokens>());
    RowsK16(kTiles.data(), w, xa, n_tokens, y, r0, r1);
  }
#endif
#if FRUGAL_BLOCK_KERNELS
  struct Header {
    VF32 d, dmin;
    VI16 sc, m;  // each row's eight sub-block scales / minima as int16, in its lane
  };

  template <class P>  // row pointers or InterleavedRows (matmul_blocks-inl.h)
  static HWY_INLINE Header LoadHeader(P p, const int32_t* spread) {
    const VU8 s = UnpackScalesK4(RowChunks<4>(p));
    const HalfPair d = RowHalfPair(p, 0);
    (void)spread;
    return {d.first, d.second, WidenBytes<0>(s), WidenBytes<8>(s)};
  }

  // Elements 64 S .. 64 S + 63: sub-blocks 2S (low nibbles) and 2S + 1 (high nibbles).
  template <int S, int kT, class P>
  static HWY_INLINE void Step(P p, const Header& h, const Act* const* a, VI32* isum) {
    const VU8 qa = RowChunks<16 + 32 * S>(p), qb = RowChunks<32 + 32 * S>(p);
    const VU8 la = LowNibbles(qa), lb = LowNibbles(qb);
    const VU8 ha = HighNibbles(qa), hb = HighNibbles(qb);
    const VI16 s_lo = hn::Broadcast<2 * S>(h.sc), s_hi = hn::Broadcast<2 * S + 1>(h.sc);
    for (int t = 0; t < kT; ++t) {
      const int8_t* x = a[t]->qs + 64 * S;
      // Pair sums are at most 2 * 15 * 127, so two of them still fit int16.
      const VI16 lo = hn::Add(MulPairsU8I8(la, DupAct(x)), MulPairsU8I8(lb, DupAct(x + 16)));
      const VI16 hi = hn::Add(MulPairsU8I8(ha, DupAct(x + 32)), MulPairsU8I8(hb, DupAct(x + 48)));
      isum[t] = AddMulPairsI16(AddMulPairsI16(isum[t], lo, s_lo), hi, s_hi);
    }
  }

  template <int kT, class P>
  static HWY_INLINE void Dot(P p, const Header& h, const Act* const* a, VI32* isum) {
    Step<0, kT>(p, h, a, isum);
    Step<1, kT>(p, h, a, isum);
    Step<2, kT>(p, h, a, isum);
    Step<3, kT>(p, h, a, isum);
  }

  static HWY_INLINE VF32 Finish(VF32 acc, VI32 isum, const Header& h, const Act& a) {
    const DF32 df;
    const VI32 mins = MulPairsI16(h.m, DupI16(a.bsums32));
    const VF32 dx = hn::Set(df, a.d);
    acc = hn::MulAdd(hn::ConvertTo(df, isum), hn::Mul(h.d, dx), acc);
    return hn::NegMulAdd(hn::ConvertTo(df, mins), hn::Mul(h.dmin, dx), acc);
  }
#endif
};

void MatmulQ4_K(const WeightView& w, const float* x, int64_t n_tokens, float* y, ThreadPool* pool) {
  MatmulBlocks<Q4_KKernel>(w, x, n_tokens, y, pool);
}

#if FRUGAL_BLOCK_KERNELS
int BlockTileInterleaveGroup() { return kQRows; }
#else
int BlockTileInterleaveGroup() { return 0; }
#endif
#if FRUGAL_DPBUSD
int Q4KInterleaveGroup() { return kTileK16Rows; }
#else
int Q4KInterleaveGroup() { return BlockTileInterleaveGroup(); }
#endif

}  // namespace frugal::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace frugal::kernels {

HWY_EXPORT(MatmulQ4_K);
HWY_EXPORT(BlockTileInterleaveGroup);
HWY_EXPORT(Q4KInterleaveGroup);

int block_tile_interleave_group() { return HWY_DYNAMIC_DISPATCH(BlockTileInterleaveGroup)(); }
int q4_k_interleave_group() { return HWY_DYNAMIC_DISPATCH(Q4KInterleaveGroup)(); }

void matmul_q4_k(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                 ThreadPool* pool) {
  HWY_DYNAMIC_DISPATCH(MatmulQ4_K)(w, x, n_tokens, y, pool);
}

}  // namespace frugal::kernels
#endif  // HWY_ONCE
