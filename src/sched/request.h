// What one generation request asks for and what it gets back: the parameters, each streamed
// token, and the finished result. Shared by the scheduler, generate() and the cascade's tiers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/sampler.h"
#include "util/status.h"

namespace frugal {

struct GenerateParams {
  int64_t max_tokens = 128;
  SamplingParams sampling;
  std::vector<std::string> stop;  // generation ends before the first occurrence of any
  bool stop_at_eog = true;        // end-of-generation tokens (EOS, <|im_end|>, ...) end it
  bool echo_prompt_logprobs = false;  // fill GenerateResult::prompt_logprobs
};

enum class FinishReason { kStop, kLength };
const char* finish_reason_name(FinishReason r);  // "stop", "length" (OpenAI's words)

struct GeneratedToken {
  int32_t id = 0;
  std::string piece;        // this token's own bytes (may be part of a UTF-8 character)
  std::string text;         // complete UTF-8 text released by this step (may be empty)
  float logprob = 0.0f;
  std::vector<TokenLogprob> top;
};

struct GenerateResult {
  std::vector<GeneratedToken> tokens;  // every sampled token, the stopping one included
  std::string text;                    // the answer, stop string excluded
  FinishReason finish = FinishReason::kLength;
  // The caller's token callback returned false: the text is a prefix of the full answer.
  bool interrupted = false;
  int64_t n_prompt = 0;
  int64_t n_prompt_cached = 0;         // prompt tokens reused from the prefix cache
  std::vector<float> prompt_logprobs;  // [n_prompt - 1] log p(prompt[i+1] | prompt[..i])
  // Times measured by the scheduler, in seconds from submission.
  double queue_seconds = 0.0;          // until the first prefill chunk ran
  double first_token_seconds = 0.0;    // until the first token was sampled (TTFT)
  double prefill_seconds = 0.0;        // first chunk to first token
  double decode_seconds = 0.0;         // first token to the last
  int64_t n_preempted = 0;             // times the sequence was preempted and recomputed
  // Speculative decoding: draft tokens verified, and of those accepted; of the accepted, how
  // many came from the request's own draft (speculative escalation's reused tokens).
  int64_t n_draft_tokens = 0;
  int64_t n_accepted_tokens = 0;
  int64_t n_reused_tokens = 0;
  // Of the request's draft, tokens kept against the target's own choice (a speculative
  // cascade's deferral rule; 0 for a lossless request).
  int64_t n_draft_kept = 0;
};

// How a request ended: `status` is OK for a finished answer (also when stopped early by the
// caller), kCancelled, kDeadlineExceeded, or the error that ended it; `result` holds what was
// generated either way.
struct Completion {
  Status status;
  GenerateResult result;
};

}  // namespace frugal
