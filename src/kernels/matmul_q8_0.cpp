// Matmul for Q8_0 weights, compiled for every SIMD target (Highway foreach_target).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matmul_q8_0.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"
#include "kernels/matmul-inl.h"
#include "kernels/matmul_internal.h"

HWY_BEFORE_NAMESPACE();
namespace frugal::kernels::HWY_NAMESPACE {

void MatmulQ8_0(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                ThreadPool* pool) {
  MatmulQuant<Q8_0Kernel>(w, x, n_tokens, y, pool);
}

#if FRUGAL_DPBUSD
int Q8TileInterleaveGroup() { return kQ8Rows; }
#else
int Q8TileInterleaveGroup() { return 0; }
#endif

}  // namespace frugal::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace frugal::kernels {

HWY_EXPORT(MatmulQ8_0);
HWY_EXPORT(Q8TileInterleaveGroup);

int q8_tile_interleave_group() { return HWY_DYNAMIC_DISPATCH(Q8TileInterleaveGroup)(); }

void matmul_q8_0(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                 ThreadPool* pool) {
  HWY_DYNAMIC_DISPATCH(MatmulQ8_0)(w, x, n_tokens, y, pool);
}

}  // namespace frugal::kernels
#endif  // HWY_ONCE
