// `frugal run` (placeholder until its issue lands).
#include <cstdio>

#include "cli/commands.h"

namespace frugal::cli {

void register_run(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("run", "(not built yet)");
  cmd->callback([&exit_code] {
    std::fprintf(stderr, "frugal run: not built yet\n");
    exit_code = 1;
  });
}

}  // namespace frugal::cli
