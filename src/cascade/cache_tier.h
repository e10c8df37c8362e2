// CacheTier: the response cache as a tier — an exact-match map from a deterministic request
// (temperature 0 or a fixed seed) to the answer the cascade gave it: in memory (least recently
// used dropped first), or shared by several servers through Redis (RedisCacheTier,
// redis_cache.h). Entries expire after ttl_s when set.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "cascade/tier.h"

namespace frugal::cascade {

class CacheTier : public SyncTier {
 public:
  // Holds at most config.cache_capacity answers.
  explicit CacheTier(const TierConfig& config);
  // The backend config.cache_backend names. Errors: those of RedisCacheTier::create.
  static Result<std::unique_ptr<CacheTier>> create(const TierConfig& config);

  // Only deterministic requests are cached: temperature 0, or sampling with a fixed seed.
  static bool cacheable(const TierRequest& request);
  // The cache key: messages (or the raw prompt) and every sampling field, each
  // length-prefixed so no two different requests share a key.
  static std::string canonical_key(const TierRequest& request);
  // The sampling part of the key alone (everything but the messages or prompt).
  static std::string sampling_key(const TierRequest& request);

  // What the answers depend on besides the request (the cascade's tiers and models): part of
  // every key, so caches shared by differently configured servers never mix. Set once, before
  // use.
  void set_namespace(std::string ns) { namespace_ = std::move(ns); }
  const std::string& key_namespace() const { return namespace_; }

  // Remembers `answer` for `request` when cacheable; evicts the least recently used entry
  // when full.
  virtual void store(const TierRequest& request, const TierAnswer& answer);

  virtual size_t size() const;
  int64_t hits() const { return hits_.load(); }
  int64_t misses() const { return misses_.load(); }

 protected:
  // The stored answer with this tier's cost (0 unless the config prices the cache) and this
  // lookup's latency. Errors: kNotFound on a miss or an uncacheable request.
  Result<TierAnswer> answer_now(const TierRequest& request, const TokenObserver& observer) override;
  // A stored answer as a hit: this tier's cost, no flags of the run that made it.
  TierAnswer as_hit(TierAnswer stored, double latency_ms) const;

  std::atomic<int64_t> hits_{0};
  std::atomic<int64_t> misses_{0};

 private:
  struct Entry {
    std::string key;
    TierAnswer answer;
    std::chrono::steady_clock::time_point stored;
  };
  mutable std::mutex mutex_;
  size_t capacity_;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
  std::string namespace_;
};

// A TierAnswer as one JSON object (text, finish, token counts, every token's id, bytes,
// logprob and alternatives), byte-exact for pieces that are not valid UTF-8; and back.
// answer_from_json errors: kCorrupt for text that is not such an object.
std::string answer_to_json(const TierAnswer& answer);
Result<TierAnswer> answer_from_json(std::string_view text);

}  // namespace frugal::cascade
