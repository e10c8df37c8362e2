// llama2.c checkpoint/tokenizer parsing and conversion to a standard GGUF llama file.
#include "engine/llama2c.h"

#include <cctype>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>

#include "engine/gguf_writer.h"
#include "kernels/ggml_type.h"
#include "util/mmap_file.h"

namespace frugal {

namespace {

constexpr size_t kHeaderBytes = 7 * sizeof(int32_t);
// GGUF tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
constexpr int32_t kTokenNormal = 1;
constexpr int32_t kTokenUnknown = 2;
constexpr int32_t kTokenControl = 3;
constexpr int32_t kTokenByte = 6;
const char kSpaceMarker[] = "\xe2\x96\x81";  // U+2581, SentencePiece's visible space

bool is_byte_token(const std::string& t) {
  return t.size() == 6 && t.compare(0, 3, "<0x") == 0 && std::isxdigit((unsigned char)t[3]) &&
         std::isxdigit((unsigned char)t[4]) && t[5] == '>';
}

// Sizes of the weight blocks in file order, in floats. Shapes are row-major as llama2.c
// stores them.
struct Block {
  const char* what;
  int64_t n_floats;
};

std::vector<Block> weight_blocks(const Llama2cConfig& c) {
  const int64_t L = c.n_layers, D = c.dim, H = c.hidden_dim, V = c.vocab_size;
  const int64_t KV = c.kv_dim(), half = c.head_size() / 2, T = c.seq_len;
  std::vector<Block> b = {
      {"token_embedding [vocab, dim]", V * D},
      {"rms_att [n_layers, dim]", L * D},
      {"wq [n_layers, dim, dim]", L * D * D},
      {"wk [n_layers, kv_dim, dim]", L * KV * D},
      {"wv [n_layers, kv_dim, dim]", L * KV * D},
      {"wo [n_layers, dim, dim]", L * D * D},
      {"rms_ffn [n_layers, dim]", L * D},
      {"w1 [n_layers, hidden_dim, dim]", L * H * D},
      {"w2 [n_layers, dim, hidden_dim]", L * D * H},
      {"w3 [n_layers, hidden_dim, dim]", L * H * D},
      {"rms_final [dim]", D},
      {"freq_cis_real [seq_len, head_size/2]", T * half},
      {"freq_cis_imag [seq_len, head_size/2]", T * half},
  };
  if (!c.shared_classifier) b.push_back({"wcls [vocab, dim]", V * D});
  return b;
}

}  // namespace

int64_t Llama2cConfig::n_weight_floats() const {
  int64_t n = 0;
  for (const Block& b : weight_blocks(*this)) n += b.n_floats;
  return n;
}

Result<Llama2cConfig> parse_llama2c_header(const uint8_t* data, size_t file_size) {
  if (file_size < kHeaderBytes)
    return corrupt("llama2.c checkpoint is " + std::to_string(file_size) +
                   " bytes, shorter than its 28-byte header");
  int32_t h[7];
  std::memcpy(h, data, kHeaderBytes);
  Llama2cConfig c;
  c.dim = h[0];
  c.hidden_dim = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.shared_classifier = h[5] > 0;
  c.vocab_size = h[5] == std::numeric_limits<int32_t>::min() ? 0 : (h[5] < 0 ? -h[5] : h[5]);
  c.seq_len = h[6];
  const char* names[7] = {"dim", "hidden_dim", "n_layers", "n_heads",
                          "n_kv_heads", "vocab_size", "seq_len"};
  const int32_t values[7] = {c.dim, c.hidden_dim, c.n_layers, c.n_heads,
                             c.n_kv_heads, c.vocab_size, c.seq_len};
  // Generous bounds: beyond them the header is nonsense (or not a llama2.c file), and they
  // keep every size product below 2^63.
  const int32_t limits[7] = {1 << 16, 1 << 18, 1 << 10, 1 << 10, 1 << 10, 1 << 21, 1 << 22};
  for (int i = 0; i < 7; ++i) {
    if (values[i] <= 0 || values[i] > limits[i])
      return corrupt("llama2.c checkpoint header: " + std::string(names[i]) + " = " +
                     std::to_string(h[i]) + " is outside 1.." + std::to_string(limits[i]) +
                     " (not a llama2.c checkpoint?)");
  }
  if (c.dim % c.n_heads != 0)
    return corrupt("llama2.c checkpoint header: dim " + std::to_string(c.dim) +
                   " is not a multiple of n_heads " + std::to_string(c.n_heads));
  if (c.n_heads % c.n_kv_heads != 0)
    return corrupt("llama2.c checkpoint header: n_heads " + std::to_string(c.n_heads) +
                   " is not a multiple of n_kv_heads " + std::to_string(c.n_kv_heads));
  if (c.head_size() % 2 != 0)
    return corrupt("llama2.c checkpoint header: head size " + std::to_string(c.head_size()) +
                   " is odd (RoPE needs pairs)");
  const int64_t expected = static_cast<int64_t>(kHeaderBytes) + 4 * c.n_weight_floats();
  if (static_cast<int64_t>(file_size) != expected) {
    std::string msg = "llama2.c checkpoint is " + std::to_string(file_size) +
                      " bytes but its header (dim " + std::to_string(c.dim) + ", " +
                      std::to_string(c.n_layers) + " layers, vocab " +
                      std::to_string(c.vocab_size) +
                      (c.shared_classifier ? ", shared classifier" : ", separate classifier") +
                      ") needs " + std::to_string(expected);
    if (static_cast<int64_t>(file_size) < expected) msg += " (truncated?)";
    return corrupt(msg);
  }
  return c;
}

Result<Llama2cVocab> read_llama2c_tokenizer(const std::string& path, int32_t vocab_size) {
  FRUGAL_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> file, MappedFile::open(path));
  const uint8_t* p = file->data();
  const size_t size = file->size();
  size_t pos = 0;
  auto need = [&](size_t n, const std::string& what) -> Status {
    if (size - pos < n)
      return corrupt(path + ": truncated tokenizer: " + what + " at offset " +
                     std::to_string(pos) + " needs " + std::to_string(n) + " bytes, " +
                     std::to_string(size - pos) + " left");
    return Status::ok();
  };
  Llama2cVocab v;
  FRUGAL_RETURN_IF_ERROR(need(4, "max_token_length"));
  std::memcpy(&v.max_token_length, p, 4);
  pos = 4;
  if (v.max_token_length <= 0)
    return corrupt(path + ": max_token_length " + std::to_string(v.max_token_length) +
                   " is not positive (not a llama2.c tokenizer?)");
  // Each token takes at least 8 bytes, which bounds the reservation.
  if (vocab_size < 0 || static_cast<size_t>(vocab_size) > (size - pos) / 8)
    return corrupt(path + ": " + std::to_string(size) + " bytes cannot hold " +
                   std::to_string(vocab_size) + " tokens (wrong tokenizer for this model?)");
  v.tokens.resize(static_cast<size_t>(vocab_size));
  v.scores.resize(static_cast<size_t>(vocab_size));
  for (int32_t i = 0; i < vocab_size; ++i) {
    const std::string which = "token " + std::to_string(i);
    FRUGAL_RETURN_IF_ERROR(need(8, which + " score and length"));
    int32_t len = 0;
    std::memcpy(&v.scores[i], p + pos, 4);
    std::memcpy(&len, p + pos + 4, 4);
    pos += 8;
    if (len < 0)
      return corrupt(path + ": " + which + " has negative length " + std::to_string(len) +
                     " at offset " + std::to_string(pos - 4));
    FRUGAL_RETURN_IF_ERROR(need(static_cast<size_t>(len), which + " bytes"));
    v.tokens[i].assign(reinterpret_cast<const char*>(p + pos), static_cast<size_t>(len));
    pos += static_cast<size_t>(len);
  }
  if (pos != size)
    return corrupt(path + ": " + std::to_string(size - pos) + " bytes left after token " +
                   std::to_string(vocab_size - 1) +
                   " (the tokenizer has more tokens than the model's vocab_size " +
                   std::to_string(vocab_size) + "?)");
  return v;
}

