// Matmul for Q5_0 weights, compiled for every SIMD target (Highway foreach_target).
// Blocks of 32 5-bit values; activations as Q8_0 blocks.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matmul_q5_0.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"
#include "kernels/matmul_blocks-inl.h"

HWY_BEFORE_NAMESPACE();
#if HWY_TARGET == HWY_AVX3_DL
#pragma GCC target("avx512vnni")  // see matmul-inl.h
#endif
namespace frugal::kernels::HWY_NAMESPACE {

#if FRUGAL_DPBUSD
// Q5_0 in the 16-row tile over 32-element blocks (Rows16Blocks32, matmul-inl.h): 320 bytes of
// quants a block, the nibbles as Q4Lanes stores them, then eight 64-bit masks, mask k's bit
// 4 i + j set where element 4 k + j of row i has its fifth bit; Load adds that 16 under the
// mask, so each byte is the stored value q + 16 (0..31).
struct Q5Lanes {
  static constexpr int64_t kBlockBytes = 22, kQuantBytes = 320;
  static HWY_INLINE void Load(const uint8_t* q, __m512i* w) {
    Q4Lanes::Load(q, w);
    const __m512i fifth = _mm512_set1_epi8(0x10);
    for (int k = 0; k < 8; ++k) {
      uint64_t bits;
      std::memcpy(&bits, q + 256 + 8 * k, 8);
      w[k] = _mm512_mask_add_epi8(w[k], _cvtu64_mask64(bits), w[k], fifth);
    }
  }
};
#endif

// Block (22 bytes): d (fp16), 4 bytes of fifth bits, 16 bytes of nibbles (ggml_type.h).
// Activations: Q8_0 blocks; the kernel multiplies q + 16 (0..31) and starts from -16 sum(x).
struct Q5_0Kernel {
  static constexpr GgmlType kType = GgmlType::kQ5_0;
  using Act = ActivationBlock32;
  static constexpr int64_t kBlockBytes = 22;
  static constexpr int kBiasMul = 16;
#if FRUGAL_DPBUSD
  // Interleaved weights are in the 16-row tile's layout (Q5Lanes).
  static void Rows16(const WeightView& w, const Act* xa, int64_t n_tokens, float* y, int64_t r0,
                     int64_t r1) {
    Rows16Blocks32<Q5Lanes>(w, xa, nullptr, n_tokens, y, r0, r1);
  }
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
    VU8 lo, hi;
    Q5Values(LoadRowChunks(p, 6), LoadRowChunks(p, 2), &lo, &hi);
    for (int t = 0; t < kT; ++t)
      isum[t] = DotU8I8(DotU8I8(isum[t], lo, DupAct(a[t]->qs)), hi, DupAct(a[t]->qs + 16));
  }
  static HWY_INLINE VF32 Finish(VF32 acc, VI32 isum, const Header& h, const Act& a) {
    const DF32 df;
    return hn::MulAdd(hn::ConvertTo(df, isum), hn::Mul(h.d, hn::Set(df, a.d)), acc);
  }
#endif
};

void MatmulQ5_0(const WeightView& w, const float* x, int64_t n_tokens, float* y, ThreadPool* pool) {
  MatmulBlocks<Q5_0Kernel>(w, x, n_tokens, y, pool);
}

}  // namespace frugal::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace frugal::kernels {

HWY_EXPORT(MatmulQ5_0);

void matmul_q5_0(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                 ThreadPool* pool) {
  HWY_DYNAMIC_DISPATCH(MatmulQ5_0)(w, x, n_tokens, y, pool);
}

}  // namespace frugal::kernels
#endif  // HWY_ONCE
