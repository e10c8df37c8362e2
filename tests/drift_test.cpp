// The drift alarm's CUSUM: its designed false-alarm probability and detection delay (from the
// statistic's Markov chain) against seeded simulation — stationary traffic at the calibrated
// agreement over 10,000 outcomes, and traffic whose agreement has dropped.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "cascade/drift.h"

namespace frugal::cascade {
namespace {

// Outcomes until the alarm (or `limit` + 1 when it does not fire within `limit`).
int64_t run_until_alarm(const CusumDesign& d, double p_disagree, int64_t limit, std::mt19937_64& rng) {
  Cusum c(d);
  std::bernoulli_distribution disagree(p_disagree);
  for (int64_t n = 1; n <= limit; ++n) {
    if (c.update(disagree(rng))) return n;
  }
  return limit + 1;
}

TEST(DriftTest, DesignMeetsTheStatedFalseAlarmRate) {
  auto d = design_cusum(0.95, 0.05, 0.01, 10000);
  ASSERT_TRUE(d.is_ok()) << d.status().to_string();
  EXPECT_NEAR(d->p0, 0.05, 1e-12);
  EXPECT_NEAR(d->p1, 0.10, 1e-12);
  EXPECT_EQ(d->down, kCusumResolution);
  // The disagreement step is log(p1/p0) / unit, rounded: within half a unit.
  EXPECT_NEAR(static_cast<double>(d->up) * d->unit, std::log(2.0), d->unit / 2);
  EXPECT_LE(d->false_alarm, 0.01);
  EXPECT_GT(d->false_alarm, 0.005) << "the threshold is not needlessly high";
  // A lower threshold would not meet the rate (the search is tight to 0.5 % of h).
  CusumDesign lower = *d;
  lower.h = d->h - std::max<int64_t>(2, d->h / 100);
  EXPECT_GT(cusum_alarm_probability(lower, d->p0, 10000), 0.01);
  EXPECT_GT(d->delay_at_p1, 50);
  EXPECT_LT(d->delay_at_p1, 2000);
}

TEST(DriftTest, RefusesRatesItCannotUse) {
  EXPECT_FALSE(design_cusum(1.0, 0.05, 0.01).is_ok());
  EXPECT_FALSE(design_cusum(0.0, 0.05, 0.01).is_ok());
  EXPECT_FALSE(design_cusum(0.04, 0.05, 0.01).is_ok()) << "agreement cannot fall below 0";
  EXPECT_FALSE(design_cusum(0.9, 0.0, 0.01).is_ok());
  EXPECT_FALSE(design_cusum(0.9, 0.05, 0.0).is_ok());
  EXPECT_FALSE(design_cusum(0.9, 0.05, 1.0).is_ok());
}

// Stationary traffic at the predicted agreement: over 10,000 outcomes the alarm fires in about
// false_alarm of the runs — 400 seeded runs, 4 million outcomes.
TEST(DriftTest, StationaryTrafficRaisesNoAlarmBeyondTheStatedRate) {
  for (double expected : {0.97, 0.90}) {
    auto d = design_cusum(expected, 0.05, 0.01, 10000);
    ASSERT_TRUE(d.is_ok());
    std::mt19937_64 rng(20261202);
    const int runs = 400;
    int alarms = 0;
    for (int r = 0; r < runs; ++r) alarms += run_until_alarm(*d, d->p0, 10000, rng) <= 10000;
    // Binomial(400, <= 0.01): mean <= 4, P(>= 12) < 0.001.
    EXPECT_LE(alarms, 11) << "expected agreement " << expected << ": " << alarms
                          << " false alarms in " << runs << " runs of 10,000 outcomes";
  }
}

// The chain's false-alarm probability is the simulated one: with the threshold halved, alarms
// are common enough to measure.
TEST(DriftTest, ChainPredictsTheSimulatedAlarmProbability) {
  auto d = design_cusum(0.95, 0.05, 0.01, 10000);
  ASSERT_TRUE(d.is_ok());
  CusumDesign half = *d;
  half.h = d->h / 2;
  const double predicted = cusum_alarm_probability(half, d->p0, 2000);
  ASSERT_GT(predicted, 0.05);
  ASSERT_LT(predicted, 0.95);
  std::mt19937_64 rng(7);
  const int runs = 3000;
  int alarms = 0;
  for (int r = 0; r < runs; ++r) alarms += run_until_alarm(half, d->p0, 2000, rng) <= 2000;
  const double measured = static_cast<double>(alarms) / runs;
  const double se = std::sqrt(predicted * (1 - predicted) / runs);
  EXPECT_NEAR(measured, predicted, 4 * se) << "predicted " << predicted << ", measured " << measured;
}

// Shifted traffic: the alarm fires after the predicted number of outcomes on average, at the
// designed drop and at a larger one.
TEST(DriftTest, ShiftedTrafficFiresWithinThePredictedDelay) {
  auto d = design_cusum(0.95, 0.05, 0.01, 10000);
  ASSERT_TRUE(d.is_ok());
  std::mt19937_64 rng(11);
  for (double p : {d->p1, d->p0 + 0.10}) {
    const double predicted = cusum_expected_delay(*d, p);
    const int runs = 2000;
    double sum = 0, sum2 = 0;
    for (int r = 0; r < runs; ++r) {
      const double n = static_cast<double>(run_until_alarm(*d, p, 100000, rng));
      sum += n;
      sum2 += n * n;
    }
    const double mean = sum / runs;
    const double sd = std::sqrt(std::max(0.0, sum2 / runs - mean * mean));
    EXPECT_NEAR(mean, predicted, 4 * sd / std::sqrt(runs) + 1)
        << "disagreement " << p << ": predicted " << predicted << ", measured " << mean;
  }
  EXPECT_NEAR(cusum_expected_delay(*d, d->p1), d->delay_at_p1, 1e-6);
  // A drift twice the designed one is caught faster.
  EXPECT_LT(cusum_expected_delay(*d, d->p0 + 0.10), 0.6 * d->delay_at_p1);
}

TEST(DriftTest, FiresOnceAndResets) {
  auto d = design_cusum(0.9, 0.1, 0.01, 10000);
  ASSERT_TRUE(d.is_ok());
  Cusum c(*d);
  int fired = 0;
  for (int i = 0; i < 1000; ++i) fired += c.update(true);
  EXPECT_EQ(fired, 1);
  EXPECT_TRUE(c.fired());
  EXPECT_EQ(c.fired_at(), (d->h + d->up - 1) / d->up);
  c.reset();
  EXPECT_FALSE(c.fired());
  EXPECT_EQ(c.statistic(), 0);
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(c.update(false));
  EXPECT_EQ(c.statistic(), 0) << "agreements never push the statistic below 0";
}

}  // namespace
}  // namespace frugal::cascade
