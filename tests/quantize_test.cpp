// Quantization recipes (engine/quantize.h): the per-tensor types of llama.cpp's mixes, and
// `frugal quantize` end to end — the files reload and their logits move away from F32 by no
// more than each scheme's bits allow, fewer bits never closer than more.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "engine/gguf.h"
#include "engine/gguf_writer.h"
#include "engine/model.h"
#include "engine/quantize.h"
#include "kernels/ops.h"
#include "test_shell.h"

namespace frugal {
namespace {

namespace fs = std::filesystem;

GgmlType type_of(const char* scheme, const std::string& name, std::vector<int64_t> shape,
                 int64_t n_layer = 16, bool tied = false) {
  const QuantScheme* s = find_quant_scheme(scheme);
  EXPECT_NE(s, nullptr) << scheme;
  return tensor_quant_type(*s, {name, std::move(shape), GgmlType::kF16}, n_layer, tied);
}

TEST(QuantRecipe, Q4_K_MFollowsLlamaCpp) {
  // 16 layers: use_more_bits holds for layers 0, 1 (first eighth), 14, 15 (last eighth) and
  // 4, 7, 10, 13 (every third between).
  const std::vector<int> more_bits = {0, 1, 4, 7, 10, 13, 14, 15};
  for (int il = 0; il < 16; ++il) {
    SCOPED_TRACE("layer " + std::to_string(il));
    const std::string p = "blk." + std::to_string(il) + ".";
    const bool more = std::find(more_bits.begin(), more_bits.end(), il) != more_bits.end();
    EXPECT_EQ(type_of("q4_k_m", p + "attn_v.weight", {2048, 512}),
              more ? GgmlType::kQ6_K : GgmlType::kQ4_K);
    EXPECT_EQ(type_of("q4_k_m", p + "ffn_down.weight", {8192, 2048}),
              more ? GgmlType::kQ6_K : GgmlType::kQ4_K);
    EXPECT_EQ(type_of("q5_k_m", p + "ffn_down.weight", {8192, 2048}),
              more ? GgmlType::kQ6_K : GgmlType::kQ5_K);
    EXPECT_EQ(type_of("q4_k_m", p + "attn_q.weight", {2048, 2048}), GgmlType::kQ4_K);
    EXPECT_EQ(type_of("q4_k_m", p + "ffn_gate.weight", {2048, 8192}), GgmlType::kQ4_K);
    EXPECT_EQ(type_of("q4_k_m", p + "attn_norm.weight", {2048}), GgmlType::kF16);
  }
  // The output projection in Q6_K; an untied token embedding keeps the base type, a tied one
  // is the output projection.
  EXPECT_EQ(type_of("q4_k_m", "output.weight", {2048, 128256}), GgmlType::kQ6_K);
  EXPECT_EQ(type_of("q4_k_m", "token_embd.weight", {2048, 128256}), GgmlType::kQ4_K);
  EXPECT_EQ(type_of("q4_k_m", "token_embd.weight", {2048, 128256}, 16, true), GgmlType::kQ6_K);
  EXPECT_EQ(type_of("q5_k_m", "output.weight", {2048, 128256}), GgmlType::kQ6_K);
}

TEST(QuantRecipe, OtherMixesAndPureTypes) {
  // Q4_K_S: attn_v of the first four layers and ffn_down of the first eighth in Q5_K.
  EXPECT_EQ(type_of("q4_k_s", "blk.3.attn_v.weight", {2048, 512}), GgmlType::kQ5_K);
  EXPECT_EQ(type_of("q4_k_s", "blk.4.attn_v.weight", {2048, 512}), GgmlType::kQ4_K);
  EXPECT_EQ(type_of("q4_k_s", "blk.1.ffn_down.weight", {8192, 2048}), GgmlType::kQ5_K);
  EXPECT_EQ(type_of("q4_k_s", "blk.2.ffn_down.weight", {8192, 2048}), GgmlType::kQ4_K);
  // Q3_K_M: attn_v Q5_K in layers 0-1 then Q4_K, ffn_down Q5_K in the first 16th then Q4_K,
  // attn_output Q4_K, the rest Q3_K.
  EXPECT_EQ(type_of("q3_k_m", "blk.1.attn_v.weight", {2048, 512}), GgmlType::kQ5_K);
  EXPECT_EQ(type_of("q3_k_m", "blk.2.attn_v.weight", {2048, 512}), GgmlType::kQ4_K);
  EXPECT_EQ(type_of("q3_k_m", "blk.0.ffn_down.weight", {8192, 2048}), GgmlType::kQ5_K);
  EXPECT_EQ(type_of("q3_k_m", "blk.1.ffn_down.weight", {8192, 2048}), GgmlType::kQ4_K);
  EXPECT_EQ(type_of("q3_k_m", "blk.5.attn_output.weight", {2048, 2048}), GgmlType::kQ4_K);
  EXPECT_EQ(type_of("q3_k_m", "blk.5.ffn_up.weight", {2048, 8192}), GgmlType::kQ3_K);
  // Pure types: every matrix, the output and embedding included (llama-quantize --pure).
  for (const char* name : {"output.weight", "token_embd.weight", "blk.0.attn_v.weight"})
    EXPECT_EQ(type_of("q4_k", name, {2048, 512}), GgmlType::kQ4_K) << name;
  EXPECT_EQ(type_of("q6_k", "blk.0.ffn_up.weight", {2048, 8192}), GgmlType::kQ6_K);
  EXPECT_EQ(type_of("iq4_nl", "blk.0.ffn_up.weight", {2048, 8192}), GgmlType::kIQ4_NL);
  EXPECT_EQ(find_quant_scheme("Q4_K_M"), find_quant_scheme("q4_k_m"));
  EXPECT_EQ(find_quant_scheme("q7_k"), nullptr);
}

TEST(QuantRecipe, RowLengthsTheTypeCannotHoldFallBackAsInLlamaCpp) {
  // Rows of 96: no 256-element super-block fits.
  EXPECT_EQ(type_of("q4_k", "blk.0.attn_q.weight", {96, 96}), GgmlType::kQ5_0);
  EXPECT_EQ(type_of("q5_k", "blk.0.attn_q.weight", {96, 96}), GgmlType::kQ5_1);
  EXPECT_EQ(type_of("q6_k", "blk.0.attn_q.weight", {96, 96}), GgmlType::kQ8_0);
  EXPECT_EQ(type_of("q3_k", "blk.0.attn_q.weight", {96, 96}), GgmlType::kQ4_0);
  EXPECT_EQ(type_of("q4_k_m", "output.weight", {96, 300}), GgmlType::kQ8_0);
  EXPECT_EQ(type_of("q4_k_m", "blk.1.ffn_down.weight", {96, 300}, 2), GgmlType::kQ8_0);
  // Rows of 40 do not fit a 32-block either: F16.
  EXPECT_EQ(type_of("q4_0", "blk.0.attn_q.weight", {40, 40}), GgmlType::kF16);
  EXPECT_EQ(type_of("q4_k", "blk.0.attn_q.weight", {40, 40}), GgmlType::kF16);
}

// Every tensor of the model write_model() wrote last (matrices and norm vectors).
std::vector<std::vector<float>>& model_matrices() {
  static std::vector<std::vector<float>> m;
  return m;
}

// A random llama model [n_embd 256, 2 layers, 4 / 2 heads, n_ff 512, vocab 300] in F32, so
// that every matrix can take a K-quant; `tied`: no output.weight (token_embd serves).
void write_model(const std::string& path, bool tied = false) {
  const int64_t n_embd = 256, n_ff = 512, n_vocab = 300, n_layer = 2, n_kv = 128;
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_uint32("llama.context_length", 64);
  w.set_uint32("llama.embedding_length", n_embd);
  w.set_uint32("llama.block_count", n_layer);
  w.set_uint32("llama.feed_forward_length", n_ff);
  w.set_uint32("llama.attention.head_count", 4);
  w.set_uint32("llama.attention.head_count_kv", 2);
  w.set_uint32("llama.rope.dimension_count", 64);
  w.set_float32("llama.rope.freq_base", 10000.0f);
  w.set_float32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    tokens.push_back(buf);
  }
  while (static_cast<int64_t>(tokens.size()) < n_vocab)
    tokens.push_back("\xe2\x96\x81w" + std::to_string(tokens.size()));
  std::vector<double> scores(tokens.size(), 0.0);
  std::vector<int64_t> types(tokens.size(), 1);
  types[0] = 2, types[1] = types[2] = 3;
  for (int b = 0; b < 256; ++b) types[3 + b] = 6;
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_float_array("tokenizer.ggml.scores", GgufValueType::kFloat32, scores);
  w.set_int_array("tokenizer.ggml.token_type", GgufValueType::kInt32, types);
  w.set_uint32("tokenizer.ggml.bos_token_id", 1);
  w.set_uint32("tokenizer.ggml.eos_token_id", 2);

