// ModelConfig: the immutable hyper-parameters of a model, read from GGUF metadata.
// Differences between families (QKV bias, RoPE style, tied output, Q/K norms, post-norms,
// GELU, soft-capping, sliding-window layers, fused matrices) are data here, so one forward
// pass serves them all.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "util/status.h"

namespace frugal {

class GgufFile;

enum class Arch { kLlama, kQwen2, kQwen3, kGemma2, kGemma3, kPhi3 };

// The FFN's gate activation: down(act(gate(x)) * up(x)).
enum class FfnActivation { kSilu, kGeluTanh };

struct ModelConfig {
  Arch arch = Arch::kLlama;
  std::string arch_name;     // "llama", "qwen2", "qwen3", "gemma2", "gemma3", "phi3"
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
  // qwen3, gemma3: each Q and K head is RMS-normalised with its own weights [head_dim] before
  // RoPE (attn_q_norm, attn_k_norm).
  bool qk_norm = false;
  // gemma2/3: the attention and FFN outputs are RMS-normalised (post_attention_norm,
  // post_ffw_norm) before their residual adds.
  bool post_norms = false;
  bool fused_qkv = false;      // phi3: one attn_qkv [n_embd_q + 2 n_embd_kv, n_embd], Q K V rows
  bool fused_gate_up = false;  // phi3: ffn_up [2 n_ff, n_embd] holds the gate rows, then up's
  FfnActivation ffn_act = FfnActivation::kSilu;  // gemma: GELU (tanh form)
  float embd_scale = 1.0f;     // gemma: token embeddings are multiplied by sqrt(n_embd)
  // Multiplier of q·k before the softmax: 1/sqrt(head_dim), or {arch}.attention.scale, or
  // Gemma's 1/sqrt(query_pre_attn_scalar) as llama.cpp derives it (n_embd / n_head for 27B).
  float attn_scale = 0.0f;
  float attn_softcap = 0.0f;   // gemma2: scores s -> cap · tanh(s / cap); 0: none
  float final_softcap = 0.0f;  // gemma2: logits likewise
  // Sliding-window attention: a local layer attends to its last n_swa positions (itself
  // included). 0: every layer is global. Layer il is local when swa_pattern <= 1 or
  // il % swa_pattern < swa_pattern - 1 (llama.cpp's rule: gemma2 2, gemma3 6, phi3 1 = all).
  int64_t n_swa = 0;
  int64_t swa_pattern = 0;
  // gemma3: local layers' RoPE base (10000), without the global layers' scaling; 0: local
  // layers rotate as the global ones.
  float rope_freq_base_swa = 0.0f;

  int64_t n_embd_q() const { return n_head * head_dim; }
  int64_t n_embd_kv() const { return n_head_kv * head_dim; }
  bool is_swa(int64_t il) const {
    return n_swa > 0 && (swa_pattern <= 1 || il % swa_pattern < swa_pattern - 1);
  }

  // Reads `{arch}.*` keys. Errors: kUnsupported naming an unknown architecture; kCorrupt for
  // missing or inconsistent hyper-parameters (e.g. n_head not a multiple of n_head_kv).
  static Result<ModelConfig> from_gguf(const GgufFile& file);
  std::string summary() const;  // one line for logs
};

}  // namespace frugal
