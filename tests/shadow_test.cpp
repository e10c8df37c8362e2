// Shadow checks on scripted tiers (no model, no timing): which answers are eligible, the
// sampled fraction, the rolling-hour budget, the bounded queue, the three comparisons, the
// distillation log's lines and rotation, and the drift alarm's escalate-all action.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cascade/cascade.h"
#include "cascade/distill_log.h"
#include "cascade/shadow.h"

namespace frugal::cascade {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

// Answers from a table keyed by the last user message (default: "?"); counts its calls. A gate
// holds the top tier's answers back until opened, so a test can fill the queue.
class TableTier : public SyncTier {
 public:
  TableTier(TierConfig config, std::map<std::string, std::string> table)
      : SyncTier(std::move(config)), table_(std::move(table)) {}
  std::atomic<int> calls{0};
  void close_gate() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = false;
  }
  void open_gate() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }

 protected:
  Result<TierAnswer> answer_now(const TierRequest& r, const TokenObserver&) override {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return open_; });
    }
    ++calls;
    TierAnswer a;
    const std::string& q = r.messages.back().content;
    a.text = table_.count(q) != 0 ? table_.at(q) : "?";
    a.finish = FinishReason::kStop;
    a.tokens_in = 100;
    a.tokens_out = 10;
    AnswerToken t;
    t.id = 1;
    t.piece = a.text;
    t.text = a.text;
    t.logprob = -0.25f;
    t.top = {{1, a.text, -0.25f}, {2, "x", -2.0f}};
    a.tokens = {t};
    a.cost = cost(a.tokens_in, a.tokens_out);
    return a;
  }

 private:
  std::map<std::string, std::string> table_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = true;
};

struct Rig {
  std::shared_ptr<Cascade> cascade;
  TableTier* small = nullptr;
  TableTier* large = nullptr;
};

// Tier 1 "small" and top tier "large" ($1 per million tokens in and out: a check of 100 + 10
// tokens costs $0.00011); the scorer keeps every tier-1 answer unless the prompt says "hard".
Rig rig(const std::string& shadow_toml, std::map<std::string, std::string> small_table,
        std::map<std::string, std::string> large_table) {
  const std::string text =
      "[shadow]\n" + shadow_toml +
      "\n[[tier]]\nname = \"small\"\nkind = \"local\"\nmodel = \"none.gguf\"\nprice_in = 0.1\n"
      "price_out = 0.1\n[[tier]]\nname = \"large\"\nkind = \"local\"\nmodel = \"none.gguf\"\n"
      "price_in = 1\nprice_out = 1\n";
  auto cfg = parse_cascade_config(text, "shadow.toml", "");
  EXPECT_TRUE(cfg.is_ok()) << cfg.status().to_string();
  Rig r;
  auto small = std::make_unique<TableTier>(*cfg->model_tiers()[0], std::move(small_table));
  auto large = std::make_unique<TableTier>(*cfg->model_tiers()[1], std::move(large_table));
  r.small = small.get();
  r.large = large.get();
  std::vector<std::unique_ptr<Tier>> tiers;
  tiers.push_back(std::move(small));
  tiers.push_back(std::move(large));
  r.cascade = std::make_shared<Cascade>(*cfg, nullptr, std::move(tiers));
  r.cascade->set_scorer([](const std::vector<double>&) { return 0.9; });
  r.cascade->set_threshold(0.5);
  return r;
}

TierRequest ask(const std::string& q) {
  TierRequest r;
  r.messages = {{"user", q}};
  r.max_tokens = 16;
  return r;
}

struct Counts {
  std::mutex mu;
  std::map<std::string, int> outcomes;  // "slice/agree|disagree/method"
  std::map<std::string, int> drops;
  double spent = 0;
  int alarms = 0;
};

