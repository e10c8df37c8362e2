// KvCache: block allocation with reference counts, chained prefix hashes, LRU eviction,
// copy-on-write of shared blocks and all-or-nothing reservation for a batch.
#include "engine/kv_cache.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>

namespace frugal {

const char* kv_type_name(KvType type) { return type == KvType::kF16 ? "f16" : "f32"; }

Result<KvType> kv_type_from_name(const std::string& name) {
  if (name == "f16") return KvType::kF16;
  if (name == "f32") return KvType::kF32;
  return invalid_argument("unknown KV cache type '" + name + "' (one of f16, f32)");
}

int64_t KvCache::bytes_per_token(const ModelConfig& c, KvType type) {
  return 2 * c.n_layer * c.n_head_kv * c.head_dim * (type == KvType::kF16 ? 2 : 4);
}

namespace {

int64_t physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<int64_t>(pages) * page : 0;
}

std::string gib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

}  // namespace

Result<std::unique_ptr<KvCache>> KvCache::create(const ModelConfig& config, int64_t n_positions,
                                                 int block_size, KvType type,
                                                 int64_t max_bytes) {
  if (n_positions <= 0) return invalid_argument("the KV cache needs at least one position");
  if (block_size <= 0) return invalid_argument("the KV cache block size must be positive");
  const int64_t per_token = bytes_per_token(config, type);
  const int64_t n_blocks = (n_positions + block_size - 1) / block_size;
  const int64_t limit = max_bytes > 0 ? max_bytes : physical_memory_bytes();
  // n_blocks * block_size * per_token, refusing products that do not fit 64 bits.
  const double want = static_cast<double>(n_blocks) * block_size * static_cast<double>(per_token);
  if (limit > 0 && want > static_cast<double>(limit)) {
    return out_of_range("a KV cache of " + std::to_string(n_positions) + " positions (" +
                        kv_type_name(type) + ", " + std::to_string(per_token) +
                        " bytes each) needs " + gib(want) + " but " +
                        (max_bytes > 0 ? "the limit is " : "the machine has ") + gib(limit) +
                        "; use a smaller context or fewer cached tokens");
  }
  try {
    return std::make_unique<KvCache>(config, n_blocks, block_size, type);
  } catch (const std::bad_alloc&) {
    return out_of_range("cannot allocate " + gib(want) + " for a KV cache of " +
                        std::to_string(n_positions) + " positions; use a smaller context");
  }
}

