// ModelConfig::from_gguf: GGUF metadata keys to hyper-parameters, with consistency checks.
#include "engine/model_config.h"

#include <cstdio>

#include "engine/gguf.h"

namespace frugal {

Result<ModelConfig> ModelConfig::from_gguf(const GgufFile& file) {
  ModelConfig c;
  FRUGAL_ASSIGN_OR_RETURN(c.arch_name, file.get_string("general.architecture"));
  if (c.arch_name == "llama" || c.arch_name == "mistral") {
    c.arch = Arch::kLlama;
    c.rope_style = kernels::RopeStyle::kNormal;
  } else if (c.arch_name == "qwen2") {
    c.arch = Arch::kQwen2;
    c.rope_style = kernels::RopeStyle::kNeox;
    c.qkv_bias = true;
  } else {
    return unsupported("unsupported architecture '" + c.arch_name + "' in " + file.name() +
                       ": this build runs llama (Llama 2/3, Mistral, TinyLlama, SmolLM) and qwen2");
  }
  c.name = file.get_string_or("general.name", "");
  const std::string a = c.arch_name + ".";
  FRUGAL_ASSIGN_OR_RETURN(c.n_embd, file.get_int(a + "embedding_length"));
  FRUGAL_ASSIGN_OR_RETURN(c.n_layer, file.get_int(a + "block_count"));
  FRUGAL_ASSIGN_OR_RETURN(c.n_head, file.get_int(a + "attention.head_count"));
  FRUGAL_ASSIGN_OR_RETURN(c.n_ff, file.get_int(a + "feed_forward_length"));
  c.n_head_kv = file.get_int_or(a + "attention.head_count_kv", c.n_head);
  c.n_ctx_train = file.get_int_or(a + "context_length", 2048);
  c.rms_eps = static_cast<float>(file.get_float_or(a + "attention.layer_norm_rms_epsilon", 1e-5));
  c.rope_freq_base = static_cast<float>(file.get_float_or(a + "rope.freq_base", 10000.0));
  const std::string scaling = file.get_string_or(a + "rope.scaling.type", "none");
  if (scaling == "linear") {
    c.rope_linear_scale = static_cast<float>(file.get_float_or(a + "rope.scaling.factor", 1.0));
  } else if (scaling != "none" && scaling != "") {
    return unsupported("rope scaling type '" + scaling + "' in " + file.name() +
                       " is not supported (linear and llama3 rope_freqs are)");
  }

  if (c.n_embd <= 0 || c.n_layer <= 0 || c.n_head <= 0 || c.n_head_kv <= 0 || c.n_ff <= 0 ||
      c.n_ctx_train <= 0) {
    return corrupt("non-positive hyper-parameter in " + file.name() + ": " + c.summary());
  }
  if (c.n_head % c.n_head_kv != 0) {
    return corrupt("attention.head_count (" + std::to_string(c.n_head) +
                   ") is not a multiple of head_count_kv (" + std::to_string(c.n_head_kv) + ")");
  }
  c.head_dim = file.get_int_or(a + "attention.key_length", c.n_embd / c.n_head);
  if (c.head_dim <= 0 || c.head_dim % 2 != 0 || c.head_dim > 1024) {
    return corrupt("head dimension " + std::to_string(c.head_dim) + " is not a positive even size");
  }
  if (file.get_int_or(a + "attention.value_length", c.head_dim) != c.head_dim) {
    return unsupported("attention.value_length differs from key_length; not supported");
  }
  c.n_rot = file.get_int_or(a + "rope.dimension_count", c.head_dim);
  if (c.n_rot != c.head_dim) {
    return unsupported("partial rotary embedding (rope.dimension_count " +
                       std::to_string(c.n_rot) + " of " + std::to_string(c.head_dim) +
                       ") is not supported");
  }
  const GgufTensorInfo* embd = file.find_tensor("token_embd.weight");
  if (embd == nullptr) return corrupt("tensor token_embd.weight is missing in " + file.name());
  if (embd->shape.size() != 2) return corrupt("token_embd.weight is not a matrix");
  c.n_vocab = embd->shape[1];
  c.tied_output = file.find_tensor("output.weight") == nullptr;
  return c;
}

std::string ModelConfig::summary() const {
  char buf[320];
  std::snprintf(buf, sizeof(buf),
                "%s: n_vocab=%lld n_embd=%lld n_layer=%lld n_head=%lld n_head_kv=%lld "
                "head_dim=%lld n_ff=%lld n_ctx_train=%lld rope_base=%g%s%s",
                arch_name.c_str(), (long long)n_vocab, (long long)n_embd, (long long)n_layer,
                (long long)n_head, (long long)n_head_kv, (long long)head_dim, (long long)n_ff,
                (long long)n_ctx_train, rope_freq_base, qkv_bias ? " qkv_bias" : "",
                tied_output ? " tied_output" : "");
  return buf;
}

}  // namespace frugal
