// `frugal eval` and `frugal calibrate` end to end on the bundled teacher (models/
// frugal-teacher.gguf) playing both tiers on the first 40 held-out items: the JSON report's
// shape and its consistency at the threshold's extremes, the gate's exit code with a weak
// tier 1 (llama2.c's stories260K), the calibrated config, the curve files, and bad inputs.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cascade/config.h"
#include "test_shell.h"

namespace frugal::cascade {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using Output = test::CommandOutput;

Output run_frugal(const std::string& args, bool with_stderr = false) {
  return test::run_frugal(args, with_stderr);
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

constexpr int kItems = 40;

class CalibrateEvalTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("frugal_calibrate_eval_" + std::to_string(getpid()));
    fs::create_directories(dir_);
    std::ifstream in(std::string(FRUGAL_SOURCE_DIR) + "/data/heldout.jsonl");
    std::ofstream out(dir_ / "items.jsonl");
    std::string line;
    for (int i = 0; i < kItems && std::getline(in, line); ++i) out << line << "\n";
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  static std::string teacher() {
    return std::string(FRUGAL_SOURCE_DIR) + "/models/frugal-teacher.gguf";
  }
  // A config with a cache, `tier1_model` as "small" and the teacher as "large".
  static fs::path write_config(const std::string& name, double threshold,
                               const std::string& tier1_model = "") {
    const fs::path p = dir_ / name;
    std::ofstream(p) << "# test config\n[cascade]\n# the threshold\nthreshold = " << threshold
                     << "\nmax_tokens = 16\n\n[[tier]]\nname = \"cache\"\nkind = \"cache\"\n\n"
                     << "# the cheap one\n[[tier]]\nname = \"small\"\nkind = \"local\"\nmodel = \""
                     << (tier1_model.empty() ? teacher() : tier1_model)
                     << "\"\nprice_in = 0.05\nprice_out = 0.10\n\n[[tier]]\nname = \"large\"\n"
                     << "kind = \"local\"\nmodel = \"" << teacher()
                     << "\"\nprice_in = 0.50\nprice_out = 1.50\n";
    return p;
  }
  static std::string items() { return (dir_ / "items.jsonl").string(); }
  // The eval report; `expect_exit` -1 accepts 0 and 3 (the gate's verdict).
  static json eval_json(const fs::path& config, const std::string& extra = "",
                        int expect_exit = 0) {
    Output o = run_frugal("eval --config " + config.string() + " --data " + items() +
                          " -n 16 -t 1 --json " + extra);
    if (expect_exit >= 0) EXPECT_EQ(o.exit_code, expect_exit) << o.out;  // -1: any
    json j = json::parse(o.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << o.out;
    return j;
  }

  static fs::path dir_;
};

fs::path CalibrateEvalTest::dir_;

void expect_policies(const json& g, const std::string& where) {
  for (const char* policy : {"tier1", "top", "cascade"}) {
    ASSERT_TRUE(g.contains(policy)) << where << " lacks " << policy;
    const double acc = g[policy]["accuracy"].get<double>();
    EXPECT_GE(acc, 0.0) << where;
    EXPECT_LE(acc, 1.0) << where;
    EXPECT_GE(g[policy]["cost"].get<double>(), 0.0) << where;
    EXPECT_TRUE(g[policy].contains("escalation_rate")) << where;
  }
}

TEST_F(CalibrateEvalTest, EvalAtThresholdZeroKeepsTier1Everywhere) {
  const json j = eval_json(write_config("zero.toml", 0.0));
  expect_policies(j, "overall");
  EXPECT_EQ(j["items"].get<int>(), kItems);
  // Same model, greedy: both tiers give the same answers.
  EXPECT_DOUBLE_EQ(j["tier1"]["accuracy"].get<double>(), j["top"]["accuracy"].get<double>());
  EXPECT_DOUBLE_EQ(j["cascade"]["accuracy"].get<double>(), j["tier1"]["accuracy"].get<double>());
  EXPECT_EQ(j["tier1"]["correct"].get<int>(),
            static_cast<int>(j["tier1"]["accuracy"].get<double>() * kItems + 0.5));
  // The teacher is right on some of these items and wrong on others.
  EXPECT_GT(j["tier1"]["accuracy"].get<double>(), 0.0);
  EXPECT_LT(j["tier1"]["accuracy"].get<double>(), 1.0);
  EXPECT_EQ(j["cascade"]["escalation_rate"].get<double>(), 0.0);
  EXPECT_GT(j["cascade"]["cost_saved"].get<double>(), 0.0);
  EXPECT_LT(j["cascade"]["cost"].get<double>(), j["top"]["cost"].get<double>());
  EXPECT_TRUE(j["pass"].get<bool>());
  EXPECT_TRUE(j["flags"].empty());
  ASSERT_TRUE(j["slices"].is_object());
  EXPECT_GE(j["slices"].size(), 5u);
  int slice_items = 0;
  for (const auto& [name, g] : j["slices"].items()) {
    expect_policies(g, "slice " + name);
    slice_items += g["items"].get<int>();
  }
  EXPECT_EQ(slice_items, kItems);
}

TEST_F(CalibrateEvalTest, EvalAtThresholdOneEscalatesEverything) {
  const json j = eval_json(write_config("one.toml", 1.0));
  EXPECT_EQ(j["cascade"]["escalation_rate"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(j["cascade"]["accuracy"].get<double>(), j["top"]["accuracy"].get<double>());
  // Tier 1 is paid for and then the top tier too.
  EXPECT_GT(j["cascade"]["cost"].get<double>(), j["top"]["cost"].get<double>());
  // --threshold overrides the config's.
  const json k = eval_json(write_config("one_b.toml", 1.0), "--threshold 0");
  EXPECT_EQ(k["cascade"]["escalation_rate"].get<double>(), 0.0);
  // The table names the verdict.
  Output o = run_frugal("eval --config " + (dir_ / "one.toml").string() + " --data " + items() +
                        " -n 16 -t 1 --limit 10");
  EXPECT_EQ(o.exit_code, 0);
  EXPECT_NE(o.out.find("10 items"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("PASS"), std::string::npos) << o.out;
}

TEST_F(CalibrateEvalTest, EvalEarlySweepReplaysTheLogprobFloor) {
  const json j = eval_json(write_config("sweep.toml", 0.5), "--early-sweep");
  ASSERT_TRUE(j.contains("early_escalation")) << j.dump();
  const json& e = j["early_escalation"];
  EXPECT_FALSE(e["enabled"].get<bool>());
  const json& sweep = e["sweep"];
  ASSERT_EQ(sweep.size(), 4u * 5u) << "the default grid: 4 windows x 5 floors";
  size_t fired = 0;
  for (size_t i = 0; i < sweep.size(); ++i) {
    const json& p = sweep[i];
    EXPECT_EQ(p["items"].get<int>(), kItems);
    EXPECT_LE(p["stopped_needlessly"].get<int>(), p["stopped"].get<int>());
    EXPECT_LE(p["tier1_tokens_saved"].get<int>(), p["tier1_tokens"].get<int>());
    // Without early escalation the replay is the scorer-only cascade eval reports.
    EXPECT_NEAR(p["accuracy_without"].get<double>(), j["cascade"]["accuracy"].get<double>(),
                1e-12);
    EXPECT_NEAR(p["cost_per_item_without"].get<double>() * kItems,
                j["cascade"]["cost"].get<double>(), 1e-9);
    fired += p["stopped"].get<int>() > 0;
    // A lower floor (next point, same window) never stops more items.
    if (i % 5 != 4) {
      EXPECT_GE(p["stopped"].get<int>(), sweep[i + 1]["stopped"].get<int>());
    }
    if (p["stopped"].get<int>() == 0) {
      EXPECT_EQ(p["cost_per_item"].get<double>(), p["cost_per_item_without"].get<double>());
    } else {
      EXPECT_GT(p["tier1_tokens_saved"].get<int>(), 0);
    }
  }
  EXPECT_GT(fired, 0u) << "some floor of the grid stops the teacher on some of 40 items";

  // With the floor in the config, eval's own cascade numbers include it and agree with the
  // replay at that point.
  const fs::path cfg = dir_ / "early.toml";
  {
    std::string text = read_file(write_config("early_base.toml", 0.5));
    text.replace(text.find("max_tokens = 16"), 15,
                 "max_tokens = 16\nearly_escalation_logprob = -0.5\nearly_escalation_window = 1");
    std::ofstream(cfg) << text;
  }
  const json k = eval_json(cfg, "--early-sweep");
  ASSERT_TRUE(k["early_escalation"]["enabled"].get<bool>());
  ASSERT_EQ(k["early_escalation"]["sweep"].size(), 1u);
  const json& p = k["early_escalation"]["sweep"][0];
  EXPECT_EQ(k["early_escalation"]["stopped"].get<int>(), p["stopped"].get<int>());
  EXPECT_NEAR(k["cascade"]["accuracy"].get<double>(), p["accuracy"].get<double>(), 1e-12);
  EXPECT_NEAR(k["cascade"]["cost"].get<double>(), p["cost_per_item"].get<double>() * kItems,
              1e-9);
  EXPECT_GE(k["cascade"]["escalation_rate"].get<double>(),
            j["cascade"]["escalation_rate"].get<double>());
}

TEST_F(CalibrateEvalTest, EvalGivesTheSameAnswersWithManyItemsInFlight) {
  // --parallel N batches N items through each tier's scheduler; at temperature 0 nothing a
  // user reads may change: every answer, score and figure but the time taken.
  const std::string student = std::string(FRUGAL_SOURCE_DIR) + "/models/frugal-student.gguf";
  const fs::path config = write_config("parallel.toml", 0.5, student);
  json reports[2];
  std::string answers[2];
  const int levels[2] = {1, 7};
  for (int k = 0; k < 2; ++k) {
    const fs::path out = dir_ / ("parallel_" + std::to_string(levels[k]) + ".jsonl");
    reports[k] = eval_json(config, "--parallel " + std::to_string(levels[k]) + " --answers " +
                                       out.string(), -1);
    answers[k] = read_file(out);
    reports[k].erase("seconds");
  }
  EXPECT_FALSE(answers[0].empty());
  EXPECT_EQ(answers[0], answers[1]);
  EXPECT_EQ(reports[0].dump(), reports[1].dump());
}

// The cache tiers in eval: the 40 items, ten of them asked again, then the semantic prompt
// pairs (tests/fixtures/semantic_pairs.jsonl: paraphrases and near duplicates that must not
// share an answer), replayed in order through the cascade's cache stage.
TEST_F(CalibrateEvalTest, EvalReportsTheCacheOnItemsWithRepeats) {
  const fs::path data = dir_ / "repeats.jsonl";
  std::vector<json> lines;
  {
    std::ifstream in(items());
    for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
    for (int i = 0; i < 10; ++i) {
      json again = lines[static_cast<size_t>(i)];
      again["id"] = again["id"].get<std::string>() + "-again";
      lines.push_back(again);
    }
    std::ifstream pairs(std::string(FRUGAL_SOURCE_DIR) + "/tests/fixtures/semantic_pairs.jsonl");
    for (std::string line; std::getline(pairs, line);) {
      if (line.empty()) continue;
      const json p = json::parse(line);
      lines.push_back(p["first"]);
      lines.push_back(p["second"]);
    }
    std::ofstream out(data);
    for (const json& j : lines) out << j.dump() << "\n";
  }
  // Exact hits: every item whose messages an earlier item had (each miss is stored).
  int repeats = 0;
  std::vector<std::string> seen;
  for (const json& j : lines) {
    const std::string m = j["messages"].dump();
    repeats += std::find(seen.begin(), seen.end(), m) != seen.end();
    seen.push_back(m);
  }
  ASSERT_GE(repeats, 10);
  const std::string student = std::string(FRUGAL_SOURCE_DIR) + "/models/frugal-student.gguf";
  const fs::path exact_cfg = write_config("cache_exact.toml", 0.5, student);
  std::string semantic_text = read_file(exact_cfg);
  semantic_text.replace(semantic_text.find("kind = \"cache\"\n"), 15,
                        "kind = \"cache\"\nsemantic = true\n");
  const fs::path semantic_cfg = dir_ / "cache_semantic.toml";
  std::ofstream(semantic_cfg) << semantic_text;

  auto run_json = [&](const fs::path& cfg) {
    Output o = run_frugal("eval --config " + cfg.string() + " --data " + data.string() +
                          " -n 16 -t 1 --json");
    EXPECT_TRUE(o.exit_code == 0 || o.exit_code == 3) << o.out;
    json j = json::parse(o.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << o.out;
    return j;
  };
  const int n = static_cast<int>(lines.size());
  for (const fs::path& cfg : {exact_cfg, semantic_cfg}) {
    const bool semantic = cfg == semantic_cfg;
    const json j = run_json(cfg);
    ASSERT_TRUE(j.contains("cache")) << j.dump();
    const json& c = j["cache"];
    SCOPED_TRACE(c.dump());
    EXPECT_EQ(c["items"].get<int>(), n);
    const int hits = c["hits"].get<int>();
    EXPECT_EQ(hits, c["exact_hits"].get<int>() + c["semantic_hits"].get<int>());
    EXPECT_DOUBLE_EQ(c["hit_rate"].get<double>(), static_cast<double>(hits) / n);
    EXPECT_LE(c["false_hits"].get<int>(), hits);
    EXPECT_DOUBLE_EQ(c["false_hit_rate"].get<double>(),
                     hits > 0 ? c["false_hits"].get<double>() / hits : 0.0);
    // Without the cache the replay is the cascade eval reports.
    EXPECT_NEAR(c["accuracy_without"].get<double>(), j["cascade"]["accuracy"].get<double>(), 1e-12);
    EXPECT_NEAR(c["cost_without"].get<double>(), j["cascade"]["cost"].get<double>(), 1e-12);
    EXPECT_NEAR(c["cost_saved"].get<double>(),
                c["cost_without"].get<double>() - c["cost_with"].get<double>(), 1e-15);
    if (!semantic) {
      EXPECT_EQ(c["exact_hits"].get<int>(), repeats);
      EXPECT_EQ(c["semantic_hits"].get<int>(), 0);
      EXPECT_EQ(c["semantic_candidates"].get<int>(), 0);
      // The unpriced cache's hits are free and serve what the cascade said the first time.
      EXPECT_GT(c["cost_saved"].get<double>(), 0.0);
      EXPECT_LT(c["cost_with"].get<double>(), c["cost_without"].get<double>());
    } else {
      // Exact repeats of a semantic hit are looked up again (a hit is not stored).
      EXPECT_LE(c["exact_hits"].get<int>(), repeats);
      EXPECT_GE(c["semantic_hits"].get<int>(), 5) << "paraphrases are served";
      EXPECT_GE(c["semantic_candidates"].get<int>(), c["semantic_hits"].get<int>());
      EXPECT_EQ(c["semantic_checks"].get<int>(), c["semantic_candidates"].get<int>());
      // Most candidates are the must-not-share pairs: the check refuses them.
      EXPECT_LT(c["semantic_hits"].get<int>(), c["semantic_candidates"].get<int>());
      // Checked hits cost no accuracy the cascade had (here they even replace a few of its
      // wrong answers with right cached ones).
      EXPECT_GE(c["accuracy_with"].get<double>(), c["accuracy_without"].get<double>() - 0.02);
    }
  }
  // The table form: one line after the report.
  Output o = run_frugal("eval --config " + semantic_cfg.string() + " --data " + data.string() +
                        " -n 16 -t 1");
  EXPECT_TRUE(o.exit_code == 0 || o.exit_code == 3) << o.out;
  EXPECT_NE(o.out.find("cache 'cache' (exact + semantic), items replayed in order: "),
            std::string::npos) << o.out;
  EXPECT_NE(o.out.find(" hits of " + std::to_string(n) + " ("), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("candidates, "), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("; accuracy "), std::string::npos) << o.out;
}

// --speculative-cascade on a cascade that escalates every item: the lossless margin (-1)
// gives the top tier's own answers, the widest (1) gives tier 1's, and each margin's figures
// are read against the plain cascade.
TEST_F(CalibrateEvalTest, EvalSpeculativeCascadeRunsFromTheTopTiersAnswersToTier1s) {
  const std::string student = std::string(FRUGAL_SOURCE_DIR) + "/models/frugal-student.gguf";
  const json j = eval_json(write_config("spec_cascade.toml", 1.0, student),
                           "--speculative-cascade 0,1", -1);
  ASSERT_TRUE(j.contains("speculative_cascade")) << j.dump();
  const json& s = j["speculative_cascade"];
  ASSERT_EQ(s.size(), 3u) << "-1 (lossless) first, then the margins asked for";
  EXPECT_EQ(s[0]["alpha"].get<double>(), -1.0);
  EXPECT_EQ(s[2]["alpha"].get<double>(), 1.0);
  const double top = j["top"]["accuracy"].get<double>();
  const double tier1 = j["tier1"]["accuracy"].get<double>();
  EXPECT_NE(top, tier1) << "the student and the teacher differ on these items";
  for (const json& e : s) {
    EXPECT_EQ(e["escalated"].get<int>(), kItems);
    EXPECT_DOUBLE_EQ(e["plain_accuracy"].get<double>(), top);
  }
  EXPECT_EQ(s[0]["changed"].get<int>(), 0) << "lossless verification: the top tier's answers";
  EXPECT_EQ(s[0]["tokens_kept"].get<int>(), 0);
  EXPECT_DOUBLE_EQ(s[0]["accuracy"].get<double>(), top);
  EXPECT_GT(s[0]["tokens_reused"].get<int>(), 0);
  EXPECT_DOUBLE_EQ(s[2]["accuracy"].get<double>(), tier1) << "alpha 1 keeps tier 1's answers";
  EXPECT_GT(s[2]["changed"].get<int>(), 0);
  EXPECT_GE(s[2]["tokens_kept"].get<int>(), s[1]["tokens_kept"].get<int>());
  EXPECT_GE(s[2]["tokens_reused"].get<int>(), s[0]["tokens_reused"].get<int>());
  // Per slice: items add up, and the worst slice is one of them.
  int n = 0;
  for (const auto& [name, sl] : s[1]["slices"].items()) n += sl["items"].get<int>();
  EXPECT_EQ(n, kItems);
  EXPECT_TRUE(s[1]["slices"].contains(s[1]["worst_slice"].get<std::string>()));
  // The table, and a margin outside [-1, 1] refused before anything loads.
  Output o = run_frugal("eval --config " + (dir_ / "spec_cascade.toml").string() + " --data " +
                        items() + " -n 16 -t 1 --limit 6 --speculative-cascade 0.2");
  EXPECT_NE(o.out.find("speculative cascade"), std::string::npos) << o.out;
  Output bad = run_frugal("eval --config " + (dir_ / "spec_cascade.toml").string() +
                              " --data " + items() + " --speculative-cascade 3",
                          true);
  EXPECT_EQ(bad.exit_code, 2) << bad.out;
  EXPECT_NE(bad.out.find("[-1, 1]"), std::string::npos) << bad.out;
}

TEST_F(CalibrateEvalTest, EvalWritesEveryAnswerWhenAsked) {
  const fs::path out = dir_ / "answers.jsonl";
  const json j = eval_json(write_config("answers.toml", 0.5), "--answers " + out.string());
  std::ifstream in(out);
  std::string line;
  int lines = 0, tier1_right = 0, cascade_right = 0, escalated = 0;
  while (std::getline(in, line)) {
    const json a = json::parse(line, nullptr, false);
    ASSERT_FALSE(a.is_discarded()) << line;
    EXPECT_TRUE(a["id"].is_string());
    EXPECT_TRUE(a["tier1"]["answer"].is_string());
    EXPECT_TRUE(a["top"]["answer"].is_string());
    tier1_right += a["tier1"]["correct"].get<bool>();
    cascade_right += a["cascade"]["correct"].get<bool>();
    escalated += a["cascade"]["escalated"].get<bool>();
    ++lines;
  }
  EXPECT_EQ(lines, kItems);
  EXPECT_EQ(tier1_right, j["tier1"]["correct"].get<int>());
  EXPECT_EQ(cascade_right, j["cascade"]["correct"].get<int>());
  EXPECT_NEAR(escalated, j["cascade"]["escalation_rate"].get<double>() * kItems, 1e-9);

  // An answers path that cannot be written is an error that names it, not a silent skip.
  const std::string unwritable = (dir_ / "no/such/dir/a.jsonl").string();
  Output bad = run_frugal("eval --config " + (dir_ / "answers.toml").string() + " --data " +
                              items() + " -n 16 -t 1 --answers " + unwritable,
                          true);
  EXPECT_EQ(bad.exit_code, 1) << bad.out;
  EXPECT_NE(bad.out.find("no/such/dir"), std::string::npos) << bad.out;
  // So is a slice margin outside [0, 100].
  Output margin = run_frugal("calibrate --config " + (dir_ / "answers.toml").string() +
                                 " --data " + items() + " --slice-margin -1",
                             true);
  EXPECT_NE(margin.exit_code, 0);
  EXPECT_NE(margin.out.find("slice-margin"), std::string::npos) << margin.out;
  // --slice-bound bounds the slice margin; alone it is a usage error.
  Output alone = run_frugal("calibrate --config " + (dir_ / "answers.toml").string() +
                                " --data " + items() + " --slice-bound",
                            true);
  EXPECT_EQ(alone.exit_code, 2) << alone.out;
  EXPECT_NE(alone.out.find("needs --slice-margin"), std::string::npos) << alone.out;
  // A features path that cannot be written is an error that names it.
  Output features = run_frugal("calibrate --config " + (dir_ / "answers.toml").string() +
                                   " --data " + items() + " -n 16 -t 1 --dry-run --features " +
                                   unwritable,
                               true);
  EXPECT_EQ(features.exit_code, 1) << features.out;
  EXPECT_NE(features.out.find("no/such/dir"), std::string::npos) << features.out;
}

TEST_F(CalibrateEvalTest, EvalExitsThreeWhenTier1RegressesASlice) {
  const std::string src = std::string(FRUGAL_SHARED_DIR) + "/models/stories260K";
  if (!fs::exists(src + "/stories260K.bin")) GTEST_SKIP() << "no " << src;
  const fs::path weak = dir_ / "stories.gguf";
  Output conv = run_frugal("convert --llama2c " + src + "/stories260K.bin --tokenizer " + src +
                               "/tok512.bin -o " + weak.string(),
                           true);
  ASSERT_EQ(conv.exit_code, 0) << conv.out;
  const json j = eval_json(write_config("weak.toml", 0.0, weak.string()), "", 3);
  EXPECT_FALSE(j["pass"].get<bool>());
  ASSERT_FALSE(j["flags"].empty());
  EXPECT_TRUE(j["slices"].contains(j["flags"][0]["slice"].get<std::string>()));
  EXPECT_GT(j["flags"][0]["loss_points"].get<double>(), 2.0);
  EXPECT_LT(j["tier1"]["accuracy"].get<double>(), j["top"]["accuracy"].get<double>());
}

TEST_F(CalibrateEvalTest, EvalBaselineHoldsANewStudentToTheOneServingToday) {
  // Against itself, a config has no regression anywhere: the baseline's figures are its own.
  const fs::path today = write_config("today.toml", 0.0);  // the teacher as tier 1, never escalating
  const json same = eval_json(today, "--baseline " + today.string());
  EXPECT_TRUE(same["pass"].get<bool>()) << same.dump();
  ASSERT_TRUE(same.contains("baseline")) << same.dump();
  EXPECT_EQ(same["baseline"]["config"], today.string());
  EXPECT_DOUBLE_EQ(same["baseline"]["cascade"]["accuracy"].get<double>(),
                   same["cascade"]["accuracy"].get<double>());
  for (const auto& [slice, g] : same["slices"].items()) {
    EXPECT_DOUBLE_EQ(same["baseline"]["slices"][slice]["tier1"]["accuracy"].get<double>(),
                     g["tier1"]["accuracy"].get<double>()) << slice;
  }

  // The bundled student as the new tier 1, never escalating, held to the teacher serving today:
  // it regresses slices against the baseline, and those flags say so.
  const fs::path student = fs::path(FRUGAL_SOURCE_DIR) / "models/frugal-student.gguf";
  const fs::path next = write_config("next.toml", 0.0, student.string());
  const json j = eval_json(next, "--gate cascade --baseline " + today.string(), 3);
  EXPECT_FALSE(j["pass"].get<bool>());
  size_t against_baseline = 0;
  for (const json& f : j["flags"]) {
    EXPECT_EQ(f["policy"], "cascade") << f.dump();  // --gate cascade: tier 1 alone is not gated
    if (f["against"] != "baseline") continue;
    ++against_baseline;
    const std::string slice = f["slice"];
    const double before = j["baseline"]["slices"][slice]["cascade"]["accuracy"].get<double>();
    const double now = j["slices"][slice]["cascade"]["accuracy"].get<double>();
    EXPECT_NEAR(f["loss_points"].get<double>(), 100 * (before - now), 1e-9) << slice;
    EXPECT_GT(f["loss_points"].get<double>(), 2.0) << slice;
  }
  EXPECT_GT(against_baseline, 0u) << j.dump();

  Output table = run_frugal("eval --config " + next.string() + " --data " + items() +
                            " -n 16 -t 1 --baseline " + today.string());
  EXPECT_EQ(table.exit_code, 3) << table.out;
  EXPECT_NE(table.out.find("against the baseline"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("against the baseline's cascade on slice"), std::string::npos)
      << table.out;

  // A baseline that cannot load is named as the baseline's problem.
  Output missing = run_frugal("eval --config " + next.string() + " --data " + items() +
                                  " --baseline " + (dir_ / "gone.toml").string(),
                              true);
  EXPECT_EQ(missing.exit_code, 2) << missing.out;
  EXPECT_NE(missing.out.find("eval --baseline"), std::string::npos) << missing.out;
}

// The chosen row of a curve CSV: its threshold.
double chosen_threshold(const std::string& csv, size_t* rows) {
  std::istringstream in(csv);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line.rfind("threshold,", 0), 0u) << line;
  double chosen = -1;
  *rows = 0;
  while (std::getline(in, line)) {
    ++*rows;
    std::vector<std::string> cells;
    std::stringstream ss(line);
    for (std::string cell; std::getline(ss, cell, ',');) cells.push_back(cell);
    if (cells.size() > 9 && cells[9] == "1") chosen = std::stod(cells[0]);  // the chosen column
  }
  return chosen;
}

TEST_F(CalibrateEvalTest, CalibrateWritesCurveAndConfig) {
  const fs::path config = write_config("cal.toml", 0.5);
  Output o = run_frugal("calibrate --config " + config.string() + " --data " + items() +
                        " --target 0.98 -n 16 -t 1");
  ASSERT_EQ(o.exit_code, 0) << o.out;
  EXPECT_NE(o.out.find("mean_logprob"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("random"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("chose threshold"), std::string::npos) << o.out;
  // The cache under the fitted scorer and the chosen threshold, every item replayed in order.
  EXPECT_NE(o.out.find("cache 'cache' (exact), items replayed in order: "), std::string::npos)
      << o.out;
  size_t rows = 0;
  const double chosen = chosen_threshold(read_file(dir_ / "calibration.csv"), &rows);
  EXPECT_GE(rows, 2u);
  ASSERT_GE(chosen, 0.0);
  const std::string svg = read_file(dir_ / "calibration.svg");
  EXPECT_NE(svg.find("<svg"), std::string::npos);
  EXPECT_NE(svg.find("class=\"chosen\""), std::string::npos);
  EXPECT_EQ(svg.substr(svg.size() - 7), "</svg>\n");

  auto c = load_cascade_config(config.string());
  ASSERT_TRUE(c.is_ok()) << c.status().to_string() << "\n" << read_file(config);
  EXPECT_NEAR(c->threshold, chosen, 1e-9 + 1e-9 * chosen);
  EXPECT_TRUE(c->scorer.set);
  EXPECT_EQ(c->scorer.weights.size(), 9u);
  ASSERT_EQ(c->tiers.size(), 3u);
  EXPECT_EQ(c->tiers[1].name, "small");
  EXPECT_EQ(c->max_tokens, 16);
  const std::string text = read_file(config);
  EXPECT_EQ(text.rfind("# test config\n", 0), 0u) << text;  // comments kept
  EXPECT_NE(text.find("# the cheap one\n[[tier]]"), std::string::npos) << text;

  // Calibrating again replaces the scorer rather than adding a second one.
  Output again = run_frugal("calibrate --config " + config.string() + " --data " + items() +
                            " --seed 7 -n 16 -t 1 --csv " + (dir_ / "b.csv").string() +
                            " --svg " + (dir_ / "b.svg").string());
  ASSERT_EQ(again.exit_code, 0) << again.out;
  ASSERT_TRUE(load_cascade_config(config.string()).is_ok()) << read_file(config);
  const std::string text2 = read_file(config);
  EXPECT_EQ(text2.find("[cascade.scorer]"), text2.rfind("[cascade.scorer]")) << text2;
  EXPECT_TRUE(fs::exists(dir_ / "b.csv"));
  EXPECT_TRUE(fs::exists(dir_ / "b.svg"));
}

// Configs without a threshold line, with an inline scorer, or with no [cascade] table at all.
TEST_F(CalibrateEvalTest, CalibrateRewritesOtherConfigShapes) {
  const std::string tiers = "[[tier]]\nname = \"small\"\nkind = \"local\"\nmodel = \"" +
                            teacher() + "\"\nprice_in = 0.05\nprice_out = 0.10\n\n"
                            "[[tier]]\nname = \"large\"\nkind = \"local\"\nmodel = \"" +
                            teacher() + "\"\nprice_in = 0.50\nprice_out = 1.50\n";
  const std::vector<std::string> heads = {
      "[cascade]\nmax_tokens = 16\nscorer = { bias = 1.0, weights = { mean_logprob = 4.0 } }\n"
      "# more\n\n",
      "# no cascade table\n\n"};
  for (size_t i = 0; i < heads.size(); ++i) {
    const fs::path config = dir_ / ("shape" + std::to_string(i) + ".toml");
    std::ofstream(config) << heads[i] << tiers;
    Output o = run_frugal("calibrate --config " + config.string() + " --data " + items() +
                          " -n 16 -t 1");
    ASSERT_EQ(o.exit_code, 0) << o.out;
    size_t rows = 0;
    const double chosen = chosen_threshold(read_file(dir_ / "calibration.csv"), &rows);
    auto c = load_cascade_config(config.string());
    ASSERT_TRUE(c.is_ok()) << c.status().to_string() << "\n" << read_file(config);
    EXPECT_NEAR(c->threshold, chosen, 1e-9);
    EXPECT_TRUE(c->scorer.set);
    EXPECT_EQ(c->scorer.weights.size(), 9u) << read_file(config);
    EXPECT_EQ(c->model_tiers().size(), 2u);
    if (i == 0) {
      EXPECT_EQ(c->max_tokens, 16);
    }
  }
}

TEST_F(CalibrateEvalTest, CalibrateLeavesConfigAloneOnDryRunOrUnmetTarget) {
  const fs::path config = write_config("keep.toml", 0.5);
  const std::string before = read_file(config);
  const fs::path features = dir_ / "features.jsonl";
  Output dry = run_frugal("calibrate --config " + config.string() + " --data " + items() +
                          " --dry-run -n 16 -t 1 --features " + features.string());
  EXPECT_EQ(dry.exit_code, 0) << dry.out;
  EXPECT_EQ(read_file(config), before);

  // --features: one line per item, each in one of the 5 cross-fitting folds, every scorer
  // feature by name.
  std::ifstream in(features);
  std::map<int, int> folds;
  int lines = 0;
  for (std::string line; std::getline(in, line); ++lines) {
    const json j = json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line;
    ++folds[j["fold"].get<int>()];
    EXPECT_EQ(j["features"].size(), 9u) << line;
    EXPECT_LE(j["features"]["mean_logprob"].get<double>(), 0.0) << line;
    EXPECT_GE(j["features"]["answer_tokens"].get<double>(), 1.0) << line;
    // The same model plays both tiers: it is right for one exactly when for the other.
    EXPECT_EQ(j["tier1_correct"].get<bool>(), j["top_correct"].get<bool>()) << line;
    EXPECT_GT(j["top_cost"].get<double>(), j["tier1_cost"].get<double>()) << line;
  }
  EXPECT_EQ(lines, kItems);
  ASSERT_EQ(folds.size(), 5u);
  for (const auto& [fold, count] : folds) {
    EXPECT_TRUE(fold >= 0 && fold < 5) << fold;
    EXPECT_GE(count, kItems / 5 - 3) << "fold " << fold;
  }
  EXPECT_NE(dry.out.find("With 95 % confidence, simultaneously: "), std::string::npos) << dry.out;
  EXPECT_NE(dry.out.find("out-of-fold scores of all"), std::string::npos) << dry.out;
  // --half-split: the scorer fitted on one half, the threshold chosen on the other.
  Output half = run_frugal("calibrate --config " + config.string() + " --data " + items() +
                           " --dry-run --half-split -n 16 -t 1 --features " + features.string());
  EXPECT_EQ(half.exit_code, 0) << half.out;
  std::ifstream in_half(features);
  std::map<std::string, int> halves;
  for (std::string line; std::getline(in_half, line);) {
    ++halves[json::parse(line)["half"].get<std::string>()];
  }
  EXPECT_EQ(halves["fit"] + halves["threshold"], kItems);
  EXPECT_GT(halves["fit"], 0);
  EXPECT_GT(halves["threshold"], 0);
  EXPECT_EQ(read_file(config), before);
  // Identical tiers: the cascade cannot reach 1.5 x the top tier's accuracy.
  Output unmet = run_frugal("calibrate --config " + config.string() + " --data " + items() +
                            " --target 1.5 -n 16 -t 1");
  EXPECT_EQ(unmet.exit_code, 3) << unmet.out;
  EXPECT_NE(unmet.out.find("no threshold meets"), std::string::npos) << unmet.out;
  EXPECT_EQ(read_file(config), before);
}

TEST_F(CalibrateEvalTest, BadInputsExitTwoWithAMessage) {
  const fs::path config = write_config("bad.toml", 0.5);
  for (const char* cmd : {"eval", "calibrate"}) {
    Output missing = run_frugal(std::string(cmd) + " --config " + config.string() +
                                    " --data " + (dir_ / "nope.jsonl").string(),
                                true);
    EXPECT_EQ(missing.exit_code, 2) << missing.out;
    EXPECT_NE(missing.out.find("nope.jsonl"), std::string::npos) << missing.out;
  }
  const fs::path malformed = dir_ / "malformed.jsonl";
  {
    std::ifstream in(items());
    std::ofstream out(malformed);
    std::string line;
    std::getline(in, line);
    out << line << "\n";
    std::getline(in, line);
    out << line << "\n{\"id\": \"x\", \"slice\": \n";
  }
  Output bad = run_frugal("eval --config " + config.string() + " --data " + malformed.string(),
                          true);
  EXPECT_EQ(bad.exit_code, 2) << bad.out;
  EXPECT_NE(bad.out.find("malformed.jsonl:3"), std::string::npos) << bad.out;
  for (const char* target : {"0", "-1", "1.6"}) {
    Output t = run_frugal("calibrate --config " + config.string() + " --data " + items() +
                              " --target " + target,
                          true);
    EXPECT_EQ(t.exit_code, 2) << target << ": " << t.out;
    EXPECT_NE(t.out.find("(0, 1.5]"), std::string::npos) << t.out;
  }
  Output no_config = run_frugal("eval --config " + (dir_ / "none.toml").string() + " --data " +
                                    items(),
                                true);
  EXPECT_EQ(no_config.exit_code, 2) << no_config.out;
}

}  // namespace
}  // namespace frugal::cascade
