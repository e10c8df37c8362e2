// Jinja built-ins: attribute and item lookup, iteration, the filters and tests of jinja2 that chat
// templates use (tojson as transformers defines it), and the str/dict methods they call.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "engine/jinja_internal.h"

namespace frugal::jinja::detail {

const Value& Args::get(size_t index, std::string_view name, const Value& fallback) const {
  for (const auto& [k, v] : keyword) {
    if (k == name) return v;
  }
  return index < positional.size() ? positional[index] : fallback;
}

Value Args::get(size_t index, std::string_view name, Value&& fallback) const {
  const Value& found = get(index, name, static_cast<const Value&>(fallback));
  return &found == &fallback ? std::move(fallback) : found;
}

namespace {

Status undefined_error(const Value& v) { return invalid_argument(v.undefined_why()); }

std::string object_name(const Value& v) { return std::string("'") + type_name(v) + " object'"; }

// Python index `i` into a sequence of length n, or -1 when out of range.
int64_t normalize_index(int64_t i, size_t n) {
  if (i < 0) i += static_cast<int64_t>(n);
  return i < 0 || i >= static_cast<int64_t>(n) ? -1 : i;
}

std::string codepoint_at(const std::vector<uint32_t>& cps, size_t i) {
  std::string s;
  append_utf8(s, cps[i]);
  return s;
}

}  // namespace

Result<Value> get_attr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) return undefined_error(obj);
  if (obj.kind() == Value::Kind::kDict || obj.kind() == Value::Kind::kNamespace) {
    if (const Value* v = obj.as_dict().find(name)) return *v;
  }
  return Value::undefined(object_name(obj) + " has no attribute '" + name + "'");
}

Result<Value> get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) return undefined_error(obj);
  if ((obj.is_dict() || obj.kind() == Value::Kind::kNamespace) && key.is_string()) {
    if (const Value* v = obj.as_dict().find(key.as_string())) return *v;
    return Value::undefined(object_name(obj) + " has no attribute '" + key.as_string() + "'");
  }
  if (key.kind() == Value::Kind::kInt || key.kind() == Value::Kind::kBool) {
    if (obj.is_list()) {
      const int64_t i = normalize_index(key.as_int(), obj.as_list().size());
      if (i >= 0) return obj.as_list()[static_cast<size_t>(i)];
    } else if (obj.is_string()) {
      const std::vector<uint32_t> cps = decode_utf8(obj.as_string());
      const int64_t i = normalize_index(key.as_int(), cps.size());
      if (i >= 0) return Value(codepoint_at(cps, static_cast<size_t>(i)));
    }
    return Value::undefined(object_name(obj) + " has no element " + std::to_string(key.as_int()));
  }
  if (key.is_string()) return get_attr(obj, key.as_string());
  return Value::undefined(object_name(obj) + " has no element " + python_repr(key));
}

Result<ValueList> iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return ValueList{};
    case Value::Kind::kList: return v.as_list();
    case Value::Kind::kDict: {
      ValueList keys;
      for (const auto& [k, x] : v.as_dict()) keys.emplace_back(k);
      return keys;
    }
    case Value::Kind::kString: {
      ValueList chars;
      for (uint32_t cp : decode_utf8(v.as_string())) {
        std::string s;
        append_utf8(s, cp);
        chars.emplace_back(std::move(s));
      }
      return chars;
    }
    default: return invalid_argument(std::string("'") + type_name(v) + "' object is not iterable");
  }
}

namespace {

const Value kUndef = Value();
const Value kNone(nullptr);
const Value kFalse(false);
const Value kEmpty(std::string{});

Result<int64_t> int_arg(const Value& v, const char* what) {
  if (v.kind() == Value::Kind::kInt || v.kind() == Value::Kind::kBool) return v.as_int();
  return invalid_argument(std::string(what) + " must be an integer, not '" + type_name(v) + "'");
}

Result<std::string> str_arg(const Value& v, const char* what) {
  if (v.is_string()) return v.as_string();
  return invalid_argument(std::string(what) + " must be a string, not '" + type_name(v) + "'");
}

Result<Value> built_string(Evaluator& ev, std::string s) {
  FRUGAL_RETURN_IF_ERROR(ev.built(s.size()));
  return Value(std::move(s));
}

// A dotted attribute path ("function.name", "0") applied with item lookup, as jinja2's
// make_attrgetter does.
Result<Value> attribute_path(const Value& obj, const std::string& path) {
  Value cur = obj;
  size_t pos = 0;
  while (true) {
    const size_t dot = path.find('.', pos);
    const std::string part = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    Value key(part);
    if (!part.empty() && std::all_of(part.begin(), part.end(), ::isdigit)) {
      key = Value(static_cast<int64_t>(std::strtoll(part.c_str(), nullptr, 10)));
    }
    FRUGAL_ASSIGN_OR_RETURN(cur, get_item(cur, key));
    if (dot == std::string::npos) return cur;
    pos = dot + 1;
  }
}

// ---- filters ----

Result<Value> f_length(Evaluator&, const Value& v, const Args&) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return Value(int64_t{0});
    case Value::Kind::kString: return Value(static_cast<int64_t>(utf8_length(v.as_string())));
    case Value::Kind::kList: return Value(static_cast<int64_t>(v.as_list().size()));
    case Value::Kind::kDict: return Value(static_cast<int64_t>(v.as_dict().size()));
    default: return invalid_argument(std::string("object of type '") + type_name(v) + "' has no len()");
  }
}

