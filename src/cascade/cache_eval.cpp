// evaluate_cache: task items replayed in order through the cascade's cache stage.
#include "cascade/cache_eval.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "cascade/calibration.h"

namespace frugal::cascade {

std::vector<CacheReplayItem> cascade_replay_items(const std::vector<TaskItem>& items,
                                                  const std::vector<ItemRun>& runs,
                                                  const std::vector<double>& scores,
                                                  const std::vector<double>& tier1_costs,
                                                  double threshold) {
  CHECK(items.size() == runs.size() && runs.size() == scores.size() &&
            scores.size() == tier1_costs.size(),
        "%zu items, %zu runs, %zu scores, %zu costs", items.size(), runs.size(), scores.size(),
        tier1_costs.size());
  std::vector<CacheReplayItem> out;
  for (size_t i = 0; i < items.size(); ++i) {
    const bool escalate = cascade_escalates(scores[i], threshold);
    CacheReplayItem r;
    r.item = &items[i];
    r.answer = escalate ? &runs[i].top : &runs[i].tier1;
    r.top = &runs[i].top;
    r.cost = tier1_costs[i] + (escalate ? runs[i].top.cost : 0.0);
    r.correct = escalate ? runs[i].top_correct : runs[i].tier1_correct;
    out.push_back(r);
  }
  return out;
}

namespace {

// `answer` served for `r`'s item passes its check (against the top tier's answer when the item
// has no reference, as ItemRun's correctness is judged).
Result<bool> served_right(const CacheReplayItem& r, const std::string& answer) {
  if (r.item->reference.empty() && r.top != nullptr) {
    return answers_agree(*r.item, answer, r.top->text);
  }
  return check_answer(*r.item, answer);
}

}  // namespace

Result<CacheEval> evaluate_cache(Cascade& cascade, const std::vector<CacheReplayItem>& replay,
                                 int64_t max_tokens) {
  CacheEval e;
  int64_t right_without = 0, right_with = 0;
  for (const CacheReplayItem& r : replay) {
    TierRequest request;
    request.messages = r.item->messages;
    request.max_tokens = max_tokens;
    CacheLookup l = cascade.lookup_cache(request);
    e.items++;
    e.cost_without += r.cost;
    right_without += r.correct;
    if (std::isfinite(l.similarity)) e.candidates++;
    if (l.check) {
      e.checks++;
      e.cost_with += l.check->cost;
    }
    if (l.answer) {
      e.hits++;
      (l.semantic ? e.semantic_hits : e.exact_hits)++;
      FRUGAL_ASSIGN_OR_RETURN(bool right, served_right(r, l.answer->text));
      e.false_hits += right ? 0 : 1;
      right_with += right;
      e.cost_with += l.answer->cost;
    } else {
      right_with += r.correct;
      e.cost_with += r.cost;
      cascade.store_answer(request, *r.answer, l.embedding);
    }
  }
  const double n = static_cast<double>(std::max<int64_t>(1, e.items));
  e.hit_rate = static_cast<double>(e.hits) / n;
  e.false_hit_rate = e.hits > 0 ? static_cast<double>(e.false_hits) / static_cast<double>(e.hits) : 0;
  e.cost_saved = e.cost_without - e.cost_with;
  e.accuracy_without = static_cast<double>(right_without) / n;
  e.accuracy_with = static_cast<double>(right_with) / n;
  return e;
}

std::string cache_eval_line(const Cascade& cascade, const CacheEval& e) {
  const TierConfig* c = cascade.config().cache_tier();
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "cache '%s' (%s), items replayed in order: %lld hits of %lld (%.1f %%; exact "
                "%lld, semantic %lld of %lld candidates, %lld checked), %lld false hits "
                "(%.1f %% of hits); accuracy %.3f -> %.3f; cost $%.4g -> $%.4g (saved %.1f %%)\n",
                c != nullptr ? c->name.c_str() : "-",
                c != nullptr && c->semantic ? "exact + semantic" : "exact",
                (long long)e.hits, (long long)e.items, 100.0 * e.hit_rate,
                (long long)e.exact_hits, (long long)e.semantic_hits, (long long)e.candidates,
                (long long)e.checks, (long long)e.false_hits, 100.0 * e.false_hit_rate,
                e.accuracy_without, e.accuracy_with, e.cost_without, e.cost_with,
                e.cost_without > 0 ? 100.0 * e.cost_saved / e.cost_without : 0.0);
  return buf;
}

}  // namespace frugal::cascade
