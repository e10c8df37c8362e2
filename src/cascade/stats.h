// Model-free statistics for the cascade: the logistic scorer, AUROC, binomial confidence
// intervals, seeded splits and the bootstrap. Pure functions over plain vectors; every random
// choice comes from an explicit seed so results repeat exactly on every platform.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "util/status.h"

namespace frugal::cascade {

// ---------------------------------------------------------------------------------------------
// Random numbers
// ---------------------------------------------------------------------------------------------

// SplitMix64: a tiny generator whose stream is fixed by its seed on every compiler and standard
// library (std::shuffle and std::uniform_*_distribution are not), so splits and bootstrap
// resamples repeat exactly.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next_u64();
  double uniform();                  // in [0, 1), 53 random bits
  uint64_t below(uint64_t bound);    // uniform in [0, bound); bound must be > 0
  double normal();                   // standard normal (Box–Muller)

 private:
  uint64_t state_;
};

// ---------------------------------------------------------------------------------------------
// Logistic scorer
// ---------------------------------------------------------------------------------------------

// Everything needed to score one tier-1 answer, in the shape written to the config's
// [cascade.scorer] table. A feature x_j is standardised as (x_j - means[j]) / scales[j]; the
// probability is sigmoid(bias + sum_j weights[j] * standardised x_j).
struct ScorerParams {
  std::vector<std::string> feature_names;
  double bias = 0;
  std::vector<double> weights;  // on standardised features, one per feature
  std::vector<double> means;    // per feature, from the fitting data
  std::vector<double> scales;   // per feature, > 0 (1 for a feature that was constant)
};

// kInvalidArgument when the vectors' sizes differ, a value is not finite, a scale is not > 0,
// or a feature name is empty or repeated.
Status validate_scorer_params(const ScorerParams& params);

// The [cascade.scorer] table as TOML text (keys bias, weights, feature_names, means, scales),
// numbers written with 17 significant digits so reading them back gives the same doubles.
std::string scorer_params_toml(const ScorerParams& params);

// The same model on raw features: weights w_j / scale_j, bias adjusted by the means, means 0
// and scales 1. Predictions are unchanged (up to rounding).
ScorerParams raw_scale_scorer(const ScorerParams& params);

// The model as the config's current [cascade.scorer] schema (docs/CASCADE.md): raw-scale
// `bias` and a [cascade.scorer.weights] table of feature name = weight. 17 significant digits.
std::string scorer_weights_toml(const ScorerParams& params);

struct LogisticFitOptions {
  // L2 penalty 0.5 * l2 * |w|^2 added to the summed negative log-likelihood, on standardised
  // weights. It keeps weights finite on separable data.
  double l2 = 1.0;
  // A much smaller penalty on the bias: keeps it finite when every label is the same.
  double bias_l2 = 1e-4;
  int max_iterations = 100;
  // Stop when the largest Newton step component falls below this.
  double tolerance = 1e-9;
};

// L2-regularised logistic regression fitted by Newton's method (iteratively reweighted least
// squares) with step halving, on standardised features.
class LogisticModel {
 public:
  LogisticModel() = default;

  // x: [n_items][n_features]; labels: one per item. kInvalidArgument on no items, ragged
  // rows, a non-finite value, names that do not match the feature count, or negative penalties.
  static Result<LogisticModel> fit(const std::vector<std::vector<double>>& x,
                                   const std::vector<bool>& labels,
                                   const std::vector<std::string>& feature_names,
                                   const LogisticFitOptions& options = {});

  // A model from stored parameters; the errors of validate_scorer_params.
  static Result<LogisticModel> from_params(ScorerParams params);

  // P(label = 1 | features). `features` must have num_features() values (a bug otherwise).
  double predict(const std::vector<double>& features) const;
  // The linear score (log-odds) behind predict().
  double log_odds(const std::vector<double>& features) const;

  const ScorerParams& params() const { return params_; }
  size_t num_features() const { return params_.weights.size(); }
  // Newton iterations the fit took, and whether it met the tolerance within max_iterations.
  int iterations() const { return iterations_; }
  bool converged() const { return converged_; }

 private:
  ScorerParams params_;
  int iterations_ = 0;
  bool converged_ = true;
};

// ---------------------------------------------------------------------------------------------
// Ranking and intervals
// ---------------------------------------------------------------------------------------------

// Area under the ROC curve: the probability that a random positive scores above a random
// negative, ties counting one half (the Mann–Whitney U statistic over n_pos * n_neg).
// kInvalidArgument when sizes differ, a score is NaN, or there is no positive or no negative.
Result<double> auroc(const std::vector<double>& scores, const std::vector<bool>& labels);

// One scorer's AUROC on held-out items, for the table beside the learned scorer.
struct ScorerAuroc {
  std::string name;      // "scorer", a feature's name, or "random"
  double auroc = 0.5;
  bool flipped = false;  // a feature scored as its negation (lower value = more likely right)
};

