// RemoteTier: one client thread per call streaming an OpenAI-compatible endpoint, a watchdog
// thread per tier enforcing the timeouts and cancellations by closing connections, retries
// with backoff before anything streamed, and a circuit breaker. Protocol reference: the OpenAI
// API reference for streamed chat completions (chunks, logprobs, stream_options.include_usage,
// "data: [DONE]") and the WHATWG Server-Sent Events parsing rules.
#include "cascade/remote_tier.h"

#include <openssl/x509.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "util/timer.h"

namespace frugal::cascade {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------- URL, SSE, chunks

Result<RemoteUrl> parse_remote_url(const std::string& url) {
  RemoteUrl out;
  std::string rest;
  if (url.rfind("https://", 0) == 0) {
    out.https = true;
    rest = url.substr(8);
  } else if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else {
    return invalid_argument("the URL " + url + " must start with http:// or https://");
  }
  const size_t slash = rest.find('/');
  const std::string host = rest.substr(0, slash);
  std::string path = slash == std::string::npos ? "" : rest.substr(slash);
  if (host.empty() || host.find_first_of(" \t?#@") != std::string::npos) {
    return invalid_argument("the URL " + url + " has no valid host (write scheme://HOST[:PORT]/PATH)");
  }
  if (const size_t colon = host.rfind(':'); colon != std::string::npos && host.back() != ']') {
    const std::string port = host.substr(colon + 1);
    const bool digits = !port.empty() && port.size() <= 5 &&
                        std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits || std::atoi(port.c_str()) < 1 || std::atoi(port.c_str()) > 65535) {
      return invalid_argument("the URL " + url + " has a bad port '" + port + "'");
    }
  }
  for (const char* suffix : {"/chat/completions", "/completions"}) {
    const std::string s(suffix);
    if (path.size() >= s.size() && path.compare(path.size() - s.size(), s.size(), s) == 0) {
      path.resize(path.size() - s.size());
      break;
    }
  }
  while (!path.empty() && path.back() == '/') path.pop_back();
  out.origin = (out.https ? "https://" : "http://") + host;
  out.base_path = path;
  return out;
}

void SseReader::end_line(std::vector<std::string>* events) {
  std::string_view line(line_);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.empty()) {
    if (has_data_) events->push_back(std::move(data_));
    data_.clear();
    has_data_ = false;
  } else if (line.rfind("data:", 0) == 0) {
    std::string_view value = line.substr(5);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (has_data_) data_ += '\n';
    data_.append(value);
    has_data_ = true;
  }
  // Comments (":...") and the event, id and retry fields carry nothing a chunk needs.
  line_.clear();
}

void SseReader::feed(std::string_view bytes, std::vector<std::string>* events) {
  size_t start = 0;
  while (start < bytes.size()) {
    const size_t nl = bytes.find('\n', start);
    if (nl == std::string_view::npos) {
      line_.append(bytes.substr(start));
      return;
    }
    line_.append(bytes.substr(start, nl - start));
    end_line(events);
    start = nl + 1;
  }
}

namespace {

std::string clip(std::string_view s, size_t n = 200) {
  std::string out(s.substr(0, n));
  for (char& c : out)
    if (c == '\n' || c == '\r') c = ' ';
  if (s.size() > n) out += "...";
  return out;
}

// The error message of an OpenAI-style error body, else the body itself (clipped).
std::string error_message_of(std::string_view body) {
  json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_object()) {
    auto e = j.find("error");
    if (e != j.end()) {
      if (e->is_string()) return clip(e->get<std::string>());
      if (e->is_object()) {
        auto m = e->find("message");
        if (m != e->end() && m->is_string()) return clip(m->get<std::string>());
      }
    }
    auto m = j.find("message");
    if (m != j.end() && m->is_string()) return clip(m->get<std::string>());
  }
  return clip(body);
}

float number_or(const json& j, const char* key, float fallback) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return fallback;
  return it->get<float>();
}

