// Server: routes, authentication, the per-request channel between the cascade's threads and
// the HTTP handler, SSE streaming, disconnect detection, draining, metrics and the ledger.
#include "server/server.h"

#include <dirent.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <httplib.h>
#include <optional>
#include <random>
#include <sstream>

#include "server/openai_api.h"
#include "util/file_io.h"

namespace frugal::server {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// ---------------------------------------------------------------------------- the client's socket

// cpp-httplib does not hand a handler its socket, and a blocked handler would never learn that
// the client left. The connection is found by its addresses among this process's sockets, and
// polled for the peer's hang-up while the answer is generated.
std::string numeric_host(const sockaddr_storage& a, socklen_t len, int* port) {
  char host[NI_MAXHOST], serv[NI_MAXSERV];
  if (getnameinfo(reinterpret_cast<const sockaddr*>(&a), len, host, sizeof host, serv,
                  sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return "";
  }
  *port = std::atoi(serv);
  return host;
}

bool fd_matches(int fd, const httplib::Request& req) {
  sockaddr_storage peer{}, local{};
  socklen_t plen = sizeof peer, llen = sizeof local;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &plen) != 0) return false;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &llen) != 0) return false;
  int pport = -1, lport = -1;
  const std::string phost = numeric_host(peer, plen, &pport);
  numeric_host(local, llen, &lport);
  return pport == req.remote_port && lport == req.local_port && phost == req.remote_addr;
}

int find_connection_fd(const httplib::Request& req) {
  // A connection stays on one worker thread for its life: remember its socket there, so a
  // keep-alive client's next request costs one check instead of a scan.
  static thread_local int cached = -1;
  if (cached >= 0 && fd_matches(cached, req)) return cached;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int found = -1;
  while (dirent* e = readdir(dir)) {
    const int fd = std::atoi(e->d_name);
    if (fd <= 2 || fd == dirfd(dir)) continue;
    if (fd_matches(fd, req)) {
      found = fd;
      break;
    }
  }
  closedir(dir);
  cached = found;
  return found;
}

// True when the peer has closed the connection (or it failed).
bool peer_gone(int fd) {
  if (fd < 0) return false;
  pollfd p{fd, static_cast<short>(POLLIN | POLLRDHUP), 0};
  if (poll(&p, 1, 0) <= 0) return false;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

std::string random_id(const char* prefix) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s%016llx%08llx", prefix,
                static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng() & 0xffffffffull));
  return buf;
}

// A stable, non-reversible id for an API key in logs: FNV-1a, 8 hex digits.
std::string key_id_of(const std::string& key) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : key) h = (h ^ c) * 1099511628211ull;
  char buf[24];
  std::snprintf(buf, sizeof buf, "key-%08llx", static_cast<unsigned long long>(h & 0xffffffffull));
  return buf;
}

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(dump(e.body()), "application/json");
}

bool is_loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1";
}

// A header's number: nine significant digits (a cost of $1.15e-06 must not read "0.000001").
std::string header_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

// ---------------------------------------------------------------------------- one call

// What the cascade's threads hand the HTTP handler: tokens as they come, the answering tier,
// and the end. Guarded by mu.
struct Server::Call {
  ApiRequest api;
  ResponseMeta meta;
  std::string key_id;
  std::string kind;  // "cascade" or "tier"
  Clock::time_point start = Clock::now();
  std::mutex mu;
  std::condition_variable cv;
  std::deque<cascade::AnswerToken> tokens;
  bool answering = false;
  std::string tier;
  double score = std::nan("");
  std::optional<Result<cascade::CascadeAnswer>> done;
  std::function<void()> cancel;
  double first_token_s = -1;
  Clock::time_point last_token;
  bool cancelled_by_client = false;

