// Jinja evaluator: runs the syntax tree over scopes of variables (a for loop's body gets a fresh
// scope each iteration, as in jinja2, so state leaves a loop only through namespace()), with
// Python's arithmetic and jinja2's default Undefined. Every step counts against the work limit
// and every output byte against the output limit.
#include <algorithm>
#include <cmath>
#include <ctime>

#include "engine/jinja_internal.h"

namespace frugal::jinja {

namespace detail {
namespace {

struct Scope {
  std::shared_ptr<Scope> parent;
  ValueDict vars;
};
using ScopePtr = std::shared_ptr<Scope>;

enum class Flow : uint8_t { kNormal, kBreak, kContinue };

constexpr int64_t kMaxRange = 100000;  // jinja2's sandbox refuses larger range() too

// Prefixes "template line N: " unless the message already names a line.
Status at_line(int line, const Status& s) {
  if (s.is_ok() || s.message().rfind("template line ", 0) == 0 ||
      s.message().rfind("the template raised", 0) == 0) {
    return s;
  }
  return Status(s.code(), "template line " + std::to_string(line) + ": " + s.message());
}

#define EVAL_RETURN_IF_ERROR(line, expr)             \
  do {                                               \
    ::frugal::Status st_ = (expr);                   \
    if (!st_.is_ok()) return at_line((line), st_);   \
  } while (0)

Result<Value> arith(const std::string& op, const Value& x, const Value& y, size_t max_bytes);

class Renderer {
 public:
  Renderer(const Options& options) : opt_(options), ev_(options) {}

  Result<std::string> run(const Program& program, const ValueDict& globals) {
    // A macro holds the scope it was defined in, and that scope holds the macro: once the
    // render is over nothing can call a macro again, so the scopes that macros captured are
    // emptied here, which breaks those cycles (they would leak every render otherwise).
    struct ReleaseCaptured {
      std::vector<ScopePtr>& scopes;
      ~ReleaseCaptured() {
        for (const ScopePtr& sc : scopes) sc->vars = ValueDict{};
        scopes.clear();
      }
    } release{captured_};
    auto root = std::make_shared<Scope>();
    root->vars = globals;
    auto top = std::make_shared<Scope>();
    top->parent = root;
    std::string out;
    FRUGAL_ASSIGN_OR_RETURN(Flow f, exec_body(program.body, top, out));
    (void)f;
    return out;
  }

 private:
  // ---- statements ----

  Result<Flow> exec_body(const Body& body, const ScopePtr& scope, std::string& out) {
    for (const StmtPtr& s : body) {
      FRUGAL_ASSIGN_OR_RETURN(Flow f, exec(*s, scope, out));
      if (f != Flow::kNormal) return f;
    }
    return Flow::kNormal;
  }

  Status emit(std::string& out, std::string_view text, int line) {
    if (out.size() + text.size() > opt_.max_output_bytes) {
      return out_of_range("template line " + std::to_string(line) + ": the output passed " +
                          std::to_string(opt_.max_output_bytes) + " bytes");
    }
    out.append(text);
    return ev_.work(1 + static_cast<int64_t>(text.size() / 32));
  }

  // The parser bounds one expression's height and the nesting of blocks, but macro calls stack
  // those: every statement and expression being run holds a frame, and a render that would hold
  // more than twice max_expression_height of them stops here instead of overflowing the stack.
  struct FrameGuard {
    explicit FrameGuard(int& n) : frames(n) { ++frames; }
    ~FrameGuard() { --frames; }
    int& frames;
  };
  Status check_frames() const {
    if (frames_ > 2 * opt_.max_expression_height) {
      return out_of_range("the render recursed more than " +
                          std::to_string(2 * opt_.max_expression_height) +
                          " levels (macros calling macros inside deep expressions?)");
    }
    return Status::ok();
  }

