// Hsm: Lockbox's only door to the PKCS#11 module (the only code that includes pkcs11.h).
//
// Security properties:
//  - The master key (MKEK) is a token object with CKA_SENSITIVE=true, CKA_EXTRACTABLE=false and
//    may only wrap/unwrap; it never leaves the HSM.
//  - KEKs are generated inside the HSM and leave it only wrapped by the MKEK
//    (CKM_AES_KEY_WRAP_PAD, RFC 5649). Unwrapped, they are sensitive, non-extractable session
//    objects that may only encrypt/decrypt (DEK wrapping).
//  - Signing private keys are sensitive, non-extractable token objects.
// Errors: every CKR_* becomes a Status whose message names the function and the CKR constant
// (e.g. "C_UnwrapKey: CKR_WRAPPED_KEY_INVALID"); never key bytes. Device-level failures map to
// UNAVAILABLE, bad PIN to UNAUTHENTICATED, bad handles to NOT_FOUND, bad wrapped data to DATA_LOSS.
// The CKR_* names and the mapping are in hsm/ckr.h (CkrName, CkrStatusCode, CkrToStatus).
// Thread safety: all methods are thread-safe. Operations borrow a session from a bounded pool
// (max_sessions; a session is used by one thread at a time, callers wait when all are busy).
// On CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED or CKR_USER_NOT_LOGGED_IN the session is
// re-opened (and logged in) and the call retried once; on CKR_DEVICE_ERROR, CKR_DEVICE_REMOVED,
// CKR_TOKEN_NOT_PRESENT or CKR_CRYPTOKI_NOT_INITIALIZED the module is re-initialised
// (C_Finalize + C_Initialize, shared by every Hsm on that module path in the process), the
// token found and logged in again, generation() bumped, and the call retried once.
// Session objects (unwrapped KEKs) are created in one long-lived "owner" session, so they live
// as long as the Hsm (or until that session is lost), not as long as a pool session.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "crypto/secure_buffer.h"
#include "crypto/status.h"

namespace lockbox::hsm {

inline constexpr std::string_view kDefaultModulePath = "/usr/lib/softhsm/libsofthsm2.so";

struct HsmConfig {
  std::string module_path = std::string(kDefaultModulePath);
  std::string token_label;
  // File holding the user PIN; refused unless it is a regular file with mode 0400 or 0600.
  std::string pin_file;
  std::size_t max_sessions = 8;
};

// Reads a PIN file, refusing any mode other than 0400/0600 (PERMISSION_DENIED) and empty files.
// A single trailing newline is stripped.
StatusOr<crypto::SecureBuffer> ReadPinFile(const std::string& path);

// A key object inside the HSM. `generation` is the HSM's generation when the handle was made:
// session objects die when the module is re-initialised (or the owner session is lost), and
// token-object handles change, so a handle from an older generation is stale (Hsm::generation()).
// The Hsm that issued a handle remembers how to re-create it (token keys: class + label; KEKs:
// wrapping key + wrapped bytes) and re-resolves a stale handle transparently on its next use, so
// callers may keep handles across a generation bump. A stale handle the Hsm cannot re-create
// (not issued by it, or destroyed) gives FAILED_PRECONDITION; re-creating it yourself after a
// bump (FindSecretKey / UnwrapKey again) is always fine. DestroyObject forgets the recipe.
struct KeyHandle {
  unsigned long object = 0;
  std::uint64_t generation = 0;
};

enum class SigningAlgorithm { kEcdsaP256Sha256, kEd25519 };

struct SigningKey {
  KeyHandle private_key;
  KeyHandle public_key;
  SigningAlgorithm algorithm = SigningAlgorithm::kEcdsaP256Sha256;
  std::string label;
};

// Object attributes read back with C_GetAttributeValue, for checks and tests.
struct KeyAttributes {
  bool token = false;
  bool sensitive = false;
  bool extractable = false;
  bool always_sensitive = false;
  bool never_extractable = false;
  bool encrypt = false;
  bool decrypt = false;
  bool wrap = false;
  bool unwrap = false;
  bool sign = false;
  std::string label;
};

class Hsm {
 public:
  // dlopens the module, C_Initialize with OS locking, finds the token by label, logs in the user.
  // Module missing → UNAVAILABLE; token absent → NOT_FOUND; wrong PIN → UNAUTHENTICATED.
  static StatusOr<std::unique_ptr<Hsm>> Open(const HsmConfig& config);
  virtual ~Hsm() = default;

