// Cascade: answers a request with the cheapest tier that is good enough — the response cache,
// then tier 1 (the first model tier), whose answer is kept when the scorer's P(good enough)
// reaches the threshold, else the top tier (the second model tier; any further model tiers
// are fallbacks, tried in order when the one before fails). Each request is a CascadeRun, a
// state machine over the tiers' asynchronous calls; serve, cascade, eval and calibrate all go
// through it, and decide() below is the one place the escalation rule lives.
//
// Streaming: tier 1's tokens are held until the scorer accepts its answer, then released at
// once; an escalated answer streams live from the top tier. Decision rule, records and the
// streaming policy's cost: docs/CASCADE.md.
#pragma once

#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cascade/cache_tier.h"
#include "cascade/config.h"
#include "cascade/features.h"
#include "cascade/local_tier.h"
#include "cascade/semantic_cache.h"
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
  std::vector<AnswerToken> tokens;  // the final answer's tokens (ids, text, logprobs)
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
  // Of tier 1's answer, the tokens the top tier kept when it verified it as a draft
  // (speculative escalation); 0 without.
  int64_t tokens_reused = 0;
  // Of those, the tokens a speculative cascade kept against the top tier's own choice.
  int64_t tokens_kept = 0;
  std::vector<TierUse> trace;  // each tier that ran, in order
  TierAnswer tier1;            // tier 1's own answer when it ran (for calibration and logs)
  // The answering tier's prompt tokens and how many of them its prefix cache held.
  int64_t answer_tokens_in = 0;
  int64_t answer_tokens_in_cached = 0;
  // The answering tier's count of its answer's tokens (a remote endpoint's own count, which
  // may exceed the stream chunks in `tokens`).
  int64_t answer_tokens_out = 0;
  // Tier 1 could not answer (its call failed, e.g. a prompt beyond its context) and the
  // request escalated; the error is kept here. Likewise for a failed top tier whose fallback
  // answered.
  std::vector<std::string> tier_errors;
  double first_token_ms = 0;  // when the first answer token reached the caller (0: none)
  // The semantic cache (docs/CASCADE.md): the cosine similarity of the nearest cached request
  // and tier 1's score of its answer under this request; NaN when there was no candidate or
  // no check. semantic_hit: the answer is that candidate's (cache_hit is then true as well).
  double semantic_similarity = std::numeric_limits<double>::quiet_NaN();
  double semantic_check_score = std::numeric_limits<double>::quiet_NaN();
  bool semantic_hit = false;
};

// The escalation rule, in one place: tier 1's features, the scorer's P(good enough), and
// whether the cascade escalates at `threshold` (cascade_escalates).
struct Decision {
  std::vector<double> features;
  double score = 0;
  bool escalate = false;
};
Decision decide(const Scorer& scorer, double threshold, const TierAnswer& tier1);

// The part of every cache key that is not the request: the cascade's name and each model
// tier's name, kind and model (file name and size, or URL and remote model).
std::string cache_namespace(const CascadeConfig& config);

// Where one cascade request's events go, on the answering tier's thread: the final answer's
// tokens in order (tier 1's all at once once accepted, the top tier's as they come), then
// on_done exactly once.
struct CascadeSink {
  // Once, before the final answer's first token (or before on_done when it has none): the
  // tier that answers and the scorer's score (NaN when none). May be empty.
  std::function<void(const std::string& tier, double score)> on_answering;
  TokenObserver on_token;  // may be empty; returning false cancels the request
  std::function<void(Result<CascadeAnswer>)> on_done;
};

// What the cache stage of a request found (Cascade::lookup_cache).
struct CacheLookup {
  std::optional<TierAnswer> answer;  // the answer to serve, priced as a cache hit; else a miss
  bool semantic = false;             // the answer is a near duplicate's (semantic cache)
  // The nearest cached request's cosine similarity, and tier 1's check score of its answer
  // (0 when tier 1 would not have written it); NaN when there was no candidate or check.
  double similarity = std::numeric_limits<double>::quiet_NaN();
  double check_score = std::numeric_limits<double>::quiet_NaN();
  std::optional<TierAnswer> check;  // tier 1's check pass when it ran (its cost is paid)
  std::vector<float> embedding;     // the request's, when the semantic cache computed one
};

