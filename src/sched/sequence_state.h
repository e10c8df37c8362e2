// SequenceState: the per-sequence half of generation that the scheduler steps — sampling each
// logits row, releasing complete UTF-8 text, holding back what may become a stop string,
// counting tokens and collecting the result. The batching half lives in Scheduler.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/sampler.h"
#include "engine/tokenizer.h"
#include "sched/request.h"

namespace frugal {

// Releases text that can no longer turn into a stop string; finds a completed stop string.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}

  // Appends `text`; returns what may be shown now. Sets *stopped when a stop string completed
  // (the returned text then ends just before it and the rest is discarded).
  std::string push(const std::string& text, bool* stopped);
  // Everything still held back.
  std::string flush();

 private:
  std::vector<std::string> stops_;
  std::string pending_;
};

class SequenceState {
 public:
  // `params` must be valid (SamplingParams::validate, max_tokens >= 0).
  SequenceState(const Tokenizer& tokenizer, const GenerateParams& params);

  // Samples the next token from `logits` [n_vocab]. `last_allowed`: the caller cannot feed
  // another token (the context is full), so this one ends generation with finish = length
  // unless it stops. Sets *finished when generation ends here (end-of-generation token, stop
  // string, max_tokens, last_allowed); the returned token's text then includes everything the
  // detokenizer and stop matcher still held.
  GeneratedToken step(std::span<const float> logits, bool last_allowed, bool* finished);
  // The same for a token chosen elsewhere (speculative verification): `id` goes through the
  // detokenizer and stop strings, its logprob and alternatives read off `logits`.
  GeneratedToken emit(std::span<const float> logits, int32_t id, bool last_allowed,
                      bool* finished);
  // The sampler (its distribution and seeded stream), for speculative verification.
  Sampler& sampler() { return sampler_; }
  // Records that the caller stopped the stream after the latest token (finish = stop).
  void interrupt();

  int64_t n_generated() const { return static_cast<int64_t>(result_.tokens.size()); }
  const GenerateParams& params() const { return params_; }
  // What was generated so far (all of it once finished).
  GenerateResult& result() { return result_; }

 private:
  GeneratedToken push(SampledToken st, bool last_allowed, bool* finished);

  const Tokenizer& tok_;
  GenerateParams params_;
  Sampler sampler_;
  StreamingDetokenizer detok_;
  StopMatcher stops_;
  GenerateResult result_;
};

}  // namespace frugal
