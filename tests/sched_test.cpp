// Scheduler: continuous batching must not change anyone's answer. Every request, however its
// submission interleaves with others (prefix reuse, chunked prefill, preemption, cancellation
// of its neighbours), gets the tokens it gets alone; seeded sampling likewise; the KV pool is
// whole after any sequence of events; limits, deadlines and prompt logprobs behave as stated.
// Models: llama2.c's stories260K (converted here) and the bundled student.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/model.h"
#include "engine/tokenizer.h"
#include "sched/generate.h"
#include "sched/scheduler.h"

namespace frugal {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class SchedTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string dir = std::string(FRUGAL_SHARED_DIR) + "/models/stories260K";
    path_ = (fs::temp_directory_path() /
             ("frugal_sched_test_stories260K_" + std::to_string(getpid()) + ".gguf"))
                .string();  // its own: ctest runs each test in a process, and TearDown removes it
    const std::string cmd = std::string(FRUGAL_BINARY) + " convert --llama2c " + dir +
                            "/stories260K.bin --tokenizer " + dir + "/tok512.bin -o " + path_ +
                            " > /dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  static void TearDownTestSuite() { fs::remove(path_); }

  static std::unique_ptr<Model> load(const std::string& path = path_) {
    ModelOptions o;
    o.n_threads = 2;
    auto m = Model::load(path, o);
    EXPECT_TRUE(m.is_ok()) << m.status().to_string();
    return m.is_ok() ? std::move(m).value() : nullptr;
  }
  static std::unique_ptr<Scheduler> make(SchedulerOptions o, const std::string& path = path_) {
    auto s = Scheduler::create(load(path), o);
    EXPECT_TRUE(s.is_ok()) << s.status().to_string();
    return s.is_ok() ? std::move(s).value() : nullptr;
  }

  // Prompts with a shared 40-token opening (prefix reuse) and distinct tails of varied length.
  std::vector<std::vector<int32_t>> prompts(const Tokenizer& tok, int n) {
    const std::string shared =
        "Once upon a time, there was a little girl named Lily. She liked to play outside in the "
        "sun with her friends every day.";
    const char* tails[] = {" One day", " Her dog", " The sky was", " She saw a big", " Tom said",
                           " It was", " A bird", " Mom"};
    std::vector<std::vector<int32_t>> out;
    for (int i = 0; i < n; ++i) {
      std::string text = (i % 3 == 2 ? std::string("A cat sat on the mat.") : shared) +
                         tails[i % 8] + std::string(i / 8, ' ');
      out.push_back(tok.encode(text, true, false));
    }
    return out;
  }

  static std::vector<int32_t> ids(const GenerateResult& r) {
    std::vector<int32_t> v;
    for (const auto& t : r.tokens) v.push_back(t.id);
    return v;
  }

  static std::string path_;
};
std::string SchedTest::path_;

GenerateParams greedy(int64_t n) {
  GenerateParams p;
  p.max_tokens = n;
  p.stop_at_eog = false;
  return p;
}

// Each prompt alone on a fresh scheduler: the reference answers.
std::vector<std::vector<int32_t>> alone(Scheduler& s, const std::vector<std::vector<int32_t>>& ps,
                                        const std::vector<GenerateParams>& params) {
  std::vector<std::vector<int32_t>> out;
  for (size_t i = 0; i < ps.size(); ++i) {
    auto r = generate(s, ps[i], params[i]);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    std::vector<int32_t> v;
    if (r.is_ok())
      for (const auto& t : r->tokens) v.push_back(t.id);
    out.push_back(v);
  }
  return out;
}