  Result<Flow> exec(const Stmt& s, const ScopePtr& scope, std::string& out) {
    FrameGuard frame(frames_);
    EVAL_RETURN_IF_ERROR(s.line, check_frames());
    EVAL_RETURN_IF_ERROR(s.line, ev_.work(1));
    switch (s.kind) {
      case StmtKind::kData: EVAL_RETURN_IF_ERROR(s.line, emit(out, s.text, s.line)); break;
      case StmtKind::kOutput: {
        FRUGAL_ASSIGN_OR_RETURN(Value v, eval(*s.expr, scope));
        EVAL_RETURN_IF_ERROR(s.line, emit(out, to_python_str(v), s.line));
        break;
      }
      case StmtKind::kIf:
        for (size_t i = 0; i < s.conds.size(); ++i) {
          FRUGAL_ASSIGN_OR_RETURN(Value c, eval(*s.conds[i], scope));
          if (truthy(c)) return exec_body(s.bodies[i], scope, out);
        }
        return exec_body(s.else_body, scope, out);
      case StmtKind::kFor: return exec_for(s, scope, out);
      case StmtKind::kSet: {
        FRUGAL_ASSIGN_OR_RETURN(Value v, eval(*s.expr, scope));
        EVAL_RETURN_IF_ERROR(s.line, assign(s.targets, v, *scope));
        break;
      }
      case StmtKind::kSetAttr: {
        FRUGAL_ASSIGN_OR_RETURN(Value ns, eval(*s.cond, scope));
        if (ns.kind() != Value::Kind::kNamespace) {
          return invalid_argument("template line " + std::to_string(s.line) +
                                  ": cannot assign an attribute of a '" + type_name(ns) +
                                  "' (only of a namespace())");
        }
        FRUGAL_ASSIGN_OR_RETURN(Value v, eval(*s.expr, scope));
        ns.namespace_items().set(s.text, std::move(v));
        break;
      }
      case StmtKind::kSetBlock: {
        std::string text;
        FRUGAL_ASSIGN_OR_RETURN(Flow f, exec_body(s.body, scope, text));
        (void)f;
        scope->vars.set(s.targets[0], Value(std::move(text)));
        break;
      }
      case StmtKind::kMacro: {
        auto c = std::make_shared<Callable>();
        c->kind = Callable::Kind::kMacro;
        c->macro = &s;
        c->scope = scope;
        captured_.push_back(scope);
        scope->vars.set(s.text, Value::callable(std::move(c)));
        break;
      }
      case StmtKind::kBreak: return Flow::kBreak;
      case StmtKind::kContinue: return Flow::kContinue;
      case StmtKind::kFilterBlock: {
        std::string text;
        FRUGAL_ASSIGN_OR_RETURN(Flow f, exec_body(s.body, scope, text));
        (void)f;
        FRUGAL_ASSIGN_OR_RETURN(Args args, eval_args(s.call, scope));
        auto r = s.filter(ev_, Value(std::move(text)), args);
        if (!r.is_ok()) return at_line(s.line, r.status());
        EVAL_RETURN_IF_ERROR(s.line, emit(out, to_python_str(*r), s.line));
        break;
      }
      case StmtKind::kScope: return exec_body(s.body, scope, out);
    }
    return Flow::kNormal;
  }

  Status assign(const std::vector<std::string>& targets, const Value& v, Scope& scope) {
    if (targets.size() == 1) {
      scope.vars.set(targets[0], v);
      return Status::ok();
    }
    FRUGAL_ASSIGN_OR_RETURN(ValueList items, iterate(v));
    if (items.size() != targets.size()) {
      return invalid_argument("cannot unpack " + std::to_string(items.size()) + " values into " +
                              std::to_string(targets.size()) + " names");
    }
    for (size_t i = 0; i < targets.size(); ++i) scope.vars.set(targets[i], items[i]);
    return Status::ok();
  }

