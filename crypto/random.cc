#include "crypto/random.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <sodium.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace lockbox::crypto {
namespace {

// Each call to a system CSPRNG costs system calls (getrandom, and getpid for OpenSSL's fork check)
// that outweigh sealing a 1 KiB message. Small requests (nonces, DEKs) are therefore served from
// a per-thread pool filled by OpenSSL's DRBG 4 KiB at a time. The pool lives in locked memory and
// every byte is zeroed as it is handed out, so it holds only bytes not yet used. A fork child
// discards its inherited pools (it must never repeat its parent's bytes).
constexpr std::size_t kPoolSize = 4096;
constexpr std::size_t kPooledRequestMax = 256;

std::atomic<std::uint64_t> fork_generation{0};

void FillFromDrbg(std::uint8_t* out, std::size_t size) {
  std::size_t done = 0;
  while (done < size) {
    const std::size_t n = std::min<std::size_t>(size - done, INT_MAX);
    // A failing DRBG must never yield predictable bytes: fail closed.
    if (RAND_bytes(out + done, static_cast<int>(n)) != 1) std::abort();
    done += n;
  }
}

struct ThreadPool {
  SecureBuffer bytes{kPoolSize};
  std::size_t used = kPoolSize;  // empty until first use
  std::uint64_t generation = 0;
};

}  // namespace

void RandomBytes(std::span<std::uint8_t> out) {
  static std::once_flag once;
  std::call_once(once,
                 [] { pthread_atfork(nullptr, nullptr, [] { fork_generation.fetch_add(1); }); });
  if (out.size() > kPooledRequestMax) return FillFromDrbg(out.data(), out.size());
  thread_local ThreadPool pool;
  const std::uint64_t generation = fork_generation.load(std::memory_order_relaxed);
  if (pool.generation != generation) {
    sodium_memzero(pool.bytes.data(), kPoolSize);
    pool.used = kPoolSize;
    pool.generation = generation;
  }
  if (kPoolSize - pool.used < out.size()) {
    FillFromDrbg(pool.bytes.data(), kPoolSize);
    pool.used = 0;
  }
  std::uint8_t* next = pool.bytes.data() + pool.used;
  if (!out.empty()) std::memcpy(out.data(), next, out.size());
  sodium_memzero(next, out.size());
  pool.used += out.size();
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
