// RedisCacheTier: GET/SET through hiredis's blocking API on a small pool of connections, each
// command bounded by a short timeout so an unresponsive Redis costs a request milliseconds.
#include "cascade/redis_cache.h"

#include <hiredis/hiredis.h>
#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "util/timer.h"

namespace frugal::cascade {

namespace {

// Connect and command timeouts: a lookup must never cost a request more than this.
constexpr int kTimeoutMs = 250;
// During an outage, a connection is attempted at most this often.
constexpr auto kRetryEvery = std::chrono::seconds(1);
constexpr size_t kMaxIdle = 8;

bool all_digits(const std::string& s) {
  return !s.empty() && s.size() <= 9 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

Result<RedisUrl> parse_redis_url(const std::string& url) {
  const std::string scheme = "redis://";
  if (url.rfind(scheme, 0) != 0) {
    return invalid_argument("the Redis URL " + url + " must look like redis://HOST:PORT/DB");
  }
  RedisUrl out;
  std::string rest = url.substr(scheme.size());
  if (const size_t at = rest.rfind('@'); at != std::string::npos) {
    const std::string cred = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const size_t colon = cred.find(':');
    if (colon == std::string::npos) {
      out.password = cred;
    } else {
      out.user = cred.substr(0, colon);
      out.password = cred.substr(colon + 1);
    }
  }
  std::string hostport = rest, db;
  if (const size_t slash = rest.find('/'); slash != std::string::npos) {
    hostport = rest.substr(0, slash);
    db = rest.substr(slash + 1);
  }
  if (!db.empty()) {
    if (!all_digits(db)) return invalid_argument("the Redis URL " + url + " has a bad database number '" + db + "'");
    out.db = std::atoi(db.c_str());
  }
  if (const size_t colon = hostport.rfind(':'); colon != std::string::npos) {
    const std::string port = hostport.substr(colon + 1);
    if (!all_digits(port) || std::atoi(port.c_str()) < 1 || std::atoi(port.c_str()) > 65535) {
      return invalid_argument("the Redis URL " + url + " has a bad port '" + port + "'");
    }
    out.port = std::atoi(port.c_str());
    hostport = hostport.substr(0, colon);
  }
  if (!hostport.empty()) out.host = hostport;
  return out;
}

RedisCacheTier::RedisCacheTier(const TierConfig& config, RedisUrl url)
    : CacheTier(config), url_(std::move(url)) {}

Result<std::unique_ptr<RedisCacheTier>> RedisCacheTier::create(const TierConfig& config) {
  auto url = parse_redis_url(config.url);
  if (!url.is_ok()) return invalid_argument("cache tier '" + config.name + "': " + url.status().message());
  std::unique_ptr<RedisCacheTier> tier(new RedisCacheTier(config, std::move(url).value()));
  tier->release(tier->acquire(), true);  // reports an unreachable Redis now, not at the first request
  return tier;
}

RedisCacheTier::~RedisCacheTier() {
  for (redisContext* c : idle_) redisFree(c);
}

void RedisCacheTier::log(const std::string& line) const {
  if (log_) {
    log_(line);
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
}

std::string RedisCacheTier::redis_key(const TierRequest& request) const {
  const std::string k = key_namespace() + '\n' + canonical_key(request);
  const XXH128_hash_t h = XXH3_128bits(k.data(), k.size());
  char buf[64];
  std::snprintf(buf, sizeof buf, "frugal:v1:%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return buf;
}

void RedisCacheTier::failed(const std::string& what) {
  bool first = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    health_.failures++;
    retry_at_ = std::chrono::steady_clock::now() + kRetryEvery;
    if (!down_) {
      down_ = true;
      first = true;
      health_.outages++;
    }
    for (redisContext* c : idle_) redisFree(c);
    idle_.clear();
  }
  if (first) {
    log("frugal: cache tier '" + name() + "': Redis at " + url_.host + ":" +
        std::to_string(url_.port) + " failed (" + what +
        "); answering without the shared cache until it is back");
  }
}

redisContext* RedisCacheTier::acquire() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      redisContext* c = idle_.back();
      idle_.pop_back();
      return c;
    }
    if (down_ && std::chrono::steady_clock::now() < retry_at_) return nullptr;
    if (down_) retry_at_ = std::chrono::steady_clock::now() + kRetryEvery;  // one caller tries
  }
  const timeval tv{kTimeoutMs / 1000, (kTimeoutMs % 1000) * 1000};
  redisContext* c = redisConnectWithTimeout(url_.host.c_str(), url_.port, tv);
  if (c == nullptr || c->err != 0) {
    failed(c == nullptr ? std::string("out of memory") : std::string(c->errstr));
    if (c != nullptr) redisFree(c);
    return nullptr;
  }
  redisSetTimeout(c, tv);
  auto setup = [&](redisReply* r) {
    const bool ok = r != nullptr && r->type != REDIS_REPLY_ERROR;
    const std::string err = r == nullptr ? std::string(c->errstr) : ok ? "" : std::string(r->str, r->len);
    if (r != nullptr) freeReplyObject(r);
    if (!ok) failed(err);
    return ok;
  };
  bool ok = true;
  if (!url_.password.empty()) {
    ok = url_.user.empty()
             ? setup(static_cast<redisReply*>(redisCommand(c, "AUTH %s", url_.password.c_str())))
             : setup(static_cast<redisReply*>(
                   redisCommand(c, "AUTH %s %s", url_.user.c_str(), url_.password.c_str())));
  }
  if (ok && url_.db != 0) ok = setup(static_cast<redisReply*>(redisCommand(c, "SELECT %d", url_.db)));
  if (!ok) {
    redisFree(c);
    return nullptr;
  }
  bool back = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    back = down_;
    down_ = false;
  }
  if (back) {
    log("frugal: cache tier '" + name() + "': Redis at " + url_.host + ":" +
        std::to_string(url_.port) + " is back; the shared cache is in use again");
  }
  return c;
}

