// Scheduler: the loop — reap cancelled and late requests, plan one step (decode rows, prefill
// chunks, admissions), fit it to the KV pool by preemption, run one forward, advance each
// sequence and finish those that ended.
#include "sched/scheduler.h"

#include <algorithm>
#include <cmath>
#include <exception>

#include "engine/tokenizer.h"
#include "spec/ngram_drafter.h"
#include "spec/verify.h"

namespace frugal {

// ---------------------------------------------------------------------------- handles

void SchedWakeup::notify() {
  {
    std::lock_guard<std::mutex> lock(mu);
    pending = true;
  }
  cv.notify_all();
}

void RequestHandle::cancel() {
  if (cancelled_.exchange(true, std::memory_order_acq_rel)) return;
  wakeup_->notify();
}

const Completion& RequestHandle::wait() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return done_; });
  return completion_;
}

bool RequestHandle::wait_for(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return done_; });
}

bool RequestHandle::done() const {
  std::lock_guard<std::mutex> lock(mu_);
  return done_;
}

RequestHandle::Poll RequestHandle::poll(GeneratedToken* out, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return done_ || !queue_.empty(); });
  if (!queue_.empty()) {
    *out = std::move(queue_.front());
    queue_.pop_front();
    return Poll::kToken;
  }
  return done_ ? Poll::kFinished : Poll::kTimeout;
}

void RequestHandle::push(const GeneratedToken& t) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(t);
  }
  cv_.notify_all();
}

void RequestHandle::complete(Completion c) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    completion_ = std::move(c);
    done_ = true;
  }
  cv_.notify_all();
}

// ---------------------------------------------------------------------------- sequences

struct Scheduler::Seq {
  uint64_t id = 0;  // submission order
  std::shared_ptr<RequestHandle> handle;
  SchedRequest req;
  std::unique_ptr<SequenceState> state;
  // The prompt, then every sampled token; the last sampled one is fed at the next step.
  std::vector<int32_t> tokens;
  // [tokens] log p(tokens[p] | tokens[..p]) where known: prompt positions when the request
  // asked for them (or a cached block had them), every sampled token.
  std::vector<float> token_lp;
  int64_t n_prompt = 0;
  int64_t n_computed = 0;         // positions whose K/V are in the cache
  KvCache::SeqId kv_seq = -1;     // -1 while waiting
  bool admitted_once = false;
  bool done = false;
  int64_t n_prompt_cached = 0;
  int64_t n_preempted = 0;
  SchedClock::time_point submitted, first_chunk, first_token;
  // Speculative decoding: the request's own draft and how far it has been matched; the
  // current draft length; the draft model's sequence (opened on first use).
  std::vector<int32_t> given;
  std::vector<float> given_lp;  // the drafter's logprobs of `given` (speculative cascade)
  size_t given_pos = 0;
  int spec_k = 0;
  DraftAcceptance acceptance;  // this sequence's drafts, for the cost-aware length
  int64_t n_length_choices = 0;
  DraftModel::Seq draft_seq;
  int64_t n_draft_tokens = 0, n_accepted = 0, n_reused = 0, n_kept = 0;

  // Positions of the prompt (1..n_prompt-1) whose logprob is still unknown.
  bool needs_prompt_lp() const {
    if (!req.params.echo_prompt_logprobs) return false;
    for (int64_t p = 1; p < n_prompt; ++p)
      if (std::isnan(token_lp[p])) return true;
    return false;
  }
};

