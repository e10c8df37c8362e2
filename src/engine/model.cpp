// The forward pass of the llama family (Llama 2/3, Mistral, Qwen2/3, Gemma 2/3, Phi-3), read
// top to bottom: embed (× sqrt(n_embd) for Gemma) → per layer [RMSNorm → Q,K,V (+bias; one
// fused matrix for Phi-3) → per-head Q/K RMSNorm (Qwen3, Gemma 3) → RoPE → KV cache →
// attention (sliding window on local layers, soft-capped scores for Gemma 2) → wo
// (→ RMSNorm for Gemma) → residual → RMSNorm → SwiGLU or GELU FFN (→ RMSNorm for Gemma) →
// residual] → final RMSNorm → logits (soft-capped for Gemma 2). The differences are flags of
// ModelConfig.
// Reference: Hugging Face transformers' Llama / Qwen2 / Qwen3 / Gemma2 / Gemma3 / Phi3 models
// (tests/python compare logits).
#include "engine/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "engine/gguf.h"
#include "engine/tokenizer.h"
#include "kernels/ops.h"

namespace frugal {

namespace {
// Target rows go through the output matrix this many at a time and are reduced to one
// logprob each, so a long prompt's logprobs cost [kTargetRows, n_vocab] floats of scratch.
constexpr int64_t kTargetRows = 32;

// out[t] = rms_norm(x[t]) * w for each of n_rows rows of n elements, spread over the pool in
// chunks of `grain` rows. out may alias x.
void rms_norm_rows(ThreadPool* pool, const float* x, const std::vector<float>& w, float eps,
                   int64_t n_rows, int64_t n, float* out, int64_t grain) {
  pool->parallel_for(n_rows, grain, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) kernels::rms_norm(x + t * n, w.data(), eps, n, out + t * n);
  });
}

// out[i] = act(gate[i]) * up[i]; element-wise, so a row's result does not depend on the batch.
void ffn_activation(FfnActivation act, const float* gate, const float* up, int64_t n, float* out) {
  if (act == FfnActivation::kGeluTanh) {
    kernels::gelu_mul(gate, up, n, out);
  } else {
    kernels::silu_mul(gate, up, n, out);
  }
}
}  // namespace

Model::~Model() = default;

Result<std::unique_ptr<Model>> Model::load(const std::string& path, const ModelOptions& options) {
  std::unique_ptr<Model> m(new Model());
  m->path_ = path;
  FRUGAL_ASSIGN_OR_RETURN(m->file_, GgufFile::open(path));
  FRUGAL_ASSIGN_OR_RETURN(m->config_, ModelConfig::from_gguf(*m->file_));
  FRUGAL_ASSIGN_OR_RETURN(m->weights_, Weights::bind(*m->file_, m->config_));
  if (options.interleave_weights) m->weights_.interleave_for_matmul(/*release_file_pages=*/true);
  FRUGAL_ASSIGN_OR_RETURN(m->tokenizer_, Tokenizer::from_gguf(*m->file_));
  if (m->tokenizer_->n_vocab() != m->config_.n_vocab) {
    return corrupt(path + ": the tokenizer has " + std::to_string(m->tokenizer_->n_vocab()) +
                   " tokens but token_embd.weight has " + std::to_string(m->config_.n_vocab) +
                   " rows");
  }
  if (options.pool != nullptr) {
    m->pool_ = options.pool;
  } else {
    FRUGAL_ASSIGN_OR_RETURN(m->pool_, ThreadPool::create(options.n_threads));
  }

  // θ_i = base^(-2i/d), divided by Llama-3's per-frequency factors and the linear scale;
  // Gemma 3's local layers use their own base and no scaling.
  const ModelConfig& c = m->config_;
  m->inv_freq_.resize(c.head_dim / 2);
  for (int64_t i = 0; i < c.head_dim / 2; ++i) {
    const double e = -2.0 * static_cast<double>(i) / static_cast<double>(c.head_dim);
    double f = std::pow(static_cast<double>(c.rope_freq_base), e);
    if (!m->weights_.rope_freqs.empty()) f /= m->weights_.rope_freqs[i];
    f /= c.rope_linear_scale;
    m->inv_freq_[i] = static_cast<float>(f);
    if (c.rope_freq_base_swa > 0.0f) {
      m->inv_freq_swa_.resize(c.head_dim / 2);
      m->inv_freq_swa_[i] = static_cast<float>(std::pow(double{c.rope_freq_base_swa}, e));
    }
  }
  return m;
}

