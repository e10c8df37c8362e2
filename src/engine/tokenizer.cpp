// Tokenizer: loading tokenizer.ggml.* metadata, special-token splitting, SentencePiece-style
// score merging with byte fallback, byte-level BPE rank merging, decoding and streaming.
// Behaviour reference: llama.cpp's llama-vocab (tests/test-tokenizer-0 fixtures must match).
#include "engine/tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <queue>

namespace frugal {

namespace {

// 0-15 for a hexadecimal digit (either case), -1 for anything else.
int hex_digit_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

constexpr std::string_view kSpmSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's space

// GPT-2's byte <-> printable-character table: printable Latin-1 bytes map to themselves, the
// other 68 bytes to U+0100.. in byte order, so every byte string becomes visible text.
struct ByteAlphabet {
  std::array<std::string, 256> byte_to_text;
  std::array<int16_t, 512> cp_to_byte;  // -1: not in the alphabet
  ByteAlphabet() {
    cp_to_byte.fill(-1);
    uint32_t next_extra = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const uint32_t cp = printable ? b : next_extra++;
      append_utf8(cp, byte_to_text[b]);
      cp_to_byte[cp] = static_cast<int16_t>(b);
    }
  }
};

const ByteAlphabet& byte_alphabet() {
  static const ByteAlphabet kAlphabet;
  return kAlphabet;
}

// Texts that end a turn in the common chat formats; present ones join the eog set. The last
// four are Qwen2.5-Coder's fill-in-the-middle pad, repository and file separators: its
// instruct models end an answer with them now and then, and llama.cpp stops there too.
constexpr std::string_view kEogTexts[] = {
    "<|eot_id|>",  "<|im_end|>",    "<|end|>",       "<end_of_turn>",          "<|endoftext|>",
    "<|eom_id|>",  "<EOT>",         "_<EOT>",        "<｜end▁of▁sentence｜>", "<|end_of_text|>",
    "<|fim_pad|>", "<|repo_name|>", "<|fim_repo|>",  "<|file_sep|>",
};

Result<const std::vector<std::string>*> get_string_array(const Tokenizer::MetadataLookup& find,
                                                         std::string_view key) {
  const GgufValue* v = find(key);
  if (v == nullptr) return not_found(std::string(key) + " is missing");
  const auto* arr = v->as_string_array();
  if (arr == nullptr) return corrupt(std::string(key) + " is not an array of strings");
  return arr;
}

// Optional scalar token id: nullopt when absent or "none" (-1 / UINT32_MAX, as some
// converters write); error when present but not an integer or out of range.
Result<std::optional<int32_t>> get_token_id(const Tokenizer::MetadataLookup& find,
                                            std::string_view key, size_t n_vocab) {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::optional<int32_t>();
  const auto i = v->as_int();
  if (!i) return corrupt(std::string(key) + " is not an integer");
  if (*i == -1 || *i == 0xFFFFFFFFLL) return std::optional<int32_t>();
  if (*i < 0 || *i >= static_cast<int64_t>(n_vocab)) {
    return corrupt(std::string(key) + " = " + std::to_string(*i) + " is outside the vocabulary (" +
                   std::to_string(n_vocab) + " tokens)");
  }
  return std::optional<int32_t>(static_cast<int32_t>(*i));
}

Result<std::optional<bool>> get_flag(const Tokenizer::MetadataLookup& find, std::string_view key) {
  const GgufValue* v = find(key);
  if (v == nullptr) return std::optional<bool>();
  const auto b = v->as_bool();
  if (!b) return corrupt(std::string(key) + " is not a bool");
  return std::optional<bool>(*b);
}

// Appends the UTF-8 encoding of U+FFFD.
void append_replacement(std::string& out) { out += "\xEF\xBF\xBD"; }

}  // namespace

