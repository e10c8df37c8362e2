// CascadeConfig: the project's TOML configuration (frugal.toml) — the tiers of the cascade,
// their prices and latency hints, and the escalation policy. Schema: docs/PLAN.md, "Config".
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "util/status.h"

namespace frugal::cascade {

enum class TierKind : uint8_t {
  kCache,   // response cache: answers repeated prompts at ~zero cost
  kLocal,   // a GGUF model run by this process
  kRemote,  // an OpenAI-compatible endpoint (vLLM, TGI, a hosted API)
};
const char* tier_kind_name(TierKind kind);  // "cache", "local", "remote"

// Default price of a local tier whose price is not set: 2·N FLOPs per token (N = parameter
// count) at this many dollars per FLOP. It is one H100 ($2 per GPU-hour, 989e12 dense BF16
// FLOP/s) at 20 % utilisation: 2 / (3600 · 989e12 · 0.2) ≈ 2.81e-18 $/FLOP. Overridden by
// `[cascade] local_price_per_flop`.
inline constexpr double kDefaultLocalPricePerFlop = 2.0 / (3600.0 * 989e12 * 0.2);

struct TierConfig {
  std::string name;  // unique within the config; used in logs, metrics and messages
  TierKind kind = TierKind::kLocal;
  // kLocal: the GGUF path as resolved against the config file's folder (absolute paths are
  // kept as written); empty for other kinds.
  std::string model;
  // kLocal: speculative decoding — "none", "ngram" (prompt lookup) or "draft" (the model at
  // `draft`, resolved like `model`, with the same vocabulary).
  std::string speculative = "none";
  std::string draft;
  int64_t draft_vocab = 0;  // the draft's logits over ids below this only (0: all)
  // kRemote: base URL of the OpenAI-compatible API, the model name to request there, and the
  // environment variable holding its API key (empty: no key).
  std::string url;
  std::string remote_model;
  std::string api_key_env;
  // Dollars per million input (prompt) and output (generated) tokens. When the config does
  // not set them: 0 for a cache tier; for a local tier the default derived from `params`
  // (or from the model file's parameter count) — see kDefaultLocalPricePerFlop.
  double price_in_per_mtok = 0;
  double price_out_per_mtok = 0;
  bool price_set = false;  // true when price_in and price_out came from the config
  double params = 0;       // parameter count when known (config `params` or the GGUF); 0 unknown
  // Latency hints for planning: milliseconds per generated token and a fixed overhead per
  // request (network round trip, prefill). Measured figures come from `frugal bench`.
  double latency_ms_per_token_hint = 0;
  double latency_ms_fixed_hint = 0;
  // kCache: the most answers kept in memory (least recently used dropped first); config
  // `capacity`, default 10000.
  int64_t cache_capacity = 10000;

  // kRemote (docs/CASCADE.md, "Remote tiers"). `logprobs`: the endpoint returns logprobs with
  // top_logprobs, so the tier can be tier 1 and be scored; without, it can only be a top tier.
  bool logprobs = false;
  int64_t connect_timeout_ms = 2000;     // TCP (and TLS) connection
  int64_t first_token_timeout_ms = 30000;  // from a try's start to its first streamed token
  int64_t total_timeout_ms = 300000;     // the whole answer, retries included
  // Retries of a call that failed before streaming anything (refused, 429, 5xx, no first
  // token), waiting retry_backoff_ms · 2^try or the endpoint's Retry-After, whichever is longer.
  int64_t max_retries = 2;
  int64_t retry_backoff_ms = 200;
  // Circuit breaker: after this many consecutive failed calls the tier is skipped for
  // breaker_cooldown_ms, then one call probes it (0: never skipped).
  int64_t breaker_failures = 5;
  int64_t breaker_cooldown_ms = 30000;
  std::string ca_file;  // PEM certificates trusted for https (empty: the system's store)

