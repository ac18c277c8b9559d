#include "server/auth/backend_util.h"

#include <algorithm>

namespace lockbox::auth {
namespace {

constexpr std::size_t kMaxNameLength = 128;

bool IsWordChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

}  // namespace

Status ValidateObjectName(std::string_view name, std::string_view what) {
  const bool ok = !name.empty() && name.size() <= kMaxNameLength && IsWordChar(name.front()) &&
                  IsWordChar(name.back()) && std::all_of(name.begin(), name.end(), [](char c) {
                    return IsWordChar(c) || c == '-' || c == '.';
                  });
  if (!ok) return InvalidArgumentError("invalid " + std::string(what) + " name");
  return Status::Ok();
}

std::int64_t ToUnixNanos(std::chrono::system_clock::time_point time) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(time.time_since_epoch()).count();
}

std::chrono::system_clock::time_point FromUnixNanos(std::int64_t nanos) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::nanoseconds(nanos)));
}

audit::Event RequestEvent(const logical::Request& request, std::string op) {
  audit::Event event;
  event.op = std::move(op);
  event.path = request.path;
  event.request_id = request.caller.request_id;
  event.actor = request.caller.actor;
  event.remote_addr = request.caller.remote_addr;
  return event;
}

bool IsWrite(logical::Operation operation) {
  return operation == logical::Operation::kCreate || operation == logical::Operation::kUpdate;
}

Status UnsupportedPath() { return NotFoundError("unsupported path"); }
Status UnsupportedOperation() { return UnimplementedError("unsupported operation"); }

}  // namespace lockbox::auth
