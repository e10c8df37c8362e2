// Drift alarm: a one-sided Bernoulli CUSUM on shadow outcomes (tier 1 disagreed with the top
// tier, or not), against the disagreement rate calibration predicts. The statistic runs on an
// integer lattice, so the Markov chain of Brook and Evans (1972) gives its false-alarm
// probability and detection delay exactly rather than approximately; the threshold is the
// smallest that keeps the false-alarm probability within a window at the stated rate.
// Derivation and figures: docs/OPERATIONS.md, "The drift alarm".
#pragma once

#include <cstdint>
#include <string>

#include "util/status.h"

namespace frugal::cascade {

// A CUSUM designed to tell disagreement rate p0 (in control) from p1 > p0 (drifted).
// Each outcome adds the log-likelihood ratio log(p1/p0) for a disagreement and
// log((1-p1)/(1-p0)) < 0 for an agreement, both rounded to integer multiples of `unit` nats
// (the agreement step is exactly `down` units); the statistic is S = max(0, S + step) and the
// alarm fires when S >= h.
struct CusumDesign {
  double p0 = 0;     // disagreement rate in control (1 - expected agreement)
  double p1 = 0;     // the drifted rate the test is tuned to detect
  int64_t up = 0;    // units added by a disagreement
  int64_t down = 0;  // units subtracted by an agreement
  double unit = 0;   // nats per unit
  int64_t h = 0;     // alarm threshold, units
  int64_t window = 0;           // outcomes the false-alarm probability is stated over
  double false_alarm = 0;       // P(alarm within `window` outcomes | rate p0), exact
  double delay_at_p1 = 0;       // expected outcomes from S = 0 to the alarm at rate p1, exact
  double threshold_nats() const { return static_cast<double>(h) * unit; }
};

// Agreement steps are this many units. The agreement step is then exact and the disagreement
// step, log(p1/p0) / log((1-p0)/(1-p1)) times larger (30 to 100 for useful rates), is rounded by
// under 2 %: the test run is the log-likelihood ratio test up to that rounding, and the chain
// (h states, h ~ 10 nats / unit) stays small enough to design in well under a second.
inline constexpr int64_t kCusumResolution = 8;

// The CUSUM for expected agreement `expected_agreement` (in (0, 1)), tuned to detect a drop of
// `shift` (> 0, agreement falls to expected_agreement - shift), with P(false alarm within
// `window` outcomes) <= `alpha`. Errors: kInvalidArgument naming the value out of range
// (expected_agreement must leave room for the shift: expected_agreement - shift > 0).
Result<CusumDesign> design_cusum(double expected_agreement, double shift, double alpha,
                                 int64_t window = 10000);

// P(the CUSUM alarms within `steps` outcomes from S = 0) when outcomes disagree at rate `p`.
double cusum_alarm_probability(const CusumDesign& d, double p, int64_t steps);
// E[outcomes until the alarm from S = 0] at disagreement rate `p`; +inf when the chain has not
// alarmed with probability 1 - 1e-9 within `max_steps`.
double cusum_expected_delay(const CusumDesign& d, double p, int64_t max_steps = 1000000);

// One running CUSUM. Not thread-safe (the shadow checker serialises updates).
class Cusum {
 public:
  explicit Cusum(const CusumDesign& design) : d_(design) {}
  // Adds one outcome; true on the outcome that makes it fire (once; later outcomes keep the
  // statistic but return false until reset).
  bool update(bool disagree);
  void reset();
  bool fired() const { return fired_; }
  int64_t statistic() const { return s_; }
  double statistic_nats() const { return static_cast<double>(s_) * d_.unit; }
  int64_t outcomes() const { return n_; }
  int64_t fired_at() const { return fired_at_; }  // outcome count when it fired; 0: never
  const CusumDesign& design() const { return d_; }

 private:
  CusumDesign d_;
  int64_t s_ = 0;
  int64_t n_ = 0;
  bool fired_ = false;
  int64_t fired_at_ = 0;
};

}  // namespace frugal::cascade