namespace {

double seconds_between(SchedClock::time_point a, SchedClock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

// ---------------------------------------------------------------------------- lifecycle

const char* spec_name(SchedulerOptions::Spec spec) {
  switch (spec) {
    case SchedulerOptions::Spec::kNone: return "none";
    case SchedulerOptions::Spec::kNgram: return "ngram";
    case SchedulerOptions::Spec::kDraftModel: return "draft-model";
  }
  return "?";
}

Result<std::unique_ptr<Scheduler>> Scheduler::create(std::unique_ptr<Model> model,
                                                     const SchedulerOptions& options,
                                                     std::unique_ptr<Model> draft) {
  CHECK(model != nullptr);
  if (options.spec_k < 1 || options.spec_k_max < options.spec_k || options.spec_k_max > 64)
    return invalid_argument("draft lengths must satisfy 1 <= spec_k <= spec_k_max <= 64");
  if (options.spec == SchedulerOptions::Spec::kDraftModel && draft == nullptr)
    return invalid_argument("speculative decoding with a draft model needs the draft model");
  const ModelConfig& c = model->config();
  if (options.max_running < 1) return invalid_argument("max_running must be at least 1");
  if (options.max_queue < 0) return invalid_argument("max_queue must be >= 0");
  if (options.step_tokens < 1) return invalid_argument("the step token budget must be >= 1");
  if (options.block_size < 1 || options.block_size > 1024)
    return invalid_argument("the KV block size must be in [1, 1024]");
  if (options.n_ctx < 0 || options.kv_tokens < 0)
    return invalid_argument("context and KV cache sizes must be >= 0");
  const int64_t trained = c.n_ctx_train > 0 ? c.n_ctx_train : 4096;
  const int64_t n_ctx = options.n_ctx > 0 ? options.n_ctx : std::min<int64_t>(4096, trained);
  int64_t kv_tokens = options.kv_tokens;
  const int64_t per_token = KvCache::bytes_per_token(c, options.kv_type);
  if (kv_tokens == 0) {
    const double by_budget = static_cast<double>(options.kv_budget_bytes) / per_token;
    const double wanted = static_cast<double>(n_ctx) * options.max_running;
    kv_tokens = static_cast<int64_t>(std::min(wanted, by_budget));
  }
  kv_tokens = std::max(kv_tokens, n_ctx);
  FRUGAL_ASSIGN_OR_RETURN(
      std::unique_ptr<KvCache> kv,
      KvCache::create(c, kv_tokens, options.block_size, options.kv_type));
  std::unique_ptr<DraftModel> drafter;
  if (draft != nullptr) {
    FRUGAL_RETURN_IF_ERROR(check_same_vocabulary(*model, *draft));
    if (options.draft_vocab < 0)
      return invalid_argument("draft_vocab must be 0 (the whole vocabulary) or positive");
    draft->restrict_logits(options.draft_vocab);
    FRUGAL_ASSIGN_OR_RETURN(drafter,
                            DraftModel::create(std::move(draft), kv_tokens, options.kv_type));
  }
  return std::unique_ptr<Scheduler>(
      new Scheduler(std::move(model), std::move(kv), options, n_ctx, std::move(drafter)));
}

Scheduler::Scheduler(std::unique_ptr<Model> model, std::unique_ptr<KvCache> kv,
                     const SchedulerOptions& options, int64_t n_ctx,
                     std::unique_ptr<DraftModel> draft)
    : model_(std::move(model)),
      kv_(std::move(kv)),
      draft_(std::move(draft)),
      options_(options),
      n_ctx_(n_ctx),
      kv_tokens_(kv_->n_positions()),
      kv_bytes_(kv_->bytes()),
      wakeup_(std::make_shared<SchedWakeup>()) {
  stats_.kv_blocks_total = kv_->n_blocks();
  stats_.spec_accepted_by_position.assign(options_.spec_k_max + 1, 0);
  if (options_.spec != SchedulerOptions::Spec::kNone && options_.spec_cost_aware) {
    draft_cost_ = std::make_unique<DraftCostModel>(options_.spec_k_max);
    // Prompt lookup runs no model: its rounds cost nothing next to a forward.
    if (options_.spec == SchedulerOptions::Spec::kNgram) draft_cost_->observe_draft_round(0.0);
  }
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lock(wakeup_->mu);
    stop_ = true;
  }
  wakeup_->cv.notify_all();
  thread_.join();
}

Result<std::shared_ptr<RequestHandle>> Scheduler::submit(SchedRequest request) {
  const int64_t n_vocab = model_->config().n_vocab;
  const GenerateParams& p = request.params;
  FRUGAL_RETURN_IF_ERROR(p.sampling.validate());
  if (p.max_tokens < 0) return invalid_argument("max_tokens must be >= 0");
  if (request.prompt.empty()) return invalid_argument("the prompt is empty");
  for (int32_t t : request.prompt) {
    if (t < 0 || t >= n_vocab) {
      return invalid_argument("token id " + std::to_string(t) + " is outside the vocabulary [0, " +
                              std::to_string(n_vocab) + ")");
    }
  }
  const int64_t n_prompt = static_cast<int64_t>(request.prompt.size());
  if (n_prompt >= n_ctx_) {
    return out_of_range("the prompt has " + std::to_string(n_prompt) +
                        " tokens but the context holds " + std::to_string(n_ctx_) +
                        "; shorten the prompt or raise the context size");
  }
  auto seq = std::make_unique<Seq>();
  seq->handle.reset(new RequestHandle(wakeup_));
  seq->submitted = SchedClock::now();
  seq->n_prompt = n_prompt;
  seq->tokens = request.prompt;
  seq->token_lp.assign(seq->tokens.size(), KvCache::kNoLogprob);
  for (int32_t t : request.draft) {
    if (t < 0 || t >= n_vocab) return invalid_argument("draft token id " + std::to_string(t) +
                                                        " is outside the vocabulary");
  }
  if (!request.draft_logprobs.empty()) {
    if (request.draft_logprobs.size() != request.draft.size()) {
      return invalid_argument("the draft has " + std::to_string(request.draft.size()) +
                              " tokens but " + std::to_string(request.draft_logprobs.size()) +
                              " logprobs; give one per draft token");
    }
    if (!(request.defer_alpha >= -1.0 && request.defer_alpha <= 1.0)) {
      return invalid_argument("the deferral margin alpha must be in [-1, 1]");
    }
  }
  seq->state = std::make_unique<SequenceState>(model_->tokenizer(), request.params);
  seq->given = std::move(request.draft);
  seq->given_lp = std::move(request.draft_logprobs);
  seq->spec_k = options_.spec_k;
  seq->req = std::move(request);
  auto handle = seq->handle;
  {
    std::lock_guard<std::mutex> lock(wakeup_->mu);
    if (stop_) return unavailable("the model is being unloaded");
    const int64_t waiting = n_waiting_.load() + static_cast<int64_t>(incoming_.size());
    if (waiting >= options_.max_queue) {
      return resource_exhausted("queue full: " + std::to_string(waiting) +
                         " requests waiting; retry later");
    }
    seq->id = next_id_++;
    incoming_.push_back(std::move(seq));
    wakeup_->pending = true;
    idle_ = false;
  }
  wakeup_->cv.notify_all();
  return handle;
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lock(stats_mu_);
  return stats_;
}

bool Scheduler::pool_is_whole() {
  {
    std::unique_lock<std::mutex> lock(wakeup_->mu);
    idle_cv_.wait(lock, [&] { return idle_ || stop_; });
    // The loop is parked: it touches the cache only after taking this mutex again.
    return kv_->n_live_sequences() == 0 && kv_->n_free_blocks() == kv_->n_blocks() &&
           kv_->consistent();
  }
}

void Scheduler::loop() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(wakeup_->mu);
      if (running_.empty() && waiting_.empty() && incoming_.empty() && !stop_) {
        idle_ = true;
        idle_cv_.notify_all();
      }
      // With nothing running, sleep until a submission or a cancellation; waiting requests
      // that cannot be admitted are looked at again every 20 ms (their deadlines).
      if (running_.empty()) {
        wakeup_->cv.wait_for(lock, std::chrono::milliseconds(20), [&] {
          return stop_ || !incoming_.empty() || wakeup_->pending;
        });
      }
      wakeup_->pending = false;
      if (stop_) break;
      idle_ = false;
      while (!incoming_.empty()) {
        waiting_.push_back(std::move(incoming_.front()));
        incoming_.pop_front();
      }
      n_waiting_.store(live_waiting());
    }
    reap();
    if (!running_.empty() || !waiting_.empty()) step();
    sweep_finished();
  }
  // Shutting down: everything outstanding ends now.
  for (auto& s : running_) finish(s.get(), cancelled("the model is being unloaded"));
  for (auto& s : waiting_) finish(s.get(), cancelled("the model is being unloaded"));
  std::deque<std::unique_ptr<Seq>> late;
  {
    std::lock_guard<std::mutex> lock(wakeup_->mu);
    late.swap(incoming_);
  }
  // Outside the lock: on_finish callbacks may submit elsewhere or cancel.
  for (auto& s : late) finish(s.get(), cancelled("the model is being unloaded"));
  {
    std::lock_guard<std::mutex> lock(wakeup_->mu);
    idle_ = true;
  }
  idle_cv_.notify_all();
}

