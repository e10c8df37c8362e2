// llama2.c import: stories260K converts to a GGUF llama whose metadata, shapes and weights match
// the checkpoint; synthetic checkpoints cover the unshared classifier and bad inputs.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "engine/gguf.h"
#include "engine/llama2c.h"
#include "util/mmap_file.h"
#include "process_helpers.h"

namespace frugal {
namespace {

namespace fs = std::filesystem;

const std::string kFixture = std::string(FRUGAL_SHARED_DIR) + "/models/stories260K";

// In a folder of this process's own, removed when the process exits.
std::string temp_path(const std::string& name) {
  static const test::TempDir dir("llama2c-test");
  return dir.file(name);
}

float checkpoint_float(const std::string& bytes, int64_t index) {
  float v;
  std::memcpy(&v, bytes.data() + 28 + 4 * index, 4);
  return v;
}

float tensor_float(const GgufTensorInfo* t, int64_t index) {
  float v;
  std::memcpy(&v, t->data + 4 * index, 4);
  return v;
}

TEST(Llama2c, ConvertsStories260K) {
  const std::string ckpt = kFixture + "/stories260K.bin";
  if (!fs::exists(ckpt)) GTEST_SKIP() << "fixture missing: " << ckpt;
  const std::string out = temp_path("stories260K.gguf");
  Status s = convert_llama2c(ckpt, kFixture + "/tok512.bin", out);
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  auto f = GgufFile::open(out);
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  const GgufFile& g = **f;

  EXPECT_EQ(g.get_string("general.architecture").value(), "llama");
  EXPECT_EQ(g.get_string("general.name").value(), "stories260K");
  EXPECT_EQ(g.get_int("llama.embedding_length").value(), 64);
  EXPECT_EQ(g.get_int("llama.feed_forward_length").value(), 172);
  EXPECT_EQ(g.get_int("llama.block_count").value(), 5);
  EXPECT_EQ(g.get_int("llama.attention.head_count").value(), 8);
  EXPECT_EQ(g.get_int("llama.attention.head_count_kv").value(), 4);
  EXPECT_EQ(g.get_int("llama.context_length").value(), 512);
  EXPECT_EQ(g.get_int("llama.rope.dimension_count").value(), 8);
  EXPECT_FLOAT_EQ(static_cast<float>(g.get_float("llama.rope.freq_base").value()), 10000.0f);
  EXPECT_FLOAT_EQ(static_cast<float>(g.get_float("llama.attention.layer_norm_rms_epsilon").value()),
                  1e-5f);
  EXPECT_EQ(g.get_string("tokenizer.ggml.model").value(), "llama");
  EXPECT_EQ(g.get_int("tokenizer.ggml.bos_token_id").value(), 1);
  EXPECT_EQ(g.get_int("tokenizer.ggml.eos_token_id").value(), 2);
  EXPECT_EQ(g.get_int("tokenizer.ggml.unknown_token_id").value(), 0);
  EXPECT_TRUE(g.get_bool("tokenizer.ggml.add_bos_token").value());
  EXPECT_FALSE(g.get_bool("tokenizer.ggml.add_eos_token").value());

  const auto* tokens = g.find("tokenizer.ggml.tokens")->as_string_array();
  const auto* types = g.find("tokenizer.ggml.token_type")->as_int_array();
  const auto* scores = g.find("tokenizer.ggml.scores")->as_float_array();
  ASSERT_TRUE(tokens && types && scores);
  ASSERT_EQ(tokens->size(), 512u);
  ASSERT_EQ(types->size(), 512u);
  ASSERT_EQ(scores->size(), 512u);
  EXPECT_EQ((*tokens)[0], "<unk>");
  EXPECT_EQ((*tokens)[1], "<s>");
  EXPECT_EQ((*tokens)[2], "</s>");
  EXPECT_EQ((*tokens)[3], "<0x00>");
  EXPECT_EQ((*tokens)[3 + 0x0A], "<0x0A>");
  EXPECT_EQ((*types)[0], 2);
  EXPECT_EQ((*types)[1], 3);
  EXPECT_EQ((*types)[2], 3);
  EXPECT_EQ((*types)[3], 6);
  EXPECT_EQ((*types)[258], 6);
  // Token 259 is " t" in the llama2.c file: the space becomes SentencePiece's U+2581.
  EXPECT_EQ((*tokens)[259], "\xe2\x96\x81t");
  EXPECT_EQ((*types)[259], 1);
  for (const std::string& t : *tokens) EXPECT_EQ(t.find(' '), std::string::npos) << t;
  EXPECT_EQ((*scores)[260], -1.0);

  // Shapes are GGUF order: {row length, rows}.
  const int64_t V = 512, D = 64, L = 5, H = 172, KV = 32;
  auto shape = [&](const char* name) {
    const GgufTensorInfo* t = g.find_tensor(name);
    return t ? t->shape : std::vector<int64_t>{};
  };
  EXPECT_EQ(shape("token_embd.weight"), (std::vector<int64_t>{D, V}));
  EXPECT_EQ(shape("blk.0.attn_q.weight"), (std::vector<int64_t>{D, D}));
  EXPECT_EQ(shape("blk.0.attn_k.weight"), (std::vector<int64_t>{D, KV}));
  EXPECT_EQ(shape("blk.4.attn_v.weight"), (std::vector<int64_t>{D, KV}));
  EXPECT_EQ(shape("blk.2.ffn_gate.weight"), (std::vector<int64_t>{D, H}));
  EXPECT_EQ(shape("blk.2.ffn_up.weight"), (std::vector<int64_t>{D, H}));
  EXPECT_EQ(shape("blk.2.ffn_down.weight"), (std::vector<int64_t>{H, D}));
  EXPECT_EQ(shape("blk.3.ffn_norm.weight"), (std::vector<int64_t>{D}));
  EXPECT_EQ(shape("output_norm.weight"), (std::vector<int64_t>{D}));
  EXPECT_EQ(g.find_tensor("output.weight"), nullptr);  // classifier shared with the embedding
  EXPECT_EQ(g.tensors().size(), static_cast<size_t>(2 + 9 * L));
  for (const GgufTensorInfo& t : g.tensors()) EXPECT_EQ(t.type, GgmlType::kF32) << t.name;

  // Weights equal the checkpoint's floats at the positions the llama2.c layout gives them.
  const std::string raw = read_file(ckpt).value();
  const int64_t embd = 0, rms_att = V * D, wq = rms_att + L * D, wk = wq + L * D * D,
                wv = wk + L * KV * D, wo = wv + L * KV * D, rms_ffn = wo + L * D * D,
                w1 = rms_ffn + L * D, w2 = w1 + L * H * D, w3 = w2 + L * D * H,
                rms_final = w3 + L * H * D;
  struct Probe {
    const char* tensor;
    int64_t index_in_tensor;
    int64_t index_in_checkpoint;
  };
  const Probe probes[] = {
      {"token_embd.weight", 0, embd},
      {"token_embd.weight", 300 * D + 7, embd + 300 * D + 7},
      {"blk.0.attn_norm.weight", 5, rms_att + 5},
      {"blk.1.attn_q.weight", 3 * D + 2, wq + 1 * D * D + 3 * D + 2},
      {"blk.2.attn_k.weight", 31 * D + 63, wk + 2 * KV * D + 31 * D + 63},
      {"blk.3.attn_v.weight", 10, wv + 3 * KV * D + 10},
      {"blk.4.attn_output.weight", D * D - 1, wo + 4 * D * D + D * D - 1},
      {"blk.4.ffn_norm.weight", 63, rms_ffn + 4 * D + 63},
      {"blk.1.ffn_gate.weight", 171 * D, w1 + 1 * H * D + 171 * D},
      {"blk.2.ffn_down.weight", 5 * H + 171, w2 + 2 * D * H + 5 * H + 171},
      {"blk.3.ffn_up.weight", 100, w3 + 3 * H * D + 100},
      {"output_norm.weight", 17, rms_final + 17},
  };
  for (const Probe& p : probes) {
    const GgufTensorInfo* t = g.find_tensor(p.tensor);
    ASSERT_NE(t, nullptr) << p.tensor;
    EXPECT_EQ(tensor_float(t, p.index_in_tensor), checkpoint_float(raw, p.index_in_checkpoint))
        << p.tensor << "[" << p.index_in_tensor << "]";
  }
}

// A tiny random checkpoint and tokenizer in llama2.c layout.
struct Synthetic {
  std::string ckpt;
  std::string tok;
  std::vector<float> weights;
};

Synthetic make_synthetic(int32_t dim, int32_t hidden, int32_t layers, int32_t heads,
                         int32_t kv_heads, int32_t vocab, int32_t seq, bool shared) {
  Synthetic s;
  Llama2cConfig c{dim, hidden, layers, heads, kv_heads, vocab, seq, shared};
  int32_t header[7] = {dim, hidden, layers, heads, kv_heads, shared ? vocab : -vocab, seq};
  s.ckpt.assign(reinterpret_cast<const char*>(header), sizeof(header));
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  s.weights.resize(static_cast<size_t>(c.n_weight_floats()));
  for (float& w : s.weights) w = nd(rng);
  s.ckpt.append(reinterpret_cast<const char*>(s.weights.data()), s.weights.size() * 4);
  int32_t max_len = 8;
  s.tok.assign(reinterpret_cast<const char*>(&max_len), 4);
  for (int32_t i = 0; i < vocab; ++i) {
    std::string t = i == 0 ? "<unk>" : i == 1 ? "\n<s>\n" : i == 2 ? "\n</s>\n" : " w" + std::to_string(i);
    float score = -static_cast<float>(i);
    int32_t len = static_cast<int32_t>(t.size());
    s.tok.append(reinterpret_cast<const char*>(&score), 4);
    s.tok.append(reinterpret_cast<const char*>(&len), 4);
    s.tok += t;
  }
  return s;
}

TEST(Llama2c, UnsharedClassifierBecomesOutputWeight) {
  Synthetic s = make_synthetic(16, 24, 2, 4, 2, 10, 8, /*shared=*/false);
  const std::string ckpt = temp_path("unshared.bin"), tok = temp_path("unshared_tok.bin");
  ASSERT_TRUE(write_file(ckpt, s.ckpt).is_ok());
  ASSERT_TRUE(write_file(tok, s.tok).is_ok());
  const std::string out = temp_path("unshared.gguf");
  Status st = convert_llama2c(ckpt, tok, out, "tiny");
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  auto f = GgufFile::open(out);
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  EXPECT_EQ((*f)->get_string("general.name").value(), "tiny");
  const GgufTensorInfo* out_w = (*f)->find_tensor("output.weight");
  ASSERT_NE(out_w, nullptr);
  EXPECT_EQ(out_w->shape, (std::vector<int64_t>{16, 10}));
  // wcls is the last vocab*dim floats of the checkpoint.
  const size_t wcls = s.weights.size() - 10 * 16;
  for (int64_t i : {0, 37, 159})
    EXPECT_EQ(tensor_float(out_w, i), s.weights[wcls + static_cast<size_t>(i)]);
  EXPECT_EQ((*f)->find("tokenizer.ggml.tokens")->as_string_array()->at(5), "\xe2\x96\x81w5");
}

TEST(Llama2c, RefusesBadCheckpointsAndTokenizers) {
  Synthetic s = make_synthetic(16, 24, 2, 4, 2, 10, 8, true);
  const std::string tok = temp_path("tok.bin"), out = temp_path("bad.gguf");
  ASSERT_TRUE(write_file(tok, s.tok).is_ok());
  auto convert_bytes = [&](const std::string& ckpt_bytes, const std::string& tok_path) {
    const std::string ckpt = temp_path("bad.bin");
    CHECK(write_file(ckpt, ckpt_bytes).is_ok());
    return convert_llama2c(ckpt, tok_path, out);
  };
  auto expect_error = [&](const Status& st, const std::string& fragment) {
    EXPECT_EQ(st.code(), ErrorCode::kCorrupt) << st.to_string();
    EXPECT_NE(st.message().find(fragment), std::string::npos) << st.message();
    EXPECT_FALSE(fs::exists(out));
  };
  expect_error(convert_bytes(s.ckpt.substr(0, s.ckpt.size() - 4), tok), "truncated");
  expect_error(convert_bytes(s.ckpt.substr(0, 10), tok), "header");
  expect_error(convert_bytes(s.ckpt + "xxxx", tok), "needs");
  std::string nonsense = s.ckpt;
  int32_t minus_five = -5;
  std::memcpy(&nonsense[0], &minus_five, 4);
  expect_error(convert_bytes(nonsense, tok), "dim = -5");
  std::string odd_heads = s.ckpt;
  int32_t three = 3;
  std::memcpy(&odd_heads[12], &three, 4);  // n_heads 3 does not divide dim 16
  expect_error(convert_bytes(odd_heads, tok), "n_heads");
  expect_error(convert_bytes(std::string(4000, 'a'), tok), "not a llama2.c checkpoint");

  const std::string short_tok = temp_path("short_tok.bin");
  ASSERT_TRUE(write_file(short_tok, s.tok.substr(0, s.tok.size() - 3)).is_ok());
  expect_error(convert_bytes(s.ckpt, short_tok), "truncated tokenizer");
  const std::string long_tok = temp_path("long_tok.bin");
  ASSERT_TRUE(write_file(long_tok, s.tok + "extra-bytes").is_ok());
  expect_error(convert_bytes(s.ckpt, long_tok), "left after token 9");
  EXPECT_EQ(convert_llama2c(temp_path("missing.bin"), tok, out).code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace frugal
