// llama2.c checkpoints and tokenizers (Karpathy's run.c format) and their conversion to GGUF llama.
// Layout reference: llama2.c run.c, memory_map_weights / build_tokenizer (read, not copied).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "util/status.h"

namespace frugal {

// The checkpoint header: 7 int32 values; a negative vocab_size means "classifier not shared".
struct Llama2cConfig {
  int32_t dim = 0;         // n_embd
  int32_t hidden_dim = 0;  // n_ff
  int32_t n_layers = 0;
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;
  int32_t vocab_size = 0;  // always positive here
  int32_t seq_len = 0;     // n_ctx
  bool shared_classifier = true;  // output.weight is token_embd.weight

  int32_t head_size() const { return dim / n_heads; }
  int32_t kv_dim() const { return head_size() * n_kv_heads; }
  // Float count of everything after the header, as the layout requires (no overflow: the
  // header was validated by parse_llama2c_header).
  int64_t n_weight_floats() const;
};

// Parses and validates the header of a checkpoint of `file_size` bytes starting at `data`.
// Errors: kCorrupt naming the field (non-positive or inconsistent sizes, head_size odd,
// file size not matching the header's layout, truncated header).
Result<Llama2cConfig> parse_llama2c_header(const uint8_t* data, size_t file_size);

// A llama2.c tokenizer file: int32 max_token_length, then per token float32 score, int32 byte
// length, bytes. Tokens are as stored (spaces, not U+2581; "\n<s>\n" for BOS).
struct Llama2cVocab {
  int32_t max_token_length = 0;
  std::vector<std::string> tokens;  // [vocab_size]
  std::vector<float> scores;        // [vocab_size]
};

// Reads exactly `vocab_size` tokens from `path`. Errors: kNotFound, kIo, kCorrupt (truncated,
// negative length, bytes left over after the last token).
Result<Llama2cVocab> read_llama2c_tokenizer(const std::string& path, int32_t vocab_size);

// The SentencePiece form GGUF expects: spaces back to U+2581, control tokens without the
// newlines llama2.c wraps them in. Returns GGUF token types alongside (tokenizer.ggml.token_type).
void llama2c_vocab_to_gguf(const Llama2cVocab& vocab, std::vector<std::string>* tokens,
                           std::vector<int32_t>* token_types);

// Writes `out_path` as a GGUF llama model (all tensors F32) from a checkpoint and tokenizer.
// `model_name` goes to general.name (empty: the checkpoint's file stem). The checkpoint is
// memory-mapped and streamed, so memory stays small. Errors as the parsers above, kIo on write.
Status convert_llama2c(const std::string& checkpoint_path, const std::string& tokenizer_path,
                       const std::string& out_path, const std::string& model_name = "");

}  // namespace frugal
