// Jinja parser: tokens to a syntax tree, with jinja2's operator precedence (filters bind tighter
// than arithmetic, `not` looser than comparisons) and its statements (for, if, set, macro,
// filter, break/continue). Filters and tests are resolved here, so an unknown one is a parse
// error, as it is in jinja2.
#include <set>

#include "engine/jinja_internal.h"

namespace frugal::jinja::detail {

namespace {

class Parser {
 public:
  Parser(std::vector<Token> tokens, const Options& options)
      : t_(std::move(tokens)), opt_(options) {}

  Result<std::shared_ptr<const Program>> run() {
    auto program = std::make_shared<Program>();
    std::string ended;
    FRUGAL_ASSIGN_OR_RETURN(program->body, parse_body({}, &ended, 0));
    return std::shared_ptr<const Program>(std::move(program));
  }

 private:
  // ---- token helpers ----
  const Token& cur() const { return t_[i_]; }
  const Token& peek(size_t n = 1) const { return t_[std::min(i_ + n, t_.size() - 1)]; }
  bool is_op(const char* op) const { return cur().type == Tok::kOp && cur().text == op; }
  bool is_name(const char* name) const { return cur().type == Tok::kName && cur().text == name; }
  void next() {
    if (i_ + 1 < t_.size()) ++i_;
  }

  Status error(const std::string& what) const {
    return invalid_argument("template line " + std::to_string(cur().line) + ": " + what);
  }
  Status not_supported(const std::string& what) const {
    return unsupported("template line " + std::to_string(cur().line) + ": " + what);
  }
  static std::string describe(const Token& t) {
    switch (t.type) {
      case Tok::kData: return "template text";
      case Tok::kVarBegin: return "'{{'";
      case Tok::kVarEnd: return "'}}'";
      case Tok::kBlockBegin: return "'{%'";
      case Tok::kBlockEnd: return "'%}'";
      case Tok::kName: return "'" + t.text + "'";
      case Tok::kString: return "a string";
      case Tok::kInt:
      case Tok::kFloat: return "a number";
      case Tok::kOp: return "'" + t.text + "'";
      case Tok::kEof: return "the end of the template";
    }
    return "a token";
  }
  Status expect_op(const char* op) {
    if (!is_op(op)) return error(std::string("expected '") + op + "', found " + describe(cur()));
    next();
    return Status::ok();
  }
  Status expect_block_end() {
    if (cur().type != Tok::kBlockEnd) {
      return error("expected the end of the statement block ('%}'), found " + describe(cur()));
    }
    next();
    return Status::ok();
  }
  Result<std::string> expect_name() {
    if (cur().type != Tok::kName) return error("expected a name, found " + describe(cur()));
    std::string n = cur().text;
    next();
    return n;
  }

  // Guards nesting (blocks and expressions) so a hostile template cannot exhaust the stack.
  struct DepthGuard {
    explicit DepthGuard(int& d) : depth(d) { ++depth; }
    ~DepthGuard() { --depth; }
    int& depth;
  };
  Status check_depth() const {
    if (depth_ > opt_.max_depth) {
      return out_of_range("template line " + std::to_string(cur().line) +
                          ": blocks or expressions are nested more than " +
                          std::to_string(opt_.max_depth) + " deep");
    }
    return Status::ok();
  }

  // Evaluating an expression and destroying one recurse once per level of its tree, and
  // left-associative chains (a + b + c, x|f|g, a.b.c, f()()) grow that tree without recursing the
  // parser, so the nesting guard above cannot see them. Each node that takes children is sealed
  // once they are in place: it takes its height from them, and a tree taller than
  // max_expression_height is refused while it is still shallow enough to free.
  Status seal(Expr& e) const {
    int below = 0;
    auto see = [&below](const ExprPtr& x) {
      if (x) below = std::max(below, x->height);
    };
    for (const ExprPtr* x : {&e.a, &e.b, &e.c, &e.d}) see(*x);
    for (const ExprPtr& x : e.items) see(x);
    for (const ExprPtr& x : e.call.positional) see(x);
    for (const auto& [key, x] : e.call.keyword) see(x);
    e.height = below + 1;
    if (e.height > opt_.max_expression_height) {
      return out_of_range("template line " + std::to_string(e.line) + ": an expression is more than " +
                          std::to_string(opt_.max_expression_height) +
                          " levels deep (a chain of that many operators, filters or lookups)");
    }
    return Status::ok();
  }

