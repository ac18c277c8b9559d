#include "server/siem/backoff.h"

#include <algorithm>

namespace lockbox::siem {

Backoff::Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max, Random random)
    : initial_(std::max(initial, std::chrono::milliseconds(0))),
      max_(std::max(max, initial_)),
      random_(std::move(random)) {
  if (!random_) {
    std::random_device device;
    prng_.seed((static_cast<std::uint64_t>(device()) << 32) ^ device());
  }
}

std::chrono::milliseconds Backoff::Ceiling(unsigned attempt) const {
  std::int64_t ceiling = initial_.count();
  for (unsigned i = 0; i < attempt && ceiling < max_.count(); ++i) ceiling *= 2;
  return std::chrono::milliseconds(std::min(ceiling, static_cast<std::int64_t>(max_.count())));
}

std::chrono::milliseconds Backoff::Next() {
  const auto ceiling = static_cast<std::uint64_t>(Ceiling(attempt_).count());
  if (attempt_ < 64) ++attempt_;
  const std::uint64_t r = random_ ? random_() : prng_();
  return std::chrono::milliseconds(static_cast<std::int64_t>(r % (ceiling + 1)));
}

}  // namespace lockbox::siem
