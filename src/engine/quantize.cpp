// Model quantization (quantize.h): the per-tensor type recipe and the streaming file rewrite.
// Reference for the mixes: llama.cpp's llama_tensor_get_type (src/llama-quant.cpp), read,
// not copied; only its branches for dense llama-family models are reproduced.
#include "engine/quantize.h"

#include <strings.h>

#include <algorithm>
#include <cstdio>
#include <memory>

#include "engine/gguf.h"
#include "engine/gguf_writer.h"
#include "kernels/ops.h"
#include "util/thread_pool.h"

namespace frugal {

namespace {

constexpr QuantScheme kSchemes[] = {
    {"f32", GgmlType::kF32, QuantMix::kPure, 0},
    {"f16", GgmlType::kF16, QuantMix::kPure, 1},
    {"bf16", GgmlType::kBF16, QuantMix::kPure, 32},
    {"q8_0", GgmlType::kQ8_0, QuantMix::kPure, 7},
    {"q4_0", GgmlType::kQ4_0, QuantMix::kPure, 2},
    {"q4_1", GgmlType::kQ4_1, QuantMix::kPure, 3},
    {"q5_0", GgmlType::kQ5_0, QuantMix::kPure, 8},
    {"q5_1", GgmlType::kQ5_1, QuantMix::kPure, 9},
    {"iq4_nl", GgmlType::kIQ4_NL, QuantMix::kPure, 25},
    {"q2_k", GgmlType::kQ2_K, QuantMix::kPure, 10},
    {"q3_k", GgmlType::kQ3_K, QuantMix::kPure, 11},
    {"q4_k", GgmlType::kQ4_K, QuantMix::kPure, 14},
    {"q5_k", GgmlType::kQ5_K, QuantMix::kPure, 16},
    {"q6_k", GgmlType::kQ6_K, QuantMix::kPure, 18},
    {"q3_k_m", GgmlType::kQ3_K, QuantMix::kQ3_K_M, 12},
    {"q4_k_s", GgmlType::kQ4_K, QuantMix::kQ4_K_S, 14},
    {"q4_k_m", GgmlType::kQ4_K, QuantMix::kQ4_K_M, 15},
    {"q5_k_s", GgmlType::kQ5_K, QuantMix::kQ5_K_S, 16},
    {"q5_k_m", GgmlType::kQ5_K, QuantMix::kQ5_K_M, 17},
};

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::char_traits<char>::length(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

bool is_weight_matrix(const QuantTensor& t) {
  return t.shape.size() == 2 && ends_with(t.name, "weight") &&
         t.name.find("_norm.weight") == std::string::npos;
}

// The layer index of "blk.N.*", or -1.
int64_t layer_of(const std::string& name) {
  long long il = -1;
  return std::sscanf(name.c_str(), "blk.%lld.", &il) == 1 ? il : -1;
}

// llama.cpp's use_more_bits: the first and last eighth of the layers and every third between.
bool use_more_bits(int64_t il, int64_t n_layer) {
  return il < n_layer / 8 || il >= 7 * n_layer / 8 || (il - n_layer / 8) % 3 == 2;
}

bool is_tensor(const std::string& name, const char* role) {
  return layer_of(name) >= 0 && ends_with(name, role);
}

// The mix's choice before the row-length fallback.
GgmlType mix_type(const QuantScheme& s, const QuantTensor& t, int64_t n_layer, bool tied) {
  const bool output = t.name == "output.weight" || (tied && t.name == "token_embd.weight");
  if (s.mix == QuantMix::kPure) return s.base;
  if (output) {
    // llama.cpp: Q8_0 when the row length does not fit the base type's blocks, else Q6_K.
    return t.shape[0] % ggml_type_info(s.base)->block_size != 0 ? GgmlType::kQ8_0
                                                                 : GgmlType::kQ6_K;
  }
  const int64_t il = layer_of(t.name);
  if (is_tensor(t.name, ".attn_v.weight")) {
    switch (s.mix) {
      case QuantMix::kQ3_K_M: return il < 2 ? GgmlType::kQ5_K : GgmlType::kQ4_K;
      case QuantMix::kQ4_K_S: return il < 4 ? GgmlType::kQ5_K : s.base;
      case QuantMix::kQ4_K_M:
      case QuantMix::kQ5_K_M: return use_more_bits(il, n_layer) ? GgmlType::kQ6_K : s.base;
      default: return s.base;
    }
  }
  if (is_tensor(t.name, ".ffn_down.weight")) {
    switch (s.mix) {
      case QuantMix::kQ3_K_M: return il < n_layer / 16 ? GgmlType::kQ5_K : GgmlType::kQ4_K;
      case QuantMix::kQ4_K_S: return il < n_layer / 8 ? GgmlType::kQ5_K : s.base;
      case QuantMix::kQ4_K_M:
      case QuantMix::kQ5_K_M: return use_more_bits(il, n_layer) ? GgmlType::kQ6_K : s.base;
      default: return s.base;
    }
  }
  if (is_tensor(t.name, ".attn_output.weight") && s.mix == QuantMix::kQ3_K_M) {
    return GgmlType::kQ4_K;
  }
  return s.base;
}

// llama.cpp's tensor_type_fallback: a type whose block does not divide the row length.
GgmlType fallback_type(GgmlType want, int64_t n_cols) {
  if (n_cols % ggml_type_info(want)->block_size == 0) return want;
  GgmlType alt = want;
  switch (want) {
    case GgmlType::kQ2_K:
    case GgmlType::kQ3_K: alt = GgmlType::kQ4_0; break;
    case GgmlType::kQ4_K: alt = GgmlType::kQ5_0; break;
    case GgmlType::kQ5_K: alt = GgmlType::kQ5_1; break;
    case GgmlType::kQ6_K: alt = GgmlType::kQ8_0; break;
    default: break;
  }
  return n_cols % ggml_type_info(alt)->block_size == 0 ? alt : GgmlType::kF16;
}

// Adds tensor `t` to `w` converted to `type`, rows converted on `pool` a chunk at a time.
Status add_converted(GgufWriter& w, const GgufTensorInfo& t, GgmlType type, ThreadPool* pool) {
  const int64_t n_cols = t.shape[0];
  const int64_t n_rows = t.n_elements() / n_cols;
  const int64_t in_row = ggml_row_bytes(t.type, n_cols);
  const int64_t out_row = ggml_row_bytes(type, n_cols);
  const GgufTensorInfo* src = &t;
  auto producer = [src, type, n_cols, n_rows, in_row, out_row,
                   pool](const GgufWriter::ByteSink& sink) -> Status {
    // About 4 MiB out per chunk: memory stays flat, every thread gets rows.
    const int64_t rows_per_chunk = std::max<int64_t>(1, (4 << 20) / out_row);
    std::vector<uint8_t> out(static_cast<size_t>(std::min(rows_per_chunk, n_rows) * out_row));
    std::vector<std::vector<float>> rows(static_cast<size_t>(pool->n_threads()),
                                         std::vector<float>(static_cast<size_t>(n_cols)));
    for (int64_t r0 = 0; r0 < n_rows; r0 += rows_per_chunk) {
      const int64_t n = std::min(rows_per_chunk, n_rows - r0);
      pool->parallel_for(n, 1, [&](int64_t b, int64_t e, int thread) {
        float* row = rows[static_cast<size_t>(thread)].data();
        for (int64_t r = b; r < e; ++r) {
          kernels::dequantize_row(src->type, src->data + (r0 + r) * in_row, row, n_cols);
          kernels::quantize_row(type, row, out.data() + r * out_row, n_cols);
        }
      });
      FRUGAL_RETURN_IF_ERROR(sink(out.data(), static_cast<size_t>(n * out_row)));
    }
    return Status::ok();
  };
  return w.add_tensor(t.name, t.shape, type, producer);
}

}  // namespace

const QuantScheme* find_quant_scheme(const std::string& name) {
  for (const QuantScheme& s : kSchemes)
    if (strcasecmp(s.name, name.c_str()) == 0) return &s;
  return nullptr;
}

std::string quant_scheme_names() {
  std::string out;
  for (const QuantScheme& s : kSchemes) out += (out.empty() ? "" : ", ") + std::string(s.name);
  return out;
}

GgmlType tensor_quant_type(const QuantScheme& scheme, const QuantTensor& t, int64_t n_layer,
                           bool tied) {
  const GgmlTypeInfo* info = ggml_type_info(t.type);
  if (!is_weight_matrix(t) || info == nullptr || !info->computable) return t.type;
  return fallback_type(mix_type(scheme, t, n_layer, tied), t.shape[0]);
}

Result<QuantizeSummary> quantize_model(const std::string& in_path, const std::string& out_path,
                                       const QuantScheme& scheme, int n_threads) {
  FRUGAL_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> in, GgufFile::open(in_path));
  FRUGAL_ASSIGN_OR_RETURN(std::unique_ptr<ThreadPool> pool, ThreadPool::create(n_threads));
  GgufWriter w;
  for (const auto& [key, value] : in->metadata()) w.set(key, value);
  w.set_uint32("general.file_type", scheme.file_type);

  int64_t n_layer = 0;
  for (const GgufTensorInfo& t : in->tensors()) n_layer = std::max(n_layer, layer_of(t.name) + 1);
  const bool tied = in->find_tensor("output.weight") == nullptr;
  QuantizeSummary summary;
  for (const GgufTensorInfo& t : in->tensors()) {
    summary.bytes_in += t.n_bytes;
    const GgmlType type = tensor_quant_type(scheme, {t.name, t.shape, t.type}, n_layer, tied);
    ++summary.tensors_per_type[type];
    if (type == t.type) {
      ++summary.kept;
      summary.bytes_out += t.n_bytes;
      FRUGAL_RETURN_IF_ERROR(w.add_tensor(t.name, t.shape, t.type, t.data, t.n_bytes));
      continue;
    }
    ++summary.converted;
    summary.bytes_out += static_cast<uint64_t>(ggml_row_bytes(type, t.shape[0]) *
                                               (t.n_elements() / t.shape[0]));
    FRUGAL_RETURN_IF_ERROR(add_converted(w, t, type, pool.get()));
  }
  FRUGAL_RETURN_IF_ERROR(w.write(out_path));
  return summary;
}

}  // namespace frugal