  Result<Flow> exec_for(const Stmt& s, const ScopePtr& scope, std::string& out) {
    FRUGAL_ASSIGN_OR_RETURN(Value seq, eval(*s.expr, scope));
    auto listed = iterate(seq);
    if (!listed.is_ok()) return at_line(s.line, listed.status());
    ValueList items = std::move(listed).value();
    if (s.cond) {  // {% for x in xs if cond %}: the loop sees only the items that pass
      ValueList kept;
      for (Value& x : items) {
        auto probe = std::make_shared<Scope>();
        probe->parent = scope;
        EVAL_RETURN_IF_ERROR(s.line, assign(s.targets, x, *probe));
        FRUGAL_ASSIGN_OR_RETURN(Value c, eval(*s.cond, probe));
        if (truthy(c)) kept.push_back(std::move(x));
      }
      items = std::move(kept);
    }
    if (items.empty()) return exec_body(s.else_body, scope, out);
    const int64_t n = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < n; ++i) {
      EVAL_RETURN_IF_ERROR(s.line, ev_.work(1));
      auto iter = std::make_shared<Scope>();
      iter->parent = scope;
      EVAL_RETURN_IF_ERROR(s.line, assign(s.targets, items[static_cast<size_t>(i)], *iter));
      ValueDict loop;
      loop.set("index", Value(i + 1));
      loop.set("index0", Value(i));
      loop.set("revindex", Value(n - i));
      loop.set("revindex0", Value(n - i - 1));
      loop.set("first", Value(i == 0));
      loop.set("last", Value(i == n - 1));
      loop.set("length", Value(n));
      loop.set("depth", Value(int64_t{1}));
      loop.set("depth0", Value(int64_t{0}));
      loop.set("previtem", i > 0 ? items[static_cast<size_t>(i - 1)]
                                 : Value::undefined("there is no previous item"));
      loop.set("nextitem", i + 1 < n ? items[static_cast<size_t>(i + 1)]
                                     : Value::undefined("there is no next item"));
      iter->vars.set("loop", Value(std::move(loop)));
      FRUGAL_ASSIGN_OR_RETURN(Flow f, exec_body(s.body, iter, out));
      if (f == Flow::kBreak) break;
    }
    return Flow::kNormal;
  }

  // ---- expressions ----

  Value lookup(const std::string& name, const ScopePtr& scope) {
    for (const Scope* s = scope.get(); s; s = s->parent.get()) {
      if (const Value* v = s->vars.find(name)) return *v;
    }
    static const std::pair<const char*, Callable::Kind> kBuiltins[] = {
        {"range", Callable::Kind::kRange},
        {"namespace", Callable::Kind::kNamespace},
        {"dict", Callable::Kind::kDict},
        {"raise_exception", Callable::Kind::kRaiseException},
        {"strftime_now", Callable::Kind::kStrftimeNow},
    };
    for (const auto& [n, kind] : kBuiltins) {
      if (name == n) {
        auto c = std::make_shared<Callable>();
        c->kind = kind;
        return Value::callable(std::move(c));
      }
    }
    return Value::undefined("'" + name + "' is undefined");
  }

  Result<Args> eval_args(const CallArgs& call, const ScopePtr& scope) {
    Args args;
    for (const ExprPtr& e : call.positional) {
      FRUGAL_ASSIGN_OR_RETURN(Value v, eval(*e, scope));
      args.positional.push_back(std::move(v));
    }
    for (const auto& [k, e] : call.keyword) {
      FRUGAL_ASSIGN_OR_RETURN(Value v, eval(*e, scope));
      args.keyword.emplace_back(k, std::move(v));
    }
    return args;
  }

  Result<Value> eval(const Expr& e, const ScopePtr& scope) {
    FrameGuard frame(frames_);
    EVAL_RETURN_IF_ERROR(e.line, check_frames());
    EVAL_RETURN_IF_ERROR(e.line, ev_.work(1));
    auto r = eval_inner(e, scope);
    if (!r.is_ok()) return at_line(e.line, r.status());
    return r;
  }

  // eval and eval_inner are the frames every level of an expression holds while the levels below
  // it run, so each kind's work lives in a function of its own that is never inlined: one switch
  // holding every kind's locals was 608 bytes a level in Release and 13 KiB under ASan, where a
  // 500-level chain overflowed an 8 MiB stack.
  Result<Value> eval_inner(const Expr& e, const ScopePtr& scope) {
    switch (e.kind) {
      case ExprKind::kLiteral: return e.literal;
      case ExprKind::kName: return lookup(e.name, scope);
      case ExprKind::kList:
      case ExprKind::kDict: return eval_display(e, scope);
      case ExprKind::kGetAttr:
      case ExprKind::kGetItem: return eval_subscript(e, scope);
      case ExprKind::kSlice: return eval_slice(e, scope);
      case ExprKind::kCall: return eval_call(e, scope);
      case ExprKind::kFilter: return eval_filter(e, scope);
      case ExprKind::kTest: return eval_test(e, scope);
      case ExprKind::kNot:
      case ExprKind::kNeg:
      case ExprKind::kPos: return eval_unary(e, scope);
      case ExprKind::kBinary: return eval_binary(e, scope);
      case ExprKind::kCompare: return eval_compare(e, scope);
      case ExprKind::kAnd:
      case ExprKind::kOr:
      case ExprKind::kCondExpr: return eval_branch(e, scope);
    }
    return internal_error("unhandled expression");
  }