std::unique_ptr<KvCache> Model::make_kv_cache(int64_t n_positions, int block_size,
                                              KvType type) const {
  const int64_t n_blocks = std::max<int64_t>(1, (n_positions + block_size - 1) / block_size);
  return std::make_unique<KvCache>(config_, n_blocks, block_size, type);
}

void Model::ensure_state(int64_t n_tokens, int64_t n_positions) {
  const ModelConfig& c = config_;
  auto grow = [](std::vector<float>& v, int64_t n) {
    if (static_cast<int64_t>(v.size()) < n) v.resize(n);
  };
  grow(s_.x, n_tokens * c.n_embd);
  grow(s_.xn, n_tokens * c.n_embd);
  grow(s_.q, n_tokens * c.n_embd_q());
  grow(s_.k, n_tokens * c.n_embd_kv());
  grow(s_.v, n_tokens * c.n_embd_kv());
  if (c.fused_qkv) grow(s_.qkv, n_tokens * (c.n_embd_q() + 2 * c.n_embd_kv()));
  grow(s_.attn, n_tokens * c.n_embd_q());
  grow(s_.gate, n_tokens * c.n_ff);
  grow(s_.up, n_tokens * c.n_ff * (c.fused_gate_up ? 2 : 1));
  grow(s_.proj, n_tokens * c.n_embd);
  grow(s_.scores, static_cast<int64_t>(pool_->n_threads()) * (c.n_head / c.n_head_kv) * n_positions);
  const size_t ptrs = static_cast<size_t>(pool_->n_threads()) * 2 * (n_positions + 1);
  if (s_.block_ptrs.size() < ptrs) s_.block_ptrs.resize(ptrs);
  grow(s_.xo, n_tokens * c.n_embd);
  grow(s_.target_logits, kTargetRows * c.n_vocab);
}

