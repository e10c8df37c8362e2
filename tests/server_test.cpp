// The server end to end over HTTP, as a client sees it: every bad input's status and OpenAI
// error body, the decision headers and the frugal object, usage and cached tokens, the ledger,
// /metrics through promtool, 64 concurrent streaming clients on the bundled cascade, clients
// that leave mid-answer (cancelled, nothing leaked), 429 with Retry-After, a mid-stream
// failure's error event, draining; and `frugal serve` as a process under SIGTERM.
//
// Most servers run in this process (server::Server on a free loopback port, the bundled
// frugal.toml and models/); a few use scripted tiers of the test's own (ServerOptions::
// make_cascade) where timing must not depend on the machine's speed.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cascade/cascade.h"
#include "cascade/config.h"
#include "cascade/local_tier.h"
#include "server/server.h"
#include "live_server.h"
#include "test_shell.h"

extern char** environ;

namespace frugal::server {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

const std::string kSource = FRUGAL_SOURCE_DIR;

fs::path temp_dir(const std::string& name) { return test::temp_dir("server_test", name); }

// The bundled cascade: the repository's frugal.toml (cache, the student, the teacher).
cascade::CascadeConfig bundled_config() {
  auto c = cascade::load_cascade_config(kSource + "/frugal.toml");
  EXPECT_TRUE(c.is_ok()) << c.status().to_string();
  return c.is_ok() ? *c : cascade::CascadeConfig{};
}

// The first `n` prompts of the held-out task items (a mix the student answers and escalates).
std::vector<std::string> heldout_prompts(size_t n) {
  std::ifstream in(kSource + "/data/heldout.jsonl");
  std::vector<std::string> out;
  std::string line;
  while (out.size() < n && std::getline(in, line)) {
    out.push_back(json::parse(line)["messages"][0]["content"].get<std::string>());
  }
  EXPECT_EQ(out.size(), n);
  return out;
}

// ---------------------------------------------------------------------------- a live server

using test::LiveServer;

ServerOptions bundled_options() {
  ServerOptions o;
  o.config = bundled_config();
  return o;
}

// ---------------------------------------------------------------------------- requests

using test::get;
using test::post;
using test::Reply;

json chat(const std::string& content, int max_tokens = 64) {
  return {{"model", "frugal"},
          {"messages", json::array({{{"role", "user"}, {"content", content}}})},
          {"max_tokens", max_tokens}};
}

// A stream's events: the chunks in order, whether it ended with [DONE], and any error event.
struct Stream {
  std::vector<json> chunks;
  bool done = false;
  json error;  // the error event's {"error": ...}; null when none
  std::string text;  // the answer: delta.content (chat) or text (completions), concatenated
  std::string finish_reason;
  json frugal;  // the frugal object of the finishing chunk
  json usage;   // the usage chunk's usage (include_usage)
};

Stream parse_stream(const std::string& body) {
  Stream s;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) end = body.size();
    const std::string event = body.substr(pos, end - pos);
    pos = end + 2;
    if (event.rfind("data: ", 0) != 0) continue;
    const std::string data = event.substr(6);
    EXPECT_FALSE(s.done) << "an event after [DONE]: " << data;
    if (data == "[DONE]") {
      s.done = true;
      continue;
    }
    json j = json::parse(data, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "an event that is not JSON: " << data;
    if (j.contains("error")) {
      s.error = j;
      continue;
    }
    s.chunks.push_back(j);
    if (j.contains("usage")) s.usage = j["usage"];
    if (!j["choices"].empty()) {
      const json& c = j["choices"][0];
      if (c.contains("delta") && c["delta"].contains("content"))
        s.text += c["delta"]["content"].get<std::string>();
      if (c.contains("text")) s.text += c["text"].get<std::string>();
      if (!c["finish_reason"].is_null()) {
        s.finish_reason = c["finish_reason"].get<std::string>();
        s.frugal = j["frugal"];
      }
    }
  }
  return s;
}

// ---------------------------------------------------------------------------- raw sockets

