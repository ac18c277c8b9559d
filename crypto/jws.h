// JWS compact serialization (RFC 7515 §7.1) with the algorithm pinned by the caller.
//
// Security properties:
// - Parsing is strict: exactly three dot-separated parts, each canonical base64url (no padding,
//   no whitespace, zero trailing bits), a protected header that is a JSON object (no duplicate
//   members) with a string "alg", and an empty or absent "crit" (no extension is understood, so
//   any critical one is refused, RFC 7515 §4.1.11). The signature must not be empty.
// - Verification never takes the algorithm from the message: the caller pins it (normally from
//   the key), the header's "alg" must name exactly that algorithm, "none" and anything else are
//   refused before any signature byte is examined, and the key's type must match the pinned
//   algorithm (crypto::PublicKey::Verify). ECDSA signatures are the raw r||s form JWS uses.
// - Every bad-signature failure is DATA_LOSS "signature verification failed"; malformed input and
//   algorithm mismatches are INVALID_ARGUMENT.
// Thread safety: pure functions, reentrant.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "crypto/signature.h"
#include "crypto/status.h"

namespace lockbox::crypto {

// The JWS "alg" name of an algorithm: EdDSA, ES256, ES384, PS256, PS512, RS256.
std::string_view JwsAlgorithmName(SignatureAlgorithm alg);
// The inverse; INVALID_ARGUMENT for "none", HMAC algorithms and anything unknown.
StatusOr<SignatureAlgorithm> JwsAlgorithmFromName(std::string_view name);

// BASE64URL(header) + "." + BASE64URL(payload). The header is serialised with JCS (RFC 8785);
// a header JCS refuses (never one built by this code base) falls back to nlohmann's dump().
std::string JwsSigningInput(const nlohmann::json& protected_header,
                            std::span<const std::uint8_t> payload);
// signing_input + "." + BASE64URL(signature).
std::string JwsCompact(std::string_view signing_input, std::span<const std::uint8_t> signature);

struct JwsParts {
  nlohmann::json header;  // the decoded protected header (a JSON object)
  std::string header_b64;
  std::string payload_b64;
  std::vector<std::uint8_t> payload;
  std::vector<std::uint8_t> signature;
  std::string signing_input;  // header_b64 + "." + payload_b64
};

// Upper bound on a compact JWS accepted by ParseJwsCompact (bounds work on hostile input).
inline constexpr std::size_t kMaxJwsCompactSize = 1 << 20;

StatusOr<JwsParts> ParseJwsCompact(std::string_view compact);

// OK only if the header's "alg" is JwsAlgorithmName(pinned) and the signature verifies under
// `key` with `pinned` (raw r||s for ECDSA).
Status VerifyJws(const JwsParts& parts, const PublicKey& key, SignatureAlgorithm pinned);

}  // namespace lockbox::crypto