Result<Value> f_string(Evaluator& ev, const Value& v, const Args&) {
  return built_string(ev, to_python_str(v));
}

Result<Value> f_trim(Evaluator& ev, const Value& v, const Args& a) {
  const Value& chars = a.get(0, "chars", kNone);
  std::string c = chars.is_string() ? chars.as_string() : "";
  return built_string(ev, python_strip(to_python_str(v), chars.is_string() ? &c : nullptr, true, true));
}

Result<Value> f_upper(Evaluator& ev, const Value& v, const Args&) { return built_string(ev, ascii_upper(to_python_str(v))); }
Result<Value> f_lower(Evaluator& ev, const Value& v, const Args&) { return built_string(ev, ascii_lower(to_python_str(v))); }

Result<Value> f_capitalize(Evaluator& ev, const Value& v, const Args&) {
  std::string s = ascii_lower(to_python_str(v));
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = static_cast<char>(s[0] - 'a' + 'A');
  return built_string(ev, std::move(s));
}

std::string title_case(const std::string& in) {
  std::string s = in;
  bool prev_cased = false;
  for (char& c : s) {
    const bool lower = c >= 'a' && c <= 'z';
    const bool upper = c >= 'A' && c <= 'Z';
    if (lower && !prev_cased) c = static_cast<char>(c - 'a' + 'A');
    if (upper && prev_cased) c = static_cast<char>(c - 'A' + 'a');
    prev_cased = lower || upper || (static_cast<unsigned char>(c) >= 0x80 && prev_cased);
  }
  return s;
}

Result<Value> f_title(Evaluator& ev, const Value& v, const Args&) { return built_string(ev, title_case(to_python_str(v))); }

Result<Value> f_default(Evaluator&, const Value& v, const Args& a) {
  const Value& fallback = a.get(0, "default_value", kEmpty);
  const bool boolean = truthy(a.get(1, "boolean", kFalse));
  if (v.is_undefined() || (boolean && !truthy(v))) return fallback;
  return v;
}

Result<Value> f_first(Evaluator&, const Value& v, const Args&) {
  FRUGAL_ASSIGN_OR_RETURN(ValueList items, iterate(v));
  if (items.empty()) return Value::undefined("the sequence has no first item");
  return items.front();
}

Result<Value> f_last(Evaluator&, const Value& v, const Args&) {
  FRUGAL_ASSIGN_OR_RETURN(ValueList items, iterate(v));
  if (items.empty()) return Value::undefined("the sequence has no last item");
  return items.back();
}

Result<Value> f_join(Evaluator& ev, const Value& v, const Args& a) {
  const Value& sep = a.get(0, "d", kEmpty);
  const Value& attr = a.get(1, "attribute", kNone);
  FRUGAL_ASSIGN_OR_RETURN(ValueList items, iterate(v));
  std::string out;
  const std::string s = to_python_str(sep);
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += s;
    Value x = items[i];
    if (attr.is_string()) { FRUGAL_ASSIGN_OR_RETURN(x, attribute_path(x, attr.as_string())); }
    out += to_python_str(x);
    FRUGAL_RETURN_IF_ERROR(ev.built(out.size()));
  }
  return Value(std::move(out));
}

Result<Value> f_replace(Evaluator& ev, const Value& v, const Args& a) {
  FRUGAL_ASSIGN_OR_RETURN(std::string old, str_arg(a.get(0, "old", kNone), "replace: old"));
  FRUGAL_ASSIGN_OR_RETURN(std::string repl, str_arg(a.get(1, "new", kNone), "replace: new"));
  const Value& count = a.get(2, "count", kNone);
  int64_t n = -1;
  if (!count.is_none()) { FRUGAL_ASSIGN_OR_RETURN(n, int_arg(count, "replace: count")); }
  const std::string s = to_python_str(v);
  // Bound the result before building it: each replacement may grow the string.
  if (repl.size() > old.size()) {
    const size_t growth = (repl.size() - old.size() + (old.empty() ? 1 : 0)) * (s.size() + 1);
    FRUGAL_RETURN_IF_ERROR(ev.built(std::min<size_t>(growth, SIZE_MAX / 2)));
  }
  return built_string(ev, python_replace(s, old, repl, n));
}

Result<Value> f_list(Evaluator& ev, const Value& v, const Args&) {
  FRUGAL_ASSIGN_OR_RETURN(ValueList items, iterate(v));
  FRUGAL_RETURN_IF_ERROR(ev.built_list(items.size()));
  return Value(std::move(items));
}