TEST_F(SchedTest, InterleavedSubmissionsGiveEachRequestItsTokensAlone) {
  SchedulerOptions ref_opts;
  ref_opts.max_running = 1;
  ref_opts.n_ctx = 160;
  auto ref = make(ref_opts);
  ASSERT_TRUE(ref);
  const auto ps = prompts(ref->model().tokenizer(), 12);
  std::vector<GenerateParams> params;
  for (size_t i = 0; i < ps.size(); ++i) params.push_back(greedy(40 + 13 * (i % 4)));
  const auto expected = alone(*ref, ps, params);

  // A small step budget (chunked prefill) and a pool too small for everyone (preemption).
  SchedulerOptions o;
  o.step_tokens = 13;
  o.n_ctx = 160;
  o.kv_tokens = 256;  // 12 sequences of 70-120 positions do not fit at once
  o.block_size = 8;
  auto s = make(o);
  ASSERT_TRUE(s);
  std::mt19937 rng(7);
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (size_t i = 0; i < ps.size(); ++i) {
    SchedRequest r;
    r.prompt = ps[i];
    r.params = params[i];
    auto h = s->submit(std::move(r));
    ASSERT_TRUE(h.is_ok()) << h.status().to_string();
    handles.push_back(*h);
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
  }
  for (size_t i = 0; i < handles.size(); ++i) {
    const Completion& c = handles[i]->wait();
    ASSERT_TRUE(c.status.is_ok()) << c.status.to_string();
    EXPECT_EQ(ids(c.result), expected[i]) << "request " << i;
  }
  const SchedulerStats st = s->stats();
  EXPECT_GT(st.preemptions, 0u) << "the pool was sized to force preemption";
  EXPECT_GT(st.prompt_tokens_cached, 0u) << "the shared opening was reused";
  EXPECT_TRUE(s->pool_is_whole());
}

TEST_F(SchedTest, CancellingNeighboursMidStreamChangesNoOneElsesAnswer) {
  SchedulerOptions o;
  o.step_tokens = 32;
  auto s = make(o);
  ASSERT_TRUE(s);
  const auto ps = prompts(s->model().tokenizer(), 8);
  std::vector<GenerateParams> params(ps.size(), greedy(40));
  const auto expected = alone(*s, ps, params);

  std::vector<std::shared_ptr<RequestHandle>> handles(ps.size());
  // The callback runs on the scheduler's thread, possibly before submit() has returned.
  std::vector<std::atomic<RequestHandle*>> published(ps.size());
  std::vector<std::atomic<int>> seen(ps.size());
  for (size_t i = 0; i < ps.size(); ++i) {
    SchedRequest r;
    r.prompt = ps[i];
    r.params = params[i];
    const bool victim = i % 2 == 1;
    r.on_token = [&, i, victim](const GeneratedToken&) {
      RequestHandle* h = published[i].load();
      if (++seen[i] >= 5 && victim && h != nullptr) h->cancel();
      return true;
    };
    auto h = s->submit(std::move(r));
    ASSERT_TRUE(h.is_ok());
    handles[i] = *h;
    published[i].store(handles[i].get());
  }
  for (size_t i = 0; i < ps.size(); ++i) {
    const Completion& c = handles[i]->wait();
    if (i % 2 == 1) {
      EXPECT_EQ(c.status.code(), ErrorCode::kCancelled) << i;
      EXPECT_LT(c.result.tokens.size(), 40u) << "cancelled mid-stream";
      // What it did stream is the start of its own answer.
      const auto got = ids(c.result);
      EXPECT_TRUE(std::equal(got.begin(), got.end(), expected[i].begin())) << i;
    } else {
      ASSERT_TRUE(c.status.is_ok()) << c.status.to_string();
      EXPECT_EQ(ids(c.result), expected[i]) << i;
    }
  }
  EXPECT_TRUE(s->pool_is_whole());
}

