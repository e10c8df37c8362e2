// Cascade: the escalation policy over the tiers (cache, tier 1, scorer, top tier, fallbacks),
// as one state machine per request (CascadeRunImpl) driven by the tiers' callbacks.
#include "cascade/cascade.h"

#include <condition_variable>
#include <filesystem>
#include <limits>
#include <mutex>

#include "cascade/calibration.h"
#include "cascade/early_escalation.h"
#include "cascade/remote_tier.h"
#include "util/timer.h"

namespace frugal::cascade {

namespace {

void add_use(CascadeAnswer& out, const Tier& tier, const TierAnswer& a) {
  out.trace.push_back({tier.name(), a.tokens_in, a.tokens_out, a.cost, a.latency_ms});
  out.tokens_in += a.tokens_in;
  out.tokens_out += a.tokens_out;
  out.cost += a.cost;
}

void take_answer(CascadeAnswer& out, const Tier& tier, const TierAnswer& a) {
  out.text = a.text;
  out.tokens = a.tokens;
  out.finish = a.finish;
  out.tier = tier.name();
  out.answer_tokens_in = a.tokens_in;
  out.answer_tokens_in_cached = a.tokens_in_cached;
  out.answer_tokens_out = a.tokens_out;
}

}  // namespace

// What cached answers depend on besides the request: the cascade's name and, per model tier,
// its name, kind and model (a GGUF's file name and size, or a remote URL and model), so that
// servers sharing a Redis cache share answers only when they run the same tiers.
std::string cache_namespace(const CascadeConfig& config) {
  std::string ns = config.server.name;
  for (const TierConfig* t : config.model_tiers()) {
    ns += "|" + t->name + ":" + tier_kind_name(t->kind) + ":";
    if (t->kind == TierKind::kLocal) {
      std::error_code ec;
      const auto size = std::filesystem::file_size(t->model, ec);
      ns += std::filesystem::path(t->model).filename().string() + ":" +
            std::to_string(ec ? 0 : size);
    } else {
      ns += t->url + ":" + t->remote_model;
    }
  }
  return ns;
}

Decision decide(const Scorer& scorer, double threshold, const TierAnswer& tier1) {
  Decision d;
  d.features = scorer_features(tier1);
  d.score = scorer(d.features);
  d.escalate = cascade_escalates(d.score, threshold);
  return d;
}

// ---------------------------------------------------------------------------- one request

// States: cache lookup (inline in begin) → tier 1 → decision → top tier → fallbacks → done.
// Every transition after begin() happens on the thread of the tier whose call just ended;
// `mu_` guards only what cancel() touches from other threads.
class CascadeRunImpl : public CascadeRun, public std::enable_shared_from_this<CascadeRunImpl> {
 public:
  CascadeRunImpl(Cascade& c, const TierRequest& request, CascadeSink sink)
      : c_(c), request_(request), sink_(std::move(sink)) {
    out_.score = std::numeric_limits<double>::quiet_NaN();
    out_.semantic_similarity = std::numeric_limits<double>::quiet_NaN();
    out_.semantic_check_score = std::numeric_limits<double>::quiet_NaN();
  }

  void begin() {
    CacheLookup l = c_.lookup_cache(request_);
    embedding_ = std::move(l.embedding);
    out_.semantic_similarity = l.similarity;
    out_.semantic_check_score = l.check_score;
    if (l.check) add_use(out_, *c_.model_tiers_.front(), *l.check);
    if (!l.answer) {
      run_models();
      return;
    }
    out_.semantic_hit = l.semantic;
    serve_cached(*l.answer);
  }

  void cancel() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (cancelled_) return;
    cancelled_ = true;
    if (call_) call_->cancel();
  }

 private:
  // A cached answer (exact, or a semantic candidate) is the answer.
  void serve_cached(const TierAnswer& hit) {
    CacheTier& cache = *c_.cache_;
    take_answer(out_, cache, hit);
    out_.cache_hit = true;
    add_use(out_, cache, hit);
    answering_ = cache.name();
    for (const AnswerToken& t : hit.tokens) release(t);
    finish(std::move(out_));
  }