  [[gnu::noinline]] Result<Value> eval_display(const Expr& e, const ScopePtr& scope) {
    if (e.kind == ExprKind::kList) {
      ValueList items;
      for (const ExprPtr& x : e.items) {
        FRUGAL_ASSIGN_OR_RETURN(Value v, eval(*x, scope));
        items.push_back(std::move(v));
      }
      return Value(std::move(items));
    }
    ValueDict d;
    for (size_t i = 0; i + 1 < e.items.size(); i += 2) {
      FRUGAL_ASSIGN_OR_RETURN(Value k, eval(*e.items[i], scope));
      FRUGAL_ASSIGN_OR_RETURN(Value v, eval(*e.items[i + 1], scope));
      if (!k.is_string()) return unsupported("dictionary keys other than strings are not supported");
      d.set(k.as_string(), std::move(v));
    }
    return Value(std::move(d));
  }

  [[gnu::noinline]] Result<Value> eval_subscript(const Expr& e, const ScopePtr& scope) {
    FRUGAL_ASSIGN_OR_RETURN(Value obj, eval(*e.a, scope));
    if (e.kind == ExprKind::kGetAttr) return get_attr(obj, e.name);
    FRUGAL_ASSIGN_OR_RETURN(Value key, eval(*e.b, scope));
    return get_item(obj, key);
  }

  [[gnu::noinline]] Result<Value> eval_filter(const Expr& e, const ScopePtr& scope) {
    FRUGAL_ASSIGN_OR_RETURN(Value input, eval(*e.a, scope));
    FRUGAL_ASSIGN_OR_RETURN(Args args, eval_args(e.call, scope));
    // Every filter but length walks or copies its input.
    if (e.name != "length" && e.name != "count") FRUGAL_RETURN_IF_ERROR(ev_.work(walk_cost(input)));
    return e.filter(ev_, input, args);
  }

  [[gnu::noinline]] Result<Value> eval_test(const Expr& e, const ScopePtr& scope) {
    FRUGAL_ASSIGN_OR_RETURN(Value input, eval(*e.a, scope));
    FRUGAL_ASSIGN_OR_RETURN(Args args, eval_args(e.call, scope));
    for (const Value& a : args.positional) FRUGAL_RETURN_IF_ERROR(ev_.work(walk_cost(a)));
    FRUGAL_ASSIGN_OR_RETURN(bool r, e.test(ev_, input, args));
    return Value(r != e.negated);
  }

  [[gnu::noinline]] Result<Value> eval_unary(const Expr& e, const ScopePtr& scope) {
    FRUGAL_ASSIGN_OR_RETURN(Value v, eval(*e.a, scope));
    if (e.kind == ExprKind::kNot) return Value(!truthy(v));
    if (v.is_undefined()) return invalid_argument(v.undefined_why());
    if (!v.is_number()) {
      return invalid_argument(std::string("bad operand type for unary ") +
                              (e.kind == ExprKind::kNeg ? "-" : "+") + ": '" + type_name(v) + "'");
    }
    if (e.kind == ExprKind::kPos) return v.kind() == Value::Kind::kBool ? Value(v.as_int()) : v;
    if (v.kind() == Value::Kind::kFloat) return Value(-v.as_float());
    if (v.as_int() == INT64_MIN) return unsupported("integer arithmetic past 64 bits is not supported");
    return Value(-v.as_int());
  }

  [[gnu::noinline]] Result<Value> eval_binary(const Expr& e, const ScopePtr& scope) {
    FRUGAL_ASSIGN_OR_RETURN(Value x, eval(*e.a, scope));
    FRUGAL_ASSIGN_OR_RETURN(Value y, eval(*e.b, scope));
    FRUGAL_ASSIGN_OR_RETURN(Value r, arith(e.name, x, y, opt_.max_output_bytes));
    if (r.is_string()) FRUGAL_RETURN_IF_ERROR(ev_.built(r.as_string().size()));
    if (r.is_list()) FRUGAL_RETURN_IF_ERROR(ev_.built_list(r.as_list().size()));
    return r;
  }

