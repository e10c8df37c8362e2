// Roofline of this machine, measured in the running process: memory bandwidth and FP32 FMA
// peak on the SIMD target the kernels dispatch to, so benchmarks can quote ratios to them.
#pragma once

#include <time.h>

#include <algorithm>

#include "util/thread_pool.h"
#include "util/timer.h"

namespace frugal::kernels {

// The clock a benchmark divides by. kWall: elapsed time. kCpu: the process's CPU time divided
// by its thread count — what the run would take if every thread had a core to itself, the
// figure to quote on a shared machine whose other processes take cores away (not memory
// bandwidth: that share is still lost). Threads that spin while waiting count as busy.
enum class BenchClock { kWall, kCpu };

class BenchTimer {
 public:
  BenchTimer(BenchClock clock, int n_threads)
      : clock_(clock), n_threads_(std::max(1, n_threads)), cpu_start_(process_cpu_seconds()) {}
  double seconds() const {
    if (clock_ == BenchClock::kWall) return wall_.seconds();
    return (process_cpu_seconds() - cpu_start_) / n_threads_;
  }

 private:
  static double process_cpu_seconds() {
    timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
  }
  BenchClock clock_;
  int n_threads_;
  Timer wall_;
  double cpu_start_;
};

// Streaming-read bandwidth in GB/s (1e9 bytes/s) over a 1 GiB buffer read by every thread of
// `pool` (null = the calling thread alone); the best of a few repetitions.
double measure_memory_bandwidth_gbps(ThreadPool* pool, BenchClock clock = BenchClock::kWall);

// FP32 FMA throughput in GFLOP/s (2 flops per lane per FMA) on all threads of `pool`
// (null = one thread); the best of a few repetitions.
double measure_fma_peak_gflops(ThreadPool* pool, BenchClock clock = BenchClock::kWall);

}  // namespace frugal::kernels