  cascade::CascadeSink sink(Server* server, std::shared_ptr<Call> self) {
    cascade::CascadeSink s;
    s.on_answering = [self](const std::string& tier, double score) {
      std::lock_guard<std::mutex> lock(self->mu);
      self->answering = true;
      self->tier = tier;
      self->score = score;
      self->cv.notify_all();
    };
    s.on_token = [self, server](const cascade::AnswerToken& t) {
      const auto now = Clock::now();
      {
        std::lock_guard<std::mutex> lock(self->mu);
        if (self->first_token_s < 0) {
          self->first_token_s = std::chrono::duration<double>(now - self->start).count();
        } else {
          server->metrics_.observe(
              "frugal_inter_token_latency_seconds", {},
              std::chrono::duration<double>(now - self->last_token).count());
        }
        self->last_token = now;
        self->tokens.push_back(t);
      }
      self->cv.notify_all();
      return true;
    };
    s.on_done = [self, server](Result<cascade::CascadeAnswer> r) {
      server->record(*self, r);
      {
        std::lock_guard<std::mutex> lock(self->mu);
        self->done.emplace(std::move(r));
      }
      self->cv.notify_all();
    };
    return s;
  }
};

namespace {

// A direct call to one tier (the request named it), dressed as a cascade answer.
std::function<void()> start_direct(cascade::Tier& tier, const cascade::TierRequest& request,
                                   cascade::CascadeSink sink) {
  auto shared = std::make_shared<cascade::CascadeSink>(std::move(sink));
  auto announced = std::make_shared<std::atomic<bool>>(false);
  cascade::Tier* t = &tier;
  auto announce = [shared, announced, t] {
    if (!announced->exchange(true) && shared->on_answering)
      shared->on_answering(t->name(), std::nan(""));
  };
  cascade::TierSink ts;
  ts.on_token = [shared, announce](const cascade::AnswerToken& tok) {
    announce();
    return !shared->on_token || shared->on_token(tok);
  };
  ts.on_done = [shared, announce, t](Result<cascade::TierAnswer> a) {
    if (!a.is_ok()) {
      shared->on_done(a.status());
      return;
    }
    announce();
    cascade::CascadeAnswer c;
    c.text = a->text;
    c.tokens = a->tokens;
    c.finish = a->finish;
    c.tier = t->name();
    c.score = std::nan("");
    c.tokens_in = a->tokens_in;
    c.tokens_out = a->tokens_out;
    c.cost = a->cost;
    c.latency_ms = a->latency_ms;
    c.answer_tokens_in = a->tokens_in;
    c.answer_tokens_in_cached = a->tokens_in_cached;
    c.trace.push_back({t->name(), a->tokens_in, a->tokens_out, a->cost, a->latency_ms});
    shared->on_done(std::move(c));
  };
  auto call = tier.start(request, std::move(ts));
  if (!call.is_ok()) {
    shared->on_done(call.status());
    return [] {};
  }
  std::shared_ptr<cascade::TierCall> handle = std::move(call).value();
  return [handle] { handle->cancel(); };
}

}  // namespace

// ---------------------------------------------------------------------------- lifecycle

Server::Server(ServerOptions options)
    : options_(std::move(options)), http_(std::make_unique<httplib::Server>()) {
  declare_metrics();
}

Server::~Server() {
  stop();
  if (listener_.joinable()) listener_.join();
  // The tiers' threads call back into the metrics and the ledger (a request a client left is
  // still ending): stop them while both exist.
  cascade_.reset();
  if (ledger_ != nullptr) std::fclose(ledger_);
}

