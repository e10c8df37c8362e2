// libFuzzer target: arbitrary bytes as a request body through parse_request for both endpoints
// (chat and completions), then the responses built from an answer made of the same bytes —
// response_body, token_chunk and final_chunks for every token, with pieces that split UTF-8
// characters, odd logprobs and every finish reason — and api_error for every error code.
// Must never crash, hang or leak; every accepted request must hold its documented ranges, and
// every JSON text the server would send must parse back.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/openai_api.h"

namespace {

using frugal::server::ApiRequest;
using frugal::server::Endpoint;
using nlohmann::json;

void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "request_fuzz: %s\n", what);
    std::abort();
  }
}

// Text the server would send: dump() must always yield JSON that parses.
void check_wire(const json& j) {
  const std::string text = frugal::server::dump(j);
  require(json::accept(text), "dump() wrote text that is not JSON");
}

void check_request(const ApiRequest& r, const frugal::server::ParseLimits& limits) {
  const frugal::cascade::TierRequest& t = r.tier;
  require(t.max_tokens >= 1 && t.max_tokens <= limits.max_tokens_limit, "max_tokens out of range");
  require(t.temperature >= 0.0f && t.temperature <= 2.0f, "temperature out of range");
  require(t.top_p > 0.0f && t.top_p <= 1.0f, "top_p out of range");
  require(r.top_logprobs >= 0 && r.top_logprobs <= 20, "top_logprobs out of range");
  require(t.n_logprobs >= 5 && t.n_logprobs <= 20, "n_logprobs out of range");
  require(t.stop.size() <= 16, "more than 16 stop strings");
  for (const std::string& s : t.stop) require(!s.empty(), "an empty stop string");
  if (r.endpoint == Endpoint::kChat) {
    require(!t.messages.empty() && !t.raw_prompt, "a chat request without messages");
    for (const auto& m : t.messages)
      require(m.role == "system" || m.role == "user" || m.role == "assistant", "a bad role");
  } else {
    require(t.raw_prompt && !t.raw_prompt->empty() && t.messages.empty(),
            "a completion without its prompt");
  }
  int64_t chars = t.raw_prompt ? static_cast<int64_t>(t.raw_prompt->size()) : 0;
  for (const auto& m : t.messages) chars += static_cast<int64_t>(m.content.size());
  require(chars <= limits.max_prompt_chars, "a prompt over max_prompt_chars");
}

// An answer made of `data`: each byte starts a token whose piece is the next 0-4 bytes (so
// pieces split UTF-8 characters and carry NULs and control bytes).
frugal::cascade::CascadeAnswer answer_from(std::string_view data) {
  frugal::cascade::CascadeAnswer a;
  size_t i = 0;
  while (i < data.size() && a.tokens.size() < 64) {
    const uint8_t b = static_cast<uint8_t>(data[i++]);
    const size_t len = std::min<size_t>(b % 5, data.size() - i);
    frugal::cascade::AnswerToken t;
    t.id = b;
    t.piece = std::string(data.substr(i, len));
    t.text = (b & 0x20) ? t.piece : "";  // text held back (a partial character, a stop)
    t.logprob = (b & 0x40) ? -static_cast<float>(b) / 8.0f : -INFINITY;
    for (int k = 0; k < (b & 3) + 1; ++k) {
      t.top.push_back({b + k, t.piece.substr(0, static_cast<size_t>(k)), -static_cast<float>(k)});
    }
    i += len;
    a.text += t.text;
    a.tokens.push_back(std::move(t));
  }
  const uint8_t first = data.empty() ? 0 : static_cast<uint8_t>(data[0]);
  a.finish = static_cast<frugal::FinishReason>(first % 3);
  a.tier = std::string(data.substr(0, std::min<size_t>(data.size(), 8)));
  a.score = (first & 1) ? std::nan("") : first / 255.0;
  a.cache_hit = first & 2;
  a.escalated = first & 4;
  a.escalated_early = first & 8;
  a.cost = first * 1e-7;
  a.answer_tokens_in = static_cast<int64_t>(data.size());
  a.answer_tokens_in_cached = a.answer_tokens_in / 2;
  a.trace.push_back({a.tier, a.answer_tokens_in, static_cast<int64_t>(a.tokens.size()), a.cost, 1.5});
  if (first & 16) a.tier_errors.push_back(std::string(data.substr(0, 16)));
  return a;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  frugal::server::ParseLimits limits;
  limits.default_max_tokens = 64;
  limits.max_prompt_chars = 4096;
  const frugal::cascade::CascadeAnswer answer = answer_from(body);
  for (Endpoint e : {Endpoint::kChat, Endpoint::kCompletions}) {
    frugal::server::ParseResult r = frugal::server::parse_request(e, body, limits);
    if (!r.ok) {
      require(r.error.status == 400, "a parse error that is not 400");
      require(!r.error.message.empty(), "a parse error without a message");
      check_wire(r.error.body());
      continue;
    }
    check_request(r.request, limits);
    frugal::server::ResponseMeta meta{"id-1", 1700000000, r.request.model};
    check_wire(frugal::server::response_body(r.request, meta, answer));
    for (size_t i = 0; i < answer.tokens.size(); ++i) {
      check_wire(frugal::server::token_chunk(r.request, meta, {answer.tokens[i]}, i == 0));
    }
    for (const json& j : frugal::server::final_chunks(r.request, meta, answer)) check_wire(j);
  }
  // Every error code (and a few values past the last) maps to a status and a body, whatever
  // the message holds.
  for (int c = 0; c < 16; ++c) {
    const frugal::Status st(static_cast<frugal::ErrorCode>(c), std::string(body.substr(0, 64)));
    const frugal::server::ApiError err = frugal::server::api_error(st, "p");
    require(err.status >= 400 && err.status < 600, "an error status outside 4xx/5xx");
    check_wire(err.body());
  }
  return 0;
}