void RedisCacheTier::release(redisContext* c, bool healthy) {
  if (c == nullptr) return;
  if (healthy && c->err == 0) {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.size() < kMaxIdle && !down_) {
      idle_.push_back(c);
      return;
    }
  }
  redisFree(c);
}

TierHealth RedisCacheTier::health() const {
  std::lock_guard<std::mutex> lock(mu_);
  TierHealth h = health_;
  h.available = !down_;
  return h;
}

Result<TierAnswer> RedisCacheTier::answer_now(const TierRequest& request, const TokenObserver&) {
  Timer timer;
  if (!cacheable(request)) return not_found("not cacheable: sampled without a fixed seed");
  redisContext* c = acquire();
  if (c == nullptr) {
    ++misses_;
    return not_found("cache miss (Redis unavailable)");
  }
  const std::string key = redis_key(request);
  auto* r = static_cast<redisReply*>(redisCommand(c, "GET %b", key.data(), key.size()));
  if (r == nullptr || r->type == REDIS_REPLY_ERROR) {
    failed(r == nullptr ? std::string(c->errstr) : std::string(r->str, r->len));
    if (r != nullptr) freeReplyObject(r);
    release(c, false);
    ++misses_;
    return not_found("cache miss (Redis failed)");
  }
  Result<TierAnswer> stored = not_found("cache miss");
  if (r->type == REDIS_REPLY_STRING) stored = answer_from_json(std::string_view(r->str, r->len));
  freeReplyObject(r);
  release(c, true);
  if (!stored.is_ok()) {  // absent, or written by an incompatible build: a miss either way
    ++misses_;
    return not_found("cache miss");
  }
  ++hits_;
  return as_hit(std::move(stored).value(), timer.millis());
}

void RedisCacheTier::store(const TierRequest& request, const TierAnswer& answer) {
  if (!cacheable(request) || answer.interrupted) return;
  redisContext* c = acquire();
  if (c == nullptr) return;
  const std::string key = redis_key(request);
  const std::string value = answer_to_json(answer);
  redisReply* r = nullptr;
  if (config().ttl_s > 0) {
    r = static_cast<redisReply*>(redisCommand(c, "SET %b %b EX %lld", key.data(), key.size(),
                                              value.data(), value.size(),
                                              static_cast<long long>(config().ttl_s)));
  } else {
    r = static_cast<redisReply*>(
        redisCommand(c, "SET %b %b", key.data(), key.size(), value.data(), value.size()));
  }
  const bool ok = r != nullptr && r->type != REDIS_REPLY_ERROR;
  if (!ok) failed(r == nullptr ? std::string(c->errstr) : std::string(r->str, r->len));
  if (r != nullptr) freeReplyObject(r);
  release(c, ok);
  if (ok) stored_++;
}

}  // namespace frugal::cascade
