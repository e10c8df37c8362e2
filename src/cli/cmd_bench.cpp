// `frugal bench`: prefill and decode speed of one model beside the machine's own roofline
// (memory bandwidth and FP32 FMA peak), both measured in the same run.
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "cli/commands.h"
#include "cli/flags.h"
#include "engine/model.h"
#include "kernels/roofline.h"
#include "util/timer.h"

namespace frugal::cli {

namespace {

struct BenchArgs {
  std::string model;
  int64_t n_prompt = 512;
  int64_t n_gen = 128;
  int threads = 0;
  int reps = 1;
  bool json = false;
};

int bench(const BenchArgs& a) {
  ModelOptions mo;
  mo.n_threads = a.threads;
  auto loaded = Model::load(a.model, mo);
  if (!loaded.is_ok()) {
    std::fprintf(stderr, "frugal bench: %s\n", loaded.status().to_string().c_str());
    return 1;
  }
  Model& model = **loaded;
  const ModelConfig& c = model.config();
  ThreadPool& pool = model.pool();
  if (a.n_prompt < 1 || a.n_gen < 1 || a.reps < 1) {
    std::fprintf(stderr, "frugal bench: -p, -n and --reps must be >= 1\n");
    return 2;
  }

  // The bandwidth of a shared machine drifts within minutes: measure it before and after the
  // timed runs and hold the decode figure against the larger (the harder roofline).
  const double bandwidth_before = kernels::measure_memory_bandwidth_gbps(&pool);
  const double fma_peak = kernels::measure_fma_peak_gflops(&pool);

  auto kv = model.make_kv_cache(a.n_prompt + a.n_gen + 16);
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(c.n_vocab - 1));
  std::vector<int32_t> prompt(a.n_prompt);
  for (auto& t : prompt) t = pick(rng);
  std::vector<float> logits;

  // Warm-up: one pass over every weight so page faults of the mapped file are not timed.
  {
    const KvCache::SeqId s = kv->create_sequence();
    const SeqBatch b{s, std::span<const int32_t>(prompt.data(), 1), false};
    Status st = model.forward(std::span<const SeqBatch>(&b, 1), *kv, logits);
    kv->free_sequence(s);
    if (!st.is_ok()) {
      std::fprintf(stderr, "frugal bench: %s\n", st.to_string().c_str());
      return 1;
    }
  }

  double best_prefill = 1e30, best_decode = 1e30;
  for (int rep = 0; rep < a.reps; ++rep) {
    kv = model.make_kv_cache(a.n_prompt + a.n_gen + 16);  // no prefix reuse between reps
    const KvCache::SeqId s = kv->create_sequence();
    Timer t;
    const SeqBatch b{s, prompt, false};
    Status st = model.forward(std::span<const SeqBatch>(&b, 1), *kv, logits);
    if (!st.is_ok()) {
      std::fprintf(stderr, "frugal bench: %s\n", st.to_string().c_str());
      return 1;
    }
    best_prefill = std::min(best_prefill, t.seconds());
    t.reset();
    for (int64_t i = 0; i < a.n_gen; ++i) {
      const int32_t tok = pick(rng);
      const SeqBatch d{s, std::span<const int32_t>(&tok, 1), false};
      st = model.forward(std::span<const SeqBatch>(&d, 1), *kv, logits);
      if (!st.is_ok()) {
        std::fprintf(stderr, "frugal bench: %s\n", st.to_string().c_str());
        return 1;
      }
    }
    best_decode = std::min(best_decode, t.seconds());
  }

  const double bandwidth_after = kernels::measure_memory_bandwidth_gbps(&pool);
  const double bandwidth = std::max(bandwidth_before, bandwidth_after);
  const double prefill_tps = a.n_prompt / best_prefill;
  const double decode_tps = a.n_gen / best_decode;
  // Prefill: 2 flops per matrix weight per token (every prompt position runs every layer
  // matrix; the output matrix runs once, for the last position). Attention flops are extra.
  const Weights& w = model.weights();
  const double out_params = static_cast<double>(w.output.n_rows) * w.output.n_cols;
  const double layer_params = static_cast<double>(w.matmul_params()) - out_params;
  const double prefill_flops = 2.0 * (layer_params * a.n_prompt + out_params);
  const double prefill_gflops = prefill_flops / best_prefill / 1e9;
  const double bytes_per_token = static_cast<double>(w.bytes_per_token());
  const double decode_gbps = bytes_per_token * decode_tps / 1e9;

  nlohmann::json j{{"model", a.model},
                   {"architecture", c.arch_name},
                   {"weight_type", ggml_type_info(w.layers[0].wq.type)->name},
                   {"threads", pool.n_threads()},
                   {"simd_target", kernels::simd_target_name()},
                   {"n_prompt", a.n_prompt},
                   {"n_gen", a.n_gen},
                   {"bandwidth_gb_per_s", bandwidth},
                   {"bandwidth_before_gb_per_s", bandwidth_before},
                   {"bandwidth_after_gb_per_s", bandwidth_after},
                   {"fma_peak_gflops", fma_peak},
                   {"prefill_tokens_per_s", prefill_tps},
                   {"prefill_gflops", prefill_gflops},
                   {"prefill_peak_fraction", prefill_gflops / fma_peak},
                   {"decode_tokens_per_s", decode_tps},
                   {"decode_bytes_per_token", bytes_per_token},
                   {"decode_gb_per_s", decode_gbps},
                   {"decode_roofline_tokens_per_s", bandwidth * 1e9 / bytes_per_token},
                   {"decode_roofline_fraction", decode_gbps / bandwidth}};
  if (a.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("model        %s (%s, %s weights, %.2f GB streamed per token)\n", a.model.c_str(),
              c.arch_name.c_str(), ggml_type_info(w.layers[0].wq.type)->name,
              bytes_per_token / 1e9);
  std::printf("machine      %d threads, SIMD %s, memory bandwidth %.1f GB/s (%.1f before, %.1f "
              "after), FMA peak %.1f GFLOP/s\n",
              pool.n_threads(), kernels::simd_target_name(), bandwidth, bandwidth_before,
              bandwidth_after, fma_peak);
  std::printf("prefill %4lld  %8.1f tok/s  %7.1f GFLOP/s  = %5.1f %% of FMA peak\n",
              (long long)a.n_prompt, prefill_tps, prefill_gflops, 100.0 * prefill_gflops / fma_peak);
  std::printf("decode  %4lld  %8.2f tok/s  %7.1f GB/s     = %5.1f %% of bandwidth roofline (%.2f tok/s)\n",
              (long long)a.n_gen, decode_tps, decode_gbps, 100.0 * decode_gbps / bandwidth,
              bandwidth * 1e9 / bytes_per_token);
  return 0;
}

}  // namespace

void register_bench(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<BenchArgs>();
  auto* cmd = app.add_subcommand("bench", "Prefill and decode speed against the machine's roofline");
  cmd->add_option("-m,--model", args->model, "GGUF model file")->required();
  cmd->add_option("-p,--n-prompt", args->n_prompt, "Prompt tokens to prefill")
      ->check(int_range(1, int64_t{1} << 20));
  cmd->add_option("-n,--n-gen", args->n_gen, "Tokens to decode")
      ->check(int_range(1, int64_t{1} << 20));
  add_threads_option(cmd, &args->threads, "Threads (default: all cores)");
  cmd->add_option("--reps", args->reps, "Repetitions (best is reported)")
      ->check(int_range(1, 1000));
  cmd->add_flag("--json", args->json, "One JSON object");
  cmd->callback([args, &exit_code] { exit_code = bench(*args); });
}

}  // namespace frugal::cli
