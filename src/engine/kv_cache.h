// KvCache: a fixed pool of blocks (block_size tokens each) holding every layer's keys and
// values, in half (default) or single precision; each sequence owns a block table. Full blocks
// are identified by a chained hash of their tokens so a shared prefix (a system prompt) is
// computed once and reused across requests; blocks a sequence frees stay cached until evicted
// (least recently used first). A cached block also keeps each of its tokens' logprob under
// the prefix before it, so a request that needs prompt logprobs can still reuse it.
#pragma once

#include <cstdint>
#include <limits>
#include <list>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/model_config.h"
#include "util/status.h"

namespace frugal {

// Element type of the cached keys and values.
enum class KvType : uint8_t {
  kF16,  // IEEE half: half the memory; attention widens each value as it reads it
  kF32,
};
const char* kv_type_name(KvType type);  // "f16", "f32"
// "f16" or "f32"; kInvalidArgument naming the choices otherwise.
Result<KvType> kv_type_from_name(const std::string& name);

class KvCache {
 public:
  using SeqId = int32_t;
  static constexpr float kNoLogprob = std::numeric_limits<float>::quiet_NaN();

  // Bytes one token position takes over all layers: K and V, n_head_kv × head_dim each
  // (frugal plan memory computes the same figure).
  static int64_t bytes_per_token(const ModelConfig& config, KvType type);

  // n_blocks * block_size is the total number of token positions over all sequences; the
  // memory is committed by the OS as blocks are first written.
  KvCache(const ModelConfig& config, int64_t n_blocks, int block_size = 16,
          KvType type = KvType::kF16);
  // The same, after checking the size: kOutOfRange when it exceeds `max_bytes` (0: the
  // machine's physical memory) or cannot be allocated, giving both numbers.
  static Result<std::unique_ptr<KvCache>> create(const ModelConfig& config, int64_t n_positions,
                                                 int block_size = 16, KvType type = KvType::kF16,
                                                 int64_t max_bytes = 0);
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  SeqId create_sequence();
  // Releases the sequence; its full blocks stay cached for prefix reuse until evicted.
  void free_sequence(SeqId seq);

  // For an empty sequence about to process `tokens`: attaches cached full blocks whose
  // tokens equal a prefix of `tokens` and returns how many tokens need no recomputation
  // (always < tokens.size(), so the last prompt token is computed and yields logits).
  // With `logprobs`, only blocks that hold every token's logprob are reused, and those
  // logprobs are appended (one per reused token; position 0 has kNoLogprob).
  int64_t reuse_prefix(SeqId seq, std::span<const int32_t> tokens,
                       std::vector<float>* logprobs = nullptr);

  // Blocks that reserve(seq, n_new) would take from the pool (new blocks and a copy of a
  // shared partly filled block).
  int64_t blocks_needed(SeqId seq, int64_t n_new) const;
  // Makes room for `n_new` more positions (allocating, evicting cached blocks, or copying a
  // shared block before it is written). Error kOutOfRange when the pool is exhausted; the
  // sequence may then hold some of the new blocks (see reserve_all for all-or-nothing).
  Status reserve(SeqId seq, int64_t n_new);
  // Reserves for several sequences at once, all or nothing: on kOutOfRange no sequence and
  // no block has changed.
  struct Reservation {
    SeqId seq;
    int64_t n_new;
  };
  Status reserve_all(std::span<const Reservation> reservations);
  // Records that the K/V of `tokens` (the next positions) have been written. `logprobs`
  // (empty, or one per token: log p(token | the positions before it), NaN when unknown) are
  // kept with the blocks that become full.
  void commit(SeqId seq, std::span<const int32_t> tokens, std::span<const float> logprobs = {});
  // Forgets positions >= n_keep (speculative rollback, or a client resubmitting).
  void truncate(SeqId seq, int64_t n_keep);

  int64_t n_past(SeqId seq) const { return seqs_.at(seq).tokens.size(); }
  const std::vector<int32_t>& tokens(SeqId seq) const { return seqs_.at(seq).tokens; }
  const std::vector<int32_t>& block_table(SeqId seq) const { return seqs_.at(seq).blocks; }