ShadowChecker::Options options(Counts* counts, uint64_t seed = 1) {
  ShadowChecker::Options o;
  o.seed = seed;
  o.log = [](const std::string&) {};
  o.observer.on_outcome = [counts](const std::string& slice, bool agree, const std::string& m) {
    std::lock_guard<std::mutex> lock(counts->mu);
    counts->outcomes[slice + "/" + (agree ? "agree" : "disagree") + "/" + m]++;
  };
  o.observer.on_drop = [counts](const std::string& reason) {
    std::lock_guard<std::mutex> lock(counts->mu);
    counts->drops[reason]++;
  };
  o.observer.on_spent = [counts](double d) {
    std::lock_guard<std::mutex> lock(counts->mu);
    counts->spent += d;
  };
  o.observer.on_alarm = [counts](const DriftState&) {
    std::lock_guard<std::mutex> lock(counts->mu);
    counts->alarms++;
  };
  return o;
}

TEST(ShadowTest, NormalisationForExactMatch) {
  EXPECT_EQ(normalize_for_compare("  The  answer\tis\n42. "), "the answer is 42");
  EXPECT_EQ(normalize_for_compare("Red"), normalize_for_compare("red."));
  EXPECT_NE(normalize_for_compare("18"), normalize_for_compare("81"));
  EXPECT_EQ(normalize_for_compare(""), "");
}

TEST(ShadowTest, OnlyKeptGreedyAnswersAreChecked) {
  Rig r = rig("fraction = 1.0\nbudget_per_hour = 1.0\ncompare = \"exact\"", {{"a", "x"}},
              {{"a", "x"}});
  Counts counts;
  auto s = ShadowChecker::create(r.cascade, options(&counts));
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  auto kept = r.cascade->answer(ask("a"));
  ASSERT_TRUE(kept.is_ok());
  ASSERT_EQ(kept->tier, "small");
  EXPECT_EQ((*s)->offer(ask("a"), {}, *kept), ShadowOffer::kQueued);
  CascadeAnswer escalated = *kept;
  escalated.escalated = true;
  escalated.tier = "large";
  EXPECT_EQ((*s)->offer(ask("a"), {}, escalated), ShadowOffer::kNotEligible);
  CascadeAnswer hit = *kept;
  hit.cache_hit = true;
  EXPECT_EQ((*s)->offer(ask("a"), {}, hit), ShadowOffer::kNotEligible);
  TierRequest sampled = ask("a");
  sampled.temperature = 0.8f;
  EXPECT_EQ((*s)->offer(sampled, {}, *kept), ShadowOffer::kNotEligible);
  (*s)->wait_idle();
  EXPECT_EQ(counts.outcomes["/agree/exact"], 1);
  EXPECT_EQ(r.large->calls.load(), 1);
  EXPECT_NEAR(counts.spent, 110e-6, 1e-12) << "the top tier's price of 100 + 10 tokens";
}

TEST(ShadowTest, SamplesTheConfiguredFraction) {
  Rig r = rig("fraction = 0.2\nbudget_per_hour = 100.0\ncompare = \"exact\"\nqueue = 100000", {},
              {});
  Counts counts;
  auto s = ShadowChecker::create(r.cascade, options(&counts, 42));
  ASSERT_TRUE(s.is_ok());
  r.large->close_gate();  // nothing runs: count what was queued
  auto kept = r.cascade->answer(ask("q"));
  ASSERT_TRUE(kept.is_ok());
  int queued = 0;
  for (int i = 0; i < 5000; ++i) queued += (*s)->offer(ask("q"), {}, *kept) == ShadowOffer::kQueued;
  // Binomial(5000, 0.2): sd 28.
  EXPECT_NEAR(queued, 1000, 120);
  r.large->open_gate();
  (*s)->wait_idle();
}

