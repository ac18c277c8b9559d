// Token buckets and the request rate limiter, on a fake clock.
#include "server/http/rate_limiter.h"

#include <gtest/gtest.h>

#include <string>

#include "server/http/message.h"

namespace lockbox::http {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class FakeClock {
 public:
  TokenBucketTable::Now now() {
    return [this] { return now_; };
  }
  void Advance(TokenBucketTable::Clock::duration d) { now_ += d; }

 private:
  TokenBucketTable::Clock::time_point now_{seconds(1000)};
};

TEST(TokenBucketTableTest, BurstThenRefusedWithRetryAfter) {
  FakeClock clock;
  TokenBucketTable table({.per_second = 2, .burst = 3}, 16, clock.now());
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(table.Take("a").allowed) << i;
  const RateLimitDecision refused = table.Take("a");
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after, seconds(1));  // half a second to the next token, rounded up
}

TEST(TokenBucketTableTest, RefillsAtTheRateAndCapsAtTheBurst) {
  FakeClock clock;
  TokenBucketTable table({.per_second = 2, .burst = 3}, 16, clock.now());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(table.Take("a").allowed);
  ASSERT_FALSE(table.Take("a").allowed);
  clock.Advance(milliseconds(499));
  EXPECT_FALSE(table.Take("a").allowed);
  clock.Advance(milliseconds(1));
  EXPECT_TRUE(table.Take("a").allowed);  // one token after 0.5 s
  EXPECT_FALSE(table.Take("a").allowed);
  clock.Advance(seconds(3600));  // refills to the burst, not beyond
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(table.Take("a").allowed) << i;
  EXPECT_FALSE(table.Take("a").allowed);
}

TEST(TokenBucketTableTest, RetryAfterIsWholeSecondsAtLeastOne) {
  FakeClock clock;
  TokenBucketTable slow({.per_second = 0.1, .burst = 1}, 16, clock.now());
  ASSERT_TRUE(slow.Take("a").allowed);
  EXPECT_EQ(slow.Take("a").retry_after, seconds(10));
  clock.Advance(milliseconds(7500));
  EXPECT_EQ(slow.Take("a").retry_after, seconds(3));  // 2.5 s rounded up

  TokenBucketTable fast({.per_second = 1000, .burst = 1}, 16, clock.now());
  ASSERT_TRUE(fast.Take("a").allowed);
  EXPECT_EQ(fast.Take("a").retry_after, seconds(1));  // 1 ms, but never 0
}

TEST(TokenBucketTableTest, KeysHaveSeparateBuckets) {
  FakeClock clock;
  TokenBucketTable table({.per_second = 1, .burst = 1}, 16, clock.now());
  EXPECT_TRUE(table.Take("a").allowed);
  EXPECT_FALSE(table.Take("a").allowed);
  EXPECT_TRUE(table.Take("b").allowed);
  EXPECT_FALSE(table.Take("b").allowed);
}

TEST(TokenBucketTableTest, ZeroRateIsUnlimited) {
  FakeClock clock;
  TokenBucketTable table({}, 16, clock.now());
  EXPECT_FALSE(table.enabled());
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(table.Take("a").allowed);
  EXPECT_EQ(table.size(), 0u);
}

TEST(TokenBucketTableTest, BurstDefaultsToRateAndIsAtLeastOne) {
  FakeClock clock;
  TokenBucketTable per_rate({.per_second = 4}, 16, clock.now());
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(per_rate.Take("a").allowed) << i;
  EXPECT_FALSE(per_rate.Take("a").allowed);

  TokenBucketTable fractional({.per_second = 0.5}, 16, clock.now());
  EXPECT_TRUE(fractional.Take("a").allowed);
  EXPECT_FALSE(fractional.Take("a").allowed);
  EXPECT_EQ(fractional.Take("a").retry_after, seconds(2));
}

TEST(TokenBucketTableTest, TableIsBoundedByEvictingTheLeastRecentlyUsed) {
  FakeClock clock;
  TokenBucketTable table({.per_second = 1, .burst = 1}, 2, clock.now());
  ASSERT_TRUE(table.Take("a").allowed);
  ASSERT_TRUE(table.Take("b").allowed);
  ASSERT_FALSE(table.Take("a").allowed);  // touches a: b is now the least recently used
  ASSERT_TRUE(table.Take("c").allowed);   // evicts b
  EXPECT_EQ(table.size(), 2u);
  EXPECT_FALSE(table.Take("a").allowed);  // a's empty bucket survived
  EXPECT_FALSE(table.Take("c").allowed);
}

TEST(TokenBucketTableTest, RefilledBucketsAreDropped) {
  FakeClock clock;
  TokenBucketTable table({.per_second = 1, .burst = 2}, 100, clock.now());
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(table.Take("key" + std::to_string(i)).allowed);
  EXPECT_EQ(table.size(), 50u);
  clock.Advance(seconds(2));  // long enough for every bucket to be full again
  ASSERT_TRUE(table.Take("new").allowed);
  EXPECT_EQ(table.size(), 1u);
}

HttpRequest RequestFrom(std::string addr,
                        std::vector<std::pair<std::string, std::string>> headers) {
  HttpRequest request;
  request.method = "GET";
  request.target = "/";
  request.remote_addr = std::move(addr);
  request.headers = std::move(headers);
  return request;
}

