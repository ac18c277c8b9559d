#include "server/keyring/dek_cache.h"

#include <gtest/gtest.h>

#include "crypto/random.h"

namespace lockbox::keyring {
namespace {

CachedDek NewDek(std::uint8_t tag) {
  return CachedDek{std::make_shared<const crypto::SecureBuffer>(crypto::RandomSecret(32)),
                   std::vector<std::uint8_t>(60, tag)};
}

TEST(DekCacheTest, EncryptionDekIsReusedUpToItsUseLimit) {
  DekCacheOptions options;
  options.max_encryptions_per_dek = 3;
  DekCache cache(options);
  EXPECT_FALSE(cache.TakeEncryptionDek("k", 1).has_value());
  const auto dek = NewDek(1);
  cache.PutEncryptionDek("k", 1, dek);  // the first use
  EXPECT_EQ(cache.TakeEncryptionDek("k", 1)->key, dek.key);
  EXPECT_EQ(cache.TakeEncryptionDek("k", 1)->key, dek.key);
  EXPECT_FALSE(cache.TakeEncryptionDek("k", 1).has_value());  // fourth use refused
  EXPECT_FALSE(cache.TakeEncryptionDek("k", 2).has_value());  // versions are separate
}

TEST(DekCacheTest, EncryptionDekIsAlsoFoundForDecryption) {
  DekCache cache(DekCacheOptions{});
  const auto dek = NewDek(7);
  cache.PutEncryptionDek("k", 1, dek);
  EXPECT_EQ(cache.FindDecryptionDek("k", 1, dek.wrapped), dek.key);
  EXPECT_EQ(cache.FindDecryptionDek("k", 2, dek.wrapped), nullptr);
  EXPECT_EQ(cache.FindDecryptionDek("k2", 1, dek.wrapped), nullptr);
  EXPECT_EQ(cache.FindDecryptionDek("k", 1, std::vector<std::uint8_t>(60, 8)), nullptr);
}

TEST(DekCacheTest, ExpiredEntriesAreNeverReturned) {
  DekCacheOptions options;
  options.max_age = std::chrono::seconds(0);
  DekCache cache(options);
  const auto dek = NewDek(1);
  cache.PutEncryptionDek("k", 1, dek);
  EXPECT_FALSE(cache.TakeEncryptionDek("k", 1).has_value());
  EXPECT_EQ(cache.FindDecryptionDek("k", 1, dek.wrapped), nullptr);
}

TEST(DekCacheTest, CountIsBoundedLeastRecentlyUsedFirst) {
  DekCacheOptions options;
  options.max_entries = 2;
  DekCache cache(options);
  const auto a = NewDek(1), b = NewDek(2), c = NewDek(3);
  cache.PutDecryptionDek("k", 1, a);
  cache.PutDecryptionDek("k", 1, b);
  ASSERT_NE(cache.FindDecryptionDek("k", 1, a.wrapped), nullptr);  // a is now the most recent
  cache.PutDecryptionDek("k", 1, c);
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_NE(cache.FindDecryptionDek("k", 1, a.wrapped), nullptr);
  EXPECT_EQ(cache.FindDecryptionDek("k", 1, b.wrapped), nullptr);
  EXPECT_NE(cache.FindDecryptionDek("k", 1, c.wrapped), nullptr);
}

TEST(DekCacheTest, EvictKeyDropsOnlyThatKey) {
  DekCache cache(DekCacheOptions{});
  const auto a = NewDek(1), b = NewDek(2);
  cache.PutEncryptionDek("app", 1, a);
  cache.PutEncryptionDek("app2", 1, b);  // a name that starts with the other's name
  cache.EvictKey("app");
  EXPECT_FALSE(cache.TakeEncryptionDek("app", 1).has_value());
  EXPECT_EQ(cache.FindDecryptionDek("app", 1, a.wrapped), nullptr);
  EXPECT_TRUE(cache.TakeEncryptionDek("app2", 1).has_value());
  EXPECT_NE(cache.FindDecryptionDek("app2", 1, b.wrapped), nullptr);
}

TEST(DekCacheTest, DisabledCacheHoldsNothing) {
  DekCacheOptions options;
  options.enabled = false;
  DekCache cache(options);
  const auto dek = NewDek(1);
  cache.PutEncryptionDek("k", 1, dek);
  cache.PutDecryptionDek("k", 1, dek);
  EXPECT_FALSE(cache.TakeEncryptionDek("k", 1).has_value());
  EXPECT_EQ(cache.FindDecryptionDek("k", 1, dek.wrapped), nullptr);
  EXPECT_EQ(cache.size(), 0u);
}

}  // namespace
}  // namespace lockbox::keyring