Result<Value> f_items(Evaluator& ev, const Value& v, const Args&) {
  if (v.is_undefined()) return Value(ValueList{});
  if (!v.is_dict()) return invalid_argument(std::string("can only get item pairs from a mapping, not '") + type_name(v) + "'");
  ValueList out;
  for (const auto& [k, x] : v.as_dict()) out.emplace_back(ValueList{Value(k), x});
  FRUGAL_RETURN_IF_ERROR(ev.built_list(out.size()));
  return Value(std::move(out));
}

Result<Value> f_int(Evaluator&, const Value& v, const Args& a) {
  const Value& fallback = a.get(0, "default", Value(int64_t{0}));
  switch (v.kind()) {
    case Value::Kind::kBool:
    case Value::Kind::kInt: return Value(v.as_int());
    case Value::Kind::kFloat: {
      const double d = v.as_float();
      if (!std::isfinite(d) || std::fabs(d) > 9.2e18) return fallback;
      return Value(static_cast<int64_t>(d));
    }
    case Value::Kind::kString: {
      std::string s = python_strip(v.as_string(), nullptr, true, true);
      s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
      if (s.empty()) return fallback;
      char* end = nullptr;
      errno = 0;
      const long long i = std::strtoll(s.c_str(), &end, 10);
      if (*end == '\0' && errno == 0) return Value(static_cast<int64_t>(i));
      const double d = std::strtod(s.c_str(), &end);  // jinja2 retries as float("3.5")
      if (*end == '\0' && std::isfinite(d) && std::fabs(d) < 9.2e18) return Value(static_cast<int64_t>(d));
      return fallback;
    }
    default: return fallback;
  }
}

Result<Value> f_float(Evaluator&, const Value& v, const Args& a) {
  const Value& fallback = a.get(0, "default", Value(0.0));
  if (v.is_number()) return Value(v.as_float());
  if (v.is_string()) {
    const std::string s = python_strip(v.as_string(), nullptr, true, true);
    char* end = nullptr;
    const double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && *end == '\0') return Value(d);
  }
  return fallback;
}

Result<Value> f_abs(Evaluator&, const Value& v, const Args&) {
  if (v.kind() == Value::Kind::kFloat) return Value(std::fabs(v.as_float()));
  if (v.is_number()) {
    if (v.as_int() == INT64_MIN) return invalid_argument("abs: integer overflow");
    return Value(v.as_int() < 0 ? -v.as_int() : v.as_int());
  }
  return invalid_argument(std::string("bad operand type for abs(): '") + type_name(v) + "'");
}

Result<Value> f_round(Evaluator&, const Value& v, const Args& a) {
  if (!v.is_number()) return invalid_argument(std::string("round: '") + type_name(v) + "' is not a number");
  FRUGAL_ASSIGN_OR_RETURN(int64_t precision, int_arg(a.get(0, "precision", Value(int64_t{0})), "round: precision"));
  const std::string method = to_python_str(a.get(1, "method", Value("common")));
  const double d = v.as_float();
  if (precision < 0 || precision > 300) return invalid_argument("round: precision must be in 0..300");
  if (method == "ceil" || method == "floor") {
    const double scale = std::pow(10.0, static_cast<double>(precision));
    return Value((method == "ceil" ? std::ceil(d * scale) : std::floor(d * scale)) / scale);
  }
  if (method != "common") return invalid_argument("round: method must be common, ceil or floor");
  if (!std::isfinite(d)) return Value(d);
  // Python's round(): correctly rounded from the exact binary value, ties to even.
  char buf[512];
  std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(precision), d);
  return Value(std::strtod(buf, nullptr));
}

Result<Value> f_tojson(Evaluator& ev, const Value& v, const Args& a) {
  // transformers: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
  JsonStyle style;
  style.ensure_ascii = truthy(a.get(0, "ensure_ascii", kFalse));
  const Value& indent = a.get(1, "indent", kNone);
  if (!indent.is_none()) {
    FRUGAL_ASSIGN_OR_RETURN(int64_t n, int_arg(indent, "tojson: indent"));
    if (n < 0 || n > 64) return invalid_argument("tojson: indent must be in 0..64");
    style.indent = static_cast<int>(n);
    style.item_separator = ",";
  }
  const Value& separators = a.get(2, "separators", kNone);
  if (!separators.is_none()) {
    if (!separators.is_list() || separators.as_list().size() != 2 ||
        !separators.as_list()[0].is_string() || !separators.as_list()[1].is_string()) {
      return invalid_argument("tojson: separators must be two strings");
    }
    style.item_separator = separators.as_list()[0].as_string();
    style.key_separator = separators.as_list()[1].as_string();
  }
  style.sort_keys = truthy(a.get(3, "sort_keys", kFalse));
  FRUGAL_ASSIGN_OR_RETURN(std::string s, json_dumps(v, style));
  return built_string(ev, std::move(s));
}

