// Matmul for Q6_K weights, compiled for every SIMD target (Highway foreach_target).
// Sub-blocks of 16 with int8 scales; activations as Q8_K super-blocks.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matmul_q6_k.cpp"
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
// Q6_K on AVX-512 VNNI in tiles of 16 rows x up to 16 tokens, over weights interleaved by
// interleave_rows (ops.cpp) in groups of 16 rows, one row per 32-bit lane. A super-block of
// the group is 3360 bytes, the size of its 16 rows in the file. Element 128 H + 32 m + l
// (l < 32) of a row is nibble m / 2 of ql byte 64 H + 32 (m % 2) + l plus bits 2 m, 2 m + 1 of
// qh byte 32 H + l, shifted to bits 4-5 (ggml's layout). With l = 16 h + 4 kk + (0..3):
//   [768 c, 768 c + 768), c = 2 H + h (the order the tile reads them): vector 4 p + kk at
//                 768 c + 64 (4 p + kk), lane r = 4 bytes of row r: for p = 0, 1 ql bytes
//                 64 H + 32 p + 16 h + 4 kk .. + 3, for p = 2 qh bytes 32 H + 16 h + 4 kk ..;
//   [3072, 3328)  scale j (int8) of row r at 3072 + 16 j + r;
//   [3328, 3360)  the 16 rows' d (fp16).
// Odd super-blocks put d and the scales first ([0, 32), [32, 288)) and the quants after, so
// that every vector load is one cache line (3360 bytes is 52.5 lines). So 4 elements of 16 rows take two loads and four byte operations, and vpdpbusd multiplies
// the unsigned q + 32 (0..63) directly. A thread reads its rows as one ascending stream, and
// the first tile over a group prefetches the next group into L2 as it goes. From DRAM on one
// Zen 4 core: 7 GB/s with ql and qh 2 KiB apart, 12 in this order, 21 with the prefetch
// (the file layout's tile: 18). Each of the 16 sub-block sums is scaled by one
// vpmulld for the 16 rows; 32 * sum_j sc_j * bsum_j comes off once per super-block. The
// integer sums are exact, then acc = fma(float(isum), d * dx, acc) in super-block order, so a
// token's outputs do not depend on the other tokens of the tile.
constexpr int64_t kQ6KGroupBlockBytes = kTileK16Rows * 210;

HWY_INLINE int32_t LoadI32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

