// Chat templates: the file's Jinja template through engine/jinja.h, and the named formats:
// recognition of the common families and their hand-written renderings, each matching what the
// family's Hugging Face Jinja template produces (minus the leading BOS).
#include "engine/chat_template.h"

#include <cctype>

#include "engine/jinja.h"
#include "engine/tokenizer.h"

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

// ---- The file's own template ----------------------------------------------------------------

namespace {

std::string known_names() {
  std::string names;
  for (const NamedFormat& n : kNames) {
    if (!names.empty()) names += ", ";
    names += n.name;
  }
  return names;
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

Result<std::vector<ChatMessage>> plain_messages(const nlohmann::ordered_json& messages) {
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    const std::string where = "message " + std::to_string(i);
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      return invalid_argument(where + " has no string 'role'");
    }
    ChatMessage cm;
    cm.role = m["role"].get<std::string>();
    if (m.contains("content") && m["content"].is_string()) {
      cm.content = m["content"].get<std::string>();
    } else if (m.contains("content") && !m["content"].is_null()) {
      return invalid_argument(where + ": a named chat format takes string content only (the " +
                              "file's Jinja template takes structured content)");
    }
    out.push_back(std::move(cm));
  }
  return out;
}

}  // namespace

Result<ResolvedChatTemplate> resolve_chat_template(std::string_view source) {
  ResolvedChatTemplate r;
  if (trim(source).empty()) {
    r.named.format = ChatFormat::kChatml;
    r.description = "named: chatml (the file has no chat template)";
    return r;
  }
  for (const NamedFormat& n : kNames) {
    if (source == n.name) {
      FRUGAL_ASSIGN_OR_RETURN(r.named, parse_chat_template(source));
      r.description = std::string("named: ") + chat_format_name(r.named.format);
      return r;
    }
  }
  auto parsed = jinja::Template::parse(source);
  if (parsed.is_ok()) {
    r.jinja = std::make_shared<const jinja::Template>(std::move(parsed).value());
    r.description = "jinja (from the file)";
    return r;
  }
  auto fallback = parse_chat_template(source);
  if (!fallback.is_ok()) {
    return unsupported("the chat template does not parse (" + parsed.status().message() +
                       ") and is not a family this build recognises; pass --chat-template NAME "
                       "with one of: " + known_names());
  }
  r.named = std::move(fallback).value();
  r.description = std::string("named: ") + chat_format_name(r.named.format) +
                  " (fallback because the file's template does not parse: " +
                  parsed.status().message() + ")";
  return r;
}

ChatTemplateInputs chat_template_inputs(const Tokenizer& tokenizer) {
  ChatTemplateInputs in;
  if (tokenizer.bos_id() >= 0) in.bos_token = tokenizer.token_text(tokenizer.bos_id());
  if (tokenizer.eos_id() >= 0) in.eos_token = tokenizer.token_text(tokenizer.eos_id());
  in.add_bos = tokenizer.add_bos();
  in.add_eos = tokenizer.add_eos();
  return in;
}

Result<std::string> apply_chat_template(const ResolvedChatTemplate& chat_template,
                                        const nlohmann::ordered_json& messages,
                                        const ChatTemplateInputs& inputs) {
  if (!messages.is_array()) return invalid_argument("the messages are not a JSON array");
  if (!chat_template.jinja) {
    FRUGAL_ASSIGN_OR_RETURN(std::vector<ChatMessage> plain, plain_messages(messages));
    return apply_chat_template(chat_template.named, plain, inputs.add_generation_prompt);
  }
  jinja::ValueDict globals;
  globals.set("bos_token", jinja::Value(inputs.bos_token));
  globals.set("eos_token", jinja::Value(inputs.eos_token));
  if (inputs.extra.is_object()) {
    for (const auto& [k, v] : inputs.extra.items()) globals.set(k, jinja::Value::from_json(v));
  } else if (!inputs.extra.is_null()) {
    return invalid_argument("the extra chat template variables are not a JSON object");
  }
  globals.set("messages", jinja::Value::from_json(messages));
  globals.set("add_generation_prompt", jinja::Value(inputs.add_generation_prompt));
  auto text = chat_template.jinja->render(globals, inputs.now);
  if (!text.is_ok()) {
    const std::string& msg = text.status().message();
    constexpr std::string_view kRaised = "the template raised an error at line ";
    if (starts_with(msg, kRaised)) {
      const size_t colon = msg.find(": ", kRaised.size());
      const std::string line = msg.substr(kRaised.size(), colon - kRaised.size());
      return invalid_argument("the chat template refused the conversation: " +
                              msg.substr(colon + 2) + " (template line " + line + ")");
    }
    std::string hint;
    if (text.status().code() == ErrorCode::kUnsupported) {
      hint = "; pass --chat-template NAME to use a named format instead";
    }
    return Status(text.status().code(), "chat template: " + msg + hint);
  }
  std::string out = std::move(text).value();
  if (inputs.add_bos && !inputs.bos_token.empty() && starts_with(out, inputs.bos_token)) {
    out.erase(0, inputs.bos_token.size());
  }
  if (inputs.add_eos && !inputs.eos_token.empty() && out.size() >= inputs.eos_token.size() &&
      out.compare(out.size() - inputs.eos_token.size(), inputs.eos_token.size(),
                  inputs.eos_token) == 0) {
    out.erase(out.size() - inputs.eos_token.size());
  }
  return out;
}

Result<std::string> apply_chat_template(const ResolvedChatTemplate& chat_template,
                                        const std::vector<ChatMessage>& messages,
                                        const ChatTemplateInputs& inputs) {
  nlohmann::ordered_json j = nlohmann::ordered_json::array();
  for (const ChatMessage& m : messages) j.push_back({{"role", m.role}, {"content", m.content}});
  return apply_chat_template(chat_template, j, inputs);
}

}  // namespace frugal