void Server::log(const std::string& line) const {
  if (options_.log) {
    options_.log(line);
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
}

Status Server::bind() {
  const cascade::ServerConfig& sc = options_.config.server;
  // API keys: a file (one per line, # comments) and/or an environment variable.
  if (!sc.api_keys_file.empty()) {
    auto text = read_file(sc.api_keys_file);
    if (!text.is_ok()) {
      return invalid_argument("[server] api_keys_file: " + text.status().message());
    }
    std::istringstream in(*text);
    std::string line;
    while (std::getline(in, line)) {
      const size_t a = line.find_first_not_of(" \t\r");
      if (a == std::string::npos || line[a] == '#') continue;
      const size_t b = line.find_last_not_of(" \t\r");
      api_keys_.insert(line.substr(a, b - a + 1));
    }
  }
  if (!sc.api_keys_env.empty()) {
    if (const char* v = std::getenv(sc.api_keys_env.c_str())) {
      std::string all(v);
      for (char& c : all)
        if (c == '\n' || c == ' ') c = ',';
      std::istringstream in(all);
      std::string key;
      while (std::getline(in, key, ','))
        if (!key.empty()) api_keys_.insert(key);
    }
  }
  if (api_keys_.empty() && !is_loopback(options_.host)) {
    log("frugal serve: warning: no API keys configured and bound to " + options_.host +
        ": anyone who can reach this address can spend your models' time ([server] "
        "api_keys_file or api_keys_env)");
  }
  if (!sc.ledger.empty()) {
    ledger_ = std::fopen(sc.ledger.c_str(), "a");
    if (ledger_ == nullptr) {
      return invalid_argument("[server] ledger: cannot open " + sc.ledger + " for appending");
    }
  }
  const int threads = static_cast<int>(sc.http_threads);
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http_->set_payload_max_length(static_cast<size_t>(sc.max_body_bytes));
  http_->set_keep_alive_max_count(1000);
  // Headers, body and each SSE chunk are separate writes: with Nagle's algorithm a small write
  // after another waits for the client's delayed ACK (40 ms on Linux) — it did, on every answer.
  http_->set_tcp_nodelay(true);
  http_->set_read_timeout(30, 0);
  http_->set_write_timeout(30, 0);
  // SO_REUSEADDR alone: cpp-httplib's default, SO_REUSEPORT, lets a second server bind a port
  // that is in use and silently take half of its connections.
  auto listen_fd = std::make_shared<int>(-1);
  http_->set_socket_options([listen_fd](int sock) {
    const int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    *listen_fd = sock;
  });
  routes();
  if (options_.port == 0) {
    port_ = http_->bind_to_any_port(options_.host);
    if (port_ <= 0) return unavailable("cannot bind " + options_.host + " to any port");
  } else {
    if (!http_->bind_to_port(options_.host, options_.port)) {
      return unavailable("cannot listen on " + options_.host + ":" +
                         std::to_string(options_.port) +
                         " (in use, or not an address of this machine); choose another --port "
                         "or --host");
    }
    port_ = options_.port;
  }
  // cpp-httplib listens with a backlog of 5: a burst of clients connecting at once would have
  // SYNs dropped and retried a second later. Listening again on the bound socket raises it.
  if (*listen_fd >= 0) ::listen(*listen_fd, SOMAXCONN);
  listener_ = std::thread([this] {
    http_->listen_after_bind();
    listener_done_.store(true);
  });
  return Status::ok();
}

Status Server::serve() {
  auto c = options_.make_cascade ? options_.make_cascade(options_.config, options_.cascade)
                                 : cascade::Cascade::create(options_.config, options_.cascade);
  if (!c.is_ok()) {
    stop();
    if (listener_.joinable()) listener_.join();
    return c.status();
  }
  cascade_ = std::move(c).value();
  ready_.store(true);
  metrics_.set("frugal_ready", {}, 1);
  log("frugal serve: ready on http://" + options_.host + ":" + std::to_string(port_) +
      " (model '" + options_.config.server.name + "' is the cascade)");
  if (listener_.joinable()) listener_.join();
  return Status::ok();
}

void Server::stop() {
  if (stopped_.exchange(true)) return;
  draining_.store(true);
  // Let running requests finish, then close the listener (serve() returns once it has).
  const auto deadline =
      Clock::now() + std::chrono::seconds(options_.config.server.request_timeout_s);
  while (in_flight_.load() > 0 && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  // Right after bind() the listener thread may not be listening yet, and cpp-httplib's stop()
  // would then find nothing to stop: wait until it listens (or has given up).
  if (listener_.joinable()) {
    while (!http_->is_running() && !listener_done_.load())
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  http_->stop();
}

// ---------------------------------------------------------------------------- routes

void Server::routes() {
  http_->Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const char* state = draining_ ? "draining" : ready_ ? "ok" : "loading";
    res.status = ready_ && !draining_ ? 200 : 503;
    res.set_content(dump(json{{"status", state}}), "application/json");
  });
  http_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    handle_metrics(res);
  });
  http_->Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) {
    handle_models(req, res);
  });
  http_->Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    handle_completion(req, res, static_cast<int>(Endpoint::kChat));
  });
  http_->Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    handle_completion(req, res, static_cast<int>(Endpoint::kCompletions));
  });
  // Errors cpp-httplib answers itself (unknown path, oversized body) get OpenAI's body too.
  http_->set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    ApiError e;
    e.status = res.status;
    e.type = "invalid_request_error";
    if (res.status == 404) {
      e.message = "no route " + req.method + " " + req.path +
                  " (POST /v1/chat/completions, POST /v1/completions, GET /v1/models, "
                  "GET /health, GET /metrics)";
    } else if (res.status == 413) {
      e.message = "the request body is larger than " +
                  std::to_string(options_.config.server.max_body_bytes) + " bytes";
    } else {
      e.message = "HTTP " + std::to_string(res.status);
    }
    send_error(res, e);
  });
  http_->set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        ApiError e;
        e.status = 500;
        e.type = "server_error";
        e.message = "internal error: " + what;
        send_error(res, e);
      });
}