// ---------------------------------------------------------------------------------------------
// Loading

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_gguf(const GgufFile& gguf) {
  return from_metadata([&gguf](std::string_view key) { return gguf.find(key); });
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_metadata(const MetadataLookup& find) {
  std::unique_ptr<Tokenizer> tok(new Tokenizer());

  const GgufValue* model_value = find("tokenizer.ggml.model");
  if (model_value == nullptr) return not_found("tokenizer.ggml.model is missing (no vocabulary)");
  if (model_value->as_string() == nullptr) return corrupt("tokenizer.ggml.model is not a string");
  const std::string& model = *model_value->as_string();
  if (model == "llama") {
    tok->kind_ = TokenizerKind::kSpm;
  } else if (model == "gpt2") {
    tok->kind_ = TokenizerKind::kBpe;
  } else {
    return unsupported("tokenizer model '" + model +
                       "' is not supported (supported: llama, gpt2)");
  }

  FRUGAL_ASSIGN_OR_RETURN(const std::vector<std::string>* tokens,
                          get_string_array(find, "tokenizer.ggml.tokens"));
  const size_t n = tokens->size();
  if (n == 0) return corrupt("tokenizer.ggml.tokens is empty");
  if (n > static_cast<size_t>(INT32_MAX)) return corrupt("tokenizer.ggml.tokens is too large");
  tok->texts_ = *tokens;

  tok->scores_.assign(n, 0.0f);
  if (const GgufValue* v = find("tokenizer.ggml.scores")) {
    const auto* scores = v->as_float_array();
    if (scores == nullptr) return corrupt("tokenizer.ggml.scores is not an array of floats");
    if (scores->size() != n) {
      return corrupt("tokenizer.ggml.scores has " + std::to_string(scores->size()) +
                     " entries for " + std::to_string(n) + " tokens");
    }
    for (size_t i = 0; i < n; ++i) tok->scores_[i] = static_cast<float>((*scores)[i]);
  }

  tok->types_.assign(n, TokenType::kNormal);
  if (const GgufValue* v = find("tokenizer.ggml.token_type")) {
    const auto* types = v->as_int_array();
    if (types == nullptr) return corrupt("tokenizer.ggml.token_type is not an array of integers");
    if (types->size() != n) {
      return corrupt("tokenizer.ggml.token_type has " + std::to_string(types->size()) +
                     " entries for " + std::to_string(n) + " tokens");
    }
    for (size_t i = 0; i < n; ++i) {
      const int64_t t = (*types)[i];
      if (t < 0 || t > 6) {
        return corrupt("tokenizer.ggml.token_type[" + std::to_string(i) + "] = " +
                       std::to_string(t) + " is not a token type (0..6)");
      }
      tok->types_[i] = static_cast<TokenType>(t);
    }
  }

  tok->text_to_id_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    // On duplicate texts the last id wins, as in llama.cpp.
    tok->text_to_id_.insert_or_assign(tok->texts_[i], static_cast<int32_t>(i));
  }

  // Special token ids and flags.
  struct IdKey {
    const char* key;
    int32_t* field;
  };
  const IdKey id_keys[] = {
      {"tokenizer.ggml.bos_token_id", &tok->bos_id_},
      {"tokenizer.ggml.eos_token_id", &tok->eos_id_},
      {"tokenizer.ggml.eot_token_id", &tok->eot_id_},
      {"tokenizer.ggml.unknown_token_id", &tok->unk_id_},
      {"tokenizer.ggml.padding_token_id", &tok->pad_id_},
  };
  const bool spm = tok->kind_ == TokenizerKind::kSpm;
  for (const IdKey& k : id_keys) {
    FRUGAL_ASSIGN_OR_RETURN(std::optional<int32_t> id, get_token_id(find, k.key, n));
    if (id) *k.field = *id;
  }
  if (spm) {
    // SentencePiece's conventional ids when the file does not say.
    if (find("tokenizer.ggml.bos_token_id") == nullptr && n > 1) tok->bos_id_ = 1;
    if (find("tokenizer.ggml.eos_token_id") == nullptr && n > 2) tok->eos_id_ = 2;
    if (find("tokenizer.ggml.unknown_token_id") == nullptr) tok->unk_id_ = 0;
  }
  FRUGAL_ASSIGN_OR_RETURN(std::optional<int32_t> eom_id,
                          get_token_id(find, "tokenizer.ggml.eom_token_id", n));

  const GgufValue* pre_value = find("tokenizer.ggml.pre");
  if (pre_value != nullptr && pre_value->as_string() == nullptr) {
    return corrupt("tokenizer.ggml.pre is not a string");
  }
  tok->pre_name_ = pre_value != nullptr ? *pre_value->as_string() : "default";

  bool default_add_bos = spm;
  if (!spm) {
    const std::string& pre = tok->pre_name_;
    if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3" || pre == "tekken" ||
        pre == "falcon3" || pre == "pixtral" || pre == "chameleon") {
      default_add_bos = true;
      tok->ignore_merges_ = pre != "chameleon";
    }
  }
  FRUGAL_ASSIGN_OR_RETURN(std::optional<bool> add_bos,
                          get_flag(find, "tokenizer.ggml.add_bos_token"));
  FRUGAL_ASSIGN_OR_RETURN(std::optional<bool> add_eos,
                          get_flag(find, "tokenizer.ggml.add_eos_token"));
  FRUGAL_ASSIGN_OR_RETURN(std::optional<bool> add_space,
                          get_flag(find, "tokenizer.ggml.add_space_prefix"));
  tok->add_bos_ = add_bos.value_or(default_add_bos) && tok->bos_id_ >= 0;
  tok->add_eos_ = add_eos.value_or(false) && tok->eos_id_ >= 0;
  tok->add_space_prefix_ = spm && add_space.value_or(true);

  // Byte tokens.
  tok->byte_token_.fill(-1);
  for (int b = 0; b < 256; ++b) {
    if (spm) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      tok->byte_token_[b] = tok->find_id(name);
      if (tok->byte_token_[b] < 0) tok->byte_token_[b] = tok->find_id(std::string(1, char(b)));
    } else {
      tok->byte_token_[b] = tok->find_id(byte_alphabet().byte_to_text[b]);
    }
  }

  // BPE merges and the pre-tokenizer.
  if (!spm) {
    FRUGAL_ASSIGN_OR_RETURN(const std::vector<std::string>* merges,
                            get_string_array(find, "tokenizer.ggml.merges"));
    tok->merges_.reserve(merges->size());
    std::string merged;
    for (size_t rank = 0; rank < merges->size(); ++rank) {
      const std::string& m = (*merges)[rank];
      const size_t space = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
      if (space == std::string::npos) {
        return corrupt("tokenizer.ggml.merges[" + std::to_string(rank) + "] = '" + m +
                       "' is not two tokens separated by a space");
      }
      const std::string_view left = std::string_view(m).substr(0, space);
      const std::string_view right = std::string_view(m).substr(space + 1);
      merged.assign(left);
      merged.append(right);
      const int32_t l = tok->find_id(left);
      const int32_t r = tok->find_id(right);
      const int32_t res = tok->find_id(merged);
      if (l < 0 || r < 0 || res < 0) {
        return corrupt("tokenizer.ggml.merges[" + std::to_string(rank) + "] = '" + m +
                       "' names a token that is not in the vocabulary");
      }
      const uint64_t key = (static_cast<uint64_t>(l) << 32) | static_cast<uint32_t>(r);
      tok->merges_.emplace(key, MergeResult{static_cast<int32_t>(rank), res});  // first wins
    }
    auto patterns = PreTokenizer::patterns_for(tok->pre_name_);
    if (!patterns) {
      std::fprintf(stderr,
                   "frugal: warning: unknown pre-tokenizer '%s'; using gpt-2's split, so "
                   "token ids may differ from the model's own tokenizer\n",
                   tok->pre_name_.c_str());
      patterns = PreTokenizer::patterns_for("gpt-2");
    }
    FRUGAL_ASSIGN_OR_RETURN(tok->pre_, PreTokenizer::from_patterns(std::move(*patterns)));
  }

  // Special tokens matched in raw text, longest first (ties: lower id first).
  for (size_t i = 0; i < n; ++i) {
    const TokenType t = tok->types_[i];
    if ((t == TokenType::kControl || t == TokenType::kUserDefined || t == TokenType::kUnknown) &&
        !tok->texts_[i].empty()) {
      tok->special_by_length_.push_back(static_cast<int32_t>(i));
    }
  }
  std::stable_sort(tok->special_by_length_.begin(), tok->special_by_length_.end(),
                   [&](int32_t a, int32_t b) {
                     return tok->texts_[a].size() > tok->texts_[b].size();
                   });

  // End-of-generation set.
  auto add_eog = [&](int32_t id) {
    if (id >= 0 && std::find(tok->eog_ids_.begin(), tok->eog_ids_.end(), id) ==
                       tok->eog_ids_.end()) {
      tok->eog_ids_.push_back(id);
    }
  };
  add_eog(tok->eos_id_);
  add_eog(tok->eot_id_);
  if (eom_id) add_eog(*eom_id);
  for (std::string_view text : kEogTexts) {
    const int32_t id = tok->find_id(text);
    if (id >= 0 && tok->types_[id] != TokenType::kNormal) add_eog(id);
  }
  if (tok->eot_id_ < 0) {
    for (std::string_view text : {"<|eot_id|>", "<|im_end|>", "<end_of_turn>", "<|end|>"}) {
      const int32_t id = tok->find_id(text);
      if (id >= 0 && tok->types_[id] != TokenType::kNormal) {
        tok->eot_id_ = id;
        break;
      }
    }
  }
  return tok;
}

