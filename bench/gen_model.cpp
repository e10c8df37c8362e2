// gen_model: writes a random-weight GGUF llama model of a given shape and type (benchmark input).
// Default shape is Llama-3.2-1B's. Tensors are generated and written one chunk at a time.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "engine/gguf_writer.h"
#include "kernels/ggml_type.h"
#include "kernels/ops.h"

namespace frugal {
namespace {

struct Options {
  int64_t n_embd = 2048;
  int64_t n_layer = 16;
  int64_t n_head = 32;
  int64_t n_head_kv = 8;
  int64_t n_ff = 8192;
  int64_t n_vocab = 128256;
  int64_t n_ctx = 131072;
  double rope_base = 500000.0;
  bool tied = true;
  uint64_t seed = 42;
  std::string type = "q4_0";
  std::string out = "random-llama.gguf";
};

void usage() {
  std::fprintf(stderr,
               "usage: gen_model [-o PATH] [--type q4_0|q8_0|f16|bf16|f32] [--n-embd N]\n"
               "                 [--n-layer N] [--n-head N] [--n-head-kv N] [--n-ff N]\n"
               "                 [--n-vocab N] [--n-ctx N] [--rope-base X] [--untied] [--seed N]\n"
               "                 [--shape 1b|100m]  (a preset; later flags override it)\n"
               "Defaults: the shape of Llama-3.2-1B (2048, 16 layers, 32/8 heads, FFN 8192,\n"
               "vocab 128256, tied output, rope base 500000, context 131072), q4_0.\n"
               "--shape 100m: 768, 12 layers, 12/4 heads, FFN 2048, vocab 32000, tied, context\n"
               "4096, rope base 10000 (about 100M parameters; the batching benchmark's shape).\n");
}

// splitmix64: a fast, well-mixed generator; one call yields one approximately normal value.
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Sum of four 16-bit uniforms, centred and scaled to unit variance (Irwin-Hall, n = 4):
  // close enough to N(0, 1) for benchmark weights, and far cheaper than Box-Muller.
  float normal() {
    uint64_t r = next();
    uint32_t sum = static_cast<uint32_t>((r & 0xffff) + ((r >> 16) & 0xffff) +
                                         ((r >> 32) & 0xffff) + (r >> 48));
    constexpr float kScale = 1.7320508f / 65536.0f;  // sqrt(3) / 2^16
    return (static_cast<float>(sum) - 2.0f * 65535.0f) * kScale;
  }
};

uint64_t name_hash(const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  return h;
}

// A matrix [rows, cols] of N(0, 0.02) values in `type`, produced about 1 MiB at a time.
GgufWriter::TensorProducer random_matrix(const std::string& name, int64_t rows, int64_t cols,
                                         GgmlType type, uint64_t seed) {
  return [=](const GgufWriter::ByteSink& sink) -> Status {
    Rng rng{seed ^ name_hash(name)};
    const int64_t row_bytes = ggml_row_bytes(type, cols);
    const int64_t chunk_rows = std::max<int64_t>(1, (1 << 20) / row_bytes);
    std::vector<float> row(static_cast<size_t>(cols));
    std::vector<uint8_t> out(static_cast<size_t>(chunk_rows * row_bytes));
    for (int64_t r0 = 0; r0 < rows; r0 += chunk_rows) {
      const int64_t n = std::min(chunk_rows, rows - r0);
      for (int64_t r = 0; r < n; ++r) {
        for (float& x : row) x = 0.02f * rng.normal();
        kernels::quantize_row(type, row.data(), out.data() + r * row_bytes, cols);
      }
      FRUGAL_RETURN_IF_ERROR(sink(out.data(), static_cast<size_t>(n * row_bytes)));
    }
    return Status::ok();
  };
}

int run(const Options& o) {
  GgmlType type;
  if (ggml_type_from_name(o.type.c_str(), &type) == nullptr ||
      !(type == GgmlType::kQ4_0 || type == GgmlType::kQ8_0 || type == GgmlType::kF16 ||
        type == GgmlType::kBF16 || type == GgmlType::kF32)) {
    std::fprintf(stderr, "gen_model: --type must be q4_0, q8_0, f16, bf16 or f32\n");
    return 2;
  }
  const int64_t block = ggml_type_info(type)->block_size;
  if (o.n_embd <= 0 || o.n_layer <= 0 || o.n_head <= 0 || o.n_head_kv <= 0 || o.n_ff <= 0 ||
      o.n_ctx <= 0 || o.n_embd % o.n_head != 0 || o.n_head % o.n_head_kv != 0 ||
      (o.n_embd / o.n_head) % 2 != 0) {
    std::fprintf(stderr, "gen_model: inconsistent shape (n_embd must split into an even head "
                         "size; n_head must be a multiple of n_head_kv)\n");
    return 2;
  }
  if (o.n_embd % block != 0 || o.n_ff % block != 0) {
    std::fprintf(stderr, "gen_model: n_embd and n_ff must be multiples of %lld for %s\n",
                 static_cast<long long>(block), o.type.c_str());
    return 2;
  }
  if (o.n_vocab < 259) {
    std::fprintf(stderr, "gen_model: n_vocab must be at least 259 (3 control + 256 byte tokens)\n");
    return 2;
  }
  const int64_t head_dim = o.n_embd / o.n_head;
  const int64_t n_embd_kv = head_dim * o.n_head_kv;
  uint32_t file_type = type == GgmlType::kF32 ? 0 : type == GgmlType::kF16 ? 1
                       : type == GgmlType::kQ4_0 ? 2 : type == GgmlType::kQ8_0 ? 7 : 32;

  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", "random-llama");
  w.set_uint32("general.file_type", file_type);
  w.set_uint32("llama.context_length", static_cast<uint32_t>(o.n_ctx));
  w.set_uint32("llama.embedding_length", static_cast<uint32_t>(o.n_embd));
  w.set_uint32("llama.block_count", static_cast<uint32_t>(o.n_layer));
  w.set_uint32("llama.feed_forward_length", static_cast<uint32_t>(o.n_ff));
  w.set_uint32("llama.attention.head_count", static_cast<uint32_t>(o.n_head));
  w.set_uint32("llama.attention.head_count_kv", static_cast<uint32_t>(o.n_head_kv));
  w.set_uint32("llama.rope.dimension_count", static_cast<uint32_t>(head_dim));
  w.set_float32("llama.rope.freq_base", static_cast<float>(o.rope_base));
  w.set_float32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.set_uint32("llama.vocab_size", static_cast<uint32_t>(o.n_vocab));

  // A minimal valid "llama" vocabulary: <unk>, <s>, </s>, the 256 byte tokens, then filler.
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<int64_t> types = {2, 3, 3};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    tokens.push_back(buf);
    types.push_back(6);
  }
  for (int64_t i = static_cast<int64_t>(tokens.size()); i < o.n_vocab; ++i) {
    tokens.push_back("\xe2\x96\x81t" + std::to_string(i));
    types.push_back(1);
  }
  std::vector<double> scores(tokens.size());
  for (size_t i = 0; i < scores.size(); ++i) scores[i] = -static_cast<double>(i);
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", std::move(tokens));
  w.set_float_array("tokenizer.ggml.scores", GgufValueType::kFloat32, std::move(scores));
  w.set_int_array("tokenizer.ggml.token_type", GgufValueType::kInt32, std::move(types));
  w.set_uint32("tokenizer.ggml.bos_token_id", 1);
  w.set_uint32("tokenizer.ggml.eos_token_id", 2);
  w.set_uint32("tokenizer.ggml.unknown_token_id", 0);
  w.set_bool("tokenizer.ggml.add_bos_token", true);
  w.set_bool("tokenizer.ggml.add_eos_token", false);

