// Sampler: turns one row of logits into a token — greedy, or temperature with top-k, top-p
// and min-p filtering — and reports the chosen token's logprob with the top-N alternatives.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <utility>
#include <vector>

#include "util/status.h"

namespace frugal {

struct SamplingParams {
  float temperature = 0.0f;  // 0: greedy (argmax, lowest id on ties)
  int top_k = 0;             // keep the k most likely; 0: off
  float top_p = 1.0f;        // keep the smallest set with this much probability; 1: off
  float min_p = 0.0f;        // drop tokens below min_p × p(most likely); 0: off
  uint64_t seed = 0;         // same seed, same logits → same tokens
  int n_logprobs = 0;        // alternatives to report per token (0–20)

  // Errors: kInvalidArgument naming the bad field and its allowed range.
  Status validate() const;
};

struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0.0f;  // log-softmax of the raw logits (temperature 1), as OpenAI reports
};

struct SampledToken {
  int32_t id = 0;
  float logprob = 0.0f;
  std::vector<TokenLogprob> top;  // n_logprobs most likely, most likely first
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  SampledToken sample(std::span<const float> logits);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> candidates_;  // (logit, id), reused across calls
  std::vector<float> probs_;
};

}  // namespace frugal
