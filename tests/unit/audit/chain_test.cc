#include "audit/chain.h"

#include <gtest/gtest.h>

#include <string>

#include "crypto/encoding.h"
#include "crypto/hash.h"

namespace lockbox::audit {
namespace {

TEST(ChainTest, GenesisIsSha256OfDomainAndLogId) {
  const ChainHash h0 = GenesisHash("log-abc");
  EXPECT_EQ(h0, crypto::Sha256(std::string_view("lockbox-audit-v1log-abc")));
  EXPECT_NE(h0, GenesisHash("log-abd"));
  // SHA-256("lockbox-audit-v1") for the empty id, via the one-shot digest.
  EXPECT_EQ(GenesisHash(""), crypto::Sha256(std::string_view("lockbox-audit-v1")));
}

TEST(ChainTest, NextHashIsSha256OfPreviousAndEvent) {
  const ChainHash h0 = GenesisHash("log");
  const std::string event = R"({"seq":1})";
  std::string input(h0.begin(), h0.end());
  input += event;
  const ChainHash h1 = NextHash(h0, event);
  EXPECT_EQ(h1, crypto::Sha256(std::string_view(input)));
  EXPECT_NE(NextHash(h1, event), h1);
  EXPECT_NE(NextHash(h0, R"({"seq":2})"), h1);
}

TEST(ChainTest, HexRoundTrip) {
  const ChainHash h = GenesisHash("x");
  const std::string hex = HashToHex(h);
  EXPECT_EQ(hex.size(), 64u);
  EXPECT_EQ(hex, crypto::HexEncode(h));
  auto back = HashFromHex(hex);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, h);
  std::string upper = hex;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (upper != hex) {
    EXPECT_FALSE(HashFromHex(upper).ok());
  }
  EXPECT_FALSE(HashFromHex(hex.substr(2)).ok());
  EXPECT_FALSE(HashFromHex(hex + "00").ok());
  EXPECT_FALSE(HashFromHex(std::string(64, 'g')).ok());
}

}  // namespace
}  // namespace lockbox::audit
