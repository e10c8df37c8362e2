// Reads frugal.toml into a CascadeConfig with toml++, refusing unknown keys by name and line.
#include "cascade/config.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <memory>
#include <set>
#include <sstream>
#include <string_view>
#include <toml++/toml.h>

#include "cascade/features.h"
#include "engine/gguf.h"
#include "util/file_io.h"

namespace frugal::cascade {

namespace {

// Bounds on counts, so that a typo cannot ask for an impossible allocation: answers as long as
// the CLI's -n allows, a window no answer could fill, a cache of a billion answers.
constexpr int64_t kMaxAnswerTokens = int64_t{1} << 30;
constexpr int64_t kMaxEarlyEscalationWindow = int64_t{1} << 16;
constexpr int64_t kMaxCacheCapacity = int64_t{1} << 30;
// Prices, parameter counts and latency hints above this are typos (a quadrillion parameters,
// $1e15 per million tokens), and products of them would print as inf.
constexpr double kMaxNumber = 1e15;

constexpr std::string_view kTopKeys[] = {"cascade", "tier", "server", "shadow"};
constexpr std::string_view kServerKeys[] = {"name",           "api_keys_env",   "api_keys_file",
                                            "ledger",         "max_body_bytes", "max_prompt_chars",
                                            "request_timeout_s", "http_threads",
                                            "admin_keys_env", "distill_log",
                                            "distill_log_max_bytes"};
constexpr std::string_view kShadowKeys[] = {
    "fraction",           "budget_per_hour", "compare",           "short_answer_chars",
    "queue",              "workers",         "expected_agreement", "slice_agreement",
    "drift_shift",        "false_alarm_rate", "action",           "max_slices"};
constexpr std::string_view kCascadeKeys[] = {"threshold",
                                             "local_price_per_flop",
                                             "max_tokens",
                                             "early_escalation_logprob",
                                             "early_escalation_window",
                                             "speculative_escalation",
                                             "speculative_cascade_alpha",
                                             "scorer"};
constexpr std::string_view kScorerKeys[] = {"bias", "weights"};
constexpr std::string_view kTierKeys[] = {
    "name",     "kind",      "model",  "url",
    "remote_model", "api_key_env", "price_in", "price_out",
    "params",   "latency_ms_per_token", "latency_ms_fixed", "capacity",
    // local
    "draft", "speculative", "draft_vocab",
    // remote
    "logprobs", "connect_timeout_ms", "first_token_timeout_ms", "total_timeout_ms",
    "max_retries", "retry_backoff_ms", "breaker_failures", "breaker_cooldown_ms", "ca_file",
    // cache
    "backend", "ttl_s", "semantic", "similarity", "semantic_check", "semantic_max_gap",
    "embedding_model"};
constexpr std::string_view kRemoteOnlyKeys[] = {
    "remote_model", "api_key_env", "logprobs", "connect_timeout_ms", "first_token_timeout_ms",
    "total_timeout_ms", "max_retries", "retry_backoff_ms", "breaker_failures",
    "breaker_cooldown_ms", "ca_file"};
constexpr std::string_view kCacheOnlyKeys[] = {
    "capacity", "backend", "ttl_s", "semantic", "similarity", "semantic_check",
    "semantic_max_gap", "embedding_model"};
constexpr int64_t kMaxTimeoutMs = int64_t{1} << 31;  // ~25 days

template <size_t N>
std::string join_keys(const std::string_view (&keys)[N]) {
  std::string out;
  for (std::string_view k : keys) {
    if (!out.empty()) out += ", ";
    out += k;
  }
  return out;
}

// Reads one TOML document's values, remembering the file name for every message.
class ConfigReader {
 public:
  ConfigReader(std::string name, std::string base_dir)
      : name_(std::move(name)), base_dir_(std::move(base_dir)) {}

  Result<CascadeConfig> read(const std::string& text);

 private:
  Status error_at(const toml::source_region& where, const std::string& what) const {
    std::ostringstream os;
    os << name_;
    if (where.begin.line > 0) os << ":" << where.begin.line;
    os << ": " << what;
    return invalid_argument(os.str());
  }