TEST(ShadowTest, BudgetAndQueueBoundTheChecks) {
  // $0.00011 per check: a budget of $0.0005 an hour admits 4 checks.
  Rig r = rig("fraction = 1.0\nbudget_per_hour = 0.0005\ncompare = \"exact\"\nqueue = 100", {}, {});
  Counts counts;
  auto t0 = Clock::now();
  auto clock = std::make_shared<Clock::time_point>(t0);
  ShadowChecker::Options o = options(&counts);
  o.now = [clock] { return *clock; };
  auto s = ShadowChecker::create(r.cascade, std::move(o));
  ASSERT_TRUE(s.is_ok());
  auto kept = r.cascade->answer(ask("q"));
  ASSERT_TRUE(kept.is_ok());
  int queued = 0;
  for (int i = 0; i < 10; ++i) queued += (*s)->offer(ask("q"), {}, *kept) == ShadowOffer::kQueued;
  EXPECT_EQ(queued, 4);
  (*s)->wait_idle();
  EXPECT_EQ(counts.drops["budget"], 6);
  EXPECT_NEAR((*s)->spent_last_hour(), 4 * 110e-6, 1e-12);
  EXPECT_EQ((*s)->offer(ask("q"), {}, *kept), ShadowOffer::kOverBudget);
  // An hour later the spending has rolled out of the window.
  *clock = t0 + std::chrono::minutes(61);
  EXPECT_EQ((*s)->offer(ask("q"), {}, *kept), ShadowOffer::kQueued);
  (*s)->wait_idle();

  // A full queue drops the check at once (the caller never waits).
  Rig q = rig("fraction = 1.0\nbudget_per_hour = 100\ncompare = \"exact\"\nqueue = 3\nworkers = 1",
              {}, {});
  Counts qc;
  auto sq = ShadowChecker::create(q.cascade, options(&qc));
  ASSERT_TRUE(sq.is_ok());
  auto k2 = q.cascade->answer(ask("q"));
  ASSERT_TRUE(k2.is_ok());
  q.large->close_gate();
  std::vector<ShadowOffer> got;
  const auto start = Clock::now();
  for (int i = 0; i < 10; ++i) got.push_back((*sq)->offer(ask("q"), {}, *k2));
  EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(500));
  const int full = static_cast<int>(std::count(got.begin(), got.end(), ShadowOffer::kQueueFull));
  // One running (held at the gate) and three waiting, or three waiting if the worker has not
  // taken one yet.
  EXPECT_GE(full, 6);
  EXPECT_LE(full, 7);
  q.large->open_gate();
  (*sq)->wait_idle();
}

TEST(ShadowTest, ComparesByTheItemCheckWhenTheRequestCarriesOne) {
  Rig r = rig("fraction = 1.0\nbudget_per_hour = 1.0",
              {{"n", "3.0"}, {"c", "Which list do you mean?"}, {"e", "Red"}},
              {{"n", "3"}, {"c", "What list?"}, {"e", "red."}});
  Counts counts;
  auto s = ShadowChecker::create(r.cascade, options(&counts));
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  ShadowTags numeric{"count", CheckSpec{"numeric", 0, {}}};
  ShadowTags clarify{"clarify", CheckSpec{"clarify", 0, {"list"}}};
  ShadowTags none{"lookup", std::nullopt};
  for (auto& [q, tags] : std::vector<std::pair<std::string, ShadowTags>>{
           {"n", numeric}, {"c", clarify}, {"e", none}}) {
    auto kept = r.cascade->answer(ask(q));
    ASSERT_TRUE(kept.is_ok());
    ASSERT_EQ((*s)->offer(ask(q), tags, *kept), ShadowOffer::kQueued);
  }
  (*s)->wait_idle();
  EXPECT_EQ(counts.outcomes["count/agree/check"], 1) << "3.0 and 3 are the same number";
  EXPECT_EQ(counts.outcomes["clarify/agree/check"], 1) << "both ask which list";
  EXPECT_EQ(counts.outcomes["lookup/agree/exact"], 1) << "Red and red. after normalisation";
  // Exact match tells different short answers apart.
  Rig d = rig("fraction = 1.0\nbudget_per_hour = 1.0\ncompare = \"exact\"", {{"n", "18"}},
              {{"n", "81"}});
  Counts dc;
  auto sd = ShadowChecker::create(d.cascade, options(&dc));
  ASSERT_TRUE(sd.is_ok());
  auto kept = d.cascade->answer(ask("n"));
  ASSERT_TRUE(kept.is_ok());
  ASSERT_EQ((*sd)->offer(ask("n"), numeric, *kept), ShadowOffer::kQueued);
  (*sd)->wait_idle();
  EXPECT_EQ(dc.outcomes["count/disagree/exact"], 1) << "compare = exact ignores the item check";
}

