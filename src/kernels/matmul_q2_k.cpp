// Matmul for Q2_K weights, compiled for every SIMD target (Highway foreach_target).
// Sub-blocks of 16 with 4-bit scales and minima; activations as Q8_K super-blocks.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matmul_q2_k.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"
#include "kernels/matmul_blocks-inl.h"

HWY_BEFORE_NAMESPACE();
#if HWY_TARGET == HWY_AVX3_DL
#pragma GCC target("avx512vnni")  // see matmul-inl.h
#endif
namespace frugal::kernels::HWY_NAMESPACE {

// Block (84 bytes): 16 bytes of 4-bit scales and minima, 64 of 2-bit fields, d, dmin (fp16)
// (ggml_type.h). Activations: Q8_K super-blocks.
struct Q2_KKernel {
  static constexpr GgmlType kType = GgmlType::kQ2_K;
  using Act = ActivationBlockK;
  static constexpr int64_t kBlockBytes = 84;
  static constexpr int kBiasMul = 0;
#if FRUGAL_BLOCK_KERNELS
  struct Header {
    VF32 d, dmin;
    VI16 sc[2], m[2];  // scales / minima 0..7 and 8..15 of each row as int16, in its lane
  };

  static HWY_INLINE Header LoadHeader(const uint8_t* const* p, const int32_t* spread) {
    const VU8 raw = LoadRowChunks(p, 0);
    const VU8 sc = LowNibbles(raw), m = HighNibbles(raw);
    const HalfPair d = RowHalfPair(p, 80);
    (void)spread;
    return {d.first,
            d.second,
            {WidenBytes<0>(sc), WidenBytes<8>(sc)},
            {WidenBytes<0>(m), WidenBytes<8>(m)}};
  }

  // Half H, 16-element group G: elements 128 H + 32 k + 16 G + (0..15) are bits 2k..2k+1 of
  // qs[32 H + 16 G ..], sub-blocks 8 H + 2 k + G.
  template <int H, int G, int kT>
  static HWY_INLINE void Step(const uint8_t* const* p, const Header& h,
                              const Act* const* a, VI32* isum) {
    const VU8 qs = LoadRowChunks(p, 16 + 32 * H + 16 * G);
    const VU8 three = hn::Set(DU8(), 3);
    const VU8 q[4] = {hn::And(qs, three), hn::And(ShiftBytesRight<2>(qs), three),
                      hn::And(ShiftBytesRight<4>(qs), three), hn::And(ShiftBytesRight<6>(qs), three)};
    const VI16 s[4] = {hn::Broadcast<G>(h.sc[H]), hn::Broadcast<G + 2>(h.sc[H]),
                       hn::Broadcast<G + 4>(h.sc[H]), hn::Broadcast<G + 6>(h.sc[H])};
    for (int t = 0; t < kT; ++t) {
      const int8_t* x = a[t]->qs + 128 * H + 16 * G;
      for (int k = 0; k < 4; ++k)
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
    const VI32 mins = hn::Add(MulPairsI16(h.m[0], DupI16(a.bsums)),
                              MulPairsI16(h.m[1], DupI16(a.bsums + 8)));
    const VF32 dx = hn::Set(df, a.d);
    acc = hn::MulAdd(hn::ConvertTo(df, isum), hn::Mul(h.d, dx), acc);
    return hn::NegMulAdd(hn::ConvertTo(df, mins), hn::Mul(h.dmin, dx), acc);
  }
#endif
};

void MatmulQ2_K(const WeightView& w, const float* x, int64_t n_tokens, float* y, ThreadPool* pool) {
  MatmulBlocks<Q2_KKernel>(w, x, n_tokens, y, pool);
}

}  // namespace frugal::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace frugal::kernels {

HWY_EXPORT(MatmulQ2_K);

void matmul_q2_k(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                 ThreadPool* pool) {
  HWY_DYNAMIC_DISPATCH(MatmulQ2_K)(w, x, n_tokens, y, pool);
}

}  // namespace frugal::kernels
#endif  // HWY_ONCE
