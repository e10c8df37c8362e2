// Threshold calibration and per-slice evaluation of the cascade from per-item tier outcomes.
// The bound is a one-sided lower confidence bound on mean(c_i - target · t_i); see
// docs/CALIBRATION.md for why this, and not a ratio of two intervals, is the test.
#include "cascade/calibration.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>
#include <string_view>
#include <utility>

namespace frugal::cascade {

const char* bound_method_name(BoundMethod method) {
  switch (method) {
    case BoundMethod::kNormal: return "normal";
    case BoundMethod::kBootstrap: return "bootstrap";
  }
  return "?";
}

const char* search_rule_name(SearchRule rule) {
  switch (rule) {
    case SearchRule::kSimultaneous: return "simultaneous";
    case SearchRule::kPerPoint: return "per-point";
  }
  return "?";
}

namespace {

// The range d can take under a policy: [-target, 1] while any item is kept (a kept item can
// be wrong where the top tier is right), and between 0 and 1 - target when all are escalated
// (d is then (1 - target) t, never below).
struct DRange {
  double lo, hi;
};
DRange d_range(bool any_kept, double target) {
  if (any_kept) return {-target, 1.0};
  return {std::min(0.0, 1.0 - target), std::max(0.0, 1.0 - target)};
}

// Normal-approximation lower bound from the sums of d and d^2 over n items, with z^2 / 2
// pseudo-items at each end of d's range (the Agresti-Coull adjustment, for a mean of a
// bounded variable): a sample that happens to show no adverse outcome (zero variance, e.g.
// every item right) does not prove there is none; with the pseudo-items such a sample gives
// the rule-of-three-like width z^2 / n instead of certainty. For a 0/1 variable this is the
// Agresti-Coull interval (close to Wilson's); at hundreds of items it moves the bound little.
double normal_lower_bound(double sum_d, double sum_d2, size_t n, double z, DRange range) {
  const double k = z * z / 2;
  const double nn = static_cast<double>(n) + 2 * k;
  const double sum = sum_d + k * (range.lo + range.hi);
  const double sum2 = sum_d2 + k * (range.lo * range.lo + range.hi * range.hi);
  const double m = sum / nn;
  const double var = std::max(0.0, (sum2 - nn * m * m) / (nn - 1));
  return m - z * std::sqrt(var / nn);
}

// The one-sided p-value of "the mean of d is below 0" from the same adjusted moments as
// normal_lower_bound: lower bound >= 0 at confidence c exactly when this is <= 1 - c.
double normal_p_value(double sum_d, double sum_d2, size_t n, double z, DRange range) {
  const double k = z * z / 2;
  const double nn = static_cast<double>(n) + 2 * k;
  const double m = (sum_d + k * (range.lo + range.hi)) / nn;
  const double sum2 = sum_d2 + k * (range.lo * range.lo + range.hi * range.hi);
  const double se = std::sqrt(std::max(0.0, (sum2 - nn * m * m) / (nn - 1)) / nn);
  if (!(se > 0)) return m >= 0 ? 0.0 : 1.0;
  return 1.0 - normal_cdf(m / se);
}

// The one-sided p-value of "the slice's expected loss exceeds margin_points", from the same
// adjusted moments as slice_loss_upper_points (its bound at confidence c is <= the margin
// exactly when this is <= 1 - c).
double slice_loss_p_value(double sum_loss, double disagree, double n, bool any_kept, double z,
                          double margin_points) {
  const double k = any_kept ? z * z / 2 : 0.0;
  const double nn = n + 2 * k;
  const double mean = sum_loss / nn;
  const double se = std::sqrt(std::max(0.0, (disagree + 2 * k) / nn - mean * mean) / nn);
  const double room = margin_points / 100.0 - mean;
  if (!(se > 0)) return room >= -1e-11 ? 0.0 : 1.0;
  return 1.0 - normal_cdf(room / se);
}

// P(X - Y > c) for independent X ~ Poisson(mu_lost), Y ~ Poisson(mu_won), c >= 0: the chance
// that a slice's lost items outnumber its won items by more than c.
double poisson_difference_tail(double mu_lost, double mu_won, long c) {
  if (!(mu_lost > 0)) return 0.0;
  // Y's support until its remaining mass is negligible.
  const long y_max = static_cast<long>(mu_won + 12 * std::sqrt(mu_won) + 12);
  std::vector<double> cdf_x(static_cast<size_t>(c + y_max + 2));
  double pmf = std::exp(-mu_lost), acc = 0;
  for (size_t x = 0; x < cdf_x.size(); ++x) {
    acc += pmf;
    cdf_x[x] = acc;
    pmf *= mu_lost / static_cast<double>(x + 1);
  }
  double tail = 0, pmf_y = std::exp(-mu_won);
  for (long y = 0; y <= y_max; ++y) {
    tail += pmf_y * std::max(0.0, 1.0 - cdf_x[static_cast<size_t>(c + y)]);  // P(X >= c+1+y)
    pmf_y *= mu_won / static_cast<double>(y + 1);
  }
  return std::min(1.0, tail);
}

// The estimated chance that a slice with `share` of the items, losing items at rate `lost` and
// winning at rate `won` (per slice item), shows a loss of more than margin_points on a fresh
// sample of `check_items` items: its count there is Binomial(check_items, share).
double slice_check_fail(double share, double lost, double won, double check_items,
                        double margin_points) {
  const long n = static_cast<long>(std::llround(check_items));
  const double mean = n * share, sd = std::sqrt(n * share * (1 - share));
  const long lo = std::max(1L, static_cast<long>(mean - 7 * sd - 1));
  const long hi = std::min(n, static_cast<long>(mean + 7 * sd + 1));
  double fail = 0;
  for (long m = lo; m <= hi; ++m) {
    const double log_pmf = std::lgamma(n + 1.0) - std::lgamma(m + 1.0) - std::lgamma(n - m + 1.0) +
                           m * std::log(share) + (n - m) * std::log1p(-share);
    const long c = static_cast<long>(std::floor(margin_points * m / 100.0 + 1e-9));
    fail += std::exp(log_pmf) * poisson_difference_tail(m * lost, m * won, c);
  }
  return std::min(1.0, fail);
}

// The upper bound, in points, of a slice's mean loss t_i - c_i (each in {-1, 0, 1}) over n
// items of which `disagree` have a nonzero loss, with the same pseudo-items at -1 and +1 when
// any of the slice's items is kept (an escalated item's loss is exactly 0).
double slice_loss_upper_points(double sum_loss, double disagree, double n, bool any_kept,
                               double z) {
  const double k = any_kept ? z * z / 2 : 0.0;
  const double nn = n + 2 * k;
  const double mean = sum_loss / nn;
  const double var = std::max(0.0, (disagree + 2 * k) / nn - mean * mean);
  return 100.0 * (mean + z * std::sqrt(var / nn));
}

// Per-slice tallies of the cascade at the current threshold: items, top tier right, cascade
// right. Starts with every item kept (the cascade's answer is tier 1's).
struct SliceTally {
  std::vector<std::string> names;
  std::vector<size_t> of_item;  // slice index of each item
  // Per slice: items, top-tier right, cascade right, and items where the cascade's answer
  // (tier 1's while kept) and the top tier's disagree on being right: the sum of squared
  // per-item losses top_correct − cascade_correct, each in {−1, 0, 1}.
  std::vector<double> n, top, right, disagree;
  std::vector<double> kept;  // per slice: items whose answer is still tier 1's