// ---------------------------------------------------------------------------- one step

void Scheduler::reap() {
  const auto now = SchedClock::now();
  auto check = [&](Seq* s) {
    if (s->done) return;
    if (s->handle->cancelled()) {
      finish(s, cancelled("the request was cancelled after " +
                          std::to_string(s->state->n_generated()) + " tokens"));
    } else if (s->req.deadline && now >= *s->req.deadline) {
      finish(s, deadline_exceeded("the request's deadline passed after " +
                                  std::to_string(s->state->n_generated()) + " tokens"));
    }
  };
  for (auto& s : running_) check(s.get());
  for (auto& s : waiting_) check(s.get());
  sweep_finished();
}

bool Scheduler::admit(std::vector<Planned>& plan, int64_t* budget) {
  Seq* s = waiting_.front().get();
  s->kv_seq = kv_->create_sequence();
  std::vector<float> cached_lp;
  const bool want_lp = s->needs_prompt_lp();
  int64_t cached = kv_->reuse_prefix(s->kv_seq, s->tokens, want_lp ? &cached_lp : nullptr);
  if (want_lp && cached > 0 && cached < s->n_prompt) {
    // The logprob of the first position after the reused blocks comes from the row before
    // it, which belongs to the cached part: recompute that one position (into a copy of the
    // shared block) with the next token as its target.
    cached--;
    kv_->truncate(s->kv_seq, cached);  // cached_lp keeps that position's own logprob
  }
  // Admit only when the whole rest of the sequence fits beside what the step already takes,
  // so that admitting never forces an immediate preemption.
  int64_t need = kv_->blocks_needed(s->kv_seq, static_cast<int64_t>(s->tokens.size()) - cached);
  for (const Planned& p : plan) need += kv_->blocks_needed(p.seq->kv_seq, p.n);
  if (need > kv_->n_free_blocks()) {
    kv_->free_sequence(s->kv_seq);
    s->kv_seq = -1;
    return false;
  }
  for (size_t i = 0; i < cached_lp.size(); ++i) {
    if (std::isnan(s->token_lp[i])) s->token_lp[i] = cached_lp[i];
  }
  s->n_computed = cached;
  if (!s->admitted_once) {
    s->admitted_once = true;
    s->n_prompt_cached = std::min(cached, s->n_prompt);
    s->first_chunk = SchedClock::now();
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_.prompt_tokens += s->n_prompt;
    stats_.prompt_tokens_cached += s->n_prompt_cached;
  }
  const int64_t n = std::min<int64_t>(static_cast<int64_t>(s->tokens.size()) - cached, *budget);
  running_.push_back(std::move(waiting_.front()));
  waiting_.pop_front();
  plan.push_back({s, n});
  *budget -= n;
  return true;
}

