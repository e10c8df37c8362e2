// Early escalation: the running logprob floor and its replay over complete answers.
#include "cascade/early_escalation.h"

#include <cmath>
#include <cstdio>

#include "cascade/calibration.h"
#include "util/check.h"

namespace frugal::cascade {

LogprobFloor::LogprobFloor(int64_t window, double floor)
    : window_(static_cast<size_t>(window)), floor_(floor), recent_(window_, 0.0) {
  CHECK(window >= 1, "the early-escalation window must be at least 1 token");
}

bool LogprobFloor::operator()(const AnswerToken& t) {
  const double lp = std::isfinite(t.logprob) ? t.logprob : -100.0;
  sum_ += lp - recent_[n_ % window_];
  recent_[n_ % window_] = lp;
  ++n_;
  return n_ < window_ || sum_ / static_cast<double>(window_) >= floor_;
}

int64_t early_stop_point(const std::vector<AnswerToken>& tokens, int64_t window, double floor) {
  LogprobFloor keep_going(window, floor);
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (!keep_going(tokens[i])) return static_cast<int64_t>(i + 1);
  }
  return 0;
}

std::vector<EarlyEscalationPoint> sweep_early_escalation(
    const std::vector<ItemRun>& runs, double threshold, const EarlyEscalationSweep& sweep,
    const std::function<double(int64_t, int64_t)>& tier1_cost) {
  std::vector<EarlyEscalationPoint> points;
  const double n = runs.empty() ? 1.0 : static_cast<double>(runs.size());
  for (int64_t window : sweep.windows) {
    for (double floor : sweep.floors) {
      EarlyEscalationPoint p;
      p.window = window;
      p.floor = floor;
      p.items = runs.size();
      double cost = 0, cost_without = 0, top_cost = 0;
      size_t right = 0, right_without = 0;
      for (const ItemRun& r : runs) {
        const bool escalates = cascade_escalates(r.score, threshold);
        const int64_t stop = early_stop_point(r.tier1.tokens, window, floor);
        p.tier1_tokens += r.tier1.tokens_out;
        top_cost += r.top.cost;
        cost_without += r.tier1.cost + (escalates ? r.top.cost : 0.0);
        right_without += escalates ? r.top_correct : r.tier1_correct;
        if (stop > 0) {
          ++p.stopped;
          if (!escalates && r.tier1_correct) ++p.stopped_needlessly;
          const int64_t saved = r.tier1.tokens_out - stop;
          p.tier1_tokens_saved += saved;
          if (r.tier1.tokens_out > 0) {
            p.tier1_ms_saved += r.tier1.latency_ms * static_cast<double>(saved) /
                                static_cast<double>(r.tier1.tokens_out);
          }
          cost += tier1_cost(r.tier1.tokens_in, stop) + r.top.cost;
          right += r.top_correct;
        } else {
          cost += r.tier1.cost + (escalates ? r.top.cost : 0.0);
          right += escalates ? r.top_correct : r.tier1_correct;
        }
      }
      p.accuracy = static_cast<double>(right) / n;
      p.accuracy_without = static_cast<double>(right_without) / n;
      p.cost_per_item = cost / n;
      p.cost_per_item_without = cost_without / n;
      p.top_cost_per_item = top_cost / n;
      points.push_back(p);
    }
  }
  return points;
}

std::string early_escalation_table(const std::vector<EarlyEscalationPoint>& points) {
  std::string out =
      "early escalation (replayed over tier 1's complete answers; 'without' = scorer only)\n"
      "window  floor  stopped  needless  tier-1 tokens saved  tier-1 ms saved  accuracy "
      "(without)  cost vs top (without)\n";
  char line[256];
  for (const EarlyEscalationPoint& p : points) {
    const double items = p.items ? static_cast<double>(p.items) : 1.0;
    const double top = p.top_cost_per_item > 0 ? p.top_cost_per_item : 1.0;
    std::snprintf(line, sizeof line,
                  "%6lld %6.2f %7.1f%% %9zu %12lld (%5.1f%%) %16.0f %8.1f%% (%5.1f%%) %8.1f%% "
                  "(%5.1f%%)\n",
                  (long long)p.window, p.floor, 100.0 * static_cast<double>(p.stopped) / items,
                  p.stopped_needlessly, (long long)p.tier1_tokens_saved,
                  p.tier1_tokens ? 100.0 * static_cast<double>(p.tier1_tokens_saved) /
                                       static_cast<double>(p.tier1_tokens)
                                 : 0.0,
                  p.tier1_ms_saved, 100.0 * p.accuracy, 100.0 * p.accuracy_without,
                  100.0 * p.cost_per_item / top, 100.0 * p.cost_per_item_without / top);
    out += line;
  }
  return out;
}

}  // namespace frugal::cascade
