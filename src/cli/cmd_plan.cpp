// `frugal plan`: cost planning — model size against inference volume (size, compare), serving
// memory (memory) and cascade economics (cascade). Tables for people, --json for scripts.
#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cascade/config.h"
#include "cli/commands.h"
#include "cli/flags.h"
#include "plan/cascade_plan.h"
#include "plan/memory.h"
#include "plan/scaling.h"

namespace frugal::cli {

namespace {

using nlohmann::json;

// "5.35B", "337B", "1.4T", "70M", "512".
std::string human_count(double v) {
  const char* suffix = "";
  double scaled = v;
  if (std::abs(v) >= 1e12) {
    scaled = v / 1e12;
    suffix = "T";
  } else if (std::abs(v) >= 1e9) {
    scaled = v / 1e9;
    suffix = "B";
  } else if (std::abs(v) >= 1e6) {
    scaled = v / 1e6;
    suffix = "M";
  } else if (std::abs(v) >= 1e3) {
    scaled = v / 1e3;
    suffix = "k";
  }
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.3g%s", scaled, suffix);
  return buf;
}

// "$1.69M", "$15.2k", "$412", "$0.000345".
std::string money(double v) {
  if (std::abs(v) >= 1e3) return "$" + human_count(v);
  if (std::abs(v) < 1e-9) return "$0";  // rounding noise of the optimiser
  char buf[64];
  std::snprintf(buf, sizeof(buf), "$%.3g", v);
  return buf;
}

// Bytes in decimal units: "2.62 MB", "138 GB".
std::string bytes_text(double v) {
  const char* unit = "B";
  double scaled = v;
  if (v >= 1e12) {
    scaled = v / 1e12;
    unit = "TB";
  } else if (v >= 1e9) {
    scaled = v / 1e9;
    unit = "GB";
  } else if (v >= 1e6) {
    scaled = v / 1e6;
    unit = "MB";
  } else if (v >= 1e3) {
    scaled = v / 1e3;
    unit = "kB";
  }
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.3g %s", scaled, unit);
  return buf;
}

std::string pct(double fraction) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f %%", 100 * fraction);
  return buf;
}

// Bad input ends the command with exit code 2 and a message saying what to fix.
void fail(const char* command, const Status& status, int& exit_code) {
  std::fprintf(stderr, "frugal plan %s: %s\n", command, status.message().c_str());
  exit_code = 2;
}

// --- size and compare: shared price and workload flags -----------------------------------

struct PriceFlags {
  double train_per_flop = 0;  // used when given; else derived from the GPU flags
  double infer_per_flop = 0;
  CLI::Option* train_per_flop_opt = nullptr;
  CLI::Option* infer_per_flop_opt = nullptr;
  double gpu_hour_price = 2.0;
  double gpu_flops = 989e12;
  double train_utilization = 0.4;
  double infer_utilization = 0.2;
  std::string requests;
  std::string tokens_per_request = "1000";
  bool json = false;
};

void add_price_flags(CLI::App* cmd, PriceFlags& f) {
  cmd->add_option("--requests", f.requests,
                  "Lifetime inference requests (e.g. 100B or 1e11; 0 for training only)")
      ->required();
  cmd->add_option("--tokens-per-request", f.tokens_per_request,
                  "Prompt + generated tokens per request (default 1000)");
  f.train_per_flop_opt = cmd->add_option("--train-price-per-flop", f.train_per_flop,
                                         "Training $ per FLOP (default: from the GPU flags)")
                             ->check(real_range(0, plan::kMaxPricePerFlop));
  f.infer_per_flop_opt = cmd->add_option("--infer-price-per-flop", f.infer_per_flop,
                                         "Inference $ per FLOP (default: from the GPU flags)")
                             ->check(real_range(0, plan::kMaxPricePerFlop));
  // The ranges keep every derived price finite: from a cent to a million dollars per hour,
  // from a megaflop to a zettaflop per second.
  cmd->add_option("--gpu-hour-price", f.gpu_hour_price, "$ per GPU-hour (default 2.0)")
      ->check(real_range(0.01, 1e6));
  cmd->add_option("--gpu-flops", f.gpu_flops, "GPU peak FLOP/s (default 989e12, H100 BF16)")
      ->check(real_range(1e6, 1e21));
  cmd->add_option("--train-utilization", f.train_utilization,
                  "Share of peak FLOP/s reached in training (default 0.4)")
      ->check(real_range(0.001, 1));
  cmd->add_option("--infer-utilization", f.infer_utilization,
                  "Share of peak FLOP/s reached in inference (default 0.2)")
      ->check(real_range(0.001, 1));
  cmd->add_flag("--json", f.json, "Print one JSON object instead of tables");
}

struct Economy {
  plan::FlopPrices prices;
  plan::Workload workload;
};

Result<Economy> economy_from_flags(const PriceFlags& f) {
  Economy e;
  for (auto [what, v] : {std::pair{"--gpu-hour-price", f.gpu_hour_price},
                         std::pair{"--gpu-flops", f.gpu_flops},
                         std::pair{"--train-utilization", f.train_utilization},
                         std::pair{"--infer-utilization", f.infer_utilization}}) {
    if (!std::isfinite(v) || v <= 0) {
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%g", v);
      return invalid_argument(std::string(what) + " must be > 0 (got " + buf + ")");
    }
  }
  if (f.train_utilization > 1 || f.infer_utilization > 1) {
    return invalid_argument("utilization is a share of peak FLOP/s and must be in (0, 1]");
  }
  e.prices.train_per_flop = f.train_per_flop_opt->count() > 0
                                ? f.train_per_flop
                                : plan::price_per_flop(f.gpu_hour_price, f.gpu_flops,
                                                       f.train_utilization);
  e.prices.infer_per_flop = f.infer_per_flop_opt->count() > 0
                                ? f.infer_per_flop
                                : plan::price_per_flop(f.gpu_hour_price, f.gpu_flops,
                                                       f.infer_utilization);
  FRUGAL_RETURN_IF_ERROR(plan::validate_prices(e.prices));
  auto requests = plan::parse_count(f.requests);
  if (!requests.is_ok()) return invalid_argument("--requests: " + requests.status().message());
  auto tokens = plan::parse_count(f.tokens_per_request);
  if (!tokens.is_ok()) {
    return invalid_argument("--tokens-per-request: " + tokens.status().message());
  }
  e.workload.requests = *requests;
  e.workload.tokens_per_request = *tokens;
  FRUGAL_RETURN_IF_ERROR(plan::validate_workload(e.workload));
  return e;
}

json fit_json(const plan::ChinchillaFit& fit) {
  return {{"source", "Hoffmann et al. 2022, approach 3"},
          {"formula", "L(N, D) = E + A / N^alpha + B / D^beta"},
          {"E", fit.e},
          {"A", fit.a},
          {"B", fit.b},
          {"alpha", fit.alpha},
          {"beta", fit.beta}};
}

json economy_json(const Economy& e) {
  return {{"train_price_per_flop", e.prices.train_per_flop},
          {"infer_price_per_flop", e.prices.infer_per_flop},
          {"train_flops", "6 * N * D"},
          {"infer_flops_per_token", "2 * N"},
          {"requests", e.workload.requests},
          {"tokens_per_request", e.workload.tokens_per_request},
          {"inference_tokens", e.workload.tokens()}};
}

json choice_json(const plan::SizeChoice& c) {
  return {{"params", c.n_params},         {"tokens", c.n_tokens},
          {"tokens_per_param", c.tokens_per_param}, {"loss", c.loss},
          {"train_flops", c.train_flops}, {"infer_flops", c.infer_flops},
          {"train_cost", c.train_cost},   {"infer_cost", c.infer_cost},
          {"total_cost", c.total_cost}};
}

void print_preamble(const plan::ChinchillaFit& fit, const Economy& e) {
  std::printf("Loss fit (Hoffmann et al. 2022, approach 3): L(N, D) = %g + %g / N^%g + %g / D^%g\n",
              fit.e, fit.a, fit.alpha, fit.b, fit.beta);
  std::printf("Training 6*N*D FLOPs at $%.3g/FLOP; inference 2*N FLOPs per token at $%.3g/FLOP\n",
              e.prices.train_per_flop, e.prices.infer_per_flop);
  std::printf("Lifetime inference: %s requests x %s tokens = %s tokens\n\n",
              human_count(e.workload.requests).c_str(),
              human_count(e.workload.tokens_per_request).c_str(),
              human_count(e.workload.tokens()).c_str());
}

void print_choice_header(const char* first_column) {
  std::printf("%-26s %8s %8s %9s %7s %10s %10s %10s\n", first_column, "params", "tokens",
              "tok/param", "loss", "train", "inference", "total");
}

void print_choice_row(const std::string& label, const plan::SizeChoice& c) {
  std::printf("%-26s %8s %8s %9.1f %7.4f %10s %10s %10s\n", label.c_str(),
              human_count(c.n_params).c_str(), human_count(c.n_tokens).c_str(),
              c.tokens_per_param, c.loss, money(c.train_cost).c_str(),
              money(c.infer_cost).c_str(), money(c.total_cost).c_str());
}

// --- plan size ------------------------------------------------------------------------------

struct SizeFlags {
  PriceFlags prices;
  double loss = 0;
  CLI::Option* loss_opt = nullptr;
  std::string ref;
  std::string ref_params;
  std::string ref_tokens;
  std::string max_tokens;
};

Status run_size(const SizeFlags& f) {
  const plan::ChinchillaFit& fit = plan::kHoffmann2022;
  FRUGAL_ASSIGN_OR_RETURN(Economy e, economy_from_flags(f.prices));
  int targets = (f.loss_opt->count() > 0) + !f.ref.empty() +
                (!f.ref_params.empty() || !f.ref_tokens.empty());
  if (targets != 1) {
    return invalid_argument("give exactly one target: --loss L, --ref NAME, or --ref-params N "
                            "with --ref-tokens D");
  }
  double target = f.loss;
  std::string target_source = "given";
  if (!f.ref.empty()) {
    FRUGAL_ASSIGN_OR_RETURN(plan::ReferenceModel m, plan::find_reference_model(f.ref));
    target = plan::chinchilla_loss(fit, m.n_params, m.n_tokens);
    target_source = m.name + " (" + human_count(m.n_params) + " params, " +
                    human_count(m.n_tokens) + " tokens)";
  } else if (!f.ref_params.empty() || !f.ref_tokens.empty()) {
    if (f.ref_params.empty() || f.ref_tokens.empty()) {
      return invalid_argument("--ref-params and --ref-tokens go together");
    }
    auto n = plan::parse_count(f.ref_params);
    if (!n.is_ok()) return invalid_argument("--ref-params: " + n.status().message());
    auto d = plan::parse_count(f.ref_tokens);
    if (!d.is_ok()) return invalid_argument("--ref-tokens: " + d.status().message());
    if (Status s = plan::validate_size(*n, *d); !s.is_ok()) {
      return invalid_argument("--ref-params / --ref-tokens: " + s.message());
    }
    target = plan::chinchilla_loss(fit, *n, *d);
    target_source = human_count(*n) + " params on " + human_count(*d) + " tokens";
  }
  FRUGAL_RETURN_IF_ERROR(plan::validate_target_loss(fit, target));
  FRUGAL_ASSIGN_OR_RETURN(plan::SizeChoice opt,
                          plan::compute_optimal_for_loss(fit, target, e.prices, e.workload));
  FRUGAL_ASSIGN_OR_RETURN(plan::SizeChoice rule,
                          plan::fixed_ratio_for_loss(fit, target, 20, e.prices, e.workload));
  double max_tokens = 0;
  if (!f.max_tokens.empty()) {
    auto m = plan::parse_count(f.max_tokens);
    if (!m.is_ok()) return invalid_argument("--max-tokens: " + m.status().message());
    if (!(*m > 0 && *m <= plan::kMaxTokens)) {
      return invalid_argument("--max-tokens must be from 1 to 1e18 training tokens");
    }
    max_tokens = *m;
  }
  FRUGAL_ASSIGN_OR_RETURN(
      plan::SizeChoice aware,
      plan::inference_aware_for_loss(fit, target, e.prices, e.workload, max_tokens));
  const double saving = opt.total_cost - aware.total_cost;
  const double saving_rule = rule.total_cost - aware.total_cost;

  if (f.prices.json) {
    json j = {{"target_loss", target},
              {"target_source", target_source},
              {"fit", fit_json(fit)},
              {"economy", economy_json(e)},
              {"compute_optimal", choice_json(opt)},
              {"twenty_tokens_per_param", choice_json(rule)},
              {"inference_aware", choice_json(aware)},
              {"max_tokens", max_tokens},
              {"saving_vs_compute_optimal", saving},
              {"saving_vs_compute_optimal_fraction",
               opt.total_cost > 0 ? saving / opt.total_cost : 0.0},
              {"saving_vs_twenty_tokens_per_param", saving_rule},
              {"saving_vs_twenty_tokens_per_param_fraction",
               rule.total_cost > 0 ? saving_rule / rule.total_cost : 0.0}};
    std::printf("%s\n", j.dump(2).c_str());
    return Status::ok();
  }
  std::printf("Target loss %.4f (%s)\n", target, target_source.c_str());
  print_preamble(fit, e);
  print_choice_header("choice");
  auto over_cap = [&](const plan::SizeChoice& c) {
    return max_tokens > 0 && c.n_tokens > max_tokens * (1 + 1e-9) ? " *" : "";
  };
  print_choice_row(std::string("compute-optimal (fit)") + over_cap(opt), opt);
  print_choice_row(std::string("20 tokens/param rule") + over_cap(rule), rule);
  print_choice_row("inference-aware optimum", aware);
  if (*over_cap(opt) != 0 || *over_cap(rule) != 0) {
    std::printf("* needs more than --max-tokens %s training tokens\n",
                human_count(max_tokens).c_str());
  }
  // Hoffmann et al. fitted runs of 70M to 16B parameters on 5B to 500B tokens.
  if (aware.n_tokens > 500e9 || aware.tokens_per_param > 1000 || opt.n_params > 16e9) {
    std::printf("\nNote: the fit was measured on 70M-16B parameters and 5B-500B tokens; choices "
                "outside that range are extrapolations (--max-tokens caps the data).\n");
  }
  std::printf("\nInference-aware saving: %s (%s) vs compute-optimal, %s (%s) vs 20 tokens/param\n",
              money(saving).c_str(), pct(opt.total_cost > 0 ? saving / opt.total_cost : 0).c_str(),
              money(saving_rule).c_str(),
              pct(rule.total_cost > 0 ? saving_rule / rule.total_cost : 0).c_str());
  return Status::ok();
}

// --- plan compare ---------------------------------------------------------------------------

struct CompareFlags {
  PriceFlags prices;
  std::vector<std::string> configs;
};

Status run_compare(const CompareFlags& f) {
  const plan::ChinchillaFit& fit = plan::kHoffmann2022;
  FRUGAL_ASSIGN_OR_RETURN(Economy e, economy_from_flags(f.prices));
  if (f.configs.empty()) {
    return invalid_argument("give configurations as PARAMS:TOKENS, e.g. 3B:600B 10B:200B");
  }
  std::vector<plan::SizeChoice> rows;
  for (const std::string& c : f.configs) {
    size_t colon = c.find(':');
    if (colon == std::string::npos) {
      return invalid_argument("'" + c + "' is not PARAMS:TOKENS (e.g. 3B:600B)");
    }
    auto n = plan::parse_count(c.substr(0, colon));
    if (!n.is_ok()) return invalid_argument("'" + c + "': " + n.status().message());
    auto d = plan::parse_count(c.substr(colon + 1));
    if (!d.is_ok()) return invalid_argument("'" + c + "': " + d.status().message());
    if (Status s = plan::validate_size(*n, *d); !s.is_ok()) {
      return invalid_argument("'" + c + "': " + s.message());
    }
    rows.push_back(plan::evaluate_size(fit, *n, *d, e.prices, e.workload));
  }
  if (f.prices.json) {
    json configs = json::array();
    for (size_t i = 0; i < rows.size(); ++i) {
      json c = choice_json(rows[i]);
      c["name"] = f.configs[i];
      c["total_vs_first"] = rows[0].total_cost > 0 ? rows[i].total_cost / rows[0].total_cost : 0;
      configs.push_back(c);
    }
    json j = {{"fit", fit_json(fit)}, {"economy", economy_json(e)}, {"configs", configs}};
    std::printf("%s\n", j.dump(2).c_str());
    return Status::ok();
  }
  print_preamble(fit, e);
  print_choice_header("config");
  for (size_t i = 0; i < rows.size(); ++i) print_choice_row(f.configs[i], rows[i]);
  std::printf("\n");
  for (size_t i = 1; i < rows.size(); ++i) {
    std::printf("%s vs %s: loss %+.4f, total cost x%.3g\n", f.configs[i].c_str(),
                f.configs[0].c_str(), rows[i].loss - rows[0].loss,
                rows[0].total_cost > 0 ? rows[i].total_cost / rows[0].total_cost : 0.0);
  }
  return Status::ok();
}

// --- plan memory ----------------------------------------------------------------------------

struct MemoryFlags {
  std::string gguf;
  int64_t n_layer = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_embd = 0;
  std::string params;
  std::string weight_type = "f16";
  CLI::Option* weight_type_opt = nullptr;
  std::string kv_type = "f16";
  int64_t context = 0;
  double budget_gb = 80;
  bool json = false;
};

Result<plan::ModelMemorySource> memory_source(const MemoryFlags& f) {
  bool any_dim = f.n_layer != 0 || f.n_head != 0 || f.n_head_kv != 0 || f.head_dim != 0 ||
                 f.n_embd != 0 || !f.params.empty();
  if (f.weight_type_opt->count() > 0) {
    // Checked even where it would not be used, so a typo is never silently ignored.
    if (Status s = plan::weights_of_type(1, f.weight_type).status(); !s.is_ok()) {
      return invalid_argument("--weight-type: " + s.message());
    }
    if (f.params.empty()) {
      return invalid_argument("--weight-type sizes the weights of --params N; give --params "
                              "too (with --gguf the file's own types are counted)");
    }
  }
  if (!f.gguf.empty()) {
    if (any_dim) {
      return invalid_argument("give either --gguf or dimensions (--n-layer ...), not both");
    }
    return plan::read_gguf_memory_source(f.gguf);
  }
  if (!any_dim) {
    return invalid_argument("give --gguf FILE, or --n-layer, --n-head, --n-head-kv and "
                            "--head-dim (or --n-embd)");
  }
  plan::ModelMemorySource s;
  plan::ModelDims& d = s.dims;
  d.name = "given dimensions";
  d.n_layer = f.n_layer;
  d.n_head = f.n_head;
  d.n_head_kv = f.n_head_kv != 0 ? f.n_head_kv : f.n_head;
  if (f.n_layer <= 0) return invalid_argument("--n-layer must be > 0");
  if (f.n_head <= 0) return invalid_argument("--n-head must be > 0");
  if (f.head_dim != 0 && f.n_embd != 0 && f.head_dim * f.n_head != f.n_embd) {
    return invalid_argument("--head-dim " + std::to_string(f.head_dim) + " x --n-head " +
                            std::to_string(f.n_head) + " != --n-embd " +
                            std::to_string(f.n_embd) + "; give one of them or make them agree");
  }
  if (f.head_dim != 0) {
    d.head_dim_k = f.head_dim;
  } else if (f.n_embd != 0) {
    if (f.n_embd % f.n_head != 0) {
      return invalid_argument("--n-embd " + std::to_string(f.n_embd) +
                              " is not a multiple of --n-head " + std::to_string(f.n_head));
    }
    d.head_dim_k = f.n_embd / f.n_head;
  } else {
    return invalid_argument("give --head-dim or --n-embd");
  }
  d.head_dim_v = d.head_dim_k;
  if (!f.params.empty()) {
    auto n = plan::parse_count(f.params);
    if (!n.is_ok()) return invalid_argument("--params: " + n.status().message());
    if (!(*n > 0 && *n <= plan::kMaxParams)) {
      return invalid_argument("--params must be from 1 to 1e16");
    }
    FRUGAL_ASSIGN_OR_RETURN(plan::WeightGroup g, plan::weights_of_type(*n, f.weight_type));
    s.weights.push_back(g);
  }
  return s;
}

Status run_memory(const MemoryFlags& f) {
  FRUGAL_ASSIGN_OR_RETURN(plan::ModelMemorySource source, memory_source(f));
  if (!std::isfinite(f.budget_gb) || f.budget_gb < 0) {
    return invalid_argument("--budget-gb must be >= 0");
  }
  if (f.context < 0) return invalid_argument("--context must be > 0");
  plan::MemoryPlanOptions options;
  options.kv_type = f.kv_type;
  options.context = f.context;
  options.budget_bytes = f.budget_gb * 1e9;
  FRUGAL_ASSIGN_OR_RETURN(plan::MemoryPlan p, plan::plan_memory(source, options));
  const plan::ModelDims& d = p.dims;
  if (f.json) {
    json weights = json::array();
    for (const plan::WeightGroup& g : p.weights) {
      weights.push_back({{"type", g.type},
                         {"tensors", g.n_tensors},
                         {"elements", g.n_elements},
                         {"bytes", g.bytes}});
    }
    json variants = json::array();
    for (const plan::KvVariant& v : p.variants) {
      variants.push_back({{"attention", v.label},
                          {"n_head_kv", v.n_head_kv},
                          {"is_model", v.is_model},
                          {"kv_bytes_per_token", v.bytes_per_token},
                          {"kv_bytes_per_sequence", v.bytes_per_sequence},
                          {"max_sequences", v.max_sequences}});
    }
    json j = {{"model", d.name},
              {"n_layer", d.n_layer},
              {"n_head", d.n_head},
              {"n_head_kv", d.n_head_kv},
              {"head_dim_k", d.head_dim_k},
              {"head_dim_v", d.head_dim_v},
              {"n_ctx_train", d.n_ctx_train},
              {"weights", weights},
              {"weight_bytes", p.weight_bytes},
              {"kv_type", p.kv_type},
              {"kv_bytes_per_element", p.kv_bytes_per_element},
              {"kv_bytes_per_token", p.kv_bytes_per_token},
              {"context", p.context},
              {"kv_bytes_per_sequence", p.kv_bytes_per_sequence},
              {"budget_bytes", p.budget_bytes},
              {"kv_budget_bytes", p.kv_budget_bytes},
              {"max_sequences", p.max_sequences},
              {"attention_variants", variants}};
    std::printf("%s\n", j.dump(2).c_str());
    return Status::ok();
  }
  std::printf("Model: %s — %lld layers, %lld heads, %lld KV heads, head dim %lld",
              d.name.c_str(), (long long)d.n_layer, (long long)d.n_head, (long long)d.n_head_kv,
              (long long)d.head_dim_k);
  if (d.head_dim_v != d.head_dim_k) std::printf(" (values %lld)", (long long)d.head_dim_v);
  if (d.n_ctx_train > 0) std::printf(", trained context %lld", (long long)d.n_ctx_train);
  std::printf("\n\n");
  if (p.weights.empty()) {
    std::printf("Weights: unknown (pass --params and --weight-type to count them)\n\n");
  } else {
    std::printf("%-10s %8s %12s %12s\n", "weights", "tensors", "elements", "bytes");
    for (const plan::WeightGroup& g : p.weights) {
      std::printf("%-10s %8s %12s %12s\n", g.type.c_str(),
                  g.n_tensors > 0 ? std::to_string(g.n_tensors).c_str() : "-",
                  human_count(g.n_elements).c_str(), bytes_text(g.bytes).c_str());
    }
    std::printf("%-10s %8s %12s %12s\n\n", "total", "", "", bytes_text(p.weight_bytes).c_str());
  }
  std::string dims_text = d.head_dim_v == d.head_dim_k
                              ? "2 x " + std::to_string(d.n_layer) + " layers x " +
                                    std::to_string(d.n_head_kv) + " KV heads x " +
                                    std::to_string(d.head_dim_k)
                              : std::to_string(d.n_layer) + " layers x " +
                                    std::to_string(d.n_head_kv) + " KV heads x (" +
                                    std::to_string(d.head_dim_k) + " + " +
                                    std::to_string(d.head_dim_v) + ")";
  std::printf("KV cache (%s, %.5g bytes per element): %s x %.5g = %.0f bytes per token (%s)\n",
              p.kv_type.c_str(), p.kv_bytes_per_element, dims_text.c_str(),
              p.kv_bytes_per_element, p.kv_bytes_per_token,
              bytes_text(p.kv_bytes_per_token).c_str());
  std::printf("At %lld tokens of context: %s per sequence. Budget %s, weights %s, left for KV "
              "%s: %lld concurrent sequences\n\n",
              (long long)p.context, bytes_text(p.kv_bytes_per_sequence).c_str(),
              bytes_text(p.budget_bytes).c_str(),
              p.weights.empty() ? "not counted" : bytes_text(p.weight_bytes).c_str(),
              bytes_text(p.kv_budget_bytes).c_str(), (long long)p.max_sequences);
  std::printf("%-10s %8s %14s %14s %10s\n", "attention", "KV heads", "KV per token",
              "per sequence", "sequences");
  for (const plan::KvVariant& v : p.variants) {
    std::printf("%-10s %8lld %14s %14s %10lld%s\n", v.label.c_str(), (long long)v.n_head_kv,
                bytes_text(v.bytes_per_token).c_str(), bytes_text(v.bytes_per_sequence).c_str(),
                (long long)v.max_sequences, v.is_model ? "  <- this model" : "");
  }
  return Status::ok();
}

// --- plan cascade ---------------------------------------------------------------------------

struct CascadeFlags {
  std::string config = "frugal.toml";
  double escalation_rate = 0;
  CLI::Option* escalation_rate_opt = nullptr;
  std::string eval;
  double tokens_in = 500;
  double tokens_out = 200;
  double cache_hit_rate = 0;
  CLI::Option* cache_hit_rate_opt = nullptr;
  bool json = false;
};

Status run_cascade(const CascadeFlags& f) {
  if ((f.escalation_rate_opt->count() > 0) == !f.eval.empty()) {
    return invalid_argument("give exactly one of --escalation-rate R or --eval RESULT.json");
  }
  FRUGAL_ASSIGN_OR_RETURN(cascade::CascadeConfig config, cascade::load_cascade_config(f.config));
  plan::CascadeInputs in;
  in.tokens_in = f.tokens_in;
  in.tokens_out = f.tokens_out;
  in.escalation_rate = f.escalation_rate;
  std::string rate_source = "given";
  if (!f.eval.empty()) {
    FRUGAL_ASSIGN_OR_RETURN(plan::EvalRates rates, plan::read_eval_rates(f.eval));
    in.escalation_rate = rates.escalation_rate;
    rate_source = "measured in " + f.eval;
    if (rates.has_cache_hit_rate && f.cache_hit_rate_opt->count() == 0) {
      in.cache_hit_rate = rates.cache_hit_rate;
    }
  }
  if (f.cache_hit_rate_opt->count() > 0) in.cache_hit_rate = f.cache_hit_rate;
  FRUGAL_ASSIGN_OR_RETURN(plan::CascadeEconomics e, plan::cascade_economics(config, in));
  if (f.json) {
    json paths = json::array();
    for (const plan::CascadePath& p : e.paths) {
      paths.push_back({{"path", p.label},
                       {"probability", p.probability},
                       {"latency_ms", p.latency_ms},
                       {"cost", p.cost}});
    }
    json tiers = json::array();
    for (const cascade::TierConfig& t : config.tiers) {
      tiers.push_back({{"name", t.name},
                       {"kind", cascade::tier_kind_name(t.kind)},
                       {"price_in_per_mtok", t.price_in_per_mtok},
                       {"price_out_per_mtok", t.price_out_per_mtok},
                       {"price_set", t.price_set},
                       {"cost_per_query", cascade::tier_query_cost(t, in.tokens_in,
                                                                   in.tokens_out)}});
    }
    json j = {{"config", config.path},
              {"tiers", tiers},
              {"tokens_in", in.tokens_in},
              {"tokens_out", in.tokens_out},
              {"escalation_rate", in.escalation_rate},
              {"escalation_rate_source", rate_source},
              {"cache_hit_rate", in.cache_hit_rate},
              {"top_only", {{"cost_per_query", e.top_only_cost},
                            {"cost_per_million", e.top_only_cost * 1e6},
                            {"latency_ms", e.top_only_latency_ms}}},
              {"cache_top", {{"cost_per_query", e.cache_top_cost},
                             {"cost_per_million", e.cache_top_cost * 1e6}}},
              {"cascade", {{"cost_per_query", e.cascade_cost},
                           {"cost_per_million", e.cascade_cost * 1e6},
                           {"mean_latency_ms", e.mean_latency_ms}}},
              {"saving_vs_top_only", e.saving_vs_top_only},
              {"saving_vs_cache_top", e.saving_vs_cache_top},
              {"break_even_escalation_rate", e.break_even_escalation_rate},
              {"latency_mix", paths}};
    std::printf("%s\n", j.dump(2).c_str());
    return Status::ok();
  }
  std::printf("Config %s: tier 1 '%s', top tier '%s'%s%s%s\n", config.path.c_str(),
              e.tier1_name.c_str(), e.tier2_name.c_str(), e.cache_name.empty() ? "" : ", cache '",
              e.cache_name.c_str(), e.cache_name.empty() ? "" : "'");
  std::printf("Per query: %g tokens in, %g tokens out. Escalation rate %.3g (%s), cache hit rate "
              "%.3g\n\n",
              in.tokens_in, in.tokens_out, in.escalation_rate, rate_source.c_str(),
              in.cache_hit_rate);
  std::printf("%-12s %-7s %12s %12s %14s\n", "tier", "kind", "$/M in", "$/M out", "$/query");
  for (const cascade::TierConfig& t : config.tiers) {
    std::printf("%-12s %-7s %12.4g %12.4g %14.4g%s\n", t.name.c_str(),
                cascade::tier_kind_name(t.kind), t.price_in_per_mtok, t.price_out_per_mtok,
                cascade::tier_query_cost(t, in.tokens_in, in.tokens_out),
                t.price_set || t.kind == cascade::TierKind::kCache ? ""
                                                                   : "  (default from params)");
  }
  std::printf("\n%-26s %14s %16s %10s\n", "deployment", "$/query", "$/million queries",
              "saving");
  std::printf("%-26s %14.4g %16s %10s\n", "top tier only", e.top_only_cost,
              money(e.top_only_cost * 1e6).c_str(), "-");
  if (!e.cache_name.empty()) {
    std::printf("%-26s %14.4g %16s %10s\n", "cache + top tier", e.cache_top_cost,
                money(e.cache_top_cost * 1e6).c_str(),
                pct(e.top_only_cost > 0 ? 1 - e.cache_top_cost / e.top_only_cost : 0).c_str());
  }
  std::printf("%-26s %14.4g %16s %10s\n", "cascade", e.cascade_cost,
              money(e.cascade_cost * 1e6).c_str(), pct(e.saving_vs_top_only).c_str());
  std::printf("\nBreak-even escalation rate: %.3f (1 - tier-1 cost / top-tier cost); the cascade "
              "is cheaper below it.\n\n",
              e.break_even_escalation_rate);
  std::printf("%-14s %12s %12s %14s\n", "latency path", "probability", "latency", "$/query");
  for (const plan::CascadePath& p : e.paths) {
    if (p.label == "cache" && e.cache_name.empty()) continue;
    std::printf("%-14s %12.3f %9.0f ms %14.4g\n", p.label.c_str(), p.probability, p.latency_ms,
                p.cost);
  }
  std::printf("Mean latency %.0f ms (top tier only: %.0f ms)\n", e.mean_latency_ms,
              e.top_only_latency_ms);
  return Status::ok();
}

}  // namespace

