// KvCache: block allocation with reference counts, chained prefix hashes, LRU eviction and
// copy-on-write of shared blocks.
#include "engine/kv_cache.h"

#include <algorithm>
#include <cstring>

namespace frugal {

KvCache::KvCache(const ModelConfig& c, int64_t n_blocks, int block_size)
    : n_layer_(c.n_layer),
      n_head_kv_(c.n_head_kv),
      head_dim_(c.head_dim),
      n_blocks_(n_blocks),
      block_size_(block_size) {
  CHECK(n_blocks > 0 && block_size > 0);
  const int64_t per_layer = n_blocks * n_head_kv_ * block_size * head_dim_;
  k_.resize(n_layer_);
  v_.resize(n_layer_);
  for (int64_t il = 0; il < n_layer_; ++il) {
    k_[il].assign(per_layer, 0.0f);
    v_[il].assign(per_layer, 0.0f);
  }
  blocks_.resize(n_blocks);
  free_.reserve(n_blocks);
  for (int64_t b = n_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
}

KvCache::SeqId KvCache::create_sequence() {
  SeqId id;
  if (!free_seq_ids_.empty()) {
    id = free_seq_ids_.back();
    free_seq_ids_.pop_back();
  } else {
    id = static_cast<SeqId>(seqs_.size());
    seqs_.emplace_back();
  }
  seqs_[id] = Sequence{};
  seqs_[id].live = true;
  return id;
}

void KvCache::free_sequence(SeqId seq) {
  Sequence& s = seqs_.at(seq);
  CHECK(s.live, "free_sequence on a sequence that is not live");
  for (int32_t b : s.blocks) release_block(b);
  s = Sequence{};
  free_seq_ids_.push_back(seq);
}

uint64_t KvCache::chain_hash(uint64_t parent, std::span<const int32_t> tokens) const {
  // splitmix64-style mixing of the parent hash and each token: cheap and well spread; a
  // collision is caught by comparing the stored tokens.
  uint64_t h = parent ^ 0x9e3779b97f4a7c15ull;
  for (int32_t t : tokens) {
    h ^= static_cast<uint64_t>(static_cast<uint32_t>(t)) + 0x9e3779b97f4a7c15ull + (h << 6) +
         (h >> 2);
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
  }
  return h;
}

int64_t KvCache::reuse_prefix(SeqId seq, std::span<const int32_t> tokens) {
  Sequence& s = seqs_.at(seq);
  CHECK(s.live && s.tokens.empty(), "reuse_prefix needs a new, empty sequence");
  if (tokens.empty()) return 0;
  uint64_t h = 0;
  const int64_t max_blocks = (static_cast<int64_t>(tokens.size()) - 1) / block_size_;
  for (int64_t i = 0; i < max_blocks; ++i) {
    auto chunk = tokens.subspan(i * block_size_, block_size_);
    h = chain_hash(h, chunk);
    auto it = prefix_.find(h);
    if (it == prefix_.end()) break;
    Block& blk = blocks_[it->second];
    if (!std::equal(chunk.begin(), chunk.end(), blk.tokens.begin(), blk.tokens.end())) break;
    if (blk.ref_count == 0) lru_.erase(blk.lru_pos);
    blk.ref_count++;
    s.blocks.push_back(it->second);
    s.hashes.push_back(h);
    s.tokens.insert(s.tokens.end(), chunk.begin(), chunk.end());
  }
  return static_cast<int64_t>(s.tokens.size());
}

Result<int32_t> KvCache::allocate_block() {
  int32_t b;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
  } else if (!lru_.empty()) {
    b = lru_.front();
    lru_.pop_front();
    unregister(b);
  } else {
    return out_of_range("KV cache is full (" + std::to_string(n_blocks_) + " blocks of " +
                        std::to_string(block_size_) +
                        " tokens); raise the context size or run fewer sequences at once");
  }
  blocks_[b].ref_count = 1;
  return b;
}

void KvCache::release_block(int32_t b) {
  Block& blk = blocks_[b];
  CHECK(blk.ref_count > 0);
  if (--blk.ref_count > 0) return;
  if (blk.hashed) {
    lru_.push_back(b);
    blk.lru_pos = std::prev(lru_.end());
  } else {
    free_.push_back(b);
  }
}

void KvCache::unregister(int32_t b) {
  Block& blk = blocks_[b];
  if (!blk.hashed) return;
  auto it = prefix_.find(blk.hash);
  if (it != prefix_.end() && it->second == b) prefix_.erase(it);
  blk.hashed = false;
  blk.tokens.clear();
}

void KvCache::copy_block(int32_t from, int32_t to) {
  const int64_t n = n_head_kv_ * block_size_ * head_dim_;
  for (int64_t il = 0; il < n_layer_; ++il) {
    std::memcpy(k(il, to, 0), k(il, from, 0), n * sizeof(float));
    std::memcpy(v(il, to, 0), v(il, from, 0), n * sizeof(float));
  }
}

Status KvCache::reserve(SeqId seq, int64_t n_new) {
  Sequence& s = seqs_.at(seq);
  CHECK(s.live);
  const int64_t n_past = static_cast<int64_t>(s.tokens.size());
  // The partly filled block we are about to write into must be ours alone and unhashed.
  if (n_new > 0 && n_past % block_size_ != 0) {
    const int64_t bi = n_past / block_size_;
    int32_t b = s.blocks[bi];
    if (blocks_[b].ref_count > 1) {
      FRUGAL_ASSIGN_OR_RETURN(int32_t copy, allocate_block());
      copy_block(b, copy);
      release_block(b);
      s.blocks[bi] = copy;
    } else {
      unregister(b);
    }
  }
  const int64_t need = (n_past + n_new + block_size_ - 1) / block_size_;
  while (static_cast<int64_t>(s.blocks.size()) < need) {
    FRUGAL_ASSIGN_OR_RETURN(int32_t b, allocate_block());
    s.blocks.push_back(b);
  }
  return Status::ok();
}

void KvCache::commit(SeqId seq, std::span<const int32_t> tokens) {
  Sequence& s = seqs_.at(seq);
  const int64_t before = static_cast<int64_t>(s.tokens.size());
  s.tokens.insert(s.tokens.end(), tokens.begin(), tokens.end());
  const int64_t after = static_cast<int64_t>(s.tokens.size());
  CHECK(static_cast<int64_t>(s.blocks.size()) * block_size_ >= after, "commit without reserve");
  // Register blocks that just became full, chaining from the previous block's hash.
  for (int64_t bi = before / block_size_; bi < after / block_size_; ++bi) {
    std::span<const int32_t> chunk(s.tokens.data() + bi * block_size_, block_size_);
    const uint64_t parent = bi == 0 ? 0 : s.hashes[bi - 1];
    const uint64_t h = chain_hash(parent, chunk);
    s.hashes.push_back(h);
    Block& blk = blocks_[s.blocks[bi]];
    // A block another sequence already registered for this prefix keeps its place.
    if (blk.hashed || prefix_.count(h) != 0) continue;
    blk.hash = h;
    blk.hashed = true;
    blk.tokens.assign(chunk.begin(), chunk.end());
    prefix_[h] = s.blocks[bi];
  }
}

void KvCache::truncate(SeqId seq, int64_t n_keep) {
  Sequence& s = seqs_.at(seq);
  CHECK(n_keep >= 0);
  if (n_keep >= static_cast<int64_t>(s.tokens.size())) return;
  s.tokens.resize(n_keep);
  s.hashes.resize(std::min<size_t>(s.hashes.size(), n_keep / block_size_));
  const size_t keep_blocks = (n_keep + block_size_ - 1) / block_size_;
  while (s.blocks.size() > keep_blocks) {
    release_block(s.blocks.back());
    s.blocks.pop_back();
  }
}

int64_t KvCache::n_free_blocks() const {
  return static_cast<int64_t>(free_.size() + lru_.size());
}

int64_t KvCache::n_cached_blocks() const { return static_cast<int64_t>(lru_.size()); }

}  // namespace frugal
