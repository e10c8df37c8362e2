// Sampler: log-softmax for reporting, then filtering and a seeded draw for choosing.
#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace frugal {

Status SamplingParams::validate() const {
  if (!(temperature >= 0.0f) || temperature > 100.0f)
    return invalid_argument("temperature must be in [0, 100], got " + std::to_string(temperature));
  if (top_k < 0) return invalid_argument("top_k must be >= 0, got " + std::to_string(top_k));
  if (!(top_p > 0.0f && top_p <= 1.0f))
    return invalid_argument("top_p must be in (0, 1], got " + std::to_string(top_p));
  if (!(min_p >= 0.0f && min_p < 1.0f))
    return invalid_argument("min_p must be in [0, 1), got " + std::to_string(min_p));
  if (n_logprobs < 0 || n_logprobs > 20)
    return invalid_argument("logprobs must be in [0, 20], got " + std::to_string(n_logprobs));
  return Status::ok();
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

SampledToken Sampler::sample(std::span<const float> logits) {
  const int64_t n = static_cast<int64_t>(logits.size());
  CHECK(n > 0);
  // log Z of the raw distribution, for the reported logprobs.
  float max_logit = -std::numeric_limits<float>::infinity();
  int32_t argmax = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (logits[i] > max_logit) {
      max_logit = logits[i];
      argmax = static_cast<int32_t>(i);
    }
  }
  double z = 0.0;
  for (int64_t i = 0; i < n; ++i) z += std::exp(static_cast<double>(logits[i] - max_logit));
  const float log_z = max_logit + static_cast<float>(std::log(z));

  SampledToken out;
  const bool greedy = params_.temperature == 0.0f || params_.top_k == 1;
  if (greedy) {
    out.id = argmax;
  } else {
    candidates_.resize(n);
    for (int64_t i = 0; i < n; ++i) candidates_[i] = {logits[i], static_cast<int32_t>(i)};
    auto by_logit = [](const auto& a, const auto& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    };
    int64_t keep = n;
    if (params_.top_k > 0 && params_.top_k < n) {
      keep = params_.top_k;
      std::partial_sort(candidates_.begin(), candidates_.begin() + keep, candidates_.end(),
                        by_logit);
    } else {
      std::sort(candidates_.begin(), candidates_.end(), by_logit);
    }
    // Probabilities at the sampling temperature over the kept candidates.
    probs_.resize(keep);
    const float top = candidates_[0].first;
    double sum = 0.0;
    for (int64_t i = 0; i < keep; ++i) {
      probs_[i] = std::exp((candidates_[i].first - top) / params_.temperature);
      sum += probs_[i];
    }
    if (params_.top_p < 1.0f) {
      double cum = 0.0;
      for (int64_t i = 0; i < keep; ++i) {
        cum += probs_[i] / sum;
        if (cum >= params_.top_p) {
          keep = i + 1;
          break;
        }
      }
    }
    if (params_.min_p > 0.0f) {
      const float floor = params_.min_p * probs_[0];  // probs_[0] is the largest
      int64_t k = 1;
      while (k < keep && probs_[k] >= floor) ++k;
      keep = k;
    }
    double kept = 0.0;
    for (int64_t i = 0; i < keep; ++i) kept += probs_[i];
    const double r = std::uniform_real_distribution<double>(0.0, kept)(rng_);
    double acc = 0.0;
    out.id = candidates_[keep - 1].second;
    for (int64_t i = 0; i < keep; ++i) {
      acc += probs_[i];
      if (r < acc) {
        out.id = candidates_[i].second;
        break;
      }
    }
  }
  out.logprob = logits[out.id] - log_z;

  if (params_.n_logprobs > 0) {
    const int64_t k = std::min<int64_t>(params_.n_logprobs, n);
    std::vector<std::pair<float, int32_t>> best;
    best.reserve(k + 1);
    auto better = [](const auto& a, const auto& b) {  // heap front = worst kept
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    };
    for (int64_t i = 0; i < n; ++i) {
      std::pair<float, int32_t> c{logits[i], static_cast<int32_t>(i)};
      if (static_cast<int64_t>(best.size()) < k) {
        best.push_back(c);
        std::push_heap(best.begin(), best.end(), better);
      } else if (better(c, best.front())) {
        std::pop_heap(best.begin(), best.end(), better);
        best.back() = c;
        std::push_heap(best.begin(), best.end(), better);
      }
    }
    std::sort_heap(best.begin(), best.end(), better);
    for (const auto& [logit, id] : best) out.top.push_back({id, logit - log_z});
  }
  return out;
}

}  // namespace frugal
