// `frugal plan`: Chinchilla economics, KV-cache memory and cascade break-even against figures
// computed by hand, input validation, and `plan memory --json` through the real binary.
#include <gtest/gtest.h>

#include <cctype>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cascade/config.h"
#include "plan/cascade_plan.h"
#include "plan/memory.h"
#include "plan/scaling.h"
#include "test_shell.h"

namespace frugal::plan {
namespace {

const ChinchillaFit& kFit = kHoffmann2022;

// Default prices: $2 per GPU-hour at 989e12 FLOP/s, 40 % utilisation in training and 20 % in
// inference: 2 / (3600 · 989e12 · 0.4) = 1.40434e-18 $/FLOP, and twice that, 2.80867e-18.
TEST(PlanSize, DefaultPricesComeFromTheStatedGpu) {
  FlopPrices p;
  EXPECT_NEAR(p.train_per_flop, 1.40434e-18, 1e-22);
  EXPECT_NEAR(p.infer_per_flop, 2.80867e-18, 1e-22);
  EXPECT_DOUBLE_EQ(price_per_flop(2.0, 989e12, 0.4), p.train_per_flop);
}

// By hand, L = 1.69 + 406.4 / N^0.34 + 410.7 / D^0.28:
//   3B on 600B:  N^0.34 = 1668.10 -> 0.24363;  D^0.28 = 1985.56 -> 0.20684;  L = 2.14047
//   10B on 200B: N^0.34 = 2511.89 -> 0.16179;  D^0.28 = 1459.78 -> 0.28134;  L = 2.13313
// The two differ by 0.0073: the small model bought its quality with data.
TEST(PlanSize, SmallModelOnMoreDataMatchesLargerModelsLoss) {
  double small = chinchilla_loss(kFit, 3e9, 600e9);
  double large = chinchilla_loss(kFit, 10e9, 200e9);
  EXPECT_NEAR(small, 2.14047, 5e-5);
  EXPECT_NEAR(large, 2.13313, 5e-5);
  EXPECT_LT(std::abs(small - large), 0.01);
}

// At 100B requests of 1000 tokens (1e14 tokens) and the default prices:
//   3B/600B:  training 6·3e9·600e9 = 1.08e22 FLOPs -> $15,167; inference 2·3e9·1e14 = 6e23
//             FLOPs -> $1,685,204; total $1,700,371.
//   10B/200B: training 1.2e22 -> $16,852; inference 2e24 -> $5,617,346; total $5,634,198.
TEST(PlanSize, SmallModelIsFarCheaperAtHundredBillionRequests) {
  Workload w{100e9, 1000};
  SizeChoice small = evaluate_size(kFit, 3e9, 600e9, FlopPrices{}, w);
  SizeChoice large = evaluate_size(kFit, 10e9, 200e9, FlopPrices{}, w);
  EXPECT_NEAR(small.train_cost, 15167, 1);
  EXPECT_NEAR(small.infer_cost, 1685204, 2);
  EXPECT_NEAR(small.total_cost, 1700371, 2);
  EXPECT_NEAR(large.total_cost, 5634198, 2);
  EXPECT_LT(small.total_cost, 0.35 * large.total_cost);
}

// Compute-optimal for the 10B/200B loss (2.13313): with c = L - E = 0.44313 the optimum splits
// c as beta : alpha between the parameter and data terms: A/N^0.34 = c·0.28/0.62 = 0.200125
// and B/D^0.28 = c·0.34/0.62 = 0.243009, so N = (406.4/0.200125)^(1/0.34) = 5.3504e9 and
// D = (410.7/0.243009)^(1/0.28) = 3.3746e11: 63.07 tokens per parameter.
// Note: Hoffmann's approach-3 constants as published imply ~40-90 tokens per parameter over
// 1B-70B scales, not the "20 tokens per parameter" of their approaches 1 and 2 (a known
// inconsistency, Besiroglu et al. 2024); `plan size` therefore also prints the 20:1 rule.
TEST(PlanSize, ComputeOptimalMatchesClosedFormAndMinimisesTrainingFlops) {
  double target = chinchilla_loss(kFit, 10e9, 200e9);
  auto opt = compute_optimal_for_loss(kFit, target, FlopPrices{}, Workload{});
  ASSERT_TRUE(opt.is_ok()) << opt.status().to_string();
  EXPECT_NEAR(opt->n_params / 5.3504e9, 1, 1e-4);
  EXPECT_NEAR(opt->n_tokens / 3.3746e11, 1, 1e-4);
  EXPECT_NEAR(opt->tokens_per_param, 63.07, 0.01);
  EXPECT_NEAR(opt->loss, target, 1e-9);
  // Any other point on the same loss curve trains with more FLOPs.
  for (double scale : {0.8, 0.95, 1.05, 1.25}) {
    double n = opt->n_params * scale;
    auto d = tokens_for_loss(kFit, n, target);
    ASSERT_TRUE(d.is_ok());
    EXPECT_GT(6 * n * *d, opt->train_flops) << "scale " << scale;
  }
}

TEST(PlanSize, TwentyTokensPerParamRuleReachesTheTarget) {
  double target = chinchilla_loss(kFit, 70e9, 1.4e12);  // Chinchilla itself: 1.93665
  EXPECT_NEAR(target, 1.93665, 5e-5);
  auto rule = fixed_ratio_for_loss(kFit, target, 20, FlopPrices{}, Workload{});
  ASSERT_TRUE(rule.is_ok());
  EXPECT_NEAR(rule->tokens_per_param, 20, 1e-9);
  EXPECT_NEAR(rule->loss, target, 1e-9);
  // Chinchilla was trained at 20:1, so the rule recovers its size.
  EXPECT_NEAR(rule->n_params / 70e9, 1, 1e-6);
}

TEST(PlanSize, InferenceAwareOptimumShrinksTheModelUnderHeavyTraffic) {
  double target = chinchilla_loss(kFit, 10e9, 200e9);
  Workload heavy{100e9, 1000};
  auto opt = compute_optimal_for_loss(kFit, target, FlopPrices{}, heavy);
  auto aware = inference_aware_for_loss(kFit, target, FlopPrices{}, heavy);
  ASSERT_TRUE(opt.is_ok() && aware.is_ok());
  EXPECT_LT(aware->n_params, 0.5 * opt->n_params);
  EXPECT_GT(aware->tokens_per_param, opt->tokens_per_param);
  EXPECT_NEAR(aware->loss, target, 1e-9);
  EXPECT_LT(aware->total_cost, opt->total_cost);
  // It is a minimum: moving N either way along the loss curve costs more.
  for (double scale : {0.97, 1.03}) {
    double n = aware->n_params * scale;
    auto d = tokens_for_loss(kFit, n, target);
    ASSERT_TRUE(d.is_ok());
    EXPECT_GT(evaluate_size(kFit, n, *d, FlopPrices{}, heavy).total_cost, aware->total_cost);
  }
}

// Unconstrained, the heavy-traffic optimum trains on ~15T tokens; capped at 1T tokens the cap
// binds, so the optimum sits exactly on it (a larger model than the uncapped one).
TEST(PlanSize, DataCapBindsTheInferenceAwareOptimum) {
  double target = chinchilla_loss(kFit, 10e9, 200e9);
  Workload heavy{100e9, 1000};
  auto free = inference_aware_for_loss(kFit, target, FlopPrices{}, heavy);
  auto capped = inference_aware_for_loss(kFit, target, FlopPrices{}, heavy, 1e12);
  ASSERT_TRUE(free.is_ok() && capped.is_ok());
  EXPECT_GT(free->n_tokens, 1e12);
  EXPECT_NEAR(capped->n_tokens / 1e12, 1, 1e-6);
  EXPECT_GT(capped->n_params, free->n_params);
  EXPECT_NEAR(capped->loss, target, 1e-9);
  // 1B tokens cannot reach this loss at any size.
  EXPECT_FALSE(inference_aware_for_loss(kFit, target, FlopPrices{}, heavy, 1e9).is_ok());
}

TEST(PlanSize, InferenceAwareEqualsComputeOptimalWithoutTraffic) {
  double target = chinchilla_loss(kFit, 10e9, 200e9);
  auto opt = compute_optimal_for_loss(kFit, target, FlopPrices{}, Workload{});
  auto aware = inference_aware_for_loss(kFit, target, FlopPrices{}, Workload{});
  ASSERT_TRUE(opt.is_ok() && aware.is_ok());
  EXPECT_NEAR(aware->n_params / opt->n_params, 1, 1e-3);
  EXPECT_NEAR(aware->train_cost / opt->train_cost, 1, 1e-6);
}

TEST(PlanSize, RefusesBadInputsWithReasons) {
  auto low = compute_optimal_for_loss(kFit, 1.5, FlopPrices{}, Workload{});
  ASSERT_FALSE(low.is_ok());
  EXPECT_NE(low.status().message().find("irreducible"), std::string::npos);
  auto neg_requests = inference_aware_for_loss(kFit, 2.2, FlopPrices{}, Workload{-5, 1000});
  ASSERT_FALSE(neg_requests.is_ok());
  EXPECT_EQ(neg_requests.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(neg_requests.status().message().find("requests"), std::string::npos);
  FlopPrices bad;
  bad.train_per_flop = -1e-18;
  auto neg_price = compute_optimal_for_loss(kFit, 2.2, bad, Workload{});
  ASSERT_FALSE(neg_price.is_ok());
  EXPECT_NE(neg_price.status().message().find("training price"), std::string::npos);
  // 100M parameters cannot reach the loss of a 10B model with any amount of data.
  EXPECT_FALSE(tokens_for_loss(kFit, 100e6, 2.13).is_ok());
}

TEST(PlanSize, ParsesCountsWithSuffixes) {
  EXPECT_DOUBLE_EQ(*parse_count("3B"), 3e9);
  EXPECT_DOUBLE_EQ(*parse_count("600B"), 600e9);
  EXPECT_DOUBLE_EQ(*parse_count("1.4T"), 1.4e12);
  EXPECT_DOUBLE_EQ(*parse_count("70M"), 70e6);
  EXPECT_DOUBLE_EQ(*parse_count("1e11"), 1e11);
  EXPECT_FALSE(parse_count("3X").is_ok());
  EXPECT_FALSE(parse_count("abc").is_ok());
  EXPECT_TRUE(find_reference_model("chinchilla-70b").is_ok());
  EXPECT_FALSE(find_reference_model("gpt-9").is_ok());
}

// Llama-2-70B: 80 layers, 64 query heads of dimension 128, 8 KV heads.
ModelDims llama2_70b(int64_t n_head_kv) {
  ModelDims d;
  d.name = "llama-2-70b";
  d.n_layer = 80;
  d.n_head = 64;
  d.n_head_kv = n_head_kv;
  d.head_dim_k = 128;
  d.head_dim_v = 128;
  d.n_ctx_train = 4096;
  return d;
}

// 2 · 80 · 64 · 128 · 2 bytes = 2,621,440 B = 2.6 MB per token with 64 KV heads at FP16;
// with the real 8 KV heads 327,680 B = 0.33 MB; at q8_0 (34 bytes per 32) 174,080 B.
TEST(PlanMemory, Llama2_70bKvBytesPerToken) {
  EXPECT_DOUBLE_EQ(kv_bytes_per_token(llama2_70b(64), 64, 2.0), 2621440.0);
  EXPECT_DOUBLE_EQ(kv_bytes_per_token(llama2_70b(8), 8, 2.0), 327680.0);
  EXPECT_DOUBLE_EQ(*kv_bytes_per_element("q8_0"), 34.0 / 32.0);
  EXPECT_DOUBLE_EQ(kv_bytes_per_token(llama2_70b(8), 8, *kv_bytes_per_element("q8_0")), 174080.0);
  EXPECT_DOUBLE_EQ(*kv_bytes_per_element("f32"), 4.0);
  EXPECT_DOUBLE_EQ(*kv_bytes_per_element("bf16"), 2.0);
  EXPECT_FALSE(kv_bytes_per_element("q4_K").is_ok());
}

// 69e9 f16 weights = 138 GB. A 160 GB budget leaves 22 GB; a 4096-token sequence with 8 KV
// heads takes 327,680 · 4096 = 1.342 GB, so 16 fit (16.39). With MHA (10.74 GB each) 2 fit;
// with MQA (167.8 MB each) 131.
TEST(PlanMemory, ConcurrentSequencesInABudget) {
  ModelMemorySource source;
  source.dims = llama2_70b(8);
  source.weights.push_back(*weights_of_type(69e9, "f16"));
  MemoryPlanOptions options;
  options.budget_bytes = 160e9;
  auto plan = plan_memory(source, options);
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  EXPECT_DOUBLE_EQ(plan->weight_bytes, 138e9);
  EXPECT_EQ(plan->context, 4096);
  EXPECT_DOUBLE_EQ(plan->kv_bytes_per_sequence, 327680.0 * 4096);
  EXPECT_EQ(plan->max_sequences, 16);
  ASSERT_EQ(plan->variants.size(), 3u);
  EXPECT_EQ(plan->variants[0].label, "MHA");
  EXPECT_EQ(plan->variants[0].max_sequences, 2);
  EXPECT_EQ(plan->variants[1].label, "GQA");
  EXPECT_TRUE(plan->variants[1].is_model);
  EXPECT_EQ(plan->variants[2].label, "MQA");
  EXPECT_EQ(plan->variants[2].max_sequences, 131);
  // The default 80 GB budget cannot even hold the weights.
  options.budget_bytes = 80e9;
  EXPECT_EQ(plan_memory(source, options)->max_sequences, 0);
}

TEST(PlanMemory, RefusesInconsistentDimensions) {
  ModelMemorySource source;
  source.dims = llama2_70b(7);  // 7 does not divide 64
  auto plan = plan_memory(source, MemoryPlanOptions{});
  ASSERT_FALSE(plan.is_ok());
  EXPECT_NE(plan.status().message().find("must divide n_head"), std::string::npos);
  source.dims = llama2_70b(8);
  source.dims.n_layer = -80;
  EXPECT_FALSE(plan_memory(source, MemoryPlanOptions{}).is_ok());
  source.dims = llama2_70b(8);
  MemoryPlanOptions bad;
  bad.budget_bytes = -1;
  EXPECT_FALSE(plan_memory(source, bad).is_ok());
  bad = MemoryPlanOptions{};
  bad.kv_type = "q3_K";
  EXPECT_FALSE(plan_memory(source, bad).is_ok());
  EXPECT_FALSE(weights_of_type(-5, "f16").is_ok());
}

// --- a small GGUF written byte by byte (spec: ggml docs/gguf.md, version 3) ---------------

class GgufBuilder {
 public:
  void kv_string(const std::string& key, const std::string& v) {
    str(key);
    u32(8);
    str(v);
    ++n_kv_;
  }
  void kv_u32(const std::string& key, uint32_t v) {
    str(key);
    u32(4);
    u32(v);
    ++n_kv_;
  }
  // shape in GGUF order; type id and element bytes per block as in ggml.
  void tensor(const std::string& name, std::vector<uint64_t> shape, uint32_t type,
              uint64_t n_bytes) {
    tensors_.push_back({name, shape, type, n_bytes});
  }
  std::vector<uint8_t> build() {
    std::vector<uint8_t> kv = std::move(buf_);
    buf_.clear();
    raw("GGUF", 4);
    u32(3);
    u64(tensors_.size());
    u64(n_kv_);
    buf_.insert(buf_.end(), kv.begin(), kv.end());
    uint64_t offset = 0;
    for (const Tensor& t : tensors_) {
      str(t.name);
      u32(static_cast<uint32_t>(t.shape.size()));
      for (uint64_t d : t.shape) u64(d);
      u32(t.type);
      u64(offset);
      offset += (t.n_bytes + 31) / 32 * 32;
    }
    while (buf_.size() % 32 != 0) buf_.push_back(0);
    buf_.resize(buf_.size() + offset, 0);
    return buf_;
  }

 private:
  struct Tensor {
    std::string name;
    std::vector<uint64_t> shape;
    uint32_t type;
    uint64_t n_bytes;
  };
  void raw(const void* p, size_t n) {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    buf_.insert(buf_.end(), b, b + n);
  }
  void u32(uint32_t v) { raw(&v, 4); }
  void u64(uint64_t v) { raw(&v, 8); }
  void str(const std::string& s) {
    u64(s.size());
    raw(s.data(), s.size());
  }
  std::vector<uint8_t> buf_;
  std::vector<Tensor> tensors_;
  uint64_t n_kv_ = 0;
};

// A toy llama: 2 layers, 4 heads of 4 (n_embd 16), 2 KV heads, context 64; weights: one f32
// [16, 8] (512 B), two f16 [16, 16] (512 B each), one q8_0 [32, 2] (2 blocks, 68 B).
std::string write_toy_gguf() {
  GgufBuilder b;
  b.kv_string("general.architecture", "llama");
  b.kv_string("general.name", "toy");
  b.kv_u32("llama.block_count", 2);
  b.kv_u32("llama.attention.head_count", 4);
  b.kv_u32("llama.attention.head_count_kv", 2);
  b.kv_u32("llama.embedding_length", 16);
  b.kv_u32("llama.context_length", 64);
  b.tensor("token_embd.weight", {16, 8}, 0, 512);
  b.tensor("blk.0.attn_q.weight", {16, 16}, 1, 512);
  b.tensor("blk.1.attn_q.weight", {16, 16}, 1, 512);
  b.tensor("output.weight", {32, 2}, 8, 68);
  std::vector<uint8_t> bytes = b.build();
  std::string path = testing::TempDir() + "/plan_toy.gguf";
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
  return path;
}

TEST(PlanMemory, ReadsDimensionsAndWeightTypesFromGguf) {
  auto source = read_gguf_memory_source(write_toy_gguf());
  ASSERT_TRUE(source.is_ok()) << source.status().to_string();
  EXPECT_EQ(source->dims.n_layer, 2);
  EXPECT_EQ(source->dims.n_head_kv, 2);
  EXPECT_EQ(source->dims.head_dim_k, 4);
  EXPECT_EQ(source->dims.n_ctx_train, 64);
  ASSERT_EQ(source->weights.size(), 3u);
  EXPECT_EQ(source->weights[0].type, "f16");  // largest first
  EXPECT_EQ(source->weights[0].n_tensors, 2);
  EXPECT_DOUBLE_EQ(source->weights[0].bytes, 1024);
  EXPECT_EQ(source->weights[2].type, "q8_0");
  EXPECT_DOUBLE_EQ(source->weights[2].bytes, 68);
  // KV: 2 · 2 layers · 2 KV heads · 4 · 2 bytes = 64 bytes per token.
  auto plan = plan_memory(*source, MemoryPlanOptions{});
  ASSERT_TRUE(plan.is_ok());
  EXPECT_DOUBLE_EQ(plan->kv_bytes_per_token, 64);
  EXPECT_DOUBLE_EQ(plan->kv_bytes_per_sequence, 64 * 64);
}

// --- cascade economics ----------------------------------------------------------------------

// small: $0.10 / $0.20 per million in / out; large: $1 / $3. At 500 tokens in, 200 out:
// c1 = (500·0.1 + 200·0.2) / 1e6 = 9e-5 $; c2 = (500·1 + 200·3) / 1e6 = 1.1e-3 $.
// Break-even r* = 1 - c1/c2 = 1 - 0.081818 = 0.918182. At r = 0.2: cascade = 9e-5 + 0.2·1.1e-3
// = 3.1e-4 $ (a 71.8 % saving); with a 30 % cache hit rate: 0.7 · 3.1e-4 = 2.17e-4 $.
cascade::CascadeConfig two_tier_config() {
  auto config = cascade::parse_cascade_config(R"(
[[tier]]
name = "cache"
kind = "cache"
latency_ms_fixed = 2
[[tier]]
name = "small"
kind = "local"
model = "small.gguf"
price_in = 0.1
price_out = 0.2
latency_ms_per_token = 10
latency_ms_fixed = 50
[[tier]]
name = "large"
kind = "remote"
url = "http://large:8000/v1"
price_in = 1.0
price_out = 3.0
latency_ms_per_token = 30
latency_ms_fixed = 200
)",
                                              "test.toml", "/nowhere");
  CHECK(config.is_ok(), "%s", config.status().to_string().c_str());
  return *config;
}

TEST(PlanCascade, BreakEvenAndCostsMatchHandComputation) {
  CascadeInputs in;
  in.escalation_rate = 0.2;
  auto e = cascade_economics(two_tier_config(), in);
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  EXPECT_NEAR(e->tier1_cost, 9e-5, 1e-12);
  EXPECT_NEAR(e->top_only_cost, 1.1e-3, 1e-12);
  EXPECT_NEAR(e->cascade_cost, 3.1e-4, 1e-12);
  EXPECT_NEAR(e->saving_vs_top_only, 0.718182, 1e-6);
  EXPECT_NEAR(e->break_even_escalation_rate, 0.918182, 1e-6);
  // At the break-even rate the two deployments cost the same.
  in.escalation_rate = e->break_even_escalation_rate;
  EXPECT_NEAR(cascade_economics(two_tier_config(), in)->cascade_cost, 1.1e-3, 1e-12);
  in.escalation_rate = 0.2;
  in.cache_hit_rate = 0.3;
  EXPECT_NEAR(cascade_economics(two_tier_config(), in)->cascade_cost, 2.17e-4, 1e-12);
}

// Latency paths at 200 tokens out: cache 2 ms; tier 1 only 2 + 50 + 10·200 = 2052 ms;
// escalated 2052 + 200 + 30·200 = 8252 ms. With h = 0.3, r = 0.2 the probabilities are
// 0.3, 0.56, 0.14 and the mean 0.6 + 1149.12 + 1155.28 = 2305 ms.
TEST(PlanCascade, LatencyMix) {
  CascadeInputs in;
  in.escalation_rate = 0.2;
  in.cache_hit_rate = 0.3;
  auto e = cascade_economics(two_tier_config(), in);
  ASSERT_TRUE(e.is_ok());
  EXPECT_NEAR(e->paths[0].probability, 0.3, 1e-12);
  EXPECT_NEAR(e->paths[1].probability, 0.56, 1e-12);
  EXPECT_NEAR(e->paths[2].probability, 0.14, 1e-12);
  EXPECT_NEAR(e->paths[1].latency_ms, 2052, 1e-9);
  EXPECT_NEAR(e->paths[2].latency_ms, 8252, 1e-9);
  EXPECT_NEAR(e->mean_latency_ms, 2305.0, 1e-9);
}

TEST(PlanCascade, RefusesBadRates) {
  CascadeInputs in;
  in.escalation_rate = 1.5;
  EXPECT_FALSE(cascade_economics(two_tier_config(), in).is_ok());
  in.escalation_rate = 0.2;
  in.tokens_in = -1;
  EXPECT_FALSE(cascade_economics(two_tier_config(), in).is_ok());
}

TEST(PlanCascade, ReadsEscalationRateFromEvalJson) {
  std::string path = testing::TempDir() + "/plan_eval.json";
  std::ofstream(path) << R"({"cascade": {"escalation_rate": 0.25, "cache_hit_rate": 0.1},
                            "tiers": []})";
  auto rates = read_eval_rates(path);
  ASSERT_TRUE(rates.is_ok()) << rates.status().to_string();
  EXPECT_DOUBLE_EQ(rates->escalation_rate, 0.25);
  EXPECT_TRUE(rates->has_cache_hit_rate);
  std::ofstream(path) << R"({"tiers": []})";
  auto missing = read_eval_rates(path);
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("escalation_rate"), std::string::npos);
}

