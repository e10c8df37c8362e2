// Chinchilla loss fit, FLOP costs and the compute-optimal / inference-aware size choices.
#include "plan/scaling.h"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <functional>

namespace frugal::plan {

namespace {

std::string fmt_num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.8g", v);
  return buf;
}

Status require_non_negative(const char* what, double v) {
  if (!std::isfinite(v)) return invalid_argument(std::string(what) + " must be a finite number");
  if (v < 0) return invalid_argument(std::string(what) + " must be >= 0 (got " + fmt_num(v) + ")");
  return Status::ok();
}

Status require_positive(const char* what, double v) {
  if (!std::isfinite(v)) return invalid_argument(std::string(what) + " must be a finite number");
  if (v <= 0) return invalid_argument(std::string(what) + " must be > 0 (got " + fmt_num(v) + ")");
  return Status::ok();
}

// `v` in [0, max]: beyond it the arithmetic leaves the range where the fit means anything,
// and products overflow to inf.
Status require_at_most(const char* what, double v, double max) {
  FRUGAL_RETURN_IF_ERROR(require_non_negative(what, v));
  if (v > max) {
    return invalid_argument(std::string(what) + " " + fmt_num(v) + " is more than " +
                            fmt_num(max) + ", the most this planner covers");
  }
  return Status::ok();
}

// A choice whose size is past kMaxParams / kMaxTokens is not a plan anyone can act on, and
// its costs print as inf.
Status check_choice(const char* what, double target_loss, const SizeChoice& c) {
  if (!(c.n_params <= kMaxParams) || !(c.n_tokens <= kMaxTokens) ||
      !std::isfinite(c.total_cost)) {
    return invalid_argument("target loss " + fmt_num(target_loss) + " needs " +
                            fmt_num(c.n_params) + " parameters on " + fmt_num(c.n_tokens) +
                            " tokens (" + what + "), beyond the " + fmt_num(kMaxParams) +
                            " parameters and " + fmt_num(kMaxTokens) +
                            " tokens this planner covers; aim for a higher loss");
  }
  return Status::ok();
}

// Minimum of a function of x on [lo, hi]: a grid scan finds the bracket, golden-section
// search narrows it. The functions searched here are smooth and unimodal in log N.
double minimize_1d(const std::function<double(double)>& f, double lo, double hi) {
  constexpr int kGrid = 400;
  int best = 0;
  double best_v = f(lo);
  for (int i = 1; i <= kGrid; ++i) {
    double v = f(lo + (hi - lo) * i / kGrid);
    if (v < best_v) {
      best_v = v;
      best = i;
    }
  }
  double a = lo + (hi - lo) * std::max(0, best - 1) / kGrid;
  double b = lo + (hi - lo) * std::min(kGrid, best + 1) / kGrid;
  const double kInvPhi = (std::sqrt(5.0) - 1) / 2;
  double c = b - kInvPhi * (b - a);
  double d = a + kInvPhi * (b - a);
  double fc = f(c), fd = f(d);
  for (int it = 0; it < 200 && b - a > 1e-12 * (std::abs(a) + 1); ++it) {
    if (fc < fd) {
      b = d;
      d = c;
      fd = fc;
      c = b - kInvPhi * (b - a);
      fc = f(c);
    } else {
      a = c;
      c = d;
      fc = fd;
      d = a + kInvPhi * (b - a);
      fd = f(d);
    }
  }
  double x = (a + b) / 2;
  // The grid's best point may sit on the boundary (the optimum is an end point).
  return f(x) <= best_v ? x : lo + (hi - lo) * best / kGrid;
}

}  // namespace

double chinchilla_loss(const ChinchillaFit& fit, double n_params, double n_tokens) {
  return fit.e + fit.a / std::pow(n_params, fit.alpha) + fit.b / std::pow(n_tokens, fit.beta);
}

Status validate_target_loss(const ChinchillaFit& fit, double target_loss) {
  if (!std::isfinite(target_loss)) return invalid_argument("target loss must be a finite number");
  if (target_loss <= fit.e) {
    return invalid_argument("target loss " + fmt_num(target_loss) +
                            " is not above the irreducible loss E = " + fmt_num(fit.e) +
                            "; no model size reaches it");
  }
  if (target_loss > kMaxTargetLoss) {
    return invalid_argument("target loss " + fmt_num(target_loss) + " is above " +
                            fmt_num(kMaxTargetLoss) +
                            " nats per token (worse than guessing among 22,000 tokens); the "
                            "fit was measured at losses of about 2 to 4");
  }
  return Status::ok();
}

Status validate_size(double n_params, double n_tokens) {
  FRUGAL_RETURN_IF_ERROR(require_positive("parameter count", n_params));
  FRUGAL_RETURN_IF_ERROR(require_positive("training tokens", n_tokens));
  FRUGAL_RETURN_IF_ERROR(require_at_most("parameter count", n_params, kMaxParams));
  FRUGAL_RETURN_IF_ERROR(require_at_most("training tokens", n_tokens, kMaxTokens));
  return Status::ok();
}