Result<Value> f_indent(Evaluator& ev, const Value& v, const Args& a) {
  const Value& width = a.get(0, "width", Value(int64_t{4}));
  std::string pad;
  if (width.is_string()) {
    pad = width.as_string();
  } else {
    FRUGAL_ASSIGN_OR_RETURN(int64_t n, int_arg(width, "indent: width"));
    if (n < 0 || n > 1024) return invalid_argument("indent: width must be in 0..1024");
    pad.assign(static_cast<size_t>(n), ' ');
  }
  const bool first = truthy(a.get(1, "first", kFalse));
  const bool blank = truthy(a.get(2, "blank", kFalse));
  std::string s = to_python_str(v) + "\n";  // jinja2 appends one so that splitlines keeps a last empty line
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t nl = s.find_first_of("\n\r", pos);
    if (nl == std::string::npos) nl = s.size();
    lines.push_back(s.substr(pos, nl - pos));
    pos = nl + ((s[nl] == '\r' && nl + 1 < s.size() && s[nl + 1] == '\n') ? 2 : 1);
  }
  std::string out = lines.empty() ? "" : lines[0];
  for (size_t i = 1; i < lines.size(); ++i) {
    out += "\n";
    if (blank || !lines[i].empty()) out += pad;
    out += lines[i];
  }
  if (first) out = pad + out;
  return built_string(ev, std::move(out));
}

Result<Value> f_reverse(Evaluator&, const Value& v, const Args&) {
  if (v.is_string()) {
    std::vector<uint32_t> cps = decode_utf8(v.as_string());
    std::reverse(cps.begin(), cps.end());
    std::string out;
    for (uint32_t cp : cps) append_utf8(out, cp);
    return Value(std::move(out));
  }
  FRUGAL_ASSIGN_OR_RETURN(ValueList items, iterate(v));
  std::reverse(items.begin(), items.end());
  return Value(std::move(items));
}

// The key a sorting filter compares: the attribute, lower-cased unless case_sensitive.
Result<Value> sort_key(const Value& x, const Value& attribute, bool case_sensitive) {
  Value k = x;
  if (attribute.is_string()) { FRUGAL_ASSIGN_OR_RETURN(k, attribute_path(x, attribute.as_string())); }
  if (!case_sensitive && k.is_string()) return Value(ascii_lower(k.as_string()));
  return k;
}

// Charges n log2 n steps first: the comparisons of the sort.
Result<ValueList> sorted(Evaluator& ev, ValueList items, const Value& attribute,
                         bool case_sensitive, bool reverse) {
  const size_t n = items.size();
  FRUGAL_RETURN_IF_ERROR(ev.work(static_cast<int64_t>(n) * std::bit_width(n)));
  std::vector<std::pair<Value, Value>> keyed;
  for (Value& x : items) {
    FRUGAL_ASSIGN_OR_RETURN(Value k, sort_key(x, attribute, case_sensitive));
    keyed.emplace_back(std::move(k), std::move(x));
  }
  Status err;
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& p, const auto& q) {
    auto r = reverse ? less(q.first, p.first) : less(p.first, q.first);
    if (!r.is_ok()) {
      if (err.is_ok()) err = r.status();
      return false;
    }
    return *r;
  });
  FRUGAL_RETURN_IF_ERROR(err);
  ValueList out;
  for (auto& p : keyed) out.push_back(std::move(p.second));
  return out;
}

Result<Value> f_sort(Evaluator& ev, const Value& v, const Args& a) {
  FRUGAL_ASSIGN_OR_RETURN(ValueList items, iterate(v));
  FRUGAL_ASSIGN_OR_RETURN(items, sorted(ev, std::move(items), a.get(2, "attribute", kNone),
                                        truthy(a.get(1, "case_sensitive", kFalse)),
                                        truthy(a.get(0, "reverse", kFalse))));
  return Value(std::move(items));
}

Result<Value> f_dictsort(Evaluator& ev, const Value& v, const Args& a) {
  if (!v.is_dict()) return invalid_argument("dictsort: the value is not a dict");
  const bool case_sensitive = truthy(a.get(0, "case_sensitive", kFalse));
  const std::string by = to_python_str(a.get(1, "by", Value("key")));
  const bool reverse = truthy(a.get(2, "reverse", kFalse));
  ValueList pairs;
  for (const auto& [k, x] : v.as_dict()) pairs.emplace_back(ValueList{Value(k), x});
  FRUGAL_ASSIGN_OR_RETURN(pairs, sorted(ev, std::move(pairs), Value(by == "value" ? "1" : "0"), case_sensitive, reverse));
  return Value(std::move(pairs));
}

Result<Value> f_unique(Evaluator& ev, const Value& v, const Args& a) {
  FRUGAL_ASSIGN_OR_RETURN(ValueList items, iterate(v));
  const bool case_sensitive = truthy(a.get(0, "case_sensitive", kFalse));
  const Value& attribute = a.get(1, "attribute", kNone);
  ValueList out, seen;
  for (const Value& x : items) {
    FRUGAL_ASSIGN_OR_RETURN(Value k, sort_key(x, attribute, case_sensitive));
    FRUGAL_RETURN_IF_ERROR(ev.work(static_cast<int64_t>(seen.size())));  // a comparison each
    bool dup = false;
    for (const Value& s : seen) dup = dup || equals(s, k);
    if (!dup) {
      seen.push_back(k);
      out.push_back(x);
    }
  }
  return Value(std::move(out));
}