  KvType type() const { return type_; }
  int block_size() const { return block_size_; }
  int64_t n_blocks() const { return n_blocks_; }
  int64_t n_positions() const { return n_blocks_ * block_size_; }
  int64_t n_free_blocks() const;    // free or evictable
  int64_t n_cached_blocks() const;  // evictable blocks still holding a reusable prefix
  int64_t n_used_blocks() const { return n_blocks_ - n_free_blocks(); }
  int64_t n_live_sequences() const;
  int64_t bytes() const { return 2 * n_layer_ * n_blocks_ * block_elems() * elem_bytes(); }
  // Every invariant of the pool (reference counts equal the block-table references, free and
  // LRU lists disjoint and complete, the prefix index consistent); for tests.
  bool consistent() const;

  // Keys of one block for one KV head: [block_size, head_dim] floats in an F32 cache, and
  // [head_dim, block_size] half bits (transposed, as kernels::attention_f16 reads them) in an
  // F16 one; values [block_size, head_dim] of the cache's type in both.
  void* k_data(int64_t il, int32_t block, int64_t kv_head) {
    return k_[il].get() + offset(block, kv_head) * elem_bytes();
  }
  void* v_data(int64_t il, int32_t block, int64_t kv_head) {
    return v_[il].get() + offset(block, kv_head) * elem_bytes();
  }
  // Typed views: the cache's type must be F32 (a bug otherwise).
  float* k(int64_t il, int32_t block, int64_t kv_head) {
    CHECK(type_ == KvType::kF32, "KvCache::k on an %s cache", kv_type_name(type_));
    return static_cast<float*>(k_data(il, block, kv_head));
  }
  float* v(int64_t il, int32_t block, int64_t kv_head) {
    CHECK(type_ == KvType::kF32, "KvCache::v on an %s cache", kv_type_name(type_));
    return static_cast<float*>(v_data(il, block, kv_head));
  }

 private:
  struct Sequence {
    std::vector<int32_t> tokens;  // committed tokens, one per position
    std::vector<int32_t> blocks;  // block table: position p lives in blocks[p / block_size]
    std::vector<uint64_t> hashes; // chained hash of each full block, in order
    std::vector<float> logprobs;  // [tokens] log p(token | before), NaN when unknown
    bool live = false;
  };
  struct Block {
    int32_t ref_count = 0;
    bool hashed = false;  // registered in prefix_ under `hash`
    uint64_t hash = 0;
    std::vector<int32_t> tokens;    // the block's tokens when hashed
    std::vector<float> logprobs;    // [block_size] when hashed; NaN where unknown
    std::list<int32_t>::iterator lru_pos;  // valid when cached (ref_count 0, hashed)
  };

  int64_t block_elems() const { return n_head_kv_ * block_size_ * head_dim_; }
  int64_t elem_bytes() const { return type_ == KvType::kF16 ? 2 : 4; }
  int64_t offset(int32_t block, int64_t kv_head) const {
    return (static_cast<int64_t>(block) * n_head_kv_ + kv_head) * block_size_ * head_dim_;
  }
  Result<int32_t> allocate_block();
  void release_block(int32_t block);
  void unregister(int32_t block);
  void copy_block(int32_t from, int32_t to);
  uint64_t chain_hash(uint64_t parent, std::span<const int32_t> tokens) const;

  int64_t n_layer_, n_head_kv_, head_dim_;
  int64_t n_blocks_;
  int block_size_;
  KvType type_;
  // Per layer: [n_blocks, n_head_kv, block_size, head_dim] elements of type_.
  std::vector<std::unique_ptr<uint8_t[]>> k_, v_;
  std::vector<Block> blocks_;
  std::vector<int32_t> free_;          // never-used or unhashed free blocks
  std::list<int32_t> lru_;             // cached blocks, least recently used at front
  std::unordered_map<uint64_t, int32_t> prefix_;
  std::vector<Sequence> seqs_;
  std::vector<SeqId> free_seq_ids_;
};

}  // namespace frugal
