// verify_draft: accept, reject and resample, one row at a time.
#include "spec/verify.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

namespace frugal {

namespace {

// A draw from max(0, p - q) renormalised (q a distribution, or a point mass at `d`).
int32_t draw_residual(Sampler& sampler, const SamplingDist& p, const SamplingDist* q, int32_t d) {
  SamplingDist r;
  for (const auto& [id, w] : p.weights) {
    const double pp = w / p.total;
    const double qq = q != nullptr ? q->prob(id) : (id == d ? 1.0 : 0.0);
    if (pp > qq) r.weights.push_back({id, pp - qq});
  }
  for (const auto& [id, w] : r.weights) r.total += w;
  if (r.weights.empty()) return p.weights.front().first;  // p == q: any p token is right
  return sampler.draw(r);
}

}  // namespace

bool drafter_token_stands(std::span<const float> target_row, float drafter_logprob, double alpha) {
  if (target_row.empty() || !std::isfinite(drafter_logprob)) return false;
  const float m = *std::max_element(target_row.begin(), target_row.end());
  double sum = 0;
  for (float l : target_row) sum += std::exp(static_cast<double>(l - m));
  const double p_max = 1.0 / sum;
  return std::exp(static_cast<double>(drafter_logprob)) >= p_max - alpha;
}

VerifyResult verify_draft(SequenceState& state, std::span<const float> rows, int64_t n_vocab,
                          std::span<const int32_t> draft,
                          std::span<const SamplingDist> draft_dists,
                          const std::function<bool(int)>& last_allowed,
                          const std::function<bool(const GeneratedToken&)>& on_emit,
                          const DraftDeferral* deferral) {
  VerifyResult out;
  Sampler& sampler = state.sampler();
  SamplingDist p;
  const size_t k = draft.size();
  for (size_t i = 0; i <= k; ++i) {
    std::span<const float> row = rows.subspan(i * n_vocab, n_vocab);
    sampler.distribution(row, &p);
    int32_t token;
    bool accept = false;
    if (i == k) {
      token = sampler.draw(p);  // every draft token stood: the target's own next token
    } else if (sampler.greedy()) {
      token = p.weights.front().first;
      accept = token == draft[i];
      if (!accept && deferral != nullptr && i < deferral->logprobs.size() &&
          drafter_token_stands(row, deferral->logprobs[i], deferral->alpha)) {
        token = draft[i];
        accept = true;
        out.kept++;
      }
    } else {
      const SamplingDist* q = draft_dists.empty() ? nullptr : &draft_dists[i];
      const double pp = p.prob(draft[i]);
      const double qq = q != nullptr ? q->prob(draft[i]) : 1.0;
      accept = qq > 0 && sampler.uniform() < std::min(1.0, pp / qq);
      token = accept ? draft[i] : draw_residual(sampler, p, q, draft[i]);
    }
    bool finished = false;
    out.emitted.push_back(
        state.emit(row, token, last_allowed(static_cast<int>(out.emitted.size())), &finished));
    if (accept) out.accepted++;
    if (!on_emit(out.emitted.back())) {
      if (!finished) state.interrupt();
      out.interrupted = !finished;
      finished = true;
    }
    if (finished) {
      out.finished = true;
      return out;
    }
    if (!accept) return out;
  }
  return out;
}

}  // namespace frugal
