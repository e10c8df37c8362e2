// SemanticCache: finds a cached answer to a near-duplicate request, and checks it before it is
// served. A request's embedding is the mean-pooled final hidden state of a GGUF model over the
// conversation's text, every turn included; similarity is the cosine of two embeddings. The
// nearest cached request with the same sampling fields is found exactly (brute force) while
// the cache is small and through an HNSW graph (hnswlib) beyond kExactLimit entries.
//
// A match is only a candidate. check() has tier 1 score the cached answer as an answer to the
// NEW request — teacher-forced: tier 1's log p of each of the answer's tokens, with its top
// alternatives, under the new prompt — giving a TierAnswer the calibrated scorer reads like
// one tier 1 generated; the cascade serves the candidate only at or above its threshold
// (docs/CASCADE.md, "Semantic cache").
//
// Both passes run on this object's own instance of the models (tier 1's GGUF loaded a second
// time, the same mapped pages), on the caller's thread, never on a scheduler's model.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "cascade/local_tier.h"
#include "cascade/tier.h"
#include "engine/model.h"

namespace hnswlib {
template <typename T>
class HierarchicalNSW;
class InnerProductSpace;
}  // namespace hnswlib

namespace frugal::cascade {

struct SemanticMatch {
  TierAnswer answer;
  double similarity = 0;
};

// Tier 1's teacher-forced reading of a cached answer under a new request.
struct SemanticCheck {
  TierAnswer scored;  // shaped like an answer tier 1 generated, for the scorer
  // The largest log p(tier 1's most likely token) - log p(the cached token) over the answer's
  // positions, >= 0: 0 when tier 1 would have written the cached answer itself (greedy).
  double max_gap = 0;
};

class SemanticCache {
 public:
  // Entries searched by brute force; beyond, an HNSW index.
  static constexpr size_t kExactLimit = 2048;

  // Loads `tier1_model` (tier 1's GGUF; empty when tier 1 is not local, which the check then
  // cannot use) and config.embedding_model when set (else embeddings come from tier 1's
  // model). Errors: kInvalidArgument when no model is named; those of Model::load, naming the
  // cache tier.
  static Result<std::unique_ptr<SemanticCache>> create(const TierConfig& config,
                                                       const std::string& tier1_model,
                                                       std::shared_ptr<ThreadPool> pool);
  ~SemanticCache();

  // The request's embedding [n_embd], unit length: the text of every message ("role: content"
  // lines) or the raw prompt, in windows of the model's context when longer. Thread-safe
  // (serialised). Errors: kInvalidArgument for a request with no text.
  Result<std::vector<float>> embed(const TierRequest& request);
  // The most similar cached answer among requests with `request`'s sampling fields, when its
  // similarity reaches the configured threshold; else nullopt.
  std::optional<SemanticMatch> nearest(const std::vector<float>& embedding,
                                       const TierRequest& request) const;
  // Remembers `answer` for `request` (a deterministic request's final answer); the oldest
  // entry makes room when full.
  void store(const std::vector<float>& embedding, const TierRequest& request,
             const TierAnswer& answer);

  // Tier 1's teacher-forced reading of `cached` as the answer to `request`: the answer's text
  // re-encoded with tier 1's tokenizer (then its end-of-turn token when the answer finished
  // with a stop), each token's logprob and request.n_logprobs alternatives, the prompt's mean
  // logprob, `cached`'s text and finish; tokens_in counts prompt and answer, tokens_out is 0,
  // cost is tier 1's price of tokens_in. `tier1` encodes the prompt (its chat template).
  // Errors: kUnsupported without tier 1's model; those of tier1.encode; kOutOfRange when
  // prompt and answer exceed tier 1's trained context.
  Result<SemanticCheck> check(const LocalTier& tier1, const TierRequest& request,
                              const TierAnswer& cached);
  // A check passes when max_gap <= this (nats) and the scorer reaches the threshold.
  double max_gap() const { return max_gap_; }

  size_t size() const;
  double threshold() const { return threshold_; }
  bool checked() const { return checked_; }
  const std::string& model_path() const { return embedder().path(); }
  bool uses_index() const;  // the HNSW index is in use (more than kExactLimit entries)

 private:
  SemanticCache(const TierConfig& config, std::unique_ptr<Model> tier1,
                std::unique_ptr<Model> embedder);
  Model& embedder() const { return embedder_ != nullptr ? *embedder_ : *tier1_; }
  struct Entry {
    std::vector<float> embedding;
    std::string sampling_key;
    std::string key;  // the canonical key, so a repeated request replaces its entry
    TierAnswer answer;
  };
  void build_index_locked();

  std::unique_ptr<Model> tier1_;     // tier 1's GGUF (null when tier 1 is not local)
  std::unique_ptr<Model> embedder_;  // embedding_model when set, else null (tier1_ embeds)
  double threshold_;
  bool checked_;
  double max_gap_;
  size_t capacity_;
  std::mutex model_mu_;  // forward passes (a Model's scratch serves one at a time), and:
  std::unique_ptr<KvCache> embed_kv_, check_kv_;  // grown to the longest input so far

  mutable std::mutex mu_;  // what follows
  std::vector<Entry> entries_;  // slot = label in the index
  std::unordered_map<std::string, size_t> by_key_;
  size_t next_slot_ = 0;        // the oldest entry once full
  std::unique_ptr<hnswlib::InnerProductSpace> space_;
  std::unique_ptr<hnswlib::HierarchicalNSW<float>> index_;
};

}  // namespace frugal::cascade
