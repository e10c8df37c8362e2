// The scorer's features: numbers read off tier 1's answer (its token logprobs, the entropy of
// its top-k alternatives, its length and finish reason, how likely it found the prompt) from
// which the scorer estimates P(answer is good enough). Definitions: docs/CASCADE.md.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "cascade/config.h"
#include "util/status.h"

namespace frugal::cascade {

struct TierAnswer;

// Index of each feature in scorer_features()'s vector, in scorer_feature_names() order.
enum class Feature : int {
  kMeanLogprob = 0,      // mean token logprob, <= 0
  kMinLogprob,           // least likely token's logprob, <= 0
  kP10Logprob,           // 10th percentile token logprob, <= 0
  kP25Logprob,           // 25th percentile token logprob, <= 0
  kMeanTopkEntropy,      // mean entropy (nats) of the top-k alternatives renormalised, >= 0
  kFirstTokenEntropy,    // the same entropy at the first answer token, >= 0
  kAnswerTokens,         // generated tokens
  kFinishLength,         // 1 when the answer hit max_tokens, else 0
  kPromptMeanLogprob,    // tier 1's mean logprob of the prompt itself, <= 0 (0 unknown)
  kCount,
};

// "mean_logprob", "min_logprob", "p10_logprob", "p25_logprob", "mean_topk_entropy",
// "first_token_entropy", "answer_tokens", "finish_length", "prompt_mean_logprob".
const std::vector<std::string>& scorer_feature_names();

// The features of `answer`, scorer_feature_names() order. An answer with no tokens gives 0
// for every token feature. Always finite.
std::vector<double> scorer_features(const TierAnswer& answer);

// Entropy in nats of the distribution the logprobs describe after renormalising them to sum
// to 1; 0 for an empty list. In [0, log n].
double renormalised_entropy(const std::vector<float>& logprobs);

// q-quantile (q in [0, 1]) of `values` with linear interpolation between order statistics
// (numpy's default); 0 for an empty list.
double quantile(std::vector<double> values, double q);

// P(tier 1's answer is good enough) from the features.
using Scorer = std::function<double(const std::vector<double>& features)>;

// sigmoid(bias + weights · features); `weights` in scorer_feature_names() order.
Scorer logistic_scorer(double bias, std::vector<double> weights);

// The rule used when the config has no [cascade.scorer]:
// P = sigmoid(kDefaultScorerSlope · mean_logprob + kDefaultScorerBias), which is 0.5 at a mean
// token logprob of -0.5 (a typical token has probability ~0.6).
inline constexpr double kDefaultScorerSlope = 4.0;
inline constexpr double kDefaultScorerBias = 2.0;
Scorer default_scorer();

// The scorer a config describes: its [cascade.scorer] logistic model, else default_scorer().
Scorer scorer_from_config(const ScorerConfig& config);

}  // namespace frugal::cascade