void Scheduler::preempt(Seq* s) {
  if (draft_ != nullptr && s->draft_seq.kv >= 0) draft_->close(s->draft_seq);
  kv_->free_sequence(s->kv_seq);
  s->kv_seq = -1;
  s->n_computed = 0;
  s->n_preempted++;
  auto it = std::find_if(running_.begin(), running_.end(),
                         [&](const std::unique_ptr<Seq>& p) { return p.get() == s; });
  CHECK(it != running_.end());
  waiting_.push_front(std::move(*it));
  running_.erase(it);
  std::lock_guard<std::mutex> lock(stats_mu_);
  stats_.preemptions++;
}

void Scheduler::fit_to_pool(std::vector<Planned>& plan) {
  // Decoding sequences grow; when the step's blocks exceed the pool, the most recently
  // admitted sequence gives its blocks back and waits to be recomputed.
  while (true) {
    int64_t need = 0;
    for (const Planned& p : plan) need += kv_->blocks_needed(p.seq->kv_seq, p.n);
    if (need <= kv_->n_free_blocks()) return;
    CHECK(running_.size() > 1, "one sequence of at most n_ctx positions always fits the pool");
    Seq* victim = running_.back().get();
    plan.erase(std::remove_if(plan.begin(), plan.end(),
                              [&](const Planned& p) { return p.seq == victim; }),
               plan.end());
    preempt(victim);
  }
}

