// `frugal quantize IN.gguf OUT.gguf TYPE`: rewrites a model's weight matrices in another type
// or one of llama.cpp's K-quant mixes (engine/quantize.h has the recipe).
#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "engine/quantize.h"
#include "kernels/ggml_type.h"

namespace frugal::cli {

namespace {

struct QuantizeArgs {
  std::string in;
  std::string out;
  std::string type;
  int threads = 0;
};

}  // namespace

void register_quantize(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "quantize",
      "Rewrite a GGUF model's weight matrices in one type (every matrix) or a llama.cpp mix "
      "(q4_k_m, q5_k_m, ...: Q6_K output and more bits for some attn_v / ffn_down)");
  auto args = std::make_shared<QuantizeArgs>();
  cmd->add_option("input", args->in, "GGUF model to read")->required();
  cmd->add_option("output", args->out, "GGUF model to write")->required();
  cmd->add_option("type", args->type, quant_scheme_names())->required();
  cmd->add_option("-t,--threads", args->threads, "Threads converting rows (0: all cores)");
  cmd->callback([args, &exit_code] {
    const QuantScheme* scheme = find_quant_scheme(args->type);
    if (scheme == nullptr) {
      std::fprintf(stderr, "frugal quantize: unknown type '%s' (%s)\n", args->type.c_str(),
                   quant_scheme_names().c_str());
      exit_code = 2;
      return;
    }
    auto summary = quantize_model(args->in, args->out, *scheme, args->threads);
    if (!summary.is_ok()) {
      std::fprintf(stderr, "frugal quantize: %s\n", summary.status().to_string().c_str());
      exit_code = 1;
      return;
    }
    std::string types;
    for (const auto& [type, n] : summary->tensors_per_type)
      types += (types.empty() ? "" : ", ") + std::to_string(n) + " " + ggml_type_info(type)->name;
    std::printf("wrote %s (%s): %d tensors converted, %d kept; %s; %.2f MiB -> %.2f MiB\n",
                args->out.c_str(), scheme->name, summary->converted, summary->kept,
                types.c_str(), static_cast<double>(summary->bytes_in) / (1 << 20),
                static_cast<double>(summary->bytes_out) / (1 << 20));
    exit_code = 0;
  });
}

}  // namespace frugal::cli
