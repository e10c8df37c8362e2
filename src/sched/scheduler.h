// Scheduler: continuous batching over one loaded model. It owns the Model, its KvCache and one
// loop thread; callers submit() requests and get a handle that streams tokens (to a callback
// or a queue), reports the finish and can be cancelled at any moment. Each step builds ONE
// batch — a decode token for every running sequence, then prefill chunks of admitted prompts
// under a token budget (chunked prefill, so a long prompt never stalls the decoders) — runs
// one Model::forward, and advances each sequence's SequenceState.
//
// Memory: a step's blocks are reserved all or nothing; admission waits (FIFO) until a prompt's
// blocks are free, and when decoding sequences outgrow the cache the most recently admitted is
// preempted: its blocks are freed and it is recomputed later, the tokens it already streamed
// kept. Full blocks are shared across requests through the cache's prefix hashes, with their
// prompt logprobs, so a repeated system prompt is computed once.
//
// Greedy and seeded requests give the same tokens whatever else is batched with them: every
// kernel computes a token's row the same way at any batch size (tests/sched_test.cpp).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "engine/kv_cache.h"
#include "engine/model.h"
#include "sched/request.h"
#include "sched/sequence_state.h"
#include "spec/draft_model.h"
#include "spec/draft_policy.h"
#include "util/status.h"

namespace frugal {

using SchedClock = std::chrono::steady_clock;

struct SchedulerOptions {
  // Positions one sequence may use, prompt and answer; 0: min(4096, the trained context).
  int64_t n_ctx = 0;
  // Positions in the KV cache over all sequences; 0: n_ctx × max_running, capped at
  // kv_budget_bytes, and never below n_ctx.
  int64_t kv_tokens = 0;
  int64_t kv_budget_bytes = int64_t{1} << 30;
  KvType kv_type = KvType::kF16;
  int block_size = 16;
  int max_running = 64;      // sequences batched at once
  int max_queue = 1024;      // waiting requests beyond which submit() refuses
  int64_t step_tokens = 512; // tokens in one step: decode rows first, then prefill chunks
  // Speculative decoding for requests that allow it: drafts verified inside the step's batch.
  enum class Spec { kNone, kNgram, kDraftModel };
  Spec spec = Spec::kNone;  // kDraftModel needs the draft model given to create()
  int spec_k = 4;           // the draft length each sequence starts from
  int spec_k_max = 12;      // it grows while drafts are accepted whole, shrinks when not
  // The draft model's logits over token ids below this and the end tokens only
  // (Model::restrict_logits); 0: the whole vocabulary. Verification is unchanged, so the
  // output is too; only the acceptance rate and the drafter's cost move.
  int64_t draft_vocab = 0;
  // While one greedy sequence decodes, choose each draft's length (0: none) for the most
  // expected tokens per second from the measured cost of drafting and verifying on this
  // machine (spec/draft_policy.h). Off, with more sequences, or for sampled requests (whose
  // seeded output must repeat): the acceptance rule above alone.
  bool spec_cost_aware = true;
};
const char* spec_name(SchedulerOptions::Spec spec);  // "none", "ngram", "draft-model"

struct SchedRequest {
  std::vector<int32_t> prompt;
  GenerateParams params;
  std::optional<SchedClock::time_point> deadline;  // finish with kDeadlineExceeded after it
  // Called on the scheduler's thread with each token, in order; return false to end the
  // request there (it finishes OK, result.interrupted set). It delays every sequence of the
  // step, so it must be quick (push to a queue, write to a buffer). Without it the tokens
  // queue in the handle (RequestHandle::poll).
  std::function<bool(const GeneratedToken&)> on_token;
  // Called once on the scheduler's thread when the request ends, after its last token.
  std::function<void(const Completion&)> on_finish;
  // A draft to verify first (speculative escalation: the tokens tier 1 answered): the
  // target keeps the prefix it agrees with and continues from there. Greedy requests give
  // the target's own greedy answer either way.
  std::vector<int32_t> draft;
  // Speculative cascade (spec/verify.h, DraftDeferral): the drafter's log q of each draft
  // token, and the margin. A greedy request then also keeps a draft token the target would not
  // have chosen when q >= max p - alpha: the answer is no longer the target's own. Empty: the
  // draft is verified losslessly.
  std::vector<float> draft_logprobs;
  double defer_alpha = -1.0;
  bool speculate = true;  // use the scheduler's drafter (when it has one)
};

// Wakes the scheduler's loop; shared with handles so that cancel() is safe after the
// scheduler is gone.
struct SchedWakeup {
  std::mutex mu;
  std::condition_variable cv;
  bool pending = false;
  void notify();
};

class RequestHandle {
 public:
  // Any thread, any time: the request ends with kCancelled at the next step, and its blocks
  // return to the pool. No effect once it has ended.
  void cancel();
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }
  // Blocks until the request has ended.
  const Completion& wait();
  // True once ended, waiting at most `timeout`.
  bool wait_for(std::chrono::milliseconds timeout);
  bool done() const;

  // Queue mode (the request had no on_token): the next token, waiting up to `timeout`.
  enum class Poll { kToken, kFinished, kTimeout };
  Poll poll(GeneratedToken* out, std::chrono::milliseconds timeout);

 private:
  friend class Scheduler;
  explicit RequestHandle(std::shared_ptr<SchedWakeup> wakeup) : wakeup_(std::move(wakeup)) {}
  void push(const GeneratedToken& t);
  void complete(Completion c);

