// `frugal calibrate`: runs both tiers on task items, scores every item out of fold (k-fold
// cross-fitting by slice; or the old half split), chooses on all of them the cheapest threshold
// whose claims — quality within --target of the top tier's, each slice within --slice-margin —
// hold together with 95 % confidence (Holm, fixed-sequence search), and writes it with the
// scorer fitted on all items into the config. Method: docs/CALIBRATION.md; outputs:
// docs/CASCADE.md.

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cascade/cache_eval.h"
#include "cascade/calibration.h"
#include "cascade/cascade.h"
#include "cascade/config.h"
#include "cascade/shadow.h"
#include "cascade/curve.h"
#include "cascade/stats.h"
#include "cascade/task_items.h"
#include "cli/commands.h"
#include "cli/flags.h"
#include "cli/task_runs.h"
#include "util/file_io.h"

namespace frugal::cli {

namespace {

namespace fs = std::filesystem;

struct CalibrateArgs {
  std::string config = "frugal.toml";
  std::string data;
  double target = 0.98;
  double slice_margin = -1;  // < 0: no per-slice constraint
  bool slice_bound = false;  // test the slice margin on each slice's 95 % upper bound
  int64_t n = 0;  // 0: every item
  int64_t seed = 1;
  std::string csv;  // default: calibration.csv beside the config
  std::string svg;  // default: calibration.svg beside the config
  std::string features;  // JSONL of every item's scorer features, when set
  bool dry_run = false;
  int64_t max_tokens = 0;
  int threads = 0;
  int64_t ctx = 0;
  int parallel = 1;
  std::string kv_type = "f16";
  int64_t folds = 5;        // cross-fitting folds
  bool half_split = false;  // fit on one half, choose on the other (before issue 16)
  std::string rule = "simultaneous";
  double check_items = 0;   // > 0: also estimate a fresh check of this many items
  double check_risk = 0.10;
};

bool is_header(const std::string& line) {
  const size_t i = line.find_first_not_of(" \t");
  return i != std::string::npos && line[i] == '[';
}

// The table name of a header line ("cascade.scorer" for "[cascade.scorer]  # x"); "" if none.
std::string header_name(const std::string& line) {
  const size_t open = line.find_first_not_of(" \t");
  if (open == std::string::npos || line[open] != '[') return "";
  size_t start = open + 1;
  if (start < line.size() && line[start] == '[') ++start;
  const size_t close = line.find(']', start);
  if (close == std::string::npos) return "";
  std::string name = line.substr(start, close - start);
  std::string out;
  for (char ch : name) {
    if (ch != ' ' && ch != '\t') out += ch;
  }
  return out;
}

bool is_key_line(const std::string& line, const std::string& key) {
  const size_t i = line.find_first_not_of(" \t");
  if (i == std::string::npos || line.compare(i, key.size(), key) != 0) return false;
  const size_t j = line.find_first_not_of(" \t", i + key.size());
  return j != std::string::npos && line[j] == '=';
}

bool is_comment_or_blank(const std::string& line) {
  const size_t i = line.find_first_not_of(" \t\r");
  return i == std::string::npos || line[i] == '#';
}

std::string format_number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  std::string s = buf;
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

// The config text with `threshold` set in [cascade] and the [cascade.scorer] tables replaced by
// `scorer_toml`; every other line kept as it was.
std::string rewrite_config(const std::string& text, double threshold,
                           const std::string& scorer_toml) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  // Drop the old scorer: [cascade.scorer*] tables, and an inline `scorer = {...}` in [cascade].
  std::vector<std::string> kept;
  std::string table;
  bool dropping = false;
  long scorer_at = -1;  // where the old scorer tables were
  for (const std::string& line : lines) {
    if (is_header(line)) {
      table = header_name(line);
      dropping = table == "cascade.scorer" || table.rfind("cascade.scorer.", 0) == 0;
      if (dropping && scorer_at < 0) scorer_at = static_cast<long>(kept.size());
    }
    if (dropping) continue;
    if (table == "cascade" && is_key_line(line, "scorer")) continue;
    kept.push_back(line);
  }
  // Set the threshold.
  long cascade_header = -1, cascade_end = -1;
  bool threshold_set = false;
  table.clear();
  for (size_t i = 0; i < kept.size(); ++i) {
    if (is_header(kept[i])) {
      if (table == "cascade" && cascade_end < 0) cascade_end = static_cast<long>(i);
      table = header_name(kept[i]);
      if (table == "cascade" && cascade_header < 0) cascade_header = static_cast<long>(i);
      continue;
    }
    if (table == "cascade" && !threshold_set && is_key_line(kept[i], "threshold")) {
      kept[i] = "threshold = " + format_number(threshold);
      threshold_set = true;
    }
  }
  if (cascade_header >= 0 && cascade_end < 0) cascade_end = static_cast<long>(kept.size());
  if (cascade_header < 0) {
    // No [cascade] table: add one before the first table (root keys must stay first).
    long at = static_cast<long>(kept.size());
    for (size_t i = 0; i < kept.size(); ++i) {
      if (is_header(kept[i])) {
        at = static_cast<long>(i);
        break;
      }
    }
    kept.insert(kept.begin() + at, {"[cascade]", "threshold = " + format_number(threshold), ""});
    if (scorer_at >= at) scorer_at += 3;
    cascade_end = at + 2;
  } else if (!threshold_set) {
    kept.insert(kept.begin() + cascade_header + 1, "threshold = " + format_number(threshold));
    if (scorer_at > cascade_header) ++scorer_at;
    ++cascade_end;
  }
  // Place the scorer where it was, else at the end of [cascade] (before the comments that
  // introduce the next table).
  long at = scorer_at;
  if (at < 0) {
    at = cascade_end;
    while (at > cascade_header + 1 && is_comment_or_blank(kept[at - 1]) &&
           kept[at - 1].find_first_not_of(" \t\r") != std::string::npos) {
      --at;
    }
  }
  std::vector<std::string> scorer_lines;
  std::istringstream sin(scorer_toml);
  for (std::string line; std::getline(sin, line);) scorer_lines.push_back(line);
  scorer_lines.emplace_back("");
  if (at > 0 && !is_comment_or_blank(kept[at - 1])) scorer_lines.insert(scorer_lines.begin(), "");
  kept.insert(kept.begin() + at, scorer_lines.begin(), scorer_lines.end());
  std::string out;
  for (const std::string& line : kept) out += line + "\n";
  return out;
}

std::string auroc_table(const std::vector<cascade::ScorerAuroc>& rows, const char* held_out) {
  std::string out = std::string("scorer                 AUROC (") + held_out + ")\n";
  for (const auto& r : rows) {
    char buf[128];
    std::snprintf(buf, sizeof(buf), "%-22s %.3f%s\n", r.name.c_str(), r.auroc,
                  r.flipped ? "  (negated)" : "");
    out += buf;
  }
  return out;
}

// One JSON line per item: its id, slice, where it fell (`fold`: its cross-fitting fold, or
// `half`: "fit" or "threshold"), whether each tier was right, both costs, and tier 1's scorer
// features by name, so a scorer can be studied or fitted outside Frugal.
Status write_features(const std::string& path, const std::vector<cascade::TaskItem>& items,
                      const std::vector<cascade::ItemRun>& runs, const char* where_key,
                      const std::vector<nlohmann::json>& where) {
  const std::vector<std::string>& names = cascade::scorer_feature_names();
  std::string text;
  for (size_t i = 0; i < items.size(); ++i) {
    nlohmann::json features = nlohmann::json::object();
    for (size_t k = 0; k < names.size() && k < runs[i].features.size(); ++k) {
      features[names[k]] = runs[i].features[k];
    }
    nlohmann::json line = {{"id", items[i].id},
                           {"slice", items[i].slice},
                           {"difficulty", items[i].difficulty},
                           {where_key, where[i]},
                           {"tier1_correct", runs[i].tier1_correct},
                           {"top_correct", runs[i].top_correct},
                           {"tier1_cost", runs[i].tier1.cost},
                           {"top_cost", runs[i].top.cost},
                           {"features", features}};
    text += line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  return cascade::write_text_file(path, text);
}

// The config's scorer and the scores the threshold is chosen on. Cross-fitting (default): each
// item scored by a model fitted on the other folds, the threshold chosen on all items, the
// config's scorer fitted on all of them. Half split: the scorer fitted on one half (split by
// slice), the threshold chosen on the other.
struct ScoredItems {
  cascade::LogisticModel model;
  std::vector<cascade::CalibrationItem> cal;
  const char* where_key = "fold";
  std::vector<nlohmann::json> where;  // per item: its fold, or "fit" / "threshold"
  std::string how;                    // for the report
  std::string auroc_text;
};

Result<ScoredItems> score_items(const std::vector<cascade::TaskItem>& items,
                                const std::vector<cascade::ItemRun>& runs, const CalibrateArgs& a) {
  const std::vector<std::string>& names = cascade::scorer_feature_names();
  const uint64_t seed = static_cast<uint64_t>(a.seed);
  std::vector<std::string> strata;
  std::vector<std::vector<double>> x;
  std::vector<bool> labels;
  for (size_t i = 0; i < items.size(); ++i) {
    strata.push_back(items[i].slice);
    x.push_back(runs[i].features);
    labels.push_back(runs[i].tier1_correct);
  }
  ScoredItems out;
  std::vector<double> oof;
  std::vector<size_t> fit_idx, eval_idx;  // the AUROC table's split: the halves, or fold 1
  if (a.half_split) {
    const cascade::SplitIndices split = cascade::stratified_split(strata, 0.5, seed);
    fit_idx = split.first;
    eval_idx = split.second;
    out.where_key = "half";
    out.where.assign(items.size(), "fit");
    for (size_t i : split.second) out.where[i] = "threshold";
  } else {
    const size_t k = static_cast<size_t>(a.folds);
    const std::vector<size_t> folds = cascade::stratified_folds(strata, k, seed);
    auto scores = cascade::cross_fit_scores(x, labels, folds, k, names);
    if (!scores.is_ok()) return scores.status();
    oof = std::move(*scores);
    for (size_t i = 0; i < items.size(); ++i) {
      out.where.push_back(folds[i]);
      (folds[i] == 0 ? eval_idx : fit_idx).push_back(i);
    }
  }
  std::vector<std::vector<double>> fit_x, eval_x;
  std::vector<bool> fit_labels, eval_labels;
  for (size_t i : fit_idx) {
    fit_x.push_back(x[i]);
    fit_labels.push_back(labels[i]);
  }
  for (size_t i : eval_idx) {
    eval_x.push_back(x[i]);
    eval_labels.push_back(labels[i]);
  }
  auto part = cascade::LogisticModel::fit(fit_x, fit_labels, names);
  if (!part.is_ok()) return part.status();
  auto add = [&](size_t i, double score) {
    out.cal.push_back({runs[i].tier1_correct, runs[i].top_correct, score, runs[i].tier1.cost,
                       runs[i].top.cost, items[i].slice});
  };
  char buf[256];
  if (a.half_split) {
    out.model = *part;
    for (size_t i : eval_idx) add(i, out.model.predict(x[i]));
    std::snprintf(buf, sizeof(buf), "scorer fitted on %zu, threshold chosen on %zu (split by "
                  "slice, seed %lld)", fit_idx.size(), eval_idx.size(), (long long)a.seed);
  } else {
    auto all = cascade::LogisticModel::fit(x, labels, names);
    if (!all.is_ok()) return all.status();
    out.model = *all;
    for (size_t i = 0; i < items.size(); ++i) add(i, oof[i]);
    std::snprintf(buf, sizeof(buf), "threshold chosen on the out-of-fold scores of all %zu "
                  "(%lld-fold cross-fitting by slice, seed %lld), scorer fitted on all",
                  items.size(), (long long)a.folds, (long long)a.seed);
  }
  out.how = buf;
  auto aurocs = cascade::compare_scorer_with_baselines(
      *part, fit_x, fit_labels, eval_x, eval_labels, {"mean_logprob", "answer_tokens"}, seed);
  out.auroc_text = aurocs.is_ok() ? auroc_table(*aurocs, a.half_split ? "held-out half"
                                                                      : "fold 1 held out")
                                  : "AUROC table unavailable: " + aurocs.status().message() + "\n";
  if (!a.half_split) {
    if (auto auc = cascade::auroc(oof, labels); auc.is_ok()) {
      std::snprintf(buf, sizeof(buf), "out-of-fold scores of all %zu items: AUROC %.3f\n",
                    items.size(), *auc);
      out.auroc_text += buf;
    }
  }
  return out;
}

int run_calibrate(const CalibrateArgs& a) {
  if (!(a.target > 0 && a.target <= 1.5)) {
    std::fprintf(stderr,
                 "frugal calibrate: --target %g is out of range: it is the wanted fraction of "
                 "the top tier's accuracy, in (0, 1.5] (e.g. 0.98)\n",
                 a.target);
    return 2;
  }
  if (a.slice_bound && a.slice_margin < 0) {
    std::fprintf(stderr, "frugal calibrate: --slice-bound needs --slice-margin P (the loss in "
                         "points that each slice's upper bound must stay within)\n");
    return 2;
  }
  TaskRunFlags flags{a.config, a.data, a.n, a.threads, a.ctx, a.max_tokens, 2};
  flags.kv_type = a.kv_type;
  int exit_code = 0;
  auto setup = load_task_run("calibrate", flags, &exit_code);
  if (!setup) return exit_code;
  std::vector<cascade::TaskItem>* items = &setup->items;
  cascade::Cascade* c = setup->cascade.get();
  const int64_t max_tokens = setup->max_tokens;
  const cascade::Scorer& scorer = setup->scorer;
  if (items->size() < 4) {
    std::fprintf(stderr, "frugal calibrate: %s: %zu items; at least 4 are needed\n",
                 a.data.c_str(), items->size());
    return 2;
  }
  const fs::path config_dir = fs::path(a.config).parent_path();
  const std::string csv_path = !a.csv.empty() ? a.csv : (config_dir / "calibration.csv").string();
  const std::string svg_path = !a.svg.empty() ? a.svg : (config_dir / "calibration.svg").string();

  double seconds = 0;
  auto ran = run_task_items("calibrate", *c, scorer, *items, max_tokens, a.data, &seconds, a.parallel);
  if (!ran) return 1;
  const std::vector<cascade::ItemRun>& runs = *ran;
  auto scored = score_items(*items, runs, a);
  if (!scored.is_ok()) {
    std::fprintf(stderr, "frugal calibrate: fitting the scorer: %s\n",
                 scored.status().to_string().c_str());
    return 1;
  }
  const cascade::LogisticModel* model = &scored->model;
  const std::vector<cascade::CalibrationItem>& cal = scored->cal;
  cascade::CalibrationOptions cal_options;
  cal_options.target = a.target;
  cal_options.slice_margin_points = a.slice_margin;
  cal_options.slice_margin_bound = a.slice_bound;
  cal_options.rule =
      a.rule == "per-point" ? cascade::SearchRule::kPerPoint : cascade::SearchRule::kSimultaneous;
  cal_options.check_items = a.check_items;
  cal_options.check_risk = a.check_risk;
  auto result = cascade::calibrate_threshold(cal, cal_options);
  if (!result.is_ok()) {
    std::fprintf(stderr, "frugal calibrate: %s\n", result.status().to_string().c_str());
    return 1;
  }

  if (!a.features.empty()) {
    if (Status s = write_features(a.features, *items, runs, scored->where_key, scored->where);
        !s.is_ok()) {
      std::fprintf(stderr, "frugal calibrate: %s\n", s.to_string().c_str());
      return 1;
    }
  }

  std::printf("%zu items from %s in %.1f s: %s\n", runs.size(), a.data.c_str(), seconds,
              scored->how.c_str());
  std::printf("tier 1 '%s' accuracy %.3f, top tier '%s' accuracy %.3f (%s)\n\n",
              c->tier1().name().c_str(), result->tier1_accuracy,
              c->top_tier().name().c_str(), result->top_accuracy,
              a.half_split ? "threshold half" : "all items");
  std::printf("%s\n", scored->auroc_text.c_str());
  std::printf("%s", cascade::curve_table(*result).c_str());
  if (!result->summary.empty() && result->summary.back() != '\n') std::printf("\n");
  std::printf("\n%s\n", result->guarantee.c_str());
  if (c->cache() != nullptr && result->found) {
    // The cache tiers under the new scorer and threshold: every item replayed in order.
    const double chosen = result->chosen_point().threshold;
    const cascade::LogisticModel fitted = *model;
    c->set_scorer([fitted](const std::vector<double>& f) { return fitted.predict(f); });
    c->set_threshold(chosen);
    std::vector<double> scores, tier1_costs;
    for (const cascade::ItemRun& r : runs) {
      scores.push_back(fitted.predict(r.features));
      tier1_costs.push_back(r.tier1.cost);
    }
    auto ce = cascade::evaluate_cache(
        *c, cascade::cascade_replay_items(*items, runs, scores, tier1_costs, chosen), max_tokens);
    if (ce.is_ok()) {
      std::printf("\n%s", cascade::cache_eval_line(*c, *ce).c_str());
    } else {  // the report is informative: the fit and the threshold stand without it
      std::fprintf(stderr, "frugal calibrate: cache: %s\n", ce.status().to_string().c_str());
    }
  }

  for (const auto& [path, text] : {std::pair{csv_path, cascade::curve_csv(*result)},
                                   std::pair{svg_path, cascade::curve_svg(*result)}}) {
    if (Status s = cascade::write_text_file(path, text); !s.is_ok()) {
      std::fprintf(stderr, "frugal calibrate: %s\n", s.to_string().c_str());
      return 1;
    }
  }
  std::printf("wrote %s and %s\n", csv_path.c_str(), svg_path.c_str());

  if (!result->found) {
    std::printf("%s left unchanged: no threshold meets the target\n", a.config.c_str());
    std::fflush(stdout);
    return 3;
  }
  const double threshold = result->chosen_point().threshold;
  if (a.dry_run) {
    std::printf("dry run: %s left unchanged (would set threshold = %s)\n", a.config.c_str(),
                format_number(threshold).c_str());
    std::fflush(stdout);
    return 0;
  }
  auto old_text = read_file(a.config);
  if (!old_text.is_ok()) {
    std::fprintf(stderr, "frugal calibrate: %s\n", old_text.status().to_string().c_str());
    return 1;
  }
  std::string text =
      rewrite_config(*old_text, threshold, cascade::scorer_weights_toml(model->params()));
  {
    // The drift alarm's expectation ([shadow] expected_agreement): tier 1's agreement with the
    // top tier on the items it keeps at this threshold (docs/OPERATIONS.md); out-of-fold
    // scores when every item has one.
    std::vector<double> scores;
    for (size_t i = 0; i < runs.size(); ++i) {
      scores.push_back(cal.size() == runs.size() ? cal[i].score : model->predict(runs[i].features));
    }
    auto agreement = cascade::expected_agreement(*items, runs, scores, threshold);
    if (agreement.is_ok()) {
      text = cascade::set_expected_agreement(text, *agreement);
      std::printf("shadow checks: tier 1 agrees with the top tier on %.1f %% of the %lld items "
                  "it keeps ([shadow] expected_agreement)\n",
                  100.0 * agreement->overall, static_cast<long long>(agreement->kept));
    }
  }
  // Check the rewritten file before replacing the old one.
  auto reread = cascade::parse_cascade_config(text, a.config, config_dir.string());
  if (!reread.is_ok() || reread->threshold != threshold || !reread->scorer.set) {
    std::fprintf(stderr, "frugal calibrate: the rewritten config does not read back (%s); %s "
                         "left unchanged\n",
                 reread.is_ok() ? "threshold or scorer lost" : reread.status().message().c_str(),
                 a.config.c_str());
    return 1;
  }
  if (Status s = write_file(a.config, text); !s.is_ok()) {
    std::fprintf(stderr, "frugal calibrate: %s\n", s.to_string().c_str());
    return 1;
  }
  std::printf("wrote threshold = %s and [cascade.scorer] to %s\n",
              format_number(threshold).c_str(), a.config.c_str());
  std::fflush(stdout);
  return 0;
}

}  // namespace

void register_calibrate(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<CalibrateArgs>();
  auto* cmd = app.add_subcommand(
      "calibrate", "Fit the scorer and choose the cheapest threshold that meets a quality "
                   "target on task items; write both into the config");
  cmd->add_option("--config", args->config, "Cascade config file to read and update "
                                            "(default: frugal.toml)");
  cmd->add_option("--data", args->data, "Task items, JSONL (docs/TASKS.md)")->required();
  cmd->add_option("--target", args->target,
                  "Wanted cascade accuracy as a fraction of the top tier's, in (0, 1.5] "
                  "(default 0.98)");
  cmd->add_option("--limit", args->n, "Use only the first N items (default: all)")
      ->check(int_range(0, INT64_MAX));
  cmd->add_option("--seed", args->seed, "Seed of the folds (or of the half split) (default 1)")
      ->check(int_range(0, INT64_MAX));
  cmd->add_option("--csv", args->csv, "Curve CSV path (default: calibration.csv beside the "
                                      "config)");
  cmd->add_option("--svg", args->svg, "Curve plot path (default: calibration.svg beside the "
                                      "config)");
  cmd->add_option("--slice-margin", args->slice_margin,
                  "Also require every slice's cascade accuracy within this many points of the "
                  "top tier's (the eval gate), on the threshold half (default: off)")
      ->check(real_range(0.0, 100.0));
  cmd->add_flag("--slice-bound", args->slice_bound,
                "Test --slice-margin on each slice's one-sided 95 % upper confidence bound of "
                "its loss instead of the point estimate (robust to a lucky slice; costs more)");
  cmd->add_option("--folds", args->folds,
                  "Cross-fitting folds: each item scored by a scorer fitted on the other folds, "
                  "the threshold chosen on all items (default 5)")
      ->check(int_range(2, 100));
  cmd->add_flag("--half-split", args->half_split,
                "Fit the scorer on one half and choose the threshold on the other instead of "
                "cross-fitting");
  cmd->add_option("--rule", args->rule,
                  "simultaneous (default): the claims hold together (Holm), thresholds tested "
                  "in a fixed sequence from escalating everything; per-point: each threshold's "
                  "bounds on their own, the cheapest passing one")
      ->check(CLI::IsMember({"simultaneous", "per-point"}));
  cmd->add_option("--check-items", args->check_items,
                  "With --slice-margin: also require that a fresh sample of N items shows no "
                  "slice beyond the margin, with estimated probability >= 1 - --check-risk "
                  "(default 0: off)")
      ->check(real_range(0.0, 1e9));
  cmd->add_option("--check-risk", args->check_risk,
                  "The estimated chance allowed for --check-items (default 0.1)")
      ->check(real_range(1e-6, 0.999999));
  cmd->add_option("--features", args->features,
                  "Also write every item's scorer features, labels, costs and fold (or half) as "
                  "JSONL (to study or fit a scorer elsewhere)");
  cmd->add_flag("--dry-run", args->dry_run, "Report and write the curve, not the config");
  add_tier_run_options(cmd, &args->max_tokens, &args->threads, &args->ctx);
  add_parallel_option(cmd, &args->parallel, &args->kv_type);
  cmd->callback([args, &exit_code] { exit_code = run_calibrate(*args); });
}

}  // namespace frugal::cli