int32_t Tokenizer::find_id(std::string_view text) const {
  auto it = text_to_id_.find(text);
  return it == text_to_id_.end() ? -1 : it->second;
}

std::optional<int32_t> Tokenizer::token_id(std::string_view text) const {
  const int32_t id = find_id(text);
  if (id < 0) return std::nullopt;
  return id;
}

const std::string& Tokenizer::token_text(int32_t id) const {
  CHECK(id >= 0 && id < n_vocab(), "token id %d outside the vocabulary (%d)", id, n_vocab());
  return texts_[id];
}

TokenType Tokenizer::token_type(int32_t id) const {
  CHECK(id >= 0 && id < n_vocab(), "token id %d outside the vocabulary (%d)", id, n_vocab());
  return types_[id];
}

bool Tokenizer::is_eog(int32_t id) const {
  return id >= 0 && std::find(eog_ids_.begin(), eog_ids_.end(), id) != eog_ids_.end();
}

// ---------------------------------------------------------------------------------------------
// Encoding

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special,
                                       bool parse_special) const {
  // Split the text on special tokens: each token, longest first, cuts every remaining raw
  // span at each of its occurrences (left to right), as llama.cpp's partition does.
  struct Fragment {
    int32_t id;  // -1: raw text [begin, end)
    size_t begin;
    size_t end;
  };
  std::vector<Fragment> fragments;
  if (!text.empty()) fragments.push_back({-1, 0, text.size()});
  std::vector<Fragment> next;
  for (int32_t id : special_by_length_) {
    const TokenType type = types_[id];
    if (!parse_special && type != TokenType::kUserDefined) continue;
    const std::string& special = texts_[id];
    if (text.find(special) == std::string_view::npos) continue;
    next.clear();
    for (const Fragment& f : fragments) {
      if (f.id >= 0) {
        next.push_back(f);
        continue;
      }
      size_t pos = f.begin;
      while (pos < f.end) {
        const size_t hit = text.substr(pos, f.end - pos).find(special);
        if (hit == std::string_view::npos) break;
        if (hit > 0) next.push_back({-1, pos, pos + hit});
        next.push_back({id, 0, 0});
        pos += hit + special.size();
      }
      if (pos < f.end) next.push_back({-1, pos, f.end});
    }
    fragments.swap(next);
  }

  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special && add_bos_) out.push_back(bos_id_);
  bool prev_special = true;  // SPM: a space prefix goes before text at the start or after a token
  for (const Fragment& f : fragments) {
    if (f.id >= 0) {
      out.push_back(f.id);
      prev_special = true;
      continue;
    }
    const std::string_view raw = text.substr(f.begin, f.end - f.begin);
    if (kind_ == TokenizerKind::kSpm) {
      std::string escaped;
      escaped.reserve(raw.size() + 8);
      if (add_space_prefix_ && prev_special) escaped += kSpmSpace;
      for (char c : raw) {
        if (c == ' ') {
          escaped += kSpmSpace;
        } else {
          escaped.push_back(c);
        }
      }
      encode_spm_text(escaped, out);
    } else {
      encode_bpe_text(raw, out);
    }
    prev_special = false;
  }
  if (add_special && add_eos_) out.push_back(eos_id_);
  return out;
}

