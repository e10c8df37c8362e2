// DraftModel: vocabulary check, per-sequence caches and batched drafting rounds.
#include "spec/draft_model.h"

#include <chrono>

#include "engine/tokenizer.h"

namespace frugal {

Status check_same_vocabulary(const Model& target, const Model& draft) {
  const Tokenizer& a = target.tokenizer();
  const Tokenizer& b = draft.tokenizer();
  if (a.n_vocab() != b.n_vocab() || target.config().n_vocab != draft.config().n_vocab) {
    return invalid_argument("the draft model has " + std::to_string(draft.config().n_vocab) +
                            " tokens but the target has " +
                            std::to_string(target.config().n_vocab) +
                            "; a draft model needs the target's vocabulary");
  }
  for (int32_t id = 0; id < a.n_vocab(); ++id) {
    if (a.token_to_piece(id) != b.token_to_piece(id)) {
      return invalid_argument("the draft model's token " + std::to_string(id) + " is '" +
                              b.token_to_piece(id) + "' but the target's is '" +
                              a.token_to_piece(id) +
                              "'; a draft model needs the target's vocabulary");
    }
  }
  return Status::ok();
}

Result<std::unique_ptr<DraftModel>> DraftModel::create(std::unique_ptr<Model> model,
                                                       int64_t n_positions, KvType kv_type) {
  FRUGAL_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> kv,
                          KvCache::create(model->config(), n_positions, 16, kv_type));
  return std::unique_ptr<DraftModel>(new DraftModel(std::move(model), std::move(kv)));
}

DraftModel::Seq DraftModel::open(const SamplingParams& sampling) {
  Seq s;
  s.kv = kv_->create_sequence();
  SamplingParams p = sampling;
  p.n_logprobs = 0;
  p.seed = sampling.seed ^ 0x5eedd4af7ull;  // its own stream, repeatable per request
  s.sampler = std::make_unique<Sampler>(p);
  return s;
}

void DraftModel::close(Seq& seq) {
  if (seq.kv >= 0) kv_->free_sequence(seq.kv);
  seq.kv = -1;
  seq.sampler.reset();
}

void DraftModel::draft(std::vector<Job>& jobs) {
  const int64_t n_vocab = model_->config().n_vocab;
  const Tokenizer& tok = model_->tokenizer();
  // What each job feeds this round: first what it has not seen, then its latest draft token.
  std::vector<std::vector<int32_t>> feed(jobs.size());
  std::vector<bool> active(jobs.size(), false);
  for (size_t i = 0; i < jobs.size(); ++i) {
    Job& j = jobs[i];
    const int64_t seen = kv_->n_past(j.seq->kv);
    if (seen > static_cast<int64_t>(j.tokens.size())) kv_->truncate(j.seq->kv, j.tokens.size());
    const int64_t from = kv_->n_past(j.seq->kv);
    feed[i].assign(j.tokens.begin() + from, j.tokens.end());
    active[i] = j.k > 0 && !feed[i].empty();
  }
  SamplingDist dist;
  timing_ = {};
  for (int round = 0;; ++round) {
    std::vector<SeqBatch> batch;
    std::vector<size_t> who;
    bool in_step = true;
    for (size_t i = 0; i < jobs.size(); ++i) {
      if (!active[i]) continue;
      batch.push_back({jobs[i].seq->kv, feed[i], false});
      who.push_back(i);
      in_step = in_step && feed[i].size() <= 2;
    }
    if (batch.empty()) return;
    const auto start = std::chrono::steady_clock::now();
    if (!model_->forward(batch, *kv_, logits_).is_ok()) return;  // cache full: drafts so far
    if (in_step) {
      timing_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      timing_.rounds++;
    }
    for (size_t b = 0; b < who.size(); ++b) {
      Job& j = jobs[who[b]];
      std::span<const float> row(logits_.data() + b * n_vocab, n_vocab);
      j.seq->sampler->distribution(row, &dist);
      const int32_t t = j.seq->sampler->draw(dist);
      j.draft.push_back(t);
      if (!j.seq->sampler->greedy()) j.dists.push_back(dist);
      feed[who[b]].assign(1, t);
      if (static_cast<int>(j.draft.size()) >= j.k || tok.is_eog(t)) active[who[b]] = false;
    }
  }
}

}  // namespace frugal
