#include "server/auth/cidr.h"

#include <gtest/gtest.h>

namespace lockbox::auth {
namespace {

Cidr MustParse(std::string_view text) {
  auto cidr = Cidr::Parse(text);
  EXPECT_TRUE(cidr.ok()) << text << ": " << cidr.status().ToString();
  return cidr.ok() ? *cidr : *Cidr::Parse("255.255.255.255/32");
}

bool Contains(std::string_view block, std::string_view address) {
  return AnyCidrContains({MustParse(block)}, address);
}

TEST(CidrTest, ParsesAndCanonicalisesBlocks) {
  EXPECT_EQ(MustParse("127.0.0.1/32").ToString(), "127.0.0.1/32");
  EXPECT_EQ(MustParse("10.1.2.3/8").ToString(), "10.0.0.0/8");  // host bits masked, as Go does
  EXPECT_EQ(MustParse("192.168.7.9").ToString(), "192.168.7.9/32");
  EXPECT_EQ(MustParse("0.0.0.0/0").ToString(), "0.0.0.0/0");
  EXPECT_EQ(MustParse("2001:db8:abcd::1/32").ToString(), "2001:db8::/32");
  EXPECT_EQ(MustParse("::1").ToString(), "::1/128");
  EXPECT_EQ(MustParse("::ffff:10.0.0.0/104").ToString(), "10.0.0.0/8");
}

TEST(CidrTest, RefusesMalformedBlocks) {
  for (std::string_view bad :
       {"", "/", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/08", "10.0.0/8",
        "256.0.0.0/8", "10.0.0.0/8/8", " 10.0.0.0/8", "10.0.0.0/8 ", "::1/129", "fe80::1%eth0/64",
        "[::1]/128", "10.0.0.1:80", "example.com/24", "::ffff:10.0.0.0/95", "10.0.0.0/1000"}) {
    auto cidr = Cidr::Parse(bad);
    EXPECT_FALSE(cidr.ok()) << bad;
    if (!cidr.ok()) {
      EXPECT_EQ(cidr.status().code(), StatusCode::kInvalidArgument);
    }
  }
}

TEST(CidrTest, MatchesIpv4) {
  EXPECT_TRUE(Contains("127.0.0.1/32", "127.0.0.1"));
  EXPECT_FALSE(Contains("127.0.0.1/32", "127.0.0.2"));
  EXPECT_TRUE(Contains("10.0.0.0/8", "10.255.255.255"));
  EXPECT_FALSE(Contains("10.0.0.0/8", "11.0.0.0"));
  EXPECT_TRUE(Contains("192.168.0.0/23", "192.168.1.200"));
  EXPECT_FALSE(Contains("192.168.0.0/23", "192.168.2.1"));
  EXPECT_TRUE(Contains("0.0.0.0/0", "8.8.8.8"));
  EXPECT_FALSE(Contains("0.0.0.0/0", "::1"));  // families never mix
}

TEST(CidrTest, MatchesIpv6AndMappedIpv4) {
  EXPECT_TRUE(Contains("2001:db8::/32", "2001:db8:ffff::1"));
  EXPECT_FALSE(Contains("2001:db8::/32", "2001:db9::1"));
  EXPECT_TRUE(Contains("::1/128", "::1"));
  EXPECT_FALSE(Contains("::1/128", "127.0.0.1"));
  EXPECT_TRUE(Contains("2001:db8::/33", "2001:db8:7fff::1"));
  EXPECT_FALSE(Contains("2001:db8::/33", "2001:db8:8000::1"));
  // A dual-stack listener reports IPv4 clients as IPv4-mapped IPv6 addresses.
  EXPECT_TRUE(Contains("127.0.0.0/8", "::ffff:127.0.0.1"));
  EXPECT_FALSE(Contains("::/0", "10.0.0.1"));
}

TEST(CidrTest, UnparseableAddressesMatchNothing) {
  for (std::string_view bad :
       {"", "localhost", "127.0.0.1:8200", "[::1]", "127.0.0.1 ", "fe80::1%lo"}) {
    EXPECT_FALSE(Contains("0.0.0.0/0", bad)) << bad;
    EXPECT_FALSE(Contains("::/0", bad)) << bad;
  }
  EXPECT_FALSE(AnyCidrContains({}, "127.0.0.1"));
}

TEST(CidrTest, SubsetChecks) {
  const std::vector<Cidr> outer = {MustParse("10.0.0.0/8"), MustParse("2001:db8::/32")};
  EXPECT_TRUE(CidrsWithin({MustParse("10.1.0.0/16"), MustParse("10.2.3.4")}, outer));
  EXPECT_TRUE(CidrsWithin({MustParse("2001:db8:1::/48")}, outer));
  EXPECT_TRUE(CidrsWithin({}, outer));
  EXPECT_FALSE(CidrsWithin({MustParse("0.0.0.0/0")}, outer));
  EXPECT_FALSE(CidrsWithin({MustParse("10.0.0.0/7")}, outer));
  EXPECT_FALSE(CidrsWithin({MustParse("10.1.0.0/16"), MustParse("11.0.0.1")}, outer));
}

TEST(CidrTest, ListParsingNamesTheField) {
  auto parsed = ParseCidrList({"10.0.0.0/8", "nonsense"}, "cidr_list");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().message(),
            "invalid value for \"cidr_list\": invalid CIDR block \"nonsense\"");
}

}  // namespace
}  // namespace lockbox::auth
