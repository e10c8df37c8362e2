// RedisCacheTier: the exact response cache kept in Redis, so that several `frugal serve`
// processes behind one load balancer share their hits. A key is "frugal:v1:" and the 128-bit
// XXH3 hash of the cache's namespace (the cascade's tiers and models) and the request's
// canonical key; a value is the answer's JSON (answer_to_json), set with the tier's TTL.
//
// Redis is an optimisation, never a dependency: when it cannot be reached (or answers an
// error) a lookup is a miss and a store is skipped, the outage is logged once and counted
// (TierHealth), reconnection is tried at most once a second, and no request fails for it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cascade/cache_tier.h"

struct redisContext;

namespace frugal::cascade {

// redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]
struct RedisUrl {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
  std::string user, password;
};
// Errors: kInvalidArgument naming what is wrong with the URL.
Result<RedisUrl> parse_redis_url(const std::string& url);

class RedisCacheTier : public CacheTier {
 public:
  // Parses config.url and tries one connection (an unreachable Redis is logged, not an error:
  // the server starts and serves without the cache until Redis is back). Errors:
  // kInvalidArgument for a bad URL.
  static Result<std::unique_ptr<RedisCacheTier>> create(const TierConfig& config);
  ~RedisCacheTier() override;

  void store(const TierRequest& request, const TierAnswer& answer) override;
  // Entries stored by this process (Redis itself may hold more).
  size_t size() const override { return static_cast<size_t>(stored_.load()); }
  TierHealth health() const override;

  // Where the one-line outage notices go; default stderr.
  void set_log(std::function<void(const std::string&)> log) { log_ = std::move(log); }
  // The Redis key of `request` (for tests).
  std::string redis_key(const TierRequest& request) const;

 protected:
  Result<TierAnswer> answer_now(const TierRequest& request, const TokenObserver& observer) override;

 private:
  RedisCacheTier(const TierConfig& config, RedisUrl url);
  // A connection, or nullptr during an outage (without waiting while a retry is not due).
  redisContext* acquire();
  void release(redisContext* c, bool healthy);
  void failed(const std::string& what);
  void log(const std::string& line) const;

  RedisUrl url_;
  std::function<void(const std::string&)> log_;
  mutable std::mutex mu_;  // guards what follows
  std::vector<redisContext*> idle_;
  bool down_ = false;
  std::chrono::steady_clock::time_point retry_at_{};
  TierHealth health_;
  std::atomic<int64_t> stored_{0};
};

}  // namespace frugal::cascade
