// Speculative decoding is lossless: greedy output with any drafter (prompt lookup, a draft
// model, a given draft) equals plain greedy output token for token — at draft edges, stop
// strings, end of generation and the end of the context — and sampled output follows the
// target's distribution (a chi-square test on the first tokens).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "engine/model.h"
#include "engine/tokenizer.h"
#include "sched/generate.h"
#include "sched/scheduler.h"
#include "spec/draft_policy.h"
#include "spec/ngram_drafter.h"
#include "spec/verify.h"

namespace frugal {
namespace {

namespace fs = std::filesystem;

TEST(DraftCostModel, EstimatesForwardTimesFromTheSizesItMeasured) {
  DraftCostModel m(12);
  EXPECT_LT(m.forward_seconds(3), 0) << "nothing measured";
  m.observe_forward(1, 0.010);
  EXPECT_LT(m.forward_seconds(3), 0) << "one size gives no slope";
  m.observe_forward(5, 0.030);
  EXPECT_DOUBLE_EQ(m.forward_seconds(1), 0.010);
  EXPECT_NEAR(m.forward_seconds(3), 0.020, 1e-12);  // between the measured sizes
  EXPECT_NEAR(m.forward_seconds(9), 0.050, 1e-12);  // along the line past the largest
  EXPECT_FALSE(m.ready()) << "no draft round timed yet";
  m.observe_draft_round(0.004);
  EXPECT_TRUE(m.ready());
  m.observe_forward(1, 0.020);  // a running average: the newest counts a quarter
  EXPECT_NEAR(m.forward_seconds(1), 0.0125, 1e-12);
  m.observe_forward(14, 1.0);  // past k_max + 1: not a verification size, ignored
  EXPECT_NEAR(m.forward_seconds(13), 0.030 + 8 * (0.030 - 0.0125) / 4, 1e-12);
}

TEST(DraftCostModel, DraftsOnlyAsFarAsItPaysOnThisMachine) {
  const std::vector<double> high(12, 0.9), none(12, 0.0);
  {
    // Memory-bound verification (k + 1 tokens cost one step) and a free drafter: draft all.
    DraftCostModel m(12);
    m.observe_forward(1, 0.010);
    m.observe_forward(13, 0.010);
    m.observe_draft_round(0.0);
    EXPECT_EQ(m.best_k(high), 12);
    EXPECT_EQ(m.best_k(none), 0) << "drafts that are never accepted never pay";
  }
  {
    // Compute-bound verification (each token a step): even 90 % acceptance loses.
    DraftCostModel m(12);
    m.observe_forward(1, 0.010);
    m.observe_forward(5, 0.050);
    m.observe_draft_round(0.004);
    EXPECT_EQ(m.best_k(high), 0);
  }
  {
    // Between the two (the real 1.5B / 0.5B pair on 2 cores): the best length is short, and
    // it is the arg max of expected tokens over time, worked out here independently.
    DraftCostModel m(12);
    m.observe_forward(1, 0.033);
    m.observe_forward(9, 0.150);
    m.observe_draft_round(0.012);
    const std::vector<double> accept = {0.95, 0.9, 0.85, 0.8};
    auto rate = [&](int k) {
      double tokens = 1, all = 1;
      for (int i = 0; i < k; ++i) tokens += (all *= accept[std::min(i, 3)]);
      return tokens / (0.012 * k + 0.033 + (0.150 - 0.033) / 8 * k);
    };
    const int best = m.best_k(accept);
    EXPECT_GT(best, 0);
    EXPECT_LT(best, 12);
    for (int k = 0; k <= 12; ++k) {
      EXPECT_NEAR(m.expected_rate(k, accept), rate(k), 1e-9 * rate(k)) << k;
      EXPECT_GE(rate(best), rate(k)) << "k " << k << " beats the choice " << best;
    }
  }
}

TEST(DraftAcceptance, CountsEachPositionOverTheDraftsThatReachedIt) {
  DraftAcceptance a;
  EXPECT_TRUE(a.rates().empty());
  a.observe(4, 2);  // drafts 1, 2 accepted, 3 rejected, 4 never reached
  std::vector<double> r = a.rates();
  ASSERT_EQ(r.size(), 3u);
  EXPECT_DOUBLE_EQ(r[0], 1.0);
  EXPECT_DOUBLE_EQ(r[1], 1.0);
  EXPECT_DOUBLE_EQ(r[2], 0.0);
  a.observe(4, 0);  // the first draft rejected: only position 1 reached
  r = a.rates();
  ASSERT_EQ(r.size(), 3u);
  EXPECT_NEAR(r[0], 0.98 / (0.98 + 1), 1e-12);  // older counts fade by 0.98
  EXPECT_DOUBLE_EQ(r[1], 1.0);
  // A sequence with no drafts of its own takes the prior's rates; its own counts pull away.
  DraftAcceptance fresh;
  EXPECT_EQ(fresh.rates(&a), a.rates());
  fresh.observe(1, 1);
  EXPECT_NEAR(fresh.rates(&a, 2.0)[0], (1 + 2 * r[0]) / 3, 1e-12);
}

TEST(NgramDraft, ProposesWhatFollowedTheLatestEarlierOccurrence) {
  const std::vector<int32_t> t = {1, 2, 3, 4, 9, 1, 2, 3, 5, 6, 1, 2, 3};
  // "1 2 3" last occurred at 5..7, followed by 5 6 1.
  EXPECT_EQ(ngram_draft(t, 3), (std::vector<int32_t>{5, 6, 1}));
  EXPECT_EQ(ngram_draft(t, 10), (std::vector<int32_t>{5, 6, 1, 2, 3}));
  EXPECT_TRUE(ngram_draft(std::vector<int32_t>{1, 2, 3}, 4).empty()) << "nothing repeats";
  EXPECT_TRUE(ngram_draft(t, 0).empty());
  // The longest matching suffix wins over a shorter, later one.
  const std::vector<int32_t> u = {7, 8, 9, 1, 8, 2, 7, 8};
  EXPECT_EQ(ngram_draft(u, 2), (std::vector<int32_t>{9, 1}));
}

std::string stories_path() {
  static const std::string path = [] {
    const std::string dir = std::string(FRUGAL_SHARED_DIR) + "/models/stories260K";
    const std::string out = (fs::temp_directory_path() / "frugal_spec_test_stories.gguf").string();
    const std::string cmd = std::string(FRUGAL_BINARY) + " convert --llama2c " + dir +
                            "/stories260K.bin --tokenizer " + dir + "/tok512.bin -o " + out +
                            " > /dev/null";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    return out;
  }();
  return path;
}

std::string bundled(const char* name) {
  return std::string(FRUGAL_SOURCE_DIR) + "/models/" + name;
}

std::unique_ptr<Model> load(const std::string& path) {
  ModelOptions o;
  o.n_threads = 2;
  auto m = Model::load(path, o);
  EXPECT_TRUE(m.is_ok()) << m.status().to_string();
  return m.is_ok() ? std::move(m).value() : nullptr;
}

std::unique_ptr<Scheduler> make(const std::string& path, SchedulerOptions o,
                                const std::string& draft = "") {
  auto s = Scheduler::create(load(path), o, draft.empty() ? nullptr : load(draft));
  EXPECT_TRUE(s.is_ok()) << s.status().to_string();
  return s.is_ok() ? std::move(s).value() : nullptr;
}

std::vector<int32_t> ids(const GenerateResult& r) {
  std::vector<int32_t> v;
  for (const auto& t : r.tokens) v.push_back(t.id);
  return v;
}

// Prompts whose continuations repeat (stories retell), so prompt lookup has drafts to offer.
std::vector<std::vector<int32_t>> story_prompts(const Tokenizer& tok) {
  std::vector<std::vector<int32_t>> out;
  for (const char* p : {"Once upon a time", "Lily and Ben went to the park. Lily and Ben",
                        "The cat sat. The cat sat. The cat", "Tom had a red ball. Tom had",
                        "One day, a little girl named Sue"}) {
    out.push_back(tok.encode(p, true, false));
  }
  return out;
}

GenerateParams greedy(int64_t n) {
  GenerateParams p;
  p.max_tokens = n;
  p.stop_at_eog = true;
  return p;
}

TEST(SpecDecoding, PromptLookupGivesExactlyThePlainGreedyOutput) {
  auto plain = make(stories_path(), {});
  ASSERT_TRUE(plain);
  const auto prompts = story_prompts(plain->model().tokenizer());
  for (int k : {1, 3, 8}) {
    SchedulerOptions o;
    o.spec = SchedulerOptions::Spec::kNgram;
    o.spec_k = k;
    o.spec_k_max = std::max(k, 12);
    auto spec = make(stories_path(), o);
    ASSERT_TRUE(spec);
    for (const auto& p : prompts) {
      for (int64_t n : {1, 7, 150}) {
        auto a = generate(*plain, p, greedy(n));
        auto b = generate(*spec, p, greedy(n));
        ASSERT_TRUE(a.is_ok() && b.is_ok());
        EXPECT_EQ(ids(*b), ids(*a)) << "k " << k << " n " << n;
        EXPECT_EQ(b->text, a->text);
        EXPECT_EQ(b->finish, a->finish);
      }
    }
    const SchedulerStats st = spec->stats();
    EXPECT_GT(st.spec_draft_tokens, 0u) << "the prompts repeat: lookup proposed drafts";
    EXPECT_GT(st.spec_accepted_tokens, 0u);
    EXPECT_LE(st.spec_accepted_tokens, st.spec_draft_tokens);
    EXPECT_TRUE(spec->pool_is_whole());
  }
}

TEST(SpecDecoding, StopStringsAndTheContextEdgeCutAsInPlainDecoding) {
  SchedulerOptions base;
  base.n_ctx = 72;  // generation runs into the end of the context
  auto plain = make(stories_path(), base);
  SchedulerOptions o = base;
  o.spec = SchedulerOptions::Spec::kNgram;
  o.spec_k = 6;
  auto spec = make(stories_path(), o);
  ASSERT_TRUE(plain && spec);
  const auto prompts = story_prompts(plain->model().tokenizer());
  for (const auto& p : prompts) {
    GenerateParams g = greedy(500);
    g.stop_at_eog = false;
    auto a = generate(*plain, p, g);
    auto b = generate(*spec, p, g);
    ASSERT_TRUE(a.is_ok() && b.is_ok());
    EXPECT_EQ(ids(*b), ids(*a));
    EXPECT_EQ(a->n_prompt + static_cast<int64_t>(a->tokens.size()), 73);
    // A stop string inside a run of accepted drafts ends the answer where plain decoding does.
    ASSERT_GT(a->text.size(), 40u);
    g.stop = {a->text.substr(30, 4)};
    auto sa = generate(*plain, p, g);
    auto sb = generate(*spec, p, g);
    ASSERT_TRUE(sa.is_ok() && sb.is_ok());
    EXPECT_EQ(sb->text, sa->text);
    EXPECT_EQ(ids(*sb), ids(*sa));
    EXPECT_EQ(sb->finish, FinishReason::kStop);
  }
}

TEST(SpecDecoding, AGivenDraftIsVerifiedAndTheAnswerIsTheTargetsOwn) {
  auto s = make(stories_path(), {});
  ASSERT_TRUE(s);
  const auto prompts = story_prompts(s->model().tokenizer());
  for (const auto& p : prompts) {
    auto own = generate(*s, p, greedy(60));
    ASSERT_TRUE(own.is_ok());
    const std::vector<int32_t> answer = ids(*own);
    // Drafts: the answer itself, its first half then garbage, garbage from the start.
    std::vector<int32_t> half(answer.begin(), answer.begin() + answer.size() / 2);
    half.insert(half.end(), {5, 6, 7, 8});
    for (const auto& [draft, reused] :
         std::vector<std::pair<std::vector<int32_t>, int64_t>>{
             // The first token comes from the prompt's row and the last from the row after
             // the accepted drafts: the 58 between are reused.
             {answer, static_cast<int64_t>(answer.size()) - 2},
             {half, static_cast<int64_t>(answer.size() / 2) - 1},
             {{3, 3, 3}, 0}}) {
      SchedRequest r;
      r.prompt = p;
      r.params = greedy(60);
      r.draft = draft;
      auto h = s->submit(std::move(r));
      ASSERT_TRUE(h.is_ok());
      const Completion& c = (*h)->wait();
      ASSERT_TRUE(c.status.is_ok());
      EXPECT_EQ(ids(c.result), answer) << "the target's own greedy answer, whatever the draft";
      // The first token comes from the prompt's last row; the rest of what matched is reused.
      if (draft[0] == answer[0]) EXPECT_GE(c.result.n_reused_tokens, reused);
      else EXPECT_EQ(c.result.n_reused_tokens, 0);
    }
  }
  EXPECT_TRUE(s->pool_is_whole());
}

TEST(SpecCascade, TheDeferralRuleComparesTheDraftersConfidenceWithTheTargets) {
  // The target's softmax is (0.6, 0.3, 0.1): max p = 0.6.
  const std::vector<float> row = {std::log(0.6f), std::log(0.3f), std::log(0.1f)};
  const float q_half = std::log(0.5f);
  EXPECT_FALSE(drafter_token_stands(row, q_half, 0.0)) << "0.5 < 0.6";
  EXPECT_TRUE(drafter_token_stands(row, q_half, 0.15)) << "0.5 >= 0.6 - 0.15";
  EXPECT_TRUE(drafter_token_stands(row, std::log(0.7f), 0.0)) << "the drafter is surer";
  EXPECT_FALSE(drafter_token_stands(row, 0.0f, -1.0)) << "alpha -1 never keeps one";
  EXPECT_TRUE(drafter_token_stands(row, -40.0f, 1.0)) << "alpha 1 always does";
  EXPECT_FALSE(drafter_token_stands(row, std::nanf(""), 1.0));
  // Softmax is shift-invariant: large logits give the same verdicts.
  const std::vector<float> big = {row[0] + 500, row[1] + 500, row[2] + 500};
  EXPECT_TRUE(drafter_token_stands(big, q_half, 0.15));
  EXPECT_FALSE(drafter_token_stands(big, q_half, 0.0));
}

// A given draft with the drafter's logprobs and a margin: alpha -1 is lossless, alpha 1 keeps
// the whole draft (its first token included, which plain decoding samples from the prompt's
// row), and a larger margin never keeps fewer tokens, because the tokens kept at a smaller one
// all precede the first place where the two differ.
TEST(SpecCascade, TheMarginRunsFromTheTargetsOwnAnswerToTheDraft) {
  auto s = make(stories_path(), {});
  ASSERT_TRUE(s);
  const auto prompts = story_prompts(s->model().tokenizer());
  for (size_t pi = 0; pi < prompts.size(); ++pi) {
    const auto& p = prompts[pi];
    auto own = generate(*s, p, greedy(40));
    ASSERT_TRUE(own.is_ok());
    // The draft: another prompt's answer, with made-up confidences from sure to unsure.
    auto other = generate(*s, prompts[(pi + 1) % prompts.size()], greedy(40));
    ASSERT_TRUE(other.is_ok());
    std::vector<int32_t> draft = ids(*other);
    std::vector<float> lps;
    for (size_t i = 0; i < draft.size(); ++i) lps.push_back(-0.05f * static_cast<float>(i % 7));
    int64_t kept_before = -1;
    for (double alpha : {-1.0, -0.5, 0.0, 0.3, 0.6, 1.0}) {
      SchedRequest r;
      r.prompt = p;
      r.params = greedy(40);
      r.draft = draft;
      r.draft_logprobs = lps;
      r.defer_alpha = alpha;
      auto h = s->submit(std::move(r));
      ASSERT_TRUE(h.is_ok());
      const Completion& c = (*h)->wait();
      ASSERT_TRUE(c.status.is_ok());
      const std::vector<int32_t> got = ids(c.result);
      EXPECT_GE(c.result.n_draft_kept, kept_before) << "alpha " << alpha;
      kept_before = c.result.n_draft_kept;
      if (alpha == -1.0) {
        EXPECT_EQ(got, ids(*own)) << "lossless: the target's own answer";
        EXPECT_EQ(c.result.n_draft_kept, 0);
      }
      if (alpha == 1.0) {
        ASSERT_GE(got.size(), std::min<size_t>(draft.size(), 40));
        EXPECT_TRUE(std::equal(draft.begin(), draft.end(), got.begin())) << "the whole draft";
        if (draft != ids(*own)) EXPECT_GT(c.result.n_draft_kept, 0);
        EXPECT_EQ(c.result.text.substr(0, other->text.size()), other->text);
      }
    }
  }
  // Logprobs that do not match the draft, and a margin outside [-1, 1], are refused.
  SchedRequest bad;
  bad.prompt = prompts[0];
  bad.draft = {3, 4};
  bad.draft_logprobs = {0.0f};
  auto h = s->submit(std::move(bad));
  ASSERT_FALSE(h.is_ok());
  EXPECT_NE(h.status().message().find("logprobs"), std::string::npos) << h.status().message();
  SchedRequest wide;
  wide.prompt = prompts[0];
  wide.draft = {3};
  wide.draft_logprobs = {0.0f};
  wide.defer_alpha = 2.0;
  EXPECT_FALSE(s->submit(std::move(wide)).is_ok());
  EXPECT_TRUE(s->pool_is_whole());
}

TEST(DraftVocab, RestrictedLogitsAreTheFullOnesOverTheKeptIds) {
  // The teacher as shipped (F16, the file's layout) and quantized to Q8_0 (interleaved in
  // 16-row groups where the machine has the VNNI tile): the kept ids' logits are bitwise the
  // full ones, every end token is kept, the rest read -inf, and 0 computes them all again.
  const std::string q8 =
      (fs::temp_directory_path() / ("frugal_draft_vocab_" + std::to_string(getpid()) + ".gguf"))
          .string();
  const std::string cmd = std::string(FRUGAL_BINARY) + " quantize " +
                          bundled("frugal-teacher.gguf") + " " + q8 + " q8_0 > /dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  for (const std::string& path : {bundled("frugal-teacher.gguf"), q8}) {
    SCOPED_TRACE(path);
    auto model = load(path);
    ASSERT_TRUE(model);
    const int64_t n_vocab = model->config().n_vocab;
    const Tokenizer& tok = model->tokenizer();
    const std::vector<int32_t> p = tok.encode("<|im_start|>user\nReverse: abc<|im_end|>\n", true, true);
    auto logits_of = [&] {
      auto kv = model->make_kv_cache(256);
      const SeqBatch e{kv->create_sequence(), p, true};
      std::vector<float> l;
      EXPECT_TRUE(model->forward(std::span<const SeqBatch>(&e, 1), *kv, l).is_ok());
      return l;
    };
    const std::vector<float> full = logits_of();
    const int64_t kept = 100;
    model->restrict_logits(kept);
    const std::vector<float> part = logits_of();
    ASSERT_EQ(part.size(), full.size());
    int64_t finite = 0;
    for (size_t i = 0; i < full.size(); ++i) {
      const auto id = static_cast<int32_t>(i % n_vocab);
      if (id < kept || tok.is_eog(id)) {
        ASSERT_EQ(part[i], full[i]) << "id " << id;
      } else if (part[i] != -std::numeric_limits<float>::infinity()) {
        ASSERT_EQ(part[i], full[i]) << "id " << id;  // inside a kept row group
      }
      finite += std::isfinite(part[i]);
    }
    const auto rows = static_cast<int64_t>(full.size()) / n_vocab;
    EXPECT_LE(finite, rows * (kept + 16 + 16 * static_cast<int64_t>(tok.eog_ids().size())));
    model->restrict_logits(0);
    EXPECT_EQ(logits_of(), full);
  }
  fs::remove(q8);
}

TEST(SpecDecoding, BundledStudentDraftsForTheTeacherLosslessly) {
  // With the student's whole vocabulary, and with its logits restricted to the first ids and
  // the end tokens (draft_vocab): verification is the same, so the answers are too.
  auto plain = make(bundled("frugal-teacher.gguf"), {});
  ASSERT_TRUE(plain);
  const Tokenizer& tok = plain->model().tokenizer();
  for (int64_t draft_vocab : {int64_t{0}, int64_t{tok.n_vocab() / 3}}) {
    SCOPED_TRACE("draft_vocab " + std::to_string(draft_vocab));
    SchedulerOptions o;
    o.spec = SchedulerOptions::Spec::kDraftModel;
    o.spec_k = 3;
    o.draft_vocab = draft_vocab;
    auto spec = make(bundled("frugal-teacher.gguf"), o, bundled("frugal-student.gguf"));
    ASSERT_TRUE(spec);
    const char* qs[] = {"5 + 2 =", "Sort them ascending: 9 4 7", "Reverse: abc",
                        "Hal likes red. What color does Hal like?", "Count the letter s in: s s k s"};
    for (const char* q : qs) {
      const auto p = tok.encode(std::string("<|im_start|>user\n") + q +
                                    "<|im_end|>\n<|im_start|>assistant\n",
                                tok.add_bos(), true);
      auto a = generate(*plain, p, greedy(30));
      auto b = generate(*spec, p, greedy(30));
      ASSERT_TRUE(a.is_ok() && b.is_ok());
      EXPECT_EQ(ids(*b), ids(*a)) << q;
    }
    EXPECT_GT(spec->stats().spec_draft_tokens, 0u);
    EXPECT_TRUE(spec->pool_is_whole());
  }
  SchedulerOptions o;
  o.spec = SchedulerOptions::Spec::kDraftModel;
  o.spec_k = 3;

  // A draft model with another vocabulary is refused at load, naming the difference.
  auto bad = Scheduler::create(load(bundled("frugal-teacher.gguf")), o, load(stories_path()));
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("vocabulary"), std::string::npos) << bad.status().message();
}