  // Down the cascade: tier 1, held and scored, or the only model tier, live.
  void run_models() {
    if (c_.model_tiers_.size() == 1) {
      start_tier(0, request_, /*live=*/true);
      return;
    }
    if (c_.escalate_all()) {
      out_.escalated = true;
      escalate(1);
      return;
    }
    TierRequest r1 = request_;
    r1.prompt_logprobs = true;
    if (c_.config_.early_escalation) {
      floor_.emplace(c_.config_.early_escalation_window, c_.config_.early_escalation_logprob);
    }
    start_tier(0, r1, /*live=*/false);
  }

  bool cancelled() {
    std::lock_guard<std::mutex> lock(mu_);
    return cancelled_;
  }

  // Starts model tier `index`. Tier 1 (index 0 of several) is held and watched by the early
  // escalation floor; the others stream live to the caller.
  void start_tier(size_t index, const TierRequest& request, bool live) {
    if (cancelled()) {
      finish(cancelled_status());
      return;
    }
    Tier& tier = *c_.model_tiers_[index];
    if (live) answering_ = tier.name();
    auto self = shared_from_this();
    TierSink sink;
    sink.on_token = [self, live](const AnswerToken& t) {
      if (!live) return !self->floor_ || (*self->floor_)(t);
      self->streamed_ = true;
      return self->release(t);
    };
    sink.on_done = [self, index](Result<TierAnswer> a) { self->tier_done(index, std::move(a)); };
    streamed_ = false;
    // The call may end, and the run start the next tier, before start() returns here (on the
    // tier's thread, or inside start()): only the latest call is the one cancel() must reach.
    uint64_t attempt = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      attempt = ++attempts_;
    }
    auto call = tier.start(request, std::move(sink));
    if (!call.is_ok()) {
      tier_done(index, call.status());
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (attempt != attempts_) return;  // already over; a later tier's call is in call_
    call_ = std::move(call).value();
    if (cancelled_) call_->cancel();
  }

  void tier_done(size_t index, Result<TierAnswer> a) {
    Tier& tier = *c_.model_tiers_[index];
    const bool several = c_.model_tiers_.size() > 1;
    if (!a.is_ok()) {
      const Status& st = a.status();
      if (st.code() == ErrorCode::kCancelled || cancelled()) {
        finish(cancelled_status());
        return;
      }
      out_.tier_errors.push_back(st.to_string());
      // A tier that failed before streaming anything hands the request on: tier 1 to the top
      // tier, the top tier to the next fallback. The request's own deadline, once passed, ends
      // it everywhere; a tier's timeout (a remote tier's first token) does not.
      const size_t next = index + 1;
      const bool request_expired =
          request_.deadline && std::chrono::steady_clock::now() >= *request_.deadline;
      if (!request_expired && !streamed_ && next < c_.model_tiers_.size()) {
        if (index == 0) out_.escalated = true;
        escalate(next);
        return;
      }
      finish(st);
      return;
    }
    add_use(out_, tier, *a);
    if (index == 0 && several) {
      out_.tier1 = *a;
      if (a->interrupted) {
        out_.tier1.escalated_early = true;
        out_.escalated_early = true;
        out_.tokens_saved = std::max<int64_t>(0, request_.max_tokens - a->tokens_out);
        out_.escalated = true;
        escalate(1);
        return;
      }
      const Decision d = decide(c_.scorer_, c_.threshold_, *a);
      out_.features = d.features;
      out_.score = d.score;
      if (d.escalate) {
        out_.escalated = true;
        escalate(1);
        return;
      }
      // Accepted: tier 1's held answer goes out now.
      answering_ = tier.name();
      for (const AnswerToken& t : a->tokens) {
        if (!release(t)) {
          finish(cancelled_status());
          return;
        }
      }
    }
    take_answer(out_, tier, *a);
    out_.tokens_reused = a->tokens_reused;
    out_.tokens_kept = a->tokens_kept;
    c_.store_answer(request_, *a, embedding_);
    finish(std::move(out_));
  }

  void escalate(size_t index) {
    TierRequest r = request_;
    r.prompt_logprobs = false;
    // Speculative escalation: the top tier verifies tier 1's answer (all of it, or what it
    // wrote before it was stopped early) instead of starting over.
    if (c_.speculative_escalation_[index] && !out_.tier1.tokens.empty()) {
      for (const AnswerToken& t : out_.tier1.tokens) r.draft.push_back(t.id);
      if (c_.config_.speculative_cascade) {
        for (const AnswerToken& t : out_.tier1.tokens) r.draft_logprobs.push_back(t.logprob);
        r.defer_alpha = c_.config_.speculative_cascade_alpha;
      }
    }
    start_tier(index, r, /*live=*/true);
  }

