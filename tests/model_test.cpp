// Model: greedy golden output of a real pretrained Llama (llama2.c's stories260K, converted by
// `frugal convert`) token for token against llama2.c's reference run.c, and the batched
// forward pass agreeing with itself across batching, chunking and prefix reuse.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/model.h"
#include "engine/tokenizer.h"
#include "sched/generate.h"
#include "sched/scheduler.h"
#include "tiny_model.h"

namespace frugal {
namespace {

namespace fs = std::filesystem;

struct Reference {
  std::string prompt;
  std::vector<int32_t> prompt_tokens, greedy_tokens;
  std::vector<float> chosen_logits;
};

class StoriesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string dir = std::string(FRUGAL_SHARED_DIR) + "/models/stories260K";
    gguf_path_ = (fs::temp_directory_path() /
                  ("frugal_model_test_stories260K_" + std::to_string(getpid()) + ".gguf"))
                     .string();  // its own: ctest runs each test in a process, and TearDown removes it
    const std::string cmd = std::string(FRUGAL_BINARY) + " convert --llama2c " + dir +
                            "/stories260K.bin --tokenizer " + dir + "/tok512.bin -o " +
                            gguf_path_ + " > /dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    std::ifstream in(dir + "/greedy_reference.jsonl");
    std::string line;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line);
      refs_.push_back({j["prompt"], j["prompt_tokens"], j["greedy_tokens"], j["chosen_logits"]});
    }
    ASSERT_EQ(refs_.size(), 3u);
  }
  static void TearDownTestSuite() { fs::remove(gguf_path_); }

  std::unique_ptr<Model> load(int threads = 2) {
    ModelOptions o;
    o.n_threads = threads;
    auto m = Model::load(gguf_path_, o);
    EXPECT_TRUE(m.is_ok()) << m.status().to_string();
    return m.is_ok() ? std::move(m).value() : nullptr;
  }

  // A scheduler over a fresh model, its cache holding n_ctx positions of `type`.
  std::unique_ptr<Scheduler> scheduler(int64_t n_ctx, KvType type, int threads = 2) {
    SchedulerOptions o;
    o.n_ctx = n_ctx;
    o.kv_tokens = n_ctx;
    o.kv_type = type;
    auto s = Scheduler::create(load(threads), o);
    EXPECT_TRUE(s.is_ok()) << s.status().to_string();
    return s.is_ok() ? std::move(s).value() : nullptr;
  }

  static std::string gguf_path_;
  static std::vector<Reference> refs_;
};
std::string StoriesTest::gguf_path_;
std::vector<Reference> StoriesTest::refs_;

TEST_F(StoriesTest, TokenizerMatchesLlama2cEncoding) {
  auto model = load();
  ASSERT_TRUE(model);
  for (const Reference& r : refs_) {
    EXPECT_EQ(model->tokenizer().encode(r.prompt, true, false), r.prompt_tokens) << r.prompt;
  }
}

TEST_F(StoriesTest, GreedyGenerationEqualsReferenceTokenForToken) {
  // llama2.c keeps its cache in float; the F16 cache (the default) must give the same tokens.
  for (KvType type : {KvType::kF32, KvType::kF16}) {
    auto sched = scheduler(512, type);
    ASSERT_TRUE(sched);
    for (const Reference& r : refs_) {
      GenerateParams p;
      p.max_tokens = static_cast<int64_t>(r.greedy_tokens.size());
      p.stop_at_eog = false;  // the reference stops only at BOS, which it never produced here
      auto out = generate(*sched, r.prompt_tokens, p);
      ASSERT_TRUE(out.is_ok()) << out.status().to_string();
      std::vector<int32_t> ids;
      for (const auto& t : out->tokens) ids.push_back(t.id);
      EXPECT_EQ(ids, r.greedy_tokens) << "prompt: '" << r.prompt << "' kv " << kv_type_name(type);
    }
  }
}

TEST_F(StoriesTest, LogitsOfWholeSequenceMatchReferenceChosenLogits) {
  auto model = load(2);
  ASSERT_TRUE(model);
  for (const Reference& r : refs_) {
    std::vector<int32_t> seq = r.prompt_tokens;
    seq.insert(seq.end(), r.greedy_tokens.begin(), r.greedy_tokens.end() - 1);
    auto kv = model->make_kv_cache(512, 16, KvType::kF32);
    const SeqBatch b{kv->create_sequence(), seq, true};
    std::vector<float> logits;
    ASSERT_TRUE(model->forward(std::span<const SeqBatch>(&b, 1), *kv, logits).is_ok());
    const int64_t n_vocab = model->config().n_vocab;
    const size_t first = r.prompt_tokens.size() - 1;
    for (size_t i = 0; i < r.greedy_tokens.size(); ++i) {
      const float* row = logits.data() + (first + i) * n_vocab;
      EXPECT_NEAR(row[r.greedy_tokens[i]], r.chosen_logits[i], 2e-3f) << "position " << first + i;
    }
  }
}

