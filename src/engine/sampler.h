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

// The distribution a sampler draws from for one row: (token, weight) most likely first,
// weights summing to `total` (greedy: the argmax alone, weight 1). The weights are the
// probabilities at the sampling temperature after top-k, top-p and min-p, unnormalised.
struct SamplingDist {
  std::vector<std::pair<int32_t, double>> weights;
  double total = 0;
  // Normalised probability of `id` (0 when filtered out).
  double prob(int32_t id) const {
    for (const auto& [t, w] : weights)
      if (t == id) return w / total;
    return 0.0;
  }
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  // distribution, draw, report: one seeded draw.
  SampledToken sample(std::span<const float> logits);

  // The pieces, for speculative verification (which must draw from the same distribution).
  void distribution(std::span<const float> logits, SamplingDist* out);
  int32_t draw(const SamplingDist& dist);
  double uniform();  // in [0, 1), from the same seeded stream
  // `id`'s logprob under the raw logits and the top alternatives, as sample() reports them.
  SampledToken report(std::span<const float> logits, int32_t id) const;
  bool greedy() const { return params_.temperature == 0.0f || params_.top_k == 1; }

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> candidates_;  // (logit, id), reused across calls
  std::vector<float> probs_;
  SamplingDist dist_;
};

}  // namespace frugal
