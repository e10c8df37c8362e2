// Roofline of this machine, measured in the running process: memory bandwidth and FP32 FMA
// peak on the SIMD target the kernels dispatch to, so benchmarks can quote ratios to them.
#pragma once

#include "util/thread_pool.h"

namespace frugal::kernels {

// Streaming-read bandwidth in GB/s (1e9 bytes/s) over a 1 GiB buffer read by every thread of
// `pool` (null = the calling thread alone); the best of a few repetitions.
double measure_memory_bandwidth_gbps(ThreadPool* pool);

// FP32 FMA throughput in GFLOP/s (2 flops per lane per FMA) on all threads of `pool`
// (null = one thread); the best of a few repetitions.
double measure_fma_peak_gflops(ThreadPool* pool);

}  // namespace frugal::kernels
