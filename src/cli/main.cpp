// `frugal`: one binary, one subcommand per job (see ARCHITECTURE.md, "Commands").
#include <cstdio>

#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"frugal: answers each LLM request with the cheapest model that is good enough"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "frugal 0.1.0");
  int exit_code = 0;
  frugal::cli::register_run(app, exit_code);
  frugal::cli::register_tokenize(app, exit_code);
  frugal::cli::register_convert(app, exit_code);
  frugal::cli::register_inspect(app, exit_code);
  frugal::cli::register_quantize(app, exit_code);
  frugal::cli::register_bench(app, exit_code);
  frugal::cli::register_plan(app, exit_code);
  frugal::cli::register_cascade(app, exit_code);
  frugal::cli::register_eval(app, exit_code);
  frugal::cli::register_calibrate(app, exit_code);
  frugal::cli::register_template(app, exit_code);
  frugal::cli::register_serve(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  return exit_code;
}