TEST_F(SchedTest, SeededSamplingGivesTheSameTokensAloneAndInABatch) {
  auto s = make({});
  ASSERT_TRUE(s);
  const auto ps = prompts(s->model().tokenizer(), 6);
  std::vector<GenerateParams> params;
  for (size_t i = 0; i < ps.size(); ++i) {
    GenerateParams p = greedy(30);
    p.sampling.temperature = 0.9f;
    p.sampling.top_k = 40;
    p.sampling.top_p = 0.95f;
    p.sampling.seed = 100 + i;
    params.push_back(p);
  }
  const auto expected = alone(*s, ps, params);
  std::vector<std::thread> threads;
  std::vector<std::vector<int32_t>> got(ps.size());
  for (size_t i = 0; i < ps.size(); ++i) {
    threads.emplace_back([&, i] {
      auto r = generate(*s, ps[i], params[i]);
      if (r.is_ok()) got[i] = ids(*r);
    });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < ps.size(); ++i) EXPECT_EQ(got[i], expected[i]) << i;
  // And a different seed really samples differently (the test can fail).
  GenerateParams other = params[0];
  other.sampling.seed = 999;
  auto r = generate(*s, ps[0], other);
  ASSERT_TRUE(r.is_ok());
  EXPECT_NE(ids(*r), expected[0]);
}

TEST_F(SchedTest, NoBlockLeaksAfterAThousandRandomEvents) {
  SchedulerOptions o;
  o.kv_tokens = 768;
  o.block_size = 8;
  o.step_tokens = 24;
  o.max_running = 12;
  auto s = make(o);
  ASSERT_TRUE(s);
  const auto ps = prompts(s->model().tokenizer(), 16);
  std::mt19937 rng(42);
  std::vector<std::shared_ptr<RequestHandle>> live;
  int events = 0, cancelled_n = 0;
  while (events < 1000) {
    const unsigned what = rng() % 10;
    if (what < 5 || live.empty()) {
      SchedRequest r;
      r.prompt = ps[rng() % ps.size()];
      r.params = greedy(1 + rng() % 12);
      if (rng() % 4 == 0) r.params.echo_prompt_logprobs = true;
      if (rng() % 5 == 0) {
        r.params.sampling.temperature = 1.0f;
        r.params.sampling.seed = rng();
      }
      if (rng() % 8 == 0) r.deadline = SchedClock::now() + std::chrono::microseconds(rng() % 2000);
      auto h = s->submit(std::move(r));
      ASSERT_TRUE(h.is_ok()) << h.status().to_string();
      live.push_back(*h);
    } else if (what < 8) {
      const size_t i = rng() % live.size();
      live[i]->cancel();
      cancelled_n++;
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 500));
      // Forget finished handles.
      std::erase_if(live, [](const std::shared_ptr<RequestHandle>& h) { return h->done(); });
    }
    ++events;
  }
  for (auto& h : live) h->wait();
  EXPECT_GT(cancelled_n, 100);
  EXPECT_TRUE(s->pool_is_whole());
  EXPECT_EQ(s->stats().running, 0);
  EXPECT_EQ(s->stats().waiting, 0);
}