// --- the binary end to end --------------------------------------------------------------------

using RunResult = test::CommandOutput;

RunResult run_frugal(const std::string& args) { return test::run_frugal(args, true); }

TEST(PlanCli, MemoryJsonEndToEnd) {
  RunResult r = run_frugal(
      "plan memory --n-layer 80 --n-head 64 --n-head-kv 8 --head-dim 128 --context 4096 "
      "--params 69e9 --budget-gb 160 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["kv_bytes_per_token"].get<double>(), 327680.0);
  EXPECT_EQ(j["max_sequences"].get<int64_t>(), 16);
  EXPECT_EQ(j["attention_variants"][0]["kv_bytes_per_token"].get<double>(), 2621440.0);

  RunResult g = run_frugal("plan memory --gguf " + write_toy_gguf() + " --json");
  ASSERT_EQ(g.exit_code, 0) << g.out;
  EXPECT_EQ(nlohmann::json::parse(g.out)["kv_bytes_per_token"].get<double>(), 64.0);
}

TEST(PlanCli, SizeAndCompareJson) {
  RunResult r = run_frugal("plan size --ref-params 10B --ref-tokens 200B --requests 100B --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_NEAR(j["target_loss"].get<double>(), 2.13313, 5e-5);
  EXPECT_DOUBLE_EQ(j["fit"]["alpha"].get<double>(), 0.34);
  EXPECT_NEAR(j["compute_optimal"]["tokens_per_param"].get<double>(), 63.07, 0.01);
  EXPECT_LT(j["inference_aware"]["params"].get<double>(),
            j["compute_optimal"]["params"].get<double>());
  EXPECT_GT(j["saving_vs_compute_optimal"].get<double>(), 0);

  RunResult c = run_frugal("plan compare 3B:600B 10B:200B --requests 100B --json");
  ASSERT_EQ(c.exit_code, 0) << c.out;
  nlohmann::json cj = nlohmann::json::parse(c.out);
  ASSERT_EQ(cj["configs"].size(), 2u);
  EXPECT_NEAR(cj["configs"][0]["loss"].get<double>(), 2.14047, 5e-5);
  EXPECT_NEAR(cj["configs"][1]["total_vs_first"].get<double>(), 5634198.0 / 1700371.0, 1e-4);
}

// frugal.toml: small $0.05 / $0.10, large $0.50 / $1.50 per million tokens. At 500 in, 200 out
// c1 = 4.5e-5, c2 = 5.5e-4. The eval file says r = 0.3, h = 0.25: the cascade costs
// 0.75 · (4.5e-5 + 0.3 · 5.5e-4) = 1.575e-4 $ per query, $157.5 per million.
TEST(PlanCli, CascadeReadsEvalResult) {
  std::string eval = testing::TempDir() + "/plan_cli_eval.json";
  std::ofstream(eval) << R"({"cascade": {"escalation_rate": 0.3, "cache_hit_rate": 0.25}})";
  RunResult r = run_frugal("plan cascade --config " + std::string(FRUGAL_SOURCE_DIR) +
                           "/frugal.toml --eval " + eval + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_NEAR(j["cascade"]["cost_per_million"].get<double>(), 157.5, 1e-9);
  EXPECT_NEAR(j["top_only"]["cost_per_million"].get<double>(), 550, 1e-9);
  EXPECT_NEAR(j["break_even_escalation_rate"].get<double>(), 1 - 4.5e-5 / 5.5e-4, 1e-12);
}

TEST(PlanSize, RefusesTargetsAndVolumesOutsideTheCoveredRange) {
  auto near_e = compute_optimal_for_loss(kFit, 1.6900001, FlopPrices{}, Workload{});
  ASSERT_FALSE(near_e.is_ok());
  EXPECT_NE(near_e.status().message().find("beyond the 1e+16 parameters"), std::string::npos)
      << near_e.status().message();
  EXPECT_FALSE(validate_target_loss(kFit, 1e100).is_ok());
  auto huge = inference_aware_for_loss(kFit, 2.2, FlopPrices{}, Workload{1e300, 1000});
  ASSERT_FALSE(huge.is_ok());
  EXPECT_NE(huge.status().message().find("lifetime requests 1e+300 is more than 1e+15"),
            std::string::npos)
      << huge.status().message();
  EXPECT_FALSE(validate_size(1e300, 1e12).is_ok());
  EXPECT_FALSE(validate_size(1e9, 0).is_ok());
  EXPECT_TRUE(validate_size(7e9, 2e12).is_ok());
}

// Extreme inputs either give a plan of finite numbers or a refusal that says what to fix:
// never "$infT", "-nan %" or a 100-digit loss with exit 0.
TEST(PlanCli, ExtremeInputsAreRefusedNotPrintedAsInfOrNan) {
  const std::string config = std::string(FRUGAL_SOURCE_DIR) + "/frugal.toml";
  const std::vector<std::string> cases = {
      "plan size --loss 1.6900001 --requests 1e9",
      "plan size --loss 1e100 --requests 1e9",
      "plan size --ref llama2-7b --requests 1e300",
      "plan size --ref llama2-7b --requests 1e9 --tokens-per-request 1e300",
      "plan size --ref llama2-7b --requests 1e9 --gpu-flops 1e-300",
      "plan size --ref llama2-7b --requests 1e9 --gpu-hour-price 1e300",
      "plan size --ref llama2-7b --requests 1e9 --train-price-per-flop 1e300",
      "plan size --ref llama2-7b --requests 1e9 --max-tokens 1e300",
      "plan size --ref-params 1e300 --ref-tokens 1e300 --requests 1",
      "plan compare 1e300:1e300 --requests 1",
      "plan compare 1:1 --requests 1",
      "plan memory --n-layer 1000000000000 --n-head 4 --head-dim 4",
      "plan memory --n-layer 4 --n-head 4 --head-dim 4 --params 1e300",
      "plan memory --n-layer 4 --n-head 4 --head-dim 4 --budget-gb 1e300",
      "plan cascade --config " + config + " --escalation-rate 0.5 --tokens-in 1e308",
      "plan cascade --config " + config + " --escalation-rate nan",
  };
  for (const std::string& c : cases) {
    RunResult r = run_frugal(c);
    EXPECT_TRUE(r.exit_code == 0 || r.exit_code == 2) << c << "\n" << r.out;
    for (const std::string bad : {"inf", "nan", "NaN"}) {
      if (r.exit_code != 0) break;  // a refusal may quote the input it refuses
      // As a word ("$infT", "-nan %"), not inside "inference" or "information".
      for (size_t at = r.out.find(bad); at != std::string::npos; at = r.out.find(bad, at + 1)) {
        const size_t end = at + bad.size();
        const bool word = (at == 0 || !std::isalpha(static_cast<unsigned char>(r.out[at - 1]))) &&
                          (end == r.out.size() || !std::islower(static_cast<unsigned char>(r.out[end])));
        EXPECT_FALSE(word) << c << " printed " << bad << ":\n" << r.out;
      }
    }
    EXPECT_LT(r.out.size(), 4000u) << c;
    if (r.exit_code == 2) EXPECT_LT(r.out.size(), 400u) << "a refusal is one line: " << r.out;
  }
}

TEST(PlanCli, AnUnknownWeightTypeIsRefusedEvenWhereItWouldBeUnused) {
  RunResult typo = run_frugal("plan memory --n-layer 4 --n-head 4 --head-dim 4 --params 1e9 "
                              "--weight-type q9");
  EXPECT_EQ(typo.exit_code, 2);
  EXPECT_NE(typo.out.find("unknown weight type 'q9'"), std::string::npos) << typo.out;
  RunResult unused = run_frugal("plan memory --gguf " + write_toy_gguf() + " --weight-type q9");
  EXPECT_EQ(unused.exit_code, 2);
  EXPECT_NE(unused.out.find("unknown weight type 'q9'"), std::string::npos) << unused.out;
  RunResult ignored = run_frugal("plan memory --gguf " + write_toy_gguf() + " --weight-type q8_0");
  EXPECT_EQ(ignored.exit_code, 2);
  EXPECT_NE(ignored.out.find("give --params too"), std::string::npos) << ignored.out;
}

TEST(PlanCli, ADirectoryAsTheEvalResultIsRefusedNotThrown) {
  RunResult r = run_frugal("plan cascade --config " + std::string(FRUGAL_SOURCE_DIR) +
                           "/frugal.toml --eval " + testing::TempDir());
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("is a directory, not a regular file"), std::string::npos) << r.out;
}

TEST(PlanCli, BadInputExitsWithTwoAndSaysWhatToFix) {
  RunResult r = run_frugal("plan memory --n-layer 80 --n-head 64 --n-head-kv 7 --head-dim 128");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("must divide n_head"), std::string::npos) << r.out;
  RunResult s = run_frugal("plan size --loss 2.1 --requests -5");
  EXPECT_EQ(s.exit_code, 2);
  EXPECT_NE(s.out.find("requests"), std::string::npos) << s.out;
}

}  // namespace
}  // namespace frugal::plan
