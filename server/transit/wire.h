// Transit's wire helpers: Vault-compatible base64 decoding (with Go's error text), the
// "vault:v<N>:" text of ciphertexts, HMACs and signatures, and the hash algorithms transit
// names ("sha2-256", "sha3-512", ...).
//
// Security property: decoders are strict and bounded; secret inputs (plaintexts, HMAC keys,
// derived keys) stay in crypto::SecureBuffer.
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/secure_buffer.h"
#include "crypto/status.h"

namespace lockbox::transit {

// Standard base64 with padding, decoded as Go's base64.StdEncoding.DecodeString does (CR and LF
// skipped); errors are INVALID_ARGUMENT "illegal base64 data at input byte N", Go's text, which
// Vault returns verbatim.
StatusOr<crypto::SecureBuffer> DecodeBase64(std::string_view text);

// "vault:v<N>:<body>" split into its version and body. `what` names the value in errors
// ("ciphertext", "signature", "hmac"): "invalid <what>: no prefix", "invalid <what>: wrong
// number of fields", "invalid <what>: version number could not be decoded" (INVALID_ARGUMENT).
// Version 0 (Vault's first releases) is read as 1.
struct VersionedText {
  std::uint32_t version = 0;
  std::string_view body;
};
StatusOr<VersionedText> ParseVersioned(std::string_view text, std::string_view what);

// "vault:v<N>:" + body.
std::string FormatVersioned(std::uint32_t version, std::string_view body);

// The hash algorithms transit accepts by name.
enum class Hash {
  kSha2_224,
  kSha2_256,
  kSha2_384,
  kSha2_512,
  kSha3_224,
  kSha3_256,
  kSha3_384,
  kSha3_512
};
std::optional<Hash> ParseHash(std::string_view name);

std::vector<std::uint8_t> HashOf(Hash hash, std::span<const std::uint8_t> data);
// HMAC over the concatenation of `parts` (no copy of them is made).
StatusOr<std::vector<std::uint8_t>> HmacOf(
    Hash hash, std::span<const std::uint8_t> key,
    std::initializer_list<std::span<const std::uint8_t>> parts);
// HKDF-SHA256 (RFC 5869) with an empty salt: `size` bytes of output key material.
StatusOr<crypto::SecureBuffer> HkdfSha256(std::span<const std::uint8_t> ikm,
                                          std::span<const std::uint8_t> info, std::size_t size);

// An ECDSA P-256 signature as IEEE P1363 r||s (what the HSM returns, as JWS wants) re-encoded as
// ASN.1 DER ECDSA-Sig-Value (what Vault's "asn1" marshaling carries).
StatusOr<std::vector<std::uint8_t>> EcdsaRawToDer(std::span<const std::uint8_t> raw);

}  // namespace lockbox::transit
