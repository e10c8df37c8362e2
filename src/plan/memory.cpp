// Weight and KV-cache memory arithmetic, from GGUF metadata or from given dimensions.
#include "plan/memory.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "engine/gguf.h"
#include "kernels/ggml_type.h"

namespace frugal::plan {

namespace {

Status require_positive(const char* what, int64_t v) {
  if (v <= 0) {
    return invalid_argument(std::string(what) + " must be > 0 (got " + std::to_string(v) + ")");
  }
  return Status::ok();
}

int64_t sequences_that_fit(double budget, double per_sequence) {
  if (budget <= 0 || per_sequence <= 0) return 0;
  return static_cast<int64_t>(std::floor(budget / per_sequence));
}

}  // namespace

Status validate_dims(const ModelDims& dims) {
  FRUGAL_RETURN_IF_ERROR(require_positive("n_layer", dims.n_layer));
  FRUGAL_RETURN_IF_ERROR(require_positive("n_head", dims.n_head));
  FRUGAL_RETURN_IF_ERROR(require_positive("n_head_kv", dims.n_head_kv));
  FRUGAL_RETURN_IF_ERROR(require_positive("head_dim", dims.head_dim_k));
  FRUGAL_RETURN_IF_ERROR(require_positive("value head_dim", dims.head_dim_v));
  if (dims.n_head_kv > dims.n_head || dims.n_head % dims.n_head_kv != 0) {
    return invalid_argument("n_head_kv (" + std::to_string(dims.n_head_kv) +
                            ") must divide n_head (" + std::to_string(dims.n_head) +
                            "): each KV head serves a whole group of query heads");
  }
  if (dims.n_ctx_train < 0) return invalid_argument("context length must be >= 0");
  return Status::ok();
}

Result<ModelMemorySource> read_gguf_memory_source(const std::string& path) {
  FRUGAL_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> file, GgufFile::open(path));
  FRUGAL_ASSIGN_OR_RETURN(std::string arch, file->get_string("general.architecture"));
  ModelMemorySource source;
  ModelDims& d = source.dims;
  d.name = file->get_string_or("general.name", arch);
  FRUGAL_ASSIGN_OR_RETURN(d.n_layer, file->get_int(arch + ".block_count"));
  FRUGAL_ASSIGN_OR_RETURN(d.n_head, file->get_int(arch + ".attention.head_count"));
  d.n_head_kv = file->get_int_or(arch + ".attention.head_count_kv", d.n_head);
  d.n_ctx_train = file->get_int_or(arch + ".context_length", 0);
  FRUGAL_ASSIGN_OR_RETURN(int64_t n_embd, file->get_int(arch + ".embedding_length"));
  int64_t fallback_dim = d.n_head > 0 ? n_embd / d.n_head : 0;
  d.head_dim_k = file->get_int_or(arch + ".attention.key_length", fallback_dim);
  d.head_dim_v = file->get_int_or(arch + ".attention.value_length", d.head_dim_k);
  Status valid = validate_dims(d);
  if (!valid.is_ok()) return invalid_argument(path + ": " + valid.message());

  std::map<std::string, WeightGroup> groups;
  for (const GgufTensorInfo& t : file->tensors()) {
    const GgmlTypeInfo* info = ggml_type_info(t.type);
    std::string type = info != nullptr ? info->name : "type" + std::to_string(int(t.type));
    WeightGroup& g = groups[type];
    g.type = type;
    g.n_tensors += 1;
    g.n_elements += static_cast<double>(t.n_elements());
    g.bytes += static_cast<double>(t.n_bytes);
  }
  for (auto& [type, g] : groups) source.weights.push_back(g);
  // Largest share first: what a reader looks for.
  std::sort(source.weights.begin(), source.weights.end(),
            [](const WeightGroup& a, const WeightGroup& b) { return a.bytes > b.bytes; });
  return source;
}

Result<WeightGroup> weights_of_type(double n_params, const std::string& type_name) {
  if (!std::isfinite(n_params) || n_params <= 0) {
    return invalid_argument("parameter count must be > 0");
  }
  GgmlType type;
  const GgmlTypeInfo* info = ggml_type_from_name(type_name.c_str(), &type);
  if (info == nullptr) {
    return invalid_argument("unknown weight type '" + type_name +
                            "' (e.g. f32, f16, bf16, q8_0, q4_0, q4_K, q6_K)");
  }
  WeightGroup g;
  g.type = info->name;
  g.n_tensors = 0;
  g.n_elements = n_params;
  g.bytes = n_params * static_cast<double>(info->type_size) / static_cast<double>(info->block_size);
  return g;
}

