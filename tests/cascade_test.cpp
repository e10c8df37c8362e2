// The cascade end to end on a real tiny model (llama2.c's stories260K, converted at test time)
// used as both tier 1 and top tier: the cache, the threshold's two extremes, costs, scorer
// features, early escalation, the config keys of the cascade, and `frugal cascade --json`.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cascade/cache_tier.h"
#include "cascade/cascade.h"
#include "cascade/config.h"
#include "cascade/early_escalation.h"
#include "cascade/features.h"
#include "test_shell.h"

namespace frugal::cascade {
namespace {

namespace fs = std::filesystem;

using Output = test::CommandOutput;

Output run_frugal(const std::string& args, bool with_stderr = false) {
  return test::run_frugal(args, with_stderr);
}

constexpr double kSmallIn = 0.05, kSmallOut = 0.10, kLargeIn = 0.50, kLargeOut = 1.50;

class CascadeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("frugal_cascade_test_" + std::to_string(getpid()));
    fs::create_directories(dir_);
    const std::string src = std::string(FRUGAL_SHARED_DIR) + "/models/stories260K";
    Output o = run_frugal("convert --llama2c " + src + "/stories260K.bin --tokenizer " + src +
                              "/tok512.bin -o " + (dir_ / "stories.gguf").string(),
                          true);
    ASSERT_EQ(o.exit_code, 0) << o.out;
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  // A config with a cache and the same model as tier 1 ("small") and top tier ("large").
  static std::string config_text(const std::string& cascade_extra) {
    return "[cascade]\nmax_tokens = 24\n" + cascade_extra +
           "\n[[tier]]\nname = \"cache\"\nkind = \"cache\"\ncapacity = 4\n"
           "[[tier]]\nname = \"small\"\nkind = \"local\"\nmodel = \"stories.gguf\"\n"
           "price_in = " + std::to_string(kSmallIn) + "\nprice_out = " +
           std::to_string(kSmallOut) +
           "\n[[tier]]\nname = \"large\"\nkind = \"local\"\nmodel = \"stories.gguf\"\n"
           "price_in = " + std::to_string(kLargeIn) + "\nprice_out = " +
           std::to_string(kLargeOut) + "\n";
  }
  static CascadeConfig config(const std::string& cascade_extra = "") {
    auto c = parse_cascade_config(config_text(cascade_extra), "test.toml", dir_.string());
    EXPECT_TRUE(c.is_ok()) << c.status().to_string();
    return c.is_ok() ? *c : CascadeConfig{};
  }
  static std::unique_ptr<Cascade> make(const CascadeConfig& c) {
    CascadeOptions o;
    o.n_threads = 1;
    o.n_ctx = 512;
    auto cascade = Cascade::create(c, o);
    EXPECT_TRUE(cascade.is_ok()) << cascade.status().to_string();
    return cascade.is_ok() ? std::move(cascade).value() : nullptr;
  }
  static TierRequest request(const std::string& prompt, float temperature = 0.0f) {
    TierRequest r;
    r.messages = {{"user", prompt}};
    r.max_tokens = 24;
    r.temperature = temperature;
    r.seed = 7;
    return r;
  }