template <int kT>
HWY_NOINLINE void Q6KTile16(const uint8_t* group, int64_t n_sb, const ActivationBlockK* xa,
                            bool prefetch, __mmask16 lanes, int64_t n_rows, float* y) {
  const __m512i m0f = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
  __m512 acc[kT];
  for (int t = 0; t < kT; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < n_sb; ++b) {
    const uint8_t* blk = group + b * kQ6KGroupBlockBytes;
    // Odd super-blocks lead with d and the scales, so every vector load is one cache line.
    const uint8_t* quants = blk + (b % 2 == 0 ? 0 : 288);
    const uint8_t* scales = blk + (b % 2 == 0 ? 3072 : 32);
    const uint8_t* dh = blk + (b % 2 == 0 ? 3328 : 0);
    __m512i isum[kT];
    for (int t = 0; t < kT; ++t) isum[t] = _mm512_setzero_si512();
    for (int c = 0; c < 4; ++c) {
      const int H = c / 2, h = c % 2;
      const uint8_t* chunk = quants + 768 * c;
      if (prefetch) {  // the same quarter of the next group's super-block, into L2
        for (int i = 0; i < 13; ++i)
          __builtin_prefetch(blk + n_sb * kQ6KGroupBlockBytes + 832 * c + 64 * i, 0, 1);
      }
#pragma GCC unroll 4
      for (int m = 0; m < 4; ++m) {  // sub-block j = 8 H + 2 m + h: elements 128 H + 32 m + 16 h
        const int j = 8 * H + 2 * m + h;
        __m512i q[4];
        for (int kk = 0; kk < 4; ++kk) {
          const __m512i lo = _mm512_loadu_si512(chunk + 256 * (m % 2) + 64 * kk);
          const __m512i hi = _mm512_loadu_si512(chunk + 512 + 64 * kk);
          const __m512i nib = _mm512_and_si512(m < 2 ? lo : _mm512_srli_epi16(lo, 4), m0f);
          const __m512i top = m == 0   ? _mm512_slli_epi16(hi, 4)
                              : m == 1 ? _mm512_slli_epi16(hi, 2)
                              : m == 2 ? hi
                                       : _mm512_srli_epi16(hi, 2);
          q[kk] = _mm512_ternarylogic_epi32(nib, top, m30, 0xf8);  // nib | (top & m30)
        }
        const __m512i scj = _mm512_cvtepi8_epi32(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(scales + 16 * j)));
#pragma GCC unroll 16
        for (int t = 0; t < kT; ++t) {
          const int8_t* x = xa[t * n_sb + b].qs + 128 * H + 32 * m + 16 * h;
          __m512i sum = _mm512_setzero_si512();
#pragma GCC unroll 4
          for (int kk = 0; kk < 4; ++kk)
            sum = _mm512_dpbusd_epi32(sum, q[kk], _mm512_set1_epi32(LoadI32(x + 4 * kk)));
          isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(sum, scj));
        }
      }
    }
    // Scales as int16 pairs (sc_2i, sc_2i+1) per row, against the pairs of 16-element sums.
    __m512i spair[8];
    for (int i = 0; i < 8; ++i) {
      const __m512i a = _mm512_cvtepi8_epi32(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(scales + 32 * i)));
      const __m512i c = _mm512_cvtepi8_epi32(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(scales + 16 + 32 * i)));
      spair[i] = _mm512_or_si512(_mm512_and_si512(a, _mm512_set1_epi32(0xffff)),
                                 _mm512_slli_epi32(c, 16));
    }
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(dh)));
#pragma GCC unroll 16
    for (int t = 0; t < kT; ++t) {
      const ActivationBlockK& a = xa[t * n_sb + b];
      __m512i offset = _mm512_setzero_si512();
      for (int i = 0; i < 8; ++i)
        offset = _mm512_dpwssd_epi32(offset, spair[i], _mm512_set1_epi32(LoadI32(a.bsums + 2 * i)));
      const __m512i total = _mm512_sub_epi32(isum[t], _mm512_slli_epi32(offset, 5));
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(total), _mm512_mul_ps(d, _mm512_set1_ps(a.d)),
                               acc[t]);
    }
  }
  for (int t = 0; t < kT; ++t) _mm512_mask_storeu_ps(y + t * n_rows, lanes, acc[t]);
}

// Q6KTile16<n> for n = 1 .. kTileK16Tokens, at index n - 1.
constexpr auto kQ6KTiles = []<size_t... kI>(std::index_sequence<kI...>) {
  return std::array<TileK16Fn, sizeof...(kI)>{&Q6KTile16<kI + 1>...};
}(std::make_index_sequence<kTileK16Tokens>());
#endif  // FRUGAL_DPBUSD

// Block (210 bytes): 128 bytes of low nibbles, 64 of high bit pairs, 16 int8 scales, d (fp16)
// (ggml_type.h). Activations: Q8_K super-blocks. The kernel multiplies the unsigned values
// q + 32 (0..63) and subtracts 32 * sum_j scale_j * bsum_j once per block.
struct Q6_KKernel {
  static constexpr GgmlType kType = GgmlType::kQ6_K;
  using Act = ActivationBlockK;
  static constexpr int64_t kBlockBytes = 210;
  static constexpr int kBiasMul = 0;
#if FRUGAL_DPBUSD
  // Interleaved weights (interleave_group is 16 only on this pass) are the 16-row tile's.
  static void Rows16(const WeightView& w, const Act* xa, int64_t n_tokens, float* y, int64_t r0,
                     int64_t r1) {
    RowsK16(kQ6KTiles.data(), w, xa, n_tokens, y, r0, r1);
  }
#endif
#if FRUGAL_BLOCK_KERNELS
  struct Header {
    VF32 d;
    VI16 sc[2];  // scales 0..7 and 8..15 of each row as int16, in its lane
  };