Result<double> kv_bytes_per_element(const std::string& type_name) {
  GgmlType type;
  const GgmlTypeInfo* info = ggml_type_from_name(type_name.c_str(), &type);
  bool allowed = info != nullptr && (type == GgmlType::kF32 || type == GgmlType::kF16 ||
                                     type == GgmlType::kBF16 || type == GgmlType::kQ8_0 ||
                                     type == GgmlType::kQ4_0);
  if (!allowed) {
    return invalid_argument("unknown KV cache type '" + type_name +
                            "' (one of f32, f16, bf16, q8_0, q4_0)");
  }
  return static_cast<double>(info->type_size) / static_cast<double>(info->block_size);
}

double kv_bytes_per_token(const ModelDims& dims, int64_t n_head_kv, double bytes_per_element) {
  return static_cast<double>(dims.n_layer) * static_cast<double>(n_head_kv) *
         static_cast<double>(dims.head_dim_k + dims.head_dim_v) * bytes_per_element;
}

Result<MemoryPlan> plan_memory(const ModelMemorySource& source, const MemoryPlanOptions& options) {
  FRUGAL_RETURN_IF_ERROR(validate_dims(source.dims));
  if (!std::isfinite(options.budget_bytes) || options.budget_bytes < 0) {
    return invalid_argument("memory budget must be >= 0");
  }
  if (options.context < 0) return invalid_argument("context length must be >= 0");
  MemoryPlan plan;
  plan.dims = source.dims;
  plan.weights = source.weights;
  for (const WeightGroup& g : plan.weights) plan.weight_bytes += g.bytes;
  plan.kv_type = options.kv_type;
  FRUGAL_ASSIGN_OR_RETURN(plan.kv_bytes_per_element, kv_bytes_per_element(options.kv_type));
  plan.context = options.context > 0 ? options.context : source.dims.n_ctx_train;
  if (plan.context <= 0) {
    return invalid_argument("no context length: pass --context (the model states none)");
  }
  plan.budget_bytes = options.budget_bytes;
  plan.kv_budget_bytes = std::max(0.0, plan.budget_bytes - plan.weight_bytes);
  plan.kv_bytes_per_token =
      kv_bytes_per_token(plan.dims, plan.dims.n_head_kv, plan.kv_bytes_per_element);
  plan.kv_bytes_per_sequence = plan.kv_bytes_per_token * static_cast<double>(plan.context);
  plan.max_sequences = sequences_that_fit(plan.kv_budget_bytes, plan.kv_bytes_per_sequence);

  // MHA: one KV head per query head. GQA: the model's own grouping when it has one, else
  // the largest divisor of n_head up to 8 (what Llama-2-70B and Llama-3 use). MQA: one.
  const int64_t n_head = plan.dims.n_head;
  int64_t gqa = 0;
  if (plan.dims.n_head_kv > 1 && plan.dims.n_head_kv < n_head) {
    gqa = plan.dims.n_head_kv;
  } else {
    for (int64_t g = std::min<int64_t>(8, n_head - 1); g > 1; --g) {
      if (n_head % g == 0) {
        gqa = g;
        break;
      }
    }
  }
  auto add = [&](const char* label, int64_t n_kv) {
    KvVariant v;
    v.label = label;
    v.n_head_kv = n_kv;
    v.is_model = n_kv == plan.dims.n_head_kv;
    v.bytes_per_token = kv_bytes_per_token(plan.dims, n_kv, plan.kv_bytes_per_element);
    v.bytes_per_sequence = v.bytes_per_token * static_cast<double>(plan.context);
    v.max_sequences = sequences_that_fit(plan.kv_budget_bytes, v.bytes_per_sequence);
    plan.variants.push_back(v);
  };
  add("MHA", n_head);
  if (gqa > 0) add("GQA", gqa);
  if (n_head > 1) add("MQA", 1);
  return plan;
}

}  // namespace frugal::plan