Status Model::forward(std::span<const SeqBatch> batch, KvCache& kv, std::vector<float>& logits,
                      std::vector<float>* target_logprobs) {
  const ModelConfig& c = config_;
  const Weights& w = weights_;
  ThreadPool* pool = pool_.get();

  // Validate everything before touching the cache, so an error leaves it unchanged.
  auto check_ids = [&](std::span<const int32_t> ids) {
    for (int32_t t : ids) {
      if (t < 0 || t >= c.n_vocab) {
        return invalid_argument("token id " + std::to_string(t) +
                                " is outside the vocabulary [0, " + std::to_string(c.n_vocab) +
                                ")");
      }
    }
    return Status::ok();
  };
  int64_t n_tokens = 0;
  for (const SeqBatch& e : batch) {
    if (e.tokens.empty()) return invalid_argument("a batch entry has no tokens");
    if (e.targets.size() > e.tokens.size())
      return invalid_argument("a batch entry has more targets than tokens");
    if (e.all_logits && e.no_logits)
      return invalid_argument("a batch entry asks for all logits and for none");
    FRUGAL_RETURN_IF_ERROR(check_ids(e.tokens));
    FRUGAL_RETURN_IF_ERROR(check_ids(e.targets));
    n_tokens += static_cast<int64_t>(e.tokens.size());
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (batch[i].seq == batch[j].seq)
        return invalid_argument("sequence " + std::to_string(batch[i].seq) +
                                " appears twice in one batch; give it one entry");
    }
  }
  if (n_tokens == 0) return invalid_argument("empty batch");
  {
    std::vector<KvCache::Reservation> need;
    need.reserve(batch.size());
    for (const SeqBatch& e : batch) need.push_back({e.seq, static_cast<int64_t>(e.tokens.size())});
    FRUGAL_RETURN_IF_ERROR(kv.reserve_all(need));
  }

  const int64_t n_positions = kv.n_blocks() * kv.block_size();
  ensure_state(n_tokens, n_positions);
  s_.tok_seq.resize(n_tokens);
  s_.tok_pos.resize(n_tokens);
  s_.out_tokens.clear();
  s_.target_rows.clear();
  s_.target_ids.clear();
  {
    int64_t t = 0;
    for (size_t ei = 0; ei < batch.size(); ++ei) {
      const SeqBatch& e = batch[ei];
      const int64_t n_past = kv.n_past(e.seq);
      const int64_t n = static_cast<int64_t>(e.tokens.size());
      for (int64_t i = 0; i < n; ++i, ++t) {
        s_.tok_seq[t] = e.seq;
        s_.tok_pos[t] = static_cast<int32_t>(n_past + i);
        if (e.all_logits || (i == n - 1 && !e.no_logits))
          s_.out_tokens.push_back(static_cast<int32_t>(t));
        if (i < static_cast<int64_t>(e.targets.size())) {
          s_.target_rows.push_back(static_cast<int32_t>(t));
          s_.target_ids.push_back(e.targets[i]);
        }
      }
    }
  }

  const int64_t n_embd = c.n_embd, nq = c.n_embd_q(), nkv = c.n_embd_kv(), hd = c.head_dim;
  // Each token's RoPE cos and sin, once for every layer and head.
  s_.rope_cs.resize(n_tokens * hd);
  if (!inv_freq_swa_.empty()) s_.rope_cs_swa.resize(n_tokens * hd);
  for (int64_t t = 0; t < n_tokens; ++t) {
    kernels::rope_table(s_.tok_pos[t], inv_freq_.data(), hd / 2, s_.rope_cs.data() + t * hd);
    if (!inv_freq_swa_.empty())
      kernels::rope_table(s_.tok_pos[t], inv_freq_swa_.data(), hd / 2, s_.rope_cs_swa.data() + t * hd);
  }
  float* x = s_.x.data();    // [T, n_embd]
  float* xn = s_.xn.data();  // [T, n_embd]

  // Token embeddings: one row of token_embd each.
  {
    int64_t t = 0;
    const int64_t row_bytes = w.token_embd.row_bytes();
    for (const SeqBatch& e : batch) {
      for (int32_t tok : e.tokens) {
        const auto* row = static_cast<const uint8_t*>(w.token_embd.data) + tok * row_bytes;
        kernels::dequantize_row(w.token_embd.type, row, x + t * n_embd, n_embd);
        if (c.embd_scale != 1.0f) kernels::scale(x + t * n_embd, c.embd_scale, n_embd);
        ++t;
      }
    }
  }

  // Per-token work of the small ops, so that small batches stay on the calling thread.
  const int64_t norm_grain = parallel_grain(4 * n_embd);
  const int64_t rope_grain = parallel_grain(8 * (nq + 2 * nkv));
  for (int64_t il = 0; il < c.n_layer; ++il) {
    const LayerWeights& l = w.layers[il];

    // Attention block.
    rms_norm_rows(pool, x, l.attn_norm, c.rms_eps, n_tokens, n_embd, xn, norm_grain);
    if (c.fused_qkv) {
      kernels::matmul(l.wqkv, xn, n_tokens, s_.qkv.data(), pool);
    } else {
      kernels::matmul(l.wq, xn, n_tokens, s_.q.data(), pool);
      kernels::matmul(l.wk, xn, n_tokens, s_.k.data(), pool);
      kernels::matmul(l.wv, xn, n_tokens, s_.v.data(), pool);
    }
    // Gemma 3's local layers rotate with their own base.
    const float* rope_cs =
        c.is_swa(il) && !inv_freq_swa_.empty() ? s_.rope_cs_swa.data() : s_.rope_cs.data();
    pool->parallel_for(n_tokens, rope_grain, [&](int64_t b, int64_t e, int) {
      thread_local std::vector<uint16_t> half;
      half.resize(hd);
      for (int64_t t = b; t < e; ++t) {
        float* q = s_.q.data() + t * nq;
        float* k = s_.k.data() + t * nkv;
        float* v = s_.v.data() + t * nkv;
        if (c.fused_qkv) {  // one row [q | k | v] per token
          const float* row = s_.qkv.data() + t * (nq + 2 * nkv);
          std::memcpy(q, row, nq * sizeof(float));
          std::memcpy(k, row + nq, nkv * sizeof(float));
          std::memcpy(v, row + nq + nkv, nkv * sizeof(float));
        }
        if (c.qkv_bias) {
          kernels::add_inplace(q, l.bq.data(), nq);
          kernels::add_inplace(k, l.bk.data(), nkv);
          kernels::add_inplace(v, l.bv.data(), nkv);
        }
        if (c.qk_norm) {
          for (int64_t h = 0; h < c.n_head; ++h)
            kernels::rms_norm(q + h * hd, l.q_norm.data(), c.rms_eps, hd, q + h * hd);
          for (int64_t h = 0; h < c.n_head_kv; ++h)
            kernels::rms_norm(k + h * hd, l.k_norm.data(), c.rms_eps, hd, k + h * hd);
        }
        const int64_t pos = s_.tok_pos[t];
        const float* cs = rope_cs + t * hd;
        for (int64_t h = 0; h < c.n_head; ++h) kernels::rope_rotate(q + h * hd, hd, cs, c.rope_style);
        for (int64_t h = 0; h < c.n_head_kv; ++h)
          kernels::rope_rotate(k + h * hd, hd, cs, c.rope_style);
        // Store this token's K and V at its position in the sequence's block table.
        const std::vector<int32_t>& blocks = kv.block_table(s_.tok_seq[t]);
        const int32_t block = blocks[pos / kv.block_size()];
        const int64_t slot = pos % kv.block_size();
        for (int64_t h = 0; h < c.n_head_kv; ++h) {
          if (kv.type() == KvType::kF16) {  // keys transposed in the block (attention_f16)
            uint16_t* kt = static_cast<uint16_t*>(kv.k_data(il, block, h)) + slot;
            kernels::f32_to_f16_row(k + h * hd, half.data(), hd);
            for (int64_t d = 0; d < hd; ++d) kt[d * kv.block_size()] = half[d];
            kernels::f32_to_f16_row(v + h * hd, static_cast<uint16_t*>(kv.v_data(il, block, h)) + slot * hd, hd);
          } else {
            std::memcpy(static_cast<float*>(kv.k_data(il, block, h)) + slot * hd, k + h * hd,
                        hd * sizeof(float));
            std::memcpy(static_cast<float*>(kv.v_data(il, block, h)) + slot * hd, v + h * hd,
                        hd * sizeof(float));
          }
        }
      }
    });
    attention(il, n_tokens, kv);
    kernels::matmul(l.wo, s_.attn.data(), n_tokens, s_.proj.data(), pool);
    if (c.post_norms) {
      rms_norm_rows(pool, s_.proj.data(), l.attn_post_norm, c.rms_eps, n_tokens, n_embd,
                    s_.proj.data(), norm_grain);
    }
    kernels::add_inplace(x, s_.proj.data(), n_tokens * n_embd);

    // Feed-forward block: down(act(gate(x)) * up(x)), act = SiLU or GELU.
    rms_norm_rows(pool, x, l.ffn_norm, c.rms_eps, n_tokens, n_embd, xn, norm_grain);
    const int64_t nff = c.n_ff;
    if (c.fused_gate_up) {  // up holds [gate | up] rows of 2 n_ff per token
      kernels::matmul(l.w_up, xn, n_tokens, s_.up.data(), pool);
      for (int64_t t = 0; t < n_tokens; ++t) {
        const float* gu = s_.up.data() + t * 2 * nff;
        ffn_activation(c.ffn_act, gu, gu + nff, nff, s_.gate.data() + t * nff);
      }
    } else {
      kernels::matmul(l.w_gate, xn, n_tokens, s_.gate.data(), pool);
      kernels::matmul(l.w_up, xn, n_tokens, s_.up.data(), pool);
      ffn_activation(c.ffn_act, s_.gate.data(), s_.up.data(), n_tokens * nff, s_.gate.data());
    }
    kernels::matmul(l.w_down, s_.gate.data(), n_tokens, s_.proj.data(), pool);
    if (c.post_norms) {
      rms_norm_rows(pool, s_.proj.data(), l.ffn_post_norm, c.rms_eps, n_tokens, n_embd,
                    s_.proj.data(), norm_grain);
    }
    kernels::add_inplace(x, s_.proj.data(), n_tokens * n_embd);
  }

  // Hidden states for the entries that ask (xn is free after the last layer).
  {
    int64_t t = 0;
    for (const SeqBatch& e : batch) {
      const int64_t n = static_cast<int64_t>(e.tokens.size());
      for (int64_t i = 0; e.hidden_sum != nullptr && i < n; ++i) {
        float* h = xn + (t + i) * n_embd;
        kernels::rms_norm(x + (t + i) * n_embd, w.output_norm.data(), c.rms_eps, n_embd, h);
        kernels::add_inplace(e.hidden_sum, h, n_embd);
      }
      t += n;
    }
  }

  // Logits only for the rows asked for.
  const int64_t n_rows = static_cast<int64_t>(s_.out_tokens.size());
  for (int64_t r = 0; r < n_rows; ++r) {
    kernels::rms_norm(x + s_.out_tokens[r] * n_embd, w.output_norm.data(), c.rms_eps, n_embd,
                      s_.xo.data() + r * n_embd);
  }
  logits.resize(n_rows * c.n_vocab);
  if (n_rows > 0) output_logits(n_rows, logits.data());
  compute_target_logprobs();

  // Commit, each token with its logprob: the first from the caller, the rest from the
  // targets of the row before.
  std::vector<float> lps;
  size_t ti = 0;
  for (const SeqBatch& e : batch) {
    lps.assign(e.tokens.size(), KvCache::kNoLogprob);
    lps[0] = e.first_logprob;
    for (size_t i = 0; i < e.targets.size(); ++i) {
      if (i + 1 < e.tokens.size()) lps[i + 1] = s_.target_lp[ti + i];
    }
    kv.commit(e.seq, e.tokens, lps);
    ti += e.targets.size();
  }
  if (target_logprobs != nullptr) target_logprobs->assign(s_.target_lp.begin(), s_.target_lp.end());
  return Status::ok();
}

