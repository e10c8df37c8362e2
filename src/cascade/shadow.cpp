// Shadow checks: sampling, the rolling-hour budget, the bounded queue and its workers, the
// comparison of two answers, and the drift detectors fed by the outcomes.
#include "cascade/shadow.h"

#include <cctype>
#include <cmath>
#include <cstdio>

#include "cascade/calibration.h"
#include "cascade/local_tier.h"
#include "cascade/semantic_cache.h"

namespace frugal::cascade {

namespace {

constexpr auto kHour = std::chrono::hours(1);
// A check's top-tier call may take this long; the client's own deadline has no say over it.
constexpr auto kShadowDeadline = std::chrono::minutes(5);

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

}  // namespace

std::string normalize_for_compare(std::string_view answer) {
  std::string out;
  out.reserve(answer.size());
  bool gap = false;
  for (char c : answer) {
    if (is_space(c)) {
      gap = !out.empty();
      continue;
    }
    if (gap) out.push_back(' ');
    gap = false;
    out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
  }
  if (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

Result<AgreementExpectation> expected_agreement(const std::vector<TaskItem>& items,
                                                const std::vector<ItemRun>& runs,
                                                const std::vector<double>& scores,
                                                double threshold) {
  CHECK(items.size() == runs.size() && runs.size() == scores.size(),
        "expected_agreement: items, runs and scores differ in length");
  int64_t kept = 0, agree = 0;
  std::map<std::string, std::pair<int64_t, int64_t>> by_slice;  // (kept, agree)
  for (size_t i = 0; i < items.size(); ++i) {
    if (cascade_escalates(scores[i], threshold)) continue;
    TaskItem judge = items[i];
    judge.reference.clear();  // agreement with the top tier, not correctness
    FRUGAL_ASSIGN_OR_RETURN(bool a, answers_agree(judge, runs[i].tier1.text, runs[i].top.text));
    ++kept;
    agree += a;
    auto& s = by_slice[items[i].slice];
    ++s.first;
    s.second += a;
  }
  if (kept == 0) return invalid_argument("tier 1 keeps no calibration item at this threshold");
  auto share = [](int64_t a, int64_t n) { return (static_cast<double>(a) + 0.5) / (static_cast<double>(n) + 1.0); };
  AgreementExpectation e;
  e.overall = share(agree, kept);
  e.kept = kept;
  for (const auto& [slice, ka] : by_slice) {
    if (ka.first >= kMinSliceKept) e.slices.emplace_back(slice, share(ka.second, ka.first));
  }
  return e;
}

namespace {

bool is_header(const std::string& line) {
  const size_t a = line.find_first_not_of(" \t");
  return a != std::string::npos && line[a] == '[';
}

std::string header_name(const std::string& line) {
  const size_t a = line.find_first_not_of(" \t[");
  const size_t b = line.find(']');
  if (a == std::string::npos || b == std::string::npos || b < a) return "";
  std::string name = line.substr(a, b - a);
  while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.pop_back();
  return name;
}

bool is_key(const std::string& line, const std::string& key) {
  const size_t a = line.find_first_not_of(" \t");
  if (a == std::string::npos || line.compare(a, key.size(), key) != 0) return false;
  const size_t b = line.find_first_not_of(" \t", a + key.size());
  return b != std::string::npos && line[b] == '=';
}

std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

}  // namespace

std::string set_expected_agreement(const std::string& config_text,
                                   const AgreementExpectation& expected) {
  std::vector<std::string> lines;
  {
    size_t start = 0;
    while (start <= config_text.size()) {
      const size_t end = config_text.find('\n', start);
      if (end == std::string::npos) {
        if (start < config_text.size()) lines.push_back(config_text.substr(start));
        break;
      }
      lines.push_back(config_text.substr(start, end - start));
      start = end + 1;
    }
  }
  // Drop the old [shadow.slice_agreement] table, header to the next header.
  std::vector<std::string> kept;
  bool in_slices = false;
  for (const std::string& l : lines) {
    if (is_header(l)) in_slices = header_name(l) == "shadow.slice_agreement";
    if (!in_slices) kept.push_back(l);
  }
  const std::string value = "expected_agreement = " + number_text(expected.overall);
  const std::string comment = "# Written by frugal calibrate: tier 1 agreed with the top tier on " +
                              number_text(100.0 * expected.overall) + " % of the " +
                              std::to_string(expected.kept) + " calibration items it kept.";
  size_t shadow = kept.size();
  for (size_t i = 0; i < kept.size(); ++i)
    if (is_header(kept[i]) && header_name(kept[i]) == "shadow") shadow = i;
  if (shadow == kept.size()) {
    while (!kept.empty() && kept.back().empty()) kept.pop_back();
    kept.insert(kept.end(), {"", "[shadow]", comment, value});
  } else {
    bool set = false;
    size_t end = shadow + 1;
    for (; end < kept.size() && !is_header(kept[end]); ++end) {
      if (is_key(kept[end], "expected_agreement")) {
        kept[end] = value;
        if (end > 0 && kept[end - 1].rfind("# Written by frugal calibrate", 0) == 0) {
          kept[end - 1] = comment;
        }
        set = true;
      }
    }
    if (!set) kept.insert(kept.begin() + static_cast<std::ptrdiff_t>(shadow) + 1, {comment, value});
  }
  if (!expected.slices.empty()) {
    while (!kept.empty() && kept.back().empty()) kept.pop_back();
    kept.push_back("");
    kept.push_back("[shadow.slice_agreement]");
    for (const auto& [slice, v] : expected.slices) {
      // A bare key when it can be one, else a quoted key.
      bool bare = !slice.empty();
      for (char c : slice) bare = bare && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-');
      std::string key = slice;
      if (!bare) {
        key = "\"";
        for (char c : slice) {
          if (c == '"' || c == '\\') key.push_back('\\');
          key.push_back(c);
        }
        key += "\"";
      }
      kept.push_back(key + " = " + number_text(v));
    }
  }
  std::string out;
  for (const std::string& l : kept) out += l + "\n";
  return out;
}

ShadowChecker::ShadowChecker(std::shared_ptr<Cascade> cascade, Options options)
    : cascade_(std::move(cascade)),
      config_(cascade_->config().shadow),
      options_(std::move(options)),
      rng_(options_.seed != 0 ? options_.seed : std::random_device{}()) {}

Result<std::unique_ptr<ShadowChecker>> ShadowChecker::create(std::shared_ptr<Cascade> cascade,
                                                             Options options) {
  CHECK(cascade != nullptr, "ShadowChecker::create: no cascade");
  std::unique_ptr<ShadowChecker> s(new ShadowChecker(std::move(cascade), std::move(options)));
  const ShadowConfig& c = s->config_;
  Cascade& k = *s->cascade_;
  s->top_local_ = k.model_tiers().size() > 1 ? dynamic_cast<LocalTier*>(&k.top_tier()) : nullptr;
  if (c.compare == "logprob" && s->top_local_ == nullptr) {
    return invalid_argument("[shadow] compare = \"logprob\" needs the top tier to be a local GGUF "
                            "model (its teacher-forced reading of tier 1's answer); use \"exact\" "
                            "or \"auto\" with a remote top tier");
  }
  if (c.fraction > 0 && c.compare != "exact" && s->top_local_ != nullptr) {
    // The reader: the top tier's model file again (mapped, so its pages are shared), for
    // teacher-forced passes outside the top tier's scheduler.
    TierConfig reader = s->top_local_->config();
    reader.name = s->top_local_->name() + " (shadow reader)";
    reader.embedding_model.clear();
    FRUGAL_ASSIGN_OR_RETURN(s->reader_,
                            SemanticCache::create(reader, reader.model, std::make_shared<ThreadPool>(1)));
  }
  if (c.expected_agreement > 0) {
    auto design = [&](double expected) -> Status {
      if (s->designs_.count(expected) != 0) return Status::ok();
      auto d = design_cusum(expected, c.drift_shift, c.false_alarm_rate, 10000);
      if (!d.is_ok()) return invalid_argument("[shadow]: " + d.status().message());
      s->designs_.emplace(expected, *d);
      return Status::ok();
    };
    FRUGAL_RETURN_IF_ERROR(design(c.expected_agreement));
    s->overall_.emplace(s->designs_.at(c.expected_agreement), c.expected_agreement);
    for (const auto& [slice, expected] : c.slice_agreement) {
      if (expected - c.drift_shift <= 0) continue;  // too low to detect a drop of drift_shift
      FRUGAL_RETURN_IF_ERROR(design(expected));
      s->slice_expected_[slice] = expected;
    }
  }
  const int64_t workers = c.fraction > 0 ? c.workers : 0;
  for (int64_t i = 0; i < workers; ++i) s->workers_.emplace_back([p = s.get()] { p->work(); });
  return s;
}

ShadowChecker::~ShadowChecker() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    queue_.clear();
    reserved_ = 0;
  }
  cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ShadowChecker::log(const std::string& line) const {
  if (options_.log) {
    options_.log(line);
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
}

double ShadowChecker::spent_locked(Clock::time_point t) {
  while (!spent_.empty() && spent_.front().first + kHour < t) {
    spent_sum_ -= spent_.front().second;
    spent_.pop_front();
  }
  if (spent_.empty()) spent_sum_ = 0;  // no drift from rounding
  return spent_sum_;
}

double ShadowChecker::spent_last_hour() const {
  auto* self = const_cast<ShadowChecker*>(this);
  std::lock_guard<std::mutex> lock(mu_);
  return self->spent_locked(now());
}

ShadowOffer ShadowChecker::offer(const TierRequest& request, const ShadowTags& tags,
                                 const CascadeAnswer& answer) {
  Cascade& k = *cascade_;
  if (config_.fraction <= 0 || k.model_tiers().size() < 2 || answer.cache_hit ||
      answer.escalated || answer.tier != k.tier1().name() || request.temperature != 0.0f) {
    return ShadowOffer::kNotEligible;
  }
  Job job;
  job.tier1 = answer.tier1;
  job.score = answer.score;
  const bool short_answer =
      static_cast<int64_t>(answer.text.size()) <= config_.short_answer_chars;
  job.method = config_.compare == "exact"     ? "exact"
               : config_.compare == "logprob" ? "logprob"
               : tags.check                   ? "check"
               : short_answer || reader_ == nullptr ? "exact"
                                                    : "logprob";
  Tier& top = k.top_tier();
  job.estimate = job.method == "logprob"
                     ? top.cost(answer.tier1.tokens_in + answer.tier1.tokens_out, 0)
                     : top.cost(answer.tier1.tokens_in, answer.tier1.tokens_out);
  ShadowOffer result = ShadowOffer::kQueued;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return ShadowOffer::kNotEligible;
    if (std::uniform_real_distribution<double>(0.0, 1.0)(rng_) >= config_.fraction) {
      return ShadowOffer::kNotSampled;
    }
    if (spent_locked(now()) + reserved_ + job.estimate > config_.budget_per_hour) {
      result = ShadowOffer::kOverBudget;
    } else if (static_cast<int64_t>(queue_.size()) >= config_.queue) {
      result = ShadowOffer::kQueueFull;
    } else {
      job.request = request;
      job.request.prompt_logprobs = false;
      job.request.draft.clear();
      job.tags = tags;
      reserved_ += job.estimate;
      queue_.push_back(std::move(job));
    }
  }
  if (result == ShadowOffer::kQueued) {
    cv_.notify_one();
  } else if (options_.observer.on_drop) {
    options_.observer.on_drop(result == ShadowOffer::kOverBudget ? "budget" : "queue");
  }
  return result;
}

void ShadowChecker::work() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
      ++running_;
    }
    run(job);
    {
      std::lock_guard<std::mutex> lock(mu_);
      --running_;
      reserved_ = std::max(0.0, reserved_ - job.estimate);
    }
    cv_.notify_all();
  }
}

