// The semantic cache on the prompt pairs of tests/fixtures/semantic_pairs.jsonl: paraphrases
// should be served the cached answer; negations, reversed questions, a changed number or name
// and a different earlier turn must not be. The checked cache (tier 1 scores the cached answer
// teacher-forced under the new prompt) is measured against a plain similarity threshold.
#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <map>
#include <random>

#include "cascade/cascade.h"
#include "cascade/local_tier.h"
#include "cascade/semantic_cache.h"
#include "cascade/task_items.h"
#include "process_helpers.h"

namespace frugal::cascade {
namespace {

using nlohmann::json;

const std::string kRoot = FRUGAL_SOURCE_DIR;

struct Pair {
  std::string id, kind;
  TaskItem first, second;
};

std::vector<Pair> load_pairs() {
  std::vector<Pair> out;
  std::istringstream in(test::read_text(kRoot + "/tests/fixtures/semantic_pairs.jsonl"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const json j = json::parse(line);
    Pair p;
    p.id = j["id"];
    p.kind = j["kind"];
    p.first = parse_task_item(j["first"].dump(), p.id).value();
    p.second = parse_task_item(j["second"].dump(), p.id).value();
    out.push_back(std::move(p));
  }
  return out;
}

TierRequest request_of(const TaskItem& item) {
  TierRequest r;
  r.messages = item.messages;
  r.max_tokens = 32;
  return r;
}

// The shipped cascade (frugal.toml's scorer and threshold, student then teacher) with a
// semantic cache in front.
CascadeConfig config_with(bool checked, double similarity) {
  auto base = load_cascade_config(kRoot + "/frugal.toml");
  EXPECT_TRUE(base.is_ok()) << base.status().to_string();
  CascadeConfig c = *base;
  TierConfig& cache = c.tiers.front();
  EXPECT_EQ(cache.kind, TierKind::kCache);
  cache.semantic = true;
  cache.semantic_check = checked;
  cache.similarity = similarity;
  return c;
}

struct Tally {
  int paraphrases = 0, paraphrase_hits = 0;
  int others = 0, other_hits = 0;
  int hits = 0, false_hits = 0;  // a hit whose answer fails the second prompt's check
  int inherited = 0;  // of the false hits, those whose cached answer was wrong for the first too
  int worse = 0;      // false hits where the cascade without the cache answers right
  std::map<std::string, std::pair<int, int>> by_kind;  // kind -> (pairs, hits)
};

// Each pair on a fresh cascade: the first prompt is answered and cached, then the second asked.
Tally run_pairs(const std::vector<Pair>& pairs, bool checked, double similarity,
                std::vector<std::string>* rows = nullptr) {
  Tally t;
  CascadeOptions o;
  o.n_threads = 1;
  for (const Pair& p : pairs) {
    auto c = Cascade::create(config_with(checked, similarity), o);
    EXPECT_TRUE(c.is_ok()) << c.status().to_string();
    if (!c.is_ok()) return t;
    auto a = (*c)->answer(request_of(p.first));
    EXPECT_TRUE(a.is_ok());
    auto b = (*c)->answer(request_of(p.second));
    EXPECT_TRUE(b.is_ok()) << b.status().to_string();
    if (!a.is_ok() || !b.is_ok()) continue;
    const bool hit = b->semantic_hit;
    const bool right = check_answer(p.second, b->text).value();
    const bool first_right = check_answer(p.first, a->text).value();
    const bool para = p.kind == "paraphrase";
    (para ? t.paraphrases : t.others)++;
    if (hit) (para ? t.paraphrase_hits : t.other_hits)++;
    t.hits += hit;
    t.false_hits += hit && !right;
    t.inherited += hit && !right && !first_right;
    if (hit && !right) {
      auto alone = Cascade::create(*load_cascade_config(kRoot + "/frugal.toml"), o).value()->answer(
          request_of(p.second));
      t.worse += alone.is_ok() && check_answer(p.second, alone->text).value();
    }
    t.by_kind[p.kind].first++;
    t.by_kind[p.kind].second += hit;
    if (rows != nullptr) {
      char buf[400];
      std::snprintf(buf, sizeof buf, "%s %-12s sim %.4f check %7.4f %s  '%s' -> '%s'", p.id.c_str(),
                    p.kind.c_str(), b->semantic_similarity, b->semantic_check_score,
                    hit ? (right ? "HIT " : "FALSE") : "miss", a->text.c_str(), b->text.c_str());
      rows->push_back(buf);
    }
  }
  return t;
}

std::string summary(const char* what, const Tally& t) {
  char buf[300];
  std::snprintf(buf, sizeof buf,
                "%-28s paraphrase hits %2d/%2d (%3.0f %%)  must-not hits %2d/%2d  false hits %2d/%2d "
                "(%3.0f %% of hits; %d inherited from a wrong first answer, %d where the cascade "
                "alone is right)",
                what, t.paraphrase_hits, t.paraphrases, 100.0 * t.paraphrase_hits / std::max(1, t.paraphrases),
                t.other_hits, t.others, t.false_hits, t.hits,
                100.0 * t.false_hits / std::max(1, t.hits), t.inherited, t.worse);
  return buf;
}

TEST(SemanticCache, TheCheckKeepsNearDuplicatesWithAnotherAnswerOut) {
  const std::vector<Pair> pairs = load_pairs();
  ASSERT_GE(pairs.size(), 40u);
  std::vector<std::string> rows;
  // The defaults: candidates from cosine similarity 0.7, the check at the shipped threshold.
  const Tally checked = run_pairs(pairs, /*checked=*/true, 0.7, &rows);
  for (const std::string& r : rows) std::printf("  %s\n", r.c_str());
  std::printf("%s\n", summary("checked, similarity >= 0.7", checked).c_str());
  for (double sim : {0.9}) {
    std::printf("%s\n", summary("checked, similarity >= 0.9", run_pairs(pairs, true, sim)).c_str());
  }
  const Tally plain = run_pairs(pairs, /*checked=*/false, 0.7);
  std::printf("%s\n", summary("plain similarity >= 0.7", plain).c_str());
  for (double sim : {0.9, 0.95, 0.98}) {
    char what[64];
    std::snprintf(what, sizeof what, "plain similarity >= %.2f", sim);
    std::printf("%s\n", summary(what, run_pairs(pairs, false, sim)).c_str());
  }
  // A plain threshold serves near duplicates whatever they ask, answers the cascade alone gets
  // right among them; the check serves the paraphrases and keeps those out.
  EXPECT_GE(plain.worse, 10);
  EXPECT_EQ(checked.worse, 0);
  EXPECT_LE(checked.false_hits * 5, plain.false_hits);
  EXPECT_GE(checked.paraphrase_hits, 13);
}

// Teacher forcing tier 1's own answer reads it exactly as tier 1 generated it: the same
// tokens, logprobs and alternatives, and no gap.
TEST(SemanticCache, TheCheckOfTier1sOwnAnswerIsItsGeneration) {
  CascadeOptions o;
  o.n_threads = 1;
  auto c = Cascade::create(config_with(true, 0.7), o).value();
  auto& tier1 = dynamic_cast<LocalTier&>(c->tier1());
  for (const char* prompt : {"Reverse the letters: a b c d e f", "Tom is 15. Val is 44. How old is Val?"}) {
    TierRequest r;
    r.messages = {{"user", prompt}};
    r.max_tokens = 32;
    r.prompt_logprobs = true;
    auto own = tier1.answer(r).value();
    auto checked = c->semantic_cache()->check(tier1, r, own);
    ASSERT_TRUE(checked.is_ok()) << checked.status().to_string();
    const TierAnswer& t = checked->scored;
    EXPECT_EQ(checked->max_gap, 0.0);
    ASSERT_EQ(t.tokens.size(), own.tokens.size());
    for (size_t i = 0; i < t.tokens.size(); ++i) {
      EXPECT_EQ(t.tokens[i].id, own.tokens[i].id);
      EXPECT_NEAR(t.tokens[i].logprob, own.tokens[i].logprob, 1e-4);
      ASSERT_EQ(t.tokens[i].top.size(), own.tokens[i].top.size());
      for (size_t k = 0; k < t.tokens[i].top.size(); ++k) {
        EXPECT_EQ(t.tokens[i].top[k].id, own.tokens[i].top[k].id);
        EXPECT_NEAR(t.tokens[i].top[k].logprob, own.tokens[i].top[k].logprob, 1e-4);
      }
    }
    EXPECT_NEAR(t.prompt_mean_logprob, own.prompt_mean_logprob, 1e-4);
    const Scorer& s = c->scorer();
    EXPECT_NEAR(decide(s, 0.5, t).score, decide(s, 0.5, own).score, 1e-3);
    EXPECT_EQ(t.tokens_in, own.tokens_in + own.tokens_out);
  }
}

// Through `frugal serve`: the similarity and the check's score in the frugal object and the
// headers; a paraphrase is served from the cache, a changed number is not.
TEST(SemanticCache, TheServerReportsSimilarityAndCheck) {
  test::TempDir dir("semantic");
  std::string cfg = test::read_text(kRoot + "/frugal.toml");
  const std::string cache_kind = "kind = \"cache\"\n";
  cfg.replace(cfg.find(cache_kind), cache_kind.size(), cache_kind + "semantic = true\n");
  for (size_t at = 0; (at = cfg.find("\"models/", at)) != std::string::npos;) cfg.insert(at + 1, kRoot + "/");
  test::write_text(dir.file("frugal.toml"), cfg);
  test::ServeProcess serve(dir.file("frugal.toml"), dir.file("serve.log"));
  ASSERT_TRUE(serve.ready()) << serve.log();
  auto ask = [&](const std::string& prompt) {
    httplib::Client c("127.0.0.1", serve.port());
    const json body{{"messages", {{{"role", "user"}, {"content", prompt}}}}, {"max_tokens", 16}};
    auto r = c.Post("/v1/chat/completions", body.dump(), "application/json");
    EXPECT_TRUE(r && r->status == 200);
    return r ? *r : httplib::Response();
  };
  ask("What is 3 + 4?");
  const httplib::Response para = ask("Add 3 and 4.");
  const json p = json::parse(para.body);
  EXPECT_TRUE(p["frugal"]["semantic_hit"].get<bool>()) << para.body;
  EXPECT_EQ(p["frugal"]["tier"], "cache");
  EXPECT_EQ(p["choices"][0]["message"]["content"], "7");
  EXPECT_GT(p["frugal"]["semantic_similarity"].get<double>(), 0.7);
  EXPECT_GT(p["frugal"]["semantic_check_score"].get<double>(), 0.8);
  EXPECT_FALSE(para.get_header_value("x-frugal-semantic-similarity").empty());
  EXPECT_FALSE(para.get_header_value("x-frugal-semantic-check").empty());
  const json other = json::parse(ask("What is 3 + 5?").body);
  EXPECT_FALSE(other["frugal"]["semantic_hit"].get<bool>()) << other.dump();
  EXPECT_EQ(other["choices"][0]["message"]["content"], "8");
  EXPECT_EQ(other["frugal"]["semantic_check_score"].get<double>(), 0.0);
  httplib::Client c("127.0.0.1", serve.port());
  auto m = c.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("frugal_semantic_hits_total 1"), std::string::npos) << m->body;
}

TEST(SemanticCache, TheWholeConversationIsTheKey) {
  CascadeOptions o;
  o.n_threads = 1;
  auto c = Cascade::create(config_with(true, 0.0), o).value();
  TierRequest a, b;
  a.messages = {{"user", "Tom likes red."}, {"assistant", "OK."}, {"user", "What color does Tom like?"}};
  b.messages = {{"user", "Tom likes blue."}, {"assistant", "OK."}, {"user", "What color does Tom like?"}};
  a.max_tokens = b.max_tokens = 16;
  SemanticCache& s = *c->semantic_cache();
  const auto ea = s.embed(a).value(), eb = s.embed(b).value();
  TierRequest last_only = a;
  last_only.messages.erase(last_only.messages.begin(), last_only.messages.end() - 1);
  const auto el = s.embed(last_only).value();
  double ab = 0, al = 0;
  for (size_t i = 0; i < ea.size(); ++i) {
    ab += ea[i] * eb[i];
    al += ea[i] * el[i];
  }
  EXPECT_LT(ab, 0.99999);  // the earlier turn moves the embedding
  EXPECT_LT(al, ab);       // dropping it moves it further
  EXPECT_NE(CacheTier::canonical_key(a), CacheTier::canonical_key(b));
}

TEST(SemanticCache, AboveTheExactLimitTheIndexFindsTheSameNeighbours) {
  CascadeOptions o;
  o.n_threads = 1;
  CascadeConfig cfg = config_with(true, 0.5);
  cfg.tiers.front().cache_capacity = 5000;
  auto c = Cascade::create(cfg, o).value();
  SemanticCache& s = *c->semantic_cache();
  const size_t dim = s.embed(request_of(load_pairs()[0].first)).value().size();
  std::mt19937 rng(7);
  std::normal_distribution<float> g;
  auto unit = [&](std::vector<float> v) {
    double n = 0;
    for (float x : v) n += x * x;
    for (float& x : v) x = static_cast<float>(x / std::sqrt(n));
    return v;
  };
  std::vector<std::vector<float>> points;
  TierRequest r = request_of(load_pairs()[0].first);
  for (int i = 0; i < 3000; ++i) {
    std::vector<float> v(dim);
    for (float& x : v) x = g(rng);
    points.push_back(unit(v));
    TierRequest ri = r;
    ri.messages[0].content = "q" + std::to_string(i);
    TierAnswer a;
    a.text = std::to_string(i);
    s.store(points.back(), ri, a);
  }
  ASSERT_TRUE(s.uses_index());
  int found = 0;
  for (int i = 0; i < 3000; i += 30) {
    std::vector<float> q = points[i];
    for (float& x : q) x += 0.02f * g(rng);
    auto m = s.nearest(unit(q), r);
    found += m && m->answer.text == std::to_string(i);
  }
  EXPECT_GE(found, 97);  // of 100
  // Another sampling field: no candidate at all.
  TierRequest other = r;
  other.max_tokens = 99;
  EXPECT_FALSE(s.nearest(points[0], other).has_value());
}

}  // namespace
}  // namespace frugal::cascade
