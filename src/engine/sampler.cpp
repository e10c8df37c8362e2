// Sampler: log-softmax for reporting, then filtering and a seeded draw for choosing.
#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "kernels/ops.h"

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

void Sampler::distribution(std::span<const float> logits, SamplingDist* d) {
  const int64_t n = static_cast<int64_t>(logits.size());
  CHECK(n > 0);
  d->weights.clear();
  const bool greedy = params_.temperature == 0.0f || params_.top_k == 1;
  if (greedy) {
    d->weights.push_back({static_cast<int32_t>(kernels::argmax(logits.data(), n)), 1.0});
    d->total = 1.0;
    return;
  }
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
  d->total = 0.0;
  for (int64_t i = 0; i < keep; ++i) {
    d->weights.push_back({candidates_[i].second, probs_[i]});
    d->total += probs_[i];
  }
}

int32_t Sampler::draw(const SamplingDist& d) {
  CHECK(!d.weights.empty());
  // A sampled request takes one number from its stream per token even when one candidate
  // is left, so that a seed's stream does not depend on how often that happens.
  if (greedy()) return d.weights[0].first;
  const double r = std::uniform_real_distribution<double>(0.0, d.total)(rng_);
  double acc = 0.0;
  for (const auto& [id, w] : d.weights) {
    acc += w;
    if (r < acc) return id;
  }
  return d.weights.back().first;
}

double Sampler::uniform() { return std::uniform_real_distribution<double>(0.0, 1.0)(rng_); }

SampledToken Sampler::report(std::span<const float> logits, int32_t id) const {
  const int64_t n = static_cast<int64_t>(logits.size());
  const float log_z = kernels::log_sum_exp(logits.data(), n);
  SampledToken out;
  out.id = id;
  out.logprob = logits[id] - log_z;
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
    for (const auto& [logit, tid] : best) out.top.push_back({tid, logit - log_z});
  }
  return out;
}

SampledToken Sampler::sample(std::span<const float> logits) {
  distribution(logits, &dist_);
  return report(logits, draw(dist_));
}

}  // namespace frugal