Result<double> tokens_for_loss(const ChinchillaFit& fit, double n_params, double target_loss) {
  FRUGAL_RETURN_IF_ERROR(validate_target_loss(fit, target_loss));
  FRUGAL_RETURN_IF_ERROR(require_positive("parameter count", n_params));
  double rest = target_loss - fit.e - fit.a / std::pow(n_params, fit.alpha);
  if (rest <= 0) {
    return invalid_argument("a model of " + fmt_num(n_params) + " parameters cannot reach loss " +
                            fmt_num(target_loss) + " with any amount of data");
  }
  return std::pow(fit.b / rest, 1.0 / fit.beta);
}

Result<double> min_params_for_loss(const ChinchillaFit& fit, double target_loss) {
  FRUGAL_RETURN_IF_ERROR(validate_target_loss(fit, target_loss));
  return std::pow(fit.a / (target_loss - fit.e), 1.0 / fit.alpha);
}

double price_per_flop(double gpu_hour_price, double gpu_flops, double utilization) {
  return gpu_hour_price / (3600.0 * gpu_flops * utilization);
}

Status validate_prices(const FlopPrices& prices) {
  FRUGAL_RETURN_IF_ERROR(
      require_at_most("training price per FLOP", prices.train_per_flop, kMaxPricePerFlop));
  FRUGAL_RETURN_IF_ERROR(
      require_at_most("inference price per FLOP", prices.infer_per_flop, kMaxPricePerFlop));
  return Status::ok();
}

Status validate_workload(const Workload& workload) {
  FRUGAL_RETURN_IF_ERROR(require_at_most("lifetime requests", workload.requests, kMaxRequests));
  FRUGAL_RETURN_IF_ERROR(require_at_most("tokens per request", workload.tokens_per_request,
                                         kMaxTokensPerRequest));
  return Status::ok();
}

SizeChoice evaluate_size(const ChinchillaFit& fit, double n_params, double n_tokens,
                         const FlopPrices& prices, const Workload& workload) {
  SizeChoice c;
  c.n_params = n_params;
  c.n_tokens = n_tokens;
  c.tokens_per_param = n_tokens / n_params;
  c.loss = chinchilla_loss(fit, n_params, n_tokens);
  c.train_flops = 6.0 * n_params * n_tokens;
  c.infer_flops = 2.0 * n_params * workload.tokens();
  c.train_cost = c.train_flops * prices.train_per_flop;
  c.infer_cost = c.infer_flops * prices.infer_per_flop;
  c.total_cost = c.train_cost + c.infer_cost;
  return c;
}

Result<SizeChoice> compute_optimal_for_loss(const ChinchillaFit& fit, double target_loss,
                                            const FlopPrices& prices, const Workload& workload) {
  FRUGAL_RETURN_IF_ERROR(validate_target_loss(fit, target_loss));
  FRUGAL_RETURN_IF_ERROR(validate_prices(prices));
  FRUGAL_RETURN_IF_ERROR(validate_workload(workload));
  // Lagrange condition for min log N + log D on A/N^alpha + B/D^beta = c:
  // alpha·(A/N^alpha) = beta·(B/D^beta).
  double c = target_loss - fit.e;
  double param_term = c * fit.beta / (fit.alpha + fit.beta);
  double data_term = c * fit.alpha / (fit.alpha + fit.beta);
  double n = std::pow(fit.a / param_term, 1.0 / fit.alpha);
  double d = std::pow(fit.b / data_term, 1.0 / fit.beta);
  SizeChoice choice = evaluate_size(fit, n, d, prices, workload);
  FRUGAL_RETURN_IF_ERROR(check_choice("compute-optimal", target_loss, choice));
  return choice;
}

Result<SizeChoice> fixed_ratio_for_loss(const ChinchillaFit& fit, double target_loss,
                                        double tokens_per_param, const FlopPrices& prices,
                                        const Workload& workload) {
  FRUGAL_RETURN_IF_ERROR(validate_target_loss(fit, target_loss));
  FRUGAL_RETURN_IF_ERROR(require_positive("tokens per parameter", tokens_per_param));
  FRUGAL_RETURN_IF_ERROR(validate_prices(prices));
  FRUGAL_RETURN_IF_ERROR(validate_workload(workload));
  // L(N, r·N) decreases monotonically in N: bisect on log N.
  double lo = std::log(1e3), hi = std::log(1e16);
  auto loss_at = [&](double log_n) {
    double n = std::exp(log_n);
    return chinchilla_loss(fit, n, tokens_per_param * n);
  };
  if (loss_at(hi) > target_loss) {
    return invalid_argument("target loss " + fmt_num(target_loss) +
                            " needs more than 1e16 parameters at this tokens-per-parameter ratio");
  }
  for (int it = 0; it < 200; ++it) {
    double mid = (lo + hi) / 2;
    (loss_at(mid) > target_loss ? lo : hi) = mid;
  }
  double n = std::exp(hi);
  SizeChoice choice = evaluate_size(fit, n, tokens_per_param * n, prices, workload);
  FRUGAL_RETURN_IF_ERROR(check_choice("at a fixed tokens-per-parameter ratio", target_loss,
                                      choice));
  return choice;
}

