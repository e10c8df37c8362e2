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
  bool finished = false;  // the sequence ended inside (EOG, stop, limit, on_emit said stop)
  bool interrupted = false;  // on_emit said stop
};

// `rows` [draft.size() + 1, n_vocab]: row i is the target's logits after draft[..i).
// `draft_dists` (empty, or one per draft token): the draft model's distributions the tokens
// were drawn from; empty means each draft token was proposed with certainty (prompt lookup,
// a given draft, a greedy draft model). `last_allowed(i)` says whether the i-th emitted token
// would leave no room in the context. Emits through `state`, so stop strings and limits act
// as in plain decoding, and hands each token to `on_emit` at once (false: the caller wants no
// more, which ends the sequence there). Stops at the first token that ends the sequence.
VerifyResult verify_draft(SequenceState& state, std::span<const float> rows, int64_t n_vocab,
                          std::span<const int32_t> draft,
                          std::span<const SamplingDist> draft_dists,
                          const std::function<bool(int)>& last_allowed,
                          const std::function<bool(const GeneratedToken&)>& on_emit);

}  // namespace frugal
