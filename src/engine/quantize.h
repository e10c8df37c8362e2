// Model quantization (`frugal quantize`): which type each tensor gets — one type for every
// matrix, or one of llama.cpp's K-quant mixes — and the streaming rewrite of a GGUF file.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "kernels/ggml_type.h"
#include "util/status.h"

namespace frugal {

// A target: `base` for every weight matrix ("pure"), or llama.cpp's recipe for the mix named
// (kQ4_K_M etc.; see tensor_quant_type).
enum class QuantMix { kPure, kQ3_K_M, kQ4_K_S, kQ4_K_M, kQ5_K_S, kQ5_K_M };

struct QuantScheme {
  const char* name;    // "q4_k_m", as the command line spells it
  GgmlType base;       // the type most matrices get
  QuantMix mix;
  uint32_t file_type;  // general.file_type (llama.cpp's llama_ftype)
};

// Returns nullptr for an unknown name (case-insensitive).
const QuantScheme* find_quant_scheme(const std::string& name);
// "f32, f16, bf16, q8_0, ..., q5_k_m": the names find_quant_scheme knows.
std::string quant_scheme_names();

// What one tensor is, for the recipe.
struct QuantTensor {
  std::string name;              // "blk.3.ffn_down.weight"
  std::vector<int64_t> shape;    // GGUF order: shape[0] is the row length
  GgmlType type;                 // the type it has now
};

// The type `t` gets under `scheme` in a model of n_layer layers whose output projection is
// token_embd (`tied`). Only weight matrices (2-D, name ending in "weight", not a norm) change
// type. Mixes follow llama.cpp's llama_tensor_get_type for the llama family: the output
// projection (token_embd when tied) in Q6_K; in Q4_K_M / Q5_K_M attn_v and ffn_down of the
// layers where use_more_bits(il) holds (the first and last eighth of the layers and every
// third one between) in Q6_K; in Q4_K_S / Q3_K_M some early attn_v and ffn_down in Q5_K
// (Q3_K_M also attn_output and the other ffn_down in Q4_K). A row length the chosen type
// cannot hold falls back as in llama.cpp: Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0,
// Q2_K/Q3_K -> Q4_0, then F16 (and the output projection to Q8_0).
GgmlType tensor_quant_type(const QuantScheme& scheme, const QuantTensor& t, int64_t n_layer,
                           bool tied);

struct QuantizeSummary {
  int converted = 0;  // tensors whose type changed
  int kept = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  std::map<GgmlType, int> tensors_per_type;  // of the output file
};

// Rewrites the GGUF model at `in_path` to `out_path` under `scheme`, converting rows on
// `n_threads` threads a chunk at a time (memory stays flat). Metadata is copied, with
// general.file_type set. Errors: what opening/reading the input or writing the output
// returned, naming the file; a tensor whose current type cannot be read is kUnsupported.
Result<QuantizeSummary> quantize_model(const std::string& in_path, const std::string& out_path,
                                       const QuantScheme& scheme, int n_threads);

}  // namespace frugal
