// CHECK: a broken invariant (a bug, never bad input) aborts with file, line and message.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace frugal::detail {
[[noreturn]] void check_failed(const char* file, int line, const char* cond, const char* fmt, ...)
    __attribute__((format(printf, 4, 5)));
[[noreturn]] void check_failed(const char* file, int line, const char* cond);
}  // namespace frugal::detail

// CHECK(cond) or CHECK(cond, "printf format %d", args...)
#define CHECK(cond, ...)                                                                 \
  do {                                                                                   \
    if (__builtin_expect(!(cond), 0))                                                    \
      ::frugal::detail::check_failed(__FILE__, __LINE__, #cond __VA_OPT__(, ) __VA_ARGS__); \
  } while (0)

#ifdef NDEBUG
#define DCHECK(cond, ...) \
  do {                    \
  } while (0)
#else
#define DCHECK(cond, ...) CHECK(cond __VA_OPT__(, ) __VA_ARGS__)
#endif
