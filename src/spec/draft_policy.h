// DraftCostModel: how many tokens to draft, chosen from what drafting and verifying cost on
// this machine rather than from acceptance alone. Verifying k drafts is one forward of the
// target over k + 1 tokens; where that forward is compute-bound (a 1.5B model on 2 cores)
// it costs several decode steps, and long drafts lose even when most of them are accepted:
// the real Qwen2.5-Coder pair on the AMD VM ran at 0.7-0.9x plain decoding with drafts
// grown to 12, and at 1.1-1.4x with drafts of 2-3. The scheduler measures the target's
// forward time per step size and the drafter's time per round, counts acceptance per draft
// position, and asks for the k that maximises expected tokens per second, 0 (no draft)
// included.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace frugal {

class DraftCostModel {
 public:
  explicit DraftCostModel(int k_max);

  // A target forward over n tokens took `seconds`. Sizes above k_max + 1 are ignored.
  void observe_forward(int64_t n, double seconds);
  // One drafting round (one batched forward of the draft model) took `seconds`; a drafter
  // that runs no model (prompt lookup) reports 0.
  void observe_draft_round(double seconds);

  // The target's forward time for n tokens: the running average where measured, else
  // interpolated between the nearest measured sizes, or extrapolated along the line through
  // the two largest. Negative while fewer than two sizes are measured.
  double forward_seconds(int64_t n) const;
  double draft_round_seconds() const { return draft_s_; }  // negative until measured
  bool knows_forward(int64_t n) const;
  // Enough is measured to choose: the drafter's round, the one-token forward, and one more size.
  bool ready() const;

  // Expected tokens per second when drafting k tokens: (1 + sum over i <= k of the chance
  // that drafts 1..i are all accepted) / (k rounds of the drafter + a forward over k + 1
  // tokens). accept[i] is the chance that draft i + 1 is accepted given that draft i was;
  // positions past its end take its last value (0.5 when empty). k = 0 is plain decoding.
  double expected_rate(int k, std::span<const double> accept) const;
  // The k in [0, k_max] with the highest expected rate (the smallest on a tie); needs ready().
  int best_k(std::span<const double> accept) const;
  int k_max() const { return k_max_; }

 private:
  int k_max_;
  std::vector<double> forward_s_;  // [n], running average; negative: not measured
  double draft_s_ = -1.0;
};

// Acceptance counts per draft position, for DraftCostModel::expected_rate: position i was
// reached when drafts 1..i - 1 were accepted.
struct DraftAcceptance {
  std::vector<double> reached, accepted;  // [position - 1], decayed counts
  // One verification: k drafts, the first `n_accepted` of them accepted.
  void observe(int k, int n_accepted);
  // accept[i] = accepted / reached at position i + 1, each pulled towards `prior` (another
  // DraftAcceptance, e.g. the scheduler's over all sequences) by `prior_weight` pseudo-counts;
  // positions never reached are left off.
  std::vector<double> rates(const DraftAcceptance* prior = nullptr, double prior_weight = 2.0) const;
};

}  // namespace frugal