TEST_F(SchedTest, PromptLogprobsMatchFullLogitsAndSurviveThePrefixCache) {
  auto model = load();
  ASSERT_TRUE(model);
  const auto ps = prompts(model->tokenizer(), 2);
  const std::vector<int32_t>& prompt = ps[0];
  // Reference: every position's logits through a plain forward, reduced here.
  std::vector<float> ref;
  {
    auto kv = model->make_kv_cache(512);
    const SeqBatch b{kv->create_sequence(), prompt, true};
    std::vector<float> logits;
    ASSERT_TRUE(model->forward(std::span<const SeqBatch>(&b, 1), *kv, logits).is_ok());
    const int64_t nv = model->config().n_vocab;
    for (size_t i = 0; i + 1 < prompt.size(); ++i) {
      const float* row = logits.data() + i * nv;
      double mx = row[0], z = 0;
      for (int64_t j = 0; j < nv; ++j) mx = std::max<double>(mx, row[j]);
      for (int64_t j = 0; j < nv; ++j) z += std::exp(row[j] - mx);
      ref.push_back(static_cast<float>(row[prompt[i + 1]] - mx - std::log(z)));
    }
  }
  SchedulerOptions o;
  o.step_tokens = 10;  // the prompt spans several chunks
  auto s = Scheduler::create(std::move(model), o);
  ASSERT_TRUE(s.is_ok());
  GenerateParams p = greedy(4);
  p.echo_prompt_logprobs = true;
  auto first = generate(**s, prompt, p);
  ASSERT_TRUE(first.is_ok());
  ASSERT_EQ(first->prompt_logprobs.size(), ref.size());
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(first->prompt_logprobs[i], ref[i], 1e-4f) << i;
  EXPECT_EQ(first->n_prompt_cached, 0);
  auto again = generate(**s, prompt, p);
  ASSERT_TRUE(again.is_ok());
  EXPECT_GT(again->n_prompt_cached, 16) << "the second request reuses the blocks";
  EXPECT_EQ(again->prompt_logprobs, first->prompt_logprobs) << "with their logprobs";
  EXPECT_EQ(ids(*again), ids(*first));
}

TEST_F(SchedTest, SharedSystemPromptIsComputedOnceAndReported) {
  auto s = make({});
  ASSERT_TRUE(s);
  const auto ps = prompts(s->model().tokenizer(), 2);  // both open with the same 40 tokens
  auto a = generate(*s, ps[0], greedy(3));
  auto b = generate(*s, ps[1], greedy(3));
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  EXPECT_EQ(a->n_prompt_cached, 0);
  EXPECT_GE(b->n_prompt_cached, 16);
  EXPECT_LT(b->n_prompt_cached, b->n_prompt);
}

TEST_F(SchedTest, LimitsDeadlinesAndQueueModeBehaveAsStated) {
  SchedulerOptions o;
  o.max_queue = 2;
  o.max_running = 1;
  auto s = make(o);
  ASSERT_TRUE(s);
  const auto ps = prompts(s->model().tokenizer(), 4);

  // A full queue answers at once with kResourceExhausted, never a hang.
  std::vector<std::shared_ptr<RequestHandle>> hs;
  Status refused;
  for (int i = 0; i < 8 && refused.is_ok(); ++i) {
    SchedRequest r;
    r.prompt = ps[0];
    r.params = greedy(200);
    auto h = s->submit(std::move(r));
    if (h.is_ok()) hs.push_back(*h);
    else refused = h.status();
  }
  EXPECT_EQ(refused.code(), ErrorCode::kResourceExhausted);
  EXPECT_NE(refused.message().find("queue full"), std::string::npos) << refused.message();
  for (auto& h : hs) h->cancel();
  for (auto& h : hs) {
    EXPECT_EQ(h->wait().status.code(), ErrorCode::kCancelled) << h->wait().status.to_string();
  }

  // A deadline that passes ends the request with kDeadlineExceeded.
  SchedRequest late;
  late.prompt = ps[1];
  late.params = greedy(450);
  late.deadline = SchedClock::now() + 5ms;
  auto h = s->submit(std::move(late));
  ASSERT_TRUE(h.is_ok());
  EXPECT_EQ((*h)->wait().status.code(), ErrorCode::kDeadlineExceeded)
      << (*h)->wait().status.to_string() << " after " << (*h)->wait().result.tokens.size();

  // Queue mode: without on_token, tokens are polled in order, then the finish.
  SchedRequest q;
  q.prompt = ps[2];
  q.params = greedy(6);
  auto qh = s->submit(std::move(q));
  ASSERT_TRUE(qh.is_ok());
  std::vector<int32_t> polled;
  GeneratedToken t;
  RequestHandle::Poll p;
  while ((p = (*qh)->poll(&t, 5s)) == RequestHandle::Poll::kToken) polled.push_back(t.id);
  EXPECT_EQ(p, RequestHandle::Poll::kFinished);
  EXPECT_EQ(polled, ids((*qh)->wait().result));
  EXPECT_EQ(polled.size(), 6u);

  // Bad requests are refused at submission, naming what is wrong.
  SchedRequest empty;
  EXPECT_EQ(s->submit(std::move(empty)).status().code(), ErrorCode::kInvalidArgument);
  SchedRequest bad_id;
  bad_id.prompt = {1, 100000};
  auto bad = s->submit(std::move(bad_id));
  EXPECT_NE(bad.status().message().find("100000"), std::string::npos);
  SchedRequest too_long;
  too_long.prompt.assign(s->n_ctx(), 5);
  EXPECT_EQ(s->submit(std::move(too_long)).status().code(), ErrorCode::kOutOfRange);
  EXPECT_TRUE(s->pool_is_whole());
}

