// kernels_bench: matmul speed on Llama-3.2-1B-shaped matrices per weight type, beside the
// roofline measured in the same run. Decode (1 token): GB/s of weights streamed vs memory
// bandwidth. Prefill (512 tokens): GFLOP/s (2 flops per weight per token) vs FP32 FMA peak.
// Usage: kernels_bench [n_threads=2] [types=q4_0,q8_0,f16,bf16,f32] [--clock wall|cpu]
//   types: any computable type (q4_k, q5_k, q6_k, q3_k, q2_k, q5_0, q5_1, q4_1, iq4_nl, ...).
//   --clock cpu divides by the process's CPU time per thread instead of wall time, for all
//   figures and the roofline alike: on a machine other processes share it measures what the
//   kernels do while they have a core (kernels/roofline.h BenchClock).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

#include "hwy/aligned_allocator.h"
#include "kernels/ggml_type.h"
#include "kernels/ops.h"
#include "kernels/roofline.h"
#include "util/thread_pool.h"
#include "util/timer.h"

namespace frugal::kernels {
namespace {

struct Shape {
  const char* name;
  int64_t n_rows, n_cols;
};
// One Llama-3.2-1B layer (n_embd 2048, n_ff 8192, 8 kv heads of 64) and the output matrix.
constexpr Shape kLayer[] = {{"attn_q", 2048, 2048}, {"attn_k", 512, 2048},
                            {"attn_v", 512, 2048},  {"attn_output", 2048, 2048},
                            {"ffn_gate", 8192, 2048}, {"ffn_up", 8192, 2048},
                            {"ffn_down", 2048, 8192}};
constexpr Shape kOutput = {"output", 128256, 2048};
constexpr int kNLayer = 16;

struct Matrix {
  hwy::AlignedFreeUniquePtr<uint8_t[]> bytes;
  WeightView view;
  int64_t n_bytes() const { return view.n_rows * view.row_bytes(); }
};

// Fills a matrix with plausible values (normal floats, finite scales) quickly: speed must not
// depend on values, but denormals or NaNs would distort float timings.
Matrix make_matrix(GgmlType type, const Shape& s, uint64_t seed) {
  Matrix m;
  m.view = WeightView{nullptr, type, s.n_rows, s.n_cols};
  const int64_t n = m.n_bytes();
  m.bytes = hwy::AllocateAligned<uint8_t>(static_cast<size_t>(n));
  uint8_t* p = m.bytes.get();
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  auto next = [&x] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  for (int64_t i = 0; i + 8 <= n; i += 8) {
    const uint64_t r = next();
    std::memcpy(p + i, &r, 8);
  }
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::normal_distribution<float> dist(0.0f, 0.05f);
  float table[256];
  for (float& f : table) f = dist(rng);
  const uint16_t scale = fp32_to_fp16(0.002f);
  switch (type) {
    case GgmlType::kF32:
      for (int64_t i = 0; i < n; i += 4) std::memcpy(p + i, &table[p[i]], 4);
      break;
    case GgmlType::kF16:
    case GgmlType::kBF16:
      for (int64_t i = 0; i < n; i += 2) {
        const uint16_t h =
            type == GgmlType::kF16 ? fp32_to_fp16(table[p[i]]) : fp32_to_bf16(table[p[i]]);
        std::memcpy(p + i, &h, 2);
      }
      break;
    default: {
      // Every fp16 scale of a block (offsets per ggml_type.h) set to a normal value; the
      // integer bytes stay random.
      const int64_t bb = ggml_type_info(type)->type_size;
      std::vector<int> halves = {0};
      switch (type) {
        case GgmlType::kQ4_1: case GgmlType::kQ5_1: case GgmlType::kQ4_K: case GgmlType::kQ5_K:
          halves = {0, 2};
          break;
        case GgmlType::kQ2_K: halves = {80, 82}; break;
        case GgmlType::kQ3_K: halves = {108}; break;
        case GgmlType::kQ6_K: halves = {208}; break;
        default: break;
      }
      for (int64_t i = 0; i < n; i += bb)
        for (int off : halves) std::memcpy(p + i + off, &scale, 2);
    }
  }
  m.view.data = p;
  return m;
}

void run_type(GgmlType type, ThreadPool* pool, BenchClock clock, double bw, double peak) {
  const int nt = pool->n_threads();
  const char* tname = ggml_type_info(type)->name;
  int64_t layer_bytes = 0;
  for (const Shape& s : kLayer) layer_bytes += ggml_row_bytes(type, s.n_cols) * s.n_rows;
  // Enough distinct copies of a layer that nothing is still in L3 when reused: 256 MiB, or
  // twice the L3 this machine reports (480 MiB on some Xeons).
  const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
  const int64_t span = std::max<int64_t>(256ll << 20, 2 * static_cast<int64_t>(std::max(0L, l3)));
  const int copies = static_cast<int>(std::max<int64_t>(2, span / layer_bytes + 1));
  std::vector<std::vector<Matrix>> layers(copies);
  for (int c = 0; c < copies; ++c)
    for (const Shape& s : kLayer) layers[c].push_back(make_matrix(type, s, 1000 * c + s.n_rows));
  const Matrix output = make_matrix(type, kOutput, 77);

  std::vector<float> x(static_cast<size_t>(512 * 8192));
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (float& f : x) f = dist(rng);
  std::vector<float> y(static_cast<size_t>(512 * 128256 / 8));  // big enough for 512 x 8192
  std::vector<float> logits(static_cast<size_t>(kOutput.n_rows));

  // Decode: one token through 16 layers and the output matrix, as a forward pass reads them.
  auto decode_pass = [&] {
    int64_t bytes = 0;
    for (int il = 0; il < kNLayer; ++il) {
      for (const Matrix& m : layers[il % copies]) {
        matmul(m.view, x.data(), 1, y.data(), pool);
        bytes += m.n_bytes();
      }
    }
    matmul(output.view, x.data(), 1, logits.data(), pool);
    return bytes + output.n_bytes();
  };
  decode_pass();
  double best_decode = 0.0;
  for (int rep = 0; rep < 5; ++rep) {
    const BenchTimer t(clock, nt);
    const int64_t bytes = decode_pass();
    best_decode = std::max(best_decode, static_cast<double>(bytes) / t.seconds() / 1e9);
  }
  std::printf("%-5s decode  n_tokens=1   %7.1f GB/s   = %5.1f%% of %.1f GB/s memory bandwidth\n",
              tname, best_decode, 100.0 * best_decode / bw, bw);
  for (size_t si = 0; si < std::size(kLayer); ++si) {
    double best = 0.0;
    for (int rep = 0; rep < 3; ++rep) {
      const BenchTimer t(clock, nt);
      for (int c = 0; c < copies; ++c)
        matmul(layers[c][si].view, x.data(), 1, y.data(), pool);
      best = std::max(best, static_cast<double>(copies * layers[0][si].n_bytes()) /
                                t.seconds() / 1e9);
    }
    // Copies that together fit in a few L3s are partly served from cache, not DRAM.
    const bool cached = copies * layers[0][si].n_bytes() < std::max<int64_t>(96ll << 20, l3);
    std::printf("        %-12s %6lldx%-5lld %7.1f GB/s (%5.1f%%)%s\n", kLayer[si].name,
                (long long)kLayer[si].n_rows, (long long)kLayer[si].n_cols, best,
                100.0 * best / bw, cached ? "  [partly from L3]" : "");
  }
  {
    double best = 0.0;
    for (int rep = 0; rep < 3; ++rep) {
      const BenchTimer t(clock, nt);
      matmul(output.view, x.data(), 1, logits.data(), pool);
      best = std::max(best, static_cast<double>(output.n_bytes()) / t.seconds() / 1e9);
    }
    std::printf("        %-12s %6lldx%-5lld %7.1f GB/s (%5.1f%%)\n", kOutput.name,
                (long long)kOutput.n_rows, (long long)kOutput.n_cols, best, 100.0 * best / bw);
  }

  // Prefill: 512 tokens through one layer's matrices.
  constexpr int64_t kPrefill = 512;
  matmul(layers[0][0].view, x.data(), kPrefill, y.data(), pool);  // warm-up (scratch growth)
  double flops = 0.0;
  const BenchTimer t(clock, nt);
  for (const Matrix& m : layers[0]) {
    matmul(m.view, x.data(), kPrefill, y.data(), pool);
    flops += 2.0 * kPrefill * static_cast<double>(m.view.n_rows * m.view.n_cols);
  }
  const double gflops = flops / t.seconds() / 1e9;
  std::printf("%-5s prefill n_tokens=512 %7.1f GFLOP/s = %5.1f%% of %.1f GFLOP/s FP32 FMA peak\n",
              tname, gflops, 100.0 * gflops / peak, peak);
  std::fflush(stdout);
}

}  // namespace
}  // namespace frugal::kernels

