// LocalTier: chat template → tokens → the model's scheduler, as a cascade tier.
#include "cascade/local_tier.h"

#include <algorithm>

#include "engine/gguf.h"
#include "engine/tokenizer.h"
#include "sched/generate.h"
#include "util/timer.h"

namespace frugal::cascade {

LocalTier::LocalTier(TierConfig config, std::unique_ptr<Scheduler> scheduler,
                     ChatTemplate chat_template)
    : Tier(std::move(config)),
      scheduler_(std::move(scheduler)),
      chat_template_(std::move(chat_template)) {}

Result<std::unique_ptr<LocalTier>> LocalTier::load(const TierConfig& config,
                                                   const LocalTierOptions& options) {
  CHECK(config.kind == TierKind::kLocal, "LocalTier::load on a %s tier",
        tier_kind_name(config.kind));
  ModelOptions mo;
  mo.pool = options.pool;
  mo.n_threads = options.n_threads;
  auto model = Model::load(config.model, mo);
  if (!model.is_ok()) {
    return Status(model.status().code(),
                  "tier '" + config.name + "': " + model.status().message());
  }
  const std::string source = (*model)->gguf().get_string_or("tokenizer.chat_template", "");
  auto tmpl = parse_chat_template(source);
  if (!tmpl.is_ok()) {
    return Status(tmpl.status().code(),
                  "tier '" + config.name + "' (" + config.model + "): " + tmpl.status().message());
  }
  auto scheduler = Scheduler::create(std::move(model).value(), options.scheduler);
  if (!scheduler.is_ok()) {
    return Status(scheduler.status().code(),
                  "tier '" + config.name + "': " + scheduler.status().message());
  }
  return std::unique_ptr<LocalTier>(
      new LocalTier(config, std::move(scheduler).value(), std::move(tmpl).value()));
}

Result<std::vector<int32_t>> LocalTier::encode_chat(
    const std::vector<ChatMessage>& messages) const {
  if (messages.empty()) return invalid_argument("the conversation has no messages");
  FRUGAL_ASSIGN_OR_RETURN(std::string text,
                          apply_chat_template(chat_template_, messages, true));
  const Tokenizer& tok = scheduler_->model().tokenizer();
  return tok.encode(text, tok.add_bos(), /*parse_special=*/true);
}

Result<TierAnswer> LocalTier::answer(const TierRequest& request, const TokenObserver& observer) {
  Timer timer;
  FRUGAL_ASSIGN_OR_RETURN(std::vector<int32_t> prompt, encode_chat(request.messages));
  if (prompt.empty()) return invalid_argument("the prompt is empty");

  GenerateParams gp;
  gp.max_tokens = request.max_tokens;
  gp.stop = request.stop;
  gp.sampling.temperature = request.temperature;
  gp.sampling.seed = request.seed;
  gp.sampling.n_logprobs = request.n_logprobs;
  gp.echo_prompt_logprobs = request.prompt_logprobs;

  TierAnswer out;
  const Tokenizer& tok = scheduler_->model().tokenizer();
  auto on_token = [&](const GeneratedToken& g) {
    AnswerToken t;
    t.piece = g.piece;
    t.logprob = g.logprob;
    t.top.reserve(g.top.size());
    for (const TokenLogprob& a : g.top) t.top.push_back({tok.token_to_piece(a.id), a.logprob});
    const bool keep_going = !observer || observer(t);
    out.tokens.push_back(std::move(t));
    if (!keep_going) out.interrupted = true;
    return keep_going;
  };

  auto result = generate(*scheduler_, prompt, gp, on_token);
  if (!result.is_ok()) {
    return Status(result.status().code(), "tier '" + name() + "': " + result.status().message());
  }
  out.text = std::move(result->text);
  out.finish = result->finish;
  out.tokens_in = result->n_prompt;
  out.tokens_out = static_cast<int64_t>(result->tokens.size());
  if (!result->prompt_logprobs.empty()) {
    double sum = 0.0;
    for (float lp : result->prompt_logprobs) sum += lp;
    out.prompt_mean_logprob = sum / static_cast<double>(result->prompt_logprobs.size());
    out.has_prompt_logprob = true;
  }
  out.cost = cost(out.tokens_in, out.tokens_out);
  out.latency_ms = timer.millis();
  return out;
}

}  // namespace frugal::cascade