void Scheduler::step() {
  std::vector<Planned> plan;
  int64_t budget = options_.step_tokens;
  // Decode rows first: one token for every sequence that has sampled, and its draft.
  for (auto& s : running_) {
    if (static_cast<int64_t>(s->tokens.size()) - s->n_computed == 1) {
      plan.push_back({s.get(), 1});
      budget--;
    }
  }
  plan_drafts(plan, &budget);
  // Then the rest of admitted prompts, oldest first, in chunks that fit the budget.
  for (auto& s : running_) {
    const int64_t pending = static_cast<int64_t>(s->tokens.size()) - s->n_computed;
    if (pending > 1 && budget > 0) {
      const int64_t n = std::min(pending, budget);
      plan.push_back({s.get(), n});
      budget -= n;
    }
  }
  // Then new requests, first come first served.
  while (!waiting_.empty() && static_cast<int>(running_.size()) < options_.max_running &&
         budget > 0) {
    if (!admit(plan, &budget)) break;
  }
  n_waiting_.store(live_waiting());
  fit_to_pool(plan);
  if (plan.empty()) return;

  // One batch. The targets of prompt positions ask forward for their logprobs.
  batch_.clear();
  for (Planned& p : plan) {
    Seq* s = p.seq;
    SeqBatch e;
    e.seq = s->kv_seq;
    if (!p.draft.empty()) {
      // [last, d1..dk] with every row's logits: verification.
      p.draft.insert(p.draft.begin(), s->tokens.back());
      e.tokens = p.draft;
      e.all_logits = true;
      e.first_logprob = s->token_lp.back();
      batch_.push_back(e);
      continue;
    }
    e.tokens = std::span<const int32_t>(s->tokens.data() + s->n_computed, p.n);
    e.no_logits = s->n_computed + p.n < static_cast<int64_t>(s->tokens.size());
    if (s->req.params.echo_prompt_logprobs) {
      const int64_t n_targets = std::clamp<int64_t>(s->n_prompt - 1 - s->n_computed, 0, p.n);
      e.targets = std::span<const int32_t>(s->tokens.data() + s->n_computed + 1, n_targets);
    }
    e.first_logprob = s->token_lp[s->n_computed];
    batch_.push_back(e);
  }
  const auto forward_start = SchedClock::now();
  const Status st = model_->forward(batch_, *kv_, logits_, &target_lp_);
  // The cost model's table is of one sequence decoding (or verifying) alone.
  if (draft_cost_ != nullptr && st.is_ok() && plan.size() == 1 &&
      (!plan[0].draft.empty() || plan[0].n == 1)) {
    draft_cost_->observe_forward(static_cast<int64_t>(batch_[0].tokens.size()),
                                 seconds_between(forward_start, SchedClock::now()));
  }
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_.steps++;
  }
  if (!st.is_ok()) {
    // Submissions were validated and blocks reserved, so this is a bug; end the step's
    // requests with the error rather than take the process down.
    for (const Planned& p : plan) finish(p.seq, internal_error("forward failed: " + st.message()));
    return;
  }
  const int64_t n_vocab = model_->config().n_vocab;
  size_t row = 0, ti = 0;
  for (size_t i = 0; i < plan.size(); ++i) {
    const SeqBatch& e = batch_[i];
    if (e.all_logits) {
      advance_verified(plan[i], logits_.data() + row * n_vocab);
      row += e.tokens.size();
      continue;
    }
    const float* logits_row = e.no_logits ? nullptr : logits_.data() + (row++) * n_vocab;
    advance(plan[i], logits_row, target_lp_.data() + ti);
    ti += e.targets.size();
  }
}

