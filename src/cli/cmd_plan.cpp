// `frugal plan` (placeholder until its issue lands).
#include <cstdio>

#include "cli/commands.h"

namespace frugal::cli {

void register_plan(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("plan", "(not built yet)");
  cmd->callback([&exit_code] {
    std::fprintf(stderr, "frugal plan: not built yet\n");
    exit_code = 1;
  });
}

}  // namespace frugal::cli
