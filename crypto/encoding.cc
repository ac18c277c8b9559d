#include "crypto/encoding.h"

#include <array>
#include <cstring>

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

// Every 12-bit value's two output characters, so a 3-byte group costs two lookups (the encoder
// runs over every ciphertext the keyring returns; this halves its cost against per-character
// lookups).
using PairTable = std::array<std::array<char, 2>, 4096>;

PairTable MakePairTable(const char* alphabet) {
  PairTable table{};
  for (std::size_t v = 0; v < table.size(); ++v) table[v] = {alphabet[v >> 6], alphabet[v & 63]};
  return table;
}

std::string Encode(std::span<const std::uint8_t> data, const char* alphabet, bool pad) {
  static const PairTable std_pairs = MakePairTable(kStdAlphabet);
  static const PairTable url_pairs = MakePairTable(kUrlAlphabet);
  const PairTable& pairs = alphabet == kStdAlphabet ? std_pairs : url_pairs;
  const std::size_t full = data.size() / 3;
  const std::size_t rest = data.size() - full * 3;
  std::string out((full + (rest != 0 ? 1 : 0)) * 4, '=');
  char* o = out.data();
  const std::uint8_t* in = data.data();
  for (std::size_t q = 0; q < full; ++q, in += 3, o += 4) {
    const std::uint32_t v = (std::uint32_t{in[0]} << 16) | (std::uint32_t{in[1]} << 8) | in[2];
    std::memcpy(o, pairs[v >> 12].data(), 2);
    std::memcpy(o + 2, pairs[v & 0xfff].data(), 2);
  }
  if (rest != 0) {
    const std::uint32_t v =
        (std::uint32_t{in[0]} << 16) | (rest == 2 ? std::uint32_t{in[1]} << 8 : 0);
    o[0] = alphabet[(v >> 18) & 63];
    o[1] = alphabet[(v >> 12) & 63];
    if (rest == 2) o[2] = alphabet[(v >> 6) & 63];
    if (!pad) out.resize(out.size() - (3 - rest));
  }
  return out;
}

// Decodes unpadded base64 text (the padding, if any, already stripped and checked). Rejects
// characters outside the alphabet (including '=' and whitespace), a length ≡ 1 (mod 4), and
// non-zero trailing bits in the last character.
StatusOr<std::vector<std::uint8_t>> DecodeUnpadded(std::string_view text, const DecodeTable& table,
                                                   std::string_view name) {
  if (text.size() % 4 == 1) return InvalidArgumentError(std::string(name) + ": invalid length");
  const std::size_t full = text.size() / 4;
  const std::size_t rest = text.size() % 4;  // 0, 2 or 3 characters in the last quantum
  std::vector<std::uint8_t> out(full * 3 + (rest == 0 ? 0 : rest - 1));
  const auto* in = reinterpret_cast<const unsigned char*>(text.data());
  std::uint8_t* o = out.data();
  // Whole quanta: four characters to three bytes; an invalid character sets the high bits of
  // `bad`, checked once at the end (the table maps them to 0xff).
  std::uint32_t bad = 0;
  for (std::size_t q = 0; q < full; ++q, in += 4, o += 3) {
    const std::uint32_t a = table[in[0]], b = table[in[1]], c = table[in[2]], d = table[in[3]];
    bad |= a | b | c | d;
    const std::uint32_t v = (a << 18) | (b << 12) | (c << 6) | d;
    o[0] = static_cast<std::uint8_t>(v >> 16);
    o[1] = static_cast<std::uint8_t>(v >> 8);
    o[2] = static_cast<std::uint8_t>(v);
  }
  std::uint32_t tail = 0;
  for (std::size_t i = 0; i < rest; ++i) {
    const std::uint32_t v = table[in[i]];
    bad |= v;
    tail = (tail << 6) | (v & 63);
  }
  if (bad & 0xc0) return InvalidArgumentError(std::string(name) + ": invalid character");
  if (rest == 2) {
    // 12 bits: one byte and 4 trailing bits that must be zero (canonical encoding).
    if (tail & 0xf) return InvalidArgumentError(std::string(name) + ": non-zero trailing bits");
    o[0] = static_cast<std::uint8_t>(tail >> 4);
  } else if (rest == 3) {
    // 18 bits: two bytes and 2 trailing bits that must be zero.
    if (tail & 0x3) return InvalidArgumentError(std::string(name) + ": non-zero trailing bits");
    o[0] = static_cast<std::uint8_t>(tail >> 10);
    o[1] = static_cast<std::uint8_t>(tail >> 2);
  }
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
