#include "crypto/aead.h"

#include <openssl/evp.h>
#include <sodium.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <string>
#include <utility>

#include "crypto/random.h"

namespace lockbox::crypto {
namespace {

constexpr char kAuthFailed[] = "message authentication failed";

struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;

// OpenSSL takes int lengths: feed long inputs in chunks that always fit.
constexpr std::size_t kMaxChunk = std::size_t{1} << 30;

// libsodium and OpenSSL may dereference a pointer even for zero lengths in some paths; hand them
// a valid address for empty spans.
const std::uint8_t* PtrOrDummy(ByteView v) {
  static const std::uint8_t kDummy = 0;
  return v.empty() ? &kDummy : v.data();
}

Status CheckSizes(std::string_view alg, ByteView key, std::size_t key_size, ByteView nonce,
                  std::size_t nonce_size) {
  if (key.size() != key_size) {
    return InvalidArgumentError(std::string(alg) + ": key must be " + std::to_string(key_size) +
                                " bytes, got " + std::to_string(key.size()));
  }
  if (nonce.size() != nonce_size) {
    return InvalidArgumentError(std::string(alg) + ": nonce must be " + std::to_string(nonce_size) +
                                " bytes, got " + std::to_string(nonce.size()));
  }
  return Status::Ok();
}

// Feeds `in` to the cipher; out == nullptr means AAD. Writes to out + offset.
bool CipherUpdate(EVP_CIPHER_CTX* ctx, bool encrypt, std::uint8_t* out, ByteView in,
                  std::size_t* written) {
  std::size_t pos = 0;
  while (pos < in.size()) {
    const std::size_t n = std::min(kMaxChunk, in.size() - pos);
    int outl = 0;
    std::uint8_t* dst = out == nullptr ? nullptr : out + *written;
    const int ok = encrypt
                       ? EVP_EncryptUpdate(ctx, dst, &outl, in.data() + pos, static_cast<int>(n))
                       : EVP_DecryptUpdate(ctx, dst, &outl, in.data() + pos, static_cast<int>(n));
    if (ok != 1) return false;
    if (out != nullptr) *written += static_cast<std::size_t>(outl);
    pos += n;
  }
  return true;
}

// OpenSSL 3 resolves EVP_aes_256_gcm() in the provider registry on every init (locks and string
// compares cost more than sealing 1 KiB); fetching it once keeps that off the per-message path.
const EVP_CIPHER* Aes256Gcm() {
  static EVP_CIPHER* const cipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  return cipher;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// AES-256-GCM (OpenSSL EVP). 12-byte nonces are GCM's default IV length.

StatusOr<Bytes> AesGcmSeal(ByteView key, ByteView nonce, ByteView aad, ByteView plaintext) {
  LOCKBOX_RETURN_IF_ERROR(CheckSizes("AES-256-GCM", key, kAes256KeySize, nonce, kAesGcmNonceSize));
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return InternalError("AES-256-GCM: EVP_CIPHER_CTX_new failed");
  if (Aes256Gcm() == nullptr ||
      EVP_EncryptInit_ex2(ctx.get(), Aes256Gcm(), key.data(), nonce.data(), nullptr) != 1) {
    return InternalError("AES-256-GCM: cipher initialisation failed");
  }
  Bytes out(plaintext.size() + kAesGcmTagSize);
  std::size_t written = 0;
  if (!CipherUpdate(ctx.get(), true, nullptr, aad, &written) ||
      !CipherUpdate(ctx.get(), true, out.data(), plaintext, &written)) {
    return InternalError("AES-256-GCM: encryption failed");
  }
  int final_len = 0;
  if (EVP_EncryptFinal_ex(ctx.get(), out.data() + written, &final_len) != 1) {
    return InternalError("AES-256-GCM: encryption failed");
  }
  written += static_cast<std::size_t>(final_len);
  if (written != plaintext.size() ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kAesGcmTagSize),
                          out.data() + written) != 1) {
    return InternalError("AES-256-GCM: encryption failed");
  }
  return out;
}

StatusOr<SecureBuffer> AesGcmOpen(ByteView key, ByteView nonce, ByteView aad,
                                  ByteView ciphertext_and_tag) {
  LOCKBOX_RETURN_IF_ERROR(CheckSizes("AES-256-GCM", key, kAes256KeySize, nonce, kAesGcmNonceSize));
  if (ciphertext_and_tag.size() < kAesGcmTagSize) return DataLossError(kAuthFailed);
  const ByteView ct = ciphertext_and_tag.first(ciphertext_and_tag.size() - kAesGcmTagSize);
  const ByteView tag = ciphertext_and_tag.last(kAesGcmTagSize);

  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return InternalError("AES-256-GCM: EVP_CIPHER_CTX_new failed");
  if (Aes256Gcm() == nullptr ||
      EVP_DecryptInit_ex2(ctx.get(), Aes256Gcm(), key.data(), nonce.data(), nullptr) != 1) {
    return InternalError("AES-256-GCM: cipher initialisation failed");
  }
  // Plaintext goes to locked memory and is released only if the tag verifies; on any failure the
  // buffer is destroyed (zeroed and freed) before returning.
  SecureBuffer plaintext(ct.size());
  std::size_t written = 0;
  if (!CipherUpdate(ctx.get(), false, nullptr, aad, &written) ||
      !CipherUpdate(ctx.get(), false, plaintext.data(), ct, &written)) {
    return InternalError("AES-256-GCM: decryption failed");
  }
  // The tag is copied: OpenSSL's ctrl takes a non-const pointer.
  std::uint8_t tag_copy[kAesGcmTagSize];
  std::memcpy(tag_copy, tag.data(), kAesGcmTagSize);
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kAesGcmTagSize),
                          tag_copy) != 1) {
    return InternalError("AES-256-GCM: setting the tag failed");
  }
  int final_len = 0;
  std::uint8_t final_block[16];
  if (EVP_DecryptFinal_ex(ctx.get(), final_block, &final_len) != 1 || final_len != 0 ||
      written != ct.size()) {
    return DataLossError(kAuthFailed);
  }
  return plaintext;
}

