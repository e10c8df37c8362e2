// The `frugal` binary end to end: run (text, --json with logprobs, chat), bench --json, and the
// errors a user sees for a missing, truncated or unsupported model file.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "engine/gguf.h"
#include "engine/gguf_writer.h"
#include "test_shell.h"

namespace frugal {
namespace {

namespace fs = std::filesystem;

using Output = test::CommandOutput;

// Runs frugal with `args`; stderr joins stdout unless `with_stderr` is false.
Output run(const std::string& args, bool with_stderr = true) {
  return test::run_frugal(args, with_stderr);
}

class CliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("frugal_cli_test_" + std::to_string(getpid()));
    fs::create_directories(dir_);
    model_ = (dir_ / "stories.gguf").string();
    const std::string src = std::string(FRUGAL_SHARED_DIR) + "/models/stories260K";
    Output o = run("convert --llama2c " + src + "/stories260K.bin --tokenizer " + src +
                   "/tok512.bin -o " + model_);
    ASSERT_EQ(o.exit_code, 0) << o.out;
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static fs::path dir_;
  static std::string model_;
};
fs::path CliTest::dir_;
std::string CliTest::model_;

TEST_F(CliTest, RunStreamsTextAndIsReproducibleWithASeed) {
  const std::string args = "run -m " + model_ + " -p 'Once upon a time' -n 24 --temp 0.9 -t 1";
  Output a = run(args + " --seed 5", false);
  Output b = run(args + " --seed 5", false);
  Output c = run(args + " --seed 6", false);
  ASSERT_EQ(a.exit_code, 0) << a.out;
  EXPECT_GT(a.out.size(), 40u);
  EXPECT_EQ(a.out, b.out) << "same seed, same text";
  EXPECT_NE(a.out, c.out) << "another seed, another text";
  EXPECT_NE(run(args + " --seed 5").out.find("generated"), std::string::npos)
      << "timing summary on stderr";
}

TEST_F(CliTest, PromptFromAFileOrStdinEqualsTheSameTextWithP) {
  const std::string file = (dir_ / "prompt.txt").string();
  std::ofstream(file) << "Lily and Tom";
  const std::string common = " -n 12 --temp 0 -t 1";
  Output p = run("run -m " + model_ + " -p 'Lily and Tom'" + common, false);
  Output f = run("run -m " + model_ + " -f " + file + common, false);
  Output in = run("run -m " + model_ + " -f - < " + file + common, false);
  ASSERT_EQ(p.exit_code, 0);
  EXPECT_EQ(f.out, p.out);
  EXPECT_EQ(in.out, p.out);
  EXPECT_EQ(run("run -m " + model_ + " -f /nonexistent/prompt.txt").exit_code, 2);
  EXPECT_EQ(run("run -m " + model_ + " -p x -f " + file).exit_code, 2);
}

TEST_F(CliTest, JsonGivesOneObjectPerTokenWithLogprobs) {
  Output o = run("run -m " + model_ + " -p 'Lily and Tom' -n 8 --temp 0 --json --logprobs 3 -t 1");
  ASSERT_EQ(o.exit_code, 0) << o.out;
  std::istringstream lines(o.out);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    auto j = nlohmann::json::parse(line);
    ASSERT_TRUE(j.contains("id") && j.contains("text") && j.contains("logprob"));
    ASSERT_EQ(j["top_logprobs"].size(), 3u);
    // Greedy: the chosen token is the most likely alternative and its logprob matches.
    EXPECT_EQ(j["top_logprobs"][0]["id"], j["id"]);
    EXPECT_NEAR(j["top_logprobs"][0]["logprob"].get<double>(), j["logprob"].get<double>(), 1e-6);
    EXPECT_LE(j["logprob"].get<double>(), 0.0);
    ++n;
  }
  EXPECT_EQ(n, 8);
}

TEST_F(CliTest, BenchJsonReportsSpeedBesideTheRoofline) {
  Output o = run("bench -m " + model_ + " -p 16 -n 8 -t 1 --json");
  ASSERT_EQ(o.exit_code, 0) << o.out;
  auto j = nlohmann::json::parse(o.out);
  for (const char* key : {"prefill_tokens_per_s", "decode_tokens_per_s", "bandwidth_gb_per_s",
                          "decode_roofline_fraction", "fma_peak_gflops", "prefill_peak_fraction"}) {
    ASSERT_TRUE(j.contains(key)) << key;
    EXPECT_GT(j[key].get<double>(), 0.0) << key;
  }
  // bytes per token: every matrix of the 5-layer stories model in F32 plus the output matrix.
  EXPECT_GT(j["decode_bytes_per_token"].get<double>(), 4.0 * 200000);
}