  static fs::path dir_;
};
fs::path CascadeTest::dir_;

TEST_F(CascadeTest, SecondIdenticalRequestIsACacheHitAtNoCost) {
  auto c = make(config());
  ASSERT_TRUE(c);
  auto first = c->answer(request("Once upon a time"));
  ASSERT_TRUE(first.is_ok()) << first.status().to_string();
  EXPECT_FALSE(first->cache_hit);
  EXPECT_GT(first->cost, 0.0);
  EXPECT_FALSE(first->text.empty());
  auto second = c->answer(request("Once upon a time"));
  ASSERT_TRUE(second.is_ok());
  EXPECT_TRUE(second->cache_hit);
  EXPECT_EQ(second->tier, "cache");
  EXPECT_EQ(second->cost, 0.0);
  EXPECT_EQ(second->text, first->text);
  EXPECT_FALSE(second->escalated);
  ASSERT_EQ(second->trace.size(), 1u) << "no model tier ran";
  // Another prompt, another system message or another max_tokens is another entry.
  TierRequest other = request("Once upon a time");
  other.max_tokens = 23;
  auto third = c->answer(other);
  ASSERT_TRUE(third.is_ok());
  EXPECT_FALSE(third->cache_hit);
  EXPECT_EQ(c->cache()->size(), 2u);
  EXPECT_EQ(c->cache()->hits(), 1);
}

TEST_F(CascadeTest, SampledRequestsAreNotCached) {
  auto c = make(config());
  ASSERT_TRUE(c);
  for (int i = 0; i < 2; ++i) {
    auto a = c->answer(request("Once upon a time", 0.8f));
    ASSERT_TRUE(a.is_ok()) << a.status().to_string();
    EXPECT_FALSE(a->cache_hit);
    EXPECT_GT(a->cost, 0.0);
  }
  EXPECT_EQ(c->cache()->size(), 0u);
}

TEST_F(CascadeTest, CacheEvictsTheLeastRecentlyUsedBeyondCapacity) {
  TierConfig tc;
  tc.name = "cache";
  tc.kind = TierKind::kCache;
  tc.cache_capacity = 2;
  CacheTier cache(tc);
  TierAnswer a;
  a.text = "A";
  cache.store(request("a"), a);
  a.text = "B";
  cache.store(request("b"), a);
  ASSERT_TRUE(cache.answer(request("a")).is_ok());  // "a" is now the most recently used
  a.text = "C";
  cache.store(request("c"), a);
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_FALSE(cache.answer(request("b")).is_ok()) << "b was least recently used";
  auto hit = cache.answer(request("a"));
  ASSERT_TRUE(hit.is_ok());
  EXPECT_EQ(hit->text, "A");
  // Roles and contents cannot run into each other in the key.
  TierRequest x = request("b");
  x.messages = {{"user", "ab"}};
  TierRequest y = request("b");
  y.messages = {{"usera", "b"}};
  EXPECT_NE(CacheTier::canonical_key(x), CacheTier::canonical_key(y));
}

TEST_F(CascadeTest, ThresholdZeroNeverEscalatesAndPaysTierOneOnly) {
  CascadeConfig cfg = config("threshold = 0.0");
  auto c = make(cfg);
  ASSERT_TRUE(c);
  for (const char* p : {"Once upon a time", "Lily and Ben", "The sun was hot"}) {
    auto a = c->answer(request(p));
    ASSERT_TRUE(a.is_ok()) << a.status().to_string();
    EXPECT_FALSE(a->escalated) << p;
    EXPECT_EQ(a->tier, "small");
    EXPECT_GE(a->score, 0.0);
    EXPECT_LE(a->score, 1.0);
    ASSERT_EQ(a->trace.size(), 1u);
    const double expect = (a->tokens_in * kSmallIn + a->tokens_out * kSmallOut) / 1e6;
    EXPECT_NEAR(a->cost, expect, 1e-15);
    EXPECT_EQ(a->text, a->tier1.text);
  }
}

TEST_F(CascadeTest, ThresholdOneAlwaysEscalatesAndPaysBothTiers) {
  auto c = make(config("threshold = 1.0"));
  ASSERT_TRUE(c);
  for (const char* p : {"Once upon a time", "Lily and Ben"}) {
    auto a = c->answer(request(p));
    ASSERT_TRUE(a.is_ok()) << a.status().to_string();
    EXPECT_TRUE(a->escalated) << p;
    EXPECT_FALSE(a->escalated_early);
    EXPECT_EQ(a->tier, "large");
    ASSERT_EQ(a->trace.size(), 2u);
    EXPECT_EQ(a->trace[0].tier, "small");
    EXPECT_EQ(a->trace[1].tier, "large");
    const TierUse& s = a->trace[0];
    const TierUse& l = a->trace[1];
    EXPECT_NEAR(s.cost, (s.tokens_in * kSmallIn + s.tokens_out * kSmallOut) / 1e6, 1e-15);
    EXPECT_NEAR(l.cost, (l.tokens_in * kLargeIn + l.tokens_out * kLargeOut) / 1e6, 1e-15);
    EXPECT_NEAR(a->cost, s.cost + l.cost, 1e-15);
    EXPECT_EQ(a->tokens_out, s.tokens_out + l.tokens_out);
    EXPECT_EQ(a->tokens_in, s.tokens_in + l.tokens_in);
    // The answer is the top tier's own answer to the same request.
    auto direct = c->top_tier().answer(request(p));
    ASSERT_TRUE(direct.is_ok());
    EXPECT_EQ(a->text, direct->text);
  }
}

// A top tier that always says the same thing, so "the answer came from the top tier" is
// visible in the text.
class FixedTier : public SyncTier {
 public:
  explicit FixedTier(TierConfig config) : SyncTier(std::move(config)) {}