bool Server::authorized(const httplib::Request& req, httplib::Response& res, std::string* key_id) {
  if (api_keys_.empty()) {
    *key_id = "";
    return true;
  }
  const std::string auth = req.get_header_value("Authorization");
  const std::string prefix = "Bearer ";
  const std::string key = auth.rfind(prefix, 0) == 0 ? auth.substr(prefix.size()) : "";
  if (!key.empty() && api_keys_.count(key) != 0) {
    *key_id = key_id_of(key);
    return true;
  }
  ApiError e;
  e.status = 401;
  e.type = "authentication_error";
  e.code = "invalid_api_key";
  e.message = key.empty() ? "no API key: send 'Authorization: Bearer YOUR_KEY'"
                          : "the API key is not valid for this server";
  send_error(res, e);
  metrics_.add("frugal_http_requests_total", {{"path", req.path}, {"status", "401"}});
  return false;
}

void Server::handle_models(const httplib::Request& req, httplib::Response& res) {
  std::string key_id;
  if (!authorized(req, res, &key_id)) return;
  json data = json::array();
  const int64_t created = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
  data.push_back({{"id", options_.config.server.name},
                  {"object", "model"},
                  {"created", created},
                  {"owned_by", "frugal"},
                  {"frugal", {{"kind", "cascade"}}}});
  for (const cascade::TierConfig* t : options_.config.model_tiers()) {
    data.push_back({{"id", t->name},
                    {"object", "model"},
                    {"created", created},
                    {"owned_by", "frugal"},
                    {"frugal", {{"kind", cascade::tier_kind_name(t->kind)}}}});
  }
  res.set_content(dump(json{{"object", "list"}, {"data", data}}), "application/json");
}

