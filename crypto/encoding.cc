#include "crypto/encoding.h"

#include <array>

namespace lockbox::crypto {
namespace {

constexpr char kStdAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kUrlAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr char kHexDigits[] = "0123456789abcdef";
constexpr std::uint8_t kInvalid = 0xff;

using DecodeTable = std::array<std::uint8_t, 256>;

constexpr DecodeTable MakeDecodeTable(const char* alphabet) {
  DecodeTable table{};
  for (auto& v : table) v = kInvalid;
  for (std::uint8_t i = 0; i < 64; ++i) table[static_cast<unsigned char>(alphabet[i])] = i;
  return table;
}

constexpr DecodeTable kStdTable = MakeDecodeTable(kStdAlphabet);
constexpr DecodeTable kUrlTable = MakeDecodeTable(kUrlAlphabet);

std::string Encode(std::span<const std::uint8_t> data, const char* alphabet, bool pad) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const std::uint32_t v = (std::uint32_t{data[i]} << 16) | (std::uint32_t{data[i + 1]} << 8) |
                            std::uint32_t{data[i + 2]};
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  const std::size_t rest = data.size() - i;
  if (rest == 1) {
    const std::uint32_t v = std::uint32_t{data[i]} << 16;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    if (pad) out += "==";
  } else if (rest == 2) {
    const std::uint32_t v = (std::uint32_t{data[i]} << 16) | (std::uint32_t{data[i + 1]} << 8);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    if (pad) out += '=';
  }
  return out;
}

// Decodes unpadded base64 text (the padding, if any, already stripped and checked). Rejects
// characters outside the alphabet (including '=' and whitespace), a length ≡ 1 (mod 4), and
// non-zero trailing bits in the last character.
StatusOr<std::vector<std::uint8_t>> DecodeUnpadded(std::string_view text, const DecodeTable& table,
                                                   std::string_view name) {
  if (text.size() % 4 == 1) return InvalidArgumentError(std::string(name) + ": invalid length");
  std::vector<std::uint8_t> out;
  out.reserve(text.size() / 4 * 3 + 2);
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char c : text) {
    const std::uint8_t v = table[static_cast<unsigned char>(c)];
    if (v == kInvalid) return InvalidArgumentError(std::string(name) + ": invalid character");
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<std::uint8_t>(acc >> bits));
      acc &= (1u << bits) - 1;
    }
  }
  // 2 or 4 bits left over after a partial quantum: they must be zero (canonical encoding).
  if (acc != 0) return InvalidArgumentError(std::string(name) + ": non-zero trailing bits");
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

// Hand-written decoders: OpenSSL's EVP_DecodeBlock skips whitespace, ignores trailing-bit and
// padding errors and cannot do base64url, so it is too lax for strict decoding.

std::string Base64Encode(std::span<const std::uint8_t> data) {
  return Encode(data, kStdAlphabet, /*pad=*/true);
}

StatusOr<std::vector<std::uint8_t>> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) {
    return InvalidArgumentError("base64: length is not a multiple of 4 (padding is required)");
  }
  // Up to two '=' may end the text; DecodeUnpadded rejects any '=' elsewhere.
  std::size_t pad = 0;
  while (pad < 2 && pad < text.size() && text[text.size() - 1 - pad] == '=') ++pad;
  return DecodeUnpadded(text.substr(0, text.size() - pad), kStdTable, "base64");
}

std::string Base64UrlEncode(std::span<const std::uint8_t> data) {
  return Encode(data, kUrlAlphabet, /*pad=*/false);
}

StatusOr<std::vector<std::uint8_t>> Base64UrlDecode(std::string_view text) {
  // '=' is not in the table, so padding is refused as an invalid character.
  return DecodeUnpadded(text, kUrlTable, "base64url");
}

std::string HexEncode(std::span<const std::uint8_t> data) {
  std::string out;
  out.reserve(data.size() * 2);
  for (const std::uint8_t b : data) {
    out += kHexDigits[b >> 4];
    out += kHexDigits[b & 0x0f];
  }
  return out;
}

StatusOr<std::vector<std::uint8_t>> HexDecode(std::string_view text) {
  if (text.size() % 2 != 0) return InvalidArgumentError("hex: odd length");
  std::vector<std::uint8_t> out;
  out.reserve(text.size() / 2);
  for (std::size_t i = 0; i < text.size(); i += 2) {
    const int hi = HexValue(text[i]);
    const int lo = HexValue(text[i + 1]);
    if (hi < 0 || lo < 0) return InvalidArgumentError("hex: invalid character (lower case only)");
    out.push_back(static_cast<std::uint8_t>((hi << 4) | lo));
  }
  return out;
}

}  // namespace lockbox::crypto
