// `frugal serve`: the cascade behind an OpenAI-compatible HTTP API, until SIGINT or SIGTERM
// (which drain running requests first); SIGHUP reloads the config without a restart.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "cascade/config.h"
#include "cli/commands.h"
#include "cli/flags.h"
#include "server/server.h"

namespace frugal::cli {

namespace {

struct ServeArgs {
  std::string config;  // empty: ./frugal.toml, else the one beside the binary's build folder
  std::string host = "127.0.0.1";
  int port = 8080;
  int threads = 0;
  int64_t ctx = 0;
  std::string kv_type = "f16";
  int max_running = 64;
  int max_queue = 1024;
};

// The bundled cascade: frugal.toml here, else the repository's (the binary lives in build/).
std::string default_config() {
  namespace fs = std::filesystem;
  if (fs::exists("frugal.toml")) return "frugal.toml";
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path beside = exe.parent_path().parent_path() / "frugal.toml";
    if (fs::exists(beside)) return beside.string();
  }
  return "frugal.toml";
}

int run_serve(const ServeArgs& a) {
  const std::string path = a.config.empty() ? default_config() : a.config;
  auto config = cascade::load_cascade_config(path);
  if (!config.is_ok()) {
    std::fprintf(stderr, "frugal serve: %s\n", config.status().to_string().c_str());
    return 2;
  }
  // SIGINT and SIGTERM go to one thread that drains and stops the server; every other thread
  // (created after this) has them blocked.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  server::ServerOptions o;
  o.host = a.host;
  o.port = a.port;
  o.config = std::move(*config);
  o.cascade.n_threads = a.threads;
  o.cascade.n_ctx = a.ctx;
  o.cascade.scheduler.kv_type = *kv_type_from_name(a.kv_type);  // checked by the flag
  o.cascade.scheduler.max_running = a.max_running;
  o.cascade.scheduler.max_queue = a.max_queue;
  server::Server server(std::move(o));
  if (Status s = server.bind(); !s.is_ok()) {
    std::fprintf(stderr, "frugal serve: %s\n", s.to_string().c_str());
    return s.code() == ErrorCode::kInvalidArgument ? 2 : 1;
  }
  std::fprintf(stderr, "frugal serve: %s: listening on http://%s:%d, loading the models\n",
               path.c_str(), a.host.c_str(), server.port());
  std::thread waiter([&] {
    int sig = 0;
    for (;;) {
      sigwait(&signals, &sig);
      if (sig != SIGHUP) break;
      // Reload: the new cascade is built beside the old one, which keeps serving if it fails
      // (Server::reload logs either way).
      std::fprintf(stderr, "frugal serve: SIGHUP: reloading %s\n", path.c_str());
      if (server.ready()) (void)server.reload();
    }
    std::fprintf(stderr, "frugal serve: %s: draining %lld running requests, then exiting\n",
                 sig == SIGINT ? "SIGINT" : "SIGTERM", (long long)server.in_flight());
    server.stop();
  });
  Status s = server.serve();
  // The waiter may still be blocked in sigwait (a load error ended serve): wake it.
  kill(getpid(), SIGTERM);
  waiter.join();
  if (!s.is_ok()) {
    std::fprintf(stderr, "frugal serve: %s: %s\n", path.c_str(), s.to_string().c_str());
    return 1;
  }
  std::fprintf(stderr, "frugal serve: stopped\n");
  return 0;
}

}  // namespace

void register_serve(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<ServeArgs>();
  auto* cmd = app.add_subcommand(
      "serve", "Serve the cascade over an OpenAI-compatible HTTP API (docs/SERVER.md)");
  cmd->add_option("--config", args->config,
                  "Cascade config (default: ./frugal.toml, else the bundled one)");
  cmd->add_option("--host", args->host, "Address to listen on (default 127.0.0.1)");
  cmd->add_option("--port", args->port, "Port (default 8080; 0: any free port)")
      ->check(int_range(0, 65535));
  add_threads_option(cmd, &args->threads, "Threads shared by the local tiers (default: all cores)");
  add_ctx_option(cmd, &args->ctx, "Context size per local tier (default: min(4096, trained))");
  cmd->add_option("--kv-type", args->kv_type, "KV cache element type: f16 (default) or f32")
      ->check(CLI::IsMember({"f16", "f32"}));
  cmd->add_option("--max-running", args->max_running,
                  "Sequences each local tier batches at once (default 64)")
      ->check(int_range(1, 4096));
  cmd->add_option("--max-queue", args->max_queue,
                  "Requests waiting per local tier before 429 (default 1024)")
      ->check(int_range(0, 1 << 20));
  cmd->callback([args, &exit_code] { exit_code = run_serve(*args); });
}

}  // namespace frugal::cli
