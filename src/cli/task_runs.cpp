// run_task_items: the shared eval/calibrate loop, with an items/s and ETA line on a terminal.
#include "cli/task_runs.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "cli/flags.h"

namespace frugal::cli {

void add_tier_run_options(CLI::App* cmd, int64_t* max_tokens, int* threads, int64_t* ctx) {
  cmd->add_option("-n,--max-tokens", *max_tokens,
                  "Maximum tokens per answer (default: [cascade] max_tokens)")
      ->check(int_range(1, int64_t{1} << 30));
  add_threads_option(cmd, threads, "Threads per local tier (default: all cores)");
  add_ctx_option(cmd, ctx, "Context size per local tier (default: min(4096, trained))");
}

std::optional<TaskRunSetup> load_task_run(const char* command, const TaskRunFlags& flags,
                                          int* exit_code) {
  *exit_code = 2;
  auto config = cascade::load_cascade_config(flags.config_path);
  if (!config.is_ok()) {
    std::fprintf(stderr, "frugal %s: %s\n", command, config.status().to_string().c_str());
    return std::nullopt;
  }
  if (config->model_tiers().size() < flags.min_model_tiers) {
    std::fprintf(stderr, "frugal %s: %s: needs %zu model tier%s (tier 1 and a top tier)\n",
                 command, flags.config_path.c_str(), flags.min_model_tiers,
                 flags.min_model_tiers == 1 ? "" : "s");
    return std::nullopt;
  }
  auto items = cascade::read_task_items(flags.data_path);
  if (!items.is_ok()) {
    std::fprintf(stderr, "frugal %s: %s\n", command, items.status().to_string().c_str());
    return std::nullopt;
  }
  if (flags.limit > 0 && static_cast<size_t>(flags.limit) < items->size())
    items->resize(flags.limit);
  cascade::CascadeOptions options;
  options.n_threads = flags.threads;
  options.n_ctx = flags.ctx;
  auto c = cascade::Cascade::create(*config, options);
  if (!c.is_ok()) {
    std::fprintf(stderr, "frugal %s: %s: %s\n", command, flags.config_path.c_str(),
                 c.status().to_string().c_str());
    *exit_code = 1;
    return std::nullopt;
  }
  TaskRunSetup setup;
  setup.max_tokens = flags.max_tokens > 0 ? flags.max_tokens : config->max_tokens;
  setup.scorer = cascade::scorer_from_config(config->scorer);
  setup.config = std::move(*config);
  setup.items = std::move(*items);
  setup.cascade = std::move(*c);
  *exit_code = 0;
  return setup;
}

std::optional<std::vector<cascade::ItemRun>> run_task_items(
    const char* command, cascade::Cascade& cascade, const cascade::Scorer& scorer,
    const std::vector<cascade::TaskItem>& items, int64_t max_tokens, const std::string& data_path,
    double* seconds) {
  const bool tty = isatty(2) != 0;
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  std::vector<cascade::ItemRun> runs;
  runs.reserve(items.size());
  for (const cascade::TaskItem& item : items) {
    auto run = cascade::run_task_item(cascade.tier1(), cascade.top_tier(), scorer, item,
                                      max_tokens);
    if (!run.is_ok()) {
      std::fprintf(stderr, "\nfrugal %s: %s:%d (item %s): %s\n", command, data_path.c_str(),
                   item.line, item.id.c_str(), run.status().to_string().c_str());
      return std::nullopt;
    }
    runs.push_back(std::move(*run));
    if (tty) {
      const double s = elapsed();
      const double rate = s > 0 ? static_cast<double>(runs.size()) / s : 0;
      const double eta = rate > 0 ? static_cast<double>(items.size() - runs.size()) / rate : 0;
      std::fprintf(stderr, "\r%zu/%zu items  %.2f items/s  ETA %.0f s   ", runs.size(),
                   items.size(), rate, eta);
      if (runs.size() == items.size()) std::fprintf(stderr, "\n");
      std::fflush(stderr);
    }
  }
  *seconds = elapsed();
  return runs;
}

}  // namespace frugal::cli
