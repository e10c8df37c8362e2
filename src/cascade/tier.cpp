// Tier::answer (start and wait) and SyncTier (answers inline).
#include "cascade/tier.h"

#include <condition_variable>
#include <mutex>

namespace frugal::cascade {

Result<TierAnswer> Tier::answer(const TierRequest& request, const TokenObserver& observer) {
  struct Wait {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<Result<TierAnswer>> result;
  };
  auto w = std::make_shared<Wait>();
  TierSink sink;
  sink.on_token = observer;
  sink.on_done = [w](Result<TierAnswer> r) {
    std::lock_guard<std::mutex> lock(w->mu);
    w->result.emplace(std::move(r));
    w->cv.notify_all();
  };
  FRUGAL_ASSIGN_OR_RETURN(std::unique_ptr<TierCall> call, start(request, std::move(sink)));
  std::unique_lock<std::mutex> lock(w->mu);
  w->cv.wait(lock, [&] { return w->result.has_value(); });
  return std::move(*w->result);
}

namespace {
class DoneCall : public TierCall {
 public:
  void cancel() override {}
};
}  // namespace

Result<std::unique_ptr<TierCall>> SyncTier::start(const TierRequest& request, TierSink sink) {
  Result<TierAnswer> a = answer_now(request, sink.on_token);
  if (!a.is_ok()) return a.status();
  if (sink.on_done) sink.on_done(std::move(a));
  return std::unique_ptr<TierCall>(new DoneCall());
}

}  // namespace frugal::cascade