Result<double> min_params_for_data(const ChinchillaFit& fit, double target_loss,
                                   double max_tokens) {
  FRUGAL_RETURN_IF_ERROR(validate_target_loss(fit, target_loss));
  FRUGAL_RETURN_IF_ERROR(require_positive("maximum training tokens", max_tokens));
  double rest = target_loss - fit.e - fit.b / std::pow(max_tokens, fit.beta);
  if (rest <= 0) {
    return invalid_argument(fmt_num(max_tokens) + " training tokens cannot reach loss " +
                            fmt_num(target_loss) + " at any model size");
  }
  return std::pow(fit.a / rest, 1.0 / fit.alpha);
}

Result<SizeChoice> inference_aware_for_loss(const ChinchillaFit& fit, double target_loss,
                                            const FlopPrices& prices, const Workload& workload,
                                            double max_tokens) {
  FRUGAL_ASSIGN_OR_RETURN(SizeChoice compute_opt,
                          compute_optimal_for_loss(fit, target_loss, prices, workload));
  FRUGAL_ASSIGN_OR_RETURN(double n_min, min_params_for_loss(fit, target_loss));
  auto cost_at = [&](double log_n) {
    double n = std::exp(log_n);
    double rest = target_loss - fit.e - fit.a / std::pow(n, fit.alpha);
    if (rest <= 0) return std::numeric_limits<double>::infinity();
    double d = std::pow(fit.b / rest, 1.0 / fit.beta);
    return evaluate_size(fit, n, d, prices, workload).total_cost;
  };
  // Just above n_min the data needed explodes; the search starts a hair inside.
  double lo = std::log(n_min) + 1e-9;
  double hi = std::log(compute_opt.n_params);
  if (max_tokens != 0) {
    FRUGAL_ASSIGN_OR_RETURN(double n_data, min_params_for_data(fit, target_loss, max_tokens));
    lo = std::max(lo, std::log(n_data));
  }
  // When the data cap binds beyond the compute optimum, both costs grow with N: take the
  // smallest allowed N.
  double log_n = lo >= hi ? lo : minimize_1d(cost_at, lo, hi);
  double n = std::exp(log_n);
  FRUGAL_ASSIGN_OR_RETURN(double d, tokens_for_loss(fit, n, target_loss));
  SizeChoice choice = evaluate_size(fit, n, d, prices, workload);
  FRUGAL_RETURN_IF_ERROR(check_choice("inference-aware", target_loss, choice));
  return choice;
}

const std::vector<ReferenceModel>& reference_models() {
  // Parameter and token counts as published by each model's authors.
  static const std::vector<ReferenceModel> kModels = {
      {"chinchilla-70b", 70e9, 1.4e12}, {"gopher-280b", 280e9, 300e9},
      {"gpt3-175b", 175e9, 300e9},      {"llama-7b", 6.7e9, 1.0e12},
      {"llama2-7b", 6.7e9, 2.0e12},     {"llama2-70b", 69e9, 2.0e12},
      {"llama3-8b", 8.0e9, 15e12},      {"llama3-70b", 70.6e9, 15e12},
  };
  return kModels;
}

Result<ReferenceModel> find_reference_model(const std::string& name) {
  std::string known;
  for (const ReferenceModel& m : reference_models()) {
    if (m.name == name) return m;
    known += (known.empty() ? "" : ", ") + m.name;
  }
  return not_found("unknown reference model '" + name + "' (known: " + known +
                   "; or give --ref-params and --ref-tokens)");
}

Result<double> parse_count(const std::string& text) {
  if (text.empty()) return invalid_argument("empty number");
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str()) return invalid_argument("'" + text + "' is not a number");
  std::string suffix(end);
  double scale = 1;
  if (suffix.empty()) {
    scale = 1;
  } else if (suffix == "k" || suffix == "K") {
    scale = 1e3;
  } else if (suffix == "M" || suffix == "m") {
    scale = 1e6;
  } else if (suffix == "B" || suffix == "b" || suffix == "G" || suffix == "g") {
    scale = 1e9;
  } else if (suffix == "T" || suffix == "t") {
    scale = 1e12;
  } else {
    return invalid_argument("'" + text + "' is not a number (suffixes: k, M, B, T)");
  }
  if (!std::isfinite(v) || !std::isfinite(v * scale)) {
    return invalid_argument("'" + text + "' is not a finite number");
  }
  return v * scale;
}

}  // namespace frugal::plan
