// JSON Web Keys for public signature keys: RFC 7517, RFC 7518 §6 (EC, RSA), RFC 8037 (OKP
// Ed25519), and JWK thumbprints (RFC 7638).
//
// Security property: parsing is strict. A JWK is refused (INVALID_ARGUMENT) if a required member
// is missing or not a string, base64url is not canonical (strict decoder, no padding), EC
// coordinates are not exactly the curve's size or the point is not on the curve, RSA integers have
// leading zero octets (RFC 7518 §2 Base64urlUInt) or the modulus is under 2048 bits, the curve is
// not P-256/P-384/Ed25519, or any private member ("d", and for RSA "p", "q", "dp", "dq", "qi",
// "oth") is present: a public JWK that carries private material is a leak, never accepted.
// Optional members ("kid", "use", "alg", "key_ops", ...) are ignored here; callers that pin an
// algorithm compare them themselves.
// Thread safety: pure functions, reentrant.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "crypto/signature.h"
#include "crypto/status.h"

namespace lockbox::crypto {

StatusOr<PublicKey> PublicKeyFromJwk(const nlohmann::json& jwk);

// The required public members only: {"kty","crv","x","y"} (EC), {"kty","crv","x"} (OKP),
// {"kty","n","e"} (RSA). Callers add "kid", "alg", "use".
StatusOr<nlohmann::json> PublicKeyToJwk(const PublicKey& key);

// RFC 7638 thumbprint: base64url(SHA-256(JSON of the required members, sorted, no whitespace)).
// The JWK is validated with PublicKeyFromJwk first.
StatusOr<std::string> JwkThumbprint(const nlohmann::json& jwk);

}  // namespace lockbox::crypto
