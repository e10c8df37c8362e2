// `frugal run`: generate with one model from a prompt or a chat message, streaming text, or
// one JSON object per token with logprobs (--json); --dump-logits for reference comparisons.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "cli/commands.h"
#include "cli/flags.h"
#include "engine/chat_template.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "sched/generate.h"
#include "util/mmap_file.h"

namespace frugal::cli {

namespace {

struct RunArgs {
  std::string model;
  std::string prompt;
  std::string prompt_file;
  std::string system;
  std::string tokens;
  std::string dump_logits;
  std::string chat_template;
  std::string kv_type = "f16";
  std::string draft;  // speculative decoding with this draft model
  std::string spec;   // "ngram" or "draft"
  int64_t draft_vocab = 0;
  std::vector<std::string> stop;
  int64_t n_predict = 128;
  int64_t ctx = 0;
  int threads = 0;
  float temp = 0.8f;
  int top_k = 40;
  float top_p = 0.95f;
  float min_p = 0.05f;
  int64_t seed = -1;
  int logprobs = 0;
  bool json = false;
  bool chat = false;
  bool verbose = false;
};

std::string dump_json(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<std::vector<int32_t>> parse_token_list(const std::string& s) {
  std::vector<int32_t> out;
  std::string item;
  std::istringstream in(s);
  while (in >> item) {
    for (char& ch : item)
      if (ch == ',') ch = ' ';
    std::istringstream parts(item);
    std::string p;
    while (parts >> p) {
      try {
        size_t used = 0;
        long long v = std::stoll(p, &used);
        if (used != p.size() || v < 0 || v > INT32_MAX) throw std::invalid_argument(p);
        out.push_back(static_cast<int32_t>(v));
      } catch (const std::exception&) {
        return invalid_argument("--tokens: '" + p + "' is not a token id");
      }
    }
  }
  return out;
}

Result<std::vector<int32_t>> build_prompt(const RunArgs& a, Model& model) {
  if (!a.tokens.empty()) return parse_token_list(a.tokens);
  const Tokenizer& tok = model.tokenizer();
  if (a.chat) {
    std::vector<ChatMessage> messages;
    if (!a.system.empty()) messages.push_back({"system", a.system});
    messages.push_back({"user", a.prompt});
    // --chat-template NAME overrides the file's own (Jinja) template.
    std::string tmpl = a.chat_template;
    if (tmpl.empty()) tmpl = model.gguf().get_string_or("tokenizer.chat_template", "");
    FRUGAL_ASSIGN_OR_RETURN(ResolvedChatTemplate resolved, resolve_chat_template(tmpl));
    if (a.verbose) std::fprintf(stderr, "[chat template: %s]\n", resolved.description.c_str());
    FRUGAL_ASSIGN_OR_RETURN(std::string text,
                            apply_chat_template(resolved, messages, chat_template_inputs(tok)));
    return tok.encode(text, tok.add_bos(), /*parse_special=*/true);
  }
  return tok.encode(a.prompt, /*add_special=*/true, /*parse_special=*/false);
}

int run(RunArgs a) {
  if (!a.prompt_file.empty()) {
    if (!a.prompt.empty()) {
      std::fprintf(stderr, "frugal run: give the prompt with -p or -f, not both\n");
      return 2;
    }
    if (a.prompt_file == "-") {
      std::ostringstream ss;
      ss << std::cin.rdbuf();
      a.prompt = ss.str();
    } else {
      auto text = read_file(a.prompt_file);
      if (!text.is_ok()) {
        std::fprintf(stderr, "frugal run: %s\n", text.status().to_string().c_str());
        return 2;
      }
      a.prompt = std::move(*text);
    }
  }
  if (a.prompt.empty() && a.tokens.empty()) {
    // Refused before the model decides: with a BOS token an empty text is not an empty prompt.
    std::fprintf(stderr, "frugal run: the prompt is empty; pass -p TEXT or --tokens IDS\n");
    return 2;
  }
  ModelOptions mo;
  mo.n_threads = a.threads;
  auto loaded = Model::load(a.model, mo);
  if (!loaded.is_ok()) {
    std::fprintf(stderr, "frugal run: %s\n", loaded.status().to_string().c_str());
    return 1;
  }
  Model& model = **loaded;
  auto prompt = build_prompt(a, model);
  if (!prompt.is_ok()) {
    std::fprintf(stderr, "frugal run: %s\n", prompt.status().to_string().c_str());
    return 2;
  }
  if (prompt->empty()) {
    std::fprintf(stderr, "frugal run: the prompt is empty; pass -p TEXT or --tokens IDS\n");
    return 2;
  }
  auto kv_type = kv_type_from_name(a.kv_type);
  if (!kv_type.is_ok()) {
    std::fprintf(stderr, "frugal run: --kv-type: %s\n", kv_type.status().message().c_str());
    return 2;
  }

  if (!a.dump_logits.empty()) {
    // Logits of every prompt position, raw little-endian float32 [n_tokens, n_vocab], from a
    // cache of the chosen type (f32 for reference comparisons).
    auto dump_kv = model.make_kv_cache(static_cast<int64_t>(prompt->size()) + 1, 16, *kv_type);
    const KvCache::SeqId seq = dump_kv->create_sequence();
    std::vector<float> logits;
    const SeqBatch b{seq, *prompt, true};
    Status st = model.forward(std::span<const SeqBatch>(&b, 1), *dump_kv, logits);
    if (!st.is_ok()) {
      std::fprintf(stderr, "frugal run: %s\n", st.to_string().c_str());
      return 1;
    }
    Status written = write_file(
        a.dump_logits, std::string_view(reinterpret_cast<const char*>(logits.data()),
                                        logits.size() * sizeof(float)));
    if (!written.is_ok()) {
      std::fprintf(stderr, "frugal run: --dump-logits: %s\n", written.to_string().c_str());
      return 1;
    }
    if (a.n_predict == 0) return 0;
  }

  GenerateParams gp;
  gp.max_tokens = a.n_predict;
  gp.stop = a.stop;
  gp.sampling.temperature = a.temp;
  gp.sampling.top_k = a.top_k;
  gp.sampling.top_p = a.top_p;
  gp.sampling.min_p = a.min_p;
  gp.sampling.n_logprobs = a.logprobs;
  gp.sampling.seed = a.seed >= 0 ? static_cast<uint64_t>(a.seed) : std::random_device{}();
  const Tokenizer& tok = model.tokenizer();
  auto on_token = [&](const GeneratedToken& t) {
    if (a.json) {
      nlohmann::json j{{"id", t.id}, {"text", t.piece}, {"logprob", t.logprob}};
      nlohmann::json top = nlohmann::json::array();
      for (const TokenLogprob& lp : t.top)
        top.push_back({{"id", lp.id}, {"text", tok.token_to_piece(lp.id)}, {"logprob", lp.logprob}});
      j["top_logprobs"] = top;
      std::printf("%s\n", dump_json(j).c_str());
    } else {
      std::fwrite(t.text.data(), 1, t.text.size(), stdout);
    }
    std::fflush(stdout);
    return true;
  };
  // One request: a scheduler whose cache holds exactly one context.
  SchedulerOptions so;
  so.n_ctx = a.ctx;
  so.kv_tokens = a.ctx;  // 0: n_ctx
  so.max_running = 1;
  so.kv_type = *kv_type;
  std::unique_ptr<Model> draft;
  if (!a.draft.empty()) {
    auto d = Model::load(a.draft, mo);
    if (!d.is_ok()) {
      std::fprintf(stderr, "frugal run: --draft: %s\n", d.status().to_string().c_str());
      return 1;
    }
    draft = std::move(d).value();
    so.spec = SchedulerOptions::Spec::kDraftModel;
    so.draft_vocab = a.draft_vocab;
  }
  if (a.spec == "ngram") so.spec = SchedulerOptions::Spec::kNgram;
  auto scheduler = Scheduler::create(std::move(*loaded), so, std::move(draft));
  if (!scheduler.is_ok()) {
    std::fprintf(stderr, "frugal run: %s\n", scheduler.status().to_string().c_str());
    return 1;
  }
  auto result = generate(**scheduler, *prompt, gp, on_token);
  if (!result.is_ok()) {
    std::string msg = result.status().to_string();
    if (result.status().code() == ErrorCode::kOutOfRange) msg += " (--ctx)";
    std::fprintf(stderr, "frugal run: %s\n", msg.c_str());
    return result.status().code() == ErrorCode::kInternal ? 1 : 2;
  }
  if (!a.json) std::printf("\n");
  std::fflush(stdout);
  if (a.verbose || !a.json) {
    const GenerateResult& r = *result;
    const double n_gen = static_cast<double>(r.tokens.size());
    std::fprintf(stderr,
                 "[%lld prompt tokens (%lld cached) in %.3f s, %lld generated in %.3f s = %.1f "
                 "tok/s, finish: %s]\n",
                 (long long)r.n_prompt, (long long)r.n_prompt_cached, r.prefill_seconds,
                 (long long)r.tokens.size(), r.decode_seconds,
                 r.decode_seconds > 0 ? n_gen / r.decode_seconds : 0.0,
                 finish_reason_name(r.finish));
    if (r.n_draft_tokens > 0) {
      std::fprintf(stderr, "[speculative: %lld draft tokens, %lld accepted (%.1f %%)]\n",
                   (long long)r.n_draft_tokens, (long long)r.n_accepted_tokens,
                   100.0 * r.n_accepted_tokens / r.n_draft_tokens);
    }
  }
  return 0;
}

}  // namespace

void register_run(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<RunArgs>();
  auto* cmd = app.add_subcommand("run", "Generate text with one model");
  cmd->add_option("-m,--model", args->model, "GGUF model file")->required();
  cmd->add_option("-p,--prompt", args->prompt, "Prompt text (with --chat: the user message)");
  cmd->add_option("-f,--file", args->prompt_file, "Read the prompt from this file (- for stdin)");
  cmd->add_option("--system", args->system, "System message (with --chat)");
  cmd->add_flag("--chat", args->chat, "Wrap the prompt in the model's chat template");
  cmd->add_option("--chat-template", args->chat_template,
                  "Template name (chatml, llama2, llama3, mistral, ...) overriding the model's");
  cmd->add_option("--tokens", args->tokens, "Prompt as token ids (space or comma separated)");
  cmd->add_option("-n,--n-predict", args->n_predict, "Maximum tokens to generate")
      ->check(int_range(0, int64_t{1} << 30));
  cmd->add_option("--temp", args->temp, "Temperature (0 = greedy)")->check(real_range(0.0, 100.0));
  cmd->add_option("--top-k", args->top_k, "Top-k (0 = off)")->check(int_range(0, 1 << 30));
  cmd->add_option("--top-p", args->top_p, "Top-p (1 = off)")->check(real_range(0.0, 1.0));
  cmd->add_option("--min-p", args->min_p, "Min-p (0 = off)")->check(real_range(0.0, 1.0));
  cmd->add_option("--seed", args->seed, "Random seed (default: random)");
  cmd->add_option("--stop", args->stop, "Stop string (repeatable)");
  cmd->add_option("--logprobs", args->logprobs, "Top alternatives per token in --json (0-20)")
      ->check(int_range(0, 20));
  cmd->add_flag("--json", args->json, "One JSON object per generated token");
  add_threads_option(cmd, &args->threads, "Threads (default: all cores)");
  add_ctx_option(cmd, &args->ctx, "Context size in tokens (default: min(4096, trained))");
  cmd->add_option("--kv-type", args->kv_type, "KV cache element type: f16 (default) or f32");
  cmd->add_option("--draft", args->draft,
                  "Speculative decoding: this draft model (same vocabulary) proposes tokens");
  cmd->add_option("--draft-vocab", args->draft_vocab,
                  "The draft model proposes only token ids below this and end tokens (cheaper "
                  "drafts, same output; 0: all)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 31));
  cmd->add_option("--spec", args->spec, "Speculative decoding by prompt lookup: ngram")
      ->check(CLI::IsMember({"ngram"}));
  cmd->add_option("--dump-logits", args->dump_logits,
                  "Write the prompt's logits as float32 [n_tokens, n_vocab] to this file");
  cmd->add_flag("-v,--verbose", args->verbose, "Print timings");
  cmd->callback([args, &exit_code] { exit_code = run(*args); });
}

}  // namespace frugal::cli