// AUROC on the evaluation items of `model`, then of each feature in `baseline_features` alone
// (its direction chosen on the fit items: negated when that ranks them better), then of
// uniform random scores from `seed`. Rows of fit_x / eval_x hold the model's features in its
// order. kInvalidArgument when a name is not one of the model's features, a row has the wrong
// size, sizes differ, or either split lacks a positive or a negative label.
Result<std::vector<ScorerAuroc>> compare_scorer_with_baselines(
    const LogisticModel& model, const std::vector<std::vector<double>>& fit_x,
    const std::vector<bool>& fit_labels, const std::vector<std::vector<double>>& eval_x,
    const std::vector<bool>& eval_labels, const std::vector<std::string>& baseline_features,
    uint64_t seed);

struct Interval {
  double lo = 0;
  double hi = 1;
};

// z for a two-sided interval of this confidence (1.959964 for 0.95), or for a one-sided bound
// when `one_sided` (1.644854 for 0.95). confidence must be in (0, 1).
double normal_quantile(double p);  // inverse standard normal CDF, p in (0, 1)
double z_for_confidence(double confidence, bool one_sided = false);

// Wilson score interval for a binomial proportion. n == 0 gives [0, 1].
Interval wilson_interval(size_t successes, size_t n, double z = 1.959963984540054);

// Standard normal CDF, Phi(x).
double normal_cdf(double x);

// Holm–Bonferroni step-down adjusted p-values, in the order given: with p sorted ascending,
// adjusted p_(i) = max over j <= i of min(1, (m - j + 1) p_(j)). Rejecting every hypothesis
// whose adjusted p-value is <= alpha keeps the chance of any false rejection <= alpha, however
// the tests depend on each other (Holm 1979). Values must be in [0, 1] (a bug otherwise).
std::vector<double> holm_adjust(const std::vector<double>& p);

// Exact (Clopper–Pearson) interval with coverage at least 1 - alpha. n == 0 gives [0, 1].
Interval clopper_pearson_interval(size_t successes, size_t n, double alpha = 0.05);

// Regularised incomplete beta function I_x(a, b), a, b > 0, x in [0, 1]; continued fraction.
double regularized_incomplete_beta(double x, double a, double b);
// The x with I_x(a, b) = p (bisection to full double precision).
double inverse_regularized_incomplete_beta(double p, double a, double b);

// ---------------------------------------------------------------------------------------------
// Splits and the bootstrap
// ---------------------------------------------------------------------------------------------

struct SplitIndices {
  std::vector<size_t> first;   // ascending
  std::vector<size_t> second;  // ascending
};

// Fold of each item 0..n-1 for k-fold cross-fitting: within each stratum the items are
// shuffled (SplitMix64 from `seed`) and dealt to folds 0, 1, ..., k-1 in turn, so every fold
// keeps the strata's mix and fold sizes differ by at most one per stratum. k >= 2 (a bug
// otherwise); a stratum smaller than k leaves some folds without it.
std::vector<size_t> stratified_folds(const std::vector<std::string>& strata, size_t k,
                                     uint64_t seed);

// Out-of-fold scores: for each fold f, a LogisticModel fitted on the items of every other fold
// predicts the items of fold f, so no item is scored by a model that saw it. x: [n][features],
// folds: one per item, each < k. The errors of LogisticModel::fit (a fold's complement with a
// single label class still fits: the penalty keeps it finite).
Result<std::vector<double>> cross_fit_scores(const std::vector<std::vector<double>>& x,
                                             const std::vector<bool>& labels,
                                             const std::vector<size_t>& folds, size_t k,
                                             const std::vector<std::string>& feature_names,
                                             const LogisticFitOptions& options = {});

// Splits items 0..n-1 so that each stratum (items with equal `strata` values) sends
// round(first_fraction * its size) items to `first`, chosen at random from `seed`. When
// 0 < first_fraction < 1, a stratum of two or more items gives at least one item to each side.
// first_fraction must be in [0, 1] (a bug otherwise).
SplitIndices stratified_split(const std::vector<std::string>& strata, double first_fraction,
                              uint64_t seed);

// `resamples` values of `statistic` over bootstrap resamples of n items (indices drawn with
// replacement; an index may repeat). Deterministic given the seed.
std::vector<double> bootstrap(size_t n, int resamples, uint64_t seed,
                              const std::function<double(const std::vector<size_t>&)>& statistic);

// The q-quantile (q in [0, 1]) of `values`, linear interpolation between order statistics.
// `values` must not be empty.
double sample_quantile(std::vector<double> values, double q);

// Mean and sample standard deviation (n - 1 in the denominator; 0 for fewer than two values).
double mean(const std::vector<double>& values);
double sample_stddev(const std::vector<double>& values);

}  // namespace frugal::cascade
