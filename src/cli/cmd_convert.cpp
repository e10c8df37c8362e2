// `frugal convert --llama2c CKPT.bin --tokenizer TOK.bin -o OUT.gguf`: foreign formats to GGUF.
#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "engine/llama2c.h"

namespace frugal::cli {

namespace {
struct ConvertArgs {
  std::string llama2c;
  std::string tokenizer;
  std::string out;
  std::string name;
};
}  // namespace

void register_convert(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("convert", "Convert a llama2.c checkpoint to a GGUF llama model");
  auto args = std::make_shared<ConvertArgs>();
  cmd->add_option("--llama2c", args->llama2c, "llama2.c checkpoint (.bin)")->required();
  cmd->add_option("--tokenizer", args->tokenizer, "llama2.c tokenizer (.bin)")->required();
  cmd->add_option("-o,--output", args->out, "GGUF file to write")->required();
  cmd->add_option("--name", args->name, "general.name (default: the checkpoint's file stem)");
  cmd->callback([args, &exit_code] {
    Status s = convert_llama2c(args->llama2c, args->tokenizer, args->out, args->name);
    if (!s.is_ok()) {
      std::fprintf(stderr, "frugal convert: %s\n", s.to_string().c_str());
      exit_code = 1;
      return;
    }
    std::printf("wrote %s\n", args->out.c_str());
    exit_code = 0;
  });
}

}  // namespace frugal::cli
