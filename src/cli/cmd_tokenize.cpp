// `frugal tokenize`: reads all of stdin as bytes and prints the token ids (or pieces) that a
// GGUF model's tokenizer gives them; works on vocab-only files of any architecture.
#include <cstdio>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"

namespace frugal::cli {

namespace {

struct TokenizeOptions {
  std::string model_path;
  bool add_special = false;
  bool parse_special = false;
  bool pieces = false;
};

std::string read_all_stdin() {
  std::string text;
  char buffer[1 << 16];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), stdin)) > 0) text.append(buffer, n);
  return text;
}

// Printable rendering of a piece: C-style escapes for control bytes, quotes and backslashes.
std::string escape_piece(const std::string& piece) {
  std::string out;
  for (unsigned char c : piece) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20 || c == 0x7F) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "\\x%02x", c);
      out += hex;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

int run_tokenize(const TokenizeOptions& opt) {
  auto gguf = GgufFile::open(opt.model_path);
  if (!gguf.is_ok()) {
    std::fprintf(stderr, "frugal tokenize: %s\n", gguf.status().to_string().c_str());
    return 1;
  }
  auto tokenizer = Tokenizer::from_gguf(**gguf);
  if (!tokenizer.is_ok()) {
    std::fprintf(stderr, "frugal tokenize: %s: %s\n", opt.model_path.c_str(),
                 tokenizer.status().to_string().c_str());
    return 1;
  }
  const std::string text = read_all_stdin();
  const std::vector<int32_t> ids = (*tokenizer)->encode(text, opt.add_special, opt.parse_special);
  if (opt.pieces) {
    for (int32_t id : ids) {
      std::printf("%d\t\"%s\"\n", id,
                  escape_piece((*tokenizer)->token_to_piece(id, /*render_special=*/true)).c_str());
    }
    return 0;
  }
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) line.push_back(' ');
    line += std::to_string(ids[i]);
  }
  line.push_back('\n');
  std::fwrite(line.data(), 1, line.size(), stdout);
  return 0;
}

}  // namespace

void register_tokenize(CLI::App& app, int& exit_code) {
  auto opt = std::make_shared<TokenizeOptions>();
  auto* cmd = app.add_subcommand(
      "tokenize", "Print the token ids of stdin's text (all of it, byte for byte)");
  cmd->add_option("-m,--model", opt->model_path, "GGUF file (a vocab-only file is enough)")
      ->required();
  cmd->add_flag("--add-special", opt->add_special,
                "Add BOS/EOS as the model's metadata says (default: none)");
  cmd->add_flag("--parse-special", opt->parse_special,
                "Turn special-token text such as <|im_end|> into those tokens (default: plain "
                "text)");
  cmd->add_flag("--pieces", opt->pieces, "Print one token per line: id and its piece");
  cmd->callback([opt, &exit_code] { exit_code = run_tokenize(*opt); });
}

}  // namespace frugal::cli
