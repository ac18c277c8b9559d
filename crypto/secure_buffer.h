// SecureBuffer: owned bytes for key material and plaintext secrets.
// Memory comes from libsodium's sodium_malloc (guard pages, mlock'ed so it is never swapped,
// excluded from core dumps where the OS allows) and is zeroed before it is freed.
// Move-only: a copy must be explicit (Copy()), so secrets are never duplicated by accident.
// Thread safety: like std::vector — concurrent reads are safe, writes need external locking.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace lockbox::crypto {

class SecureBuffer {
 public:
  SecureBuffer() = default;
  // `size` zero bytes. Aborts if locked memory cannot be allocated (fail closed: no unlocked
  // fallback for secrets).
  explicit SecureBuffer(std::size_t size);
  static SecureBuffer Copy(std::span<const std::uint8_t> bytes);
  static SecureBuffer Copy(std::string_view bytes);

  SecureBuffer(SecureBuffer&& other) noexcept;
  SecureBuffer& operator=(SecureBuffer&& other) noexcept;
  SecureBuffer(const SecureBuffer&) = delete;
  SecureBuffer& operator=(const SecureBuffer&) = delete;
  ~SecureBuffer();

  std::uint8_t* data() { return data_; }
  const std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::span<std::uint8_t> span() { return {data_, size_}; }
  std::span<const std::uint8_t> span() const { return {data_, size_}; }
  std::string_view view() const { return {reinterpret_cast<const char*>(data_), size_}; }

 private:
  void Release();

  std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

// Zeroes memory in a way the compiler cannot elide (sodium_memzero).
void SecureZero(std::span<std::uint8_t> bytes);

// Must be called once before any other crypto function; idempotent and thread-safe.
// Initialises libsodium and disables core dumps for the process (invariant 4).
void InitCrypto();

}  // namespace lockbox::crypto