  // and, or, and `b if a else c`: the operand not taken is never evaluated.
  [[gnu::noinline]] Result<Value> eval_branch(const Expr& e, const ScopePtr& scope) {
    FRUGAL_ASSIGN_OR_RETURN(Value x, eval(*e.a, scope));
    if (e.kind == ExprKind::kCondExpr) {
      if (truthy(x)) return eval(*e.b, scope);
      if (e.c) return eval(*e.c, scope);
      return Value::undefined("the conditional expression has no else branch");
    }
    if (truthy(x) == (e.kind == ExprKind::kOr)) return x;
    return eval(*e.b, scope);
  }

  [[gnu::noinline]] Result<Value> eval_compare(const Expr& e, const ScopePtr& scope) {
    FRUGAL_ASSIGN_OR_RETURN(Value left, eval(*e.items[0], scope));
    for (size_t i = 0; i < e.ops.size(); ++i) {
      FRUGAL_ASSIGN_OR_RETURN(Value right, eval(*e.items[i + 1], scope));
      FRUGAL_RETURN_IF_ERROR(ev_.work(walk_cost(left) + walk_cost(right)));  // lists compare itemwise
      const std::string& op = e.ops[i];
      bool r;
      if (op == "==") {
        r = equals(left, right);
      } else if (op == "!=") {
        r = !equals(left, right);
      } else if (op == "<") {
        FRUGAL_ASSIGN_OR_RETURN(r, less(left, right));
      } else if (op == ">") {
        FRUGAL_ASSIGN_OR_RETURN(r, less(right, left));
      } else if (op == "<=") {
        FRUGAL_ASSIGN_OR_RETURN(bool gt, less(right, left));
        r = !gt;
      } else if (op == ">=") {
        FRUGAL_ASSIGN_OR_RETURN(bool lt, less(left, right));
        r = !lt;
      } else {
        Args a;
        a.positional.push_back(right);
        FRUGAL_ASSIGN_OR_RETURN(r, find_test("in")(ev_, left, a));
        if (op == "not in") r = !r;
      }
      if (!r) return Value(false);
      left = std::move(right);
    }
    return Value(true);
  }

  [[gnu::noinline]] Result<Value> eval_slice(const Expr& e, const ScopePtr& scope) {
    FRUGAL_ASSIGN_OR_RETURN(Value obj, eval(*e.a, scope));
    int64_t bound[3] = {0, 0, 1};
    bool given[3] = {false, false, false};
    const Expr* parts[3] = {e.b.get(), e.c.get(), e.d.get()};
    for (int k = 0; k < 3; ++k) {
      if (!parts[k]) continue;
      FRUGAL_ASSIGN_OR_RETURN(Value v, eval(*parts[k], scope));
      if (v.is_none()) continue;
      if (v.kind() != Value::Kind::kInt && v.kind() != Value::Kind::kBool) {
        return invalid_argument("slice indices must be integers or none");
      }
      bound[k] = v.as_int();
      given[k] = true;
    }
    if (obj.is_undefined()) return invalid_argument(obj.undefined_why());
    if (bound[2] == 0) return invalid_argument("slice step cannot be zero");
    std::vector<uint32_t> cps;
    size_t n;
    if (obj.is_list()) {
      n = obj.as_list().size();
    } else if (obj.is_string()) {
      cps = decode_utf8(obj.as_string());
      n = cps.size();
    } else {
      return Value::undefined(std::string("'") + type_name(obj) + " object' cannot be sliced");
    }
    // Python's slice.indices().
    const int64_t len = static_cast<int64_t>(n);
    const int64_t step = bound[2];
    auto clamp = [&](int64_t v, bool has, int64_t def) {
      if (!has) return def;
      if (v < 0) v += len;
      if (step > 0) return std::clamp<int64_t>(v, 0, len);
      return std::clamp<int64_t>(v, -1, len - 1);
    };
    const int64_t start = clamp(bound[0], given[0], step > 0 ? 0 : len - 1);
    const int64_t stop = clamp(bound[1], given[1], step > 0 ? len : -1);
    std::vector<size_t> picks;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) picks.push_back(static_cast<size_t>(i));
    FRUGAL_RETURN_IF_ERROR(ev_.built_list(picks.size()));
    if (obj.is_list()) {
      ValueList out;
      for (size_t i : picks) out.push_back(obj.as_list()[i]);
      return Value(std::move(out));
    }
    std::string out;
    for (size_t i : picks) append_utf8(out, cps[i]);
    return Value(std::move(out));
  }