void Server::handle_completion(const httplib::Request& req, httplib::Response& res,
                               int endpoint_int) {
  const Endpoint endpoint = static_cast<Endpoint>(endpoint_int);
  auto finish_http = [&](int status) {
    metrics_.add("frugal_http_requests_total",
                 {{"path", req.path}, {"status", std::to_string(status)}});
  };
  std::string key_id;
  if (!authorized(req, res, &key_id)) return;
  if (draining_ || !ready_) {
    ApiError e = api_error(unavailable(draining_ ? "the server is shutting down; retry on "
                                                   "another instance"
                                                 : "the models are still loading; retry shortly"));
    res.set_header("Retry-After", "1");
    send_error(res, e);
    finish_http(e.status);
    return;
  }
  const cascade::CascadeConfig& cfg = options_.config;
  ParseLimits limits;
  limits.default_max_tokens = cfg.max_tokens;
  limits.max_prompt_chars = cfg.server.max_prompt_chars;
  ParseResult parsed = parse_request(endpoint, req.body, limits);
  if (!parsed.ok) {
    send_error(res, parsed.error);
    finish_http(parsed.error.status);
    return;
  }
  auto call = std::make_shared<Call>();
  call->api = std::move(parsed.request);
  call->key_id = key_id;
  call->meta.id = random_id(endpoint == Endpoint::kChat ? "chatcmpl-" : "cmpl-");
  call->meta.created = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
  const std::string& model = call->api.model;
  cascade::Tier* direct = nullptr;
  if (model.empty() || model == cfg.server.name) {
    call->kind = "cascade";
    call->meta.model = cfg.server.name;
  } else {
    for (const auto& t : cascade_->model_tiers())
      if (t->name() == model) direct = t.get();
    if (direct == nullptr) {
      std::string known = "'" + cfg.server.name + "' (the cascade)";
      for (const auto& t : cascade_->model_tiers()) known += ", '" + t->name() + "'";
      ApiError e = api_error(not_found("the model '" + model + "' does not exist here; use " +
                                       known + " (GET /v1/models)"),
                             "model");
      send_error(res, e);
      finish_http(e.status);
      return;
    }
    call->kind = "tier";
    call->meta.model = model;
  }
  call->api.tier.deadline = Clock::now() + std::chrono::seconds(cfg.server.request_timeout_s);

  in_flight_++;
  // Counts the request as in flight until the response (a stream included) is done.
  std::shared_ptr<void> leave(nullptr, [this](void*) { in_flight_--; });
  metrics_.set("frugal_http_in_flight", {}, static_cast<double>(in_flight_.load()));

  cascade::CascadeSink sink = call->sink(this, call);
  if (direct != nullptr) {
    call->cancel = start_direct(*direct, call->api.tier, std::move(sink));
  } else {
    std::shared_ptr<cascade::CascadeRun> run = cascade_->start(call->api.tier, std::move(sink));
    call->cancel = [run] { run->cancel(); };
  }

  // Wait for the answering tier (streaming) or the whole answer, watching the client.
  const int fd = find_connection_fd(req);
  {
    std::unique_lock<std::mutex> lock(call->mu);
    while (!call->done && !(call->api.stream && call->answering)) {
      call->cv.wait_for(lock, std::chrono::milliseconds(20));
      if (!call->done && peer_gone(fd)) {
        call->cancelled_by_client = true;
        lock.unlock();
        call->cancel();
        lock.lock();
        call->cv.wait(lock, [&] { return call->done.has_value(); });
        finish_http(499);
        return;
      }
    }
  }
  // Headers: the decision is known once the answer starts.
  auto set_decision_headers = [&](const std::string& tier, double score) {
    res.set_header("x-frugal-tier", tier);
    res.set_header("x-frugal-score", std::isfinite(score) ? header_number(score) : "null");
  };
  if (!call->api.stream || (call->done && !call->done->is_ok())) {
    const Result<cascade::CascadeAnswer>& r = *call->done;
    if (!r.is_ok()) {
      // A prompt no tier's context holds is the prompt's fault: name the field, as OpenAI does.
      const bool too_long = r.status().code() == ErrorCode::kOutOfRange;
      ApiError e = api_error(r.status(), !too_long                    ? ""
                                         : endpoint == Endpoint::kChat ? "messages"
                                                                       : "prompt");
      if (e.status == 429) res.set_header("Retry-After", "1");
      send_error(res, e);
      finish_http(e.status);
      return;
    }
    set_decision_headers(r->tier, r->score);
    res.set_header("x-frugal-cost", header_number(r->cost));
    if (std::isfinite(r->semantic_similarity)) {
      res.set_header("x-frugal-semantic-similarity", header_number(r->semantic_similarity));
      if (std::isfinite(r->semantic_check_score))
        res.set_header("x-frugal-semantic-check", header_number(r->semantic_check_score));
    }
    res.set_content(dump(response_body(call->api, call->meta, *r)), "application/json");
    finish_http(200);
    return;
  }

  // Streaming: SSE chunks as tokens arrive; the decision in the last chunk's frugal object.
  {
    std::lock_guard<std::mutex> lock(call->mu);
    set_decision_headers(call->tier, call->score);
  }
  res.set_header("Cache-Control", "no-cache");
  auto first = std::make_shared<bool>(true);
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, call, fd, first, leave](size_t, httplib::DataSink& out) {
        auto write_event = [&](const json& j) {
          const std::string line = "data: " + dump(j) + "\n\n";
          return out.write(line.data(), line.size());
        };
        std::unique_lock<std::mutex> lock(call->mu);
        call->cv.wait_for(lock, std::chrono::milliseconds(20),
                          [&] { return !call->tokens.empty() || call->done.has_value(); });
        std::deque<cascade::AnswerToken> tokens;
        tokens.swap(call->tokens);
        const bool finished = call->done.has_value() && tokens.empty();
        lock.unlock();
        for (const cascade::AnswerToken& t : tokens) {
          if (t.text.empty() && !call->api.logprobs) continue;
          if (!write_event(token_chunk(call->api, call->meta, {t}, *first))) {
            call->cancelled_by_client = true;
            call->cancel();
            return false;
          }
          *first = false;
        }
        if (!finished) {
          if (peer_gone(fd)) {
            call->cancelled_by_client = true;
            call->cancel();
            return false;
          }
          return true;
        }
        const Result<cascade::CascadeAnswer>& r = *call->done;
        if (!r.is_ok()) {
          // A failure after the stream began: an error event, never a silent cut.
          write_event(api_error(r.status()).body());
        } else {
          for (const json& j : final_chunks(call->api, call->meta, *r)) write_event(j);
          static const std::string kDone = "data: [DONE]\n\n";
          out.write(kDone.data(), kDone.size());
        }
        out.done();
        return true;
      },
      // cpp-httplib also ends a stream itself, without calling the provider again, when it
      // finds the client gone before a write: cancel the request then too.
      [call](bool success) {
        if (success) return;
        call->cancelled_by_client = true;
        call->cancel();
      });
  finish_http(200);
}

