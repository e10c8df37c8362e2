// generate(): submit and wait.
#include "sched/generate.h"

namespace frugal {

Result<GenerateResult> generate(Scheduler& scheduler, std::span<const int32_t> prompt,
                                const GenerateParams& params,
                                const std::function<bool(const GeneratedToken&)>& on_token) {
  SchedRequest req;
  req.prompt.assign(prompt.begin(), prompt.end());
  req.params = params;
  if (on_token) req.on_token = on_token;
  else req.on_token = [](const GeneratedToken&) { return true; };
  FRUGAL_ASSIGN_OR_RETURN(std::shared_ptr<RequestHandle> handle, scheduler.submit(std::move(req)));
  const Completion& c = handle->wait();
  if (!c.status.is_ok()) return c.status;
  return c.result;
}

}  // namespace frugal