TEST(ShadowTest, LogprobCompareNeedsALocalTopTier) {
  Rig r = rig("fraction = 1.0\nbudget_per_hour = 1.0\ncompare = \"logprob\"", {}, {});
  Counts counts;
  auto s = ShadowChecker::create(r.cascade, options(&counts));
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.status().message().find("local GGUF"), std::string::npos) << s.status().message();
}

TEST(ShadowTest, ConfigRefusesBadShadowKeys) {
  auto parse = [](const std::string& shadow) {
    return parse_cascade_config("[shadow]\n" + shadow +
                                    "\n[[tier]]\nname = \"a\"\nkind = \"local\"\nmodel = \"x\"\n"
                                    "price_in = 1\nprice_out = 1\n",
                                "t.toml", "");
  };
  EXPECT_TRUE(parse("fraction = 0.05\nbudget_per_hour = 2.5\nexpected_agreement = 0.97\n"
                    "action = \"escalate-all\"\n[shadow.slice_agreement]\nlookup = 0.99")
                  .is_ok());
  for (const char* bad : {"fraction = 1.5", "compare = \"fuzzy\"", "action = \"page\"",
                          "expected_agreement = 1.0", "drift_shift = 0", "frac = 0.1",
                          "expected_agreement = 0.04", "[shadow.slice_agreement]\nx = 2"}) {
    auto c = parse(bad);
    EXPECT_FALSE(c.is_ok()) << bad;
    if (!c.is_ok()) {
      EXPECT_NE(c.status().message().find("t.toml"), std::string::npos);
    }
  }
}