TEST_F(SchedTest, GenerationStopsWithLengthAtTheEndOfTheContext) {
  SchedulerOptions o;
  o.n_ctx = 64;
  auto s = make(o);
  ASSERT_TRUE(s);
  const auto ps = prompts(s->model().tokenizer(), 1);
  auto r = generate(*s, ps[0], greedy(1000));
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->finish, FinishReason::kLength);
  EXPECT_EQ(r->n_prompt + static_cast<int64_t>(r->tokens.size()), 65)
      << "every position filled, the last sampled token reported but not fed";
  auto zero = generate(*s, ps[0], greedy(0));
  ASSERT_TRUE(zero.is_ok());
  EXPECT_TRUE(zero->tokens.empty());
}

TEST_F(SchedTest, DestroyingTheSchedulerEndsOutstandingRequests) {
  auto s = make({});
  ASSERT_TRUE(s);
  const auto ps = prompts(s->model().tokenizer(), 3);
  std::vector<std::shared_ptr<RequestHandle>> hs;
  for (const auto& p : ps) {
    SchedRequest r;
    r.prompt = p;
    r.params = greedy(400);
    hs.push_back(*s->submit(std::move(r)));
  }
  s.reset();
  for (auto& h : hs) {
    EXPECT_TRUE(h->done());
    EXPECT_EQ(h->wait().status.code(), ErrorCode::kCancelled);
    h->cancel();  // harmless after the scheduler is gone
  }
}

TEST_F(SchedTest, BundledStudentAnswersChatPromptsTheSameBatched) {
  const std::string student = std::string(FRUGAL_SOURCE_DIR) + "/models/frugal-student.gguf";
  SchedulerOptions ref_opts;
  ref_opts.max_running = 1;
  auto ref = make(ref_opts, student);
  ASSERT_TRUE(ref);
  const Tokenizer& tok = ref->model().tokenizer();
  const char* questions[] = {"5 + 2 =", "Sort them ascending: 9 4 7", "Hal likes red. What color does Hal like?",
                             "Reverse: abc", "Count the letters in 'banana'", "7 - 3 ="};
  std::vector<std::vector<int32_t>> ps;
  for (const char* q : questions) {
    ps.push_back(tok.encode(std::string("<|im_start|>user\n") + q + "<|im_end|>\n<|im_start|>assistant\n",
                            tok.add_bos(), true));
  }
  std::vector<GenerateParams> params(ps.size());
  for (auto& p : params) p.max_tokens = 24;
  const auto expected = alone(*ref, ps, params);
  auto s = make({}, student);
  ASSERT_TRUE(s);
  std::vector<std::thread> threads;
  std::vector<std::vector<int32_t>> got(ps.size());
  for (size_t i = 0; i < ps.size(); ++i) {
    threads.emplace_back([&, i] {
      auto r = generate(*s, ps[i], params[i]);
      if (r.is_ok()) got[i] = ids(*r);
    });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < ps.size(); ++i) EXPECT_EQ(got[i], expected[i]) << questions[i];
}

}  // namespace
}  // namespace frugal
