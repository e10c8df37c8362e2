// generate(): the single-sequence generation loop on top of Model::forward.
#include "engine/generate.h"

#include <algorithm>
#include <cmath>

#include "engine/tokenizer.h"
#include "util/timer.h"

namespace frugal {

const char* finish_reason_name(FinishReason r) {
  return r == FinishReason::kStop ? "stop" : "length";
}

namespace {

// Releases text that can no longer turn into a stop string; finds a completed stop string.
class StopMatcher {
 public:
  explicit StopMatcher(const std::vector<std::string>& stops) : stops_(stops) {}

  // Appends `text`; returns what may be shown now. Sets `stopped` when a stop string
  // completed (the returned text then ends just before it and the rest is discarded).
  std::string push(const std::string& text, bool* stopped) {
    pending_ += text;
    size_t first = std::string::npos;
    for (const std::string& s : stops_) {
      if (s.empty()) continue;
      size_t at = pending_.find(s);
      if (at != std::string::npos) first = std::min(first, at);
    }
    if (first != std::string::npos) {
      *stopped = true;
      std::string out = pending_.substr(0, first);
      pending_.clear();
      return out;
    }
    // Hold back the longest suffix that is a proper prefix of some stop string.
    size_t hold = 0;
    for (const std::string& s : stops_) {
      for (size_t len = std::min(s.size() - 1, pending_.size()); len > hold; --len) {
        if (pending_.compare(pending_.size() - len, len, s, 0, len) == 0) {
          hold = len;
          break;
        }
      }
    }
    std::string out = pending_.substr(0, pending_.size() - hold);
    pending_.erase(0, pending_.size() - hold);
    return out;
  }
  std::string flush() {
    std::string out;
    out.swap(pending_);
    return out;
  }

 private:
  const std::vector<std::string>& stops_;
  std::string pending_;
};

// log p(token) under a row of raw logits.
float log_prob(std::span<const float> row, int32_t token) {
  float mx = *std::max_element(row.begin(), row.end());
  double z = 0.0;
  for (float v : row) z += std::exp(static_cast<double>(v - mx));
  return row[token] - mx - static_cast<float>(std::log(z));
}

}  // namespace

Result<GenerateResult> generate(Model& model, KvCache& kv, std::span<const int32_t> prompt,
                                const GenerateParams& params,
                                const std::function<bool(const GeneratedToken&)>& on_token) {
  FRUGAL_RETURN_IF_ERROR(params.sampling.validate());
  if (prompt.empty()) return invalid_argument("the prompt is empty");
  if (params.max_tokens < 0) return invalid_argument("max_tokens must be >= 0");
  const int64_t capacity = kv.n_blocks() * kv.block_size();
  const int64_t n_vocab = model.config().n_vocab;
  if (static_cast<int64_t>(prompt.size()) >= capacity) {
    return out_of_range("the prompt has " + std::to_string(prompt.size()) +
                        " tokens but the context holds " + std::to_string(capacity) +
                        "; shorten the prompt or raise the context size (--ctx)");
  }

  GenerateResult result;
  result.n_prompt = static_cast<int64_t>(prompt.size());
  const KvCache::SeqId seq = kv.create_sequence();
  struct Freer {
    KvCache& kv;
    KvCache::SeqId seq;
    ~Freer() { kv.free_sequence(seq); }
  } freer{kv, seq};

  Timer timer;
  const int64_t cached = params.echo_prompt_logprobs ? 0 : kv.reuse_prefix(seq, prompt);
  result.n_prompt_cached = cached;
  std::vector<float> logits;
  const SeqBatch first{seq, prompt.subspan(cached), params.echo_prompt_logprobs};
  FRUGAL_RETURN_IF_ERROR(model.forward(std::span<const SeqBatch>(&first, 1), kv, logits));
  if (params.echo_prompt_logprobs) {
    for (size_t i = 0; i + 1 < prompt.size(); ++i) {
      std::span<const float> row(logits.data() + i * n_vocab, n_vocab);
      result.prompt_logprobs.push_back(log_prob(row, prompt[i + 1]));
    }
    logits.erase(logits.begin(), logits.end() - n_vocab);
  }
  result.prefill_seconds = timer.seconds();
  timer.reset();

  Sampler sampler(params.sampling);
  StreamingDetokenizer detok(model.tokenizer(), /*at_sequence_start=*/false);
  StopMatcher stops(params.stop);
  bool stopped = false;
  for (int64_t n = 0; n < params.max_tokens; ++n) {
    SampledToken st = sampler.sample(std::span<const float>(logits.data(), n_vocab));
    GeneratedToken gt;
    gt.id = st.id;
    gt.logprob = st.logprob;
    gt.top = std::move(st.top);
    gt.piece = model.tokenizer().token_to_piece(st.id);
    const bool eog = params.stop_at_eog && model.tokenizer().is_eog(st.id);
    if (eog) {
      stopped = true;
      gt.text = stops.push(detok.flush(), &stopped) + stops.flush();
    } else {
      gt.text = stops.push(detok.push(st.id), &stopped);
    }
    result.text += gt.text;
    const bool keep_going = !on_token || on_token(gt);
    result.tokens.push_back(std::move(gt));
    if (stopped || !keep_going) {
      stopped = true;
      break;
    }
    if (n + 1 == params.max_tokens || kv.n_past(seq) + 1 > capacity) break;
    const int32_t next = st.id;
    const SeqBatch step{seq, std::span<const int32_t>(&next, 1), false};
    FRUGAL_RETURN_IF_ERROR(model.forward(std::span<const SeqBatch>(&step, 1), kv, logits));
  }
  if (!stopped) {
    // Length limit: release what the detokenizer and stop matcher still hold.
    bool unused = false;
    std::string rest = stops.push(detok.flush(), &unused) + stops.flush();
    result.text += rest;
    if (!result.tokens.empty()) result.tokens.back().text += rest;
  }
  result.finish = stopped ? FinishReason::kStop : FinishReason::kLength;
  result.decode_seconds = timer.seconds();
  return result;
}

}  // namespace frugal
