// DraftModel: a small model with the target's vocabulary, run by the target's scheduler to
// propose k tokens per sequence per step: each round is ONE batched forward of the draft model
// over every drafting sequence. It keeps its own KV cache, rolled back with the target's.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engine/kv_cache.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "util/status.h"

namespace frugal {

// Errors: kInvalidArgument when `draft` cannot draft for `target`: a different vocabulary
// size, or a token whose text differs (the first difference is named).
Status check_same_vocabulary(const Model& target, const Model& draft);

class DraftModel {
 public:
  // `n_positions`: KV-cache positions over all sequences.
  static Result<std::unique_ptr<DraftModel>> create(std::unique_ptr<Model> model,
                                                    int64_t n_positions, KvType kv_type);

  // One drafting sequence. Each has its own sampler (seeded from the request) so sampled
  // drafts are repeatable.
  struct Seq {
    KvCache::SeqId kv = -1;
    std::unique_ptr<Sampler> sampler;
  };
  Seq open(const SamplingParams& sampling);
  void close(Seq& seq);
  int64_t n_past(const Seq& seq) const { return kv_->n_past(seq.kv); }
  void truncate(Seq& seq, int64_t n_keep) { kv_->truncate(seq.kv, n_keep); }

  // A drafting request for one sequence: the target's tokens so far (the draft model feeds
  // what it has not seen yet), up to k tokens wanted, stop after an end-of-generation token.
  struct Job {
    Seq* seq;
    std::span<const int32_t> tokens;
    int k;
    std::vector<int32_t> draft;        // out
    std::vector<SamplingDist> dists;   // out, one per draft token (sampled requests)
  };
  // Runs max k rounds, one batched forward each. A job whose sequence cannot get cache
  // blocks gets a shorter (possibly empty) draft; no error reaches the caller.
  void draft(std::vector<Job>& jobs);

  // The last draft() call's rounds that fed each sequence at most two tokens (its latest
  // draft token, or what the target emitted since): the cost of a round in step with the
  // target. A first round that catches up on many tokens is a small prefill, left out.
  struct Timing {
    double seconds = 0;
    int rounds = 0;
  };
  const Timing& last_timing() const { return timing_; }

  const Model& model() const { return *model_; }

 private:
  DraftModel(std::unique_ptr<Model> model, std::unique_ptr<KvCache> kv)
      : model_(std::move(model)), kv_(std::move(kv)) {}
  std::unique_ptr<Model> model_;
  std::unique_ptr<KvCache> kv_;
  std::vector<float> logits_;
  Timing timing_;
};

}  // namespace frugal