Result<Value> min_max(Evaluator& ev, const Value& v, const Args& a, bool want_max) {
  FRUGAL_ASSIGN_OR_RETURN(ValueList items, iterate(v));
  if (items.empty()) return Value::undefined("no items for min or max");
  FRUGAL_ASSIGN_OR_RETURN(items, sorted(ev, std::move(items), a.get(1, "attribute", kNone),
                                        truthy(a.get(0, "case_sensitive", kFalse)), false));
  return want_max ? items.back() : items.front();
}
Result<Value> f_min(Evaluator& ev, const Value& v, const Args& a) { return min_max(ev, v, a, false); }
Result<Value> f_max(Evaluator& ev, const Value& v, const Args& a) { return min_max(ev, v, a, true); }

Result<Value> f_sum(Evaluator&, const Value& v, const Args& a) {
  FRUGAL_ASSIGN_OR_RETURN(ValueList items, iterate(v));
  const Value& attribute = a.get(0, "attribute", kNone);
  Value total = a.get(1, "start", Value(int64_t{0}));
  for (const Value& x : items) {
    Value term = x;
    if (attribute.is_string()) { FRUGAL_ASSIGN_OR_RETURN(term, attribute_path(x, attribute.as_string())); }
    if (!term.is_number() || !total.is_number()) return invalid_argument("sum: the items are not numbers");
    if (total.kind() == Value::Kind::kFloat || term.kind() == Value::Kind::kFloat) {
      total = Value(total.as_float() + term.as_float());
    } else {
      int64_t r;
      if (__builtin_add_overflow(total.as_int(), term.as_int(), &r)) return invalid_argument("sum: integer overflow");
      total = Value(r);
    }
  }
  return total;
}

Result<Value> f_wordcount(Evaluator&, const Value& v, const Args&) {
  return Value(static_cast<int64_t>(python_split(to_python_str(v), nullptr, -1).size()));
}

Result<Value> f_safe(Evaluator&, const Value& v, const Args&) { return v; }

Result<Value> f_escape(Evaluator& ev, const Value& v, const Args&) {
  std::string out;
  for (char c : to_python_str(v)) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return built_string(ev, std::move(out));
}

Result<Value> f_attr(Evaluator&, const Value& v, const Args& a) {
  FRUGAL_ASSIGN_OR_RETURN(std::string name, str_arg(a.get(0, "name", kNone), "attr: name"));
  if (v.kind() == Value::Kind::kNamespace) return get_attr(v, name);
  if (v.is_undefined()) return undefined_error(v);
  return Value::undefined(object_name(v) + " has no attribute '" + name + "'");  // not items
}

// select / reject / selectattr / rejectattr: the items for which test(item[.attr], args...) is
// `keep`. With no test name, the item's truth.
Result<Value> select_items(Evaluator& ev, const Value& v, const Args& a, bool by_attr, bool keep) {
  FRUGAL_ASSIGN_OR_RETURN(ValueList items, iterate(v));
  size_t next = 0;
  std::string attribute;
  if (by_attr) {
    FRUGAL_ASSIGN_OR_RETURN(attribute, str_arg(a.get(0, "attribute", kNone), "selectattr: attribute"));
    next = 1;
  }
  TestFn test = nullptr;
  Args test_args;
  if (a.positional.size() > next) {
    FRUGAL_ASSIGN_OR_RETURN(std::string name, str_arg(a.positional[next], "select: test name"));
    test = find_test(name);
    if (!test) return invalid_argument("no test named '" + name + "'");
    test_args.positional.assign(a.positional.begin() + static_cast<long>(next) + 1, a.positional.end());
  }
  ValueList out;
  for (const Value& x : items) {
    Value subject = x;
    if (by_attr) { FRUGAL_ASSIGN_OR_RETURN(subject, attribute_path(x, attribute)); }
    bool pass;
    if (test) {
      FRUGAL_ASSIGN_OR_RETURN(pass, test(ev, subject, test_args));
    } else {
      pass = truthy(subject);
    }
    if (pass == keep) out.push_back(x);
    FRUGAL_RETURN_IF_ERROR(ev.work(1));
  }
  return Value(std::move(out));
}
Result<Value> f_select(Evaluator& ev, const Value& v, const Args& a) { return select_items(ev, v, a, false, true); }
Result<Value> f_reject(Evaluator& ev, const Value& v, const Args& a) { return select_items(ev, v, a, false, false); }
Result<Value> f_selectattr(Evaluator& ev, const Value& v, const Args& a) { return select_items(ev, v, a, true, true); }
Result<Value> f_rejectattr(Evaluator& ev, const Value& v, const Args& a) { return select_items(ev, v, a, true, false); }