// Two-sample chi-square test of homogeneity on the first two generated tokens: plain sampling
// and speculative sampling (a draft model's sampled drafts, or a fixed given draft) must draw
// from the same distribution. Categories with expected counts below 5 are pooled. With the
// critical value at false-alarm rate 1e-3 the test fails by chance once in a thousand runs;
// the seeds are fixed, so it is repeatable.
double chi_square(const std::map<std::pair<int, int>, int>& a,
                  const std::map<std::pair<int, int>, int>& b, int* dof) {
  std::map<std::pair<int, int>, std::pair<int, int>> both;
  for (const auto& [k, v] : a) both[k].first = v;
  for (const auto& [k, v] : b) both[k].second = v;
  double na = 0, nb = 0;
  for (const auto& [k, v] : both) {
    na += v.first;
    nb += v.second;
  }
  std::vector<std::pair<double, double>> cells;
  std::pair<double, double> pooled{0, 0};
  for (const auto& [k, v] : both) {
    const double total = v.first + v.second;
    if (total * std::min(na, nb) / (na + nb) < 5) {
      pooled.first += v.first;
      pooled.second += v.second;
    } else {
      cells.push_back({static_cast<double>(v.first), static_cast<double>(v.second)});
    }
  }
  if (pooled.first + pooled.second > 0) cells.push_back(pooled);
  double x2 = 0;
  for (const auto& [oa, ob] : cells) {
    const double t = oa + ob;
    const double ea = t * na / (na + nb), eb = t * nb / (na + nb);
    x2 += (oa - ea) * (oa - ea) / ea + (ob - eb) * (ob - eb) / eb;
  }
  *dof = static_cast<int>(cells.size()) - 1;
  return x2;
}

