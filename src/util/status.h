// Status and Result<T>: how bad input (files, requests, network) is reported without aborting.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>

#include "util/check.h"

namespace frugal {

// One error enum for the whole project; the server maps it to HTTP status in one place.
enum class ErrorCode : uint8_t {
  kOk = 0,
  kInvalidArgument,   // the caller's input is wrong (flag, request field, prompt too long)
  kNotFound,          // a file, tensor, key or model that should exist does not
  kCorrupt,           // a file exists but its bytes are malformed or truncated
  kUnsupported,       // valid input that this build does not handle (architecture, type)
  kOutOfRange,        // a size or count beyond a limit (context length, KV blocks)
  kIo,                // the operating system refused (open, mmap, read, write)
  kUnavailable,       // a remote or resource is unreachable or overloaded
  kInternal,          // should not happen; reported instead of aborting where safe
  kDeadlineExceeded,  // a request's deadline or a timeout passed before it finished
  kCancelled,         // the caller cancelled the request (a client disconnected)
  kResourceExhausted, // a queue or quota is full: retry later (HTTP 429)
  kBadGateway,        // a remote tier failed: refused, cut its stream, or answered an error (502)
};

const char* error_code_name(ErrorCode code);

class Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok() { return Status(); }

  bool is_ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "corrupt: tensor 'x' data at offset 123 ends past the file end (456 bytes)"
  std::string to_string() const;

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

inline Status invalid_argument(std::string m) { return {ErrorCode::kInvalidArgument, std::move(m)}; }
inline Status not_found(std::string m) { return {ErrorCode::kNotFound, std::move(m)}; }
inline Status corrupt(std::string m) { return {ErrorCode::kCorrupt, std::move(m)}; }
inline Status unsupported(std::string m) { return {ErrorCode::kUnsupported, std::move(m)}; }
inline Status out_of_range(std::string m) { return {ErrorCode::kOutOfRange, std::move(m)}; }
inline Status io_error(std::string m) { return {ErrorCode::kIo, std::move(m)}; }
inline Status unavailable(std::string m) { return {ErrorCode::kUnavailable, std::move(m)}; }
inline Status internal_error(std::string m) { return {ErrorCode::kInternal, std::move(m)}; }
inline Status deadline_exceeded(std::string m) {
  return {ErrorCode::kDeadlineExceeded, std::move(m)};
}
inline Status cancelled(std::string m) { return {ErrorCode::kCancelled, std::move(m)}; }
inline Status resource_exhausted(std::string m) {
  return {ErrorCode::kResourceExhausted, std::move(m)};
}
inline Status bad_gateway(std::string m) { return {ErrorCode::kBadGateway, std::move(m)}; }

// A value or the Status that says why there is none. Accessing the value of an error is a bug.
template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT: implicit by design
    CHECK(!std::get<Status>(v_).is_ok(), "Result built from an OK status without a value");
  }

  bool is_ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOkStatus;
    return is_ok() ? kOkStatus : std::get<Status>(v_);
  }
  T& value() & {
    CHECK(is_ok(), "Result::value() on error: %s", std::get<Status>(v_).to_string().c_str());
    return std::get<T>(v_);
  }
  const T& value() const& {
    CHECK(is_ok(), "Result::value() on error: %s", std::get<Status>(v_).to_string().c_str());
    return std::get<T>(v_);
  }
  T&& value() && {
    CHECK(is_ok(), "Result::value() on error: %s", std::get<Status>(v_).to_string().c_str());
    return std::get<T>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace frugal

// Returns early from a function returning Status or Result<T> when `expr` is an error.
#define FRUGAL_RETURN_IF_ERROR(expr)            \
  do {                                          \
    ::frugal::Status frugal_status_ = (expr);   \
    if (!frugal_status_.is_ok()) return frugal_status_; \
  } while (0)

#define FRUGAL_CONCAT_INNER(a, b) a##b
#define FRUGAL_CONCAT(a, b) FRUGAL_CONCAT_INNER(a, b)
// `FRUGAL_ASSIGN_OR_RETURN(auto x, make_x());` — declares x or returns the error.
#define FRUGAL_ASSIGN_OR_RETURN(lhs, expr)                                   \
  auto FRUGAL_CONCAT(frugal_result_, __LINE__) = (expr);                     \
  if (!FRUGAL_CONCAT(frugal_result_, __LINE__).is_ok())                      \
    return FRUGAL_CONCAT(frugal_result_, __LINE__).status();                 \
  lhs = std::move(FRUGAL_CONCAT(frugal_result_, __LINE__)).value()