// A raw HTTP/1.1 connection, for clients that leave in the middle of an answer.
int connect_loopback(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool send_request(int fd, const std::string& path, const std::string& body) {
  const std::string text = "POST " + path +
                           " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                           "Content-Length: " +
                           std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  size_t sent = 0;
  while (sent < text.size()) {
    const ssize_t n = ::send(fd, text.data() + sent, text.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

// Reads until `marker` has arrived (true) or the peer closed or `timeout` passed (false).
bool read_until(int fd, const std::string& marker, std::chrono::milliseconds timeout,
                std::string* got) {
  const auto until = Clock::now() + timeout;
  char buf[4096];
  while (got->find(marker) == std::string::npos) {
    const int left = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count());
    if (left <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, left) <= 0) return false;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return false;
    got->append(buf, static_cast<size_t>(n));
  }
  return true;
}

int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// ---------------------------------------------------------------------------- metrics text

// The value of one sample of the exposition text ("name{labels}" exactly as rendered); NaN
// when absent.
double sample(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return std::nan("");
}

// Polls `pred` every 10 ms until it holds or `timeout` passes.
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 20s) {
  const auto until = Clock::now() + timeout;
  while (!pred()) {
    if (Clock::now() > until) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

// Every local tier's scheduler is idle and its KV pool whole, as /metrics and the scheduler
// itself report it.
void expect_nothing_leaked(LiveServer& s) {
  auto c = s.client();
  for (const std::string tier : {"small", "large"}) {
    const std::string l = "{tier=\"" + tier + "\"}";
    EXPECT_TRUE(eventually([&] {
      const std::string m = get(*c, "/metrics").body;
      return sample(m, "frugal_running_sequences" + l) == 0 &&
             sample(m, "frugal_queue_waiting" + l) == 0 &&
             sample(m, "frugal_kv_blocks_used" + l) == 0;
    })) << get(*c, "/metrics").body;
  }
  for (const auto& t : s.server().cascade()->model_tiers()) {
    auto* local = dynamic_cast<cascade::LocalTier*>(t.get());
    ASSERT_NE(local, nullptr);
    EXPECT_TRUE(local->scheduler().pool_is_whole()) << t->name();
  }
}

// ---------------------------------------------------------------------------- scripted tiers

// A model tier of the test's own: answers " w0 w1 ..." one token every `gap` on a thread of
// its own, ends with an internal error after `fail_after` tokens when that is >= 0, and counts
// the cancellations it honoured.
class ScriptedTier : public cascade::Tier {
 public:
  struct Script {
    int tokens = 20;
    std::chrono::milliseconds gap{0};
    int fail_after = -1;
  };
  ScriptedTier(const cascade::TierConfig& config, Script script)
      : Tier(config), script_(script) {}
  ~ScriptedTier() override {
    std::lock_guard<std::mutex> lock(mu_);
    for (std::thread& t : threads_) t.join();
  }

  Result<std::unique_ptr<cascade::TierCall>> start(const cascade::TierRequest& request,
                                                   cascade::TierSink sink) override {
    auto cancelled = std::make_shared<std::atomic<bool>>(false);
    const int n = static_cast<int>(std::min<int64_t>(script_.tokens, request.max_tokens));
    std::lock_guard<std::mutex> lock(mu_);
    threads_.emplace_back([this, cancelled, n, sink = std::move(sink)] {
      cascade::TierAnswer a;
      a.tokens_in = 7;
      for (int i = 0; i < n; ++i) {
        std::this_thread::sleep_for(script_.gap);
        if (cancelled->load()) {
          cancels_++;
          sink.on_done(frugal::cancelled("the call was cancelled"));
          return;
        }
        if (i == script_.fail_after) {
          sink.on_done(internal_error("the scripted tier broke after " + std::to_string(i) +
                                " tokens"));
          return;
        }
        cascade::AnswerToken t;
        t.id = i;
        t.piece = " w" + std::to_string(i);
        t.text = t.piece;
        t.logprob = -0.25f;
        t.top = {{i, t.piece, -0.25f}, {i + 1, "x", -2.0f}};
        a.text += t.text;
        a.tokens.push_back(t);
        if (sink.on_token && !sink.on_token(t)) {
          a.interrupted = true;
          break;
        }
      }
      a.tokens_out = static_cast<int64_t>(a.tokens.size());
      a.finish = FinishReason::kLength;
      a.cost = cost(a.tokens_in, a.tokens_out);
      sink.on_done(std::move(a));
    });
    struct Call : cascade::TierCall {
      std::shared_ptr<std::atomic<bool>> flag;
      void cancel() override { flag->store(true); }
    };
    auto call = std::make_unique<Call>();
    call->flag = cancelled;
    return std::unique_ptr<cascade::TierCall>(std::move(call));
  }

  int cancels() const { return cancels_.load(); }

 private:
  Script script_;
  std::mutex mu_;
  std::vector<std::thread> threads_;
  std::atomic<int> cancels_{0};
};

// A one-tier cascade on a ScriptedTier named "scripted"; `*tier` is set once serve() built it.
ServerOptions scripted_options(ScriptedTier::Script script, ScriptedTier** tier) {
  auto config = cascade::parse_cascade_config(
      "[[tier]]\nname = \"scripted\"\nkind = \"local\"\nmodel = \"none.gguf\"\n"
      "price_in = 1.0\nprice_out = 2.0\n",
      "scripted.toml", "/");
  EXPECT_TRUE(config.is_ok()) << config.status().to_string();
  ServerOptions o;
  o.config = *config;
  o.make_cascade = [script, tier](const cascade::CascadeConfig& c, const cascade::CascadeOptions&)
      -> Result<std::unique_ptr<cascade::Cascade>> {
    auto t = std::make_unique<ScriptedTier>(*c.model_tiers()[0], script);
    *tier = t.get();
    std::vector<std::unique_ptr<cascade::Tier>> tiers;
    tiers.push_back(std::move(t));
    return std::make_unique<cascade::Cascade>(c, nullptr, std::move(tiers));
  };
  return o;
}

// ---------------------------------------------------------------------------- the shared server

// One server on the bundled cascade, with a ledger, for the tests that need no settings of
// their own.
class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(temp_dir("shared"));
    ServerOptions o = bundled_options();
    o.config.server.ledger = (*dir_ / "ledger.jsonl").string();
    server_ = new LiveServer(std::move(o));
  }
  static void TearDownTestSuite() {
    delete server_;
    fs::remove_all(*dir_);
    delete dir_;
  }
  static std::unique_ptr<httplib::Client> client() { return server_->client(); }
  static std::vector<json> ledger() {
    std::ifstream in(*dir_ / "ledger.jsonl");
    std::vector<json> lines;
    std::string line;
    while (std::getline(in, line)) {
      json j = json::parse(line, nullptr, false);
      EXPECT_FALSE(j.is_discarded()) << "a ledger line that is not JSON: " << line;
      lines.push_back(j);
    }
    return lines;
  }

  static fs::path* dir_;
  static LiveServer* server_;
};
fs::path* ServerTest::dir_ = nullptr;
LiveServer* ServerTest::server_ = nullptr;

// Checks that `r` is an OpenAI error: the status, {"error": {message, type, param, code}} with
// exactly those keys, the type, param and code (nullptr: JSON null), and a message containing
// `says`.
void expect_error(const Reply& r, int status, const char* type, const char* param,
                  const char* code, const std::string& says, const std::string& what) {
  SCOPED_TRACE(what);
  EXPECT_EQ(r.status, status) << r.body;
  EXPECT_NE(r.header("Content-Type").find("application/json"), std::string::npos);
  const json j = r.json_body();
  ASSERT_TRUE(j.is_object() && j.size() == 1 && j.contains("error")) << r.body;
  const json& e = j["error"];
  ASSERT_TRUE(e.is_object()) << r.body;
  EXPECT_EQ(e.size(), 4u) << r.body;
  ASSERT_TRUE(e.contains("message") && e["message"].is_string()) << r.body;
  EXPECT_NE(e["message"].get<std::string>().find(says), std::string::npos) << r.body;
  EXPECT_EQ(e.value("type", ""), type) << r.body;
  if (param == nullptr) {
    EXPECT_TRUE(e.contains("param") && e["param"].is_null()) << r.body;
  } else {
    EXPECT_EQ(e.value("param", json(nullptr)), json(param)) << r.body;
  }
  if (code == nullptr) {
    EXPECT_TRUE(e.contains("code") && e["code"].is_null()) << r.body;
  } else {
    EXPECT_EQ(e.value("code", json(nullptr)), json(code)) << r.body;
  }
}

// ---------------------------------------------------------------------------- bad input

TEST_F(ServerTest, EveryBadInputGetsItsStatusAndAnOpenAiErrorBody) {
  const std::string kChat = "/v1/chat/completions", kComp = "/v1/completions";
  const std::string msgs = R"("messages": [{"role": "user", "content": "What is 2 + 3?"}])";
  auto with = [&](const std::string& fields) { return "{" + msgs + ", " + fields + "}"; };
  // A prompt longer than both tiers' 128-token context, under every size limit.
  std::string essay;
  for (int i = 0; i < 60; ++i) essay += "Sort these numbers: 4 9 1 7. ";
  const char* kInvalid = "invalid_request_error";
  struct Case {
    std::string what, path, body;
    int status;
    const char* type;
    const char* param;  // nullptr: null
    const char* code;   // nullptr: null
    std::string says;   // part of the message
  };
  const std::vector<Case> cases = {
      {"malformed JSON", kChat, R"({"messages": [)", 400, kInvalid, nullptr, nullptr, "not valid JSON"},
      {"body not an object", kChat, R"([1, 2])", 400, kInvalid, nullptr, nullptr, "JSON object"},
      {"model not a string", kChat, with(R"("model": 5)"), 400, kInvalid, "model", nullptr, "'model' must be a string"},
      {"unknown model", kChat, with(R"("model": "gpt-4o")"), 404, kInvalid, "model", "model_not_found", "'gpt-4o' does not exist"},
      {"no messages", kChat, R"({"model": "frugal"})", 400, kInvalid, "messages", nullptr, "'messages' is required"},
      {"messages not an array", kChat, R"({"messages": "hi"})", 400, kInvalid, "messages", nullptr, "must be an array"},
      {"empty messages", kChat, R"({"messages": []})", 400, kInvalid, "messages", nullptr, "empty"},
      {"message not an object", kChat, R"({"messages": ["hi"]})", 400, kInvalid, "messages[0]", nullptr, "must be an object"},
      {"role not a string", kChat, R"({"messages": [{"role": 1, "content": "hi"}]})", 400, kInvalid, "messages[0].role", nullptr, "must be a string"},
      {"bad role", kChat, R"({"messages": [{"role": "wizard", "content": "hi"}]})", 400, kInvalid, "messages[0].role", nullptr, "'wizard'"},
      {"tool role", kChat, R"({"messages": [{"role": "tool", "content": "hi"}]})", 400, kInvalid, "messages[0].role", nullptr, "use system"},
      {"content a number", kChat, R"({"messages": [{"role": "user", "content": 5}]})", 400, kInvalid, "messages[0].content", nullptr, "not an integer"},
      {"image content", kChat, R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]})", 400, kInvalid, "messages[0].content[0].type", nullptr, "text only"},
      {"max_tokens a string", kChat, with(R"("max_tokens": "10")"), 400, kInvalid, "max_tokens", nullptr, "must be an integer, not a string"},
      {"max_tokens 0", kChat, with(R"("max_tokens": 0)"), 400, kInvalid, "max_tokens", nullptr, "must be from 1"},
      {"max_tokens fractional", kChat, with(R"("max_tokens": 2.5)"), 400, kInvalid, "max_tokens", nullptr, "not a number"},
      {"max_completion_tokens negative", kChat, with(R"("max_completion_tokens": -1)"), 400, kInvalid, "max_completion_tokens", nullptr, "must be from 1"},
      {"temperature a string", kChat, with(R"("temperature": "hot")"), 400, kInvalid, "temperature", nullptr, "must be a number"},
      {"temperature above 2", kChat, with(R"("temperature": 2.5)"), 400, kInvalid, "temperature", nullptr, "from 0 to 2"},
      {"temperature negative", kChat, with(R"("temperature": -0.1)"), 400, kInvalid, "temperature", nullptr, "from 0 to 2"},
      {"top_p above 1", kChat, with(R"("top_p": 1.5)"), 400, kInvalid, "top_p", nullptr, "from 0 to 1"},
      {"top_p 0", kChat, with(R"("top_p": 0)"), 400, kInvalid, "top_p", nullptr, "above 0"},
      {"seed fractional", kChat, with(R"("seed": 1.5)"), 400, kInvalid, "seed", nullptr, "must be an integer"},
      {"stop a number", kChat, with(R"("stop": 5)"), 400, kInvalid, "stop", nullptr, "string or an array"},
      {"stop of numbers", kChat, with(R"("stop": [1])"), 400, kInvalid, "stop", nullptr, "array of strings"},
      {"n = 2", kChat, with(R"("n": 2)"), 400, kInvalid, "n", nullptr, "one choice per request"},
      {"n a string", kChat, with(R"("n": "1")"), 400, kInvalid, "n", nullptr, "must be an integer"},
      {"logprobs a string", kChat, with(R"("logprobs": "yes")"), 400, kInvalid, "logprobs", nullptr, "true or false"},
      {"top_logprobs without logprobs", kChat, with(R"("top_logprobs": 3)"), 400, kInvalid, "top_logprobs", nullptr, "needs 'logprobs': true"},
      {"top_logprobs 21", kChat, with(R"("logprobs": true, "top_logprobs": 21)"), 400, kInvalid, "top_logprobs", nullptr, "from 0 to 20"},
      {"stream a string", kChat, with(R"("stream": "true")"), 400, kInvalid, "stream", nullptr, "true or false"},
      {"stream_options a number", kChat, with(R"("stream": true, "stream_options": 1)"), 400, kInvalid, "stream_options", nullptr, "must be an object"},
      {"include_usage a string", kChat, with(R"("stream": true, "stream_options": {"include_usage": "yes"})"), 400, kInvalid, "stream_options.include_usage", nullptr, "true or false"},
      {"user a number", kChat, with(R"("user": 42)"), 400, kInvalid, "user", nullptr, "must be a string"},
      {"prompt beyond every context", kChat, json{{"messages", {{{"role", "user"}, {"content", essay}}}}}.dump(), 400, kInvalid, "messages", "context_length_exceeded", "context"},
      {"streamed prompt beyond every context", kChat, json{{"stream", true}, {"messages", {{{"role", "user"}, {"content", essay}}}}}.dump(), 400, kInvalid, "messages", "context_length_exceeded", "context"},
      {"completion: no prompt", kComp, R"({"max_tokens": 5})", 400, kInvalid, "prompt", nullptr, "'prompt' is required"},
      {"completion: prompt a number", kComp, R"({"prompt": 5})", 400, kInvalid, "prompt", nullptr, "must be a string"},
      {"completion: several prompts", kComp, R"({"prompt": ["a", "b"]})", 400, kInvalid, "prompt", nullptr, "one request per prompt"},
      {"completion: token ids", kComp, R"({"prompt": [1, 2, 3]})", 400, kInvalid, "prompt", nullptr, "not supported"},
      {"completion: empty prompt", kComp, R"({"prompt": ""})", 400, kInvalid, "prompt", nullptr, "empty"},
      {"completion: echo", kComp, R"({"prompt": "a", "echo": true})", 400, kInvalid, "echo", nullptr, "not supported"},
      {"completion: logprobs a boolean", kComp, R"({"prompt": "a", "logprobs": true})", 400, kInvalid, "logprobs", nullptr, "must be an integer"},
      {"completion: logprobs 21", kComp, R"({"prompt": "a", "logprobs": 21})", 400, kInvalid, "logprobs", nullptr, "from 0 to 20"},
      {"completion: prompt beyond every context", kComp, json{{"prompt", essay}}.dump(), 400, kInvalid, "prompt", "context_length_exceeded", "context"},
      {"completion: unknown model", kComp, R"({"prompt": "a", "model": "nope"})", 404, kInvalid, "model", "model_not_found", "GET /v1/models"},
  };
  auto c = client();
  for (const Case& k : cases) {
    expect_error(post(*c, k.path, k.body), k.status, k.type, k.param, k.code, k.says, k.what);
  }
}

