// The `frugal` subcommands: each registers its flags and its action on the CLI11 app.
#pragma once

#include <CLI/CLI.hpp>

namespace frugal::cli {

// Each register_* adds one subcommand; its callback runs the command and sets the exit code
// through `exit_code` (0 success, 1 runtime failure, 2 bad usage).
void register_run(CLI::App& app, int& exit_code);
void register_tokenize(CLI::App& app, int& exit_code);
void register_convert(CLI::App& app, int& exit_code);
void register_inspect(CLI::App& app, int& exit_code);
void register_quantize(CLI::App& app, int& exit_code);
void register_bench(CLI::App& app, int& exit_code);
void register_plan(CLI::App& app, int& exit_code);
void register_cascade(CLI::App& app, int& exit_code);
void register_eval(CLI::App& app, int& exit_code);
void register_calibrate(CLI::App& app, int& exit_code);
void register_template(CLI::App& app, int& exit_code);
void register_serve(CLI::App& app, int& exit_code);

}  // namespace frugal::cli
