// `frugal eval`: runs tier 1 alone and the top tier alone on every task item of a JSONL file,
// judges each answer with the item's check, and reports accuracy (95 % interval), escalation and
// cost for tier 1, the top tier and the cascade overall, per slice and per difficulty, with the
// gate's verdict: no slice may lose more than --margin points against the top tier (and, with
// --baseline OLD.toml, against the cascade serving today, on the same items).

#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cascade/cache_eval.h"
#include "cascade/calibration.h"
#include "cascade/cascade.h"
#include "cascade/config.h"
#include "cascade/curve.h"
#include "cascade/early_escalation.h"
#include "cascade/task_items.h"
#include "cli/commands.h"
#include "cli/flags.h"
#include "cli/task_runs.h"

namespace frugal::cli {

namespace {

struct EvalArgs {
  std::string config = "frugal.toml";
  std::string data;
  int64_t n = 0;  // 0: every item
  double margin = 2.0;
  std::string gate = "both";  // which policies must keep every slice within the margin
  double threshold = -1;  // < 0: the config's
  bool json = false;
  bool early_sweep = false;
  std::string answers;  // JSONL of every item's answers, when set
  int64_t max_tokens = 0;  // 0: the config's [cascade] max_tokens
  int threads = 0;
  int64_t ctx = 0;
  int parallel = 1;
  std::string kv_type = "f16";
  std::string baseline;  // a second config (the cascade serving today) to hold the gate against
  std::string spec_alphas;  // --speculative-cascade: deferral margins to evaluate, comma-separated
};

// "12/40 items  3.1 items/s  ETA 9 s" on one rewritten stderr line, when stderr is a terminal.
nlohmann::json policy_json(const cascade::PolicyEval& p) {
  return {{"accuracy", p.accuracy},
          {"accuracy_ci", {p.accuracy_ci.lo, p.accuracy_ci.hi}},
          {"correct", p.correct},
          {"items", p.items},
          {"escalation_rate", p.escalation_rate},
          {"cost", p.total_cost},
          {"cost_per_item", p.cost_per_item},
          {"cost_saved", p.cost_saved}};
}

nlohmann::json group_json(const cascade::GroupEval& g) {
  return {{"items", g.items},
          {"tier1", policy_json(g.tier1)},
          {"top", policy_json(g.top)},
          {"cascade", policy_json(g.cascade)}};
}

// Each item's outcome as the cascade of `setup` serves it. With early escalation configured,
// an item whose tier-1 answer the logprob floor would have cut escalates (score 0) and pays
// tier 1 only up to the cut, as the live cascade does; `stopped_early` counts those.
std::vector<cascade::CalibrationItem> item_outcomes(const TaskRunSetup& setup,
                                                    const std::vector<cascade::ItemRun>& runs,
                                                    size_t* stopped_early) {
  const cascade::CascadeConfig& cfg = setup.config;
  const cascade::Tier& tier1 = setup.cascade->tier1();
  std::vector<cascade::CalibrationItem> outcomes;
  for (size_t i = 0; i < setup.items.size(); ++i) {
    const cascade::TaskItem& item = setup.items[i];
    const cascade::ItemRun& run = runs[i];
    cascade::CalibrationItem o{run.tier1_correct, run.top_correct, run.score, run.tier1.cost,
                               run.top.cost, item.slice};
    if (cfg.early_escalation) {
      const int64_t stop = cascade::early_stop_point(
          run.tier1.tokens, cfg.early_escalation_window, cfg.early_escalation_logprob);
      if (stop > 0) {
        ++*stopped_early;
        o.score = 0.0;
        o.tier1_cost = tier1.cost(run.tier1.tokens_in, stop);
      }
    }
    outcomes.push_back(o);
  }
  return outcomes;
}

// The baseline cascade (--baseline CONFIG) on the same items: its outcomes and its threshold.
// Runs before the new cascade loads, and is unloaded after, so the two never share memory.
struct BaselineRun {
  std::vector<cascade::CalibrationItem> outcomes;
  double threshold = 0;
  std::string tier1_name;
};

std::optional<BaselineRun> run_baseline(const EvalArgs& a, int* exit_code) {
  TaskRunFlags flags{a.baseline, a.data, a.n, a.threads, a.ctx, a.max_tokens, 1};
  flags.kv_type = a.kv_type;
  auto setup = load_task_run("eval --baseline", flags, exit_code);
  if (!setup) return std::nullopt;
  double seconds = 0;
  auto runs = run_task_items("eval --baseline", *setup->cascade, setup->scorer, setup->items,
                             setup->max_tokens, a.data, &seconds, a.parallel);
  if (!runs) {
    *exit_code = 1;
    return std::nullopt;
  }
  size_t stopped = 0;
  return BaselineRun{item_outcomes(*setup, *runs, &stopped), setup->config.threshold,
                     setup->cascade->tier1().name()};
}

// --speculative-cascade: on each item the cascade escalates, the top tier verifies tier 1's
// answer (what it wrote before an early stop) with the deferral rule at one alpha, as the live
// cascade does with [cascade] speculative_cascade_alpha. Compared, on the same items, with
// the plain cascade (the top tier's own answer) and with lossless verification (alpha = -1,
// today's speculative escalation), which must give the top tier's own answers.
struct SpecSlice {
  size_t items = 0, correct = 0, plain_correct = 0;
};

struct SpecCascadeEval {
  double alpha = -1;
  size_t escalated = 0;
  size_t correct = 0, plain_correct = 0;  // the cascade's answers over every item
  size_t changed = 0;  // escalated items whose answer is not the top tier's own
  int64_t tokens_out = 0, tokens_reused = 0, tokens_kept = 0;  // over the escalated items
  double top_ms = 0;   // the top tier's time over the escalated items
  std::map<std::string, SpecSlice> slices;
  std::string worst_slice;
  double worst_change_points = 0;  // the slice that lost most against the plain cascade
};

std::optional<std::vector<double>> parse_alphas(const std::string& list) {
  std::vector<double> out;
  std::stringstream ss(list);
  std::string part;
  while (std::getline(ss, part, ',')) {
    char* end = nullptr;
    const double v = std::strtod(part.c_str(), &end);
    if (part.empty() || end == part.c_str() || *end != '\0' || !(v >= -1.0 && v <= 1.0)) {
      return std::nullopt;
    }
    out.push_back(v);
  }
  if (out.empty()) return std::nullopt;
  return out;
}

// Tier 1's draft as the live cascade passes it: all of its answer, or the tokens it had written
// when the logprob floor stopped it (draft_len). Item by item, every margin back to back after
// one uncounted warm-up call (so that no margin runs colder than another), `parallel` items at
// once.
std::optional<std::vector<SpecCascadeEval>> run_spec_cascade(
    const EvalArgs& a, const TaskRunSetup& setup, const std::vector<cascade::ItemRun>& runs,
    const std::vector<int64_t>& draft_len, const std::vector<bool>& escalated,
    const std::vector<double>& alphas) {
  cascade::Cascade& c = *setup.cascade;
  const std::vector<cascade::TaskItem>& items = setup.items;
  struct One {
    bool correct = false, same_as_top = false;
    int64_t tokens_out = 0, reused = 0, kept = 0;
    double ms = 0;
  };
  // [item][margin]
  std::vector<std::vector<One>> done(items.size());
  size_t failed = 0;
  Status st = run_parallel(items.size(), a.parallel, [&](size_t i) -> Status {
    if (!escalated[i]) return Status::ok();
    const cascade::TaskItem& item = items[i];
    const cascade::ItemRun& run = runs[i];
    cascade::TierRequest r;
    r.messages = item.messages;
    r.max_tokens = setup.max_tokens;
    r.temperature = 0.0f;
    for (int64_t k = 0; k < draft_len[i]; ++k) {
      r.draft.push_back(run.tier1.tokens[k].id);
      r.draft_logprobs.push_back(run.tier1.tokens[k].logprob);
    }
    // A first call, not counted, puts the prompt back in the top tier's prefix cache (the
    // items run since may have evicted it), so that no margin pays a prefill the others skip.
    r.defer_alpha = -1.0;
    FRUGAL_RETURN_IF_ERROR(c.top_tier().answer(r).status());
    for (double alpha : alphas) {
      r.defer_alpha = alpha;
      FRUGAL_ASSIGN_OR_RETURN(cascade::TierAnswer ans, c.top_tier().answer(r));
      bool correct = false;
      if (item.reference.empty()) {
        FRUGAL_ASSIGN_OR_RETURN(correct, cascade::answers_agree(item, ans.text, run.top.text));
      } else {
        FRUGAL_ASSIGN_OR_RETURN(correct, cascade::check_answer(item, ans.text));
      }
      done[i].push_back(One{correct, ans.text == run.top.text, ans.tokens_out, ans.tokens_reused,
                            ans.tokens_kept, ans.latency_ms});
    }
    return Status::ok();
  }, &failed);
  if (!st.is_ok()) {
    std::fprintf(stderr, "frugal eval: --speculative-cascade: %s:%d (item %s): %s\n",
                 a.data.c_str(), items[failed].line, items[failed].id.c_str(),
                 st.to_string().c_str());
    return std::nullopt;
  }
  std::vector<SpecCascadeEval> out;
  for (size_t m = 0; m < alphas.size(); ++m) {
    SpecCascadeEval e;
    e.alpha = alphas[m];
    for (size_t i = 0; i < items.size(); ++i) {
      const cascade::ItemRun& run = runs[i];
      const bool plain = escalated[i] ? run.top_correct : run.tier1_correct;
      const bool spec = escalated[i] ? done[i][m].correct : run.tier1_correct;
      SpecSlice& sl = e.slices[items[i].slice];
      sl.items++;
      sl.correct += spec;
      sl.plain_correct += plain;
      e.correct += spec;
      e.plain_correct += plain;
      if (!escalated[i]) continue;
      const One& o = done[i][m];
      e.escalated++;
      e.changed += o.same_as_top ? 0 : 1;
      e.tokens_out += o.tokens_out;
      e.tokens_reused += o.reused;
      e.tokens_kept += o.kept;
      e.top_ms += o.ms;
    }
    for (const auto& [name, sl] : e.slices) {
      const double change =
          100.0 * (static_cast<double>(sl.correct) - static_cast<double>(sl.plain_correct)) /
          static_cast<double>(sl.items);
      if (e.worst_slice.empty() || change < e.worst_change_points) {
        e.worst_slice = name;
        e.worst_change_points = change;
      }
    }
    out.push_back(std::move(e));
  }
  return out;
}

// Times are read against the lossless row (evals.front(), alpha -1): the same prompts, run
// back to back with the same prefix cache, so the difference is what the kept tokens saved.
std::string spec_cascade_table(const std::vector<SpecCascadeEval>& evals) {
  std::string out;
  char line[512];
  const SpecCascadeEval& lossless = evals.front();
  std::snprintf(line, sizeof line,
                "speculative cascade: on the %zu escalated items the top tier verifies tier 1's "
                "answer, keeping a token it would not have chosen when q >= max p - alpha\n",
                lossless.escalated);
  out += line;
  std::snprintf(line, sizeof line, "%-8s %9s %9s %-22s %8s %8s %8s %11s %9s\n", "alpha",
                "cascade", "change", "worst slice (points)", "changed", "reused", "kept",
                "top ms/esc", "vs -1");
  out += line;
  for (const SpecCascadeEval& e : evals) {
    size_t total = 0;
    for (const auto& [name, sl] : e.slices) total += sl.items;
    const double acc = 100.0 * static_cast<double>(e.correct) / static_cast<double>(total);
    const double change = 100.0 * (static_cast<double>(e.correct) - static_cast<double>(e.plain_correct)) /
                          static_cast<double>(total);
    const double esc = static_cast<double>(std::max<size_t>(1, e.escalated));
    char worst[64];
    std::snprintf(worst, sizeof worst, "%s (%+.1f)", e.worst_slice.c_str(), e.worst_change_points);
    std::snprintf(line, sizeof line, "%-8.3g %8.1f%% %+9.1f %-22s %8zu %8lld %8lld %11.3f %8.2fx\n",
                  e.alpha, acc, change, worst, e.changed, (long long)e.tokens_reused,
                  (long long)e.tokens_kept, e.top_ms / esc,
                  lossless.top_ms > 0 ? e.top_ms / lossless.top_ms : 0.0);
    out += line;
  }
  out += "(cascade: accuracy over every item; change: against the plain cascade; changed: "
         "escalated answers that are not the top tier's own; vs -1: the top tier's time against "
         "lossless verification, today's speculative escalation)\n";
  return out;
}

int run_eval(const EvalArgs& a) {
  int exit_code = 0;
  std::vector<double> spec_alphas;
  if (!a.spec_alphas.empty()) {
    auto parsed = parse_alphas(a.spec_alphas);
    if (!parsed) {
      std::fprintf(stderr, "frugal eval: --speculative-cascade takes margins in [-1, 1], "
                           "comma-separated (e.g. 0,0.1,0.2); got '%s'\n", a.spec_alphas.c_str());
      return 2;
    }
    // Lossless verification first: the reference every margin's time is read against.
    spec_alphas.push_back(-1.0);
    for (double v : *parsed)
      if (v != -1.0) spec_alphas.push_back(v);
  }
  std::optional<BaselineRun> baseline;
  if (!a.baseline.empty()) {
    baseline = run_baseline(a, &exit_code);
    if (!baseline) return exit_code;
  }
  TaskRunFlags flags{a.config, a.data, a.n, a.threads, a.ctx, a.max_tokens, 1};
  flags.kv_type = a.kv_type;
  auto setup = load_task_run("eval", flags, &exit_code);
  if (!setup) return exit_code;
  const std::vector<cascade::TaskItem>* items = &setup->items;
  cascade::Cascade* c = setup->cascade.get();
  const int64_t max_tokens = setup->max_tokens;
  const double threshold = a.threshold >= 0 ? a.threshold : setup->config.threshold;
  const cascade::Scorer& scorer = setup->scorer;
  double seconds = 0;
  auto runs = run_task_items("eval", *c, scorer, *items, max_tokens, a.data, &seconds, a.parallel);
  if (!runs) return 1;
  const cascade::CascadeConfig& cfg = setup->config;
  const cascade::Tier& tier1 = c->tier1();
  size_t stopped_early = 0;
  const std::vector<cascade::CalibrationItem> outcomes =
      item_outcomes(*setup, *runs, &stopped_early);
  std::vector<cascade::EvalItem> evals;
  for (size_t i = 0; i < items->size(); ++i) {
    cascade::EvalItem e;
    e.slice = (*items)[i].slice;
    e.difficulty = "d" + std::to_string((*items)[i].difficulty);
    e.outcome = outcomes[i];
    if (baseline) e.baseline = baseline->outcomes[i];
    evals.push_back(std::move(e));
  }
  if (!a.answers.empty()) {
    std::string text;
    for (size_t i = 0; i < items->size(); ++i) {
      const cascade::TaskItem& item = (*items)[i];
      const cascade::ItemRun& run = (*runs)[i];
      const bool escalated = cascade::cascade_escalates(evals[i].outcome.score, threshold);
      nlohmann::json line = {{"id", item.id},
                             {"slice", item.slice},
                             {"difficulty", item.difficulty},
                             {"reference", item.reference},
                             {"tier1", {{"answer", run.tier1.text},
                                        {"correct", run.tier1_correct},
                                        {"score", run.score},
                                        {"tokens_out", run.tier1.tokens_out}}},
                             {"top", {{"answer", run.top.text},
                                      {"correct", run.top_correct},
                                      {"tokens_out", run.top.tokens_out}}},
                             {"cascade", {{"escalated", escalated},
                                          {"correct", escalated ? run.top_correct
                                                                : run.tier1_correct}}}};
      text += line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    }
    if (Status s = cascade::write_text_file(a.answers, text); !s.is_ok()) {
      std::fprintf(stderr, "frugal eval: %s\n", s.to_string().c_str());
      return 1;
    }
  }
  std::vector<cascade::EarlyEscalationPoint> sweep;
  if (a.early_sweep) {
    cascade::EarlyEscalationSweep grid;
    if (cfg.early_escalation) {
      grid.windows = {cfg.early_escalation_window};
      grid.floors = {cfg.early_escalation_logprob};
    }
    sweep = cascade::sweep_early_escalation(
        *runs, threshold, grid,
        [&](int64_t in, int64_t out) { return tier1.cost(in, out); });
  }
  // The cache tiers: the items replayed in order through the cascade's cache stage.
  std::optional<cascade::CacheEval> cache_eval;
  if (c->cache() != nullptr) {
    std::vector<double> scores, tier1_costs;
    for (const cascade::EvalItem& e : evals) {
      scores.push_back(e.outcome.score);
      tier1_costs.push_back(e.outcome.tier1_cost);
    }
    c->set_threshold(threshold);
    auto ce = cascade::evaluate_cache(
        *c, cascade::cascade_replay_items(*items, *runs, scores, tier1_costs, threshold), max_tokens);
    if (!ce.is_ok()) {
      std::fprintf(stderr, "frugal eval: cache: %s\n", ce.status().to_string().c_str());
      return 1;
    }
    cache_eval = *ce;
  }
  std::vector<SpecCascadeEval> spec_evals;
  if (!spec_alphas.empty()) {
    if (!c->top_tier_verifies_tier1() || c->model_tiers().size() < 2) {
      std::fprintf(stderr, "frugal eval: --speculative-cascade needs a local top tier with tier "
                           "1's vocabulary (it verifies tier 1's answer as a draft)\n");
      return 2;
    }
    std::vector<int64_t> draft_len(items->size(), 0);
    std::vector<bool> escalated(items->size(), false);
    for (size_t i = 0; i < items->size(); ++i) {
      const cascade::ItemRun& run = (*runs)[i];
      escalated[i] = cascade::cascade_escalates(evals[i].outcome.score, threshold);
      if (!escalated[i]) continue;
      int64_t n = static_cast<int64_t>(run.tier1.tokens.size());
      if (cfg.early_escalation) {
        const int64_t stop = cascade::early_stop_point(
            run.tier1.tokens, cfg.early_escalation_window, cfg.early_escalation_logprob);
        if (stop > 0) n = std::min(n, stop);
      }
      draft_len[i] = n;
    }
    auto e = run_spec_cascade(a, *setup, *runs, draft_len, escalated, spec_alphas);
    if (!e) return 1;
    spec_evals = std::move(*e);
  }
  cascade::EvalOptions eval_options;
  eval_options.threshold = threshold;
  eval_options.margin_points = a.margin;
  eval_options.gate_cascade = a.gate != "tier1";
  eval_options.gate_tier1 = a.gate != "cascade";
  if (baseline) eval_options.baseline_threshold = baseline->threshold;
  auto report = cascade::evaluate_slices(evals, eval_options);
  if (!report.is_ok()) {
    std::fprintf(stderr, "frugal eval: %s\n", report.status().to_string().c_str());
    return 1;
  }
  if (a.json) {
    nlohmann::json j = group_json(report->overall);
    j["threshold"] = report->threshold;
    j["margin_points"] = report->margin_points;
    j["seconds"] = seconds;
    j["slices"] = nlohmann::json::object();
    for (const auto& g : report->by_slice) j["slices"][g.slice] = group_json(g);
    j["difficulties"] = nlohmann::json::object();
    for (const auto& g : report->by_difficulty) j["difficulties"][g.difficulty] = group_json(g);
    j["flags"] = nlohmann::json::array();
    for (const auto& f : report->flags) {
      j["flags"].push_back({{"slice", f.slice},
                            {"policy", f.policy},
                            {"against", f.against},
                            {"loss_points", f.loss_points}});
    }
    if (baseline) {
      auto base_json = [](const cascade::GroupEval& g) {
        return nlohmann::json{{"tier1", policy_json(*g.baseline_tier1)},
                              {"cascade", policy_json(*g.baseline_cascade)}};
      };
      j["baseline"] = base_json(report->overall);
      j["baseline"]["config"] = a.baseline;
      j["baseline"]["threshold"] = baseline->threshold;
      j["baseline"]["slices"] = nlohmann::json::object();
      for (const auto& g : report->by_slice) j["baseline"]["slices"][g.slice] = base_json(g);
    }
    if (!spec_evals.empty()) {
      nlohmann::json arr = nlohmann::json::array();
      for (const SpecCascadeEval& e : spec_evals) {
        nlohmann::json sl = nlohmann::json::object();
        size_t total = 0;
        for (const auto& [name, v] : e.slices) {
          total += v.items;
          sl[name] = {{"items", v.items},
                      {"accuracy", static_cast<double>(v.correct) / static_cast<double>(v.items)},
                      {"plain_accuracy",
                       static_cast<double>(v.plain_correct) / static_cast<double>(v.items)}};
        }
        arr.push_back({{"alpha", e.alpha},
                       {"escalated", e.escalated},
                       {"accuracy", static_cast<double>(e.correct) / static_cast<double>(total)},
                       {"plain_accuracy",
                        static_cast<double>(e.plain_correct) / static_cast<double>(total)},
                       {"changed", e.changed},
                       {"tokens_out", e.tokens_out},
                       {"tokens_reused", e.tokens_reused},
                       {"tokens_kept", e.tokens_kept},
                       {"top_ms", e.top_ms},
                       {"worst_slice", e.worst_slice},
                       {"worst_slice_change_points", e.worst_change_points},
                       {"slices", sl}});
      }
      j["speculative_cascade"] = arr;
    }
    j["pass"] = report->pass;
    if (cache_eval) {
      const cascade::CacheEval& ce = *cache_eval;
      j["cache"] = {{"items", ce.items},
                    {"hits", ce.hits},
                    {"exact_hits", ce.exact_hits},
                    {"semantic_hits", ce.semantic_hits},
                    {"semantic_candidates", ce.candidates},
                    {"semantic_checks", ce.checks},
                    {"false_hits", ce.false_hits},
                    {"hit_rate", ce.hit_rate},
                    {"false_hit_rate", ce.false_hit_rate},
                    {"cost_without", ce.cost_without},
                    {"cost_with", ce.cost_with},
                    {"cost_saved", ce.cost_saved},
                    {"accuracy_without", ce.accuracy_without},
                    {"accuracy_with", ce.accuracy_with}};
    }
    j["early_escalation"] = {{"enabled", cfg.early_escalation},
                             {"window", cfg.early_escalation_window},
                             {"floor", cfg.early_escalation_logprob},
                             {"stopped", stopped_early}};
    if (a.early_sweep) {
      nlohmann::json points = nlohmann::json::array();
      for (const auto& p : sweep) {
        points.push_back({{"window", p.window},
                          {"floor", p.floor},
                          {"items", p.items},
                          {"stopped", p.stopped},
                          {"stopped_needlessly", p.stopped_needlessly},
                          {"tier1_tokens", p.tier1_tokens},
                          {"tier1_tokens_saved", p.tier1_tokens_saved},
                          {"tier1_ms_saved", p.tier1_ms_saved},
                          {"accuracy", p.accuracy},
                          {"accuracy_without", p.accuracy_without},
                          {"cost_per_item", p.cost_per_item},
                          {"cost_per_item_without", p.cost_per_item_without},
                          {"top_cost_per_item", p.top_cost_per_item}});
      }
      j["early_escalation"]["sweep"] = points;
    }
    std::printf("%s\n",
                j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::printf("%zu items from %s, tier 1 '%s', top tier '%s', threshold %.4g, %lld max "
                "tokens, %.1f s\n\n",
                evals.size(), a.data.c_str(), c->tier1().name().c_str(),
                c->top_tier().name().c_str(), threshold, (long long)max_tokens, seconds);
    if (baseline) {
      std::printf("baseline: %s (tier 1 '%s', threshold %.4g)\n\n", a.baseline.c_str(),
                  baseline->tier1_name.c_str(), baseline->threshold);
    }
    if (cfg.early_escalation) {
      std::printf("early escalation on (window %lld, floor %.3g): tier 1 stopped on %zu of %zu "
                  "items\n\n",
                  (long long)cfg.early_escalation_window, cfg.early_escalation_logprob,
                  stopped_early, evals.size());
    }
    std::printf("%s", cascade::eval_report_table(*report).c_str());
    if (cache_eval) std::printf("\n%s", cascade::cache_eval_line(*c, *cache_eval).c_str());
    if (a.early_sweep) std::printf("\n%s", cascade::early_escalation_table(sweep).c_str());
    if (!spec_evals.empty())
      std::printf("\n%s", spec_cascade_table(spec_evals).c_str());
  }
  std::fflush(stdout);
  return report->pass ? 0 : 3;
}

}  // namespace

void register_eval(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<EvalArgs>();
  auto* cmd = app.add_subcommand(
      "eval", "Accuracy and cost of tier 1, the top tier and the cascade on task items "
              "(exit 3 when a slice loses more than --margin points)");
  cmd->add_option("--config", args->config, "Cascade config file (default: frugal.toml)");
  cmd->add_option("--data", args->data, "Task items, JSONL (docs/TASKS.md)")->required();
  cmd->add_option("--limit", args->n, "Use only the first N items (default: all)")
      ->check(int_range(0, INT64_MAX));
  cmd->add_option("--margin", args->margin,
                  "Allowed accuracy loss per slice vs the top tier, percentage points "
                  "(default 2)")
      ->check(real_range(0.0, 100.0));
  cmd->add_option("--gate", args->gate,
                  "What must keep every slice within --margin of the top tier: both (default), "
                  "cascade (is a new student ready to serve behind the scorer?) or tier1 (is "
                  "the student alone faithful?)")
      ->check(CLI::IsMember({"both", "cascade", "tier1"}));
  cmd->add_option("--baseline", args->baseline,
                  "A second cascade config, the one serving today: it runs on the same items "
                  "first, and the gated policies must also keep every slice within --margin of "
                  "its own (a new student may not regress a slice the old one served)");
  cmd->add_option("--threshold", args->threshold,
                  "Scorer threshold to evaluate (default: the config's)")
      ->check(real_range(0.0, 1.0));
  cmd->add_flag("--json", args->json, "One JSON object instead of the table");
  cmd->add_option("--answers", args->answers,
                  "Also write every item's answers (tier 1, top, cascade; right or wrong) "
                  "to this JSONL file");
  cmd->add_flag("--early-sweep", args->early_sweep,
                "Also replay early escalation over tier 1's answers and report what it saves "
                "(the config's window and floor when set, else a grid)");
  cmd->add_option("--speculative-cascade", args->spec_alphas,
                  "Also evaluate the speculative cascade at these deferral margins (comma-"
                  "separated, each in [-1, 1]): on every escalated item the top tier verifies "
                  "tier 1's answer and keeps a token it would not have chosen when tier 1's "
                  "probability of it >= its own highest - alpha; reports accuracy per slice "
                  "and the top tier's time against the plain cascade (a third run of the top "
                  "tier per margin on the escalated items)");
  add_tier_run_options(cmd, &args->max_tokens, &args->threads, &args->ctx);
  add_parallel_option(cmd, &args->parallel, &args->kv_type);
  cmd->callback([args, &exit_code] { exit_code = run_eval(*args); });
}

}  // namespace frugal::cli
