// The OpenAI API's shapes: a request body (chat or completions) checked field by field into a
// cascade request, the responses and stream chunks built from an answer, and the one mapping
// of an error to an HTTP status and OpenAI's error body. Transport-free, so the request
// parser can be fuzzed on its own (fuzz/request_fuzz.cpp). Fields: docs/SERVER.md.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cascade/cascade.h"
#include "cascade/shadow.h"
#include "cascade/tier.h"
#include "util/status.h"

namespace frugal::server {

enum class Endpoint { kChat, kCompletions };

// A request the server can run.
struct ApiRequest {
  Endpoint endpoint = Endpoint::kChat;
  std::string model;               // as the client named it (empty: the cascade)
  cascade::TierRequest tier;       // conversation or raw prompt, sampling, stops, logprob count
  bool stream = false;
  bool include_usage = false;      // stream_options.include_usage
  bool logprobs = false;           // return per-token logprobs
  int top_logprobs = 0;            // alternatives per token in the response (0-20)
  std::string user;
  // The `frugal` extension (slice tag, item check) for shadow checks; x-frugal-slice sets the
  // slice too.
  cascade::ShadowTags frugal;
};

// An error as the client sees it: HTTP status and OpenAI's body
// {"error": {"message", "type", "param", "code"}}.
struct ApiError {
  int status = 500;
  std::string message;
  std::string type;   // invalid_request_error, authentication_error, rate_limit_error, ...
  std::string param;  // the request field at fault; empty: null
  std::string code;   // e.g. context_length_exceeded, model_not_found; empty: null
  nlohmann::json body() const;
};

// The one mapping of ErrorCode to HTTP status and error type: kInvalidArgument,
// kUnsupported, kOutOfRange 400 (kOutOfRange: code context_length_exceeded); kNotFound 404;
// kResourceExhausted 429; kUnavailable 503; kDeadlineExceeded 504; kCancelled 499; others 500.
ApiError api_error(const Status& status, std::string param = "");

struct ParseLimits {
  int64_t default_max_tokens = 256;
  int64_t max_tokens_limit = int64_t{1} << 20;
  int64_t max_prompt_chars = 256 * 1024;
};

// Checks a request body. Unknown fields are ignored, as OpenAI's clients send fields a server
// may not know; every known field is checked for type and range, and an error names it.
// Defaults: temperature 0 (greedy: the cascade was calibrated so, and greedy answers are
// cached), top_p 1, max_tokens from the limits.
struct ParseResult {
  bool ok = false;
  ApiRequest request;
  ApiError error;
};
ParseResult parse_request(Endpoint endpoint, std::string_view body, const ParseLimits& limits);

// Identity and timing a response carries.
struct ResponseMeta {
  std::string id;      // "chatcmpl-..." / "cmpl-..."
  int64_t created = 0; // unix seconds
  std::string model;   // as requested
};

// The `frugal` object: which tier answered, its score, escalation, cost and the tiers tried.
nlohmann::json frugal_object(const cascade::CascadeAnswer& answer);
// usage: prompt_tokens, completion_tokens, total_tokens, prompt_tokens_details.cached_tokens
// (of the answering tier: its prefix cache's share; all of them on a response-cache hit).
nlohmann::json usage_object(const cascade::CascadeAnswer& answer);

// A whole (non-streamed) response.
nlohmann::json response_body(const ApiRequest& request, const ResponseMeta& meta,
                             const cascade::CascadeAnswer& answer);
// One stream chunk carrying `tokens` (their text and, when asked, logprobs); `first` adds the
// chat role.
nlohmann::json token_chunk(const ApiRequest& request, const ResponseMeta& meta,
                           const std::vector<cascade::AnswerToken>& tokens, bool first);
// The chunk with finish_reason (and the frugal object); then, with include_usage, the usage
// chunk (choices empty) — both from final_chunks.
std::vector<nlohmann::json> final_chunks(const ApiRequest& request, const ResponseMeta& meta,
                                         const cascade::CascadeAnswer& answer);

// JSON text for the wire: invalid UTF-8 (a token that is part of a character) replaced.
std::string dump(const nlohmann::json& j);

}  // namespace frugal::server
