// Matmul for IQ4_NL weights, compiled for every SIMD target (Highway foreach_target).
// Blocks of 32 indices into a 16-entry non-linear table; activations as Q8_0 blocks.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matmul_iq4_nl.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"
#include "kernels/matmul_blocks-inl.h"

HWY_BEFORE_NAMESPACE();
#if HWY_TARGET == HWY_AVX3_DL
#pragma GCC target("avx512vnni")  // see matmul-inl.h
#endif
namespace frugal::kernels::HWY_NAMESPACE {

// Block (18 bytes): d (fp16), 16 bytes of 4-bit indices into kIq4nlValues (ggml_type.h).
// Activations: Q8_0 blocks. With VNNI the table holds value + 128 (unsigned; the activation
// bias subtracts 128 sum(x)); without it, |value| times x with value's sign, as Q8_0 does.
struct IQ4_NLKernel {
  static constexpr GgmlType kType = GgmlType::kIQ4_NL;
  using Act = ActivationBlock32;
  static constexpr int64_t kBlockBytes = 18;
#if FRUGAL_DPBUSD  // matmul-inl.h
  static constexpr int kBiasMul = 128;
#else
  static constexpr int kBiasMul = 0;
#endif
#if FRUGAL_BLOCK_KERNELS
  struct Header {
    VF32 d;
  };
  static HWY_INLINE Header LoadHeader(const uint8_t* const* p, const int32_t* spread) {
    return {RowHalfs(p, 0, spread)};
  }
  template <int kT>
  static HWY_INLINE void Dot(const uint8_t* const* p, const Header&, const Act* const* a,
                             VI32* isum) {
    const VU8 v = LoadRowChunks(p, 2);
    alignas(16) static constexpr uint8_t kTable[16] = {
        1, 24, 45, 63, 79, 93, 106, 118, 129, 141, 153, 166, 181, 197, 217, 241};  // value + 128
    const VU8 table = Dup16(kTable);
    const VU8 lo = hn::TableLookupBytes(table, LowNibbles(v));
    const VU8 hi = hn::TableLookupBytes(table, HighNibbles(v));
#if FRUGAL_DPBUSD
    for (int t = 0; t < kT; ++t)
      isum[t] = DotU8I8(DotU8I8(isum[t], lo, DupAct(a[t]->qs)), hi, DupAct(a[t]->qs + 16));
#else
    const VU8 flip = hn::Set(DU8(), 0x80);
    const VI8 slo = hn::BitCast(DI8(), hn::Xor(lo, flip)), shi = hn::BitCast(DI8(), hn::Xor(hi, flip));
    const VU8 alo = hn::BitCast(DU8(), hn::Abs(slo)), ahi = hn::BitCast(DU8(), hn::Abs(shi));
    for (int t = 0; t < kT; ++t) {
      const VI8 xa = DupAct(a[t]->qs), xb = DupAct(a[t]->qs + 16);
      isum[t] = DotU8I8(isum[t], alo, hn::IfNegativeThenElse(slo, hn::Neg(xa), xa));
      isum[t] = DotU8I8(isum[t], ahi, hn::IfNegativeThenElse(shi, hn::Neg(xb), xb));
    }
#endif
  }
  static HWY_INLINE VF32 Finish(VF32 acc, VI32 isum, const Header& h, const Act& a) {
    const DF32 df;
    return hn::MulAdd(hn::ConvertTo(df, isum), hn::Mul(h.d, hn::Set(df, a.d)), acc);
  }
#endif
};

void MatmulIQ4_NL(const WeightView& w, const float* x, int64_t n_tokens, float* y, ThreadPool* pool) {
  MatmulBlocks<IQ4_NLKernel>(w, x, n_tokens, y, pool);
}

}  // namespace frugal::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace frugal::kernels {

HWY_EXPORT(MatmulIQ4_NL);

void matmul_iq4_nl(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                   ThreadPool* pool) {
  HWY_DYNAMIC_DISPATCH(MatmulIQ4_NL)(w, x, n_tokens, y, pool);
}

}  // namespace frugal::kernels
#endif  // HWY_ONCE
