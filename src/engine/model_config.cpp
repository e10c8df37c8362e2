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

// The layout flags of a known architecture (GGUF general.architecture), as llama.cpp's graph
// for it reads them; false for an architecture this build does not run.
bool set_family(const std::string& arch, ModelConfig& c) {
  using kernels::RopeStyle;
  if (arch == "llama" || arch == "mistral") {
    c.arch = Arch::kLlama;
    c.rope_style = RopeStyle::kNormal;
  } else if (arch == "qwen2") {
    c.arch = Arch::kQwen2;
    c.rope_style = RopeStyle::kNeox;
    c.qkv_bias = true;
  } else if (arch == "qwen3") {
    c.arch = Arch::kQwen3;
    c.rope_style = RopeStyle::kNeox;
    c.qk_norm = true;
  } else if (arch == "gemma2" || arch == "gemma3") {
    c.arch = arch == "gemma2" ? Arch::kGemma2 : Arch::kGemma3;
    c.rope_style = RopeStyle::kNeox;
    c.post_norms = true;
    c.ffn_act = FfnActivation::kGeluTanh;
    c.qk_norm = arch == "gemma3";
  } else if (arch == "phi3") {
    c.arch = Arch::kPhi3;
    c.rope_style = RopeStyle::kNeox;
    c.fused_gate_up = true;
  } else {
    return false;
  }
  return true;
}

// Gemma's and Phi-3's extra keys: embedding scale, query scale, soft-caps, sliding windows.
// Defaults are llama.cpp's (gemma2: window 4096, caps 50 and 30).
Status read_family_keys(const GgufFile& file, ModelConfig& c) {
  const std::string a = c.arch_name + ".";
  const std::string& f = file.name();
  const bool gemma = c.arch == Arch::kGemma2 || c.arch == Arch::kGemma3;
  c.attn_scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  if (gemma) {
    c.embd_scale = std::sqrt(static_cast<float>(c.n_embd));
    // query_pre_attn_scalar is not in llama.cpp's GGUF files: its graph uses n_embd / n_head
    // for the 27B models (46 and 62 layers) and head_dim otherwise, as gemma_pytorch does.
    const int64_t n_layer_27b = c.arch == Arch::kGemma2 ? 46 : 62;
    if (c.n_layer == n_layer_27b)
      c.attn_scale = 1.0f / std::sqrt(static_cast<float>(c.n_embd / c.n_head));
  }
  if (file.find(a + "attention.scale") != nullptr) {
    c.attn_scale = static_cast<float>(file.get_float_or(a + "attention.scale", 0.0));
    if (!(std::isfinite(c.attn_scale) && c.attn_scale > 0.0f)) {
      return corrupt(f + ": " + a + "attention.scale is " + format_float(c.attn_scale) +
                     "; it must be a finite number above 0");
    }
  }
  const double attn_cap = c.arch == Arch::kGemma2 ? 50.0 : 0.0;
  const double final_cap = c.arch == Arch::kGemma2 ? 30.0 : 0.0;
  c.attn_softcap = static_cast<float>(file.get_float_or(a + "attn_logit_softcapping", attn_cap));
  c.final_softcap = static_cast<float>(file.get_float_or(a + "final_logit_softcapping", final_cap));
  for (const auto& [key, v] : {std::pair{"attn_logit_softcapping", c.attn_softcap},
                               std::pair{"final_logit_softcapping", c.final_softcap}}) {
    if (!(std::isfinite(v) && v >= 0.0f)) {
      return corrupt(f + ": " + a + key + " is " + format_float(v) +
                     "; it must be a finite number, 0 for none (Gemma 2 uses 50 and 30)");
    }
  }
  if (c.arch == Arch::kGemma2) {
    c.n_swa = file.get_int_or(a + "attention.sliding_window", 4096);
    c.swa_pattern = 2;
  } else if (c.arch == Arch::kGemma3) {
    FRUGAL_ASSIGN_OR_RETURN(c.n_swa, file.get_int(a + "attention.sliding_window"));
    c.swa_pattern = 6;
    c.rope_freq_base_swa = 10000.0f;
  } else if (c.arch == Arch::kPhi3) {
    // Every layer, as Hugging Face's Phi3 applies config.sliding_window (llama.cpp ignores it,
    // which differs only past the window: 2047 positions for Phi-3-mini-4k).
    c.n_swa = file.get_int_or(a + "attention.sliding_window", 0);
    c.swa_pattern = 1;
  }
  if (c.n_swa < 0) {
    return corrupt(f + ": " + a + "attention.sliding_window is " + std::to_string(c.n_swa) +
                   "; it must be positive (or 0 for none)");
  }
  if (c.arch == Arch::kPhi3 && (file.find_tensor("rope_factors_long.weight") != nullptr ||
                                file.find_tensor("rope_factors_short.weight") != nullptr)) {
    return unsupported(f + " uses LongRoPE (rope_factors_long / rope_factors_short: a 128k-context "
                       "Phi-3 or Phi-3.5), which this build does not implement; Phi-3 models "
                       "without it (Phi-3-mini-4k-instruct) run");
  }
  c.fused_qkv = file.find_tensor("blk.0.attn_qkv.weight") != nullptr;
  if (c.fused_qkv && c.arch != Arch::kPhi3) {
    return unsupported(f + ": a fused attn_qkv tensor is supported for phi3 only, not " +
                       c.arch_name);
  }
  return Status::ok();
}

}  // namespace

Result<ModelConfig> ModelConfig::from_gguf(const GgufFile& file) {
  ModelConfig c;
  FRUGAL_ASSIGN_OR_RETURN(c.arch_name, file.get_string("general.architecture"));
  if (!set_family(c.arch_name, c)) {
    return unsupported("unsupported architecture '" + c.arch_name + "' in " + file.name() +
                       ": this build runs llama (Llama 2/3, Mistral, TinyLlama, SmolLM), qwen2, "
                       "qwen3, gemma2, gemma3 and phi3");
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
  FRUGAL_RETURN_IF_ERROR(read_family_keys(file, c));
  return c;
}

std::string ModelConfig::summary() const {
  char buf[320];
  std::snprintf(buf, sizeof(buf),
                "%s: n_vocab=%lld n_embd=%lld n_layer=%lld n_head=%lld n_head_kv=%lld "
                "head_dim=%lld n_ff=%lld n_ctx_train=%lld rope_base=%g%s%s%s%s",
                arch_name.c_str(), (long long)n_vocab, (long long)n_embd, (long long)n_layer,
                (long long)n_head, (long long)n_head_kv, (long long)head_dim, (long long)n_ff,
                (long long)n_ctx_train, rope_freq_base, qkv_bias ? " qkv_bias" : "",
                tied_output ? " tied_output" : "", qk_norm ? " qk_norm" : "",
                post_norms ? " post_norms" : "");
  std::string out = buf;
  if (n_swa > 0) out += " sliding_window=" + std::to_string(n_swa);
  if (attn_softcap > 0.0f || final_softcap > 0.0f)
    out += " softcap=" + format_float(attn_softcap) + "/" + format_float(final_softcap);
  return out;
}

}  // namespace frugal
