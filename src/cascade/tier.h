// Tier: the one interface behind which every cascade tier answers a chat request — the
// response cache, a local GGUF model, and (later) a remote OpenAI-compatible endpoint — with
// the answer's tokens, logprobs, cost and latency.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cascade/config.h"
#include "engine/chat_template.h"
#include "sched/request.h"
#include "util/status.h"

namespace frugal::cascade {

struct TierRequest {
  std::vector<ChatMessage> messages;  // the conversation; the tier answers the last user turn
  int64_t max_tokens = 256;
  float temperature = 0.0f;  // 0: greedy, deterministic (and cacheable)
  uint64_t seed = 0;
  std::vector<std::string> stop;  // generation ends before the first occurrence of any
  int n_logprobs = 5;             // alternatives recorded per generated token (0-20)
  // Also score the prompt itself (TierAnswer::prompt_mean_logprob). It costs the prefix
  // cache for this request (every prompt position needs its logits), so only tier 1 asks.
  bool prompt_logprobs = false;
};

// One alternative at a generated position, as OpenAI's top_logprobs report it.
struct TokenAlternative {
  std::string piece;
  float logprob = 0.0f;
};

struct AnswerToken {
  std::string piece;  // the token's own bytes
  float logprob = 0.0f;
  std::vector<TokenAlternative> top;  // most likely first; n_logprobs of them when known
};

struct TierAnswer {
  std::string text;
  FinishReason finish = FinishReason::kLength;
  int64_t tokens_in = 0;   // prompt tokens as the tier counted them (and priced them)
  int64_t tokens_out = 0;  // generated tokens, the stopping one included
  std::vector<AnswerToken> tokens;
  // Mean of log p(prompt[i+1] | prompt[..i]) over the prompt: how familiar the request looks
  // to this tier. Only when the request asked for prompt_logprobs and the prompt has >= 2
  // tokens; else has_prompt_logprob is false and the mean is 0.
  double prompt_mean_logprob = 0.0;
  bool has_prompt_logprob = false;
  double latency_ms = 0.0;
  double cost = 0.0;  // dollars, from the tier's prices (tier_query_cost)
  // The observer stopped generation (the text is a prefix of what the tier would have said).
  bool interrupted = false;
  // Set by the cascade: tier 1 was stopped early and the request escalated.
  bool escalated_early = false;
};

// Sees each generated token as it comes; returns false to stop generation at once.
using TokenObserver = std::function<bool(const AnswerToken&)>;

class Tier {
 public:
  explicit Tier(TierConfig config) : config_(std::move(config)) {}
  virtual ~Tier() = default;
  Tier(const Tier&) = delete;
  Tier& operator=(const Tier&) = delete;

  // Answers `request`. Errors: kInvalidArgument for a request the tier cannot take (empty
  // conversation, bad sampling values, a prompt longer than its context); kNotFound from a
  // cache tier that holds no answer; kUnavailable from a remote tier that cannot be reached.
  virtual Result<TierAnswer> answer(const TierRequest& request,
                                    const TokenObserver& observer = {}) = 0;

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

}  // namespace frugal::cascade
