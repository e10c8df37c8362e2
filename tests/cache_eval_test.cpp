// What `frugal eval` and `frugal calibrate` report of the cache tiers (cascade/cache_eval.h):
// task items replayed in order through the cascade's own cache stage. Exact repeats hit and
// save their cost; a near duplicate served an answer that fails its own check is a false hit
// and lowers the accuracy; the semantic checks are paid for; a hit stores nothing, as on a
// server; an item without a reference is judged against the top tier's answer.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "cascade/cache_eval.h"
#include "cascade/cache_tier.h"
#include "cascade/cascade.h"
#include "cascade/config.h"
#include "cascade/local_tier.h"
#include "cascade/semantic_cache.h"

namespace frugal::cascade {
namespace {

const std::string kRoot = FRUGAL_SOURCE_DIR;
constexpr int64_t kMaxTokens = 32;

TaskItem item(const std::string& id, const std::string& prompt, const std::string& reference) {
  TaskItem t;
  t.id = id;
  t.slice = "add";
  t.messages = {{"user", prompt}};
  t.reference = reference;
  t.check.method = "numeric";
  t.check.tolerance = 0;
  return t;
}

TierAnswer answer(const std::string& text, double cost) {
  TierAnswer a;
  a.text = text;
  a.finish = FinishReason::kStop;
  a.tokens_in = 20;
  a.tokens_out = 2;
  a.cost = cost;
  return a;
}

// tier 1 answered `t1` at `t1_cost`, the top tier `top` at `top_cost`; correctness by the check.
ItemRun run(const TaskItem& it, const std::string& t1, const std::string& top, double t1_cost = 1e-6,
            double top_cost = 1e-5) {
  ItemRun r;
  r.tier1 = answer(t1, t1_cost);
  r.top = answer(top, top_cost);
  r.tier1_correct = check_answer(it, t1).value();
  r.top_correct = check_answer(it, top).value();
  return r;
}

// A model tier that is never asked: the replay generates nothing.
class IdleTier : public SyncTier {
 public:
  explicit IdleTier(const std::string& name) : SyncTier(config_of(name)) {}

 protected:
  Result<TierAnswer> answer_now(const TierRequest&, const TokenObserver&) override {
    ADD_FAILURE() << "the replay ran a model tier";
    return internal_error("not here");
  }

