// generate(): prompt → tokens for one sequence, with stop strings, max tokens, streaming of
// complete UTF-8 text, per-token logprobs and timings. The cascade and the server build on it.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "engine/kv_cache.h"
#include "engine/model.h"
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
  int64_t n_prompt = 0;
  int64_t n_prompt_cached = 0;         // prompt tokens reused from the prefix cache
  std::vector<float> prompt_logprobs;  // [n_prompt - 1] log p(prompt[i+1] | prompt[..i])
  double prefill_seconds = 0.0;
  double decode_seconds = 0.0;
};

// Runs `prompt` then samples. `on_token` (may be empty) sees each token as it is produced and
// may return false to stop early (finish = kStop). The sequence is freed at the end.
// Errors: kOutOfRange when the prompt does not fit the cache (message says how to fix);
// kInvalidArgument for an empty prompt, bad sampling parameters or token ids.
Result<GenerateResult> generate(Model& model, KvCache& kv, std::span<const int32_t> prompt,
                                const GenerateParams& params,
                                const std::function<bool(const GeneratedToken&)>& on_token = {});

}  // namespace frugal
