// `frugal bench`: prefill and decode speed of one model beside the machine's own roofline
// (memory bandwidth and FP32 FMA peak), both measured in the same run; with --parallel, the
// scheduler's aggregate decode throughput, time to first token and inter-token latency at
// each concurrency; with --shared-prefix, time to first token with a cached system prompt.
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "cli/commands.h"
#include "cli/flags.h"
#include "engine/model.h"
#include "kernels/roofline.h"
#include "engine/chat_template.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"
#include "sched/generate.h"
#include "sched/scheduler.h"
#include "util/file_io.h"
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
  std::vector<int> parallel;   // concurrency levels for the scheduler benchmark
  int64_t shared_prefix = 0;   // system-prompt tokens for the cached/uncached TTFT benchmark
  std::string kv_type = "f16";
  // Speculative decoding: a draft model and/or prompt lookup, on the prompts of a file.
  std::string draft;
  std::string spec;            // "ngram" or "draft" (the default with --draft)
  std::string prompt_file;     // one prompt per line
  bool chat = false;           // wrap each prompt in the model's chat template
  int spec_k = 4;
  int64_t draft_vocab = 0;
};

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const size_t i = static_cast<size_t>(pos);
  const double f = pos - static_cast<double>(i);
  return i + 1 < v.size() ? v[i] * (1 - f) + v[i + 1] * f : v[i];
}

double ms_between(SchedClock::time_point a, SchedClock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

std::vector<int32_t> random_tokens(std::mt19937& rng, int64_t n, int64_t n_vocab) {
  std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(n_vocab - 1));
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (auto& t : v) t = pick(rng);
  return v;
}

// N requests submitted at once, each a distinct random prompt of n_prompt tokens decoding
// n_gen tokens (end-of-generation ignored). Aggregate decode throughput is counted over the
// window in which every stream is decoding — from the last stream's first token to the first
// stream's last token — which is what llama-batched-bench's S_TG measures after its prefill.
nlohmann::json run_parallel_level(Scheduler& s, int n, int64_t n_prompt, int64_t n_gen,
                                  std::mt19937& rng) {
  const int64_t n_vocab = s.model().config().n_vocab;
  std::vector<std::vector<SchedClock::time_point>> times(n);
  for (auto& t : times) t.reserve(static_cast<size_t>(n_gen));
  std::vector<std::shared_ptr<RequestHandle>> handles;
  const auto start = SchedClock::now();
  for (int i = 0; i < n; ++i) {
    SchedRequest r;
    r.prompt = random_tokens(rng, n_prompt, n_vocab);
    r.params.max_tokens = n_gen;
    r.params.stop_at_eog = false;
    auto* mine = &times[i];
    r.on_token = [mine](const GeneratedToken&) {
      mine->push_back(SchedClock::now());
      return true;
    };
    auto h = s.submit(std::move(r));
    if (!h.is_ok()) return {{"n", n}, {"error", h.status().to_string()}};
    handles.push_back(*h);
  }
  for (auto& h : handles) {
    const Completion& c = h->wait();
    if (!c.status.is_ok()) return {{"n", n}, {"error", c.status.to_string()}};
  }
  const auto end = SchedClock::now();
  std::vector<double> ttft, itl;
  SchedClock::time_point window_start = start, window_end = end;
  int64_t total = 0;
  for (const auto& t : times) {
    if (t.empty()) continue;
    ttft.push_back(ms_between(start, t.front()));
    for (size_t k = 1; k < t.size(); ++k) itl.push_back(ms_between(t[k - 1], t[k]));
    window_start = std::max(window_start, t.front());
    window_end = std::min(window_end, t.back());
    total += static_cast<int64_t>(t.size());
  }
  int64_t in_window = 0;
  for (const auto& t : times)
    for (const auto& x : t) in_window += (x > window_start && x <= window_end) ? 1 : 0;
  const double window_s = std::chrono::duration<double>(window_end - window_start).count();
  const double agg = window_s > 0 ? static_cast<double>(in_window) / window_s : 0.0;
  const double wall_s = std::chrono::duration<double>(end - start).count();
  return {{"n", n},
          {"n_prompt", n_prompt},
          {"n_gen", n_gen},
          {"decode_tokens_per_s", agg},
          {"per_stream_tokens_per_s", agg / n},
          {"end_to_end_tokens_per_s", static_cast<double>(total) / wall_s},
          {"ttft_ms_p50", percentile(ttft, 0.5)},
          {"ttft_ms_p99", percentile(ttft, 0.99)},
          {"itl_ms_p50", percentile(itl, 0.5)},
          {"itl_ms_p99", percentile(itl, 0.99)},
          {"wall_s", wall_s}};
}

