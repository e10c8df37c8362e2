// A frugal::server::Server inside the test process, on a free loopback port and its own thread,
// and the plain HTTP calls the server tests make to it (server_test, operations_test).
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "server/server.h"

namespace frugal::test {

// A fresh folder frugal_SUITE_PID_NAME under the system's temporary directory.
inline std::filesystem::path temp_dir(const std::string& suite, const std::string& name) {
  namespace fs = std::filesystem;
  fs::path d = fs::temp_directory_path() /
               ("frugal_" + suite + "_" + std::to_string(getpid()) + "_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// A Server on a free loopback port, serving on its own thread until destroyed; what it logs is
// kept for failure messages.
class LiveServer {
 public:
  explicit LiveServer(server::ServerOptions o) {
    using namespace std::chrono_literals;
    o.host = "127.0.0.1";
    o.port = 0;
    if (o.cascade.n_threads == 0) o.cascade.n_threads = 2;
    o.log = [this](const std::string& line) {
      std::lock_guard<std::mutex> lock(mu_);
      log_ += line + "\n";
    };
    server_ = std::make_unique<server::Server>(std::move(o));
    const Status bound = server_->bind();
    EXPECT_TRUE(bound.is_ok()) << bound.to_string();
    thread_ = std::thread([this] { served_ = server_->serve(); });
    // A sanitizer build under load takes minutes to load the bundled models.
    const auto until = std::chrono::steady_clock::now() + 300s;
    while (!server_->ready() && std::chrono::steady_clock::now() < until && thread_.joinable())
      std::this_thread::sleep_for(5ms);
    EXPECT_TRUE(server_->ready()) << log();
  }
  ~LiveServer() { stop(); }
  LiveServer(const LiveServer&) = delete;
  LiveServer& operator=(const LiveServer&) = delete;

  // Drains and stops; returns what serve() returned.
  Status stop() {
    server_->stop();
    if (thread_.joinable()) thread_.join();
    return served_;
  }

  server::Server& server() { return *server_; }
  int port() const { return server_->port(); }
  std::string log() {
    std::lock_guard<std::mutex> lock(mu_);
    return log_;
  }
  std::unique_ptr<httplib::Client> client() const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", port());
    c->set_read_timeout(120, 0);
    c->set_connection_timeout(10, 0);
    return c;
  }

 private:
  std::unique_ptr<server::Server> server_;
  std::thread thread_;
  Status served_;
  std::mutex mu_;
  std::string log_;
};

// One HTTP answer as the tests read it.
struct Reply {
  int status = -1;  // -1: no response (connection refused or cut)
  std::string body;
  httplib::Headers headers;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
  std::string tier() const { return header("x-frugal-tier"); }  // which tier answered
  nlohmann::json json_body() const { return nlohmann::json::parse(body, nullptr, false); }
};

inline Reply reply_of(const httplib::Result& res) {
  Reply r;
  if (!res) return r;
  r.status = res->status;
  r.body = res->body;
  r.headers = res->headers;
  return r;
}

inline Reply post(httplib::Client& c, const std::string& path, const std::string& body,
                  const httplib::Headers& headers = {}) {
  return reply_of(c.Post(path.c_str(), headers, body, "application/json"));
}

inline Reply post_json(httplib::Client& c, const std::string& path, const nlohmann::json& body,
                       const httplib::Headers& headers = {}) {
  return post(c, path, body.dump(), headers);
}

inline Reply get(httplib::Client& c, const std::string& path, const httplib::Headers& headers = {}) {
  return reply_of(c.Get(path.c_str(), headers));
}

}  // namespace frugal::test
