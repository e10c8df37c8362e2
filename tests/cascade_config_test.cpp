// The TOML cascade config: the shipped frugal.toml, defaults, and errors that name key and line.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "cascade/config.h"

namespace frugal::cascade {
namespace {

Result<CascadeConfig> parse(const std::string& text) {
  return parse_cascade_config(text, "test.toml", "/cfg");
}

std::string error_of(const std::string& text) {
  auto config = parse(text);
  EXPECT_FALSE(config.is_ok()) << "accepted:\n" << text;
  return config.is_ok() ? "" : config.status().message();
}

TEST(CascadeConfig, LoadsTheShippedExample) {
  auto config = load_cascade_config(std::string(FRUGAL_SOURCE_DIR) + "/frugal.toml");
  ASSERT_TRUE(config.is_ok()) << config.status().to_string();
  ASSERT_EQ(config->tiers.size(), 3u);
  EXPECT_EQ(config->tiers[0].kind, TierKind::kCache);
  ASSERT_NE(config->cache_tier(), nullptr);
  auto models = config->model_tiers();
  ASSERT_EQ(models.size(), 2u);
  EXPECT_EQ(models[0]->name, "small");
  EXPECT_EQ(models[1]->name, "large");
  // Model paths resolve against the config file's folder.
  EXPECT_EQ(models[0]->model, std::string(FRUGAL_SOURCE_DIR) + "/models/frugal-student.gguf");
  EXPECT_TRUE(models[1]->price_set);
  EXPECT_GT(models[1]->price_out_per_mtok, models[0]->price_out_per_mtok);
  EXPECT_GE(config->threshold, 0.0);
  EXPECT_LE(config->threshold, 1.0);
}

TEST(CascadeConfig, UnknownKeyIsNamedWithItsLine) {
  std::string msg = error_of(
      "[[tier]]\n"
      "name = \"small\"\n"
      "kind = \"local\"\n"
      "model = \"s.gguf\"\n"
      "pricein = 0.1\n");
  EXPECT_NE(msg.find("test.toml:5"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'pricein'"), std::string::npos) << msg;
  std::string top = error_of("[serve]\nport = 1\n");
  EXPECT_NE(top.find("test.toml:1"), std::string::npos) << top;
  EXPECT_NE(top.find("'serve'"), std::string::npos) << top;
  std::string server = error_of("[server]\nport = 1\n");
  EXPECT_NE(server.find("test.toml:2"), std::string::npos) << server;
  EXPECT_NE(server.find("'port' in [server]"), std::string::npos) << server;
  std::string cascade = error_of("[cascade]\nthreshhold = 0.5\n");
  EXPECT_NE(cascade.find("test.toml:2"), std::string::npos) << cascade;
}

TEST(CascadeConfig, MissingPriceWithoutModelFileSaysToSetPrices) {
  std::string msg = error_of(
      "[[tier]]\n"
      "name = \"small\"\n"
      "kind = \"local\"\n"
      "model = \"absent.gguf\"\n");
  EXPECT_NE(msg.find("price_in"), std::string::npos) << msg;
  EXPECT_NE(msg.find("price_out"), std::string::npos) << msg;
  EXPECT_NE(msg.find("/cfg/absent.gguf"), std::string::npos) << msg;
}

// 2 · 1e9 FLOPs per token · 1e6 tokens · 2.8087e-18 $/FLOP = $0.0056173 per million tokens.
TEST(CascadeConfig, DefaultLocalPriceFromParameterCount) {
  auto config = parse(
      "[[tier]]\n"
      "name = \"small\"\n"
      "kind = \"local\"\n"
      "model = \"absent.gguf\"\n"
      "params = 1e9\n");
  ASSERT_TRUE(config.is_ok()) << config.status().to_string();
  const TierConfig& t = config->tiers[0];
  EXPECT_FALSE(t.price_set);
  EXPECT_NEAR(t.price_in_per_mtok, 0.0056173, 1e-7);
  EXPECT_DOUBLE_EQ(t.price_out_per_mtok, t.price_in_per_mtok);
  // The $/FLOP is configurable.
  auto cheap = parse(
      "[cascade]\nlocal_price_per_flop = 1e-18\n"
      "[[tier]]\nname = \"s\"\nkind = \"local\"\nmodel = \"a.gguf\"\nparams = 1e9\n");
  ASSERT_TRUE(cheap.is_ok());
  EXPECT_NEAR(cheap->tiers[0].price_in_per_mtok, 0.002, 1e-12);
}

TEST(CascadeConfig, RefusesInconsistentTiers) {
  EXPECT_NE(error_of("[[tier]]\nname = \"s\"\nkind = \"local\"\nmodel = \"a.gguf\"\n"
                     "price_in = 0.1\n")
                .find("only one of price_in / price_out"),
            std::string::npos);
  EXPECT_NE(error_of("[[tier]]\nname = \"s\"\nkind = \"local\"\nmodel = \"a.gguf\"\n"
                     "price_in = -0.1\nprice_out = 0.1\n")
                .find("must be a number from 0 to 1e15 (got -0.1)"),
            std::string::npos);
  EXPECT_NE(error_of("[[tier]]\nname = \"r\"\nkind = \"remote\"\nprice_in = 1\nprice_out = 1\n")
                .find("url"),
            std::string::npos);
  EXPECT_NE(error_of("[[tier]]\nname = \"s\"\nkind = \"gpu\"\n").find("\"cache\", \"local\""),
            std::string::npos);
  EXPECT_NE(error_of("[[tier]]\nname = \"a\"\nkind = \"remote\"\nurl = \"http://u\"\nprice_in = 1\n"
                     "price_out = 1\n[[tier]]\nname = \"c\"\nkind = \"cache\"\n")
                .find("must be the first"),
            std::string::npos);
  EXPECT_NE(error_of("[[tier]]\nname = \"a\"\nkind = \"remote\"\nurl = \"http://u\"\nprice_in = 1\n"
                     "price_out = 1\n[[tier]]\nname = \"a\"\nkind = \"remote\"\nurl = \"http://v\"\n"
                     "price_in = 1\nprice_out = 1\n")
                .find("duplicate tier name 'a'"),
            std::string::npos);
  EXPECT_NE(error_of("[[tier]]\nname = \"c\"\nkind = \"cache\"\n").find("no model tier"),
            std::string::npos);
  EXPECT_NE(error_of("[cascade]\nthreshold = 1.5\n").find("[0, 1]"), std::string::npos);
  EXPECT_NE(error_of("[[tier]]\nname = \"c\"\nkind = \"cache\"\nurl = \"x\"\n")
                .find("only applies to remote"),
            std::string::npos);
}

TEST(CascadeConfig, CountsAndNumbersOutOfRangeAreRefusedWithTheRange) {
  const std::string tier = "[[tier]]\nname = \"s\"\nkind = \"local\"\nmodel = \"a.gguf\"\n";
  // A window this long would be allocated whole by early escalation.
  std::string window = error_of("[cascade]\nearly_escalation_window = 1000000000000\n" + tier +
                                "params = 1e9\n");
  EXPECT_NE(window.find("'early_escalation_window' in [cascade] must be an integer from 1 to "
                        "65536 (got 1000000000000)"),
            std::string::npos)
      << window;
  EXPECT_NE(error_of("[cascade]\nmax_tokens = 0\n" + tier + "params = 1e9\n")
                .find("from 1 to 1073741824"),
            std::string::npos);
  std::string params = error_of(tier + "params = 1e300\n");
  EXPECT_NE(params.find("'params' in [[tier]] #1 ('s') must be a number from 0 to 1e15 (got "
                        "1e+300)"),
            std::string::npos)
      << params;
  EXPECT_NE(error_of(tier + "price_in = nan\nprice_out = 1\n").find("from 0 to 1e15"),
            std::string::npos);
}

TEST(CascadeConfig, TheSpeculativeCascadeIsOffUnlessItsMarginIsSet) {
  const std::string tier = "[[tier]]\nname = \"s\"\nkind = \"local\"\nmodel = \"a.gguf\"\n"
                           "params = 1e9\n";
  auto off = parse(tier);
  ASSERT_TRUE(off.is_ok()) << off.status().to_string();
  EXPECT_FALSE(off->speculative_cascade);
  auto on = parse("[cascade]\nspeculative_cascade_alpha = 0.1\n" + tier);
  ASSERT_TRUE(on.is_ok()) << on.status().to_string();
  EXPECT_TRUE(on->speculative_cascade);
  EXPECT_DOUBLE_EQ(on->speculative_cascade_alpha, 0.1);
  EXPECT_NE(error_of("[cascade]\nspeculative_cascade_alpha = 1.5\n" + tier).find("[-1, 1]"),
            std::string::npos);
  EXPECT_NE(error_of("[cascade]\nspeculative_cascade_alpha = \"high\"\n" + tier)
                .find("finite number"),
            std::string::npos);
  EXPECT_NE(error_of("[cascade]\nspeculative_escalation = false\nspeculative_cascade_alpha = 0\n" +
                     tier)
                .find("needs speculative_escalation"),
            std::string::npos);
}

TEST(CascadeConfig, ADraftVocabularyLimitIsReadAndRangeChecked) {
  const std::string tier = "[[tier]]\nname = \"s\"\nkind = \"local\"\nmodel = \"a.gguf\"\n"
                           "params = 1e9\ndraft = \"d.gguf\"\n";
  auto off = parse(tier);
  ASSERT_TRUE(off.is_ok()) << off.status().to_string();
  EXPECT_EQ(off->tiers[0].draft_vocab, 0);
  auto on = parse(tier + "draft_vocab = 65536\n");
  ASSERT_TRUE(on.is_ok()) << on.status().to_string();
  EXPECT_EQ(on->tiers[0].draft_vocab, 65536);
  const std::string bad = error_of(tier + "draft_vocab = -1\n");
  EXPECT_NE(bad.find("'draft_vocab'"), std::string::npos) << bad;
}

TEST(CascadeConfig, ADirectoryOrFifoAsTheConfigIsNamedAsSuch) {
  auto dir = load_cascade_config("/tmp");
  ASSERT_FALSE(dir.is_ok());
  EXPECT_EQ(dir.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(dir.status().message().find("/tmp is a directory, not a regular file"),
            std::string::npos)
      << dir.status().message();
  const std::string fifo = "/tmp/frugal_cascade_config_test_fifo_" + std::to_string(getpid());
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  auto pipe = load_cascade_config(fifo);  // no writer: a blocking open would hang here
  unlink(fifo.c_str());
  ASSERT_FALSE(pipe.is_ok());
  EXPECT_NE(pipe.status().message().find("is a FIFO"), std::string::npos)
      << pipe.status().message();
}

TEST(CascadeConfig, SyntaxErrorsAndMissingFilesAreReported) {
  std::string msg = error_of("[[tier]]\nname = \"s\n");
  EXPECT_NE(msg.find("test.toml:2"), std::string::npos) << msg;
  auto missing = load_cascade_config("/nonexistent/frugal.toml");
  ASSERT_FALSE(missing.is_ok());
  EXPECT_EQ(missing.status().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace frugal::cascade
