// The loop `frugal eval` and `frugal calibrate` share: every task item through tier 1 and the
// top tier, with a progress line on a terminal.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cascade/cascade.h"
#include "cascade/task_items.h"

namespace frugal::cli {

// The options both commands take for running the tiers: -n/--max-tokens, -t/--threads, -c/--ctx.
void add_tier_run_options(CLI::App* cmd, int64_t* max_tokens, int* threads, int64_t* ctx);

// What both commands start from: the config, the items, the loaded tiers, the answer length
// and the configured scorer.
struct TaskRunSetup {
  cascade::CascadeConfig config;
  std::vector<cascade::TaskItem> items;
  std::unique_ptr<cascade::Cascade> cascade;
  int64_t max_tokens = 0;
  cascade::Scorer scorer;
};

struct TaskRunFlags {
  std::string config_path, data_path;
  int64_t limit = 0;        // keep only the first `limit` items when > 0
  int threads = 0;
  int64_t ctx = 0;
  int64_t max_tokens = 0;   // 0: the config's [cascade] max_tokens
  size_t min_model_tiers = 1;
  std::string kv_type = "f16";  // the local tiers' KV cache element type
};

// Loads everything, or prints "frugal COMMAND: <why>" and sets *exit_code: 2 for a bad config,
// data file or too few model tiers, 1 when a tier cannot be loaded.
std::optional<TaskRunSetup> load_task_run(const char* command, const TaskRunFlags& flags,
                                          int* exit_code);

// --parallel N (items in flight at once) and --kv-type (the local tiers' KV cache type).
void add_parallel_option(CLI::App* cmd, int* parallel, std::string* kv_type);

// `parallel` workers call fn(i) for every i in [0, n), taking indices in order. The first failure
// stops them from taking more; it is returned, with its index in *failed_index. While they run
// the calling thread calls `tick` (when set) every 200 ms, and once more at the end.
Status run_parallel(size_t n, int parallel, const std::function<Status(size_t)>& fn,
                    size_t* failed_index, const std::function<void()>& tick = {});

// The runs in item order, and in `seconds` the time they took, with `parallel` items in
// flight (each tier's scheduler batches them; greedy results do not depend on it). On a failed
// item, prints "frugal COMMAND: DATA:LINE (item ID): error" and returns nullopt.
std::optional<std::vector<cascade::ItemRun>> run_task_items(
    const char* command, cascade::Cascade& cascade, const cascade::Scorer& scorer,
    const std::vector<cascade::TaskItem>& items, int64_t max_tokens, const std::string& data_path,
    double* seconds, int parallel = 1);

}  // namespace frugal::cli