// One request in flight. cancel() from any thread ends it soon with kCancelled.
class CascadeRun {
 public:
  virtual ~CascadeRun() = default;
  virtual void cancel() = 0;
};

class Cascade {
 public:
  // Builds and loads every tier of `config`, local tiers sharing one thread pool. Errors:
  // kInvalidArgument for a tier 1 that is remote without logprobs (it cannot be scored);
  // those of LocalTier::load and RemoteTier::create, naming the tier.
  static Result<std::unique_ptr<Cascade>> create(const CascadeConfig& config,
                                                 const CascadeOptions& options = {});
  // From tiers built elsewhere: `model_tiers` cheapest first (at least one); `cache` may be
  // null. The scorer is scorer_from_config(config.scorer).
  Cascade(const CascadeConfig& config, std::unique_ptr<CacheTier> cache,
          std::vector<std::unique_ptr<Tier>> model_tiers);

  // Starts cache → tier 1 → score ≥ threshold ? tier 1 : top tier. A deterministic request's
  // final answer is cached. A tier-1 failure escalates; a top-tier failure falls back to the
  // next model tier when nothing of its answer was streamed. Errors reach sink.on_done: those
  // of the last tier tried (kInvalidArgument for a bad request, kCancelled,
  // kDeadlineExceeded, kUnavailable).
  std::shared_ptr<CascadeRun> start(const TierRequest& request, CascadeSink sink);
  // start() and wait.
  Result<CascadeAnswer> answer(const TierRequest& request);

  // Replaces the scorer (`frugal calibrate` fits one); the threshold likewise.
  void set_scorer(Scorer scorer) { scorer_ = std::move(scorer); }
  void set_threshold(double threshold) { threshold_ = threshold; }
  double threshold() const { return threshold_; }
  // Escalate-all (the drift alarm's action, docs/OPERATIONS.md): while set, every request that
  // misses the cache goes straight to the top tier, tier 1 not run. From any thread.
  void set_escalate_all(bool on) { escalate_all_.store(on); }
  bool escalate_all() const { return escalate_all_.load(); }

  // The cache stage every request goes through first (cacheable requests only): the exact
  // cache, then the semantic cache's nearest candidate and tier 1's check of it. Runs on the
  // caller's thread. `frugal eval` replays items through it.
  CacheLookup lookup_cache(const TierRequest& request);
  // Remembers a request's final answer in the exact and semantic caches (`embedding` from its
  // lookup; empty: exact only).
  void store_answer(const TierRequest& request, const TierAnswer& answer,
                    const std::vector<float>& embedding);

  CacheTier* cache() { return cache_.get(); }
  SemanticCache* semantic_cache() { return semantic_.get(); }
  // Adds a semantic layer to the cache (Cascade::create does it for semantic = true). Its
  // check needs tier 1 to be a LocalTier; without one candidates are never served checked.
  void set_semantic_cache(std::unique_ptr<SemanticCache> semantic) { semantic_ = std::move(semantic); }
  Tier& tier1() { return *model_tiers_.front(); }
  // The tier escalations go to: the second model tier (tier 1 itself when it is the only one).
  Tier& top_tier() { return *model_tiers_[model_tiers_.size() > 1 ? 1 : 0]; }
  const std::vector<std::unique_ptr<Tier>>& model_tiers() const { return model_tiers_; }
  // The tier named `name` (cache or model), or nullptr.
  Tier* find_tier(const std::string& name);
  const CascadeConfig& config() const { return config_; }
  const Scorer& scorer() const { return scorer_; }
  // The top tier is local with tier 1's vocabulary: it can verify tier 1's answer as a draft
  // (speculative escalation and the speculative cascade), whatever the config asks.
  bool top_tier_verifies_tier1() const { return top_verifies_tier1_; }

 private:
  friend class CascadeRunImpl;
  CascadeConfig config_;
  std::unique_ptr<CacheTier> cache_;
  std::unique_ptr<SemanticCache> semantic_;
  std::vector<std::unique_ptr<Tier>> model_tiers_;
  std::vector<bool> speculative_escalation_;  // [model tier]: takes tier 1's answer as a draft
  bool top_verifies_tier1_ = false;
  Scorer scorer_;
  double threshold_;
  std::atomic<bool> escalate_all_{false};
};

}  // namespace frugal::cascade