Result<Value> f_map(Evaluator& ev, const Value& v, const Args& a) {
  FRUGAL_ASSIGN_OR_RETURN(ValueList items, iterate(v));
  ValueList out;
  const Value& attribute = a.get(99, "attribute", kUndef);
  if (attribute.is_string()) {
    const Value& fallback = a.get(99, "default", kUndef);
    for (const Value& x : items) {
      FRUGAL_ASSIGN_OR_RETURN(Value y, attribute_path(x, attribute.as_string()));
      out.push_back(y.is_undefined() && !fallback.is_undefined() ? fallback : y);
    }
    return Value(std::move(out));
  }
  if (a.positional.empty()) return invalid_argument("map: give a filter name or attribute=");
  FRUGAL_ASSIGN_OR_RETURN(std::string name, str_arg(a.positional[0], "map: filter name"));
  FilterFn f = find_filter(name);
  if (!f) return invalid_argument("no filter named '" + name + "'");
  Args rest;
  rest.positional.assign(a.positional.begin() + 1, a.positional.end());
  rest.keyword = a.keyword;
  for (const Value& x : items) {
    FRUGAL_ASSIGN_OR_RETURN(Value y, f(ev, x, rest));
    out.push_back(std::move(y));
  }
  return Value(std::move(out));
}

struct NamedFilter {
  const char* name;
  FilterFn fn;
};

constexpr NamedFilter kFilters[] = {
    {"abs", f_abs},           {"attr", f_attr},         {"capitalize", f_capitalize},
    {"count", f_length},      {"d", f_default},         {"default", f_default},
    {"dictsort", f_dictsort}, {"e", f_escape},          {"escape", f_escape},
    {"first", f_first},       {"float", f_float},       {"indent", f_indent},
    {"int", f_int},           {"items", f_items},       {"join", f_join},
    {"last", f_last},         {"length", f_length},     {"list", f_list},
    {"lower", f_lower},       {"map", f_map},           {"max", f_max},
    {"min", f_min},           {"reject", f_reject},     {"rejectattr", f_rejectattr},
    {"replace", f_replace},   {"reverse", f_reverse},   {"round", f_round},
    {"safe", f_safe},         {"select", f_select},     {"selectattr", f_selectattr},
    {"sort", f_sort},         {"string", f_string},     {"sum", f_sum},
    {"title", f_title},       {"tojson", f_tojson},     {"trim", f_trim},
    {"unique", f_unique},     {"upper", f_upper},       {"wordcount", f_wordcount},
};

// ---- tests ----

Result<bool> t_defined(Evaluator&, const Value& v, const Args&) { return !v.is_undefined(); }
Result<bool> t_undefined(Evaluator&, const Value& v, const Args&) { return v.is_undefined(); }
Result<bool> t_none(Evaluator&, const Value& v, const Args&) { return v.is_none(); }
Result<bool> t_boolean(Evaluator&, const Value& v, const Args&) { return v.kind() == Value::Kind::kBool; }
Result<bool> t_true(Evaluator&, const Value& v, const Args&) { return v.kind() == Value::Kind::kBool && v.as_bool(); }
Result<bool> t_false(Evaluator&, const Value& v, const Args&) { return v.kind() == Value::Kind::kBool && !v.as_bool(); }
Result<bool> t_integer(Evaluator&, const Value& v, const Args&) { return v.kind() == Value::Kind::kInt; }
Result<bool> t_float(Evaluator&, const Value& v, const Args&) { return v.kind() == Value::Kind::kFloat; }
Result<bool> t_number(Evaluator&, const Value& v, const Args&) { return v.is_number(); }
Result<bool> t_string(Evaluator&, const Value& v, const Args&) { return v.is_string(); }
Result<bool> t_mapping(Evaluator&, const Value& v, const Args&) { return v.is_dict(); }
Result<bool> t_iterable(Evaluator&, const Value& v, const Args&) {
  return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
}
Result<bool> t_callable(Evaluator&, const Value& v, const Args&) { return v.kind() == Value::Kind::kCallable; }

Result<bool> t_eq(Evaluator&, const Value& v, const Args& a) { return equals(v, a.get(0, "other", kUndef)); }
Result<bool> t_ne(Evaluator&, const Value& v, const Args& a) { return !equals(v, a.get(0, "other", kUndef)); }
Result<bool> t_lt(Evaluator&, const Value& v, const Args& a) { return less(v, a.get(0, "other", kUndef)); }
Result<bool> t_gt(Evaluator&, const Value& v, const Args& a) { return less(a.get(0, "other", kUndef), v); }
Result<bool> t_le(Evaluator&, const Value& v, const Args& a) {
  FRUGAL_ASSIGN_OR_RETURN(bool gt, less(a.get(0, "other", kUndef), v));
  return !gt;
}
Result<bool> t_ge(Evaluator&, const Value& v, const Args& a) {
  FRUGAL_ASSIGN_OR_RETURN(bool lt, less(v, a.get(0, "other", kUndef)));
  return !lt;
}

Result<bool> t_sameas(Evaluator&, const Value& v, const Args& a) {
  const Value& o = a.get(0, "other", kUndef);
  if (v.kind() != o.kind()) return false;
  if (v.is_none() || v.is_undefined()) return true;
  if (v.kind() == Value::Kind::kBool) return v.as_bool() == o.as_bool();
  return equals(v, o) && (v.is_number() || v.is_string());
}