void Tokenizer::append_byte_tokens(std::string_view bytes, std::vector<int32_t>& out) const {
  for (char c : bytes) {
    const int32_t id = byte_token_[static_cast<uint8_t>(c)];
    if (id >= 0) {
      out.push_back(id);
    } else if (unk_id_ >= 0) {
      out.push_back(unk_id_);
    }
  }
}

// SentencePiece (BPE-with-scores): start from UTF-8 characters, repeatedly merge the adjacent
// pair whose concatenation is the highest-scoring token (leftmost on ties); characters that are
// no token fall back to <0xXX> byte tokens.
void Tokenizer::encode_spm_text(std::string_view text, std::vector<int32_t>& out) const {
  struct Symbol {
    size_t begin;
    size_t len;  // 0: merged into its left neighbour
    int prev;
    int next;
  };
  struct Bigram {
    float score;
    int left;
    int right;
    size_t len;
  };
  struct Lower {
    bool operator()(const Bigram& a, const Bigram& b) const {
      return a.score < b.score || (a.score == b.score && a.left > b.left);
    }
  };
  std::vector<Symbol> symbols;
  symbols.reserve(text.size());
  for (size_t offset = 0; offset < text.size();) {
    // One symbol per character; each byte of invalid UTF-8 is a symbol of its own (llama.cpp
    // would let a broken lead byte swallow the next character's first byte).
    uint32_t cp = 0;
    const int n = utf8_decode_one(text.substr(offset), &cp);
    const size_t len = n > 0 ? static_cast<size_t>(n) : 1;
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({offset, len, index - 1, offset + len == text.size() ? -1 : index + 1});
    offset += len;
  }
  std::priority_queue<Bigram, std::vector<Bigram>, Lower> queue;
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const size_t len = symbols[left].len + symbols[right].len;
    const int32_t id = find_id(text.substr(symbols[left].begin, len));
    if (id < 0) return;
    queue.push({scores_[id], left, right, len});
  };
  for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Bigram bigram = queue.top();
    queue.pop();
    Symbol& left = symbols[bigram.left];
    Symbol& right = symbols[bigram.right];
    // Stale: one side was merged away or grew since this pair was queued.
    if (left.len == 0 || right.len == 0 || left.len + right.len != bigram.len) continue;
    left.len += right.len;
    right.len = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = bigram.left;
    try_add(left.prev, bigram.left);
    try_add(bigram.left, left.next);
  }

  for (int i = symbols.empty() ? -1 : 0; i >= 0; i = symbols[i].next) {
    const std::string_view piece = text.substr(symbols[i].begin, symbols[i].len);
    const int32_t id = find_id(piece);
    if (id >= 0) {
      out.push_back(id);
    } else {
      append_byte_tokens(piece, out);
    }
  }
}