void register_plan(CLI::App& app, int& exit_code) {
  auto* plan_cmd = app.add_subcommand(
      "plan", "Cost planning: model size vs inference volume, KV-cache memory, cascades");
  plan_cmd->require_subcommand(1);

  auto size = std::make_shared<SizeFlags>();
  auto* size_cmd = plan_cmd->add_subcommand(
      "size", "Compute-optimal vs inference-aware model size for a target loss");
  size->loss_opt =
      size_cmd->add_option("--loss", size->loss, "Target loss (nats per token, Chinchilla fit)");
  size_cmd->add_option("--ref", size->ref,
                       "Target the loss of a named configuration (chinchilla-70b, llama2-7b, ...)");
  size_cmd->add_option("--ref-params", size->ref_params, "Target the loss of N parameters ...");
  size_cmd->add_option("--ref-tokens", size->ref_tokens, "... trained on D tokens");
  size_cmd->add_option("--max-tokens", size->max_tokens,
                       "Cap on training tokens for the inference-aware choice (e.g. 15T)");
  add_price_flags(size_cmd, size->prices);
  size_cmd->callback([size, &exit_code] {
    Status s = run_size(*size);
    if (!s.is_ok()) fail("size", s, exit_code);
  });

  auto compare = std::make_shared<CompareFlags>();
  auto* compare_cmd = plan_cmd->add_subcommand(
      "compare", "Put PARAMS:TOKENS configurations side by side (loss, training and inference)");
  compare_cmd->add_option("configs", compare->configs, "Configurations, e.g. 3B:600B 10B:200B")
      ->required();
  add_price_flags(compare_cmd, compare->prices);
  compare_cmd->callback([compare, &exit_code] {
    Status s = run_compare(*compare);
    if (!s.is_ok()) fail("compare", s, exit_code);
  });

  auto memory = std::make_shared<MemoryFlags>();
  auto* memory_cmd = plan_cmd->add_subcommand(
      "memory", "Weight and KV-cache memory, concurrent sequences, MHA vs GQA vs MQA");
  memory_cmd->add_option("--gguf", memory->gguf, "Read dimensions and weights from a GGUF file");
  // Dimensions far beyond any model (a million layers or heads) are refused here.
  memory_cmd->add_option("--n-layer", memory->n_layer, "Transformer blocks")
      ->check(int_range(0, 1 << 20));
  memory_cmd->add_option("--n-head", memory->n_head, "Query heads")->check(int_range(0, 1 << 20));
  memory_cmd->add_option("--n-head-kv", memory->n_head_kv, "KV heads (default: --n-head)")
      ->check(int_range(0, 1 << 20));
  memory_cmd->add_option("--head-dim", memory->head_dim, "Dimension of one head")
      ->check(int_range(0, 1 << 20));
  memory_cmd->add_option("--n-embd", memory->n_embd, "Embedding width (head dim = n_embd/n_head)")
      ->check(int_range(0, 1 << 30));
  memory_cmd->add_option("--params", memory->params, "Parameter count, for weight memory");
  memory->weight_type_opt = memory_cmd->add_option(
      "--weight-type", memory->weight_type,
      "Weight type with --params (default f16; q8_0, q4_0, q4_K, ...)");
  memory_cmd->add_option("--kv-type", memory->kv_type,
                         "KV cache element type: f32, f16 (default), bf16, q8_0, q4_0");
  memory_cmd->add_option("--context", memory->context,
                         "Tokens per sequence (default: the model's training context)")
      ->check(int_range(0, kMaxContextTokens));
  memory_cmd->add_option("--budget-gb", memory->budget_gb,
                         "Memory budget in GB (10^9 bytes; default 80)")
      ->check(real_range(0, 1e9));
  memory_cmd->add_flag("--json", memory->json, "Print one JSON object instead of tables");
  memory_cmd->callback([memory, &exit_code] {
    Status s = run_memory(*memory);
    if (!s.is_ok()) fail("memory", s, exit_code);
  });

  auto cascade_flags = std::make_shared<CascadeFlags>();
  auto* cascade_cmd = plan_cmd->add_subcommand(
      "cascade", "Cost per query of the top tier alone vs the cascade; break-even; latency mix");
  cascade_cmd->add_option("--config", cascade_flags->config,
                          "Cascade config (default frugal.toml)");
  cascade_flags->escalation_rate_opt =
      cascade_cmd->add_option("--escalation-rate", cascade_flags->escalation_rate,
                              "Share of non-cached queries tier 1 escalates to the top tier")
          ->check(real_range(0, 1));
  cascade_cmd->add_option("--eval", cascade_flags->eval,
                          "Read cascade.escalation_rate from a `frugal eval` result JSON");
  cascade_cmd->add_option("--tokens-in", cascade_flags->tokens_in,
                          "Prompt tokens per query (default 500)")
      ->check(real_range(0, plan::kMaxTokensPerRequest));
  cascade_cmd->add_option("--tokens-out", cascade_flags->tokens_out,
                          "Generated tokens per query (default 200)")
      ->check(real_range(0, plan::kMaxTokensPerRequest));
  cascade_flags->cache_hit_rate_opt =
      cascade_cmd->add_option("--cache-hit-rate", cascade_flags->cache_hit_rate,
                              "Share of queries the cache answers (default 0)")
          ->check(real_range(0, 1));
  cascade_cmd->add_flag("--json", cascade_flags->json, "Print one JSON object instead of tables");
  cascade_cmd->callback([cascade_flags, &exit_code] {
    Status s = run_cascade(*cascade_flags);
    if (!s.is_ok()) fail("cascade", s, exit_code);
  });
}

}  // namespace frugal::cli