Result<bool> int_test(const Value& v, const char* what) {
  if (v.kind() != Value::Kind::kInt && v.kind() != Value::Kind::kBool) {
    return invalid_argument(std::string("the '") + what + "' test needs an integer, not '" + type_name(v) + "'");
  }
  return true;
}
Result<bool> t_odd(Evaluator&, const Value& v, const Args&) {
  FRUGAL_RETURN_IF_ERROR(int_test(v, "odd").status());
  return v.as_int() % 2 != 0;
}
Result<bool> t_even(Evaluator&, const Value& v, const Args&) {
  FRUGAL_RETURN_IF_ERROR(int_test(v, "even").status());
  return v.as_int() % 2 == 0;
}
Result<bool> t_divisibleby(Evaluator&, const Value& v, const Args& a) {
  FRUGAL_RETURN_IF_ERROR(int_test(v, "divisibleby").status());
  FRUGAL_ASSIGN_OR_RETURN(int64_t n, int_arg(a.get(0, "num", kNone), "divisibleby"));
  if (n == 0) return invalid_argument("divisibleby 0");
  return v.as_int() % n == 0;
}

Result<bool> t_in(Evaluator&, const Value& v, const Args& a) {
  const Value& seq = a.get(0, "seq", kUndef);
  if (seq.is_string()) {
    if (!v.is_string()) return invalid_argument("'in <string>' requires a string on the left");
    return seq.as_string().find(v.as_string()) != std::string::npos;
  }
  if (seq.is_dict()) return v.is_string() && seq.as_dict().find(v.as_string()) != nullptr;
  FRUGAL_ASSIGN_OR_RETURN(ValueList items, iterate(seq));
  for (const Value& x : items) {
    if (equals(x, v)) return true;
  }
  return false;
}

Result<bool> t_lower(Evaluator&, const Value& v, const Args&) {
  const std::string s = to_python_str(v);
  return s == ascii_lower(s) && s != ascii_upper(s);
}
Result<bool> t_upper(Evaluator&, const Value& v, const Args&) {
  const std::string s = to_python_str(v);
  return s == ascii_upper(s) && s != ascii_lower(s);
}

struct NamedTest {
  const char* name;
  TestFn fn;
};

constexpr NamedTest kTests[] = {
    {"boolean", t_boolean},   {"callable", t_callable}, {"defined", t_defined},
    {"divisibleby", t_divisibleby}, {"eq", t_eq},       {"equalto", t_eq},
    {"escaped", t_false},     {"even", t_even},         {"false", t_false},
    {"float", t_float},       {"ge", t_ge},             {"greaterthan", t_gt},
    {"gt", t_gt},             {"in", t_in},             {"integer", t_integer},
    {"iterable", t_iterable}, {"le", t_le},             {"lessthan", t_lt},
    {"lower", t_lower},       {"lt", t_lt},             {"mapping", t_mapping},
    {"ne", t_ne},             {"none", t_none},         {"number", t_number},
    {"odd", t_odd},           {"sameas", t_sameas},     {"sequence", t_iterable},
    {"string", t_string},     {"true", t_true},         {"undefined", t_undefined},
    {"upper", t_upper},
};

}  // namespace

FilterFn find_filter(std::string_view name) {
  for (const NamedFilter& f : kFilters) {
    if (name == f.name) return f.fn;
  }
  return nullptr;
}

TestFn find_test(std::string_view name) {
  for (const NamedTest& t : kTests) {
    if (name == t.name) return t.fn;
  }
  return nullptr;
}

bool is_known_unsupported_filter(std::string_view name) {
  static const char* kJinjaFilters[] = {"batch", "center", "filesizeformat", "forceescape",
                                        "format", "groupby", "pprint", "random", "slice",
                                        "striptags", "truncate", "urlencode", "urlize",
                                        "wordwrap", "xmlattr"};
  for (const char* f : kJinjaFilters) {
    if (name == f) return true;
  }
  return false;
}

// ---- methods ----

