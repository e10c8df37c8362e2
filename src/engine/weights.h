// Weights: read-only views into the memory-mapped GGUF file, one struct per layer.
// Matrices stay in their file type (quantized); small vectors (norms, biases, rope factors)
// are converted to float once at load. Never holds request state.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "engine/model_config.h"
#include "kernels/ops.h"
#include "util/status.h"

namespace frugal {

class GgufFile;

// Optional parts are empty (views with no rows, empty vectors) unless the config asks for them.
struct LayerWeights {
  std::vector<float> attn_norm;  // [n_embd]
  kernels::WeightView wq;        // [n_head * head_dim, n_embd]; empty when fused_qkv
  kernels::WeightView wk;        // [n_head_kv * head_dim, n_embd]; empty when fused_qkv
  kernels::WeightView wv;        // [n_head_kv * head_dim, n_embd]; empty when fused_qkv
  kernels::WeightView wqkv;      // fused_qkv (phi3): [n_embd_q + 2 n_embd_kv, n_embd]
  kernels::WeightView wo;        // [n_embd, n_head * head_dim]
  std::vector<float> bq, bk, bv; // qwen2 only: [n_head * head_dim], [n_embd_kv], [n_embd_kv]
  std::vector<float> q_norm, k_norm;  // qk_norm: [head_dim] each, shared by all heads
  std::vector<float> attn_post_norm;  // post_norms: [n_embd]
  std::vector<float> ffn_norm;   // [n_embd]
  kernels::WeightView w_gate;    // [n_ff, n_embd]; empty when fused_gate_up
  kernels::WeightView w_up;      // [n_ff, n_embd], fused_gate_up: [2 n_ff, n_embd] (gate, up)
  kernels::WeightView w_down;    // [n_embd, n_ff]
  std::vector<float> ffn_post_norm;   // post_norms: [n_embd]
};

struct Weights {
  kernels::WeightView token_embd;  // [n_vocab, n_embd]
  std::vector<float> output_norm;  // [n_embd]
  kernels::WeightView output;      // [n_vocab, n_embd]; == token_embd when tied
  std::vector<float> rope_freqs;   // [head_dim / 2] frequency divisors (Llama 3), or empty
  std::vector<LayerWeights> layers;

  // Binds every tensor the config needs, checking names, shapes and types.
  // Errors: kCorrupt naming a missing or mis-shaped tensor; kUnsupported naming a tensor whose
  // type has no kernel here (with the fix: `frugal quantize` to q8_0 / q4_0 / f16).
  static Result<Weights> bind(const GgufFile& file, const ModelConfig& config);

  // Bytes of weights one decode step streams from memory: every layer matrix, the output
  // matrix, one embedding row. The decode roofline divides this by memory bandwidth.
  int64_t bytes_per_token() const;
  // Multiply-accumulates per token in the matrices (2 flops each), for the prefill roofline.
  int64_t matmul_params() const;

  // Copies every matrix that matmul reads (all but token_embd) into the SIMD tile's
  // interleaved layout, where this machine's kernels have one for its type
  // (kernels::interleave_group: Q4_K and Q5_K on AVX2 and AVX-512, Q8_0, Q4_0, Q5_0 and
  // Q6_K on AVX-512 VNNI).
  // An output matrix tied to token_embd gets a copy of its own; token_embd keeps reading the
  // file, one row per token. With `release_file_pages` the mapped file's pages of the copied
  // matrices are then dropped, so resident memory does not double (a tied table's rows
  // come back one page at a time as tokens look them up). A matrix whose copy cannot be
  // allocated keeps the file's layout (same results). Returns the bytes copied.
  int64_t interleave_for_matmul(bool release_file_pages);

 private:
  struct FreeBytes {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::vector<std::unique_ptr<uint8_t[], FreeBytes>> owned_;  // interleaved copies
};

}  // namespace frugal
