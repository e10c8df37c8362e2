// CacheTier: the response cache as a tier — an in-memory, exact-match, least-recently-used map
// from a deterministic request (temperature 0 or a fixed seed) to the answer the cascade gave it.
#pragma once

#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include "cascade/tier.h"

namespace frugal::cascade {

class CacheTier : public SyncTier {
 public:
  // Holds at most config.cache_capacity answers.
  explicit CacheTier(const TierConfig& config);

  // Only deterministic requests are cached: temperature 0, or sampling with a fixed seed.
  static bool cacheable(const TierRequest& request);
  // The cache key: messages (or the raw prompt) and every sampling field, each
  // length-prefixed so no two different requests share a key.
  static std::string canonical_key(const TierRequest& request);

  // Remembers `answer` for `request` when cacheable; evicts the least recently used entry
  // when full.
  void store(const TierRequest& request, const TierAnswer& answer);

  size_t size() const;
  int64_t hits() const;
  int64_t misses() const;

 protected:
  // The stored answer with this tier's cost (0 unless the config prices the cache) and this
  // lookup's latency. Errors: kNotFound on a miss or an uncacheable request.
  Result<TierAnswer> answer_now(const TierRequest& request, const TokenObserver& observer) override;

 private:
  using Entry = std::pair<std::string, TierAnswer>;
  mutable std::mutex mutex_;
  size_t capacity_;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
  int64_t hits_ = 0;
  int64_t misses_ = 0;
};

}  // namespace frugal::cascade