void ShadowChecker::wait_idle() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return stopping_ || (queue_.empty() && running_ == 0); });
}

// One check: the top tier's answer (or its reading of tier 1's), the comparison, the cost, the
// distillation log and the detectors.
void ShadowChecker::run(Job& job) {
  Cascade& k = *cascade_;
  Tier& top = k.top_tier();
  TierAnswer other;
  bool agree = false;
  const bool forced = job.method == "logprob";
  job.request.deadline = Clock::now() + kShadowDeadline;
  if (forced) {
    auto read = reader_->check(*top_local_, job.request, job.tier1);
    if (!read.is_ok()) {
      if (options_.observer.on_drop) options_.observer.on_drop("error");
      return;
    }
    other = read->scored;
    other.cost = top.cost(other.tokens_in, 0);
    // The scorer, fitted on tier 1's own readings, judges the top tier's reading at the
    // cascade's threshold.
    agree = !decide(k.scorer(), k.threshold(), other).escalate;
  } else {
    auto a = top.answer(job.request);
    if (!a.is_ok()) {
      if (options_.observer.on_drop) options_.observer.on_drop("error");
      return;
    }
    other = std::move(a).value();
    if (job.method == "check") {
      TaskItem item;
      item.check = *job.tags.check;
      auto r = answers_agree(item, job.tier1.text, other.text);
      agree = r.is_ok() && *r;
    } else {
      agree = normalize_for_compare(job.tier1.text) == normalize_for_compare(other.text);
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    spent_.emplace_back(now(), other.cost);
    spent_sum_ += other.cost;
  }
  if (options_.observer.on_spent) options_.observer.on_spent(other.cost);
  if (options_.distill != nullptr) {
    const double unix_time = std::chrono::duration<double>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
    options_.distill->append(distill_shadow_line(job.request, job.tier1, k.tier1().name(),
                                                 job.score, other, top.name(), forced, agree,
                                                 job.method, job.tags.slice, unix_time));
  }
  if (options_.observer.on_outcome) options_.observer.on_outcome(job.tags.slice, agree, job.method);
  record_outcome(job.tags.slice, agree);
}

ShadowChecker::Detector* ShadowChecker::slice_detector_locked(const std::string& slice) {
  if (slice.empty() || !overall_) return nullptr;
  auto it = slices_.find(slice);
  if (it != slices_.end()) return &it->second;
  // Client-chosen tags are bounded: past max_slices they count overall only.
  if (static_cast<int64_t>(slices_.size()) >= config_.max_slices) return nullptr;
  const auto e = slice_expected_.find(slice);
  const double expected = e != slice_expected_.end() ? e->second : config_.expected_agreement;
  return &slices_.emplace(slice, Detector(designs_.at(expected), expected)).first->second;
}

void ShadowChecker::record_outcome(const std::string& slice, bool agree) {
  std::vector<DriftState> fired;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!overall_) return;
    auto feed = [&](const std::string& name, Detector& d) {
      d.agreements += agree ? 1 : 0;
      if (d.cusum.update(!agree)) fire_locked(name, d, &fired);
    };
    feed("", *overall_);
    if (Detector* d = slice_detector_locked(slice)) feed(slice, *d);
  }
  for (const DriftState& st : fired) {
    char line[512];
    std::snprintf(line, sizeof line,
                  "frugal serve: drift alarm (%s): tier 1 agreed with the top tier on %lld of "
                  "%lld shadow checks (%.1f %%), calibration predicted %.1f %%; CUSUM %.2f >= "
                  "%.2f nats (false alarms: %.2g per detector per 10,000 checks); action: %s",
                  st.slice.empty() ? "all slices" : ("slice '" + st.slice + "'").c_str(),
                  static_cast<long long>(st.agreements), static_cast<long long>(st.outcomes),
                  100.0 * static_cast<double>(st.agreements) / static_cast<double>(st.outcomes),
                  100.0 * st.expected_agreement, st.statistic_nats, st.design.threshold_nats(),
                  st.design.false_alarm, config_.action.c_str());
    log(line);
    if (config_.action == "escalate-all") cascade_->set_escalate_all(true);
    if (options_.observer.on_alarm) options_.observer.on_alarm(st);
  }
}