  ExprPtr make(ExprKind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }

  // ---- statements ----

  // Parses until a block tag whose name is one of `ends` (consumed, stored in *ended) or the end.
  Result<Body> parse_body(const std::vector<std::string>& ends, std::string* ended, int opened_line) {
    DepthGuard guard(depth_);
    FRUGAL_RETURN_IF_ERROR(check_depth());
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.type == Tok::kEof) {
        if (ends.empty()) return body;
        return invalid_argument("template line " + std::to_string(t.line) +
                                ": unexpected end of template; the block opened on line " +
                                std::to_string(opened_line) + " needs '" + ends.front() + "'");
      }
      if (t.type == Tok::kData) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kData;
        s->line = t.line;
        s->text = t.text;
        body.push_back(std::move(s));
        next();
        continue;
      }
      if (t.type == Tok::kVarBegin) {
        const int line = t.line;
        next();
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kOutput;
        s->line = line;
        FRUGAL_ASSIGN_OR_RETURN(s->expr, parse_tuple(true));
        if (cur().type != Tok::kVarEnd) return error("expected '}}', found " + describe(cur()));
        next();
        body.push_back(std::move(s));
        continue;
      }
      if (t.type != Tok::kBlockBegin) return error("unexpected " + describe(t));
      next();
      if (cur().type != Tok::kName) return error("expected a statement name, found " + describe(cur()));
      const std::string name = cur().text;
      for (const std::string& e : ends) {
        if (name == e) {
          next();
          *ended = name;
          return body;
        }
      }
      FRUGAL_ASSIGN_OR_RETURN(StmtPtr s, parse_statement());
      if (s) body.push_back(std::move(s));
    }
  }

  Result<StmtPtr> parse_statement() {
    const std::string name = cur().text;
    const int line = cur().line;
    if (name == "for") return parse_for();
    if (name == "if") return parse_if();
    if (name == "set") return parse_set();
    if (name == "macro") return parse_macro();
    if (name == "filter") return parse_filter_block();
    if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) return error("'" + name + "' outside a loop");
      next();
      FRUGAL_RETURN_IF_ERROR(expect_block_end());
      auto s = std::make_unique<Stmt>();
      s->kind = name == "break" ? StmtKind::kBreak : StmtKind::kContinue;
      s->line = line;
      return s;
    }
    if (name == "generation") {  // transformers' assistant-mask extension: renders its body
      next();
      FRUGAL_RETURN_IF_ERROR(expect_block_end());
      auto s = std::make_unique<Stmt>();
      s->kind = StmtKind::kScope;
      s->line = line;
      std::string ended;
      FRUGAL_ASSIGN_OR_RETURN(s->body, parse_body({"endgeneration"}, &ended, line));
      FRUGAL_RETURN_IF_ERROR(expect_block_end());
      return s;
    }
    static const std::set<std::string> kUnsupported = {
        "extends", "block", "include", "import", "from", "call", "with", "autoescape", "trans"};
    if (kUnsupported.count(name)) return not_supported("'{% " + name + " %}' is not supported");
    static const std::set<std::string> kEnds = {"endfor", "endif", "endset", "endmacro",
                                                "endfilter", "else", "elif", "endraw",
                                                "endgeneration"};
    if (kEnds.count(name)) return error("unexpected '" + name + "'");
    return error("unknown tag '" + name + "'");
  }

  Result<StmtPtr> parse_for() {
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::kFor;
    s->line = cur().line;
    next();
    FRUGAL_RETURN_IF_ERROR(parse_targets(s->targets));
    if (!is_name("in")) return error("expected 'in' in a for loop, found " + describe(cur()));
    next();
    FRUGAL_ASSIGN_OR_RETURN(s->expr, parse_tuple(false));
    if (is_name("recursive")) return not_supported("recursive for loops are not supported");
    if (is_name("if")) {
      next();
      FRUGAL_ASSIGN_OR_RETURN(s->cond, parse_expression(true));
    }
    FRUGAL_RETURN_IF_ERROR(expect_block_end());
    std::string ended;
    ++loop_depth_;
    auto body = parse_body({"endfor", "else"}, &ended, s->line);
    --loop_depth_;
    if (!body.is_ok()) return body.status();
    s->body = std::move(body).value();
    FRUGAL_RETURN_IF_ERROR(expect_block_end());
    if (ended == "else") {
      FRUGAL_ASSIGN_OR_RETURN(s->else_body, parse_body({"endfor"}, &ended, s->line));
      FRUGAL_RETURN_IF_ERROR(expect_block_end());
    }
    return s;
  }

  Status parse_targets(std::vector<std::string>& targets) {
    const bool paren = is_op("(");
    if (paren) next();
    while (true) {
      FRUGAL_ASSIGN_OR_RETURN(std::string n, expect_name());
      targets.push_back(std::move(n));
      if (!is_op(",")) break;
      next();
      if (paren && is_op(")")) break;
    }
    if (paren) FRUGAL_RETURN_IF_ERROR(expect_op(")"));
    return Status::ok();
  }

  Result<StmtPtr> parse_if() {
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::kIf;
    s->line = cur().line;
    next();
    while (true) {
      FRUGAL_ASSIGN_OR_RETURN(ExprPtr cond, parse_tuple(false));
      FRUGAL_RETURN_IF_ERROR(expect_block_end());
      std::string ended;
      FRUGAL_ASSIGN_OR_RETURN(Body body, parse_body({"elif", "else", "endif"}, &ended, s->line));
      s->conds.push_back(std::move(cond));
      s->bodies.push_back(std::move(body));
      if (ended == "elif") continue;
      FRUGAL_RETURN_IF_ERROR(expect_block_end());
      if (ended == "else") {
        FRUGAL_ASSIGN_OR_RETURN(s->else_body, parse_body({"endif"}, &ended, s->line));
        FRUGAL_RETURN_IF_ERROR(expect_block_end());
      }
      return s;
    }
  }

  Result<StmtPtr> parse_set() {
    auto s = std::make_unique<Stmt>();
    s->line = cur().line;
    next();
    if (cur().type == Tok::kName && peek().type == Tok::kOp && peek().text == ".") {
      // set ns.attr = value
      s->kind = StmtKind::kSetAttr;
      s->cond = make(ExprKind::kName, cur().line);
      s->cond->name = cur().text;
      next();
      next();
      FRUGAL_ASSIGN_OR_RETURN(s->text, expect_name());
      FRUGAL_RETURN_IF_ERROR(expect_op("="));
      FRUGAL_ASSIGN_OR_RETURN(s->expr, parse_tuple(true));
      FRUGAL_RETURN_IF_ERROR(expect_block_end());
      return s;
    }
    FRUGAL_RETURN_IF_ERROR(parse_targets(s->targets));
    if (is_op("=")) {
      next();
      s->kind = StmtKind::kSet;
      FRUGAL_ASSIGN_OR_RETURN(s->expr, parse_tuple(true));
      FRUGAL_RETURN_IF_ERROR(expect_block_end());
      return s;
    }
    if (s->targets.size() != 1) return error("a block set assigns one name");
    if (is_op("|")) return not_supported("filters on a block set are not supported");
    FRUGAL_RETURN_IF_ERROR(expect_block_end());
    s->kind = StmtKind::kSetBlock;
    std::string ended;
    FRUGAL_ASSIGN_OR_RETURN(s->body, parse_body({"endset"}, &ended, s->line));
    FRUGAL_RETURN_IF_ERROR(expect_block_end());
    return s;
  }

  Result<StmtPtr> parse_macro() {
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::kMacro;
    s->line = cur().line;
    next();
    FRUGAL_ASSIGN_OR_RETURN(s->text, expect_name());
    FRUGAL_RETURN_IF_ERROR(expect_op("("));
    while (!is_op(")")) {
      FRUGAL_ASSIGN_OR_RETURN(std::string param, expect_name());
      ExprPtr def;
      if (is_op("=")) {
        next();
        FRUGAL_ASSIGN_OR_RETURN(def, parse_expression(true));
      } else if (!s->conds.empty() && s->conds.back()) {
        return error("non-default argument '" + param + "' follows a default argument");
      }
      s->targets.push_back(std::move(param));
      s->conds.push_back(std::move(def));
      if (!is_op(",")) break;
      next();
    }
    FRUGAL_RETURN_IF_ERROR(expect_op(")"));
    FRUGAL_RETURN_IF_ERROR(expect_block_end());
    std::string ended;
    const int saved_loops = loop_depth_;
    loop_depth_ = 0;  // break and continue do not cross a macro
    auto body = parse_body({"endmacro"}, &ended, s->line);
    loop_depth_ = saved_loops;
    if (!body.is_ok()) return body.status();
    s->body = std::move(body).value();
    FRUGAL_RETURN_IF_ERROR(expect_block_end());
    return s;
  }

  Result<StmtPtr> parse_filter_block() {
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::kFilterBlock;
    s->line = cur().line;
    next();
    FRUGAL_ASSIGN_OR_RETURN(std::string name, expect_name());
    FRUGAL_ASSIGN_OR_RETURN(s->filter, resolve_filter(name));
    if (is_op("(")) FRUGAL_RETURN_IF_ERROR(parse_call_args(s->call));
    FRUGAL_RETURN_IF_ERROR(expect_block_end());
    std::string ended;
    FRUGAL_ASSIGN_OR_RETURN(s->body, parse_body({"endfilter"}, &ended, s->line));
    FRUGAL_RETURN_IF_ERROR(expect_block_end());
    return s;
  }

  // ---- expressions ----

  // expr (, expr)* -> a tuple (a list here) when there is a comma.
  Result<ExprPtr> parse_tuple(bool with_condexpr) {
    const int line = cur().line;
    FRUGAL_ASSIGN_OR_RETURN(ExprPtr first, parse_expression(with_condexpr));
    if (!is_op(",")) return first;
    ExprPtr list = make(ExprKind::kList, line);
    list->items.push_back(std::move(first));
    while (is_op(",")) {
      next();
      if (cur().type == Tok::kBlockEnd || cur().type == Tok::kVarEnd || is_op(")") ||
          is_name("in") || is_op("=")) {
        break;
      }
      FRUGAL_ASSIGN_OR_RETURN(ExprPtr e, parse_expression(with_condexpr));
      list->items.push_back(std::move(e));
    }
    FRUGAL_RETURN_IF_ERROR(seal(*list));
    return list;
  }

  Result<ExprPtr> parse_expression(bool with_condexpr) {
    DepthGuard guard(depth_);
    FRUGAL_RETURN_IF_ERROR(check_depth());
    if (!with_condexpr) return parse_or();
    FRUGAL_ASSIGN_OR_RETURN(ExprPtr e, parse_or());
    while (is_name("if")) {
      const int line = cur().line;
      next();
      ExprPtr c = make(ExprKind::kCondExpr, line);
      FRUGAL_ASSIGN_OR_RETURN(c->a, parse_or());
      c->b = std::move(e);
      if (is_name("else")) {
        next();
        FRUGAL_ASSIGN_OR_RETURN(c->c, parse_expression(true));
      }
      FRUGAL_RETURN_IF_ERROR(seal(*c));
      e = std::move(c);
    }
    return e;
  }

  Result<ExprPtr> parse_or() {
    FRUGAL_ASSIGN_OR_RETURN(ExprPtr left, parse_and());
    while (is_name("or")) {
      ExprPtr e = make(ExprKind::kOr, cur().line);
      next();
      e->a = std::move(left);
      FRUGAL_ASSIGN_OR_RETURN(e->b, parse_and());
      FRUGAL_RETURN_IF_ERROR(seal(*e));
      left = std::move(e);
    }
    return left;
  }

  Result<ExprPtr> parse_and() {
    FRUGAL_ASSIGN_OR_RETURN(ExprPtr left, parse_not());
    while (is_name("and")) {
      ExprPtr e = make(ExprKind::kAnd, cur().line);
      next();
      e->a = std::move(left);
      FRUGAL_ASSIGN_OR_RETURN(e->b, parse_not());
      FRUGAL_RETURN_IF_ERROR(seal(*e));
      left = std::move(e);
    }
    return left;
  }

  Result<ExprPtr> parse_not() {
    if (is_name("not")) {
      DepthGuard guard(depth_);
      FRUGAL_RETURN_IF_ERROR(check_depth());
      ExprPtr e = make(ExprKind::kNot, cur().line);
      next();
      FRUGAL_ASSIGN_OR_RETURN(e->a, parse_not());
      FRUGAL_RETURN_IF_ERROR(seal(*e));
      return e;
    }
    return parse_compare();
  }

  Result<ExprPtr> parse_compare() {
    const int line = cur().line;
    FRUGAL_ASSIGN_OR_RETURN(ExprPtr first, parse_math1());
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (cur().type == Tok::kOp &&
          (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == ">" ||
           cur().text == "<=" || cur().text == ">=")) {
        op = cur().text;
        next();
      } else if (is_name("in")) {
        op = "in";
        next();
      } else if (is_name("not") && peek().type == Tok::kName && peek().text == "in") {
        op = "not in";
        next();
        next();
      } else {
        break;
      }
      if (!cmp) {
        cmp = make(ExprKind::kCompare, line);
        cmp->items.push_back(std::move(first));
      }
      FRUGAL_ASSIGN_OR_RETURN(ExprPtr rhs, parse_math1());
      cmp->items.push_back(std::move(rhs));
      cmp->ops.push_back(std::move(op));
    }
    if (!cmp) return first;
    FRUGAL_RETURN_IF_ERROR(seal(*cmp));
    return cmp;
  }

  template <typename Next>
  Result<ExprPtr> parse_binary(std::initializer_list<const char*> ops, Next next_level) {
    FRUGAL_ASSIGN_OR_RETURN(ExprPtr left, (this->*next_level)());
    while (cur().type == Tok::kOp) {
      const char* found = nullptr;
      for (const char* op : ops) {
        if (cur().text == op) found = op;
      }
      if (!found) break;
      ExprPtr e = make(ExprKind::kBinary, cur().line);
      e->name = found;
      next();
      e->a = std::move(left);
      FRUGAL_ASSIGN_OR_RETURN(e->b, (this->*next_level)());
      FRUGAL_RETURN_IF_ERROR(seal(*e));
      left = std::move(e);
    }
    return left;
  }
  Result<ExprPtr> parse_math1() { return parse_binary({"+", "-"}, &Parser::parse_concat); }
  Result<ExprPtr> parse_concat() { return parse_binary({"~"}, &Parser::parse_math2); }
  Result<ExprPtr> parse_math2() {
    return parse_binary({"*", "/", "//", "%"}, &Parser::parse_pow);
  }
  Result<ExprPtr> parse_pow() { return parse_binary({"**"}, &Parser::parse_unary_filtered); }
  Result<ExprPtr> parse_unary_filtered() { return parse_unary(true); }

  Result<ExprPtr> parse_unary(bool with_filter) {
    DepthGuard guard(depth_);
    FRUGAL_RETURN_IF_ERROR(check_depth());
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      node = make(is_op("-") ? ExprKind::kNeg : ExprKind::kPos, cur().line);
      next();
      FRUGAL_ASSIGN_OR_RETURN(node->a, parse_unary(false));
      FRUGAL_RETURN_IF_ERROR(seal(*node));
    } else {
      FRUGAL_ASSIGN_OR_RETURN(node, parse_primary());
    }
    FRUGAL_ASSIGN_OR_RETURN(node, parse_postfix(std::move(node)));
    if (with_filter) { FRUGAL_ASSIGN_OR_RETURN(node, parse_filter_expr(std::move(node))); }
    return node;
  }

  Result<ExprPtr> parse_primary() {
    const Token& t = cur();
    const int line = t.line;
    if (t.type == Tok::kName) {
      ExprPtr e = make(ExprKind::kLiteral, line);
      if (t.text == "true" || t.text == "True") {
        e->literal = Value(true);
      } else if (t.text == "false" || t.text == "False") {
        e->literal = Value(false);
      } else if (t.text == "none" || t.text == "None") {
        e->literal = Value(nullptr);
      } else {
        e->kind = ExprKind::kName;
        e->name = t.text;
      }
      next();
      return e;
    }
    if (t.type == Tok::kString) {
      std::string s;
      while (cur().type == Tok::kString) {  // adjacent literals concatenate
        s += cur().text;
        next();
      }
      ExprPtr e = make(ExprKind::kLiteral, line);
      e->literal = Value(std::move(s));
      return e;
    }
    if (t.type == Tok::kInt || t.type == Tok::kFloat) {
      ExprPtr e = make(ExprKind::kLiteral, line);
      e->literal = t.type == Tok::kInt ? Value(t.int_value) : Value(t.float_value);
      next();
      return e;
    }
    if (is_op("(")) {
      next();
      if (is_op(")")) {
        next();
        return make(ExprKind::kList, line);  // ()
      }
      FRUGAL_ASSIGN_OR_RETURN(ExprPtr e, parse_tuple(true));
      FRUGAL_RETURN_IF_ERROR(expect_op(")"));
      return e;
    }
    if (is_op("[")) {
      next();
      ExprPtr e = make(ExprKind::kList, line);
      while (!is_op("]")) {
        FRUGAL_ASSIGN_OR_RETURN(ExprPtr item, parse_expression(true));
        e->items.push_back(std::move(item));
        if (!is_op(",")) break;
        next();
      }
      FRUGAL_RETURN_IF_ERROR(expect_op("]"));
      FRUGAL_RETURN_IF_ERROR(seal(*e));
      return e;
    }
    if (is_op("{")) {
      next();
      ExprPtr e = make(ExprKind::kDict, line);
      while (!is_op("}")) {
        FRUGAL_ASSIGN_OR_RETURN(ExprPtr key, parse_expression(true));
        FRUGAL_RETURN_IF_ERROR(expect_op(":"));
        FRUGAL_ASSIGN_OR_RETURN(ExprPtr value, parse_expression(true));
        e->items.push_back(std::move(key));
        e->items.push_back(std::move(value));
        if (!is_op(",")) break;
        next();
      }
      FRUGAL_RETURN_IF_ERROR(expect_op("}"));
      FRUGAL_RETURN_IF_ERROR(seal(*e));
      return e;
    }
    return error("unexpected " + describe(t));
  }

  Result<ExprPtr> parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".")) {
        const int line = cur().line;
        next();
        if (cur().type == Tok::kName) {
          ExprPtr e = make(ExprKind::kGetAttr, line);
          e->name = cur().text;
          e->a = std::move(node);
          next();
          FRUGAL_RETURN_IF_ERROR(seal(*e));
          node = std::move(e);
        } else if (cur().type == Tok::kInt) {  // x.0 is x[0]
          ExprPtr e = make(ExprKind::kGetItem, line);
          e->a = std::move(node);
          e->b = make(ExprKind::kLiteral, line);
          e->b->literal = Value(cur().int_value);
          next();
          FRUGAL_RETURN_IF_ERROR(seal(*e));
          node = std::move(e);
        } else {
          return error("expected an attribute name after '.', found " + describe(cur()));
        }
      } else if (is_op("[")) {
        FRUGAL_ASSIGN_OR_RETURN(node, parse_subscript(std::move(node)));
      } else if (is_op("(")) {
        FRUGAL_ASSIGN_OR_RETURN(node, parse_call(std::move(node)));
      } else {
        return node;
      }
    }
  }

  Result<ExprPtr> parse_subscript(ExprPtr node) {
    const int line = cur().line;
    next();  // [
    ExprPtr start, stop, step;
    bool is_slice = false;
    auto at_end = [&] { return is_op("]") || is_op(","); };
    if (!is_op(":")) {
      FRUGAL_ASSIGN_OR_RETURN(start, parse_expression(true));
    }
    if (is_op(":")) {
      is_slice = true;
      next();
      if (!at_end() && !is_op(":")) { FRUGAL_ASSIGN_OR_RETURN(stop, parse_expression(true)); }
      if (is_op(":")) {
        next();
        if (!at_end()) { FRUGAL_ASSIGN_OR_RETURN(step, parse_expression(true)); }
      }
    }
    if (is_op(",")) return not_supported("subscripts with several indices are not supported");
    FRUGAL_RETURN_IF_ERROR(expect_op("]"));
    ExprPtr e = make(is_slice ? ExprKind::kSlice : ExprKind::kGetItem, line);
    e->a = std::move(node);
    e->b = std::move(start);
    e->c = std::move(stop);
    e->d = std::move(step);
    FRUGAL_RETURN_IF_ERROR(seal(*e));
    return e;
  }

  Status parse_call_args(CallArgs& call) {
    FRUGAL_RETURN_IF_ERROR(expect_op("("));
    while (!is_op(")")) {
      if (is_op("*") || is_op("**")) return not_supported("*args and **kwargs in calls are not supported");
      if (cur().type == Tok::kName && peek().type == Tok::kOp && peek().text == "=") {
        std::string key = cur().text;
        next();
        next();
        FRUGAL_ASSIGN_OR_RETURN(ExprPtr v, parse_expression(true));
        call.keyword.emplace_back(std::move(key), std::move(v));
      } else {
        if (!call.keyword.empty()) return error("a positional argument follows a keyword argument");
        FRUGAL_ASSIGN_OR_RETURN(ExprPtr v, parse_expression(true));
        call.positional.push_back(std::move(v));
      }
      if (!is_op(",")) break;
      next();
    }
    return expect_op(")");
  }

  Result<ExprPtr> parse_call(ExprPtr node) {
    ExprPtr e = make(ExprKind::kCall, cur().line);
    e->a = std::move(node);
    FRUGAL_RETURN_IF_ERROR(parse_call_args(e->call));
    FRUGAL_RETURN_IF_ERROR(seal(*e));
    return e;
  }

  Result<FilterFn> resolve_filter(const std::string& name) {
    if (FilterFn f = find_filter(name)) return f;
    if (is_known_unsupported_filter(name)) {
      return not_supported("the filter '" + name + "' is not supported");
    }
    return error("no filter named '" + name + "'");
  }

  Result<ExprPtr> parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) {
        const int line = cur().line;
        next();
        FRUGAL_ASSIGN_OR_RETURN(std::string name, expect_name());
        ExprPtr e = make(ExprKind::kFilter, line);
        e->name = name;
        FRUGAL_ASSIGN_OR_RETURN(e->filter, resolve_filter(name));
        e->a = std::move(node);
        if (is_op("(")) FRUGAL_RETURN_IF_ERROR(parse_call_args(e->call));
        FRUGAL_RETURN_IF_ERROR(seal(*e));
        node = std::move(e);
      } else if (is_name("is")) {
        FRUGAL_ASSIGN_OR_RETURN(node, parse_test(std::move(node)));
      } else if (is_op("(")) {
        FRUGAL_ASSIGN_OR_RETURN(node, parse_call(std::move(node)));
      } else {
        return node;
      }
    }
  }

  Result<ExprPtr> parse_test(ExprPtr node) {
    ExprPtr e = make(ExprKind::kTest, cur().line);
    next();  // is
    if (is_name("not")) {
      e->negated = true;
      next();
    }
    FRUGAL_ASSIGN_OR_RETURN(std::string name, expect_name());
    e->name = name;
    e->test = find_test(name);
    if (!e->test) return error("no test named '" + name + "'");
    e->a = std::move(node);
    if (is_op("(")) {
      FRUGAL_RETURN_IF_ERROR(parse_call_args(e->call));
    } else if ((cur().type == Tok::kName || cur().type == Tok::kString ||
                cur().type == Tok::kInt || cur().type == Tok::kFloat || is_op("[") ||
                is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and") && !is_name("if") &&
               !is_name("in") && !is_name("not") && !is_name("is")) {
      // One argument without parentheses: `is divisibleby 3`, `is equalto 'user'`.
      FRUGAL_ASSIGN_OR_RETURN(ExprPtr arg, parse_primary());
      FRUGAL_ASSIGN_OR_RETURN(arg, parse_postfix(std::move(arg)));
      e->call.positional.push_back(std::move(arg));
    }
    FRUGAL_RETURN_IF_ERROR(seal(*e));
    return e;
  }

  std::vector<Token> t_;
  size_t i_ = 0;
  const Options& opt_;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

Result<std::shared_ptr<const Program>> parse_program(std::vector<Token> tokens,
                                                     const Options& options) {
  Parser parser(std::move(tokens), options);
  return parser.run();
}

}  // namespace frugal::jinja::detail