// The alarm on a drifted slice: the slice's detector fires after the predicted number of
// outcomes (here every check disagrees: h / up outcomes), the overall one too, and
// escalate-all sends the next request straight to the top tier.
TEST(ShadowTest, DriftAlarmEscalatesEverything) {
  Rig r = rig("fraction = 1.0\nbudget_per_hour = 1.0\ncompare = \"exact\"\nworkers = 1\n"
              "expected_agreement = 0.95\ndrift_shift = 0.05\naction = \"escalate-all\"\n"
              "[shadow.slice_agreement]\nnew = 0.9",
              {{"q", "yes"}}, {{"q", "no"}});
  Counts counts;
  std::vector<std::string> lines;
  ShadowChecker::Options o = options(&counts);
  auto lines_mu = std::make_shared<std::mutex>();
  o.log = [&lines, lines_mu](const std::string& l) {
    std::lock_guard<std::mutex> lock(*lines_mu);
    lines.push_back(l);
  };
  auto s = ShadowChecker::create(r.cascade, std::move(o));
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  const std::vector<DriftState> before = (*s)->drift();
  ASSERT_EQ(before.size(), 1u);
  const CusumDesign overall = before[0].design;
  EXPECT_LE(overall.false_alarm, 0.01);
  int sent = 0;
  while (!r.cascade->escalate_all() && sent < 200) {
    auto kept = r.cascade->answer(ask("q"));
    ASSERT_TRUE(kept.is_ok());
    ASSERT_EQ(kept->tier, "small");
    ASSERT_EQ((*s)->offer(ask("q"), {"new", std::nullopt}, *kept), ShadowOffer::kQueued);
    (*s)->wait_idle();
    ++sent;
  }
  ASSERT_TRUE(r.cascade->escalate_all());
  // Every outcome a disagreement: each detector climbs `up` per check from 0, and the overall
  // one (p0 = 0.05) fires first, at ceil(h / up).
  std::vector<DriftState> after = (*s)->drift();
  ASSERT_EQ(after.size(), 2u);
  EXPECT_TRUE(after[0].alarm);
  EXPECT_EQ(after[0].fired_at, (overall.h + overall.up - 1) / overall.up);
  EXPECT_EQ(sent, after[0].fired_at);
  EXPECT_EQ(after[1].slice, "new");
  const CusumDesign slice = after[1].design;
  EXPECT_NEAR(slice.p0, 0.10, 1e-12) << "the slice's own calibrated agreement";
  const int64_t slice_fires = (slice.h + slice.up - 1) / slice.up;
  ASSERT_GT(slice_fires, sent);
  EXPECT_FALSE(after[1].alarm);
  for (int64_t i = sent; i < slice_fires; ++i) (*s)->record_outcome("new", false);
  after = (*s)->drift();
  EXPECT_TRUE(after[1].alarm);
  EXPECT_EQ(after[1].fired_at, slice_fires);
  EXPECT_GE(counts.alarms, 1);
  ASSERT_FALSE(lines.empty());
  EXPECT_NE(lines[0].find("drift alarm"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("escalate-all"), std::string::npos) << lines[0];
  auto next = r.cascade->answer(ask("q"));
  ASSERT_TRUE(next.is_ok());
  EXPECT_EQ(next->tier, "large");
  EXPECT_TRUE(next->escalated);
  EXPECT_EQ(next->trace.size(), 1u) << "tier 1 did not run";
}

TEST(ShadowTest, CalibrationWritesTheExpectedAgreementIntoTheConfig) {
  // Three kept lookup items (two agree), one escalated; 25 kept count items, all agreeing.
  std::vector<TaskItem> items;
  std::vector<ItemRun> runs;
  std::vector<double> scores;
  auto add = [&](const std::string& slice, const std::string& a, const std::string& b, double score) {
    TaskItem it;
    it.slice = slice;
    it.reference = "unused: agreement is with the top tier";
    it.check.method = "exact_ci";
    ItemRun r;
    r.tier1.text = a;
    r.top.text = b;
    items.push_back(it);
    runs.push_back(r);
    scores.push_back(score);
  };
  add("lookup", "Red", "red", 0.9);
  add("lookup", "blue", "blue", 0.8);
  add("lookup", "blue", "green", 0.7);
  add("lookup", "x", "y", 0.1);  // escalated at 0.5: not counted
  for (int i = 0; i < 25; ++i) add("count", "3", "3", 0.99);
  auto e = expected_agreement(items, runs, scores, 0.5);
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  EXPECT_EQ(e->kept, 28);
  EXPECT_NEAR(e->overall, 27.5 / 29.0, 1e-12);
  ASSERT_EQ(e->slices.size(), 1u) << "lookup keeps too few items for a slice rate of its own";
  EXPECT_EQ(e->slices[0].first, "count");
  EXPECT_NEAR(e->slices[0].second, 25.5 / 26.0, 1e-12);

  const std::string tiers =
      "[[tier]]\nname = \"a\"\nkind = \"local\"\nmodel = \"x\"\nprice_in = 1\nprice_out = 1\n";
  // No [shadow] table yet: one is added.
  std::string text = set_expected_agreement("[cascade]\nthreshold = 0.5\n\n" + tiers, *e);
  auto c = parse_cascade_config(text, "t.toml", "");
  ASSERT_TRUE(c.is_ok()) << c.status().to_string() << "\n" << text;
  EXPECT_NEAR(c->shadow.expected_agreement, e->overall, 1e-6);
  ASSERT_EQ(c->shadow.slice_agreement.size(), 1u);
  EXPECT_NEAR(c->shadow.slice_agreement[0].second, e->slices[0].second, 1e-6);
  // An existing [shadow] keeps its other keys; the old value and slice table are replaced.
  text = set_expected_agreement(
      "[shadow]\nfraction = 0.05\nexpected_agreement = 0.5\n\n[shadow.slice_agreement]\n"
      "old = 0.3\n\n" + tiers, *e);
  c = parse_cascade_config(text, "t.toml", "");
  ASSERT_TRUE(c.is_ok()) << c.status().to_string() << "\n" << text;
  EXPECT_DOUBLE_EQ(c->shadow.fraction, 0.05);
  EXPECT_NEAR(c->shadow.expected_agreement, e->overall, 1e-6);
  ASSERT_EQ(c->shadow.slice_agreement.size(), 1u);
  EXPECT_EQ(c->shadow.slice_agreement[0].first, "count");
  EXPECT_EQ(c->tiers.size(), 1u);
  // Idempotent.
  EXPECT_EQ(set_expected_agreement(text, *e), text);
}

TEST(ShadowTest, DistillLogLinesAndRotation) {
  const fs::path dir = fs::temp_directory_path() / ("frugal_shadow_test_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string path = (dir / "distill.jsonl").string();
  auto log = DistillLog::open(path, 4096);
  ASSERT_TRUE(log.is_ok()) << log.status().to_string();
  Rig r = rig("fraction = 1.0\nbudget_per_hour = 1.0\ncompare = \"exact\"", {{"a", "x"}},
              {{"a", "y"}});
  Counts counts;
  ShadowChecker::Options o = options(&counts);
  o.distill = log->get();
  auto s = ShadowChecker::create(r.cascade, std::move(o));
  ASSERT_TRUE(s.is_ok());
  auto kept = r.cascade->answer(ask("a"));
  ASSERT_TRUE(kept.is_ok());
  ASSERT_EQ((*s)->offer(ask("a"), {"lookup", std::nullopt}, *kept), ShadowOffer::kQueued);
  (*s)->wait_idle();
  // An escalated request's line.
  r.cascade->set_threshold(0.95);
  auto escalated = r.cascade->answer(ask("a"));
  ASSERT_TRUE(escalated.is_ok());
  ASSERT_TRUE(escalated->escalated);
  (*log)->append(distill_escalated_line(ask("a"), *escalated, "small", "lookup", 1.5));
  std::ifstream in(path);
  std::string l1, l2;
  ASSERT_TRUE(std::getline(in, l1));
  ASSERT_TRUE(std::getline(in, l2));
  const json shadow = json::parse(l1), esc = json::parse(l2);
  EXPECT_EQ(shadow["kind"], "shadow");
  EXPECT_EQ(shadow["slice"], "lookup");
  EXPECT_EQ(shadow["messages"][0]["content"], "a");
  EXPECT_EQ(shadow["tier1"]["text"], "x");
  EXPECT_DOUBLE_EQ(shadow["tier1"]["score"].get<double>(), 0.9);
  EXPECT_EQ(shadow["top"]["text"], "y");
  EXPECT_FLOAT_EQ(shadow["top"]["tokens"][0]["logprob"].get<float>(), -0.25f);
  EXPECT_EQ(shadow["top"]["tokens"][0]["top"].size(), 2u);
  EXPECT_EQ(shadow["agree"], false);
  EXPECT_EQ(esc["kind"], "escalated");
  EXPECT_EQ(esc["tier1"]["text"], "x");
  EXPECT_EQ(esc["top"]["text"], "y");
  EXPECT_DOUBLE_EQ(esc["time"].get<double>(), 1.5);
  // Rotation: past 4096 bytes the file becomes distill.jsonl.1 and a new one starts; every
  // line stays whole.
  for (int i = 0; i < 40; ++i) (*log)->append(distill_escalated_line(ask("a"), *escalated, "small", "", i));
  EXPECT_GE((*log)->rotations(), 1);
  EXPECT_LE(fs::file_size(path), 4096u);
  int whole = 0;
  for (const std::string& p : {path + ".1", path}) {
    std::ifstream f(p);
    std::string line;
    while (std::getline(f, line)) {
      EXPECT_FALSE(json::parse(line, nullptr, false).is_discarded()) << line;
      ++whole;
    }
  }
  EXPECT_GT(whole, 5) << "both files hold whole lines";
  fs::remove_all(dir);
}

}  // namespace
}  // namespace frugal::cascade