  [[gnu::noinline]] Result<Value> eval_call(const Expr& e, const ScopePtr& scope) {
    if (e.a->kind == ExprKind::kGetAttr) {
      FRUGAL_ASSIGN_OR_RETURN(Value obj, eval(*e.a->a, scope));
      if (obj.kind() != Value::Kind::kNamespace) {
        FRUGAL_ASSIGN_OR_RETURN(Args args, eval_args(e.call, scope));
        return call_method(ev_, obj, e.a->name, args);
      }
    }
    FRUGAL_ASSIGN_OR_RETURN(Value f, eval(*e.a, scope));
    FRUGAL_ASSIGN_OR_RETURN(Args args, eval_args(e.call, scope));
    if (f.is_undefined()) return invalid_argument(f.undefined_why());
    if (f.kind() != Value::Kind::kCallable) {
      return invalid_argument(std::string("'") + type_name(f) + "' object is not callable");
    }
    return call(f.as_callable(), args, e.line);
  }

  Result<Value> call(const Callable& c, const Args& args, int line) {
    switch (c.kind) {
      case Callable::Kind::kMacro: return call_macro(c, args);
      case Callable::Kind::kRange: return call_range(args);
      case Callable::Kind::kNamespace:
      case Callable::Kind::kDict: {
        ValueDict d;
        for (const Value& p : args.positional) {
          if (!p.is_dict()) return invalid_argument("namespace() and dict() take a dict or name=value arguments");
          for (const auto& [k, v] : p.as_dict()) d.set(k, v);
        }
        for (const auto& [k, v] : args.keyword) d.set(k, v);
        return c.kind == Callable::Kind::kNamespace ? Value::make_namespace(std::move(d)) : Value(std::move(d));
      }
      case Callable::Kind::kRaiseException: {
        const std::string msg = args.positional.empty() ? "" : to_python_str(args.positional[0]);
        return invalid_argument("the template raised an error at line " + std::to_string(line) +
                                ": " + msg);
      }
      case Callable::Kind::kStrftimeNow: {
        if (args.positional.empty() || !args.positional[0].is_string()) {
          return invalid_argument("strftime_now() takes a format string");
        }
        const std::time_t now = opt_.now ? *opt_.now : std::time(nullptr);
        std::tm tm{};
        localtime_r(&now, &tm);
        char buf[256];
        const size_t n = std::strftime(buf, sizeof(buf), args.positional[0].as_string().c_str(), &tm);
        return Value(std::string(buf, n));
      }
    }
    return internal_error("unhandled callable");
  }

  Result<Value> call_range(const Args& args) {
    int64_t v[3] = {0, 0, 1};
    const size_t n = args.positional.size();
    if (n < 1 || n > 3 || !args.keyword.empty()) return invalid_argument("range() takes 1 to 3 integers");
    for (size_t i = 0; i < n; ++i) {
      const Value& a = args.positional[i];
      if (a.kind() != Value::Kind::kInt && a.kind() != Value::Kind::kBool) {
        return invalid_argument(std::string("range() takes integers, not '") + type_name(a) + "'");
      }
    }
    if (n == 1) {
      v[1] = args.positional[0].as_int();
    } else {
      v[0] = args.positional[0].as_int();
      v[1] = args.positional[1].as_int();
      if (n == 3) v[2] = args.positional[2].as_int();
    }
    if (v[2] == 0) return invalid_argument("range() step must not be zero");
    // The length, computed without overflow and before anything is allocated.
    const long double span = static_cast<long double>(v[1]) - static_cast<long double>(v[0]);
    const long double count = std::ceil(span / static_cast<long double>(v[2]));
    if (count > kMaxRange) {
      return out_of_range("range() of more than " + std::to_string(kMaxRange) +
                          " items is refused (as jinja2's sandbox does)");
    }
    ValueList out;
    for (int64_t i = v[0]; v[2] > 0 ? i < v[1] : i > v[1]; i += v[2]) {
      out.emplace_back(i);
      if (static_cast<int64_t>(out.size()) > kMaxRange) break;
    }
    FRUGAL_RETURN_IF_ERROR(ev_.built_list(out.size()));
    return Value(std::move(out));
  }

