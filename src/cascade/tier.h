// Tier: the one asynchronous interface behind which every cascade tier answers a chat request —
// the response cache, a local GGUF model, a remote OpenAI-compatible endpoint — streaming the
// answer's tokens (ids, text, logprobs) and reporting its finish, cost and latency; any call
// can be cancelled and carries a deadline.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cascade/config.h"
#include "engine/chat_template.h"
#include "sched/request.h"
#include "util/status.h"

namespace frugal::cascade {

struct TierRequest {
  std::vector<ChatMessage> messages;  // the conversation; the tier answers the last user turn
  // Set instead of messages for a plain completion (/v1/completions): the text is the whole
  // prompt, no chat template applied.
  std::optional<std::string> raw_prompt;
  int64_t max_tokens = 256;
  float temperature = 0.0f;  // 0: greedy, deterministic (and cacheable)
  float top_p = 1.0f;        // nucleus sampling when temperature > 0; 1: off
  uint64_t seed = 0;
  bool seed_set = false;     // the client fixed the seed (a sampled request is then repeatable)
  std::vector<std::string> stop;  // generation ends before the first occurrence of any
  int n_logprobs = 5;             // alternatives recorded per generated token (0-20)
  // Generate past end-of-generation tokens up to max_tokens (benchmarks; vLLM's and
  // llama-server's ignore_eos).
  bool ignore_eos = false;
  // Also score the prompt itself (TierAnswer::prompt_mean_logprob); only tier 1 asks.
  bool prompt_logprobs = false;
  // Speculative escalation: tier 1's answer as token ids, for a local tier with the same
  // vocabulary to verify as a draft (empty: none).
  std::vector<int32_t> draft;
  // Speculative cascade: tier 1's logprob of each draft token and the deferral margin alpha
  // in [-1, 1]: a greedy request keeps a draft token the tier would not have chosen when
  // q >= max p - alpha (spec/verify.h). Empty: the draft is verified losslessly.
  std::vector<float> draft_logprobs;
  double defer_alpha = -1.0;
  // The answer must be complete by then; a tier still generating ends with kDeadlineExceeded.
  std::optional<std::chrono::steady_clock::time_point> deadline;
};

// One alternative at a generated position, as OpenAI's top_logprobs report it.
struct TokenAlternative {
  int32_t id = -1;  // -1 when the tier does not say (a remote endpoint)
  std::string piece;
  float logprob = 0.0f;
};

struct AnswerToken {
  int32_t id = -1;    // the token id in the tier's vocabulary; -1 when unknown (remote)
  std::string piece;  // the token's own bytes
  // The answer text this token releases (complete UTF-8, stop strings held back and cut):
  // the concatenation over an answer's tokens is its text.
  std::string text;
  float logprob = 0.0f;
  std::vector<TokenAlternative> top;  // most likely first; n_logprobs of them when known
};

struct TierAnswer {
  std::string text;
  FinishReason finish = FinishReason::kLength;
  int64_t tokens_in = 0;   // prompt tokens as the tier counted them (and priced them)
  int64_t tokens_in_cached = 0;  // of those, reused from the tier's prefix cache
  int64_t tokens_out = 0;  // generated tokens, the stopping one included
  // Speculative decoding: of the request's draft (speculative escalation), the tokens kept;
  // draft tokens verified in all and accepted (the tier's own drafter included).
  int64_t tokens_reused = 0;
  int64_t tokens_kept = 0;  // of the draft, tokens kept against the tier's own choice
  int64_t draft_tokens = 0;
  int64_t draft_accepted = 0;
  std::vector<AnswerToken> tokens;
  // Mean of log p(prompt[i+1] | prompt[..i]) over the prompt: how familiar the request looks
  // to this tier. Only when the request asked for prompt_logprobs and the prompt has >= 2
  // tokens; else has_prompt_logprob is false and the mean is 0.
  double prompt_mean_logprob = 0.0;
  bool has_prompt_logprob = false;
  double latency_ms = 0.0;
  double first_token_ms = 0.0;  // from the call's start to its first token (0: none)
  double cost = 0.0;  // dollars, from the tier's prices (tier_query_cost)
  // The observer stopped generation (the text is a prefix of what the tier would have said).
  bool interrupted = false;
  // Set by the cascade: tier 1 was stopped early and the request escalated.
  bool escalated_early = false;
};

// Sees each generated token as it comes; returns false to stop generation at once.
using TokenObserver = std::function<bool(const AnswerToken&)>;

// Where one tier call's events go. Both run on the tier's own thread (a scheduler's loop, an
// HTTP client's reader), so they must be quick; on_done runs exactly once, after every token.
struct TierSink {
  TokenObserver on_token;  // may be empty
  std::function<void(Result<TierAnswer>)> on_done;
};

// How a tier's endpoint or backend is doing, for /metrics: a remote tier's circuit breaker, a
// Redis cache's connection. Tiers with nothing to report are always available.
struct TierHealth {
  // False while the tier is skipped (a remote tier's breaker is open) or its backend is
  // unreachable (a Redis cache serving as no cache).
  bool available = true;
  int64_t consecutive_failures = 0;
  int64_t failures = 0;      // calls (or backend commands) that failed, ever
  int64_t retries = 0;       // retried calls, ever
  int64_t outages = 0;       // times it became unavailable (breaker opened, connection lost)
  int64_t in_flight = 0;     // calls running now (threads the tier holds)
};

// A call in flight. Cancelling ends it soon with kCancelled (on_done still runs); destroying
// the handle does not cancel.
class TierCall {
 public:
  virtual ~TierCall() = default;
  virtual void cancel() = 0;
};

class Tier {
 public:
  explicit Tier(TierConfig config) : config_(std::move(config)) {}
  virtual ~Tier() = default;
  Tier(const Tier&) = delete;
  Tier& operator=(const Tier&) = delete;

  // Starts answering `request`; tokens and the finish arrive through `sink` on the tier's
  // thread. Errors returned here mean the call never started (and the sink is never called):
  // kInvalidArgument for a request the tier cannot take (empty conversation, bad sampling
  // values, a prompt longer than its context); kNotFound from a cache tier that holds no
  // answer; kUnavailable from an overloaded or unreachable tier. Later failures (a deadline,
  // a cancellation, a stream cut) come to on_done.
  virtual Result<std::unique_ptr<TierCall>> start(const TierRequest& request, TierSink sink) = 0;

  // start() and wait: the answer, or the error that ended it. `observer` sees each token.
  Result<TierAnswer> answer(const TierRequest& request, const TokenObserver& observer = {});

  virtual TierHealth health() const { return {}; }

  const TierConfig& config() const { return config_; }
  const std::string& name() const { return config_.name; }
  TierKind kind() const { return config_.kind; }
  double price_in_per_mtok() const { return config_.price_in_per_mtok; }
  double price_out_per_mtok() const { return config_.price_out_per_mtok; }
  double cost(int64_t tokens_in, int64_t tokens_out) const {
    return tier_query_cost(config_, static_cast<double>(tokens_in),
                           static_cast<double>(tokens_out));
  }

 private:
  TierConfig config_;
};

// A tier that answers on the caller's thread (the in-memory cache, test doubles): start()
// runs answer_now() at once and reports through the sink before returning.
class SyncTier : public Tier {
 public:
  using Tier::Tier;
  Result<std::unique_ptr<TierCall>> start(const TierRequest& request, TierSink sink) override;

 protected:
  virtual Result<TierAnswer> answer_now(const TierRequest& request,
                                        const TokenObserver& observer) = 0;
};

}  // namespace frugal::cascade
