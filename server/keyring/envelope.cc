#include "server/keyring/envelope.h"

#include <charconv>

#include "crypto/aead.h"
#include "crypto/encoding.h"

namespace lockbox::keyring {
namespace {

constexpr std::string_view kPrefix = "vault:v";
constexpr std::size_t kHeaderSize = 1 + 4 + 2;  // format, version, wrapped DEK length
constexpr std::size_t kMaxWrappedDek = 1024;

void PutU32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

void PutField(std::vector<std::uint8_t>& out, std::span<const std::uint8_t> field) {
  PutU32(out, static_cast<std::uint32_t>(field.size()));
  out.insert(out.end(), field.begin(), field.end());
}

Status Invalid(std::string_view why) {
  return InvalidArgumentError("invalid ciphertext: " + std::string(why));
}

}  // namespace

std::string EncodeEnvelope(const Envelope& envelope) {
  std::vector<std::uint8_t> bin;
  bin.reserve(kHeaderSize + envelope.wrapped_dek.size() + envelope.nonce.size() +
              envelope.sealed.size());
  bin.push_back(envelope.format);
  PutU32(bin, envelope.key_version);
  bin.push_back(static_cast<std::uint8_t>(envelope.wrapped_dek.size() >> 8));
  bin.push_back(static_cast<std::uint8_t>(envelope.wrapped_dek.size()));
  bin.insert(bin.end(), envelope.wrapped_dek.begin(), envelope.wrapped_dek.end());
  bin.insert(bin.end(), envelope.nonce.begin(), envelope.nonce.end());
  bin.insert(bin.end(), envelope.sealed.begin(), envelope.sealed.end());
  return std::string(kPrefix) + std::to_string(envelope.key_version) + ":" +
         crypto::Base64Encode(bin);
}

StatusOr<Envelope> DecodeEnvelope(std::string_view text) {
  if (!text.starts_with(kPrefix)) return Invalid("no vault:v prefix");
  text.remove_prefix(kPrefix.size());
  const auto colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0) return Invalid("no key version");
  std::uint32_t prefix_version = 0;
  const auto digits = text.substr(0, colon);
  if (digits[0] == '0') return Invalid("bad key version");
  const auto [end, ec] =
      std::from_chars(digits.data(), digits.data() + digits.size(), prefix_version);
  if (ec != std::errc() || end != digits.data() + digits.size()) {
    return Invalid("bad key version");
  }
  auto bin = crypto::Base64Decode(text.substr(colon + 1));
  if (!bin.ok()) return Invalid("bad base64");
  const std::vector<std::uint8_t>& b = *bin;
  if (b.size() < kHeaderSize) return Invalid("too short");

  Envelope env;
  env.format = b[0];
  if (env.format != kEnvelopeFormatV1 && env.format != kEnvelopeFormatChaCha20Poly1305) {
    return Invalid("unknown format");
  }
  env.key_version = (std::uint32_t{b[1]} << 24) | (std::uint32_t{b[2]} << 16) |
                    (std::uint32_t{b[3]} << 8) | std::uint32_t{b[4]};
  if (env.key_version != prefix_version) return Invalid("key version mismatch");
  const std::size_t dek_len = (std::size_t{b[5]} << 8) | std::size_t{b[6]};
  if (dek_len == 0 || dek_len > kMaxWrappedDek) return Invalid("bad wrapped key length");
  const std::size_t min_size =
      kHeaderSize + dek_len + crypto::kAesGcmNonceSize + crypto::kAesGcmTagSize;
  if (b.size() < min_size) return Invalid("too short");
  auto it = b.begin() + kHeaderSize;
  env.wrapped_dek.assign(it, it + static_cast<std::ptrdiff_t>(dek_len));
  it += static_cast<std::ptrdiff_t>(dek_len);
  env.nonce.assign(it, it + crypto::kAesGcmNonceSize);
  it += crypto::kAesGcmNonceSize;
  env.sealed.assign(it, b.end());
  return env;
}

StatusOr<std::vector<std::uint8_t>> SealData(std::uint8_t format, std::span<const std::uint8_t> dek,
                                             std::span<const std::uint8_t> nonce,
                                             std::span<const std::uint8_t> aad,
                                             std::span<const std::uint8_t> plaintext) {
  if (format == kEnvelopeFormatChaCha20Poly1305) {
    return crypto::ChaCha20Poly1305Seal(dek, nonce, aad, plaintext);
  }
  return crypto::AesGcmSeal(dek, nonce, aad, plaintext);
}

StatusOr<crypto::SecureBuffer> OpenData(std::uint8_t format, std::span<const std::uint8_t> dek,
                                        std::span<const std::uint8_t> nonce,
                                        std::span<const std::uint8_t> aad,
                                        std::span<const std::uint8_t> sealed) {
  if (format == kEnvelopeFormatChaCha20Poly1305) {
    return crypto::ChaCha20Poly1305Open(dek, nonce, aad, sealed);
  }
  return crypto::AesGcmOpen(dek, nonce, aad, sealed);
}

std::vector<std::uint8_t> DataAad(std::uint8_t format, std::string_view key_name,
                                  std::span<const std::uint8_t> context) {
  constexpr std::string_view kLabel = "lockbox/data/v1";
  std::vector<std::uint8_t> aad(kLabel.begin(), kLabel.end());
  aad.push_back(format);
  PutField(aad, crypto::AsBytes(key_name));
  PutField(aad, context);
  return aad;
}

std::vector<std::uint8_t> DekAad(std::uint8_t format, std::string_view key_name,
                                 std::uint32_t key_version) {
  constexpr std::string_view kLabel = "lockbox/dek/v1";
  std::vector<std::uint8_t> aad(kLabel.begin(), kLabel.end());
  aad.push_back(format);
  PutField(aad, crypto::AsBytes(key_name));
  PutU32(aad, key_version);
  return aad;
}

}  // namespace lockbox::keyring
