// `frugal convert` (placeholder until its issue lands).
#include <cstdio>

#include "cli/commands.h"

namespace frugal::cli {

void register_convert(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("convert", "(not built yet)");
  cmd->callback([&exit_code] {
    std::fprintf(stderr, "frugal convert: not built yet\n");
    exit_code = 1;
  });
}

}  // namespace frugal::cli
