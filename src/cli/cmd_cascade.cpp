// `frugal cascade`: answers prompts (one -p, or one per stdin line) through the configured
// cascade, printing each answer with the tier that gave it, its score, cost and latency.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cascade/cascade.h"
#include "cascade/config.h"
#include "cli/commands.h"
#include "cli/flags.h"

namespace frugal::cli {

namespace {

struct CascadeArgs {
  std::string config = "frugal.toml";
  std::string prompt;
  bool prompt_set = false;
  std::string system;
  int64_t max_tokens = 0;  // 0: the config's [cascade] max_tokens
  float temp = 0.0f;
  int64_t seed = 0;
  int threads = 0;
  int64_t ctx = 0;
  bool json = false;
};

std::string dump_json(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Returns false when the answer failed (the message is printed).
bool answer_one(cascade::Cascade& c, const CascadeArgs& a, int64_t max_tokens,
                const std::string& prompt) {
  cascade::TierRequest request;
  if (!a.system.empty()) request.messages.push_back({"system", a.system});
  request.messages.push_back({"user", prompt});
  request.max_tokens = max_tokens;
  request.temperature = a.temp;
  request.seed = static_cast<uint64_t>(a.seed);
  auto r = c.answer(request);
  if (!r.is_ok()) {
    std::fprintf(stderr, "frugal cascade: %s\n", r.status().to_string().c_str());
    return false;
  }
  const cascade::CascadeAnswer& ans = *r;
  if (a.json) {
    nlohmann::json j{{"prompt", prompt},
                     {"answer", ans.text},
                     {"tier", ans.tier},
                     {"score", std::isfinite(ans.score) ? nlohmann::json(ans.score)
                                                        : nlohmann::json(nullptr)},
                     {"escalated", ans.escalated},
                     {"escalated_early", ans.escalated_early},
                     {"tokens_in", ans.tokens_in},
                     {"tokens_out", ans.tokens_out},
                     {"cost", ans.cost},
                     {"latency_ms", ans.latency_ms}};
    std::printf("%s\n", dump_json(j).c_str());
  } else {
    std::printf("%s\n", ans.text.c_str());
    std::string score = std::isfinite(ans.score) ? std::to_string(ans.score) : "-";
    std::printf("[tier %s%s, score %s, %lld in / %lld out tokens, cost $%.3g, %.1f ms]\n",
                ans.tier.c_str(),
                ans.escalated_early ? " (escalated early)"
                : ans.escalated     ? " (escalated)"
                : ans.cache_hit     ? " (cache hit)"
                                    : "",
                score.c_str(), (long long)ans.tokens_in, (long long)ans.tokens_out, ans.cost,
                ans.latency_ms);
  }
  std::fflush(stdout);
  return true;
}

int run_cascade(const CascadeArgs& a) {
  if (a.prompt_set && a.prompt.empty()) {
    std::fprintf(stderr, "frugal cascade: the prompt is empty; pass -p TEXT, or one prompt per "
                         "line on stdin\n");
    return 2;
  }
  auto config = cascade::load_cascade_config(a.config);
  if (!config.is_ok()) {
    std::fprintf(stderr, "frugal cascade: %s\n", config.status().to_string().c_str());
    return 2;
  }
  cascade::CascadeOptions options;
  options.n_threads = a.threads;
  options.n_ctx = a.ctx;
  auto c = cascade::Cascade::create(*config, options);
  if (!c.is_ok()) {
    std::fprintf(stderr, "frugal cascade: %s: %s\n", a.config.c_str(),
                 c.status().to_string().c_str());
    return 1;
  }
  const int64_t max_tokens = a.max_tokens > 0 ? a.max_tokens : config->max_tokens;
  if (a.prompt_set) return answer_one(**c, a, max_tokens, a.prompt) ? 0 : 1;
  int status = 0;
  std::string line;
  while (std::getline(std::cin, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (!answer_one(**c, a, max_tokens, line)) status = 1;
  }
  return status;
}

}  // namespace

void register_cascade(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<CascadeArgs>();
  auto* cmd = app.add_subcommand(
      "cascade", "Answer prompts through the cascade (cache, tier 1, scorer, top tier)");
  cmd->add_option("--config", args->config, "Cascade config file (default: frugal.toml)");
  cmd->add_option("-p,--prompt", args->prompt,
                  "The user message (default: one prompt per line on stdin)")
      ->each([args](const std::string&) { args->prompt_set = true; });
  cmd->add_option("--system", args->system, "System message for every prompt");
  cmd->add_option("-n,--max-tokens", args->max_tokens,
                  "Maximum tokens per answer (default: [cascade] max_tokens)")
      ->check(int_range(1, int64_t{1} << 30));
  cmd->add_option("--temp", args->temp, "Temperature (0 = greedy; only greedy is cached)")
      ->check(real_range(0.0, 100.0));
  cmd->add_option("--seed", args->seed, "Random seed for --temp > 0")
      ->check(int_range(0, INT64_MAX));
  add_threads_option(cmd, &args->threads, "Threads per local tier (default: all cores)");
  add_ctx_option(cmd, &args->ctx, "Context size per local tier (default: min(4096, trained))");
  cmd->add_flag("--json", args->json, "One JSON object per prompt");
  cmd->callback([args, &exit_code] { exit_code = run_cascade(*args); });
}

}  // namespace frugal::cli
