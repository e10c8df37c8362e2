// Remote tiers against a real OpenAI-compatible server (a second `frugal serve` on loopback
// serving the bundled student), through a fault-injecting proxy written here: connection
// refused, no first byte, a stream cut after some tokens, a malformed chunk, 429 and 500 with
// Retry-After, a slow trickle. Each request must end with the right answer from the next tier
// or the right error, within the configured timeouts, with no call left running.
#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <future>
#include <memory>
#include <thread>

#include "cascade/cascade.h"
#include "cascade/local_tier.h"
#include "cascade/remote_tier.h"
#include "process_helpers.h"

namespace frugal::cascade {
namespace {

using Clock = std::chrono::steady_clock;
using test::ServeProcess;
using test::TempDir;

const std::string kStudent = std::string(FRUGAL_SOURCE_DIR) + "/models/frugal-student.gguf";
const std::string kTeacher = std::string(FRUGAL_SOURCE_DIR) + "/models/frugal-teacher.gguf";

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

TierRequest chat(const std::string& prompt, int max_tokens = 24) {
  TierRequest r;
  r.messages = {{"user", prompt}};
  r.max_tokens = max_tokens;
  return r;
}

// A tier that forwards to a tier shared by the tests (the loaded local models).
class SharedTier : public Tier {
 public:
  explicit SharedTier(Tier* t) : Tier(t->config()), t_(t) {}
  Result<std::unique_ptr<TierCall>> start(const TierRequest& r, TierSink s) override {
    return t_->start(r, std::move(s));
  }

 private:
  Tier* t_;
};

// Fetches the upstream's whole SSE answer, then replays it to the client with a fault.
class FaultProxy {
 public:
  enum class Mode { kPass, kNoFirstByte, kCut, kMalformedFirst, kStatus, kTrickleBytes, kSlowEvents };

