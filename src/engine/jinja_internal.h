// Jinja internals shared by the lexer, parser and evaluator: tokens, the syntax tree, and the
// Python semantics of values (str(), repr(), json.dumps(), ==, <, truthiness). Not a public API.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/jinja.h"

namespace frugal::jinja::detail {

// ---- Lexer -------------------------------------------------------------------------------------

enum class Tok : uint8_t {
  kData,        // template text between tags, whitespace control already applied
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,
  kString,  // text is the decoded value
  kInt,
  kFloat,
  kOp,  // text is the operator: "+", "//", "==", "(", ...
  kEof,
};

struct Token {
  Tok type = Tok::kEof;
  std::string text;
  int64_t int_value = 0;
  double float_value = 0;
  int line = 1;
};

// Splits `source` as jinja2's lexer does with `options`' whitespace settings. Errors:
// kInvalidArgument naming the line (an unterminated tag, string or comment, an unbalanced
// bracket, a bad escape).
Result<std::vector<Token>> lex(std::string_view source, const Options& options);

// ---- Syntax tree -------------------------------------------------------------------------------

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct CallArgs {
  std::vector<ExprPtr> positional;
  std::vector<std::pair<std::string, ExprPtr>> keyword;
};

// Work accounting shared by the evaluator and the built-in filters: every step and every byte
// built counts against Options::max_work.
class Evaluator {
 public:
  explicit Evaluator(const Options& options) : opt_(options) {}
  const Options& options() const { return opt_; }
  Status work(int64_t units) {
    work_ += units;
    if (work_ > opt_.max_work) {
      return out_of_range("the template did more than " + std::to_string(opt_.max_work) +
                          " steps of work (a loop that does not end, or a value that keeps "
                          "growing?)");
    }
    return Status::ok();
  }
  // A list or dict of n elements was built: a step per element (copying a value is no cheaper
  // than evaluating one), and each element counts its sizeof(Value) bytes toward the output
  // limit, so a list holds no more memory than the text a template may print.
  Status built_list(size_t n) {
    constexpr size_t kValueBytes = sizeof(Value);
    FRUGAL_RETURN_IF_ERROR(built(n > SIZE_MAX / kValueBytes ? SIZE_MAX : n * kValueBytes));
    return work(static_cast<int64_t>(std::min<size_t>(n, INT64_MAX / 2)));
  }
  // A string of `bytes` bytes was built: the output limit, and a step per 32 bytes.
  Status built(size_t bytes) {
    if (bytes > opt_.max_output_bytes) {
      return out_of_range("the template built a value of " + std::to_string(bytes) +
                          " bytes, more than the " + std::to_string(opt_.max_output_bytes) +
                          " its output may have");
    }
    return work(static_cast<int64_t>(bytes / 32));
  }

