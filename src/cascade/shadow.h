// Shadow checks: a sampled fraction of the requests tier 1 answered is answered again by the
// top tier in the background — after the client has its answer, within a budget per rolling
// hour, through a bounded queue — and the two answers compared. The outcomes feed the drift
// alarm (drift.h): a CUSUM per slice and overall against the agreement calibration predicted,
// whose alarm logs, counts and (action "escalate-all") sends every request to the top tier
// until the server reloads. Docs: docs/OPERATIONS.md.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "cascade/cascade.h"
#include "cascade/distill_log.h"
#include "cascade/drift.h"
#include "cascade/task_items.h"

namespace frugal::cascade {

// What a request says about itself (the `frugal` request extension, docs/SERVER.md): its slice
// tag, and the item's check method, which then judges whether tier 1's answer agrees with the
// top tier's (answers_agree, the comparison `frugal calibrate` predicts agreement with).
struct ShadowTags {
  std::string slice;
  std::optional<CheckSpec> check;
};

// The comparison "exact" makes: ASCII whitespace trimmed and runs of it made one space, ASCII
// letters lower-cased, one trailing '.' dropped.
std::string normalize_for_compare(std::string_view answer);

// What the drift alarm expects, from calibration: among the calibration items tier 1 keeps at
// the chosen threshold, the share whose tier-1 answer agrees with the top tier's under the
// item's check (answers_agree, what a shadow check with that item's check measures), overall
// and per slice. Shares are (agreements + 0.5) / (kept + 1), so that none is 0 or 1.
struct AgreementExpectation {
  double overall = 0;
  int64_t kept = 0;
  std::vector<std::pair<std::string, double>> slices;  // slices with >= kMinSliceKept kept
};
inline constexpr int64_t kMinSliceKept = 20;
// `scores[i]` is the fitted scorer's P for items[i]; runs[i] its two answers. Errors: those of
// answers_agree; kInvalidArgument when tier 1 keeps no item.
Result<AgreementExpectation> expected_agreement(const std::vector<TaskItem>& items,
                                                const std::vector<ItemRun>& runs,
                                                const std::vector<double>& scores,
                                                double threshold);
// The config text with [shadow] expected_agreement set (the table added when absent) and the
// [shadow.slice_agreement] table replaced; everything else kept as written.
std::string set_expected_agreement(const std::string& config_text,
                                   const AgreementExpectation& expected);

// The detectors' state, for /metrics and tests.
struct DriftState {
  std::string slice;  // "" for the overall detector
  double expected_agreement = 0;
  int64_t outcomes = 0;
  int64_t agreements = 0;
  double statistic_nats = 0;
  bool alarm = false;
  int64_t fired_at = 0;  // the outcome count when it fired; 0: not fired
  CusumDesign design;
};

// Where the checker reports what happened (the server turns these into metrics). Each may be
// empty; they run on the checker's threads or offer()'s caller.
struct ShadowObserver {
  // method: "exact", "check" or "logprob"; slice "" when untagged.
  std::function<void(const std::string& slice, bool agree, const std::string& method)> on_outcome;
  // reason: "budget", "queue" (full), "error" (the top tier failed or could not read the answer).
  std::function<void(const std::string& reason)> on_drop;
  std::function<void(double dollars)> on_spent;
  std::function<void(const DriftState& state)> on_alarm;
};

// Why offer() did not queue a check (kQueued when it did).
enum class ShadowOffer { kQueued, kNotSampled, kNotEligible, kOverBudget, kQueueFull };

class ShadowChecker {
 public:
  using Clock = std::chrono::steady_clock;
  struct Options {
    std::function<Clock::time_point()> now;  // empty: steady_clock::now (tests move time)
    uint64_t seed = 0;                       // of the sampling; 0: random
    std::function<void(const std::string&)> log;  // the alarm's log line; empty: stderr
    ShadowObserver observer;
    DistillLog* distill = nullptr;  // shadow pairs are written here when set (not owned)
  };

  // Checks `cascade`'s kept answers under its config's [shadow] table. Designs the drift
  // detectors when expected_agreement is set (well under a second each); loads a second,
  // read-only instance of a local top tier's model for compare "logprob"/"auto". Errors:
  // kInvalidArgument for compare = "logprob" without a local top tier, or a detector that
  // cannot be designed (the message says which value to change); those of loading the model.
  static Result<std::unique_ptr<ShadowChecker>> create(std::shared_ptr<Cascade> cascade,
                                                       Options options);
  ~ShadowChecker();  // stops: checks still queued are dropped, running ones finish
  ShadowChecker(const ShadowChecker&) = delete;
  ShadowChecker& operator=(const ShadowChecker&) = delete;

  // Considers one answered request: eligible when tier 1's answer was kept (not a cache hit,
  // not escalated) for a greedy request; then sampled at `fraction`, then admitted when the
  // rolling hour's spending plus this check's estimate (the top tier's price of tier 1's
  // prompt and answer) stays within budget_per_hour and the queue has room. Never blocks on a
  // tier; thread-safe.
  ShadowOffer offer(const TierRequest& request, const ShadowTags& tags, const CascadeAnswer& answer);

  // One outcome into the overall detector and the slice's (offer's checks end here; tests feed
  // it directly). Fires the alarm when a detector crosses its threshold.
  void record_outcome(const std::string& slice, bool agree);

  std::vector<DriftState> drift() const;  // the overall detector first, then slices by name
  bool alarmed() const;
  double spent_last_hour() const;         // dollars, the checks that ended in the last hour
  // Blocks until no check is queued or running (tests, shutdown).
  void wait_idle();
  const ShadowConfig& config() const { return config_; }

 private:
  struct Job {
    TierRequest request;
    ShadowTags tags;
    TierAnswer tier1;
    double score = 0;
    std::string method;  // "exact", "check", "logprob"
    double estimate = 0;
  };
  struct Detector {
    explicit Detector(const CusumDesign& d, double expected) : cusum(d), expected(expected) {}
    Cusum cusum;
    double expected;
    int64_t agreements = 0;
  };
  ShadowChecker(std::shared_ptr<Cascade> cascade, Options options);
  void work();
  void run(Job& job);
  void log(const std::string& line) const;
  Clock::time_point now() const { return options_.now ? options_.now() : Clock::now(); }
  double spent_locked(Clock::time_point t);
  Detector* slice_detector_locked(const std::string& slice);
  void fire_locked(const std::string& slice, Detector& d, std::vector<DriftState>* fired);

  std::shared_ptr<Cascade> cascade_;
  ShadowConfig config_;
  Options options_;
  std::unique_ptr<SemanticCache> reader_;  // the top tier's model, teacher-forced readings
  LocalTier* top_local_ = nullptr;

  mutable std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  std::mt19937_64 rng_;
  std::deque<Job> queue_;
  int64_t running_ = 0;
  bool stopping_ = false;
  std::deque<std::pair<Clock::time_point, double>> spent_;  // (end, dollars), last hour
  double spent_sum_ = 0;
  double reserved_ = 0;  // estimates of queued and running checks
  std::optional<Detector> overall_;
  std::map<double, CusumDesign> designs_;  // by expected agreement
  std::map<std::string, double> slice_expected_;
  std::map<std::string, Detector> slices_;
  std::vector<std::thread> workers_;
};

}  // namespace frugal::cascade