int64_t count_or_zero(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) return 0;
  return std::max<int64_t>(0, it->get<int64_t>());
}

Status malformed(const StreamState& st, const std::string& what, std::string_view data) {
  return bad_gateway("malformed stream chunk #" + std::to_string(st.chunks + 1) + " (" + what +
                     "): " + clip(data, 120));
}

// Chat logprobs: {"content": [{"token", "logprob", "top_logprobs": [{"token", "logprob"}]}]}.
bool chat_logprob_tokens(const json& lp, std::vector<AnswerToken>* out) {
  if (!lp.is_object()) return lp.is_null();
  auto content = lp.find("content");
  if (content == lp.end() || content->is_null()) return true;
  if (!content->is_array()) return false;
  for (const json& e : *content) {
    if (!e.is_object()) return false;
    auto tok = e.find("token");
    if (tok == e.end() || !tok->is_string()) return false;
    AnswerToken t;
    t.piece = tok->get<std::string>();
    t.logprob = number_or(e, "logprob", 0.0f);
    auto top = e.find("top_logprobs");
    if (top != e.end() && top->is_array()) {
      for (const json& a : *top) {
        if (!a.is_object() || !a.contains("token") || !a["token"].is_string()) return false;
        t.top.push_back({-1, a["token"].get<std::string>(), number_or(a, "logprob", 0.0f)});
      }
    }
    out->push_back(std::move(t));
  }
  return true;
}

// Completions logprobs: {"tokens": [...], "token_logprobs": [...], "top_logprobs": [{tok: lp}]}.
bool completion_logprob_tokens(const json& lp, std::vector<AnswerToken>* out) {
  if (!lp.is_object()) return lp.is_null();
  auto toks = lp.find("tokens");
  if (toks == lp.end() || !toks->is_array()) return false;
  auto lps = lp.find("token_logprobs");
  auto tops = lp.find("top_logprobs");
  for (size_t i = 0; i < toks->size(); ++i) {
    if (!(*toks)[i].is_string()) return false;
    AnswerToken t;
    t.piece = (*toks)[i].get<std::string>();
    if (lps != lp.end() && lps->is_array() && i < lps->size() && (*lps)[i].is_number())
      t.logprob = (*lps)[i].get<float>();
    if (tops != lp.end() && tops->is_array() && i < tops->size() && (*tops)[i].is_object()) {
      for (auto& [k, v] : (*tops)[i].items())
        if (v.is_number()) t.top.push_back({-1, k, v.get<float>()});
      std::sort(t.top.begin(), t.top.end(),
                [](const TokenAlternative& a, const TokenAlternative& b) { return a.logprob > b.logprob; });
    }
    out->push_back(std::move(t));
  }
  return true;
}

}  // namespace