TEST_F(ServerTest, OversizedBodiesAndPromptsAreRefusedWithOpenAiBodies) {
  auto c = client();
  // Over [server] max_body_bytes (1 MiB by default): 413 before the body is parsed.
  const std::string big(int64_t{1} << 21, 'a');
  expect_error(post(*c, "/v1/chat/completions", json(chat(big)).dump()), 413,
               "invalid_request_error", nullptr, nullptr, "larger than 1048576 bytes", "413");
  // Under the body limit, over max_prompt_chars (256 Ki characters): 400 naming the field.
  const std::string long_prompt(300 * 1024, 'a');
  expect_error(post(*c, "/v1/completions", json{{"prompt", long_prompt}}.dump()), 400,
               "invalid_request_error", "prompt", nullptr, "at most 262144", "max_prompt_chars");
}

TEST_F(ServerTest, UnknownPathsGetA404Body) {
  auto c = client();
  expect_error(get(*c, "/v1/engines"), 404, "invalid_request_error", nullptr, nullptr,
               "no route GET /v1/engines", "GET unknown");
  expect_error(post(*c, "/v1/embeddings", "{}"), 404, "invalid_request_error", nullptr, nullptr,
               "POST /v1/chat/completions", "POST unknown");
}

TEST_F(ServerTest, UnknownFieldsAreIgnored) {
  auto c = client();
  json body = chat("What is 4 + 4?", 16);
  body["frobnicate"] = {{"level", 11}};
  body["tools"] = json::array();
  body["response_format"] = {{"type", "text"}};
  body["metadata"] = {{"trace", "abc"}};
  body["presence_penalty"] = 0;
  body["stream"] = nullptr;  // null is "not given"
  const Reply r = post(*c, "/v1/chat/completions", body.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json_body()["object"], "chat.completion");
}

// ---------------------------------------------------------------------------- what a response says

