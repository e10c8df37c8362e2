// The distillation log: one JSON line per escalated request and per shadow pair — the prompt,
// tier 1's answer and score, the top tier's answer with its token logprobs — the training data
// for the next student (tools/train/train.py distill). Format: docs/OPERATIONS.md,
// "The distillation log".
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "cascade/cascade.h"
#include "cascade/tier.h"
#include "util/status.h"

namespace frugal::cascade {

class DistillLog {
 public:
  // Opens `path` for appending (created when absent). Past `max_bytes` the file is renamed to
  // <path>.1, replacing the previous one, and a new file begun. Errors: kInvalidArgument naming
  // the path when it cannot be opened.
  static Result<std::unique_ptr<DistillLog>> open(const std::string& path, int64_t max_bytes);
  ~DistillLog();
  DistillLog(const DistillLog&) = delete;
  DistillLog& operator=(const DistillLog&) = delete;

  // Appends one line (a newline is added) with a single write to an O_APPEND descriptor, so
  // lines from several threads or processes never interleave. Thread-safe; failures are
  // counted (write_errors), never thrown: the log must not fail a request.
  void append(const std::string& line);

  const std::string& path() const { return path_; }
  int64_t lines() const;
  int64_t write_errors() const;
  int64_t rotations() const;

 private:
  DistillLog(std::string path, int64_t max_bytes, int fd, int64_t size);
  std::string path_;
  int64_t max_bytes_;
  mutable std::mutex mu_;
  int fd_;
  int64_t size_;
  int64_t lines_ = 0;
  int64_t write_errors_ = 0;
  int64_t rotations_ = 0;
};

// One escalated request's line: {"kind": "escalated", "time", "slice", "messages" (or
// "prompt"), "max_tokens", "tier1": {tier, text, score, finish, tokens} or null when tier 1 did
// not run or failed, "top": {tier, text, finish, tokens: [{id, piece, logprob, top: [{id,
// piece, logprob}]}]}, "escalated_early"}.
std::string distill_escalated_line(const TierRequest& request, const CascadeAnswer& answer,
                                   const std::string& tier1_name, const std::string& slice,
                                   double unix_time);

// One shadow pair's line: {"kind": "shadow", ... the same fields ..., "agree", "method"}.
// `top` is the top tier's own answer, or (method "logprob") its teacher-forced reading of tier
// 1's answer, marked "teacher_forced": true.
std::string distill_shadow_line(const TierRequest& request, const TierAnswer& tier1,
                                const std::string& tier1_name, double score,
                                const TierAnswer& top, const std::string& top_name,
                                bool teacher_forced, bool agree, const std::string& method,
                                const std::string& slice, double unix_time);

}  // namespace frugal::cascade
