// libFuzzer target over the tokenizers: any bytes, encoded by the SentencePiece and the two
// byte-level BPE fixture vocabularies, with and without special-token parsing, give ids in
// range, never a crash; without special parsing, decode gives valid UTF-8 text back exactly.
// (Invalid bytes need not round-trip: deepseek-llm reuses the byte-level symbols of bytes that
// never occur in UTF-8, such as 0xFA, for user-defined tokens; and SentencePiece writes spaces
// as U+2581, so text that already holds U+2581 comes back with spaces there.)
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/gguf.h"
#include "engine/tokenizer.h"

namespace {

struct Vocab {
  std::unique_ptr<frugal::GgufFile> file;
  std::unique_ptr<frugal::Tokenizer> tok;
};

std::vector<Vocab>& vocabs() {
  static std::vector<Vocab> v = [] {
    std::vector<Vocab> out;
    for (const char* name : {"llama-spm.gguf", "gpt-2.gguf", "deepseek-llm.gguf"}) {
      const std::string path = std::string(FRUGAL_FIXTURES) + "/" + name;
      auto f = frugal::GgufFile::open(path);
      if (!f.is_ok()) std::abort();
      auto t = frugal::Tokenizer::from_gguf(**f);
      if (!t.is_ok()) std::abort();
      out.push_back({std::move(f).value(), std::move(t).value()});
    }
    return out;
  }();
  return v;
}

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    uint32_t cp = len == 1 ? c : c & (0x7F >> len);
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<uint8_t>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const bool round_trip = valid_utf8(text);
  for (const Vocab& v : vocabs()) {
    for (bool parse_special : {false, true}) {
      const std::vector<int32_t> ids = v.tok->encode(text, parse_special, parse_special);
      for (int32_t id : ids) {
        if (id < 0 || id >= v.tok->n_vocab()) std::abort();
      }
      const bool spm_ambiguous = v.tok->kind() == frugal::TokenizerKind::kSpm &&
                                 text.find("\xE2\x96\x81") != std::string_view::npos;
      if (!parse_special && round_trip && !spm_ambiguous && v.tok->decode(ids) != text)
        std::abort();
      frugal::StreamingDetokenizer detok(*v.tok, false);
      for (int32_t id : ids) (void)detok.push(id);
      (void)detok.flush();
    }
  }
  return 0;
}