// Time to first token of a request whose first `prefix` tokens are a system prompt: uncached
// (a prefix never seen) and cached (the same prefix as a request that ran before), the median
// of `reps` pairs. The request's own part is 16 tokens and it generates one token.
nlohmann::json run_shared_prefix(Scheduler& s, int64_t prefix, int reps, std::mt19937& rng) {
  const int64_t n_vocab = s.model().config().n_vocab;
  std::vector<double> uncached, cached;
  int64_t cached_tokens = 0;
  auto ttft = [&](const std::vector<int32_t>& prompt, int64_t* n_cached) -> double {
    SchedRequest r;
    r.prompt = prompt;
    r.params.max_tokens = 1;
    r.params.stop_at_eog = false;
    auto h = s.submit(std::move(r));
    if (!h.is_ok()) return -1;
    const Completion& c = (*h)->wait();
    if (!c.status.is_ok()) return -1;
    if (n_cached != nullptr) *n_cached = c.result.n_prompt_cached;
    return 1000.0 * c.result.first_token_seconds;
  };
  for (int i = 0; i < reps; ++i) {
    std::vector<int32_t> system = random_tokens(rng, prefix, n_vocab);
    auto with_suffix = [&] {
      std::vector<int32_t> p = system;
      std::vector<int32_t> tail = random_tokens(rng, 16, n_vocab);
      p.insert(p.end(), tail.begin(), tail.end());
      return p;
    };
    uncached.push_back(ttft(with_suffix(), nullptr));
    cached.push_back(ttft(with_suffix(), &cached_tokens));
  }
  const double u = percentile(uncached, 0.5), c = percentile(cached, 0.5);
  return {{"prefix_tokens", prefix},
          {"ttft_uncached_ms", u},
          {"ttft_cached_ms", c},
          {"speedup", c > 0 ? u / c : 0.0},
          {"cached_prompt_tokens", cached_tokens},
          {"reps", reps}};
}