namespace {

Result<Value> string_method(Evaluator& ev, const std::string& s, const std::string& name,
                            const Args& a) {
  auto opt_str = [&](size_t i, const char* key, std::string& out) -> Result<bool> {
    const Value& v = a.get(i, key, kNone);
    if (v.is_none()) return false;
    FRUGAL_ASSIGN_OR_RETURN(out, str_arg(v, ("str." + name + "()").c_str()));
    return true;
  };
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    std::string chars;
    FRUGAL_ASSIGN_OR_RETURN(bool has, opt_str(0, "chars", chars));
    return built_string(ev, python_strip(s, has ? &chars : nullptr, name != "rstrip", name != "lstrip"));
  }
  if (name == "split") {
    std::string sep;
    FRUGAL_ASSIGN_OR_RETURN(bool has, opt_str(0, "sep", sep));
    if (has && sep.empty()) return invalid_argument("str.split(): empty separator");
    FRUGAL_ASSIGN_OR_RETURN(int64_t maxsplit, int_arg(a.get(1, "maxsplit", Value(int64_t{-1})), "str.split(): maxsplit"));
    ValueList out;
    for (std::string& part : python_split(s, has ? &sep : nullptr, maxsplit)) out.emplace_back(std::move(part));
    FRUGAL_RETURN_IF_ERROR(ev.built(out.size() + s.size()));
    return Value(std::move(out));
  }
  if (name == "startswith" || name == "endswith") {
    const Value& arg = a.get(0, "prefix", kNone);
    ValueList options = arg.is_list() ? arg.as_list() : ValueList{arg};
    for (const Value& o : options) {
      FRUGAL_ASSIGN_OR_RETURN(std::string p, str_arg(o, ("str." + name + "()").c_str()));
      const bool hit = name == "startswith" ? s.compare(0, p.size(), p) == 0 && s.size() >= p.size()
                                            : s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
      if (hit) return Value(true);
    }
    return Value(false);
  }
  if (name == "replace") {
    Args r;
    r.positional = a.positional;
    return f_replace(ev, Value(s), r);
  }
  if (name == "upper") return built_string(ev, ascii_upper(s));
  if (name == "lower") return built_string(ev, ascii_lower(s));
  if (name == "title") return built_string(ev, title_case(s));
  if (name == "capitalize") return f_capitalize(ev, Value(s), a);
  if (name == "find" || name == "count") {
    FRUGAL_ASSIGN_OR_RETURN(std::string sub, str_arg(a.get(0, "sub", kNone), ("str." + name + "()").c_str()));
    if (name == "find") {
      const size_t at = s.find(sub);
      return Value(at == std::string::npos ? int64_t{-1} : static_cast<int64_t>(utf8_length(s.substr(0, at))));
    }
    if (sub.empty()) return Value(static_cast<int64_t>(utf8_length(s) + 1));
    int64_t n = 0;
    for (size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++n;
    return Value(n);
  }
  if (name == "join") {
    FRUGAL_ASSIGN_OR_RETURN(ValueList items, iterate(a.get(0, "iterable", kNone)));
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) out += s;
      FRUGAL_ASSIGN_OR_RETURN(std::string part, str_arg(items[i], "str.join(): items"));
      out += part;
      FRUGAL_RETURN_IF_ERROR(ev.built(out.size()));
    }
    return Value(std::move(out));
  }
  if (name == "isdigit" || name == "isalpha" || name == "isspace" || name == "isalnum") {
    if (s.empty()) return Value(false);
    for (uint32_t cp : decode_utf8(s)) {
      const bool ok = name == "isspace" ? is_python_space(cp)
                    : name == "isdigit" ? (cp >= '0' && cp <= '9')
                    : name == "isalpha" ? ((cp | 32) >= 'a' && (cp | 32) <= 'z')
                                        : ((cp | 32) >= 'a' && (cp | 32) <= 'z') || (cp >= '0' && cp <= '9');
      if (!ok) return Value(false);
    }
    return Value(true);
  }
  return unsupported("the string method '" + name + "' is not supported");
}

Result<Value> dict_method(Evaluator& ev, const Value& d, const std::string& name, const Args& a) {
  const ValueDict& dict = d.as_dict();
  if (name == "get") {
    const Value& key = a.get(0, "key", kNone);
    if (key.is_string()) {
      if (const Value* v = dict.find(key.as_string())) return *v;
    }
    return a.get(1, "default", kNone);
  }
  if (name == "items") return f_items(ev, d, a);
  if (name == "keys" || name == "values") {
    ValueList out;
    for (const auto& [k, v] : dict) out.push_back(name == "keys" ? Value(k) : v);
    FRUGAL_RETURN_IF_ERROR(ev.built_list(out.size()));
    return Value(std::move(out));
  }
  static const char* kMutating[] = {"update", "pop", "popitem", "setdefault", "clear"};
  for (const char* m : kMutating) {
    if (name == m) return invalid_argument("dict." + name + "() is not allowed: template values are immutable");
  }
  if (const Value* v = dict.find(name)) {
    return invalid_argument(std::string("'") + type_name(*v) + "' object is not callable");
  }
  return invalid_argument("'dict object' has no attribute '" + name + "'");
}

}  // namespace

Result<Value> call_method(Evaluator& ev, const Value& obj, const std::string& name, const Args& a) {
  switch (obj.kind()) {
    case Value::Kind::kUndefined: return undefined_error(obj);
    case Value::Kind::kString: return string_method(ev, obj.as_string(), name, a);
    case Value::Kind::kDict: return dict_method(ev, obj, name, a);
    case Value::Kind::kList: {
      static const char* kMutating[] = {"append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse"};
      for (const char* m : kMutating) {
        if (name == m) return invalid_argument("list." + name + "() is not allowed: template values are immutable");
      }
      if (name == "index" || name == "count") {
        const Value& x = a.get(0, "value", kUndef);
        int64_t n = 0;
        const ValueList& items = obj.as_list();
        for (size_t i = 0; i < items.size(); ++i) {
          if (!equals(items[i], x)) continue;
          if (name == "index") return Value(static_cast<int64_t>(i));
          ++n;
        }
        if (name == "index") return invalid_argument("list.index(x): x is not in the list");
        return Value(n);
      }
      return invalid_argument("'list object' has no attribute '" + name + "'");
    }
    default: return invalid_argument(object_name(obj) + " has no attribute '" + name + "'");
  }
}

}  // namespace frugal::jinja::detail
