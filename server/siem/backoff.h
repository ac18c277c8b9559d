// Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"):
// the n-th delay (n = 0, 1, ...) is uniform in [0, min(max, initial * 2^n)].
// Thread safety: a Backoff object belongs to one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <random>

namespace lockbox::siem {

class Backoff {
 public:
  // Source of uniform 64-bit random numbers; empty: a PRNG seeded from std::random_device.
  using Random = std::function<std::uint64_t()>;

  Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max, Random random = {});

  // min(max, initial * 2^attempt), without overflow.
  std::chrono::milliseconds Ceiling(unsigned attempt) const;
  // The next delay, uniform in [0, Ceiling(attempts())]; then attempts() grows by one.
  std::chrono::milliseconds Next();
  // After a success: the next delay starts again from `initial`.
  void Reset() { attempt_ = 0; }
  unsigned attempts() const { return attempt_; }

 private:
  std::chrono::milliseconds initial_;
  std::chrono::milliseconds max_;
  Random random_;
  std::mt19937_64 prng_;
  unsigned attempt_ = 0;
};

}  // namespace lockbox::siem
