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
  // What the request runs on: a reload swaps the server's pair, never this one.
  std::shared_ptr<cascade::Cascade> cascade;
  std::shared_ptr<cascade::ShadowChecker> shadow;
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
// The keys in environment variable `name` (unset or empty name: none), separated by commas,
// spaces or newlines.
void add_keys_from_env(const std::string& name, std::set<std::string>* keys) {
  if (name.empty()) return;
  const char* v = std::getenv(name.c_str());
  if (v == nullptr) return;
  std::string all(v);
  for (char& c : all)
    if (c == '\n' || c == ' ') c = ',';
  std::istringstream in(all);
  std::string key;
  while (std::getline(in, key, ','))
    if (!key.empty()) keys->insert(key);
}

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
  // still ending): stop them while both exist. The shadow checker first (its checks use the
  // cascade); the cascade once no request holds it, so that its tiers are never freed from
  // one of their own threads.
  std::shared_ptr<cascade::Cascade> c;
  {
    std::lock_guard<std::mutex> lock(cascade_mu_);
    shadow_.reset();
    c = std::move(cascade_);
  }
  const auto until = Clock::now() + std::chrono::seconds(10);
  while (c != nullptr && c.use_count() > 1 && Clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  c.reset();
  if (ledger_ != nullptr) std::fclose(ledger_);
}

std::shared_ptr<cascade::Cascade> Server::current() const {
  std::lock_guard<std::mutex> lock(cascade_mu_);
  return cascade_;
}