void Model::restrict_logits(int64_t n_first) {
  output_slices_.clear();
  const int64_t n_vocab = config_.n_vocab;
  if (n_first <= 0 || n_first >= n_vocab) return;
  const kernels::WeightView& out = weights_.output;
  // Interleaved matrices are addressable only in whole groups of rows.
  const int64_t group = out.interleaved ? kernels::interleave_group(out.type) : 1;
  auto slice = [&](int64_t first, int64_t n) {  // rows [first, first + n), first on a group
    kernels::WeightView v = out;
    v.data = static_cast<const uint8_t*>(out.data) + first * out.row_bytes();
    v.n_rows = std::min(n, n_vocab - first);
    output_slices_.push_back({v, first});
  };
  const int64_t head = (n_first + group - 1) / group * group;
  slice(0, head);
  for (int32_t id : tokenizer_->eog_ids()) {
    const int64_t first = id / group * group;
    if (first < head) continue;
    bool have = false;
    for (const OutputSlice& s : output_slices_) have = have || s.first_id == first;
    if (!have) slice(first, group);
  }
}

void Model::output_logits(int64_t n_rows, float* logits) {
  const ModelConfig& c = config_;
  const int64_t n_vocab = c.n_vocab;
  if (output_slices_.empty()) {
    kernels::matmul(weights_.output, s_.xo.data(), n_rows, logits, pool_.get());
    if (c.final_softcap > 0.0f) kernels::soft_cap(logits, c.final_softcap, n_rows * n_vocab);
    return;
  }
  std::fill(logits, logits + n_rows * n_vocab, -std::numeric_limits<float>::infinity());
  for (const OutputSlice& sl : output_slices_) {
    const int64_t n = sl.view.n_rows;
    slice_logits_.resize(static_cast<size_t>(n_rows * n));
    kernels::matmul(sl.view, s_.xo.data(), n_rows, slice_logits_.data(), pool_.get());
    if (c.final_softcap > 0.0f) kernels::soft_cap(slice_logits_.data(), c.final_softcap, n_rows * n);
    for (int64_t r = 0; r < n_rows; ++r)
      std::copy_n(slice_logits_.data() + r * n, n, logits + r * n_vocab + sl.first_id);
  }
}

