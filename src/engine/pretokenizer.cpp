// PreTokenizer: the per-family regex cascades (from each family's tokenizer.json, as llama.cpp
// names them in tokenizer.ggml.pre) run with PCRE2 in UTF + UCP mode.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "engine/pretokenizer.h"

#include <pcre2.h>

#include <cstring>

namespace frugal {

namespace {

// GPT-2's split: contractions, letters, numbers, other symbols, each with one optional leading
// space, then whitespace runs that leave the last space for the next word.
constexpr const char* kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
// cl100k-style (Llama 3): case-insensitive contractions written as ASCII classes (so that no
// Unicode case folding sneaks in), digit runs in groups of at most three.
constexpr const char* kLlama3 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|)"
    R"([^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|)"
    R"(\s+(?!\S)|\s+)";
// Qwen2: as Llama 3 but every digit is its own word.
constexpr const char* kQwen2 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|)"
    R"([^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|)"
    R"(\s+)";
// Tekken (Mistral Nemo) and GPT-4o: upper/lower-case aware letter runs.
constexpr const char* kTekken =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|)"
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|)"
    R"(\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kGpt4o =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?:'[sS]|)"
    R"('[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|)"
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?:'[sS]|)"
    R"('[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}|)"
    R"( ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kBloom = R"( ?[^(\s|.,!?…。，、।۔،)]+)";
constexpr const char* kCjk = R"([一-龥ࠀ-一가-퟿]+)";

struct PreFamily {
  std::vector<const char*> names;
  std::vector<const char*> patterns;
};

const std::vector<PreFamily>& families() {
  static const std::vector<PreFamily> kFamilies = {
      {{"gpt-2", "gpt2", "phi-2", "jina-es", "jina-de", "jina-v1-en", "jina-v2-es", "jina-v2-de",
        "gigachat", "mpt", "olmo", "jais", "trillion", "mellum", "a.x-4.0"},
       {kGpt2}},
      // llama.cpp's "default" BPE split (missing or "default" pre).
      {{"default"},
       {R"([\p{P}\$\+<=>\^~\|]+)", kGpt2, R"(\p{N}+)", R"([0-9][0-9][0-9])"}},
      {{"llama-bpe", "llama3", "llama-v3", "dbrx", "smaug-bpe", "chatglm-bpe", "falcon3",
        "falcon-h1", "pixtral", "midm-2.0", "lfm2"},
       {kLlama3}},
      {{"qwen2", "stablelm2", "deepseek-r1-qwen", "megrez", "hunyuan", "grok-2", "kormo"},
       {kQwen2}},
      // The long class is Unicode's cased letters, spelled with escapes so that no editor's
      // normalization can turn U+1FD3 into U+0390 and put a range out of order.
      {{"deepseek-llm"},
       {R"([\r\n])",
        R"(\s?[)"
        R"(A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF})"
        R"(\x{1C4}-\x{293}\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377})"
        R"(\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1})"
        R"(\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556})"
        R"(\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA})"
        R"(\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A})"
        R"(\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D})"
        R"(\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D})"
        R"(\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4})"
        R"(\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC})"
        R"(\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113})"
        R"(\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D})"
        R"(\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E})"
        R"(\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE})"
        R"(\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F})"
        R"(\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06})"
        R"(\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F})"
        R"(\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2})"
        R"(\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}\x{1E900}-\x{1E943})"
        R"(]+)",
        R"(\s?[!-/:-~！-／：-～‘-‟　-。]+)", R"(\s+$)", kCjk, R"(\p{N}+)"}},
      {{"deepseek-coder"}, {R"([\r\n])", R"(\s?\p{L}+)", R"(\s?\p{P}+)", kCjk, R"(\p{N})"}},
      {{"deepseek-v3"},
       {R"(\p{N}{1,3})", R"([一-龥぀-ゟ゠-ヿ]+)",
        R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|)"
        R"([^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|)"
        R"(\s+(?!\S)|\s+)"}},
      {{"falcon"}, {R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2, R"([0-9][0-9][0-9])"}},
      {{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"},
       {R"(\p{N})", kGpt2}},
      {{"poro-chat", "bloom", "gpt3-finnish"}, {kBloom}},
      {{"viking"}, {kBloom, R"(\p{N})"}},
      {{"tekken"}, {kTekken}},
      {{"gpt-4o", "llama4"}, {kGpt4o}},
      {{"seed-coder"},
       {R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|)"
        R"([^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|)"
        R"(\s+)"}},
  };
  return kFamilies;
}

// Per-thread match state: PCRE2 match data and a JIT stack large enough for long whitespace
// runs (the default 32 KiB can run out on `\s+(?!\S)` backtracking).
struct MatchState {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;
  MatchState() {
    data = pcre2_match_data_create(1, nullptr);
    context = pcre2_match_context_create(nullptr);
    jit_stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
    if (jit_stack != nullptr) pcre2_jit_stack_assign(context, nullptr, jit_stack);
  }
  ~MatchState() {
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
};

MatchState& match_state() {
  thread_local MatchState state;
  return state;
}

}  // namespace

