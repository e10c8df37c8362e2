// SequenceState and StopMatcher: what generate()'s loop did per token, as a state that the
// scheduler advances one logits row at a time.
#include "sched/sequence_state.h"

#include <algorithm>

namespace frugal {

const char* finish_reason_name(FinishReason r) {
  return r == FinishReason::kStop ? "stop" : "length";
}

std::string StopMatcher::push(const std::string& text, bool* stopped) {
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
    if (s.empty()) continue;
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

std::string StopMatcher::flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

SequenceState::SequenceState(const Tokenizer& tokenizer, const GenerateParams& params)
    : tok_(tokenizer),
      params_(params),
      sampler_(params.sampling),
      detok_(tokenizer, /*at_sequence_start=*/false),
      stops_(params.stop) {}

GeneratedToken SequenceState::step(std::span<const float> logits, bool last_allowed,
                                   bool* finished) {
  return push(sampler_.sample(logits), last_allowed, finished);
}

GeneratedToken SequenceState::emit(std::span<const float> logits, int32_t id, bool last_allowed,
                                   bool* finished) {
  return push(sampler_.report(logits, id), last_allowed, finished);
}

GeneratedToken SequenceState::push(SampledToken st, bool last_allowed, bool* finished) {
  GeneratedToken gt;
  gt.id = st.id;
  gt.logprob = st.logprob;
  gt.top = std::move(st.top);
  gt.piece = tok_.token_to_piece(st.id);
  bool stopped = false;
  if (params_.stop_at_eog && tok_.is_eog(st.id)) {
    stopped = true;
    gt.text = stops_.push(detok_.flush(), &stopped) + stops_.flush();
  } else {
    gt.text = stops_.push(detok_.push(st.id), &stopped);
  }
  const bool at_limit = n_generated() + 1 >= params_.max_tokens || last_allowed;
  if (!stopped && at_limit) {
    // The length limit: release what the detokenizer and stop matcher still hold.
    bool unused = false;
    gt.text += stops_.push(detok_.flush(), &unused) + stops_.flush();
  }
  result_.text += gt.text;
  result_.tokens.push_back(gt);
  result_.finish = stopped ? FinishReason::kStop : FinishReason::kLength;
  *finished = stopped || at_limit;
  return gt;
}

void SequenceState::interrupt() {
  result_.finish = FinishReason::kStop;
  result_.interrupted = true;
}

}  // namespace frugal
