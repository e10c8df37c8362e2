// Jinja lexer: template text, {{ }}, {% %} and {# #} split into tokens with jinja2's whitespace
// control (-, +, trim_blocks, lstrip_blocks) applied to the text, and string literals decoded
// as Python's unicode-escape does. Mirrors jinja2/lexer.py's rules, written anew.
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "engine/jinja_internal.h"

namespace frugal::jinja::detail {

namespace {

bool is_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1C && c <= 0x1F); }

// Python's str.rstrip() on the ASCII whitespace jinja2's \s matches in template text.
std::string_view rstrip_ws(std::string_view s) {
  size_t e = s.size();
  while (e > 0 && is_space(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(0, e);
}

class Lexer {
 public:
  Lexer(std::string_view source, const Options& options) : opt_(options) {
    // Newlines are normalised to \n and one trailing newline dropped, as jinja2 does.
    src_.reserve(source.size());
    for (size_t i = 0; i < source.size();) {
      const size_t cr = source.find('\r', i);
      src_.append(source.substr(i, cr == std::string_view::npos ? std::string_view::npos : cr - i));
      if (cr == std::string_view::npos) break;
      src_.push_back('\n');
      i = cr + 1 < source.size() && source[cr + 1] == '\n' ? cr + 2 : cr + 1;
    }
    if (!opt_.keep_trailing_newline && !src_.empty() && src_.back() == '\n') src_.pop_back();
  }

  Result<std::vector<Token>> run() {
    while (pos_ < src_.size()) FRUGAL_RETURN_IF_ERROR(root_step());
    push(Tok::kEof, "");
    return std::move(tokens_);
  }

 private:
  Status error(const std::string& what) const {
    return invalid_argument("template line " + std::to_string(line_) + ": " + what);
  }

  void push(Tok type, std::string text) {
    Token t;
    t.type = type;
    t.text = std::move(text);
    t.line = line_;
    tokens_.push_back(std::move(t));
  }

  void advance_to(size_t to) {
    for (size_t i = pos_; i < to; ++i) line_ += src_[i] == '\n';
    pos_ = to;
  }

  // Emits the text before a tag with the tag's whitespace control applied. `kind` is the tag's
  // second character ('{', '%' or '#'), `sign` the character after it.
  void emit_text(std::string_view text, char kind, char sign) {
    if (sign == '-') {
      text = rstrip_ws(text);
    } else if (sign != '+' && opt_.lstrip_blocks && kind != '{') {
      const size_t nl = text.rfind('\n');
      const size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
      if (l_pos > 0 || line_starting_) {
        std::string_view tail = text.substr(l_pos);
        bool all_ws = !tail.empty();
        for (char c : tail) all_ws = all_ws && is_space(static_cast<unsigned char>(c));
        if (all_ws) text = text.substr(0, l_pos);
      }
    }
    if (!text.empty()) push(Tok::kData, std::string(text));
  }

  // Finds the next tag opener at or after `from`: its position, or npos.
  size_t next_tag(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) {
        return i;
      }
    }
    return std::string::npos;
  }

  // {% raw %} starting at `at` (its sign and the word raw already checked): returns the end of
  // the opening tag, or npos when it is not a raw tag.
  size_t raw_open_end(size_t at) const {
    size_t i = at + 2;
    if (i < src_.size() && (src_[i] == '-' || src_[i] == '+')) ++i;
    while (i < src_.size() && is_space(static_cast<unsigned char>(src_[i]))) ++i;
    if (src_.compare(i, 3, "raw") != 0) return std::string::npos;
    i += 3;
    const size_t word_end = i;
    while (i < src_.size() && is_space(static_cast<unsigned char>(src_[i]))) ++i;
    if (src_.compare(i, 3, "-%}") == 0) {
      i += 3;
      while (i < src_.size() && is_space(static_cast<unsigned char>(src_[i]))) ++i;
      return i;
    }
    if (src_.compare(i, 2, "%}") == 0) return i + 2;
    (void)word_end;
    return std::string::npos;
  }

  Status root_step() {
    const size_t at = next_tag(pos_);
    if (at == std::string::npos) {
      push(Tok::kData, src_.substr(pos_));
      advance_to(src_.size());
      return Status::ok();
    }
    const char kind = src_[at + 1];
    const char sign = at + 2 < src_.size() ? src_[at + 2] : '\0';
    emit_text(std::string_view(src_).substr(pos_, at - pos_), kind, sign);
    advance_to(at);
    line_starting_ = false;
    if (kind == '%') {
      const size_t raw_end = raw_open_end(at);
      if (raw_end != std::string::npos) return raw_block(raw_end);
    }
    advance_to(at + 2 + (sign == '-' || sign == '+' ? 1 : 0));
    if (kind == '#') return comment();
    return tag(kind == '{');
  }

  Status comment() {
    const size_t end = src_.find("#}", pos_);
    if (end == std::string::npos) return error("missing end of comment tag");
    const char before = end > pos_ ? src_[end - 1] : '\0';
    size_t after = end + 2;
    if (before == '-') {
      while (after < src_.size() && is_space(static_cast<unsigned char>(src_[after]))) ++after;
    } else if (before != '+' && opt_.trim_blocks && after < src_.size() && src_[after] == '\n') {
      ++after;
    }
    line_starting_ = after > 0 && src_[after - 1] == '\n';
    advance_to(after);
    return Status::ok();
  }

  Status raw_block(size_t body_begin) {
    advance_to(body_begin);
    // The body runs to {% endraw %}, which takes whitespace control like any block tag.
    for (size_t i = src_.find("{%", pos_); i != std::string::npos; i = src_.find("{%", i + 1)) {
      size_t j = i + 2;
      const char sign = j < src_.size() && (src_[j] == '-' || src_[j] == '+') ? src_[j] : '\0';
      if (sign) ++j;
      while (j < src_.size() && is_space(static_cast<unsigned char>(src_[j]))) ++j;
      if (src_.compare(j, 6, "endraw") != 0) continue;
      j += 6;
      while (j < src_.size() && is_space(static_cast<unsigned char>(src_[j]))) ++j;
      size_t end;
      if (src_.compare(j, 3, "+%}") == 0) {
        end = j + 3;
      } else if (src_.compare(j, 3, "-%}") == 0) {
        end = j + 3;
        while (end < src_.size() && is_space(static_cast<unsigned char>(src_[end]))) ++end;
      } else if (src_.compare(j, 2, "%}") == 0) {
        end = j + 2;
        if (opt_.trim_blocks && end < src_.size() && src_[end] == '\n') ++end;
      } else {
        continue;
      }
      line_starting_ = false;
      emit_text(std::string_view(src_).substr(pos_, i - pos_), '%', sign);
      line_starting_ = src_[end - 1] == '\n';
      advance_to(end);
      return Status::ok();
    }
    return error("missing end of raw directive");
  }

  // Inside {{ }} (variable) or {% %}: expression tokens until the closing tag.
  Status tag(bool variable) {
    push(variable ? Tok::kVarBegin : Tok::kBlockBegin, "");
    std::string balance;  // expected closing brackets
    while (true) {
      while (pos_ < src_.size() && is_space(static_cast<unsigned char>(src_[pos_]))) advance_to(pos_ + 1);
      if (pos_ >= src_.size()) {
        return error(variable ? "unexpected end of template, expected '}}'"
                              : "unexpected end of template, expected '%}'");
      }
      if (balance.empty()) {
        size_t end = close_tag_end(variable);
        if (end != std::string::npos) {
          push(variable ? Tok::kVarEnd : Tok::kBlockEnd, "");
          line_starting_ = src_[end - 1] == '\n';
          advance_to(end);
          return Status::ok();
        }
      }
      FRUGAL_RETURN_IF_ERROR(expression_token(balance));
    }
  }

  // The end of the closing tag at pos_ (with the whitespace it consumes), or npos.
  size_t close_tag_end(bool variable) const {
    const char* close = variable ? "}}" : "%}";
    size_t end = std::string::npos;
    bool strip_after = false;
    if (src_[pos_] == '-' && src_.compare(pos_ + 1, 2, close) == 0) {
      end = pos_ + 3;
      strip_after = true;
    } else if (!variable && src_[pos_] == '+' && src_.compare(pos_ + 1, 2, close) == 0) {
      return pos_ + 3;
    } else if (src_.compare(pos_, 2, close) == 0) {
      end = pos_ + 2;
      if (!variable && opt_.trim_blocks && end < src_.size() && src_[end] == '\n') ++end;
    }
    if (strip_after) {
      while (end < src_.size() && is_space(static_cast<unsigned char>(src_[end]))) ++end;
    }
    return end;
  }

  Status expression_token(std::string& balance) {
    const char c = src_[pos_];
    if (c == '\'' || c == '"') return string_literal();
    if (c >= '0' && c <= '9') return number();
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t e = pos_;
      while (e < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
      push(Tok::kName, src_.substr(pos_, e - pos_));
      advance_to(e);
      return Status::ok();
    }
    // Operators: the two-character ones first (//, **, ==, !=, <=, >=), then the single ones.
    const char next = pos_ + 1 < src_.size() ? src_[pos_ + 1] : '\0';
    size_t n = 0;
    if ((c == '/' && next == '/') || (c == '*' && next == '*') ||
        ((c == '=' || c == '!' || c == '<' || c == '>') && next == '=')) {
      n = 2;
    } else if (c != '\0' && std::strchr("+-/*%~[](){}|.:,;=<>", c) != nullptr) {
      n = 1;
    }
    if (n > 0) {
      if (n == 1 && (c == '(' || c == '[' || c == '{')) {
        balance.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
      } else if (n == 1 && (c == ')' || c == ']' || c == '}')) {
        if (balance.empty()) return error(std::string("unexpected '") + c + "'");
        if (balance.back() != c) {
          return error(std::string("unexpected '") + c + "', expected '" + balance.back() + "'");
        }
        balance.pop_back();
      }
      push(Tok::kOp, src_.substr(pos_, n));
      advance_to(pos_ + n);
      return Status::ok();
    }
    if (static_cast<unsigned char>(c) >= 0x80) return error("invalid character in an identifier");
    return error(std::string("unexpected char '") + c + "'");
  }

  Status number() {
    // jinja2: a float needs digits after the point or an exponent; '_' separates digits.
    size_t e = pos_;
    auto digits = [&](size_t& i) {
      const size_t b = i;
      while (i < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[i])) || (src_[i] == '_' && i > b))) ++i;
      return i > b;
    };
    digits(e);
    bool is_float = false;
    size_t f = e;
    if (f + 1 < src_.size() && src_[f] == '.' && std::isdigit(static_cast<unsigned char>(src_[f + 1]))) {
      ++f;
      digits(f);
      e = f;
      is_float = true;
    }
    if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
      size_t x = e + 1;
      if (x < src_.size() && (src_[x] == '+' || src_[x] == '-')) ++x;
      if (x < src_.size() && std::isdigit(static_cast<unsigned char>(src_[x]))) {
        digits(x);
        e = x;
        is_float = true;
      }
    }
    std::string text;
    for (size_t i = pos_; i < e; ++i) {
      if (src_[i] != '_') text.push_back(src_[i]);
    }
    Token t;
    t.line = line_;
    t.text = text;
    if (is_float) {
      t.type = Tok::kFloat;
      t.float_value = std::strtod(text.c_str(), nullptr);
    } else {
      if (text.size() > 1 && text[0] == '0') {
        for (char ch : text) {
          if (ch != '0') return error("leading zeros in a decimal integer are not allowed");
        }
      }
      errno = 0;
      const long long v = std::strtoll(text.c_str(), nullptr, 10);
      if (errno == ERANGE) return unsupported("template line " + std::to_string(line_) + ": the integer " + text + " does not fit in 64 bits");
      t.type = Tok::kInt;
      t.int_value = v;
    }
    tokens_.push_back(std::move(t));
    advance_to(e);
    return Status::ok();
  }

  static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  // A quoted literal, decoded as jinja2 does: Python's unicode-escape over the raw text.
  Status string_literal() {
    const char quote = src_[pos_];
    size_t i = pos_ + 1;
    std::string out;
    while (true) {
      if (i >= src_.size()) return error("unexpected end of template inside a string literal");
      const char c = src_[i];
      if (c == quote) break;
      if (c != '\\') {
        out.push_back(c);
        ++i;
        continue;
      }
      if (i + 1 >= src_.size()) return error("unexpected end of template inside a string literal");
      const char e = src_[i + 1];
      i += 2;
      switch (e) {
        case '\n': break;  // line continuation
        case '\\': out.push_back('\\'); break;
        case '\'': out.push_back('\''); break;
        case '"': out.push_back('"'); break;
        case 'a': out.push_back('\a'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'v': out.push_back('\v'); break;
        case 'x':
        case 'u':
        case 'U': {
          const int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          uint32_t cp = 0;
          for (int k = 0; k < n; ++k) {
            const int h = i + k < src_.size() ? hex_value(src_[i + k]) : -1;
            if (h < 0) return error(std::string("truncated \\") + e + " escape in a string literal");
            cp = cp * 16 + static_cast<uint32_t>(h);
          }
          if (cp > 0x10FFFF) return error("illegal Unicode character in a string literal");
          i += static_cast<size_t>(n);
          append_utf8(out, cp);
          break;
        }
        case 'N': return unsupported("template line " + std::to_string(line_) + ": \\N{...} escapes are not supported");
        default:
          if (e >= '0' && e <= '7') {
            uint32_t cp = static_cast<uint32_t>(e - '0');
            for (int k = 0; k < 2 && i < src_.size() && src_[i] >= '0' && src_[i] <= '7'; ++k, ++i) {
              cp = cp * 8 + static_cast<uint32_t>(src_[i] - '0');
            }
            append_utf8(out, cp);
          } else if (static_cast<unsigned char>(e) >= 0x80) {
            // Python first writes a non-ASCII character as \xNN / \uNNNN: the backslash before it
            // then escapes itself and the escape's text stays literal.
            size_t len = 1;
            const auto lead = static_cast<unsigned char>(e);
            if ((lead >> 5) == 6) len = 2; else if ((lead >> 4) == 14) len = 3; else if ((lead >> 3) == 30) len = 4;
            const std::vector<uint32_t> cps = decode_utf8(std::string_view(src_).substr(i - 1, len));
            const uint32_t cp = cps.empty() ? 0xFFFD : cps[0];
            char buf[16];
            if (cp < 0x100) std::snprintf(buf, sizeof(buf), "\\x%02x", cp);
            else if (cp < 0x10000) std::snprintf(buf, sizeof(buf), "\\u%04x", cp);
            else std::snprintf(buf, sizeof(buf), "\\U%08x", cp);
            out += buf;
            i += len - 1;
          } else {
            out.push_back('\\');
            out.push_back(e);
          }
      }
    }
    Token t;
    t.type = Tok::kString;
    t.text = std::move(out);
    t.line = line_;
    tokens_.push_back(std::move(t));
    advance_to(i + 1);
    return Status::ok();
  }

  const Options& opt_;
  std::string src_;
  size_t pos_ = 0;
  int line_ = 1;
  bool line_starting_ = true;
  std::vector<Token> tokens_;
};

}  // namespace

Result<std::vector<Token>> lex(std::string_view source, const Options& options) {
  Lexer lexer(source, options);
  return lexer.run();
}

}  // namespace frugal::jinja::detail
