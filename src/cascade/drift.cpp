// The Bernoulli CUSUM's design: the integer steps, and the threshold found by bisection on the
// exact false-alarm probability from the statistic's Markov chain (Brook & Evans 1972).
#include "cascade/drift.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "util/check.h"

namespace frugal::cascade {

namespace {

// The largest threshold searched: a chain this long costs window · h operations per evaluation.
constexpr int64_t kMaxThresholdUnits = int64_t{1} << 18;

// One step of the statistic's distribution over the states 0..h-1 (the alarm absorbs): `d` is
// P(S = s, no alarm yet) [h]; returns the mass absorbed by this step.
double chain_step(const CusumDesign& c, double p, std::vector<double>& d, std::vector<double>& nd) {
  const int64_t h = c.h, up = c.up, down = c.down;
  const double q = 1.0 - p;
  const double* from = d.data();
  double* to = nd.data();
  // An agreement moves s to max(0, s - down); a disagreement moves it to s + up, or absorbs it
  // when that reaches h. As shifted sums: branch-free, so the compiler vectorises them.
  double floor_mass = 0;
  for (int64_t s = 0; s <= std::min(down, h - 1); ++s) floor_mass += from[s];
  to[0] = q * floor_mass;
  for (int64_t s = 1; s < h; ++s) to[s] = s + down < h ? q * from[s + down] : 0.0;
  for (int64_t s = up; s < h; ++s) to[s] += p * from[s - up];
  double absorbed = 0;
  for (int64_t s = std::max<int64_t>(0, h - up); s < h; ++s) absorbed += from[s];
  d.swap(nd);
  return p * absorbed;
}

}  // namespace

double cusum_alarm_probability(const CusumDesign& c, double p, int64_t steps) {
  CHECK(c.h > 0 && c.up > 0 && c.down > 0, "cusum_alarm_probability: an undesigned CUSUM");
  std::vector<double> d(static_cast<size_t>(c.h), 0.0), nd(d.size());
  d[0] = 1.0;
  double alarmed = 0;
  for (int64_t n = 0; n < steps; ++n) alarmed += chain_step(c, p, d, nd);
  return std::min(1.0, alarmed);
}

double cusum_expected_delay(const CusumDesign& c, double p, int64_t max_steps) {
  CHECK(c.h > 0 && c.up > 0 && c.down > 0, "cusum_expected_delay: an undesigned CUSUM");
  std::vector<double> d(static_cast<size_t>(c.h), 0.0), nd(d.size());
  d[0] = 1.0;
  // E[T] = sum over n >= 0 of P(T > n).
  double survive = 1.0, expected = 0.0;
  for (int64_t n = 0; n < max_steps; ++n) {
    expected += survive;
    survive -= chain_step(c, p, d, nd);
    if (survive < 1e-9) return expected;
  }
  return std::numeric_limits<double>::infinity();
}

Result<CusumDesign> design_cusum(double expected_agreement, double shift, double alpha,
                                 int64_t window) {
  if (!(expected_agreement > 0 && expected_agreement < 1)) {
    return invalid_argument("the expected agreement must be in (0, 1), not " +
                            std::to_string(expected_agreement));
  }
  if (!(shift > 0 && expected_agreement - shift > 0)) {
    return invalid_argument("the drift to detect must be > 0 and below the expected agreement (" +
                            std::to_string(expected_agreement) + "), not " +
                            std::to_string(shift));
  }
  if (!(alpha > 0 && alpha < 1)) {
    return invalid_argument("the false-alarm probability must be in (0, 1), not " +
                            std::to_string(alpha));
  }
  if (window < 1) return invalid_argument("the false-alarm window must hold at least 1 outcome");
  CusumDesign c;
  c.p0 = 1.0 - expected_agreement;
  c.p1 = c.p0 + shift;
  c.window = window;
  const double llr_up = std::log(c.p1 / c.p0);                  // > 0
  const double llr_down = -std::log((1 - c.p1) / (1 - c.p0));   // > 0
  c.unit = llr_down / static_cast<double>(kCusumResolution);
  c.down = kCusumResolution;
  c.up = std::max<int64_t>(1, std::llround(llr_up / c.unit));
  // The smallest h whose false-alarm probability is within alpha: double, then bisect (the
  // probability falls as h grows).
  auto fa = [&](int64_t h) {
    c.h = h;
    return cusum_alarm_probability(c, c.p0, window);
  };
  int64_t hi = c.up;
  while (fa(hi) > alpha) {
    if (hi > kMaxThresholdUnits / 2) {
      return invalid_argument("no CUSUM threshold keeps false alarms within " +
                              std::to_string(alpha) + " per " + std::to_string(window) +
                              " outcomes at this expected agreement; allow more false alarms or "
                              "a larger drift");
    }
    hi *= 2;
  }
  int64_t lo = hi / 2;  // fa(lo) > alpha, or lo is below any useful threshold
  // To 0.5 % of h: finer thresholds change the false-alarm rate by less than the rounding of
  // the steps does.
  while (hi - lo > std::max<int64_t>(1, hi / 200)) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (fa(mid) > alpha) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  c.false_alarm = fa(hi);
  c.delay_at_p1 = cusum_expected_delay(c, c.p1);
  return c;
}

bool Cusum::update(bool disagree) {
  ++n_;
  s_ = disagree ? s_ + d_.up : std::max<int64_t>(0, s_ - d_.down);
  if (fired_ || s_ < d_.h) return false;
  fired_ = true;
  fired_at_ = n_;
  return true;
}

void Cusum::reset() {
  s_ = 0;
  n_ = 0;
  fired_ = false;
  fired_at_ = 0;
}

}  // namespace frugal::cascade