  // Bumped each time the module is re-initialised; session-object handles of older generations
  // are stale.
  virtual std::uint64_t generation() const = 0;

  // --- Master key (MKEK) ---
  // AES-256 token object: sensitive, non-extractable, CKA_WRAP/CKA_UNWRAP only.
  // ALREADY_EXISTS if a secret key with this label exists.
  virtual StatusOr<KeyHandle> GenerateMasterKey(std::string_view label) = 0;
  // Finds a secret key token object by CKA_LABEL. NOT_FOUND if none.
  virtual StatusOr<KeyHandle> FindSecretKey(std::string_view label) = 0;

  // --- KEKs ---
  // Generates an AES-256 KEK inside the HSM and returns it wrapped by `wrapping_key`
  // (CKM_AES_KEY_WRAP_PAD, RFC 5649; CKM_AES_KEY_WRAP if the module lacks it): 40 bytes.
  // The transient KEK object is destroyed before returning.
  virtual StatusOr<std::vector<std::uint8_t>> GenerateWrappedKey(const KeyHandle& wrapping_key) = 0;
  // Unwraps a KEK as a sensitive, non-extractable session object with CKA_ENCRYPT/CKA_DECRYPT
  // (only; no wrap/unwrap/sign). Tampered, foreign or wrong-length wrapped bytes → DATA_LOSS.
  virtual StatusOr<KeyHandle> UnwrapKey(const KeyHandle& wrapping_key,
                                        std::span<const std::uint8_t> wrapped) = 0;

  // --- DEK wrapping with a KEK: AES-256-GCM inside the HSM (C_Encrypt/C_Decrypt, CKM_AES_GCM,
  // random 12-byte IV, 128-bit tag). Output layout: iv(12) || ciphertext || tag(16).
  // `aad` binds the wrapped DEK to its owner (key name, version). ---
  virtual StatusOr<std::vector<std::uint8_t>> WrapData(const KeyHandle& kek,
                                                       std::span<const std::uint8_t> data,
                                                       std::span<const std::uint8_t> aad) = 0;
  virtual StatusOr<crypto::SecureBuffer> UnwrapData(const KeyHandle& kek,
                                                    std::span<const std::uint8_t> wrapped,
                                                    std::span<const std::uint8_t> aad) = 0;

  // --- Signing keys (token objects; private half sensitive, non-extractable, CKA_SIGN only;
  // public half CKA_VERIFY; both share CKA_LABEL and CKA_ID = label). ALREADY_EXISTS if a private
  // key with the label exists. FindSigningKey takes the algorithm from CKA_KEY_TYPE. ---
  virtual StatusOr<SigningKey> GenerateSigningKey(SigningAlgorithm algorithm,
                                                  std::string_view label) = 0;
  virtual StatusOr<SigningKey> FindSigningKey(std::string_view label) = 0;
  // ES256: SHA-256 of `message` signed with CKM_ECDSA, returned as raw r||s (64 bytes, as JWS
  // wants). Ed25519: pure EdDSA over `message` (64 bytes).
  virtual StatusOr<std::vector<std::uint8_t>> Sign(const SigningKey& key,
                                                   std::span<const std::uint8_t> message) = 0;
  // ECDSA keys only: signs `digest` as given (CKM_ECDSA), for a hash the caller chose or a
  // message hashed elsewhere; raw r||s. INVALID_ARGUMENT for an Ed25519 key or a digest that is
  // empty or longer than 64 bytes.
  virtual StatusOr<std::vector<std::uint8_t>> SignDigest(const SigningKey& key,
                                                         std::span<const std::uint8_t> digest) = 0;
  // Public key as a JWK (RFC 7517/7518/8037): {"kty":"EC","crv":"P-256","x","y"} or
  // {"kty":"OKP","crv":"Ed25519","x"}; "kid" is the label, "alg" ES256/EdDSA, "use":"sig".
  // (Callers need <nlohmann/json.hpp>.)
  virtual StatusOr<nlohmann::json> PublicJwk(const SigningKey& key) = 0;

  // --- Objects ---
  virtual Status DestroyObject(const KeyHandle& key) = 0;
  // Destroys every object (token or session) with this label. Returns how many were destroyed.
  virtual StatusOr<std::size_t> DestroyObjectsByLabel(std::string_view label) = 0;
  // Attributes that do not apply to the object's class (e.g. CKA_SENSITIVE of a public key) read
  // as false.
  virtual StatusOr<KeyAttributes> GetAttributes(const KeyHandle& key) = 0;
};

}  // namespace lockbox::hsm
