// CacheTier: exact-match LRU response cache keyed by a canonical form of the request, and the
// JSON form of a cached answer that the Redis backend stores.
#include "cascade/cache_tier.h"

#include <cstring>
#include <nlohmann/json.hpp>

#include "cascade/redis_cache.h"
#include "util/timer.h"

namespace frugal::cascade {

namespace {

void append_field(std::string& key, const std::string& value) {
  key += std::to_string(value.size());
  key += ':';
  key += value;
}

}  // namespace

CacheTier::CacheTier(const TierConfig& config)
    : SyncTier(config),
      capacity_(static_cast<size_t>(std::max<int64_t>(1, config.cache_capacity))) {
  CHECK(config.kind == TierKind::kCache, "CacheTier built from a %s tier",
        tier_kind_name(config.kind));
}

Result<std::unique_ptr<CacheTier>> CacheTier::create(const TierConfig& config) {
  if (config.cache_backend == TierConfig::CacheBackend::kRedis) {
    FRUGAL_ASSIGN_OR_RETURN(auto redis, RedisCacheTier::create(config));
    return std::unique_ptr<CacheTier>(std::move(redis));
  }
  return std::make_unique<CacheTier>(config);
}

bool CacheTier::cacheable(const TierRequest& request) {
  return request.temperature == 0.0f || request.seed_set;
}

std::string CacheTier::sampling_key(const TierRequest& request) {
  auto bits = [](float f) {
    uint32_t b = 0;
    std::memcpy(&b, &f, sizeof(b));
    return std::to_string(b);
  };
  std::string key = "t" + bits(request.temperature) + ";p" + bits(request.top_p) + ";n" +
                    std::to_string(request.max_tokens) + ";l" +
                    std::to_string(request.n_logprobs) + ";";
  if (request.temperature != 0.0f) key += "seed" + std::to_string(request.seed) + ";";
  if (request.ignore_eos) key += "noeos;";
  key += "s" + std::to_string(request.stop.size()) + ";";
  for (const std::string& s : request.stop) append_field(key, s);
  return key;
}

std::string CacheTier::canonical_key(const TierRequest& request) {
  std::string key = "m" + std::to_string(request.messages.size()) + ";";
  for (const ChatMessage& m : request.messages) {
    append_field(key, m.role);
    append_field(key, m.content);
  }
  if (request.raw_prompt) {
    key += "r";
    append_field(key, *request.raw_prompt);
  }
  return key + sampling_key(request);
}

TierAnswer CacheTier::as_hit(TierAnswer out, double latency_ms) const {
  out.cost = cost(out.tokens_in, out.tokens_out);
  out.escalated_early = false;
  out.interrupted = false;
  out.latency_ms = latency_ms;
  out.first_token_ms = latency_ms;
  return out;
}

Result<TierAnswer> CacheTier::answer_now(const TierRequest& request, const TokenObserver&) {
  Timer timer;
  if (!cacheable(request)) return not_found("not cacheable: sampled without a fixed seed");
  const std::string key = namespace_ + canonical_key(request);
  const int64_t ttl_s = config().ttl_s;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = index_.find(key);
  if (it != index_.end() && ttl_s > 0 &&
      std::chrono::steady_clock::now() - it->second->stored > std::chrono::seconds(ttl_s)) {
    lru_.erase(it->second);
    index_.erase(it);
    it = index_.end();
  }
  if (it == index_.end()) {
    ++misses_;
    return not_found("cache miss");
  }
  ++hits_;
  lru_.splice(lru_.begin(), lru_, it->second);
  return as_hit(it->second->answer, timer.millis());
}

void CacheTier::store(const TierRequest& request, const TierAnswer& answer) {
  if (!cacheable(request) || answer.interrupted) return;
  std::string key = namespace_ + canonical_key(request);
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = index_.find(key);
  if (it != index_.end()) {
    it->second->answer = answer;
    it->second->stored = now;
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  if (lru_.size() >= capacity_) {
    index_.erase(lru_.back().key);
    lru_.pop_back();
  }
  lru_.push_front({std::move(key), answer, now});
  index_[lru_.front().key] = lru_.begin();
}

size_t CacheTier::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return lru_.size();
}

// ---------------------------------------------------------------------------- JSON form

namespace {

using nlohmann::json;

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    i += n;
  }
  return true;
}