  explicit FaultProxy(int upstream_port) : upstream_port_(upstream_port) {
    server_.Post(R"(/v1/.*)", [this](const httplib::Request& req, httplib::Response& res) {
      handle(req, res);
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~FaultProxy() {
    stopping_ = true;
    server_.stop();
    thread_.join();
  }
  void set(Mode mode, int status = 0, int failures = 1 << 30, std::string retry_after = "") {
    mode_ = mode;
    status_ = status;
    failures_left_ = failures;
    retry_after_ = std::move(retry_after);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  int requests() const { return requests_.load(); }

 private:
  void handle(const httplib::Request& req, httplib::Response& res) {
    requests_++;
    const Mode mode = mode_;
    if (mode == Mode::kNoFirstByte) {
      for (int i = 0; i < 300 && !stopping_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      res.status = 500;
      return;
    }
    if (mode == Mode::kStatus && failures_left_-- > 0) {
      res.status = status_;
      if (!retry_after_.empty()) res.set_header("Retry-After", retry_after_);
      res.set_content(R"({"error": {"message": "injected failure", "type": "server_error"}})",
                      "application/json");
      return;
    }
    httplib::Client up("127.0.0.1", upstream_port_);
    auto r = up.Post(req.path, req.body, "application/json");
    if (!r) {
      res.status = 599;
      return;
    }
    std::vector<std::string> events;
    for (size_t at = 0; at < r->body.size();) {
      size_t end = r->body.find("\n\n", at);
      end = end == std::string::npos ? r->body.size() : end + 2;
      events.push_back(r->body.substr(at, end - at));
      at = end;
    }
    res.status = r->status;
    res.set_chunked_content_provider(
        "text/event-stream", [this, mode, events](size_t, httplib::DataSink& sink) {
          auto put = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
          for (size_t i = 0; i < events.size(); ++i) {
            if (stopping_) return false;
            if (mode == Mode::kCut && i == 3) return false;  // closes without the last chunk
            if (mode == Mode::kMalformedFirst && i == 0) put("data: {\"choices\": [{\"delta\"\n\n");
            if (mode == Mode::kSlowEvents) std::this_thread::sleep_for(std::chrono::milliseconds(150));
            if (mode == Mode::kTrickleBytes) {
              for (char c : events[i]) {
                if (stopping_ || !put(std::string(1, c))) return false;
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
              }
              continue;
            }
            if (!put(events[i])) return false;
          }
          sink.done();
          return true;
        });
  }

  int upstream_port_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<Mode> mode_{Mode::kPass};
  std::atomic<int> status_{0};
  std::atomic<int> failures_left_{0};
  std::string retry_after_;
  std::atomic<int> requests_{0};
};

class RemoteTierTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("remote");
    // The upstream: another frugal serve, the student as its only tier.
    test::write_text(dir_->file("upstream.toml"),
                     "[[tier]]\nname = \"small\"\nkind = \"local\"\nmodel = \"" + kStudent +
                         "\"\nprice_in = 0.05\nprice_out = 0.1\n");
    upstream_ = new ServeProcess(dir_->file("upstream.toml"), dir_->file("upstream.log"));
    ASSERT_TRUE(upstream_->ready()) << upstream_->log();
    auto load = [](const std::string& name, const std::string& path) {
      TierConfig c;
      c.name = name;
      c.kind = TierKind::kLocal;
      c.model = path;
      c.price_in_per_mtok = name == "student" ? 0.05 : 0.5;
      c.price_out_per_mtok = name == "student" ? 0.1 : 1.5;
      LocalTierOptions o;
      o.n_threads = 1;
      auto t = LocalTier::load(c, o);
      EXPECT_TRUE(t.is_ok()) << t.status().to_string();
      return std::move(t).value().release();
    };
    student_ = load("student", kStudent);
    teacher_ = load("teacher", kTeacher);
  }
  static void TearDownTestSuite() {
    delete student_;
    delete teacher_;
    delete upstream_;
    delete dir_;
  }

  static TierConfig remote_config(const std::string& url) {
    TierConfig c;
    c.name = "remote";
    c.kind = TierKind::kRemote;
    c.url = url;
    c.remote_model = "small";
    c.price_in_per_mtok = 1;
    c.price_out_per_mtok = 2;
    c.first_token_timeout_ms = 300;
    c.total_timeout_ms = 2000;
    c.max_retries = 1;
    c.retry_backoff_ms = 50;
    c.connect_timeout_ms = 300;
    return c;
  }

  // tier 1 = the local student (always escalates: threshold 1), top = `remote`, then the
  // local teacher when `fallback`.
  std::unique_ptr<Cascade> cascade(std::unique_ptr<RemoteTier> remote, bool fallback) {
    CascadeConfig cc;
    cc.threshold = 1.0;
    remote_ = remote.get();
    std::vector<std::unique_ptr<Tier>> tiers;
    tiers.push_back(std::make_unique<SharedTier>(student_));
    tiers.push_back(std::move(remote));
    if (fallback) tiers.push_back(std::make_unique<SharedTier>(teacher_));
    return std::make_unique<Cascade>(cc, nullptr, std::move(tiers));
  }

  // Every remote call has ended (its thread is done) within a second.
  bool nothing_left_running() {
    for (int i = 0; i < 100; ++i) {
      if (remote_->health().in_flight == 0) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  static std::string direct(Tier& t, const TierRequest& r) {
    auto a = t.answer(r);
    EXPECT_TRUE(a.is_ok()) << a.status().to_string();
    return a.is_ok() ? a->text : "";
  }

  static TempDir* dir_;
  static ServeProcess* upstream_;
  static LocalTier* student_;
  static LocalTier* teacher_;
  RemoteTier* remote_ = nullptr;
};
TempDir* RemoteTierTest::dir_ = nullptr;
ServeProcess* RemoteTierTest::upstream_ = nullptr;
LocalTier* RemoteTierTest::student_ = nullptr;
LocalTier* RemoteTierTest::teacher_ = nullptr;

const char* kLongPrompt = "Reverse the letters: a b c d e f g h";

TEST_F(RemoteTierTest, StreamsTheUpstreamModelsOwnAnswerWithItsLogprobs) {
  TierConfig c = remote_config(upstream_->url() + "/v1");
  c.logprobs = true;
  auto remote = RemoteTier::create(c);
  ASSERT_TRUE(remote.is_ok()) << remote.status().to_string();
  TierRequest r = chat(kLongPrompt);
  r.prompt_logprobs = true;
  int seen = 0;
  auto a = (*remote)->answer(r, [&](const AnswerToken&) { return ++seen > 0; });
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  auto local = student_->answer(r);
  ASSERT_TRUE(local.is_ok());
  // The same model answers: the same text, token for token, with the same logprobs.
  EXPECT_EQ(a->text, local->text);
  ASSERT_EQ(a->tokens.size(), local->tokens.size());
  EXPECT_EQ(seen, static_cast<int>(a->tokens.size()));
  for (size_t i = 0; i < a->tokens.size(); ++i) {
    EXPECT_EQ(a->tokens[i].id, -1);
    EXPECT_EQ(a->tokens[i].piece, local->tokens[i].piece);
    EXPECT_NEAR(a->tokens[i].logprob, local->tokens[i].logprob, 1e-4);
    ASSERT_EQ(a->tokens[i].top.size(), 5u);
    EXPECT_EQ(a->tokens[i].top[0].piece, local->tokens[i].top[0].piece);
  }
  EXPECT_EQ(a->tokens_in, local->tokens_in);  // the usage chunk's prompt_tokens
  EXPECT_EQ(a->tokens_out, local->tokens_out);
  EXPECT_NEAR(a->cost, (a->tokens_in * 1.0 + a->tokens_out * 2.0) / 1e6, 1e-12);
  EXPECT_FALSE(a->has_prompt_logprob);  // the API has no prompt logprobs
  // Scored as tier 1, the remote answer reads like the local one (prompt familiarity aside).
  TierAnswer local_no_prompt = *local;
  local_no_prompt.has_prompt_logprob = false;
  const Scorer scorer = default_scorer();
  EXPECT_NEAR(decide(scorer, 0.5, *a).score, decide(scorer, 0.5, local_no_prompt).score, 1e-4);
}

TEST_F(RemoteTierTest, ARemoteTier1WithLogprobsIsScoredAndOneWithoutIsRefused) {
  const std::string cfg = "[[tier]]\nname = \"r\"\nkind = \"remote\"\nurl = \"" + upstream_->url() +
                          "/v1\"\nremote_model = \"small\"\nprice_in = 1\nprice_out = 1\n%s"
                          "[[tier]]\nname = \"big\"\nkind = \"local\"\nmodel = \"" + kTeacher +
                          "\"\nprice_in = 2\nprice_out = 2\n";
  char buf[2048];
  std::snprintf(buf, sizeof buf, cfg.c_str(), "");
  auto no_lp = parse_cascade_config(buf, "t.toml", "");
  ASSERT_TRUE(no_lp.is_ok()) << no_lp.status().to_string();
  auto refused = Cascade::create(*no_lp);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.status().message().find("logprobs = true"), std::string::npos)
      << refused.status().message();

  std::snprintf(buf, sizeof buf, cfg.c_str(), "logprobs = true\n");
  auto with_lp = parse_cascade_config(buf, "t.toml", "");
  ASSERT_TRUE(with_lp.is_ok()) << with_lp.status().to_string();
  CascadeOptions o;
  o.n_threads = 1;
  auto c = Cascade::create(*with_lp, o);
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  auto a = (*c)->answer(chat("What is 2 + 3?"));
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_TRUE(std::isfinite(a->score));
  EXPECT_EQ(static_cast<int64_t>(a->tier1.tokens.size()), a->trace.front().tokens_out);
  EXPECT_EQ(a->trace.front().tier, "r");
}

TEST_F(RemoteTierTest, ConnectionRefusedFallsBackToTheNextTierAtOnce) {
  auto remote = RemoteTier::create(remote_config("http://127.0.0.1:" + std::to_string(test::free_port()) + "/v1"));
  ASSERT_TRUE(remote.is_ok());
  auto c = cascade(std::move(remote).value(), /*fallback=*/true);
  const TierRequest r = chat("What is 2 + 3?");
  const auto t0 = Clock::now();
  auto a = c->answer(r);
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_LT(ms_since(t0), 1000);
  EXPECT_EQ(a->tier, "teacher");
  EXPECT_EQ(a->text, direct(*teacher_, r));
  ASSERT_EQ(a->tier_errors.size(), 1u);
  EXPECT_NE(a->tier_errors[0].find("bad gateway"), std::string::npos) << a->tier_errors[0];
  EXPECT_NE(a->tier_errors[0].find("cannot connect"), std::string::npos) << a->tier_errors[0];
  EXPECT_TRUE(nothing_left_running());
}

TEST_F(RemoteTierTest, NoFirstByteTimesOutEachTryThenFallsBack) {
  FaultProxy proxy(upstream_->port());
  proxy.set(FaultProxy::Mode::kNoFirstByte);
  auto c = cascade(RemoteTier::create(remote_config(proxy.url())).value(), true);
  const TierRequest r = chat("What is 2 + 3?");
  const auto t0 = Clock::now();
  auto a = c->answer(r);
  const double ms = ms_since(t0);
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_EQ(a->tier, "teacher");
  EXPECT_EQ(a->text, direct(*teacher_, r));
  EXPECT_EQ(proxy.requests(), 2);  // one retry
  EXPECT_GE(ms, 2 * 300 + 50);
  EXPECT_LT(ms, 1500);
  EXPECT_NE(a->tier_errors[0].find("first_token_timeout_ms = 300 ms"), std::string::npos)
      << a->tier_errors[0];
  EXPECT_TRUE(nothing_left_running());
}

TEST_F(RemoteTierTest, AStreamCutAfterSomeTokensIsABadGatewayNotARetry) {
  FaultProxy proxy(upstream_->port());
  proxy.set(FaultProxy::Mode::kCut);
  auto c = cascade(RemoteTier::create(remote_config(proxy.url())).value(), true);
  const auto t0 = Clock::now();
  std::string streamed;
  CascadeSink sink;
  std::promise<Result<CascadeAnswer>> done;
  sink.on_token = [&](const AnswerToken& t) {
    streamed += t.text;
    return true;
  };
  sink.on_done = [&](Result<CascadeAnswer> r) { done.set_value(std::move(r)); };
  auto run = c->start(chat(kLongPrompt), std::move(sink));
  auto result = done.get_future().get();
  // Tokens reached the client: the fallback cannot take over, the error says what happened.
  ASSERT_FALSE(result.is_ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kBadGateway);
  EXPECT_NE(result.status().message().find("cut after"), std::string::npos)
      << result.status().message();
  EXPECT_FALSE(streamed.empty());
  EXPECT_EQ(proxy.requests(), 1);
  EXPECT_LT(ms_since(t0), 1500);
  EXPECT_TRUE(nothing_left_running());
}

TEST_F(RemoteTierTest, AHeldTier1CutMidStreamEscalates) {
  FaultProxy proxy(upstream_->port());
  proxy.set(FaultProxy::Mode::kCut);
  TierConfig rc = remote_config(proxy.url());
  rc.logprobs = true;
  auto remote = RemoteTier::create(rc).value();
  remote_ = remote.get();
  CascadeConfig cc;
  std::vector<std::unique_ptr<Tier>> tiers;
  tiers.push_back(std::move(remote));
  tiers.push_back(std::make_unique<SharedTier>(teacher_));
  Cascade c(cc, nullptr, std::move(tiers));
  const TierRequest r = chat(kLongPrompt);
  auto a = c.answer(r);
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_EQ(a->tier, "teacher");
  EXPECT_EQ(a->text, direct(*teacher_, r));
  EXPECT_TRUE(a->escalated);
  EXPECT_TRUE(nothing_left_running());
}

TEST_F(RemoteTierTest, AMalformedChunkBeforeAnyTokenIsRetriedThenFallsBack) {
  FaultProxy proxy(upstream_->port());
  proxy.set(FaultProxy::Mode::kMalformedFirst);
  auto c = cascade(RemoteTier::create(remote_config(proxy.url())).value(), true);
  auto a = c->answer(chat("What is 2 + 3?"));
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_EQ(a->tier, "teacher");
  EXPECT_EQ(proxy.requests(), 2);
  EXPECT_NE(a->tier_errors[0].find("malformed stream chunk #1"), std::string::npos)
      << a->tier_errors[0];
  EXPECT_TRUE(nothing_left_running());
}

TEST_F(RemoteTierTest, A429HonoursRetryAfterAndThenAnswers) {
  FaultProxy proxy(upstream_->port());
  proxy.set(FaultProxy::Mode::kStatus, 429, /*failures=*/1, "1");
  auto c = cascade(RemoteTier::create(remote_config(proxy.url())).value(), true);
  const TierRequest r = chat("What is 2 + 3?");
  const auto t0 = Clock::now();
  auto a = c->answer(r);
  const double ms = ms_since(t0);
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_EQ(a->tier, "remote");
  EXPECT_EQ(a->text, direct(*student_, r));  // the upstream serves the student
  EXPECT_EQ(proxy.requests(), 2);
  EXPECT_GE(ms, 1000);  // Retry-After: 1, not the 50 ms backoff
  EXPECT_LT(ms, 1900);
  EXPECT_EQ(remote_->health().retries, 1);
  EXPECT_TRUE(nothing_left_running());
}

TEST_F(RemoteTierTest, A500WhoseRetryAfterOutlastsTheTimeoutFallsBackWithoutWaiting) {
  FaultProxy proxy(upstream_->port());
  proxy.set(FaultProxy::Mode::kStatus, 500, 1 << 30, "5");
  auto c = cascade(RemoteTier::create(remote_config(proxy.url())).value(), true);
  const auto t0 = Clock::now();
  auto a = c->answer(chat("What is 2 + 3?"));
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_LT(ms_since(t0), 1000);
  EXPECT_EQ(a->tier, "teacher");
  EXPECT_EQ(proxy.requests(), 1);
  EXPECT_NE(a->tier_errors[0].find("HTTP 500: injected failure"), std::string::npos)
      << a->tier_errors[0];
  EXPECT_NE(a->tier_errors[0].find("no time left to retry"), std::string::npos) << a->tier_errors[0];
  EXPECT_TRUE(nothing_left_running());
}

TEST_F(RemoteTierTest, ATrickleWithoutATokenHitsTheFirstTokenTimeout) {
  FaultProxy proxy(upstream_->port());
  proxy.set(FaultProxy::Mode::kTrickleBytes);
  auto c = cascade(RemoteTier::create(remote_config(proxy.url())).value(), true);
  const auto t0 = Clock::now();
  auto a = c->answer(chat("What is 2 + 3?"));
  const double ms = ms_since(t0);
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_EQ(a->tier, "teacher");
  EXPECT_GE(ms, 650);
  EXPECT_LT(ms, 1500);
  EXPECT_TRUE(nothing_left_running());
}

TEST_F(RemoteTierTest, SlowTokensPastTheTotalTimeoutEndWithATimeout) {
  FaultProxy proxy(upstream_->port());
  proxy.set(FaultProxy::Mode::kSlowEvents);
  TierConfig rc = remote_config(proxy.url());
  rc.total_timeout_ms = 700;
  auto c = cascade(RemoteTier::create(rc).value(), /*fallback=*/false);
  const auto t0 = Clock::now();
  CascadeSink sink;
  std::promise<Result<CascadeAnswer>> done;
  int tokens = 0;
  sink.on_token = [&](const AnswerToken&) { return ++tokens > 0; };
  sink.on_done = [&](Result<CascadeAnswer> r) { done.set_value(std::move(r)); };
  auto run = c->start(chat(kLongPrompt), std::move(sink));
  auto result = done.get_future().get();
  ASSERT_FALSE(result.is_ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kDeadlineExceeded) << result.status().to_string();
  EXPECT_NE(result.status().message().find("total_timeout_ms = 700 ms"), std::string::npos);
  EXPECT_GT(tokens, 0);
  EXPECT_GE(ms_since(t0), 700);
  EXPECT_LT(ms_since(t0), 1200);
  EXPECT_TRUE(nothing_left_running());
}

TEST_F(RemoteTierTest, TheLastTiersFailureIsTheRequestsError) {
  auto remote = RemoteTier::create(remote_config("http://127.0.0.1:" + std::to_string(test::free_port())));
  auto c = cascade(std::move(remote).value(), /*fallback=*/false);
  auto a = c->answer(chat("What is 2 + 3?"));
  ASSERT_FALSE(a.is_ok());
  EXPECT_EQ(a.status().code(), ErrorCode::kBadGateway);
  EXPECT_TRUE(nothing_left_running());
}

TEST_F(RemoteTierTest, CancellingClosesTheConnectionAtOnce) {
  FaultProxy proxy(upstream_->port());
  proxy.set(FaultProxy::Mode::kNoFirstByte);
  TierConfig rc = remote_config(proxy.url());
  rc.first_token_timeout_ms = 5000;
  auto remote = RemoteTier::create(rc).value();
  remote_ = remote.get();
  std::promise<Result<TierAnswer>> done;
  TierSink sink;
  sink.on_done = [&](Result<TierAnswer> r) { done.set_value(std::move(r)); };
  auto call = remote->start(chat("What is 2 + 3?"), std::move(sink));
  ASSERT_TRUE(call.is_ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto t0 = Clock::now();
  (*call)->cancel();
  auto r = done.get_future().get();
  EXPECT_LT(ms_since(t0), 200);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kCancelled);
  EXPECT_TRUE(nothing_left_running());
  EXPECT_EQ(remote->health().failures, 0);  // a cancellation is not the endpoint's failure
}

TEST_F(RemoteTierTest, TheCircuitBreakerSkipsAFailingEndpointThenProbesIt) {
  FaultProxy proxy(upstream_->port());
  proxy.set(FaultProxy::Mode::kStatus, 503, /*failures=*/2);
  TierConfig rc = remote_config(proxy.url());
  rc.max_retries = 0;
  rc.breaker_failures = 2;
  rc.breaker_cooldown_ms = 300;
  auto remote = RemoteTier::create(rc).value();
  for (int i = 0; i < 2; ++i) {
    auto a = remote->answer(chat("What is 2 + 3?"));
    ASSERT_FALSE(a.is_ok());
    EXPECT_EQ(a.status().code(), ErrorCode::kBadGateway);
  }
  EXPECT_FALSE(remote->health().available);
  EXPECT_EQ(remote->health().outages, 1);
  const auto t0 = Clock::now();
  auto skipped = remote->answer(chat("What is 2 + 3?"));
  EXPECT_LT(ms_since(t0), 20);
  ASSERT_FALSE(skipped.is_ok());
  EXPECT_EQ(skipped.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(skipped.status().message().find("circuit breaker open"), std::string::npos);
  EXPECT_EQ(proxy.requests(), 2);  // the skipped call never reached the endpoint
  std::this_thread::sleep_for(std::chrono::milliseconds(320));
  auto probe = remote->answer(chat("What is 2 + 3?"));
  ASSERT_TRUE(probe.is_ok()) << probe.status().to_string();
  EXPECT_TRUE(remote->health().available);
  EXPECT_EQ(remote->health().consecutive_failures, 0);
}

// Through a front `frugal serve`: the remote tier answers, its health is in /metrics, and a
// remote last tier that fails is a 502, then a fast 503 while its breaker is open.
TEST_F(RemoteTierTest, TheServerMapsRemoteFailuresAndReportsTierHealth) {
  auto front_config = [&](const std::string& name, const std::string& url) {
    const std::string path = dir_->file(name + ".toml");
    test::write_text(path, "[cascade]\nthreshold = 1.0\n"
                           "[[tier]]\nname = \"small\"\nkind = \"local\"\nmodel = \"" + kStudent +
                               "\"\nprice_in = 0.05\nprice_out = 0.1\n"
                               "[[tier]]\nname = \"remote\"\nkind = \"remote\"\nurl = \"" + url +
                               "\"\nremote_model = \"small\"\nprice_in = 1\nprice_out = 2\n"
                               "max_retries = 0\nbreaker_failures = 1\nbreaker_cooldown_ms = 60000\n");
    return path;
  };
  auto post = [](int port) {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(10, 0);
    return c.Post("/v1/chat/completions",
                  R"({"messages": [{"role": "user", "content": "What is 2 + 3?"}], "max_tokens": 8})",
                  "application/json");
  };
  auto metrics = [](int port) {
    httplib::Client c("127.0.0.1", port);
    auto r = c.Get("/metrics");
    return r ? r->body : std::string();
  };
  ServeProcess good(front_config("good", upstream_->url() + "/v1"), dir_->file("good.log"));
  ASSERT_TRUE(good.ready()) << good.log();
  auto ok = post(good.port());
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
  EXPECT_EQ(ok->get_header_value("x-frugal-tier"), "remote");
  // usage counts the endpoint's tokens (its own usage), not the stream's text chunks.
  httplib::Client direct("127.0.0.1", upstream_->port());
  auto d = direct.Post("/v1/chat/completions",
                       R"({"messages": [{"role": "user", "content": "What is 2 + 3?"}], "max_tokens": 8})",
                       "application/json");
  ASSERT_TRUE(d);
  EXPECT_EQ(nlohmann::json::parse(ok->body)["usage"]["completion_tokens"],
            nlohmann::json::parse(d->body)["usage"]["completion_tokens"])
      << ok->body << "\n" << d->body;
  EXPECT_NE(metrics(good.port()).find("frugal_tier_available{tier=\"remote\"} 1"), std::string::npos);

  ServeProcess bad(front_config("bad", "http://127.0.0.1:" + std::to_string(test::free_port()) + "/v1"),
                   dir_->file("bad.log"));
  ASSERT_TRUE(bad.ready()) << bad.log();
  auto refused = post(bad.port());
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 502) << refused->body;
  EXPECT_NE(refused->body.find("\"bad_gateway\""), std::string::npos) << refused->body;
  const auto t0 = Clock::now();
  auto skipped = post(bad.port());
  ASSERT_TRUE(skipped);
  EXPECT_EQ(skipped->status, 503) << skipped->body;
  EXPECT_NE(skipped->body.find("circuit breaker open"), std::string::npos) << skipped->body;
  EXPECT_LT(ms_since(t0), 500);
  const std::string m = metrics(bad.port());
  EXPECT_NE(m.find("frugal_tier_available{tier=\"remote\"} 0"), std::string::npos) << m;
  EXPECT_NE(m.find("frugal_tier_outages_total{tier=\"remote\"} 1"), std::string::npos) << m;
}

// A remote last tier that never sends a first token: the client gets a 504 naming the timeout
// soon after first_token_timeout_ms, streamed or not — never a hang.
TEST_F(RemoteTierTest, TheServerAnswers504WhenARemoteLastTierTimesOut) {
  FaultProxy proxy(upstream_->port());
  proxy.set(FaultProxy::Mode::kNoFirstByte);
  const std::string path = dir_->file("timeout.toml");
  test::write_text(path, "[[tier]]\nname = \"remote\"\nkind = \"remote\"\nurl = \"" + proxy.url() +
                             "\"\nremote_model = \"small\"\nprice_in = 1\nprice_out = 2\n"
                             "max_retries = 0\nfirst_token_timeout_ms = 300\n");
  ServeProcess front(path, dir_->file("timeout.log"));
  ASSERT_TRUE(front.ready()) << front.log();
  httplib::Client c("127.0.0.1", front.port());
  c.set_read_timeout(10, 0);
  auto t0 = Clock::now();
  auto r = c.Post("/v1/chat/completions",
                  R"({"messages": [{"role": "user", "content": "What is 2 + 3?"}], "max_tokens": 8})",
                  "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 504) << r->body;
  EXPECT_NE(r->body.find("\"timeout\""), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("first_token_timeout_ms = 300 ms"), std::string::npos) << r->body;
  EXPECT_GE(ms_since(t0), 300);
  EXPECT_LT(ms_since(t0), 1500);
  // Streamed: nothing was sent yet, so the status is still a 504.
  t0 = Clock::now();
  auto s = c.Post("/v1/chat/completions",
                  R"({"messages": [{"role": "user", "content": "What is 2 + 3?"}], "max_tokens": 8,)"
                  R"( "stream": true})",
                  "application/json");
  ASSERT_TRUE(s);
  EXPECT_LT(ms_since(t0), 1500);
  EXPECT_NE(s->body.find("first_token_timeout_ms"), std::string::npos) << s->status << " " << s->body;
}

// llama.cpp's llama-server as the endpoint, when it is built (bench/build_llamacpp.sh, or
// LLAMA_SERVER names it): its stream, logprobs and usage read as the same model run here.
TEST_F(RemoteTierTest, LlamaServerServingTheTeacherGivesTheLocalTeachersAnswer) {
  const char* env = std::getenv("LLAMA_SERVER");
  const std::string bin = env != nullptr ? env : "/work/peer/llama.cpp-build/bin/llama-server";
  if (access(bin.c_str(), X_OK) != 0) GTEST_SKIP() << "no llama-server at " << bin;
  const int port = test::free_port();
  test::ChildProcess server({bin, "-m", kTeacher, "--host", "127.0.0.1", "--port",
                             std::to_string(port), "-t", "1", "-np", "1", "-c", "1024", "--jinja",
                             "--no-webui"},
                            dir_->file("llama-server.log"));
  httplib::Client probe("127.0.0.1", port);
  bool up = false;
  for (int i = 0; i < 300 && !up; ++i) {
    auto h = probe.Get("/health");
    up = h && h->status == 200;
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(up) << server.log();
  TierConfig c = remote_config("http://127.0.0.1:" + std::to_string(port) + "/v1");
  c.logprobs = true;
  c.first_token_timeout_ms = 5000;
  c.total_timeout_ms = 10000;
  auto remote = RemoteTier::create(c).value();
  remote_ = remote.get();
  for (const char* prompt : {"What is 2 + 3?", "Hal likes red. What color does Hal like?"}) {
    const TierRequest r = chat(prompt);
    auto a = remote->answer(r);
    ASSERT_TRUE(a.is_ok()) << a.status().to_string();
    auto local = teacher_->answer(r);
    ASSERT_TRUE(local.is_ok());
    EXPECT_EQ(a->text, local->text) << prompt;
    EXPECT_EQ(a->finish, FinishReason::kStop);
    EXPECT_EQ(a->tokens_in, local->tokens_in) << "the same chat template, rendered by each";
    ASSERT_FALSE(a->tokens.empty());
    for (size_t i = 0; i < a->tokens.size() && i < local->tokens.size(); ++i) {
      EXPECT_NEAR(a->tokens[i].logprob, local->tokens[i].logprob, 0.05) << prompt << " token " << i;
      ASSERT_EQ(a->tokens[i].top.size(), 5u);
      EXPECT_EQ(a->tokens[i].top[0].piece, local->tokens[i].top[0].piece);
    }
  }
  EXPECT_TRUE(nothing_left_running());
}

// ---------------------------------------------------------------------------- pieces

TEST(RemoteProtocol, SseEventsSurviveAnyCutOfTheBytes) {
  const std::string stream =
      ": keep-alive\n\ndata: {\"a\":1}\r\n\r\ndata: line1\ndata: line2\n\nevent: x\ndata: [DONE]\n\n";
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    SseReader sse;
    std::vector<std::string> ev;
    sse.feed(std::string_view(stream).substr(0, cut), &ev);
    sse.feed(std::string_view(stream).substr(cut), &ev);
    ASSERT_EQ(ev.size(), 3u) << cut;
    EXPECT_EQ(ev[0], "{\"a\":1}");
    EXPECT_EQ(ev[1], "line1\nline2");
    EXPECT_EQ(ev[2], "[DONE]");
  }
}

TEST(RemoteProtocol, ChunksBecomeTokensAndErrorsAreBadGateways) {
  StreamState st;
  std::vector<AnswerToken> t;
  ASSERT_TRUE(parse_stream_chunk(R"({"choices":[{"delta":{"role":"assistant","content":"Hi"},)"
                                 R"("logprobs":{"content":[{"token":"H","logprob":-0.5,"top_logprobs":)"
                                 R"([{"token":"H","logprob":-0.5},{"token":"Y","logprob":-1}]},)"
                                 R"({"token":"i","logprob":-0.1,"top_logprobs":[]}]},"finish_reason":null}]})",
                                 &st, &t)
                  .is_ok());
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].piece, "H");
  EXPECT_EQ(t[0].text, "");
  EXPECT_EQ(t[1].text, "Hi");  // the chunk's text rides on its last token
  EXPECT_FLOAT_EQ(t[0].logprob, -0.5f);
  ASSERT_EQ(t[0].top.size(), 2u);
  EXPECT_EQ(t[0].top[1].piece, "Y");
  ASSERT_TRUE(parse_stream_chunk(R"({"choices":[{"delta":{},"finish_reason":"length"}]})", &st, &t).is_ok());
  EXPECT_TRUE(st.finished);
  EXPECT_EQ(st.finish, FinishReason::kLength);
  ASSERT_TRUE(parse_stream_chunk(R"({"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2,)"
                                 R"("prompt_tokens_details":{"cached_tokens":3}}})",
                                 &st, &t)
                  .is_ok());
  EXPECT_EQ(st.prompt_tokens, 7);
  EXPECT_EQ(st.cached_tokens, 3);
  Status e = parse_stream_chunk(R"({"error":{"message":"model overloaded"}})", &st, &t);
  EXPECT_EQ(e.code(), ErrorCode::kBadGateway);
  EXPECT_NE(e.message().find("model overloaded"), std::string::npos);
  EXPECT_EQ(parse_stream_chunk("{oops", &st, &t).code(), ErrorCode::kBadGateway);
  EXPECT_EQ(parse_stream_chunk(R"({"choices":[{"delta":{"content":5}}]})", &st, &t).code(),
            ErrorCode::kBadGateway);
}

TEST(RemoteProtocol, TheRequestCarriesEverySamplingFieldAndNothingUnasked) {
  TierConfig c;
  c.name = "r";
  c.kind = TierKind::kRemote;
  c.url = "http://127.0.0.1:1/v1";
  c.remote_model = "big";
  auto plain = RemoteTier::create(c).value();
  TierRequest r = chat("hi", 7);
  nlohmann::json j = nlohmann::json::parse(plain->request_body(r));
  EXPECT_EQ(j["model"], "big");
  EXPECT_EQ(j["messages"][0]["content"], "hi");
  EXPECT_EQ(j["max_tokens"], 7);
  EXPECT_EQ(j["temperature"], 0.0);
  EXPECT_TRUE(j["stream"].get<bool>());
  EXPECT_TRUE(j["stream_options"]["include_usage"].get<bool>());
  // Hosted APIs refuse fields they do not know: none is sent that the request did not ask.
  for (const char* absent : {"seed", "stop", "logprobs", "top_logprobs", "ignore_eos"})
    EXPECT_FALSE(j.contains(absent)) << absent;
  r.seed = 9;
  r.seed_set = true;
  r.temperature = 0.5f;
  r.stop = {"\n"};
  r.ignore_eos = true;  // a load test's: the endpoint must generate max_tokens as well
  r.n_logprobs = 3;
  c.logprobs = true;
  j = nlohmann::json::parse(RemoteTier::create(c).value()->request_body(r));
  EXPECT_EQ(j["seed"], 9);
  EXPECT_EQ(j["stop"][0], "\n");
  EXPECT_TRUE(j["ignore_eos"].get<bool>());
  EXPECT_TRUE(j["logprobs"].get<bool>());
  EXPECT_EQ(j["top_logprobs"], 3);
  TierRequest raw;
  raw.raw_prompt = "Once";
  j = nlohmann::json::parse(RemoteTier::create(c).value()->request_body(raw));
  EXPECT_EQ(j["prompt"], "Once");
  EXPECT_EQ(j["logprobs"], 5);  // /completions takes the count itself
  EXPECT_FALSE(j.contains("messages"));
}

TEST(RemoteProtocol, UrlsAndKeysAreCheckedWhenTheTierIsMade) {
  auto u = parse_remote_url("https://api.example.com:8443/v1/chat/completions");
  ASSERT_TRUE(u.is_ok());
  EXPECT_EQ(u->origin, "https://api.example.com:8443");
  EXPECT_EQ(u->base_path, "/v1");
  EXPECT_TRUE(u->https);
  EXPECT_FALSE(parse_remote_url("ftp://x").is_ok());
  EXPECT_FALSE(parse_remote_url("http://h:99999/v1").is_ok());
  TierConfig c;
  c.name = "r";
  c.kind = TierKind::kRemote;
  c.url = "http://127.0.0.1:1/v1";
  c.api_key_env = "FRUGAL_TEST_SURELY_UNSET_KEY";
  auto r = RemoteTier::create(c);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("FRUGAL_TEST_SURELY_UNSET_KEY"), std::string::npos);
}

// HTTPS against a local TLS server with a self-signed certificate: trusted through ca_file it
// answers; without, the error names the certificate and the fix.
TEST(RemoteTls, HttpsWorksWithTheCaFileAndABadCertificateFailsClearly) {
  TempDir dir("tls");
  const std::string key = dir.file("key.pem"), cert = dir.file("cert.pem");
  const std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -keyout " + key + " -out " +
                          cert + " -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 "
                          ">/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  httplib::SSLServer tls(cert.c_str(), key.c_str());
  ASSERT_TRUE(tls.is_valid());
  tls.Post("/v1/chat/completions", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(
        "data: {\"choices\":[{\"delta\":{\"content\":\"secure\"},\"finish_reason\":\"stop\"}]}\n\n"
        "data: [DONE]\n\n",
        "text/event-stream");
  });
  const int port = tls.bind_to_any_port("127.0.0.1");
  std::thread t([&] { tls.listen_after_bind(); });
  TierConfig c;
  c.name = "tls";
  c.kind = TierKind::kRemote;
  c.url = "https://127.0.0.1:" + std::to_string(port) + "/v1";
  c.max_retries = 0;
  c.ca_file = cert;
  auto ok = RemoteTier::create(c).value()->answer(chat("hi"));
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  EXPECT_EQ(ok->text, "secure");
  c.ca_file.clear();
  auto bad = RemoteTier::create(c).value()->answer(chat("hi"));
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kBadGateway);
  EXPECT_NE(bad.status().message().find("certificate"), std::string::npos) << bad.status().message();
  EXPECT_NE(bad.status().message().find("ca_file"), std::string::npos) << bad.status().message();
  tls.stop();
  t.join();
}

}  // namespace
}  // namespace frugal::cascade
