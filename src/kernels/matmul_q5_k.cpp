// Matmul for Q5_K weights, compiled for every SIMD target (Highway foreach_target).
// Sub-blocks of 32 with 6-bit scales and minima; activations as Q8_K super-blocks.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matmul_q5_k.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"
#include "kernels/matmul_blocks-inl.h"

HWY_BEFORE_NAMESPACE();
#if HWY_TARGET == HWY_AVX3_DL
#pragma GCC target("avx512vnni")  // see matmul-inl.h
#endif
namespace frugal::kernels::HWY_NAMESPACE {

// Block (176 bytes): d, dmin (fp16), 12 bytes of 6-bit scales and minima, 32 bytes of fifth
// bits, 128 bytes of nibbles (ggml_type.h). Activations: Q8_K super-blocks.
struct Q5_KKernel {
  static constexpr GgmlType kType = GgmlType::kQ5_K;
  using Act = ActivationBlockK;
  static constexpr int64_t kBlockBytes = 176;
  static constexpr int kBiasMul = 0;
  static constexpr bool kInterleaves = true;  // 176-byte blocks: 11 chunks of 16
#if FRUGAL_BLOCK_KERNELS
  struct Header {
    VF32 d, dmin;
    VI16 sc, m;
    VU8 qh_a, qh_b;  // qh[0..16) and qh[16..32) of each row
  };

  template <class P>  // row pointers or InterleavedRows (matmul_blocks-inl.h)
  static HWY_INLINE Header LoadHeader(P p, const int32_t* spread) {
    const VU8 s = UnpackScalesK4(RowChunks<4>(p));
    const HalfPair d = RowHalfPair(p, 0);
    (void)spread;
    return {d.first, d.second, WidenBytes<0>(s), WidenBytes<8>(s), RowChunks<16>(p),
            RowChunks<32>(p)};
  }

  // Elements 64 S .. 64 S + 63: sub-blocks 2S (low nibbles, bit 2S of qh) and 2S + 1.
  template <int S, int kT, class P>
  static HWY_INLINE void Step(P p, const Header& h, const Act* const* a, VI32* isum) {
    const VU8 qa = RowChunks<48 + 32 * S>(p), qb = RowChunks<64 + 32 * S>(p);
    const VU8 la = hn::Or(LowNibbles(qa), MoveBit<2 * S, 4>(h.qh_a));
    const VU8 lb = hn::Or(LowNibbles(qb), MoveBit<2 * S, 4>(h.qh_b));
    const VU8 ha = hn::Or(HighNibbles(qa), MoveBit<2 * S + 1, 4>(h.qh_a));
    const VU8 hb = hn::Or(HighNibbles(qb), MoveBit<2 * S + 1, 4>(h.qh_b));
    const VI16 s_lo = hn::Broadcast<2 * S>(h.sc), s_hi = hn::Broadcast<2 * S + 1>(h.sc);
    for (int t = 0; t < kT; ++t) {
      const int8_t* x = a[t]->qs + 64 * S;
      // Pair sums are at most 2 * 31 * 127, so two of them still fit int16.
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

void MatmulQ5_K(const WeightView& w, const float* x, int64_t n_tokens, float* y, ThreadPool* pool) {
  MatmulBlocks<Q5_KKernel>(w, x, n_tokens, y, pool);
}

}  // namespace frugal::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace frugal::kernels {

HWY_EXPORT(MatmulQ5_K);

void matmul_q5_k(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                 ThreadPool* pool) {
  HWY_DYNAMIC_DISPATCH(MatmulQ5_K)(w, x, n_tokens, y, pool);
}

}  // namespace frugal::kernels
#endif  // HWY_ONCE
