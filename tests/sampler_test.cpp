// Sampler: greedy, seeded reproducibility, the filters' effect on what can be drawn, and
// logprobs that agree with a direct log-softmax.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <vector>

#include "engine/sampler.h"

namespace frugal {
namespace {

std::vector<float> logits_from_probs(const std::vector<double>& p) {
  std::vector<float> l;
  for (double v : p) l.push_back(static_cast<float>(std::log(v)));
  return l;
}

TEST(Sampler, GreedyTakesArgmaxAndLowestIdOnTies) {
  Sampler s(SamplingParams{});
  EXPECT_EQ(s.sample(std::vector<float>{0.1f, 3.0f, -1.0f, 2.9f}).id, 1);
  EXPECT_EQ(s.sample(std::vector<float>{5.0f, 1.0f, 5.0f}).id, 0);
}

TEST(Sampler, SameSeedSameTokensDifferentSeedDifferentTokens) {
  std::vector<float> logits(50);
  for (int i = 0; i < 50; ++i) logits[i] = static_cast<float>(std::sin(i * 1.7));
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_p = 1.0f;
  auto draw = [&](uint64_t seed) {
    p.seed = seed;
    Sampler s(p);
    std::vector<int32_t> out;
    for (int i = 0; i < 40; ++i) out.push_back(s.sample(logits).id);
    return out;
  };
  EXPECT_EQ(draw(7), draw(7));
  EXPECT_NE(draw(7), draw(8));
}

TEST(Sampler, TopKTopPAndMinPRestrictTheDraw) {
  // p = 0.5, 0.25, 0.15, 0.07, 0.03
  auto logits = logits_from_probs({0.5, 0.25, 0.15, 0.07, 0.03});
  auto support = [&](SamplingParams p) {
    std::set<int32_t> seen;
    for (uint64_t seed = 0; seed < 400; ++seed) {
      p.seed = seed;
      Sampler s(p);
      seen.insert(s.sample(logits).id);
    }
    return seen;
  };
  SamplingParams base;
  base.temperature = 1.0f;
  EXPECT_EQ(support(base), (std::set<int32_t>{0, 1, 2, 3, 4}));
  SamplingParams k = base;
  k.top_k = 2;
  EXPECT_EQ(support(k), (std::set<int32_t>{0, 1}));
  SamplingParams p = base;
  p.top_p = 0.8f;  // 0.5 + 0.25 = 0.75 < 0.8, so the third token is needed
  EXPECT_EQ(support(p), (std::set<int32_t>{0, 1, 2}));
  SamplingParams m = base;
  m.min_p = 0.2f;  // keeps p >= 0.1
  EXPECT_EQ(support(m), (std::set<int32_t>{0, 1, 2}));
}

TEST(Sampler, TemperatureSharpensTheDistribution) {
  auto logits = logits_from_probs({0.4, 0.35, 0.25});
  auto count_top = [&](float temp) {
    int top = 0;
    for (uint64_t seed = 0; seed < 2000; ++seed) {
      SamplingParams p;
      p.temperature = temp;
      p.seed = seed;
      Sampler s(p);
      top += s.sample(logits).id == 0;
    }
    return top;
  };
  EXPECT_GT(count_top(0.2f), count_top(1.0f) + 400);
}

TEST(Sampler, LogprobsMatchLogSoftmaxAndListTheBest) {
  std::vector<float> logits{1.0f, 4.0f, 2.0f, 3.0f, -2.0f};
  double z = 0;
  for (float l : logits) z += std::exp(l);
  SamplingParams p;
  p.n_logprobs = 3;
  Sampler s(p);
  SampledToken t = s.sample(logits);
  EXPECT_EQ(t.id, 1);
  EXPECT_NEAR(t.logprob, 4.0 - std::log(z), 1e-5);
  ASSERT_EQ(t.top.size(), 3u);
  EXPECT_EQ(t.top[0].id, 1);
  EXPECT_EQ(t.top[1].id, 3);
  EXPECT_EQ(t.top[2].id, 2);
  EXPECT_NEAR(t.top[2].logprob, 2.0 - std::log(z), 1e-5);
}

TEST(Sampler, InvalidParametersAreRefusedWithTheirRange) {
  SamplingParams p;
  p.top_p = 0.0f;
  EXPECT_NE(p.validate().message().find("top_p must be in (0, 1]"), std::string::npos);
  p = {};
  p.temperature = -1.0f;
  EXPECT_EQ(p.validate().code(), ErrorCode::kInvalidArgument);
  p = {};
  p.n_logprobs = 21;
  EXPECT_FALSE(p.validate().is_ok());
}

}  // namespace
}  // namespace frugal
