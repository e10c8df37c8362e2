// Chat template tests: each family's rendering of one conversation, recognition from the
// families' Jinja sources and names, and the error for an unknown template; the file's own
// Jinja template (resolution, fallback, refusal, a single BOS with a real tokenizer).
#include "engine/chat_template.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "engine/gguf.h"
#include "engine/tokenizer.h"
#include "util/file_io.h"

namespace frugal {
namespace {

const std::vector<ChatMessage> kConversation = {
    {"system", "You are terse."},
    {"user", "Hi"},
    {"assistant", "Hello."},
    {"user", "2+2?"},
};

std::string render(std::string_view name, const std::vector<ChatMessage>& messages,
                   bool add_generation_prompt) {
  auto r = apply_chat_template(name, messages, add_generation_prompt);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? *r : std::string();
}

TEST(ChatTemplate, Chatml) {
  EXPECT_EQ(render("chatml", kConversation, true),
            "<|im_start|>system\nYou are terse.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello.<|im_end|>\n"
            "<|im_start|>user\n2+2?<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(render("chatml", {{"user", "Hi"}}, false), "<|im_start|>user\nHi<|im_end|>\n");
}

TEST(ChatTemplate, Llama2FoldsTheSystemPromptIntoTheFirstTurn) {
  EXPECT_EQ(render("llama2", kConversation, true),
            "[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHi [/INST] Hello. </s>"
            "<s>[INST] 2+2? [/INST]");
  EXPECT_EQ(render("llama2", {{"user", "  Hi  "}}, true), "[INST] Hi [/INST]");
}

TEST(ChatTemplate, Mistral) {
  EXPECT_EQ(render("mistral", kConversation, true),
            "[INST] You are terse.\n\nHi [/INST]Hello.</s>[INST] 2+2? [/INST]");
}

TEST(ChatTemplate, Llama3) {
  EXPECT_EQ(render("llama3", kConversation, true),
            "<|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(render("llama3", {{"user", "Hi"}}, false),
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
}

TEST(ChatTemplate, Zephyr) {
  EXPECT_EQ(render("zephyr", kConversation, true),
            "<|system|>\nYou are terse.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello.</s>\n"
            "<|user|>\n2+2?</s>\n<|assistant|>\n");
}

TEST(ChatTemplate, Phi3) {
  EXPECT_EQ(render("phi3", kConversation, true),
            "<|system|>\nYou are terse.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello.<|end|>\n"
            "<|user|>\n2+2?<|end|>\n<|assistant|>\n");
}

TEST(ChatTemplate, GemmaCallsTheAssistantModel) {
  EXPECT_EQ(render("gemma", kConversation, true),
            "<start_of_turn>user\nYou are terse.\n\nHi<end_of_turn>\n"
            "<start_of_turn>model\nHello.<end_of_turn>\n"
            "<start_of_turn>user\n2+2?<end_of_turn>\n"
            "<start_of_turn>model\n");
  EXPECT_EQ(render("gemma", {{"user", "Hi"}}, false), "<start_of_turn>user\nHi<end_of_turn>\n");
}

TEST(ChatTemplate, Deepseek) {
  EXPECT_EQ(render("deepseek", kConversation, true),
            "You are terse.\n\nUser: Hi\n\nAssistant: Hello.<｜end▁of▁sentence｜>User: 2+2?\n\n"
            "Assistant:");
}

TEST(ChatTemplate, RecognisesTheFamiliesJinjaSources) {
  struct Case {
    const char* source;
    ChatFormat expected;
  };
  const Case cases[] = {
      {"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
       "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}",
       ChatFormat::kChatml},
      {"{% if messages[0]['role'] == 'system' %}{% set system_message = messages[0]['content'] "
       "%}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = "
       "'<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% endif %}"
       "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}",
       ChatFormat::kLlama2},
      {"{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ "
       "'[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
       "{{ message['content'] + eos_token}}{% endif %}{% endfor %}",
       ChatFormat::kMistral},
      {"{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ "
       "message['content'] | trim + '<|eot_id|>' %}",
       ChatFormat::kLlama3},
      {"{% for message in messages %}{% if message['role'] == 'user' %}{{ '<|user|>\\n' + "
       "message['content'] + eos_token }}{% endif %}{% endfor %}",
       ChatFormat::kZephyr},
      {"{% for message in messages %}{{'<|' + message['role'] + '|>' + '\\n' + "
       "message['content'] + '<|end|>\\n' }}{% endfor %}{% if add_generation_prompt %}"
       "{{ '<|assistant|>\\n' }}{% endif %}",
       ChatFormat::kPhi3},
      {"{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}",
       ChatFormat::kGemma},
      {"{% if message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\\n\\n' }}"
       "{% elif message['role'] == 'assistant' %}{{ 'Assistant: ' + message['content'] + "
       "eos_token }}",
       ChatFormat::kDeepseek},
  };
  for (const Case& c : cases) {
    auto f = detect_chat_format(c.source);
    ASSERT_TRUE(f.is_ok()) << f.status().to_string();
    EXPECT_EQ(*f, c.expected) << c.source;
  }
}

TEST(ChatTemplate, QwenTemplatesInsertTheirDefaultSystemPrompt) {
  // Qwen2-Instruct's template (a real newline inside the Jinja literal).
  const std::string qwen2 =
      "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
      "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
      "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
      "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
  EXPECT_EQ(render(qwen2, {{"user", "Hi"}}, true),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  // A system message of the caller's replaces the default.
  EXPECT_EQ(render(qwen2, {{"system", "Be brief."}, {"user", "Hi"}}, false),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");

  // Qwen2.5's (escaped "\n" in the literal; the tools branch comes first and has no literal).
  const std::string qwen25 =
      "{%- if tools %}{{- '<|im_start|>system\\n' }}{%- if messages[0]['role'] == 'system' %}"
      "{{- messages[0]['content'] }}{%- endif %}{%- else %}{%- if messages[0]['role'] == "
      "'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
      "{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a "
      "helpful assistant.<|im_end|>\\n' }}{%- endif %}{%- endif %}";
  auto t = parse_chat_template(qwen25);
  ASSERT_TRUE(t.is_ok());
  EXPECT_EQ(t->format, ChatFormat::kChatml);
  EXPECT_EQ(t->default_system,
            "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");

  // Plain chatml (by name or template) has no default.
  EXPECT_EQ(parse_chat_template("chatml")->default_system, "");
}

TEST(ChatTemplate, Llama31OpensWithADatedSystemTurn) {
  const std::string source =
      "{{- bos_token }}{%- if not date_string is defined %}{%- set date_string = \"26 Jul 2024\" "
      "%}{%- endif %}{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}{{- \"Cutting "
      "Knowledge Date: December 2023\\n\" }}";
  ASSERT_EQ(*detect_chat_format(source), ChatFormat::kLlama31);
  EXPECT_EQ(render(source, {{"user", "Hi"}}, true),
            "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
            "Today Date: 26 Jul 2024\n\n<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(render("llama3.1", {{"system", " Be brief. "}, {"user", "Hi"}}, false),
            "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
            "Today Date: 26 Jul 2024\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
}

TEST(ChatTemplate, NamesAndAliases) {
  EXPECT_EQ(*detect_chat_format("qwen2"), ChatFormat::kChatml);
  EXPECT_EQ(*detect_chat_format("llama-3"), ChatFormat::kLlama3);
  for (const std::string& name : chat_format_names()) {
    auto f = detect_chat_format(name);
    ASSERT_TRUE(f.is_ok()) << name;
    EXPECT_TRUE(apply_chat_template(name, kConversation, true).is_ok()) << name;
  }
}

TEST(ChatTemplate, EmptyTemplateMeansChatml) {
  EXPECT_EQ(render("", {{"user", "Hi"}}, true),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, UnknownTemplateNamesTheFix) {
  auto r = apply_chat_template("{{ messages | tojson }}", kConversation, true);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kUnsupported);
  EXPECT_NE(r.status().message().find("--chat-template"), std::string::npos);
  EXPECT_NE(r.status().message().find("chatml"), std::string::npos);
  EXPECT_FALSE(apply_chat_template("vicuna-9000", kConversation, true).is_ok());
}

TEST(ChatTemplate, RoleTheFormatCannotExpressIsRefused) {
  const std::vector<ChatMessage> with_tool = {{"user", "Hi"}, {"tool", "42"}};
  for (const char* name : {"llama2", "mistral", "gemma", "deepseek"}) {
    auto r = apply_chat_template(name, with_tool, true);
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument) << name;
  }
  // chatml writes any role as it is.
  EXPECT_EQ(render("chatml", with_tool, false),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>tool\n42<|im_end|>\n");
}

// ---- The file's own Jinja template -----------------------------------------------------------

const std::filesystem::path kTemplates =
    std::filesystem::path(FRUGAL_SOURCE_DIR) / "tests" / "fixtures" / "chat_templates";

std::string fixture(const std::string& name) {
  auto text = read_file((kTemplates / (name + ".jinja")).string());
  EXPECT_TRUE(text.is_ok()) << text.status().to_string();
  return text.is_ok() ? *text : std::string();
}

TEST(ChatTemplateJinja, TheFilesTemplateIsInterpreted) {
  auto t = resolve_chat_template(fixture("qwen2.5"));
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_NE(t->jinja, nullptr);
  EXPECT_EQ(t->description, "jinja (from the file)");
  ChatTemplateInputs in;
  auto text = apply_chat_template(*t, std::vector<ChatMessage>{{"user", "Hi"}}, in);
  ASSERT_TRUE(text.is_ok()) << text.status().to_string();
  EXPECT_EQ(*text,
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
            "assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  // Tools reach the template: Qwen2.5 lists them in its system turn.
  in.extra = nlohmann::ordered_json::parse(
      R"({"tools": [{"type": "function", "function": {"name": "get_time", "parameters": {}}}]})");
  text = apply_chat_template(*t, std::vector<ChatMessage>{{"user", "Hi"}}, in);
  ASSERT_TRUE(text.is_ok()) << text.status().to_string();
  EXPECT_NE(text->find("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_time\""),
            std::string::npos)
      << *text;
}

TEST(ChatTemplateJinja, NamesEmptyAndFallback) {
  auto named = resolve_chat_template("llama3");
  ASSERT_TRUE(named.is_ok());
  EXPECT_EQ(named->jinja, nullptr);
  EXPECT_EQ(named->description, "named: llama3");
  EXPECT_EQ(resolve_chat_template("")->description, "named: chatml (the file has no chat template)");

  // A template that does not parse but is recognisable falls back to its named format, and says so.
  const std::string broken = "{% for message in messages %}{{ '<|im_start|>' + message['role'] }}";
  auto fb = resolve_chat_template(broken);
  ASSERT_TRUE(fb.is_ok()) << fb.status().to_string();
  EXPECT_EQ(fb->jinja, nullptr);
  EXPECT_EQ(fb->named.format, ChatFormat::kChatml);
  EXPECT_EQ(fb->description.rfind("named: chatml (fallback because the file's template does not parse: template line 1", 0), 0)
      << fb->description;

  // Neither parseable nor recognisable: the parse error and the fix.
  auto bad = resolve_chat_template("{% if %}");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kUnsupported);
  EXPECT_NE(bad.status().message().find("template line 1"), std::string::npos);
  EXPECT_NE(bad.status().message().find("--chat-template"), std::string::npos);
}

TEST(ChatTemplateJinja, RefusalNamesTheTemplatesMessage) {
  auto t = resolve_chat_template(fixture("gemma2"));
  ASSERT_TRUE(t.is_ok());
  auto text = apply_chat_template(*t, std::vector<ChatMessage>{{"user", "a"}, {"user", "b"}}, {});
  ASSERT_FALSE(text.is_ok());
  EXPECT_EQ(text.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(text.status().message(),
            "the chat template refused the conversation: Conversation roles must alternate "
            "user/assistant/user/assistant/... (template line 1)");
}

TEST(ChatTemplateJinja, MessagesWithToolCallsReachTheTemplate) {
  auto t = resolve_chat_template(fixture("llama3.1"));
  ASSERT_TRUE(t.is_ok());
  auto messages = nlohmann::ordered_json::parse(R"([
    {"role": "user", "content": "Time?"},
    {"role": "assistant", "tool_calls": [{"function": {"name": "now", "arguments": {"tz": "UTC"}}}]}
  ])");
  auto text = apply_chat_template(*t, messages, {});
  ASSERT_TRUE(text.is_ok()) << text.status().to_string();
  EXPECT_NE(text->find("{\"name\": \"now\", \"parameters\": {\"tz\": \"UTC\"}}<|eot_id|>"),
            std::string::npos)
      << *text;
  // A named format takes string content only, and says so.
  auto named = resolve_chat_template("chatml");
  auto r = apply_chat_template(*named, nlohmann::ordered_json::parse(R"([{"role": "user", "content": [1]}])"), {});
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
}

// Llama 3's template writes <|begin_of_text|> itself; the tokenizer adds BOS too. The prompt must
// start with one BOS, as llama.cpp makes it.
TEST(ChatTemplateJinja, OneBosWhenTheTemplateWritesIt) {
  const auto vocab = std::filesystem::path(FRUGAL_SHARED_DIR) / "fixtures" / "tokenizer" / "llama-bpe.gguf";
  auto gguf = GgufFile::open(vocab.string());
  ASSERT_TRUE(gguf.is_ok()) << gguf.status().to_string();
  auto tok = Tokenizer::from_gguf(**gguf);
  ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
  const Tokenizer& tk = **tok;
  ASSERT_TRUE(tk.add_bos());
  ChatTemplateInputs in = chat_template_inputs(tk);
  EXPECT_EQ(in.bos_token, "<|begin_of_text|>");

  auto t = resolve_chat_template(fixture("llama3.2"));
  ASSERT_TRUE(t.is_ok());
  in.now = 1700000000;
  auto text = apply_chat_template(*t, std::vector<ChatMessage>{{"user", "Hi"}}, in);
  ASSERT_TRUE(text.is_ok()) << text.status().to_string();
  EXPECT_EQ(text->rfind("<|start_header_id|>system<|end_header_id|>", 0), 0) << *text;
  const std::vector<int32_t> ids = tk.encode(*text, tk.add_bos(), /*parse_special=*/true);
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids[0], tk.bos_id());
  EXPECT_NE(ids[1], tk.bos_id());
  EXPECT_EQ(tk.token_text(ids[1]), "<|start_header_id|>");

  // Without the strip (a tokenizer that does not add BOS), the template's own BOS stays.
  in.add_bos = false;
  text = apply_chat_template(*t, std::vector<ChatMessage>{{"user", "Hi"}}, in);
  ASSERT_TRUE(text.is_ok());
  EXPECT_EQ(text->rfind("<|begin_of_text|><|start_header_id|>", 0), 0);
}

}  // namespace
}  // namespace frugal