Status parse_stream_chunk(std::string_view data, StreamState* st, std::vector<AnswerToken>* tokens) {
  json j = json::parse(data.begin(), data.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return malformed(*st, "not JSON", data);
  if (!j.is_object()) return malformed(*st, "not a JSON object", data);
  if (auto e = j.find("error"); e != j.end() && !e->is_null()) {
    return bad_gateway("the endpoint reported an error mid-stream: " + error_message_of(data));
  }
  if (auto u = j.find("usage"); u != j.end() && u->is_object()) {
    st->has_usage = true;
    st->prompt_tokens = count_or_zero(*u, "prompt_tokens");
    st->completion_tokens = count_or_zero(*u, "completion_tokens");
    auto d = u->find("prompt_tokens_details");
    if (d != u->end() && d->is_object()) st->cached_tokens = count_or_zero(*d, "cached_tokens");
  }
  auto choices = j.find("choices");
  if (choices == j.end() || !choices->is_array()) {
    if (j.contains("usage")) {  // a usage-only chunk may omit choices
      st->chunks++;
      return Status::ok();
    }
    return malformed(*st, "no 'choices' array", data);
  }
  for (const json& c : *choices) {
    if (!c.is_object()) return malformed(*st, "a choice is not an object", data);
    std::string text;
    if (st->chat) {
      auto delta = c.find("delta");
      if (delta != c.end() && delta->is_object()) {
        auto content = delta->find("content");
        if (content != delta->end() && content->is_string()) text = content->get<std::string>();
        else if (content != delta->end() && !content->is_null())
          return malformed(*st, "delta.content is not a string", data);
      }
    } else {
      auto t = c.find("text");
      if (t != c.end() && t->is_string()) text = t->get<std::string>();
    }
    std::vector<AnswerToken> got;
    auto lp = c.find("logprobs");
    if (lp != c.end()) {
      const bool ok = st->chat ? chat_logprob_tokens(*lp, &got) : completion_logprob_tokens(*lp, &got);
      if (!ok) return malformed(*st, "logprobs of an unexpected shape", data);
    }
    if (got.empty() && !text.empty()) {
      AnswerToken t;
      t.piece = text;
      got.push_back(std::move(t));
    }
    // The chunk's text is released with its last token: the tokens' texts add up to the answer.
    if (!got.empty()) got.back().text = text;
    for (AnswerToken& t : got) tokens->push_back(std::move(t));
    auto fr = c.find("finish_reason");
    if (fr != c.end() && fr->is_string()) {
      st->finished = true;
      st->finish = fr->get<std::string>() == "length" ? FinishReason::kLength : FinishReason::kStop;
    }
  }
  st->chunks++;
  return Status::ok();
}

// ---------------------------------------------------------------------------- the tier

// One call: what the client thread, the watchdog and the handle share. `mu` guards the
// fields after it.
struct RemoteTier::Call {
  TierRequest request;
  TierSink sink;
  std::string body;
  bool chat = true;
  bool probe = false;  // the breaker's half-open probe
  Clock::time_point start;
  Clock::time_point deadline;  // the sooner of total_timeout_ms and the request's deadline
  bool deadline_is_request = false;
  std::atomic<bool> finished{false};  // on_done has returned; the thread may be joined

  enum class Stop : uint8_t { kNone, kCancelled, kFirstToken, kDeadline };
  std::mutex mu;
  std::condition_variable cv;  // wakes a backoff wait
  bool cancelled = false;
  bool in_attempt = false;
  bool got_token = false;  // in this attempt
  bool streamed = false;   // a token reached the sink (no retry after that)
  Clock::time_point attempt_start;
  std::shared_ptr<httplib::Client> client;
  Stop stop = Stop::kNone;  // why the watchdog closed the connection
};

class RemoteTier::Handle : public TierCall {
 public:
  Handle(RemoteTier* tier, std::shared_ptr<Call> call) : tier_(tier), call_(std::move(call)) {}
  void cancel() override {
    {
      std::lock_guard<std::mutex> lock(call_->mu);
      call_->cancelled = true;
    }
    call_->cv.notify_all();
    // The tier outlives its handles' use: the cascade cancels calls before destroying tiers,
    // and a finished call's watchdog entry is gone, so a late cancel only sets the flag.
    if (!call_->finished.load()) tier_->wake_watchdog();
  }

 private:
  RemoteTier* tier_;
  std::shared_ptr<Call> call_;
};

RemoteTier::RemoteTier(TierConfig config, RemoteUrl url, std::string api_key)
    : Tier(std::move(config)), url_(std::move(url)), api_key_(std::move(api_key)) {
  path_chat_ = url_.base_path + "/chat/completions";
  path_completions_ = url_.base_path + "/completions";
  watchdog_ = std::thread([this] { watchdog(); });
}

Result<std::unique_ptr<RemoteTier>> RemoteTier::create(const TierConfig& config) {
  CHECK(config.kind == TierKind::kRemote, "RemoteTier::create on a %s tier",
        tier_kind_name(config.kind));
  auto url = parse_remote_url(config.url);
  if (!url.is_ok()) return invalid_argument("tier '" + config.name + "': " + url.status().message());
  std::string key;
  if (!config.api_key_env.empty()) {
    const char* v = std::getenv(config.api_key_env.c_str());
    if (v == nullptr || *v == '\0') {
      return invalid_argument("tier '" + config.name + "': the environment variable " +
                              config.api_key_env + " (api_key_env) is not set; export the "
                              "endpoint's API key in it, or remove api_key_env");
    }
    key = v;
  }
  if (!config.ca_file.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(config.ca_file, ec)) {
      return invalid_argument("tier '" + config.name + "': ca_file " + config.ca_file +
                              " is not a file (PEM certificates to trust for https)");
    }
  }
  return std::unique_ptr<RemoteTier>(new RemoteTier(config, std::move(url).value(), std::move(key)));
}

