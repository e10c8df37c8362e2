// Server: `frugal serve` — the cascade behind an OpenAI-compatible HTTP API (cpp-httplib).
// Transport only: requests are checked into cascade requests (openai_api.h), every decision is
// the cascade's, and the server streams, counts and logs what happened. Endpoints, fields,
// headers, metrics and errors: docs/SERVER.md.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "cascade/cascade.h"
#include "cascade/distill_log.h"
#include "cascade/shadow.h"
#include "server/metrics.h"
#include "util/status.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace frugal::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (see Server::port)
  cascade::CascadeConfig config;
  cascade::CascadeOptions cascade;
  // Where one-line notices go (start, warnings, load errors); default stderr.
  std::function<void(const std::string&)> log;
  // Builds the cascade in serve(); empty: cascade::Cascade::create(config, cascade). Tests
  // hand in tiers of their own (a slow one, one that fails mid-answer).
  std::function<Result<std::unique_ptr<cascade::Cascade>>(const cascade::CascadeConfig&,
                                                          const cascade::CascadeOptions&)>
      make_cascade;
  // Reads the config again for a reload (SIGHUP, POST /admin/reload); empty:
  // cascade::load_cascade_config(config.path).
  std::function<Result<cascade::CascadeConfig>()> load_config;
  uint64_t shadow_seed = 0;  // the shadow checks' sampling; 0: random
};

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds host:port. Errors: kUnavailable naming the address when it cannot be bound;
  // kInvalidArgument for an API key file that cannot be read.
  Status bind();
  int port() const { return port_; }

  // Loads the cascade (GET /health answers 503 meanwhile) and serves until stop(). Returns the
  // load error when the cascade cannot be built, else OK after a stop.
  Status serve();

  // From any thread (a signal's): new requests get 503, running ones finish (at most
  // request_timeout_s), then serve() returns. Idempotent.
  void stop();

  // Reloads without a restart: reads the config again, builds the new cascade (models,
  // threshold, scorer, [shadow]) beside the old one, and swaps it in; requests already running
  // finish on the old cascade, which is then freed. Returns once the old cascade has drained.
  // [server] keys other than name keep their values until a restart. Errors (the old cascade
  // keeps serving): those of reading the config and building the cascade, and
  // kFailedPrecondition before serve() has loaded one.
  Status reload();

  bool ready() const { return ready_.load(); }
  Metrics& metrics() { return metrics_; }
  // The cascade being served (null until serve() has loaded it), for tests and tools.
  cascade::Cascade* cascade() { return current().get(); }
  // Its shadow checker (null before serve()).
  cascade::ShadowChecker* shadow() { return current_shadow().get(); }
  int64_t in_flight() const { return in_flight_.load(); }

 private:
  struct Call;
  void routes();
  void declare_metrics();
  void handle_completion(const httplib::Request& req, httplib::Response& res, int endpoint);
  void handle_models(const httplib::Request& req, httplib::Response& res);
  void handle_metrics(httplib::Response& res);
  void handle_reload(const httplib::Request& req, httplib::Response& res);
  void after_answer(const Call& call, const cascade::CascadeAnswer& answer);
  Result<std::shared_ptr<cascade::ShadowChecker>> make_shadow(
      const std::shared_ptr<cascade::Cascade>& cascade);
  std::shared_ptr<cascade::Cascade> current() const;
  std::shared_ptr<cascade::ShadowChecker> current_shadow() const;
  std::string bounded_slice(const std::string& slice);
  bool authorized(const httplib::Request& req, httplib::Response& res, std::string* key_id);
  void record(const Call& call, const Result<cascade::CascadeAnswer>& result);
  void log(const std::string& line) const;

  ServerOptions options_;
  std::unique_ptr<httplib::Server> http_;
  // The cascade and its shadow checker being served; each request holds the pair it started
  // on, so a reload swaps them without stopping anything (guarded by cascade_mu_).
  mutable std::mutex cascade_mu_;
  std::shared_ptr<cascade::Cascade> cascade_;
  std::shared_ptr<cascade::ShadowChecker> shadow_;
  std::mutex reload_mu_;  // one reload at a time
  std::unique_ptr<cascade::DistillLog> distill_;
  std::mutex slices_mu_;
  std::set<std::string> slices_seen_;  // slice labels in /metrics (bounded)
  std::set<std::string> api_keys_;
  std::set<std::string> admin_keys_;
  Metrics metrics_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> draining_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<bool> listener_done_{false};  // listen_after_bind() has returned
  std::atomic<int64_t> in_flight_{0};
  std::atomic<uint64_t> next_id_{0};
  int port_ = 0;
  std::mutex ledger_mu_;
  FILE* ledger_ = nullptr;
  std::thread listener_;
};

}  // namespace frugal::server
