// LocalTier: a GGUF model run in this process as a cascade tier — loaded once, prompted
// through the model's own chat template, with a KV cache whose prefix reuse carries across
// requests (a shared system prompt is computed once).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "cascade/tier.h"
#include "engine/chat_template.h"
#include "engine/kv_cache.h"
#include "engine/model.h"

namespace frugal::cascade {

struct LocalTierOptions {
  int n_threads = 0;   // 0: one per hardware thread
  int64_t n_ctx = 0;   // KV cache positions; 0: min(4096, the model's training context)
};

class LocalTier : public Tier {
 public:
  // Loads config.model. Errors: those of Model::load (kNotFound for a missing file, kCorrupt,
  // kUnsupported), naming the tier; kUnsupported for a chat template this build cannot render.
  static Result<std::unique_ptr<LocalTier>> load(const TierConfig& config,
                                                 const LocalTierOptions& options = {});

  // Generates one answer; one request at a time (a mutex serialises callers).
  // Errors: kInvalidArgument for an empty conversation, a role the template cannot express, or
  // bad sampling values; kOutOfRange when the prompt does not fit the context.
  Result<TierAnswer> answer(const TierRequest& request,
                            const TokenObserver& observer = {}) override;

  Model& model() { return *model_; }
  // The prompt tokens `messages` become (template applied, BOS as the model wants).
  Result<std::vector<int32_t>> encode_chat(const std::vector<ChatMessage>& messages) const;

 private:
  LocalTier(TierConfig config, std::unique_ptr<Model> model, ChatTemplate chat_template,
            int64_t n_ctx);

  std::unique_ptr<Model> model_;
  ChatTemplate chat_template_;
  std::mutex mutex_;  // guards kv_ and the model's scratch state during generation
  std::unique_ptr<KvCache> kv_;
};

}  // namespace frugal::cascade
