#include "crypto/random.h"

#include <sodium.h>

namespace lockbox::crypto {

void RandomBytes(std::span<std::uint8_t> out) {
  InitCrypto();
  if (!out.empty()) randombytes_buf(out.data(), out.size());
}

std::vector<std::uint8_t> RandomVector(std::size_t size) {
  std::vector<std::uint8_t> out(size);
  RandomBytes(out);
  return out;
}

SecureBuffer RandomSecret(std::size_t size) {
  SecureBuffer out(size);
  RandomBytes(out.span());
  return out;
}

}  // namespace lockbox::crypto