TEST_F(StoriesTest, BatchingChunkingAndPrefixReuseGiveTheSameLogits) {
  auto model = load(2);
  ASSERT_TRUE(model);
  const int64_t n_vocab = model->config().n_vocab;
  const Reference& a = refs_[0];
  const Reference& b = refs_[1];
  std::vector<int32_t> sa = a.prompt_tokens, sb = b.prompt_tokens;
  sa.insert(sa.end(), a.greedy_tokens.begin(), a.greedy_tokens.begin() + 40);
  sb.insert(sb.end(), b.greedy_tokens.begin(), b.greedy_tokens.begin() + 30);

  // Each sequence alone, all positions.
  auto alone = [&](const std::vector<int32_t>& s) {
    auto kv = model->make_kv_cache(256);
    const SeqBatch e{kv->create_sequence(), s, true};
    std::vector<float> logits;
    EXPECT_TRUE(model->forward(std::span<const SeqBatch>(&e, 1), *kv, logits).is_ok());
    return logits;
  };
  const std::vector<float> la = alone(sa), lb = alone(sb);

  // Both in one batch, each split into a prefill chunk and then decode-sized chunks mixed.
  auto kv = model->make_kv_cache(256);
  auto qa = kv->create_sequence(), qb = kv->create_sequence();
  std::vector<float> got_a, got_b, logits;
  size_t ia = 0, ib = 0;
  const size_t chunks[] = {7, 1, 1, 13, 2, 100};
  for (size_t c : chunks) {
    std::vector<SeqBatch> batch;
    size_t na = std::min(c, sa.size() - ia), nb = std::min(c + 3, sb.size() - ib);
    if (na) batch.push_back({qa, std::span<const int32_t>(sa.data() + ia, na), true});
    if (nb) batch.push_back({qb, std::span<const int32_t>(sb.data() + ib, nb), true});
    if (batch.empty()) break;
    ASSERT_TRUE(model->forward(batch, *kv, logits).is_ok());
    got_a.insert(got_a.end(), logits.begin(), logits.begin() + na * n_vocab);
    got_b.insert(got_b.end(), logits.begin() + na * n_vocab, logits.end());
    ia += na;
    ib += nb;
  }
  ASSERT_EQ(got_a.size(), la.size());
  ASSERT_EQ(got_b.size(), lb.size());
  // Exactly: every kernel computes a token's row the same way whatever else is in the batch,
  // which is what lets the scheduler batch greedy requests without changing their tokens.
  for (size_t i = 0; i < la.size(); ++i) ASSERT_EQ(got_a[i], la[i]) << i;
  for (size_t i = 0; i < lb.size(); ++i) ASSERT_EQ(got_b[i], lb[i]) << i;

  // A new sequence sharing sa's first 32 tokens reuses two cached blocks, same logits after.
  auto qc = kv->create_sequence();
  const int64_t reused = kv->reuse_prefix(qc, sa);
  EXPECT_EQ(reused, 32);
  const SeqBatch rest{qc, std::span<const int32_t>(sa.data() + reused, sa.size() - reused), true};
  ASSERT_TRUE(model->forward(std::span<const SeqBatch>(&rest, 1), *kv, logits).is_ok());
  for (size_t i = 0; i < logits.size(); ++i) ASSERT_EQ(logits[i], la[reused * n_vocab + i]) << i;
}

TEST_F(StoriesTest, BadInputsGetClearErrors) {
  auto sched = scheduler(64, KvType::kF16, 1);
  ASSERT_TRUE(sched);
  std::vector<int32_t> too_long(80, 5);
  auto r = generate(*sched, too_long, GenerateParams{});
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kOutOfRange);
  EXPECT_NE(r.status().message().find("shorten the prompt"), std::string::npos);

  auto model = load(1);
  ASSERT_TRUE(model);
  auto kv = model->make_kv_cache(64);

  std::vector<int32_t> bad{1, 9999};
  const SeqBatch b{kv->create_sequence(), bad, false};
  std::vector<float> logits;
  Status st = model->forward(std::span<const SeqBatch>(&b, 1), *kv, logits);
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(st.message().find("9999"), std::string::npos);
  EXPECT_EQ(kv->n_past(b.seq), 0) << "a refused batch leaves the cache unchanged";
}

