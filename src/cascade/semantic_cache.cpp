// SemanticCache: embeddings from a model's final hidden states, exact or HNSW nearest-neighbour
// search over the cached requests.
#include "cascade/semantic_cache.h"

#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <cmath>

#include "cascade/cache_tier.h"
#include "engine/tokenizer.h"

namespace frugal::cascade {

namespace {

// Candidates the index returns before the sampling fields are compared.
constexpr size_t kIndexCandidates = 16;

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

std::string text_of(const TierRequest& request) {
  if (request.raw_prompt) return *request.raw_prompt;
  std::string text;
  for (const ChatMessage& m : request.messages) text += m.role + ": " + m.content + "\n";
  return text;
}

}  // namespace

SemanticCache::SemanticCache(const TierConfig& config, std::unique_ptr<Model> model)
    : model_(std::move(model)),
      threshold_(config.similarity),
      checked_(config.semantic_check),
      capacity_(static_cast<size_t>(std::max<int64_t>(1, config.cache_capacity))) {
  const int64_t trained = model_->config().n_ctx_train > 0 ? model_->config().n_ctx_train : 512;
  window_ = std::min<int64_t>(trained, 512);
  kv_ = model_->make_kv_cache(window_);
}

SemanticCache::~SemanticCache() = default;

Result<std::unique_ptr<SemanticCache>> SemanticCache::create(const TierConfig& config,
                                                             const std::string& default_model,
                                                             std::shared_ptr<ThreadPool> pool) {
  const std::string path = config.embedding_model.empty() ? default_model : config.embedding_model;
  if (path.empty()) {
    return invalid_argument("cache tier '" + config.name + "' is semantic but has no "
                            "embedding_model, and tier 1 is not a local GGUF to borrow it from; "
                            "set embedding_model to a GGUF file");
  }
  ModelOptions mo;
  mo.pool = std::move(pool);
  auto model = Model::load(path, mo);
  if (!model.is_ok()) {
    return Status(model.status().code(),
                  "cache tier '" + config.name + "' (embedding model): " + model.status().message());
  }
  return std::unique_ptr<SemanticCache>(new SemanticCache(config, std::move(model).value()));
}

Result<std::vector<float>> SemanticCache::embed(const TierRequest& request) {
  const std::string text = text_of(request);
  if (text.empty()) return invalid_argument("the request has no text to embed");
  const Tokenizer& tok = model_->tokenizer();
  const std::vector<int32_t> ids = tok.encode(text, /*add_special=*/true, /*parse_special=*/false);
  const int64_t n_embd = model_->config().n_embd;
  std::vector<float> sum(static_cast<size_t>(n_embd), 0.0f);
  std::vector<float> logits;
  std::lock_guard<std::mutex> lock(embed_mu_);
  for (size_t start = 0; start < ids.size(); start += static_cast<size_t>(window_)) {
    const size_t n = std::min(ids.size() - start, static_cast<size_t>(window_));
    SeqBatch e;
    e.seq = kv_->create_sequence();
    e.tokens = std::span<const int32_t>(ids.data() + start, n);
    e.no_logits = true;
    e.hidden_sum = sum.data();
    const Status st = model_->forward(std::span<const SeqBatch>(&e, 1), *kv_, logits);
    kv_->free_sequence(e.seq);
    if (!st.is_ok()) return Status(st.code(), "embedding: " + st.message());
  }
  double norm = 0.0;
  for (float v : sum) norm += static_cast<double>(v) * v;
  norm = std::sqrt(norm);
  if (norm > 0) {
    for (float& v : sum) v = static_cast<float>(v / norm);
  }
  return sum;
}

std::optional<SemanticMatch> SemanticCache::nearest(const std::vector<float>& embedding,
                                                    const TierRequest& request) const {
  const std::string sampling = CacheTier::sampling_key(request);
  std::lock_guard<std::mutex> lock(mu_);
  double best = -2.0;
  const Entry* found = nullptr;
  auto consider = [&](const Entry& e) {
    if (e.sampling_key != sampling) return;
    const double s = dot(e.embedding, embedding);
    if (s > best) {
      best = s;
      found = &e;
    }
  };
  if (index_ != nullptr) {
    auto top = index_->searchKnn(embedding.data(), std::min(kIndexCandidates, entries_.size()));
    for (; !top.empty(); top.pop()) consider(entries_[top.top().second]);
  } else {
    for (const Entry& e : entries_) consider(e);
  }
  if (found == nullptr || best < threshold_) return std::nullopt;
  return SemanticMatch{found->answer, std::min(1.0, best)};
}

void SemanticCache::build_index_locked() {
  const size_t dim = entries_.empty() ? 0 : entries_.front().embedding.size();
  space_ = std::make_unique<hnswlib::InnerProductSpace>(dim);
  index_ = std::make_unique<hnswlib::HierarchicalNSW<float>>(space_.get(), capacity_, 16, 200);
  index_->setEf(64);
  for (size_t i = 0; i < entries_.size(); ++i) index_->addPoint(entries_[i].embedding.data(), i);
}

void SemanticCache::store(const std::vector<float>& embedding, const TierRequest& request,
                          const TierAnswer& answer) {
  if (embedding.empty() || answer.interrupted) return;
  Entry e{embedding, CacheTier::sampling_key(request), CacheTier::canonical_key(request), answer};
  std::lock_guard<std::mutex> lock(mu_);
  size_t slot;
  if (auto it = by_key_.find(e.key); it != by_key_.end()) {
    slot = it->second;
  } else if (entries_.size() < capacity_) {
    slot = entries_.size();
    entries_.emplace_back();
  } else {
    slot = next_slot_;
    next_slot_ = (next_slot_ + 1) % capacity_;
    by_key_.erase(entries_[slot].key);
  }
  by_key_[e.key] = slot;
  entries_[slot] = std::move(e);
  if (index_ != nullptr) {
    index_->addPoint(entries_[slot].embedding.data(), slot);  // replaces the slot's old point
  } else if (entries_.size() > kExactLimit) {
    build_index_locked();
  }
}

size_t SemanticCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

bool SemanticCache::uses_index() const {
  std::lock_guard<std::mutex> lock(mu_);
  return index_ != nullptr;
}

}  // namespace frugal::cascade
