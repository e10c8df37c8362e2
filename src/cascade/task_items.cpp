// Task items: the JSONL reader and the answer checks of docs/TASKS.md.
#include "cascade/task_items.h"

#include "cascade/cascade.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <system_error>
#include <unordered_map>

#include "util/file_io.h"

namespace frugal::cascade {

namespace {

using nlohmann::json;

bool is_known_method(const std::string& method) {
  return method == "exact" || method == "exact_ci" || method == "numeric" ||
         method == "clarify";
}

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// The whole of `s` matches [+-]?[0-9]+(\.[0-9]+)?
bool is_plain_number(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  const size_t int_start = i;
  while (i < s.size() && is_digit(s[i])) ++i;
  if (i == int_start) return false;
  if (i == s.size()) return true;
  if (s[i] != '.') return false;
  ++i;
  const size_t frac_start = i;
  while (i < s.size() && is_digit(s[i])) ++i;
  return i > frac_start && i == s.size();
}

// A decimal number as Python's float() reads the common forms (sign, digits, point, exponent);
// false when `s` is not one.
bool parse_double(std::string_view s, double* value) {
  s = normalize_answer(s);
  bool negative = false;
  if (!s.empty() && (s.front() == '+' || s.front() == '-')) {
    negative = s.front() == '-';
    s.remove_prefix(1);
  }
  if (s.empty() || s.front() == '+' || s.front() == '-') return false;
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) return false;
  *value = negative ? -v : v;
  return true;
}

Status spec_error(const TaskItem& item, const std::string& what) {
  return invalid_argument("task item '" + item.id + "': " + what);
}

Status validate_spec(const TaskItem& item) {
  const CheckSpec& spec = item.check;
  if (!is_known_method(spec.method)) {
    return spec_error(item, "unknown check method '" + spec.method +
                                "' (known: exact, exact_ci, numeric, clarify)");
  }
  if (spec.method == "numeric") {
    if (!(spec.tolerance >= 0) || !std::isfinite(spec.tolerance)) {
      return spec_error(item, "numeric check tolerance must be a finite number >= 0");
    }
    double v = 0;
    if (!parse_double(item.reference, &v)) {
      return spec_error(item, "numeric check but the reference '" + item.reference +
                                  "' is not a number");
    }
  }
  if (spec.method == "clarify" && spec.keywords.empty()) {
    return spec_error(item, "clarify check needs at least one keyword");
  }
  return Status::ok();
}

// Field accessors that name the line and field on error.
Status field_error(const std::string& where, const std::string& field, const std::string& what) {
  return invalid_argument(where + ": field '" + field + "' " + what);
}

Result<std::string> get_string(const json& j, const std::string& where, const char* field) {
  auto it = j.find(field);
  if (it == j.end()) return field_error(where, field, "is missing");
  if (!it->is_string()) return field_error(where, field, "must be a string");
  return it->get<std::string>();
}

// The offset of the first byte that is not part of a well-formed UTF-8 sequence (overlong
// forms, surrogates and code points above U+10FFFF included), or npos when all of `s` is.
size_t first_invalid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    uint32_t cp = 0, min = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07, min = 0x10000;
    } else {
      return i;
    }
    if (i + len > s.size()) return i;
    for (size_t k = 1; k < len; ++k) {
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return std::string_view::npos;
}

// "syntax error while parsing object key - invalid literal; last read: '{\"id\": \"b\", o'"
// from nlohmann's "[json.exception.parse_error.101] parse error at line 1, column 14: ...".
std::string json_error_text(const json::exception& e) {
  std::string what = e.what();
  if (!what.empty() && what[0] == '[') {
    const size_t close = what.find("] ");
    if (close != std::string::npos) what = what.substr(close + 2);
  }
  if (what.rfind("parse error", 0) == 0) {
    const size_t colon = what.find(": ");
    if (colon != std::string::npos) what = what.substr(colon + 2);
  }
  return what;
}

bool is_known_role(const std::string& role) {
  return role == "system" || role == "user" || role == "assistant";
}

}  // namespace

std::string_view normalize_answer(std::string_view answer) {
  constexpr std::string_view kSpace = " \t\n\r\v\f";
  const size_t first = answer.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return {};
  const size_t last = answer.find_last_not_of(kSpace);
  return answer.substr(first, last - first + 1);
}