KvCache::KvCache(const ModelConfig& c, int64_t n_blocks, int block_size, KvType type)
    : n_layer_(c.n_layer),
      n_head_kv_(c.n_head_kv),
      head_dim_(c.head_dim),
      n_blocks_(n_blocks),
      block_size_(block_size),
      type_(type) {
  CHECK(n_blocks > 0 && block_size > 0);
  // Left uninitialised: every position is written before attention reads it, and untouched
  // pages of a large pool are never committed.
  const size_t per_layer = static_cast<size_t>(n_blocks * block_elems() * elem_bytes());
  for (int64_t il = 0; il < n_layer_; ++il) {
    k_.emplace_back(new uint8_t[per_layer]);
    v_.emplace_back(new uint8_t[per_layer]);
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

int64_t KvCache::reuse_prefix(SeqId seq, std::span<const int32_t> tokens,
                              std::vector<float>* logprobs) {
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
    if (logprobs != nullptr) {
      // Position 0 has no logprob; every other position must be known.
      bool known = true;
      for (int j = (i == 0 ? 1 : 0); j < block_size_; ++j) known = known && !std::isnan(blk.logprobs[j]);
      if (!known) break;
    }
    if (blk.ref_count == 0) lru_.erase(blk.lru_pos);
    blk.ref_count++;
    s.blocks.push_back(it->second);
    s.hashes.push_back(h);
    s.tokens.insert(s.tokens.end(), chunk.begin(), chunk.end());
    s.logprobs.insert(s.logprobs.end(), blk.logprobs.begin(), blk.logprobs.end());
    if (logprobs != nullptr) logprobs->insert(logprobs->end(), blk.logprobs.begin(), blk.logprobs.end());
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
  blk.logprobs.clear();
}

void KvCache::copy_block(int32_t from, int32_t to) {
  const size_t n = static_cast<size_t>(block_elems() * elem_bytes());
  for (int64_t il = 0; il < n_layer_; ++il) {
    std::memcpy(k_data(il, to, 0), k_data(il, from, 0), n);
    std::memcpy(v_data(il, to, 0), v_data(il, from, 0), n);
  }
}

int64_t KvCache::blocks_needed(SeqId seq, int64_t n_new) const {
  const Sequence& s = seqs_.at(seq);
  const int64_t n_past = static_cast<int64_t>(s.tokens.size());
  int64_t need = std::max<int64_t>(
      0, (n_past + n_new + block_size_ - 1) / block_size_ - static_cast<int64_t>(s.blocks.size()));
  if (n_new > 0 && n_past % block_size_ != 0 && blocks_[s.blocks[n_past / block_size_]].ref_count > 1)
    ++need;  // copy-on-write of the shared partly filled block
  return need;
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

Status KvCache::reserve_all(std::span<const Reservation> reservations) {
  // Eviction only takes unreferenced blocks, so what one reservation takes never disturbs
  // another's blocks: the sum of the needs against the pool decides for all of them.
  int64_t need = 0;
  for (const Reservation& r : reservations) need += blocks_needed(r.seq, r.n_new);
  if (need > n_free_blocks()) {
    return out_of_range("KV cache is full: this step needs " + std::to_string(need) +
                        " more blocks of " + std::to_string(block_size_) + " tokens but " +
                        std::to_string(n_free_blocks()) + " of " + std::to_string(n_blocks_) +
                        " are free; raise the cache size or run fewer sequences at once");
  }
  for (const Reservation& r : reservations) {
    const Status st = reserve(r.seq, r.n_new);
    CHECK(st.is_ok(), "reserve failed after the pool was checked: %s", st.to_string().c_str());
  }
  return Status::ok();
}

void KvCache::commit(SeqId seq, std::span<const int32_t> tokens, std::span<const float> logprobs) {
  Sequence& s = seqs_.at(seq);
  CHECK(logprobs.empty() || logprobs.size() == tokens.size());
  const int64_t before = static_cast<int64_t>(s.tokens.size());
  s.tokens.insert(s.tokens.end(), tokens.begin(), tokens.end());
  if (logprobs.empty()) {
    s.logprobs.insert(s.logprobs.end(), tokens.size(), kNoLogprob);
  } else {
    s.logprobs.insert(s.logprobs.end(), logprobs.begin(), logprobs.end());
  }
  const int64_t after = static_cast<int64_t>(s.tokens.size());
  CHECK(static_cast<int64_t>(s.blocks.size()) * block_size_ >= after, "commit without reserve");
  // Register blocks that just became full, chaining from the previous block's hash.
  for (int64_t bi = before / block_size_; bi < after / block_size_; ++bi) {
    std::span<const int32_t> chunk(s.tokens.data() + bi * block_size_, block_size_);
    std::span<const float> lps(s.logprobs.data() + bi * block_size_, block_size_);
    const uint64_t parent = bi == 0 ? 0 : s.hashes[bi - 1];
    const uint64_t h = chain_hash(parent, chunk);
    s.hashes.push_back(h);
    Block& blk = blocks_[s.blocks[bi]];
    auto it = prefix_.find(h);
    if (it != prefix_.end() || blk.hashed) {
      // Another sequence registered this prefix first: it keeps its place, and learns the
      // logprobs this one computed where it lacked them.
      Block& owner = blocks_[it != prefix_.end() ? it->second : s.blocks[bi]];
      if (owner.hashed && std::equal(chunk.begin(), chunk.end(), owner.tokens.begin(), owner.tokens.end())) {
        for (int j = 0; j < block_size_; ++j)
          if (std::isnan(owner.logprobs[j])) owner.logprobs[j] = lps[j];
      }
      continue;
    }
    blk.hash = h;
    blk.hashed = true;
    blk.tokens.assign(chunk.begin(), chunk.end());
    blk.logprobs.assign(lps.begin(), lps.end());
    prefix_[h] = s.blocks[bi];
  }
}

void KvCache::truncate(SeqId seq, int64_t n_keep) {
  Sequence& s = seqs_.at(seq);
  CHECK(n_keep >= 0);
  if (n_keep >= static_cast<int64_t>(s.tokens.size())) return;
  s.tokens.resize(n_keep);
  s.logprobs.resize(n_keep);
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

int64_t KvCache::n_live_sequences() const {
  int64_t n = 0;
  for (const Sequence& s : seqs_) n += s.live ? 1 : 0;
  return n;
}

bool KvCache::consistent() const {
  std::vector<int32_t> refs(n_blocks_, 0);
  for (const Sequence& s : seqs_) {
    if (!s.live) continue;
    if (static_cast<int64_t>(s.blocks.size()) * block_size_ < static_cast<int64_t>(s.tokens.size()))
      return false;
    for (int32_t b : s.blocks) refs[b]++;
  }
  std::vector<int> where(n_blocks_, 0);  // 1 free, 2 lru
  for (int32_t b : free_) {
    if (where[b] != 0 || blocks_[b].hashed) return false;
    where[b] = 1;
  }
  for (int32_t b : lru_) {
    if (where[b] != 0 || !blocks_[b].hashed) return false;
    where[b] = 2;
  }
  for (int64_t b = 0; b < n_blocks_; ++b) {
    if (blocks_[b].ref_count != refs[b]) return false;
    if ((refs[b] == 0) != (where[b] != 0)) return false;  // unreferenced <=> free or cached
  }
  for (const auto& [h, b] : prefix_) {
    if (!blocks_[b].hashed || blocks_[b].hash != h) return false;
  }
  return true;
}

}  // namespace frugal
