// The keyring's ciphertext envelope: "vault:v<N>:" + base64(binary envelope), exact layout in
// docs/formats.md. Parsing is strict and never trusts a length it has not checked.
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/status.h"

namespace lockbox::keyring {

inline constexpr std::uint8_t kEnvelopeFormatV1 = 1;

struct Envelope {
  std::uint8_t format = kEnvelopeFormatV1;
  std::uint32_t key_version = 0;
  std::vector<std::uint8_t> wrapped_dek;  // HSM AES-GCM output under the version's KEK
  std::vector<std::uint8_t> nonce;        // 12 bytes
  std::vector<std::uint8_t> sealed;       // AES-256-GCM ciphertext || tag
};

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
