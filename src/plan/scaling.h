// Model-size economics: the Chinchilla loss fit, training and inference FLOPs and cost, the
// compute-optimal and inference-aware choices of parameters N and training tokens D.
// References: Hoffmann et al. 2022 (arXiv 2203.15556, approach 3 fit); Sardana et al. 2023
// (arXiv 2401.00448, "Beyond Chinchilla-Optimal").
#pragma once

#include <string>
#include <vector>

#include "util/status.h"

namespace frugal::plan {

// L(N, D) = E + A / N^alpha + B / D^beta, loss in nats per token on the fit's data.
struct ChinchillaFit {
  double e = 1.69;
  double a = 406.4;
  double b = 410.7;
  double alpha = 0.34;
  double beta = 0.28;
};
// Hoffmann et al. 2022, approach 3 (parametric fit), as published.
inline constexpr ChinchillaFit kHoffmann2022{};

double chinchilla_loss(const ChinchillaFit& fit, double n_params, double n_tokens);

// Training tokens D at which a model of n_params reaches target_loss. kInvalidArgument when
// the model is too small to reach it at any D (A / N^alpha >= target - E).
Result<double> tokens_for_loss(const ChinchillaFit& fit, double n_params, double target_loss);

// The smallest N that can reach target_loss with unlimited data: A / N^alpha = target - E.
Result<double> min_params_for_loss(const ChinchillaFit& fit, double target_loss);

// Dollar prices of a FLOP. Defaults: $2 per H100-hour at 989e12 dense BF16 FLOP/s, with 40 %
// utilisation in training and 20 % in inference (decoding is memory-bound).
struct FlopPrices {
  double train_per_flop = 2.0 / (3600.0 * 989e12 * 0.4);
  double infer_per_flop = 2.0 / (3600.0 * 989e12 * 0.2);
};
// Price per FLOP from a GPU-hour price, the GPU's peak FLOP/s and the utilisation reached.
double price_per_flop(double gpu_hour_price, double gpu_flops, double utilization);

// Lifetime inference volume.
struct Workload {
  double requests = 0;
  double tokens_per_request = 0;  // prompt + generated tokens, each costs 2·N FLOPs
  double tokens() const { return requests * tokens_per_request; }
};

// The ranges the planner covers. Beyond them the fit means nothing and costs overflow to inf:
// a billion times the largest training run, a quadrillion requests, a loss worse than chance.
inline constexpr double kMaxParams = 1e16;
inline constexpr double kMaxTokens = 1e18;
inline constexpr double kMaxRequests = 1e15;
inline constexpr double kMaxTokensPerRequest = 1e9;
inline constexpr double kMaxPricePerFlop = 1e-6;  // $1000 per GFLOP; clouds charge ~1e-18
inline constexpr double kMaxTargetLoss = 10;

// kInvalidArgument naming the first negative, non-finite, zero-where-forbidden or
// out-of-range value (the k* bounds above), with the range.
Status validate_prices(const FlopPrices& prices);
Status validate_workload(const Workload& workload);
Status validate_target_loss(const ChinchillaFit& fit, double target_loss);
// A model size given by the user: 0 < n_params <= kMaxParams, 0 < n_tokens <= kMaxTokens.
Status validate_size(double n_params, double n_tokens);

// One (N, D) choice with its predicted loss and costs. Training ≈ 6·N·D FLOPs; inference
// ≈ 2·N FLOPs per token.
struct SizeChoice {
  double n_params = 0;
  double n_tokens = 0;
  double tokens_per_param = 0;
  double loss = 0;
  double train_flops = 0;
  double infer_flops = 0;
  double train_cost = 0;
  double infer_cost = 0;
  double total_cost = 0;
};
SizeChoice evaluate_size(const ChinchillaFit& fit, double n_params, double n_tokens,
                         const FlopPrices& prices, const Workload& workload);

// Minimises training FLOPs 6·N·D subject to L(N, D) = target_loss. Closed form: at the
// optimum alpha·A/N^alpha = beta·B/D^beta, so the two terms split (target - E) in the ratio
// beta : alpha. This and the next two refuse (kInvalidArgument) a choice beyond kMaxParams or
// kMaxTokens, or whose cost is not finite.
Result<SizeChoice> compute_optimal_for_loss(const ChinchillaFit& fit, double target_loss,
                                            const FlopPrices& prices, const Workload& workload);

// D = tokens_per_param · N with L = target_loss (the "20 tokens per parameter" rule of thumb).
Result<SizeChoice> fixed_ratio_for_loss(const ChinchillaFit& fit, double target_loss,
                                        double tokens_per_param, const FlopPrices& prices,
                                        const Workload& workload);

// Minimises train_per_flop·6·N·D + infer_per_flop·2·N·tokens subject to L(N, D) =
// target_loss: a one-dimensional search over log N between the smallest feasible N and the
// compute-optimal N (the inference term only grows with N, so the optimum is never larger).
// max_tokens > 0 caps the training data (what exists): N then cannot fall below the size
// that reaches the loss on max_tokens. kInvalidArgument when the cap makes the loss
// unreachable.
Result<SizeChoice> inference_aware_for_loss(const ChinchillaFit& fit, double target_loss,
                                            const FlopPrices& prices, const Workload& workload,
                                            double max_tokens = 0);

// Smallest N that reaches target_loss on at most max_tokens training tokens.
Result<double> min_params_for_data(const ChinchillaFit& fit, double target_loss,
                                   double max_tokens);

// Published training configurations whose loss can serve as a target.
struct ReferenceModel {
  std::string name;  // "chinchilla-70b"
  double n_params;
  double n_tokens;
};
const std::vector<ReferenceModel>& reference_models();
// kNotFound listing the known names.
Result<ReferenceModel> find_reference_model(const std::string& name);

// Parses "3e9", "600B", "1.4T", "70M", "7k" (k, M, B or G, T suffixes; case-insensitive
// except that "m" means million). kInvalidArgument on anything else.
Result<double> parse_count(const std::string& text);

}  // namespace frugal::plan
