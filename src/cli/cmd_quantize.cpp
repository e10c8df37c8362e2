// `frugal quantize IN.gguf OUT.gguf TYPE`: rewrites a model's weight matrices in another type.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "engine/gguf.h"
#include "engine/gguf_writer.h"
#include "kernels/ggml_type.h"
#include "kernels/ops.h"

namespace frugal::cli {

namespace {

// general.file_type values (llama.cpp's llama_ftype) for the types offered here.
uint32_t file_type_id(GgmlType t) {
  switch (t) {
    case GgmlType::kF32: return 0;
    case GgmlType::kF16: return 1;
    case GgmlType::kQ4_0: return 2;
    case GgmlType::kQ8_0: return 7;
    case GgmlType::kBF16: return 32;
    default: return 0;
  }
}

bool is_convertible(GgmlType t) {
  return t == GgmlType::kF32 || t == GgmlType::kF16 || t == GgmlType::kBF16 ||
         t == GgmlType::kQ8_0 || t == GgmlType::kQ4_0;
}

// Matrices (2-D, rows a multiple of 32 elements) take the new type, the token embedding
// included; norms, biases and other 1-D tensors keep theirs.
bool takes_new_type(const GgufTensorInfo& t) {
  return t.shape.size() == 2 && t.shape[0] % 32 == 0 && is_convertible(t.type);
}

struct QuantizeSummary {
  int converted = 0;
  int kept = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
};

Status quantize_file(const std::string& in_path, const std::string& out_path, GgmlType type,
                     QuantizeSummary* summary) {
  FRUGAL_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> in, GgufFile::open(in_path));
  GgufWriter w;
  for (const auto& [key, value] : in->metadata()) w.set(key, value);
  w.set_uint32("general.file_type", file_type_id(type));

  for (const GgufTensorInfo& t : in->tensors()) {
    summary->bytes_in += t.n_bytes;
    if (!takes_new_type(t) || t.type == type) {
      ++summary->kept;
      summary->bytes_out += t.n_bytes;
      FRUGAL_RETURN_IF_ERROR(w.add_tensor(t.name, t.shape, t.type, t.data, t.n_bytes));
      continue;
    }
    ++summary->converted;
    const int64_t n_cols = t.shape[0];
    const int64_t n_rows = t.shape[1];
    const int64_t in_row = ggml_row_bytes(t.type, n_cols);
    const int64_t out_row = ggml_row_bytes(type, n_cols);
    summary->bytes_out += static_cast<uint64_t>(out_row * n_rows);
    const GgufTensorInfo* src = &t;
    // Converts a chunk of rows at a time (about 1 MiB out), so memory stays flat.
    auto producer = [src, type, n_cols, n_rows, in_row,
                     out_row](const GgufWriter::ByteSink& sink) -> Status {
      const int64_t rows_per_chunk = std::max<int64_t>(1, (1 << 20) / out_row);
      std::vector<float> row(static_cast<size_t>(n_cols));
      std::vector<uint8_t> out(static_cast<size_t>(rows_per_chunk * out_row));
      for (int64_t r0 = 0; r0 < n_rows; r0 += rows_per_chunk) {
        const int64_t n = std::min(rows_per_chunk, n_rows - r0);
        for (int64_t r = 0; r < n; ++r) {
          kernels::dequantize_row(src->type, src->data + (r0 + r) * in_row, row.data(), n_cols);
          kernels::quantize_row(type, row.data(), out.data() + r * out_row, n_cols);
        }
        FRUGAL_RETURN_IF_ERROR(sink(out.data(), static_cast<size_t>(n * out_row)));
      }
      return Status::ok();
    };
    FRUGAL_RETURN_IF_ERROR(w.add_tensor(t.name, t.shape, type, producer));
  }
  return w.write(out_path);
}

struct QuantizeArgs {
  std::string in;
  std::string out;
  std::string type;
};

}  // namespace

void register_quantize(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "quantize", "Rewrite a GGUF model's weight matrices as f32, f16, bf16, q8_0 or q4_0");
  auto args = std::make_shared<QuantizeArgs>();
  cmd->add_option("input", args->in, "GGUF model to read")->required();
  cmd->add_option("output", args->out, "GGUF model to write")->required();
  cmd->add_option("type", args->type, "f32 | f16 | bf16 | q8_0 | q4_0")->required();
  cmd->callback([args, &exit_code] {
    GgmlType type = GgmlType::kF32;
    if (ggml_type_from_name(args->type.c_str(), &type) == nullptr || !is_convertible(type)) {
      std::fprintf(stderr, "frugal quantize: unknown type '%s' (f32, f16, bf16, q8_0, q4_0)\n",
                   args->type.c_str());
      exit_code = 2;
      return;
    }
    QuantizeSummary summary;
    Status s = quantize_file(args->in, args->out, type, &summary);
    if (!s.is_ok()) {
      std::fprintf(stderr, "frugal quantize: %s\n", s.to_string().c_str());
      exit_code = 1;
      return;
    }
    std::printf("wrote %s: %d tensors in %s, %d kept; %.2f MiB -> %.2f MiB\n", args->out.c_str(),
                summary.converted, ggml_type_info(type)->name, summary.kept,
                static_cast<double>(summary.bytes_in) / (1 << 20),
                static_cast<double>(summary.bytes_out) / (1 << 20));
    exit_code = 0;
  });
}

}  // namespace frugal::cli
