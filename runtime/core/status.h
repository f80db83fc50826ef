// Status and StatusOr: the error model of all host code in Baton.
//
// Functions that can fail on bad input or a failing system call return a
// Status (or a StatusOr<T> carrying a value on success) instead of throwing.
// A Status message names what is at fault: the file, the field, the value.
// Value types, cheap to copy when ok; safe to share between threads when
// not mutated.
#pragma once

#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

namespace baton {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // the caller's input is wrong (CLI flag, request field)
  kNotFound,            // a file, tensor or token that should exist does not
  kDataLoss,            // a file exists but its contents are malformed
  kOutOfRange,          // an index or length past a limit (context, vocab)
  kUnimplemented,       // a valid feature Baton does not support (yet)
  kFailedPrecondition,  // the system is not in a state to do this
  kResourceExhausted,   // memory, KV blocks, queue slots
  kUnavailable,         // a peer (rank, server) is gone
  kCancelled,
  kDeadlineExceeded,
  kInternal,  // a bug or an unexpected system failure
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status DataLoss(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
  static Status OutOfRange(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
  static Status Unimplemented(std::string m) { return {StatusCode::kUnimplemented, std::move(m)}; }
  static Status FailedPrecondition(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
  static Status ResourceExhausted(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "INVALID_ARGUMENT: config.json: field 'num_attention_heads' is missing"
  std::string ToString() const;
  // The same status with "context: " put before the message.
  Status WithContext(const std::string& context) const;

  // Process exit code for a CLI: 2 for bad input (the user can fix it),
  // 1 for everything else.
  int ExitCode() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(Status status) : v_(std::move(status)) {  // NOLINT: implicit by design
    if (std::get<Status>(v_).ok()) v_ = Status::Internal("StatusOr built from an ok Status");
  }
  StatusOr(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(v_); }
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(v_); }

  T& value() & {
    CheckOk();
    return std::get<T>(v_);
  }
  const T& value() const& {
    CheckOk();
    return std::get<T>(v_);
  }
  T&& value() && {
    CheckOk();
    return std::get<T>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  void CheckOk() const;
  std::variant<Status, T> v_;
};

[[noreturn]] void DieOnBadStatusAccess(const Status& s);

template <typename T>
void StatusOr<T>::CheckOk() const {
  if (!ok()) DieOnBadStatusAccess(std::get<Status>(v_));
}

}  // namespace baton

#define BATON_CONCAT_INNER(a, b) a##b
#define BATON_CONCAT(a, b) BATON_CONCAT_INNER(a, b)

#define BATON_RETURN_IF_ERROR(expr)                \
  do {                                             \
    ::baton::Status baton_status_ = (expr);        \
    if (!baton_status_.ok()) return baton_status_; \
  } while (0)

#define BATON_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()

// BATON_ASSIGN_OR_RETURN(auto x, MakeX()); returns the error if MakeX failed.
#define BATON_ASSIGN_OR_RETURN(lhs, expr) \
  BATON_ASSIGN_OR_RETURN_IMPL(BATON_CONCAT(baton_statusor_, __LINE__), lhs, expr)
