// Model::load on malformed models: each nonsense hyper-parameter (a block count that does not
// match the tensors, zero or NaN epsilon or RoPE base, head counts whose product wraps, a
// width that head counts do not divide, a truncated file, a malformed byte token) is refused
// with a message naming the key and both numbers — never a crash, never a model that runs
// garbage. The valid tiny model loads and runs, so every refusal is the change's doing.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <string>

#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "tiny_model.h"
#include "util/file_io.h"

namespace frugal {
namespace {

namespace fs = std::filesystem;

class ModelLoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("frugal_model_load_test_" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes `w` and loads it; returns the load's status.
  Status load(GgufWriter& w, const std::string& name = "m.gguf") {
    const std::string path = (dir_ / name).string();
    Status s = w.write(path);
    if (!s.is_ok()) return s;
    ModelOptions o;
    o.n_threads = 1;
    auto m = Model::load(path, o);
    return m.is_ok() ? Status::ok() : m.status();
  }

  // Expects `w` to be refused as corrupt with every one of `parts` in the message.
  void expect_refused(GgufWriter& w, std::initializer_list<const char*> parts) {
    Status s = load(w);
    ASSERT_FALSE(s.is_ok()) << "loaded";
    EXPECT_EQ(s.code(), ErrorCode::kCorrupt) << s.to_string();
    for (const char* p : parts) {
      EXPECT_NE(s.message().find(p), std::string::npos) << "'" << p << "' not in: " << s.message();
    }
  }

  fs::path dir_;
};

TEST_F(ModelLoadTest, TheTinyModelLoadsAndRuns) {
  GgufWriter w = test::tiny_model_writer();
  const std::string path = (dir_ / "tiny.gguf").string();
  ASSERT_TRUE(w.write(path).is_ok());
  ModelOptions o;
  o.n_threads = 1;
  auto m = Model::load(path, o);
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  EXPECT_EQ((*m)->config().n_layer, 2);
  auto kv = (*m)->make_kv_cache(32);
  const KvCache::SeqId seq = kv->create_sequence();
  const std::vector<int32_t> tokens = (*m)->tokenizer().encode("hi the", true, false);
  ASSERT_FALSE(tokens.empty());
  SeqBatch b;
  b.seq = seq;
  b.tokens = tokens;
  std::vector<float> logits;
  ASSERT_TRUE((*m)->forward(std::span<const SeqBatch>(&b, 1), *kv, logits).is_ok());
  ASSERT_EQ(static_cast<int64_t>(logits.size()), (*m)->config().n_vocab);
  for (float x : logits) ASSERT_TRUE(std::isfinite(x));
}

TEST_F(ModelLoadTest, BlockCountAboveTheTensorsIsRefusedWithBothNumbers) {
  for (uint64_t n : {uint64_t{3}, uint64_t{2147483647}, uint64_t{1} << 40}) {
    GgufWriter w = test::tiny_model_writer();
    w.set_uint64("llama.block_count", n);
    expect_refused(w, {"llama.block_count is", std::to_string(n).c_str(),
                       "the file has tensors for 2 layers"});
  }
}

TEST_F(ModelLoadTest, BlockCountBelowTheTensorsIsRefused) {
  test::TinyModelShape four;
  four.n_layer = 4;
  GgufWriter w = test::tiny_model_writer(four);
  w.set_uint32("llama.block_count", 3);
  expect_refused(w, {"the file has tensors for layer 3 but llama.block_count is 3"});
}

TEST_F(ModelLoadTest, ZeroOrNanEpsilonAndRopeBaseAreRefusedNamingTheKey) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (float eps : {0.0f, -1e-5f, nan, inf, 2.0f}) {
    GgufWriter w = test::tiny_model_writer();
    w.set_float32("llama.attention.layer_norm_rms_epsilon", eps);
    expect_refused(w, {"llama.attention.layer_norm_rms_epsilon is"});
  }
  for (float base : {0.0f, -10000.0f, nan, inf, 1.0f}) {
    GgufWriter w = test::tiny_model_writer();
    w.set_float32("llama.rope.freq_base", base);
    expect_refused(w, {"llama.rope.freq_base is"});
  }
  GgufWriter w = test::tiny_model_writer();
  w.set_string("llama.rope.scaling.type", "linear");
  w.set_float32("llama.rope.scaling.factor", 0.0f);
  expect_refused(w, {"llama.rope.scaling.factor is 0"});
}

TEST_F(ModelLoadTest, HeadCountsWhoseProductWrapsAreRefused) {
  // 2^62 heads x key_length 4 wraps to 0 in 64 bits; 2^33 x 2^31 wraps too.
  {
    GgufWriter w = test::tiny_model_writer();
    w.set_uint64("llama.attention.head_count", uint64_t{1} << 62);
    w.set_uint64("llama.attention.head_count_kv", uint64_t{1} << 62);
    w.set_uint32("llama.attention.key_length", 4);
    w.set_uint32("llama.attention.value_length", 4);
    expect_refused(w, {"llama.attention.head_count 4611686018427387904 x head dimension 4"});
  }
  {
    GgufWriter w = test::tiny_model_writer();
    w.set_uint64("llama.attention.head_count", uint64_t{1} << 33);
    w.set_uint64("llama.attention.head_count_kv", uint64_t{1} << 33);
    w.set_uint32("llama.attention.key_length", 512);
    w.set_uint32("llama.attention.value_length", 512);
    expect_refused(w, {"llama.attention.head_count 8589934592 x head dimension 512"});
  }
}

TEST_F(ModelLoadTest, WidthNotDividedByTheHeadCountIsRefused) {
  GgufWriter w = test::tiny_model_writer();
  w.set_uint32("llama.attention.head_count", 3);
  w.set_uint32("llama.attention.head_count_kv", 3);
  expect_refused(w, {"llama.embedding_length (8) is not a multiple of "
                     "llama.attention.head_count (3)"});
}

TEST_F(ModelLoadTest, NonPositiveSizesNameTheirKey) {
  GgufWriter w = test::tiny_model_writer();
  w.set_int32("llama.feed_forward_length", -16);
  expect_refused(w, {"llama.feed_forward_length is -16"});
}

TEST_F(ModelLoadTest, TruncatedFileIsRefusedNamingTheTensor) {
  GgufWriter w = test::tiny_model_writer();
  const std::string path = (dir_ / "whole.gguf").string();
  ASSERT_TRUE(w.write(path).is_ok());
  const std::string bytes = read_file(path).value();
  for (size_t cut : {bytes.size() - 1, bytes.size() / 2, size_t{40}}) {
    const std::string cut_path = (dir_ / "cut.gguf").string();
    ASSERT_TRUE(write_file(cut_path, bytes.substr(0, cut)).is_ok());
    ModelOptions o;
    o.n_threads = 1;
    auto m = Model::load(cut_path, o);
    ASSERT_FALSE(m.is_ok()) << "cut at " << cut;
    EXPECT_EQ(m.status().code(), ErrorCode::kCorrupt) << m.status().to_string();
    EXPECT_NE(m.status().message().find(cut == bytes.size() - 1 ? "file truncated" : "cut.gguf"),
              std::string::npos)
        << m.status().message();
  }
}

TEST_F(ModelLoadTest, MalformedByteTokenTextRendersAsWrittenInsteadOfThrowing) {
  GgufWriter w = test::tiny_model_writer();
  const GgufValue* tokens = nullptr;
  for (const auto& [key, value] : w.metadata()) {
    if (key == "tokenizer.ggml.tokens") tokens = &value;
  }
  ASSERT_NE(tokens, nullptr);
  std::vector<std::string> texts = *tokens->as_string_array();
  texts[3] = "<0xZZ>";  // a byte token (type 6) whose text is not two hex digits
  texts[4] = "<0x-1>";
  w.set_string_array("tokenizer.ggml.tokens", texts);
  const std::string path = (dir_ / "bytes.gguf").string();
  ASSERT_TRUE(w.write(path).is_ok());
  auto f = GgufFile::open(path);
  ASSERT_TRUE(f.is_ok());
  auto tok = Tokenizer::from_gguf(**f);
  ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
  EXPECT_EQ((*tok)->token_to_piece(3), "<0xZZ>");
  EXPECT_EQ((*tok)->token_to_piece(4), "<0x-1>");
  EXPECT_EQ((*tok)->token_to_piece(3 + 0x41), "A");  // a well-formed one still decodes
}

// With FRUGAL_WRITE_MODEL_SEEDS=DIR, writes the model fuzzer's seed corpus (fuzz/corpus/model
// is made so): the tiny llama, and without byte tokens an untied one-layer llama of width 4
// and a qwen2 with biases.
TEST(ModelFuzzSeeds, WriteWhenAsked) {
  const char* dir = std::getenv("FRUGAL_WRITE_MODEL_SEEDS");
  if (dir == nullptr) GTEST_SKIP() << "set FRUGAL_WRITE_MODEL_SEEDS=DIR to write seeds";
  fs::create_directories(dir);
  test::TinyModelShape narrow;
  narrow.n_embd = 4;
  narrow.n_layer = 1;
  narrow.n_ff = 8;
  narrow.tied = false;
  narrow.byte_tokens = false;
  test::TinyModelShape qwen;
  qwen.arch = "qwen2";
  qwen.n_head_kv = 2;
  qwen.byte_tokens = false;
  for (const auto& [name, shape] : {std::pair{"llama.gguf", test::TinyModelShape{}},
                                    std::pair{"llama-narrow-untied.gguf", narrow},
                                    std::pair{"qwen2.gguf", qwen}}) {
    GgufWriter w = test::tiny_model_writer(shape);
    ASSERT_TRUE(w.write(std::string(dir) + "/" + name).is_ok());
  }
}

// The families beyond llama/qwen2 read their layout the way llama.cpp's loader does.
TEST_F(ModelLoadTest, NewFamiliesReadTheirLayoutAsLlamaCppDoes) {
  struct Want {
    const char* arch;
    bool qk_norm, post_norms, fused;
    float attn_cap, final_cap;
    int64_t n_swa;
    std::vector<bool> local;  // per layer of 7
  };
  const std::vector<Want> wants = {
      {"qwen3", true, false, false, 0, 0, 0, {0, 0, 0, 0, 0, 0, 0}},
      {"gemma2", false, true, false, 50, 30, 4, {1, 0, 1, 0, 1, 0, 1}},
      {"gemma3", true, true, false, 0, 0, 4, {1, 1, 1, 1, 1, 0, 1}},
      {"phi3", false, false, true, 0, 0, 6, {1, 1, 1, 1, 1, 1, 1}},
  };
  for (const Want& want : wants) {
    SCOPED_TRACE(want.arch);
    test::TinyModelShape shape;
    shape.arch = want.arch;
    shape.n_layer = 7;
    GgufWriter w = test::tiny_model_writer(shape);
    const std::string path = (dir_ / (std::string(want.arch) + ".gguf")).string();
    ASSERT_TRUE(w.write(path).is_ok());
    ModelOptions o;
    o.n_threads = 1;
    auto m = Model::load(path, o);
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    const ModelConfig& c = (*m)->config();
    EXPECT_EQ(c.qk_norm, want.qk_norm);
    EXPECT_EQ(c.post_norms, want.post_norms);
    EXPECT_EQ(c.fused_qkv, want.fused);
    EXPECT_EQ(c.fused_gate_up, want.fused);
    EXPECT_EQ(c.ffn_act == FfnActivation::kGeluTanh, want.post_norms);
    EXPECT_EQ(c.attn_softcap, want.attn_cap);  // gemma2's defaults when the keys are absent
    EXPECT_EQ(c.final_softcap, want.final_cap);
    EXPECT_EQ(c.n_swa, want.n_swa);
    for (int64_t il = 0; il < 7; ++il) EXPECT_EQ(c.is_swa(il), want.local[il]) << "layer " << il;
    EXPECT_FLOAT_EQ(c.embd_scale, want.post_norms ? std::sqrt(8.0f) : 1.0f);
    EXPECT_FLOAT_EQ(c.attn_scale, 0.5f);  // 1 / sqrt(head_dim 4)
    auto kv = (*m)->make_kv_cache(32);
    SeqBatch b;
    b.seq = kv->create_sequence();
    const std::vector<int32_t> tokens = {1, 200, 5, 7, 270, 9, 11, 13, 2};
    b.tokens = tokens;
    std::vector<float> logits;
    ASSERT_TRUE((*m)->forward(std::span<const SeqBatch>(&b, 1), *kv, logits).is_ok());
    for (float x : logits) ASSERT_TRUE(std::isfinite(x));
  }
}

// (Missing and mis-shaped tensors of these families: tests/python/test_hf_arch_reference.py.)
TEST_F(ModelLoadTest, NewFamiliesRefuseNonsenseKeysByName) {
  auto shape_of = [](const char* arch) {
    test::TinyModelShape s;
    s.arch = arch;
    return s;
  };
  {  // gemma3 files carry their window: llama.cpp requires the key too.
    GgufWriter w = test::tiny_model_writer(shape_of("gemma3"));
    w.erase("gemma3.attention.sliding_window");
    const Status s = load(w);  // a missing key, as for any other required one
    EXPECT_FALSE(s.is_ok());
    EXPECT_NE(s.message().find("'gemma3.attention.sliding_window' is missing"), std::string::npos)
        << s.message();
  }
  {
    GgufWriter w = test::tiny_model_writer(shape_of("gemma2"));
    w.set_float32("gemma2.attn_logit_softcapping", NAN);
    expect_refused(w, {"gemma2.attn_logit_softcapping", "nan"});
  }
  {
    GgufWriter w = test::tiny_model_writer(shape_of("gemma2"));
    w.set_float32("gemma2.final_logit_softcapping", -30.0f);
    expect_refused(w, {"gemma2.final_logit_softcapping", "-30"});
  }
  {
    GgufWriter w = test::tiny_model_writer(shape_of("gemma2"));
    w.set_float32("gemma2.attention.scale", 0.0f);
    expect_refused(w, {"gemma2.attention.scale", "above 0"});
  }
  {
    GgufWriter w = test::tiny_model_writer(shape_of("phi3"));
    w.set_int32("phi3.attention.sliding_window", -5);
    expect_refused(w, {"phi3.attention.sliding_window", "-5"});
  }
}

}  // namespace
}  // namespace frugal