Result<TaskItem> parse_task_item(std::string_view json_line, const std::string& where) {
  if (const size_t bad = first_invalid_utf8(json_line); bad != std::string_view::npos) {
    char byte[8];
    std::snprintf(byte, sizeof(byte), "0x%02x", static_cast<unsigned char>(json_line[bad]));
    return invalid_argument(where + ": not UTF-8 text (byte " + byte + " at column " +
                            std::to_string(bad + 1) +
                            "); task files must be UTF-8 encoded JSON lines");
  }
  json j;
  try {
    j = json::parse(json_line.begin(), json_line.end());
  } catch (const json::exception& e) {
    // parse_error, and out_of_range for a number too large for any type (found by tasks_fuzz).
    return invalid_argument(where + ": malformed JSON (" + json_error_text(e) + ")");
  }
  if (!j.is_object()) return invalid_argument(where + ": a task item must be a JSON object");
  TaskItem item;
  FRUGAL_ASSIGN_OR_RETURN(item.id, get_string(j, where, "id"));
  if (item.id.empty()) return field_error(where, "id", "must not be empty");
  FRUGAL_ASSIGN_OR_RETURN(item.slice, get_string(j, where, "slice"));
  auto diff = j.find("difficulty");
  if (diff == j.end()) return field_error(where, "difficulty", "is missing");
  if (!diff->is_number_integer() || diff->get<int64_t>() < kMinDifficulty ||
      diff->get<int64_t>() > kMaxDifficulty) {
    return field_error(where, "difficulty",
                       "must be an integer from " + std::to_string(kMinDifficulty) + " to " +
                           std::to_string(kMaxDifficulty) +
                           (diff->is_number() ? " (got " + diff->dump() + ")" : std::string()));
  }
  item.difficulty = static_cast<int>(diff->get<int64_t>());
  auto messages = j.find("messages");
  if (messages == j.end()) return field_error(where, "messages", "is missing");
  if (!messages->is_array() || messages->empty()) {
    return field_error(where, "messages", "must be a non-empty list of {role, content}");
  }
  for (const json& m : *messages) {
    if (!m.is_object() || !m.contains("role") || !m.contains("content") ||
        !m["role"].is_string() || !m["content"].is_string()) {
      return field_error(where, "messages",
                         "must hold objects with string 'role' and 'content'");
    }
    std::string role = m["role"].get<std::string>();
    if (!is_known_role(role)) {
      return field_error(where, "messages",
                         "has a message with role '" + role +
                             "' (known roles: system, user, assistant)");
    }
    item.messages.push_back({std::move(role), m["content"].get<std::string>()});
  }
  if (j.contains("reference") && !j["reference"].is_null()) {
    FRUGAL_ASSIGN_OR_RETURN(item.reference, get_string(j, where, "reference"));
  }
  auto check = j.find("check");
  if (check == j.end() || check->is_null()) {
    if (!item.reference.empty()) return field_error(where, "check", "is missing");
  } else {
    if (!check->is_object()) return field_error(where, "check", "must be an object");
    auto method = check->find("method");
    if (method == check->end() || !method->is_string()) {
      return field_error(where, "check.method", method == check->end() ? "is missing"
                                                                        : "must be a string");
    }
    item.check.method = method->get<std::string>();
    if (auto tol = check->find("tolerance"); tol != check->end()) {
      if (!tol->is_number()) return field_error(where, "check.tolerance", "must be a number");
      item.check.tolerance = tol->get<double>();
    }
    if (auto kw = check->find("keywords"); kw != check->end()) {
      if (!kw->is_array()) return field_error(where, "check.keywords", "must be a list");
      for (const json& k : *kw) {
        if (!k.is_string()) {
          return field_error(where, "check.keywords", "must be a list of strings");
        }
        item.check.keywords.push_back(k.get<std::string>());
      }
    }
    // A missing reference leaves nothing for numeric to compare with; agreement with the top
    // tier is checked instead, so only the method itself is validated then.
    if (item.reference.empty() && item.check.method != "clarify") {
      if (!is_known_method(item.check.method)) {
        return invalid_argument(where + ": unknown check method '" + item.check.method + "'");
      }
    } else if (Status s = validate_spec(item); !s.is_ok()) {
      return invalid_argument(where + ": " + s.message());
    }
  }
  return item;
}

