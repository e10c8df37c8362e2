// Jinja2 templates: a lexer, a parser to a syntax tree and an evaluator for the part of Jinja2
// that models' chat templates (GGUF tokenizer.chat_template) use. Rendering matches Python's
// jinja2 in the sandboxed environment of transformers' apply_chat_template, byte for byte, on
// the templates of tests/fixtures/chat_templates; docs/CHAT_TEMPLATES.md lists what is covered.
//
// Values are immutable (as in jinja2's ImmutableSandboxedEnvironment) except namespace()
// objects. A template is untrusted input: syntax errors, type errors and resource limits (output
// size, work, nesting depth, range() length) are returned as a Status, never a crash or a hang.
#pragma once

#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/status.h"

namespace frugal::jinja {

class Value;
using ValueList = std::vector<Value>;

class ValueDict;

namespace detail {
struct Callable;
}

class Value {
 public:
  enum class Kind : uint8_t {
    kUndefined,  // a missing variable, key or attribute: prints as "", is false, iterates empty
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,  // UTF-8
    kList,    // also Python tuples
    kDict,
    kNamespace,  // namespace(): the one mutable object, for state carried out of loops
    kCallable,   // a macro or a built-in function
  };

  Value() = default;  // undefined
  Value(std::nullptr_t) : kind_(Kind::kNone) {}
  Value(bool b) : kind_(Kind::kBool), b_(b) {}
  Value(int v) : kind_(Kind::kInt), i_(v) {}
  Value(int64_t v) : kind_(Kind::kInt), i_(v) {}
  Value(double v) : kind_(Kind::kFloat), f_(v) {}
  Value(std::string s);
  Value(std::string_view s) : Value(std::string(s)) {}
  Value(const char* s) : Value(std::string(s)) {}
  Value(ValueList items);
  Value(ValueDict items);

  // `why` is the sentence an operation that needs a value reports, e.g. "'x' is undefined".
  static Value undefined(std::string why);
  static Value make_namespace(ValueDict items);
  static Value callable(std::shared_ptr<const detail::Callable> c);
  // JSON null -> none, objects keep their key order.
  static Value from_json(const nlohmann::ordered_json& j);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_number() const {
    return kind_ == Kind::kBool || kind_ == Kind::kInt || kind_ == Kind::kFloat;
  }

  // Accessors CHECK the kind: calling the wrong one is a bug.
  bool as_bool() const;
  int64_t as_int() const;  // kBool or kInt
  double as_float() const;  // any number
  const std::string& as_string() const;
  const ValueList& as_list() const;
  const ValueDict& as_dict() const;  // kDict or kNamespace
  ValueDict& namespace_items() const;
  const detail::Callable& as_callable() const;
  const std::string& undefined_why() const;

 private:
  Kind kind_ = Kind::kUndefined;
  union {
    bool b_;
    int64_t i_ = 0;
    double f_;
  };
  // kString and kUndefined: std::string; kList: ValueList; kDict, kNamespace: ValueDict;
  // kCallable: detail::Callable. Shared, so copies are cheap.
  std::shared_ptr<void> ptr_;
};

// A string-keyed map that keeps insertion order, as Python dicts and JSON objects do.
class ValueDict {
 public:
  using Item = std::pair<std::string, Value>;
  ValueDict() = default;
  ValueDict(std::initializer_list<Item> items);

  // nullptr when `key` is absent.
  const Value* find(std::string_view key) const;
  // Replaces the value of an existing key in place, or appends a new key.
  void set(std::string key, Value value);
  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  std::vector<Item>::const_iterator begin() const { return items_.begin(); }
  std::vector<Item>::const_iterator end() const { return items_.end(); }

 private:
  std::vector<Item> items_;
};

struct Options {
  // Whitespace handling of transformers' apply_chat_template (jinja2 defaults are false).
  bool trim_blocks = true;    // drop the first newline after a block tag
  bool lstrip_blocks = true;  // drop spaces and tabs before a block tag on its own line
  bool keep_trailing_newline = false;

  // Limits that stop a hostile template: each is an error naming the limit.
  size_t max_output_bytes = size_t{16} << 20;
  int64_t max_work = 5'000'000;  // evaluation steps, plus bytes built / 32
  int max_depth = 100;            // nesting of blocks and expressions, and of macro calls
  // Levels of one expression's tree: a left-associative chain (a + b + c, x|f|g, a.b.c) adds a
  // level per operator without nesting anything. Evaluating and destroying an expression recurse
  // once per level, so this bounds the stack, and a render stops at twice as many frames in all
  // (macros stack expressions). jinja2 3.1 itself fails between 400 and 500 levels (Python's
  // recursion limit), so no template transformers can render is refused here.
  int max_expression_height = 500;

  // The clock of strftime_now(); unset = the current local time.
  std::optional<std::time_t> now;
};

namespace detail {
struct Program;
}

class Template {
 public:
  // Errors: kInvalidArgument for invalid Jinja ("template line 3: unexpected 'endfor'"),
  // kUnsupported for valid Jinja this build does not implement ({% include %}, a filter it does
  // not know), both naming the line.
  static Result<Template> parse(std::string_view source, Options options = {});

  // Renders with `globals` as the template's variables. range, namespace, dict,
  // raise_exception and strftime_now are always defined. Errors: kInvalidArgument for a runtime
  // error or raise_exception() ("the template raised: <message> (line 7)"), kUnsupported for a
  // method or operation this build does not implement, kOutOfRange for a limit of Options.
  // `now`, when set, replaces Options::now for this rendering.
  Result<std::string> render(const ValueDict& globals,
                             std::optional<std::time_t> now = std::nullopt) const;

  const Options& options() const { return options_; }

 private:
  Template(std::shared_ptr<const detail::Program> program, Options options)
      : program_(std::move(program)), options_(std::move(options)) {}
  std::shared_ptr<const detail::Program> program_;
  Options options_;
};

// Python's str() of a value, as {{ value }} prints it ("None", "True", "1.5", "['a', 1]").
std::string to_python_str(const Value& v);

}  // namespace frugal::jinja
