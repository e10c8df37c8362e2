// SemanticCache: embeddings from a model's final hidden states, exact or HNSW nearest-neighbour
// search over the cached requests.
#include "cascade/semantic_cache.h"

// hnswlib 0.6.2 (Debian 12) prefetches through one link past the end of a neighbour list in
// its SSE paths, an out-of-bounds read that AddressSanitizer reports; its plain paths do not.
#define NO_MANUAL_VECTORIZATION
#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <span>

#include "cascade/cache_tier.h"
#include "engine/tokenizer.h"
#include "kernels/ops.h"

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

SemanticCache::SemanticCache(const TierConfig& config, std::unique_ptr<Model> tier1,
                             std::unique_ptr<Model> embedder)
    : tier1_(std::move(tier1)),
      embedder_(std::move(embedder)),
      threshold_(config.similarity),
      checked_(config.semantic_check),
      max_gap_(config.semantic_max_gap),
      capacity_(static_cast<size_t>(std::max<int64_t>(1, config.cache_capacity))) {}

SemanticCache::~SemanticCache() = default;

Result<std::unique_ptr<SemanticCache>> SemanticCache::create(const TierConfig& config,
                                                             const std::string& tier1_model,
                                                             std::shared_ptr<ThreadPool> pool) {
  if (tier1_model.empty() && config.embedding_model.empty()) {
    return invalid_argument("cache tier '" + config.name + "' is semantic but has no "
                            "embedding_model, and tier 1 is not a local GGUF to borrow it from; "
                            "set embedding_model to a GGUF file");
  }
  ModelOptions mo;
  mo.pool = std::move(pool);
  auto load = [&](const std::string& path, const char* what) -> Result<std::unique_ptr<Model>> {
    auto m = Model::load(path, mo);
    if (!m.is_ok()) {
      return Status(m.status().code(), "cache tier '" + config.name + "' (" + what +
                                           "): " + m.status().message());
    }
    return m;
  };
  std::unique_ptr<Model> tier1, embedder;
  if (!tier1_model.empty()) {
    FRUGAL_ASSIGN_OR_RETURN(tier1, load(tier1_model, "tier 1's model, for the check"));
  }
  if (!config.embedding_model.empty() && config.embedding_model != tier1_model) {
    FRUGAL_ASSIGN_OR_RETURN(embedder, load(config.embedding_model, "embedding model"));
  }
  return std::unique_ptr<SemanticCache>(
      new SemanticCache(config, std::move(tier1), std::move(embedder)));
}

namespace {

// Runs `tokens` through `model` as a new sequence of `kv` in chunks of at most `chunk` tokens
// that never straddle `split`; each chunk's entry is filled by `fill` (targets, logits, hidden
// sums). Errors: Model::forward's.
Status run_sequence(Model& model, std::unique_ptr<KvCache>& kv, std::span<const int32_t> tokens,
                    int64_t chunk, size_t split,
                    const std::function<void(SeqBatch&, size_t start)>& fill,
                    const std::function<void(const std::vector<float>& logits,
                                             const std::vector<float>& targets, size_t start)>& take) {
  const int64_t need = static_cast<int64_t>(tokens.size());
  if (kv == nullptr || kv->n_positions() < need) kv = model.make_kv_cache(std::max<int64_t>(need, 256));
  const KvCache::SeqId seq = kv->create_sequence();
  std::vector<float> logits, targets;
  Status st;
  for (size_t start = 0; start < tokens.size() && st.is_ok();) {
    size_t end = std::min(start + static_cast<size_t>(chunk), tokens.size());
    if (start < split && split < end) end = split;
    SeqBatch e;
    e.seq = seq;
    e.tokens = tokens.subspan(start, end - start);
    e.no_logits = true;
    fill(e, start);
    st = model.forward(std::span<const SeqBatch>(&e, 1), *kv, logits, &targets);
    if (st.is_ok()) take(logits, targets, start);
    start = end;
  }
  kv->free_sequence(seq);
  return st;
}

}  // namespace

Result<std::vector<float>> SemanticCache::embed(const TierRequest& request) {
  const std::string text = text_of(request);
  if (text.empty()) return invalid_argument("the request has no text to embed");
  Model& model = embedder();
  const std::vector<int32_t> ids =
      model.tokenizer().encode(text, /*add_special=*/true, /*parse_special=*/false);
  const int64_t trained = model.config().n_ctx_train > 0 ? model.config().n_ctx_train : 512;
  const int64_t window = std::min<int64_t>(trained, 512);
  std::vector<float> sum(static_cast<size_t>(model.config().n_embd), 0.0f);
  std::lock_guard<std::mutex> lock(model_mu_);
  // Windows of the trained context, each its own sequence (positions past the training
  // length would not mean what the model learned).
  for (size_t start = 0; start < ids.size(); start += static_cast<size_t>(window)) {
    const size_t n = std::min(ids.size() - start, static_cast<size_t>(window));
    FRUGAL_RETURN_IF_ERROR(run_sequence(
        model, embed_kv_, std::span<const int32_t>(ids.data() + start, n), window, 0,
        [&](SeqBatch& e, size_t) { e.hidden_sum = sum.data(); },
        [](const std::vector<float>&, const std::vector<float>&, size_t) {}));
  }
  double norm = 0.0;
  for (float v : sum) norm += static_cast<double>(v) * v;
  norm = std::sqrt(norm);
  if (norm > 0) {
    for (float& v : sum) v = static_cast<float>(v / norm);
  }
  return sum;
}