RemoteTier::~RemoteTier() {
  std::list<std::pair<std::shared_ptr<Call>, std::thread>> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    for (auto& c : calls_) {
      std::lock_guard<std::mutex> cl(c->mu);
      c->cancelled = true;
      c->cv.notify_all();
    }
    threads.swap(threads_);
  }
  cv_.notify_all();
  for (auto& [call, t] : threads) t.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    calls_.clear();
  }
  cv_.notify_all();
  watchdog_.join();
}

std::string RemoteTier::request_body(const TierRequest& r) const {
  json j;
  if (!config().remote_model.empty()) j["model"] = config().remote_model;
  if (r.raw_prompt) {
    j["prompt"] = *r.raw_prompt;
  } else {
    json messages = json::array();
    for (const ChatMessage& m : r.messages) messages.push_back({{"role", m.role}, {"content", m.content}});
    j["messages"] = messages;
  }
  j["max_tokens"] = r.max_tokens;
  j["temperature"] = r.temperature;
  j["top_p"] = r.top_p;
  if (r.seed_set) j["seed"] = r.seed;
  if (!r.stop.empty()) j["stop"] = r.stop;
  // vLLM's and llama-server's extension, sent only when asked: hosted APIs may refuse it.
  if (r.ignore_eos) j["ignore_eos"] = true;
  j["stream"] = true;
  j["stream_options"] = {{"include_usage", true}};
  if (config().logprobs) {
    const int k = std::clamp(r.n_logprobs, 0, 20);
    if (r.raw_prompt) {
      j["logprobs"] = k;
    } else {
      j["logprobs"] = true;
      if (k > 0) j["top_logprobs"] = k;
    }
  }
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<std::unique_ptr<TierCall>> RemoteTier::start(const TierRequest& request, TierSink sink) {
  if (!request.raw_prompt && request.messages.empty()) {
    return invalid_argument("tier '" + name() + "': the conversation has no messages");
  }
  if (request.raw_prompt && request.raw_prompt->empty()) {
    return invalid_argument("tier '" + name() + "': the prompt is empty");
  }
  reap_finished();
  auto call = std::make_shared<Call>();
  call->request = request;
  call->sink = std::move(sink);
  call->body = request_body(request);
  call->chat = !request.raw_prompt.has_value();
  call->start = Clock::now();
  call->deadline = call->start + std::chrono::milliseconds(config().total_timeout_ms);
  if (request.deadline && *request.deadline < call->deadline) {
    call->deadline = *request.deadline;
    call->deadline_is_request = true;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return unavailable("tier '" + name() + "' is shutting down");
  // The circuit breaker.
  const auto now = Clock::now();
  if (config().breaker_failures > 0) {
    if (breaker_ == Breaker::kOpen && now >= open_until_) breaker_ = Breaker::kHalfOpen;
    if (breaker_ == Breaker::kOpen || (breaker_ == Breaker::kHalfOpen && probe_in_flight_)) {
      const double left = std::max(0.0, std::chrono::duration<double>(open_until_ - now).count());
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.1f", left);
      return unavailable("tier '" + name() + "' is skipped after " +
                         std::to_string(config().breaker_failures) +
                         " consecutive failures (circuit breaker open; " +
                         (breaker_ == Breaker::kOpen ? std::string("next try in ") + buf + " s"
                                                     : std::string("a probe call is running")) +
                         ")");
    }
    if (breaker_ == Breaker::kHalfOpen) {
      probe_in_flight_ = true;
      call->probe = true;
    }
  }
  calls_.push_back(call);
  threads_.emplace_back(call, std::thread([this, call] { run(call); }));
  return std::unique_ptr<TierCall>(new Handle(this, call));
}

void RemoteTier::reap_finished() {
  std::list<std::pair<std::shared_ptr<Call>, std::thread>> done;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = threads_.begin(); it != threads_.end();) {
      auto next = std::next(it);
      if (it->first->finished.load() && it->second.get_id() != std::this_thread::get_id()) {
        done.splice(done.end(), threads_, it);
      }
      it = next;
    }
  }
  for (auto& [call, t] : done) t.join();
}

