// Tests for cascade/calibration and cascade/curve: threshold choice under the 95 % bound, the
// curve's CSV/SVG/table, and the per-slice distillation-gate verdict.
#include "cascade/calibration.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <tuple>
#include <sstream>

#include "cascade/curve.h"
#include "cascade/early_escalation.h"
#include "cascade/stats.h"

namespace frugal::cascade {
namespace {

// Items where tier 1 is right with probability p1 and the top tier with p_top; the score is
// informative with the given noise (0 = perfect separation at 0.5).
std::vector<CalibrationItem> make_items(size_t n, uint64_t seed, double p1, double p_top,
                                        double noise, double tier1_cost = 1, double top_cost = 10) {
  SplitMix64 rng(seed);
  std::vector<CalibrationItem> items;
  for (size_t i = 0; i < n; ++i) {
    CalibrationItem it;
    it.tier1_correct = rng.uniform() < p1;
    it.top_correct = it.tier1_correct ? rng.uniform() < 0.97 : rng.uniform() < p_top;
    const double centre = it.tier1_correct ? 0.75 : 0.25;
    it.score = std::clamp(centre + noise * rng.normal() + 0.2 * (rng.uniform() - 0.5), 0.0, 1.0);
    it.tier1_cost = tier1_cost;
    it.top_cost = top_cost * (0.5 + rng.uniform());  // per-item costs differ
    items.push_back(it);
  }
  return items;
}

// The bound written out independently: mean(d) - z_{0.95} * sd(d) / sqrt(n) over the items
// and z^2 / 2 pseudo-items at each end of d's range, [-target, 1] while any item is kept.
double reference_lower_bound(const std::vector<CalibrationItem>& items, double threshold,
                             double target) {
  const double z = 1.6448536269514722;
  std::vector<double> d;
  bool any_kept = false;
  for (const CalibrationItem& it : items) {
    const bool keep = it.score >= threshold;
    any_kept = any_kept || keep;
    const double c = (keep ? it.tier1_correct : it.top_correct) ? 1 : 0;
    d.push_back(c - target * (it.top_correct ? 1 : 0));
  }
  const double lo = any_kept ? -target : std::min(0.0, 1 - target);
  const double hi = any_kept ? 1.0 : std::max(0.0, 1 - target);
  const double k = z * z / 2, n = static_cast<double>(d.size()) + 2 * k;
  double sum = k * (lo + hi), sum2 = k * (lo * lo + hi * hi);
  for (double x : d) {
    sum += x;
    sum2 += x * x;
  }
  const double m = sum / n;
  return m - z * std::sqrt((sum2 - n * m * m) / (n - 1) / n);
}

TEST(Calibration, PerfectScorerEscalatesExactlyTheWrongAnswers) {
  // The top tier is always right; tier 1 is right on about 70 %. With target 0.99 escalating
  // every wrong answer is the cheapest point the bound accepts: keeping even one costs a whole
  // item of accuracy (1 / 300 > 1 - 0.99 margin after the bound).
  SplitMix64 rng(3);
  std::vector<CalibrationItem> items;
  for (int i = 0; i < 300; ++i) {
    CalibrationItem it;
    it.tier1_correct = rng.uniform() < 0.7;
    it.top_correct = true;
    it.score = it.tier1_correct ? 0.6 + 0.4 * rng.uniform() : 0.4 * rng.uniform();
    it.tier1_cost = 1;
    it.top_cost = 10;
    items.push_back(it);
  }
  CalibrationOptions options;
  options.target = 0.99;
  auto r = calibrate_threshold(items, options);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_TRUE(r->found) << r->summary;
  const CurvePoint& c = r->chosen_point();
  size_t wrong = 0;
  for (const CalibrationItem& it : items) {
    wrong += it.tier1_correct ? 0 : 1;
    EXPECT_EQ(cascade_escalates(it.score, c.threshold), !it.tier1_correct);
  }
  EXPECT_EQ(c.escalated, wrong);
  EXPECT_DOUBLE_EQ(c.accuracy, 1.0);
  EXPECT_DOUBLE_EQ(c.relative_quality, 1.0);
  EXPECT_NEAR(c.cost_per_item, 1 + 10.0 * static_cast<double>(wrong) / 300, 1e-12);

  // Target 1 asks for 95 % confidence that the cascade is never worse than the top tier. The
  // ~210 kept answers were all right, but that does not prove tier 1 is never wrong where it
  // is kept (the rule of three allows ~1.4 %), so only escalating everything is certain.
  options.target = 1.0;
  auto strict = calibrate_threshold(items, options);
  ASSERT_TRUE(strict.is_ok());
  ASSERT_TRUE(strict->found) << strict->summary;
  EXPECT_EQ(strict->chosen_point().escalated, items.size());

  // With a 98 % target the cascade may keep some wrong answers, but never escalates a right one.
  options.target = 0.98;
  auto loose = calibrate_threshold(items, options);
  ASSERT_TRUE(loose.is_ok());
  ASSERT_TRUE(loose->found);
  EXPECT_LE(loose->chosen_point().escalated, wrong);
  EXPECT_LE(loose->chosen_point().cost_per_item, c.cost_per_item);
  for (const CalibrationItem& it : items) {
    if (it.tier1_correct) {
      EXPECT_FALSE(cascade_escalates(it.score, loose->chosen_point().threshold));
    }
  }
}

// Issue 15: 12 items, both tiers right on all of them. The unadjusted normal bound had zero
// variance and called keeping everything (threshold 0) certain; 12 right answers do not show
// that tier 1 is right 98 % of the time (the rule of three allows up to 25 % wrong), so only
// escalating everything passes. A thousand such items are evidence enough to keep them all.
TEST(Calibration, AZeroVarianceSampleIsNotCertainty) {
  auto all_right = [](size_t n) {
    std::vector<CalibrationItem> items;
    for (size_t i = 0; i < n; ++i) {
      items.push_back({true, true, 0.6 + 0.3 * static_cast<double>(i) / n, 1.0, 10.0, ""});
    }
    return items;
  };
  auto small = calibrate_threshold(all_right(12));
  ASSERT_TRUE(small.is_ok());
  EXPECT_LT(small->curve.front().lower_bound, 0) << "keeping all 12 is not proven";
  ASSERT_TRUE(small->found) << small->summary;
  EXPECT_EQ(small->chosen_point().escalated, 12u) << small->summary;
  EXPECT_GT(small->chosen_point().threshold, 0.9);
  CalibrationOptions bootstrap;
  bootstrap.bound = BoundMethod::kBootstrap;
  auto resampled = calibrate_threshold(all_right(12), bootstrap);
  ASSERT_TRUE(resampled.is_ok());
  EXPECT_EQ(resampled->chosen_point().escalated, 12u) << "resampling cannot see absent errors";

  auto large = calibrate_threshold(all_right(1000));
  ASSERT_TRUE(large.is_ok());
  ASSERT_TRUE(large->found);
  EXPECT_EQ(large->chosen_point().threshold, 0.0);
  EXPECT_GT(large->chosen_point().lower_bound, 0.0);
}

TEST(Calibration, ChosenThresholdIsTheCheapestThatMeetsTheBound) {
  const std::vector<CalibrationItem> items = make_items(1500, 21, 0.7, 0.8, 0.2);
  auto r = calibrate_threshold(items);
  ASSERT_TRUE(r.is_ok());
  ASSERT_TRUE(r->found) << r->summary;
  const CurvePoint& c = r->chosen_point();
  EXPECT_TRUE(c.meets_target);
  EXPECT_GE(c.lower_bound, 0.0);
  EXPECT_NEAR(c.lower_bound, reference_lower_bound(items, c.threshold, 0.98), 1e-9);
  // Something was actually saved, and something was escalated.
  EXPECT_LT(c.relative_cost, 1.0);
  EXPECT_GT(c.escalation_rate, 0.0);
  for (const CurvePoint& p : r->curve) {
    EXPECT_NEAR(p.lower_bound, reference_lower_bound(items, p.threshold, 0.98), 1e-9);
    if (p.cost_per_item < c.cost_per_item) {
      EXPECT_FALSE(p.meets_target) << p.threshold;
    }
  }
  // Each curve point equals evaluating its threshold directly.
  for (size_t k = 0; k < r->curve.size(); k += 97) {
    const CurvePoint direct = evaluate_threshold(items, r->curve[k].threshold);
    EXPECT_EQ(direct.escalated, r->curve[k].escalated);
    EXPECT_NEAR(direct.accuracy, r->curve[k].accuracy, 1e-12);
    EXPECT_NEAR(direct.cost_per_item, r->curve[k].cost_per_item, 1e-9);
    EXPECT_NEAR(direct.lower_bound, r->curve[k].lower_bound, 1e-9);
  }
  EXPECT_NE(r->summary.find("chose threshold"), std::string::npos);
}

TEST(Calibration, CurveEndsAndMonotoneCost) {
  const std::vector<CalibrationItem> items = make_items(400, 5, 0.6, 0.9, 0.15, 2, 20);
  auto r = calibrate_threshold(items);
  ASSERT_TRUE(r.is_ok());
  // 0, every distinct score, 1.
  std::set<double> distinct = {0.0, 1.0};
  for (const CalibrationItem& it : items) distinct.insert(it.score);
  ASSERT_EQ(r->curve.size(), distinct.size());
  const CurvePoint& first = r->curve.front();
  EXPECT_EQ(first.threshold, 0.0);
  EXPECT_EQ(first.escalated, 0u);  // no score is below 0
  EXPECT_NEAR(first.accuracy, r->tier1_accuracy, 1e-12);
  EXPECT_NEAR(first.relative_cost, r->tier1_cost_per_item / r->top_cost_per_item, 1e-12);
  const CurvePoint& last = r->curve.back();
  EXPECT_EQ(last.threshold, 1.0);
  size_t at_one = 0;
  for (const CalibrationItem& it : items) at_one += it.score >= 1.0 ? 1 : 0;
  EXPECT_EQ(last.escalated, items.size() - at_one);
  for (size_t k = 1; k < r->curve.size(); ++k) {
    EXPECT_GE(r->curve[k].cost_per_item, r->curve[k - 1].cost_per_item);
    EXPECT_GE(r->curve[k].escalated, r->curve[k - 1].escalated);
    EXPECT_GT(r->curve[k].threshold, r->curve[k - 1].threshold);
  }
}

TEST(Calibration, UnreachableTargetSaysSoAndGivesTheBest) {
  // Tier 1 is never right where the top tier is wrong, so the cascade cannot beat the top tier.
  const std::vector<CalibrationItem> items = make_items(500, 9, 0.7, 0.0, 0.2);
  CalibrationOptions options;
  options.target = 1.05;
  auto r = calibrate_threshold(items, options);
  ASSERT_TRUE(r.is_ok());
  EXPECT_FALSE(r->found);
  for (const CurvePoint& p : r->curve) {
    EXPECT_FALSE(p.meets_target);
    EXPECT_LE(p.lower_bound, r->chosen_point().lower_bound);
  }
  EXPECT_NE(r->summary.find("no threshold meets 105.0%"), std::string::npos) << r->summary;
  EXPECT_NE(r->summary.find("the best is threshold"), std::string::npos) << r->summary;

  // Wrong tier-1 answers scored exactly 1 are kept even at threshold 1: target 1 is out of reach.
  std::vector<CalibrationItem> stuck = make_items(300, 10, 0.7, 0.9, 0.1);
  for (CalibrationItem& it : stuck) {
    if (!it.tier1_correct) {
      it.score = 1.0;
      it.top_correct = true;
    }
  }
  options.target = 1.0;
  auto s = calibrate_threshold(stuck, options);
  ASSERT_TRUE(s.is_ok());
  EXPECT_FALSE(s->found) << s->summary;
}

TEST(Calibration, HigherConfidenceNeverChoosesACheaperThreshold) {
  const std::vector<CalibrationItem> items = make_items(800, 33, 0.75, 0.85, 0.25);
  CalibrationOptions options;
  options.target = 0.97;
  options.confidence = 0.8;
  auto low = calibrate_threshold(items, options);
  options.confidence = 0.99;
  auto high = calibrate_threshold(items, options);
  ASSERT_TRUE(low.is_ok() && high.is_ok());
  ASSERT_TRUE(low->found && high->found);
  EXPECT_GE(high->chosen_point().cost_per_item, low->chosen_point().cost_per_item);
  EXPECT_GT(high->chosen_point().escalated, low->chosen_point().escalated);
}

TEST(Calibration, BootstrapBoundIsDeterministicAndCloseToNormal) {
  const std::vector<CalibrationItem> items = make_items(600, 44, 0.7, 0.8, 0.2);
  CalibrationOptions options;
  options.bound = BoundMethod::kBootstrap;
  options.bootstrap_resamples = 1000;
  options.seed = 5;
  auto a = calibrate_threshold(items, options);
  auto b = calibrate_threshold(items, options);
  auto normal = calibrate_threshold(items);
  ASSERT_TRUE(a.is_ok() && b.is_ok() && normal.is_ok());
  ASSERT_EQ(a->curve.size(), normal->curve.size());
  EXPECT_EQ(a->chosen, b->chosen);
  for (size_t k = 0; k < a->curve.size(); ++k) {
    EXPECT_EQ(a->curve[k].lower_bound, b->curve[k].lower_bound);
    EXPECT_NEAR(a->curve[k].lower_bound, normal->curve[k].lower_bound, 0.01) << k;
  }
  // The sweep's bootstrap equals bootstrapping one threshold directly with the same seed.
  const size_t k = a->chosen;
  const CurvePoint direct = evaluate_threshold(items, a->curve[k].threshold, options);
  EXPECT_NEAR(direct.lower_bound, a->curve[k].lower_bound, 1e-12);
  EXPECT_NE(a->summary.find("bootstrap bound"), std::string::npos) << a->summary;
}

TEST(Calibration, BadInputIsAStatus) {
  EXPECT_EQ(calibrate_threshold({}).status().code(), ErrorCode::kInvalidArgument);
  std::vector<CalibrationItem> items = make_items(20, 1, 0.5, 0.9, 0.1);
  std::vector<CalibrationItem> bad = items;
  bad[3].score = 1.5;
  EXPECT_NE(calibrate_threshold(bad).status().message().find("item 3"), std::string::npos);
  bad = items;
  bad[4].top_cost = -1;
  EXPECT_EQ(calibrate_threshold(bad).status().code(), ErrorCode::kInvalidArgument);
  bad = items;
  for (CalibrationItem& it : bad) it.top_correct = false;
  EXPECT_NE(calibrate_threshold(bad).status().message().find("top tier is right on none"),
            std::string::npos);
  CalibrationOptions options;
  options.target = 0;
  EXPECT_EQ(calibrate_threshold(items, options).status().code(), ErrorCode::kInvalidArgument);
  options = {};
  options.confidence = 1;
  EXPECT_EQ(calibrate_threshold(items, options).status().code(), ErrorCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// Curve outputs
// ---------------------------------------------------------------------------------------------

struct XmlElement {
  std::string name;
  std::map<std::string, std::string> attrs;
};

// A minimal XML reader: checks that tags nest and close properly and that attributes are
// quoted, and returns every element's start tag. Fails the test on malformed input.
std::vector<XmlElement> parse_xml(const std::string& text) {
  std::vector<XmlElement> out;
  std::vector<std::string> stack;
  size_t i = 0;
  if (text.rfind("<?xml", 0) == 0) i = text.find("?>") + 2;
  while (i < text.size()) {
    const size_t lt = text.find('<', i);
    if (lt == std::string::npos) break;
    const std::string between = text.substr(i, lt - i);
    EXPECT_EQ(between.find('>'), std::string::npos) << "stray '>' in text: " << between;
    const size_t gt = text.find('>', lt);
    if (gt == std::string::npos) {
      ADD_FAILURE() << "unclosed tag at " << lt;
      return out;
    }
    std::string tag = text.substr(lt + 1, gt - lt - 1);
    i = gt + 1;
    if (!tag.empty() && tag[0] == '/') {
      const std::string name = tag.substr(1);
      if (stack.empty() || stack.back() != name) {
        ADD_FAILURE() << "closing </" << name << "> does not match <"
                      << (stack.empty() ? "" : stack.back()) << ">";
        return out;
      }
      stack.pop_back();
      continue;
    }
    const bool self_closing = !tag.empty() && tag.back() == '/';
    if (self_closing) tag.pop_back();
    XmlElement e;
    size_t p = tag.find_first_of(" \n");
    e.name = tag.substr(0, p);
    while (p != std::string::npos && p < tag.size()) {
      p = tag.find_first_not_of(" \n", p);
      if (p == std::string::npos) break;
      const size_t eq = tag.find('=', p);
      if (eq == std::string::npos || eq + 1 >= tag.size() || tag[eq + 1] != '"') {
        ADD_FAILURE() << "unquoted attribute in <" << tag << ">";
        return out;
      }
      const size_t close = tag.find('"', eq + 2);
      if (close == std::string::npos) {
        ADD_FAILURE() << "unterminated attribute in <" << tag << ">";
        return out;
      }
      e.attrs[tag.substr(p, eq - p)] = tag.substr(eq + 2, close - eq - 2);
      p = close + 1;
    }
    out.push_back(e);
    if (!self_closing) stack.push_back(e.name);
  }
  EXPECT_TRUE(stack.empty()) << "unclosed <" << (stack.empty() ? "" : stack.back()) << ">";
  return out;
}

TEST(Curve, SvgIsWellFormedAndPlotsEveryPoint) {
  const std::vector<CalibrationItem> items = make_items(300, 8, 0.7, 0.85, 0.2);
  auto r = calibrate_threshold(items);
  ASSERT_TRUE(r.is_ok());
  ASSERT_TRUE(r->found);
  CurvePlotOptions plot;
  plot.title = "quality <vs> cost & \"more\"";
  const std::string svg = curve_svg(*r, plot);
  const std::vector<XmlElement> elements = parse_xml(svg);
  ASSERT_FALSE(elements.empty());
  EXPECT_EQ(elements.front().name, "svg");
  EXPECT_EQ(elements.front().attrs.at("xmlns"), "http://www.w3.org/2000/svg");

  std::vector<XmlElement> points, chosen, targets, top_only;
  for (const XmlElement& e : elements) {
    auto cls = e.attrs.find("class");
    if (cls == e.attrs.end()) continue;
    if (e.name == "circle" && cls->second == "point") points.push_back(e);
    if (e.name == "circle" && cls->second == "chosen") chosen.push_back(e);
    if (e.name == "line" && cls->second == "target") targets.push_back(e);
    if (e.name == "rect" && cls->second == "top-only") top_only.push_back(e);
  }
  ASSERT_EQ(points.size(), r->curve.size());
  ASSERT_EQ(chosen.size(), 1u);
  ASSERT_EQ(targets.size(), 1u);
  EXPECT_EQ(top_only.size(), 1u);
  for (size_t k = 0; k < points.size(); ++k) {
    EXPECT_NEAR(std::stod(points[k].attrs.at("data-threshold")), r->curve[k].threshold, 1e-9);
    EXPECT_NEAR(std::stod(points[k].attrs.at("data-cost")), r->curve[k].relative_cost, 1e-8);
    EXPECT_NEAR(std::stod(points[k].attrs.at("data-quality")), r->curve[k].relative_quality, 1e-8);
  }
  // Pixel positions follow the data: x grows with cost, y falls as quality rises (SVG y is down),
  // and the target line sits where the points' own mapping puts the target.
  const auto& lo = r->curve.front();
  const auto& hi = r->curve.back();
  ASSERT_NE(lo.relative_quality, hi.relative_quality);
  const double cy_lo = std::stod(points.front().attrs.at("cy"));
  const double cy_hi = std::stod(points.back().attrs.at("cy"));
  EXPECT_LT(std::stod(points.front().attrs.at("cx")), std::stod(points.back().attrs.at("cx")));
  EXPECT_LT(cy_hi, cy_lo);  // escalating everything is the higher quality
  const double slope = (cy_hi - cy_lo) / (hi.relative_quality - lo.relative_quality);
  const double target_y = cy_lo + slope * (r->target - lo.relative_quality);
  EXPECT_NEAR(std::stod(targets[0].attrs.at("y1")), target_y, 0.05);
  EXPECT_NEAR(std::stod(chosen[0].attrs.at("data-threshold")), r->chosen_point().threshold, 1e-9);
  EXPECT_NE(svg.find("quality &lt;vs&gt; cost &amp; &quot;more&quot;"), std::string::npos);
  EXPECT_NE(svg.find("cost per item relative to top tier only"), std::string::npos);
  EXPECT_NE(svg.find("accuracy relative to top tier"), std::string::npos);
}

TEST(Calibration, SliceMarginRejectsThresholdsThatSinkOneSlice) {
  // Slice "a": tier 1 always right, confident. Slice "b": tier 1 wrong on 10 of 20 with
  // middling scores (0.6), right on the rest with 0.65. Overall, keeping everything loses 10
  // of 220 items (4.5 %): a 95 % target with no slice rule is met while slice b loses 50
  // points; with a 2-point slice margin b's wrong answers must be escalated.
  std::vector<CalibrationItem> items;
  for (int i = 0; i < 200; ++i) items.push_back({true, true, 0.9 + i * 1e-4, 1.0, 10.0, "a"});
  for (int i = 0; i < 20; ++i) {
    items.push_back({i >= 10, true, i < 10 ? 0.6 : 0.65, 1.0, 10.0, "b"});
  }
  CalibrationOptions plain;
  plain.target = 0.90;
  plain.rule = SearchRule::kPerPoint;  // the point-estimate rule this test is about
  auto r = calibrate_threshold(items, plain);
  ASSERT_TRUE(r.is_ok());
  ASSERT_TRUE(r->found);
  EXPECT_EQ(r->chosen_point().escalated, 0u);
  EXPECT_EQ(r->chosen_point().worst_slice, "b");
  EXPECT_NEAR(r->chosen_point().worst_slice_loss_points, 50.0, 1e-9);

  CalibrationOptions strict = plain;
  strict.slice_margin_points = 2.0;
  auto s = calibrate_threshold(items, strict);
  ASSERT_TRUE(s.is_ok());
  ASSERT_TRUE(s->found);
  EXPECT_EQ(s->chosen_point().escalated, 10u) << "exactly b's ten wrong answers";
  EXPECT_LE(s->chosen_point().worst_slice_loss_points, 0.0);
  EXPECT_GT(s->chosen_point().relative_cost, r->chosen_point().relative_cost);
  EXPECT_NE(s->summary.find("worst slice"), std::string::npos) << s->summary;
  // evaluate_threshold applies the same rule at one threshold.
  const CurvePoint p = evaluate_threshold(items, 0.0, strict);
  EXPECT_FALSE(p.meets_target);
  EXPECT_EQ(p.worst_slice, "b");
  EXPECT_TRUE(evaluate_threshold(items, 0.62, strict).meets_target);
}

TEST(Calibration, SliceMarginBoundAsksForMoreThanThePointEstimate) {
  // Slice "b" (100 items): kept, tier 1 is wrong on 3 items the top tier gets right (scores
  // 0.5) and right on 2 it gets wrong (0.95): a 1-point loss, inside a 2-point margin. Its
  // 95 % upper bound is not: with k = 1.645² / 2 pseudo-items at −1 and +1, n' = 100 + 2k,
  // mean' = 1 / n', 100 · (mean' + 1.645 · sqrt(((5 + 2k) / n' − mean'²) / n')) = 5.4 points,
  // so the bound escalates the three wrong answers (and then b gains 2 points on the top tier).
  std::vector<CalibrationItem> items;
  for (int i = 0; i < 400; ++i) items.push_back({true, true, 0.9 + i * 1e-5, 1.0, 10.0, "a"});
  for (int i = 0; i < 100; ++i) {
    const bool wrong = i < 3, better = i >= 3 && i < 5;
    items.push_back({!wrong, !better, wrong ? 0.5 : (better ? 0.95 : 0.96), 1.0, 10.0, "b"});
  }
  CalibrationOptions point;
  point.target = 0.95;
  point.slice_margin_points = 2.0;
  point.rule = SearchRule::kPerPoint;  // point estimate vs per-slice bound, each on its own
  auto p = calibrate_threshold(items, point);
  ASSERT_TRUE(p.is_ok());
  ASSERT_TRUE(p->found);
  EXPECT_EQ(p->chosen_point().escalated, 0u);
  EXPECT_NEAR(p->chosen_point().worst_slice_loss_points, 1.0, 1e-9);
  const double k = 1.6448536 * 1.6448536 / 2, n = 100 + 2 * k, m = 1 / n;
  EXPECT_NEAR(p->chosen_point().worst_slice_loss_bound_points,
              100 * (m + 1.6448536 * std::sqrt(((5 + 2 * k) / n - m * m) / n)), 1e-3);

  CalibrationOptions bounded = point;
  bounded.slice_margin_bound = true;
  auto b = calibrate_threshold(items, bounded);
  ASSERT_TRUE(b.is_ok());
  ASSERT_TRUE(b->found);
  EXPECT_EQ(b->chosen_point().escalated, 3u);
  EXPECT_LE(b->chosen_point().worst_slice_loss_bound_points, 2.0);
  EXPECT_GT(b->chosen_point().relative_cost, p->chosen_point().relative_cost);
  EXPECT_NE(b->summary.find("upper bound"), std::string::npos) << b->summary;
  EXPECT_FALSE(evaluate_threshold(items, 0.0, bounded).meets_target);
  EXPECT_TRUE(evaluate_threshold(items, 0.0, point).meets_target);
}

// Synthetic items whose truth is known: score u ~ U(0, 1). In slice "a", below u = 0.6 tier 1
// is wrong where the top tier is right with probability 0.3 and right where it is wrong with
// probability 0.2 (above 0.6 both are right), so keeping every item with u >= t loses
// 100 · 0.1 (0.6 - t) points in expectation for t < 0.6: a small drift under a lot of noise.
// In slice "b" both tiers are always right. With a 2-point margin the claims are true exactly
// for t >= t* = 0.4.
std::vector<CalibrationItem> known_truth_items(size_t per_slice, SplitMix64* rng) {
  std::vector<CalibrationItem> items;
  for (size_t i = 0; i < per_slice; ++i) {
    const double u = rng->uniform(), v = rng->uniform();
    const bool lost = u < 0.6 && v < 0.3, won = u < 0.6 && v >= 0.3 && v < 0.5;
    items.push_back({!lost, !won, u, 1.0, 10.0, "a"});
    items.push_back({true, true, rng->uniform(), 1.0, 10.0, "b"});
  }
  return items;
}

TEST(Calibration, SimultaneousSearchFailsLessOftenThanItsLevelWhereThePerPointRuleDoesNot) {
  // 300 calibrations of 1,000 items each. A calibration fails when its threshold is below t*
  // (slice a's expected loss then exceeds the margin). The per-point rule takes the cheapest
  // threshold whose own slice bounds pass, so it profits from every dip of slice a's noise
  // below the truth; the fixed-sequence search must pass the first false threshold to go
  // past it, which happens with probability <= 5 %.
  const double t_star = 0.4;
  CalibrationOptions simultaneous;
  simultaneous.target = 0.9;  // overall never binds: the slice claim does
  simultaneous.slice_margin_points = 2.0;
  CalibrationOptions per_point = simultaneous;
  per_point.rule = SearchRule::kPerPoint;
  per_point.slice_margin_bound = true;
  SplitMix64 rng(16);
  int trials = 0, fail_simultaneous = 0, fail_per_point = 0;
  for (; trials < 300; ++trials) {
    const std::vector<CalibrationItem> items = known_truth_items(500, &rng);
    auto s = calibrate_threshold(items, simultaneous);
    auto p = calibrate_threshold(items, per_point);
    ASSERT_TRUE(s.is_ok() && p.is_ok());
    fail_simultaneous += s->found && s->chosen_point().threshold < t_star;
    fail_per_point += p->found && p->chosen_point().threshold < t_star;
  }
  const double rate_s = static_cast<double>(fail_simultaneous) / trials;
  const double rate_p = static_cast<double>(fail_per_point) / trials;
  // With this seed: 2.7 % and 8.0 % (a binomial standard error of 1.3 points at 5 %).
  EXPECT_LE(rate_s, 0.05) << "simultaneous " << rate_s << ", per point " << rate_p;
  EXPECT_GT(rate_p, 0.065) << "simultaneous " << rate_s << ", per point " << rate_p;
}

TEST(Calibration, FixedSequenceStopsAtTheFirstFailingThreshold) {
  // Target 1 (the top tier's accuracy): escalating everything meets it exactly. Going down
  // from threshold 1, the first kept item (0.9) is wrong where the top tier is right, so the
  // claim fails there and the search stops at 1. Below, 50 items on which tier 1 is right and
  // the top tier wrong make keeping everything pass its own bound again: the per-point rule
  // jumps past the failure to the cheapest point.
  std::vector<CalibrationItem> items = {{false, true, 0.9, 1, 10, ""}};
  for (int i = 0; i < 50; ++i) items.push_back({true, false, 0.1 + 0.008 * i, 1, 10, ""});
  CalibrationOptions o;
  o.target = 1.0;
  auto s = calibrate_threshold(items, o);
  ASSERT_TRUE(s.is_ok());
  ASSERT_TRUE(s->found) << s->summary;
  EXPECT_EQ(s->chosen_point().threshold, 1.0) << s->summary;
  EXPECT_FALSE(evaluate_threshold(items, 0.9, o).meets_target);
  o.rule = SearchRule::kPerPoint;
  auto p = calibrate_threshold(items, o);
  ASSERT_TRUE(p.is_ok());
  ASSERT_TRUE(p->found);
  EXPECT_LE(p->chosen_point().threshold, 0.1) << p->summary;
}

TEST(Calibration, GuaranteeSentenceSaysWhatHoldsTogether) {
  std::vector<CalibrationItem> items;
  for (int i = 0; i < 600; ++i) {
    items.push_back({i % 10 != 0, true, i % 10 == 0 ? 0.2 : 0.9, 1, 10, i % 2 ? "x" : "y"});
  }
  CalibrationOptions o;
  o.slice_margin_points = 2.0;
  o.check_items = 1000;
  auto r = calibrate_threshold(items, o);
  ASSERT_TRUE(r.is_ok());
  ASSERT_TRUE(r->found);
  EXPECT_EQ(r->family_size, 3u);
  EXPECT_EQ(r->guarantee.rfind("With 95 % confidence, simultaneously: the cascade's accuracy on "
                               "items like these is at least 98.0 % of the top tier's, and no "
                               "slice's expected accuracy is more than 2.0 points below the top "
                               "tier's (threshold ",
                               0),
            0u)
      << r->guarantee;
  EXPECT_NE(r->guarantee.find("Holm over 3 claims"), std::string::npos) << r->guarantee;
  EXPECT_NE(r->guarantee.find("On a fresh sample of 1000 items"), std::string::npos);
  EXPECT_LE(r->chosen_point().family_p, 0.05);
  EXPECT_EQ(r->guarantee, guarantee_sentence(*r, o));

  o.rule = SearchRule::kPerPoint;
  auto p = calibrate_threshold(items, o);
  ASSERT_TRUE(p.is_ok());
  EXPECT_NE(p->guarantee.find("on its own, not together"), std::string::npos) << p->guarantee;

  CalibrationOptions impossible;
  impossible.target = 1.2;  // beat the top tier by 20 %, which is right everywhere
  auto n = calibrate_threshold(items, impossible);
  ASSERT_TRUE(n.is_ok());
  EXPECT_FALSE(n->found);
  EXPECT_EQ(n->guarantee.rfind("No guarantee", 0), 0u) << n->guarantee;
}

TEST(Calibration, CheckEstimateGrowsWithWhatIsKeptAndLost) {
  // Two slices of 1,000; in "x" tier 1 is wrong on 1 % of items (score 0.3), right elsewhere.
  // Kept, x loses 1 point on average, so a 1,000-item check (about 500 x items, margin 2
  // points: more than 10 lost) rarely fails; at a 0.5-point margin it fails often.
  std::vector<CalibrationItem> items;
  for (int i = 0; i < 1000; ++i) {
    items.push_back({i % 100 != 0, true, i % 100 == 0 ? 0.3 : 0.8, 1, 10, "x"});
    items.push_back({true, true, 0.8, 1, 10, "y"});
  }
  CalibrationOptions o;
  o.target = 0.9;
  o.check_items = 1000;
  o.slice_margin_points = 2.0;
  const double loose = evaluate_threshold(items, 0.0, o).check_fail_estimate;
  o.slice_margin_points = 0.5;
  const double tight = evaluate_threshold(items, 0.0, o).check_fail_estimate;
  const double escalated = evaluate_threshold(items, 0.5, o).check_fail_estimate;
  EXPECT_LT(loose, 0.05);
  EXPECT_GT(tight, 0.3);
  EXPECT_LT(escalated, 0.05) << "with x's wrong answers escalated only the pseudo-item is left";
}

TEST(Curve, CsvHasOneRowPerPointAndMarksTheChoice) {
  const std::vector<CalibrationItem> items = make_items(200, 12, 0.7, 0.85, 0.2);
  auto r = calibrate_threshold(items);
  ASSERT_TRUE(r.is_ok());
  std::istringstream in(curve_csv(*r));
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  EXPECT_EQ(line,
            "threshold,escalation_rate,accuracy,relative_quality,margin,lower_bound,cost_per_item,"
            "relative_cost,meets_target,chosen,worst_slice,worst_slice_loss_points");
  size_t row = 0, chosen_rows = 0;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::stringstream ss(line);
    for (std::string cell; std::getline(ss, cell, ',');) cells.push_back(cell);
    ASSERT_EQ(cells.size(), 12u) << line;
    ASSERT_LT(row, r->curve.size());
    const CurvePoint& p = r->curve[row];
    EXPECT_NEAR(std::stod(cells[0]), p.threshold, 1e-9);
    EXPECT_NEAR(std::stod(cells[2]), p.accuracy, 1e-9);
    EXPECT_NEAR(std::stod(cells[5]), p.lower_bound, 1e-9);
    EXPECT_NEAR(std::stod(cells[7]), p.relative_cost, 1e-8);
    EXPECT_EQ(cells[8], p.meets_target ? "1" : "0");
    if (cells[9] == "1") {
      ++chosen_rows;
      EXPECT_EQ(row, r->chosen);
    }
    ++row;
  }
  EXPECT_EQ(row, r->curve.size());
  EXPECT_EQ(chosen_rows, 1u);
}

TEST(Curve, TableShowsTheChosenRowAndSummary) {
  const std::vector<CalibrationItem> items = make_items(500, 13, 0.7, 0.85, 0.2);
  auto r = calibrate_threshold(items);
  ASSERT_TRUE(r.is_ok());
  const std::string table = curve_table(*r, 10);
  std::istringstream in(table);
  std::string line;
  int rows = 0, starred = 0;
  std::getline(in, line);  // header
  EXPECT_NE(line.find("threshold"), std::string::npos);
  while (std::getline(in, line)) {
    if (line == r->summary) continue;
    ++rows;
    if (line[0] == '*') ++starred;
  }
  EXPECT_LE(rows, 11);  // 10 spread rows plus the chosen one
  EXPECT_GE(rows, 10);
  EXPECT_EQ(starred, 1);
  EXPECT_NE(table.find(r->summary), std::string::npos);
}

TEST(Curve, WriteTextFileReportsUnwritablePaths) {
  const std::string path = testing::TempDir() + "/frugal_curve_test.csv";
  ASSERT_TRUE(write_text_file(path, "a,b\n1,2\n").is_ok());
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), "a,b\n1,2\n");
  std::remove(path.c_str());
  const Status bad = write_text_file("/nonexistent-dir/x/curve.svg", "x");
  EXPECT_EQ(bad.code(), ErrorCode::kIo);
  EXPECT_NE(bad.message().find("/nonexistent-dir/x/curve.svg"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Per-slice evaluation
// ---------------------------------------------------------------------------------------------

TEST(Eval, VerdictFlagsExactlyTheSlicesMadeWorse) {
  // Slice "fine": tier 1 as good as the top tier. Slice "hidden": tier 1 is often wrong and the
  // scorer does not notice, so both tier 1 and the cascade lose. Slice "caught": tier 1 is often
  // wrong but the scorer sends those to the top tier, so only tier 1 alone loses.
  std::vector<EvalItem> items;
  SplitMix64 rng(77);
  for (int i = 0; i < 600; ++i) {
    EvalItem e;
    const int kind = i % 3;
    e.slice = kind == 0 ? "fine" : kind == 1 ? "hidden" : "caught";
    e.difficulty = (i / 3) % 2 == 0 ? "easy" : "hard";
    e.outcome.top_correct = true;
    e.outcome.tier1_correct = kind == 0 ? true : rng.uniform() < 0.6;
    e.outcome.score = kind == 2 && !e.outcome.tier1_correct ? 0.1 : 0.9;
    e.outcome.tier1_cost = 1;
    e.outcome.top_cost = 9;
    items.push_back(e);
  }
  EvalOptions options;
  options.threshold = 0.5;
  options.margin_points = 2.0;
  auto report = evaluate_slices(items, options);
  ASSERT_TRUE(report.is_ok()) << report.status().to_string();
  EXPECT_FALSE(report->pass);
  std::set<std::pair<std::string, std::string>> flagged;
  for (const SliceFlag& f : report->flags) {
    flagged.insert({f.slice, f.policy});
    EXPECT_GT(f.loss_points, 2.0);
  }
  const std::set<std::pair<std::string, std::string>> expected = {
      {"hidden", "cascade"}, {"hidden", "tier1"}, {"caught", "tier1"}};
  EXPECT_EQ(flagged, expected);

  ASSERT_EQ(report->by_slice.size(), 3u);
  EXPECT_EQ(report->by_slice[0].slice, "caught");  // sorted by name
  const GroupEval& caught = report->by_slice[0];
  EXPECT_EQ(caught.items, 200u);
  EXPECT_EQ(caught.cascade.correct, 200u);
  EXPECT_DOUBLE_EQ(caught.top.escalation_rate, 1.0);
  EXPECT_DOUBLE_EQ(caught.tier1.escalation_rate, 0.0);
  const double esc = 1.0 - static_cast<double>(caught.tier1.correct) / 200;
  EXPECT_NEAR(caught.cascade.escalation_rate, esc, 1e-12);
  EXPECT_NEAR(caught.cascade.cost_per_item, 1 + 9 * esc, 1e-12);
  EXPECT_NEAR(caught.cascade.cost_saved, 1 - (1 + 9 * esc) / 9, 1e-12);
  EXPECT_NEAR(caught.tier1.cost_saved, 1 - 1.0 / 9, 1e-12);
  EXPECT_DOUBLE_EQ(caught.top.cost_saved, 0.0);
  const Interval w = wilson_interval(caught.tier1.correct, 200);
  EXPECT_DOUBLE_EQ(caught.tier1.accuracy_ci.lo, w.lo);
  EXPECT_DOUBLE_EQ(caught.tier1.accuracy_ci.hi, w.hi);
  EXPECT_LE(caught.tier1.accuracy_ci.lo, caught.tier1.accuracy);
  EXPECT_GE(caught.tier1.accuracy_ci.hi, caught.tier1.accuracy);

  ASSERT_EQ(report->by_difficulty.size(), 2u);
  EXPECT_EQ(report->by_difficulty[0].difficulty, "easy");
  EXPECT_EQ(report->by_difficulty[0].items + report->by_difficulty[1].items, 600u);
  EXPECT_EQ(report->by_slice_difficulty.size(), 6u);
  EXPECT_EQ(report->overall.items, 600u);

  // The gate of one policy only: the cascade's loss on 'hidden' alone, or tier 1's two.
  options.gate_tier1 = false;
  auto cascade_only = evaluate_slices(items, options);
  ASSERT_TRUE(cascade_only.is_ok());
  EXPECT_FALSE(cascade_only->pass);
  ASSERT_EQ(cascade_only->flags.size(), 1u);
  EXPECT_EQ(cascade_only->flags[0].policy, "cascade");
  options.gate_tier1 = true;
  options.gate_cascade = false;
  auto tier1_only = evaluate_slices(items, options);
  ASSERT_TRUE(tier1_only.is_ok());
  EXPECT_EQ(tier1_only->flags.size(), 2u);
  for (const SliceFlag& f : tier1_only->flags) EXPECT_EQ(f.policy, "tier1");
  options.gate_cascade = true;

  // A wide enough margin passes everything.
  options.margin_points = 60;
  auto lenient = evaluate_slices(items, options);
  ASSERT_TRUE(lenient.is_ok());
  EXPECT_TRUE(lenient->pass);
  EXPECT_TRUE(lenient->flags.empty());
}

TEST(Eval, ReportTableListsEveryGroupAndTheVerdict) {
  std::vector<EvalItem> items;
  for (int i = 0; i < 40; ++i) {
    EvalItem e;
    e.slice = i % 2 ? "poetry" : "sums";
    e.difficulty = i % 4 < 2 ? "easy" : "hard";
    e.outcome.top_correct = true;
    e.outcome.tier1_correct = e.slice == "sums" || i % 3 == 0;
    e.outcome.score = 0.8;
    e.outcome.tier1_cost = 1;
    e.outcome.top_cost = 4;
    items.push_back(e);
  }
  auto report = evaluate_slices(items, {});
  ASSERT_TRUE(report.is_ok());
  const std::string table = eval_report_table(*report);
  for (const char* needle : {"slice poetry", "slice sums", "difficulty easy", "difficulty hard",
                             "poetry / hard", "FAIL", "on slice 'poetry'", "tier 1 alone loses"}) {
    EXPECT_NE(table.find(needle), std::string::npos) << needle << "\n" << table;
  }
  EXPECT_EQ(table.find("on slice 'sums'"), std::string::npos) << table;
}

TEST(Eval, LossOfExactlyTheMarginIsNotFlagged) {
  std::vector<EvalItem> items;
  for (int i = 0; i < 50; ++i) {
    EvalItem e;
    e.slice = "s";
    e.outcome.top_correct = true;
    e.outcome.tier1_correct = i != 0;  // 1 of 50 wrong: a loss of exactly 2 points
    e.outcome.score = 0.9;
    items.push_back(e);
  }
  EvalOptions options;
  options.margin_points = 2.0;
  auto report = evaluate_slices(items, options);
  ASSERT_TRUE(report.is_ok());
  EXPECT_TRUE(report->pass);
  options.margin_points = 1.9;
  report = evaluate_slices(items, options);
  ASSERT_TRUE(report.is_ok());
  EXPECT_EQ(report->flags.size(), 2u);  // cascade and tier 1 alone
}

TEST(Eval, BaselineGateCatchesASliceTheOldStudentServedBetter) {
  // Slice "kept": the top tier is right on 70 % of it; the old student was right on 90 % and the
  // scorer kept those answers; the new student is right on 75 %. Against the top tier the new
  // cascade gains, so the top-tier gate alone passes; against the old cascade it loses 15
  // points, which the baseline gate must flag. Slice "same": old and new are identical.
  std::vector<EvalItem> items;
  for (int i = 0; i < 200; ++i) {
    EvalItem e;
    e.slice = i < 100 ? "kept" : "same";
    const int k = i % 100;
    e.outcome.top_correct = e.slice == "same" || k < 70;
    e.outcome.tier1_correct = e.slice == "same" ? k < 99 : k < 75;
    e.outcome.score = e.outcome.tier1_correct ? 0.9 : 0.1;
    e.outcome.tier1_cost = 1;
    e.outcome.top_cost = 9;
    CalibrationItem old = e.outcome;
    if (e.slice == "kept") {
      old.tier1_correct = k < 90;
      old.score = old.tier1_correct ? 0.8 : 0.2;
    }
    e.baseline = old;
    items.push_back(e);
  }
  EvalOptions options;
  options.threshold = 0.5;
  options.baseline_threshold = 0.5;
  options.margin_points = 2.0;
  auto report = evaluate_slices(items, options);
  ASSERT_TRUE(report.is_ok()) << report.status().to_string();
  EXPECT_FALSE(report->pass);
  std::set<std::tuple<std::string, std::string, std::string>> flagged;
  for (const SliceFlag& f : report->flags) flagged.insert({f.slice, f.policy, f.against});
  const std::set<std::tuple<std::string, std::string, std::string>> expected = {
      {"kept", "cascade", "baseline"}, {"kept", "tier1", "baseline"}};
  EXPECT_EQ(flagged, expected);
  for (const SliceFlag& f : report->flags) EXPECT_NEAR(f.loss_points, 15.0, 1e-9);
  const GroupEval& kept = report->by_slice[0];
  ASSERT_EQ(kept.slice, "kept");
  ASSERT_TRUE(kept.baseline_cascade.has_value());
  EXPECT_EQ(kept.baseline_cascade->correct, 90u);
  EXPECT_EQ(kept.cascade.correct, 75u);
  EXPECT_EQ(report->by_slice[1].baseline_cascade->correct, report->by_slice[1].cascade.correct);
  const std::string table = eval_report_table(*report);
  for (const char* needle : {"against the baseline", "against the baseline's cascade on slice 'kept'",
                             "-15.0"}) {
    EXPECT_NE(table.find(needle), std::string::npos) << needle << "\n" << table;
  }

  // Without the baseline the same items pass: the top tier is no stand-in for the old student.
  for (EvalItem& e : items) e.baseline.reset();
  auto alone = evaluate_slices(items, options);
  ASSERT_TRUE(alone.is_ok());
  EXPECT_TRUE(alone->pass);
  EXPECT_EQ(eval_report_table(*alone).find("against the baseline"), std::string::npos);

  // A baseline on some items only is a caller's bug, said as such.
  items[3].baseline = items[3].outcome;
  auto partial = evaluate_slices(items, options);
  EXPECT_EQ(partial.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(partial.status().message().find("some items but not all"), std::string::npos);
}

TEST(Eval, BadInputIsAStatus) {
  EXPECT_EQ(evaluate_slices({}, {}).status().code(), ErrorCode::kInvalidArgument);
  EvalItem e;
  e.outcome.score = -0.1;
  EXPECT_EQ(evaluate_slices({e}, {}).status().code(), ErrorCode::kInvalidArgument);
  e.outcome.score = 0.5;
  EvalOptions options;
  options.margin_points = -1;
  EXPECT_EQ(evaluate_slices({e}, options).status().code(), ErrorCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// Early escalation replay
// ---------------------------------------------------------------------------------------------

std::vector<AnswerToken> answer_tokens(const std::vector<float>& logprobs) {
  std::vector<AnswerToken> out;
  for (float lp : logprobs) {
    AnswerToken t;
    t.piece = "x";
    t.logprob = lp;
    out.push_back(t);
  }
  return out;
}

TEST(EarlyEscalation, StopsWhenTheWindowMeanFallsBelowTheFloor) {
  const auto t = answer_tokens({-0.1f, -0.1f, -3.0f, -3.0f, -0.1f});
  EXPECT_EQ(early_stop_point(t, 1, -1.0), 3) << "the first token below the floor";
  EXPECT_EQ(early_stop_point(t, 2, -1.0), 3) << "mean(-0.1, -3) = -1.55";
  EXPECT_EQ(early_stop_point(t, 3, -1.0), 3) << "mean(-0.1, -0.1, -3) = -1.07";
  EXPECT_EQ(early_stop_point(t, 4, -1.0), 4) << "mean of the first four = -1.55";
  EXPECT_EQ(early_stop_point(t, 2, -5.0), 0) << "never below -5";
  EXPECT_EQ(early_stop_point(t, 6, -0.01), 0) << "an answer shorter than the window";
  EXPECT_EQ(early_stop_point(answer_tokens({-INFINITY}), 1, -50.0), 1) << "-inf counts as -100";
  EXPECT_EQ(early_stop_point({}, 1, -0.01), 0);
}

ItemRun item_run(const std::vector<float>& logprobs, double score, bool tier1_right,
                 bool top_right) {
  ItemRun r;
  r.tier1.tokens = answer_tokens(logprobs);
  r.tier1.tokens_in = 10;
  r.tier1.tokens_out = static_cast<int64_t>(logprobs.size());
  r.tier1.cost = 10.0 + static_cast<double>(logprobs.size());  // 1 per token
  r.tier1.latency_ms = 2.0 * static_cast<double>(logprobs.size());
  r.top.cost = 100.0;
  r.score = score;
  r.tier1_correct = tier1_right;
  r.top_correct = top_right;
  return r;
}

TEST(EarlyEscalation, SweepPricesTheCutAndEscalatesStoppedItems) {
  const std::vector<ItemRun> runs = {
      item_run({-0.1f, -0.1f, -0.1f, -0.1f}, 0.9, true, true),       // confident, kept
      item_run({-0.1f, -3.0f, -3.0f, -3.0f}, 0.2, false, true),      // collapses: cut at 2
      item_run({-2.0f, -0.1f, -0.1f, -0.1f}, 0.9, true, false),      // unsure start, kept, right
  };
  EarlyEscalationSweep grid;
  grid.windows = {1};
  grid.floors = {-1.0, -10.0};
  const auto price = [](int64_t in, int64_t out) { return static_cast<double>(in + out); };
  const auto points = sweep_early_escalation(runs, 0.5, grid, price);
  ASSERT_EQ(points.size(), 2u);

  const EarlyEscalationPoint& p = points[0];  // floor -1: items 2 (at token 2) and 3 (token 1)
  EXPECT_EQ(p.items, 3u);
  EXPECT_EQ(p.stopped, 2u);
  EXPECT_EQ(p.stopped_needlessly, 1u) << "item 3 was kept and right without the floor";
  EXPECT_EQ(p.tier1_tokens, 12);
  EXPECT_EQ(p.tier1_tokens_saved, 2 + 3);
  EXPECT_DOUBLE_EQ(p.tier1_ms_saved, 2.0 * 2 + 2.0 * 3);
  // Without: item 1 kept (14), item 2 escalated (14 + 100), item 3 kept (14): all right.
  EXPECT_DOUBLE_EQ(p.cost_per_item_without, (14.0 + 114.0 + 14.0) / 3);
  EXPECT_DOUBLE_EQ(p.accuracy_without, 1.0);
  // With: item 2 pays 12 + 100, item 3 pays 11 + 100 and takes the top tier's wrong answer.
  EXPECT_DOUBLE_EQ(p.cost_per_item, (14.0 + 112.0 + 111.0) / 3);
  EXPECT_DOUBLE_EQ(p.accuracy, 2.0 / 3);
  EXPECT_DOUBLE_EQ(p.top_cost_per_item, 100.0);

  const EarlyEscalationPoint& off = points[1];  // floor -10 never fires: same as without
  EXPECT_EQ(off.stopped, 0u);
  EXPECT_EQ(off.tier1_tokens_saved, 0);
  EXPECT_DOUBLE_EQ(off.cost_per_item, off.cost_per_item_without);
  EXPECT_DOUBLE_EQ(off.accuracy, off.accuracy_without);
  EXPECT_NE(early_escalation_table(points).find("window"), std::string::npos);
}

}  // namespace
}  // namespace frugal::cascade