void ShadowChecker::fire_locked(const std::string& slice, Detector& d,
                                std::vector<DriftState>* fired) {
  DriftState st;
  st.slice = slice;
  st.expected_agreement = d.expected;
  st.outcomes = d.cusum.outcomes();
  st.agreements = d.agreements;
  st.statistic_nats = d.cusum.statistic_nats();
  st.alarm = true;
  st.fired_at = d.cusum.fired_at();
  st.design = d.cusum.design();
  fired->push_back(st);
}

std::vector<DriftState> ShadowChecker::drift() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<DriftState> out;
  auto state = [&](const std::string& name, const Detector& d) {
    DriftState st;
    st.slice = name;
    st.expected_agreement = d.expected;
    st.outcomes = d.cusum.outcomes();
    st.agreements = d.agreements;
    st.statistic_nats = d.cusum.statistic_nats();
    st.alarm = d.cusum.fired();
    st.fired_at = d.cusum.fired_at();
    st.design = d.cusum.design();
    out.push_back(st);
  };
  if (overall_) state("", *overall_);
  for (const auto& [name, d] : slices_) state(name, d);
  return out;
}

bool ShadowChecker::alarmed() const {
  for (const DriftState& st : drift())
    if (st.alarm) return true;
  return false;
}

}  // namespace frugal::cascade
