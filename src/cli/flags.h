// Checks for numeric flags, written here so that every refusal reads as a sentence with the
// value as typed ("--temp: 1e300 is out of range: give a number from 0 to 100") instead of
// CLI11's own (which prints a 300-digit bound), and the -t / -c options every command shares.
#pragma once

#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>

namespace frugal::cli {

// An integer in [lo, hi]; anything else (not an integer, out of range, too large for 64 bits)
// is refused naming the range.
CLI::Validator int_range(int64_t lo, int64_t hi);
// A finite number in [lo, hi] (NaN, inf and values beyond are refused).
CLI::Validator real_range(double lo, double hi);
// A finite number >= 0.
CLI::Validator non_negative_real();

// The largest context a model may be given: positions are 32-bit.
inline constexpr int64_t kMaxContextTokens = 2147483647;

// -t/--threads: 0 (one per hardware thread) up to util's max_thread_count().
CLI::Option* add_threads_option(CLI::App* cmd, int* threads, const std::string& help);
// -c/--ctx: 0 (the default) up to kMaxContextTokens.
CLI::Option* add_ctx_option(CLI::App* cmd, int64_t* ctx, const std::string& help);

}  // namespace frugal::cli