// ---------------------------------------------------------------------------- metrics, ledger

void Server::declare_metrics() {
  using T = Metrics::Type;
  const std::vector<double> latency = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                       0.25,  0.5,    1,     2.5,  5,     10,   30};
  const std::vector<double> itl = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                   0.025,  0.05,    0.1,    0.25,  0.5,    1};
  metrics_.declare("frugal_ready", T::kGauge, "1 once the models are loaded and requests are served.");
  metrics_.declare("frugal_http_requests_total", T::kCounter, "HTTP requests by path and status code.");
  metrics_.declare("frugal_http_in_flight", T::kGauge, "Completion requests being answered now.");
  metrics_.declare("frugal_requests_total", T::kCounter,
                   "Completion requests by model kind (cascade or tier), answering tier and outcome.");
  metrics_.declare("frugal_escalations_total", T::kCounter,
                   "Cascade requests sent past tier 1, by reason (score, early, tier1_error).");
  metrics_.declare("frugal_cache_hits_total", T::kCounter, "Cascade requests answered by the response cache.");
  metrics_.declare("frugal_cache_misses_total", T::kCounter, "Cacheable cascade requests the cache did not hold.");
  metrics_.declare("frugal_semantic_hits_total", T::kCounter,
                   "Cascade requests served a near duplicate's cached answer (semantic cache).");
  metrics_.declare("frugal_tier_available", T::kGauge,
                   "1 unless the tier is skipped (a remote tier's circuit breaker is open) or its backend is down (Redis).");
  metrics_.declare("frugal_tier_failures_total", T::kCounter, "Failed calls of a remote tier, or failed Redis commands, by tier.");
  metrics_.declare("frugal_tier_retries_total", T::kCounter, "Retried calls of a remote tier, by tier.");
  metrics_.declare("frugal_tier_outages_total", T::kCounter,
                   "Times a tier became unavailable (breaker opened, Redis lost), by tier.");
  metrics_.declare("frugal_tier_in_flight", T::kGauge, "Calls a remote tier is running now.");
  metrics_.declare("frugal_tokens_in_total", T::kCounter, "Prompt tokens processed, by tier.");
  metrics_.declare("frugal_tokens_out_total", T::kCounter, "Tokens generated, by tier.");
  metrics_.declare("frugal_cost_dollars_total", T::kCounter, "Dollars spent over every tier that ran.");
  metrics_.declare("frugal_saved_dollars_total", T::kCounter,
                   "Dollars saved against sending every cascade request to the top tier alone.");
  metrics_.declare("frugal_queue_waiting", T::kGauge, "Requests waiting in a local tier's scheduler.");
  metrics_.declare("frugal_running_sequences", T::kGauge, "Sequences a local tier's scheduler is batching.");
  metrics_.declare("frugal_kv_blocks_used", T::kGauge, "KV-cache blocks held by live sequences, by tier.");
  metrics_.declare("frugal_kv_blocks_capacity", T::kGauge, "KV-cache blocks in the pool, by tier.");
  metrics_.declare("frugal_preemptions_total", T::kCounter, "Sequences preempted for lack of KV-cache blocks, by tier.");
  metrics_.declare("frugal_time_to_first_token_seconds", T::kHistogram,
                   "From the request's arrival to the first answer token the client could see.", latency);
  metrics_.declare("frugal_inter_token_latency_seconds", T::kHistogram,
                   "Between consecutive answer tokens handed to the client.", itl);
  metrics_.declare("frugal_request_duration_seconds", T::kHistogram,
                   "From the request's arrival to its last token or its error.", latency);
  metrics_.set("frugal_ready", {}, 0);
}

