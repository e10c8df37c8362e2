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

  bool ready() const { return ready_.load(); }
  Metrics& metrics() { return metrics_; }
  // The cascade being served (null until serve() has loaded it), for tests and tools.
  cascade::Cascade* cascade() { return cascade_.get(); }
  int64_t in_flight() const { return in_flight_.load(); }

 private:
  struct Call;
  void routes();
  void declare_metrics();
  void handle_completion(const httplib::Request& req, httplib::Response& res, int endpoint);
  void handle_models(const httplib::Request& req, httplib::Response& res);
  void handle_metrics(httplib::Response& res);
  bool authorized(const httplib::Request& req, httplib::Response& res, std::string* key_id);
  void record(const Call& call, const Result<cascade::CascadeAnswer>& result);
  void log(const std::string& line) const;

  ServerOptions options_;
  std::unique_ptr<httplib::Server> http_;
  std::unique_ptr<cascade::Cascade> cascade_;
  std::set<std::string> api_keys_;
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
