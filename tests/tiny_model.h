// A tiny random llama GGUF (20 KB: 2 layers, width 8, a 280-token SentencePiece vocabulary
// with all 256 byte tokens; 2 to 5 KB without them), built in a GgufWriter so a test can change one key or tensor
// before writing: the bad-model tests and the seeds of the model fuzzer start from it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/gguf_writer.h"

namespace frugal::test {

struct TinyModelShape {
  int64_t n_embd = 8;
  int64_t n_layer = 2;
  int64_t n_head = 2;
  int64_t n_head_kv = 1;
  int64_t n_ff = 16;
  // or "qwen2" (adds Q/K/V biases), "qwen3" (Q/K norms), "gemma2" / "gemma3" (post-norms,
  // sliding window of 4; gemma3 Q/K norms), "phi3" (fused attn_qkv and ffn_up, window 6)
  std::string arch = "llama";
  bool tied = true;
  bool byte_tokens = true;  // the 256 <0xHH> tokens (SentencePiece's fallback); most of the size
  uint64_t seed = 1;
};

// Deterministic small values in [-0.5, 0.5).
inline std::vector<float> tiny_values(int64_t n, uint64_t seed) {
  std::vector<float> v(static_cast<size_t>(n));
  uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
  for (float& x : v) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x = static_cast<float>((s >> 40) & 0xffff) / 65536.0f - 0.5f;
  }
  return v;
}

// The metadata and F32 tensors of a working model of `shape`. Tensor bytes are produced while
// writing, so the writer holds no pointers into the caller's memory.
inline GgufWriter tiny_model_writer(const TinyModelShape& shape = {}) {
  GgufWriter w;
  const std::string a = shape.arch + ".";
  w.set_string("general.architecture", shape.arch);
  w.set_string("general.name", "tiny");
  w.set_uint32(a + "context_length", 64);
  w.set_uint32(a + "embedding_length", static_cast<uint32_t>(shape.n_embd));
  w.set_uint32(a + "block_count", static_cast<uint32_t>(shape.n_layer));
  w.set_uint32(a + "feed_forward_length", static_cast<uint32_t>(shape.n_ff));
  w.set_uint32(a + "attention.head_count", static_cast<uint32_t>(shape.n_head));
  w.set_uint32(a + "attention.head_count_kv", static_cast<uint32_t>(shape.n_head_kv));
  w.set_float32(a + "attention.layer_norm_rms_epsilon", 1e-5f);
  w.set_float32(a + "rope.freq_base", 10000.0f);
  const bool gemma = shape.arch == "gemma2" || shape.arch == "gemma3";
  const bool qk_norm = shape.arch == "qwen3" || shape.arch == "gemma3";
  const bool phi3 = shape.arch == "phi3";
  if (gemma || phi3) w.set_uint32(a + "attention.sliding_window", gemma ? 4 : 6);

  // <unk> <s> </s>, the 256 byte tokens, then a few words (SentencePiece spaces as U+2581).
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<int64_t> types = {2, 3, 3};
  for (int b = 0; b < (shape.byte_tokens ? 256 : 0); ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    tokens.emplace_back(name);
    types.push_back(6);
  }
  for (const char* word : {"\xE2\x96\x81hi", "\xE2\x96\x81the", "\xE2\x96\x81" "a", "h", "i", "t",
                           "e", "a", "\xE2\x96\x81", "th", "he", "\xE2\x96\x81t", "o", "n",
                           "s", "r", "l", "d", "\xE2\x96\x81on", "in", "er"}) {
    tokens.emplace_back(word);
    types.push_back(1);
  }
  const int64_t n_vocab = static_cast<int64_t>(tokens.size());
  std::vector<double> scores;
  for (int64_t i = 0; i < n_vocab; ++i) scores.push_back(-static_cast<double>(i));
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_float_array("tokenizer.ggml.scores", GgufValueType::kFloat32, scores);
  w.set_int_array("tokenizer.ggml.token_type", GgufValueType::kInt32, types);
  w.set_uint32("tokenizer.ggml.bos_token_id", 1);
  w.set_uint32("tokenizer.ggml.eos_token_id", 2);

  uint64_t seed = shape.seed;
  auto add = [&](const std::string& name, std::vector<int64_t> dims, float scale = 1.0f,
                 float offset = 0.0f) {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    const uint64_t s = seed++;
    GgufWriter::TensorProducer producer = [n, s, scale, offset](const GgufWriter::ByteSink& sink) {
      std::vector<float> v = tiny_values(n, s);
      for (float& x : v) x = x * scale + offset;
      return sink(v.data(), v.size() * sizeof(float));
    };
    CHECK(w.add_tensor(name, std::move(dims), GgmlType::kF32, std::move(producer)).is_ok());
  };
  const int64_t head_dim = shape.n_embd / shape.n_head;
  const int64_t nq = shape.n_head * head_dim, nkv = shape.n_head_kv * head_dim;
  add("token_embd.weight", {shape.n_embd, n_vocab});
  add("output_norm.weight", {shape.n_embd}, 0.2f, 1.0f);
  if (!shape.tied) add("output.weight", {shape.n_embd, n_vocab});
  for (int64_t il = 0; il < shape.n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    add(p + "attn_norm.weight", {shape.n_embd}, 0.2f, 1.0f);
    if (phi3) {
      add(p + "attn_qkv.weight", {shape.n_embd, nq + 2 * nkv});
    } else {
      add(p + "attn_q.weight", {shape.n_embd, nq});
      add(p + "attn_k.weight", {shape.n_embd, nkv});
      add(p + "attn_v.weight", {shape.n_embd, nkv});
    }
    add(p + "attn_output.weight", {nq, shape.n_embd});
    if (qk_norm) {
      add(p + "attn_q_norm.weight", {head_dim}, 0.2f, 1.0f);
      add(p + "attn_k_norm.weight", {head_dim}, 0.2f, 1.0f);
    }
    if (gemma) {
      add(p + "post_attention_norm.weight", {shape.n_embd}, 0.2f, 1.0f);
      add(p + "post_ffw_norm.weight", {shape.n_embd}, 0.2f, 1.0f);
    }
    if (shape.arch == "qwen2") {
      add(p + "attn_q.bias", {nq}, 0.1f);
      add(p + "attn_k.bias", {nkv}, 0.1f);
      add(p + "attn_v.bias", {nkv}, 0.1f);
    }
    add(p + "ffn_norm.weight", {shape.n_embd}, 0.2f, 1.0f);
    if (phi3) {
      add(p + "ffn_up.weight", {shape.n_embd, 2 * shape.n_ff});
    } else {
      add(p + "ffn_gate.weight", {shape.n_embd, shape.n_ff});
      add(p + "ffn_up.weight", {shape.n_embd, shape.n_ff});
    }
    add(p + "ffn_down.weight", {shape.n_ff, shape.n_embd});
  }
  return w;
}

}  // namespace frugal::test
