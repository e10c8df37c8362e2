// LocalTier: chat template → tokens → the model's scheduler, as a cascade tier.
#include "cascade/local_tier.h"

#include <algorithm>

#include "engine/gguf.h"
#include "engine/tokenizer.h"
#include "util/timer.h"

namespace frugal::cascade {

LocalTier::LocalTier(TierConfig config, std::unique_ptr<Scheduler> scheduler,
                     ResolvedChatTemplate chat_template)
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
  auto tmpl = resolve_chat_template(source);
  if (!tmpl.is_ok()) {
    return Status(tmpl.status().code(),
                  "tier '" + config.name + "' (" + config.model + "): " + tmpl.status().message());
  }
  SchedulerOptions so = options.scheduler;
  std::unique_ptr<Model> draft;
  if (config.speculative == "ngram") so.spec = SchedulerOptions::Spec::kNgram;
  if (config.speculative == "draft") {
    auto d = Model::load(config.draft, mo);
    if (!d.is_ok()) {
      return Status(d.status().code(),
                    "tier '" + config.name + "': draft model: " + d.status().message());
    }
    draft = std::move(d).value();
    so.spec = SchedulerOptions::Spec::kDraftModel;
    so.draft_vocab = config.draft_vocab;
  }
  auto scheduler = Scheduler::create(std::move(model).value(), so, std::move(draft));
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
  const Tokenizer& tok = scheduler_->model().tokenizer();
  FRUGAL_ASSIGN_OR_RETURN(std::string text,
                          apply_chat_template(chat_template_, messages, chat_template_inputs(tok)));
  return tok.encode(text, tok.add_bos(), /*parse_special=*/true);
}

Result<std::vector<int32_t>> LocalTier::encode(const TierRequest& request) const {
  const Tokenizer& tok = scheduler_->model().tokenizer();
  if (request.raw_prompt) {
    if (request.raw_prompt->empty()) return invalid_argument("the prompt is empty");
    // As llama-server does: control tokens written in the prompt are parsed as such.
    return tok.encode(*request.raw_prompt, /*add_special=*/true, /*parse_special=*/true);
  }
  return encode_chat(request.messages);
}

namespace {

// One request in the scheduler, as a tier call.
class LocalCall : public TierCall {
 public:
  explicit LocalCall(std::shared_ptr<RequestHandle> handle) : handle_(std::move(handle)) {}
  void cancel() override { handle_->cancel(); }

 private:
  std::shared_ptr<RequestHandle> handle_;
};

// What the scheduler's callbacks build up; shared by both.
struct CallState {
  TierSink sink;
  TierAnswer out;
  Timer timer;
};

}  // namespace

Result<std::unique_ptr<TierCall>> LocalTier::start(const TierRequest& request, TierSink sink) {
  auto state = std::make_shared<CallState>();
  state->sink = std::move(sink);
  auto prompt = encode(request);
  if (!prompt.is_ok()) {
    return Status(prompt.status().code(), "tier '" + name() + "': " + prompt.status().message());
  }
  SchedRequest sr;
  sr.prompt = std::move(*prompt);
  sr.deadline = request.deadline;
  GenerateParams& gp = sr.params;
  gp.max_tokens = request.max_tokens;
  gp.stop = request.stop;
  gp.sampling.temperature = request.temperature;
  gp.sampling.top_p = request.top_p;
  gp.sampling.seed = request.seed;
  gp.sampling.n_logprobs = request.n_logprobs;
  gp.echo_prompt_logprobs = request.prompt_logprobs;
  gp.stop_at_eog = !request.ignore_eos;
  sr.draft = request.draft;
  sr.draft_logprobs = request.draft_logprobs;
  sr.defer_alpha = request.defer_alpha;

  const Tokenizer* tok = &scheduler_->model().tokenizer();
  sr.on_token = [state, tok](const GeneratedToken& g) {
    AnswerToken t;
    t.id = g.id;
    t.piece = g.piece;
    t.text = g.text;
    t.logprob = g.logprob;
    t.top.reserve(g.top.size());
    for (const TokenLogprob& a : g.top) t.top.push_back({a.id, tok->token_to_piece(a.id), a.logprob});
    if (state->out.tokens.empty()) state->out.first_token_ms = state->timer.millis();
    const bool keep_going = !state->sink.on_token || state->sink.on_token(t);
    state->out.tokens.push_back(std::move(t));
    if (!keep_going) state->out.interrupted = true;
    return keep_going;
  };
  sr.on_finish = [state, this](const Completion& c) {
    if (!state->sink.on_done) return;
    if (!c.status.is_ok()) {
      state->sink.on_done(Status(c.status.code(), "tier '" + name() + "': " + c.status.message()));
      return;
    }
    const GenerateResult& r = c.result;
    TierAnswer& out = state->out;
    out.text = r.text;
    out.finish = r.finish;
    out.tokens_in = r.n_prompt;
    out.tokens_in_cached = r.n_prompt_cached;
    out.tokens_reused = r.n_reused_tokens;
    out.tokens_kept = r.n_draft_kept;
    out.draft_tokens = r.n_draft_tokens;
    out.draft_accepted = r.n_accepted_tokens;
    out.tokens_out = static_cast<int64_t>(r.tokens.size());
    if (!r.prompt_logprobs.empty()) {
      double sum = 0.0;
      for (float lp : r.prompt_logprobs) sum += lp;
      out.prompt_mean_logprob = sum / static_cast<double>(r.prompt_logprobs.size());
      out.has_prompt_logprob = true;
    }
    out.cost = cost(out.tokens_in, out.tokens_out);
    out.latency_ms = state->timer.millis();
    state->sink.on_done(std::move(out));
  };
  auto handle = scheduler_->submit(std::move(sr));
  if (!handle.is_ok()) {
    return Status(handle.status().code(), "tier '" + name() + "': " + handle.status().message());
  }
  return std::unique_ptr<TierCall>(new LocalCall(std::move(handle).value()));
}

}  // namespace frugal::cascade
