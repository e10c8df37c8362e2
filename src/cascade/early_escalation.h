// Early escalation: tier 1 is watched as it generates and stopped once the mean logprob of its
// latest `window` tokens falls below a floor; the request then goes to the top tier at once.
// LogprobFloor is the rule the live cascade applies; early_stop_point and
// sweep_early_escalation replay it over complete tier-1 answers so that `frugal eval` can
// measure what it saves (docs/CASCADE.md, "Early escalation").
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cascade/task_items.h"
#include "cascade/tier.h"

namespace frugal::cascade {

// False (stop) once at least `window` tokens were seen and the mean logprob of the last
// `window` is below `floor`. A non-finite logprob counts as -100.
class LogprobFloor {
 public:
  LogprobFloor(int64_t window, double floor);
  bool operator()(const AnswerToken& t);

 private:
  size_t window_;
  double floor_;
  std::vector<double> recent_;  // [window] ring of the latest logprobs
  size_t n_ = 0;
  double sum_ = 0.0;
};

// How many tokens tier 1 had generated when LogprobFloor(window, floor) would have stopped
// it, replayed over a complete answer's tokens; 0 when it would never have stopped it.
int64_t early_stop_point(const std::vector<AnswerToken>& tokens, int64_t window, double floor);

// The cascade over a set of item runs at one (window, floor), against the same cascade
// without early escalation. An item stopped early escalates whatever its score would have
// been, and pays tier 1 only for the tokens generated before the stop.
struct EarlyEscalationPoint {
  int64_t window = 0;
  double floor = 0;
  size_t items = 0;
  size_t stopped = 0;              // items tier 1 was stopped on
  // Stopped items the scorer would have kept with tier 1 answering right: the answers early
  // escalation paid the top tier for without need.
  size_t stopped_needlessly = 0;
  int64_t tier1_tokens = 0;        // tier-1 tokens generated without early escalation
  int64_t tier1_tokens_saved = 0;  // of those, not generated with it
  double tier1_ms_saved = 0;       // tier-1 time saved, pro rata of each answer's latency
  double accuracy = 0;             // the cascade with early escalation
  double accuracy_without = 0;     // the cascade without it
  double cost_per_item = 0;        // with it
  double cost_per_item_without = 0;
  double top_cost_per_item = 0;    // top tier alone
};

struct EarlyEscalationSweep {
  std::vector<int64_t> windows = {1, 2, 4, 8};
  std::vector<double> floors = {-0.25, -0.5, -1.0, -2.0, -4.0};
};

// One point per (window, floor), windows outer. `tier1_cost(tokens_in, tokens_out)` prices a
// tier-1 answer; items without a reference answer count as ItemRun says.
std::vector<EarlyEscalationPoint> sweep_early_escalation(
    const std::vector<ItemRun>& runs, double threshold, const EarlyEscalationSweep& sweep,
    const std::function<double(int64_t, int64_t)>& tier1_cost);

// The sweep as a terminal table.
std::string early_escalation_table(const std::vector<EarlyEscalationPoint>& points);

}  // namespace frugal::cascade
