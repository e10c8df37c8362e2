// Shell helpers for tests that run the frugal binary (or any command line) and read its output.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace frugal::test {

struct CommandOutput {
  int exit_code = -1;  // -1 when the command did not exit normally (or could not start)
  std::string out;     // what it wrote to stdout (and stderr, when the command line says so)
};

// Runs `command` through the shell and collects its stdout.
inline CommandOutput run_command(const std::string& command) {
  CommandOutput r;
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// Runs frugal with `args` (a shell fragment); stderr joins stdout when `with_stderr`, else it
// is discarded.
inline CommandOutput run_frugal(const std::string& args, bool with_stderr) {
  return run_command(std::string(FRUGAL_BINARY) + " " + args +
                     (with_stderr ? " 2>&1" : " 2>/dev/null"));
}

}  // namespace frugal::test
