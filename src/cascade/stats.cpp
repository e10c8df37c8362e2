// The cascade's statistics: logistic scorer (Newton/IRLS), AUROC, binomial intervals, splits,
// bootstrap. Numerical references: the incomplete beta continued fraction is the classical one
// (Abramowitz & Stegun 26.5.8), evaluated with the modified Lentz method.
#include "cascade/stats.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <numeric>
#include <set>
#include <sstream>

namespace frugal::cascade {

// ---------------------------------------------------------------------------------------------
// SplitMix64
// ---------------------------------------------------------------------------------------------

uint64_t SplitMix64::next_u64() {
  state_ += 0x9E3779B97F4A7C15ULL;
  uint64_t z = state_;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

double SplitMix64::uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

uint64_t SplitMix64::below(uint64_t bound) {
  CHECK(bound > 0, "SplitMix64::below(0)");
  // Reject the few values that would make the modulo favour small results.
  const uint64_t reject_under = (0 - bound) % bound;
  for (;;) {
    uint64_t r = next_u64();
    if (r >= reject_under) return r % bound;
  }
}

double SplitMix64::normal() {
  const double u1 = 1.0 - uniform();  // (0, 1]: log is finite
  const double u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

// ---------------------------------------------------------------------------------------------
// Logistic scorer
// ---------------------------------------------------------------------------------------------

namespace {

double sigmoid(double s) {
  if (s >= 0) return 1.0 / (1.0 + std::exp(-s));
  const double e = std::exp(s);
  return e / (1.0 + e);
}

// log(1 + e^s) without overflow.
double softplus(double s) { return s > 0 ? s + std::log1p(std::exp(-s)) : std::log1p(std::exp(s)); }

// Solves a x = b for symmetric positive definite a ([n][n], row-major) by Cholesky. Returns
// false when a is not positive definite.
bool cholesky_solve(std::vector<double> a, std::vector<double> b, size_t n,
                    std::vector<double>* x) {
  for (size_t j = 0; j < n; ++j) {
    double d = a[j * n + j];
    for (size_t k = 0; k < j; ++k) d -= a[j * n + k] * a[j * n + k];
    if (!(d > 0)) return false;
    const double l_jj = std::sqrt(d);
    a[j * n + j] = l_jj;
    for (size_t i = j + 1; i < n; ++i) {
      double s = a[i * n + j];
      for (size_t k = 0; k < j; ++k) s -= a[i * n + k] * a[j * n + k];
      a[i * n + j] = s / l_jj;
    }
  }
  // L y = b, then L^T x = y.
  for (size_t i = 0; i < n; ++i) {
    double s = b[i];
    for (size_t k = 0; k < i; ++k) s -= a[i * n + k] * b[k];
    b[i] = s / a[i * n + i];
  }
  for (size_t i = n; i-- > 0;) {
    double s = b[i];
    for (size_t k = i + 1; k < n; ++k) s -= a[k * n + i] * b[k];
    b[i] = s / a[i * n + i];
  }
  *x = std::move(b);
  return true;
}

std::string toml_number(double v) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  std::string s = buf;
  // TOML reads "1" as an integer; keep every value a float.
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

std::string toml_string(const std::string& v) {
  std::string out = "\"";
  for (char c : v) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

template <typename T, typename F>
std::string toml_array(const std::vector<T>& values, F format) {
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ", ";
    out += format(values[i]);
  }
  return out + "]";
}

}  // namespace

Status validate_scorer_params(const ScorerParams& p) {
  const size_t d = p.feature_names.size();
  if (p.weights.size() != d || p.means.size() != d || p.scales.size() != d) {
    return invalid_argument("scorer: feature_names, weights, means and scales must have the same "
                            "length (got " + std::to_string(d) + ", " +
                            std::to_string(p.weights.size()) + ", " +
                            std::to_string(p.means.size()) + ", " +
                            std::to_string(p.scales.size()) + ")");
  }
  if (!std::isfinite(p.bias)) return invalid_argument("scorer: bias is not a finite number");
  std::set<std::string> seen;
  for (size_t j = 0; j < d; ++j) {
    const std::string& name = p.feature_names[j];
    if (name.empty()) {
      return invalid_argument("scorer: feature " + std::to_string(j) + " has no name");
    }
    if (!seen.insert(name).second) {
      return invalid_argument("scorer: feature '" + name + "' appears twice");
    }
    if (!std::isfinite(p.weights[j]) || !std::isfinite(p.means[j])) {
      return invalid_argument("scorer: weight or mean of feature '" + name + "' is not finite");
    }
    if (!(p.scales[j] > 0) || !std::isfinite(p.scales[j])) {
      return invalid_argument("scorer: scale of feature '" + name +
                              "' must be a finite number > 0");
    }
  }
  return Status::ok();
}

std::string scorer_params_toml(const ScorerParams& p) {
  std::ostringstream os;
  os << "[cascade.scorer]\n";
  os << "feature_names = " << toml_array(p.feature_names, toml_string) << "\n";
  os << "bias = " << toml_number(p.bias) << "\n";
  os << "weights = " << toml_array(p.weights, toml_number) << "\n";
  os << "means = " << toml_array(p.means, toml_number) << "\n";
  os << "scales = " << toml_array(p.scales, toml_number) << "\n";
  return os.str();
}

ScorerParams raw_scale_scorer(const ScorerParams& params) {
  ScorerParams raw = params;
  for (size_t j = 0; j < params.weights.size(); ++j) {
    raw.weights[j] = params.weights[j] / params.scales[j];
    raw.bias -= raw.weights[j] * params.means[j];
    raw.means[j] = 0;
    raw.scales[j] = 1;
  }
  return raw;
}

std::string scorer_weights_toml(const ScorerParams& params) {
  const ScorerParams raw = raw_scale_scorer(params);
  std::ostringstream os;
  os << "[cascade.scorer]\n";
  os << "bias = " << toml_number(raw.bias) << "\n";
  os << "\n[cascade.scorer.weights]\n";
  for (size_t j = 0; j < raw.weights.size(); ++j) {
    const std::string& name = raw.feature_names[j];
    const bool bare = !name.empty() && name.find_first_not_of(
                                           "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                           "0123456789_-") == std::string::npos;
    os << (bare ? name : toml_string(name)) << " = " << toml_number(raw.weights[j]) << "\n";
  }
  return os.str();
}

Result<LogisticModel> LogisticModel::fit(const std::vector<std::vector<double>>& x,
                                         const std::vector<bool>& labels,
                                         const std::vector<std::string>& feature_names,
                                         const LogisticFitOptions& options) {
  const size_t n = x.size();
  const size_t d = feature_names.size();
  if (n == 0) return invalid_argument("logistic fit: no items");
  if (labels.size() != n) {
    return invalid_argument("logistic fit: " + std::to_string(n) + " feature rows but " +
                            std::to_string(labels.size()) + " labels");
  }
  if (!(options.l2 >= 0) || !(options.bias_l2 >= 0)) {
    return invalid_argument("logistic fit: penalties must be >= 0");
  }
  for (size_t i = 0; i < n; ++i) {
    if (x[i].size() != d) {
      return invalid_argument("logistic fit: item " + std::to_string(i) + " has " +
                              std::to_string(x[i].size()) + " features, expected " +
                              std::to_string(d));
    }
    for (double v : x[i]) {
      if (!std::isfinite(v)) {
        return invalid_argument("logistic fit: item " + std::to_string(i) +
                                " has a feature that is not a finite number");
      }
    }
  }

  LogisticModel model;
  ScorerParams& p = model.params_;
  p.feature_names = feature_names;
  p.means.assign(d, 0.0);
  p.scales.assign(d, 1.0);
  p.weights.assign(d, 0.0);
  for (size_t j = 0; j < d; ++j) {
    double m = 0;
    for (size_t i = 0; i < n; ++i) m += x[i][j];
    m /= static_cast<double>(n);
    double var = 0;
    for (size_t i = 0; i < n; ++i) var += (x[i][j] - m) * (x[i][j] - m);
    const double sd = std::sqrt(var / static_cast<double>(n));
    p.means[j] = m;
    // A constant feature keeps scale 1: its standardised value is 0 and its weight stays 0.
    p.scales[j] = sd > 1e-12 * std::max(1.0, std::fabs(m)) ? sd : 1.0;
  }
  FRUGAL_RETURN_IF_ERROR(validate_scorer_params(p));

  // z: [n][d + 1], column 0 the constant 1 for the bias, then standardised features.
  const size_t k = d + 1;
  std::vector<double> z(n * k);
  for (size_t i = 0; i < n; ++i) {
    z[i * k] = 1.0;
    for (size_t j = 0; j < d; ++j) z[i * k + 1 + j] = (x[i][j] - p.means[j]) / p.scales[j];
  }
  std::vector<double> penalty(k, options.l2);
  penalty[0] = options.bias_l2;

  std::vector<double> theta(k, 0.0);  // [bias, w_0 .. w_{d-1}]
  auto objective = [&](const std::vector<double>& t) {
    double loss = 0;
    for (size_t i = 0; i < n; ++i) {
      double s = 0;
      for (size_t c = 0; c < k; ++c) s += z[i * k + c] * t[c];
      loss += softplus(s) - (labels[i] ? s : 0.0);
    }
    for (size_t c = 0; c < k; ++c) loss += 0.5 * penalty[c] * t[c] * t[c];
    return loss;
  };

  double current = objective(theta);
  model.converged_ = false;
  std::vector<double> grad(k), hess(k * k), step;
  for (int it = 0; it < options.max_iterations; ++it) {
    model.iterations_ = it + 1;
    std::fill(grad.begin(), grad.end(), 0.0);
    std::fill(hess.begin(), hess.end(), 0.0);
    for (size_t i = 0; i < n; ++i) {
      const double* zi = &z[i * k];
      double s = 0;
      for (size_t c = 0; c < k; ++c) s += zi[c] * theta[c];
      const double prob = sigmoid(s);
      const double r = prob - (labels[i] ? 1.0 : 0.0);
      const double w = prob * (1.0 - prob);
      for (size_t a = 0; a < k; ++a) {
        grad[a] += r * zi[a];
        for (size_t b = 0; b <= a; ++b) hess[a * k + b] += w * zi[a] * zi[b];
      }
    }
    for (size_t a = 0; a < k; ++a) {
      grad[a] += penalty[a] * theta[a];
      hess[a * k + a] += penalty[a];
      for (size_t b = 0; b < a; ++b) hess[b * k + a] = hess[a * k + b];
    }
    // Saturated weights with no penalty can make the Hessian singular: add a growing ridge.
    bool solved = false;
    for (double ridge = 0; !solved && ridge < 1e6; ridge = ridge == 0 ? 1e-10 : ridge * 100) {
      std::vector<double> h = hess;
      for (size_t a = 0; a < k; ++a) h[a * k + a] += ridge;
      solved = cholesky_solve(std::move(h), grad, k, &step);
    }
    CHECK(solved, "logistic fit: Hessian not positive definite even with a ridge");

    // Newton step with halving until the objective does not increase.
    double scale = 1.0;
    std::vector<double> next(k);
    double next_obj = current;
    for (int halvings = 0; halvings < 40; ++halvings, scale *= 0.5) {
      for (size_t c = 0; c < k; ++c) next[c] = theta[c] - scale * step[c];
      next_obj = objective(next);
      if (next_obj <= current) break;
    }
    double max_change = 0;
    for (size_t c = 0; c < k; ++c) max_change = std::max(max_change, std::fabs(next[c] - theta[c]));
    // No step lowers the objective any more: the optimum is reached to rounding.
    const bool improved = next_obj <= current;
    if (improved) {
      theta = next;
      current = next_obj;
    }
    if (!improved || max_change < options.tolerance) {
      model.converged_ = true;
      break;
    }
  }
  p.bias = theta[0];
  for (size_t j = 0; j < d; ++j) p.weights[j] = theta[1 + j];
  return model;
}

Result<LogisticModel> LogisticModel::from_params(ScorerParams params) {
  FRUGAL_RETURN_IF_ERROR(validate_scorer_params(params));
  LogisticModel model;
  model.params_ = std::move(params);
  return model;
}

double LogisticModel::log_odds(const std::vector<double>& features) const {
  CHECK(features.size() == params_.weights.size(), "scorer got %zu features, expects %zu",
        features.size(), params_.weights.size());
  double s = params_.bias;
  for (size_t j = 0; j < features.size(); ++j) {
    s += params_.weights[j] * (features[j] - params_.means[j]) / params_.scales[j];
  }
  return s;
}

double LogisticModel::predict(const std::vector<double>& features) const {
  return sigmoid(log_odds(features));
}

// ---------------------------------------------------------------------------------------------
// Ranking and intervals
// ---------------------------------------------------------------------------------------------

Result<double> auroc(const std::vector<double>& scores, const std::vector<bool>& labels) {
  const size_t n = scores.size();
  if (labels.size() != n) {
    return invalid_argument("auroc: " + std::to_string(n) + " scores but " +
                            std::to_string(labels.size()) + " labels");
  }
  for (double s : scores) {
    if (std::isnan(s)) return invalid_argument("auroc: a score is NaN");
  }
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  // Sum of positives' ranks, tied scores sharing their mid-rank.
  double rank_sum = 0;
  size_t n_pos = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && scores[order[j]] == scores[order[i]]) ++j;
    const double mid_rank = 0.5 * static_cast<double>(i + 1 + j);  // ranks i+1 .. j
    for (size_t t = i; t < j; ++t) {
      if (labels[order[t]]) {
        rank_sum += mid_rank;
        ++n_pos;
      }
    }
    i = j;
  }
  const size_t n_neg = n - n_pos;
  if (n_pos == 0 || n_neg == 0) {
    return invalid_argument("auroc: needs at least one positive and one negative label (got " +
                            std::to_string(n_pos) + " and " + std::to_string(n_neg) + ")");
  }
  const double np = static_cast<double>(n_pos);
  const double u = rank_sum - np * (np + 1.0) / 2.0;
  return u / (np * static_cast<double>(n_neg));
}

Result<std::vector<ScorerAuroc>> compare_scorer_with_baselines(
    const LogisticModel& model, const std::vector<std::vector<double>>& fit_x,
    const std::vector<bool>& fit_labels, const std::vector<std::vector<double>>& eval_x,
    const std::vector<bool>& eval_labels, const std::vector<std::string>& baseline_features,
    uint64_t seed) {
  const size_t d = model.num_features();
  for (const auto* rows : {&fit_x, &eval_x}) {
    for (const std::vector<double>& row : *rows) {
      if (row.size() != d) {
        return invalid_argument("scorer comparison: a row has " + std::to_string(row.size()) +
                                " features, the scorer expects " + std::to_string(d));
      }
    }
  }
  auto column = [](const std::vector<std::vector<double>>& x, size_t j) {
    std::vector<double> out;
    out.reserve(x.size());
    for (const std::vector<double>& row : x) out.push_back(row[j]);
    return out;
  };
  std::vector<ScorerAuroc> out;
  std::vector<double> scores;
  scores.reserve(eval_x.size());
  for (const std::vector<double>& row : eval_x) scores.push_back(model.predict(row));
  FRUGAL_ASSIGN_OR_RETURN(double learned, auroc(scores, eval_labels));
  out.push_back({"scorer", learned, false});

  const std::vector<std::string>& names = model.params().feature_names;
  for (const std::string& name : baseline_features) {
    const auto it = std::find(names.begin(), names.end(), name);
    if (it == names.end()) {
      return invalid_argument("scorer comparison: no feature named '" + name + "'");
    }
    const size_t j = static_cast<size_t>(it - names.begin());
    FRUGAL_ASSIGN_OR_RETURN(double on_fit, auroc(column(fit_x, j), fit_labels));
    FRUGAL_ASSIGN_OR_RETURN(double on_eval, auroc(column(eval_x, j), eval_labels));
    const bool flip = on_fit < 0.5;
    out.push_back({name, flip ? 1.0 - on_eval : on_eval, flip});
  }

  SplitMix64 rng(seed);
  std::vector<double> random(eval_x.size());
  for (double& r : random) r = rng.uniform();
  FRUGAL_ASSIGN_OR_RETURN(double random_auroc, auroc(random, eval_labels));
  out.push_back({"random", random_auroc, false});
  return out;
}

double normal_quantile(double p) {
  CHECK(p > 0 && p < 1, "normal_quantile(%g): p must be in (0, 1)", p);
  double lo = -40, hi = 40;
  for (int i = 0; i < 200 && hi - lo > 1e-15; ++i) {
    const double mid = 0.5 * (lo + hi);
    const double cdf = 0.5 * std::erfc(-mid / std::sqrt(2.0));
    (cdf < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

double z_for_confidence(double confidence, bool one_sided) {
  CHECK(confidence > 0 && confidence < 1, "confidence %g must be in (0, 1)", confidence);
  return normal_quantile(one_sided ? confidence : 0.5 + 0.5 * confidence);
}

double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

std::vector<double> holm_adjust(const std::vector<double>& p) {
  const size_t m = p.size();
  std::vector<size_t> order(m);
  for (size_t i = 0; i < m; ++i) {
    CHECK(p[i] >= 0 && p[i] <= 1, "holm_adjust: p-value %g outside [0, 1]", p[i]);
    order[i] = i;
  }
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[a] < p[b]; });
  std::vector<double> adjusted(m, 0.0);
  double running = 0;
  for (size_t j = 0; j < m; ++j) {
    running = std::max(running, std::min(1.0, static_cast<double>(m - j) * p[order[j]]));
    adjusted[order[j]] = running;
  }
  return adjusted;
}

Interval wilson_interval(size_t successes, size_t n, double z) {
  CHECK(successes <= n, "wilson_interval: %zu successes of %zu", successes, n);
  if (n == 0) return {0, 1};
  const double nn = static_cast<double>(n);
  const double phat = static_cast<double>(successes) / nn;
  const double z2 = z * z;
  const double denom = 1.0 + z2 / nn;
  const double centre = (phat + z2 / (2 * nn)) / denom;
  const double half = z * std::sqrt(phat * (1 - phat) / nn + z2 / (4 * nn * nn)) / denom;
  return {std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

double regularized_incomplete_beta(double x, double a, double b) {
  CHECK(a > 0 && b > 0, "incomplete beta needs a, b > 0 (got %g, %g)", a, b);
  CHECK(x >= 0 && x <= 1, "incomplete beta needs x in [0, 1] (got %g)", x);
  if (x == 0) return 0;
  if (x == 1) return 1;
  // The continued fraction converges fast for x < (a + 1) / (a + b + 2); use the symmetry
  // I_x(a, b) = 1 - I_{1-x}(b, a) on the other side.
  if (x > (a + 1) / (a + b + 2)) return 1.0 - regularized_incomplete_beta(1.0 - x, b, a);
  const double log_front =
      std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x);
  // 1 + 1/(1 + d1/(1 + d2/(1 + ...))) by modified Lentz; the fraction is f - 1.
  const double tiny = 1e-300;
  double f = 1, c = 1, dd = 0;
  for (int i = 0; i < 1000; ++i) {
    double num;
    if (i == 0) {
      num = 1;
    } else if (i % 2 == 1) {
      const double m = (i - 1) / 2;
      num = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1));
    } else {
      const double m = i / 2;
      num = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m));
    }
    dd = 1 + num * dd;
    if (std::fabs(dd) < tiny) dd = tiny;
    dd = 1 / dd;
    c = 1 + num / c;
    if (std::fabs(c) < tiny) c = tiny;
    const double delta = c * dd;
    f *= delta;
    if (std::fabs(delta - 1) < 1e-16) break;
  }
  return std::exp(log_front) * (f - 1) / a;
}