std::shared_ptr<cascade::ShadowChecker> Server::current_shadow() const {
  std::lock_guard<std::mutex> lock(cascade_mu_);
  return shadow_;
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
  add_keys_from_env(sc.api_keys_env, &api_keys_);
  add_keys_from_env(sc.admin_keys_env, &admin_keys_);
  if (!sc.distill_log.empty()) {
    auto log = cascade::DistillLog::open(sc.distill_log, sc.distill_log_max_bytes);
    if (!log.is_ok()) return invalid_argument("[server] distill_log: " + log.status().message());
    distill_ = std::move(log).value();
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
  std::shared_ptr<cascade::Cascade> loaded = std::move(c).value();
  auto shadow = make_shadow(loaded);
  if (!shadow.is_ok()) {
    stop();
    if (listener_.joinable()) listener_.join();
    return shadow.status();
  }
  {
    std::lock_guard<std::mutex> lock(cascade_mu_);
    cascade_ = std::move(loaded);
    shadow_ = std::move(shadow).value();
  }
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

// ---------------------------------------------------------------------------- shadow, reload

std::string Server::bounded_slice(const std::string& slice) {
  if (slice.empty()) return "";
  std::lock_guard<std::mutex> lock(slices_mu_);
  if (slices_seen_.count(slice) != 0) return slice;
  const int64_t cap = options_.config.shadow.max_slices;
  if (static_cast<int64_t>(slices_seen_.size()) >= cap) return "other";
  slices_seen_.insert(slice);
  return slice;
}

Result<std::shared_ptr<cascade::ShadowChecker>> Server::make_shadow(
    const std::shared_ptr<cascade::Cascade>& c) {
  cascade::ShadowChecker::Options o;
  o.seed = options_.shadow_seed;
  o.log = [this](const std::string& line) { log(line); };
  o.distill = distill_.get();
  auto slice_label = [this](const std::string& slice) {
    const std::string b = bounded_slice(slice);
    return b.empty() ? std::string("none") : b;
  };
  o.observer.on_outcome = [this, slice_label](const std::string& slice, bool agree,
                                              const std::string& method) {
    metrics_.add("frugal_shadow_checks_total", {{"slice", slice_label(slice)},
                                                {"outcome", agree ? "agree" : "disagree"},
                                                {"method", method}});
  };
  o.observer.on_drop = [this](const std::string& reason) {
    metrics_.add("frugal_shadow_dropped_total", {{"reason", reason}});
  };
  o.observer.on_spent = [this](double dollars) {
    metrics_.add("frugal_shadow_spent_dollars_total", {}, dollars);
  };
  o.observer.on_alarm = [this, slice_label](const cascade::DriftState& st) {
    metrics_.add("frugal_drift_alarms_total",
                 {{"slice", st.slice.empty() ? std::string("all") : slice_label(st.slice)}});
  };
  FRUGAL_ASSIGN_OR_RETURN(auto checker, cascade::ShadowChecker::create(c, std::move(o)));
  return std::shared_ptr<cascade::ShadowChecker>(std::move(checker));
}

Status Server::reload() {
  std::lock_guard<std::mutex> reloading(reload_mu_);
  if (current() == nullptr) return unavailable("the server has not loaded a cascade yet");
  auto config = options_.load_config ? options_.load_config()
                                     : cascade::load_cascade_config(options_.config.path);
  auto refuse = [&](const Status& s) {
    metrics_.add("frugal_reloads_total", {{"outcome", "refused"}});
    log("frugal serve: reload refused, still serving the previous config: " + s.to_string());
    return s;
  };
  if (!config.is_ok()) return refuse(config.status());
  auto built = options_.make_cascade ? options_.make_cascade(*config, options_.cascade)
                                     : cascade::Cascade::create(*config, options_.cascade);
  if (!built.is_ok()) return refuse(built.status());
  std::shared_ptr<cascade::Cascade> fresh = std::move(built).value();
  auto shadow = make_shadow(fresh);
  if (!shadow.is_ok()) return refuse(shadow.status());
  std::shared_ptr<cascade::Cascade> old;
  std::shared_ptr<cascade::ShadowChecker> old_shadow;
  {
    std::lock_guard<std::mutex> lock(cascade_mu_);
    old = std::exchange(cascade_, std::move(fresh));
    old_shadow = std::exchange(shadow_, std::move(shadow).value());
  }
  // Requests running on the old pair finish there; then it is freed here, never on one of the
  // old tiers' own threads.
  const auto until = Clock::now() + std::chrono::seconds(options_.config.server.request_timeout_s);
  while ((old_shadow.use_count() > 1 || old.use_count() > 2) && Clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  old_shadow.reset();
  while (old.use_count() > 1 && Clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  old.reset();
  metrics_.add("frugal_reloads_total", {{"outcome", "ok"}});
  char line[256];
  std::snprintf(line, sizeof line, "frugal serve: reloaded %s (threshold %.6g)",
                config->path.c_str(), config->threshold);
  log(line);
  return Status::ok();
}

void Server::handle_reload(const httplib::Request& req, httplib::Response& res) {
  ApiError e;
  e.type = "authentication_error";
  if (admin_keys_.empty()) {
    e.status = 403;
    e.type = "permission_error";
    e.message = "no admin keys are configured ([server] admin_keys_env): reload with SIGHUP";
    send_error(res, e);
    return;
  }
  const std::string auth = req.get_header_value("Authorization");
  const std::string prefix = "Bearer ";
  const std::string key = auth.rfind(prefix, 0) == 0 ? auth.substr(prefix.size()) : "";
  if (key.empty() || admin_keys_.count(key) == 0) {
    e.status = 401;
    e.code = "invalid_api_key";
    e.message = key.empty() ? "no admin key: send 'Authorization: Bearer ADMIN_KEY'"
                            : "the key is not an admin key of this server";
    send_error(res, e);
    return;
  }
  const Status s = reload();
  if (!s.is_ok()) {
    e = api_error(s);
    if (s.code() != ErrorCode::kUnavailable) {
      // The new config (or a model it names) is at fault, not the request: 422, and the
      // message says what to fix. The old cascade is still serving.
      e.status = 422;
      e.type = "invalid_request_error";
      e.message = "reload refused, still serving the previous config: " + s.message();
    }
    send_error(res, e);
    return;
  }
  auto c = current();
  res.set_content(dump(json{{"status", "reloaded"},
                            {"config", c->config().path},
                            {"threshold", c->threshold()}}),
                  "application/json");
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
  http_->Post("/admin/reload", [this](const httplib::Request& req, httplib::Response& res) {
    handle_reload(req, res);
    metrics_.add("frugal_http_requests_total",
                 {{"path", req.path}, {"status", std::to_string(res.status)}});
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
  auto c = current();
  const cascade::CascadeConfig& cfg = c != nullptr ? c->config() : options_.config;
  json data = json::array();
  const int64_t created = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
  data.push_back({{"id", cfg.server.name},
                  {"object", "model"},
                  {"created", created},
                  {"owned_by", "frugal"},
                  {"frugal", {{"kind", "cascade"}}}});
  for (const cascade::TierConfig* t : cfg.model_tiers()) {
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
  // The request runs on the cascade served now, to its end, whatever a reload does meanwhile.
  std::shared_ptr<cascade::Cascade> serving;
  std::shared_ptr<cascade::ShadowChecker> shadowing;
  {
    std::lock_guard<std::mutex> lock(cascade_mu_);
    serving = cascade_;
    shadowing = shadow_;
  }
  const cascade::CascadeConfig& cfg = serving->config();
  ParseLimits limits;
  limits.default_max_tokens = cfg.max_tokens;
  limits.max_prompt_chars = options_.config.server.max_prompt_chars;
  ParseResult parsed = parse_request(endpoint, req.body, limits);
  if (!parsed.ok) {
    send_error(res, parsed.error);
    finish_http(parsed.error.status);
    return;
  }
  auto call = std::make_shared<Call>();
  call->api = std::move(parsed.request);
  call->key_id = key_id;
  call->cascade = serving;
  call->shadow = shadowing;
  if (const std::string h = req.get_header_value("x-frugal-slice"); !h.empty() && h.size() <= 128) {
    call->api.frugal.slice = h;
  }
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
    for (const auto& t : serving->model_tiers())
      if (t->name() == model) direct = t.get();
    if (direct == nullptr) {
      std::string known = "'" + cfg.server.name + "' (the cascade)";
      for (const auto& t : serving->model_tiers()) known += ", '" + t->name() + "'";
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
  call->api.tier.deadline =
      Clock::now() + std::chrono::seconds(options_.config.server.request_timeout_s);

  in_flight_++;
  // Counts the request as in flight until the response (a stream included) is done.
  std::shared_ptr<void> leave(nullptr, [this](void*) { in_flight_--; });
  metrics_.set("frugal_http_in_flight", {}, static_cast<double>(in_flight_.load()));

  cascade::CascadeSink sink = call->sink(this, call);
  if (direct != nullptr) {
    call->cancel = start_direct(*direct, call->api.tier, std::move(sink));
  } else {
    std::shared_ptr<cascade::CascadeRun> run = serving->start(call->api.tier, std::move(sink));
    call->cancel = [run] { run->cancel(); };
  }
  // The cancel function holds the run (or tier call), whose sink holds the call: unlink them
  // once the response is over, or every request would stay in memory, and with it the cascade
  // it ran on (which a reload waits to free).
  std::shared_ptr<void> unlink(nullptr, [call](void*) { call->cancel = [] {}; });

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
      [this, call, fd, first, leave, unlink](size_t, httplib::DataSink& out) {
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
  // Speculative decoding, under vLLM's names (vllm:spec_decode_*): acceptance rate is
  // accepted / draft tokens, mean acceptance length 1 + accepted / drafts.
  metrics_.declare("frugal_spec_decode_num_drafts_total", T::kCounter,
                   "Verification passes with a draft (a draft model or prompt lookup), by tier.");
  metrics_.declare("frugal_spec_decode_num_draft_tokens_total", T::kCounter, "Draft tokens proposed, by tier.");
  metrics_.declare("frugal_spec_decode_num_accepted_tokens_total", T::kCounter,
                   "Draft tokens the target model accepted, by tier.");
  metrics_.declare("frugal_spec_decode_num_accepted_tokens_per_pos_total", T::kCounter,
                   "Drafts whose token at this position (0-based) was accepted, by tier and position.");
  metrics_.declare("frugal_escalation_tokens_reused_total", T::kCounter,
                   "Tier 1's answer tokens the top tier kept when it verified them as a draft (speculative escalation).");
  metrics_.declare("frugal_speculative_cascade_tokens_kept_total", T::kCounter,
                   "Of those, tokens kept against the top tier's own choice (speculative cascade's deferral rule).");
  metrics_.declare("frugal_time_to_first_token_seconds", T::kHistogram,
                   "From the request's arrival to the first answer token the client could see.", latency);
  metrics_.declare("frugal_inter_token_latency_seconds", T::kHistogram,
                   "Between consecutive answer tokens handed to the client.", itl);
  metrics_.declare("frugal_shadow_checks_total", T::kCounter,
                   "Shadow checks of tier 1's kept answers against the top tier, by slice, outcome (agree, disagree) and method (exact, check, logprob).");
  metrics_.declare("frugal_shadow_dropped_total", T::kCounter,
                   "Sampled shadow checks not run, by reason (budget, queue, error).");
  metrics_.declare("frugal_shadow_spent_dollars_total", T::kCounter, "Dollars the shadow checks spent on the top tier.");
  metrics_.declare("frugal_shadow_agreement", T::kGauge,
                   "Share of shadow checks tier 1 agreed with the top tier on, by slice (all: overall), since the last reload.");
  metrics_.declare("frugal_shadow_expected_agreement", T::kGauge,
                   "The agreement calibration predicts ([shadow] expected_agreement), by slice.");
  metrics_.declare("frugal_drift_statistic_nats", T::kGauge, "The drift alarm's CUSUM statistic, by slice (all: overall).");
  metrics_.declare("frugal_drift_threshold_nats", T::kGauge, "The CUSUM threshold at which the drift alarm fires, by slice.");
  metrics_.declare("frugal_drift_alarm", T::kGauge, "1 once the drift alarm has fired for the slice (until a reload).");
  metrics_.declare("frugal_drift_alarms_total", T::kCounter, "Drift alarms fired, by slice.");
  metrics_.declare("frugal_escalate_all", T::kGauge,
                   "1 while every request goes to the top tier (the drift alarm's escalate-all action; a reload clears it).");
  metrics_.declare("frugal_reloads_total", T::kCounter, "Reloads (SIGHUP, POST /admin/reload), by outcome (ok, refused).");
  metrics_.declare("frugal_distill_log_lines", T::kGauge, "Lines written to the distillation log since the start.");
  metrics_.declare("frugal_distill_log_write_errors", T::kGauge, "Distillation log lines that could not be written.");
  metrics_.declare("frugal_request_duration_seconds", T::kHistogram,
                   "From the request's arrival to its last token or its error.", latency);
  metrics_.set("frugal_ready", {}, 0);
}

void Server::handle_metrics(httplib::Response& res) {
  const std::shared_ptr<cascade::Cascade> serving = current();
  if (serving != nullptr) {
    for (const auto& t : serving->model_tiers()) {
      auto* local = dynamic_cast<cascade::LocalTier*>(t.get());
      if (local == nullptr) continue;
      const SchedulerStats st = local->scheduler().stats();
      const Labels l = {{"tier", t->name()}};
      metrics_.set("frugal_queue_waiting", l, static_cast<double>(st.waiting));
      metrics_.set("frugal_running_sequences", l, static_cast<double>(st.running));
      metrics_.set("frugal_kv_blocks_used", l, static_cast<double>(st.kv_blocks_used));
      metrics_.set("frugal_kv_blocks_capacity", l, static_cast<double>(st.kv_blocks_total));
      // Counters the scheduler keeps: the metric catches up to them (the scheduler of a
      // reloaded cascade starts afresh, and a counter never goes down, so only gains count).
      auto catch_up = [&](const char* name, const Labels& labels, uint64_t total) {
        const double gain = static_cast<double>(total) - metrics_.value(name, labels);
        if (gain > 0) metrics_.add(name, labels, gain);
      };
      catch_up("frugal_preemptions_total", l, st.preemptions);
      if (st.spec_drafts > 0) {
        catch_up("frugal_spec_decode_num_drafts_total", l, st.spec_drafts);
        catch_up("frugal_spec_decode_num_draft_tokens_total", l, st.spec_draft_tokens);
        catch_up("frugal_spec_decode_num_accepted_tokens_total", l, st.spec_accepted_tokens);
        for (size_t i = 0; i < st.spec_accepted_by_position.size(); ++i) {
          catch_up("frugal_spec_decode_num_accepted_tokens_per_pos_total",
                   {{"tier", t->name()}, {"position", std::to_string(i)}},
                   st.spec_accepted_by_position[i]);
        }
      }
    }
  }
  if (serving != nullptr) {
    // Endpoint and backend health (cascade::TierHealth): remote tiers and the Redis cache.
    std::vector<cascade::Tier*> tiers;
    if (serving->cache() != nullptr) tiers.push_back(serving->cache());
    for (const auto& t : serving->model_tiers()) tiers.push_back(t.get());
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
  if (serving != nullptr) metrics_.set("frugal_escalate_all", {}, serving->escalate_all() ? 1 : 0);
  if (const auto shadow = current_shadow()) {
    // The drift detectors of the cascade served now (a reload starts them afresh).
    for (const cascade::DriftState& st : shadow->drift()) {
      const Labels l = {{"slice", st.slice.empty() ? std::string("all") : bounded_slice(st.slice)}};
      metrics_.set("frugal_drift_statistic_nats", l, st.statistic_nats);
      metrics_.set("frugal_drift_threshold_nats", l, st.design.threshold_nats());
      metrics_.set("frugal_drift_alarm", l, st.alarm ? 1 : 0);
      metrics_.set("frugal_shadow_expected_agreement", l, st.expected_agreement);
      metrics_.set("frugal_shadow_agreement", l,
                   st.outcomes > 0 ? static_cast<double>(st.agreements) /
                                         static_cast<double>(st.outcomes)
                                   : 0.0);
    }
  }
  if (distill_ != nullptr) {
    metrics_.set("frugal_distill_log_lines", {}, static_cast<double>(distill_->lines()));
    metrics_.set("frugal_distill_log_write_errors", {}, static_cast<double>(distill_->write_errors()));
  }
  metrics_.set("frugal_http_in_flight", {}, static_cast<double>(in_flight_.load()));
  res.set_content(metrics_.text(), "text/plain; version=0.0.4");
}

// After a cascade request's answer: the distillation log takes an escalated request, the shadow
// checker considers a kept one. Both run on the answering tier's thread and neither waits on a
// tier.
void Server::after_answer(const Call& call, const cascade::CascadeAnswer& a) {
  if (a.escalated && distill_ != nullptr) {
    const double now = std::chrono::duration<double>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
    distill_->append(cascade::distill_escalated_line(call.api.tier, a, call.cascade->tier1().name(),
                                                     call.api.frugal.slice, now));
  }
  if (call.shadow != nullptr) call.shadow->offer(call.api.tier, call.api.frugal, a);
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
    if (call.kind == "cascade" && call.cascade != nullptr) {
      if (a.cache_hit) metrics_.add("frugal_cache_hits_total", {});
      if (a.semantic_hit) metrics_.add("frugal_semantic_hits_total", {});
      else if (cascade::CacheTier::cacheable(call.api.tier) && call.cascade->cache() != nullptr)
        metrics_.add("frugal_cache_misses_total", {});
      if (a.escalated) {
        const bool tier1_ran = !a.tier1.tokens.empty() || !a.tier1.text.empty();
        const char* why = a.escalated_early        ? "early"
                          : !a.tier_errors.empty() ? "tier1_error"
                          : !tier1_ran             ? "escalate_all"
                                                   : "score";
        metrics_.add("frugal_escalations_total", {{"reason", why}});
        if (a.tokens_reused > 0) {
          metrics_.add("frugal_escalation_tokens_reused_total", {}, static_cast<double>(a.tokens_reused));
        }
        if (a.tokens_kept > 0) {
          metrics_.add("frugal_speculative_cascade_tokens_kept_total", {},
                       static_cast<double>(a.tokens_kept));
        }
      }
      // Top tier alone: the same prompt and answer length at the top tier's prices.
      const double top_only =
          call.cascade->top_tier().cost(a.answer_tokens_in, static_cast<int64_t>(a.tokens.size()));
      metrics_.add("frugal_saved_dollars_total", {}, std::max(0.0, top_only - a.cost));
      after_answer(call, a);
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
