// JSON Canonicalization Scheme (JCS), RFC 8785.
//
// Hand-written on purpose: no library packaged in Debian implements RFC 8785 (nlohmann::json's
// dump() sorts keys by UTF-8 bytes, not UTF-16 code units, and prints numbers in C++ style), and
// the audit chain (DESIGN.md §7) hashes these exact bytes, so the rules live here, in one place.
//
// Output rules: no whitespace; object members sorted by the UTF-16 code units of their names;
// strings escaped exactly as RFC 8785 §3.2.2.2 (only \" \\ \b \f \n \r \t and \u00xx for other
// controls; everything else as raw UTF-8); every number serialised as the IEEE-754 double it
// denotes, formatted like ECMAScript Number.prototype.toString (§3.2.2.3). Integers that
// nlohmann stores as int64/uint64 are converted to double first, so values beyond 2^53 are
// emitted as their (rounded) double, as JavaScript would.
//
// Security property: two JSON values that are equal in the I-JSON data model produce identical
// bytes; inputs outside that model (NaN/Infinity, invalid UTF-8, duplicate member names in text,
// binary values, nesting deeper than kMaxJcsDepth) are refused with INVALID_ARGUMENT, never
// silently normalised.
// Thread safety: pure functions, reentrant.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "crypto/status.h"

namespace lockbox::crypto {

// Arrays and objects nested deeper than this are refused (bounded recursion).
inline constexpr std::size_t kMaxJcsDepth = 256;

// Canonicalises an already parsed value.
StatusOr<std::string> CanonicalizeJson(const nlohmann::json& value);

// Parses `text` strictly (RFC 8259 grammar, valid UTF-8, no duplicate member names, no trailing
// content, no comments) and canonicalises it.
StatusOr<std::string> CanonicalizeJsonText(std::string_view text);

// ECMAScript Number::toString of a finite double ("-0" → "0"); INVALID_ARGUMENT for NaN/Inf.
StatusOr<std::string> SerializeJcsNumber(double value);

// Appends SerializeJcsNumber(value) to `out` without a temporary string.
Status AppendJcsNumber(double value, std::string& out);

// Appends `s` as a canonical string literal, quotes included; INVALID_ARGUMENT, and nothing
// appended, if `s` is not valid UTF-8.
Status AppendJcsString(std::string_view s, std::string& out);

// One member of a JSON object as it is written in canonical text.
struct JcsMember {
  std::string_view name;   // the name between its quotes, escapes as written
  std::string_view value;  // the whole value (a string with its quotes, an object with braces)
};

// True iff `text` is exactly the canonical form of the JSON value it denotes: iff strictly
// parsing it and canonicalising the result gives back `text` byte for byte (so it is also valid
// JSON with no duplicate member names). Checks in one pass over the text, building no DOM and
// allocating nothing (except growing `members`). When `members` is non-null it is cleared and,
// if `text` is a canonical object, receives that object's members in order (views into `text`).
bool IsCanonicalJson(std::string_view text, std::vector<JcsMember>* members = nullptr);

// Appends the value of a string literal (with its quotes) taken from text IsCanonicalJson
// accepted, its escapes decoded.
void AppendJcsStringValue(std::string_view literal, std::string& out);

}  // namespace lockbox::crypto
