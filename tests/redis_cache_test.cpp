// The response cache in Redis: a real redis-server started here on a free loopback port (no
// persistence), the answer's JSON form, TTLs, two `frugal serve` processes sharing hits, and
// Redis killed mid-run — every request still answered, the outage logged once and counted.
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <thread>

#include "cascade/redis_cache.h"
#include "process_helpers.h"

namespace frugal::cascade {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;
using test::RedisProcess;
using test::ServeProcess;
using test::TempDir;

const std::string kStudent = std::string(FRUGAL_SOURCE_DIR) + "/models/frugal-student.gguf";

TierConfig redis_config(const std::string& url, int64_t ttl_s = 0) {
  TierConfig c;
  c.name = "shared";
  c.kind = TierKind::kCache;
  c.cache_backend = TierConfig::CacheBackend::kRedis;
  c.url = url;
  c.ttl_s = ttl_s;
  return c;
}

TierRequest request(const std::string& prompt) {
  TierRequest r;
  r.messages = {{"user", prompt}};
  r.max_tokens = 16;
  return r;
}

TierAnswer answer_of(const std::string& text) {
  TierAnswer a;
  a.text = text;
  a.finish = FinishReason::kStop;
  a.tokens_in = 12;
  a.tokens_out = 2;
  AnswerToken t;
  t.id = 42;
  t.piece = "\xe2\x82";  // half of a UTF-8 character: must survive byte for byte
  t.text = "";
  t.logprob = -0.25f;
  t.top = {{42, "\xe2\x82", -0.25f}, {7, "x", -2.0f}};
  a.tokens.push_back(t);
  AnswerToken u;
  u.id = 43;
  u.piece = "\xac";
  u.text = text;
  u.logprob = -0.5f;
  a.tokens.push_back(u);
  return a;
}

TEST(RedisCache, AnswersSurviveTheirJsonFormByteForByte) {
  const TierAnswer a = answer_of("\xe2\x82\xac 5");
  auto b = answer_from_json(answer_to_json(a));
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  EXPECT_EQ(b->text, a.text);
  ASSERT_EQ(b->tokens.size(), 2u);
  EXPECT_EQ(b->tokens[0].piece, "\xe2\x82");
  EXPECT_EQ(b->tokens[1].piece, "\xac");
  EXPECT_EQ(b->tokens[0].top[1].piece, "x");
  EXPECT_EQ(b->tokens[0].top[1].id, 7);
  EXPECT_FLOAT_EQ(b->tokens[1].logprob, -0.5f);
  EXPECT_EQ(b->finish, FinishReason::kStop);
  EXPECT_EQ(b->tokens_in, 12);
  EXPECT_EQ(answer_from_json("{\"v\": 2}").status().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(answer_from_json("not json").status().code(), ErrorCode::kCorrupt);
}

TEST(RedisCache, UrlsAreParsedOrRefusedByName) {
  auto u = parse_redis_url("redis://:secret@10.0.0.5:6380/3");
  ASSERT_TRUE(u.is_ok());
  EXPECT_EQ(u->host, "10.0.0.5");
  EXPECT_EQ(u->port, 6380);
  EXPECT_EQ(u->db, 3);
  EXPECT_EQ(u->password, "secret");
  EXPECT_FALSE(parse_redis_url("http://x").is_ok());
  EXPECT_NE(parse_redis_url("redis://h:0/0").status().message().find("bad port"), std::string::npos);
  EXPECT_NE(parse_redis_url("redis://h:1/x").status().message().find("database"), std::string::npos);
}

class RedisCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::have_redis_server()) GTEST_FAIL() << "redis-server is not installed (scripts/install.sh)";
    redis_ = std::make_unique<RedisProcess>(dir_.file("redis.log"));
    ASSERT_TRUE(redis_->ready()) << redis_->process().log();
  }
  // A direct hiredis command, for checking what the cache wrote.
  long long ttl_of(const std::string& key) {
    redisContext* c = redisConnect("127.0.0.1", redis_->port());
    auto* r = static_cast<redisReply*>(redisCommand(c, "TTL %s", key.c_str()));
    const long long v = r != nullptr ? r->integer : -99;
    if (r != nullptr) freeReplyObject(r);
    redisFree(c);
    return v;
  }
  TempDir dir_{"redis"};
  std::unique_ptr<RedisProcess> redis_;
};

TEST_F(RedisCacheTest, StoresHitsAndExpiresWithTheTtl) {
  auto cache = RedisCacheTier::create(redis_config(redis_->url(), /*ttl_s=*/60)).value();
  cache->set_namespace("ns-a");
  const TierRequest r = request("What is 2 + 3?");
  EXPECT_EQ(cache->answer(r).status().code(), ErrorCode::kNotFound);
  cache->store(r, answer_of("5"));
  auto hit = cache->answer(r);
  ASSERT_TRUE(hit.is_ok()) << hit.status().to_string();
  EXPECT_EQ(hit->text, "5");
  EXPECT_EQ(hit->tokens.size(), 2u);
  EXPECT_EQ(cache->hits(), 1);
  EXPECT_EQ(cache->misses(), 1);
  const long long ttl = ttl_of(cache->redis_key(r));
  EXPECT_GT(ttl, 55);
  EXPECT_LE(ttl, 60);
  // Another cascade (namespace), another sampling field, a sampled request: never this answer.
  auto other = RedisCacheTier::create(redis_config(redis_->url())).value();
  other->set_namespace("ns-b");
  EXPECT_FALSE(other->answer(r).is_ok());
  TierRequest longer = r;
  longer.max_tokens = 17;
  EXPECT_FALSE(cache->answer(longer).is_ok());
  TierRequest sampled = request("What is 9 + 1?");
  sampled.temperature = 0.7f;
  cache->store(sampled, answer_of("10"));
  EXPECT_FALSE(cache->answer(sampled).is_ok());
  EXPECT_EQ(ttl_of(cache->redis_key(sampled)), -2);  // never written
  EXPECT_TRUE(cache->health().available);
}