  Result<Value> call_macro(const Callable& c, const Args& args) {
    const Stmt& m = *c.macro;
    if (call_depth_ >= opt_.max_depth) {
      return out_of_range("macro calls are nested more than " + std::to_string(opt_.max_depth) + " deep");
    }
    if (args.positional.size() > m.targets.size()) {
      return invalid_argument("macro '" + m.text + "' takes " + std::to_string(m.targets.size()) +
                              " arguments, " + std::to_string(args.positional.size()) + " given");
    }
    auto scope = std::make_shared<Scope>();
    scope->parent = std::static_pointer_cast<Scope>(c.scope);
    std::vector<bool> bound(m.targets.size(), false);
    for (size_t i = 0; i < args.positional.size(); ++i) {
      scope->vars.set(m.targets[i], args.positional[i]);
      bound[i] = true;
    }
    for (const auto& [k, v] : args.keyword) {
      auto it = std::find(m.targets.begin(), m.targets.end(), k);
      if (it == m.targets.end()) return invalid_argument("macro '" + m.text + "' has no parameter '" + k + "'");
      scope->vars.set(k, v);
      bound[static_cast<size_t>(it - m.targets.begin())] = true;
    }
    for (size_t i = 0; i < m.targets.size(); ++i) {
      if (bound[i]) continue;
      if (m.conds[i]) {
        FRUGAL_ASSIGN_OR_RETURN(Value d, eval(*m.conds[i], scope));
        scope->vars.set(m.targets[i], std::move(d));
      } else {
        scope->vars.set(m.targets[i], Value::undefined("parameter '" + m.targets[i] + "' was not provided"));
      }
    }
    ++call_depth_;
    std::string out;
    auto r = exec_body(m.body, scope, out);
    --call_depth_;
    if (!r.is_ok()) return r.status();
    return Value(std::move(out));
  }

