// The distillation log's file (one write per line, O_APPEND, rotation by size) and its lines.
#include "cascade/distill_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

namespace frugal::cascade {

using nlohmann::json;

namespace {

int open_append(const std::string& path) {
  return ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

json tokens_json(const std::vector<AnswerToken>& tokens) {
  json out = json::array();
  for (const AnswerToken& t : tokens) {
    json top = json::array();
    for (const TokenAlternative& a : t.top) {
      top.push_back({{"id", a.id}, {"piece", a.piece}, {"logprob", a.logprob}});
    }
    out.push_back({{"id", t.id}, {"piece", t.piece}, {"logprob", t.logprob}, {"top", top}});
  }
  return out;
}

json answer_json(const std::string& tier, const TierAnswer& a) {
  return {{"tier", tier},
          {"text", a.text},
          {"finish", finish_reason_name(a.finish)},
          {"tokens", tokens_json(a.tokens)}};
}

json request_json(const TierRequest& request, const std::string& kind, const std::string& slice,
                  double unix_time) {
  json line{{"kind", kind},
            {"time", unix_time},
            {"slice", slice.empty() ? json(nullptr) : json(slice)},
            {"max_tokens", request.max_tokens}};
  if (request.raw_prompt) {
    line["prompt"] = *request.raw_prompt;
  } else {
    json messages = json::array();
    for (const ChatMessage& m : request.messages) {
      messages.push_back({{"role", m.role}, {"content", m.content}});
    }
    line["messages"] = messages;
  }
  return line;
}

std::string text_of(const json& j) {
  // Token pieces may be parts of a UTF-8 character: replaced, never thrown on.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

Result<std::unique_ptr<DistillLog>> DistillLog::open(const std::string& path, int64_t max_bytes) {
  const int fd = open_append(path);
  if (fd < 0) {
    return invalid_argument("cannot open the distillation log " + path + " for appending: " +
                            std::strerror(errno));
  }
  struct stat st{};
  const int64_t size = fstat(fd, &st) == 0 ? static_cast<int64_t>(st.st_size) : 0;
  return std::unique_ptr<DistillLog>(new DistillLog(path, max_bytes, fd, size));
}

DistillLog::DistillLog(std::string path, int64_t max_bytes, int fd, int64_t size)
    : path_(std::move(path)), max_bytes_(max_bytes), fd_(fd), size_(size) {}

DistillLog::~DistillLog() {
  if (fd_ >= 0) ::close(fd_);
}

void DistillLog::append(const std::string& line) {
  const std::string text = line + "\n";
  std::lock_guard<std::mutex> lock(mu_);
  if (size_ > 0 && size_ + static_cast<int64_t>(text.size()) > max_bytes_) {
    // Rotate: the full file becomes <path>.1; lines already written stay whole in it.
    const std::string old = path_ + ".1";
    if (std::rename(path_.c_str(), old.c_str()) == 0) {
      const int fd = open_append(path_);
      if (fd >= 0) {
        ::close(fd_);
        fd_ = fd;
        size_ = 0;
        ++rotations_;
      }
    }
  }
  const ssize_t n = ::write(fd_, text.data(), text.size());
  if (n != static_cast<ssize_t>(text.size())) {
    ++write_errors_;
    return;
  }
  size_ += n;
  ++lines_;
}

int64_t DistillLog::lines() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lines_;
}
int64_t DistillLog::write_errors() const {
  std::lock_guard<std::mutex> lock(mu_);
  return write_errors_;
}
int64_t DistillLog::rotations() const {
  std::lock_guard<std::mutex> lock(mu_);
  return rotations_;
}

std::string distill_escalated_line(const TierRequest& request, const CascadeAnswer& answer,
                                   const std::string& tier1_name, const std::string& slice,
                                   double unix_time) {
  json line = request_json(request, "escalated", slice, unix_time);
  const bool tier1_ran = !answer.tier1.tokens.empty() || !answer.tier1.text.empty();
  if (tier1_ran) {
    json t1 = answer_json(tier1_name, answer.tier1);
    t1["score"] = std::isfinite(answer.score) ? json(answer.score) : json(nullptr);
    line["tier1"] = t1;
  } else {
    line["tier1"] = nullptr;
  }
  json top{{"tier", answer.tier},
           {"text", answer.text},
           {"finish", finish_reason_name(answer.finish)},
           {"tokens", tokens_json(answer.tokens)}};
  line["top"] = top;
  line["escalated_early"] = answer.escalated_early;
  return text_of(line);
}

std::string distill_shadow_line(const TierRequest& request, const TierAnswer& tier1,
                                const std::string& tier1_name, double score,
                                const TierAnswer& top, const std::string& top_name,
                                bool teacher_forced, bool agree, const std::string& method,
                                const std::string& slice, double unix_time) {
  json line = request_json(request, "shadow", slice, unix_time);
  json t1 = answer_json(tier1_name, tier1);
  t1["score"] = std::isfinite(score) ? json(score) : json(nullptr);
  line["tier1"] = t1;
  json t = answer_json(top_name, top);
  t["teacher_forced"] = teacher_forced;
  line["top"] = t;
  line["agree"] = agree;
  line["method"] = method;
  return text_of(line);
}

}  // namespace frugal::cascade
