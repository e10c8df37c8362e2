// KvCache: a fixed pool of blocks (block_size tokens each) holding every layer's keys and
// values; each sequence owns a block table. Full blocks are identified by a chained hash of
// their tokens so a shared prefix (a system prompt) is computed once and reused; blocks a
// sequence frees stay cached until evicted (least recently used first).
#pragma once

#include <cstdint>
#include <list>
#include <span>
#include <unordered_map>
#include <vector>

#include "engine/model_config.h"
#include "util/status.h"

namespace frugal {

class KvCache {
 public:
  using SeqId = int32_t;

  // n_blocks * block_size is the total number of token positions over all sequences.
  KvCache(const ModelConfig& config, int64_t n_blocks, int block_size = 16);
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  SeqId create_sequence();
  // Releases the sequence; its full blocks stay cached for prefix reuse until evicted.
  void free_sequence(SeqId seq);

  // For an empty sequence about to process `tokens`: attaches cached full blocks whose
  // tokens equal a prefix of `tokens` and returns how many tokens need no recomputation
  // (always < tokens.size(), so the last prompt token is computed and yields logits).
  int64_t reuse_prefix(SeqId seq, std::span<const int32_t> tokens);

  // Makes room for `n_new` more positions (allocating, evicting cached blocks, or copying a
  // shared block before it is written). Error kOutOfRange when the pool is exhausted.
  Status reserve(SeqId seq, int64_t n_new);
  // Records that the K/V of `tokens` (the next positions) have been written.
  void commit(SeqId seq, std::span<const int32_t> tokens);
  // Forgets positions >= n_keep (speculative rollback, or a client resubmitting).
  void truncate(SeqId seq, int64_t n_keep);

  int64_t n_past(SeqId seq) const { return seqs_.at(seq).tokens.size(); }
  const std::vector<int32_t>& tokens(SeqId seq) const { return seqs_.at(seq).tokens; }
  const std::vector<int32_t>& block_table(SeqId seq) const { return seqs_.at(seq).blocks; }

  int block_size() const { return block_size_; }
  int64_t n_blocks() const { return n_blocks_; }
  int64_t n_free_blocks() const;    // free or evictable
  int64_t n_cached_blocks() const;  // evictable blocks still holding a reusable prefix

  // Keys of one block for one KV head: [block_size, head_dim]; values likewise.
  float* k(int64_t il, int32_t block, int64_t kv_head) {
    return k_[il].data() + ((static_cast<int64_t>(block) * n_head_kv_ + kv_head) * block_size_) *
                               head_dim_;
  }
  float* v(int64_t il, int32_t block, int64_t kv_head) {
    return v_[il].data() + ((static_cast<int64_t>(block) * n_head_kv_ + kv_head) * block_size_) *
                               head_dim_;
  }

 private:
  struct Sequence {
    std::vector<int32_t> tokens;  // committed tokens, one per position
    std::vector<int32_t> blocks;  // block table: position p lives in blocks[p / block_size]
    std::vector<uint64_t> hashes; // chained hash of each full block, in order
    bool live = false;
  };
  struct Block {
    int32_t ref_count = 0;
    bool hashed = false;  // registered in prefix_ under `hash`
    uint64_t hash = 0;
    std::vector<int32_t> tokens;                 // the block's tokens when hashed
    std::list<int32_t>::iterator lru_pos;        // valid when cached (ref_count 0, hashed)
  };

  Result<int32_t> allocate_block();
  void release_block(int32_t block);
  void unregister(int32_t block);
  void copy_block(int32_t from, int32_t to);
  uint64_t chain_hash(uint64_t parent, std::span<const int32_t> tokens) const;

  int64_t n_layer_, n_head_kv_, head_dim_;
  int64_t n_blocks_;
  int block_size_;
  // Per layer: [n_blocks, n_head_kv, block_size, head_dim].
  std::vector<std::vector<float>> k_, v_;
  std::vector<Block> blocks_;
  std::vector<int32_t> free_;          // never-used or unhashed free blocks
  std::list<int32_t> lru_;             // cached blocks, least recently used at front
  std::unordered_map<uint64_t, int32_t> prefix_;
  std::vector<Sequence> seqs_;
  std::vector<SeqId> free_seq_ids_;
};

}  // namespace frugal