// log p(target | row) = logit[target] - logsumexp(logits) for every target row, kTargetRows
// rows at a time through the output matrix.
void Model::compute_target_logprobs() {
  const ModelConfig& c = config_;
  const int64_t n_embd = c.n_embd, n_vocab = c.n_vocab;
  const int64_t n = static_cast<int64_t>(s_.target_rows.size());
  s_.target_lp.resize(n);
  for (int64_t r0 = 0; r0 < n; r0 += kTargetRows) {
    const int64_t nr = std::min(kTargetRows, n - r0);
    for (int64_t r = 0; r < nr; ++r) {
      kernels::rms_norm(s_.x.data() + s_.target_rows[r0 + r] * n_embd, weights_.output_norm.data(),
                        c.rms_eps, n_embd, s_.xo.data() + r * n_embd);
    }
    kernels::matmul(weights_.output, s_.xo.data(), nr, s_.target_logits.data(), pool_.get());
    if (c.final_softcap > 0.0f)
      kernels::soft_cap(s_.target_logits.data(), c.final_softcap, nr * n_vocab);
    pool_->parallel_for(nr, parallel_grain(16 * n_vocab), [&](int64_t b, int64_t e, int) {
      for (int64_t r = b; r < e; ++r) {
        const float* row = s_.target_logits.data() + r * n_vocab;
        s_.target_lp[r0 + r] = row[s_.target_ids[r0 + r]] - kernels::log_sum_exp(row, n_vocab);
      }
    });
  }
}