  static HWY_INLINE Header LoadHeader(const uint8_t* const* p, const int32_t* spread) {
    const VU8 s = LoadRowChunks(p, 192);
    return {RowHalfs(p, 208, spread), {WidenBytesSigned<0>(s), WidenBytesSigned<8>(s)}};
  }

  // Half H, 16-element group G: elements 128 H + 32 k + 16 G + (0..15), k < 4, which are
  // sub-blocks 8 H + 2 k + G.
  template <int H, int G, int kT>
  static HWY_INLINE void Step(const uint8_t* const* p, const Header& h,
                              const Act* const* a, VI32* isum) {
    const VU8 la = LoadRowChunks(p, 64 * H + 16 * G), lb = LoadRowChunks(p, 64 * H + 32 + 16 * G);
    const VU8 qh = LoadRowChunks(p, 128 + 32 * H + 16 * G);
    const VU8 pairs = hn::Set(DU8(), 0x30);
    const VU8 q[4] = {hn::Or(LowNibbles(la), hn::And(ShiftBytesLeft<4>(qh), pairs)),
                      hn::Or(LowNibbles(lb), hn::And(ShiftBytesLeft<2>(qh), pairs)),
                      hn::Or(HighNibbles(la), hn::And(qh, pairs)),
                      hn::Or(HighNibbles(lb), hn::And(ShiftBytesRight<2>(qh), pairs))};
    const VI16 s[4] = {hn::Broadcast<G>(h.sc[H]), hn::Broadcast<G + 2>(h.sc[H]),
                       hn::Broadcast<G + 4>(h.sc[H]), hn::Broadcast<G + 6>(h.sc[H])};
    for (int t = 0; t < kT; ++t) {
      const int8_t* x = a[t]->qs + 128 * H + 16 * G;
      for (int k = 0; k < 4; ++k)  // pair sums at most 2 * 63 * 127: no saturation
        isum[t] = AddMulPairsI16(isum[t], MulPairsU8I8(q[k], DupAct(x + 32 * k)), s[k]);
    }
  }

  template <int kT>
  static HWY_INLINE void Dot(const uint8_t* const* p, const Header& h, const Act* const* a,
                             VI32* isum) {
    Step<0, 0, kT>(p, h, a, isum);
    Step<0, 1, kT>(p, h, a, isum);
    Step<1, 0, kT>(p, h, a, isum);
    Step<1, 1, kT>(p, h, a, isum);
  }

  static HWY_INLINE VF32 Finish(VF32 acc, VI32 isum, const Header& h, const Act& a) {
    const DF32 df;
    const VI32 offset = hn::Add(MulPairsI16(h.sc[0], DupI16(a.bsums)),
                                MulPairsI16(h.sc[1], DupI16(a.bsums + 8)));
    const VI32 total = hn::Sub(isum, hn::ShiftLeft<5>(offset));
    return hn::MulAdd(hn::ConvertTo(df, total), hn::Mul(h.d, hn::Set(df, a.d)), acc);
  }
#endif
};

void MatmulQ6_K(const WeightView& w, const float* x, int64_t n_tokens, float* y, ThreadPool* pool) {
  MatmulBlocks<Q6_KKernel>(w, x, n_tokens, y, pool);
}

#if FRUGAL_DPBUSD
int Q6KInterleaveGroup() { return kTileK16Rows; }
#else
int Q6KInterleaveGroup() { return 0; }
#endif

}  // namespace frugal::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace frugal::kernels {

HWY_EXPORT(MatmulQ6_K);
HWY_EXPORT(Q6KInterleaveGroup);

int q6_k_interleave_group() { return HWY_DYNAMIC_DISPATCH(Q6KInterleaveGroup)(); }

void matmul_q6_k(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                 ThreadPool* pool) {
  HWY_DYNAMIC_DISPATCH(MatmulQ6_K)(w, x, n_tokens, y, pool);
}

}  // namespace frugal::kernels
#endif  // HWY_ONCE
