// KvCache: block tables, prefix reuse through chained hashes, LRU eviction, copy-on-write and
// rollback — the behaviours batching and prefix sharing rely on.
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "engine/kv_cache.h"

namespace frugal {
namespace {

ModelConfig tiny_config() {
  ModelConfig c;
  c.n_layer = 2;
  c.n_head = 4;
  c.n_head_kv = 2;
  c.head_dim = 8;
  c.n_embd = 32;
  return c;
}

std::vector<int32_t> iota_tokens(int n, int start = 100) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), start);
  return v;
}

// Writes a recognisable value for every stored position so copies can be checked.
void fill(KvCache& kv, KvCache::SeqId s, int64_t from, int64_t to, float base) {
  for (int64_t p = from; p < to; ++p) {
    int32_t b = kv.block_table(s)[p / kv.block_size()];
    kv.k(1, b, 1)[(p % kv.block_size()) * 8] = base + static_cast<float>(p);
  }
}

float read(KvCache& kv, KvCache::SeqId s, int64_t p) {
  int32_t b = kv.block_table(s)[p / kv.block_size()];
  return kv.k(1, b, 1)[(p % kv.block_size()) * 8];
}

TEST(KvCache, ReserveAllocatesWholeBlocksAndReportsExhaustion) {
  KvCache kv(tiny_config(), /*n_blocks=*/4, /*block_size=*/4);
  auto s = kv.create_sequence();
  ASSERT_TRUE(kv.reserve(s, 5).is_ok());
  EXPECT_EQ(kv.block_table(s).size(), 2u);
  kv.commit(s, iota_tokens(5));
  EXPECT_EQ(kv.n_past(s), 5);
  ASSERT_TRUE(kv.reserve(s, 11).is_ok());  // 16 positions = all 4 blocks
  Status full = kv.reserve(s, 12);
  EXPECT_EQ(full.code(), ErrorCode::kOutOfRange);
  EXPECT_NE(full.message().find("KV cache is full"), std::string::npos);
}

TEST(KvCache, SharedPrefixIsReusedAndNeverRecomputesLastToken) {
  KvCache kv(tiny_config(), 16, 4);
  auto prompt = iota_tokens(10);
  auto a = kv.create_sequence();
  EXPECT_EQ(kv.reuse_prefix(a, prompt), 0);
  ASSERT_TRUE(kv.reserve(a, 10).is_ok());
  fill(kv, a, 0, 10, 1000.0f);
  kv.commit(a, prompt);

  auto b = kv.create_sequence();
  // Two full blocks (8 tokens) match; the third block is partial and is not shared.
  EXPECT_EQ(kv.reuse_prefix(b, prompt), 8);
  EXPECT_EQ(kv.block_table(b)[0], kv.block_table(a)[0]);
  EXPECT_EQ(kv.block_table(b)[1], kv.block_table(a)[1]);
  EXPECT_FLOAT_EQ(read(kv, b, 7), 1007.0f);

  // A prompt of exactly 8 tokens reuses only the first block: its last token needs logits.
  auto c = kv.create_sequence();
  EXPECT_EQ(kv.reuse_prefix(c, iota_tokens(8)), 4);

  // A different first block breaks the chain even if the second block's tokens match.
  auto d = kv.create_sequence();
  auto other = prompt;
  other[0] = 7;
  EXPECT_EQ(kv.reuse_prefix(d, other), 0);
}

TEST(KvCache, FreedBlocksStayCachedUntilEvicted) {
  KvCache kv(tiny_config(), 4, 4);
  auto prompt = iota_tokens(9);
  auto a = kv.create_sequence();
  ASSERT_TRUE(kv.reserve(a, 9).is_ok());
  kv.commit(a, prompt);
  kv.free_sequence(a);
  EXPECT_EQ(kv.n_cached_blocks(), 2);
  EXPECT_EQ(kv.n_free_blocks(), 4);

  auto b = kv.create_sequence();
  EXPECT_EQ(kv.reuse_prefix(b, prompt), 8);
  kv.free_sequence(b);

  // Filling the whole pool with other tokens evicts the cached prefix.
  auto c = kv.create_sequence();
  ASSERT_TRUE(kv.reserve(c, 16).is_ok());
  kv.commit(c, iota_tokens(16, 500));
  kv.free_sequence(c);
  auto d = kv.create_sequence();
  EXPECT_EQ(kv.reuse_prefix(d, prompt), 0);
}

TEST(KvCache, WritingIntoASharedBlockCopiesItFirst) {
  KvCache kv(tiny_config(), 8, 4);
  auto prompt = iota_tokens(8);
  auto a = kv.create_sequence();
  ASSERT_TRUE(kv.reserve(a, 8).is_ok());
  fill(kv, a, 0, 8, 0.0f);
  kv.commit(a, prompt);

  auto b = kv.create_sequence();
  std::vector<int32_t> longer = prompt;
  longer.push_back(1);
  ASSERT_EQ(kv.reuse_prefix(b, longer), 8);
  // Roll b back into the shared second block and write a different token there.
  kv.truncate(b, 6);
  ASSERT_TRUE(kv.reserve(b, 1).is_ok());
  EXPECT_NE(kv.block_table(b)[1], kv.block_table(a)[1]) << "shared block must be copied";
  EXPECT_FLOAT_EQ(read(kv, b, 5), 5.0f) << "the copy keeps the positions before the write";
  fill(kv, b, 6, 7, 900.0f);
  kv.commit(b, std::vector<int32_t>{42});
  EXPECT_FLOAT_EQ(read(kv, a, 6), 6.0f) << "the other sequence's data is untouched";
  EXPECT_FLOAT_EQ(read(kv, b, 6), 906.0f);
}

TEST(KvCache, TruncateReleasesBlocks) {
  KvCache kv(tiny_config(), 4, 4);
  auto a = kv.create_sequence();
  ASSERT_TRUE(kv.reserve(a, 16).is_ok());
  kv.commit(a, iota_tokens(16));
  EXPECT_EQ(kv.n_free_blocks(), 0);
  kv.truncate(a, 5);
  EXPECT_EQ(kv.n_free_blocks(), 2);
  EXPECT_EQ(kv.n_cached_blocks(), 2) << "released full blocks stay reusable";
  EXPECT_EQ(kv.n_past(a), 5);
  EXPECT_EQ(kv.block_table(a).size(), 2u);
  ASSERT_TRUE(kv.reserve(a, 11).is_ok());
}

}  // namespace
}  // namespace frugal
