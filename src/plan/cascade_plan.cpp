// Cascade cost and latency arithmetic over the tiers of a CascadeConfig.
#include "plan/cascade_plan.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "util/file_io.h"

namespace frugal::plan {

namespace {

Status require_rate(const char* what, double v) {
  if (!std::isfinite(v) || v < 0 || v > 1) {
    return invalid_argument(std::string(what) + " must be in [0, 1] (got " + std::to_string(v) +
                            ")");
  }
  return Status::ok();
}

double path_latency(const cascade::TierConfig& tier, double tokens_out) {
  return tier.latency_ms_fixed_hint + tier.latency_ms_per_token_hint * tokens_out;
}

}  // namespace

Result<CascadeEconomics> cascade_economics(const cascade::CascadeConfig& config,
                                           const CascadeInputs& in) {
  if (!std::isfinite(in.tokens_in) || in.tokens_in < 0) {
    return invalid_argument("tokens in per query must be >= 0");
  }
  if (!std::isfinite(in.tokens_out) || in.tokens_out < 0) {
    return invalid_argument("tokens out per query must be >= 0");
  }
  FRUGAL_RETURN_IF_ERROR(require_rate("escalation rate", in.escalation_rate));
  FRUGAL_RETURN_IF_ERROR(require_rate("cache hit rate", in.cache_hit_rate));
  std::vector<const cascade::TierConfig*> models = config.model_tiers();
  if (models.size() != 2) {
    return invalid_argument(config.path + ": plan cascade needs exactly two model tiers (tier 1 "
                            "and the top tier); it has " + std::to_string(models.size()));
  }
  const cascade::TierConfig* cache = config.cache_tier();
  if (cache == nullptr && in.cache_hit_rate > 0) {
    return invalid_argument("a cache hit rate was given but " + config.path +
                            " has no cache tier");
  }
  const cascade::TierConfig& t1 = *models[0];
  const cascade::TierConfig& t2 = *models[1];
  CascadeEconomics e;
  e.tier1_name = t1.name;
  e.tier2_name = t2.name;
  e.cache_name = cache != nullptr ? cache->name : "";
  e.tier1_cost = cascade::tier_query_cost(t1, in.tokens_in, in.tokens_out);
  e.tier2_cost = cascade::tier_query_cost(t2, in.tokens_in, in.tokens_out);
  e.cache_cost = cache != nullptr ? cascade::tier_query_cost(*cache, in.tokens_in, in.tokens_out)
                                  : 0.0;
  const double h = in.cache_hit_rate, r = in.escalation_rate;
  // Every query consults the cache (when there is one) and pays its price.
  e.top_only_cost = e.tier2_cost;
  e.cache_top_cost = e.cache_cost + (1 - h) * e.tier2_cost;
  e.cascade_cost = e.cache_cost + (1 - h) * (e.tier1_cost + r * e.tier2_cost);
  e.saving_vs_top_only = e.top_only_cost > 0 ? 1 - e.cascade_cost / e.top_only_cost : 0;
  e.saving_vs_cache_top = e.cache_top_cost > 0 ? 1 - e.cascade_cost / e.cache_top_cost : 0;
  e.break_even_escalation_rate = e.tier2_cost > 0 ? 1 - e.tier1_cost / e.tier2_cost : 0;

  const double cache_ms = cache != nullptr ? path_latency(*cache, 0) : 0.0;
  const double t1_ms = path_latency(t1, in.tokens_out);
  const double t2_ms = path_latency(t2, in.tokens_out);
  e.paths[0] = {"cache", h, cache_ms, e.cache_cost};
  // Tier 1 answers in full before the scorer can decide to escalate.
  e.paths[1] = {"tier 1 only", (1 - h) * (1 - r), cache_ms + t1_ms, e.cache_cost + e.tier1_cost};
  e.paths[2] = {"escalated", (1 - h) * r, cache_ms + t1_ms + t2_ms,
                e.cache_cost + e.tier1_cost + e.tier2_cost};
  for (const CascadePath& p : e.paths) e.mean_latency_ms += p.probability * p.latency_ms;
  e.top_only_latency_ms = t2_ms;
  return e;
}

Result<EvalRates> read_eval_rates(const std::string& path) {
  Result<std::string> text = read_file(path);
  if (!text.is_ok()) {
    if (text.status().code() == ErrorCode::kNotFound) {
      return not_found("eval result " + path + " not found");
    }
    return Status(text.status().code(), "eval result " + text.status().message());
  }
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return invalid_argument(path + " is not valid JSON");
  if (!j.is_object() || !j.contains("cascade") || !j["cascade"].is_object() ||
      !j["cascade"].contains("escalation_rate") || !j["cascade"]["escalation_rate"].is_number()) {
    return invalid_argument(path + " has no number at cascade.escalation_rate (expected "
                            "{\"cascade\": {\"escalation_rate\": 0.2, ...}, ...})");
  }
  EvalRates rates;
  rates.escalation_rate = j["cascade"]["escalation_rate"].get<double>();
  Status s = require_rate("cascade.escalation_rate", rates.escalation_rate);
  if (!s.is_ok()) return invalid_argument(path + ": " + s.message());
  const nlohmann::json& c = j["cascade"];
  if (c.contains("cache_hit_rate") && c["cache_hit_rate"].is_number()) {
    rates.has_cache_hit_rate = true;
    rates.cache_hit_rate = c["cache_hit_rate"].get<double>();
    s = require_rate("cascade.cache_hit_rate", rates.cache_hit_rate);
    if (!s.is_ok()) return invalid_argument(path + ": " + s.message());
  }
  return rates;
}

}  // namespace frugal::plan
