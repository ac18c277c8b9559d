// Authenticated encryption with associated data.
//
// Security property: IND-CCA2 confidentiality and integrity of plaintext and associated data,
// provided a (key, nonce) pair is never reused. Decryption either returns the exact plaintext or
// fails with DATA_LOSS ("message authentication failed") without releasing any plaintext.
// Thread safety: all functions are reentrant; the Aead objects are immutable after creation and
// safe to share between threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "crypto/secure_buffer.h"
#include "crypto/status.h"

namespace lockbox::crypto {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

inline constexpr std::size_t kAes256KeySize = 32;
inline constexpr std::size_t kAesGcmNonceSize = 12;
inline constexpr std::size_t kAesGcmTagSize = 16;
inline constexpr std::size_t kChaChaKeySize = 32;
inline constexpr std::size_t kChaCha20Poly1305NonceSize = 12;
inline constexpr std::size_t kXChaCha20Poly1305NonceSize = 24;
inline constexpr std::size_t kPoly1305TagSize = 16;

// --- Explicit-nonce primitives (callers own nonce uniqueness). Output/input is ct || tag. ---

// AES-256-GCM (OpenSSL EVP). Key 32 bytes, nonce 12 bytes, tag 16 bytes; other sizes are refused
// with INVALID_ARGUMENT (12-byte nonces are the only size NIST SP 800-38D recommends).
StatusOr<Bytes> AesGcmSeal(ByteView key, ByteView nonce, ByteView aad, ByteView plaintext);
StatusOr<SecureBuffer> AesGcmOpen(ByteView key, ByteView nonce, ByteView aad,
                                  ByteView ciphertext_and_tag);

// ChaCha20-Poly1305, RFC 8439 (libsodium, IETF variant, 12-byte nonce).
StatusOr<Bytes> ChaCha20Poly1305Seal(ByteView key, ByteView nonce, ByteView aad,
                                     ByteView plaintext);
StatusOr<SecureBuffer> ChaCha20Poly1305Open(ByteView key, ByteView nonce, ByteView aad,
                                            ByteView ciphertext_and_tag);

// XChaCha20-Poly1305 (libsodium, 24-byte nonce: safe with random nonces).
StatusOr<Bytes> XChaCha20Poly1305Seal(ByteView key, ByteView nonce, ByteView aad,
                                      ByteView plaintext);
StatusOr<SecureBuffer> XChaCha20Poly1305Open(ByteView key, ByteView nonce, ByteView aad,
                                             ByteView ciphertext_and_tag);

// --- Tink-style interface with random nonces. Ciphertext layout: nonce || ct || tag. ---
class Aead {
 public:
  virtual ~Aead() = default;
  virtual StatusOr<Bytes> Encrypt(ByteView plaintext, ByteView aad) const = 0;
  virtual StatusOr<SecureBuffer> Decrypt(ByteView ciphertext, ByteView aad) const = 0;
};

// The key is copied into locked memory owned by the returned object.
StatusOr<std::unique_ptr<Aead>> NewAes256Gcm(ByteView key);
StatusOr<std::unique_ptr<Aead>> NewXChaCha20Poly1305(ByteView key);

}  // namespace lockbox::crypto
