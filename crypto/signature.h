// Digital signatures with software keys (OpenSSL 3 EVP_PKEY): Ed25519, ECDSA P-256/P-384,
// RSA-PSS and RSA PKCS#1 v1.5.
//
// Security properties:
// - Algorithm pinning: Verify() only succeeds if the algorithm matches the key's type and curve
//   (an RSA key never verifies ECDSA, a P-256 key never verifies ES384, an Ed25519 key only
//   Ed25519); a mismatch is INVALID_ARGUMENT, checked before any signature byte is looked at.
// - Strict encodings: raw ECDSA signatures (IEEE P1363 r||s, as JWS uses) must be exactly twice
//   the coordinate size; DER ECDSA signatures must be canonical DER (re-encoding must reproduce
//   the input byte for byte), so BER variants and trailing garbage fail. RSA signatures must be
//   exactly the modulus length. RSA-PSS uses MGF1 with the signing hash and salt length = digest
//   length. RSA keys below 2048 bits, with an even modulus, or with a public exponent that is
//   even or outside 2^16 < e < 2^256 (FIPS 186-5), and keys on other curves are refused when
//   loaded; EC points must be on the curve.
// - Every verification failure (bad signature, wrong length, malformed encoding, wrong message)
//   is the same DATA_LOSS "signature verification failed", so failures reveal nothing more.
// Private keys held here live in OpenSSL-managed memory: they are for tests and clients; the
// server's own signing keys stay in the HSM (DESIGN.md §1, §4).
// Thread safety: PublicKey and PrivateKey are immutable after construction; const methods may be
// called concurrently from many threads (each call uses its own OpenSSL contexts). Copies of a
// PublicKey share the underlying EVP_PKEY by reference count.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "crypto/secure_buffer.h"
#include "crypto/status.h"

struct evp_pkey_st;  // OpenSSL's EVP_PKEY

namespace lockbox::crypto {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

enum class SignatureAlgorithm {
  kEd25519,          // RFC 8032 pure Ed25519 (JWS "EdDSA")
  kEcdsaP256Sha256,  // JWS ES256
  kEcdsaP384Sha384,  // JWS ES384
  kRsaPssSha256,     // JWS PS256
  kRsaPssSha512,     // JWS PS512
  kRsaPkcs1Sha256,   // JWS RS256
};

enum class EcdsaSignatureFormat {
  kDer,    // X9.62 / RFC 3279 ECDSA-Sig-Value, canonical DER
  kRawRS,  // IEEE P1363 r||s, each left-padded to the coordinate size (JWS, RFC 9421)
};

enum class KeyType { kEd25519, kEcP256, kEcP384, kRsa };

// Lower-case names; all but "rsa-pss-sha256" (not in the RFC 9421 registry) are the RFC 9421
// names: "ed25519", "ecdsa-p256-sha256", "ecdsa-p384-sha384", "rsa-pss-sha512", "rsa-v1_5-sha256".
std::string_view SignatureAlgorithmName(SignatureAlgorithm alg);
// True if a key of `type` may be used with `alg` (the pinning rule above).
bool KeyTypeMatches(KeyType type, SignatureAlgorithm alg);

inline constexpr int kMinRsaBits = 2048;
inline constexpr int kMaxRsaBits = 8192;  // bounds verification cost of hostile keys

class PublicKey {
 public:
  // PEM "PUBLIC KEY" (SubjectPublicKeyInfo). Only one PEM block; other key types, curves other
  // than P-256/P-384, and RSA keys outside [kMinRsaBits, kMaxRsaBits] are INVALID_ARGUMENT.
  static StatusOr<PublicKey> FromPem(std::string_view pem);
  // DER SubjectPublicKeyInfo, same rules; trailing bytes are refused.
  static StatusOr<PublicKey> FromDer(ByteView spki);

  // OK if `signature` is a valid signature of `message` under this key with `alg`.
  // `format` only matters for ECDSA.
  Status Verify(SignatureAlgorithm alg, ByteView message, ByteView signature,
                EcdsaSignatureFormat format = EcdsaSignatureFormat::kRawRS) const;
  // ECDSA keys only: OK if `signature` signs `digest` as given (a hash the caller chose, or a
  // message hashed elsewhere). Same strict encodings and DATA_LOSS on any failure as Verify();
  // INVALID_ARGUMENT for a key that is not EC or a digest that is empty or over 64 bytes.
  Status VerifyEcdsaDigest(ByteView digest, ByteView signature,
                           EcdsaSignatureFormat format = EcdsaSignatureFormat::kRawRS) const;

  KeyType type() const { return type_; }
  int bits() const;  // modulus bits for RSA, curve bits for EC, 256 for Ed25519
  std::string ToPem() const;
  Bytes ToDer() const;  // SubjectPublicKeyInfo

  // Non-owning handle for other crypto/ code (JWK export, JWS); never null on a valid object.
  evp_pkey_st* native_handle() const { return key_.get(); }

 private:
  PublicKey(std::shared_ptr<evp_pkey_st> key, KeyType type) : key_(std::move(key)), type_(type) {}
  friend class PrivateKey;

  std::shared_ptr<evp_pkey_st> key_;
  KeyType type_;
};

// A software signing key bound to one algorithm. Move-only.
class PrivateKey {
 public:
  // Fresh key from OpenSSL's CSPRNG. `rsa_bits` is used only for RSA algorithms.
  static StatusOr<PrivateKey> Generate(SignatureAlgorithm alg, int rsa_bits = 3072);
  // Unencrypted PEM (PKCS#8 "PRIVATE KEY" or the traditional per-type forms); the key type must
  // match `alg`. Encrypted PEM is refused.
  static StatusOr<PrivateKey> FromPem(std::string_view pem, SignatureAlgorithm alg);

  PrivateKey(PrivateKey&&) noexcept = default;
  PrivateKey& operator=(PrivateKey&&) noexcept = default;
  PrivateKey(const PrivateKey&) = delete;
  PrivateKey& operator=(const PrivateKey&) = delete;
  ~PrivateKey();

  SignatureAlgorithm algorithm() const { return alg_; }
  StatusOr<Bytes> Sign(ByteView message,
                       EcdsaSignatureFormat format = EcdsaSignatureFormat::kRawRS) const;
  const PublicKey& public_key() const { return public_key_; }
  // Unencrypted PKCS#8 PEM, in locked memory.
  StatusOr<SecureBuffer> ToPem() const;

 private:
  PrivateKey(std::unique_ptr<evp_pkey_st, void (*)(evp_pkey_st*)> key, SignatureAlgorithm alg,
             PublicKey public_key)
      : key_(std::move(key)), alg_(alg), public_key_(std::move(public_key)) {}

  std::unique_ptr<evp_pkey_st, void (*)(evp_pkey_st*)> key_;
  SignatureAlgorithm alg_;
  PublicKey public_key_;
};

}  // namespace lockbox::crypto