TEST_F(ServerTest, ResponsesCarryTheDecisionInHeadersAndTheFrugalObject) {
  auto c = client();
  for (const std::string prompt : {"What is 17 + 25?", "Sort 9 3 7 1 ascending."}) {
    SCOPED_TRACE(prompt);
    json body = chat(prompt);
    body["user"] = "alice";
    const Reply r = post(*c, "/v1/chat/completions", body.dump());
    ASSERT_EQ(r.status, 200) << r.body;
    const json j = r.json_body();
    EXPECT_EQ(j["object"], "chat.completion");
    EXPECT_EQ(j["model"], "frugal");
    EXPECT_EQ(j["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
    const json& choice = j["choices"][0];
    EXPECT_EQ(choice["message"]["role"], "assistant");
    EXPECT_FALSE(choice["message"]["content"].get<std::string>().empty());
    EXPECT_EQ(choice["finish_reason"], "stop");
    EXPECT_TRUE(choice["logprobs"].is_null());

    const json& f = j["frugal"];
    const std::string tier = f["tier"];
    ASSERT_TRUE(tier == "small" || tier == "large") << f;
    EXPECT_EQ(r.header("x-frugal-tier"), tier);
    // Tier 1 ran either way; its answer is scored unless the logprob floor stopped it early.
    if (f["escalated_early"].get<bool>()) {
      EXPECT_TRUE(f["score"].is_null()) << f;
      EXPECT_EQ(r.header("x-frugal-score"), "null");
    } else {
      ASSERT_TRUE(f["score"].is_number()) << f;
      EXPECT_NEAR(std::stod(r.header("x-frugal-score")), f["score"].get<double>(), 1e-6);
    }
    EXPECT_NEAR(std::stod(r.header("x-frugal-cost")), f["cost"].get<double>(), 1e-12);
    EXPECT_GT(f["cost"].get<double>(), 0.0);
    EXPECT_FALSE(f["cache_hit"].get<bool>());
    EXPECT_EQ(f["escalated"].get<bool>(), tier == "large");
    EXPECT_TRUE(f["escalated_early"].is_boolean());
    ASSERT_EQ(f["tiers"].size(), tier == "large" ? 2u : 1u) << f;
    EXPECT_EQ(f["tiers"][0]["tier"], "small");
    double sum = 0;
    for (const json& u : f["tiers"]) sum += u["cost"].get<double>();
    EXPECT_NEAR(sum, f["cost"].get<double>(), 1e-15);

    const json& u = j["usage"];
    EXPECT_GT(u["prompt_tokens"].get<int64_t>(), 0);
    EXPECT_GT(u["completion_tokens"].get<int64_t>(), 0);
    EXPECT_EQ(u["total_tokens"].get<int64_t>(),
              u["prompt_tokens"].get<int64_t>() + u["completion_tokens"].get<int64_t>());
    EXPECT_TRUE(u["prompt_tokens_details"]["cached_tokens"].is_number_integer());
  }
}

TEST_F(ServerTest, AStreamCarriesHeadersTheFrugalObjectAndUsageAtTheEnd) {
  auto c = client();
  for (const std::string prompt : {"What is 31 + 12?", "Reverse the word 'planet'."}) {
    SCOPED_TRACE(prompt);
    json body = chat(prompt);
    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};
    const Reply r = post(*c, "/v1/chat/completions", body.dump());
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_NE(r.header("Content-Type").find("text/event-stream"), std::string::npos);
    const Stream s = parse_stream(r.body);
    EXPECT_TRUE(s.done);
    EXPECT_TRUE(s.error.is_null()) << s.error;
    ASSERT_GE(s.chunks.size(), 3u);
    EXPECT_EQ(s.chunks[0]["object"], "chat.completion.chunk");
    EXPECT_EQ(s.chunks[0]["choices"][0]["delta"]["role"], "assistant");
    EXPECT_FALSE(s.text.empty());
    EXPECT_EQ(s.finish_reason, "stop");
    ASSERT_TRUE(s.frugal.is_object());
    EXPECT_EQ(r.header("x-frugal-tier"), s.frugal["tier"].get<std::string>());
    if (s.frugal["score"].is_null()) {
      EXPECT_EQ(r.header("x-frugal-score"), "null");
    } else {
      EXPECT_NEAR(std::stod(r.header("x-frugal-score")), s.frugal["score"].get<double>(), 1e-6);
    }
    // The cost is known only at the end: in the frugal object, not in a header.
    EXPECT_GT(s.frugal["cost"].get<double>(), 0);
    // The usage chunk comes last, with no choices.
    const json& last = s.chunks.back();
    EXPECT_TRUE(last["choices"].empty());
    EXPECT_EQ(last["usage"]["completion_tokens"].get<int64_t>() +
                  last["usage"]["prompt_tokens"].get<int64_t>(),
              last["usage"]["total_tokens"].get<int64_t>());
    // Same request, not streamed: the same answer (now from the response cache).
    body.erase("stream");
    body.erase("stream_options");
    const Reply again = post(*c, "/v1/chat/completions", body.dump());
    ASSERT_EQ(again.status, 200);
    EXPECT_EQ(again.json_body()["choices"][0]["message"]["content"], s.text);
  }
}

TEST_F(ServerTest, RepeatsAreServedByTheResponseCacheAndThePrefixCache) {
  auto c = client();
  // About 40 tokens: two full blocks of the prefix cache.
  const std::string prompt = "Hal likes red. Bo likes blue. Cy likes green. What color does Bo like?";
  const Reply first = post(*c, "/v1/chat/completions", chat(prompt, 32).dump());
  ASSERT_EQ(first.status, 200) << first.body;
  const json a = first.json_body();
  const std::string tier = a["frugal"]["tier"];
  const int64_t prompt_tokens = a["usage"]["prompt_tokens"];

  // The same request again: the response cache answers it whole, at no cost, and every prompt
  // token counts as cached.
  const Reply hit = post(*c, "/v1/chat/completions", chat(prompt, 32).dump());
  ASSERT_EQ(hit.status, 200);
  const json b = hit.json_body();
  EXPECT_EQ(b["choices"][0]["message"]["content"], a["choices"][0]["message"]["content"]);
  EXPECT_EQ(b["frugal"]["tier"], "cache");
  EXPECT_EQ(hit.header("x-frugal-tier"), "cache");
  EXPECT_TRUE(b["frugal"]["cache_hit"].get<bool>());
  EXPECT_EQ(b["frugal"]["cost"].get<double>(), 0.0);
  EXPECT_EQ(b["usage"]["prompt_tokens"], prompt_tokens);
  EXPECT_EQ(b["usage"]["prompt_tokens_details"]["cached_tokens"], prompt_tokens);

  // Another max_tokens is another cache key, so the models run again; the tier's prefix cache
  // still holds the prompt's full 16-token blocks.
  const Reply prefix = post(*c, "/v1/chat/completions", chat(prompt, 31).dump());
  ASSERT_EQ(prefix.status, 200);
  const json p = prefix.json_body();
  EXPECT_EQ(p["frugal"]["tier"], tier);
  EXPECT_FALSE(p["frugal"]["cache_hit"].get<bool>());
  const int64_t cached = p["usage"]["prompt_tokens_details"]["cached_tokens"];
  EXPECT_GE(cached, 16);
  EXPECT_LT(cached, prompt_tokens);
  EXPECT_EQ(cached % 16, 0);
}

TEST_F(ServerTest, LogprobsForBothEndpointsAndDirectTierCalls) {
  auto c = client();
  json body = chat("What is 6 + 7?");
  body["model"] = "small";
  body["logprobs"] = true;
  body["top_logprobs"] = 3;
  const Reply r = post(*c, "/v1/chat/completions", body.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = r.json_body();
  EXPECT_EQ(j["model"], "small");
  EXPECT_EQ(j["frugal"]["tier"], "small");
  EXPECT_EQ(r.header("x-frugal-tier"), "small");
  EXPECT_TRUE(j["frugal"]["score"].is_null());  // a direct call is not scored
  EXPECT_EQ(r.header("x-frugal-score"), "null");
  const json& content = j["choices"][0]["logprobs"]["content"];
  ASSERT_FALSE(content.empty());
  std::string text;
  for (const json& t : content) {
    EXPECT_LE(t["logprob"].get<double>(), 0.0);
    ASSERT_EQ(t["top_logprobs"].size(), 3u);
    EXPECT_GE(t["top_logprobs"][0]["logprob"].get<double>(),
              t["top_logprobs"][2]["logprob"].get<double>());
    std::string bytes;
    for (const json& b : t["bytes"]) bytes += static_cast<char>(b.get<int>());
    EXPECT_EQ(bytes, t["token"].get<std::string>());
    text += t["token"].get<std::string>();
  }
  // The tokens spell the answer (the final <|im_end|> is not part of the text).
  EXPECT_EQ(text.rfind(j["choices"][0]["message"]["content"].get<std::string>(), 0), 0u) << text;

  const json comp = {{"model", "large"}, {"prompt", "What is"}, {"max_tokens", 8}, {"logprobs", 2}};
  const Reply rc = post(*c, "/v1/completions", comp.dump());
  ASSERT_EQ(rc.status, 200) << rc.body;
  const json jc = rc.json_body();
  EXPECT_EQ(jc["object"], "text_completion");
  const json& lp = jc["choices"][0]["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), lp["token_logprobs"].size());
  ASSERT_EQ(lp["tokens"].size(), lp["top_logprobs"].size());
  ASSERT_EQ(lp["tokens"].size(), lp["text_offset"].size());
  for (const json& top : lp["top_logprobs"]) EXPECT_EQ(top.size(), 2u) << top;
  EXPECT_EQ(jc["usage"]["completion_tokens"].get<size_t>(), lp["tokens"].size());
}

TEST_F(ServerTest, ModelsAndHealth) {
  auto c = client();
  const Reply m = get(*c, "/v1/models");
  ASSERT_EQ(m.status, 200);
  std::vector<std::string> ids;
  const json models = m.json_body();
  for (const json& d : models["data"]) ids.push_back(d["id"]);
  EXPECT_EQ(ids, (std::vector<std::string>{"frugal", "small", "large"}));
  const Reply h = get(*c, "/health");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.json_body()["status"], "ok");
}

TEST_F(ServerTest, TheLedgerHasOneLinePerRequest) {
  auto c = client();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    json body = chat("What is " + std::to_string(50 + i) + " + 1?");
    body["user"] = "ledger-user";
    body["stream"] = i == 1;
    const Reply r = post(*c, "/v1/chat/completions", body.dump());
    ASSERT_EQ(r.status, 200);
    const json j = i == 1 ? parse_stream(r.body).chunks.at(0) : r.json_body();
    ids.push_back(j["id"]);
  }
  // Written before the response's end reaches the client.
  const std::vector<json> lines = ledger();
  for (const std::string& id : ids) {
    SCOPED_TRACE(id);
    int found = 0;
    for (const json& l : lines) {
      if (l.value("id", "") != id) continue;
      ++found;
      for (const char* k : {"time", "id", "key_id", "model", "user", "outcome", "latency_ms",
                            "tier", "tiers", "tokens_in", "tokens_out", "cost", "score",
                            "escalated", "escalated_early", "cache_hit"}) {
        EXPECT_TRUE(l.contains(k)) << k << " in " << l;
      }
      EXPECT_EQ(l["outcome"], "ok");
      EXPECT_EQ(l["user"], "ledger-user");
      EXPECT_EQ(l["model"], "frugal");
      EXPECT_TRUE(l["key_id"].is_null());  // no keys on this server
      EXPECT_GT(l["tokens_in"].get<int64_t>(), 0);
      EXPECT_GT(l["cost"].get<double>(), 0);
      EXPECT_GT(l["latency_ms"].get<double>(), 0);
      EXPECT_NEAR(l["time"].get<double>(),
                  std::chrono::duration<double>(
                      std::chrono::system_clock::now().time_since_epoch()).count(), 120);
      EXPECT_EQ(l["tiers"][0]["tier"], "small");
    }
    EXPECT_EQ(found, 1);
  }
  // Refused requests cost nothing and are not in the cost ledger.
  const size_t before = ledger().size();
  post(*c, "/v1/chat/completions", R"({"messages": []})");
  EXPECT_EQ(ledger().size(), before);
}

TEST_F(ServerTest, MetricsPassPromtoolAndCountWhatHappened) {
  auto c = client();
  // Some traffic of every kind: answered, cached, refused, streamed.
  post(*c, "/v1/chat/completions", chat("What is 8 + 8?").dump());
  post(*c, "/v1/chat/completions", chat("What is 8 + 8?").dump());
  post(*c, "/v1/chat/completions", R"({"messages": "x"})");
  json s = chat("What is 9 + 9?");
  s["stream"] = true;
  post(*c, "/v1/chat/completions", s.dump());

  const Reply m = get(*c, "/metrics");
  ASSERT_EQ(m.status, 200);
  EXPECT_NE(m.header("Content-Type").find("text/plain"), std::string::npos);
  const fs::path file = *dir_ / "metrics.txt";
  std::ofstream(file) << m.body;
  // promtool is Debian's `prometheus` package, which scripts/install.sh installs.
  const test::CommandOutput check =
      test::run_command("promtool check metrics < " + file.string() + " 2>&1");
  ASSERT_NE(check.exit_code, 127) << "promtool is not installed: run scripts/install.sh";
  EXPECT_EQ(check.exit_code, 0) << check.out;

  for (const char* family :
       {"frugal_ready", "frugal_http_requests_total", "frugal_http_in_flight",
        "frugal_requests_total", "frugal_escalations_total", "frugal_cache_hits_total",
        "frugal_cache_misses_total", "frugal_tokens_in_total", "frugal_tokens_out_total",
        "frugal_cost_dollars_total", "frugal_saved_dollars_total", "frugal_queue_waiting",
        "frugal_running_sequences", "frugal_kv_blocks_used", "frugal_kv_blocks_capacity",
        "frugal_preemptions_total", "frugal_time_to_first_token_seconds",
        "frugal_inter_token_latency_seconds", "frugal_request_duration_seconds"}) {
    EXPECT_NE(m.body.find(std::string("# TYPE ") + family + " "), std::string::npos) << family;
  }
  EXPECT_EQ(sample(m.body, "frugal_ready"), 1);
  EXPECT_GE(sample(m.body, "frugal_cache_hits_total"), 1);
  EXPECT_GE(sample(m.body, "frugal_http_requests_total{path=\"/v1/chat/completions\",status=\"400\"}"), 1);
  EXPECT_GE(sample(m.body, "frugal_tokens_in_total{tier=\"small\"}"), 1);
  EXPECT_GT(sample(m.body, "frugal_cost_dollars_total"), 0);
  EXPECT_GE(sample(m.body, "frugal_saved_dollars_total"), 0);
  EXPECT_GT(sample(m.body, "frugal_kv_blocks_capacity{tier=\"large\"}"), 0);
  EXPECT_GE(sample(m.body, "frugal_request_duration_seconds_count"), 3);
  EXPECT_GE(sample(m.body, "frugal_time_to_first_token_seconds_count"), 3);
  const double ok_small =
      sample(m.body, "frugal_requests_total{model_kind=\"cascade\",tier=\"small\",outcome=\"ok\"}");
  const double ok_large =
      sample(m.body, "frugal_requests_total{model_kind=\"cascade\",tier=\"large\",outcome=\"ok\"}");
  EXPECT_GE((std::isnan(ok_small) ? 0 : ok_small) + (std::isnan(ok_large) ? 0 : ok_large), 2);
}

// Speculative decoding and speculative escalation reach /metrics under vLLM's names: the
// teacher drafts with the student, and the cascade's escalations verify tier 1's answers.
TEST(ServerSpecMetrics, DraftsAcceptancesAndReusedTokensAreCounted) {
  ServerOptions o = bundled_options();
  for (cascade::TierConfig& t : o.config.tiers) {
    if (t.name != "large") continue;
    t.speculative = "draft";
    t.draft = kSource + "/models/frugal-student.gguf";
  }
  LiveServer s(std::move(o));
  auto c = s.client();
  int64_t reused = 0;  // what the responses said, summed
  int escalated = 0;
  const std::vector<std::string> prompts = heldout_prompts(24);
  for (const std::string& p : prompts) {
    json body = chat(p, 32);
    body["model"] = "frugal";
    const Reply r = post(*c, "/v1/chat/completions", body.dump());
    ASSERT_EQ(r.status, 200) << r.body;
    const json f = r.json_body()["frugal"];
    reused += f["tokens_reused"].get<int64_t>();
    escalated += f["escalated"].get<bool>() ? 1 : 0;
  }
  ASSERT_GT(escalated, 0) << "no escalation among the first 24 held-out prompts";
  // The large tier alone, asked for a longer answer: speculative decoding with the draft.
  json direct = chat("Repeat the word apple eight times.", 48);
  direct["model"] = "large";
  ASSERT_EQ(post(*c, "/v1/chat/completions", direct.dump()).status, 200);

  const Reply m = get(*c, "/metrics");
  ASSERT_EQ(m.status, 200);
  const fs::path file = temp_dir("spec_metrics") / "metrics.txt";
  std::ofstream(file) << m.body;
  const test::CommandOutput check =
      test::run_command("promtool check metrics < " + file.string() + " 2>&1");
  ASSERT_NE(check.exit_code, 127) << "promtool is not installed: run scripts/install.sh";
  EXPECT_EQ(check.exit_code, 0) << check.out;

  const std::string l = "{tier=\"large\"}";
  const double drafts = sample(m.body, "frugal_spec_decode_num_drafts_total" + l);
  const double proposed = sample(m.body, "frugal_spec_decode_num_draft_tokens_total" + l);
  const double accepted = sample(m.body, "frugal_spec_decode_num_accepted_tokens_total" + l);
  EXPECT_GT(drafts, 0) << m.body;
  EXPECT_GE(proposed, drafts);
  EXPECT_GT(accepted, 0);
  EXPECT_LE(accepted, proposed);
  // Position i counts drafts whose i-th token stood: never more than position i-1, never more
  // than the drafts, and summed over positions they are the accepted tokens.
  double by_position = 0, previous = drafts;
  for (int i = 0;; ++i) {
    const double at = sample(m.body, "frugal_spec_decode_num_accepted_tokens_per_pos_total"
                                     "{tier=\"large\",position=\"" + std::to_string(i) + "\"}");
    if (std::isnan(at)) {
      EXPECT_GT(i, 0) << "no per-position counts";
      break;
    }
    EXPECT_LE(at, previous) << "position " << i;
    previous = at;
    by_position += at;
  }
  EXPECT_DOUBLE_EQ(by_position, accepted);
  // Tokens reused by speculative escalation: what the responses reported, summed.
  const double reused_metric = sample(m.body, "frugal_escalation_tokens_reused_total");
  EXPECT_DOUBLE_EQ(std::isnan(reused_metric) ? 0.0 : reused_metric, static_cast<double>(reused));
  EXPECT_GT(reused, 0) << "the student's answers share no prefix with the teacher's on " << escalated
                       << " escalations";
  fs::remove_all(file.parent_path());
}

// ---------------------------------------------------------------------------- binding

TEST(ServerBind, APortInUseIsRefused) {
  ServerOptions a;
  a.port = 0;
  Server first(a);
  ASSERT_TRUE(first.bind().is_ok());
  ServerOptions b;
  b.port = first.port();
  Server second(b);
  const Status st = second.bind();
  EXPECT_EQ(st.code(), ErrorCode::kUnavailable) << st.to_string();
  EXPECT_NE(st.message().find("cannot listen on 127.0.0.1:" + std::to_string(first.port())),
            std::string::npos)
      << st.message();
}

// ---------------------------------------------------------------------------- API keys

TEST(ServerKeys, MissingOrWrongKeysGet401AndKeyIdsReachTheLedger) {
  const fs::path dir = temp_dir("keys");
  std::ofstream(dir / "keys.txt") << "# one key per line\nsk-file-key\n\n";
  setenv("FRUGAL_SERVER_TEST_KEYS", "sk-env-1,sk-env-2", 1);
  ServerOptions o = bundled_options();
  o.config.server.api_keys_file = (dir / "keys.txt").string();
  o.config.server.api_keys_env = "FRUGAL_SERVER_TEST_KEYS";
  o.config.server.ledger = (dir / "ledger.jsonl").string();
  LiveServer s(std::move(o));
  auto c = s.client();
  const std::string body = chat("What is 1 + 1?", 8).dump();
  expect_error(post(*c, "/v1/chat/completions", body), 401, "authentication_error", nullptr,
               "invalid_api_key", "no API key", "no key");
  expect_error(post(*c, "/v1/chat/completions", body, {{"Authorization", "Bearer sk-wrong"}}),
               401, "authentication_error", nullptr, "invalid_api_key", "not valid", "wrong key");
  expect_error(post(*c, "/v1/chat/completions", body, {{"Authorization", "sk-file-key"}}), 401,
               "authentication_error", nullptr, "invalid_api_key", "Bearer", "no Bearer");
  expect_error(get(*c, "/v1/models"), 401, "authentication_error", nullptr, "invalid_api_key",
               "no API key", "models without a key");
  for (const char* key : {"sk-file-key", "sk-env-2"}) {
    const Reply r = post(*c, "/v1/chat/completions", body,
                         {{"Authorization", std::string("Bearer ") + key}});
    EXPECT_EQ(r.status, 200) << key << ": " << r.body;
  }
  // Health and metrics stay open for probes and scrapers.
  EXPECT_EQ(get(*c, "/health").status, 200);
  EXPECT_EQ(get(*c, "/metrics").status, 200);
  s.stop();
  std::ifstream in(dir / "ledger.jsonl");
  std::string line;
  std::set<std::string> key_ids;
  while (std::getline(in, line)) key_ids.insert(json::parse(line)["key_id"].get<std::string>());
  // Two keys, two stable ids, neither the key itself.
  ASSERT_EQ(key_ids.size(), 2u);
  for (const std::string& id : key_ids) {
    EXPECT_EQ(id.rfind("key-", 0), 0u) << id;
    EXPECT_EQ(id.find("sk-"), std::string::npos) << id;
  }
  unsetenv("FRUGAL_SERVER_TEST_KEYS");
  fs::remove_all(dir);
}

// ---------------------------------------------------------------------------- concurrency

// Streams `prompt` and returns the parsed stream (status in *status).
Stream stream_chat(httplib::Client& c, const std::string& prompt, int* status) {
  json body = chat(prompt, 48);
  body["stream"] = true;
  const Reply r = post(c, "/v1/chat/completions", body.dump());
  *status = r.status;
  Stream s = parse_stream(r.body);
  if (!s.frugal.is_null()) EXPECT_EQ(r.header("x-frugal-tier"), s.frugal["tier"]);
  return s;
}

// A long streamed completion to leave after its first chunk: sampled at temperature 2 with
// these seeds, the teacher writes 100-120 tokens (checked in the test: the bundled models are
// so well trained that greedy answers end after a few tokens). Streamed through the cascade,
// tier 1 is stopped by the logprob floor after one token and the teacher streams live.
constexpr int kRamblingSeeds[] = {14, 15, 18, 2};
json rambling_completion(const std::string& model, int seed, int max_tokens = 120) {
  return {{"model", model}, {"prompt", "Once"},       {"max_tokens", max_tokens},
          {"temperature", 2}, {"seed", seed},          {"stream", true}};
}

TEST(ServerConcurrency, SixtyFourStreamsGetTheirAloneAnswersAndLeaversAreCancelled) {
  constexpr size_t kClients = 64;
  const std::vector<std::string> prompts = heldout_prompts(kClients);
  // The answers alone, one request at a time, from a server of their own (the one under load
  // must not have them in its response cache).
  std::vector<Stream> alone(kClients);
  {
    LiveServer ref(bundled_options());
    auto c = ref.client();
    for (size_t i = 0; i < kClients; ++i) {
      int status = 0;
      alone[i] = stream_chat(*c, prompts[i], &status);
      ASSERT_EQ(status, 200);
      ASSERT_TRUE(alone[i].done);
    }
  }
  std::set<std::string> tiers;
  for (const Stream& s : alone) tiers.insert(s.frugal["tier"].get<std::string>());
  EXPECT_EQ(tiers, (std::set<std::string>{"small", "large"}))
      << "the prompts should exercise both tier 1's held answers and escalated live streams";

  LiveServer s(bundled_options());
  std::vector<Stream> together(kClients);
  std::vector<int> statuses(kClients, 0);
  {
    std::atomic<size_t> ready{0};
    std::vector<std::thread> clients;
    for (size_t i = 0; i < kClients; ++i) {
      clients.emplace_back([&, i] {
        auto c = s.client();
        ready++;
        while (ready.load() < kClients) std::this_thread::yield();
        together[i] = stream_chat(*c, prompts[i], &statuses[i]);
      });
    }
    for (std::thread& t : clients) t.join();
  }
  for (size_t i = 0; i < kClients; ++i) {
    SCOPED_TRACE(prompts[i]);
    EXPECT_EQ(statuses[i], 200);
    EXPECT_TRUE(together[i].done);
    EXPECT_TRUE(together[i].error.is_null()) << together[i].error;
    EXPECT_EQ(together[i].text, alone[i].text);
    EXPECT_EQ(together[i].finish_reason, alone[i].finish_reason);
    EXPECT_EQ(together[i].frugal["tier"], alone[i].frugal["tier"]);
  }
  expect_nothing_leaked(s);

  // Clients that leave mid-stream, after the first chunk: half stream the teacher directly,
  // half the cascade (which escalated and streams the teacher live). Each is cancelled.
  // First, that these answers are long: alone, each runs past 100 tokens.
  std::map<int, std::string> long_alone;
  {
    auto c = s.client();
    for (int seed : kRamblingSeeds) {
      json body = rambling_completion("large", seed);
      body.erase("stream");
      const json j = post(*c, "/v1/completions", body.dump()).json_body();
      ASSERT_GE(j["usage"]["completion_tokens"].get<int>(), 100) << "seed " << seed << ": " << j;
      long_alone[seed] = j["choices"][0]["text"];
    }
  }
  // Meanwhile 32 streams stay to the end (and keep the teacher's batches large, so that the
  // leavers' answers cannot finish before they leave): each gets its whole answer.
  constexpr int kStayers = 32;
  std::vector<Stream> stayed(kStayers);
  std::vector<std::thread> stayers;
  for (int j = 0; j < kStayers; ++j) {
    stayers.emplace_back([&, j] {
      auto c = s.client();
      stayed[j] = parse_stream(
          post(*c, "/v1/completions", rambling_completion("large", kRamblingSeeds[j % 4]).dump())
              .body);
    });
  }
  constexpr int kLeavers = 16;
  const Labels cancelled_direct = {{"model_kind", "tier"}, {"tier", ""}, {"outcome", "cancelled"}};
  const Labels cancelled_cascade = {
      {"model_kind", "cascade"}, {"tier", ""}, {"outcome", "cancelled"}};
  Metrics& m = s.server().metrics();
  const double direct_before = m.value("frugal_requests_total", cancelled_direct);
  const double cascade_before = m.value("frugal_requests_total", cancelled_cascade);
  std::vector<std::thread> leavers;
  std::atomic<int> got_first_chunk{0};
  std::mutex heads_mu;
  std::string heads;  // what each leaver read, for a failure's message
  for (int i = 0; i < kLeavers; ++i) {
    leavers.emplace_back([&, i] {
      const int fd = connect_loopback(s.port());
      ASSERT_GE(fd, 0);
      // Each its own max_tokens, so that none can be another's response-cache hit.
      const json body = rambling_completion(i % 2 == 0 ? "large" : "frugal",
                                            kRamblingSeeds[(i / 2) % 4], 120 - i);
      ASSERT_TRUE(send_request(fd, "/v1/completions", body.dump()));
      std::string got;
      if (read_until(fd, "data: ", 30s, &got)) got_first_chunk++;
      close(fd);
      std::lock_guard<std::mutex> lock(heads_mu);
      heads += "leaver " + std::to_string(i) + " read " + std::to_string(got.size()) + " bytes" +
               (got.find("[DONE]") != std::string::npos ? ", the whole answer\n" : "\n");
    });
  }
  for (std::thread& t : leavers) t.join();
  for (std::thread& t : stayers) t.join();
  EXPECT_EQ(got_first_chunk.load(), kLeavers);
  for (int j = 0; j < kStayers; ++j) {
    EXPECT_TRUE(stayed[j].done);
    EXPECT_EQ(stayed[j].text, long_alone[kRamblingSeeds[j % 4]]) << j;
  }
  EXPECT_TRUE(eventually([&] {
    return m.value("frugal_requests_total", cancelled_direct) - direct_before == kLeavers / 2;
  })) << m.text();
  EXPECT_TRUE(eventually([&] {
    return m.value("frugal_requests_total", cancelled_cascade) - cascade_before == kLeavers / 2;
  })) << m.text() << heads;
  expect_nothing_leaked(s);
  EXPECT_TRUE(eventually([&] { return s.server().in_flight() == 0; }));
}

// ---------------------------------------------------------------------------- admission

TEST(ServerAdmission, AFullQueueAnswers429WithRetryAfter) {
  {
    // No room at all: tier 1 refuses, the request escalates, the top tier refuses too.
    ServerOptions o = bundled_options();
    o.cascade.scheduler.max_queue = 0;
    LiveServer s(std::move(o));
    auto c = s.client();
    for (bool stream : {false, true}) {
      json body = chat("What is 2 + 2?");
      body["stream"] = stream;
      const Reply r = post(*c, "/v1/chat/completions", body.dump());
      expect_error(r, 429, "rate_limit_error", nullptr, "rate_limit_exceeded", "queue full",
                   stream ? "streamed" : "not streamed");
      EXPECT_EQ(r.header("Retry-After"), "1");
    }
  }
  {
    // Room for one running and one waiting request per tier; a burst of 24 long answers
    // overflows it.
    ServerOptions o = bundled_options();
    o.cascade.scheduler.max_queue = 1;
    o.cascade.scheduler.max_running = 1;
    LiveServer s(std::move(o));
    constexpr int kBurst = 24;
    std::vector<Reply> replies(kBurst);
    std::atomic<int> ready{0};
    std::vector<std::thread> clients;
    for (int i = 0; i < kBurst; ++i) {
      clients.emplace_back([&, i] {
        auto c = s.client();
        ready++;
        while (ready.load() < kBurst) std::this_thread::yield();
        json body = rambling_completion("frugal", kRamblingSeeds[i % 4], 120 - i);
        body.erase("stream");
        replies[i] = post(*c, "/v1/completions", body.dump());
      });
    }
    for (std::thread& t : clients) t.join();
    int ok = 0, limited = 0;
    for (const Reply& r : replies) {
      if (r.status == 200) {
        ++ok;
      } else {
        ++limited;
        expect_error(r, 429, "rate_limit_error", nullptr, "rate_limit_exceeded", "queue full",
                     "burst");
        EXPECT_EQ(r.header("Retry-After"), "1");
      }
    }
    EXPECT_GE(ok, 2);
    EXPECT_GE(limited, 1);
    expect_nothing_leaked(s);
  }
}

// ---------------------------------------------------------------------------- scripted tiers

TEST(ServerScripted, AFailureMidStreamEndsWithAnErrorEvent) {
  ScriptedTier* tier = nullptr;
  // A token every 10 ms, then the failure: the stream has begun when it comes.
  LiveServer s(scripted_options({.tokens = 10, .gap = 10ms, .fail_after = 4}, &tier));
  auto c = s.client();
  json body = chat("anything");
  body["stream"] = true;
  const Reply r = post(*c, "/v1/chat/completions", body.dump());
  ASSERT_EQ(r.status, 200);
  const Stream st = parse_stream(r.body);
  EXPECT_EQ(st.text, " w0 w1 w2 w3");
  EXPECT_FALSE(st.done) << "a failed stream must not end as if complete";
  ASSERT_TRUE(st.error.is_object()) << r.body;
  EXPECT_EQ(st.error["error"]["type"], "server_error");
  EXPECT_NE(st.error["error"]["message"].get<std::string>().find("broke after 4"),
            std::string::npos);
  // Not streamed: a 500 with the same body.
  body.erase("stream");
  expect_error(post(*c, "/v1/chat/completions", body.dump()), 500, "server_error", nullptr,
               nullptr, "broke after 4", "not streamed");
  EXPECT_EQ(s.server().metrics().value(
                "frugal_requests_total",
                {{"model_kind", "cascade"}, {"tier", ""}, {"outcome", "error"}}),
            2);
}

TEST(ServerScripted, AStreamThatFailsBeforeItsFirstTokenGetsAnHttpError) {
  ScriptedTier* tier = nullptr;
  LiveServer s(scripted_options({.tokens = 10, .gap = 0ms, .fail_after = 0}, &tier));
  auto c = s.client();
  json body = chat("anything");
  body["stream"] = true;
  // Nothing was sent yet, so the client gets a status it can act on, not a 200 and an event.
  expect_error(post(*c, "/v1/chat/completions", body.dump()), 500, "server_error", nullptr,
               nullptr, "broke after 0", "streamed");
}

TEST(ServerScripted, AClientThatLeavesCancelsItsRequestAtOnce) {
  ScriptedTier* tier = nullptr;
  // 200 tokens 10 ms apart: two seconds, unless cancelled.
  LiveServer s(scripted_options({.tokens = 200, .gap = 10ms}, &tier));
  const auto t0 = Clock::now();
  for (bool stream : {true, false}) {
    const int fd = connect_loopback(s.port());
    json body = chat("anything", 1000);
    body["stream"] = stream;
    ASSERT_TRUE(send_request(fd, "/v1/chat/completions", body.dump()));
    std::string got;
    if (stream) {
      EXPECT_TRUE(read_until(fd, "w2", 10s, &got)) << got;
    } else {
      std::this_thread::sleep_for(50ms);
    }
    close(fd);
  }
  EXPECT_TRUE(eventually([&] { return tier->cancels() == 2; }, 5s));
  EXPECT_LT(Clock::now() - t0, 1500ms) << "the requests ran to their end";
  EXPECT_EQ(s.server().metrics().value(
                "frugal_requests_total",
                {{"model_kind", "cascade"}, {"tier", ""}, {"outcome", "cancelled"}}),
            2);
  EXPECT_TRUE(eventually([&] { return s.server().in_flight() == 0; }, 5s));
}

TEST(ServerScripted, StopDrainsRunningStreamsAndRefusesNewRequests) {
  ScriptedTier* tier = nullptr;
  // 40 tokens 20 ms apart: 0.8 s.
  LiveServer s(scripted_options({.tokens = 40, .gap = 20ms}, &tier));
  Reply running;
  std::thread streamer([&] {
    auto c = s.client();
    json body = chat("anything", 1000);
    body["stream"] = true;
    running = post(*c, "/v1/chat/completions", body.dump());
  });
  ASSERT_TRUE(eventually([&] { return s.server().in_flight() == 1; }, 5s));
  Status served;
  std::thread stopper([&] { served = s.stop(); });
  auto c = s.client();
  ASSERT_TRUE(eventually([&] { return get(*c, "/health").status == 503; }, 5s));
  EXPECT_EQ(get(*c, "/health").json_body()["status"], "draining");
  const Reply refused = post(*c, "/v1/chat/completions", chat("another").dump());
  expect_error(refused, 503, "server_error", nullptr, "unavailable", "shutting down", "draining");
  EXPECT_EQ(refused.header("Retry-After"), "1");
  stopper.join();
  streamer.join();
  EXPECT_TRUE(served.is_ok()) << served.to_string();
  ASSERT_EQ(running.status, 200);
  const Stream st = parse_stream(running.body);
  EXPECT_TRUE(st.done) << running.body;
  EXPECT_EQ(st.finish_reason, "length");
  EXPECT_EQ(st.chunks.size(), 40u + 1u);  // 40 tokens and the finishing chunk
  EXPECT_EQ(tier->cancels(), 0);
}

// ---------------------------------------------------------------------------- the binary

// `frugal serve` as a process: stderr in a file, stopped with SIGKILL if a test leaves it.
class ServeProcess {
 public:
  ServeProcess(const std::vector<std::string>& args, const fs::path& log) {
    std::vector<std::string> argv = {FRUGAL_BINARY, "serve"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> cargv;
    for (std::string& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    EXPECT_EQ(posix_spawn(&pid_, FRUGAL_BINARY, &fa, nullptr, cargv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&fa);
  }
  ~ServeProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  // The exit code, or -1 when it did not exit normally within `timeout`.
  int wait(std::chrono::milliseconds timeout) {
    const auto until = Clock::now() + timeout;
    while (Clock::now() < until) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(10ms);
    }
    return -1;
  }

 private:
  pid_t pid_ = -1;
};

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ServeBinary, SigtermDrainsRunningStreamsRefusesNewOnesAndExitsZero) {
  const fs::path dir = temp_dir("sigterm");
  const int port = free_port();
  // One sequence at a time per tier: four long streams queue behind each other.
  ServeProcess p({"--port", std::to_string(port), "--threads", "1", "--max-running", "1"},
                 dir / "stderr.txt");
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(60, 0);
  ASSERT_TRUE(eventually([&] { return get(c, "/health").status == 200; }, 60s))
      << read_text(dir / "stderr.txt");

  constexpr int kStreams = 4;
  std::vector<Reply> streams(kStreams);
  std::atomic<int> first_chunks{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kStreams; ++i) {
    threads.emplace_back([&, i] {
      httplib::Client sc("127.0.0.1", port);
      sc.set_read_timeout(60, 0);
      httplib::Request req;
      req.method = "POST";
      req.path = "/v1/completions";
      req.body = rambling_completion("large", kRamblingSeeds[i % 4]).dump();
      req.set_header("Content-Type", "application/json");
      req.response_handler = [&, i](const httplib::Response& res) {
        streams[i].status = res.status;
        return true;
      };
      req.content_receiver = [&, i](const char* data, size_t n, uint64_t, uint64_t) {
        if (streams[i].body.empty()) first_chunks++;
        streams[i].body.append(data, n);
        return true;
      };
      sc.send(req);
    });
  }
  ASSERT_TRUE(eventually([&] { return first_chunks.load() >= 1; }, 30s));
  ASSERT_EQ(kill(p.pid(), SIGTERM), 0);
  // The signal is taken on a thread of its own: once /health says so, new requests get 503
  // (or no connection, once the listener has closed).
  EXPECT_TRUE(eventually([&] {
    httplib::Client probe("127.0.0.1", port);
    return get(probe, "/health").status != 200;
  }, 10s));
  bool saw_refusal = false;
  for (int i = 0; i < 20 && !saw_refusal; ++i) {
    httplib::Client late("127.0.0.1", port);
    const Reply r = post(late, "/v1/chat/completions", chat("What is 1 + 2?").dump());
    if (r.status == 503) {
      expect_error(r, 503, "server_error", nullptr, "unavailable", "shutting down", "late");
      saw_refusal = true;
    } else if (r.status == -1) {
      saw_refusal = true;
    } else {
      ADD_FAILURE() << "a request after SIGTERM got " << r.status << ": " << r.body;
      break;
    }
  }
  EXPECT_TRUE(saw_refusal);
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(p.wait(30s), 0) << read_text(dir / "stderr.txt");
  for (int i = 0; i < kStreams; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(streams[i].status, 200);
    const Stream st = parse_stream(streams[i].body);
    EXPECT_TRUE(st.done) << streams[i].body;
    EXPECT_TRUE(st.error.is_null());
  }
  const std::string err = read_text(dir / "stderr.txt");
  EXPECT_NE(err.find("SIGTERM: draining"), std::string::npos) << err;
  EXPECT_NE(err.find("frugal serve: stopped"), std::string::npos) << err;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace frugal::server