// Plain greedy decoding of the target against speculative decoding, prompt by prompt on
// one scheduler each: decode tokens/s of both (time after the first token, summed over the
// prompts), the acceptance rate, and whether every answer is identical (it must be).
int bench_spec(const BenchArgs& a) {
  auto text = read_file(a.prompt_file);
  if (!text.is_ok()) {
    std::fprintf(stderr, "frugal bench: -f: %s\n", text.status().to_string().c_str());
    return 2;
  }
  std::vector<std::string> prompts;
  {
    std::istringstream in(*text);
    std::string line;
    while (std::getline(in, line))
      if (!line.empty()) prompts.push_back(line);
  }
  if (prompts.empty()) {
    std::fprintf(stderr, "frugal bench: -f %s holds no prompt (one per line)\n",
                 a.prompt_file.c_str());
    return 2;
  }
  ModelOptions mo;
  mo.pool = std::make_shared<ThreadPool>(a.threads > 0 ? a.threads : default_thread_count());
  auto load = [&](const std::string& path) -> std::unique_ptr<Model> {
    auto m = Model::load(path, mo);
    if (!m.is_ok()) {
      std::fprintf(stderr, "frugal bench: %s\n", m.status().to_string().c_str());
      return nullptr;
    }
    return std::move(m).value();
  };
  auto plain_model = load(a.model), spec_model = load(a.model);
  std::unique_ptr<Model> draft_model;
  if (!a.draft.empty()) draft_model = load(a.draft);
  if (!plain_model || !spec_model || (!a.draft.empty() && !draft_model)) return 1;
  std::vector<std::vector<int32_t>> tokens;
  const Tokenizer& tok = plain_model->tokenizer();
  const std::string tmpl = plain_model->gguf().get_string_or("tokenizer.chat_template", "");
  for (const std::string& p : prompts) {
    if (!a.chat) {
      tokens.push_back(tok.encode(p, true, false));
      continue;
    }
    auto resolved = resolve_chat_template(tmpl);
    auto rendered = resolved.is_ok() ? apply_chat_template(*resolved, std::vector<ChatMessage>{{"user", p}},
                                                           chat_template_inputs(tok))
                                     : Result<std::string>(resolved.status());
    if (!rendered.is_ok()) {
      std::fprintf(stderr, "frugal bench: %s\n", rendered.status().to_string().c_str());
      return 2;
    }
    tokens.push_back(tok.encode(*rendered, tok.add_bos(), true));
  }
  SchedulerOptions so;
  so.kv_type = *kv_type_from_name(a.kv_type);
  so.max_running = 1;
  auto plain = Scheduler::create(std::move(plain_model), so);
  so.spec = a.spec == "ngram" ? SchedulerOptions::Spec::kNgram : SchedulerOptions::Spec::kDraftModel;
  so.spec_k = a.spec_k;
  so.draft_vocab = a.draft_vocab;
  so.spec_k_max = std::max(a.spec_k, 12);
  auto spec = Scheduler::create(std::move(spec_model), so, std::move(draft_model));
  if (!plain.is_ok() || !spec.is_ok()) {
    std::fprintf(stderr, "frugal bench: %s\n",
                 (plain.is_ok() ? spec.status() : plain.status()).to_string().c_str());
    return 1;
  }
  GenerateParams gp;
  gp.max_tokens = a.n_gen;
  gp.stop_at_eog = true;
  // Warm-up: one short answer each, so page faults of the mapped files are not timed.
  generate(**plain, tokens[0], GenerateParams{4});
  generate(**spec, tokens[0], GenerateParams{4});
  double plain_s = 0, spec_s = 0;
  int64_t plain_n = 0, spec_n = 0, identical = 0;
  for (const auto& t : tokens) {
    auto x = generate(**plain, t, gp);
    auto y = generate(**spec, t, gp);
    if (!x.is_ok() || !y.is_ok()) {
      std::fprintf(stderr, "frugal bench: %s\n",
                   (x.is_ok() ? y.status() : x.status()).to_string().c_str());
      return 1;
    }
    plain_s += x->decode_seconds;
    spec_s += y->decode_seconds;
    // Decode time runs from the first token: count the tokens after it.
    plain_n += std::max<int64_t>(0, static_cast<int64_t>(x->tokens.size()) - 1);
    spec_n += std::max<int64_t>(0, static_cast<int64_t>(y->tokens.size()) - 1);
    identical += x->text == y->text ? 1 : 0;
  }
  const SchedulerStats st = (*spec)->stats();
  const double plain_tps = plain_s > 0 ? plain_n / plain_s : 0;
  const double spec_tps = spec_s > 0 ? spec_n / spec_s : 0;
  const double acceptance =
      st.spec_draft_tokens > 0 ? static_cast<double>(st.spec_accepted_tokens) / st.spec_draft_tokens : 0;
  nlohmann::json accepted_at = nlohmann::json::array();
  for (size_t i = 0; i < st.spec_accepted_by_position.size(); ++i) {
    if (st.spec_drafts == 0) break;
    accepted_at.push_back(static_cast<double>(st.spec_accepted_by_position[i]) / st.spec_drafts);
  }
  nlohmann::json j{{"model", a.model},
                   {"draft", a.draft},
                   {"draft_vocab", a.draft_vocab},
                   {"spec", a.spec},
                   {"threads", mo.pool->n_threads()},
                   {"prompts", tokens.size()},
                   {"n_gen", a.n_gen},
                   {"decode_tokens_per_s", plain_tps},
                   {"spec_decode_tokens_per_s", spec_tps},
                   {"speedup", plain_tps > 0 ? spec_tps / plain_tps : 0},
                   {"acceptance_rate", acceptance},
                   {"drafts", st.spec_drafts},
                   {"draft_tokens", st.spec_draft_tokens},
                   {"accepted_tokens", st.spec_accepted_tokens},
                   {"acceptance_by_position", accepted_at},
                   {"identical_answers", identical}};
  if (a.json) {
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("target %s, %s drafts%s%s, %zu prompts, up to %lld tokens each\n", a.model.c_str(),
                a.spec.c_str(), a.draft.empty() ? "" : " from ", a.draft.c_str(), tokens.size(),
                (long long)a.n_gen);
    std::printf("plain decode        %8.2f tok/s\n", plain_tps);
    std::printf("speculative decode  %8.2f tok/s  (%.2fx), acceptance %.1f %% of %llu draft tokens\n",
                spec_tps, plain_tps > 0 ? spec_tps / plain_tps : 0, 100 * acceptance,
                (unsigned long long)st.spec_draft_tokens);
    std::printf("identical answers   %lld of %zu\n", (long long)identical, tokens.size());
  }
  return identical == static_cast<int64_t>(tokens.size()) ? 0 : 1;
}