  template <size_t N>
  Status check_keys(const toml::table& table, const std::string_view (&allowed)[N],
                    const std::string& where) const {
    for (auto&& [key, node] : table) {
      bool known = false;
      for (std::string_view k : allowed) known = known || key.str() == k;
      if (!known) {
        return error_at(key.source(), "unknown key '" + std::string(key.str()) + "' in " + where +
                                          " (known keys: " + join_keys(allowed) + ")");
      }
    }
    return Status::ok();
  }

  // Reads an optional non-negative number; `*out` keeps its value when the key is absent.
  Status read_number(const toml::table& table, std::string_view key, const std::string& where,
                     double* out, bool* present = nullptr) const {
    const toml::node* node = table.get(key);
    if (present != nullptr) *present = node != nullptr;
    if (node == nullptr) return Status::ok();
    if (!node->is_number()) {
      return error_at(node->source(), "'" + std::string(key) + "' in " + where +
                                          " must be a number");
    }
    double v = node->value<double>().value_or(0);
    if (!(v >= 0) || v > kMaxNumber) {
      char got[64];
      std::snprintf(got, sizeof(got), "%g", v);
      return error_at(node->source(), "'" + std::string(key) + "' in " + where +
                                          " must be a number from 0 to 1e15 (got " + got + ")");
    }
    *out = v;
    return Status::ok();
  }

  // Reads an optional integer in [min, max]; `*out` keeps its value when the key is absent.
  Status read_count(const toml::table& table, std::string_view key, const std::string& where,
                    int64_t min, int64_t max, int64_t* out, bool* present = nullptr) const {
    const toml::node* node = table.get(key);
    if (present != nullptr) *present = node != nullptr;
    if (node == nullptr) return Status::ok();
    const int64_t v = node->is_integer() ? node->value<int64_t>().value_or(min - 1) : min - 1;
    if (!node->is_integer() || v < min || v > max) {
      return error_at(node->source(), "'" + std::string(key) + "' in " + where +
                                          " must be an integer from " + std::to_string(min) +
                                          " to " + std::to_string(max) +
                                          (node->is_integer() ? " (got " + std::to_string(v) + ")"
                                                              : std::string()));
    }
    *out = v;
    return Status::ok();
  }

  // Reads an optional finite number of either sign.
  Status read_signed(const toml::table& table, std::string_view key, const std::string& where,
                     double* out, bool* present = nullptr) const {
    const toml::node* node = table.get(key);
    if (present != nullptr) *present = node != nullptr;
    if (node == nullptr) return Status::ok();
    double v = node->is_number() ? node->value<double>().value_or(0) : 0;
    if (!node->is_number() || !std::isfinite(v)) {
      return error_at(node->source(), "'" + std::string(key) + "' in " + where +
                                          " must be a finite number");
    }
    *out = v;
    return Status::ok();
  }

  Status read_scorer(const toml::node& node, ScorerConfig* scorer) const;
  Status read_server(const toml::node& node, ServerConfig* server) const;
  Status read_shadow(const toml::node& node, ShadowConfig* shadow) const;
  std::string resolve(const std::string& path) const {
    std::filesystem::path p(path);
    if (p.is_relative() && !base_dir_.empty()) p = base_dir_ / p;
    return p.lexically_normal().string();
  }

  Status read_string(const toml::table& table, std::string_view key, const std::string& where,
                     std::string* out) const {
    const toml::node* node = table.get(key);
    if (node == nullptr) return Status::ok();
    if (!node->is_string()) {
      return error_at(node->source(), "'" + std::string(key) + "' in " + where +
                                          " must be a string");
    }
    *out = node->value<std::string>().value_or("");
    return Status::ok();
  }

  Status read_bool(const toml::table& table, std::string_view key, const std::string& where,
                   bool* out) const {
    const toml::node* node = table.get(key);
    if (node == nullptr) return Status::ok();
    if (!node->is_boolean()) {
      return error_at(node->source(), "'" + std::string(key) + "' in " + where +
                                          " must be true or false");
    }
    *out = node->value<bool>().value_or(false);
    return Status::ok();
  }

  Status read_tier(const toml::table& table, int index, double price_per_flop, TierConfig* tier);
  Status read_remote(const toml::table& table, const std::string& where, TierConfig* tier) const;
  Status read_cache(const toml::table& table, const std::string& where, TierConfig* tier) const;