  std::mt19937 rng(5);
  std::vector<std::vector<float>>& keep = model_matrices();  // bytes must outlive write()
  keep.clear();
  auto add = [&](const std::string& name, int64_t cols, int64_t rows, float sd, float mean) {
    std::normal_distribution<float> dist(mean, sd);
    keep.emplace_back(static_cast<size_t>(cols * rows));
    for (float& v : keep.back()) v = dist(rng);
    std::vector<int64_t> shape = rows == 1 ? std::vector<int64_t>{cols} : std::vector<int64_t>{cols, rows};
    ASSERT_TRUE(w.add_tensor(name, shape, GgmlType::kF32, keep.back().data(),
                             keep.back().size() * 4).is_ok());
  };
  // Weights ~ N(0, 0.1): logits of order 1, as in tests/python/test_hf_reference.py.
  add("token_embd.weight", n_embd, n_vocab, 0.5f, 0.0f);
  for (int il = 0; il < n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    add(p + "attn_norm.weight", n_embd, 1, 0.2f, 1.0f);
    add(p + "attn_q.weight", n_embd, n_embd, 0.1f, 0.0f);
    add(p + "attn_k.weight", n_embd, n_kv, 0.1f, 0.0f);
    add(p + "attn_v.weight", n_embd, n_kv, 0.1f, 0.0f);
    add(p + "attn_output.weight", n_embd, n_embd, 0.1f, 0.0f);
    add(p + "ffn_norm.weight", n_embd, 1, 0.2f, 1.0f);
    add(p + "ffn_gate.weight", n_embd, n_ff, 0.1f, 0.0f);
    add(p + "ffn_up.weight", n_embd, n_ff, 0.1f, 0.0f);
    add(p + "ffn_down.weight", n_ff, n_embd, 0.1f, 0.0f);
  }
  add("output_norm.weight", n_embd, 1, 0.2f, 1.0f);
  if (!tied) add("output.weight", n_embd, n_vocab, 0.1f, 0.0f);
  ASSERT_TRUE(w.write(path).is_ok());
}

std::vector<float> read_floats(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<float> v;
  float f;
  while (in.read(reinterpret_cast<char*>(&f), sizeof f)) v.push_back(f);
  return v;
}

TEST(QuantizeCommand, KQuantFilesReloadWithLogitsCloseToF32) {
  const fs::path dir = fs::temp_directory_path() / ("frugal_quantize_test_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string f32 = (dir / "f32.gguf").string();
  write_model(f32);
  const std::string tokens = "--tokens '1 290 17 203 44 260 101 299 5 77 150 262'";
  auto logits = [&](const std::string& model) {
    const std::string out = model + ".logits";
    const auto r = test::run_frugal("run -m " + model + " " + tokens + " --dump-logits " + out + " -n 0", true);
    EXPECT_EQ(r.exit_code, 0) << r.out;
    return read_floats(out);
  };
  const std::vector<float> ref = logits(f32);
  ASSERT_EQ(ref.size(), 12u * 300u);
  double ref2 = 0;
  for (float v : ref) ref2 += double{v} * v;

  // The bound, to first order: a relative perturbation of size e of every matrix moves the
  // logits by A e, with the model's amplification A measured here on the F16 file (whose
  // weight error is tiny and whose activations are not rounded). A scheme whose main type
  // rounds the weights by w (relative RMS, measured below on this model's own matrices) and
  // whose kernels round each matmul's input to 8 bits (relative RMS a = step / sqrt(12) / RMS
  // with step = amax / 127: about 2.9 / 127 / 3.46 = 0.0066 for 256 near-Gaussian values)
  // adds independent errors, so predicted = A sqrt(w^2 + a^2). Asserted: measured within
  // [0.5, 1.3] x predicted (mixes keep some matrices in Q6_K, which only lowers the error).
  auto weight_error = [&](GgmlType type) {
    double e2 = 0, x2 = 0;
    for (const std::vector<float>& m : model_matrices()) {
      if (m.size() <= 256) continue;  // norm weights stay F32
      std::vector<uint8_t> q(static_cast<size_t>(ggml_row_bytes(type, 256) * (m.size() / 256)));
      std::vector<float> back(m.size());
      for (size_t r = 0; r < m.size() / 256; ++r) {
        kernels::quantize_row(type, m.data() + 256 * r, q.data() + r * ggml_row_bytes(type, 256), 256);
        kernels::dequantize_row(type, q.data() + r * ggml_row_bytes(type, 256), back.data() + 256 * r, 256);
      }
      for (size_t i = 0; i < m.size(); ++i) e2 += (back[i] - m[i]) * (back[i] - m[i]), x2 += m[i] * m[i];
    }
    return std::sqrt(e2 / x2);
  };
  auto logit_error = [&](const char* scheme) {
    const std::string out = (dir / (std::string(scheme) + ".gguf")).string();
    const auto q = test::run_frugal("quantize " + f32 + " " + out + " " + scheme, true);
    EXPECT_EQ(q.exit_code, 0) << q.out;
    const std::vector<float> got = logits(out);
    EXPECT_EQ(got.size(), ref.size());
    double err2 = 0;
    for (size_t i = 0; i < got.size() && i < ref.size(); ++i)
      err2 += (double{got[i]} - ref[i]) * (double{got[i]} - ref[i]);
    return std::sqrt(err2 / ref2);
  };
  const double amplification = logit_error("f16") / weight_error(GgmlType::kF16);
  constexpr double kActivation = 0.0066;
  struct Case {
    const char* scheme;
    GgmlType main_type;
  };
  const Case cases[] = {{"q3_k_m", GgmlType::kQ3_K}, {"q4_k_m", GgmlType::kQ4_K},
                        {"q4_k", GgmlType::kQ4_K},   {"q5_k_m", GgmlType::kQ5_K},
                        {"q6_k", GgmlType::kQ6_K}};
  double previous = INFINITY;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.scheme);
    const double w = weight_error(c.main_type);
    const double predicted = amplification * std::sqrt(w * w + kActivation * kActivation);
    const double rel = logit_error(c.scheme);
    std::printf("%-7s logits vs F32: relative RMS %.4f, predicted %.4f (A %.2f, weights %.4f)\n",
                c.scheme, rel, predicted, amplification, w);
    EXPECT_LE(rel, 1.3 * predicted);
    EXPECT_GE(rel, 0.5 * predicted) << "the weights really changed type";
    if (std::string(c.scheme) != "q4_k") {  // q4_k sits beside q4_k_m, not below it
      EXPECT_LT(rel, previous) << "more bits must land closer to F32";
      previous = rel;
    }
  }
  fs::remove_all(dir);
}

