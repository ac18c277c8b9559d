// Small pieces shared by the AppRole and identity backends: Vault's object-name rule, stored
// times, audit events for a request, and the "unsupported path/operation" errors.
// Thread safety: pure functions.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "audit/event.h"
#include "crypto/status.h"
#include "server/logical/logical.h"

namespace lockbox::auth {

// Vault's framework.GenericNameRegex (`\w(([\w-.]+)?\w)?`), at most 128 characters.
// INVALID_ARGUMENT "invalid <what> name" otherwise.
Status ValidateObjectName(std::string_view name, std::string_view what);

// Times are stored as integer nanoseconds since the Unix epoch.
std::int64_t ToUnixNanos(std::chrono::system_clock::time_point time);
std::chrono::system_clock::time_point FromUnixNanos(std::int64_t nanos);

// An event for `op` on the request's path, by the request's caller.
audit::Event RequestEvent(const logical::Request& request, std::string op);

bool IsWrite(logical::Operation operation);
// 404 "unsupported path" and 405 "unsupported operation", as Vault answers.
Status UnsupportedPath();
Status UnsupportedOperation();

}  // namespace lockbox::auth