TEST_F(StoriesTest, StopStringsEndGenerationBeforeTheStopText) {
  auto sched = scheduler(512, KvType::kF16, 1);
  ASSERT_TRUE(sched);
  GenerateParams p;
  p.max_tokens = 60;
  p.stop_at_eog = false;
  auto full = generate(*sched, refs_[0].prompt_tokens, p);
  ASSERT_TRUE(full.is_ok());
  const std::string& text = full->text;
  ASSERT_GT(text.size(), 30u);
  const std::string stop = text.substr(20, 5);
  p.stop = {stop};
  std::string streamed;
  auto cut = generate(*sched, refs_[0].prompt_tokens, p, [&](const GeneratedToken& t) {
    streamed += t.text;
    return true;
  });
  ASSERT_TRUE(cut.is_ok());
  EXPECT_EQ(cut->finish, FinishReason::kStop);
  EXPECT_EQ(cut->text, text.substr(0, text.find(stop)));
  EXPECT_EQ(streamed, cut->text) << "streamed text never shows any part of the stop string";
}

// The batching invariant for the other families' ops (Q/K norms, fused matrices, GELU,
// post-norms, soft-caps, sliding windows shorter than the sequences, Gemma 3's local RoPE):
// a token's logits are the same bits alone, batched with another sequence, chunked, or after
// a reused prefix, on F32 and F16 caches.
TEST(NewFamilies, BatchingChunkingAndPrefixReuseGiveTheSameLogits) {
  for (const char* arch : {"qwen3", "gemma2", "gemma3", "phi3"}) {
    for (KvType kv_type : {KvType::kF32, KvType::kF16}) {
      SCOPED_TRACE(std::string(arch) + (kv_type == KvType::kF16 ? " f16" : " f32"));
      test::TinyModelShape shape;
      shape.arch = arch;
      shape.n_embd = 32;
      shape.n_head = 4;
      shape.n_head_kv = 2;
      shape.n_ff = 48;
      shape.n_layer = std::string(arch) == "gemma3" ? 7 : 2;
      shape.tied = std::string(arch) != "phi3";
      const std::string path =
          (fs::temp_directory_path() / ("frugal_model_test_" + std::string(arch) + ".gguf"))
              .string();
      ASSERT_TRUE(test::tiny_model_writer(shape).write(path).is_ok());
      ModelOptions o;
      o.n_threads = 2;
      auto loaded = Model::load(path, o);
      fs::remove(path);
      ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
      Model& model = **loaded;
      const int64_t n_vocab = model.config().n_vocab;
      std::vector<int32_t> sa, sb;
      for (int i = 0; i < 45; ++i) sa.push_back((i * 37 + 11) % n_vocab);
      for (int i = 0; i < 33; ++i) sb.push_back((i * 53 + 5) % n_vocab);

      auto alone = [&](const std::vector<int32_t>& s) {
        auto kv = model.make_kv_cache(256, 16, kv_type);
        const SeqBatch e{kv->create_sequence(), s, true};
        std::vector<float> logits;
        EXPECT_TRUE(model.forward(std::span<const SeqBatch>(&e, 1), *kv, logits).is_ok());
        return logits;
      };
      const std::vector<float> la = alone(sa), lb = alone(sb);
      auto kv = model.make_kv_cache(256, 16, kv_type);
      auto qa = kv->create_sequence(), qb = kv->create_sequence();
      std::vector<float> got_a, got_b, logits;
      size_t ia = 0, ib = 0;
      for (size_t c : {7, 1, 1, 13, 2, 100}) {
        std::vector<SeqBatch> batch;
        size_t na = std::min(c, sa.size() - ia), nb = std::min(c + 3, sb.size() - ib);
        if (na) batch.push_back({qa, std::span<const int32_t>(sa.data() + ia, na), true});
        if (nb) batch.push_back({qb, std::span<const int32_t>(sb.data() + ib, nb), true});
        if (batch.empty()) break;
        ASSERT_TRUE(model.forward(batch, *kv, logits).is_ok());
        got_a.insert(got_a.end(), logits.begin(), logits.begin() + na * n_vocab);
        got_b.insert(got_b.end(), logits.begin() + na * n_vocab, logits.end());
        ia += na;
        ib += nb;
      }
      ASSERT_EQ(got_a, la);
      ASSERT_EQ(got_b, lb);
      auto qc = kv->create_sequence();
      const int64_t reused = kv->reuse_prefix(qc, sa);
      EXPECT_EQ(reused, 32);
      const SeqBatch rest{qc, std::span<const int32_t>(sa.data() + reused, sa.size() - reused),
                          true};
      ASSERT_TRUE(model.forward(std::span<const SeqBatch>(&rest, 1), *kv, logits).is_ok());
      ASSERT_EQ(logits, std::vector<float>(la.begin() + reused * n_vocab, la.end()));
    }
  }
}

}  // namespace
}  // namespace frugal