// Upper 1e-3 critical value of chi-square with `dof` degrees of freedom (Wilson–Hilferty).
double chi_square_critical_1e3(int dof) {
  const double z = 3.0902;  // one-sided normal quantile at 1e-3
  const double k = dof;
  const double c = 1.0 - 2.0 / (9.0 * k) + z * std::sqrt(2.0 / (9.0 * k));
  return k * c * c * c;
}

TEST(SpecDecoding, SampledSpeculationFollowsTheTargetsDistribution) {
  SchedulerOptions o;
  o.spec = SchedulerOptions::Spec::kDraftModel;
  o.spec_k = 2;
  o.spec_k_max = 2;
  auto spec = make(bundled("frugal-teacher.gguf"), o, bundled("frugal-student.gguf"));
  auto plain = make(bundled("frugal-teacher.gguf"), {});
  ASSERT_TRUE(spec && plain);
  const Tokenizer& tok = plain->model().tokenizer();
  const auto prompt = tok.encode("<|im_start|>user\nWrite a number.<|im_end|>\n<|im_start|>"
                                 "assistant\n",
                                 tok.add_bos(), true);
  constexpr int kSamples = 2500;
  auto collect = [&](Scheduler& s, const std::vector<int32_t>& given, uint64_t seed0) {
    std::map<std::pair<int, int>, int> counts;
    for (int i = 0; i < kSamples; ++i) {
      SchedRequest r;
      r.prompt = prompt;
      r.params.max_tokens = 3;  // room for a one-token draft after the first token
      r.params.stop_at_eog = false;
      r.params.sampling.temperature = 1.0f;
      r.params.sampling.top_k = 6;
      r.params.sampling.seed = seed0 + i;
      r.draft = given;
      auto h = s.submit(std::move(r));
      EXPECT_TRUE(h.is_ok());
      const GenerateResult& g = (*h)->wait().result;
      counts[{g.tokens.at(0).id, g.tokens.at(1).id}]++;
    }
    return counts;
  };
  const auto base = collect(*plain, {}, 1000);
  int dof = 0;
  const double x_model = chi_square(base, collect(*spec, {}, 500000), &dof);
  EXPECT_LT(x_model, chi_square_critical_1e3(dof)) << "draft-model speculation, dof " << dof;
  EXPECT_GT(spec->stats().spec_draft_tokens, 0u);
  // A fixed draft (q a point mass), as speculative escalation gives one: first token the
  // distribution's mode, second anything.
  const int32_t mode = std::max_element(base.begin(), base.end(), [](auto& a, auto& b) {
                         return a.second < b.second;
                       })->first.first;
  const double x_given = chi_square(base, collect(*plain, {mode, mode}, 900000), &dof);
  EXPECT_LT(x_given, chi_square_critical_1e3(dof)) << "given draft, dof " << dof;
}

}  // namespace
}  // namespace frugal
