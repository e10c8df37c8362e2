// Cascade: the escalation policy over the tiers (cache, tier 1, scorer, top tier).
#include "cascade/cascade.h"

#include <limits>

#include "cascade/early_escalation.h"

namespace frugal::cascade {

namespace {

void add_use(CascadeAnswer& out, const Tier& tier, const TierAnswer& a) {
  out.trace.push_back({tier.name(), a.tokens_in, a.tokens_out, a.cost, a.latency_ms});
  out.tokens_in += a.tokens_in;
  out.tokens_out += a.tokens_out;
  out.cost += a.cost;
  out.latency_ms += a.latency_ms;
}

void take_answer(CascadeAnswer& out, const Tier& tier, const TierAnswer& a) {
  out.text = a.text;
  out.finish = a.finish;
  out.tier = tier.name();
}

}  // namespace

Cascade::Cascade(const CascadeConfig& config, std::unique_ptr<CacheTier> cache,
                 std::vector<std::unique_ptr<Tier>> model_tiers)
    : config_(config),
      cache_(std::move(cache)),
      model_tiers_(std::move(model_tiers)),
      scorer_(scorer_from_config(config.scorer)),
      threshold_(config.threshold) {
  CHECK(!model_tiers_.empty(), "a cascade needs at least one model tier");
}

Result<std::unique_ptr<Cascade>> Cascade::create(const CascadeConfig& config,
                                                 const CascadeOptions& options) {
  std::unique_ptr<CacheTier> cache;
  if (const TierConfig* c = config.cache_tier()) cache = std::make_unique<CacheTier>(*c);
  std::vector<std::unique_ptr<Tier>> tiers;
  // One pool for every tier: tiers answering at once take turns on the cores instead of
  // each spinning a thread per core.
  LocalTierOptions lo;
  lo.pool = std::make_shared<ThreadPool>(options.n_threads > 0 ? options.n_threads
                                                               : default_thread_count());
  lo.scheduler = options.scheduler;
  if (options.n_ctx > 0) lo.scheduler.n_ctx = options.n_ctx;
  for (const TierConfig* t : config.model_tiers()) {
    if (t->kind == TierKind::kRemote) {
      return unsupported("tier '" + t->name + "' is remote; remote tiers are not supported by "
                         "this build yet (use kind = \"local\")");
    }
    FRUGAL_ASSIGN_OR_RETURN(auto tier, LocalTier::load(*t, lo));
    tiers.push_back(std::move(tier));
  }
  return std::make_unique<Cascade>(config, std::move(cache), std::move(tiers));
}

Result<CascadeAnswer> Cascade::answer(const TierRequest& request) {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  CascadeAnswer out;
  out.score = kNaN;

  if (cache_ != nullptr && CacheTier::cacheable(request)) {
    auto hit = cache_->answer(request);
    if (hit.is_ok()) {
      take_answer(out, *cache_, *hit);
      out.cache_hit = true;
      add_use(out, *cache_, *hit);
      return out;
    }
    if (hit.status().code() != ErrorCode::kNotFound) return hit.status();
  }

  Tier& first = tier1();
  Tier& top = top_tier();
  const bool single = &first == &top;
  TierRequest first_request = request;
  first_request.prompt_logprobs = !single;
  TokenObserver observer;
  if (config_.early_escalation && !single) {
    observer = LogprobFloor(config_.early_escalation_window, config_.early_escalation_logprob);
  }
  FRUGAL_ASSIGN_OR_RETURN(TierAnswer a1, first.answer(first_request, observer));
  add_use(out, first, a1);

  bool escalate = false;
  if (a1.interrupted) {
    a1.escalated_early = true;
    out.escalated_early = true;
    out.tokens_saved = std::max<int64_t>(0, request.max_tokens - a1.tokens_out);
    escalate = true;
  } else if (!single) {
    out.features = scorer_features(a1);
    out.score = scorer_(out.features);
    escalate = !(out.score >= threshold_);
  }

  const TierAnswer* final_answer = &a1;
  TierAnswer a2;
  if (escalate) {
    TierRequest top_request = request;
    top_request.prompt_logprobs = false;
    FRUGAL_ASSIGN_OR_RETURN(a2, top.answer(top_request));
    add_use(out, top, a2);
    take_answer(out, top, a2);
    out.escalated = true;
    final_answer = &a2;
  } else {
    take_answer(out, first, a1);
  }
  if (cache_ != nullptr) cache_->store(request, *final_answer);
  out.tier1 = std::move(a1);
  return out;
}

}  // namespace frugal::cascade