void Server::handle_metrics(httplib::Response& res) {
  if (cascade_ != nullptr) {
    for (const auto& t : cascade_->model_tiers()) {
      auto* local = dynamic_cast<cascade::LocalTier*>(t.get());
      if (local == nullptr) continue;
      const SchedulerStats st = local->scheduler().stats();
      const Labels l = {{"tier", t->name()}};
      metrics_.set("frugal_queue_waiting", l, static_cast<double>(st.waiting));
      metrics_.set("frugal_running_sequences", l, static_cast<double>(st.running));
      metrics_.set("frugal_kv_blocks_used", l, static_cast<double>(st.kv_blocks_used));
      metrics_.set("frugal_kv_blocks_capacity", l, static_cast<double>(st.kv_blocks_total));
      const double seen = metrics_.value("frugal_preemptions_total", l);
      metrics_.add("frugal_preemptions_total", l, static_cast<double>(st.preemptions) - seen);
    }
  }
  if (cascade_ != nullptr) {
    // Endpoint and backend health (cascade::TierHealth): remote tiers and the Redis cache.
    std::vector<cascade::Tier*> tiers;
    if (cascade_->cache() != nullptr) tiers.push_back(cascade_->cache());
    for (const auto& t : cascade_->model_tiers()) tiers.push_back(t.get());
    for (cascade::Tier* t : tiers) {
      const cascade::TierHealth h = t->health();
      const Labels l = {{"tier", t->name()}};
      metrics_.set("frugal_tier_available", l, h.available ? 1 : 0);
      metrics_.set("frugal_tier_in_flight", l, static_cast<double>(h.in_flight));
      for (const auto& [name, total] : {std::pair<const char*, int64_t>{"frugal_tier_failures_total", h.failures},
                                        {"frugal_tier_retries_total", h.retries},
                                        {"frugal_tier_outages_total", h.outages}}) {
        metrics_.add(name, l, static_cast<double>(total) - metrics_.value(name, l));
      }
    }
  }
  metrics_.set("frugal_http_in_flight", {}, static_cast<double>(in_flight_.load()));
  res.set_content(metrics_.text(), "text/plain; version=0.0.4");
}

