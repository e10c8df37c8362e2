// Matmul for Q4_0 weights, compiled for every SIMD target (Highway foreach_target).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matmul_q4_0.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"
#include "kernels/matmul-inl.h"

HWY_BEFORE_NAMESPACE();
namespace frugal::kernels::HWY_NAMESPACE {

void MatmulQ4_0(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                ThreadPool* pool) {
  MatmulQuant<Q4_0Kernel>(w, x, n_tokens, y, pool);
}

}  // namespace frugal::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace frugal::kernels {

HWY_EXPORT(MatmulQ4_0);

void matmul_q4_0(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                 ThreadPool* pool) {
  HWY_DYNAMIC_DISPATCH(MatmulQ4_0)(w, x, n_tokens, y, pool);
}

}  // namespace frugal::kernels
#endif  // HWY_ONCE
