// Roofline probes (roofline.h): a SIMD streaming read and an FMA chain per thread.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/roofline.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <vector>

#include "hwy/aligned_allocator.h"
#include "hwy/highway.h"
#include "kernels/roofline.h"
#include "util/timer.h"

HWY_BEFORE_NAMESPACE();
namespace frugal::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Sums [begin, end) of `p` with four independent vector accumulators; the sum is returned so
// that the compiler cannot drop the loads.
HWY_NOINLINE float StreamSum(const float* p, int64_t begin, int64_t end) {
  const hn::ScalableTag<float> df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  auto s0 = hn::Zero(df), s1 = hn::Zero(df), s2 = hn::Zero(df), s3 = hn::Zero(df);
  for (int64_t i = begin; i + 4 * n <= end; i += 4 * n) {
    s0 = hn::Add(s0, hn::Load(df, p + i));
    s1 = hn::Add(s1, hn::Load(df, p + i + n));
    s2 = hn::Add(s2, hn::Load(df, p + i + 2 * n));
    s3 = hn::Add(s3, hn::Load(df, p + i + 3 * n));
  }
  return hn::GetLane(hn::SumOfLanes(df, hn::Add(hn::Add(s0, s1), hn::Add(s2, s3))));
}

double MemoryBandwidth(ThreadPool* pool, BenchClock clock) {
  constexpr int64_t kBytes = int64_t{1} << 30;
  constexpr int64_t kFloats = kBytes / 4;
  constexpr int64_t kChunk = 4096;  // floats; every thread's range is a multiple of this
  auto buf = hwy::AllocateAligned<float>(kFloats);
  const int n_threads = pool != nullptr ? pool->n_threads() : 1;
  // Each thread touches (first-writes) the pages it will read, as a kernel's weights would be.
  auto fill = [&](int64_t b, int64_t e, int) {
    std::memset(buf.get() + b, 0, static_cast<size_t>(e - b) * 4);
  };
  auto read = [&](int64_t b, int64_t e, int) {
    volatile float sink = StreamSum(buf.get(), b, e);
    (void)sink;
  };
  if (n_threads > 1) {
    pool->parallel_for(kFloats, kChunk, fill);
  } else {
    fill(0, kFloats, 0);
  }
  double best = 0.0;
  for (int rep = 0; rep < 5; ++rep) {
    const BenchTimer timer(clock, n_threads);
    if (n_threads > 1) {
      pool->parallel_for(kFloats, kChunk, read);
    } else {
      read(0, kFloats, 0);
    }
    best = std::max(best, static_cast<double>(kBytes) / timer.seconds() / 1e9);
  }
  return best;
}

// Runs `iters` iterations of 12 independent FMA chains (enough to cover a 4-cycle latency on
// two pipes) and returns a value depending on all of them.
HWY_NOINLINE float FmaChains(int64_t iters, float seed) {
  const hn::ScalableTag<float> df;
  using V = hn::VFromD<decltype(df)>;
  constexpr int kChains = 12;
  V acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = hn::Set(df, seed + static_cast<float>(i));
  const V m = hn::Set(df, 0.999999f);
  const V a = hn::Set(df, 1e-7f);
  for (int64_t it = 0; it < iters; ++it) {
    for (int i = 0; i < kChains; ++i) acc[i] = hn::MulAdd(acc[i], m, a);
  }
  V s = acc[0];
  for (int i = 1; i < kChains; ++i) s = hn::Add(s, acc[i]);
  return hn::GetLane(s);
}

double FmaPeak(ThreadPool* pool, BenchClock clock) {
  const hn::ScalableTag<float> df;
  constexpr int64_t kIters = 20'000'000;
  constexpr int kChains = 12;
  const int n_threads = pool != nullptr ? pool->n_threads() : 1;
  auto body = [&](int t) {
    volatile float sink = FmaChains(kIters, static_cast<float>(t));
    (void)sink;
  };
  double best = 0.0;
  for (int rep = 0; rep < 3; ++rep) {
    const BenchTimer timer(clock, n_threads);
    if (n_threads > 1) {
      pool->run(body);
    } else {
      body(0);
    }
    const double flops =
        2.0 * static_cast<double>(hn::Lanes(df)) * kChains * kIters * n_threads;
    best = std::max(best, flops / timer.seconds() / 1e9);
  }
  return best;
}

}  // namespace frugal::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace frugal::kernels {

HWY_EXPORT(MemoryBandwidth);
HWY_EXPORT(FmaPeak);

double measure_memory_bandwidth_gbps(ThreadPool* pool, BenchClock clock) {
  return HWY_DYNAMIC_DISPATCH(MemoryBandwidth)(pool, clock);
}

double measure_fma_peak_gflops(ThreadPool* pool, BenchClock clock) {
  return HWY_DYNAMIC_DISPATCH(FmaPeak)(pool, clock);
}

}  // namespace frugal::kernels
#endif  // HWY_ONCE
