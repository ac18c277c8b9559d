#include "crypto/hash.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <climits>
#include <cstdlib>

namespace lockbox::crypto {
namespace {

// OpenSSL 3 resolves EVP_sha256() & co. in the provider registry on every use (locks and string
// compares: a few percent of a request that hashes its token); fetch each digest once instead.
// A digest that cannot be fetched is a broken library: fail closed.
const EVP_MD* Fetched(const char* name) {
  EVP_MD* md = EVP_MD_fetch(nullptr, name, nullptr);
  if (md == nullptr) std::abort();
  return md;
}

const EVP_MD* Md(HashAlgorithm alg) {
  switch (alg) {
    case HashAlgorithm::kSha256: {
      static const EVP_MD* const md = Fetched("SHA2-256");
      return md;
    }
    case HashAlgorithm::kSha384: {
      static const EVP_MD* const md = Fetched("SHA2-384");
      return md;
    }
    case HashAlgorithm::kSha512: {
      static const EVP_MD* const md = Fetched("SHA2-512");
      return md;
    }
  }
  std::abort();  // Unreachable for valid enum values.
}

// OpenSSL digests fail only on allocation failure or a broken library; these functions have no
// error channel, so fail closed rather than return a wrong digest.
[[noreturn]] void DigestFailure() { std::abort(); }

// A valid address for empty inputs (OpenSSL accepts NULL only in some paths).
const std::uint8_t* PtrOrDummy(std::span<const std::uint8_t> v) {
  static const std::uint8_t kDummy = 0;
  return v.empty() ? &kDummy : v.data();
}

std::span<const std::uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

}  // namespace

std::size_t DigestSize(HashAlgorithm alg) {
  switch (alg) {
    case HashAlgorithm::kSha256:
      return 32;
    case HashAlgorithm::kSha384:
      return 48;
    case HashAlgorithm::kSha512:
      return 64;
  }
  std::abort();
}

std::vector<std::uint8_t> Digest(HashAlgorithm alg, std::span<const std::uint8_t> data) {
  std::vector<std::uint8_t> out(DigestSize(alg));
  unsigned int len = 0;
  if (EVP_Digest(PtrOrDummy(data), data.size(), out.data(), &len, Md(alg), nullptr) != 1 ||
      len != out.size()) {
    DigestFailure();
  }
  return out;
}

std::array<std::uint8_t, 32> Sha256(std::span<const std::uint8_t> data) {
  std::array<std::uint8_t, 32> out{};
  unsigned int len = 0;
  if (EVP_Digest(PtrOrDummy(data), data.size(), out.data(), &len, Md(HashAlgorithm::kSha256),
                 nullptr) != 1 ||
      len != out.size()) {
    DigestFailure();
  }
  return out;
}

std::array<std::uint8_t, 32> Sha256(std::string_view data) { return Sha256(Bytes(data)); }

struct Sha256Hasher::Impl {
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx{EVP_MD_CTX_new()};
};

Sha256Hasher::Sha256Hasher() : impl_(std::make_unique<Impl>()) {
  if (!impl_->ctx ||
      EVP_DigestInit_ex(impl_->ctx.get(), Md(HashAlgorithm::kSha256), nullptr) != 1) {
    DigestFailure();
  }
}

Sha256Hasher::~Sha256Hasher() = default;

void Sha256Hasher::Update(std::span<const std::uint8_t> data) {
  if (data.empty()) return;
  if (EVP_DigestUpdate(impl_->ctx.get(), data.data(), data.size()) != 1) DigestFailure();
}

void Sha256Hasher::Update(std::string_view data) { Update(Bytes(data)); }

std::array<std::uint8_t, 32> Sha256Hasher::Finish() {
  std::array<std::uint8_t, 32> out{};
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(impl_->ctx.get(), out.data(), &len) != 1 || len != out.size()) {
    DigestFailure();
  }
  // Reset so the hasher can be reused.
  if (EVP_DigestInit_ex(impl_->ctx.get(), Md(HashAlgorithm::kSha256), nullptr) != 1)
    DigestFailure();
  return out;
}

std::vector<std::uint8_t> Hmac(HashAlgorithm alg, std::span<const std::uint8_t> key,
                               std::span<const std::uint8_t> data) {
  // OpenSSL takes an int key length. Keys longer than the block size are hashed first by the HMAC
  // definition (RFC 2104), so doing that here for huge keys gives the same MAC.
  if (key.size() > static_cast<std::size_t>(INT_MAX)) {
    const std::vector<std::uint8_t> hashed_key = Digest(alg, key);
    return Hmac(alg, hashed_key, data);
  }
  std::vector<std::uint8_t> out(DigestSize(alg));
  unsigned int len = 0;
  // HMAC() one-shot (not deprecated in OpenSSL 3); key and data may be empty.
  if (HMAC(Md(alg), PtrOrDummy(key), static_cast<int>(key.size()), PtrOrDummy(data), data.size(),
           out.data(), &len) == nullptr ||
      len != out.size()) {
    DigestFailure();
  }
  return out;
}

bool ConstantTimeEquals(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
  // Lengths are not secret; contents are compared in time independent of where they differ.
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  return ConstantTimeEquals(Bytes(a), Bytes(b));
}

}  // namespace lockbox::crypto
