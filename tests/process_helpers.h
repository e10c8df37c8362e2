// Test helpers that run real processes on loopback: `frugal serve` (an OpenAI-compatible
// endpoint for remote tiers, or a front end) and `redis-server` (the shared cache), each
// stopped when the helper goes out of scope; plus a free-port finder and a temporary folder.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace frugal::test {

// A port nothing listens on right now (the kernel's choice for an ephemeral bind).
inline int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

// A fresh folder under the system's temporary directory, removed with the object.
class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    std::string tmpl = (std::filesystem::temp_directory_path() / ("frugal-" + tag + "-XXXXXX")).string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A child process with its output in a log file; SIGTERM then SIGKILL when destroyed.
class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& argv, const std::string& log_path)
      : log_path_(log_path) {
    // Everything the child needs is made before fork: after it, only async-signal-safe calls.
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      // No inherited socket may keep a test's connection open after the test closes it.
      for (int i = 3; i < 4096; ++i) close(i);
      execvp(args[0], args.data());
      _exit(127);
    }
    close(fd);
  }
  ~ChildProcess() { stop(); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Kills with `sig` and reaps; true when it had exited or did within 5 s.
  bool stop(int sig = SIGTERM) {
    if (pid_ <= 0) return true;
    kill(pid_, sig);
    for (int i = 0; i < 500; ++i) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
    return false;
  }
  bool running() const {
    if (pid_ <= 0) return false;
    int status = 0;
    return waitpid(pid_, &status, WNOHANG) == 0;
  }
  std::string log() const { return read_text(log_path_); }
  // Waits until the log contains `text`; false after `timeout` or when the process exited.
  bool wait_for_log(const std::string& text, std::chrono::milliseconds timeout) const {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      if (log().find(text) != std::string::npos) return true;
      if (!running()) return log().find(text) != std::string::npos;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  pid_t pid() const { return pid_; }

 private:
  std::string log_path_;
  pid_t pid_ = -1;
};

// `frugal serve --config CONFIG --port 0 --threads 1` once it says it is ready.
class ServeProcess {
 public:
  ServeProcess(const std::string& config, const std::string& log_path)
      : child_({FRUGAL_BINARY, "serve", "--config", config, "--port", "0", "--threads", "1"},
               log_path) {
    ready_ = child_.wait_for_log("ready on http://", std::chrono::seconds(20));
    const std::string log = child_.log();
    const std::string tag = "listening on http://127.0.0.1:";
    const size_t at = log.find(tag);
    if (at != std::string::npos) port_ = std::atoi(log.c_str() + at + tag.size());
  }
  bool ready() const { return ready_ && port_ > 0; }
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  ChildProcess& process() { return child_; }
  std::string log() const { return child_.log(); }

 private:
  ChildProcess child_;
  bool ready_ = false;
  int port_ = 0;
};

inline bool have_redis_server() { return std::system("command -v redis-server >/dev/null 2>&1") == 0; }

// redis-server on a free loopback port, no persistence.
class RedisProcess {
 public:
  explicit RedisProcess(const std::string& log_path, int port = 0)
      : port_(port > 0 ? port : free_port()),
        child_({"redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--daemonize", "no"},
               log_path) {
    ready_ = child_.wait_for_log("Ready to accept connections", std::chrono::seconds(10));
  }
  bool ready() const { return ready_; }
  int port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_) + "/0"; }
  ChildProcess& process() { return child_; }

 private:
  int port_;
  ChildProcess child_;
  bool ready_ = false;
};

}  // namespace frugal::test
