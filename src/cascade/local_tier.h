// LocalTier: a GGUF model run in this process as a cascade tier — loaded once, prompted
// through the model's own chat template, and answered by the model's Scheduler, so that
// concurrent requests share one batched forward pass and a KV cache whose prefix reuse
// carries across requests (a shared system prompt is computed once).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "cascade/tier.h"
#include "engine/chat_template.h"
#include "engine/model.h"
#include "sched/scheduler.h"

namespace frugal::cascade {

struct LocalTierOptions {
  std::shared_ptr<ThreadPool> pool;  // shared by every tier; null: the tier makes its own
  int n_threads = 0;   // without a pool; 0: one per hardware thread
  SchedulerOptions scheduler;  // n_ctx 0: min(4096, the model's training context)
};

class LocalTier : public Tier {
 public:
  // Loads config.model. Errors: those of Model::load (kNotFound for a missing file, kCorrupt,
  // kUnsupported), naming the tier; kUnsupported for a chat template this build cannot render.
  static Result<std::unique_ptr<LocalTier>> load(const TierConfig& config,
                                                 const LocalTierOptions& options = {});

  // Submits the request to the model's scheduler (thread-safe: concurrent calls are batched).
  // Errors: kInvalidArgument for an empty conversation, a role the template cannot express, or
  // bad sampling values; kOutOfRange when the prompt does not fit the context; kResourceExhausted
  // when the scheduler's queue is full. Each names the tier.
  Result<std::unique_ptr<TierCall>> start(const TierRequest& request, TierSink sink) override;

  Model& model() { return scheduler_->model(); }
  // Which chat template renders conversations ("jinja (from the file)", "named: chatml ...").
  const std::string& chat_template_description() const { return chat_template_.description; }
  Scheduler& scheduler() { return *scheduler_; }
  // The prompt tokens `messages` become (template applied, BOS as the model wants).
  Result<std::vector<int32_t>> encode_chat(const std::vector<ChatMessage>& messages) const;
  // The request's prompt tokens: its raw prompt as text (BOS as the model wants), or its
  // conversation through encode_chat.
  Result<std::vector<int32_t>> encode(const TierRequest& request) const;

 private:
  LocalTier(TierConfig config, std::unique_ptr<Scheduler> scheduler,
            ResolvedChatTemplate chat_template);

  std::unique_ptr<Scheduler> scheduler_;
  ResolvedChatTemplate chat_template_;  // the file's own Jinja template, else a named format
};

}  // namespace frugal::cascade