// ---------------------------------------------------------------------------------------------
// ChaCha20-Poly1305 (IETF, RFC 8439) and XChaCha20-Poly1305 (libsodium)

StatusOr<Bytes> ChaCha20Poly1305Seal(ByteView key, ByteView nonce, ByteView aad,
                                     ByteView plaintext) {
  LOCKBOX_RETURN_IF_ERROR(
      CheckSizes("ChaCha20-Poly1305", key, kChaChaKeySize, nonce, kChaCha20Poly1305NonceSize));
  if (plaintext.size() > crypto_aead_chacha20poly1305_ietf_MESSAGEBYTES_MAX) {
    return InvalidArgumentError("ChaCha20-Poly1305: plaintext too long");
  }
  InitCrypto();
  Bytes out(plaintext.size() + kPoly1305TagSize);
  unsigned long long out_len = 0;
  if (crypto_aead_chacha20poly1305_ietf_encrypt(out.data(), &out_len, PtrOrDummy(plaintext),
                                                plaintext.size(), PtrOrDummy(aad), aad.size(),
                                                nullptr, nonce.data(), key.data()) != 0 ||
      out_len != out.size()) {
    return InternalError("ChaCha20-Poly1305: encryption failed");
  }
  return out;
}

StatusOr<SecureBuffer> ChaCha20Poly1305Open(ByteView key, ByteView nonce, ByteView aad,
                                            ByteView ciphertext_and_tag) {
  LOCKBOX_RETURN_IF_ERROR(
      CheckSizes("ChaCha20-Poly1305", key, kChaChaKeySize, nonce, kChaCha20Poly1305NonceSize));
  if (ciphertext_and_tag.size() < kPoly1305TagSize) return DataLossError(kAuthFailed);
  InitCrypto();
  SecureBuffer plaintext(ciphertext_and_tag.size() - kPoly1305TagSize);
  unsigned long long out_len = 0;
  // libsodium verifies the tag before it writes any plaintext.
  if (crypto_aead_chacha20poly1305_ietf_decrypt(
          plaintext.data(), &out_len, nullptr, ciphertext_and_tag.data(), ciphertext_and_tag.size(),
          PtrOrDummy(aad), aad.size(), nonce.data(), key.data()) != 0 ||
      out_len != plaintext.size()) {
    return DataLossError(kAuthFailed);
  }
  return plaintext;
}