  // Norm weights are 1, shared by every norm tensor (they are all n_embd long).
  const std::vector<float> ones(static_cast<size_t>(o.n_embd), 1.0f);
  const size_t norm_bytes = ones.size() * sizeof(float);
  auto check = [](const Status& s) {
    if (!s.is_ok()) {
      std::fprintf(stderr, "gen_model: %s\n", s.to_string().c_str());
      std::exit(1);
    }
  };
  // GGUF shapes: {row length, rows}; a projection from n_in to n_out is {n_in, n_out}.
  auto matrix = [&](const std::string& name, int64_t n_in, int64_t n_out) {
    check(w.add_tensor(name, {n_in, n_out}, type,
                       random_matrix(name, n_out, n_in, type, o.seed)));
  };
  matrix("token_embd.weight", o.n_embd, o.n_vocab);
  for (int64_t il = 0; il < o.n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    check(w.add_tensor(p + "attn_norm.weight", {o.n_embd}, GgmlType::kF32, ones.data(),
                       norm_bytes));
    matrix(p + "attn_q.weight", o.n_embd, o.n_embd);
    matrix(p + "attn_k.weight", o.n_embd, n_embd_kv);
    matrix(p + "attn_v.weight", o.n_embd, n_embd_kv);
    matrix(p + "attn_output.weight", o.n_embd, o.n_embd);
    check(w.add_tensor(p + "ffn_norm.weight", {o.n_embd}, GgmlType::kF32, ones.data(),
                       norm_bytes));
    matrix(p + "ffn_gate.weight", o.n_embd, o.n_ff);
    matrix(p + "ffn_up.weight", o.n_embd, o.n_ff);
    matrix(p + "ffn_down.weight", o.n_ff, o.n_embd);
  }
  check(w.add_tensor("output_norm.weight", {o.n_embd}, GgmlType::kF32, ones.data(), norm_bytes));
  if (!o.tied) matrix("output.weight", o.n_embd, o.n_vocab);

