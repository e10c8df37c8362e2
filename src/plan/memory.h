// Serving memory: weight bytes per weight type, KV-cache bytes per token, how many sequences
// of a given context fit a memory budget, and what MHA, GQA and MQA would each cost.
// Sizes are in bytes; MB and GB in messages mean 10^6 and 10^9 bytes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util/status.h"

namespace frugal::plan {

// The dimensions the KV cache depends on (GGUF names).
struct ModelDims {
  std::string name;         // architecture or model name, for display
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim_k = 0;   // {arch}.attention.key_length, else n_embd / n_head
  int64_t head_dim_v = 0;   // {arch}.attention.value_length, else head_dim_k
  int64_t n_ctx_train = 0;  // 0 when unknown
};

// Weights of one element type.
struct WeightGroup {
  std::string type;  // "q4_0", "f16", ...
  int64_t n_tensors = 0;
  double n_elements = 0;
  double bytes = 0;
};

struct ModelMemorySource {
  ModelDims dims;
  std::vector<WeightGroup> weights;  // empty when unknown (dimensions given without params)
};

// kInvalidArgument naming the first missing, non-positive or inconsistent dimension
// (n_head_kv must divide n_head).
Status validate_dims(const ModelDims& dims);

// Reads dims and per-type weight sizes from a GGUF file (metadata keys {arch}.block_count,
// .attention.head_count, .attention.head_count_kv, .embedding_length, .context_length,
// .attention.key_length / value_length). Errors: the GgufFile::open errors, and kNotFound
// naming a missing key.
Result<ModelMemorySource> read_gguf_memory_source(const std::string& path);

// Weights of `n_params` elements stored as `type_name`; kInvalidArgument for an unknown type.
Result<WeightGroup> weights_of_type(double n_params, const std::string& type_name);

// Bytes per KV element: f32 4, f16 2, bf16 2, q8_0 34/32, q4_0 18/32.
Result<double> kv_bytes_per_element(const std::string& type_name);

// n_layer · n_head_kv · (head_dim_k + head_dim_v) · bytes_per_element; with equal head dims,
// 2 × n_layer × n_head_kv × head_dim × bytes per element.
double kv_bytes_per_token(const ModelDims& dims, int64_t n_head_kv, double bytes_per_element);

struct KvVariant {
  std::string label;     // "MHA", "GQA", "MQA"
  int64_t n_head_kv = 0;
  bool is_model = false;  // the model's own attention layout
  double bytes_per_token = 0;
  double bytes_per_sequence = 0;  // at the planned context length
  int64_t max_sequences = 0;      // concurrent sequences that fit beside the weights
};

struct MemoryPlanOptions {
  std::string kv_type = "f16";
  int64_t context = 0;      // tokens per sequence; 0: the model's training context
  double budget_bytes = 80e9;
};

struct MemoryPlan {
  ModelDims dims;
  std::vector<WeightGroup> weights;
  double weight_bytes = 0;
  std::string kv_type;
  double kv_bytes_per_element = 0;
  int64_t context = 0;
  double budget_bytes = 0;
  double kv_budget_bytes = 0;  // budget minus weights (0 when the weights do not fit)
  double kv_bytes_per_token = 0;
  double kv_bytes_per_sequence = 0;
  int64_t max_sequences = 0;
  std::vector<KvVariant> variants;  // MHA, GQA (when distinct), MQA
};

// kInvalidArgument on bad dims, an unknown KV type, a negative budget or no context length.
Result<MemoryPlan> plan_memory(const ModelMemorySource& source, const MemoryPlanOptions& options);

}  // namespace frugal::plan