// A string as JSON: itself when valid UTF-8, else {"hex": "..."} so every byte survives.
json bytes_json(const std::string& s) {
  if (valid_utf8(s)) return s;
  static const char* kHex = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : s) {
    hex += kHex[c >> 4];
    hex += kHex[c & 15];
  }
  return json{{"hex", hex}};
}

bool bytes_from(const json& j, std::string* out) {
  if (j.is_string()) {
    *out = j.get<std::string>();
    return true;
  }
  if (!j.is_object() || !j.contains("hex") || !j["hex"].is_string()) return false;
  const std::string hex = j["hex"].get<std::string>();
  if (hex.size() % 2 != 0) return false;
  out->clear();
  auto nib = [](char c) { return c >= 'a' ? c - 'a' + 10 : c - '0'; };
  for (size_t i = 0; i < hex.size(); i += 2)
    out->push_back(static_cast<char>(nib(hex[i]) * 16 + nib(hex[i + 1])));
  return true;
}

}  // namespace

std::string answer_to_json(const TierAnswer& a) {
  json tokens = json::array();
  for (const AnswerToken& t : a.tokens) {
    json top = json::array();
    for (const TokenAlternative& alt : t.top) top.push_back({alt.id, bytes_json(alt.piece), alt.logprob});
    tokens.push_back({{"id", t.id},
                      {"piece", bytes_json(t.piece)},
                      {"text", bytes_json(t.text)},
                      {"lp", t.logprob},
                      {"top", top}});
  }
  json j{{"v", 1},
         {"text", bytes_json(a.text)},
         {"finish", finish_reason_name(a.finish)},
         {"tokens_in", a.tokens_in},
         {"tokens_in_cached", a.tokens_in_cached},
         {"tokens_out", a.tokens_out},
         {"prompt_mean_logprob", a.prompt_mean_logprob},
         {"has_prompt_logprob", a.has_prompt_logprob},
         {"tokens", tokens}};
  return j.dump();
}

Result<TierAnswer> answer_from_json(std::string_view text) {
  const json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  auto bad = [](const std::string& what) { return corrupt("cached answer: " + what); };
  if (!j.is_object() || j.value("v", 0) != 1) return bad("not a version-1 answer object");
  try {
    TierAnswer a;
    if (!bytes_from(j.at("text"), &a.text)) return bad("bad 'text'");
    a.finish = j.at("finish").get<std::string>() == "stop" ? FinishReason::kStop : FinishReason::kLength;
    a.tokens_in = j.at("tokens_in").get<int64_t>();
    a.tokens_in_cached = j.at("tokens_in_cached").get<int64_t>();
    a.tokens_out = j.at("tokens_out").get<int64_t>();
    a.prompt_mean_logprob = j.at("prompt_mean_logprob").get<double>();
    a.has_prompt_logprob = j.at("has_prompt_logprob").get<bool>();
    for (const json& t : j.at("tokens")) {
      AnswerToken tok;
      tok.id = t.at("id").get<int32_t>();
      if (!bytes_from(t.at("piece"), &tok.piece) || !bytes_from(t.at("text"), &tok.text))
        return bad("bad token bytes");
      tok.logprob = t.at("lp").get<float>();
      for (const json& alt : t.at("top")) {
        TokenAlternative x;
        x.id = alt.at(0).get<int32_t>();
        if (!bytes_from(alt.at(1), &x.piece)) return bad("bad alternative bytes");
        x.logprob = alt.at(2).get<float>();
        tok.top.push_back(std::move(x));
      }
      a.tokens.push_back(std::move(tok));
    }
    return a;
  } catch (const json::exception& e) {
    return bad(std::string("missing or mistyped field (") + e.what() + ")");
  }
}

}  // namespace frugal::cascade
