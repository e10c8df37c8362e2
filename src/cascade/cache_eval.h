// What the cache tiers do over a set of task items: the items are replayed in their file's
// order through the cascade's own cache stage (Cascade::lookup_cache), each looked up among
// the answers the cascade gave the items before it, so exact repeats and near duplicates hit
// as they would on a server that saw the items in that order. `frugal eval` and `frugal
// calibrate` report it (docs/CASCADE.md, "Measuring the cache").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cascade/cascade.h"
#include "cascade/task_items.h"

namespace frugal::cascade {

// One item as the cascade answered it without the cache.
struct CacheReplayItem {
  const TaskItem* item = nullptr;
  const TierAnswer* answer = nullptr;  // the cascade's final answer (tier 1's or the top tier's)
  // The top tier's answer: it stands in for the reference of an item that has none (as it
  // does for `correct`), so a served answer is judged the same way.
  const TierAnswer* top = nullptr;
  double cost = 0;                     // what the cascade paid for it
  bool correct = false;                // `answer` passes the item's check
};

// The replay items of `runs` at `scores` (the scorer's, after any early-escalation cut) and
// `threshold`: tier 1's answer where the cascade keeps it, else the top tier's.
std::vector<CacheReplayItem> cascade_replay_items(const std::vector<TaskItem>& items,
                                                  const std::vector<ItemRun>& runs,
                                                  const std::vector<double>& scores,
                                                  const std::vector<double>& tier1_costs,
                                                  double threshold);

struct CacheEval {
  int64_t items = 0;
  int64_t hits = 0, exact_hits = 0, semantic_hits = 0;
  int64_t false_hits = 0;  // hits whose served answer fails the item's check
  int64_t candidates = 0;  // near duplicates found by the semantic cache
  int64_t checks = 0;      // tier 1's teacher-forced checks of them
  double hit_rate = 0;        // hits / items
  double false_hit_rate = 0;  // false hits / hits (0 without hits)
  // Dollars over the items: the cascade alone; with the cache (misses at the cascade's cost,
  // hits at the cache's price, every check at tier 1's); the difference (negative when the
  // checks cost more than the hits save).
  double cost_without = 0, cost_with = 0, cost_saved = 0;
  double accuracy_without = 0, accuracy_with = 0;
};

// Replays `replay` in order through `cascade`'s cache stage. A miss stores the item's answer
// (the cascade's, as a server stores it); a hit stores nothing, as a server serving it would
// not. `cascade` should have an empty, private cache (the eval tools give the cascade a memory
// cache in place of Redis). Generates nothing; the checks run tier 1's teacher-forced pass. A
// served answer is judged by the item's check, or against the top tier's answer for an item
// without a reference (answers_agree). Errors: those of check_answer.
Result<CacheEval> evaluate_cache(Cascade& cascade, const std::vector<CacheReplayItem>& replay,
                                 int64_t max_tokens);

// "cache 'name' (exact + semantic), items replayed in order: 12 hits of 500 (2.4 %; exact 3,
// semantic 9 of 40 candidates checked), 1 false hit (8.3 %); accuracy 0.912 -> 0.910; cost
// $0.0210 -> $0.0204 (saved 2.9 %)".
std::string cache_eval_line(const Cascade& cascade, const CacheEval& e);

}  // namespace frugal::cascade