TEST_F(RedisCacheTest, AnOutageIsAMissLoggedOnceAndRedisIsUsedAgainWhenBack) {
  std::vector<std::string> logs;
  std::mutex mu;
  auto cache = RedisCacheTier::create(redis_config(redis_->url())).value();
  cache->set_log([&](const std::string& l) {
    std::lock_guard<std::mutex> lock(mu);
    logs.push_back(l);
  });
  const TierRequest r = request("What is 2 + 3?");
  cache->store(r, answer_of("5"));
  ASSERT_TRUE(cache->answer(r).is_ok());
  const int port = redis_->port();
  redis_->process().stop(SIGKILL);
  const auto t0 = Clock::now();
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(cache->answer(r).status().code(), ErrorCode::kNotFound);
    cache->store(r, answer_of("5"));
  }
  // Twenty lookups and stores cost about one failed command: the rest skip Redis.
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 0.5);
  EXPECT_FALSE(cache->health().available);
  EXPECT_EQ(cache->health().outages, 1);
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_NE(logs[0].find("answering without the shared cache"), std::string::npos) << logs[0];
  // Redis returns (empty: no persistence); after the retry interval the cache is used again.
  redis_ = std::make_unique<RedisProcess>(dir_.file("redis2.log"), port);
  ASSERT_TRUE(redis_->ready());
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_FALSE(cache->answer(r).is_ok());  // reconnects; the old entry is gone
  EXPECT_TRUE(cache->health().available);
  cache->store(r, answer_of("5"));
  EXPECT_TRUE(cache->answer(r).is_ok());
  ASSERT_EQ(logs.size(), 2u);
  EXPECT_NE(logs[1].find("is back"), std::string::npos) << logs[1];
}

TEST_F(RedisCacheTest, AnUnreachableRedisAtStartIsNoCacheNotAnError) {
  auto cache = RedisCacheTier::create(
      redis_config("redis://127.0.0.1:" + std::to_string(test::free_port()) + "/0"));
  ASSERT_TRUE(cache.is_ok());
  EXPECT_FALSE((*cache)->health().available);
  EXPECT_FALSE((*cache)->answer(request("hi")).is_ok());
}

// Two frugal serve processes with one Redis: the second answers the first's request from the
// cache; with Redis killed both keep answering.
TEST_F(RedisCacheTest, TwoServersShareHitsAndSurviveRedisDying) {
  const std::string cfg = dir_.file("serve.toml");
  test::write_text(cfg, "[[tier]]\nname = \"cache\"\nkind = \"cache\"\nbackend = \"redis\"\nurl = \"" +
                            redis_->url() + "\"\nttl_s = 600\n"
                            "[[tier]]\nname = \"small\"\nkind = \"local\"\nmodel = \"" + kStudent +
                            "\"\nprice_in = 0.05\nprice_out = 0.1\n");
  ServeProcess a(cfg, dir_.file("a.log")), b(cfg, dir_.file("b.log"));
  ASSERT_TRUE(a.ready()) << a.log();
  ASSERT_TRUE(b.ready()) << b.log();
  auto ask = [](const ServeProcess& s, const std::string& prompt) {
    httplib::Client c("127.0.0.1", s.port());
    c.set_read_timeout(10, 0);
    const json body{{"messages", {{{"role", "user"}, {"content", prompt}}}}, {"max_tokens", 16}};
    auto r = c.Post("/v1/chat/completions", body.dump(), "application/json");
    EXPECT_TRUE(r) << "no response";
    if (!r) return json();
    EXPECT_EQ(r->status, 200) << r->body;
    return json::parse(r->body, nullptr, false);
  };
  const json first = ask(a, "What is 4 + 4?");
  EXPECT_FALSE(first["frugal"]["cache_hit"].get<bool>());
  const json second = ask(b, "What is 4 + 4?");
  EXPECT_TRUE(second["frugal"]["cache_hit"].get<bool>()) << second.dump();
  EXPECT_EQ(second["frugal"]["tier"], "cache");
  EXPECT_EQ(second["choices"][0]["message"]["content"], first["choices"][0]["message"]["content"]);

  redis_->process().stop(SIGKILL);
  for (const ServeProcess* s : {&a, &b}) {
    for (const char* p : {"What is 4 + 4?", "What is 6 + 1?"}) {
      const json r = ask(*s, p);
      EXPECT_FALSE(r["frugal"]["cache_hit"].get<bool>());
      EXPECT_FALSE(r["choices"][0]["message"]["content"].get<std::string>().empty());
    }
  }
  size_t notices = 0;
  for (size_t at = 0; (at = a.log().find("answering without the shared cache", at)) != std::string::npos; ++at)
    ++notices;
  EXPECT_EQ(notices, 1u) << a.log();
}

}  // namespace
}  // namespace frugal::cascade
