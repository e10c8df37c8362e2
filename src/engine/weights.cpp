// Weights::bind: GGUF tensor names (llama.cpp's convention) to typed, shape-checked views.
#include "engine/weights.h"

#include <sys/mman.h>
#include <unistd.h>

#include <string>

#include "engine/gguf.h"

namespace frugal {

namespace {

std::string shape_string(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// A matrix [n_rows, n_cols] has GGUF shape {n_cols, n_rows}.
Result<kernels::WeightView> bind_matrix(const GgufFile& f, const std::string& name,
                                        int64_t n_rows, int64_t n_cols) {
  const GgufTensorInfo* t = f.find_tensor(name);
  if (t == nullptr) return corrupt("tensor " + name + " is missing in " + f.name());
  if (t->shape.size() != 2 || t->shape[0] != n_cols || t->shape[1] != n_rows) {
    return corrupt("tensor " + name + " has shape " + shape_string(t->shape) + ", expected [" +
                   std::to_string(n_cols) + ", " + std::to_string(n_rows) + "]");
  }
  const GgmlTypeInfo* info = ggml_type_info(t->type);
  if (info == nullptr || !info->computable) {
    return unsupported("tensor " + name + " has type " + (info ? info->name : "unknown") +
                       ", which this build cannot compute with yet; convert the model with "
                       "`frugal quantize IN.gguf OUT.gguf q4_k_m` (or q8_0, f16)");
  }
  return kernels::WeightView{t->data, t->type, n_rows, n_cols};
}

// A vector of n floats, converted from its file type.
Result<std::vector<float>> bind_vector(const GgufFile& f, const std::string& name, int64_t n) {
  const GgufTensorInfo* t = f.find_tensor(name);
  if (t == nullptr) return corrupt("tensor " + name + " is missing in " + f.name());
  if (t->n_elements() != n) {
    return corrupt("tensor " + name + " has shape " + shape_string(t->shape) + ", expected [" +
                   std::to_string(n) + "]");
  }
  const GgmlTypeInfo* info = ggml_type_info(t->type);
  if (info == nullptr || !info->computable || n % info->block_size != 0) {
    return unsupported("tensor " + name + " has an unsupported type for a vector");
  }
  std::vector<float> out(n);
  kernels::dequantize_row(t->type, t->data, out.data(), n);
  return out;
}

}  // namespace

Result<Weights> Weights::bind(const GgufFile& f, const ModelConfig& c) {
  Weights w;
  FRUGAL_ASSIGN_OR_RETURN(w.token_embd, bind_matrix(f, "token_embd.weight", c.n_vocab, c.n_embd));
  FRUGAL_ASSIGN_OR_RETURN(w.output_norm, bind_vector(f, "output_norm.weight", c.n_embd));
  if (c.tied_output) {
    w.output = w.token_embd;
  } else {
    FRUGAL_ASSIGN_OR_RETURN(w.output, bind_matrix(f, "output.weight", c.n_vocab, c.n_embd));
  }
  if (f.find_tensor("rope_freqs.weight") != nullptr) {
    FRUGAL_ASSIGN_OR_RETURN(w.rope_freqs, bind_vector(f, "rope_freqs.weight", c.head_dim / 2));
    for (float d : w.rope_freqs) {
      if (!(d > 0.0f)) return corrupt("rope_freqs.weight holds a non-positive divisor");
    }
  }
  const int64_t nq = c.n_embd_q(), nkv = c.n_embd_kv();
  w.layers.resize(c.n_layer);
  for (int64_t il = 0; il < c.n_layer; ++il) {
    LayerWeights& l = w.layers[il];
    const std::string p = "blk." + std::to_string(il) + ".";
    FRUGAL_ASSIGN_OR_RETURN(l.attn_norm, bind_vector(f, p + "attn_norm.weight", c.n_embd));
    if (c.fused_qkv) {
      FRUGAL_ASSIGN_OR_RETURN(l.wqkv, bind_matrix(f, p + "attn_qkv.weight", nq + 2 * nkv, c.n_embd));
    } else {
      FRUGAL_ASSIGN_OR_RETURN(l.wq, bind_matrix(f, p + "attn_q.weight", nq, c.n_embd));
      FRUGAL_ASSIGN_OR_RETURN(l.wk, bind_matrix(f, p + "attn_k.weight", nkv, c.n_embd));
      FRUGAL_ASSIGN_OR_RETURN(l.wv, bind_matrix(f, p + "attn_v.weight", nkv, c.n_embd));
    }
    FRUGAL_ASSIGN_OR_RETURN(l.wo, bind_matrix(f, p + "attn_output.weight", c.n_embd, nq));
    if (c.qk_norm) {
      FRUGAL_ASSIGN_OR_RETURN(l.q_norm, bind_vector(f, p + "attn_q_norm.weight", c.head_dim));
      FRUGAL_ASSIGN_OR_RETURN(l.k_norm, bind_vector(f, p + "attn_k_norm.weight", c.head_dim));
    }
    if (c.post_norms) {
      FRUGAL_ASSIGN_OR_RETURN(l.attn_post_norm,
                              bind_vector(f, p + "post_attention_norm.weight", c.n_embd));
      FRUGAL_ASSIGN_OR_RETURN(l.ffn_post_norm, bind_vector(f, p + "post_ffw_norm.weight", c.n_embd));
    }
    if (c.qkv_bias) {
      FRUGAL_ASSIGN_OR_RETURN(l.bq, bind_vector(f, p + "attn_q.bias", nq));
      FRUGAL_ASSIGN_OR_RETURN(l.bk, bind_vector(f, p + "attn_k.bias", nkv));
      FRUGAL_ASSIGN_OR_RETURN(l.bv, bind_vector(f, p + "attn_v.bias", nkv));
    }
    FRUGAL_ASSIGN_OR_RETURN(l.ffn_norm, bind_vector(f, p + "ffn_norm.weight", c.n_embd));
    if (c.fused_gate_up) {
      FRUGAL_ASSIGN_OR_RETURN(l.w_up, bind_matrix(f, p + "ffn_up.weight", 2 * c.n_ff, c.n_embd));
    } else {
      FRUGAL_ASSIGN_OR_RETURN(l.w_gate, bind_matrix(f, p + "ffn_gate.weight", c.n_ff, c.n_embd));
      FRUGAL_ASSIGN_OR_RETURN(l.w_up, bind_matrix(f, p + "ffn_up.weight", c.n_ff, c.n_embd));
    }
    FRUGAL_ASSIGN_OR_RETURN(l.w_down, bind_matrix(f, p + "ffn_down.weight", c.n_embd, c.n_ff));
  }
  return w;
}

int64_t Weights::bytes_per_token() const {
  int64_t bytes = output.row_bytes() * output.n_rows + token_embd.row_bytes();
  for (const LayerWeights& l : layers) {
    for (const kernels::WeightView* m :
         {&l.wq, &l.wk, &l.wv, &l.wqkv, &l.wo, &l.w_gate, &l.w_up, &l.w_down})
      bytes += m->row_bytes() * m->n_rows;
  }
  return bytes;
}

int64_t Weights::matmul_params() const {
  int64_t n = output.n_rows * output.n_cols;
  for (const LayerWeights& l : layers) {
    for (const kernels::WeightView* m :
         {&l.wq, &l.wk, &l.wv, &l.wqkv, &l.wo, &l.w_gate, &l.w_up, &l.w_down})
      n += m->n_rows * m->n_cols;
  }
  return n;
}

int64_t Weights::interleave_for_matmul(bool release_file_pages) {
  // A tied output is a view of its own on token_embd's bytes (bind_weights), so copying it
  // leaves token_embd on the file.
  std::vector<kernels::WeightView*> matrices = {&output};
  for (LayerWeights& l : layers) {
    for (kernels::WeightView* m :
         {&l.wq, &l.wk, &l.wv, &l.wqkv, &l.wo, &l.w_gate, &l.w_up, &l.w_down})
      matrices.push_back(m);
  }
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  int64_t copied = 0;
  for (kernels::WeightView* m : matrices) {
    const int group = kernels::interleave_group(m->type);
    if (m->n_rows == 0 || m->interleaved || group == 0) continue;
    const int64_t bytes = kernels::interleaved_bytes(*m, group);
    // Whole cache lines, so every group starts on one (row groups are multiples of 64 bytes).
    auto* out = static_cast<uint8_t*>(std::aligned_alloc(64, (static_cast<size_t>(bytes) + 63) / 64 * 64));
    if (out == nullptr) continue;  // the file's layout computes the same, a little slower
    kernels::interleave_rows(*m, group, out);
    owned_.emplace_back(out);
    if (release_file_pages) {
      // Only pages wholly inside this matrix: its neighbours may share the edge pages.
      const auto begin = reinterpret_cast<uintptr_t>(m->data);
      const uintptr_t first = (begin + page - 1) / page * page;
      const uintptr_t last = (begin + static_cast<uintptr_t>(m->row_bytes() * m->n_rows)) / page * page;
      if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
    }
    m->data = out;
    m->interleaved = true;
    copied += bytes;
  }
  return copied;
}

}  // namespace frugal