  // Passes one answer token to the caller; false when the caller wants no more.
  bool release(const AnswerToken& t) {
    announce();
    if (out_.first_token_ms == 0) out_.first_token_ms = timer_.millis();
    if (!sink_.on_token) return true;
    if (sink_.on_token(t)) return true;
    cancel();
    return false;
  }

  static Status cancelled_status() { return frugal::cancelled("the request was cancelled"); }

  void announce() {
    if (announced_) return;
    announced_ = true;
    if (sink_.on_answering) sink_.on_answering(answering_, out_.score);
  }

  void finish(Result<CascadeAnswer> result) {
    if (result.is_ok()) {
      result->latency_ms = timer_.millis();
      announce();
    }
    if (sink_.on_done) sink_.on_done(std::move(result));
  }

  Cascade& c_;
  TierRequest request_;
  CascadeSink sink_;
  CascadeAnswer out_;
  Timer timer_;
  std::optional<LogprobFloor> floor_;
  std::vector<float> embedding_;  // the request's, when the semantic cache computed it
  bool streamed_ = false;  // the current tier has released tokens to the caller
  std::string answering_;  // the tier whose answer the caller is getting
  bool announced_ = false;
  std::mutex mu_;
  bool cancelled_ = false;
  uint64_t attempts_ = 0;  // tier calls started; the latest one's handle is call_
  std::unique_ptr<TierCall> call_;
};

// ---------------------------------------------------------------------------- the cascade

Cascade::Cascade(const CascadeConfig& config, std::unique_ptr<CacheTier> cache,
                 std::vector<std::unique_ptr<Tier>> model_tiers)
    : config_(config),
      cache_(std::move(cache)),
      model_tiers_(std::move(model_tiers)),
      scorer_(scorer_from_config(config.scorer)),
      threshold_(config.threshold) {
  CHECK(!model_tiers_.empty(), "a cascade needs at least one model tier");
  // A local tier whose vocabulary is tier 1's can take tier 1's answer as a draft.
  speculative_escalation_.assign(model_tiers_.size(), false);
  auto* first = dynamic_cast<LocalTier*>(model_tiers_.front().get());
  for (size_t i = 1; i < model_tiers_.size() && first != nullptr; ++i) {
    auto* t = dynamic_cast<LocalTier*>(model_tiers_[i].get());
    const bool same = t != nullptr && check_same_vocabulary(t->model(), first->model()).is_ok();
    speculative_escalation_[i] = config_.speculative_escalation && same;
    if (i == 1) top_verifies_tier1_ = same;
  }
}

Result<std::unique_ptr<Cascade>> Cascade::create(const CascadeConfig& config,
                                                 const CascadeOptions& options) {
  std::unique_ptr<CacheTier> cache;
  if (const TierConfig* c = config.cache_tier()) {
    FRUGAL_ASSIGN_OR_RETURN(cache, CacheTier::create(*c));
    cache->set_namespace(cache_namespace(config));
  }
  std::vector<std::unique_ptr<Tier>> tiers;
  // One pool for every tier: tiers answering at once take turns on the cores instead of
  // each spinning a thread per core.
  LocalTierOptions lo;
  lo.pool = std::make_shared<ThreadPool>(options.n_threads > 0 ? options.n_threads
                                                               : default_thread_count());
  lo.scheduler = options.scheduler;
  if (options.n_ctx > 0) lo.scheduler.n_ctx = options.n_ctx;
  const std::vector<const TierConfig*> models = config.model_tiers();
  if (models.size() > 1 && models[0]->kind == TierKind::kRemote && !models[0]->logprobs) {
    return invalid_argument(
        "tier '" + models[0]->name + "' is tier 1 but is remote without logprobs: the scorer "
        "needs tier 1's token logprobs. Set logprobs = true if the endpoint returns "
        "top_logprobs (vLLM, llama.cpp's server, OpenAI and frugal serve do), or make it a top "
        "tier (a later [[tier]])");
  }
  for (const TierConfig* t : models) {
    if (t->kind == TierKind::kRemote) {
      FRUGAL_ASSIGN_OR_RETURN(auto tier, RemoteTier::create(*t));
      tiers.push_back(std::move(tier));
      continue;
    }
    FRUGAL_ASSIGN_OR_RETURN(auto tier, LocalTier::load(*t, lo));
    tiers.push_back(std::move(tier));
  }
  std::unique_ptr<SemanticCache> semantic;
  if (const TierConfig* c = config.cache_tier(); c != nullptr && c->semantic) {
    const bool local1 = models[0]->kind == TierKind::kLocal;
    if (c->semantic_check && !local1) {
      return invalid_argument("cache tier '" + c->name + "' is semantic with semantic_check, "
                              "which needs tier 1 to be a local GGUF model (it scores the "
                              "cached answer teacher-forced under the new prompt); tier '" +
                              models[0]->name + "' is remote");
    }
    FRUGAL_ASSIGN_OR_RETURN(semantic,
                            SemanticCache::create(*c, local1 ? models[0]->model : "", lo.pool));
  }
  auto cascade = std::make_unique<Cascade>(config, std::move(cache), std::move(tiers));
  cascade->set_semantic_cache(std::move(semantic));
  return cascade;
}