 protected:
  Result<TierAnswer> answer_now(const TierRequest&, const TokenObserver&) override {
    TierAnswer a;
    a.text = "from the top";
    a.finish = FinishReason::kStop;
    a.tokens_in = 10;
    a.tokens_out = 3;
    a.cost = cost(10, 3);
    return a;
  }
};

TEST_F(CascadeTest, ScorerAgainstThresholdPicksTheTier) {
  CascadeConfig cfg = config();
  LocalTierOptions lo;
  lo.n_threads = 1;
  lo.scheduler.n_ctx = 512;
  auto small = LocalTier::load(*cfg.model_tiers()[0], lo);
  ASSERT_TRUE(small.is_ok()) << small.status().to_string();
  std::vector<std::unique_ptr<Tier>> tiers;
  tiers.push_back(std::move(small).value());
  tiers.push_back(std::make_unique<FixedTier>(*cfg.model_tiers()[1]));
  Cascade c(cfg, nullptr, std::move(tiers));
  std::vector<double> seen;
  c.set_scorer([&seen](const std::vector<double>& f) {
    seen = f;
    return 0.7;
  });
  c.set_threshold(0.6);
  auto kept = c.answer(request("Once upon a time"));
  ASSERT_TRUE(kept.is_ok());
  EXPECT_FALSE(kept->escalated);
  EXPECT_DOUBLE_EQ(kept->score, 0.7);
  EXPECT_NE(kept->text, "from the top");
  EXPECT_EQ(seen, kept->features) << "the scorer sees the recorded features";
  c.set_threshold(0.75);
  auto escalated = c.answer(request("Once upon a time"));
  ASSERT_TRUE(escalated.is_ok());
  EXPECT_TRUE(escalated->escalated);
  EXPECT_EQ(escalated->text, "from the top");
  EXPECT_EQ(escalated->tier, "large");
}

TEST_F(CascadeTest, FeaturesAreFiniteInRangeAndMatchTheTokens) {
  auto c = make(config("threshold = 0.0"));
  ASSERT_TRUE(c);
  const auto& names = scorer_feature_names();
  ASSERT_EQ(names.size(), static_cast<size_t>(Feature::kCount));
  for (const char* p : {"Once upon a time", "Tom had a red ball", "x"}) {
    auto a = c->answer(request(p));
    ASSERT_TRUE(a.is_ok()) << a.status().to_string();
    const TierAnswer& t1 = a->tier1;
    const std::vector<double>& f = a->features;
    ASSERT_EQ(f.size(), names.size());
    for (size_t i = 0; i < f.size(); ++i) EXPECT_TRUE(std::isfinite(f[i])) << names[i];
    auto at = [&f](Feature x) { return f[static_cast<size_t>(x)]; };
    ASSERT_FALSE(t1.tokens.empty());
    double sum = 0.0, min_lp = 0.0;
    for (const AnswerToken& t : t1.tokens) {
      sum += t.logprob;
      min_lp = std::min<double>(min_lp, t.logprob);
      EXPECT_EQ(t.top.size(), 5u) << "n_logprobs alternatives per token";
    }
    EXPECT_NEAR(at(Feature::kMeanLogprob), sum / t1.tokens.size(), 1e-6);
    EXPECT_NEAR(at(Feature::kMinLogprob), min_lp, 1e-6);
    EXPECT_LE(at(Feature::kMeanLogprob), 0.0);
    EXPECT_LE(at(Feature::kMinLogprob), at(Feature::kP10Logprob));
    EXPECT_LE(at(Feature::kP10Logprob), at(Feature::kP25Logprob));
    EXPECT_LE(at(Feature::kP25Logprob), 0.0);
    for (Feature e : {Feature::kMeanTopkEntropy, Feature::kFirstTokenEntropy}) {
      EXPECT_GE(at(e), 0.0);
      EXPECT_LE(at(e), std::log(5.0) + 1e-9);
    }
    EXPECT_EQ(at(Feature::kAnswerTokens), static_cast<double>(t1.tokens_out));
    EXPECT_EQ(at(Feature::kFinishLength), t1.finish == FinishReason::kLength ? 1.0 : 0.0);
    EXPECT_TRUE(t1.has_prompt_logprob);
    EXPECT_LT(at(Feature::kPromptMeanLogprob), 0.0);
    EXPECT_EQ(at(Feature::kPromptMeanLogprob), t1.prompt_mean_logprob);
    // The default rule: sigmoid(4 · mean_logprob + 2).
    const double z = kDefaultScorerSlope * at(Feature::kMeanLogprob) + kDefaultScorerBias;
    EXPECT_NEAR(a->score, 1.0 / (1.0 + std::exp(-z)), 1e-12);
  }
}

TEST(CascadeFeatures, EntropyAndQuantileOnKnownValues) {
  EXPECT_NEAR(renormalised_entropy({-1.0f, -1.0f}), std::log(2.0), 1e-9);
  EXPECT_NEAR(renormalised_entropy({-0.1f, -5.0f, -5.0f, -5.0f}),
              renormalised_entropy({-3.1f, -8.0f, -8.0f, -8.0f}), 1e-6)
      << "renormalised: a shift of every logprob changes nothing";
  EXPECT_EQ(renormalised_entropy({-0.5f}), 0.0);
  EXPECT_EQ(renormalised_entropy({}), 0.0);
  EXPECT_DOUBLE_EQ(quantile({5, 1, 4, 2, 3}, 0.25), 2.0);
  EXPECT_DOUBLE_EQ(quantile({1, 2}, 0.10), 1.1);
  EXPECT_EQ(quantile({}, 0.5), 0.0);
  TierAnswer empty;
  std::vector<double> f = scorer_features(empty);
  for (double v : f) EXPECT_TRUE(std::isfinite(v));
  EXPECT_EQ(f[static_cast<size_t>(Feature::kAnswerTokens)], 0.0);
}

TEST_F(CascadeTest, EarlyEscalationStopsTierOneAndRecordsTheSaving) {
  CascadeConfig cfg = config(
      "threshold = 0.0\nearly_escalation_logprob = -0.01\nearly_escalation_window = 4");
  ASSERT_TRUE(cfg.early_escalation);
  auto c = make(cfg);
  ASSERT_TRUE(c);
  TierRequest r = request("Once upon a time");
  r.max_tokens = 40;
  auto a = c->answer(r);
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_TRUE(a->escalated_early);
  EXPECT_TRUE(a->escalated) << "escalates although threshold 0 would keep any scored answer";
  EXPECT_EQ(a->tier, "large");
  EXPECT_EQ(a->tier1.tokens_out, 4) << "stops as soon as the first window is below the floor";
  EXPECT_EQ(a->tokens_saved, 40 - a->tier1.tokens_out);
  ASSERT_EQ(a->trace.size(), 2u);
  EXPECT_NEAR(a->cost, a->trace[0].cost + a->trace[1].cost, 1e-15);
  EXPECT_FALSE(std::isfinite(a->score)) << "an interrupted answer is not scored";

  // A floor no answer falls below never fires; with it off, threshold 0 keeps tier 1.
  auto loose = make(config("threshold = 0.0\nearly_escalation_logprob = -1000"));
  ASSERT_TRUE(loose);
  auto b = loose->answer(r);
  ASSERT_TRUE(b.is_ok());
  EXPECT_FALSE(b->escalated_early);
  EXPECT_FALSE(b->escalated);
  EXPECT_EQ(b->tokens_saved, 0);
}

TEST_F(CascadeTest, ReplayedFloorStopsWhereTheLiveCascadeStops) {
  // `frugal eval --early-sweep` replays the floor over complete answers; it must cut where the
  // live cascade cuts.
  TierRequest r = request("Once upon a time");
  r.max_tokens = 24;
  auto full = make(config("threshold = 0.0"))->answer(r);
  ASSERT_TRUE(full.is_ok());
  ASSERT_EQ(full->tier1.tokens_out, 24);
  size_t fired = 0;
  for (double floor : {-0.01, -0.5, -1.0, -2.0, -1000.0}) {
    std::ostringstream extra;
    extra << "threshold = 0.0\nearly_escalation_logprob = " << floor
          << "\nearly_escalation_window = 2";
    auto live = make(config(extra.str()))->answer(r);
    ASSERT_TRUE(live.is_ok());
    const int64_t replay = early_stop_point(full->tier1.tokens, 2, floor);
    EXPECT_EQ(live->escalated_early, replay > 0) << "floor " << floor;
    if (replay > 0) {
      EXPECT_EQ(live->tier1.tokens_out, replay) << "floor " << floor;
    }
    fired += replay > 0;
  }
  EXPECT_GE(fired, 1u);
  EXPECT_LE(fired, 4u) << "the -1000 floor never fires";
}

// The bundled student as tier 1 and the teacher as the top tier, every request escalated;
// `cascade_keys` adds to [cascade].
std::unique_ptr<Cascade> student_teacher(const std::string& cascade_keys) {
  const std::string models = std::string(FRUGAL_SOURCE_DIR) + "/models/";
  const std::string text =
      "[cascade]\nthreshold = 1.0\nmax_tokens = 24\n" + cascade_keys +
      "\n[[tier]]\nname = \"small\"\nkind = \"local\"\nmodel = \"" + models +
      "frugal-student.gguf\"\nprice_in = 0.05\nprice_out = 0.1\n[[tier]]\nname = "
      "\"large\"\nkind = \"local\"\nmodel = \"" + models +
      "frugal-teacher.gguf\"\nprice_in = 0.5\nprice_out = 1.5\n";
  auto cfg = parse_cascade_config(text, "student_teacher.toml", "");
  EXPECT_TRUE(cfg.is_ok()) << cfg.status().to_string();
  if (!cfg.is_ok()) return nullptr;
  CascadeOptions o;
  o.n_threads = 1;
  auto c = Cascade::create(*cfg, o);
  EXPECT_TRUE(c.is_ok()) << c.status().to_string();
  return c.is_ok() ? std::move(c).value() : nullptr;
}

// The first `n` held-out items as greedy requests of up to 24 tokens, with their ids.
std::vector<std::pair<std::string, TierRequest>> heldout_requests(int n) {
  std::ifstream in(std::string(FRUGAL_SOURCE_DIR) + "/data/heldout.jsonl");
  std::vector<std::pair<std::string, TierRequest>> out;
  std::string line;
  while (static_cast<int>(out.size()) < n && std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    TierRequest r;
    for (const auto& m : j["messages"]) r.messages.push_back({m["role"], m["content"]});
    r.max_tokens = 24;
    out.push_back({j["id"].get<std::string>(), std::move(r)});
  }
  return out;
}

TEST(SpeculativeEscalation, TheTopTierVerifiesTierOnesAnswerAndGivesItsOwn) {
  // The bundled student and teacher share a vocabulary: on escalation the teacher verifies the
  // student's answer as a draft. Its answer must be the teacher's own greedy answer, on items
  // where the student was right (much reused) and wrong (little).
  auto on = student_teacher("speculative_escalation = true");
  auto off = student_teacher("speculative_escalation = false");
  ASSERT_TRUE(on && off);
  int64_t reused = 0, items = 0;
  for (const auto& [id, r] : heldout_requests(60)) {
    auto a = on->answer(r);
    auto b = off->answer(r);
    auto direct = on->top_tier().answer(r);
    ASSERT_TRUE(a.is_ok() && b.is_ok() && direct.is_ok());
    ASSERT_TRUE(a->escalated && b->escalated);
    EXPECT_EQ(a->text, direct->text) << id;
    EXPECT_EQ(b->text, direct->text) << id;
    EXPECT_EQ(b->tokens_reused, 0);
    EXPECT_LE(a->tokens_reused, a->tier1.tokens_out);
    reused += a->tokens_reused;
    ++items;
  }
  EXPECT_GT(reused, items) << "the student is often right: its tokens are reused";
}

TEST(SpeculativeCascade, TheMarginHandsTheTopTiersChoiceToTierOneToken) {
  // The live cascade passes tier 1's logprobs and the config's margin to the top tier: at
  // alpha 1 every tier-1 token stands (the answer is tier 1's, re-scored by nobody), at
  // alpha -1 none that the top tier disagrees with (its own answer, as plain speculative
  // escalation gives).
  auto all = student_teacher("speculative_cascade_alpha = 1.0");
  auto none = student_teacher("speculative_cascade_alpha = -1.0");
  ASSERT_TRUE(all && none);
  int64_t kept = 0, differ = 0;
  for (const auto& [id, r] : heldout_requests(60)) {
    auto a = all->answer(r);
    auto b = none->answer(r);
    auto direct = all->top_tier().answer(r);
    ASSERT_TRUE(a.is_ok() && b.is_ok() && direct.is_ok());
    ASSERT_TRUE(a->escalated && b->escalated);
    EXPECT_EQ(a->text, a->tier1.text) << id << ": alpha 1 keeps tier 1's answer";
    EXPECT_EQ(b->text, direct->text) << id << ": alpha -1 is lossless";
    EXPECT_EQ(b->tokens_kept, 0);
    EXPECT_LE(a->tokens_kept, a->tokens_reused + 1);  // the first token is not "reused"
    kept += a->tokens_kept;
    differ += a->tier1.text != direct->text;
  }
  EXPECT_GT(differ, 0) << "the student and the teacher disagree on some of these";
  EXPECT_GE(kept, differ) << "each disagreement was a token kept against the teacher";
}

TEST_F(CascadeTest, ConfigKeysOfTheCascade) {
  CascadeConfig plain = config();
  EXPECT_FALSE(plain.scorer.set);
  EXPECT_FALSE(plain.early_escalation);
  EXPECT_EQ(plain.early_escalation_window, 8);
  EXPECT_EQ(plain.max_tokens, 24);
  EXPECT_EQ(plain.cache_tier()->cache_capacity, 4);

  CascadeConfig fitted = config(
      "[cascade.scorer]\nbias = -1.5\nweights = { mean_logprob = 3.0, answer_tokens = -0.25 }");
  ASSERT_TRUE(fitted.scorer.set);
  EXPECT_EQ(fitted.scorer.bias, -1.5);
  ASSERT_EQ(fitted.scorer.weights.size(), 2u);
  Scorer s = scorer_from_config(fitted.scorer);
  std::vector<double> f(static_cast<size_t>(Feature::kCount), 0.0);
  f[static_cast<size_t>(Feature::kMeanLogprob)] = -0.5;
  f[static_cast<size_t>(Feature::kAnswerTokens)] = 2.0;
  f[static_cast<size_t>(Feature::kMinLogprob)] = -9.0;  // no weight: no effect
  EXPECT_NEAR(s(f), 1.0 / (1.0 + std::exp(-(-1.5 + 3.0 * -0.5 - 0.25 * 2.0))), 1e-12);

  // The same model written as a standard sub-table, as `frugal calibrate` writes it.
  CascadeConfig subtable = config(
      "[cascade.scorer]\nbias = -1.5\n[cascade.scorer.weights]\nmean_logprob = 3.0\n"
      "answer_tokens = -0.25\n");
  ASSERT_TRUE(subtable.scorer.set);
  EXPECT_EQ(scorer_from_config(subtable.scorer)(f), s(f));

  auto bad_feature = parse_cascade_config(
      config_text("[cascade.scorer]\nweights = { mean_logprb = 1.0 }"), "t.toml", dir_.string());
  ASSERT_FALSE(bad_feature.is_ok());
  EXPECT_NE(bad_feature.status().message().find("t.toml:4"), std::string::npos)
      << bad_feature.status().message();
  EXPECT_NE(bad_feature.status().message().find("mean_logprb"), std::string::npos);
  auto positive_floor = parse_cascade_config(config_text("early_escalation_logprob = 0.5"),
                                             "t.toml", dir_.string());
  ASSERT_FALSE(positive_floor.is_ok());
  EXPECT_NE(positive_floor.status().message().find("<= 0"), std::string::npos);
  auto zero_window = parse_cascade_config(config_text("early_escalation_window = 0"), "t.toml",
                                          dir_.string());
  EXPECT_FALSE(zero_window.is_ok());
  auto capacity_on_model = parse_cascade_config(
      "[[tier]]\nname = \"s\"\nkind = \"local\"\nmodel = \"m.gguf\"\nprice_in = 1\n"
      "price_out = 1\ncapacity = 3\n",
      "t.toml", dir_.string());
  ASSERT_FALSE(capacity_on_model.is_ok());
  EXPECT_NE(capacity_on_model.status().message().find("capacity"), std::string::npos);
}

TEST_F(CascadeTest, CliAnswersEachStdinLineAsJson) {
  const fs::path cfg = dir_ / "cli.toml";
  std::ofstream(cfg) << config_text("threshold = 1.0");
  const fs::path prompts = dir_ / "prompts.txt";
  std::ofstream(prompts) << "Once upon a time\nLily ran\n\nOnce upon a time\n";
  Output o = run_frugal("cascade --config " + cfg.string() + " --json -n 12 -t 1 < " +
                        prompts.string());
  ASSERT_EQ(o.exit_code, 0) << o.out;
  std::vector<nlohmann::json> lines;
  std::istringstream in(o.out);
  std::string line;
  while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 3u) << o.out;
  for (const char* key : {"prompt", "answer", "tier", "score", "escalated", "escalated_early",
                          "tokens_in", "tokens_out", "cost", "latency_ms"}) {
    EXPECT_TRUE(lines[0].contains(key)) << key;
  }
  EXPECT_EQ(lines[0]["prompt"], "Once upon a time");
  EXPECT_EQ(lines[1]["prompt"], "Lily ran");
  EXPECT_EQ(lines[0]["tier"], "large");
  EXPECT_EQ(lines[0]["escalated"], true);
  EXPECT_GT(lines[0]["cost"].get<double>(), 0.0);
  EXPECT_LE(lines[0]["tokens_out"].get<int>(), 2 * 12);
  EXPECT_EQ(lines[2]["tier"], "cache");
  EXPECT_EQ(lines[2]["cost"].get<double>(), 0.0);
  EXPECT_EQ(lines[2]["answer"], lines[0]["answer"]);
  EXPECT_TRUE(lines[2]["score"].is_null());
}

TEST_F(CascadeTest, CliErrorsNameTheProblem) {
  Output missing_config = run_frugal("cascade --config " + (dir_ / "absent.toml").string() +
                                         " -p hi",
                                     true);
  EXPECT_EQ(missing_config.exit_code, 2);
  EXPECT_NE(missing_config.out.find("absent.toml"), std::string::npos) << missing_config.out;
  const fs::path cfg = dir_ / "missing_model.toml";
  std::ofstream(cfg) << "[[tier]]\nname = \"small\"\nkind = \"local\"\nmodel = \"nope.gguf\"\n"
                        "price_in = 1\nprice_out = 1\n";
  Output missing_model = run_frugal("cascade --config " + cfg.string() + " -p hi", true);
  EXPECT_EQ(missing_model.exit_code, 1);
  EXPECT_NE(missing_model.out.find("nope.gguf"), std::string::npos) << missing_model.out;
  EXPECT_NE(missing_model.out.find("small"), std::string::npos) << missing_model.out;
}

}  // namespace
}  // namespace frugal::cascade
