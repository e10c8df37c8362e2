// PreTokenizer: splits text into words with the regex cascade a BPE vocabulary was trained with
// (tokenizer.ggml.pre), plus the small UTF-8 helpers the tokenizer shares.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace frugal {

// Length of the UTF-8 sequence that `lead` starts (1 for ASCII, stray continuation bytes and
// invalid lead bytes, so that any byte string can be walked without getting stuck).
inline size_t utf8_sequence_length(uint8_t lead) {
  if (lead < 0xC0) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  if (lead < 0xF8) return 4;
  return 1;
}

// Appends the UTF-8 encoding of `cp` (no validation beyond the 4-byte range).
void append_utf8(uint32_t cp, std::string& out);

// Decodes one complete, well-formed UTF-8 sequence at the start of `s`; returns its length,
// 0 when `s` starts with an incomplete but so far valid prefix, -1 when the first byte cannot
// start a valid sequence (then exactly one byte should be treated as invalid).
int utf8_decode_one(std::string_view s, uint32_t* cp);

class PreTokenizer {
 public:
  // The regexes for a tokenizer.ggml.pre name ("gpt-2", "llama-bpe", "qwen2", ...), applied one
  // after another: each splits every piece the previous one produced, and the text between
  // matches stays a piece of its own. nullopt for a name this build does not know.
  static std::optional<std::vector<std::string>> patterns_for(std::string_view pre_name);
  // Names patterns_for() knows, for messages and tests.
  static std::vector<std::string> known_names();

  // Compiles `patterns` (PCRE2, UTF + UCP, JIT when available). Errors: kInvalidArgument with
  // the pattern and PCRE2's message.
  static Result<std::unique_ptr<PreTokenizer>> from_patterns(std::vector<std::string> patterns);

  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  // Splits `text` into words whose concatenation is `text`; views point into `text`.
  // Thread-safe. Invalid UTF-8 never matches a pattern, so it ends up in pieces of its own.
  std::vector<std::string_view> split(std::string_view text) const;

  const std::vector<std::string>& patterns() const { return patterns_; }

 private:
  PreTokenizer() = default;
  void split_one(size_t i_pattern, std::string_view piece, std::vector<std::string_view>& out)
      const;

  std::vector<std::string> patterns_;
  std::vector<void*> codes_;  // pcre2_code_8*, one per pattern
};

}  // namespace frugal