void Tokenizer::encode_bpe_text(std::string_view text, std::vector<int32_t>& out) const {
  const ByteAlphabet& alphabet = byte_alphabet();
  std::string encoded;
  for (std::string_view word : pre_->split(text)) {
    encoded.clear();
    for (char c : word) encoded += alphabet.byte_to_text[static_cast<uint8_t>(c)];
    encode_bpe_word(encoded, out);
  }
}

// Byte-level BPE on one pre-tokenized word (already in the byte alphabet): repeatedly apply
// the lowest-ranked merge among adjacent pairs, leftmost first on ties.
void Tokenizer::encode_bpe_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    const int32_t id = find_id(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  struct Symbol {
    size_t begin;
    size_t len;  // 0: merged away
    int32_t id;  // -1: a character that is no token
    int prev;
    int next;
  };
  struct Bigram {
    int32_t rank;
    int left;
    int right;
    int32_t left_id;
    int32_t right_id;
    int32_t merged_id;
  };
  struct Later {
    bool operator()(const Bigram& a, const Bigram& b) const {
      return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
    }
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  for (size_t offset = 0; offset < word.size();) {
    const size_t len =
        std::min(word.size() - offset, utf8_sequence_length(static_cast<uint8_t>(word[offset])));
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({offset, len, find_id(word.substr(offset, len)), index - 1,
                       offset + len == word.size() ? -1 : index + 1});
    offset += len;
  }
  std::priority_queue<Bigram, std::vector<Bigram>, Later> queue;
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const int32_t l = symbols[left].id;
    const int32_t r = symbols[right].id;
    if (l < 0 || r < 0) return;
    auto it = merges_.find((static_cast<uint64_t>(l) << 32) | static_cast<uint32_t>(r));
    if (it == merges_.end()) return;
    queue.push({it->second.rank, left, right, l, r, it->second.id});
  };
  for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Bigram bigram = queue.top();
    queue.pop();
    Symbol& left = symbols[bigram.left];
    Symbol& right = symbols[bigram.right];
    if (left.len == 0 || right.len == 0 || left.next != bigram.right ||
        left.id != bigram.left_id || right.id != bigram.right_id) {
      continue;  // stale
    }
    left.len += right.len;
    left.id = bigram.merged_id;
    right.len = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = bigram.left;
    try_add(left.prev, bigram.left);
    try_add(bigram.left, left.next);
  }

  for (int i = 0; i >= 0; i = symbols[i].next) {
    const Symbol& s = symbols[i];
    if (s.id >= 0) {
      out.push_back(s.id);
    } else if (unk_id_ >= 0) {
      out.push_back(unk_id_);  // an alphabet character missing from the vocabulary
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Decoding

std::string Tokenizer::token_to_piece(int32_t id, bool render_special) const {
  if (id < 0 || id >= n_vocab()) return {};
  const std::string& text = texts_[id];
  switch (types_[id]) {
    case TokenType::kControl:
    case TokenType::kUnused:
      return render_special ? text : std::string();
    case TokenType::kUnknown:
      if (render_special) return text;
      return kind_ == TokenizerKind::kSpm ? std::string("\xE2\x96\x85") : std::string();
    case TokenType::kUserDefined:
      return text;
    case TokenType::kByte:
      // "<0xHH>" is the byte 0xHH; any other text (a malformed file's "<0xZZ>") is shown as
      // written rather than guessed at.
      if (text.size() == 6 && text.compare(0, 3, "<0x") == 0 && text[5] == '>') {
        const int hi = hex_digit_value(text[3]), lo = hex_digit_value(text[4]);
        if (hi >= 0 && lo >= 0) return std::string(1, static_cast<char>(hi * 16 + lo));
      }
      return text;
    case TokenType::kNormal:
    case TokenType::kUndefined:
      break;
  }
  std::string piece;
  piece.reserve(text.size());
  if (kind_ == TokenizerKind::kSpm) {
    for (size_t i = 0; i < text.size();) {
      if (text.compare(i, kSpmSpace.size(), kSpmSpace) == 0) {
        piece.push_back(' ');
        i += kSpmSpace.size();
      } else {
        piece.push_back(text[i++]);
      }
    }
    return piece;
  }
  const ByteAlphabet& alphabet = byte_alphabet();
  for (size_t i = 0; i < text.size();) {
    uint32_t cp = 0;
    const int n = utf8_decode_one(std::string_view(text).substr(i), &cp);
    if (n > 0 && cp < alphabet.cp_to_byte.size() && alphabet.cp_to_byte[cp] >= 0) {
      piece.push_back(static_cast<char>(alphabet.cp_to_byte[cp]));
      i += n;
    } else {
      // Not a byte-alphabet character: keep the text as it is.
      const size_t len = n > 0 ? static_cast<size_t>(n) : 1;
      piece.append(text, i, len);
      i += len;
    }
  }
  return piece;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool render_special) const {
  std::string text;
  for (size_t i = 0; i < ids.size(); ++i) {
    std::string piece = token_to_piece(ids[i], render_special);
    if (i == 0 && kind_ == TokenizerKind::kSpm && add_space_prefix_ && !piece.empty() &&
        piece[0] == ' ') {
      piece.erase(0, 1);
    }
    text += piece;
  }
  return text;
}

StreamingDetokenizer::StreamingDetokenizer(const Tokenizer& tokenizer, bool at_sequence_start,
                                           bool render_special)
    : tokenizer_(tokenizer),
      strip_space_(at_sequence_start && tokenizer.kind() == TokenizerKind::kSpm &&
                   tokenizer.add_space_prefix()),
      render_special_(render_special) {}

std::string StreamingDetokenizer::push(int32_t id) {
  std::string piece = tokenizer_.token_to_piece(id, render_special_);
  if (strip_space_ && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
  strip_space_ = false;  // only the sequence's first token loses its space, as in decode()
  pending_ += piece;

  std::string out;
  size_t i = 0;
  while (i < pending_.size()) {
    uint32_t cp = 0;
    const int n = utf8_decode_one(std::string_view(pending_).substr(i), &cp);
    if (n > 0) {
      out.append(pending_, i, n);
      i += n;
    } else if (n < 0) {
      append_replacement(out);
      ++i;
    } else {
      break;  // an incomplete character at the end: wait for the next token
    }
  }
  pending_.erase(0, i);
  return out;
}

std::string StreamingDetokenizer::flush() {
  std::string out;
  if (!pending_.empty()) append_replacement(out);  // one incomplete character
  pending_.clear();
  return out;
}

}  // namespace frugal
