// Chat templates: recognition of the common families and their hand-written renderings, each
// matching what the family's Hugging Face Jinja template produces (minus the leading BOS).
#include "engine/chat_template.h"

#include <cctype>

namespace frugal {

namespace {

struct NamedFormat {
  const char* name;
  ChatFormat format;
};

// The first name of each format is its canonical one.
constexpr NamedFormat kNames[] = {
    {"chatml", ChatFormat::kChatml},     {"qwen2", ChatFormat::kChatml},
    {"qwen", ChatFormat::kChatml},       {"llama2", ChatFormat::kLlama2},
    {"llama-2", ChatFormat::kLlama2},    {"mistral", ChatFormat::kMistral},
    {"mistral-v1", ChatFormat::kMistral}, {"llama3", ChatFormat::kLlama3},
    {"llama-3", ChatFormat::kLlama3},    {"llama3.1", ChatFormat::kLlama31},
    {"llama-3.1", ChatFormat::kLlama31}, {"zephyr", ChatFormat::kZephyr},
    {"phi3", ChatFormat::kPhi3},         {"phi-3", ChatFormat::kPhi3},
    {"gemma", ChatFormat::kGemma},       {"gemma2", ChatFormat::kGemma},
    {"deepseek", ChatFormat::kDeepseek},
};

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

std::string trim(std::string_view s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

Status bad_role(ChatFormat format, const std::string& role) {
  return invalid_argument(std::string("the ") + chat_format_name(format) +
                          " chat format has no role '" + role +
                          "' (use system, user or assistant)");
}

// Formats without a system role fold the leading system messages into the first user turn.
struct Folded {
  std::string system;
  std::vector<const ChatMessage*> turns;
};

Folded fold_system(const std::vector<ChatMessage>& messages) {
  Folded f;
  size_t i = 0;
  for (; i < messages.size() && messages[i].role == "system"; ++i) {
    if (!f.system.empty()) f.system += "\n\n";
    f.system += messages[i].content;
  }
  for (; i < messages.size(); ++i) f.turns.push_back(&messages[i]);
  return f;
}

Result<std::string> render_llama2(const std::vector<ChatMessage>& messages) {
  const Folded f = fold_system(messages);
  std::string out;
  bool first_user = true;
  for (const ChatMessage* m : f.turns) {
    if (m->role == "user") {
      std::string content = m->content;
      if (first_user && !f.system.empty()) {
        content = "<<SYS>>\n" + f.system + "\n<</SYS>>\n\n" + content;
      }
      if (!first_user) out += "<s>";
      out += "[INST] " + trim(content) + " [/INST]";
      first_user = false;
    } else if (m->role == "assistant") {
      out += " " + trim(m->content) + " </s>";
    } else {
      return bad_role(ChatFormat::kLlama2, m->role);
    }
  }
  if (first_user && !f.system.empty()) {
    out += "[INST] <<SYS>>\n" + f.system + "\n<</SYS>>\n\n [/INST]";  // system prompt alone
  }
  return out;
}

Result<std::string> render_mistral(const std::vector<ChatMessage>& messages) {
  const Folded f = fold_system(messages);
  std::string out;
  bool first_user = true;
  for (const ChatMessage* m : f.turns) {
    if (m->role == "user") {
      std::string content = m->content;
      if (first_user && !f.system.empty()) content = f.system + "\n\n" + content;
      out += "[INST] " + content + " [/INST]";
      first_user = false;
    } else if (m->role == "assistant") {
      out += m->content + "</s>";
    } else {
      return bad_role(ChatFormat::kMistral, m->role);
    }
  }
  if (first_user && !f.system.empty()) out += "[INST] " + f.system + " [/INST]";
  return out;
}

Result<std::string> render_gemma(const std::vector<ChatMessage>& messages,
                                 bool add_generation_prompt) {
  const Folded f = fold_system(messages);
  std::string out;
  bool first_user = true;
  for (const ChatMessage* m : f.turns) {
    std::string content = m->content;
    std::string role;
    if (m->role == "user") {
      if (first_user && !f.system.empty()) content = f.system + "\n\n" + content;
      first_user = false;
      role = "user";
    } else if (m->role == "assistant" || m->role == "model") {
      role = "model";
    } else {
      return bad_role(ChatFormat::kGemma, m->role);
    }
    out += "<start_of_turn>" + role + "\n" + trim(content) + "<end_of_turn>\n";
  }
  if (first_user && !f.system.empty()) {
    out += "<start_of_turn>user\n" + trim(f.system) + "<end_of_turn>\n";
  }
  if (add_generation_prompt) out += "<start_of_turn>model\n";
  return out;
}

Result<std::string> render_deepseek(const std::vector<ChatMessage>& messages,
                                    bool add_generation_prompt) {
  std::string out;
  for (const ChatMessage& m : messages) {
    if (m.role == "user") {
      out += "User: " + m.content + "\n\n";
    } else if (m.role == "assistant") {
      out += "Assistant: " + m.content + "<｜end▁of▁sentence｜>";
    } else if (m.role == "system") {
      out += m.content + "\n\n";
    } else {
      return bad_role(ChatFormat::kDeepseek, m.role);
    }
  }
  if (add_generation_prompt) out += "Assistant:";
  return out;
}

// Qwen-style chatml templates spell out the system turn they insert when the conversation has
// none: '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n'. Returns that text, or
// "" when the template has no such literal.
std::string default_chatml_system(std::string_view source) {
  constexpr std::string_view kOpen = "<|im_start|>system";
  constexpr std::string_view kClose = "<|im_end|>";
  for (size_t pos = source.find(kOpen); pos != std::string_view::npos;
       pos = source.find(kOpen, pos + 1)) {
    size_t begin = pos + kOpen.size();
    if (source.substr(begin, 2) == "\\n") {
      begin += 2;  // the Jinja literal's escaped newline
    } else if (source.substr(begin, 1) == "\n") {
      begin += 1;
    } else {
      continue;
    }
    const size_t end = source.find(kClose, begin);
    if (end == std::string_view::npos) continue;
    const std::string_view literal = source.substr(begin, end - begin);
    if (literal.empty() || literal.find_first_of("'\"+{}") != std::string_view::npos) continue;
    std::string text;
    for (size_t i = 0; i < literal.size(); ++i) {
      if (literal[i] == '\\' && i + 1 < literal.size() && literal[i + 1] == 'n') {
        text.push_back('\n');
        ++i;
      } else {
        text.push_back(literal[i]);
      }
    }
    return text;
  }
  return {};
}

// Llama 3.1's template always opens with a system turn carrying a knowledge cutoff and a date
// ("26 Jul 2024" unless the caller passes date_string), then the caller's system prompt.
std::string render_llama31(const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  size_t first = 0;
  std::string system;
  if (!messages.empty() && messages[0].role == "system") {
    system = trim(messages[0].content);
    first = 1;
  }
  std::string out =
      "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
      "Today Date: 26 Jul 2024\n\n" +
      system + "<|eot_id|>";
  for (size_t i = first; i < messages.size(); ++i) {
    out += "<|start_header_id|>" + messages[i].role + "<|end_header_id|>\n\n" +
           trim(messages[i].content) + "<|eot_id|>";
  }
  if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

}  // namespace

const char* chat_format_name(ChatFormat format) {
  for (const NamedFormat& n : kNames) {
    if (n.format == format) return n.name;
  }
  return "unknown";
}

std::vector<std::string> chat_format_names() {
  std::vector<std::string> names;
  for (const NamedFormat& n : kNames) names.emplace_back(n.name);
  return names;
}

Result<ChatFormat> detect_chat_format(std::string_view source) {
  if (trim(source).empty()) return ChatFormat::kChatml;
  for (const NamedFormat& n : kNames) {
    if (source == n.name) return n.format;
  }
  // Distinctive text of each family's Jinja template; order matters where they overlap
  // (phi3 and zephyr both use <|user|>; llama2 and mistral both use [INST]).
  if (contains(source, "<|im_start|>")) return ChatFormat::kChatml;
  if (contains(source, "<|start_header_id|>")) {
    return contains(source, "Cutting Knowledge Date") ? ChatFormat::kLlama31 : ChatFormat::kLlama3;
  }
  if (contains(source, "<start_of_turn>")) return ChatFormat::kGemma;
  if (contains(source, "<|user|>") || contains(source, "<|assistant|>")) {
    return contains(source, "<|end|>") ? ChatFormat::kPhi3 : ChatFormat::kZephyr;
  }
  if (contains(source, "[INST]")) {
    return contains(source, "<<SYS>>") ? ChatFormat::kLlama2 : ChatFormat::kMistral;
  }
  if (contains(source, "'User: '") && contains(source, "'Assistant: '")) {
    return ChatFormat::kDeepseek;
  }
  std::string names;
  for (const NamedFormat& n : kNames) {
    if (!names.empty()) names += ", ";
    names += n.name;
  }
  std::string excerpt(source.substr(0, 60));
  for (char& c : excerpt) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return unsupported("chat template not recognised (it begins \"" + excerpt +
                     (source.size() > 60 ? "...\"" : "\"") +
                     "); pass --chat-template NAME with one of: " + names);
}

Result<ChatTemplate> parse_chat_template(std::string_view template_source_or_name) {
  ChatTemplate t;
  FRUGAL_ASSIGN_OR_RETURN(t.format, detect_chat_format(template_source_or_name));
  if (t.format == ChatFormat::kChatml) {
    t.default_system = default_chatml_system(template_source_or_name);
  }
  return t;
}

Result<std::string> apply_chat_template(std::string_view template_source_or_name,
                                        const std::vector<ChatMessage>& messages,
                                        bool add_generation_prompt) {
  FRUGAL_ASSIGN_OR_RETURN(ChatTemplate t, parse_chat_template(template_source_or_name));
  return apply_chat_template(t, messages, add_generation_prompt);
}

Result<std::string> apply_chat_template(ChatFormat format,
                                        const std::vector<ChatMessage>& messages,
                                        bool add_generation_prompt) {
  return apply_chat_template(ChatTemplate{format, ""}, messages, add_generation_prompt);
}

Result<std::string> apply_chat_template(const ChatTemplate& chat_template,
                                        const std::vector<ChatMessage>& messages,
                                        bool add_generation_prompt) {
  std::string out;
  switch (chat_template.format) {
    case ChatFormat::kChatml:
      if (!chat_template.default_system.empty() && !messages.empty() &&
          messages[0].role != "system") {
        out += "<|im_start|>system\n" + chat_template.default_system + "<|im_end|>\n";
      }
      for (const ChatMessage& m : messages) {
        out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      }
      if (add_generation_prompt) out += "<|im_start|>assistant\n";
      return out;
    case ChatFormat::kLlama3:
      for (const ChatMessage& m : messages) {
        out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + trim(m.content) +
               "<|eot_id|>";
      }
      if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      return out;
    case ChatFormat::kLlama31:
      return render_llama31(messages, add_generation_prompt);
    case ChatFormat::kZephyr:
      for (const ChatMessage& m : messages) {
        out += "<|" + m.role + "|>\n" + m.content + "</s>\n";
      }
      if (add_generation_prompt) out += "<|assistant|>\n";
      return out;
    case ChatFormat::kPhi3:
      for (const ChatMessage& m : messages) {
        out += "<|" + m.role + "|>\n" + m.content + "<|end|>\n";
      }
      if (add_generation_prompt) out += "<|assistant|>\n";
      return out;
    case ChatFormat::kLlama2:
      // The [/INST] that ends a user turn is already the generation prompt.
      return render_llama2(messages);
    case ChatFormat::kMistral:
      return render_mistral(messages);
    case ChatFormat::kGemma:
      return render_gemma(messages, add_generation_prompt);
    case ChatFormat::kDeepseek:
      return render_deepseek(messages, add_generation_prompt);
  }
  return internal_error("unhandled chat format");
}

}  // namespace frugal
