// DraftCostModel: the draft length that maximises expected tokens per second.
#include "spec/draft_policy.h"

#include <algorithm>

namespace frugal {

namespace {
// Weight of the newest measurement in the running averages: recent enough to follow the
// machine (another process, a warmer cache), smooth enough to ignore one slow step.
constexpr double kNewest = 0.25;
// Old acceptance counts fade by this per observation, so a request whose text changes
// character (code, then prose) is judged on its recent drafts.
constexpr double kFade = 0.98;

void average_in(double* avg, double x) { *avg = *avg < 0 ? x : (1 - kNewest) * *avg + kNewest * x; }
}  // namespace

DraftCostModel::DraftCostModel(int k_max)
    : k_max_(std::max(1, k_max)), forward_s_(static_cast<size_t>(k_max_) + 2, -1.0) {}

void DraftCostModel::observe_forward(int64_t n, double seconds) {
  if (n < 1 || n > k_max_ + 1 || !(seconds >= 0)) return;
  average_in(&forward_s_[static_cast<size_t>(n)], seconds);
}

void DraftCostModel::observe_draft_round(double seconds) {
  if (seconds >= 0) average_in(&draft_s_, seconds);
}

bool DraftCostModel::knows_forward(int64_t n) const {
  return n >= 1 && n <= k_max_ + 1 && forward_s_[static_cast<size_t>(n)] >= 0;
}

double DraftCostModel::forward_seconds(int64_t n) const {
  if (knows_forward(n)) return forward_s_[static_cast<size_t>(n)];
  int64_t below = -1, above = -1, last = -1, second = -1;
  for (int64_t m = 1; m <= k_max_ + 1; ++m) {
    if (!knows_forward(m)) continue;
    if (m < n) below = m;
    if (m > n && above < 0) above = m;
    second = last;
    last = m;
  }
  auto at = [&](int64_t m) { return forward_s_[static_cast<size_t>(m)]; };
  auto line = [&](int64_t a, int64_t b) {
    const double slope = (at(b) - at(a)) / static_cast<double>(b - a);
    return std::max(0.0, at(a) + slope * static_cast<double>(n - a));
  };
  if (below > 0 && above > 0) return line(below, above);
  if (second > 0) return line(second, last);  // beyond (or below) every measured size
  return -1.0;
}

bool DraftCostModel::ready() const {
  if (draft_s_ < 0 || !knows_forward(1)) return false;
  for (int64_t m = 2; m <= k_max_ + 1; ++m) {
    if (knows_forward(m)) return true;
  }
  return false;
}

double DraftCostModel::expected_rate(int k, std::span<const double> accept) const {
  double tokens = 1.0, all_accepted = 1.0;
  for (int i = 0; i < k; ++i) {
    const double a = accept.empty() ? 0.5 : accept[std::min<size_t>(i, accept.size() - 1)];
    all_accepted *= std::clamp(a, 0.0, 1.0);
    tokens += all_accepted;
  }
  const double seconds = k * std::max(0.0, draft_s_) + forward_seconds(k + 1);
  return seconds > 0 ? tokens / seconds : 0.0;
}

int DraftCostModel::best_k(std::span<const double> accept) const {
  int best = 0;
  double best_rate = expected_rate(0, accept);
  for (int k = 1; k <= k_max_; ++k) {
    const double r = expected_rate(k, accept);
    if (r > best_rate) best = k, best_rate = r;
  }
  return best;
}

void DraftAcceptance::observe(int k, int n_accepted) {
  if (static_cast<int>(reached.size()) < k) {
    reached.resize(static_cast<size_t>(k), 0.0);
    accepted.resize(static_cast<size_t>(k), 0.0);
  }
  for (size_t i = 0; i < reached.size(); ++i) {
    reached[i] *= kFade;
    accepted[i] *= kFade;
  }
  for (int i = 0; i < k && i <= n_accepted; ++i) {
    reached[static_cast<size_t>(i)] += 1.0;
    if (i < n_accepted) accepted[static_cast<size_t>(i)] += 1.0;
  }
}

std::vector<double> DraftAcceptance::rates(const DraftAcceptance* prior, double prior_weight) const {
  const std::vector<double> p = prior != nullptr ? prior->rates() : std::vector<double>{};
  const size_t n = std::max(reached.size(), p.size());
  std::vector<double> out;
  for (size_t i = 0; i < n; ++i) {
    const double r = i < reached.size() ? reached[i] : 0.0;
    const double a = i < accepted.size() ? accepted[i] : 0.0;
    if (i < p.size()) {
      out.push_back((a + prior_weight * p[i]) / (r + prior_weight));
    } else if (r > 0) {
      out.push_back(a / r);
    } else {
      break;
    }
  }
  return out;
}

}  // namespace frugal