int bench(const BenchArgs& a) {
  if (!a.draft.empty() || !a.spec.empty()) {
    BenchArgs b = a;
    if (b.spec.empty()) b.spec = "draft";
    if (b.prompt_file.empty()) {
      std::fprintf(stderr, "frugal bench: speculative decoding is measured on -f PROMPT_FILE\n");
      return 2;
    }
    if (b.spec == "draft" && b.draft.empty()) {
      std::fprintf(stderr, "frugal bench: --spec draft needs --draft MODEL\n");
      return 2;
    }
    return bench_spec(b);
  }
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

  // The first layer's query matrix (Phi-3's fused QKV) names the file's weight type.
  const kernels::WeightView& wq0 = c.fused_qkv ? w.layers[0].wqkv : w.layers[0].wq;
  const char* weight_type = ggml_type_info(wq0.type)->name;
  nlohmann::json j{{"model", a.model},
                   {"architecture", c.arch_name},
                   {"weight_type", weight_type},
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
  std::unique_ptr<Scheduler> scheduler;  // owns the model once created; lives to the end
  if (!a.parallel.empty() || a.shared_prefix > 0) {
    // The scheduler runs the model from here on.
    SchedulerOptions so;
    so.kv_type = *kv_type_from_name(a.kv_type);  // checked by the flag
    int max_n = 1;
    for (int n : a.parallel) max_n = std::max(max_n, n);
    so.max_running = max_n;
    so.n_ctx = std::max<int64_t>(a.n_prompt + a.n_gen + 16, a.shared_prefix + 32);
    so.kv_tokens = std::max<int64_t>(so.n_ctx * max_n, 2 * (a.shared_prefix + 32));
    auto created = Scheduler::create(std::move(*loaded), so);
    if (!created.is_ok()) {
      std::fprintf(stderr, "frugal bench: %s\n", created.status().to_string().c_str());
      return 1;
    }
    scheduler = std::move(created).value();
    Scheduler* sched = scheduler.get();
    std::mt19937 prng(99);
    // Warm-up through the scheduler, so the first level does not pay for first touches.
    run_parallel_level(*sched, 1, 16, 4, prng);
    nlohmann::json levels = nlohmann::json::array();
    for (int n : a.parallel) {
      levels.push_back(run_parallel_level(*sched, n, a.n_prompt, a.n_gen, prng));
      if (levels.back().contains("error")) {
        std::fprintf(stderr, "frugal bench: --parallel %d: %s\n", n,
                     levels.back()["error"].get<std::string>().c_str());
        return 1;
      }
    }
    if (!a.parallel.empty()) j["parallel"] = levels;
    if (a.shared_prefix > 0) j["shared_prefix"] = run_shared_prefix(*sched, a.shared_prefix, 5, prng);
    j["kv_type"] = a.kv_type;
  }
  if (a.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("model        %s (%s, %s weights, %.2f GB streamed per token)\n", a.model.c_str(),
              c.arch_name.c_str(), weight_type,
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
  if (j.contains("parallel")) {
    std::printf("\nscheduler (%s KV cache), %lld-token prompts, %lld tokens each:\n",
                a.kv_type.c_str(), (long long)a.n_prompt, (long long)a.n_gen);
    std::printf("  streams  aggregate tok/s  per stream  TTFT p50/p99 ms   ITL p50/p99 ms\n");
    for (const auto& l : j["parallel"]) {
      std::printf("  %7d  %15.1f  %10.1f  %7.1f / %7.1f  %6.2f / %6.2f\n", l["n"].get<int>(),
                  l["decode_tokens_per_s"].get<double>(), l["per_stream_tokens_per_s"].get<double>(),
                  l["ttft_ms_p50"].get<double>(), l["ttft_ms_p99"].get<double>(),
                  l["itl_ms_p50"].get<double>(), l["itl_ms_p99"].get<double>());
    }
  }
  if (j.contains("shared_prefix")) {
    const auto& sp = j["shared_prefix"];
    std::printf("\nshared %lld-token system prompt: TTFT %.2f ms uncached, %.2f ms cached "
                "(%.1fx; %lld prompt tokens reused)\n",
                (long long)sp["prefix_tokens"].get<int64_t>(), sp["ttft_uncached_ms"].get<double>(),
                sp["ttft_cached_ms"].get<double>(), sp["speedup"].get<double>(),
                (long long)sp["cached_prompt_tokens"].get<int64_t>());
  }
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
  cmd->add_option("--parallel", args->parallel,
                  "Concurrency levels for the scheduler benchmark, e.g. 1,4,16,64 (-p and -n "
                  "per stream)")
      ->delimiter(',')
      ->check(int_range(1, 1024));
  cmd->add_option("--shared-prefix", args->shared_prefix,
                  "Time to first token with a cached system prompt of this many tokens")
      ->check(int_range(1, int64_t{1} << 20));
  cmd->add_option("--kv-type", args->kv_type, "KV cache type for --parallel: f16 or f32")
      ->check(CLI::IsMember({"f16", "f32"}));
  cmd->add_option("--draft", args->draft,
                  "Speculative decoding with this draft model (same vocabulary), on -f's prompts");
  cmd->add_option("--spec", args->spec, "Drafter: draft (with --draft) or ngram (prompt lookup)")
      ->check(CLI::IsMember({"draft", "ngram"}));
  cmd->add_option("-f,--file", args->prompt_file, "Prompts for --draft/--spec, one per line");
  cmd->add_flag("--chat", args->chat, "Wrap each prompt in the model's chat template");
  cmd->add_option("--draft-vocab", args->draft_vocab,
                  "The draft model proposes only token ids below this and end tokens (0: all)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 31));
  cmd->add_option("--draft-k", args->spec_k, "Initial draft length (adapts; default 4)")
      ->check(int_range(1, 64));
  cmd->callback([args, &exit_code] { exit_code = bench(*args); });
}

}  // namespace frugal::cli