TierHealth RemoteTier::health() const {
  std::lock_guard<std::mutex> lock(mu_);
  TierHealth h = health_;
  h.available = breaker_ == Breaker::kClosed ||
                (breaker_ == Breaker::kOpen ? Clock::now() >= open_until_ : !probe_in_flight_);
  h.in_flight = static_cast<int64_t>(threads_.size());
  for (const auto& [call, t] : threads_) h.in_flight -= call->finished.load() ? 1 : 0;
  return h;
}

void RemoteTier::record(bool endpoint_failed, bool probe) {
  std::lock_guard<std::mutex> lock(mu_);
  if (probe) probe_in_flight_ = false;
  if (!endpoint_failed) {
    health_.consecutive_failures = 0;
    breaker_ = Breaker::kClosed;
    return;
  }
  health_.failures++;
  health_.consecutive_failures++;
  const int64_t n = config().breaker_failures;
  if (n > 0 && (probe || (breaker_ == Breaker::kClosed && health_.consecutive_failures >= n))) {
    breaker_ = Breaker::kOpen;
    open_until_ = Clock::now() + std::chrono::milliseconds(config().breaker_cooldown_ms);
    health_.outages++;
  }
}

// ---------------------------------------------------------------------------- connections

std::shared_ptr<httplib::Client> RemoteTier::take_client() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
  }
  auto c = std::make_shared<httplib::Client>(url_.origin);
  const int64_t ct = config().connect_timeout_ms;
  c->set_connection_timeout(ct / 1000, (ct % 1000) * 1000);
  // Reads are bounded by the watchdog (first-token and total timeouts); this is a backstop.
  const int64_t rt = config().total_timeout_ms;
  c->set_read_timeout(rt / 1000, (rt % 1000) * 1000);
  c->set_write_timeout(std::max<int64_t>(1, ct / 1000), 0);
  c->set_keep_alive(true);
  c->set_tcp_nodelay(true);
  c->set_decompress(false);
  if (url_.https) {
    c->enable_server_certificate_verification(true);
    if (!config().ca_file.empty()) c->set_ca_cert_path(config().ca_file);
  }
  return c;
}

void RemoteTier::return_client(std::shared_ptr<httplib::Client> client) {
  constexpr size_t kMaxIdle = 16;
  std::lock_guard<std::mutex> lock(mu_);
  if (idle_.size() < kMaxIdle && !stopping_) idle_.push_back(std::move(client));
}

// ---------------------------------------------------------------------------- watchdog

void RemoteTier::wake_watchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
  }
  cv_.notify_all();
}

