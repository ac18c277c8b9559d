// Cryptographically secure random bytes: OpenSSL's DRBG (seeded from getrandom(2)); small requests
// come from a per-thread pool in locked memory, discarded in fork children.
// Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "crypto/secure_buffer.h"

namespace lockbox::crypto {

void RandomBytes(std::span<std::uint8_t> out);
std::vector<std::uint8_t> RandomVector(std::size_t size);
// Random key material, in locked memory.
SecureBuffer RandomSecret(std::size_t size);

}  // namespace lockbox::crypto