  auto t0 = std::chrono::steady_clock::now();
  check(w.write(o.out));
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("wrote %s (%s, %zu tensors) in %.1f s\n", o.out.c_str(), o.type.c_str(),
              w.n_tensors(), secs);
  return 0;
}

}  // namespace
}  // namespace frugal

int main(int argc, char** argv) {
  frugal::Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "gen_model: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    auto integer = [&]() -> int64_t {
      std::string v = value();
      char* end = nullptr;
      long long x = std::strtoll(v.c_str(), &end, 10);
      if (end == v.c_str() || *end != '\0' || x <= 0) {
        std::fprintf(stderr, "gen_model: %s wants a positive integer, got '%s'\n", a.c_str(),
                     v.c_str());
        std::exit(2);
      }
      return x;
    };
    if (a == "-o" || a == "--output") o.out = value();
    else if (a == "--type") o.type = value();
    else if (a == "--n-embd") o.n_embd = integer();
    else if (a == "--n-layer") o.n_layer = integer();
    else if (a == "--n-head") o.n_head = integer();
    else if (a == "--n-head-kv") o.n_head_kv = integer();
    else if (a == "--n-ff") o.n_ff = integer();
    else if (a == "--n-vocab") o.n_vocab = integer();
    else if (a == "--n-ctx") o.n_ctx = integer();
    else if (a == "--rope-base") o.rope_base = std::atof(value().c_str());
    else if (a == "--seed") o.seed = static_cast<uint64_t>(integer());
    else if (a == "--untied") o.tied = false;
    else if (a == "--shape") {
      const std::string v = value();
      if (v == "100m") {
        o.n_embd = 768, o.n_layer = 12, o.n_head = 12, o.n_head_kv = 4, o.n_ff = 2048;
        o.n_vocab = 32000, o.n_ctx = 4096, o.rope_base = 10000.0;
      } else if (v != "1b") {
        std::fprintf(stderr, "gen_model: --shape must be 1b or 100m\n");
        return 2;
      }
    }
    else if (a == "-h" || a == "--help") {
      frugal::usage();
      return 0;
    } else {
      std::fprintf(stderr, "gen_model: unknown argument '%s'\n", a.c_str());
      frugal::usage();
      return 2;
    }
  }
  return frugal::run(o);
}