Result<std::vector<TaskItem>> read_task_items(const std::string& path) {
  Result<std::string> text = read_file(path);
  if (!text.is_ok()) {
    if (text.status().code() == ErrorCode::kNotFound) return not_found(path + ": no such file");
    return text.status();
  }
  return parse_task_items(*text, path);
}

Result<std::vector<TaskItem>> parse_task_items(std::string_view text, const std::string& name) {
  std::vector<TaskItem> items;
  std::unordered_map<std::string, int> line_of_id;
  int line_no = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (normalize_answer(line).empty()) continue;
    const std::string where = name + ":" + std::to_string(line_no);
    FRUGAL_ASSIGN_OR_RETURN(TaskItem item, parse_task_item(line, where));
    item.line = line_no;
    auto [it, fresh] = line_of_id.emplace(item.id, line_no);
    if (!fresh) {
      return invalid_argument(where + ": id '" + item.id + "' was already used on line " +
                              std::to_string(it->second) + "; ids must be unique in a file");
    }
    items.push_back(std::move(item));
  }
  if (items.empty()) return invalid_argument(name + ": no task items");
  return items;
}

Result<bool> check_answer(const TaskItem& item, std::string_view answer) {
  FRUGAL_RETURN_IF_ERROR(validate_spec(item));
  const std::string_view got = normalize_answer(answer);
  const std::string& method = item.check.method;
  if (method == "exact") return got == item.reference;
  if (method == "exact_ci") return ascii_lower(got) == ascii_lower(item.reference);
  if (method == "numeric") {
    if (!is_plain_number(got)) return false;
    double value = 0, reference = 0;
    if (!parse_double(got, &value)) return false;  // too large to be finite
    parse_double(item.reference, &reference);       // validated above
    return std::fabs(value - reference) <= item.check.tolerance;
  }
  // clarify
  if (got.empty() || got.back() != '?') return false;
  const std::string low = ascii_lower(got);
  return std::any_of(item.check.keywords.begin(), item.check.keywords.end(),
                     [&](const std::string& k) { return low.find(ascii_lower(k)) !=
                                                        std::string::npos; });
}

Result<bool> answers_agree(const TaskItem& item, std::string_view answer,
                           std::string_view other) {
  if (item.check.method == "clarify") return check_answer(item, answer);
  TaskItem as_reference = item;
  as_reference.reference = std::string(normalize_answer(other));
  if (item.check.method == "numeric" && !is_plain_number(as_reference.reference)) {
    return false;  // the top tier gave no number: nothing to agree with
  }
  return check_answer(as_reference, answer);
}

Result<ItemRun> run_task_item(Tier& tier1, Tier& top, const Scorer& scorer, const TaskItem& item,
                              int64_t max_tokens) {
  TierRequest request;
  request.messages = item.messages;
  request.max_tokens = max_tokens;
  request.temperature = 0.0f;
  request.prompt_logprobs = true;
  ItemRun run;
  FRUGAL_ASSIGN_OR_RETURN(run.tier1, tier1.answer(request));
  request.prompt_logprobs = false;
  FRUGAL_ASSIGN_OR_RETURN(run.top, top.answer(request));
  // The cascade's own rule (decide) gives the features and score; the threshold is chosen
  // later over these runs, so its verdict here is unused.
  const Decision d = decide(scorer, 0.5, run.tier1);
  run.features = d.features;
  run.score = std::clamp(d.score, 0.0, 1.0);
  if (item.reference.empty()) {
    run.top_correct = true;
    FRUGAL_ASSIGN_OR_RETURN(run.tier1_correct, answers_agree(item, run.tier1.text, run.top.text));
  } else {
    FRUGAL_ASSIGN_OR_RETURN(run.tier1_correct, check_answer(item, run.tier1.text));
    FRUGAL_ASSIGN_OR_RETURN(run.top_correct, check_answer(item, run.top.text));
  }
  return run;
}

}  // namespace frugal::cascade