  // kCache: where exact answers live ("memory", or "redis" at `url`), how long they stay
  // (ttl_s; 0: until evicted), and the semantic layer (docs/CASCADE.md, "Semantic cache").
  enum class CacheBackend : uint8_t { kMemory, kRedis };
  CacheBackend cache_backend = CacheBackend::kMemory;
  int64_t ttl_s = 0;
  // A near-duplicate prompt (cosine similarity of the embeddings >= `similarity`) may reuse a
  // cached answer once tier 1 scores that answer, teacher-forced under the new prompt, at or
  // above the cascade's threshold (`semantic_check`; false serves on similarity alone, the
  // unsafe baseline kept for comparison). Embeddings: `embedding_model`, a GGUF (default: tier
  // 1's own model file), mean-pooled final hidden state.
  bool semantic = false;
  double similarity = 0.7;
  bool semantic_check = true;
  // The check refuses a cached answer when tier 1 prefers another token by more than this
  // many nats at any position (the scorer only judges answers tier 1 could have written).
  double semantic_max_gap = 1.0;
  std::string embedding_model;
  int line = 0;  // the line of this tier's [[tier]] header in the config file (for messages)
};

// [cascade.scorer]: a logistic model over the scorer's features (cascade/features.h):
// P(good enough) = sigmoid(bias + sum of weights[name] * feature[name]). Features without a
// weight count 0. `set` is false when the config has no [cascade.scorer] table, and the
// cascade then uses its documented default rule (docs/CASCADE.md).
struct ScorerConfig {
  bool set = false;
  double bias = 0;
  std::vector<std::pair<std::string, double>> weights;  // (feature name, weight), file order
};

// [server]: what `frugal serve` needs beyond the cascade (docs/SERVER.md).
struct ServerConfig {
  std::string name = "frugal";   // the model name that means "the cascade" in requests
  // API keys, one per line ("#" comments allowed), from a file (resolved against the config's
  // folder) and/or an environment variable holding them comma- or newline-separated. None
  // configured: the server is open.
  std::string api_keys_env;
  std::string api_keys_file;
  std::string ledger;                          // JSON line per request; empty: none
  int64_t max_body_bytes = int64_t{1} << 20;   // larger request bodies get 413
  int64_t max_prompt_chars = 256 * 1024;       // longer prompts (all messages) get 400
  int64_t request_timeout_s = 600;             // a request still running then ends with 504
  int64_t http_threads = 128;                  // connections served at once
  // Admin keys (POST /admin/reload), comma- or newline-separated in this environment variable;
  // none: the admin endpoint answers 403 and only SIGHUP reloads.
  std::string admin_keys_env;
  // The distillation log (docs/OPERATIONS.md): a JSON line per escalated request and per shadow
  // pair; empty: none. Past distill_log_max_bytes the file is renamed to <path>.1 (replacing
  // the previous one) and a new one begun.
  std::string distill_log;
  int64_t distill_log_max_bytes = int64_t{1} << 30;
};

// [shadow]: checks of tier 1's kept answers against the top tier, off the request's path, and
// the drift alarm on their outcomes (docs/OPERATIONS.md).
struct ShadowConfig {
  double fraction = 0;          // of the requests tier 1 answered; 0: no shadow checks
  double budget_per_hour = 0;   // dollars the checks may spend on the top tier per rolling hour
  // How two answers are compared: "auto" (the request's item check when it carries one, else
  // exact match after normalisation for answers up to short_answer_chars, else "logprob"),
  // "exact", or "logprob" (the top tier's teacher-forced reading of tier 1's answer through
  // the scorer; needs a local top tier).
  std::string compare = "auto";
  int64_t short_answer_chars = 64;
  int64_t queue = 64;     // checks waiting; more are dropped and counted
  int64_t workers = 2;    // checks running at once
  // The drift alarm: the agreement calibration predicts for tier 1's kept answers (written by
  // `frugal calibrate`; 0: no alarm), per slice where known; the drop in agreement to detect;
  // P(a false alarm within 10,000 shadow outcomes) per detector; and what an alarm does
  // ("alert", or "escalate-all": every request goes to the top tier until a reload).
  double expected_agreement = 0;
  std::vector<std::pair<std::string, double>> slice_agreement;
  double drift_shift = 0.05;
  double false_alarm_rate = 0.01;
  std::string action = "alert";
  int64_t max_slices = 32;  // distinct slice tags tracked; others count as "other"
};

struct CascadeConfig {
  std::string path;  // the file it was read from
  // In the order requests flow: an optional cache tier first, then models, cheapest first.
  std::vector<TierConfig> tiers;
  // Scorer threshold in [0, 1]: tier 1's answer is kept when P(good enough) >= threshold.
  double threshold = 0.5;
  double local_price_per_flop = kDefaultLocalPricePerFlop;
  ScorerConfig scorer;
  // Tokens a tier may generate per answer when the request does not say.
  int64_t max_tokens = 256;
  // Early escalation: while tier 1 generates, when the mean logprob of its last
  // `early_escalation_window` tokens falls below `early_escalation_logprob` (<= 0), tier 1 is
  // stopped and the request escalates at once. Off unless the logprob floor is set.
  bool early_escalation = false;
  double early_escalation_logprob = 0;
  int64_t early_escalation_window = 8;
  // When the cascade escalates to a local top tier with tier 1's vocabulary, the top tier
  // verifies tier 1's answer as a draft and keeps the prefix it agrees with.
  bool speculative_escalation = true;
  // Speculative cascade (Narasimhan et al. 2025), off unless alpha is set: while the top tier
  // verifies tier 1's answer it also keeps a tier-1 token it would not have chosen when
  // tier 1's probability of it is >= the top tier's highest probability - alpha (greedy
  // requests). Not lossless: measure it with `frugal eval --speculative-cascade` first.
  bool speculative_cascade = false;
  double speculative_cascade_alpha = -1.0;
  ServerConfig server;
  ShadowConfig shadow;

  // The cache tier, or nullptr when there is none.
  const TierConfig* cache_tier() const;
  // The model tiers (local and remote), in order.
  std::vector<const TierConfig*> model_tiers() const;
};

// Reads and validates a config file. Errors (all name the file and, where there is one, the
// line): kNotFound (no such file), kInvalidArgument (TOML syntax, an unknown key or table,
// a wrong value type, a negative price, a missing required key, a duplicate tier name, a
// cache tier that is not first, no model tier, a local tier with no price whose model file
// is absent and whose `params` is not set), kCorrupt (a model file that is not valid GGUF
// when its parameter count is needed).
Result<CascadeConfig> load_cascade_config(const std::string& path);

// Same, from TOML text; relative model paths resolve against `base_dir`. `name` appears in
// messages in place of a file path.
Result<CascadeConfig> parse_cascade_config(const std::string& toml_text, const std::string& name,
                                           const std::string& base_dir);

// Price of one query on `tier`: tokens_in at price_in plus tokens_out at price_out, dollars.
double tier_query_cost(const TierConfig& tier, double tokens_in, double tokens_out);

}  // namespace frugal::cascade
