// Request field decoding with Vault's weak typing (reference §1.1), and the wire formats of times
// and durations. Every getter returns nullopt when the field is absent (JSON null was already
// removed by the router) and INVALID_ARGUMENT naming the field when it is present but malformed,
// e.g. `invalid value for "ttl": ...`.
// Thread safety: pure functions.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "crypto/status.h"

namespace lockbox::logical {

// A string field: JSON string; numbers and booleans are rendered as text (Vault does the same).
StatusOr<std::optional<std::string>> GetString(const nlohmann::json& data, std::string_view field);

// true/false, "true"/"false" and every Go strconv.ParseBool spelling, 1/0.
StatusOr<std::optional<bool>> GetBool(const nlohmann::json& data, std::string_view field);

// An integer: JSON integer (or integral float), or a decimal string.
StatusOr<std::optional<std::int64_t>> GetInt(const nlohmann::json& data, std::string_view field);

// A duration: integer seconds, a numeric string (seconds), or a Go duration string
// ("1h30m", "768h", "250ms", "1.5h"; also "d" for days). Negative → INVALID_ARGUMENT.
StatusOr<std::optional<std::chrono::seconds>> GetDuration(const nlohmann::json& data,
                                                          std::string_view field);

// A list of strings: a JSON array of strings, or one comma-separated string ("a,b"). Items are
// trimmed of spaces and empty items dropped.
StatusOr<std::optional<std::vector<std::string>>> GetStringList(const nlohmann::json& data,
                                                                std::string_view field);

// A map of strings: a JSON object whose values are coerced to strings ({"version":2} → "2").
StatusOr<std::optional<std::map<std::string, std::string>>> GetStringMap(const nlohmann::json& data,
                                                                         std::string_view field);

// Go's ParseBool rules: 1 t T TRUE true True 0 f F FALSE false False.
std::optional<bool> ParseGoBool(std::string_view text);

// Parses a Go duration string (or bare integer seconds) into whole seconds (fractions truncated).
StatusOr<std::chrono::seconds> ParseGoDuration(std::string_view text);

// Go's time.Duration.String() for whole seconds: 0 → "0s", 30 → "30s", 1800 → "30m0s",
// 12319 → "3h25m19s".
std::string FormatGoDuration(std::chrono::seconds duration);

// RFC 3339 UTC with nanoseconds as Go's RFC3339Nano prints it (trailing zeros of the fraction
// trimmed, no fraction when zero): "2018-03-22T02:24:06.945319214Z", "2018-03-22T02:24:06Z".
std::string FormatRfc3339Nano(std::chrono::system_clock::time_point time);

// Parses the forms FormatRfc3339Nano prints (and any RFC 3339 UTC time with 0-9 fraction digits).
StatusOr<std::chrono::system_clock::time_point> ParseRfc3339(std::string_view text);

// A random RFC 4122 version-4 UUID (request ids, role ids, secret ids, accessors).
std::string NewUuid();

}  // namespace lockbox::logical
