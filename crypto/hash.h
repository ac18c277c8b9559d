// SHA-2 digests, HMAC and constant-time comparison (OpenSSL EVP / libsodium).
// Thread safety: free functions are reentrant; a Sha256 object is not shared between threads.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "crypto/status.h"

namespace lockbox::crypto {

enum class HashAlgorithm { kSha256, kSha384, kSha512 };

std::size_t DigestSize(HashAlgorithm alg);

std::vector<std::uint8_t> Digest(HashAlgorithm alg, std::span<const std::uint8_t> data);
std::array<std::uint8_t, 32> Sha256(std::span<const std::uint8_t> data);
std::array<std::uint8_t, 32> Sha256(std::string_view data);

// Incremental SHA-256 (audit chain: h_n = SHA-256(h_{n-1} || event)).
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;
  void Update(std::span<const std::uint8_t> data);
  void Update(std::string_view data);
  std::array<std::uint8_t, 32> Finish();  // the hasher may be reused after Finish()

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// HMAC (RFC 2104). Any key length is accepted, as HMAC defines.
std::vector<std::uint8_t> Hmac(HashAlgorithm alg, std::span<const std::uint8_t> key,
                               std::span<const std::uint8_t> data);

// Constant-time equality: the time taken depends only on the lengths, never on the contents.
bool ConstantTimeEquals(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b);
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace lockbox::crypto
