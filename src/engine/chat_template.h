// Chat templates: renders a conversation in a model's prompt format. The file's own Jinja template
// (tokenizer.chat_template) is interpreted by engine/jinja.h; the named formats below (chatml,
// llama3, mistral...) are rendered by hand and serve as the --chat-template override and as the
// fallback for a file without a template or with one that does not parse.
#pragma once

#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/status.h"

namespace frugal {

namespace jinja {
class Template;
}
class Tokenizer;

struct ChatMessage {
  std::string role;  // "system", "user", "assistant" (chatml-like formats accept any role)
  std::string content;
};

enum class ChatFormat {
  kChatml,    // <|im_start|>role\n...<|im_end|>  (Qwen2, many fine-tunes)
  kLlama2,    // [INST] <<SYS>>\n...\n<</SYS>>\n\n... [/INST]
  kMistral,   // [INST] ... [/INST]...</s>  (no system role: folded into the first user turn)
  kLlama3,    // <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>
  kLlama31,   // Llama 3.1+: as kLlama3, always opening with a dated system turn
  kZephyr,    // <|user|>\n...</s>
  kPhi3,      // <|user|>\n...<|end|>
  kGemma,     // <start_of_turn>user\n...<end_of_turn>
  kDeepseek,  // User: ...\n\nAssistant: ...<｜end▁of▁sentence｜>
};

// What a template source resolves to: the format and, for chatml templates that insert one
// when the conversation has none (Qwen2, Qwen2.5), the default system prompt.
struct ChatTemplate {
  ChatFormat format = ChatFormat::kChatml;
  std::string default_system;
};

// "chatml", "llama2", ...: the names detect_chat_format() accepts.
const char* chat_format_name(ChatFormat format);
std::vector<std::string> chat_format_names();

// A format name (also "qwen2" = chatml, "llama-3" = llama3, "gemma2"...), or the text of
// tokenizer.chat_template; empty -> chatml. Errors: kUnsupported for a template this build does
// not recognise, naming the fix (--chat-template NAME) and the known names.
Result<ChatFormat> detect_chat_format(std::string_view template_source_or_name);
// Same, plus the default system prompt a recognised chatml template spells out.
Result<ChatTemplate> parse_chat_template(std::string_view template_source_or_name);

// The prompt text for `messages`, ending with the assistant's turn header when
// add_generation_prompt. The model's first BOS is NOT included: tokenize the result with
// add_special=true (for BOS) and parse_special=true (for the format's control tokens).
// Errors: those of detect_chat_format(); kInvalidArgument for a role the format cannot express.
Result<std::string> apply_chat_template(std::string_view template_source_or_name,
                                        const std::vector<ChatMessage>& messages,
                                        bool add_generation_prompt);
Result<std::string> apply_chat_template(ChatFormat format,
                                        const std::vector<ChatMessage>& messages,
                                        bool add_generation_prompt);
Result<std::string> apply_chat_template(const ChatTemplate& chat_template,
                                        const std::vector<ChatMessage>& messages,
                                        bool add_generation_prompt);

// ---- The file's own template, with the named formats as fallback -------------------------------

// A chat template resolved from tokenizer.chat_template or a --chat-template value: the Jinja
// template itself, or a named format.
struct ResolvedChatTemplate {
  std::shared_ptr<const jinja::Template> jinja;  // set: render with the Jinja interpreter
  ChatTemplate named;                             // used when jinja is null
  // Which one and why, as `frugal inspect` prints it: "jinja (from the file)",
  // "named: chatml (the file has no chat template)", "named: llama3 (fallback because the
  // file's template does not parse: template line 3: ...)".
  std::string description;
};

// A format name selects that named format; Jinja source is parsed, falling back to the named
// format its text is recognised as when it does not parse; empty -> chatml. Errors: kUnsupported
// when the source neither parses nor is recognised, with the parse error and the fix
// (--chat-template NAME).
Result<ResolvedChatTemplate> resolve_chat_template(std::string_view template_source_or_name);

// What a Jinja chat template renders with besides the messages.
struct ChatTemplateInputs {
  bool add_generation_prompt = true;
  std::string bos_token;  // the tokenizer's BOS and EOS text ("<|begin_of_text|>", "</s>")
  std::string eos_token;
  // The tokenizer adds BOS (EOS) itself: a leading BOS (trailing EOS) the template wrote is
  // removed so that the prompt does not start with two, as llama.cpp does.
  bool add_bos = false;
  bool add_eos = false;
  // Further template variables (tools, enable_thinking, date_string...): a JSON object or null.
  nlohmann::ordered_json extra;
  std::optional<std::time_t> now;  // strftime_now()'s clock; unset = the current time
};

// The BOS/EOS text and add_bos/add_eos of a model's tokenizer (the other fields at defaults).
ChatTemplateInputs chat_template_inputs(const Tokenizer& tokenizer);

// Renders `messages` (a JSON array of {"role", "content", ...} objects, as the OpenAI API sends
// them; tool_calls and other fields reach Jinja templates as they are). Errors: kInvalidArgument
// when the template refuses the conversation (raise_exception: "the chat template refused the
// conversation: Conversation roles must alternate ..."), for a malformed message, or for a role a
// named format cannot express; kUnsupported / kOutOfRange from the interpreter.
Result<std::string> apply_chat_template(const ResolvedChatTemplate& chat_template,
                                        const nlohmann::ordered_json& messages,
                                        const ChatTemplateInputs& inputs);
Result<std::string> apply_chat_template(const ResolvedChatTemplate& chat_template,
                                        const std::vector<ChatMessage>& messages,
                                        const ChatTemplateInputs& inputs);

}  // namespace frugal
