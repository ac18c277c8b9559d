// Base64 (RFC 4648 §4), base64url (§5) and hex.
// Decoders are strict: they refuse characters outside the alphabet, whitespace, wrong or missing
// padding (standard base64 requires it; base64url forbids it, as JOSE does), and non-zero
// trailing bits, so each byte string has exactly one accepted encoding.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/status.h"

namespace lockbox::crypto {

std::string Base64Encode(std::span<const std::uint8_t> data);
StatusOr<std::vector<std::uint8_t>> Base64Decode(std::string_view text);

std::string Base64UrlEncode(std::span<const std::uint8_t> data);  // no padding
StatusOr<std::vector<std::uint8_t>> Base64UrlDecode(std::string_view text);

std::string HexEncode(std::span<const std::uint8_t> data);  // lower case
// Accepts lower-case hex only (the one canonical form HexEncode produces), even length.
StatusOr<std::vector<std::uint8_t>> HexDecode(std::string_view text);

inline std::span<const std::uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

}  // namespace lockbox::crypto
