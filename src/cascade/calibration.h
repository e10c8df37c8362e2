// Calibration and evaluation arithmetic for the cascade: the cost–quality curve over scorer
// thresholds, the choice of the cheapest threshold that meets a quality target with 95 %
// confidence, and per-slice evaluation with the distillation-gate verdict. Model-free: callers
// run the tiers and pass per-item outcomes. Method and bound: docs/CALIBRATION.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cascade/stats.h"
#include "util/status.h"

namespace frugal::cascade {

// One item's outcome on both tiers. For an item with no reference answer the top tier's
// answer is the reference: top_correct = true and tier1_correct = "tier 1 agrees with it".
struct CalibrationItem {
  bool tier1_correct = false;
  bool top_correct = false;
  double score = 0;       // the scorer's P(tier 1 is good enough), in [0, 1]
  double tier1_cost = 0;  // dollars (or any unit) for tier 1 on this item, >= 0
  double top_cost = 0;    // the same for the top tier, >= 0
  // The item's slice, for CalibrationOptions::slice_margin_points; may be empty.
  std::string slice;
};

// The cascade keeps tier 1's answer when score >= threshold and escalates otherwise.
inline bool cascade_escalates(double score, double threshold) { return !(score >= threshold); }

enum class BoundMethod : uint8_t {
  // Mean of the paired differences minus z · standard error (default), over the items plus
  // z²/2 pseudo-items at each end of the differences' range (Agresti–Coull), so that a sample
  // that shows no error is not taken for proof of none.
  kNormal,
  // Percentile of the bootstrap distribution of the mean difference, never above kNormal's.
  kBootstrap,
};
const char* bound_method_name(BoundMethod method);  // "normal", "bootstrap"

// How calibrate_threshold searches the thresholds and judges the claims it makes.
enum class SearchRule : uint8_t {
  // Default. The family of claims — the overall target and, with a slice margin, each slice's
  // expected loss <= the margin — gets one p-value each at every threshold, Holm–Bonferroni
  // over the family, so that the claims hold together. Thresholds are tested in a fixed
  // sequence, from 1 (escalate everything) downwards, and the search stops at the first that
  // fails: only the first threshold whose claims are false can be wrongly passed, so the
  // search spends no confidence (docs/CALIBRATION.md).
  kSimultaneous,
  // Before issue 16: each threshold's bounds on their own, the cheapest passing threshold.
  kPerPoint,
};
const char* search_rule_name(SearchRule rule);  // "simultaneous", "per-point"

struct CalibrationOptions {
  // Wanted cascade accuracy as a fraction of the top tier's accuracy, > 0. Above 1 asks the
  // cascade to beat the top tier (possible when tier 1 is right where the top tier is not).
  double target = 0.98;
  // One-sided confidence that the chosen threshold meets the target, in (0, 1).
  double confidence = 0.95;
  BoundMethod bound = BoundMethod::kNormal;
  // For kBootstrap; the sweep keeps items x resamples 4-byte counts (16 MB for 2000 items).
  int bootstrap_resamples = 2000;
  uint64_t seed = 1;               // for kBootstrap
  // When >= 0, a threshold also has to keep every slice's cascade accuracy within this many
  // percentage points of the top tier's on that slice (point estimates on the items given:
  // the distillation gate of frugal eval, applied while choosing). < 0: no slice constraint.
  double slice_margin_points = -1;
  // With a slice margin: test it on each slice's one-sided upper confidence bound (at
  // `confidence`, normal approximation over the paired per-item losses) instead of the point
  // estimate. The point estimate favours the threshold where a slice's noise happened to help.
  bool slice_margin_bound = false;
  SearchRule rule = SearchRule::kSimultaneous;
  // With a slice margin and check_items > 0: a threshold also needs the estimated chance that
  // a fresh sample of check_items items shows some slice more than the margin below the top
  // tier to be <= check_risk (CurvePoint::check_fail_estimate). An estimate, not a bound.
  double check_items = 0;
  double check_risk = 0.10;
};

// The cascade at one threshold, over the held-out items.
struct CurvePoint {
  double threshold = 0;
  size_t escalated = 0;          // items sent to the top tier
  double escalation_rate = 0;    // escalated / items
  double accuracy = 0;           // fraction of items the cascade answers correctly
  double relative_quality = 0;   // accuracy / top-only accuracy
  // Mean and one-sided lower confidence bound of d_i = c_i - target · t_i, where c_i and t_i
  // are 1 when the cascade / the top tier is right on item i. The target is met with the
  // requested confidence when lower_bound >= 0.
  double margin = 0;
  double lower_bound = 0;
  double cost_per_item = 0;      // tier 1 always, plus the top tier when escalated
  double relative_cost = 0;      // cost_per_item / top-only cost per item
  // The slice where the cascade is furthest below the top tier, and by how many points
  // (100 · (top − cascade) on that slice; <= 0 when no slice is below). Empty slice names:
  // the items had none.
  std::string worst_slice;
  double worst_slice_loss_points = 0;
  // The largest one-sided upper confidence bound of a slice's loss, in points (computed
  // always; the slice margin tests it when CalibrationOptions::slice_margin_bound is set).
  double worst_slice_loss_bound_points = 0;
  // kSimultaneous: the largest Holm-adjusted p-value over the family {overall, each slice}
  // (the point's claims hold together when it is <= 1 - confidence) and the claim it belongs
  // to ("overall" or a slice's name).
  double family_p = 1;
  std::string binding_claim;
  // With check_items: the estimated chance that a fresh sample of that many items shows some
  // slice more than the margin below the top tier (each slice's kept-and-lost and
  // kept-and-won rates from these items, half a pseudo-item added to the lost; Poisson
  // counts on the slice's binomial share of the sample).
  double check_fail_estimate = 0;
  // kSimultaneous: family_p <= 1 - confidence (and the check estimate within check_risk).
  // kPerPoint: lower_bound >= 0, and with a slice margin, worst_slice_loss_points (or, with
  // slice_margin_bound, worst_slice_loss_bound_points) <= that margin.
  bool meets_target = false;
};

struct CalibrationResult {
  size_t items = 0;
  double target = 0;
  double confidence = 0;
  BoundMethod bound = BoundMethod::kNormal;
  double tier1_accuracy = 0;      // tier 1 alone
  double top_accuracy = 0;        // top tier alone
  double top_cost_per_item = 0;   // top tier alone
  double tier1_cost_per_item = 0;
  // One point per candidate threshold (0, every distinct score, 1), ascending by threshold;
  // cost never decreases along it.
  std::vector<CurvePoint> curve;
  // found: curve[chosen] is the cheapest point that meets the target (ties: the highest lower
  // bound). Not found: curve[chosen] is the point with the highest lower bound (the closest
  // to meeting it).
  bool found = false;
  size_t chosen = 0;
  SearchRule rule = SearchRule::kSimultaneous;
  size_t family_size = 1;  // claims under Holm: 1 + slices with a slice margin, else 1
  // One sentence for people: the choice, or "no threshold meets ... ; the best is ...".
  std::string summary;
  // What the choice guarantees, in one sentence a user can check (guarantee_sentence).
  std::string guarantee;

