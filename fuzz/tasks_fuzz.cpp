// libFuzzer target over task-item files (docs/TASKS.md JSONL): any bytes either parse into
// items whose fields respect the documented ranges, or are refused naming the line; every
// parsed item can be judged by each check method without a crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

#include "cascade/task_items.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto items = frugal::cascade::parse_task_items(text, "fuzz.jsonl");
  if (!items.is_ok()) {
    if (items.status().message().rfind("fuzz.jsonl", 0) != 0) std::abort();  // names the file
    return 0;
  }
  std::set<std::string> ids;
  for (const frugal::cascade::TaskItem& item : *items) {
    if (item.id.empty() || !ids.insert(item.id).second) std::abort();
    if (item.difficulty < frugal::cascade::kMinDifficulty ||
        item.difficulty > frugal::cascade::kMaxDifficulty) {
      std::abort();
    }
    if (item.messages.empty() || item.line < 1) std::abort();
    for (const auto& m : item.messages) {
      if (m.role != "system" && m.role != "user" && m.role != "assistant") std::abort();
    }
    for (std::string_view answer : {std::string_view(item.reference), std::string_view(" 42\n"),
                                    std::string_view("what? x"), std::string_view("")}) {
      auto r = frugal::cascade::check_answer(item, answer);
      if (!r.is_ok() && r.status().message().empty()) std::abort();
      auto a = frugal::cascade::answers_agree(item, answer, item.reference);
      if (!a.is_ok() && a.status().message().empty()) std::abort();
    }
  }
  return 0;
}