TEST(QuantizeCommand, InterleavedWeightsGiveTheFileLayoutsLogits) {
  // Model::load copies Q4_K / Q5_K / Q8_0 matrices into the SIMD tile's layout where this
  // machine's kernels have one, a tied output included (token_embd stays on the file). A
  // prompt's prefill and a few decode steps must give the logits of the matrices read in
  // place.
  const fs::path dir = fs::temp_directory_path() / ("frugal_interleave_test_" + std::to_string(getpid()));
  fs::create_directories(dir);
  for (bool tied : {false, true}) {
    const std::string f32 = (dir / (tied ? "f32-tied.gguf" : "f32.gguf")).string();
    write_model(f32, tied);
    for (const char* scheme : {"q4_k_m", "q5_k_m", "q8_0"}) {
      SCOPED_TRACE(std::string(scheme) + (tied ? ", tied output" : ""));
      const std::string path = (dir / (std::string(scheme) + (tied ? "-tied" : "") + ".gguf")).string();
      const auto q = test::run_frugal("quantize " + f32 + " " + path + " " + scheme, true);
      ASSERT_EQ(q.exit_code, 0) << q.out;
      auto logits = [&](bool interleave) {
        ModelOptions o;
        o.n_threads = 2;
        o.interleave_weights = interleave;
        auto m = Model::load(path, o);
        EXPECT_TRUE(m.is_ok()) << m.status().message();
        if (!m.is_ok()) return std::vector<float>{};
        const Weights& w = (*m)->weights();
        EXPECT_EQ(w.layers[0].wq.interleaved, interleave && kernels::interleave_group(w.layers[0].wq.type) > 0);
        EXPECT_EQ(w.output.interleaved, interleave && kernels::interleave_group(w.output.type) > 0);
        EXPECT_FALSE(w.token_embd.interleaved) << "embedding lookups read the file's rows";
        auto kv = (*m)->make_kv_cache(64);
        const KvCache::SeqId seq = kv->create_sequence();
        const std::vector<int32_t> prompt = {1, 290, 17, 203, 44, 260, 101, 299, 5};
        std::vector<float> all, step;
        const SeqBatch prefill{seq, prompt, true};
        EXPECT_TRUE((*m)->forward(std::span<const SeqBatch>(&prefill, 1), *kv, step).is_ok());
        all = step;
        for (int32_t tok : {77, 150, 262}) {
          const std::vector<int32_t> one = {tok};
          const SeqBatch decode{seq, one, false};
          EXPECT_TRUE((*m)->forward(std::span<const SeqBatch>(&decode, 1), *kv, step).is_ok());
          all.insert(all.end(), step.begin(), step.end());
        }
        return all;
      };
      const std::vector<float> in_place = logits(false), interleaved = logits(true);
      ASSERT_EQ(in_place.size(), (9u + 3u) * 300u);
      ASSERT_EQ(interleaved.size(), in_place.size());
      // Q4_K's 16-row VNNI tile sums each row in one lane where the file layout's tile uses
      // four: float rounding apart, so the same logits to a few ulps of their scale; every
      // other interleaved tile is the file layout's arithmetic, bit for bit.
      const bool own_tile = std::string(scheme) != "q8_0" &&
                            kernels::interleave_group(GgmlType::kQ4_K) == 16;
      float scale = 0.0f, worst = 0.0f;
      for (float v : in_place) scale = std::max(scale, std::fabs(v));
      for (size_t i = 0; i < in_place.size(); ++i) {
        worst = std::max(worst, std::fabs(interleaved[i] - in_place[i]));
        if (!own_tile) ASSERT_EQ(interleaved[i], in_place[i]) << "logit " << i;
      }
      if (own_tile) {
        std::printf("%s: largest logit difference %.3g of a largest logit %.3g\n", scheme, worst, scale);
        EXPECT_LE(worst, 1e-5f * scale);
      }
    }
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace frugal
