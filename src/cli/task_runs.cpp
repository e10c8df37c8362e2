// run_task_items: the shared eval/calibrate loop, with an items/s and ETA line on a terminal.
#include "cli/task_runs.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
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
  options.scheduler.kv_type = *kv_type_from_name(flags.kv_type);  // checked by the flag
  options.n_threads = flags.threads;
  options.n_ctx = flags.ctx;
  // The runs never touch a shared cache: a Redis cache tier becomes a private memory cache.
  cascade::CascadeConfig private_config = *config;
  for (cascade::TierConfig& t : private_config.tiers) {
    if (t.kind == cascade::TierKind::kCache) t.cache_backend = cascade::TierConfig::CacheBackend::kMemory;
  }
  auto c = cascade::Cascade::create(private_config, options);
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

void add_parallel_option(CLI::App* cmd, int* parallel, std::string* kv_type) {
  cmd->add_option("--kv-type", *kv_type, "KV cache element type of the local tiers: f16 "
                  "(default) or f32")
      ->check(CLI::IsMember({"f16", "f32"}));
  cmd->add_option("--parallel", *parallel,
                  "Items in flight at once, batched by each tier's scheduler (default 1; the "
                  "results are the same for any N at temperature 0)")
      ->check(CLI::Range(1, 1024));
}

Status run_parallel(size_t n, int parallel, const std::function<Status(size_t)>& fn,
                    size_t* failed_index, const std::function<void()>& tick) {
  std::atomic<size_t> next{0}, finished{0};
  std::atomic<bool> failed{false};
  std::mutex error_mu;
  Status error = Status::ok();
  auto work = [&] {
    while (!failed.load()) {
      const size_t i = next.fetch_add(1);
      if (i >= n) break;
      Status st = fn(i);
      if (!st.is_ok()) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (!failed.exchange(true)) {
          error = std::move(st);
          *failed_index = i;
        }
        break;
      }
    }
    finished.fetch_add(1);
  };
  const int n_workers = static_cast<int>(
      std::max<size_t>(1, std::min<size_t>(static_cast<size_t>(std::max(parallel, 1)), n)));
  std::vector<std::thread> workers;
  for (int w = 0; w < n_workers; ++w) workers.emplace_back(work);
  while (tick && finished.load() < static_cast<size_t>(n_workers)) {
    tick();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  for (auto& t : workers) t.join();
  if (tick) tick();
  return error;
}

std::optional<std::vector<cascade::ItemRun>> run_task_items(
    const char* command, cascade::Cascade& cascade, const cascade::Scorer& scorer,
    const std::vector<cascade::TaskItem>& items, int64_t max_tokens, const std::string& data_path,
    double* seconds, int parallel) {
  const bool tty = isatty(2) != 0;
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  // Each item's two tier calls are submitted to the tiers' schedulers, which batch the items
  // in flight. Results land at their item's index.
  std::vector<std::optional<cascade::ItemRun>> runs(items.size());
  std::atomic<size_t> done{0};
  size_t shown = static_cast<size_t>(-1);
  auto progress = [&] {
    const size_t d = done.load();
    if (d == shown) return;
    const double s = elapsed();
    const double rate = s > 0 ? static_cast<double>(d) / s : 0;
    const double eta = rate > 0 ? static_cast<double>(items.size() - d) / rate : 0;
    std::fprintf(stderr, "\r%zu/%zu items  %.2f items/s  ETA %.0f s   ", d, items.size(), rate,
                 eta);
    std::fflush(stderr);
    shown = d;
  };
  size_t failed = 0;
  Status st = run_parallel(
      items.size(), parallel,
      [&](size_t i) -> Status {
        auto run = cascade::run_task_item(cascade.tier1(), cascade.top_tier(), scorer, items[i],
                                          max_tokens);
        if (!run.is_ok()) return run.status();
        runs[i] = std::move(*run);
        done.fetch_add(1);
        return Status::ok();
      },
      &failed, tty ? std::function<void()>(progress) : std::function<void()>());
  if (tty) std::fprintf(stderr, "\n");
  if (!st.is_ok()) {
    std::fprintf(stderr, "frugal %s: %s:%d (item %s): %s\n", command, data_path.c_str(),
                 items[failed].line, items[failed].id.c_str(), st.to_string().c_str());
    return std::nullopt;
  }
  *seconds = elapsed();
  std::vector<cascade::ItemRun> out;
  out.reserve(runs.size());
  for (auto& r : runs) out.push_back(std::move(*r));
  return out;
}

}  // namespace frugal::cli