void Server::record(const Call& call, const Result<cascade::CascadeAnswer>& r) {
  const double duration = seconds_since(call.start);
  std::string outcome = "ok";
  if (!r.is_ok()) {
    const ErrorCode c = r.status().code();
    outcome = c == ErrorCode::kCancelled          ? "cancelled"
              : c == ErrorCode::kDeadlineExceeded ? "timeout"
              : api_error(r.status()).status < 500 ? "rejected"
                                                   : "error";
  }
  const std::string tier = r.is_ok() ? r->tier : "";
  metrics_.add("frugal_requests_total", {{"model_kind", call.kind}, {"tier", tier}, {"outcome", outcome}});
  metrics_.observe("frugal_request_duration_seconds", {}, duration);
  if (r.is_ok()) {
    const cascade::CascadeAnswer& a = *r;
    if (call.first_token_s >= 0) {
      metrics_.observe("frugal_time_to_first_token_seconds", {}, call.first_token_s);
    }
    for (const cascade::TierUse& u : a.trace) {
      metrics_.add("frugal_tokens_in_total", {{"tier", u.tier}}, static_cast<double>(u.tokens_in));
      metrics_.add("frugal_tokens_out_total", {{"tier", u.tier}}, static_cast<double>(u.tokens_out));
    }
    metrics_.add("frugal_cost_dollars_total", {}, a.cost);
    if (call.kind == "cascade" && cascade_ != nullptr) {
      if (a.cache_hit) metrics_.add("frugal_cache_hits_total", {});
      if (a.semantic_hit) metrics_.add("frugal_semantic_hits_total", {});
      else if (cascade::CacheTier::cacheable(call.api.tier) && cascade_->cache() != nullptr)
        metrics_.add("frugal_cache_misses_total", {});
      if (a.escalated) {
        const char* why = a.escalated_early ? "early" : !a.tier_errors.empty() ? "tier1_error" : "score";
        metrics_.add("frugal_escalations_total", {{"reason", why}});
      }
      // Top tier alone: the same prompt and answer length at the top tier's prices.
      const double top_only =
          cascade_->top_tier().cost(a.answer_tokens_in, static_cast<int64_t>(a.tokens.size()));
      metrics_.add("frugal_saved_dollars_total", {}, std::max(0.0, top_only - a.cost));
    }
  }
  if (ledger_ == nullptr) return;
  json line{{"time", std::chrono::duration<double>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count()},
            {"id", call.meta.id},
            {"key_id", call.key_id.empty() ? json(nullptr) : json(call.key_id)},
            {"model", call.meta.model},
            {"user", call.api.user},
            {"outcome", outcome},
            {"latency_ms", duration * 1000}};
  if (r.is_ok()) {
    line["tier"] = r->tier;
    line["tiers"] = frugal_object(*r)["tiers"];
    line["tokens_in"] = r->tokens_in;
    line["tokens_out"] = r->tokens_out;
    line["cost"] = r->cost;
    line["score"] = std::isfinite(r->score) ? json(r->score) : json(nullptr);
    line["escalated"] = r->escalated;
    line["escalated_early"] = r->escalated_early;
    line["cache_hit"] = r->cache_hit;
  } else {
    line["error"] = r.status().to_string();
  }
  const std::string text = dump(line) + "\n";
  std::lock_guard<std::mutex> lock(ledger_mu_);
  std::fwrite(text.data(), 1, text.size(), ledger_);
  std::fflush(ledger_);
}

}  // namespace frugal::server