void append_utf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

int utf8_decode_one(std::string_view s, uint32_t* cp) {
  if (s.empty()) return 0;
  const auto b0 = static_cast<uint8_t>(s[0]);
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  size_t n;
  uint32_t v;
  uint32_t min;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2, v = b0 & 0x1F, min = 0x80;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3, v = b0 & 0x0F, min = 0x800;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4, v = b0 & 0x07, min = 0x10000;
  } else {
    return -1;
  }
  for (size_t i = 1; i < n; ++i) {
    if (i >= s.size()) {
      // Incomplete so far; a prefix that already names an overlong form or a surrogate can
      // never complete, so it is invalid now.
      return 0;
    }
    const auto b = static_cast<uint8_t>(s[i]);
    if ((b & 0xC0) != 0x80) return -1;
    v = (v << 6) | (b & 0x3F);
    if (i == 1) {
      // Reject overlongs and surrogates as early as the second byte decides them.
      if (n == 3 && b0 == 0xE0 && b < 0xA0) return -1;
      if (n == 3 && b0 == 0xED && b >= 0xA0) return -1;
      if (n == 4 && b0 == 0xF0 && b < 0x90) return -1;
      if (n == 4 && b0 == 0xF4 && b >= 0x90) return -1;
    }
  }
  if (v < min || v > 0x10FFFF) return -1;
  *cp = v;
  return static_cast<int>(n);
}

std::optional<std::vector<std::string>> PreTokenizer::patterns_for(std::string_view pre_name) {
  for (const PreFamily& family : families()) {
    for (const char* name : family.names) {
      if (pre_name == name) return std::vector<std::string>(family.patterns.begin(),
                                                            family.patterns.end());
    }
  }
  return std::nullopt;
}

std::vector<std::string> PreTokenizer::known_names() {
  std::vector<std::string> names;
  for (const PreFamily& family : families()) names.insert(names.end(), family.names.begin(),
                                                          family.names.end());
  return names;
}

Result<std::unique_ptr<PreTokenizer>> PreTokenizer::from_patterns(
    std::vector<std::string> patterns) {
  std::unique_ptr<PreTokenizer> pre(new PreTokenizer());
  for (const std::string& pattern : patterns) {
    int error_code = 0;
    PCRE2_SIZE error_offset = 0;
    // DOLLAR_ENDONLY: `$` means the end of the piece, never "before a final newline".
    pcre2_code* code = pcre2_compile(
        reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
        PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | PCRE2_DOLLAR_ENDONLY, &error_code,
        &error_offset, nullptr);
    if (code == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error_code, message, sizeof(message));
      return invalid_argument("pre-tokenizer regex '" + pattern + "' does not compile at " +
                              std::to_string(error_offset) + ": " +
                              reinterpret_cast<const char*>(message));
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter on failure
    pre->codes_.push_back(code);
  }
  pre->patterns_ = std::move(patterns);
  return pre;
}

PreTokenizer::~PreTokenizer() {
  for (void* code : codes_) pcre2_code_free(static_cast<pcre2_code*>(code));
}

std::vector<std::string_view> PreTokenizer::split(std::string_view text) const {
  std::vector<std::string_view> pieces;
  if (text.empty()) return pieces;
  pieces.push_back(text);
  for (size_t i = 0; i < codes_.size(); ++i) {
    std::vector<std::string_view> next;
    next.reserve(pieces.size() * 2);
    for (std::string_view piece : pieces) split_one(i, piece, next);
    pieces = std::move(next);
  }
  return pieces;
}

void PreTokenizer::split_one(size_t i_pattern, std::string_view piece,
                             std::vector<std::string_view>& out) const {
  auto* code = static_cast<const pcre2_code*>(codes_[i_pattern]);
  MatchState& state = match_state();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
  size_t start = 0;  // start of the text not yet emitted
  size_t offset = 0;
  while (offset < piece.size()) {
    int rc = pcre2_match(code, subject, piece.size(), offset, 0, state.data, state.context);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      rc = pcre2_match(code, subject, piece.size(), offset, PCRE2_NO_JIT, state.data,
                       state.context);
    }
    if (rc < 0) break;  // no further match (or a resource error: keep the rest whole)
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(state.data);
    const size_t m_begin = ov[0];
    const size_t m_end = ov[1];
    if (m_end <= m_begin) {
      // Empty match: step over one character and look again.
      offset = m_begin + utf8_sequence_length(static_cast<uint8_t>(piece[m_begin]));
      continue;
    }
    if (m_begin > start) out.push_back(piece.substr(start, m_begin - start));
    out.push_back(piece.substr(m_begin, m_end - m_begin));
    start = offset = m_end;
  }
  if (start < piece.size()) out.push_back(piece.substr(start));
}

}  // namespace frugal
