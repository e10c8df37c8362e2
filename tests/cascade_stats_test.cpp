// Tests for cascade/stats: the logistic scorer, AUROC, binomial intervals, splits, bootstrap.
#include "cascade/stats.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <toml++/toml.h>

#include "cascade/config.h"
#include "cascade/features.h"

namespace frugal::cascade {
namespace {

double sigmoid(double s) { return 1.0 / (1.0 + std::exp(-s)); }

// Synthetic data from a known logistic model with features of different means and scales.
struct Synthetic {
  std::vector<std::vector<double>> x;
  std::vector<bool> y;
  std::vector<double> true_p;
};
Synthetic make_synthetic(size_t n, uint64_t seed, double bias, const std::vector<double>& w,
                         const std::vector<double>& means, const std::vector<double>& sds) {
  SplitMix64 rng(seed);
  Synthetic s;
  for (size_t i = 0; i < n; ++i) {
    std::vector<double> row;
    double logit = bias;
    for (size_t j = 0; j < w.size(); ++j) {
      row.push_back(means[j] + sds[j] * rng.normal());
      logit += w[j] * row.back();
    }
    const double p = sigmoid(logit);
    s.x.push_back(row);
    s.true_p.push_back(p);
    s.y.push_back(rng.uniform() < p);
  }
  return s;
}

TEST(LogisticModel, RecoversKnownWeightsOnRawScale) {
  const std::vector<double> w = {1.5, -2.0, 0.3};
  const Synthetic s = make_synthetic(20000, 7, 0.5, w, {0, 1, 5}, {1, 0.5, 3});
  auto model = LogisticModel::fit(s.x, s.y, {"a", "b", "c"});
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  EXPECT_TRUE(model->converged());
  const ScorerParams& p = model->params();
  // Stored weights act on standardised features; convert back to the raw scale.
  double raw_bias = p.bias;
  for (size_t j = 0; j < w.size(); ++j) {
    const double raw = p.weights[j] / p.scales[j];
    EXPECT_NEAR(raw, w[j], 0.1 * std::fabs(w[j]) + 0.03) << "feature " << j;
    raw_bias -= raw * p.means[j];
  }
  EXPECT_NEAR(raw_bias, 0.5, 0.15);
  // The fitted probabilities track the true ones.
  double max_err = 0;
  for (size_t i = 0; i < 500; ++i) {
    max_err = std::max(max_err, std::fabs(model->predict(s.x[i]) - s.true_p[i]));
  }
  EXPECT_LT(max_err, 0.06);
}

TEST(LogisticModel, ProbabilitiesAreCalibratedInDeciles) {
  const Synthetic fit_data = make_synthetic(8000, 11, -0.3, {1.0, 0.8}, {0, 0}, {1, 1});
  const Synthetic test_data = make_synthetic(8000, 12, -0.3, {1.0, 0.8}, {0, 0}, {1, 1});
  auto model = LogisticModel::fit(fit_data.x, fit_data.y, {"u", "v"});
  ASSERT_TRUE(model.is_ok());
  std::vector<double> sum_p(10, 0), sum_y(10, 0), count(10, 0);
  for (size_t i = 0; i < test_data.x.size(); ++i) {
    const double p = model->predict(test_data.x[i]);
    const int bin = std::min(9, static_cast<int>(p * 10));
    sum_p[bin] += p;
    sum_y[bin] += test_data.y[i] ? 1 : 0;
    count[bin] += 1;
  }
  for (int b = 0; b < 10; ++b) {
    if (count[b] < 200) continue;
    EXPECT_NEAR(sum_p[b] / count[b], sum_y[b] / count[b], 0.05) << "bin " << b;
  }
}

TEST(LogisticModel, SeparableDataKeepsWeightsFinite) {
  const std::vector<std::vector<double>> x = {{-2}, {-1}, {1}, {2}};
  auto model = LogisticModel::fit(x, {false, false, true, true}, {"f"});
  ASSERT_TRUE(model.is_ok());
  EXPECT_TRUE(model->converged());
  EXPECT_TRUE(std::isfinite(model->params().weights[0]));
  EXPECT_LT(model->params().weights[0], 20);
  EXPECT_GT(model->predict({2}), 0.7);
  EXPECT_LT(model->predict({-2}), 0.3);
  // Stronger regularisation pulls predictions towards the base rate.
  LogisticFitOptions strong;
  strong.l2 = 100;
  auto shrunk = LogisticModel::fit(x, {false, false, true, true}, {"f"}, strong);
  ASSERT_TRUE(shrunk.is_ok());
  EXPECT_LT(shrunk->predict({2}), model->predict({2}));
  EXPECT_GT(shrunk->predict({2}), 0.5);
}

TEST(LogisticModel, ConstantFeatureGetsZeroWeightAndUnitScale) {
  const Synthetic s = make_synthetic(2000, 3, 0, {2.0}, {0}, {1});
  std::vector<std::vector<double>> x;
  for (const auto& row : s.x) x.push_back({row[0], 3.0});
  auto model = LogisticModel::fit(x, s.y, {"signal", "constant"});
  ASSERT_TRUE(model.is_ok());
  EXPECT_EQ(model->params().scales[1], 1.0);
  EXPECT_NEAR(model->params().weights[1], 0.0, 1e-9);
  // A different value of the constant feature at prediction time does not matter.
  EXPECT_NEAR(model->predict({0.5, 3.0}), model->predict({0.5, 100.0}), 1e-12);
}

TEST(LogisticModel, OneClassAndTinyDataFitToFiniteBias) {
  auto all_good = LogisticModel::fit({{1}, {2}, {3}}, {true, true, true}, {"f"});
  ASSERT_TRUE(all_good.is_ok());
  EXPECT_TRUE(std::isfinite(all_good->params().bias));
  EXPECT_GT(all_good->predict({2}), 0.9);
  auto one = LogisticModel::fit({{0.5}}, {false}, {"f"});
  ASSERT_TRUE(one.is_ok());
  EXPECT_LT(one->predict({0.5}), 0.1);
  auto no_features = LogisticModel::fit({{}, {}, {}, {}}, {true, false, true, true}, {});
  ASSERT_TRUE(no_features.is_ok());
  EXPECT_NEAR(no_features->predict({}), 0.75, 1e-3);  // the base rate
}

TEST(LogisticModel, BadInputIsAStatus) {
  EXPECT_EQ(LogisticModel::fit({}, {}, {"f"}).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(LogisticModel::fit({{1}, {1, 2}}, {true, false}, {"f"}).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(LogisticModel::fit({{NAN}}, {true}, {"f"}).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(LogisticModel::fit({{1}}, {true, false}, {"f"}).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(LogisticModel::fit({{1, 2}}, {true}, {"f", "f"}).status().code(),
            ErrorCode::kInvalidArgument);  // repeated name
}

TEST(ScorerParams, RoundTripsThroughParamsAndToml) {
  const Synthetic s = make_synthetic(1000, 5, 0.2, {1.0, -0.5}, {3, -1}, {2, 0.1});
  auto model = LogisticModel::fit(s.x, s.y, {"mean_logprob", "len \"tokens\""});
  ASSERT_TRUE(model.is_ok());
  auto copy = LogisticModel::from_params(model->params());
  ASSERT_TRUE(copy.is_ok());
  EXPECT_EQ(copy->predict(s.x[0]), model->predict(s.x[0]));

  const std::string text = scorer_params_toml(model->params());
  toml::table doc = toml::parse(text);
  const toml::table* t = doc["cascade"]["scorer"].as_table();
  ASSERT_NE(t, nullptr) << text;
  ScorerParams read;
  read.bias = (*t)["bias"].value<double>().value();
  for (auto&& v : *(*t)["feature_names"].as_array()) {
    read.feature_names.push_back(*v.value<std::string>());
  }
  for (const char* key : {"weights", "means", "scales"}) {
    std::vector<double>& dst = std::string(key) == "weights" ? read.weights
                               : std::string(key) == "means" ? read.means
                                                              : read.scales;
    for (auto&& v : *(*t)[key].as_array()) {
      ASSERT_TRUE(v.is_floating_point()) << key;
      dst.push_back(*v.value<double>());
    }
  }
  const ScorerParams& p = model->params();
  EXPECT_EQ(read.feature_names, p.feature_names);
  EXPECT_EQ(read.bias, p.bias);
  EXPECT_EQ(read.weights, p.weights);
  EXPECT_EQ(read.means, p.means);
  EXPECT_EQ(read.scales, p.scales);
}

TEST(ScorerParams, RawScaleFormLoadsIntoTheCascadeConfigWithSamePredictions) {
  // Fit on the cascade's real feature names, write the config's [cascade.scorer] schema, read
  // it back with the config parser and score with the cascade's scorer.
  const std::vector<std::string>& names = scorer_feature_names();
  const std::vector<std::string> used = {names[0], names[1], names[2]};
  const Synthetic s = make_synthetic(3000, 6, -0.2, {2.0, 0.5, -0.3}, {-0.6, -3, -1.5},
                                     {0.4, 1.5, 0.8});
  auto model = LogisticModel::fit(s.x, s.y, used);
  ASSERT_TRUE(model.is_ok());
  const ScorerParams raw = raw_scale_scorer(model->params());
  EXPECT_EQ(raw.means, std::vector<double>(3, 0.0));
  auto raw_model = LogisticModel::from_params(raw);
  ASSERT_TRUE(raw_model.is_ok());
  for (size_t i = 0; i < 50; ++i) {
    EXPECT_NEAR(raw_model->predict(s.x[i]), model->predict(s.x[i]), 1e-12);
  }

  const std::string text =
      "[[tier]]\nname = \"small\"\nkind = \"remote\"\nurl = \"http://a\"\nremote_model = \"s\"\n"
      "price_in = 0.1\nprice_out = 0.2\n\n"
      "[[tier]]\nname = \"large\"\nkind = \"remote\"\nurl = \"http://b\"\nremote_model = \"l\"\n"
      "price_in = 1\nprice_out = 2\n\n"
      "[cascade]\nthreshold = 0.4\n\n" +
      scorer_weights_toml(model->params());
  auto config = parse_cascade_config(text, "calibrated.toml", "/tmp");
  ASSERT_TRUE(config.is_ok()) << config.status().to_string() << "\n" << text;
  ASSERT_TRUE(config->scorer.set);
  EXPECT_DOUBLE_EQ(config->scorer.bias, raw.bias);
  ASSERT_EQ(config->scorer.weights.size(), 3u);
  const Scorer scorer = scorer_from_config(config->scorer);
  for (size_t i = 0; i < 50; ++i) {
    std::vector<double> full(names.size(), 0.0);
    for (size_t j = 0; j < 3; ++j) full[j] = s.x[i][j];
    EXPECT_NEAR(scorer(full), model->predict(s.x[i]), 1e-12);
  }
}

TEST(ScorerParams, ValidationNamesTheProblem) {
  ScorerParams p;
  p.feature_names = {"a", "b"};
  p.weights = {1, 2};
  p.means = {0, 0};
  p.scales = {1, 1};
  EXPECT_TRUE(validate_scorer_params(p).is_ok());
  ScorerParams bad = p;
  bad.scales[1] = 0;
  EXPECT_NE(validate_scorer_params(bad).message().find("'b'"), std::string::npos);
  bad = p;
  bad.weights.pop_back();
  EXPECT_EQ(LogisticModel::from_params(bad).status().code(), ErrorCode::kInvalidArgument);
  bad = p;
  bad.bias = INFINITY;
  EXPECT_FALSE(validate_scorer_params(bad).is_ok());
}

TEST(Auroc, ConstructedCases) {
  EXPECT_DOUBLE_EQ(*auroc({0.1, 0.2, 0.8, 0.9}, {false, false, true, true}), 1.0);
  EXPECT_DOUBLE_EQ(*auroc({0.9, 0.8, 0.2, 0.1}, {false, false, true, true}), 0.0);
  EXPECT_DOUBLE_EQ(*auroc({0.5, 0.5, 0.5, 0.5}, {false, true, false, true}), 0.5);
  // One tie between a positive and a negative counts one half: (3 + 0.5) / 4.
  EXPECT_DOUBLE_EQ(*auroc({0.1, 0.5, 0.5, 0.9}, {false, false, true, true}), 0.875);
}

TEST(Auroc, EqualsPairwiseCountOnRandomScoresWithTies) {
  SplitMix64 rng(99);
  std::vector<double> scores;
  std::vector<bool> labels;
  for (int i = 0; i < 300; ++i) {
    const bool y = rng.uniform() < 0.4;
    labels.push_back(y);
    scores.push_back(std::round((rng.uniform() + (y ? 0.3 : 0.0)) * 10) / 10);  // many ties
  }
  double wins = 0, pairs = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    for (size_t j = 0; j < scores.size(); ++j) {
      if (!labels[i] || labels[j]) continue;
      pairs += 1;
      wins += scores[i] > scores[j] ? 1 : scores[i] == scores[j] ? 0.5 : 0;
    }
  }
  auto a = auroc(scores, labels);
  ASSERT_TRUE(a.is_ok());
  EXPECT_NEAR(*a, wins / pairs, 1e-12);
  EXPECT_GT(*a, 0.6);
}

TEST(Auroc, RandomScoresGiveAboutOneHalf) {
  SplitMix64 rng(4);
  std::vector<double> scores;
  std::vector<bool> labels;
  for (int i = 0; i < 20000; ++i) {
    labels.push_back(rng.uniform() < 0.3);
    scores.push_back(rng.uniform());
  }
  EXPECT_NEAR(*auroc(scores, labels), 0.5, 0.02);
}

TEST(Auroc, OneClassOrMismatchIsAStatus) {
  EXPECT_EQ(auroc({0.1, 0.2}, {true, true}).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(auroc({0.1}, {true, false}).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(auroc({NAN, 0.2}, {true, false}).status().code(), ErrorCode::kInvalidArgument);
}

TEST(ScorerComparison, LearnedScorerBeatsSingleFeaturesAndRandom) {
  // Two informative features, one of them pointing the "wrong" way, plus noise.
  auto make = [](uint64_t seed, std::vector<std::vector<double>>* x, std::vector<bool>* y) {
    SplitMix64 rng(seed);
    for (int i = 0; i < 3000; ++i) {
      const double a = rng.normal(), b = rng.normal(), noise = rng.normal();
      x->push_back({a, b, noise});
      y->push_back(rng.uniform() < sigmoid(1.2 * a - 1.2 * b));
    }
  };
  std::vector<std::vector<double>> fit_x, eval_x;
  std::vector<bool> fit_y, eval_y;
  make(1, &fit_x, &fit_y);
  make(2, &eval_x, &eval_y);
  auto model = LogisticModel::fit(fit_x, fit_y, {"up", "down", "noise"});
  ASSERT_TRUE(model.is_ok());
  auto rows = compare_scorer_with_baselines(*model, fit_x, fit_y, eval_x, eval_y,
                                            {"up", "down", "noise"}, 9);
  ASSERT_TRUE(rows.is_ok()) << rows.status().to_string();
  ASSERT_EQ(rows->size(), 5u);
  const auto& r = *rows;
  EXPECT_EQ(r[0].name, "scorer");
  EXPECT_EQ(r[1].name, "up");
  EXPECT_EQ(r[2].name, "down");
  EXPECT_EQ(r[4].name, "random");
  EXPECT_FALSE(r[1].flipped);
  EXPECT_TRUE(r[2].flipped);  // lower "down" means more likely right
  EXPECT_GT(r[2].auroc, 0.6);
  EXPECT_GT(r[0].auroc, r[1].auroc + 0.03);
  EXPECT_GT(r[0].auroc, r[2].auroc + 0.03);
  EXPECT_NEAR(r[3].auroc, 0.5, 0.05);
  EXPECT_NEAR(r[4].auroc, 0.5, 0.05);
  // The learned scorer's row equals AUROC of its predictions.
  std::vector<double> scores;
  for (const auto& row : eval_x) scores.push_back(model->predict(row));
  EXPECT_DOUBLE_EQ(r[0].auroc, *auroc(scores, eval_y));

  EXPECT_EQ(compare_scorer_with_baselines(*model, fit_x, fit_y, eval_x, eval_y, {"length"}, 9)
                .status()
                .code(),
            ErrorCode::kInvalidArgument);
}

TEST(Intervals, NormalQuantiles) {
  EXPECT_NEAR(normal_quantile(0.975), 1.959964, 1e-6);
  EXPECT_NEAR(normal_quantile(0.5), 0.0, 1e-12);
  EXPECT_NEAR(z_for_confidence(0.95), 1.959964, 1e-6);
  EXPECT_NEAR(z_for_confidence(0.95, /*one_sided=*/true), 1.644854, 1e-6);
}

TEST(Intervals, WilsonHandComputed) {
  // (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n) with z = 1.96, n = 10.
  Interval a = wilson_interval(0, 10);
  EXPECT_DOUBLE_EQ(a.lo, 0.0);
  EXPECT_NEAR(a.hi, 0.2775, 1e-4);
  Interval b = wilson_interval(5, 10);
  EXPECT_NEAR(b.lo, 0.2366, 1e-4);
  EXPECT_NEAR(b.hi, 0.7634, 1e-4);
  Interval c = wilson_interval(10, 10);
  EXPECT_NEAR(c.lo, 0.7225, 1e-4);
  EXPECT_NEAR(c.hi, 1.0, 1e-12);
  Interval none = wilson_interval(0, 0);
  EXPECT_EQ(none.lo, 0.0);
  EXPECT_EQ(none.hi, 1.0);
}

TEST(Intervals, ClopperPearsonHandComputed) {
  // 0/10: upper = 1 - 0.025^(1/10); 10/10: lower = 0.025^(1/10); 5/10: the tabled [0.187, 0.813].
  Interval a = clopper_pearson_interval(0, 10);
  EXPECT_EQ(a.lo, 0.0);
  EXPECT_NEAR(a.hi, 1 - std::pow(0.025, 0.1), 1e-9);
  Interval b = clopper_pearson_interval(5, 10);
  EXPECT_NEAR(b.lo, 0.187086, 1e-5);
  EXPECT_NEAR(b.hi, 0.812914, 1e-5);
  Interval c = clopper_pearson_interval(10, 10);
  EXPECT_NEAR(c.lo, std::pow(0.025, 0.1), 1e-9);
  EXPECT_EQ(c.hi, 1.0);
  // Exact intervals are wider than Wilson's.
  Interval w = wilson_interval(37, 120);
  Interval cp = clopper_pearson_interval(37, 120);
  EXPECT_LT(cp.lo, w.lo);
  EXPECT_GT(cp.hi, w.hi);
}

TEST(Intervals, IncompleteBetaClosedForms) {
  for (double x : {0.01, 0.2, 0.5, 0.77, 0.99}) {
    EXPECT_NEAR(regularized_incomplete_beta(x, 1, 1), x, 1e-12);
    EXPECT_NEAR(regularized_incomplete_beta(x, 3, 1), std::pow(x, 3), 1e-12);
    EXPECT_NEAR(regularized_incomplete_beta(x, 1, 4), 1 - std::pow(1 - x, 4), 1e-12);
    // Symmetry: I_x(a, b) = 1 - I_{1-x}(b, a).
    EXPECT_NEAR(regularized_incomplete_beta(x, 2.5, 7),
                1 - regularized_incomplete_beta(1 - x, 7, 2.5), 1e-12);
    const double p = regularized_incomplete_beta(x, 30, 12);
    if (p > 1e-10 && p < 1 - 1e-10) {
      EXPECT_NEAR(inverse_regularized_incomplete_beta(p, 30, 12), x, 1e-9);
    }
  }
  EXPECT_NEAR(regularized_incomplete_beta(0.5, 40, 40), 0.5, 1e-12);
}

TEST(Split, StratifiedSplitKeepsProportionsAndRepeats) {
  std::vector<std::string> strata;
  for (int i = 0; i < 100; ++i) strata.push_back("a");
  for (int i = 0; i < 30; ++i) strata.push_back("b");
  for (int i = 0; i < 2; ++i) strata.push_back("c");
  const SplitIndices s = stratified_split(strata, 0.7, 42);
  std::map<std::string, int> first_count;
  for (size_t i : s.first) first_count[strata[i]]++;
  EXPECT_EQ(first_count["a"], 70);
  EXPECT_EQ(first_count["b"], 21);
  EXPECT_EQ(first_count["c"], 1);  // both sides get one of a pair
  std::set<size_t> all(s.first.begin(), s.first.end());
  for (size_t i : s.second) EXPECT_TRUE(all.insert(i).second) << "index on both sides: " << i;
  EXPECT_EQ(all.size(), strata.size());
  EXPECT_TRUE(std::is_sorted(s.first.begin(), s.first.end()));

  const SplitIndices again = stratified_split(strata, 0.7, 42);
  EXPECT_EQ(again.first, s.first);
  const SplitIndices other = stratified_split(strata, 0.7, 43);
  EXPECT_NE(other.first, s.first);
}

TEST(Bootstrap, DeterministicAndMatchesTheStandardError) {
  SplitMix64 rng(8);
  std::vector<double> values;
  for (int i = 0; i < 400; ++i) values.push_back(rng.normal() * 2 + 1);
  auto stat = [&](const std::vector<size_t>& idx) {
    double s = 0;
    for (size_t i : idx) s += values[i];
    return s / static_cast<double>(idx.size());
  };
  const std::vector<double> a = bootstrap(values.size(), 1000, 17, stat);
  const std::vector<double> b = bootstrap(values.size(), 1000, 17, stat);
  EXPECT_EQ(a, b);
  const double se = sample_stddev(values) / std::sqrt(static_cast<double>(values.size()));
  EXPECT_NEAR(sample_stddev(a), se, 0.15 * se);
  EXPECT_NEAR(mean(a), mean(values), 3 * se / std::sqrt(1000.0) + 1e-3);
}

TEST(SampleQuantile, InterpolatesBetweenOrderStatistics) {
  EXPECT_DOUBLE_EQ(sample_quantile({3, 1, 2, 4}, 0.0), 1);
  EXPECT_DOUBLE_EQ(sample_quantile({3, 1, 2, 4}, 1.0), 4);
  EXPECT_DOUBLE_EQ(sample_quantile({3, 1, 2, 4}, 0.5), 2.5);
  EXPECT_DOUBLE_EQ(sample_quantile({5}, 0.3), 5);
}

TEST(SplitMix64, BelowIsUniformEnough) {
  SplitMix64 rng(1);
  std::vector<int> counts(7, 0);
  for (int i = 0; i < 70000; ++i) counts[rng.below(7)]++;
  for (int c : counts) EXPECT_NEAR(c, 10000, 400);
}


TEST(Holm, AdjustsKnownPValuesInTheirOrder) {
  // Sorted 0.005, 0.01, 0.03, 0.04 get x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04, then the
  // running maximum: 0.02, 0.03, 0.06, 0.06.
  const std::vector<double> adjusted = holm_adjust({0.01, 0.04, 0.03, 0.005});
  ASSERT_EQ(adjusted.size(), 4u);
  EXPECT_NEAR(adjusted[0], 0.03, 1e-12);
  EXPECT_NEAR(adjusted[1], 0.06, 1e-12);
  EXPECT_NEAR(adjusted[2], 0.06, 1e-12);
  EXPECT_NEAR(adjusted[3], 0.02, 1e-12);
  const std::vector<double> capped = holm_adjust({0.5, 0.6});
  EXPECT_DOUBLE_EQ(capped[0], 1.0);
  EXPECT_DOUBLE_EQ(capped[1], 1.0);
  EXPECT_DOUBLE_EQ(holm_adjust({0.2})[0], 0.2);
  EXPECT_TRUE(holm_adjust({}).empty());
}

TEST(CrossFit, EveryItemIsScoredOutOfFoldByAModelThatNeverSawIt) {
  SplitMix64 rng(5);
  std::vector<std::vector<double>> x;
  std::vector<bool> labels;
  std::vector<std::string> strata;
  for (int i = 0; i < 103; ++i) {
    const double f = rng.normal();
    x.push_back({f, rng.normal()});
    labels.push_back(f + 0.5 * rng.normal() > 0);
    strata.push_back(i % 3 == 0 ? "a" : "b");
  }
  const size_t k = 5;
  const std::vector<size_t> folds = stratified_folds(strata, k, 9);
  ASSERT_EQ(folds.size(), x.size());
  // Each stratum is dealt evenly: fold sizes within a stratum differ by at most one.
  for (const char* s : {"a", "b"}) {
    std::vector<int> count(k, 0);
    for (size_t i = 0; i < folds.size(); ++i) count[folds[i]] += strata[i] == s;
    EXPECT_LE(*std::max_element(count.begin(), count.end()) -
                  *std::min_element(count.begin(), count.end()),
              1)
        << s;
  }
  const std::vector<std::string> names = {"f", "noise"};
  auto scores = cross_fit_scores(x, labels, folds, k, names);
  ASSERT_TRUE(scores.is_ok());
  for (size_t f = 0; f < k; ++f) {
    std::vector<std::vector<double>> fit_x;
    std::vector<bool> fit_labels;
    for (size_t i = 0; i < x.size(); ++i) {
      if (folds[i] != f) {
        fit_x.push_back(x[i]);
        fit_labels.push_back(labels[i]);
      }
    }
    auto model = LogisticModel::fit(fit_x, fit_labels, names);
    ASSERT_TRUE(model.is_ok());
    for (size_t i = 0; i < x.size(); ++i) {
      if (folds[i] == f) {
        EXPECT_DOUBLE_EQ((*scores)[i], model->predict(x[i])) << i;
      }
    }
  }
  // A model fitted on everything scores differently: the items were held out.
  auto all = LogisticModel::fit(x, labels, names);
  ASSERT_TRUE(all.is_ok());
  double differ = 0;
  for (size_t i = 0; i < x.size(); ++i) differ += std::abs((*scores)[i] - all->predict(x[i]));
  EXPECT_GT(differ, 1e-3);
  EXPECT_EQ(stratified_folds(strata, k, 9), folds) << "the same seed gives the same folds";
}

}  // namespace
}  // namespace frugal::cascade
