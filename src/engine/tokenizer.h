// Tokenizer: text <-> token ids for GGUF vocabularies (SentencePiece-style "llama" and
// byte-level BPE "gpt2"), matching llama.cpp's tokenization id for id; and a streaming
// detokenizer that only ever hands out complete UTF-8.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/gguf.h"
#include "engine/pretokenizer.h"
#include "util/status.h"

namespace frugal {

// tokenizer.ggml.token_type values.
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

enum class TokenizerKind { kSpm, kBpe };

class Tokenizer {
 public:
  // Reads tokenizer.ggml.* metadata. Errors: kNotFound (no tokens / model), kUnsupported (a
  // model other than "llama" or "gpt2"), kCorrupt (mismatched array lengths, a merge naming
  // unknown tokens, special token ids out of range, wrong value types).
  static Result<std::unique_ptr<Tokenizer>> from_gguf(const GgufFile& gguf);
  // Same, from any key -> value lookup (nullptr for a missing key); from_gguf uses it.
  using MetadataLookup = std::function<const GgufValue*(std::string_view key)>;
  static Result<std::unique_ptr<Tokenizer>> from_metadata(const MetadataLookup& find);

  // Text -> ids. add_special: BOS/EOS as the metadata says (add_bos_token, add_eos_token).
  // parse_special: control tokens' text ("<|im_end|>") becomes those tokens; user-defined
  // tokens are always matched, as llama.cpp does. Any byte string is accepted.
  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const;

  // The bytes a token stands for: control and unused tokens give "" unless render_special,
  // which gives their text. Out-of-range ids give "".
  std::string token_to_piece(int32_t id) const { return token_to_piece(id, false); }
  std::string token_to_piece(int32_t id, bool render_special) const;
  // Concatenated pieces, with SPM's leading space (from the space prefix) dropped from the
  // first token as llama.cpp does. Raw bytes: may be invalid UTF-8 if the ids are.
  std::string decode(const std::vector<int32_t>& ids) const { return decode(ids, false); }
  std::string decode(const std::vector<int32_t>& ids, bool render_special) const;

  int32_t n_vocab() const { return static_cast<int32_t>(texts_.size()); }
  int32_t bos_id() const { return bos_id_; }  // -1 when absent
  int32_t eos_id() const { return eos_id_; }  // -1 when absent
  int32_t eot_id() const { return eot_id_; }  // -1 when absent
  int32_t unk_id() const { return unk_id_; }  // -1 when absent
  int32_t pad_id() const { return pad_id_; }  // -1 when absent
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  bool add_space_prefix() const { return add_space_prefix_; }
  TokenizerKind kind() const { return kind_; }
  const std::string& pre_name() const { return pre_name_; }
  // End of generation: eos, eot, eom and the usual end-of-turn tokens present in the vocab.
  bool is_eog(int32_t id) const;
  const std::vector<int32_t>& eog_ids() const { return eog_ids_; }

  // The id whose text is exactly `text` (vocabulary form: "▁the", "Ġthe", "<|im_end|>").
  std::optional<int32_t> token_id(std::string_view text) const;
  // Vocabulary text of `id`; CHECKs that id is in range.
  const std::string& token_text(int32_t id) const;
  TokenType token_type(int32_t id) const;

 private:
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using TextMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;
  struct MergeResult {
    int32_t rank;
    int32_t id;
  };

  Tokenizer() = default;
  int32_t find_id(std::string_view text) const;  // -1 when absent
  void encode_spm_text(std::string_view text, std::vector<int32_t>& out) const;
  void encode_bpe_text(std::string_view text, std::vector<int32_t>& out) const;
  void encode_bpe_word(std::string_view word, std::vector<int32_t>& out) const;
  void append_byte_tokens(std::string_view bytes, std::vector<int32_t>& out) const;

  TokenizerKind kind_ = TokenizerKind::kSpm;
  std::string pre_name_;
  std::vector<std::string> texts_;
  std::vector<float> scores_;
  std::vector<TokenType> types_;
  TextMap text_to_id_;
  // BPE: (left id << 32 | right id) -> rank and merged id.
  std::unordered_map<uint64_t, MergeResult> merges_;
  std::unique_ptr<PreTokenizer> pre_;
  // Control / user-defined / unknown tokens, longest text first, for splitting raw text.
  std::vector<int32_t> special_by_length_;
  // SPM: the <0xXX> token per byte; BPE: the token of the byte's alphabet character. -1: none.
  std::array<int32_t, 256> byte_token_{};
  std::vector<int32_t> eog_ids_;

  int32_t bos_id_ = -1;
  int32_t eos_id_ = -1;
  int32_t eot_id_ = -1;
  int32_t unk_id_ = -1;
  int32_t pad_id_ = -1;
  bool add_bos_ = false;
  bool add_eos_ = false;
  bool add_space_prefix_ = false;
  bool ignore_merges_ = false;  // Llama 3: a word that is a token is emitted without merging
};

// Turns ids into text one at a time: returns only complete UTF-8 characters, holding back a
// multibyte character split across tokens; bytes that can never form a character come out as
// U+FFFD. `at_sequence_start`: the first token begins the sequence, so SPM's leading space is
// dropped as decode() does; pass false when continuing after a prompt.
class StreamingDetokenizer {
 public:
  explicit StreamingDetokenizer(const Tokenizer& tokenizer, bool at_sequence_start = true,
                                bool render_special = false);
  std::string push(int32_t id);
  // Whatever is still held back, with incomplete sequences as U+FFFD; resets the state.
  std::string flush();

 private:
  const Tokenizer& tokenizer_;
  bool strip_space_;
  bool render_special_;
  std::string pending_;  // bytes of an incomplete UTF-8 sequence
};

}  // namespace frugal
