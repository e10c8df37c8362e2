// Matmul for Q4_K weights, compiled for every SIMD target (Highway foreach_target).
// Sub-blocks of 32 with 6-bit scales and minima; activations as Q8_K super-blocks.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matmul_q4_k.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"
#include "kernels/matmul_blocks-inl.h"

HWY_BEFORE_NAMESPACE();
#if HWY_TARGET == HWY_AVX3_DL
#pragma GCC target("avx512vnni")  // see matmul-inl.h
#endif
namespace frugal::kernels::HWY_NAMESPACE {

// Block (144 bytes): d, dmin (fp16), 12 bytes of 6-bit scales and minima, 128 bytes of nibbles
// (ggml_type.h). Activations: Q8_K super-blocks.
struct Q4_KKernel {
  static constexpr GgmlType kType = GgmlType::kQ4_K;
  using Act = ActivationBlockK;
  static constexpr int64_t kBlockBytes = 144;
  static constexpr int kBiasMul = 0;
  static constexpr bool kInterleaves = true;  // 144-byte blocks: 9 chunks of 16
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

}  // namespace frugal::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace frugal::kernels {

HWY_EXPORT(MatmulQ4_K);
HWY_EXPORT(BlockTileInterleaveGroup);

int block_tile_interleave_group() { return HWY_DYNAMIC_DISPATCH(BlockTileInterleaveGroup)(); }

void matmul_q4_k(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                 ThreadPool* pool) {
  HWY_DYNAMIC_DISPATCH(MatmulQ4_K)(w, x, n_tokens, y, pool);
}

}  // namespace frugal::kernels
#endif  // HWY_ONCE
