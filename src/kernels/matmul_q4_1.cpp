// Matmul for Q4_1 weights, compiled for every SIMD target (Highway foreach_target).
// Blocks of 32 with a scale and a minimum; activations as Q8_0 blocks with sums.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matmul_q4_1.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"
#include "kernels/matmul_blocks-inl.h"

HWY_BEFORE_NAMESPACE();
#if HWY_TARGET == HWY_AVX3_DL
#pragma GCC target("avx512vnni")  // see matmul-inl.h
#endif
namespace frugal::kernels::HWY_NAMESPACE {

// Block (20 bytes): d, m (fp16), 16 bytes of nibbles (ggml_type.h). Activations: Q8_0 blocks
// with s = d * sum(qs), so the minimum adds m * s.
struct Q4_1Kernel {
  static constexpr GgmlType kType = GgmlType::kQ4_1;
  using Act = ActivationBlock32;
  static constexpr int64_t kBlockBytes = 20;
  static constexpr int kBiasMul = 0;
#if FRUGAL_BLOCK_KERNELS
  struct Header {
    VF32 d, m;  // m only in the first lane of each row's group
  };
  static HWY_INLINE Header LoadHeader(const uint8_t* const* p, const int32_t* spread) {
    const HalfPair dm = RowHalfPair(p, 0);
    (void)spread;
    return {dm.first, hn::Mul(dm.second, FirstLaneOfRow())};
  }
  template <int kT>
  static HWY_INLINE void Dot(const uint8_t* const* p, const Header&, const Act* const* a,
                             VI32* isum) {
    const VU8 v = LoadRowChunks(p, 4);
    const VU8 lo = LowNibbles(v), hi = HighNibbles(v);
    for (int t = 0; t < kT; ++t)
      isum[t] = DotU8I8(DotU8I8(isum[t], lo, DupAct(a[t]->qs)), hi, DupAct(a[t]->qs + 16));
  }
  static HWY_INLINE VF32 Finish(VF32 acc, VI32 isum, const Header& h, const Act& a) {
    const DF32 df;
    acc = hn::MulAdd(hn::ConvertTo(df, isum), hn::Mul(h.d, hn::Set(df, a.d)), acc);
    return hn::MulAdd(h.m, hn::Set(df, a.s), acc);
  }
#endif
};

void MatmulQ4_1(const WeightView& w, const float* x, int64_t n_tokens, float* y, ThreadPool* pool) {
  MatmulBlocks<Q4_1Kernel>(w, x, n_tokens, y, pool);
}

}  // namespace frugal::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace frugal::kernels {

HWY_EXPORT(MatmulQ4_1);

void matmul_q4_1(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                 ThreadPool* pool) {
  HWY_DYNAMIC_DISPATCH(MatmulQ4_1)(w, x, n_tokens, y, pool);
}

}  // namespace frugal::kernels
#endif  // HWY_ONCE
