// KvCache: block tables, prefix reuse through chained hashes, LRU eviction, copy-on-write and
// rollback — the behaviours batching and prefix sharing rely on.
#include <gtest/gtest.h>

#include <cmath>
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
  KvCache kv(tiny_config(), /*n_blocks=*/4, /*block_size=*/4, KvType::kF32);
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
  KvCache kv(tiny_config(), 16, 4, KvType::kF32);
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
  KvCache kv(tiny_config(), 4, 4, KvType::kF32);
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
  KvCache kv(tiny_config(), 8, 4, KvType::kF32);
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
  KvCache kv(tiny_config(), 4, 4, KvType::kF32);
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

TEST(KvCache, ReserveAllTakesEveryBlockOrNone) {
  KvCache kv(tiny_config(), 4, 4, KvType::kF32);
  auto a = kv.create_sequence(), b = kv.create_sequence();
  ASSERT_TRUE(kv.reserve(a, 4).is_ok());
  kv.commit(a, iota_tokens(4));
  // a needs one more block, b needs three: four wanted, three free.
  const KvCache::Reservation want[] = {{a, 1}, {b, 9}};
  Status st = kv.reserve_all(want);
  EXPECT_EQ(st.code(), ErrorCode::kOutOfRange);
  EXPECT_NE(st.message().find("needs 4 more blocks"), std::string::npos) << st.message();
  EXPECT_EQ(kv.block_table(a).size(), 1u) << "nothing was taken for a";
  EXPECT_TRUE(kv.block_table(b).empty()) << "nothing was taken for b";
  EXPECT_EQ(kv.n_free_blocks(), 3);
  EXPECT_TRUE(kv.consistent());
  const KvCache::Reservation fits[] = {{a, 1}, {b, 8}};
  ASSERT_TRUE(kv.reserve_all(fits).is_ok());
  EXPECT_EQ(kv.n_free_blocks(), 0);
  EXPECT_TRUE(kv.consistent());
}

TEST(KvCache, BlocksKeepTheirTokensLogprobsForPrefixReuse) {
  KvCache kv(tiny_config(), 8, 4, KvType::kF16);
  EXPECT_EQ(kv.bytes(), 2 * 2 * 8 * 2 * 4 * 8 * 2) << "layers x K,V x blocks x heads x slots x dim x 2 bytes";
  auto prompt = iota_tokens(9);
  std::vector<float> lps(9);
  for (int i = 0; i < 9; ++i) lps[i] = i == 0 ? KvCache::kNoLogprob : -0.5f * i;
  auto a = kv.create_sequence();
  ASSERT_TRUE(kv.reserve(a, 9).is_ok());
  kv.commit(a, prompt, lps);
  kv.free_sequence(a);

  auto b = kv.create_sequence();
  std::vector<float> got;
  ASSERT_EQ(kv.reuse_prefix(b, prompt, &got), 8);
  ASSERT_EQ(got.size(), 8u);
  EXPECT_TRUE(std::isnan(got[0]));
  for (int i = 1; i < 8; ++i) EXPECT_FLOAT_EQ(got[i], -0.5f * i);
  kv.free_sequence(b);

  // Blocks written without logprobs are not reused by a request that needs them...
  auto c = kv.create_sequence();
  auto other = iota_tokens(9, 500);
  ASSERT_TRUE(kv.reserve(c, 9).is_ok());
  kv.commit(c, other);
  kv.free_sequence(c);
  auto d = kv.create_sequence();
  std::vector<float> none;
  EXPECT_EQ(kv.reuse_prefix(d, other, &none), 0);
  EXPECT_TRUE(none.empty());
  kv.free_sequence(d);
  // ...but by any other request, and they learn the logprobs a later writer computes.
  auto e = kv.create_sequence();
  EXPECT_EQ(kv.reuse_prefix(e, other), 8);
  kv.free_sequence(e);
  auto f = kv.create_sequence();
  ASSERT_TRUE(kv.reserve(f, 9).is_ok());
  kv.commit(f, other, lps);
  kv.free_sequence(f);
  auto g = kv.create_sequence();
  std::vector<float> learned;
  EXPECT_EQ(kv.reuse_prefix(g, other, &learned), 8);
  EXPECT_FLOAT_EQ(learned[3], -1.5f);
  kv.free_sequence(g);
  EXPECT_TRUE(kv.consistent());
  EXPECT_EQ(kv.n_free_blocks(), kv.n_blocks());
}

TEST(KvCache, CreateRefusesACacheLargerThanTheLimitNamingBothSizes) {
  auto big = KvCache::create(tiny_config(), int64_t{1} << 40, 16, KvType::kF16,
                             /*max_bytes=*/int64_t{1} << 30);
  ASSERT_FALSE(big.is_ok());
  EXPECT_EQ(big.status().code(), ErrorCode::kOutOfRange);
  EXPECT_NE(big.status().message().find("needs"), std::string::npos) << big.status().message();
  EXPECT_NE(big.status().message().find("1.00 GiB"), std::string::npos) << big.status().message();
  auto machine = KvCache::create(tiny_config(), int64_t{1} << 45);
  EXPECT_EQ(machine.status().code(), ErrorCode::kOutOfRange) << "more than this machine has";
  auto ok = KvCache::create(tiny_config(), 100);
  ASSERT_TRUE(ok.is_ok());
  EXPECT_EQ((*ok)->n_positions(), 112) << "rounded up to whole blocks";
}

}  // namespace
}  // namespace frugal