void Scheduler::advance(Planned& p, const float* logits_row, const float* target_lp) {
  Seq* s = p.seq;
  if (s->req.params.echo_prompt_logprobs) {
    const int64_t n_targets = std::clamp<int64_t>(s->n_prompt - 1 - s->n_computed, 0, p.n);
    for (int64_t i = 0; i < n_targets; ++i) s->token_lp[s->n_computed + 1 + i] = target_lp[i];
  }
  s->n_computed += p.n;
  if (logits_row == nullptr) return;
  if (s->state->params().max_tokens == 0) {
    finish(s, Status::ok());
    return;
  }
  // The sampled token is fed at the next step, which needs a free position in the context.
  const bool last_allowed = static_cast<int64_t>(s->tokens.size()) + 1 > n_ctx_;
  bool finished = false;
  GeneratedToken gt;
  try {
    const std::span<const float> row(logits_row, model_->config().n_vocab);
    // The request's own draft is matched token by token from its first sampled token on; a
    // speculative cascade's rule may keep the draft's token where the target's differs.
    bool keep_given = false;
    if (s->given_pos < s->given.size() && !s->given_lp.empty() && s->state->sampler().greedy()) {
      SamplingDist d;
      s->state->sampler().distribution(row, &d);
      keep_given = d.weights.front().first != s->given[s->given_pos] &&
                   drafter_token_stands(row, s->given_lp[s->given_pos], s->req.defer_alpha);
    }
    if (keep_given) {
      gt = s->state->emit(row, s->given[s->given_pos], last_allowed, &finished);
      s->n_kept++;
    } else {
      gt = s->state->step(row, last_allowed, &finished);
    }
    if (s->given_pos < s->given.size()) {
      if (gt.id == s->given[s->given_pos]) {
        s->given_pos++;
      } else {
        s->given.clear();
      }
    }
    const bool keep_going = deliver(s, gt);
    if (!keep_going && !finished) {
      s->state->interrupt();
      finished = true;
    }
  } catch (const std::exception& ex) {
    finish(s, internal_error(std::string("the token callback failed: ") + ex.what()));
    return;
  }
  if (finished) finish(s, Status::ok());
}

bool Scheduler::deliver(Seq* s, const GeneratedToken& gt) {
  if (s->state->n_generated() == 1) s->first_token = SchedClock::now();
  s->tokens.push_back(gt.id);
  s->token_lp.push_back(gt.logprob);
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_.generated_tokens++;
  }
  if (s->req.on_token) return s->req.on_token(gt);
  s->handle->push(gt);
  return true;
}

int Scheduler::draft_length(Seq* s) {
  // Sampled requests keep the acceptance rule: lengths chosen from timings would change which
  // random draws a seed's output takes, and a seeded request must repeat.
  if (draft_cost_ == nullptr || running_.size() != 1 || !s->state->sampler().greedy())
    return s->spec_k;
  // A plain step first: the one-token forward is what every draft length is weighed against.
  if (!draft_cost_->knows_forward(1)) return 0;
  if (!draft_cost_->ready()) return s->spec_k;  // the acceptance rule until a draft is timed
  const std::vector<double> accept = s->acceptance.rates(&draft_acceptance_);
  int k = draft_cost_->best_k(accept);
  // Every eighth choice drafts one token more: it times the next forward size and sees the
  // next position's acceptance, so a choice of 0 (or of a short draft) is revisited.
  if (++s->n_length_choices % 8 == 0) k = std::min(options_.spec_k_max, k + 1);
  return k;
}

