// RemoteTier: an OpenAI-compatible endpoint (vLLM, TGI, llama.cpp's server, a hosted API, or
// another `frugal serve`) as a cascade tier. Each call streams /chat/completions (or
// /completions for a raw prompt) on its own client thread; the SSE stream's chunks become
// AnswerTokens as they arrive. Timeouts bound the connection, the first token and the whole
// answer; a call that fails before streaming anything is retried with exponential backoff
// (Retry-After honoured); a circuit breaker skips an endpoint that keeps failing. Config keys
// and behaviour: docs/CASCADE.md, "Remote tiers".
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "cascade/tier.h"

namespace httplib {
class Client;
}

namespace frugal::cascade {

// A remote tier's URL split for the HTTP client: "https://api.example.com:8443/v1" gives
// origin "https://api.example.com:8443" and base path "/v1" (a trailing "/chat/completions"
// or "/" is dropped). Errors: kInvalidArgument for a URL that is not http(s)://HOST[:PORT][/PATH].
struct RemoteUrl {
  std::string origin;     // scheme://host[:port]
  std::string base_path;  // "" or "/v1"
  bool https = false;
};
Result<RemoteUrl> parse_remote_url(const std::string& url);

// Splits a Server-Sent Events byte stream into events' data (the "data:" lines of one event,
// joined by "\n"), whatever way the bytes are cut into reads. Comments and other fields are
// skipped.
class SseReader {
 public:
  // Appends the data of every event completed by `bytes` to `events`.
  void feed(std::string_view bytes, std::vector<std::string>* events);
  // Bytes received but not yet part of a complete event.
  size_t pending() const { return line_.size() + data_.size(); }

 private:
  void end_line(std::vector<std::string>* events);
  std::string line_;  // the current, unfinished line
  std::string data_;  // data lines of the current event so far
  bool has_data_ = false;
};

// What one stream's chunks have said so far.
struct StreamState {
  bool chat = true;           // chat.completion.chunk (else text_completion)
  bool done = false;          // "[DONE]" seen
  bool finished = false;      // a finish_reason seen
  FinishReason finish = FinishReason::kLength;
  bool has_usage = false;
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t chunks = 0;         // chunks parsed, for messages
};

// Parses one event's data into tokens appended to `tokens`: with logprobs, one token per
// logprobs entry (piece = its token text, id -1, its top_logprobs most likely first; the
// chunk's text goes on its last token), else one token per non-empty content delta.
// Errors: kBadGateway for data that is not a JSON chunk of the expected shape, and for an
// error event ({"error": {...}}), whose message it carries.
Status parse_stream_chunk(std::string_view data, StreamState* state,
                          std::vector<AnswerToken>* tokens);

class RemoteTier : public Tier {
 public:
  // Checks the URL and reads the API key from the environment variable api_key_env.
  // Errors: kInvalidArgument for a bad URL, or an api_key_env that is not set (the variable
  // is named), or a ca_file that does not exist.
  static Result<std::unique_ptr<RemoteTier>> create(const TierConfig& config);
  // Cancels every call in flight and waits for their threads.
  ~RemoteTier() override;

  // Starts a client thread for `request`. Errors: kUnavailable while the circuit breaker is
  // open (the message says for how long); kInvalidArgument for an empty conversation.
  // Later failures reach sink.on_done: kBadGateway (refused, a stream cut or malformed, an
  // HTTP error status — its body's message quoted), kDeadlineExceeded (connect, first-token or
  // total timeout, or the request's deadline), kResourceExhausted (429 after the retries),
  // kInvalidArgument (the endpoint refused the request with 400/404/422), kCancelled.
  Result<std::unique_ptr<TierCall>> start(const TierRequest& request, TierSink sink) override;

  TierHealth health() const override;

  // The JSON body sent for `request` (for tests and the docs).
  std::string request_body(const TierRequest& request) const;

 private:
  struct Call;
  class Handle;
  enum class Breaker : uint8_t { kClosed, kOpen, kHalfOpen };

  RemoteTier(TierConfig config, RemoteUrl url, std::string api_key);
  void run(const std::shared_ptr<Call>& call);
  Result<TierAnswer> attempt(Call& call, int attempt_index, bool* retryable,
                             std::chrono::milliseconds* retry_after);
  std::shared_ptr<httplib::Client> take_client();
  void return_client(std::shared_ptr<httplib::Client> client);
  void watchdog();
  void wake_watchdog();
  Status admit();
  void record(bool endpoint_failed, bool half_open_probe);
  void reap_finished();

  RemoteUrl url_;
  std::string api_key_;
  std::string path_chat_, path_completions_;

  mutable std::mutex mu_;  // guards everything below
  std::condition_variable cv_;  // wakes the watchdog
  bool stopping_ = false;
  std::list<std::shared_ptr<Call>> calls_;  // in flight
  std::list<std::pair<std::shared_ptr<Call>, std::thread>> threads_;
  std::vector<std::shared_ptr<httplib::Client>> idle_;  // kept-alive connections
  Breaker breaker_ = Breaker::kClosed;
  std::chrono::steady_clock::time_point open_until_;
  bool probe_in_flight_ = false;
  TierHealth health_;
  std::thread watchdog_;
};

}  // namespace frugal::cascade
