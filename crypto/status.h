// Status and StatusOr<T>: the error type at every module boundary (LevelDB/Abseil style).
// A Status is a code plus a message meant for operators and API clients: it must never carry key
// material, secret values or tokens. Thread safety: values, safe to copy between threads.
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace lockbox {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,    // malformed input from the caller
  kNotFound,           // named thing (key, object, row) does not exist
  kAlreadyExists,      // create of something that exists
  kPermissionDenied,   // caller may not do this
  kFailedPrecondition, // state forbids it (key disabled, deletion pending, version too old)
  kAborted,            // conflict; retrying may succeed (e.g. cas mismatch)
  kUnavailable,        // dependency down (HSM, store); fail closed
  kResourceExhausted,  // limits reached
  kDataLoss,           // ciphertext/authentication failure, corrupt stored data
  kUnauthenticated,    // bad credentials (wrong PIN, bad token)
  kInternal,           // bug or unexpected library failure
  kUnimplemented,      // the operation is not supported on this path
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "NOT_FOUND: key 'x' not found"
  std::string ToString() const;

  // Prefixes the message with context ("unwrap KEK: " + message), keeping the code.
  Status WithContext(std::string_view context) const;

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgumentError(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status NotFoundError(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status AlreadyExistsError(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
inline Status PermissionDeniedError(std::string m) { return {StatusCode::kPermissionDenied, std::move(m)}; }
inline Status FailedPreconditionError(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
inline Status AbortedError(std::string m) { return {StatusCode::kAborted, std::move(m)}; }
inline Status UnavailableError(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status ResourceExhaustedError(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
inline Status DataLossError(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
inline Status UnauthenticatedError(std::string m) { return {StatusCode::kUnauthenticated, std::move(m)}; }
inline Status InternalError(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
inline Status UnimplementedError(std::string m) { return {StatusCode::kUnimplemented, std::move(m)}; }

// Either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(Status status) : state_(std::move(status)) {  // NOLINT: implicit by design
    assert(!std::get<Status>(state_).ok() && "StatusOr built from an OK status");
    if (std::get<Status>(state_).ok()) state_ = InternalError("StatusOr built from an OK status");
  }
  StatusOr(T value) : state_(std::move(value)) {}  // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(state_); }
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(state_); }

  T& value() & { return std::get<T>(state_); }
  const T& value() const& { return std::get<T>(state_); }
  T&& value() && { return std::get<T>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }

 private:
  std::variant<Status, T> state_;
};

}  // namespace lockbox

#define LOCKBOX_STATUS_CONCAT_INNER(a, b) a##b
#define LOCKBOX_STATUS_CONCAT(a, b) LOCKBOX_STATUS_CONCAT_INNER(a, b)

#define LOCKBOX_RETURN_IF_ERROR(expr)                        \
  do {                                                        \
    ::lockbox::Status lockbox_status_ = (expr);               \
    if (!lockbox_status_.ok()) return lockbox_status_;        \
  } while (0)

// LOCKBOX_ASSIGN_OR_RETURN(auto x, MakeX());
#define LOCKBOX_ASSIGN_OR_RETURN(lhs, expr) \
  LOCKBOX_ASSIGN_OR_RETURN_IMPL(LOCKBOX_STATUS_CONCAT(lockbox_statusor_, __LINE__), lhs, expr)
#define LOCKBOX_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.status();                 \
  lhs = std::move(tmp).value()
