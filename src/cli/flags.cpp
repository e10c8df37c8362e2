// Numeric flag checks with messages people can read; the shared -t and -c options.
#include "cli/flags.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "util/thread_pool.h"

namespace frugal::cli {

namespace {

// The value as typed, shortened when someone pasted something enormous.
std::string shown(const std::string& input) {
  constexpr size_t kMax = 40;
  return input.size() <= kMax ? input : input.substr(0, kMax) + "...";
}

std::string number_text(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

bool parse_int(const std::string& s, int64_t* out) {
  const char* begin = s.data();
  const char* end = s.data() + s.size();
  if (begin != end && *begin == '+') ++begin;
  auto [p, ec] = std::from_chars(begin, end, *out);
  return ec == std::errc() && p == end && begin != end;
}

bool parse_real(const std::string& s, double* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  *out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

}  // namespace

CLI::Validator int_range(int64_t lo, int64_t hi) {
  const std::string range = "an integer from " + std::to_string(lo) + " to " + std::to_string(hi);
  return CLI::Validator(
      [lo, hi, range](std::string& input) -> std::string {
        int64_t v = 0;
        if (!parse_int(input, &v)) return "'" + shown(input) + "' is not " + range;
        if (v < lo || v > hi) return shown(input) + " is out of range: give " + range;
        return "";
      },
      "INT in " + std::to_string(lo) + ".." + std::to_string(hi));
}

CLI::Validator real_range(double lo, double hi) {
  const std::string range = "a number from " + number_text(lo) + " to " + number_text(hi);
  return CLI::Validator(
      [lo, hi, range](std::string& input) -> std::string {
        double v = 0;
        if (!parse_real(input, &v)) return "'" + shown(input) + "' is not " + range;
        if (!std::isfinite(v) || v < lo || v > hi) {
          return shown(input) + " is out of range: give " + range;
        }
        return "";
      },
      "NUMBER in " + number_text(lo) + ".." + number_text(hi));
}

CLI::Validator non_negative_real() {
  return CLI::Validator(
      [](std::string& input) -> std::string {
        double v = 0;
        if (!parse_real(input, &v)) return "'" + shown(input) + "' is not a number";
        if (!std::isfinite(v) || v < 0) {
          return shown(input) + " is out of range: give a finite number >= 0";
        }
        return "";
      },
      "NUMBER >= 0");
}

CLI::Option* add_threads_option(CLI::App* cmd, int* threads, const std::string& help) {
  return cmd->add_option("-t,--threads", *threads, help)
      ->check(CLI::Validator(
          [](std::string& input) -> std::string {
            int64_t v = 0;
            if (!parse_int(input, &v)) {
              return "'" + shown(input) + "' is not a thread count (an integer; 0 for one per "
                                          "hardware thread)";
            }
            Result<int> n = resolve_thread_count(v);
            return n.is_ok() ? "" : n.status().message();
          },
          "INT in 0.." + std::to_string(max_thread_count())));
}

CLI::Option* add_ctx_option(CLI::App* cmd, int64_t* ctx, const std::string& help) {
  return cmd->add_option("-c,--ctx", *ctx, help)->check(int_range(0, kMaxContextTokens));
}

}  // namespace frugal::cli
