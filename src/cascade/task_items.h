// Task items: the JSONL format of docs/TASKS.md (one instruction, its reference answer and how
// an answer is judged) that `frugal eval` and `frugal calibrate` read, and check_answer, the
// C++ twin of tools/tasks.py's check().
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "cascade/features.h"
#include "cascade/tier.h"
#include "engine/chat_template.h"
#include "util/status.h"

namespace frugal::cascade {

// How an answer is judged (docs/TASKS.md, "Check methods").
struct CheckSpec {
  std::string method = "exact";       // "exact", "exact_ci", "numeric" or "clarify"
  double tolerance = 0;               // numeric: allowed |answer - reference|, >= 0
  std::vector<std::string> keywords;  // clarify: at least one must appear in the answer
};

struct TaskItem {
  std::string id;
  std::string slice;
  int difficulty = 1;
  std::vector<ChatMessage> messages;
  // One right answer; empty when the item has none (then the top tier's answer stands in for
  // it in calibration, and `check` may be absent from the line).
  std::string reference;
  CheckSpec check;
  int line = 0;  // 1-based line in the file it was read from
};

// Difficulty is 1 (trivial) to 4 (hard), docs/TASKS.md.
inline constexpr int kMinDifficulty = 1;
inline constexpr int kMaxDifficulty = 4;

// Reads a JSONL file of task items; blank lines are skipped and unknown keys ignored.
// Errors name the file and line: kNotFound (no such file), kIo (unreadable), kInvalidArgument
// (not a regular file; a line that is not UTF-8; malformed JSON, with the parser's reason; a
// missing or mistyped field — id, slice, difficulty, messages, reference, check — naming it;
// an empty id or one already used; a difficulty outside 1..4; a role other than system, user
// or assistant; an unknown check method; a numeric item whose reference is not a number; no
// items at all), kOutOfRange (a file over kMaxReadFileBytes).
Result<std::vector<TaskItem>> read_task_items(const std::string& path);

// The same over a file's text; `name` stands for the file in messages.
Result<std::vector<TaskItem>> parse_task_items(std::string_view text, const std::string& name);

// One item from one parsed JSON line's text; `where` prefixes error messages ("file:12").
Result<TaskItem> parse_task_item(std::string_view json_line, const std::string& where);

// The answer with leading and trailing ASCII whitespace (space, \t, \n, \r, \v, \f) removed.
std::string_view normalize_answer(std::string_view answer);

// True when `answer` is right for `item` under its check method (docs/TASKS.md). Errors:
// kInvalidArgument for an unknown method, a negative tolerance, a clarify check with no
// keywords, or a numeric item whose reference is not a number.
Result<bool> check_answer(const TaskItem& item, std::string_view answer);

// For an item with no reference: true when `answer` agrees with `other` (the top tier's
// answer) under the item's method — `other`, normalized, plays the reference; a clarify item
// agrees when `answer` passes its own clarify check. The errors of check_answer.
Result<bool> answers_agree(const TaskItem& item, std::string_view answer, std::string_view other);

// One item run on tier 1 alone and on the top tier alone (what `frugal eval` and
// `frugal calibrate` measure), judged by check_answer.
struct ItemRun {
  TierAnswer tier1;
  TierAnswer top;
  std::vector<double> features;  // scorer_features(tier1)
  double score = 0;              // the scorer's P(tier 1 is good enough), in [0, 1]
  // With a reference: each answer passes the item's check. Without one the top tier's answer
  // is the reference: top_correct is true and tier1_correct is answers_agree(tier1, top).
  bool tier1_correct = false;
  bool top_correct = false;
};

// Runs `item` greedily (temperature 0, at most `max_tokens` tokens) on `tier1` — asking for
// prompt logprobs, as the cascade does — and on `top`, then scores and judges both answers.
// Errors: those of the tiers and of check_answer.
Result<ItemRun> run_task_item(Tier& tier1, Tier& top, const Scorer& scorer, const TaskItem& item,
                              int64_t max_tokens);

}  // namespace frugal::cascade