  const CurvePoint& chosen_point() const { return curve[chosen]; }
};

// The curve and the chosen threshold. kInvalidArgument on no items, a score outside [0, 1] or
// NaN, a negative or non-finite cost, options out of range, or a top tier that is right on no
// item (relative quality is then undefined).
Result<CalibrationResult> calibrate_threshold(const std::vector<CalibrationItem>& items,
                                              const CalibrationOptions& options = {});

// "With 95 % confidence, simultaneously: ..." — what `r` (from calibrate_threshold with
// `options`) guarantees, or "No guarantee: ..." when nothing passed or the rule is per-point.
std::string guarantee_sentence(const CalibrationResult& r, const CalibrationOptions& options);

// The cascade at one threshold (the same arithmetic as one curve point); items must be
// valid (see calibrate_threshold) and top accuracy > 0 — a bug otherwise.
CurvePoint evaluate_threshold(const std::vector<CalibrationItem>& items, double threshold,
                              const CalibrationOptions& options = {});

// ---------------------------------------------------------------------------------------------
// Per-slice evaluation (frugal eval)
// ---------------------------------------------------------------------------------------------

struct EvalItem {
  std::string slice;       // task family, e.g. "arithmetic"
  std::string difficulty;  // e.g. "easy", "hard"; may be empty
  CalibrationItem outcome;
  // The same item through the baseline cascade (the student serving today), when the gate
  // compares a new one with it: `frugal eval --baseline OLD.toml`.
  std::optional<CalibrationItem> baseline;
};

struct EvalOptions {
  double threshold = 0.5;          // the cascade's scorer threshold
  double margin_points = 2.0;      // allowed accuracy loss vs the top tier, percentage points
  double confidence = 0.95;        // for the Wilson intervals (two-sided)
  // Which policies the gate holds to the margin on every slice: the cascade (is it ready to
  // serve?) and tier 1 alone (is the distilled student itself faithful?). Both by default.
  bool gate_cascade = true;
  bool gate_tier1 = true;
  // With a baseline on every item: its scorer threshold, and the gated policies are also held
  // to the margin against the baseline's own (no slice may regress from what serves today).
  double baseline_threshold = 0.5;
};

// One policy (tier 1 alone, top tier alone, or the cascade) on a group of items.
struct PolicyEval {
  size_t correct = 0;
  size_t items = 0;
  double accuracy = 0;
  Interval accuracy_ci;          // Wilson interval at EvalOptions::confidence
  double escalation_rate = 0;    // fraction of items answered by the top tier (1 for top alone)
  double cost_per_item = 0;
  double total_cost = 0;
  double cost_saved = 0;         // 1 - total_cost / top-only total cost (0 when that is 0)
};

struct GroupEval {
  std::string slice;       // "" when the group spans all slices
  std::string difficulty;  // "" when the group spans all difficulties
  size_t items = 0;
  PolicyEval tier1, top, cascade;
  // The baseline's tier 1 alone and cascade on the same items (EvalItem::baseline), if any.
  std::optional<PolicyEval> baseline_tier1, baseline_cascade;
};

// A slice where a policy is more than margin_points below the top tier.
struct SliceFlag {
  std::string slice;
  std::string policy;  // "cascade" or "tier1"
  std::string against = "top";  // "top": the top tier; "baseline": the baseline's same policy
  double loss_points = 0;  // (reference accuracy - policy accuracy) · 100
};

struct EvalReport {
  double threshold = 0;
  double margin_points = 0;
  GroupEval overall;
  std::vector<GroupEval> by_slice;             // sorted by slice name
  std::vector<GroupEval> by_difficulty;        // sorted by difficulty name
  std::vector<GroupEval> by_slice_difficulty;  // sorted by (slice, difficulty)
  std::vector<SliceFlag> flags;                // in slice order, cascade before tier1
  bool pass = true;                            // no flags
};

// kInvalidArgument on no items, a bad score or cost (as calibrate_threshold), a negative margin,
// a confidence outside (0, 1), or a baseline on some items but not all.
Result<EvalReport> evaluate_slices(const std::vector<EvalItem>& items, const EvalOptions& options);

}  // namespace frugal::cascade
