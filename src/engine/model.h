// Model: a loaded GGUF model (config, weight views, tokenizer) and its forward pass.
// One forward call scores a batch of sequences, each contributing one or more tokens (prefill
// chunks and decode steps mixed), against a paged KvCache; continuous batching, prefix
// sharing and speculative verification all use this one path.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/kv_cache.h"
#include "engine/model_config.h"
#include "engine/weights.h"
#include "util/status.h"
#include "util/thread_pool.h"

namespace frugal {

class GgufFile;
class Tokenizer;

struct ModelOptions {
  // The process's one pool, shared by every model so that two models running at once do not
  // oversubscribe the cores. Null: the model makes its own with n_threads threads.
  std::shared_ptr<ThreadPool> pool;
  int n_threads = 0;  // without a pool; 0: one per hardware thread
  // Q4_K / Q5_K matrices copied into the SIMD tile's interleaved layout at load (bitwise the
  // same results, faster decode: Weights::interleave_for_matmul). Off: read in place from the
  // mapped file.
  bool interleave_weights = true;
};

// One sequence's part of a batch: `tokens` follow what the cache already holds for `seq`.
struct SeqBatch {
  KvCache::SeqId seq = 0;
  std::span<const int32_t> tokens;
  bool all_logits = false;  // logits for every token (speculative verification), else the last
  bool no_logits = false;   // no logits row at all (a prefill chunk before the prompt's end)
  // Optional, at most one per token: targets[i] is the token that follows tokens[i], and
  // forward reports log p(targets[i] | ..tokens[i]) reducing each row as it is computed, so
  // prompt logprobs never need a [n_tokens, n_vocab] matrix.
  std::span<const int32_t> targets;
  // log p(tokens[0] | the positions already cached), when known (the previous chunk's last
  // target); kept with the cache blocks together with the targets' logprobs.
  float first_logprob = KvCache::kNoLogprob;
  // Optional [n_embd]: forward adds the final-normed hidden state of each of this entry's
  // tokens to it (the semantic cache mean-pools them into an embedding).
  float* hidden_sum = nullptr;
};

class Model {
 public:
  // Errors: those of GgufFile::open, ModelConfig::from_gguf, Weights::bind and
  // Tokenizer::from_gguf, each naming the file.
  static Result<std::unique_ptr<Model>> load(const std::string& path, const ModelOptions& options);
  ~Model();

  const ModelConfig& config() const { return config_; }
  const Weights& weights() const { return weights_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const GgufFile& gguf() const { return *file_; }
  ThreadPool& pool() { return *pool_; }
  const std::string& path() const { return path_; }

  // A cache with room for `n_positions` tokens over all sequences (rounded up to blocks), for
  // tests and tools that size it themselves (the scheduler checks it with KvCache::create).
  std::unique_ptr<KvCache> make_kv_cache(int64_t n_positions, int block_size = 16,
                                         KvType type = KvType::kF16) const;

  // Writes the K/V of every token of every entry into `kv` and returns logits, row-major
  // [n_rows, n_vocab]: all positions of an all_logits entry, none of a no_logits one, else
  // its last, in batch order. With `target_logprobs`, it receives each entry's targets'
  // logprobs in batch order (targets.size() values per entry). Each sequence appears at most
  // once per batch. Errors (nothing is committed, no block is taken): kInvalidArgument for an
  // empty entry, a repeated sequence, a token id outside the vocabulary or more targets than
  // tokens; kOutOfRange when the cache has no room for the whole batch.
  Status forward(std::span<const SeqBatch> batch, KvCache& kv, std::vector<float>& logits,
                 std::vector<float>* target_logprobs = nullptr);

  // From now on forward computes logits only for token ids below `n_first` (rounded up to a
  // whole row group of the output matrix) and for the end-of-generation tokens; the others
  // read -infinity, so sampling never picks them. A drafter's output matrix then costs
  // n_first / n_vocab of its full size (FR-Spec, Zhao et al. 2025: BPE ids rise as merges
  // get rarer, so the low ids are the frequent tokens). n_first >= n_vocab, or 0, computes
  // them all again. Target logprobs are unaffected.
  void restrict_logits(int64_t n_first);

 private:
  Model() = default;

  // Scratch reused across calls; grows, never shrinks. Shapes for T tokens in the batch.
  struct RunState {
    std::vector<float> x;      // [T, n_embd] residual stream
    std::vector<float> xn;     // [T, n_embd] normalised input of the current block
    std::vector<float> q;      // [T, n_head * head_dim]
    std::vector<float> k;      // [T, n_head_kv * head_dim]
    std::vector<float> v;      // [T, n_head_kv * head_dim]
    std::vector<float> qkv;    // fused_qkv: [T, n_embd_q + 2 n_embd_kv] before the split
    std::vector<float> attn;   // [T, n_head * head_dim] attention output before wo
    std::vector<float> gate;   // [T, n_ff]
    std::vector<float> up;     // [T, n_ff]; fused_gate_up: [T, 2 n_ff] (gate, then up)
    std::vector<float> proj;   // [T, n_embd] output of wo / w_down before the residual add
    std::vector<float> scores; // [n_threads, n_head / n_head_kv, max positions] attention weights
    std::vector<float> xo;     // [n_rows, n_embd] final-normed rows that need logits
    std::vector<float> target_logits;  // [kTargetRows, n_vocab] rows reduced to one logprob
    std::vector<const void*> block_ptrs;  // [n_threads, 2, n_blocks] K and V block pointers
    std::vector<int32_t> tok_seq, tok_pos;  // [T] sequence and position of each token
    std::vector<float> rope_cs, rope_cs_swa;  // [T, head_dim] cos | sin of each token (rope_table)
    std::vector<int32_t> out_tokens;                   // [n_rows] token index per logits row
    std::vector<int32_t> target_rows, target_ids;      // [n_targets] token index and target
    std::vector<float> target_lp;                      // [n_targets] their logprobs
  };
  void compute_target_logprobs();  // s_.target_lp from the final hidden states x
  // logits [n_rows, n_vocab] from the final-normed rows xo, over all ids or restrict_logits's.
  void output_logits(int64_t n_rows, float* logits);
  void ensure_state(int64_t n_tokens, int64_t n_positions);
  void attention(int64_t il, int64_t n_tokens, KvCache& kv);

  std::string path_;
  std::unique_ptr<GgufFile> file_;
  ModelConfig config_;
  Weights weights_;
  // restrict_logits: the output rows computed, as views of whole row groups, each with the id
  // of its first row; empty = all of them in one matmul.
  struct OutputSlice {
    kernels::WeightView view;
    int64_t first_id;
  };
  std::vector<OutputSlice> output_slices_;
  std::vector<float> slice_logits_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::shared_ptr<ThreadPool> pool_;
  std::vector<float> inv_freq_;  // [head_dim / 2] RoPE frequency per pair, scaling applied
  std::vector<float> inv_freq_swa_;  // [head_dim / 2] local layers' own (gemma3), or empty
  RunState s_;
};

}  // namespace frugal
