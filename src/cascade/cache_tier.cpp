// CacheTier: exact-match LRU response cache keyed by a canonical form of the request.
#include "cascade/cache_tier.h"

#include <cstring>

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

bool CacheTier::cacheable(const TierRequest& request) {
  return request.temperature == 0.0f || request.seed_set;
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
  auto bits = [](float f) {
    uint32_t b = 0;
    std::memcpy(&b, &f, sizeof(b));
    return std::to_string(b);
  };
  key += "t" + bits(request.temperature) + ";p" + bits(request.top_p) + ";n" +
         std::to_string(request.max_tokens) + ";l" + std::to_string(request.n_logprobs) + ";";
  if (request.temperature != 0.0f) key += "seed" + std::to_string(request.seed) + ";";
  key += "s" + std::to_string(request.stop.size()) + ";";
  for (const std::string& s : request.stop) append_field(key, s);
  return key;
}

Result<TierAnswer> CacheTier::answer_now(const TierRequest& request, const TokenObserver&) {
  Timer timer;
  if (!cacheable(request)) return not_found("not cacheable: sampled without a fixed seed");
  const std::string key = canonical_key(request);
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = index_.find(key);
  if (it == index_.end()) {
    ++misses_;
    return not_found("cache miss");
  }
  ++hits_;
  lru_.splice(lru_.begin(), lru_, it->second);
  TierAnswer out = it->second->second;
  out.cost = cost(out.tokens_in, out.tokens_out);
  out.escalated_early = false;
  out.interrupted = false;
  out.latency_ms = timer.millis();
  return out;
}

void CacheTier::store(const TierRequest& request, const TierAnswer& answer) {
  if (!cacheable(request)) return;
  std::string key = canonical_key(request);
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = index_.find(key);
  if (it != index_.end()) {
    it->second->second = answer;
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  if (lru_.size() >= capacity_) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
  lru_.emplace_front(std::move(key), answer);
  index_[lru_.front().first] = lru_.begin();
}

size_t CacheTier::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return lru_.size();
}
int64_t CacheTier::hits() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return hits_;
}
int64_t CacheTier::misses() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return misses_;
}

}  // namespace frugal::cascade