Result<SemanticCheck> SemanticCache::check(const LocalTier& tier1, const TierRequest& request,
                                           const TierAnswer& cached) {
  if (tier1_ == nullptr) return unsupported("the semantic check needs tier 1 to be a local model");
  FRUGAL_ASSIGN_OR_RETURN(std::vector<int32_t> prompt, tier1.encode(request));
  const Tokenizer& tok = tier1_->tokenizer();
  std::vector<int32_t> ids = tok.encode(cached.text, /*add_special=*/false, /*parse_special=*/false);
  if (cached.finish == FinishReason::kStop) {
    // The token that ends a turn: ChatML's <|im_end|>, else the vocabulary's end-of-turn or
    // end-of-sequence token.
    std::optional<int32_t> end = tok.token_id("<|im_end|>");
    if (!end && tok.eot_id() >= 0) end = tok.eot_id();
    if (!end && tok.eos_id() >= 0) end = tok.eos_id();
    if (end) ids.push_back(*end);
  }
  if (ids.empty() || prompt.empty()) return invalid_argument("nothing to score");
  const int64_t n_prompt = static_cast<int64_t>(prompt.size());
  const int64_t n_all = n_prompt + static_cast<int64_t>(ids.size());
  const int64_t trained = tier1_->config().n_ctx_train > 0 ? tier1_->config().n_ctx_train : n_all;
  if (n_all > trained) {
    return out_of_range("prompt and cached answer have " + std::to_string(n_all) +
                        " tokens; tier 1 was trained on " + std::to_string(trained));
  }
  // Fed: every token but the last. Rows of the prompt's tokens give the prompt's logprobs
  // (targets); rows from the prompt's last token on give the answer's distributions (logits).
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), ids.begin(), ids.end());
  const std::span<const int32_t> fed(all.data(), all.size() - 1);
  const int64_t n_vocab = tier1_->config().n_vocab;
  const int k = std::clamp(request.n_logprobs, 0, 20);
  SemanticCheck check;
  TierAnswer& out = check.scored;
  out.text = cached.text;
  out.finish = cached.finish;
  double prompt_lp = 0.0;
  std::vector<int32_t> order(static_cast<size_t>(n_vocab));
  std::lock_guard<std::mutex> lock(model_mu_);
  FRUGAL_RETURN_IF_ERROR(run_sequence(
      *tier1_, check_kv_, fed, 512, static_cast<size_t>(n_prompt - 1),
      [&](SeqBatch& e, size_t start) {
        const int64_t s = static_cast<int64_t>(start), n = static_cast<int64_t>(e.tokens.size());
        // Targets for the prompt positions 1..n_prompt-1 within this chunk.
        const int64_t n_targets = std::clamp<int64_t>(n_prompt - 1 - s, 0, n);
        e.targets = std::span<const int32_t>(all.data() + s + 1, static_cast<size_t>(n_targets));
        e.no_logits = s < n_prompt - 1;  // chunks end at the prompt's last token
        e.all_logits = !e.no_logits;
      },
      [&](const std::vector<float>& logits, const std::vector<float>& targets, size_t start) {
        for (float lp : targets) prompt_lp += lp;
        if (logits.empty()) return;
        const int64_t s = static_cast<int64_t>(start);
        const int64_t rows = static_cast<int64_t>(logits.size()) / n_vocab;
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t pos = s + r;  // the row predicts all[pos + 1]
          if (pos < n_prompt - 1) continue;
          const float* row = logits.data() + r * n_vocab;
          const float lse = kernels::log_sum_exp(row, n_vocab);
          AnswerToken t;
          t.id = all[static_cast<size_t>(pos + 1)];
          t.piece = tok.token_to_piece(t.id);
          t.text = t.piece;
          t.logprob = row[t.id] - lse;
          const float best = *std::max_element(row, row + n_vocab);
          check.max_gap = std::max(check.max_gap, static_cast<double>(best - row[t.id]));
          std::iota(order.begin(), order.end(), 0);
          std::partial_sort(order.begin(), order.begin() + k, order.end(),
                            [row](int32_t a, int32_t b) { return row[a] > row[b]; });
          for (int i = 0; i < k; ++i) t.top.push_back({order[i], tok.token_to_piece(order[i]), row[order[i]] - lse});
          out.tokens.push_back(std::move(t));
        }
      }));
  if (n_prompt >= 2) {
    out.prompt_mean_logprob = prompt_lp / static_cast<double>(n_prompt - 1);
    out.has_prompt_logprob = true;
  }
  out.tokens_in = n_all;
  out.tokens_out = 0;
  out.cost = tier1.cost(n_all, 0);
  return check;
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