  const Options& opt_;
  Evaluator ev_;
  std::vector<ScopePtr> captured_;  // scopes a macro holds (emptied when run() ends)
  int call_depth_ = 0;
  int frames_ = 0;  // statements and expressions being run (FrameGuard)
};

Result<Value> checked(bool overflow, int64_t v) {
  if (overflow) return unsupported("integer arithmetic past 64 bits is not supported");
  return Value(v);
}

Result<Value> repeat(const Value& seq, int64_t times, size_t max_bytes) {
  if (times < 0) times = 0;
  const size_t unit = seq.is_string() ? seq.as_string().size() : seq.as_list().size();
  // Nothing repeated any number of times is nothing: return at once rather than loop `times`
  // (up to 2^63) times ('' * 9223372036854775807 hung the renderer; found by jinja_fuzz).
  if (unit == 0 || times == 0) return seq.is_string() ? Value(std::string()) : Value(ValueList{});
  if (unit != 0 && static_cast<uint64_t>(times) > max_bytes / unit) {
    return out_of_range("repeating a value " + std::to_string(times) + " times would build more "
                        "than the " + std::to_string(max_bytes) + " bytes the output may have");
  }
  if (seq.is_string()) {
    std::string out;
    out.reserve(unit * static_cast<size_t>(times));
    for (int64_t i = 0; i < times; ++i) out += seq.as_string();
    return Value(std::move(out));
  }
  ValueList out;
  for (int64_t i = 0; i < times; ++i) out.insert(out.end(), seq.as_list().begin(), seq.as_list().end());
  return Value(std::move(out));
}

Result<Value> int_pow(int64_t base, int64_t exp) {
  int64_t result = 1;
  while (exp > 0) {
    if ((exp & 1) && __builtin_mul_overflow(result, base, &result)) return checked(true, 0);
    exp >>= 1;
    if (exp && __builtin_mul_overflow(base, base, &base)) return checked(true, 0);
  }
  return Value(result);
}

Result<Value> arith(const std::string& op, const Value& x, const Value& y, size_t max_bytes) {
  if (op == "~") return Value(to_python_str(x) + to_python_str(y));
  if (x.is_undefined()) return invalid_argument(x.undefined_why());
  if (y.is_undefined()) return invalid_argument(y.undefined_why());
  const bool ints = (x.kind() == Value::Kind::kInt || x.kind() == Value::Kind::kBool) &&
                    (y.kind() == Value::Kind::kInt || y.kind() == Value::Kind::kBool);
  const bool nums = x.is_number() && y.is_number();
  if (op == "+") {
    if (ints) {
      int64_t r;
      const bool overflow = __builtin_add_overflow(x.as_int(), y.as_int(), &r);
      return checked(overflow, r);
    }
    if (nums) return Value(x.as_float() + y.as_float());
    const size_t total = x.is_string() && y.is_string() ? x.as_string().size() + y.as_string().size()
                         : x.is_list() && y.is_list() ? x.as_list().size() + y.as_list().size()
                                                      : 0;
    if (total > max_bytes) {
      return out_of_range("the template built a value of " + std::to_string(total) +
                          " bytes, more than the " + std::to_string(max_bytes) +
                          " its output may have");
    }
    if (x.is_string() && y.is_string()) return Value(x.as_string() + y.as_string());
    if (x.is_list() && y.is_list()) {
      ValueList out = x.as_list();
      out.insert(out.end(), y.as_list().begin(), y.as_list().end());
      return Value(std::move(out));
    }
  } else if (op == "-") {
    if (ints) {
      int64_t r;
      const bool overflow = __builtin_sub_overflow(x.as_int(), y.as_int(), &r);
      return checked(overflow, r);
    }
    if (nums) return Value(x.as_float() - y.as_float());
  } else if (op == "*") {
    if (ints) {
      int64_t r;
      const bool overflow = __builtin_mul_overflow(x.as_int(), y.as_int(), &r);
      return checked(overflow, r);
    }
    if (nums) return Value(x.as_float() * y.as_float());
    const bool y_int = y.kind() == Value::Kind::kInt || y.kind() == Value::Kind::kBool;
    const bool x_int = x.kind() == Value::Kind::kInt || x.kind() == Value::Kind::kBool;
    if ((x.is_string() || x.is_list()) && y_int) return repeat(x, y.as_int(), max_bytes);
    if ((y.is_string() || y.is_list()) && x_int) return repeat(y, x.as_int(), max_bytes);
  } else if (op == "/" || op == "//" || op == "%") {
    if (op == "%" && x.is_string()) return unsupported("string formatting with % is not supported");
    if (nums) {
      if (y.as_float() == 0.0) return invalid_argument("division by zero");
      if (op == "/") return Value(x.as_float() / y.as_float());
      if (ints) {
        const int64_t a = x.as_int(), b = y.as_int();
        if (a == INT64_MIN && b == -1) return unsupported("integer arithmetic past 64 bits is not supported");
        int64_t q = a / b, r = a % b;
        if (r != 0 && ((r < 0) != (b < 0))) {
          q -= 1;
          r += b;
        }
        return Value(op == "//" ? q : r);
      }
      // CPython's float divmod.
      const double a = x.as_float(), b = y.as_float();
      double mod = std::fmod(a, b);
      double div = (a - mod) / b;
      if (mod != 0) {
        if ((b < 0) != (mod < 0)) {
          mod += b;
          div -= 1.0;
        }
      } else {
        mod = std::copysign(0.0, b);
      }
      if (op == "%") return Value(mod);
      if (div != 0) {
        double fl = std::floor(div);
        if (div - fl > 0.5) fl += 1.0;
        return Value(fl);
      }
      return Value(std::copysign(0.0, a / b));
    }
  } else if (op == "**") {
    if (ints && y.as_int() >= 0) return int_pow(x.as_int(), y.as_int());
    if (nums) {
      if (x.as_float() == 0.0 && y.as_float() < 0) return invalid_argument("0.0 cannot be raised to a negative power");
      return Value(std::pow(x.as_float(), y.as_float()));
    }
  }
  return invalid_argument("unsupported operand types for " + op + ": '" + type_name(x) + "' and '" +
                          type_name(y) + "'");
}

}  // namespace
}  // namespace detail

Result<Template> Template::parse(std::string_view source, Options options) {
  FRUGAL_ASSIGN_OR_RETURN(std::vector<detail::Token> tokens, detail::lex(source, options));
  FRUGAL_ASSIGN_OR_RETURN(std::shared_ptr<const detail::Program> program,
                          detail::parse_program(std::move(tokens), options));
  return Template(std::move(program), std::move(options));
}

Result<std::string> Template::render(const ValueDict& globals,
                                     std::optional<std::time_t> now) const {
  Options options = options_;
  if (now) options.now = now;
  detail::Renderer r(options);
  return r.run(*program_, globals);
}

}  // namespace frugal::jinja