  explicit SliceTally(const std::vector<CalibrationItem>& items) {
    std::map<std::string, size_t> index;
    for (const CalibrationItem& it : items) index.emplace(it.slice, index.size());
    names.resize(index.size());
    for (const auto& [name, k] : index) names[k] = name;
    n.assign(names.size(), 0.0);
    top.assign(names.size(), 0.0);
    right.assign(names.size(), 0.0);
    disagree.assign(names.size(), 0.0);
    kept.assign(names.size(), 0.0);
    for (const CalibrationItem& it : items) {
      const size_t k = index[it.slice];
      of_item.push_back(k);
      n[k] += 1;
      top[k] += it.top_correct ? 1 : 0;
      right[k] += it.tier1_correct ? 1 : 0;
      disagree[k] += it.tier1_correct != it.top_correct ? 1 : 0;
      kept[k] += 1;
    }
  }
  void escalate(size_t i, const CalibrationItem& it) {
    right[of_item[i]] += (it.top_correct ? 1.0 : 0.0) - (it.tier1_correct ? 1.0 : 0.0);
    disagree[of_item[i]] -= it.tier1_correct != it.top_correct ? 1.0 : 0.0;
    kept[of_item[i]] -= 1;
  }
  // Sets p's worst slice and slice bound, its family p-value and check estimate, then whether
  // p meets the target under options.rule. overall_p: the p-value of the overall claim.
  void judge(CurvePoint* p, const CalibrationOptions& options, double overall_p) const {
    const double z = z_for_confidence(options.confidence, true);
    const bool by_slice = options.slice_margin_points >= 0;
    std::vector<double> family = {overall_p};
    double total = 0;
    for (double v : n) total += v;
    double pass_check = 1;
    p->worst_slice_loss_points = -100.0;
    p->worst_slice_loss_bound_points = -100.0;
    for (size_t k = 0; k < names.size(); ++k) {
      const double mean = (top[k] - right[k]) / n[k];
      const double upper =
          slice_loss_upper_points(top[k] - right[k], disagree[k], n[k], kept[k] > 0, z);
      const double loss = 100.0 * mean;
      if (loss > p->worst_slice_loss_points) {
        p->worst_slice_loss_points = loss;
        p->worst_slice = names[k];
      }
      p->worst_slice_loss_bound_points = std::max(p->worst_slice_loss_bound_points, upper);
      if (!by_slice) continue;
      family.push_back(slice_loss_p_value(top[k] - right[k], disagree[k], n[k], kept[k] > 0, z,
                                          options.slice_margin_points));
      if (options.check_items > 0) {
        // Items kept and lost (tier 1 wrong, top right) and kept and won, from the loss sum
        // (lost - won) and the disagreements (lost + won).
        const double lost = std::max(0.0, (top[k] - right[k] + disagree[k]) / 2);
        const double won = std::max(0.0, (disagree[k] - (top[k] - right[k])) / 2);
        pass_check *= 1.0 - slice_check_fail(n[k] / total, (lost + 0.5) / n[k], won / n[k],
                                             options.check_items, options.slice_margin_points);
      }
    }
    p->check_fail_estimate = options.check_items > 0 && by_slice ? 1.0 - pass_check : 0.0;
    const std::vector<double> adjusted = holm_adjust(family);
    p->family_p = 0;
    for (size_t j = 0; j < adjusted.size(); ++j) {
      if (j == 0 || adjusted[j] > p->family_p) {
        p->family_p = adjusted[j];
        p->binding_claim = j == 0 ? "overall" : names[j - 1];
      }
    }
    if (options.rule == SearchRule::kSimultaneous) {
      p->meets_target = p->family_p <= 1.0 - options.confidence + 1e-12 &&
                        (options.check_items <= 0 || !by_slice ||
                         p->check_fail_estimate <= options.check_risk);
      return;
    }
    const double tested = options.slice_margin_bound ? p->worst_slice_loss_bound_points
                                                     : p->worst_slice_loss_points;
    p->meets_target = p->lower_bound >= 0 &&
                      (options.slice_margin_points < 0 ||
                       tested <= options.slice_margin_points + 1e-9);
  }
};

Status validate_items(const std::vector<CalibrationItem>& items, const char* what) {
  if (items.empty()) return invalid_argument(std::string(what) + ": no items");
  for (size_t i = 0; i < items.size(); ++i) {
    const CalibrationItem& it = items[i];
    if (!(it.score >= 0 && it.score <= 1)) {
      return invalid_argument(std::string(what) + ": item " + std::to_string(i) +
                              " has score " + std::to_string(it.score) + ", outside [0, 1]");
    }
    if (!(it.tier1_cost >= 0) || !(it.top_cost >= 0) || !std::isfinite(it.tier1_cost) ||
        !std::isfinite(it.top_cost)) {
      return invalid_argument(std::string(what) + ": item " + std::to_string(i) +
                              " has a negative or non-finite cost");
    }
  }
  return Status::ok();
}

Status validate_options(const CalibrationOptions& o) {
  if (!(o.target > 0) || !std::isfinite(o.target)) {
    return invalid_argument("calibrate: target " + std::to_string(o.target) +
                            " must be a number > 0 (a fraction of the top tier's accuracy)");
  }
  if (!(o.confidence > 0 && o.confidence < 1)) {
    return invalid_argument("calibrate: confidence must be in (0, 1)");
  }
  if (!(o.check_items >= 0) || !std::isfinite(o.check_items)) {
    return invalid_argument("calibrate: the check sample's size must be >= 0 items");
  }
  if (!(o.check_risk > 0 && o.check_risk < 1)) {
    return invalid_argument("calibrate: the check risk must be in (0, 1)");
  }
  if (o.bound == BoundMethod::kBootstrap && o.bootstrap_resamples < 1) {
    return invalid_argument("calibrate: bootstrap needs at least one resample");
  }
  return Status::ok();
}

std::string format(const char* fmt, double a, double b = 0, double c = 0, double d = 0,
                   double e = 0, double f = 0) {
  char buf[512];
  std::snprintf(buf, sizeof(buf), fmt, a, b, c, d, e, f);
  return buf;
}

double top_accuracy_of(const std::vector<CalibrationItem>& items) {
  size_t k = 0;
  for (const CalibrationItem& it : items) k += it.top_correct ? 1 : 0;
  return static_cast<double>(k) / static_cast<double>(items.size());
}

// d_i for an item kept at tier 1, and for one escalated.
double d_kept(const CalibrationItem& it, double target) {
  return (it.tier1_correct ? 1.0 : 0.0) - target * (it.top_correct ? 1.0 : 0.0);
}
double d_escalated(const CalibrationItem& it, double target) {
  return (it.top_correct ? 1.0 : 0.0) * (1.0 - target);
}


}  // namespace

CurvePoint evaluate_threshold(const std::vector<CalibrationItem>& items, double threshold,
                              const CalibrationOptions& options) {
  CHECK(!items.empty(), "evaluate_threshold with no items");
  const double n = static_cast<double>(items.size());
  const double top_acc = top_accuracy_of(items);
  CHECK(top_acc > 0, "evaluate_threshold: top tier right on no item");
  double top_cost = 0, cost = 0, correct = 0, sum_d = 0, sum_d2 = 0;
  size_t escalated = 0;
  std::vector<double> d(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const CalibrationItem& it = items[i];
    const bool esc = cascade_escalates(it.score, threshold);
    top_cost += it.top_cost;
    cost += it.tier1_cost + (esc ? it.top_cost : 0.0);
    correct += (esc ? it.top_correct : it.tier1_correct) ? 1.0 : 0.0;
    escalated += esc ? 1 : 0;
    d[i] = esc ? d_escalated(it, options.target) : d_kept(it, options.target);
    sum_d += d[i];
    sum_d2 += d[i] * d[i];
  }
  CurvePoint p;
  p.threshold = threshold;
  p.escalated = escalated;
  p.escalation_rate = static_cast<double>(escalated) / n;
  p.accuracy = correct / n;
  p.relative_quality = p.accuracy / top_acc;
  p.margin = sum_d / n;
  const double z = z_for_confidence(options.confidence, true);
  const DRange range = d_range(escalated < items.size(), options.target);
  p.lower_bound = normal_lower_bound(sum_d, sum_d2, items.size(), z, range);
  const double overall_p = normal_p_value(sum_d, sum_d2, items.size(), z, range);
  if (options.bound == BoundMethod::kBootstrap) {
    auto resample_mean = [&](const std::vector<size_t>& idx) {
      double s = 0;
      for (size_t i : idx) s += d[i];
      return s / n;
    };
    std::vector<double> means =
        bootstrap(items.size(), options.bootstrap_resamples, options.seed, resample_mean);
    // Resamples cannot show an outcome the sample lacks: never above the adjusted bound.
    p.lower_bound =
        std::min(p.lower_bound, sample_quantile(std::move(means), 1.0 - options.confidence));
  }
  p.cost_per_item = cost / n;
  p.relative_cost = top_cost > 0 ? cost / top_cost : 0.0;
  SliceTally slices(items);
  for (size_t i = 0; i < items.size(); ++i) {
    if (cascade_escalates(items[i].score, threshold)) slices.escalate(i, items[i]);
  }
  slices.judge(&p, options, overall_p);
  return p;
}

Result<CalibrationResult> calibrate_threshold(const std::vector<CalibrationItem>& items,
                                              const CalibrationOptions& options) {
  FRUGAL_RETURN_IF_ERROR(validate_items(items, "calibrate"));
  FRUGAL_RETURN_IF_ERROR(validate_options(options));
  const size_t n = items.size();
  const double nn = static_cast<double>(n);
  const double target = options.target;

  CalibrationResult r;
  r.items = n;
  r.target = target;
  r.confidence = options.confidence;
  r.bound = options.bound;
  double tier1_correct = 0, top_correct = 0, tier1_cost = 0, top_cost = 0;
  for (const CalibrationItem& it : items) {
    tier1_correct += it.tier1_correct ? 1 : 0;
    top_correct += it.top_correct ? 1 : 0;
    tier1_cost += it.tier1_cost;
    top_cost += it.top_cost;
  }
  if (top_correct == 0) {
    return invalid_argument("calibrate: the top tier is right on none of the " +
                            std::to_string(n) +
                            " items, so quality relative to it is undefined; check the "
                            "references and the top tier");
  }
  r.tier1_accuracy = tier1_correct / nn;
  r.top_accuracy = top_correct / nn;
  r.tier1_cost_per_item = tier1_cost / nn;
  r.top_cost_per_item = top_cost / nn;

  // Candidate thresholds: 0 (keep everything), every distinct score, 1.
  std::vector<double> thresholds = {0.0, 1.0};
  for (const CalibrationItem& it : items) thresholds.push_back(it.score);
  std::sort(thresholds.begin(), thresholds.end());
  thresholds.erase(std::unique(thresholds.begin(), thresholds.end()), thresholds.end());

  // Sweep thresholds upwards; an item switches from kept to escalated once threshold > score.
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return items[a].score < items[b].score; });

  double sum_d = 0, sum_d2 = 0, correct = 0, cost = tier1_cost;
  for (const CalibrationItem& it : items) {
    const double d = d_kept(it, target);
    sum_d += d;
    sum_d2 += d * d;
    correct += it.tier1_correct ? 1 : 0;
  }

  SliceTally slices(items);  // for the slice margin and each point's worst slice

  // Bootstrap state: multiplicity[i * R + r] is how often item i appears in resample r, and
  // resample_sum[r] the sum of d over resample r at the current threshold.
  const bool use_bootstrap = options.bound == BoundMethod::kBootstrap;
  const size_t resamples = use_bootstrap ? static_cast<size_t>(options.bootstrap_resamples) : 0;
  std::vector<uint32_t> multiplicity(use_bootstrap ? n * resamples : 0, 0);
  std::vector<double> resample_sum(resamples, 0.0);
  if (use_bootstrap) {
    SplitMix64 rng(options.seed);
    for (size_t rs = 0; rs < resamples; ++rs) {
      for (size_t draw = 0; draw < n; ++draw) multiplicity[rng.below(n) * resamples + rs] += 1;
    }
    for (size_t i = 0; i < n; ++i) {
      const double d = d_kept(items[i], target);
      for (size_t rs = 0; rs < resamples; ++rs) {
        resample_sum[rs] += multiplicity[i * resamples + rs] * d;
      }
    }
  }
  const double z = z_for_confidence(options.confidence, true);
  // The lower bound is the (1 - confidence) quantile of resample means.
  std::vector<double> scratch(resamples);

  size_t next = 0;  // items order[0 .. next) are escalated
  r.curve.reserve(thresholds.size());
  for (double threshold : thresholds) {
    while (next < n && cascade_escalates(items[order[next]].score, threshold)) {
      const size_t i = order[next++];
      const CalibrationItem& it = items[i];
      const double before = d_kept(it, target), after = d_escalated(it, target);
      sum_d += after - before;
      sum_d2 += after * after - before * before;
      correct += (it.top_correct ? 1.0 : 0.0) - (it.tier1_correct ? 1.0 : 0.0);
      slices.escalate(i, it);
      cost += it.top_cost;
      for (size_t rs = 0; rs < resamples; ++rs) {
        resample_sum[rs] += multiplicity[i * resamples + rs] * (after - before);
      }
    }
    CurvePoint p;
    p.threshold = threshold;
    p.escalated = next;
    p.escalation_rate = static_cast<double>(next) / nn;
    p.accuracy = correct / nn;
    p.relative_quality = p.accuracy / r.top_accuracy;
    p.margin = sum_d / nn;
    p.lower_bound = normal_lower_bound(sum_d, sum_d2, n, z, d_range(next < n, target));
    const double overall_p = normal_p_value(sum_d, sum_d2, n, z, d_range(next < n, target));
    if (use_bootstrap) {
      for (size_t rs = 0; rs < resamples; ++rs) scratch[rs] = resample_sum[rs] / nn;
      p.lower_bound = std::min(p.lower_bound, sample_quantile(scratch, 1.0 - options.confidence));
    }
    p.cost_per_item = cost / nn;
    p.relative_cost = top_cost > 0 ? cost / top_cost : 0.0;
    slices.judge(&p, options, overall_p);
    r.curve.push_back(p);
  }

  r.rule = options.rule;
  r.family_size = 1 + (options.slice_margin_points >= 0 ? slices.names.size() : 0);
  size_t best_any = 0;
  bool found = false;
  size_t best_ok = 0;
  if (options.rule == SearchRule::kSimultaneous) {
    // Fixed sequence: from threshold 1 down, the last point before the first that fails.
    for (size_t k = r.curve.size(); k-- > 0;) {
      if (!r.curve[k].meets_target) break;
      best_ok = k;
      found = true;
    }
    for (size_t k = 0; k < r.curve.size(); ++k) {
      if (r.curve[k].family_p < r.curve[best_any].family_p) best_any = k;
    }
  }
  // Per point: the cheapest point meeting the target; ties go to the higher lower bound.
  for (size_t k = 0; options.rule == SearchRule::kPerPoint && k < r.curve.size(); ++k) {
    const CurvePoint& p = r.curve[k];
    if (p.lower_bound > r.curve[best_any].lower_bound) best_any = k;
    if (!p.meets_target) continue;
    const CurvePoint& b = r.curve[best_ok];
    if (!found || p.cost_per_item < b.cost_per_item ||
        (p.cost_per_item == b.cost_per_item && p.lower_bound > b.lower_bound)) {
      best_ok = k;
      found = true;
    }
  }
  r.found = found;
  r.chosen = found ? best_ok : best_any;
  const CurvePoint& c = r.curve[r.chosen];
  const std::string conf = format("%.0f%%", 100 * options.confidence);
  const std::string tgt = format("%.1f%%", 100 * target);
  const std::string point = format(
      "threshold %.4f: escalates %.1f%% of items, accuracy %.4f = %.2f%% of the top tier's "
      "%.4f, cost %.3f of top-only",
      c.threshold, 100 * c.escalation_rate, c.accuracy, 100 * c.relative_quality,
      r.top_accuracy, c.relative_cost);
  const std::string bound = format("%.4f", c.lower_bound);
  const bool by_slice = options.slice_margin_points >= 0;
  const std::string slice_rule =
      by_slice ? format(" and no slice more than %.1f points below the top tier",
                        options.slice_margin_points) +
                     (options.slice_margin_bound ? " (" + conf + " upper bound)" : "")
               : "";
  const std::string worst =
      "; worst slice '" + c.worst_slice + "' " + format("%.1f", c.worst_slice_loss_points) +
      " points below the top tier" +
      (options.slice_margin_bound
           ? " (largest " + conf + " upper bound of a slice's loss " +
                 format("%.1f", c.worst_slice_loss_bound_points) + " points)"
           : "");
  if (found) {
    r.summary = "chose " + point + "; " + conf + " lower bound on accuracy - " +
                format("%.3f", target) + " x top accuracy is " + bound + " >= 0 (" +
                bound_method_name(options.bound) + " bound, " + std::to_string(n) + " items)" +
                (by_slice ? worst : "");
  } else {
    r.summary = "no threshold meets " + tgt + " of the top tier's accuracy with " + conf +
                " confidence" + slice_rule + " on " + std::to_string(n) +
                " items; the best is " + point + " (lower bound " + bound + ")" +
                (by_slice ? worst : "");
  }
  if (options.rule == SearchRule::kSimultaneous) {
    r.summary += format("; largest Holm-adjusted p-value over the %.0f claims %.4f",
                        static_cast<double>(r.family_size), c.family_p) +
                 " ('" + c.binding_claim + "')";
    if (options.check_items > 0 && by_slice) {
      r.summary += format("; estimated chance that %.0f fresh items show a slice more than "
                          "%.1f points down: %.1f%%",
                          options.check_items, options.slice_margin_points,
                          100 * c.check_fail_estimate);
    }
  }
  r.guarantee = guarantee_sentence(r, options);
  return r;
}