// Closes the connection of a call that is cancelled or past a deadline; a blocked read then
// returns at once and the client thread reports why.
void RemoteTier::watchdog() {
  const auto first_token = std::chrono::milliseconds(config().first_token_timeout_ms);
  std::unique_lock<std::mutex> lock(mu_);
  while (!(stopping_ && calls_.empty())) {
    const auto now = Clock::now();
    auto next = now + std::chrono::hours(1);
    std::vector<std::shared_ptr<httplib::Client>> to_stop;
    for (const auto& c : calls_) {
      std::lock_guard<std::mutex> cl(c->mu);
      if (!c->in_attempt || c->client == nullptr || c->stop != Call::Stop::kNone) continue;
      Call::Stop why = Call::Stop::kNone;
      if (c->cancelled) {
        why = Call::Stop::kCancelled;
      } else if (now >= c->deadline) {
        why = Call::Stop::kDeadline;
      } else if (!c->got_token && now >= c->attempt_start + first_token) {
        why = Call::Stop::kFirstToken;
      }
      if (why != Call::Stop::kNone) {
        c->stop = why;
        to_stop.push_back(c->client);
        continue;
      }
      next = std::min(next, c->deadline);
      if (!c->got_token) next = std::min(next, c->attempt_start + first_token);
    }
    if (!to_stop.empty()) {
      lock.unlock();
      for (auto& client : to_stop) client->stop();
      lock.lock();
      continue;
    }
    // Woken by a new attempt, a first token, a cancel, or the next deadline.
    cv_.wait_until(lock, next);
  }
}

// ---------------------------------------------------------------------------- one call

