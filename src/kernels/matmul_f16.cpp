// Matmul for F16 weights, compiled for every SIMD target (Highway foreach_target).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matmul_f16.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"
#include "kernels/matmul-inl.h"

HWY_BEFORE_NAMESPACE();
namespace frugal::kernels::HWY_NAMESPACE {

void MatmulF16(const WeightView& w, const float* x, int64_t n_tokens, float* y,
               ThreadPool* pool) {
  MatmulFloat<hwy::float16_t>(w, x, n_tokens, y, pool);
}

}  // namespace frugal::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace frugal::kernels {

HWY_EXPORT(MatmulF16);

void matmul_f16(const WeightView& w, const float* x, int64_t n_tokens, float* y,
                ThreadPool* pool) {
  HWY_DYNAMIC_DISPATCH(MatmulF16)(w, x, n_tokens, y, pool);
}

}  // namespace frugal::kernels
#endif  // HWY_ONCE
