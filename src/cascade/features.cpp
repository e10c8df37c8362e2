// Scorer features from a tier answer's logprobs, and the logistic scorers built on them.
#include "cascade/features.h"

#include <algorithm>
#include <cmath>

#include "cascade/tier.h"

namespace frugal::cascade {

const std::vector<std::string>& scorer_feature_names() {
  static const std::vector<std::string> kNames = {
      "mean_logprob",      "min_logprob",         "p10_logprob",
      "p25_logprob",       "mean_topk_entropy",   "first_token_entropy",
      "answer_tokens",     "finish_length",       "prompt_mean_logprob"};
  return kNames;
}

double renormalised_entropy(const std::vector<float>& logprobs) {
  if (logprobs.empty()) return 0.0;
  const double mx = *std::max_element(logprobs.begin(), logprobs.end());
  double z = 0.0;
  for (float lp : logprobs) z += std::exp(lp - mx);
  const double log_z = std::log(z);
  double h = 0.0;
  for (float lp : logprobs) {
    const double log_p = lp - mx - log_z;
    h -= std::exp(log_p) * log_p;
  }
  return std::max(0.0, h);  // rounding can leave -1e-17 for a single alternative
}

double quantile(std::vector<double> values, double q) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const double pos = std::clamp(q, 0.0, 1.0) * static_cast<double>(values.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (pos - static_cast<double>(lo)) * (values[hi] - values[lo]);
}

namespace {

double token_entropy(const AnswerToken& t) {
  std::vector<float> lps;
  lps.reserve(t.top.size());
  for (const TokenAlternative& a : t.top) lps.push_back(a.logprob);
  return renormalised_entropy(lps);
}

// Logprobs are <= 0 by definition; clamp rounding and replace -inf (a token the model gave
// probability 0 under a filter) with a large finite floor so every feature stays finite.
double clean_logprob(float lp) {
  constexpr double kFloor = -100.0;
  if (!std::isfinite(lp)) return kFloor;
  return std::clamp(static_cast<double>(lp), kFloor, 0.0);
}

}  // namespace

std::vector<double> scorer_features(const TierAnswer& answer) {
  std::vector<double> f(static_cast<size_t>(Feature::kCount), 0.0);
  auto at = [&f](Feature x) -> double& { return f[static_cast<size_t>(x)]; };
  const size_t n = answer.tokens.size();
  if (n > 0) {
    std::vector<double> lps;
    lps.reserve(n);
    double sum = 0.0, entropy_sum = 0.0;
    for (const AnswerToken& t : answer.tokens) {
      lps.push_back(clean_logprob(t.logprob));
      sum += lps.back();
      entropy_sum += token_entropy(t);
    }
    at(Feature::kMeanLogprob) = sum / static_cast<double>(n);
    at(Feature::kMinLogprob) = *std::min_element(lps.begin(), lps.end());
    at(Feature::kP10Logprob) = quantile(lps, 0.10);
    at(Feature::kP25Logprob) = quantile(lps, 0.25);
    at(Feature::kMeanTopkEntropy) = entropy_sum / static_cast<double>(n);
    at(Feature::kFirstTokenEntropy) = token_entropy(answer.tokens.front());
  }
  at(Feature::kAnswerTokens) = static_cast<double>(n);
  at(Feature::kFinishLength) = answer.finish == FinishReason::kLength ? 1.0 : 0.0;
  at(Feature::kPromptMeanLogprob) =
      answer.has_prompt_logprob && std::isfinite(answer.prompt_mean_logprob)
          ? std::min(0.0, answer.prompt_mean_logprob)
          : 0.0;
  return f;
}

namespace {

double sigmoid(double z) {
  // Written for both signs so neither exp overflows.
  if (z >= 0) return 1.0 / (1.0 + std::exp(-z));
  const double e = std::exp(z);
  return e / (1.0 + e);
}

}  // namespace

Scorer logistic_scorer(double bias, std::vector<double> weights) {
  return [bias, weights = std::move(weights)](const std::vector<double>& features) {
    double z = bias;
    for (size_t i = 0; i < weights.size() && i < features.size(); ++i) {
      z += weights[i] * features[i];
    }
    return sigmoid(z);
  };
}

Scorer default_scorer() {
  std::vector<double> w(static_cast<size_t>(Feature::kCount), 0.0);
  w[static_cast<size_t>(Feature::kMeanLogprob)] = kDefaultScorerSlope;
  return logistic_scorer(kDefaultScorerBias, std::move(w));
}

Scorer scorer_from_config(const ScorerConfig& config) {
  if (!config.set) return default_scorer();
  const std::vector<std::string>& names = scorer_feature_names();
  std::vector<double> w(names.size(), 0.0);
  for (const auto& [name, weight] : config.weights) {
    auto it = std::find(names.begin(), names.end(), name);
    CHECK(it != names.end(), "feature '%s' passed config validation", name.c_str());
    w[static_cast<size_t>(it - names.begin())] = weight;
  }
  return logistic_scorer(config.bias, std::move(w));
}

}  // namespace frugal::cascade
