// Token-bucket rate limiting for the listener: one bucket per key (a client address, or a hash of
// a presented token), refilled continuously at `per_second` up to `burst` tokens; a request takes
// one token or is refused with the whole seconds after which one token will be available.
//
// Security: the table is bounded. Buckets that have refilled completely are dropped (forgetting
// them changes no decision); when the table is still full, the least recently used bucket goes,
// which can only ever favour that key, never refuse anybody early. Tokens are never stored: the
// per-token key is their SHA-256.
//
// Beast-free and clock-injectable so that the arithmetic is unit-tested without sleeping.
// Thread safety: all methods are thread-safe (one mutex per table, held briefly).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "server/http/listener.h"

namespace lockbox::http {

struct RateLimitDecision {
  bool allowed = true;
  std::chrono::seconds retry_after{0};  // >= 1 when refused
};

class TokenBucketTable {
 public:
  using Clock = std::chrono::steady_clock;
  using Now = std::function<Clock::time_point()>;

  // `limit.per_second` 0 disables the table (every request allowed). A burst of 0 means
  // `per_second`; bursts below one token are raised to one so that a request can ever pass.
  TokenBucketTable(RateLimit limit, std::size_t max_buckets, Now now = Clock::now);

  bool enabled() const { return per_second_ > 0; }
  // Takes one token from `key`'s bucket (a new key starts with a full bucket).
  RateLimitDecision Take(std::string_view key);
  std::size_t size() const;

 private:
  struct Bucket {
    std::string key;
    double tokens;
    Clock::time_point updated;
  };
  using Lru = std::list<Bucket>;  // least recently used first

  double Refilled(const Bucket& bucket, Clock::time_point now) const;

  const double per_second_;
  const double burst_;
  const std::size_t max_buckets_;
  const Now now_;
  mutable std::mutex mu_;
  Lru lru_;
  std::unordered_map<std::string_view, Lru::iterator> index_;  // views into lru_ keys
};

// The listener's two limits: per client address, then per presented token.
class RequestRateLimiter {
 public:
  static constexpr std::size_t kDefaultMaxBuckets = 65536;

  RequestRateLimiter(RateLimit per_client, RateLimit per_token,
                     std::size_t max_buckets = kDefaultMaxBuckets,
                     TokenBucketTable::Now now = TokenBucketTable::Clock::now);

  // Charges the client's bucket, then (if the client passed and a token is presented) the
  // token's bucket.
  RateLimitDecision Admit(const HttpRequest& request);

 private:
  TokenBucketTable per_client_;
  TokenBucketTable per_token_;
};

// The token a request presents: the X-Vault-Token value, else the credentials of an
// `Authorization: Bearer` header; nullopt if neither (or empty).
std::optional<std::string_view> PresentedToken(const HttpRequest& request);

}  // namespace lockbox::http