namespace {

// Retry-After as seconds (an HTTP date is not followed: 0).
std::chrono::milliseconds retry_after_of(const httplib::Response& r) {
  const std::string v = r.get_header_value("Retry-After");
  if (v.empty() || !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::chrono::milliseconds(0);
  return std::chrono::milliseconds(std::min<int64_t>(std::atoll(v.c_str()), 86400) * 1000);
}

bool counts_against_endpoint(const Status& s) {
  switch (s.code()) {
    case ErrorCode::kBadGateway:
    case ErrorCode::kDeadlineExceeded:
    case ErrorCode::kResourceExhausted:
    case ErrorCode::kUnavailable:
      return true;
    default:
      return false;
  }
}

std::string ms_text(int64_t ms) { return std::to_string(ms) + " ms"; }

}  // namespace

void RemoteTier::run(const std::shared_ptr<Call>& call) {
  Result<TierAnswer> result = internal_error("no attempt was made");
  for (int i = 0;; ++i) {
    bool retryable = false;
    std::chrono::milliseconds retry_after(0);
    result = attempt(*call, i, &retryable, &retry_after);
    if (result.is_ok() || !retryable || i >= config().max_retries) break;
    {
      std::lock_guard<std::mutex> lock(call->mu);
      if (call->streamed || call->cancelled) break;
    }
    const int64_t backoff = config().retry_backoff_ms << std::min(i, 20);
    const auto wait = std::max(std::chrono::milliseconds(backoff), retry_after);
    if (Clock::now() + wait >= call->deadline) {
      result = Status(result.status().code(),
                      result.status().message() + " (no time left to retry within " +
                          (call->deadline_is_request ? std::string("the request's deadline")
                                                     : "total_timeout_ms = " +
                                                           ms_text(config().total_timeout_ms)) +
                          ")");
      break;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      health_.retries++;
    }
    std::unique_lock<std::mutex> lock(call->mu);
    call->cv.wait_for(lock, wait, [&] { return call->cancelled; });
    if (call->cancelled) {
      result = cancelled("tier '" + name() + "': the call was cancelled");
      break;
    }
  }
  if (result.is_ok()) {
    result->latency_ms = std::chrono::duration<double, std::milli>(Clock::now() - call->start).count();
  }
  const bool cancelled_call = !result.is_ok() && result.status().code() == ErrorCode::kCancelled;
  if (cancelled_call) {
    std::lock_guard<std::mutex> lock(mu_);
    if (call->probe) probe_in_flight_ = false;
  } else {
    record(!result.is_ok() && counts_against_endpoint(result.status()), call->probe);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    calls_.remove(call);
  }
  cv_.notify_all();
  // The sink leaves the call before it is told: its callbacks hold their caller (a cascade
  // run holds this call's handle in turn), and a sink kept here would keep both alive.
  TierSink sink = std::move(call->sink);
  call->sink = {};
  if (sink.on_done) sink.on_done(std::move(result));
  sink = {};
  call->finished.store(true);
}

Result<TierAnswer> RemoteTier::attempt(Call& call, int attempt_index, bool* retryable,
                                       std::chrono::milliseconds* retry_after) {
  const std::string who = "tier '" + name() + "' (" + config().url + ")";
  auto client = take_client();
  {
    std::lock_guard<std::mutex> lock(call.mu);
    if (call.cancelled) return cancelled("tier '" + name() + "': the call was cancelled");
    call.client = client;
    call.in_attempt = true;
    call.got_token = false;
    call.stop = Call::Stop::kNone;
    call.attempt_start = Clock::now();
  }
  wake_watchdog();

  httplib::Request req;
  req.method = "POST";
  req.path = call.chat ? path_chat_ : path_completions_;
  req.headers.emplace("Content-Type", "application/json");
  req.headers.emplace("Accept", "text/event-stream");
  if (!api_key_.empty()) req.headers.emplace("Authorization", "Bearer " + api_key_);
  req.body = call.body;

  int status = 0;
  std::chrono::milliseconds after(0);
  std::string error_body;
  SseReader sse;
  StreamState st;
  st.chat = call.chat;
  Status stream_error;
  bool interrupted = false;
  TierAnswer out;
  std::vector<std::string> events;
  std::vector<AnswerToken> fresh;
  req.response_handler = [&](const httplib::Response& r) {
    status = r.status;
    after = retry_after_of(r);
    return true;
  };
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    if (status != 200) {
      if (error_body.size() < 8192) error_body.append(data, std::min<size_t>(n, 8192));
      return true;
    }
    events.clear();
    sse.feed(std::string_view(data, n), &events);
    for (const std::string& ev : events) {
      if (ev == "[DONE]") {
        st.done = true;
        continue;
      }
      fresh.clear();
      stream_error = parse_stream_chunk(ev, &st, &fresh);
      if (!stream_error.is_ok()) return false;
      for (AnswerToken& t : fresh) {
        if (out.tokens.empty()) {
          out.first_token_ms =
              std::chrono::duration<double, std::milli>(Clock::now() - call.start).count();
          {
            std::lock_guard<std::mutex> lock(call.mu);
            call.got_token = true;
            call.streamed = true;
          }
          cv_.notify_all();
        }
        const bool keep = !call.sink.on_token || call.sink.on_token(t);
        out.tokens.push_back(std::move(t));
        if (!keep) {
          interrupted = true;
          return false;
        }
      }
    }
    return true;
  };
  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  const bool sent = client->send(req, res, err);
  Call::Stop stop;
  bool was_cancelled;
  {
    std::lock_guard<std::mutex> lock(call.mu);
    stop = call.stop;
    was_cancelled = call.cancelled;
    call.client.reset();
    call.in_attempt = false;
  }
  const int64_t n_tokens = static_cast<int64_t>(out.tokens.size());
  auto fail = [&](Status s, bool may_retry) -> Result<TierAnswer> {
    *retryable = may_retry && n_tokens == 0;
    *retry_after = after;
    return Status(s.code(), who + ": " + s.message());
  };

