#include "server/http/rate_limiter.h"

#include <algorithm>
#include <cmath>
#include <iterator>

#include "crypto/hash.h"
#include "server/http/message.h"

namespace lockbox::http {

TokenBucketTable::TokenBucketTable(RateLimit limit, std::size_t max_buckets, Now now)
    : per_second_(std::max(limit.per_second, 0.0)),
      burst_(std::max(limit.burst > 0 ? limit.burst : limit.per_second, 1.0)),
      max_buckets_(std::max<std::size_t>(max_buckets, 1)),
      now_(std::move(now)) {}

double TokenBucketTable::Refilled(const Bucket& bucket, Clock::time_point now) const {
  const double elapsed = std::max(std::chrono::duration<double>(now - bucket.updated).count(), 0.0);
  return std::min(burst_, bucket.tokens + elapsed * per_second_);
}

RateLimitDecision TokenBucketTable::Take(std::string_view key) {
  if (!enabled()) return {};
  std::lock_guard lock(mu_);
  const Clock::time_point now = now_();
  // Buckets that have refilled completely carry no information: drop them from the cold end.
  while (!lru_.empty() && Refilled(lru_.front(), now) >= burst_) {
    index_.erase(lru_.front().key);
    lru_.pop_front();
  }
  Bucket* bucket;
  if (auto found = index_.find(key); found != index_.end()) {
    lru_.splice(lru_.end(), lru_, found->second);
    bucket = &lru_.back();
    bucket->tokens = Refilled(*bucket, now);
  } else {
    if (lru_.size() >= max_buckets_) {
      index_.erase(lru_.front().key);
      lru_.pop_front();
    }
    lru_.push_back(Bucket{std::string(key), burst_, now});
    index_.emplace(lru_.back().key, std::prev(lru_.end()));
    bucket = &lru_.back();
  }
  bucket->updated = now;
  if (bucket->tokens >= 1.0) {
    bucket->tokens -= 1.0;
    return {};
  }
  const double wait = std::ceil((1.0 - bucket->tokens) / per_second_);
  return {false, std::chrono::seconds(std::max<long long>(static_cast<long long>(wait), 1))};
}

std::size_t TokenBucketTable::size() const {
  std::lock_guard lock(mu_);
  return lru_.size();
}

RequestRateLimiter::RequestRateLimiter(RateLimit per_client, RateLimit per_token,
                                       std::size_t max_buckets, TokenBucketTable::Now now)
    : per_client_(per_client, max_buckets, now), per_token_(per_token, max_buckets, now) {}

RateLimitDecision RequestRateLimiter::Admit(const HttpRequest& request) {
  RateLimitDecision decision = per_client_.Take(request.remote_addr);
  if (!decision.allowed || !per_token_.enabled()) return decision;
  const std::optional<std::string_view> token = PresentedToken(request);
  if (!token) return decision;
  const auto digest = crypto::Sha256(*token);
  return per_token_.Take(
      std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
}

std::optional<std::string_view> PresentedToken(const HttpRequest& request) {
  if (const std::string* token = request.Header("x-vault-token"); token && !token->empty()) {
    return std::string_view(*token);
  }
  const std::string* authorization = request.Header("authorization");
  if (authorization == nullptr) return std::nullopt;
  constexpr std::string_view kScheme = "bearer ";
  std::string_view value = *authorization;
  if (value.size() <= kScheme.size() || !AsciiIEquals(value.substr(0, kScheme.size()), kScheme)) {
    return std::nullopt;
  }
  value.remove_prefix(kScheme.size());
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (value.empty()) return std::nullopt;
  return value;
}

}  // namespace lockbox::http
