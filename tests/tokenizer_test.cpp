// Tokenizer tests: llama.cpp's vocab fixtures id for id, round trips, streaming detokenization,
// special tokens, pre-tokenizer splits, bad metadata, and the `frugal tokenize` command.
#include "engine/tokenizer.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "engine/gguf.h"
#include "engine/pretokenizer.h"

namespace frugal {
namespace {

namespace fs = std::filesystem;

const fs::path kFixtureDir = fs::path(FRUGAL_SHARED_DIR) / "fixtures" / "tokenizer";

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Fixture {
  std::vector<std::string> inputs;
  std::vector<std::vector<int32_t>> expected;
};

// .inp: strings each followed by "\n__ggml_vocab_test__\n"; .out: one line of ids per string.
Fixture load_fixture(const fs::path& gguf_path) {
  Fixture f;
  const std::string inp = read_file(gguf_path.string() + ".inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  size_t pos = 0;
  while (true) {
    const size_t hit = inp.find(sep, pos);
    if (hit == std::string::npos) break;
    f.inputs.push_back(inp.substr(pos, hit - pos));
    pos = hit + sep.size();
  }
  std::istringstream out(read_file(gguf_path.string() + ".out"));
  std::string line;
  while (std::getline(out, line)) {
    std::istringstream ids(line);
    std::vector<int32_t> v;
    int32_t id;
    while (ids >> id) v.push_back(id);
    f.expected.push_back(v);
  }
  return f;
}

std::vector<fs::path> fixture_files() {
  std::vector<fs::path> files;
  if (!fs::exists(kFixtureDir)) return files;
  for (const auto& entry : fs::directory_iterator(kFixtureDir)) {
    const fs::path& p = entry.path();
    if (p.extension() == ".gguf" && fs::exists(p.string() + ".inp") &&
        fs::exists(p.string() + ".out")) {
      files.push_back(p);
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string ids_to_string(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += " " + std::to_string(id);
  return s;
}

struct Loaded {
  std::unique_ptr<GgufFile> gguf;
  std::unique_ptr<Tokenizer> tok;
};

Loaded load(const std::string& name) {
  Loaded l;
  auto gguf = GgufFile::open((kFixtureDir / name).string());
  EXPECT_TRUE(gguf.is_ok()) << gguf.status().to_string();
  if (!gguf.is_ok()) return l;
  l.gguf = std::move(*gguf);
  auto tok = Tokenizer::from_gguf(*l.gguf);
  EXPECT_TRUE(tok.is_ok()) << tok.status().to_string();
  if (tok.is_ok()) l.tok = std::move(*tok);
  return l;
}

TEST(TokenizerFixtures, EveryCaseMatchesLlamaCpp) {
  const auto files = fixture_files();
  ASSERT_GE(files.size(), 3u) << "expected llama-spm, gpt-2 and deepseek-llm in " << kFixtureDir;
  for (const fs::path& path : files) {
    SCOPED_TRACE(path.filename().string());
    auto gguf = GgufFile::open(path.string());
    ASSERT_TRUE(gguf.is_ok()) << gguf.status().to_string();
    auto tok = Tokenizer::from_gguf(**gguf);
    ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
    const Fixture f = load_fixture(path);
    ASSERT_EQ(f.inputs.size(), f.expected.size());
    ASSERT_GT(f.inputs.size(), 0u);
    int mismatches = 0;
    for (size_t i = 0; i < f.inputs.size(); ++i) {
      const auto got = (*tok)->encode(f.inputs[i], /*add_special=*/false, /*parse_special=*/false);
      if (got != f.expected[i]) {
        ++mismatches;
        ADD_FAILURE() << path.filename() << " case " << i << " '" << f.inputs[i]
                      << "'\n  expected:" << ids_to_string(f.expected[i])
                      << "\n  got:     " << ids_to_string(got);
      }
    }
    EXPECT_EQ(mismatches, 0) << "of " << f.inputs.size() << " cases";
  }
}

TEST(TokenizerFixtures, DecodeOfEncodeGivesTheTextBack) {
  for (const fs::path& path : fixture_files()) {
    SCOPED_TRACE(path.filename().string());
    auto gguf = GgufFile::open(path.string());
    ASSERT_TRUE(gguf.is_ok());
    auto tok = Tokenizer::from_gguf(**gguf);
    ASSERT_TRUE(tok.is_ok());
    for (const std::string& text : load_fixture(path).inputs) {
      const auto ids = (*tok)->encode(text, false, false);
      // SPM adds a space prefix that decode() drops again, so the text comes back exactly.
      EXPECT_EQ((*tok)->decode(ids), text);
      // The streaming detokenizer agrees with decode() on valid UTF-8.
      StreamingDetokenizer stream(**tok);
      std::string streamed;
      for (int32_t id : ids) streamed += stream.push(id);
      streamed += stream.flush();
      EXPECT_EQ(streamed, text);
    }
  }
}

TEST(TokenizerFixtures, ArbitraryBytesRoundTrip) {
  // Invalid UTF-8 included: BPE spells every byte, SPM falls back to <0xXX> tokens.
  std::mt19937 rng(1234);
  const std::string alphabet = "ab \n\t<|>s/0123\xC3\xA9\xE6\x88\x91\xF0\x9F\xA6\x99\x80\xFF\xC3";
  // deepseek-llm has user-defined tokens spelled like byte-alphabet characters ("ÿ" for
  // byte 0xFF); they decode as their UTF-8 text, so only valid UTF-8 round-trips there.
  for (const char* name : {"llama-spm.gguf", "gpt-2.gguf", "deepseek-llm.gguf"}) {
    SCOPED_TRACE(name);
    auto l = load(name);
    ASSERT_TRUE(l.tok);
    const bool any_bytes = std::string_view(name) != "deepseek-llm.gguf";
    for (int i = 0; i < 200; ++i) {
      std::string text;
      const int len = 1 + static_cast<int>(rng() % 40);
      for (int j = 0; j < len; ++j) {
        if (any_bytes && rng() % 4 == 0) {
          text.push_back(static_cast<char>(rng() % 256));
        } else if (any_bytes) {
          text.push_back(alphabet[rng() % alphabet.size()]);
        } else {
          const char* valid[] = {"a", " ", "\n", "<|", "s", "0", "\xC3\xA9", "\xE6\x88\x91",
                                 "\xF0\x9F\xA6\x99", "\xC3\xBF"};
          text += valid[rng() % 10];
        }
      }
      for (bool parse_special : {false, true}) {
        const auto ids = l.tok->encode(text, false, parse_special);
        for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < l.tok->n_vocab());
        if (!parse_special) {
          EXPECT_EQ(l.tok->decode(ids), text);
        }
      }
    }
  }
}

TEST(Tokenizer, MetadataOfTheFixtures) {
  auto spm = load("llama-spm.gguf");
  ASSERT_TRUE(spm.tok);
  EXPECT_EQ(spm.tok->kind(), TokenizerKind::kSpm);
  EXPECT_EQ(spm.tok->n_vocab(), 32000);
  EXPECT_EQ(spm.tok->bos_id(), 1);
  EXPECT_EQ(spm.tok->eos_id(), 2);
  EXPECT_TRUE(spm.tok->add_bos());
  EXPECT_TRUE(spm.tok->is_eog(2));
  EXPECT_FALSE(spm.tok->is_eog(1));
  EXPECT_EQ(spm.tok->token_id("<0x0A>"), std::optional<int32_t>(13));
  EXPECT_EQ(spm.tok->token_text(1), "<s>");

  auto gpt2 = load("gpt-2.gguf");
  ASSERT_TRUE(gpt2.tok);
  EXPECT_EQ(gpt2.tok->kind(), TokenizerKind::kBpe);
  EXPECT_FALSE(gpt2.tok->add_bos());  // gpt-2's pre-tokenizer default: no BOS
  EXPECT_EQ(gpt2.tok->eos_id(), 50256);
  EXPECT_TRUE(gpt2.tok->is_eog(50256));
  EXPECT_FALSE(gpt2.tok->token_id("no such token").has_value());

  auto ds = load("deepseek-llm.gguf");
  ASSERT_TRUE(ds.tok);
  EXPECT_TRUE(ds.tok->add_bos());  // from tokenizer.ggml.add_bos_token
  EXPECT_TRUE(ds.tok->is_eog(100001));
}

TEST(Tokenizer, AddSpecialAddsBosAsTheMetadataSays) {
  auto spm = load("llama-spm.gguf");
  ASSERT_TRUE(spm.tok);
  const auto plain = spm.tok->encode("Hello world", false, false);
  const auto with_bos = spm.tok->encode("Hello world", true, false);
  ASSERT_EQ(with_bos.size(), plain.size() + 1);
  EXPECT_EQ(with_bos[0], 1);
  EXPECT_EQ(std::vector<int32_t>(with_bos.begin() + 1, with_bos.end()), plain);
  EXPECT_EQ(spm.tok->encode("", true, false), std::vector<int32_t>{1});
  EXPECT_TRUE(spm.tok->encode("", false, false).empty());

  auto gpt2 = load("gpt-2.gguf");
  ASSERT_TRUE(gpt2.tok);
  EXPECT_EQ(gpt2.tok->encode("Hello", true, false), gpt2.tok->encode("Hello", false, false));

  auto ds = load("deepseek-llm.gguf");
  ASSERT_TRUE(ds.tok);
  EXPECT_EQ(ds.tok->encode("Hello", true, false)[0], 100000);
}

TEST(Tokenizer, SpecialTokenTextIsParsedOnlyWhenAsked) {
  auto gpt2 = load("gpt-2.gguf");
  ASSERT_TRUE(gpt2.tok);
  const std::string text = "Hi<|endoftext|>there";
  const auto parsed = gpt2.tok->encode(text, false, true);
  EXPECT_NE(std::find(parsed.begin(), parsed.end(), 50256), parsed.end());
  EXPECT_EQ(parsed, (std::vector<int32_t>{gpt2.tok->encode("Hi", false, false)[0], 50256,
                                          gpt2.tok->encode("there", false, false)[0]}));
  const auto plain = gpt2.tok->encode(text, false, false);
  EXPECT_EQ(std::find(plain.begin(), plain.end(), 50256), plain.end());
  EXPECT_EQ(gpt2.tok->decode(plain), text);
  // A control token decodes to nothing unless asked.
  EXPECT_EQ(gpt2.tok->decode(parsed), "Hithere");
  EXPECT_EQ(gpt2.tok->decode(parsed, /*render_special=*/true), text);

  auto spm = load("llama-spm.gguf");
  ASSERT_TRUE(spm.tok);
  // After a special token SPM text gets its space prefix again, as in llama.cpp.
  const auto ids = spm.tok->encode("<s>Hello</s>", false, true);
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(ids[1], spm.tok->encode("Hello", false, false)[0]);
  EXPECT_EQ(ids[2], 2);
  EXPECT_EQ(spm.tok->encode("<s>", false, false).size(), 3u);  // "▁<", "s", ">"-ish pieces
}

TEST(Tokenizer, SpmFallsBackToByteTokens) {
  auto spm = load("llama-spm.gguf");
  ASSERT_TRUE(spm.tok);
  // U+1F999 is not in the 32k llama vocabulary: four <0xXX> tokens after the "▁" prefix.
  const auto ids = spm.tok->encode("🦙", false, false);
  ASSERT_EQ(ids.size(), 5u);
  EXPECT_EQ(spm.tok->token_text(ids[1]), "<0xF0>");
  EXPECT_EQ(spm.tok->token_text(ids[4]), "<0x99>");
  EXPECT_EQ(spm.tok->token_to_piece(ids[1]), "\xF0");
}

// Pushes ids one at a time; every returned string must be valid UTF-8 on its own.
std::vector<std::string> stream_pieces(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  StreamingDetokenizer stream(tok);
  std::vector<std::string> parts;
  for (int32_t id : ids) parts.push_back(stream.push(id));
  parts.push_back(stream.flush());
  return parts;
}

bool is_valid_utf8(const std::string& s) {
  uint32_t cp;
  for (size_t i = 0; i < s.size();) {
    const int n = utf8_decode_one(std::string_view(s).substr(i), &cp);
    if (n <= 0) return false;
    i += n;
  }
  return true;
}

TEST(StreamingDetokenizer, HoldsBackCharactersSplitAcrossTokens) {
  for (const char* name : {"llama-spm.gguf", "gpt-2.gguf", "deepseek-llm.gguf"}) {
    SCOPED_TRACE(name);
    auto l = load(name);
    ASSERT_TRUE(l.tok);
    for (std::string text : {"🦙", "I 🦙 you", "我想在apple工作", "🚀 😶‍🌫️", "ស្វាគមន៍"}) {
      const auto ids = l.tok->encode(text, false, false);
      const auto parts = stream_pieces(*l.tok, ids);
      std::string joined;
      for (const auto& p : parts) {
        EXPECT_TRUE(is_valid_utf8(p)) << "'" << p << "'";
        joined += p;
      }
      EXPECT_EQ(joined, text);
    }
  }
  // Concretely: SPM spells 🦙 as four byte tokens; nothing comes out before the last one.
  auto spm = load("llama-spm.gguf");
  ASSERT_TRUE(spm.tok);
  const auto ids = spm.tok->encode("🦙", false, false);
  ASSERT_EQ(ids.size(), 5u);
  const auto parts = stream_pieces(*spm.tok, ids);
  EXPECT_EQ(parts[0], "");  // "▁" at the start of the sequence: the space is dropped
  EXPECT_EQ(parts[1], "");
  EXPECT_EQ(parts[2], "");
  EXPECT_EQ(parts[3], "");
  EXPECT_EQ(parts[4], "🦙");
}

TEST(StreamingDetokenizer, InvalidAndUnfinishedBytesBecomeReplacementCharacters) {
  auto spm = load("llama-spm.gguf");
  ASSERT_TRUE(spm.tok);
  const int32_t e6 = *spm.tok->token_id("<0xE6>");
  const int32_t x80 = *spm.tok->token_id("<0x80>");
  const int32_t a = *spm.tok->token_id("a");
  StreamingDetokenizer stream(*spm.tok);
  EXPECT_EQ(stream.push(x80), "\xEF\xBF\xBD");  // a lone continuation byte
  EXPECT_EQ(stream.push(e6), "");                // could still become a character
  EXPECT_EQ(stream.push(a), "\xEF\xBF\xBD" "a");  // ...but "a" ends that hope
  EXPECT_EQ(stream.push(e6), "");
  EXPECT_EQ(stream.flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(stream.flush(), "");
}

TEST(StreamingDetokenizer, SpmLeadingSpaceIsDroppedOnlyAtTheSequenceStart) {
  auto spm = load("llama-spm.gguf");
  ASSERT_TRUE(spm.tok);
  const auto ids = spm.tok->encode("Hello world", false, false);  // "▁Hello", "▁world"
  ASSERT_EQ(ids.size(), 2u);
  StreamingDetokenizer start(*spm.tok);
  EXPECT_EQ(start.push(ids[0]), "Hello");
  EXPECT_EQ(start.push(ids[1]), " world");
  StreamingDetokenizer continuing(*spm.tok, /*at_sequence_start=*/false);
  EXPECT_EQ(continuing.push(ids[0]), " Hello");
  // After BOS the space stays, as llama.cpp's detokenizer does.
  EXPECT_EQ(spm.tok->decode({1, ids[0]}), " Hello");
  EXPECT_EQ(spm.tok->decode(ids), "Hello world");
}

std::vector<std::string> split_with(std::string_view pre, std::string_view text) {
  auto patterns = PreTokenizer::patterns_for(pre);
  EXPECT_TRUE(patterns.has_value()) << pre;
  if (!patterns) return {};
  auto p = PreTokenizer::from_patterns(*patterns);
  EXPECT_TRUE(p.is_ok()) << p.status().to_string();
  if (!p.is_ok()) return {};
  std::vector<std::string> out;
  for (auto w : (*p)->split(text)) out.emplace_back(w);
  return out;
}

using Words = std::vector<std::string>;

TEST(PreTokenizer, EveryKnownFamilyCompilesAndCoversTheText) {
  const std::string text =
      "Hello, y'all! 1234567 ½ 我想在apple工作\n\n  \tend 🦙 ---== 'RE x\xff\xfe";
  for (const std::string& name : PreTokenizer::known_names()) {
    SCOPED_TRACE(name);
    const auto words = split_with(name, text);
    std::string joined;
    for (const auto& w : words) {
      EXPECT_FALSE(w.empty());
      joined += w;
    }
    EXPECT_EQ(joined, text);
  }
}

TEST(PreTokenizer, Gpt2) {
  EXPECT_EQ(split_with("gpt-2", "Hello world"), (Words{"Hello", " world"}));
  EXPECT_EQ(split_with("gpt-2", "I've   got 12345!!"),
            (Words{"I", "'ve", "  ", " got", " 12345", "!!"}));
  EXPECT_EQ(split_with("gpt-2", "a  \n"), (Words{"a", "  \n"}));
}

TEST(PreTokenizer, Llama3GroupsDigitsByThree) {
  EXPECT_EQ(split_with("llama-bpe", "1234567"), (Words{"123", "456", "7"}));
  EXPECT_EQ(split_with("llama-bpe", "x 12345"), (Words{"x", " ", "123", "45"}));
  EXPECT_EQ(split_with("llama-bpe", "HE'S here"), (Words{"HE", "'S", " here"}));
  EXPECT_EQ(split_with("llama-bpe", "a\n\nb"), (Words{"a", "\n\n", "b"}));
  EXPECT_EQ(split_with("llama-bpe", "(hello)"), (Words{"(hello", ")"}));
}

TEST(PreTokenizer, Qwen2SplitsDigitsOneByOne) {
  EXPECT_EQ(split_with("qwen2", "1234"), (Words{"1", "2", "3", "4"}));
  EXPECT_EQ(split_with("qwen2", "Hi 42!"), (Words{"Hi", " ", "4", "2", "!"}));
}

TEST(PreTokenizer, StarcoderAndFalcon) {
  EXPECT_EQ(split_with("starcoder", "x=123"), (Words{"x", "=", "1", "2", "3"}));
  EXPECT_EQ(split_with("falcon", "a+b 1234"), (Words{"a", "+", "b", " ", "123", "4"}));
}

TEST(PreTokenizer, DeepseekCoder) {
  EXPECT_EQ(split_with("deepseek-coder", "def f(x):\n  return 12"),
            (Words{"def", " f", "(", "x", "):", "\n", " ", " return", " ", "1", "2"}));
}

TEST(PreTokenizer, UnknownNameIsNotKnown) {
  EXPECT_FALSE(PreTokenizer::patterns_for("no-such-pre").has_value());
  EXPECT_FALSE(PreTokenizer::from_patterns({"(unclosed"}).is_ok());
}

// The gpt-2 vocabulary under another family's pre-tokenizer name (metadata overridden).
Result<std::unique_ptr<Tokenizer>> gpt2_vocab_with_pre(const GgufFile& gguf, std::string pre) {
  const GgufValue value = GgufValue::from_string(std::move(pre));
  return Tokenizer::from_metadata([&](std::string_view key) -> const GgufValue* {
    return key == "tokenizer.ggml.pre" ? &value : gguf.find(key);
  });
}

TEST(Tokenizer, PreTokenizerNameChangesTheIdsAndTheBosDefault) {
  auto gpt2 = load("gpt-2.gguf");
  ASSERT_TRUE(gpt2.tok);
  auto id = [&](const char* text) { return *gpt2.tok->token_id(text); };
  // gpt-2 keeps the digit run whole and lets the merges cut it (as Hugging Face's does).
  EXPECT_EQ(gpt2.tok->encode("1234567", false, false),
            (std::vector<int32_t>{id("123"), id("45"), id("67")}));

  auto llama3 = gpt2_vocab_with_pre(*gpt2.gguf, "llama-bpe");
  ASSERT_TRUE(llama3.is_ok()) << llama3.status().to_string();
  EXPECT_EQ((*llama3)->encode("1234567", false, false),
            (std::vector<int32_t>{id("123"), id("456"), id("7")}));
  EXPECT_TRUE((*llama3)->add_bos());  // Llama 3's default, absent add_bos_token
  EXPECT_EQ((*llama3)->encode("7", true, false), (std::vector<int32_t>{50256, id("7")}));

  auto qwen2 = gpt2_vocab_with_pre(*gpt2.gguf, "qwen2");
  ASSERT_TRUE(qwen2.is_ok()) << qwen2.status().to_string();
  EXPECT_EQ((*qwen2)->encode("2024", false, false),
            (std::vector<int32_t>{id("2"), id("0"), id("2"), id("4")}));
  EXPECT_FALSE((*qwen2)->add_bos());
}

TEST(Tokenizer, OutOfRangeIdsDecodeToNothing) {
  auto gpt2 = load("gpt-2.gguf");
  ASSERT_TRUE(gpt2.tok);
  const int32_t hello = *gpt2.tok->token_id("Hello");
  EXPECT_EQ(gpt2.tok->decode({-1, hello, 50257, 1 << 30}), "Hello");
  StreamingDetokenizer stream(*gpt2.tok);
  EXPECT_EQ(stream.push(-5), "");
  EXPECT_EQ(stream.push(hello), "Hello");
}

// Bad metadata: a map-backed lookup around a tiny valid BPE vocabulary.
class BadMetadata : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<std::string> tokens;
    for (char c = 'a'; c <= 'e'; ++c) tokens.emplace_back(1, c);
    tokens.push_back("ab");
    tokens.push_back("<|endoftext|>");
    meta_["tokenizer.ggml.model"] = GgufValue::from_string("gpt2");
    meta_["tokenizer.ggml.pre"] = GgufValue::from_string("gpt-2");
    meta_["tokenizer.ggml.tokens"] = GgufValue::from_string_array(tokens);
    meta_["tokenizer.ggml.token_type"] =
        GgufValue::from_int_array(GgufValueType::kInt32, {1, 1, 1, 1, 1, 1, 3});
    meta_["tokenizer.ggml.merges"] = GgufValue::from_string_array({"a b"});
    meta_["tokenizer.ggml.eos_token_id"] = GgufValue::from_uint(GgufValueType::kUint32, 6);
  }
  Result<std::unique_ptr<Tokenizer>> make() const {
    return Tokenizer::from_metadata([this](std::string_view key) -> const GgufValue* {
      auto it = meta_.find(std::string(key));
      return it == meta_.end() ? nullptr : &it->second;
    });
  }
  std::map<std::string, GgufValue> meta_;
};

TEST_F(BadMetadata, TheBaseVocabularyWorks) {
  auto tok = make();
  ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
  EXPECT_EQ((*tok)->encode("abc", false, false), (std::vector<int32_t>{5, 2}));
  EXPECT_TRUE((*tok)->is_eog(6));
}

// Qwen2.5-Coder's FIM pad / repo / file separators end generation as in llama.cpp, but only
// when the vocabulary marks them special: a normal token with the same text is just text.
TEST_F(BadMetadata, QwenCoderSeparatorsEndGeneration) {
  std::vector<std::string> tokens;
  for (char c = 'a'; c <= 'e'; ++c) tokens.emplace_back(1, c);
  for (const char* t : {"ab", "<|endoftext|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
                        "<|fim_middle|>"})
    tokens.emplace_back(t);
  meta_["tokenizer.ggml.tokens"] = GgufValue::from_string_array(tokens);
  meta_["tokenizer.ggml.token_type"] =
      GgufValue::from_int_array(GgufValueType::kInt32, {1, 1, 1, 1, 1, 1, 3, 3, 3, 1, 3});
  auto tok = make();
  ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
  EXPECT_TRUE((*tok)->is_eog(7));    // <|fim_pad|>
  EXPECT_TRUE((*tok)->is_eog(8));    // <|repo_name|>
  EXPECT_FALSE((*tok)->is_eog(9));   // <|file_sep|> as a normal token
  EXPECT_FALSE((*tok)->is_eog(10));  // <|fim_middle|>: FIM, but not an end
}

TEST_F(BadMetadata, MissingTokens) {
  meta_.erase("tokenizer.ggml.tokens");
  EXPECT_EQ(make().status().code(), ErrorCode::kNotFound);
  meta_.erase("tokenizer.ggml.model");
  EXPECT_EQ(make().status().code(), ErrorCode::kNotFound);
}

TEST_F(BadMetadata, UnknownModel) {
  meta_["tokenizer.ggml.model"] = GgufValue::from_string("bert");
  EXPECT_EQ(make().status().code(), ErrorCode::kUnsupported);
}

TEST_F(BadMetadata, MismatchedArrayLengths) {
  meta_["tokenizer.ggml.token_type"] = GgufValue::from_int_array(GgufValueType::kInt32, {1, 1});
  EXPECT_EQ(make().status().code(), ErrorCode::kCorrupt);
  SetUp();
  meta_["tokenizer.ggml.scores"] = GgufValue::from_float_array(GgufValueType::kFloat32, {0.5});
  EXPECT_EQ(make().status().code(), ErrorCode::kCorrupt);
}

TEST_F(BadMetadata, MergeNamingAnUnknownToken) {
  meta_["tokenizer.ggml.merges"] = GgufValue::from_string_array({"a b", "b z"});
  auto r = make();
  EXPECT_EQ(r.status().code(), ErrorCode::kCorrupt);
  EXPECT_NE(r.status().message().find("merges[1]"), std::string::npos) << r.status().message();
  meta_["tokenizer.ggml.merges"] = GgufValue::from_string_array({"ab"});
  EXPECT_EQ(make().status().code(), ErrorCode::kCorrupt);
}

TEST_F(BadMetadata, TokenIdsOutOfRange) {
  meta_["tokenizer.ggml.bos_token_id"] = GgufValue::from_uint(GgufValueType::kUint32, 7);
  EXPECT_EQ(make().status().code(), ErrorCode::kCorrupt);
  SetUp();
  meta_["tokenizer.ggml.token_type"] =
      GgufValue::from_int_array(GgufValueType::kInt32, {1, 1, 1, 1, 1, 1, 9});
  EXPECT_EQ(make().status().code(), ErrorCode::kCorrupt);
}

TEST_F(BadMetadata, WrongValueTypes) {
  meta_["tokenizer.ggml.tokens"] = GgufValue::from_string("abc");
  EXPECT_EQ(make().status().code(), ErrorCode::kCorrupt);
  SetUp();
  meta_["tokenizer.ggml.add_bos_token"] = GgufValue::from_string("yes");
  EXPECT_EQ(make().status().code(), ErrorCode::kCorrupt);
}

TEST_F(BadMetadata, UnknownPreTokenizerFallsBackToGpt2) {
  meta_["tokenizer.ggml.pre"] = GgufValue::from_string("brand-new-model");
  auto tok = make();
  ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
  EXPECT_EQ((*tok)->encode("ab", false, false), (std::vector<int32_t>{5}));
}

// `frugal tokenize` on one fixture string, through a real process.
TEST(TokenizeCommand, PrintsTheFixtureIds) {
  const fs::path binary = FRUGAL_BINARY;
  if (!fs::exists(binary)) GTEST_SKIP() << "build the frugal target first: " << binary;
  const fs::path model = kFixtureDir / "gpt-2.gguf";
  const Fixture f = load_fixture(model);
  const size_t index = 24;  // " this is 🦙.cpp"-style case with multibyte text
  ASSERT_LT(index, f.inputs.size());
  const fs::path input = fs::temp_directory_path() / ("frugal_tokenize_test_" +
                                                      std::to_string(::getpid()) + ".txt");
  {
    std::ofstream out(input, std::ios::binary);
    out << f.inputs[index];
  }
  const std::string command =
      "'" + binary.string() + "' tokenize -m '" + model.string() + "' < '" + input.string() + "'";
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, n);
  const int status = pclose(pipe);
  fs::remove(input);
  EXPECT_EQ(status, 0);
  std::istringstream ids(output);
  std::vector<int32_t> got;
  int32_t id;
  while (ids >> id) got.push_back(id);
  EXPECT_EQ(got, f.expected[index]) << "input '" << f.inputs[index] << "', output '" << output
                                    << "'";
  EXPECT_EQ(std::count(output.begin(), output.end(), '\n'), 1);
}

}  // namespace
}  // namespace frugal
