// ModelConfig: the immutable hyper-parameters of a model, read from GGUF metadata.
// Differences between families (QKV bias, RoPE style, tied output) are data here, so one
// forward pass serves them all.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "util/status.h"

namespace frugal {

class GgufFile;

enum class Arch { kLlama, kQwen2 };

struct ModelConfig {
  Arch arch = Arch::kLlama;
  std::string arch_name;     // "llama", "qwen2" (GGUF general.architecture)
  std::string name;          // general.name, may be empty
  int64_t n_vocab = 0;
  int64_t n_embd = 0;        // hidden size
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;     // < n_head for grouped-query attention
  int64_t head_dim = 0;      // n_embd / n_head unless attention.key_length says otherwise
  int64_t n_ff = 0;          // feed-forward hidden size
  int64_t n_ctx_train = 0;   // context length the model was trained with
  int64_t n_rot = 0;         // dimensions RoPE rotates (head_dim for these families)
  float rms_eps = 1e-5f;
  float rope_freq_base = 10000.0f;
  float rope_linear_scale = 1.0f;  // positions are divided by this (rope.scaling.type=linear)
  kernels::RopeStyle rope_style = kernels::RopeStyle::kNormal;
  bool qkv_bias = false;     // qwen2 adds a bias to Q, K and V
  bool tied_output = false;  // no output.weight: the token embedding doubles as the LM head

  int64_t n_embd_q() const { return n_head * head_dim; }
  int64_t n_embd_kv() const { return n_head_kv * head_dim; }

  // Reads `{arch}.*` keys. Errors: kUnsupported naming an unknown architecture; kCorrupt for
  // missing or inconsistent hyper-parameters (e.g. n_head not a multiple of n_head_kv).
  static Result<ModelConfig> from_gguf(const GgufFile& file);
  std::string summary() const;  // one line for logs
};

}  // namespace frugal