 private:
  static TierConfig config_of(const std::string& name) {
    TierConfig c;
    c.name = name;
    return c;
  }
};

// A cascade with an exact memory cache whose hits cost $0.01 per million tokens either way.
std::unique_ptr<Cascade> exact_cascade() {
  CascadeConfig cc;
  TierConfig cache;
  cache.name = "cache";
  cache.kind = TierKind::kCache;
  cache.price_in_per_mtok = 0.01;
  cache.price_out_per_mtok = 0.01;
  cc.tiers.push_back(cache);
  std::vector<std::unique_ptr<Tier>> tiers;
  tiers.push_back(std::make_unique<IdleTier>("small"));
  tiers.push_back(std::make_unique<IdleTier>("large"));
  return std::make_unique<Cascade>(cc, std::make_unique<CacheTier>(cache), std::move(tiers));
}

// The shipped cascade (frugal.toml: the student as tier 1, its scorer and threshold) with a
// semantic cache, checked or not, taking candidates from `similarity`.
std::unique_ptr<Cascade> semantic_cascade(bool checked, double similarity) {
  auto base = load_cascade_config(kRoot + "/frugal.toml");
  EXPECT_TRUE(base.is_ok()) << base.status().to_string();
  CascadeConfig c = *base;
  TierConfig& cache = c.tiers.front();
  cache.semantic = true;
  cache.semantic_check = checked;
  cache.similarity = similarity;
  CascadeOptions o;
  o.n_threads = 1;
  auto made = Cascade::create(c, o);
  EXPECT_TRUE(made.is_ok()) << made.status().to_string();
  return made.is_ok() ? std::move(made).value() : nullptr;
}

TierRequest request_of(const TaskItem& it) {
  TierRequest r;
  r.messages = it.messages;
  r.max_tokens = kMaxTokens;
  return r;
}

TEST(CacheReplay, EachItemCarriesTheCascadesAnswerCostAndCorrectness) {
  const std::vector<TaskItem> items = {item("a", "What is 3 + 4?", "7"),
                                       item("b", "What is 9 + 9?", "18")};
  const std::vector<ItemRun> runs = {run(items[0], "7", "7", 1e-6, 1e-5),
                                     run(items[1], "17", "18", 2e-6, 3e-5)};
  // Item a is kept at score 0.9 >= 0.5; item b escalates at 0.2.
  const auto replay = cascade_replay_items(items, runs, {0.9, 0.2}, {1.5e-6, 2e-6}, 0.5);
  ASSERT_EQ(replay.size(), 2u);
  EXPECT_EQ(replay[0].answer, &runs[0].tier1);
  EXPECT_DOUBLE_EQ(replay[0].cost, 1.5e-6);  // tier 1's cost as given (an early cut's, say)
  EXPECT_TRUE(replay[0].correct);
  EXPECT_EQ(replay[1].answer, &runs[1].top);
  EXPECT_DOUBLE_EQ(replay[1].cost, 2e-6 + 3e-5);  // tier 1 is paid, then the top tier
  EXPECT_TRUE(replay[1].correct);
  EXPECT_EQ(replay[1].top, &runs[1].top);
  // At threshold 1 both escalate; at a score equal to the threshold tier 1 is kept.
  EXPECT_EQ(cascade_replay_items(items, runs, {0.9, 0.2}, {1e-6, 2e-6}, 1.0)[0].answer, &runs[0].top);
  EXPECT_EQ(cascade_replay_items(items, runs, {0.9, 0.2}, {1e-6, 2e-6}, 0.2)[1].answer, &runs[1].tier1);
  EXPECT_FALSE(cascade_replay_items(items, runs, {0.9, 0.2}, {1e-6, 2e-6}, 0.2)[1].correct);
}

TEST(CacheReplay, ExactRepeatsHitAtTheCachesPriceAndKeepTheirAnswers) {
  // a, b, a again, c, b again, a a third time: three repeats, one of them of a wrong answer.
  const std::vector<TaskItem> items = {
      item("a", "What is 3 + 4?", "7"), item("b", "What is 9 + 9?", "18"),
      item("a2", "What is 3 + 4?", "7"), item("c", "What is 5 + 1?", "6"),
      item("b2", "What is 9 + 9?", "18"), item("a3", "What is 3 + 4?", "7")};
  std::vector<ItemRun> runs;
  for (const TaskItem& it : items) {
    const std::string right = it.reference;
    runs.push_back(run(it, it.id[0] == 'b' ? "17" : right, right));  // tier 1 wrong on b
  }
  const std::vector<double> scores(items.size(), 1.0), t1_costs(items.size(), 1e-6);
  auto c = exact_cascade();
  auto e = evaluate_cache(*c, cascade_replay_items(items, runs, scores, t1_costs, 0.5), kMaxTokens);
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  EXPECT_EQ(e->items, 6);
  EXPECT_EQ(e->hits, 3);
  EXPECT_EQ(e->exact_hits, 3);
  EXPECT_EQ(e->semantic_hits, 0);
  EXPECT_EQ(e->candidates, 0);
  EXPECT_EQ(e->checks, 0);
  // b's repeat is served b's wrong answer: a false hit, but no loss against the cascade alone.
  EXPECT_EQ(e->false_hits, 1);
  EXPECT_DOUBLE_EQ(e->hit_rate, 0.5);
  EXPECT_DOUBLE_EQ(e->false_hit_rate, 1.0 / 3);
  EXPECT_DOUBLE_EQ(e->accuracy_without, 4.0 / 6);
  EXPECT_DOUBLE_EQ(e->accuracy_with, 4.0 / 6);
  // Six items at tier 1's $1e-6 without; three misses and three hits of 22 tokens at $0.01/M.
  EXPECT_NEAR(e->cost_without, 6e-6, 1e-15);
  EXPECT_NEAR(e->cost_with, 3e-6 + 3 * 22 * 0.01e-6, 1e-15);
  EXPECT_NEAR(e->cost_saved, e->cost_without - e->cost_with, 1e-18);
  EXPECT_EQ(c->cache()->size(), 3u);  // a, b, c
  const std::string line = cache_eval_line(*c, *e);
  EXPECT_NE(line.find("cache 'cache' (exact)"), std::string::npos) << line;
  EXPECT_NE(line.find("3 hits of 6 (50.0 %"), std::string::npos) << line;
  EXPECT_NE(line.find("1 false hits (33.3 % of hits)"), std::string::npos) << line;
}

TEST(CacheReplay, ItemsWithoutAReferenceAreJudgedAgainstTheTopTier) {
  TaskItem a = item("a", "What is 3 + 4?", "");
  TaskItem a2 = item("a2", "What is 3 + 4?", "");
  const std::vector<TaskItem> items = {a, a2};
  std::vector<ItemRun> runs(2);
  for (ItemRun& r : runs) {
    r.tier1 = answer("7", 1e-6);
    r.top = answer("8", 1e-5);
    r.top_correct = true;    // the top tier is the reference
    r.tier1_correct = false;  // and tier 1 disagrees with it
  }
  // Kept at threshold 0: the cached answer is tier 1's "7"; the repeat's reference is "8".
  auto e = evaluate_cache(*exact_cascade(),
                          cascade_replay_items(items, runs, {1, 1}, {1e-6, 1e-6}, 0.0), kMaxTokens);
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  EXPECT_EQ(e->hits, 1);
  EXPECT_EQ(e->false_hits, 1);
  // Escalated: the cached answer is the top tier's own, which agrees with itself.
  auto f = evaluate_cache(*exact_cascade(),
                          cascade_replay_items(items, runs, {0, 0}, {1e-6, 1e-6}, 0.5), kMaxTokens);
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  EXPECT_EQ(f->hits, 1);
  EXPECT_EQ(f->false_hits, 0);
  EXPECT_DOUBLE_EQ(f->accuracy_with, 1.0);
}

// Plain similarity (no check) serves "What is 3 + 5?" the answer cached for "What is 3 + 4?":
// a false hit that costs accuracy the cascade alone had.
TEST(CacheReplay, ANearDuplicateServedAWrongAnswerIsAFalseHit) {
  auto c = semantic_cascade(/*checked=*/false, 0.7);
  ASSERT_NE(c, nullptr);
  const std::vector<TaskItem> items = {item("a", "What is 3 + 4?", "7"),
                                       item("b", "What is 3 + 5?", "8")};
  const std::vector<ItemRun> runs = {run(items[0], "7", "7"), run(items[1], "8", "8")};
  auto e = evaluate_cache(*c, cascade_replay_items(items, runs, {1, 1}, {1e-6, 1e-6}, 0.5),
                          kMaxTokens);
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  EXPECT_EQ(e->candidates, 1);
  EXPECT_EQ(e->checks, 0);
  EXPECT_EQ(e->hits, 1);
  EXPECT_EQ(e->semantic_hits, 1);
  EXPECT_EQ(e->false_hits, 1);
  EXPECT_DOUBLE_EQ(e->false_hit_rate, 1.0);
  EXPECT_DOUBLE_EQ(e->accuracy_without, 1.0);
  EXPECT_DOUBLE_EQ(e->accuracy_with, 0.5);
  EXPECT_GT(e->cost_saved, 0.0);  // cheaper and wrong: what the check is for
  EXPECT_NE(cache_eval_line(*c, *e).find("(exact + semantic)"), std::string::npos);
}

// With the check, the paraphrase is served (a right hit) and the changed number is not; both
// checks are tier 1 passes whose price is in the cost with the cache.
TEST(CacheReplay, TheCheckedCacheServesTheParaphraseAndPaysForEveryCheck) {
  auto c = semantic_cascade(/*checked=*/true, 0.7);
  ASSERT_NE(c, nullptr);
  const std::vector<TaskItem> items = {item("a", "What is 3 + 4?", "7"),
                                       item("p", "Add 3 and 4.", "7"),
                                       item("n", "What is 3 + 5?", "8")};
  const std::vector<ItemRun> runs = {run(items[0], "7", "7", 1e-6, 1e-5),
                                     run(items[1], "7", "7", 1e-6, 1e-5),
                                     run(items[2], "8", "8", 1e-6, 1e-5)};
  // Every item escalates: each costs tier 1 and the top tier.
  const auto replay = cascade_replay_items(items, runs, {0, 0, 0}, {1e-6, 1e-6, 1e-6}, 0.5);
  auto e = evaluate_cache(*c, replay, kMaxTokens);
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  EXPECT_EQ(e->candidates, 2);
  EXPECT_EQ(e->checks, 2);
  EXPECT_EQ(e->hits, 1);
  EXPECT_EQ(e->semantic_hits, 1);
  EXPECT_EQ(e->false_hits, 0);
  EXPECT_DOUBLE_EQ(e->accuracy_with, 1.0);
  // The checks' price: tier 1 reading the cached "7" under each new prompt, teacher-forced.
  auto& tier1 = dynamic_cast<LocalTier&>(c->tier1());
  double checks = 0;
  for (size_t i : {1, 2}) {
    auto k = c->semantic_cache()->check(tier1, request_of(items[i]), runs[0].top);
    ASSERT_TRUE(k.is_ok()) << k.status().to_string();
    EXPECT_GT(k->scored.cost, 0.0);
    checks += k->scored.cost;
  }
  // The cache tier is unpriced in frugal.toml: a hit costs nothing but its check.
  EXPECT_NEAR(e->cost_without, 3 * 11e-6, 1e-15);
  EXPECT_NEAR(e->cost_with, 2 * 11e-6 + checks, 1e-15);
  EXPECT_NEAR(e->cost_saved, 11e-6 - checks, 1e-15);
}

// A server does not store the answer it served from the cache; neither does the replay. So
// an exact repeat of a semantic hit is looked up again (here: the same near duplicate), not
// served the cascade's own answer to it.
TEST(CacheReplay, AHitStoresNothing) {
  auto c = semantic_cascade(/*checked=*/false, 0.7);
  ASSERT_NE(c, nullptr);
  const std::vector<TaskItem> items = {item("a", "What is 3 + 4?", "7"),
                                       item("b", "What is 3 + 5?", "8"),
                                       item("b2", "What is 3 + 5?", "8")};
  const std::vector<ItemRun> runs = {run(items[0], "7", "7"), run(items[1], "8", "8"),
                                     run(items[2], "8", "8")};
  auto e = evaluate_cache(*c, cascade_replay_items(items, runs, {1, 1, 1}, {1e-6, 1e-6, 1e-6}, 0.5),
                          kMaxTokens);
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  EXPECT_EQ(e->hits, 2);
  EXPECT_EQ(e->exact_hits, 0);
  EXPECT_EQ(e->semantic_hits, 2);
  EXPECT_EQ(e->false_hits, 2);
  EXPECT_EQ(c->cache()->size(), 1u);
  EXPECT_EQ(c->semantic_cache()->size(), 1u);
}

}  // namespace
}  // namespace frugal::cascade