  std::shared_ptr<SchedWakeup> wakeup_;
  std::atomic<bool> cancelled_{false};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  Completion completion_;
  std::deque<GeneratedToken> queue_;
};

// A snapshot for metrics and tests.
struct SchedulerStats {
  int64_t waiting = 0;
  int64_t running = 0;
  int64_t kv_blocks_total = 0;
  int64_t kv_blocks_used = 0;    // referenced by a live sequence
  int64_t kv_blocks_cached = 0;  // free but still holding a reusable prefix
  int64_t kv_live_sequences = 0;
  uint64_t steps = 0;
  uint64_t preemptions = 0;
  uint64_t finished = 0;
  uint64_t prompt_tokens = 0;
  uint64_t prompt_tokens_cached = 0;
  uint64_t generated_tokens = 0;
  // Speculative decoding, as vLLM and llama.cpp count it: verification passes with a draft,
  // draft tokens proposed, draft tokens accepted, and acceptances by draft position.
  uint64_t spec_drafts = 0;
  uint64_t spec_draft_tokens = 0;
  uint64_t spec_accepted_tokens = 0;
  std::vector<uint64_t> spec_accepted_by_position;  // [i]: drafts whose i-th token stood
};

class Scheduler {
 public:
  // Errors: kOutOfRange when the KV cache does not fit the machine's memory (both sizes
  // named); kInvalidArgument for options out of range.
  // `draft` (optional): a draft model for Spec::kDraftModel; kInvalidArgument when its
  // vocabulary is not the target's.
  static Result<std::unique_ptr<Scheduler>> create(std::unique_ptr<Model> model,
                                                   const SchedulerOptions& options = {},
                                                   std::unique_ptr<Model> draft = nullptr);
  // Ends every outstanding request with kCancelled and stops the loop.
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues `request`. Errors: kInvalidArgument for an empty prompt, a token id outside the
  // vocabulary or bad sampling values; kOutOfRange for a prompt that leaves no room in the
  // context; kResourceExhausted when max_queue requests are waiting ("queue full: N
  // waiting"); kUnavailable once the scheduler is shutting down.
  Result<std::shared_ptr<RequestHandle>> submit(SchedRequest request);

  Model& model() { return *model_; }
  const Model& model() const { return *model_; }
  int64_t n_ctx() const { return n_ctx_; }
  int64_t kv_tokens() const { return kv_tokens_; }
  KvType kv_type() const { return options_.kv_type; }
  int64_t kv_bytes() const { return kv_bytes_; }
  const SchedulerOptions& options() const { return options_; }
  SchedulerStats stats() const;
  // True when the KV pool is whole: no live sequence, every block free or cached, the cache's
  // invariants intact. Waits for the loop to be idle first; for tests.
  bool pool_is_whole();

 private:
  struct Seq;
  struct Planned {
    Seq* seq;
    int64_t n;
    std::vector<int32_t> draft;        // decode entries: the draft verified after the last token
    std::vector<SamplingDist> dists;   // the draft model's distributions (sampled requests)
    bool given = false;                // the draft came with the request
  };
  Scheduler(std::unique_ptr<Model> model, std::unique_ptr<KvCache> kv,
            const SchedulerOptions& options, int64_t n_ctx, std::unique_ptr<DraftModel> draft);
  void plan_drafts(std::vector<Planned>& plan, int64_t* budget);
  int draft_length(Seq* s);
  void advance_verified(Planned& p, const float* rows);
  bool deliver(Seq* s, const GeneratedToken& gt);
  void loop();
  void reap();
  void step();
  bool admit(std::vector<Planned>& plan, int64_t* budget);
  void fit_to_pool(std::vector<Planned>& plan);
  void preempt(Seq* s);
  void advance(Planned& p, const float* logits_row, const float* target_lp);
  void finish(Seq* s, Status status);
  void sweep_finished();
  int64_t live_waiting() const;  // waiting_ entries not yet finished

  std::unique_ptr<Model> model_;
  std::unique_ptr<KvCache> kv_;
  std::unique_ptr<DraftModel> draft_;
  // spec_cost_aware: what forwards and draft rounds cost here, and acceptance over all
  // sequences (the prior for each sequence's own). Null without speculation.
  std::unique_ptr<DraftCostModel> draft_cost_;
  DraftAcceptance draft_acceptance_;
  SchedulerOptions options_;
  int64_t n_ctx_ = 0, kv_tokens_ = 0, kv_bytes_ = 0;
  std::shared_ptr<SchedWakeup> wakeup_;

  // Submissions not yet seen by the loop, guarded by wakeup_->mu.
  std::deque<std::unique_ptr<Seq>> incoming_;
  bool stop_ = false;
  bool idle_ = true;  // the loop has nothing to do (guarded by wakeup_->mu)
  std::condition_variable idle_cv_;
  std::atomic<int64_t> n_waiting_{0};
  uint64_t next_id_ = 0;

  // Owned by the loop thread.
  std::deque<std::unique_ptr<Seq>> waiting_;   // FIFO; preempted sequences return to the front
  std::vector<std::unique_ptr<Seq>> running_;  // admitted, in admission order
  std::vector<float> logits_, target_lp_;
  std::vector<SeqBatch> batch_;

  mutable std::mutex stats_mu_;
  SchedulerStats stats_;

  std::thread thread_;
};

}  // namespace frugal