std::string guarantee_sentence(const CalibrationResult& r, const CalibrationOptions& options) {
  const CurvePoint& c = r.chosen_point();
  const std::string conf = format("%.0f %%", 100 * options.confidence);
  const bool by_slice = options.slice_margin_points >= 0;
  const std::string claims =
      "the cascade's accuracy on items like these is at least " +
      format("%.1f %%", 100 * options.target) + " of the top tier's" +
      (by_slice ? format(", and no slice's expected accuracy is more than %.1f points below the "
                         "top tier's",
                         options.slice_margin_points)
                : "");
  if (!r.found) {
    return "No guarantee: no threshold passed (" + claims + ", at " + conf +
           " confidence); the configuration is left as it was.";
  }
  std::string out;
  if (options.rule == SearchRule::kSimultaneous) {
    out = "With " + conf + " confidence, simultaneously: " + claims + format(
        " (threshold %.4f; Holm over %.0f claims; thresholds tested one by one from escalating "
        "everything, stopping at the first that fails, so the search spends no confidence).",
        c.threshold, static_cast<double>(r.family_size));
  } else {
    out = "Each with " + conf + " confidence on its own, not together and not allowing for the "
          "search over thresholds (rule per-point): " + claims +
          format(" (threshold %.4f).", c.threshold);
  }
  if (options.check_items > 0 && by_slice) {
    out += format(" On a fresh sample of %.0f items, some slice shows more than %.1f points "
                  "below the top tier with an estimated probability of %.1f %% (an estimate, "
                  "not a bound; limit %.0f %%).",
                  options.check_items, options.slice_margin_points, 100 * c.check_fail_estimate,
                  100 * options.check_risk);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Per-slice evaluation
// ---------------------------------------------------------------------------------------------

namespace {

GroupEval evaluate_group(const std::vector<const EvalItem*>& group, double threshold, double z,
                         const EvalOptions& options) {
  GroupEval g;
  g.items = group.size();
  double top_total = 0;
  size_t esc = 0;
  for (const EvalItem* e : group) {
    const CalibrationItem& it = e->outcome;
    const bool escalate = cascade_escalates(it.score, threshold);
    g.tier1.correct += it.tier1_correct ? 1 : 0;
    g.top.correct += it.top_correct ? 1 : 0;
    g.cascade.correct += (escalate ? it.top_correct : it.tier1_correct) ? 1 : 0;
    g.tier1.total_cost += it.tier1_cost;
    g.top.total_cost += it.top_cost;
    g.cascade.total_cost += it.tier1_cost + (escalate ? it.top_cost : 0.0);
    esc += escalate ? 1 : 0;
    top_total += it.top_cost;
  }
  const double n = static_cast<double>(group.size());
  g.tier1.escalation_rate = 0;
  g.top.escalation_rate = 1;
  g.cascade.escalation_rate = n > 0 ? static_cast<double>(esc) / n : 0;
  for (PolicyEval* p : {&g.tier1, &g.top, &g.cascade}) {
    p->items = group.size();
    p->accuracy = n > 0 ? static_cast<double>(p->correct) / n : 0;
    p->accuracy_ci = wilson_interval(p->correct, p->items, z);
    p->cost_per_item = n > 0 ? p->total_cost / n : 0;
    p->cost_saved = top_total > 0 ? 1.0 - p->total_cost / top_total : 0;
  }
  if (!group.empty() && group.front()->baseline) {
    // The baseline's policies: the same arithmetic over its outcomes, at its own threshold.
    std::vector<EvalItem> before;
    before.reserve(group.size());
    for (const EvalItem* e : group) before.push_back({e->slice, e->difficulty, *e->baseline, {}});
    std::vector<const EvalItem*> ptrs;
    for (const EvalItem& e : before) ptrs.push_back(&e);
    const GroupEval b = evaluate_group(ptrs, options.baseline_threshold, z, options);
    g.baseline_tier1 = b.tier1;
    g.baseline_cascade = b.cascade;
  }
  return g;
}

}  // namespace

Result<EvalReport> evaluate_slices(const std::vector<EvalItem>& items, const EvalOptions& options) {
  std::vector<CalibrationItem> outcomes;
  outcomes.reserve(items.size());
  for (const EvalItem& e : items) outcomes.push_back(e.outcome);
  FRUGAL_RETURN_IF_ERROR(validate_items(outcomes, "eval"));
  const bool with_baseline = !items.empty() && items.front().baseline.has_value();
  std::vector<CalibrationItem> baselines;
  for (const EvalItem& e : items) {
    if (e.baseline.has_value() != with_baseline) {
      return invalid_argument("eval: a baseline outcome on some items but not all");
    }
    if (with_baseline) baselines.push_back(*e.baseline);
  }
  if (with_baseline) FRUGAL_RETURN_IF_ERROR(validate_items(baselines, "eval baseline"));
  if (!(options.margin_points >= 0)) return invalid_argument("eval: margin must be >= 0 points");
  if (!(options.confidence > 0 && options.confidence < 1)) {
    return invalid_argument("eval: confidence must be in (0, 1)");
  }
  const double z = z_for_confidence(options.confidence);

  std::vector<const EvalItem*> all;
  std::map<std::string, std::vector<const EvalItem*>> by_slice, by_difficulty;
  std::map<std::pair<std::string, std::string>, std::vector<const EvalItem*>> by_both;
  for (const EvalItem& e : items) {
    all.push_back(&e);
    by_slice[e.slice].push_back(&e);
    by_difficulty[e.difficulty].push_back(&e);
    by_both[{e.slice, e.difficulty}].push_back(&e);
  }

  EvalReport report;
  report.threshold = options.threshold;
  report.margin_points = options.margin_points;
  report.overall = evaluate_group(all, options.threshold, z, options);
  for (const auto& [slice, group] : by_slice) {
    GroupEval g = evaluate_group(group, options.threshold, z, options);
    g.slice = slice;
    report.by_slice.push_back(g);
    for (const auto& [policy, eval] :
         {std::pair<const char*, const PolicyEval*>{"cascade", &g.cascade}, {"tier1", &g.tier1}}) {
      if (std::string_view(policy) == "cascade" ? !options.gate_cascade : !options.gate_tier1) continue;
      const double loss = 100.0 * (g.top.accuracy - eval->accuracy);
      // The small slack keeps a loss of exactly the margin (in decimal) unflagged.
      if (loss > options.margin_points + 1e-9) report.flags.push_back({slice, policy, "top", loss});
      if (with_baseline) {
        const PolicyEval& before =
            std::string_view(policy) == "cascade" ? *g.baseline_cascade : *g.baseline_tier1;
        const double regression = 100.0 * (before.accuracy - eval->accuracy);
        if (regression > options.margin_points + 1e-9) {
          report.flags.push_back({slice, policy, "baseline", regression});
        }
      }
    }
  }
  for (const auto& [difficulty, group] : by_difficulty) {
    GroupEval g = evaluate_group(group, options.threshold, z, options);
    g.difficulty = difficulty;
    report.by_difficulty.push_back(g);
  }
  for (const auto& [key, group] : by_both) {
    GroupEval g = evaluate_group(group, options.threshold, z, options);
    g.slice = key.first;
    g.difficulty = key.second;
    report.by_slice_difficulty.push_back(g);
  }
  report.pass = report.flags.empty();
  return report;
}

}  // namespace frugal::cascade