TEST(PresentedTokenTest, VaultTokenThenBearer) {
  EXPECT_EQ(PresentedToken(RequestFrom("a", {{"x-vault-token", "t1"}})), "t1");
  EXPECT_EQ(PresentedToken(RequestFrom("a", {{"authorization", "Bearer t2"}})), "t2");
  EXPECT_EQ(PresentedToken(RequestFrom("a", {{"authorization", "bEaReR  t3 "}})), "t3");
  EXPECT_EQ(
      PresentedToken(RequestFrom("a", {{"authorization", "Bearer t2"}, {"x-vault-token", "t1"}})),
      "t1");
}

TEST(PresentedTokenTest, NoneOrOtherSchemes) {
  EXPECT_FALSE(PresentedToken(RequestFrom("a", {})));
  EXPECT_FALSE(PresentedToken(RequestFrom("a", {{"x-vault-token", ""}})));
  EXPECT_FALSE(PresentedToken(RequestFrom("a", {{"authorization", "Basic dXNlcjpwdw=="}})));
  EXPECT_FALSE(PresentedToken(RequestFrom("a", {{"authorization", "Bearer "}})));
  EXPECT_FALSE(PresentedToken(RequestFrom("a", {{"authorization", "Bearertoken"}})));
}

TEST(RequestRateLimiterTest, PerClientAddress) {
  FakeClock clock;
  RequestRateLimiter limiter({.per_second = 1, .burst = 2}, {}, 16, clock.now());
  const HttpRequest a = RequestFrom("10.0.0.1", {});
  const HttpRequest b = RequestFrom("10.0.0.2", {});
  EXPECT_TRUE(limiter.Admit(a).allowed);
  EXPECT_TRUE(limiter.Admit(a).allowed);
  EXPECT_FALSE(limiter.Admit(a).allowed);
  EXPECT_TRUE(limiter.Admit(b).allowed);
}

TEST(RequestRateLimiterTest, PerTokenAcrossAddressesAndHeaderForms) {
  FakeClock clock;
  RequestRateLimiter limiter({}, {.per_second = 1, .burst = 2}, 16, clock.now());
  EXPECT_TRUE(limiter.Admit(RequestFrom("10.0.0.1", {{"x-vault-token", "tok"}})).allowed);
  EXPECT_TRUE(limiter.Admit(RequestFrom("10.0.0.2", {{"authorization", "Bearer tok"}})).allowed);
  const RateLimitDecision refused =
      limiter.Admit(RequestFrom("10.0.0.3", {{"x-vault-token", "tok"}}));
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after, seconds(1));
  EXPECT_TRUE(limiter.Admit(RequestFrom("10.0.0.1", {{"x-vault-token", "other"}})).allowed);
  for (int i = 0; i < 10; ++i) {  // no token: only the (unlimited) client limit applies
    EXPECT_TRUE(limiter.Admit(RequestFrom("10.0.0.1", {})).allowed);
  }
}

TEST(RequestRateLimiterTest, ClientRefusalDoesNotChargeTheToken) {
  FakeClock clock;
  RequestRateLimiter limiter({.per_second = 1, .burst = 1}, {.per_second = 1, .burst = 1}, 16,
                             clock.now());
  EXPECT_TRUE(limiter.Admit(RequestFrom("10.0.0.1", {{"x-vault-token", "tok"}})).allowed);
  // Token bucket of "tok" is empty now; a different client with a different token passes.
  EXPECT_TRUE(limiter.Admit(RequestFrom("10.0.0.2", {{"x-vault-token", "tok2"}})).allowed);
  // 10.0.0.2 is refused by its address; "tok3" must not have been charged for it.
  EXPECT_FALSE(limiter.Admit(RequestFrom("10.0.0.2", {{"x-vault-token", "tok3"}})).allowed);
  EXPECT_TRUE(limiter.Admit(RequestFrom("10.0.0.3", {{"x-vault-token", "tok3"}})).allowed);
  EXPECT_FALSE(limiter.Admit(RequestFrom("10.0.0.4", {{"x-vault-token", "tok"}})).allowed);
}

TEST(MessageTest, JsonErrorResponse) {
  const HttpResponse response = JsonErrorResponse(429, "rate limit exceeded");
  EXPECT_EQ(response.status, 429);
  EXPECT_EQ(response.body, R"({"errors":["rate limit exceeded"]})");
  ASSERT_FALSE(response.headers.empty());
  EXPECT_EQ(response.headers[0],
            (std::pair<std::string, std::string>{"Content-Type", "application/json"}));
}

TEST(MessageTest, ValidateResponseRejectsSplittingAndBadStatus) {
  HttpResponse ok{.status = 200, .headers = {{"X-Thing", "a b\tc"}}, .body = ""};
  EXPECT_TRUE(ValidateResponse(ok).ok());
  for (const std::string& bad :
       {std::string("a\r\nSet-Cookie: x"), std::string("a\nb"), std::string("a\0b", 3)}) {
    HttpResponse response{.status = 200, .headers = {{"X-Thing", bad}}, .body = ""};
    EXPECT_FALSE(ValidateResponse(response).ok());
  }
  for (const char* bad_name : {"", "X Thing", "X:Thing", "X\r\nY"}) {
    HttpResponse response{.status = 200, .headers = {{bad_name, "v"}}, .body = ""};
    EXPECT_FALSE(ValidateResponse(response).ok()) << bad_name;
  }
  for (int status : {0, 100, 199, 600, 1000, -1}) {
    EXPECT_FALSE(ValidateResponse(HttpResponse{.status = status, .headers = {}, .body = ""}).ok())
        << status;
  }
}

}  // namespace
}  // namespace lockbox::http
