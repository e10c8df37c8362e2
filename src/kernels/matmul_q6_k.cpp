// Matmul for Q6_K weights, compiled for every SIMD target (Highway foreach_target).
// Sub-blocks of 16 with int8 scales; activations as Q8_K super-blocks.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matmul_q6_k.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"
#include "kernels/matmul_blocks-inl.h"

HWY_BEFORE_NAMESPACE();
#if HWY_TARGET == HWY_AVX3_DL
#pragma GCC target("avx512vnni")  // see matmul-inl.h
#endif
namespace frugal::kernels::HWY_NAMESPACE {

// Block (210 bytes): 128 bytes of low nibbles, 64 of high bit pairs, 16 int8 scales, d (fp16)
// (ggml_type.h). Activations: Q8_K super-blocks. The kernel multiplies the unsigned values
// q + 32 (0..63) and subtracts 32 * sum_j scale_j * bsum_j once per block.
struct Q6_KKernel {
  static constexpr GgmlType kType = GgmlType::kQ6_K;
  using Act = ActivationBlockK;
  static constexpr int64_t kBlockBytes = 210;
  static constexpr int kBiasMul = 0;
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

}  // namespace frugal::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace frugal::kernels {

HWY_EXPORT(MatmulQ6_K);

void matmul_q6_k(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                 ThreadPool* pool) {
  HWY_DYNAMIC_DISPATCH(MatmulQ6_K)(w, x, n_tokens, y, pool);
}

}  // namespace frugal::kernels
#endif  // HWY_ONCE