void Scheduler::plan_drafts(std::vector<Planned>& plan, int64_t* budget) {
  std::vector<DraftModel::Job> jobs;
  std::vector<size_t> job_plan;
  for (size_t i = 0; i < plan.size(); ++i) {
    Planned& p = plan[i];
    Seq* s = p.seq;
    // Room: the context (positions n_computed .. n_computed + k), what max_tokens leaves
    // (k drafts can emit k + 1 tokens), and the step's budget.
    const int64_t room = std::min<int64_t>(
        {n_ctx_ - static_cast<int64_t>(s->tokens.size()),
         s->state->params().max_tokens - s->state->n_generated() - 1, *budget, 256});
    if (room <= 0) continue;
    if (s->given_pos < s->given.size()) {
      const int64_t n = std::min<int64_t>(room, static_cast<int64_t>(s->given.size() - s->given_pos));
      p.draft.assign(s->given.begin() + s->given_pos, s->given.begin() + s->given_pos + n);
      p.given = true;
    } else if (s->req.speculate && options_.spec == SchedulerOptions::Spec::kNgram) {
      const int k = static_cast<int>(std::min<int64_t>(room, draft_length(s)));
      if (k > 0) p.draft = ngram_draft(s->tokens, k);
    } else if (s->req.speculate && options_.spec == SchedulerOptions::Spec::kDraftModel &&
               draft_ != nullptr) {
      const int k = static_cast<int>(std::min<int64_t>(room, draft_length(s)));
      if (k > 0) {
        if (s->draft_seq.kv < 0) s->draft_seq = draft_->open(s->req.params.sampling);
        jobs.push_back({&s->draft_seq, s->tokens, k, {}, {}});
        job_plan.push_back(i);
        continue;
      }
    }
    p.n += static_cast<int64_t>(p.draft.size());
    *budget -= static_cast<int64_t>(p.draft.size());
  }
  if (jobs.empty()) return;
  draft_->draft(jobs);
  const DraftModel::Timing& t = draft_->last_timing();
  if (draft_cost_ != nullptr && jobs.size() == 1 && running_.size() == 1 && t.rounds > 0)
    draft_cost_->observe_draft_round(t.seconds / t.rounds);
  for (size_t j = 0; j < jobs.size(); ++j) {
    Planned& p = plan[job_plan[j]];
    const int64_t n = std::min<int64_t>(static_cast<int64_t>(jobs[j].draft.size()), *budget);
    p.draft.assign(jobs[j].draft.begin(), jobs[j].draft.begin() + std::max<int64_t>(0, n));
    p.dists = std::move(jobs[j].dists);
    p.dists.resize(std::min(p.dists.size(), p.draft.size()));
    p.n += static_cast<int64_t>(p.draft.size());
    *budget -= static_cast<int64_t>(p.draft.size());
  }
}

void Scheduler::advance_verified(Planned& p, const float* rows) {
  Seq* s = p.seq;
  const int64_t before = s->n_computed;
  const int64_t k = static_cast<int64_t>(p.draft.size()) - 1;  // p.draft = [last, d1..dk]
  std::span<const int32_t> draft(p.draft.data() + 1, k);
  const int64_t n_vocab = model_->config().n_vocab;
  VerifyResult v;
  DraftDeferral deferral;
  const bool defer = p.given && !s->given_lp.empty();
  if (defer) {
    deferral.logprobs = std::span<const float>(s->given_lp).subspan(s->given_pos, k);
    deferral.alpha = s->req.defer_alpha;
  }
  try {
    v = verify_draft(
        *s->state, std::span<const float>(rows, (k + 1) * n_vocab), n_vocab, draft, p.dists,
        [&](int i) {
          // The i-th emitted token is fed at position before + 1 + i, which must exist.
          return before + 2 + i > n_ctx_;
        },
        [&](const GeneratedToken& gt) { return deliver(s, gt); }, defer ? &deferral : nullptr);
  } catch (const std::exception& ex) {
    finish(s, internal_error(std::string("the token callback failed: ") + ex.what()));
    return;
  }
  // Keep [last, d1..dm] in the caches; the token after them waits to be fed.
  const int64_t keep = before + 1 + v.accepted;
  kv_->truncate(s->kv_seq, keep);
  s->n_computed = keep;
  if (draft_ != nullptr && s->draft_seq.kv >= 0 && draft_->n_past(s->draft_seq) > keep)
    draft_->truncate(s->draft_seq, keep);
  s->n_draft_tokens += k;
  s->n_accepted += v.accepted;
  if (p.given) {
    s->n_reused += v.accepted;
    s->n_kept += v.kept;
    s->given_pos += v.accepted;
    if (v.accepted < k) s->given.clear();  // diverged: the rest of it is moot
  } else {
    s->acceptance.observe(static_cast<int>(k), static_cast<int>(v.accepted));
    draft_acceptance_.observe(static_cast<int>(k), static_cast<int>(v.accepted));
    if (v.accepted == k) {
      s->spec_k = std::min(options_.spec_k_max, s->spec_k + 1);
    } else if (v.accepted * 2 < k) {
      s->spec_k = std::max(1, s->spec_k - 1);
    }
  }
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_.spec_drafts++;
    stats_.spec_draft_tokens += k;
    stats_.spec_accepted_tokens += v.accepted;
    for (int i = 0; i < v.accepted && i < static_cast<int>(stats_.spec_accepted_by_position.size()); ++i)
      stats_.spec_accepted_by_position[i]++;
  }
  if (v.finished) finish(s, Status::ok());
}