double inverse_regularized_incomplete_beta(double p, double a, double b) {
  CHECK(p >= 0 && p <= 1, "inverse incomplete beta needs p in [0, 1] (got %g)", p);
  double lo = 0, hi = 1;
  for (int i = 0; i < 200 && hi - lo > 1e-16; ++i) {
    const double mid = 0.5 * (lo + hi);
    (regularized_incomplete_beta(mid, a, b) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

Interval clopper_pearson_interval(size_t successes, size_t n, double alpha) {
  CHECK(successes <= n, "clopper_pearson_interval: %zu successes of %zu", successes, n);
  CHECK(alpha > 0 && alpha < 1, "clopper_pearson_interval: alpha %g not in (0, 1)", alpha);
  if (n == 0) return {0, 1};
  const double k = static_cast<double>(successes);
  const double nn = static_cast<double>(n);
  Interval out;
  out.lo = successes == 0 ? 0.0 : inverse_regularized_incomplete_beta(alpha / 2, k, nn - k + 1);
  out.hi = successes == n ? 1.0 : inverse_regularized_incomplete_beta(1 - alpha / 2, k + 1, nn - k);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Splits and the bootstrap
// ---------------------------------------------------------------------------------------------

SplitIndices stratified_split(const std::vector<std::string>& strata, double first_fraction,
                              uint64_t seed) {
  CHECK(first_fraction >= 0 && first_fraction <= 1, "split fraction %g not in [0, 1]",
        first_fraction);
  std::map<std::string, std::vector<size_t>> groups;  // ordered: the same draws every run
  for (size_t i = 0; i < strata.size(); ++i) groups[strata[i]].push_back(i);
  SplitMix64 rng(seed);
  SplitIndices out;
  for (auto& [name, items] : groups) {
    // Fisher–Yates shuffle.
    for (size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[rng.below(i)]);
    const size_t size = items.size();
    size_t take = static_cast<size_t>(std::llround(first_fraction * static_cast<double>(size)));
    if (first_fraction > 0 && first_fraction < 1 && size >= 2) {
      take = std::clamp<size_t>(take, 1, size - 1);
    }
    out.first.insert(out.first.end(), items.begin(), items.begin() + take);
    out.second.insert(out.second.end(), items.begin() + take, items.end());
  }
  std::sort(out.first.begin(), out.first.end());
  std::sort(out.second.begin(), out.second.end());
  return out;
}

std::vector<size_t> stratified_folds(const std::vector<std::string>& strata, size_t k,
                                     uint64_t seed) {
  CHECK(k >= 2, "stratified_folds needs k >= 2 (got %zu)", k);
  std::map<std::string, std::vector<size_t>> groups;  // ordered: the same draws every run
  for (size_t i = 0; i < strata.size(); ++i) groups[strata[i]].push_back(i);
  SplitMix64 rng(seed);
  std::vector<size_t> fold(strata.size(), 0);
  size_t start = 0;  // rotates, so small strata do not all fill fold 0 first
  for (auto& [name, items] : groups) {
    for (size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[rng.below(i)]);
    for (size_t j = 0; j < items.size(); ++j) fold[items[j]] = (start + j) % k;
    start = (start + items.size()) % k;
  }
  return fold;
}

Result<std::vector<double>> cross_fit_scores(const std::vector<std::vector<double>>& x,
                                             const std::vector<bool>& labels,
                                             const std::vector<size_t>& folds, size_t k,
                                             const std::vector<std::string>& feature_names,
                                             const LogisticFitOptions& options) {
  CHECK(x.size() == labels.size() && x.size() == folds.size(),
        "cross_fit_scores: %zu rows, %zu labels, %zu folds", x.size(), labels.size(),
        folds.size());
  std::vector<double> scores(x.size(), 0.0);
  for (size_t f = 0; f < k; ++f) {
    std::vector<std::vector<double>> fit_x;
    std::vector<bool> fit_labels;
    for (size_t i = 0; i < x.size(); ++i) {
      CHECK(folds[i] < k, "cross_fit_scores: item %zu in fold %zu of %zu", i, folds[i], k);
      if (folds[i] == f) continue;
      fit_x.push_back(x[i]);
      fit_labels.push_back(labels[i]);
    }
    if (fit_x.size() == x.size()) continue;  // fold f is empty
    auto model = LogisticModel::fit(fit_x, fit_labels, feature_names, options);
    if (!model.is_ok()) return model.status();
    for (size_t i = 0; i < x.size(); ++i) {
      if (folds[i] == f) scores[i] = model->predict(x[i]);
    }
  }
  return scores;
}

std::vector<double> bootstrap(size_t n, int resamples, uint64_t seed,
                              const std::function<double(const std::vector<size_t>&)>& statistic) {
  SplitMix64 rng(seed);
  std::vector<double> out;
  out.reserve(std::max(resamples, 0));
  std::vector<size_t> idx(n);
  for (int r = 0; r < resamples; ++r) {
    for (size_t i = 0; i < n; ++i) idx[i] = n == 0 ? 0 : rng.below(n);
    out.push_back(statistic(idx));
  }
  return out;
}

double sample_quantile(std::vector<double> values, double q) {
  CHECK(!values.empty(), "sample_quantile of no values");
  CHECK(q >= 0 && q <= 1, "quantile %g not in [0, 1]", q);
  std::sort(values.begin(), values.end());
  const double h = q * static_cast<double>(values.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(h));
  const size_t hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (h - static_cast<double>(lo)) * (values[hi] - values[lo]);
}

double mean(const std::vector<double>& values) {
  if (values.empty()) return 0;
  return std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
}

double sample_stddev(const std::vector<double>& values) {
  if (values.size() < 2) return 0;
  const double m = mean(values);
  double ss = 0;
  for (double v : values) ss += (v - m) * (v - m);
  return std::sqrt(ss / static_cast<double>(values.size() - 1));
}

}  // namespace frugal::cascade
