// Matmul for Q3_K weights, compiled for every SIMD target (Highway foreach_target).
// Sub-blocks of 16 with 6-bit signed scales; activations as Q8_K super-blocks.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matmul_q3_k.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"
#include "kernels/matmul_blocks-inl.h"

HWY_BEFORE_NAMESPACE();
#if HWY_TARGET == HWY_AVX3_DL
#pragma GCC target("avx512vnni")  // see matmul-inl.h
#endif
namespace frugal::kernels::HWY_NAMESPACE {

// Block (110 bytes): 32 bytes of high bits, 64 of 2-bit fields, 12 of 6-bit scales, d (fp16)
// (ggml_type.h). Activations: Q8_K super-blocks. The kernel multiplies the unsigned values
// q + 4 (0..7) and subtracts 4 * sum_j scale_j * bsum_j once per block.
struct Q3_KKernel {
  static constexpr GgmlType kType = GgmlType::kQ3_K;
  using Act = ActivationBlockK;
  static constexpr int64_t kBlockBytes = 110;
  static constexpr int kBiasMul = 0;
#if FRUGAL_BLOCK_KERNELS
  struct Header {
    VF32 d;
    VI16 sc[2];      // scales 0..7 and 8..15 (already minus 32) as int16, in each row's lane
    VU8 hmask[2];    // hmask[0..16) and hmask[16..32)
  };

  // The 16 scales of each row (unpack_scales_q3_k, vectorised) as bytes 0..15 of its lane,
  // from the lane holding block bytes 94..109 (the scales are bytes 2..13 of it).
  static HWY_INLINE VU8 UnpackScales(VU8 raw) {
    alignas(16) static constexpr uint8_t kLowByte[16] = {2, 3, 4, 5, 6, 7, 8, 9,
                                                         2, 3, 4, 5, 6, 7, 8, 9};
    alignas(16) static constexpr uint8_t kHighByte[16] = {10, 11, 12, 13, 10, 11, 12, 13,
                                                          10, 11, 12, 13, 10, 11, 12, 13};
    alignas(16) static constexpr uint8_t kFirstHalf[16] = {15, 15, 15, 15, 15, 15, 15, 15,
                                                           0,  0,  0,  0,  0,  0,  0,  0};
    alignas(16) static constexpr uint8_t kSecondHalf[16] = {0,  0,  0,  0,  0,  0,  0,  0,
                                                            15, 15, 15, 15, 15, 15, 15, 15};
    // Scale j takes bits 2 (j / 4) and 2 (j / 4) + 1 of its high byte to bits 4 and 5.
    alignas(16) static constexpr uint8_t kGroup[4][16] = {
        {0x30, 0x30, 0x30, 0x30, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
        {0, 0, 0, 0, 0x30, 0x30, 0x30, 0x30, 0, 0, 0, 0, 0, 0, 0, 0},
        {0, 0, 0, 0, 0, 0, 0, 0, 0x30, 0x30, 0x30, 0x30, 0, 0, 0, 0},
        {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x30, 0x30, 0x30, 0x30}};
    const VU8 low = hn::TableLookupBytes(raw, Dup16(kLowByte));
    const VU8 low4 = hn::Or(hn::And(low, Dup16(kFirstHalf)),
                            hn::And(ShiftBytesRight<4>(low), Dup16(kSecondHalf)));
    const VU8 high = hn::TableLookupBytes(raw, Dup16(kHighByte));
    const VU8 top = hn::Or(hn::Or(hn::And(ShiftBytesLeft<4>(high), Dup16(kGroup[0])),
                                  hn::And(ShiftBytesLeft<2>(high), Dup16(kGroup[1]))),
                           hn::Or(hn::And(high, Dup16(kGroup[2])),
                                  hn::And(ShiftBytesRight<2>(high), Dup16(kGroup[3]))));
    return hn::Or(low4, top);
  }

  static HWY_INLINE Header LoadHeader(const uint8_t* const* p, const int32_t* spread) {
    const VU8 s = UnpackScales(LoadRowChunks(p, 94));
    const VI16 bias = hn::Set(DI16(), 32);
    return {RowHalfs(p, 108, spread),
            {hn::Sub(WidenBytes<0>(s), bias), hn::Sub(WidenBytes<8>(s), bias)},
            {LoadRowChunks(p, 0), LoadRowChunks(p, 16)}};
  }

  // Half H, 16-element group G: elements 128 H + 32 k + 16 G + (0..15), sub-blocks
  // 8 H + 2 k + G; value k has bits 2k..2k+1 of qs and bit 4 H + k of hmask.
  template <int H, int G, int kT>
  static HWY_INLINE void Step(const uint8_t* const* p, const Header& h,
                              const Act* const* a, VI32* isum) {
    const VU8 qs = LoadRowChunks(p, 32 + 32 * H + 16 * G);
    const VU8 m = h.hmask[G];
    const VU8 three = hn::Set(DU8(), 3);
    const VU8 q[4] = {hn::Or(hn::And(qs, three), MoveBit<4 * H, 2>(m)),
                      hn::Or(hn::And(ShiftBytesRight<2>(qs), three), MoveBit<4 * H + 1, 2>(m)),
                      hn::Or(hn::And(ShiftBytesRight<4>(qs), three), MoveBit<4 * H + 2, 2>(m)),
                      hn::Or(hn::And(ShiftBytesRight<6>(qs), three), MoveBit<4 * H + 3, 2>(m))};
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
    const VI32 offset = hn::Add(MulPairsI16(h.sc[0], DupI16(a.bsums)),
                                MulPairsI16(h.sc[1], DupI16(a.bsums + 8)));
    const VI32 total = hn::Sub(isum, hn::ShiftLeft<2>(offset));
    return hn::MulAdd(hn::ConvertTo(df, total), hn::Mul(h.d, hn::Set(df, a.d)), acc);
  }
#endif
};

void MatmulQ3_K(const WeightView& w, const float* x, int64_t n_tokens, float* y, ThreadPool* pool) {
  MatmulBlocks<Q3_KKernel>(w, x, n_tokens, y, pool);
}

}  // namespace frugal::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace frugal::kernels {

HWY_EXPORT(MatmulQ3_K);

void matmul_q3_k(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                 ThreadPool* pool) {
  HWY_DYNAMIC_DISPATCH(MatmulQ3_K)(w, x, n_tokens, y, pool);
}

}  // namespace frugal::kernels
#endif  // HWY_ONCE