int64_t Scheduler::live_waiting() const {
  int64_t n = 0;
  for (const auto& s : waiting_) n += s->done ? 0 : 1;
  return n;
}

void Scheduler::finish(Seq* s, Status status) {
  if (s->done) return;
  s->done = true;
  // A request ended while queued frees its queue slot now, not at the next sweep.
  if (s->kv_seq < 0 && n_waiting_.load() > 0) n_waiting_.store(live_waiting());
  if (s->kv_seq >= 0) {
    kv_->free_sequence(s->kv_seq);
    s->kv_seq = -1;
  }
  if (draft_ != nullptr && s->draft_seq.kv >= 0) draft_->close(s->draft_seq);
  Completion c;
  c.status = std::move(status);
  c.result = std::move(s->state->result());
  GenerateResult& r = c.result;
  r.n_prompt = s->n_prompt;
  r.n_prompt_cached = s->n_prompt_cached;
  r.n_preempted = s->n_preempted;
  r.n_draft_tokens = s->n_draft_tokens;
  r.n_accepted_tokens = s->n_accepted;
  r.n_reused_tokens = s->n_reused;
  r.n_draft_kept = s->n_kept;
  if (s->req.params.echo_prompt_logprobs && c.status.is_ok()) {
    r.prompt_logprobs.assign(s->token_lp.begin() + 1, s->token_lp.begin() + s->n_prompt);
  }
  const auto now = SchedClock::now();
  if (s->admitted_once) {
    r.queue_seconds = seconds_between(s->submitted, s->first_chunk);
    if (!r.tokens.empty()) {
      r.first_token_seconds = seconds_between(s->submitted, s->first_token);
      r.prefill_seconds = seconds_between(s->first_chunk, s->first_token);
      r.decode_seconds = seconds_between(s->first_token, now);
    } else {
      r.prefill_seconds = seconds_between(s->first_chunk, now);
    }
  } else {
    r.queue_seconds = seconds_between(s->submitted, now);
  }
  if (s->req.on_finish) {
    try {
      s->req.on_finish(c);
    } catch (const std::exception&) {
      // The request is over either way; a failing observer must not stop the loop.
    }
  }
  s->handle->complete(std::move(c));
  std::lock_guard<std::mutex> lock(stats_mu_);
  stats_.finished++;
}

void Scheduler::sweep_finished() {
  auto gone = [](const std::unique_ptr<Seq>& s) { return s->done; };
  running_.erase(std::remove_if(running_.begin(), running_.end(), gone), running_.end());
  waiting_.erase(std::remove_if(waiting_.begin(), waiting_.end(), gone), waiting_.end());
  n_waiting_.store(live_waiting());
  std::lock_guard<std::mutex> lock(stats_mu_);
  stats_.running = static_cast<int64_t>(running_.size());
  stats_.waiting = static_cast<int64_t>(waiting_.size());
  stats_.kv_blocks_used = kv_->n_used_blocks();
  stats_.kv_blocks_cached = kv_->n_cached_blocks();
  stats_.kv_live_sequences = kv_->n_live_sequences();
}

}  // namespace frugal