 private:
  const Options& opt_;
  int64_t work_ = 0;
};

// The work of walking v once, as a filter, a test or a comparison does: a step per element of
// a list or dict, per 32 bytes of a string.
inline int64_t walk_cost(const Value& v) {
  if (v.is_list()) return static_cast<int64_t>(v.as_list().size());
  if (v.is_dict()) return static_cast<int64_t>(v.as_dict().size());
  if (v.is_string()) return static_cast<int64_t>(v.as_string().size() / 32);
  return 0;
}

// A filter or test: `input` is the value left of | or is, `args` the evaluated arguments.
struct Args {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
  // The argument at `index` or named `name`, else `fallback`. The reference lives as long as
  // this Args or `fallback`, whichever is returned.
  const Value& get(size_t index, std::string_view name, const Value& fallback) const;
  // The same with a temporary fallback, returned by value: `const Value& w = a.get(0, "w",
  // Value(4))` would otherwise dangle once the full-expression ends (jinja_fuzz found that
  // in `indent`, `int` and `float`, whose defaults are temporaries).
  Value get(size_t index, std::string_view name, Value&& fallback) const;
};
using FilterFn = Result<Value> (*)(Evaluator& ev, const Value& input, const Args& args);
using TestFn = Result<bool> (*)(Evaluator& ev, const Value& input, const Args& args);

enum class ExprKind : uint8_t {
  kLiteral,   // literal
  kName,      // name
  kList,      // items
  kDict,      // keys (items[2i]) and values (items[2i+1])
  kGetAttr,   // a.name
  kGetItem,   // a[b]
  kSlice,     // a[b:c:d], each of b, c, d may be null
  kCall,      // a(call)
  kFilter,    // a | name(call), filter set
  kTest,      // a is [not] name(call), test set
  kNot,       // not a
  kNeg,       // -a
  kPos,       // +a
  kBinary,    // a op b: + - * / // % ** ~
  kCompare,   // items[0] ops[0] items[1] ...: == != < > <= >= in, "not in" (chained)
  kAnd,       // a and b
  kOr,        // a or b
  kCondExpr,  // b if a else c (c may be null)
};

struct Expr {
  ExprKind kind;
  int line = 1;
  Value literal;
  std::string name;  // kName, kGetAttr, kFilter, kTest; kBinary/kCompare: the operator
  ExprPtr a, b, c, d;
  std::vector<ExprPtr> items;  // kList, kDict; kCompare: the operands
  std::vector<std::string> ops;  // kCompare: the operators between items
  CallArgs call;
  FilterFn filter = nullptr;
  TestFn test = nullptr;
  bool negated = false;  // kTest: "is not"
  int height = 1;  // levels of the tree below and including this node (the parser's seal())
};

enum class StmtKind : uint8_t {
  kData,        // text
  kOutput,      // {{ expr }}
  kIf,          // conds[i] guards bodies[i]; else_body
  kFor,         // for targets in expr [if cond] body [else else_body]
  kSet,         // set targets = expr
  kSetAttr,     // set target.attr = expr (namespace)
  kSetBlock,    // set target %}body{% endset
  kMacro,       // macro name(params = defaults) body
  kBreak,
  kContinue,
  kFilterBlock,  // filter name(call) %}body{% endfilter
  kScope,        // a body run in place: {% generation %} of transformers
};

struct Stmt {
  StmtKind kind;
  int line = 1;
  std::string text;                  // kData; kSetAttr: the attribute; kMacro: the name
  std::vector<std::string> targets;  // kFor, kSet, kSetBlock; kMacro: parameters
  ExprPtr expr;                      // kOutput, kFor (iterable), kSet, kSetAttr (value)
  ExprPtr cond;                      // kFor: the loop filter; kSetAttr: the namespace
  std::vector<ExprPtr> conds;        // kIf; kMacro: defaults (null where none)
  std::vector<Body> bodies;          // kIf
  Body body;                         // kFor, kSetBlock, kMacro, kFilterBlock, kScope
  Body else_body;                    // kIf, kFor
  FilterFn filter = nullptr;         // kFilterBlock
  CallArgs call;                     // kFilterBlock
};

struct Program {
  Body body;
};

// Errors: kInvalidArgument for invalid Jinja, kUnsupported for a construct this build does not
// implement, each naming the line.
Result<std::shared_ptr<const Program>> parse_program(std::vector<Token> tokens,
                                                     const Options& options);

// Built-in filters and tests by name, or nullptr.
FilterFn find_filter(std::string_view name);
TestFn find_test(std::string_view name);
// Whether jinja2 has a filter or test of that name that this build lacks (for the error).
bool is_known_unsupported_filter(std::string_view name);
// obj.name(args) for the methods of str and dict that templates call (strip, split, get, items...).
Result<Value> call_method(Evaluator& ev, const Value& obj, const std::string& name, const Args& args);
// jinja2's obj.attr and obj[key] lookups: a missing attribute or key is undefined, and only an
// undefined `obj` is an error.
Result<Value> get_attr(const Value& obj, const std::string& name);
Result<Value> get_item(const Value& obj, const Value& key);
// The items a for loop (or list()) iterates: list items, dict keys, string characters.
Result<ValueList> iterate(const Value& v);

// A macro or a built-in global function.
struct Callable {
  enum class Kind : uint8_t { kMacro, kRange, kNamespace, kDict, kRaiseException, kStrftimeNow };
  Kind kind;
  const Stmt* macro = nullptr;  // kMacro: the definition (owned by the Program)
  std::shared_ptr<void> scope;  // kMacro: the scope it was defined in
};

// ---- Python semantics of values ----------------------------------------------------------------

const char* type_name(const Value& v);  // Python's type name: "str", "int", "dict"...
bool truthy(const Value& v);
bool equals(const Value& a, const Value& b);
// a < b for numbers, strings and lists; an error for other kinds.
Result<bool> less(const Value& a, const Value& b);
std::string python_repr(const Value& v);
std::string float_repr(double d);
// json.dumps(v, ensure_ascii, indent, separators, sort_keys). indent < 0: none.
struct JsonStyle {
  bool ensure_ascii = false;
  int indent = -1;
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
};
Result<std::string> json_dumps(const Value& v, const JsonStyle& style);

// ---- UTF-8 and Python string helpers -----------------------------------------------------------

std::vector<uint32_t> decode_utf8(std::string_view s);
void append_utf8(std::string& out, uint32_t cp);
size_t utf8_length(std::string_view s);  // code points
bool is_python_space(uint32_t cp);         // str.isspace()
// str.strip(chars) / lstrip / rstrip; chars == nullptr strips whitespace.
std::string python_strip(std::string_view s, const std::string* chars, bool left, bool right);
// str.split(sep, maxsplit); sep == nullptr splits on runs of whitespace.
std::vector<std::string> python_split(std::string_view s, const std::string* sep, int64_t maxsplit);
std::string python_replace(std::string_view s, std::string_view old, std::string_view repl,
                           int64_t count);
std::string ascii_upper(std::string_view s);
std::string ascii_lower(std::string_view s);

}  // namespace frugal::jinja::detail
