// Chat templates: renders a conversation in a model family's prompt format. Jinja is not
// interpreted; the family is recognised by name or by distinctive text in
// tokenizer.chat_template, and rendered by hand.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace frugal {

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

}  // namespace frugal
