#include "crypto/secure_buffer.h"

#include <sodium.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <utility>

namespace lockbox::crypto {

void InitCrypto() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (sodium_init() < 0) std::abort();
    // No core dumps: they would contain DEKs and plaintexts (invariant 4).
    rlimit no_core{0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  });
}

SecureBuffer::SecureBuffer(std::size_t size) : size_(size) {
  if (size == 0) return;
  InitCrypto();
  data_ = static_cast<std::uint8_t*>(sodium_malloc(size));
  if (data_ == nullptr) std::abort();  // No unlocked fallback for secret bytes.
  sodium_memzero(data_, size);
}

SecureBuffer SecureBuffer::Copy(std::span<const std::uint8_t> bytes) {
  SecureBuffer out(bytes.size());
  if (!bytes.empty()) std::memcpy(out.data_, bytes.data(), bytes.size());
  return out;
}

SecureBuffer SecureBuffer::Copy(std::string_view bytes) {
  return Copy(std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
}

SecureBuffer::SecureBuffer(SecureBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

SecureBuffer& SecureBuffer::operator=(SecureBuffer&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

SecureBuffer::~SecureBuffer() { Release(); }

void SecureBuffer::Release() {
  if (data_ != nullptr) {
    // sodium_free zeroes the region before unmapping it.
    sodium_free(data_);
    data_ = nullptr;
    size_ = 0;
  }
}

void SecureZero(std::span<std::uint8_t> bytes) {
  if (!bytes.empty()) sodium_memzero(bytes.data(), bytes.size());
}

}  // namespace lockbox::crypto