int main(int argc, char** argv) {
  using namespace frugal;
  std::vector<std::string> positional;
  kernels::BenchClock clock = kernels::BenchClock::kWall;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--clock" && i + 1 < argc) {
      const std::string c = argv[++i];
      if (c != "wall" && c != "cpu") {
        std::fprintf(stderr, "kernels_bench: --clock must be wall or cpu\n");
        return 2;
      }
      clock = c == "cpu" ? kernels::BenchClock::kCpu : kernels::BenchClock::kWall;
    } else {
      positional.push_back(a);
    }
  }
  const int n_threads = !positional.empty() ? std::atoi(positional[0].c_str()) : 2;
  std::string types = positional.size() > 1 ? positional[1] : "q4_0,q8_0,f16,bf16,f32";
  ThreadPool pool(n_threads);
  std::printf("kernels_bench: %d threads, SIMD target %s, %s clock\n", n_threads,
              kernels::simd_target_name(),
              clock == kernels::BenchClock::kCpu ? "CPU-time" : "wall");
  const double bw = kernels::measure_memory_bandwidth_gbps(&pool, clock);
  const double peak = kernels::measure_fma_peak_gflops(&pool, clock);
  std::printf("roofline: memory bandwidth %.1f GB/s, FP32 FMA peak %.1f GFLOP/s\n", bw, peak);
  size_t pos = 0;
  while (pos < types.size()) {
    size_t end = types.find(',', pos);
    if (end == std::string::npos) end = types.size();
    const std::string name = types.substr(pos, end - pos);
    GgmlType type;
    if (ggml_type_from_name(name.c_str(), &type) == nullptr) {
      std::fprintf(stderr, "unknown type %s\n", name.c_str());
      return 1;
    }
    kernels::run_type(type, &pool, clock, bw, peak);
    pos = end + 1;
  }
  // Measured again at the end: the machine is shared, so quote the ratio to both.
  std::printf("roofline (end): memory bandwidth %.1f GB/s, FP32 FMA peak %.1f GFLOP/s\n",
              kernels::measure_memory_bandwidth_gbps(&pool, clock),
              kernels::measure_fma_peak_gflops(&pool, clock));
  return 0;
}
