// Cascade: answers a request with the cheapest tier that is good enough — the response cache,
// then tier 1 (the first model tier), whose answer is kept when the scorer's P(good enough)
// reaches the threshold, else the top tier (the last model tier). Decision rule and records:
// docs/CASCADE.md.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cascade/cache_tier.h"
#include "cascade/config.h"
#include "cascade/features.h"
#include "cascade/local_tier.h"
#include "cascade/tier.h"

namespace frugal::cascade {

struct CascadeOptions {
  int n_threads = 0;   // the one pool every local tier shares; 0: one per hardware thread
  int64_t n_ctx = 0;   // per local tier; 0: min(4096, the model's training context)
  SchedulerOptions scheduler;  // per local tier (its n_ctx is overridden by n_ctx when set)
};

// What one tier did for one request.
struct TierUse {
  std::string tier;
  int64_t tokens_in = 0;
  int64_t tokens_out = 0;
  double cost = 0.0;
  double latency_ms = 0.0;
};

struct CascadeAnswer {
  std::string text;
  FinishReason finish = FinishReason::kLength;
  std::string tier;        // the tier whose answer this is (the cache's name on a hit)
  bool cache_hit = false;
  // The scorer's P(tier 1's answer is good enough); NaN when tier 1 did not finish an answer
  // (a cache hit, an early escalation) or there is only one model tier.
  double score = 0.0;
  std::vector<double> features;  // tier 1's scorer features; empty when not scored
  bool escalated = false;        // the top tier answered after tier 1 ran
  bool escalated_early = false;  // tier 1 was stopped mid-answer by the logprob floor
  // Tokens tier 1 did not generate because it was stopped early: max_tokens minus what it
  // generated (an upper bound: it might have finished sooner).
  int64_t tokens_saved = 0;
  // Totals over every tier that ran (tier 1's cost is paid even when it escalates).
  int64_t tokens_in = 0;
  int64_t tokens_out = 0;
  double cost = 0.0;
  double latency_ms = 0.0;
  std::vector<TierUse> trace;  // each tier that ran, in order
  TierAnswer tier1;            // tier 1's own answer when it ran (for calibration and logs)
};

class Cascade {
 public:
  // Builds and loads every tier of `config`. Errors: kUnsupported for a remote tier (not built
  // yet); those of LocalTier::load, naming the tier.
  static Result<std::unique_ptr<Cascade>> create(const CascadeConfig& config,
                                                 const CascadeOptions& options = {});
  // From tiers built elsewhere: `model_tiers` cheapest first (at least one); `cache` may be
  // null. The scorer is scorer_from_config(config.scorer).
  Cascade(const CascadeConfig& config, std::unique_ptr<CacheTier> cache,
          std::vector<std::unique_ptr<Tier>> model_tiers);

  // Cache → tier 1 → score ≥ threshold ? tier 1 : top tier. A deterministic request's final
  // answer is cached. Errors: those of the tiers (kInvalidArgument for a bad request).
  Result<CascadeAnswer> answer(const TierRequest& request);

  // Replaces the scorer (`frugal calibrate` fits one); the threshold likewise.
  void set_scorer(Scorer scorer) { scorer_ = std::move(scorer); }
  void set_threshold(double threshold) { threshold_ = threshold; }
  double threshold() const { return threshold_; }

  CacheTier* cache() { return cache_.get(); }
  Tier& tier1() { return *model_tiers_.front(); }
  Tier& top_tier() { return *model_tiers_.back(); }
  const CascadeConfig& config() const { return config_; }

 private:
  CascadeConfig config_;
  std::unique_ptr<CacheTier> cache_;
  std::vector<std::unique_ptr<Tier>> model_tiers_;
  Scorer scorer_;
  double threshold_;
};

}  // namespace frugal::cascade