void llama2c_vocab_to_gguf(const Llama2cVocab& vocab, std::vector<std::string>* tokens,
                           std::vector<int32_t>* token_types) {
  tokens->clear();
  token_types->clear();
  tokens->reserve(vocab.tokens.size());
  token_types->reserve(vocab.tokens.size());
  for (size_t i = 0; i < vocab.tokens.size(); ++i) {
    const std::string& t = vocab.tokens[i];
    if (i == 0 || i == 1 || i == 2) {
      // llama2.c's export wraps BOS/EOS in newlines ("\n<s>\n"); SentencePiece has "<s>".
      size_t b = t.find_first_not_of('\n');
      size_t e = t.find_last_not_of('\n');
      tokens->push_back(b == std::string::npos ? t : t.substr(b, e - b + 1));
      token_types->push_back(i == 0 ? kTokenUnknown : kTokenControl);
      continue;
    }
    std::string out;
    out.reserve(t.size() + 4);
    for (char ch : t) {
      if (ch == ' ') out += kSpaceMarker;
      else out += ch;
    }
    token_types->push_back(is_byte_token(t) ? kTokenByte : kTokenNormal);
    tokens->push_back(std::move(out));
  }
}

Status convert_llama2c(const std::string& checkpoint_path, const std::string& tokenizer_path,
                       const std::string& out_path, const std::string& model_name) {
  FRUGAL_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> ckpt, MappedFile::open(checkpoint_path));
  Result<Llama2cConfig> parsed = parse_llama2c_header(ckpt->data(), ckpt->size());
  if (!parsed.is_ok())
    return Status(parsed.status().code(), checkpoint_path + ": " + parsed.status().message());
  const Llama2cConfig c = *parsed;
  FRUGAL_ASSIGN_OR_RETURN(Llama2cVocab vocab,
                          read_llama2c_tokenizer(tokenizer_path, c.vocab_size));
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  llama2c_vocab_to_gguf(vocab, &tokens, &types);

  GgufWriter w;
  std::string name =
      model_name.empty() ? std::filesystem::path(checkpoint_path).stem().string() : model_name;
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", name);
  w.set_uint32("general.file_type", 0);  // all F32
  w.set_uint32("general.alignment", 32);
  w.set_uint32("llama.context_length", static_cast<uint32_t>(c.seq_len));
  w.set_uint32("llama.embedding_length", static_cast<uint32_t>(c.dim));
  w.set_uint32("llama.block_count", static_cast<uint32_t>(c.n_layers));
  w.set_uint32("llama.feed_forward_length", static_cast<uint32_t>(c.hidden_dim));
  w.set_uint32("llama.attention.head_count", static_cast<uint32_t>(c.n_heads));
  w.set_uint32("llama.attention.head_count_kv", static_cast<uint32_t>(c.n_kv_heads));
  w.set_uint32("llama.rope.dimension_count", static_cast<uint32_t>(c.head_size()));
  w.set_float32("llama.rope.freq_base", 10000.0f);
  w.set_float32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.set_uint32("llama.vocab_size", static_cast<uint32_t>(c.vocab_size));
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", std::move(tokens));
  w.set_float_array("tokenizer.ggml.scores", GgufValueType::kFloat32,
                    std::vector<double>(vocab.scores.begin(), vocab.scores.end()));
  w.set_int_array("tokenizer.ggml.token_type", GgufValueType::kInt32,
                  std::vector<int64_t>(types.begin(), types.end()));
  w.set_uint32("tokenizer.ggml.bos_token_id", 1);
  w.set_uint32("tokenizer.ggml.eos_token_id", 2);
  w.set_uint32("tokenizer.ggml.unknown_token_id", 0);
  w.set_bool("tokenizer.ggml.add_bos_token", true);
  w.set_bool("tokenizer.ggml.add_eos_token", false);

  // Tensors are views into the mapped checkpoint; the writer streams them out in turn.
  const float* base = reinterpret_cast<const float*>(ckpt->data() + kHeaderBytes);
  const std::vector<Block> blocks = weight_blocks(c);
  std::vector<const float*> starts;
  const float* p = base;
  for (const Block& b : blocks) {
    starts.push_back(p);
    p += b.n_floats;
  }
  const int64_t L = c.n_layers, D = c.dim, H = c.hidden_dim, V = c.vocab_size;
  const int64_t KV = c.kv_dim();
  // GGUF shapes list the row length first: a row-major [rows, cols] matrix is {cols, rows}.
  auto add = [&](const std::string& tname, std::vector<int64_t> shape, const float* data) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return w.add_tensor(tname, std::move(shape), GgmlType::kF32, data,
                        static_cast<size_t>(n) * sizeof(float));
  };
  FRUGAL_RETURN_IF_ERROR(add("token_embd.weight", {D, V}, starts[0]));
  for (int64_t il = 0; il < L; ++il) {
    const std::string blk = "blk." + std::to_string(il) + ".";
    FRUGAL_RETURN_IF_ERROR(add(blk + "attn_norm.weight", {D}, starts[1] + il * D));
    FRUGAL_RETURN_IF_ERROR(add(blk + "attn_q.weight", {D, D}, starts[2] + il * D * D));
    FRUGAL_RETURN_IF_ERROR(add(blk + "attn_k.weight", {D, KV}, starts[3] + il * KV * D));
    FRUGAL_RETURN_IF_ERROR(add(blk + "attn_v.weight", {D, KV}, starts[4] + il * KV * D));
    FRUGAL_RETURN_IF_ERROR(add(blk + "attn_output.weight", {D, D}, starts[5] + il * D * D));
    FRUGAL_RETURN_IF_ERROR(add(blk + "ffn_norm.weight", {D}, starts[6] + il * D));
    FRUGAL_RETURN_IF_ERROR(add(blk + "ffn_gate.weight", {D, H}, starts[7] + il * H * D));
    FRUGAL_RETURN_IF_ERROR(add(blk + "ffn_down.weight", {H, D}, starts[8] + il * D * H));
    FRUGAL_RETURN_IF_ERROR(add(blk + "ffn_up.weight", {D, H}, starts[9] + il * H * D));
  }
  FRUGAL_RETURN_IF_ERROR(add("output_norm.weight", {D}, starts[10]));
  if (!c.shared_classifier) FRUGAL_RETURN_IF_ERROR(add("output.weight", {D, V}, starts[13]));
  return w.write(out_path);
}

}  // namespace frugal
