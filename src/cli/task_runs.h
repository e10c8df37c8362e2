// The loop `frugal eval` and `frugal calibrate` share: every task item through tier 1 and the
// top tier, with a progress line on a terminal.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cascade/cascade.h"
#include "cascade/task_items.h"

namespace frugal::cli {

// The runs in item order, and in `seconds` the time they took. On a failed item, prints
// "frugal COMMAND: DATA:LINE (item ID): error" and returns nullopt.
std::optional<std::vector<cascade::ItemRun>> run_task_items(
    const char* command, cascade::Cascade& cascade, const cascade::Scorer& scorer,
    const std::vector<cascade::TaskItem>& items, int64_t max_tokens, const std::string& data_path,
    double* seconds);

}  // namespace frugal::cli
