// Cascade economics: cost per query of the top tier alone against the cascade (cache, then
// tier 1, escalating to tier 2), the break-even escalation rate and the latency mix.
#pragma once

#include <string>

#include "cascade/config.h"
#include "util/status.h"

namespace frugal::plan {

struct CascadeInputs {
  double tokens_in = 500;    // prompt tokens per query
  double tokens_out = 200;   // generated tokens per query
  double escalation_rate = 0;  // share of non-cached queries that tier 1 passes to tier 2
  double cache_hit_rate = 0;   // share of queries the cache answers (needs a cache tier)
};

// One way a query can be answered, with its probability and latency.
struct CascadePath {
  std::string label;  // "cache", "tier 1 only", "escalated"
  double probability = 0;
  double latency_ms = 0;
  double cost = 0;  // dollars for a query on this path
};

struct CascadeEconomics {
  std::string tier1_name, tier2_name, cache_name;  // cache_name empty without a cache tier
  double tier1_cost = 0;  // dollars per query on the tier alone
  double tier2_cost = 0;
  double cache_cost = 0;
  // Dollars per query: the top tier on every query (no cache), the cache in front of the top
  // tier, and the cascade (cache, tier 1 always, tier 2 on escalation).
  double top_only_cost = 0;
  double cache_top_cost = 0;
  double cascade_cost = 0;
  double saving_vs_top_only = 0;   // fraction of top_only_cost saved by the cascade
  double saving_vs_cache_top = 0;  // fraction of cache_top_cost saved by adding tier 1
  // Escalation rate at which the cascade costs as much as cache + top tier:
  // c1 + r·c2 = c2, so r* = 1 - c1 / c2 (the cache cancels out). Below it the cascade wins.
  double break_even_escalation_rate = 0;
  CascadePath paths[3];  // cache, tier 1 only, escalated
  double mean_latency_ms = 0;
  double top_only_latency_ms = 0;
};

// kInvalidArgument when rates are outside [0, 1], token counts are negative, a cache hit rate
// is given without a cache tier, or the config does not have exactly two model tiers.
Result<CascadeEconomics> cascade_economics(const cascade::CascadeConfig& config,
                                           const CascadeInputs& inputs);

// What `--eval RESULT.json` supplies: {"cascade": {"escalation_rate": x, "cache_hit_rate": y
// (optional), ...}, ...}. Errors: kNotFound (file), kInvalidArgument (not JSON, no
// cascade.escalation_rate, a rate outside [0, 1]).
struct EvalRates {
  double escalation_rate = 0;
  bool has_cache_hit_rate = false;
  double cache_hit_rate = 0;
};
Result<EvalRates> read_eval_rates(const std::string& path);

}  // namespace frugal::plan
