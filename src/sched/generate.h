// generate(): one request through a Scheduler, submitted and waited for — what a caller with a
// single prompt (frugal run, a test) uses. Concurrent callers on one scheduler are batched.
#pragma once

#include <functional>
#include <span>

#include "sched/request.h"
#include "sched/scheduler.h"
#include "util/status.h"

namespace frugal {

// Runs `prompt` then samples. `on_token` (may be empty) sees each token as it is produced, on
// the scheduler's thread, and may return false to stop early (finish = kStop, interrupted).
// Errors: those of Scheduler::submit (kOutOfRange when the prompt does not fit the context,
// kInvalidArgument for an empty prompt, bad sampling parameters or token ids).
Result<GenerateResult> generate(Scheduler& scheduler, std::span<const int32_t> prompt,
                                const GenerateParams& params,
                                const std::function<bool(const GeneratedToken&)>& on_token = {});

}  // namespace frugal
