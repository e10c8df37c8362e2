// Speculative verification: the target model's rows for [last, d1..dk] decide which draft
// tokens stand. Greedy: the longest prefix equal to the target's own argmax, then the
// target's token — the output is exactly the target's greedy output. Sampled: the standard
// rejection rule (Leviathan et al. 2023; Chen et al. 2023) — d_i stands with probability
// min(1, p(d_i) / q(d_i)), else a token is drawn from the residual max(0, p - q) — so the
// output distribution is the target's own (p: the sampler's filtered distribution).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "engine/sampler.h"
#include "sched/request.h"
#include "sched/sequence_state.h"

namespace frugal {

struct VerifyResult {
  std::vector<GeneratedToken> emitted;  // accepted draft tokens, then the target's next one
  int accepted = 0;                     // draft tokens kept
  int kept = 0;  // of those, kept by a DraftDeferral against the target's own choice
  bool finished = false;  // the sequence ended inside (EOG, stop, limit, on_emit said stop)
  bool interrupted = false;  // on_emit said stop
};

// The speculative cascade's deferral rule (Narasimhan et al., "Faster Cascades via Speculative
// Decoding", ICLR 2025; their "Diff" rule), for greedy verification: a draft token the target
// would not have chosen still stands when the drafter was about as sure of it as the target is
// of its own choice, q(d) >= max p - alpha, with p the target's softmax (temperature 1) and q
// the drafter's probability of its token. alpha = -1 never keeps such a token (the output is
// the target's own); alpha = 1 always does (the output is the draft). In between the output is
// neither model's own: the rule trades the target's quality for reuse of the draft.
struct DraftDeferral {
  std::span<const float> logprobs;  // log q(d_i), one per draft token
  double alpha = -1.0;              // in [-1, 1]
};

// q(d) >= max p - alpha, for the target's logits row `target_row` and log q(d).
bool drafter_token_stands(std::span<const float> target_row, float drafter_logprob, double alpha);

// `rows` [draft.size() + 1, n_vocab]: row i is the target's logits after draft[..i).
// `draft_dists` (empty, or one per draft token): the draft model's distributions the tokens
// were drawn from; empty means each draft token was proposed with certainty (prompt lookup,
// a given draft, a greedy draft model). `last_allowed(i)` says whether the i-th emitted token
// would leave no room in the context. Emits through `state`, so stop strings and limits act
// as in plain decoding, and hands each token to `on_emit` at once (false: the caller wants no
// more, which ends the sequence there). Stops at the first token that ends the sequence.
// `deferral` (greedy only; nullptr: none) may keep draft tokens the target disagrees with.
VerifyResult verify_draft(SequenceState& state, std::span<const float> rows, int64_t n_vocab,
                          std::span<const int32_t> draft,
                          std::span<const SamplingDist> draft_dists,
                          const std::function<bool(int)>& last_allowed,
                          const std::function<bool(const GeneratedToken&)>& on_emit,
                          const DraftDeferral* deferral = nullptr);

}  // namespace frugal