StatusOr<Bytes> XChaCha20Poly1305Seal(ByteView key, ByteView nonce, ByteView aad,
                                      ByteView plaintext) {
  LOCKBOX_RETURN_IF_ERROR(
      CheckSizes("XChaCha20-Poly1305", key, kChaChaKeySize, nonce, kXChaCha20Poly1305NonceSize));
  if (plaintext.size() > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX) {
    return InvalidArgumentError("XChaCha20-Poly1305: plaintext too long");
  }
  InitCrypto();
  Bytes out(plaintext.size() + kPoly1305TagSize);
  unsigned long long out_len = 0;
  if (crypto_aead_xchacha20poly1305_ietf_encrypt(out.data(), &out_len, PtrOrDummy(plaintext),
                                                 plaintext.size(), PtrOrDummy(aad), aad.size(),
                                                 nullptr, nonce.data(), key.data()) != 0 ||
      out_len != out.size()) {
    return InternalError("XChaCha20-Poly1305: encryption failed");
  }
  return out;
}

StatusOr<SecureBuffer> XChaCha20Poly1305Open(ByteView key, ByteView nonce, ByteView aad,
                                             ByteView ciphertext_and_tag) {
  LOCKBOX_RETURN_IF_ERROR(
      CheckSizes("XChaCha20-Poly1305", key, kChaChaKeySize, nonce, kXChaCha20Poly1305NonceSize));
  if (ciphertext_and_tag.size() < kPoly1305TagSize) return DataLossError(kAuthFailed);
  InitCrypto();
  SecureBuffer plaintext(ciphertext_and_tag.size() - kPoly1305TagSize);
  unsigned long long out_len = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(
          plaintext.data(), &out_len, nullptr, ciphertext_and_tag.data(), ciphertext_and_tag.size(),
          PtrOrDummy(aad), aad.size(), nonce.data(), key.data()) != 0 ||
      out_len != plaintext.size()) {
    return DataLossError(kAuthFailed);
  }
  return plaintext;
}

// ---------------------------------------------------------------------------------------------
// Tink-style objects: random nonce per message, output nonce || ct || tag.

namespace {

using SealFn = StatusOr<Bytes> (*)(ByteView, ByteView, ByteView, ByteView);
using OpenFn = StatusOr<SecureBuffer> (*)(ByteView, ByteView, ByteView, ByteView);

class RandomNonceAead final : public Aead {
 public:
  RandomNonceAead(SecureBuffer key, std::size_t nonce_size, std::size_t tag_size, SealFn seal,
                  OpenFn open)
      : key_(std::move(key)),
        nonce_size_(nonce_size),
        tag_size_(tag_size),
        seal_(seal),
        open_(open) {}

  StatusOr<Bytes> Encrypt(ByteView plaintext, ByteView aad) const override {
    Bytes nonce = RandomVector(nonce_size_);
    LOCKBOX_ASSIGN_OR_RETURN(Bytes sealed, seal_(key_.span(), nonce, aad, plaintext));
    Bytes out;
    out.reserve(nonce.size() + sealed.size());
    out.insert(out.end(), nonce.begin(), nonce.end());
    out.insert(out.end(), sealed.begin(), sealed.end());
    return out;
  }

  StatusOr<SecureBuffer> Decrypt(ByteView ciphertext, ByteView aad) const override {
    if (ciphertext.size() < nonce_size_ + tag_size_) return DataLossError(kAuthFailed);
    return open_(key_.span(), ciphertext.first(nonce_size_), aad, ciphertext.subspan(nonce_size_));
  }

 private:
  const SecureBuffer key_;
  const std::size_t nonce_size_;
  const std::size_t tag_size_;
  const SealFn seal_;
  const OpenFn open_;
};

}  // namespace

StatusOr<std::unique_ptr<Aead>> NewAes256Gcm(ByteView key) {
  if (key.size() != kAes256KeySize) {
    return InvalidArgumentError("AES-256-GCM: key must be 32 bytes, got " +
                                std::to_string(key.size()));
  }
  return std::unique_ptr<Aead>(std::make_unique<RandomNonceAead>(
      SecureBuffer::Copy(key), kAesGcmNonceSize, kAesGcmTagSize, &AesGcmSeal, &AesGcmOpen));
}

StatusOr<std::unique_ptr<Aead>> NewXChaCha20Poly1305(ByteView key) {
  if (key.size() != kChaChaKeySize) {
    return InvalidArgumentError("XChaCha20-Poly1305: key must be 32 bytes, got " +
                                std::to_string(key.size()));
  }
  InitCrypto();
  return std::unique_ptr<Aead>(std::make_unique<RandomNonceAead>(
      SecureBuffer::Copy(key), kXChaCha20Poly1305NonceSize, kPoly1305TagSize,
      &XChaCha20Poly1305Seal, &XChaCha20Poly1305Open));
}

}  // namespace lockbox::crypto