  if (interrupted) {
    // The observer stopped the answer: what came is the answer (a prefix), as local tiers do.
    out.interrupted = true;
  } else if (stop == Call::Stop::kCancelled || was_cancelled) {
    return cancelled("tier '" + name() + "': the call was cancelled");
  } else if (stop == Call::Stop::kDeadline) {
    return fail(deadline_exceeded(call.deadline_is_request
                                      ? "the request's deadline passed after " +
                                            std::to_string(n_tokens) + " tokens"
                                      : "no complete answer within total_timeout_ms = " +
                                            ms_text(config().total_timeout_ms) + " (" +
                                            std::to_string(n_tokens) + " tokens came)"),
                false);
  } else if (stop == Call::Stop::kFirstToken) {
    return fail(deadline_exceeded("no first token within first_token_timeout_ms = " +
                                  ms_text(config().first_token_timeout_ms) + " (try " +
                                  std::to_string(attempt_index + 1) + ")"),
                true);
  } else if (!stream_error.is_ok()) {
    return fail(stream_error, true);
  } else if (!sent && status == 0) {
    switch (err) {
      case httplib::Error::Connection:
        return fail(bad_gateway("cannot connect (" + httplib::to_string(err) + ")"), true);
      case httplib::Error::ConnectionTimeout:
        return fail(deadline_exceeded("no connection within connect_timeout_ms = " +
                                      ms_text(config().connect_timeout_ms)),
                    true);
      case httplib::Error::SSLServerVerification: {
        const long v = client->get_openssl_verify_result();
        return fail(bad_gateway(std::string("TLS: the server's certificate is not trusted (") +
                                X509_verify_cert_error_string(v) +
                                "); set ca_file to the PEM of the CA that signed it"),
                    false);
      }
      case httplib::Error::SSLLoadingCerts:
        return fail(bad_gateway("TLS: cannot load the trusted certificates" +
                                (config().ca_file.empty() ? std::string(" of the system")
                                                          : " in ca_file " + config().ca_file)),
                    false);
      case httplib::Error::SSLConnection:
        return fail(bad_gateway("TLS handshake failed (is the endpoint https? is the URL's "
                                "scheme right?)"),
                    false);
      default:
        return fail(bad_gateway("the connection failed before a response (" +
                                httplib::to_string(err) + ")"),
                    true);
    }
  } else if (status != 200) {
    const std::string what = "HTTP " + std::to_string(status) +
                             (error_body.empty() ? "" : ": " + error_message_of(error_body));
    if (status == 429) return fail(resource_exhausted("rate limited, " + what), true);
    if (status == 400 || status == 404 || status == 413 || status == 422) {
      return fail(invalid_argument("the endpoint refused the request, " + what), false);
    }
    if (status == 401 || status == 403) {
      return fail(bad_gateway("the endpoint refused the API key (api_key_env), " + what), false);
    }
    return fail(bad_gateway(what), status == 408 || status >= 500);
  } else if (!sent) {
    return fail(bad_gateway("the stream was cut after " + std::to_string(n_tokens) + " tokens (" +
                            httplib::to_string(err) + ")"),
                true);
  } else if (!st.done && !st.finished) {
    return fail(bad_gateway("the stream ended after " + std::to_string(n_tokens) +
                            " tokens without a finish_reason or [DONE]"),
                true);
  }

  for (const AnswerToken& t : out.tokens) out.text += t.text;
  out.finish = st.finished ? st.finish : FinishReason::kStop;
  if (st.has_usage) {
    out.tokens_in = st.prompt_tokens;
    out.tokens_in_cached = st.cached_tokens;
    out.tokens_out = std::max<int64_t>(st.completion_tokens, interrupted ? n_tokens : 0);
  } else {
    // No usage reported: about four characters per token, as OpenAI's own rule of thumb.
    int64_t chars = call.request.raw_prompt ? static_cast<int64_t>(call.request.raw_prompt->size()) : 0;
    for (const ChatMessage& m : call.request.messages) chars += static_cast<int64_t>(m.content.size());
    out.tokens_in = (chars + 3) / 4;
    out.tokens_out = n_tokens;
  }
  out.cost = cost(out.tokens_in, out.tokens_out);
  if (sent && !interrupted && stop == Call::Stop::kNone) return_client(std::move(client));
  return out;
}

}  // namespace frugal::cascade