// Causal attention of every batch token over its own sequence's cached positions 0..pos, or
// only the last n_swa of them on a sliding-window layer (the cache keeps every position).
// One work item is a (token, KV head) pair: the `group` query heads sharing that KV head
// (grouped-query attention) are computed together, reading each cached row once.
void Model::attention(int64_t il, int64_t n_tokens, KvCache& kv) {
  const ModelConfig& c = config_;
  const int64_t hd = c.head_dim, nq = c.n_embd_q();
  const int64_t group = c.n_head / c.n_head_kv;
  const int64_t bs = kv.block_size();
  const int64_t n_positions = kv.n_blocks() * bs;
  const int64_t max_blocks = kv.n_blocks();
  const float scale = c.attn_scale > 0.0f ? c.attn_scale : 1.0f / std::sqrt(static_cast<float>(hd));
  const int64_t window = c.is_swa(il) ? c.n_swa : 0;  // 0: all positions
  // An item's work grows with its context; the longest in the batch sets the grain.
  int64_t max_ctx = 1;
  for (int64_t t = 0; t < n_tokens; ++t) max_ctx = std::max<int64_t>(max_ctx, s_.tok_pos[t] + 1);
  if (window > 0) max_ctx = std::min(max_ctx, window);
  const int64_t grain = parallel_grain(2 * max_ctx * group * hd);
  const bool f16 = kv.type() == KvType::kF16;
  pool_->parallel_for(n_tokens * c.n_head_kv, grain, [&](int64_t b, int64_t e, int thread) {
    float* scores = s_.scores.data() + thread * group * n_positions;
    const void** k_blocks = s_.block_ptrs.data() + thread * 2 * max_blocks;
    const void** v_blocks = k_blocks + max_blocks;
    for (int64_t item = b; item < e; ++item) {
      const int64_t t = item / c.n_head_kv, kvh = item % c.n_head_kv;
      const int64_t n_ctx = s_.tok_pos[t] + 1;
      const int64_t start = window > 0 ? std::max<int64_t>(0, n_ctx - window) : 0;
      const std::vector<int32_t>& blocks = kv.block_table(s_.tok_seq[t]);
      for (int64_t i = start / bs; i < (n_ctx + bs - 1) / bs; ++i) {
        k_blocks[i] = kv.k_data(il, blocks[i], kvh);
        v_blocks[i] = kv.v_data(il, blocks[i], kvh);
      }
      const int64_t h0 = kvh * group;  // first query head of this group
      const float* q = s_.q.data() + t * nq + h0 * hd;
      float* out = s_.attn.data() + t * nq + h0 * hd;
      if (f16) {
        kernels::attention_f16(q, group, reinterpret_cast<const uint16_t* const*>(k_blocks),
                               reinterpret_cast<const uint16_t* const*>(v_blocks), bs, hd, n_ctx,
                               scale, scores, out, start, c.attn_softcap);
      } else {
        kernels::attention(q, group, reinterpret_cast<const float* const*>(k_blocks),
                           reinterpret_cast<const float* const*>(v_blocks), bs, hd, n_ctx, scale,
                           scores, out, start, c.attn_softcap);
      }
    }
  });
}

}  // namespace frugal
