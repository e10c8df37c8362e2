// ModelConfig::from_gguf: GGUF metadata keys to hyper-parameters, with consistency checks.
#include "engine/model_config.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string_view>
#include <utility>

#include "engine/gguf.h"
#include "util/checked_math.h"

namespace frugal {

namespace {

// Widths (n_embd, n_ff, n_head * head_dim) beyond this are refused: the largest models have
// widths in the tens of thousands, and activations are indexed with 32-bit counts in places.
constexpr int64_t kMaxWidth = int64_t{1} << 20;

std::string format_float(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

// The layer index of a "blk.N.*" tensor name, or -1 for other names. Indices too large for
// int64_t read as INT64_MAX (still "a layer past the block count").
int64_t layer_of(const std::string& name) {
  constexpr std::string_view kPrefix = "blk.";
  if (name.compare(0, kPrefix.size(), kPrefix) != 0) return -1;
  const char* begin = name.data() + kPrefix.size();
  const char* end = name.data() + name.size();
  const char* dot = std::find(begin, end, '.');
  if (dot == begin || dot == end) return -1;
  int64_t il = 0;
  auto [p, ec] = std::from_chars(begin, dot, il);
  if (ec == std::errc::result_out_of_range) return std::numeric_limits<int64_t>::max();
  if (ec != std::errc() || p != dot) return -1;
  return il;
}

// kCorrupt unless the blk.N tensors cover exactly layers 0 .. n_layer - 1.
Status check_block_count(const GgufFile& file, const std::string& key, int64_t n_layer) {
  int64_t top = -1;
  for (const GgufTensorInfo& t : file.tensors()) top = std::max(top, layer_of(t.name));
  const int64_t in_file = top + 1;  // layers 0 .. top
  if (top >= n_layer) {
    return corrupt(file.name() + ": the file has tensors for layer " + std::to_string(top) +
                   " but " + key + " is " + std::to_string(n_layer) + " (layers 0 to " +
                   std::to_string(n_layer - 1) + ")");
  }
  if (in_file < n_layer) {
    return corrupt(file.name() + ": " + key + " is " + std::to_string(n_layer) +
                   " but the file has tensors for " + std::to_string(in_file) + " layer" +
                   (in_file == 1 ? "" : "s") + " (file truncated or metadata wrong?)");
  }
  return Status::ok();
}

}  // namespace

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

  const std::string& f = file.name();
  for (const auto& [key, v] : {std::pair{"embedding_length", c.n_embd},
                               std::pair{"block_count", c.n_layer},
                               std::pair{"attention.head_count", c.n_head},
                               std::pair{"attention.head_count_kv", c.n_head_kv},
                               std::pair{"feed_forward_length", c.n_ff},
                               std::pair{"context_length", c.n_ctx_train}}) {
    if (v <= 0) {
      return corrupt(f + ": " + a + key + " is " + std::to_string(v) + "; it must be positive");
    }
  }
  // The layers the metadata promises must be the layers the file holds: fewer would leave
  // tensors unused (silently another model), more would bind tensors that are not there.
  FRUGAL_RETURN_IF_ERROR(check_block_count(file, a + "block_count", c.n_layer));
  if (c.n_head % c.n_head_kv != 0) {
    return corrupt(f + ": " + a + "attention.head_count (" + std::to_string(c.n_head) +
                   ") is not a multiple of " + a + "attention.head_count_kv (" +
                   std::to_string(c.n_head_kv) + ")");
  }
  if (file.find(a + "attention.key_length") == nullptr && c.n_embd % c.n_head != 0) {
    return corrupt(f + ": " + a + "embedding_length (" + std::to_string(c.n_embd) +
                   ") is not a multiple of " + a + "attention.head_count (" +
                   std::to_string(c.n_head) + ") and no attention.key_length gives the head "
                   "dimension");
  }
  c.head_dim = file.get_int_or(a + "attention.key_length", c.n_embd / c.n_head);
  if (c.head_dim <= 0 || c.head_dim % 2 != 0 || c.head_dim > 1024) {
    return corrupt(f + ": head dimension " + std::to_string(c.head_dim) + " (" + a +
                   "attention.key_length, or embedding_length / head_count) is not an even "
                   "size from 2 to 1024");
  }
  // Q and KV widths are products of file values: a product that wraps around would pass the
  // tensor shape checks with a small, wrong number.
  if (!checked_mul(c.n_head, c.head_dim) || !checked_mul(c.n_head_kv, c.head_dim) ||
      c.n_head * c.head_dim > kMaxWidth) {
    return corrupt(f + ": " + a + "attention.head_count " + std::to_string(c.n_head) +
                   " x head dimension " + std::to_string(c.head_dim) + " is more than " +
                   std::to_string(kMaxWidth) + " (a query width no model has)");
  }
  if (c.n_embd > kMaxWidth || c.n_ff > kMaxWidth) {
    return corrupt(f + ": " + a + (c.n_embd > kMaxWidth ? "embedding_length " : "feed_forward_length ") +
                   std::to_string(std::max(c.n_embd, c.n_ff)) + " is more than " +
                   std::to_string(kMaxWidth));
  }
  if (!(std::isfinite(c.rms_eps) && c.rms_eps > 0.0f && c.rms_eps < 1.0f)) {
    return corrupt(f + ": " + a + "attention.layer_norm_rms_epsilon is " +
                   format_float(c.rms_eps) + "; it must be a number in (0, 1), typically 1e-5");
  }
  if (!(std::isfinite(c.rope_freq_base) && c.rope_freq_base > 1.0f)) {
    return corrupt(f + ": " + a + "rope.freq_base is " + format_float(c.rope_freq_base) +
                   "; it must be a finite number above 1, typically 10000 to 1000000");
  }
  if (!(std::isfinite(c.rope_linear_scale) && c.rope_linear_scale > 0.0f)) {
    return corrupt(f + ": " + a + "rope.scaling.factor is " + format_float(c.rope_linear_scale) +
                   "; it must be a finite number above 0");
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
