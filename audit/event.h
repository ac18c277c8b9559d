// Audit events and their canonical encoding (RFC 8785 JCS).
//
// An event never carries a token, secret value, plaintext or key: sensitive values are recorded
// only as HMAC-SHA256 under the audit HMAC key ("hmacs"). Its canonical text is what the hash chain
// covers, what the table stores and what the SIEM receives, byte for byte.
// Thread safety: values and pure functions.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "crypto/status.h"

namespace lockbox::audit {

enum class Outcome { kOk, kDenied, kError };
std::string_view OutcomeName(Outcome outcome);

struct Event {
  // Assigned by the log when the event is appended.
  std::uint64_t seq = 0;
  std::string time;  // RFC 3339, UTC, nanoseconds: 2026-11-27T21:01:25.123456789Z
  std::string log_id;
  // Supplied by the caller.
  std::string request_id;
  std::string actor;  // token accessor, "role:<id>", "partner:<id>" or "system"
  std::string op;     // e.g. "keyring.create", "keyring.decrypt"
  std::string path;   // e.g. the key name or the API path
  Outcome outcome = Outcome::kOk;
  std::string reason;  // for denied/error: a message safe to record (no secrets)
  std::string remote_addr;
  std::map<std::string, std::string> hmacs;  // field → "hmac-sha256:<hex>"
  // Non-sensitive details (key versions, counts): strings, numbers, booleans only.
  nlohmann::json details = nlohmann::json::object();
};

// Formats a time as RFC 3339 UTC with exactly nine fractional digits.
std::string FormatTime(std::chrono::system_clock::time_point t);

nlohmann::json EventToJson(const Event& event);
// JCS of EventToJson. INVALID_ARGUMENT if a field cannot be encoded (e.g. nested details).
StatusOr<std::string> CanonicalEvent(const Event& event);
// CanonicalEvent in two steps, so that the log can encode an event before its turn and only add
// what it assigns at append time: "seq" and "time" are always the last two members in JCS order.
// The head is the canonical text up to them ("{...,"), whatever `event.seq` and `event.time`
// hold; INVALID_ARGUMENT as CanonicalEvent for the other fields.
StatusOr<std::string> CanonicalEventHead(const Event& event);
// head + "seq" and "time" + "}": CanonicalEvent of the event with that seq and time.
// INVALID_ARGUMENT if seq is beyond 2^53 or time is not FormatTime's shape.
StatusOr<std::string> CompleteCanonicalEvent(std::string head, std::uint64_t seq,
                                             std::string_view time);
// Parses an event's canonical text; INVALID_ARGUMENT unless it is exactly canonical and complete.
StatusOr<Event> ParseCanonicalEvent(std::string_view text);

}  // namespace lockbox::audit
