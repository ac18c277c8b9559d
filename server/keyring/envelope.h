// The keyring's ciphertext envelope: "vault:v<N>:" + base64(binary envelope), exact layout in
// docs/formats.md. Parsing is strict and never trusts a length it has not checked.
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/secure_buffer.h"
#include "crypto/status.h"

namespace lockbox::keyring {

// Format byte: which AEAD sealed the data (the layout is the same for both).
inline constexpr std::uint8_t kEnvelopeFormatV1 = 1;                // AES-256-GCM
inline constexpr std::uint8_t kEnvelopeFormatChaCha20Poly1305 = 2;  // ChaCha20-Poly1305 (RFC 8439)

struct Envelope {
  std::uint8_t format = kEnvelopeFormatV1;
  std::uint32_t key_version = 0;
  std::vector<std::uint8_t> wrapped_dek;  // HSM AES-GCM output under the version's KEK
  std::vector<std::uint8_t> nonce;        // 12 bytes
  std::vector<std::uint8_t> sealed;       // AEAD ciphertext || tag
};

// Seals / opens the bulk data with the AEAD the format byte names (32-byte DEK, 12-byte nonce).
StatusOr<std::vector<std::uint8_t>> SealData(std::uint8_t format, std::span<const std::uint8_t> dek,
                                             std::span<const std::uint8_t> nonce,
                                             std::span<const std::uint8_t> aad,
                                             std::span<const std::uint8_t> plaintext);
StatusOr<crypto::SecureBuffer> OpenData(std::uint8_t format, std::span<const std::uint8_t> dek,
                                        std::span<const std::uint8_t> nonce,
                                        std::span<const std::uint8_t> aad,
                                        std::span<const std::uint8_t> sealed);

std::string EncodeEnvelope(const Envelope& envelope);
// INVALID_ARGUMENT with an "invalid ciphertext: ..." message for anything malformed.
StatusOr<Envelope> DecodeEnvelope(std::string_view text);

// AAD of the bulk data: binds format, key name and caller context.
std::vector<std::uint8_t> DataAad(std::uint8_t format, std::string_view key_name,
                                  std::span<const std::uint8_t> context);
// AAD of the wrapped DEK: binds format, key name and key version.
std::vector<std::uint8_t> DekAad(std::uint8_t format, std::string_view key_name,
                                 std::uint32_t key_version);

}  // namespace lockbox::keyring