std::shared_ptr<CascadeRun> Cascade::start(const TierRequest& request, CascadeSink sink) {
  auto run = std::make_shared<CascadeRunImpl>(*this, request, std::move(sink));
  run->begin();
  return run;
}

Result<CascadeAnswer> Cascade::answer(const TierRequest& request) {
  struct Wait {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<Result<CascadeAnswer>> result;
  };
  auto w = std::make_shared<Wait>();
  CascadeSink sink;
  sink.on_done = [w](Result<CascadeAnswer> r) {
    std::lock_guard<std::mutex> lock(w->mu);
    w->result.emplace(std::move(r));
    w->cv.notify_all();
  };
  auto run = start(request, std::move(sink));
  std::unique_lock<std::mutex> lock(w->mu);
  w->cv.wait(lock, [&] { return w->result.has_value(); });
  return std::move(*w->result);
}

CacheLookup Cascade::lookup_cache(const TierRequest& request) {
  CacheLookup l;
  if (cache_ == nullptr || !CacheTier::cacheable(request)) return l;
  Timer timer;
  auto hit = cache_->answer(request);
  if (hit.is_ok()) {
    l.answer = std::move(hit).value();
    return l;
  }
  if (semantic_ == nullptr) return l;
  auto embedding = semantic_->embed(request);
  if (!embedding.is_ok()) return l;
  l.embedding = std::move(embedding).value();
  std::optional<SemanticMatch> match = semantic_->nearest(l.embedding, request);
  if (!match) return l;
  l.similarity = match->similarity;
  auto serve = [&](TierAnswer a) {
    a.cost = cache_->cost(a.tokens_in, a.tokens_out);
    a.latency_ms = timer.millis();
    a.interrupted = false;
    a.escalated_early = false;
    l.answer = std::move(a);
    l.semantic = true;
  };
  if (!semantic_->checked()) {
    serve(std::move(match->answer));
    return l;
  }
  auto* local = dynamic_cast<LocalTier*>(model_tiers_.front().get());
  if (local == nullptr) return l;  // create() refuses this configuration
  // The check: tier 1 scores the cached answer under this request, on this thread.
  auto scored = semantic_->check(*local, request, match->answer);
  if (!scored.is_ok()) return l;  // e.g. beyond tier 1's context: no reuse
  l.check = scored->scored;
  // The scorer was fitted on answers tier 1 wrote itself; one whose tokens tier 1 clearly
  // would not have chosen is outside what it can judge, and is refused (score 0).
  const Decision d = decide(scorer_, threshold_, scored->scored);
  const bool plausible = scored->max_gap <= semantic_->max_gap();
  l.check_score = plausible ? d.score : 0.0;
  if (plausible && !d.escalate) serve(std::move(match->answer));
  return l;
}

void Cascade::store_answer(const TierRequest& request, const TierAnswer& answer,
                           const std::vector<float>& embedding) {
  if (cache_ != nullptr) cache_->store(request, answer);
  if (semantic_ != nullptr && !embedding.empty()) semantic_->store(embedding, request, answer);
}

Tier* Cascade::find_tier(const std::string& name) {
  if (cache_ != nullptr && cache_->name() == name) return cache_.get();
  for (auto& t : model_tiers_)
    if (t->name() == name) return t.get();
  return nullptr;
}

}  // namespace frugal::cascade