  std::string name_;
  std::string base_dir_;
};

Status ConfigReader::read_remote(const toml::table& table, const std::string& where,
                                 TierConfig* tier) const {
  if (tier->url.empty()) {
    return error_at(table.source(), where + " is remote and needs 'url' (the base URL of "
                                            "an OpenAI-compatible API)");
  }
  if (tier->url.rfind("http://", 0) != 0 && tier->url.rfind("https://", 0) != 0) {
    return error_at(table.get("url")->source(), "'url' in " + where + " must start with "
                                                "http:// or https:// (got \"" + tier->url + "\")");
  }
  if (!tier->price_set) {
    return error_at(table.source(), where + " is remote and needs price_in and price_out "
                                            "($ per million input / output tokens)");
  }
  FRUGAL_RETURN_IF_ERROR(read_bool(table, "logprobs", where, &tier->logprobs));
  FRUGAL_RETURN_IF_ERROR(read_count(table, "connect_timeout_ms", where, 1, kMaxTimeoutMs,
                                    &tier->connect_timeout_ms));
  FRUGAL_RETURN_IF_ERROR(read_count(table, "first_token_timeout_ms", where, 1, kMaxTimeoutMs,
                                    &tier->first_token_timeout_ms));
  FRUGAL_RETURN_IF_ERROR(read_count(table, "total_timeout_ms", where, 1, kMaxTimeoutMs,
                                    &tier->total_timeout_ms));
  FRUGAL_RETURN_IF_ERROR(read_count(table, "max_retries", where, 0, 100, &tier->max_retries));
  FRUGAL_RETURN_IF_ERROR(read_count(table, "retry_backoff_ms", where, 0, kMaxTimeoutMs,
                                    &tier->retry_backoff_ms));
  FRUGAL_RETURN_IF_ERROR(read_count(table, "breaker_failures", where, 0, 1000000,
                                    &tier->breaker_failures));
  FRUGAL_RETURN_IF_ERROR(read_count(table, "breaker_cooldown_ms", where, 1, kMaxTimeoutMs,
                                    &tier->breaker_cooldown_ms));
  FRUGAL_RETURN_IF_ERROR(read_string(table, "ca_file", where, &tier->ca_file));
  if (!tier->ca_file.empty()) tier->ca_file = resolve(tier->ca_file);
  return Status::ok();
}

Status ConfigReader::read_cache(const toml::table& table, const std::string& where,
                                TierConfig* tier) const {
  FRUGAL_RETURN_IF_ERROR(read_count(table, "capacity", where, 1, kMaxCacheCapacity,
                                    &tier->cache_capacity));
  std::string backend = "memory";
  FRUGAL_RETURN_IF_ERROR(read_string(table, "backend", where, &backend));
  if (backend == "memory") {
    tier->cache_backend = TierConfig::CacheBackend::kMemory;
    if (const toml::node* url = table.get("url")) {
      return error_at(url->source(), "'url' in " + where + " only applies to remote tiers "
                                     "and to caches with backend = \"redis\"");
    }
  } else if (backend == "redis") {
    tier->cache_backend = TierConfig::CacheBackend::kRedis;
    if (tier->url.empty()) tier->url = "redis://127.0.0.1:6379/0";
    if (tier->url.rfind("redis://", 0) != 0) {
      return error_at(table.get("url")->source(), "'url' in " + where + " must look like "
                      "redis://HOST:PORT/DB (got \"" + tier->url + "\")");
    }
  } else {
    return error_at(table.get("backend")->source(), "'backend' in " + where +
                    " must be \"memory\" or \"redis\" (got \"" + backend + "\")");
  }
  FRUGAL_RETURN_IF_ERROR(read_count(table, "ttl_s", where, 0, int64_t{1} << 31, &tier->ttl_s));
  FRUGAL_RETURN_IF_ERROR(read_bool(table, "semantic", where, &tier->semantic));
  FRUGAL_RETURN_IF_ERROR(read_number(table, "similarity", where, &tier->similarity));
  if (tier->similarity > 1) {
    return error_at(table.get("similarity")->source(),
                    "'similarity' in " + where + " is a cosine similarity and must be in [0, 1]");
  }
  FRUGAL_RETURN_IF_ERROR(read_bool(table, "semantic_check", where, &tier->semantic_check));
  FRUGAL_RETURN_IF_ERROR(read_number(table, "semantic_max_gap", where, &tier->semantic_max_gap));
  FRUGAL_RETURN_IF_ERROR(read_string(table, "embedding_model", where, &tier->embedding_model));
  if (!tier->embedding_model.empty()) tier->embedding_model = resolve(tier->embedding_model);
  if (!tier->semantic) {
    for (std::string_view key :
         {"similarity", "semantic_check", "semantic_max_gap", "embedding_model"}) {
      if (const toml::node* node = table.get(key)) {
        return error_at(node->source(), "'" + std::string(key) + "' in " + where +
                                            " only applies with semantic = true");
      }
    }
  }
  return Status::ok();
}

Status ConfigReader::read_tier(const toml::table& table, int index, double price_per_flop,
                               TierConfig* tier) {
  tier->line = static_cast<int>(table.source().begin.line);
  std::string where = "[[tier]] #" + std::to_string(index + 1);
  FRUGAL_RETURN_IF_ERROR(check_keys(table, kTierKeys, where));
  FRUGAL_RETURN_IF_ERROR(read_string(table, "name", where, &tier->name));
  if (tier->name.empty()) return error_at(table.source(), where + " needs a non-empty 'name'");
  where += " ('" + tier->name + "')";

  std::string kind;
  FRUGAL_RETURN_IF_ERROR(read_string(table, "kind", where, &kind));
  if (kind == "cache") {
    tier->kind = TierKind::kCache;
  } else if (kind == "local") {
    tier->kind = TierKind::kLocal;
  } else if (kind == "remote") {
    tier->kind = TierKind::kRemote;
  } else {
    const toml::node* node = table.get("kind");
    return error_at(node != nullptr ? node->source() : table.source(),
                    where + " needs 'kind' = \"cache\", \"local\" or \"remote\"" +
                        (kind.empty() ? std::string() : " (got \"" + kind + "\")"));
  }

  std::string model;
  FRUGAL_RETURN_IF_ERROR(read_string(table, "model", where, &model));
  FRUGAL_RETURN_IF_ERROR(read_string(table, "url", where, &tier->url));
  FRUGAL_RETURN_IF_ERROR(read_string(table, "remote_model", where, &tier->remote_model));
  FRUGAL_RETURN_IF_ERROR(read_string(table, "api_key_env", where, &tier->api_key_env));
  bool has_in = false, has_out = false, has_params = false;
  FRUGAL_RETURN_IF_ERROR(read_number(table, "price_in", where, &tier->price_in_per_mtok, &has_in));
  FRUGAL_RETURN_IF_ERROR(
      read_number(table, "price_out", where, &tier->price_out_per_mtok, &has_out));
  FRUGAL_RETURN_IF_ERROR(read_number(table, "params", where, &tier->params, &has_params));
  FRUGAL_RETURN_IF_ERROR(
      read_number(table, "latency_ms_per_token", where, &tier->latency_ms_per_token_hint));
  FRUGAL_RETURN_IF_ERROR(
      read_number(table, "latency_ms_fixed", where, &tier->latency_ms_fixed_hint));
  if (has_in != has_out) {
    return error_at(table.source(), where + " sets only one of price_in / price_out; set both "
                                            "($ per million input / output tokens)");
  }
  tier->price_set = has_in && has_out;

  // Keys that belong to another kind are mistakes worth naming.
  auto refuse = [&](std::string_view key, const char* kinds) -> Status {
    const toml::node* node = table.get(key);
    if (node == nullptr) return Status::ok();
    return error_at(node->source(), "'" + std::string(key) + "' in " + where +
                                        " only applies to " + kinds + " tiers");
  };
  if (tier->kind != TierKind::kCache) {
    for (std::string_view key : kCacheOnlyKeys) FRUGAL_RETURN_IF_ERROR(refuse(key, "cache"));
  }
  if (tier->kind != TierKind::kRemote) {
    for (std::string_view key : kRemoteOnlyKeys) FRUGAL_RETURN_IF_ERROR(refuse(key, "remote"));
  }
  switch (tier->kind) {
    case TierKind::kCache:
      FRUGAL_RETURN_IF_ERROR(refuse("model", "local"));
      FRUGAL_RETURN_IF_ERROR(refuse("params", "local"));
      return read_cache(table, where, tier);  // an unpriced cache costs nothing
    case TierKind::kRemote:
      FRUGAL_RETURN_IF_ERROR(refuse("model", "local"));
      return read_remote(table, where, tier);
    case TierKind::kLocal:
      break;
  }
  FRUGAL_RETURN_IF_ERROR(refuse("url", "remote"));
  if (model.empty()) {
    return error_at(table.source(), where + " is local and needs 'model' (a GGUF path, "
                                            "relative to the config file's folder)");
  }
  std::filesystem::path model_path(model);
  if (model_path.is_relative() && !base_dir_.empty()) model_path = base_dir_ / model_path;
  tier->model = model_path.lexically_normal().string();
  // Speculative decoding: a draft model (same vocabulary) and/or prompt lookup.
  FRUGAL_RETURN_IF_ERROR(read_string(table, "draft", where, &tier->draft));
  if (!tier->draft.empty()) {
    std::filesystem::path d(tier->draft);
    if (d.is_relative() && !base_dir_.empty()) d = base_dir_ / d;
    tier->draft = d.lexically_normal().string();
    tier->speculative = "draft";
  }
  FRUGAL_RETURN_IF_ERROR(read_string(table, "speculative", where, &tier->speculative));
  if (tier->speculative != "none" && tier->speculative != "ngram" && tier->speculative != "draft") {
    return error_at(table.get("speculative")->source(),
                    where + ": 'speculative' is '" + tier->speculative +
                        "'; use \"none\", \"ngram\" (prompt lookup) or \"draft\" (with 'draft')");
  }
  FRUGAL_RETURN_IF_ERROR(read_count(table, "draft_vocab", where, 0, int64_t{1} << 31,
                                    &tier->draft_vocab));
  if (tier->speculative == "draft" && tier->draft.empty()) {
    return error_at(table.source(), where + ": speculative = \"draft\" needs 'draft' (a GGUF "
                                            "path with this model's vocabulary)");
  }
  if (tier->price_set) return Status::ok();

  // No price: derive it from the parameter count — from `params`, else from the model file.
  if (!has_params) {
    std::error_code ec;
    if (!std::filesystem::exists(tier->model, ec)) {
      return error_at(table.source(),
                      where + " has no price and its model file " + tier->model +
                          " does not exist; set price_in and price_out ($ per million tokens), "
                          "or 'params' (parameter count) to derive a default price");
    }
    auto file = GgufFile::open(tier->model);
    if (!file.is_ok()) {
      return Status(file.status().code(),
                    name_ + ": " + where + ": cannot read " + tier->model +
                        " to derive its price (" + file.status().message() +
                        "); set price_in and price_out");
    }
    double n = 0;
    for (const GgufTensorInfo& t : (*file)->tensors()) n += static_cast<double>(t.n_elements());
    tier->params = n;
  }
  // 2·N FLOPs per token, input and output alike, per million tokens.
  double per_mtok = 2.0 * tier->params * 1e6 * price_per_flop;
  tier->price_in_per_mtok = per_mtok;
  tier->price_out_per_mtok = per_mtok;
  return Status::ok();
}

Status ConfigReader::read_scorer(const toml::node& node, ScorerConfig* scorer) const {
  const toml::table* table = node.as_table();
  if (table == nullptr) return error_at(node.source(), "'scorer' in [cascade] must be a table");
  FRUGAL_RETURN_IF_ERROR(check_keys(*table, kScorerKeys, "[cascade.scorer]"));
  scorer->set = true;
  FRUGAL_RETURN_IF_ERROR(read_signed(*table, "bias", "[cascade.scorer]", &scorer->bias));
  const toml::node* weights_node = table->get("weights");
  if (weights_node == nullptr) return Status::ok();
  const toml::table* weights = weights_node->as_table();
  if (weights == nullptr) {
    return error_at(weights_node->source(),
                    "'weights' in [cascade.scorer] must be a table of feature name = weight");
  }
  const std::vector<std::string>& names = scorer_feature_names();
  for (auto&& [key, value] : *weights) {
    const std::string name(key.str());
    bool known = false;
    std::string all;
    for (const std::string& n : names) {
      known = known || n == name;
      all += (all.empty() ? "" : ", ") + n;
    }
    if (!known) {
      return error_at(key.source(), "unknown feature '" + name +
                                        "' in [cascade.scorer] weights (known: " + all + ")");
    }
    double w = 0;
    FRUGAL_RETURN_IF_ERROR(read_signed(*weights, name, "[cascade.scorer] weights", &w));
    scorer->weights.emplace_back(name, w);
  }
  return Status::ok();
}

Status ConfigReader::read_server(const toml::node& node, ServerConfig* server) const {
  const toml::table* table = node.as_table();
  if (table == nullptr) return error_at(node.source(), "'server' must be a table");
  const std::string where = "[server]";
  FRUGAL_RETURN_IF_ERROR(check_keys(*table, kServerKeys, where));
  FRUGAL_RETURN_IF_ERROR(read_string(*table, "name", where, &server->name));
  if (server->name.empty()) return error_at(table->source(), "'name' in [server] is empty");
  FRUGAL_RETURN_IF_ERROR(read_string(*table, "api_keys_env", where, &server->api_keys_env));
  FRUGAL_RETURN_IF_ERROR(read_string(*table, "api_keys_file", where, &server->api_keys_file));
  if (!server->api_keys_file.empty()) server->api_keys_file = resolve(server->api_keys_file);
  FRUGAL_RETURN_IF_ERROR(read_string(*table, "ledger", where, &server->ledger));
  if (!server->ledger.empty()) server->ledger = resolve(server->ledger);
  FRUGAL_RETURN_IF_ERROR(read_count(*table, "max_body_bytes", where, 1024, int64_t{1} << 30,
                                    &server->max_body_bytes));
  FRUGAL_RETURN_IF_ERROR(read_count(*table, "max_prompt_chars", where, 1, int64_t{1} << 30,
                                    &server->max_prompt_chars));
  FRUGAL_RETURN_IF_ERROR(read_count(*table, "request_timeout_s", where, 1, 86400,
                                    &server->request_timeout_s));
  FRUGAL_RETURN_IF_ERROR(read_count(*table, "http_threads", where, 2, 4096,
                                    &server->http_threads));
  FRUGAL_RETURN_IF_ERROR(read_string(*table, "admin_keys_env", where, &server->admin_keys_env));
  FRUGAL_RETURN_IF_ERROR(read_string(*table, "distill_log", where, &server->distill_log));
  if (!server->distill_log.empty()) server->distill_log = resolve(server->distill_log);
  FRUGAL_RETURN_IF_ERROR(read_count(*table, "distill_log_max_bytes", where, 4096,
                                    int64_t{1} << 50, &server->distill_log_max_bytes));
  return Status::ok();
}

Status ConfigReader::read_shadow(const toml::node& node, ShadowConfig* shadow) const {
  const toml::table* table = node.as_table();
  if (table == nullptr) return error_at(node.source(), "'shadow' must be a table");
  const std::string where = "[shadow]";
  FRUGAL_RETURN_IF_ERROR(check_keys(*table, kShadowKeys, where));
  // A probability in [0, 1] (open at 0 or 1 where `open` says so).
  auto read_probability = [&](std::string_view key, double* out, bool open0, bool open1) {
    FRUGAL_RETURN_IF_ERROR(read_number(*table, key, where, out));
    const double v = *out;
    if (table->get(key) != nullptr && (v > 1 || (open0 && v == 0) || (open1 && v == 1))) {
      return error_at(table->get(key)->source(),
                      "'" + std::string(key) + "' in [shadow] must be in " + (open0 ? "(" : "[") +
                          "0, 1" + (open1 ? ")" : "]"));
    }
    return Status::ok();
  };
  FRUGAL_RETURN_IF_ERROR(read_probability("fraction", &shadow->fraction, false, false));
  FRUGAL_RETURN_IF_ERROR(read_number(*table, "budget_per_hour", where, &shadow->budget_per_hour));
  FRUGAL_RETURN_IF_ERROR(read_string(*table, "compare", where, &shadow->compare));
  if (shadow->compare != "auto" && shadow->compare != "exact" && shadow->compare != "logprob") {
    return error_at(table->get("compare")->source(),
                    "'compare' in [shadow] must be \"auto\", \"exact\" or \"logprob\"");
  }
  FRUGAL_RETURN_IF_ERROR(read_count(*table, "short_answer_chars", where, 0, int64_t{1} << 20,
                                    &shadow->short_answer_chars));
  FRUGAL_RETURN_IF_ERROR(read_count(*table, "queue", where, 1, int64_t{1} << 20, &shadow->queue));
  FRUGAL_RETURN_IF_ERROR(read_count(*table, "workers", where, 1, 256, &shadow->workers));
  FRUGAL_RETURN_IF_ERROR(
      read_probability("expected_agreement", &shadow->expected_agreement, false, true));
  if (const toml::node* sa = table->get("slice_agreement")) {
    const toml::table* slices = sa->as_table();
    if (slices == nullptr) {
      return error_at(sa->source(), "'slice_agreement' in [shadow] must be a table of "
                                    "slice = agreement ([shadow.slice_agreement])");
    }
    for (auto&& [key, value] : *slices) {
      double v = value.is_number() ? value.value<double>().value_or(-1) : -1;
      if (!(v > 0 && v < 1)) {
        return error_at(value.source(), "slice '" + std::string(key.str()) +
                                            "' in [shadow.slice_agreement] must be a number in "
                                            "(0, 1)");
      }
      shadow->slice_agreement.emplace_back(std::string(key.str()), v);
    }
  }
  FRUGAL_RETURN_IF_ERROR(read_probability("drift_shift", &shadow->drift_shift, true, true));
  FRUGAL_RETURN_IF_ERROR(read_probability("false_alarm_rate", &shadow->false_alarm_rate, true, true));
  FRUGAL_RETURN_IF_ERROR(read_string(*table, "action", where, &shadow->action));
  if (shadow->action != "alert" && shadow->action != "escalate-all") {
    return error_at(table->get("action")->source(),
                    "'action' in [shadow] must be \"alert\" or \"escalate-all\"");
  }
  if (shadow->expected_agreement > 0 && shadow->expected_agreement - shadow->drift_shift <= 0) {
    return error_at(table->source(), "[shadow] drift_shift must be below expected_agreement");
  }
  FRUGAL_RETURN_IF_ERROR(read_count(*table, "max_slices", where, 0, 4096, &shadow->max_slices));
  return Status::ok();
}

Result<CascadeConfig> ConfigReader::read(const std::string& text) {
  toml::table root;
  try {
    root = toml::parse(text, name_);
  } catch (const toml::parse_error& e) {
    return error_at(e.source(), "TOML syntax error: " + std::string(e.description()));
  }
  CascadeConfig config;
  config.path = name_;
  for (auto&& [key, node] : root) {
    bool known = false;
    for (std::string_view k : kTopKeys) known = known || key.str() == k;
    if (!known) {
      return error_at(key.source(), "unknown key or table '" + std::string(key.str()) +
                                        "' (known: [cascade], [[tier]], [server], [shadow])");
    }
  }

  if (const toml::node* node = root.get("cascade")) {
    const toml::table* cascade = node->as_table();
    if (cascade == nullptr) return error_at(node->source(), "'cascade' must be a table");
    FRUGAL_RETURN_IF_ERROR(check_keys(*cascade, kCascadeKeys, "[cascade]"));
    FRUGAL_RETURN_IF_ERROR(read_number(*cascade, "threshold", "[cascade]", &config.threshold));
    if (config.threshold > 1) {
      return error_at(cascade->get("threshold")->source(),
                      "'threshold' in [cascade] is a probability and must be in [0, 1]");
    }
    FRUGAL_RETURN_IF_ERROR(read_number(*cascade, "local_price_per_flop", "[cascade]",
                                       &config.local_price_per_flop));
    FRUGAL_RETURN_IF_ERROR(read_count(*cascade, "max_tokens", "[cascade]", 1, kMaxAnswerTokens,
                                      &config.max_tokens));
    FRUGAL_RETURN_IF_ERROR(read_count(*cascade, "early_escalation_window", "[cascade]", 1,
                                      kMaxEarlyEscalationWindow,
                                      &config.early_escalation_window));
    if (const toml::node* se = cascade->get("speculative_escalation")) {
      if (!se->is_boolean()) {
        return error_at(se->source(), "'speculative_escalation' in [cascade] must be true or false");
      }
      config.speculative_escalation = se->value<bool>().value_or(true);
    }
    FRUGAL_RETURN_IF_ERROR(read_signed(*cascade, "speculative_cascade_alpha", "[cascade]",
                                       &config.speculative_cascade_alpha,
                                       &config.speculative_cascade));
    if (config.speculative_cascade &&
        (config.speculative_cascade_alpha < -1 || config.speculative_cascade_alpha > 1)) {
      return error_at(cascade->get("speculative_cascade_alpha")->source(),
                      "'speculative_cascade_alpha' in [cascade] is a probability margin and must "
                      "be in [-1, 1] (-1 keeps the top tier's own answer)");
    }
    if (config.speculative_cascade && !config.speculative_escalation) {
      return error_at(cascade->get("speculative_cascade_alpha")->source(),
                      "'speculative_cascade_alpha' in [cascade] needs speculative_escalation "
                      "(the top tier verifies tier 1's answer); remove one of the two");
    }
    FRUGAL_RETURN_IF_ERROR(read_signed(*cascade, "early_escalation_logprob", "[cascade]",
                                       &config.early_escalation_logprob,
                                       &config.early_escalation));
    if (config.early_escalation_logprob > 0) {
      return error_at(cascade->get("early_escalation_logprob")->source(),
                      "'early_escalation_logprob' in [cascade] is a log probability and must be "
                      "<= 0");
    }
    if (const toml::node* scorer = cascade->get("scorer")) {
      FRUGAL_RETURN_IF_ERROR(read_scorer(*scorer, &config.scorer));
    }
  }

  if (const toml::node* node = root.get("server")) {
    FRUGAL_RETURN_IF_ERROR(read_server(*node, &config.server));
  }
  if (const toml::node* node = root.get("shadow")) {
    FRUGAL_RETURN_IF_ERROR(read_shadow(*node, &config.shadow));
  }

  const toml::node* tiers_node = root.get("tier");
  if (tiers_node == nullptr) {
    return error_at({}, "no tiers; add at least one [[tier]] with kind = \"local\" or \"remote\"");
  }
  const toml::array* tiers = tiers_node->as_array();
  if (tiers == nullptr || !tiers->is_array_of_tables()) {
    return error_at(tiers_node->source(), "'tier' must be an array of tables: write [[tier]]");
  }
  std::set<std::string> names;
  for (size_t i = 0; i < tiers->size(); ++i) {
    TierConfig tier;
    FRUGAL_RETURN_IF_ERROR(read_tier(*tiers->get(i)->as_table(), static_cast<int>(i),
                                     config.local_price_per_flop, &tier));
    if (!names.insert(tier.name).second) {
      return error_at(tiers->get(i)->source(), "duplicate tier name '" + tier.name + "'");
    }
    if (tier.kind == TierKind::kCache && i != 0) {
      return error_at(tiers->get(i)->source(),
                      "cache tier '" + tier.name + "' must be the first [[tier]]");
    }
    config.tiers.push_back(std::move(tier));
  }
  if (config.model_tiers().empty()) {
    return error_at(tiers_node->source(),
                    "no model tier; add a [[tier]] with kind = \"local\" or \"remote\"");
  }
  return config;
}

}  // namespace

const char* tier_kind_name(TierKind kind) {
  switch (kind) {
    case TierKind::kCache:
      return "cache";
    case TierKind::kLocal:
      return "local";
    case TierKind::kRemote:
      return "remote";
  }
  return "?";
}

const TierConfig* CascadeConfig::cache_tier() const {
  for (const TierConfig& t : tiers) {
    if (t.kind == TierKind::kCache) return &t;
  }
  return nullptr;
}

std::vector<const TierConfig*> CascadeConfig::model_tiers() const {
  std::vector<const TierConfig*> out;
  for (const TierConfig& t : tiers) {
    if (t.kind != TierKind::kCache) out.push_back(&t);
  }
  return out;
}

Result<CascadeConfig> parse_cascade_config(const std::string& toml_text, const std::string& name,
                                           const std::string& base_dir) {
  return ConfigReader(name, base_dir).read(toml_text);
}

Result<CascadeConfig> load_cascade_config(const std::string& path) {
  Result<std::string> text = read_file(path);
  if (!text.is_ok()) {
    if (text.status().code() == ErrorCode::kNotFound) {
      return not_found("config file " + path +
                       " not found (pass --config PATH; frugal.toml at the repository root is "
                       "an example)");
    }
    return Status(text.status().code(), "config file " + text.status().message() +
                                            " (pass --config PATH to a TOML file)");
  }
  std::string base_dir = std::filesystem::path(path).parent_path().string();
  return parse_cascade_config(*text, path, base_dir);
}

double tier_query_cost(const TierConfig& tier, double tokens_in, double tokens_out) {
  return (tokens_in * tier.price_in_per_mtok + tokens_out * tier.price_out_per_mtok) / 1e6;
}

}  // namespace frugal::cascade
