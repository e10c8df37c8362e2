// `frugal template`: renders a conversation with a chat template (a model file's own, a Jinja
// file, or a named format) and prints the prompt text exactly, byte for byte.
#include <cstdio>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "engine/chat_template.h"
#include "engine/gguf.h"
#include "engine/jinja.h"
#include "engine/tokenizer.h"
#include "util/file_io.h"

namespace frugal::cli {

namespace {

struct TemplateArgs {
  std::string model;
  std::string file;
  std::string chat_template;
  std::string messages;
  std::string vars;
  std::string bos;
  std::string eos;
  bool no_generation_prompt = false;
  bool jinja2_whitespace = false;
  bool which = false;
  int64_t now = -1;
};

int fail(const std::string& what, int code) {
  std::fprintf(stderr, "frugal template: %s\n", what.c_str());
  return code;
}

// The messages file: a JSON array of messages, or an object with "messages" and further
// template variables (tools, enable_thinking...).
Status read_conversation(const std::string& path, nlohmann::ordered_json& messages,
                         nlohmann::ordered_json& vars) {
  FRUGAL_ASSIGN_OR_RETURN(std::string text, read_file(path));
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(text, nullptr, false);
  if (j.is_discarded()) return invalid_argument(path + " is not valid JSON");
  if (j.is_array()) {
    messages = std::move(j);
    return Status::ok();
  }
  if (!j.is_object() || !j.contains("messages") || !j["messages"].is_array()) {
    return invalid_argument(path + ": expected an array of messages or an object with \"messages\"");
  }
  messages = j["messages"];
  for (const auto& [k, v] : j.items()) {
    if (k != "messages") vars[k] = v;
  }
  return Status::ok();
}

int run(const TemplateArgs& a) {
  if (!a.model.empty() + !a.file.empty() + !a.chat_template.empty() != 1) {
    return fail("give exactly one of --model, --file and --chat-template", 2);
  }
  nlohmann::ordered_json messages, vars = nlohmann::ordered_json::object();
  Status st = read_conversation(a.messages, messages, vars);
  if (!st.is_ok()) return fail(st.to_string() + " (--messages)", 2);
  if (!a.vars.empty()) {
    auto extra = nlohmann::ordered_json::parse(a.vars, nullptr, false);
    if (!extra.is_object()) return fail("--vars is not a JSON object", 2);
    for (const auto& [k, v] : extra.items()) vars[k] = v;
  }

  ChatTemplateInputs in;
  std::string source = a.chat_template;
  if (!a.model.empty()) {
    auto gguf = GgufFile::open(a.model);
    if (!gguf.is_ok()) return fail(gguf.status().to_string(), 1);
    auto tok = Tokenizer::from_gguf(**gguf);
    if (!tok.is_ok()) return fail(a.model + ": " + tok.status().to_string(), 1);
    in = chat_template_inputs(**tok);
    source = (*gguf)->get_string_or("tokenizer.chat_template", "");
  } else if (!a.file.empty()) {
    auto text = read_file(a.file);
    if (!text.is_ok()) return fail(text.status().to_string() + " (--file)", 2);
    source = std::move(*text);
  }
  if (!a.bos.empty()) in.bos_token = a.bos;
  if (!a.eos.empty()) in.eos_token = a.eos;
  in.add_generation_prompt = !a.no_generation_prompt;
  in.extra = vars;
  if (a.now >= 0) in.now = static_cast<std::time_t>(a.now);

  auto resolved = resolve_chat_template(source);
  if (!resolved.is_ok()) return fail(resolved.status().to_string(), 1);
  if (a.jinja2_whitespace && resolved->jinja) {
    jinja::Options o;
    o.trim_blocks = false;
    o.lstrip_blocks = false;
    auto t = jinja::Template::parse(source, o);
    if (!t.is_ok()) return fail(t.status().to_string(), 1);
    resolved->jinja = std::make_shared<const jinja::Template>(std::move(*t));
  }
  if (a.which) std::fprintf(stderr, "chat template: %s\n", resolved->description.c_str());
  auto text = apply_chat_template(*resolved, messages, in);
  if (!text.is_ok()) return fail(text.status().to_string(), 1);
  std::fwrite(text->data(), 1, text->size(), stdout);
  std::fflush(stdout);
  return 0;
}

}  // namespace

void register_template(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<TemplateArgs>();
  auto* cmd = app.add_subcommand(
      "template", "Render a conversation with a chat template and print the prompt text");
  cmd->add_option("-m,--model", args->model, "GGUF file: its own template and BOS/EOS text");
  cmd->add_option("--file", args->file, "A Jinja chat template file");
  cmd->add_option("--chat-template", args->chat_template,
                  "A named format (chatml, llama3, mistral, ...)");
  cmd->add_option("--messages", args->messages,
                  "JSON file: an array of messages, or {\"messages\": [...], other variables}")
      ->required();
  cmd->add_option("--vars", args->vars, "More template variables as a JSON object");
  cmd->add_option("--bos", args->bos, "BOS token text (default: the model's, else empty)");
  cmd->add_option("--eos", args->eos, "EOS token text (default: the model's, else empty)");
  cmd->add_flag("--no-generation-prompt", args->no_generation_prompt,
                "Do not open the assistant's turn at the end");
  cmd->add_option("--now", args->now, "Clock of strftime_now() in seconds since 1970 (tests)");
  cmd->add_flag("--jinja2-whitespace", args->jinja2_whitespace,
                "jinja2's default whitespace (trim_blocks and lstrip_blocks off) instead of "
                "transformers'");
  cmd->add_flag("--which", args->which, "Say on stderr which template was used");
  cmd->callback([args, &exit_code] { exit_code = run(*args); });
}

}  // namespace frugal::cli
