// SemanticCache: finds a cached answer to a near-duplicate request. A request's embedding is
// the mean-pooled final hidden state of a GGUF model already at hand (tier 1's own file by
// default, loaded a second time — the weights are the same mapped pages — so the scheduler's
// model is never touched from another thread) over the conversation's text, every turn
// included; similarity is the cosine of two embeddings. The nearest cached request with the
// same sampling fields is found exactly (brute force) while the cache is small and through an
// HNSW graph (hnswlib) beyond kExactLimit entries.
//
// A match is only a candidate: the cascade serves it after tier 1 has scored the cached answer
// as an answer to the NEW request (LocalTier::score_answer, the calibrated scorer, the
// cascade's threshold) — docs/CASCADE.md, "Semantic cache".
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

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

class SemanticCache {
 public:
  // Entries searched by brute force; beyond, an HNSW index.
  static constexpr size_t kExactLimit = 2048;

  // Loads config.embedding_model, else `default_model` (tier 1's GGUF). Errors: kInvalidArgument
  // when neither names a file; those of Model::load, naming the cache tier.
  static Result<std::unique_ptr<SemanticCache>> create(const TierConfig& config,
                                                       const std::string& default_model,
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

  size_t size() const;
  double threshold() const { return threshold_; }
  bool checked() const { return checked_; }
  const std::string& model_path() const { return model_->path(); }
  bool uses_index() const;  // the HNSW index is in use (more than kExactLimit entries)

 private:
  SemanticCache(const TierConfig& config, std::unique_ptr<Model> model);
  struct Entry {
    std::vector<float> embedding;
    std::string sampling_key;
    std::string key;  // the canonical key, so a repeated request replaces its entry
    TierAnswer answer;
  };
  void build_index_locked();

  std::unique_ptr<Model> model_;
  std::unique_ptr<KvCache> kv_;
  int64_t window_ = 0;  // tokens per forward pass
  double threshold_;
  bool checked_;
  size_t capacity_;
  std::mutex embed_mu_;  // the model and its cache

  mutable std::mutex mu_;  // what follows
  std::vector<Entry> entries_;  // slot = label in the index
  std::unordered_map<std::string, size_t> by_key_;
  size_t next_slot_ = 0;        // the oldest entry once full
  std::unique_ptr<hnswlib::InnerProductSpace> space_;
  std::unique_ptr<hnswlib::HierarchicalNSW<float>> index_;
};

}  // namespace frugal::cascade