TEST_F(CliTest, MissingTruncatedAndUnsupportedModelsGetClearErrors) {
  Output missing = run("run -m /nonexistent/model.gguf -p hi");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.out.find("no such file: /nonexistent/model.gguf"), std::string::npos)
      << missing.out;

  // Cut the model in half: the reader names the problem and the offset.
  const std::string cut = (dir_ / "cut.gguf").string();
  {
    std::ifstream in(model_, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(cut, std::ios::binary).write(bytes.data(), bytes.size() / 2);
  }
  Output trunc = run("run -m " + cut + " -p hi");
  EXPECT_EQ(trunc.exit_code, 1);
  EXPECT_NE(trunc.out.find("corrupt"), std::string::npos) << trunc.out;
  EXPECT_NE(trunc.out.find("offset"), std::string::npos) << trunc.out;

  // A valid GGUF of another architecture.
  const std::string other = (dir_ / "gpt2.gguf").string();
  GgufWriter w;
  w.set_string("general.architecture", "gpt2");
  std::vector<float> t(64, 0.0f);
  ASSERT_TRUE(w.add_tensor("token_embd.weight", {8, 8}, GgmlType::kF32, t.data(),
                           t.size() * sizeof(float)).is_ok());
  ASSERT_TRUE(w.write(other).is_ok());
  Output arch = run("run -m " + other + " -p hi");
  EXPECT_EQ(arch.exit_code, 1);
  EXPECT_NE(arch.out.find("unsupported architecture 'gpt2'"), std::string::npos) << arch.out;
}

std::vector<float> read_floats(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<float> v;
  float f;
  while (in.read(reinterpret_cast<char*>(&f), sizeof f)) v.push_back(f);
  return v;
}

TEST_F(CliTest, QuantizeRewritesMatricesAndKeepsTheModelWorking) {
  const std::string tokens = "--tokens '1 403 407 261 378 432 383 286 261'";
  ASSERT_EQ(run("run -m " + model_ + " " + tokens + " --dump-logits " + (dir_ / "f32.bin").string() +
                " -n 0").exit_code, 0);
  const std::vector<float> ref = read_floats((dir_ / "f32.bin").string());
  ASSERT_EQ(ref.size(), 9u * 512u);
  double scale = 0.0;
  for (float v : ref) scale = std::max(scale, std::fabs(static_cast<double>(v)));

  // Relative max logit error allowed per type: the stories model's logits reach ~20, and
  // 8-bit weights and activations move them by well under 2 % of that; f16 by ~0.1 %.
  for (auto [type, tol] : {std::pair{"f16", 2e-3}, std::pair{"q8_0", 2e-2}}) {
    SCOPED_TRACE(type);
    const std::string out = (dir_ / (std::string(type) + ".gguf")).string();
    Output q = run("quantize " + model_ + " " + out + " " + type);
    ASSERT_EQ(q.exit_code, 0) << q.out;
    auto info = nlohmann::json::parse(run("inspect --json " + out, false).out);
    int matrices = 0;
    for (const auto& t : info["tensors"]) {
      // Rows that no 32-block divides (ffn_down's 172) fall back to f16, as in llama.cpp.
      const bool matrix = t["shape"].size() == 2;
      const bool fits = matrix && t["shape"][0].get<int64_t>() % 32 == 0;
      if (fits) ++matrices;
      EXPECT_EQ(t["type"].get<std::string>(), fits ? type : matrix ? "f16" : "f32") << t["name"];
    }
    EXPECT_GT(matrices, 10);
    ASSERT_EQ(run("run -m " + out + " " + tokens + " --dump-logits " + out + ".bin -n 0").exit_code, 0);
    const std::vector<float> got = read_floats(out + ".bin");
    ASSERT_EQ(got.size(), ref.size());
    double err = 0.0;
    for (size_t i = 0; i < ref.size(); ++i) err = std::max(err, std::fabs(double(got[i]) - ref[i]));
    EXPECT_LT(err / scale, tol);
    EXPECT_GT(err, 0.0) << "the weights really changed type";
  }
  Output bad = run("quantize " + model_ + " " + (dir_ / "x.gguf").string() + " q7_k");
  EXPECT_EQ(bad.exit_code, 2) << bad.out;
  EXPECT_NE(bad.out.find("q4_k_m"), std::string::npos) << "names the known types: " << bad.out;
}

TEST_F(CliTest, PromptLongerThanTheContextIsRefused) {
  std::string long_prompt;
  for (int i = 0; i < 200; ++i) long_prompt += "Once upon a time ";
  Output o = run("run -m " + model_ + " -p '" + long_prompt + "' -c 64 -n 4");
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_NE(o.out.find("shorten the prompt or raise the context size"), std::string::npos)
      << o.out;
}

}  // namespace
}  // namespace frugal
