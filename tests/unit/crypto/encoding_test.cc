#include "crypto/encoding.h"

#include <gtest/gtest.h>

#include <string>

#include "crypto/random.h"

namespace lockbox::crypto {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes B(std::string_view s) { return Bytes(s.begin(), s.end()); }

struct Rfc4648Vector {
  std::string_view input;
  std::string_view base64;
  std::string_view base64url;  // same alphabet for these inputs, no padding
  std::string_view base16;     // RFC 4648 prints upper case; HexEncode emits lower case
};

// RFC 4648 §10.
constexpr Rfc4648Vector kRfc4648[] = {
    {"", "", "", ""},
    {"f", "Zg==", "Zg", "66"},
    {"fo", "Zm8=", "Zm8", "666f"},
    {"foo", "Zm9v", "Zm9v", "666f6f"},
    {"foob", "Zm9vYg==", "Zm9vYg", "666f6f62"},
    {"fooba", "Zm9vYmE=", "Zm9vYmE", "666f6f6261"},
    {"foobar", "Zm9vYmFy", "Zm9vYmFy", "666f6f626172"},
};

TEST(EncodingTest, Rfc4648Vectors) {
  for (const auto& v : kRfc4648) {
    SCOPED_TRACE(std::string(v.input));
    EXPECT_EQ(Base64Encode(AsBytes(v.input)), v.base64);
    EXPECT_EQ(Base64UrlEncode(AsBytes(v.input)), v.base64url);
    EXPECT_EQ(HexEncode(AsBytes(v.input)), v.base16);
    auto b64 = Base64Decode(v.base64);
    ASSERT_TRUE(b64.ok()) << b64.status().ToString();
    EXPECT_EQ(*b64, B(v.input));
    auto b64url = Base64UrlDecode(v.base64url);
    ASSERT_TRUE(b64url.ok()) << b64url.status().ToString();
    EXPECT_EQ(*b64url, B(v.input));
    auto hex = HexDecode(v.base16);
    ASSERT_TRUE(hex.ok()) << hex.status().ToString();
    EXPECT_EQ(*hex, B(v.input));
  }
}

TEST(EncodingTest, AlphabetsDiffer) {
  const Bytes data = {0xfb, 0xff, 0xbf};  // 111110 111111 111110 111111
  EXPECT_EQ(Base64Encode(data), "+/+/");
  EXPECT_EQ(Base64UrlEncode(data), "-_-_");
  EXPECT_EQ(*Base64Decode("+/+/"), data);
  EXPECT_EQ(*Base64UrlDecode("-_-_"), data);
  EXPECT_FALSE(Base64Decode("-_-_").ok());
  EXPECT_FALSE(Base64UrlDecode("+/+/").ok());
}

TEST(EncodingTest, RandomRoundTrips) {
  for (std::size_t len = 0; len < 70; ++len) {
    SCOPED_TRACE(len);
    for (int rep = 0; rep < 8; ++rep) {
      const Bytes data = RandomVector(len);
      const std::string b64 = Base64Encode(data);
      EXPECT_EQ(b64.size(), (len + 2) / 3 * 4);
      auto d1 = Base64Decode(b64);
      ASSERT_TRUE(d1.ok()) << b64;
      EXPECT_EQ(*d1, data);

      const std::string b64url = Base64UrlEncode(data);
      EXPECT_EQ(b64url.find('='), std::string::npos);
      EXPECT_EQ(b64url.find('+'), std::string::npos);
      EXPECT_EQ(b64url.find('/'), std::string::npos);
      auto d2 = Base64UrlDecode(b64url);
      ASSERT_TRUE(d2.ok()) << b64url;
      EXPECT_EQ(*d2, data);

      const std::string hex = HexEncode(data);
      EXPECT_EQ(hex.size(), 2 * len);
      auto d3 = HexDecode(hex);
      ASSERT_TRUE(d3.ok()) << hex;
      EXPECT_EQ(*d3, data);
    }
  }
}

void ExpectInvalid(const StatusOr<std::vector<std::uint8_t>>& r) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

TEST(EncodingTest, Base64RejectsMalformed) {
  const std::string_view bad[] = {
      "Zg",         // missing padding
      "Zg=",        // short padding
      "Zm8",        // missing padding
      "Zg===",      // extra padding
      "Zm9v====",   // a whole quantum of padding
      "====",       // padding only
      "Zm9v=",      // padding after a full quantum
      "Zg==Zg==",   // padding in the middle
      "Z=g=",       // padding inside a quantum
      "Zh==",       // non-zero trailing bits (4 bits)
      "Zm9=",       // non-zero trailing bits (2 bits)
      "Zm9v Yg==",  // space
      "Zm9v\nYg==",
      "Zm9vYg==\n",
      " Zm9vYg==",
      "Zm9\tvYg=",
      "Zm9vY*==",  // bad character
      "Zm9v-_==",  // base64url alphabet in std base64
      "Z",         // length 1 mod 4
      "Zm9vY",
      std::string_view("Zm\0v", 4),  // NUL byte
      "Zm9v\xc3\xa9\x41\x41",        // non-ASCII
  };
  for (const auto& text : bad) {
    SCOPED_TRACE(std::string(text));
    ExpectInvalid(Base64Decode(text));
  }
}

TEST(EncodingTest, Base64UrlRejectsMalformed) {
  const std::string_view bad[] = {
      "Zg==",  // padding is forbidden in base64url
      "Zg=",    "Zm8=",   "Zm9vYg==", "=",
      "Z",       // length 1 mod 4
      "Zm9vY",   // length 1 mod 4
      "Zh",      // non-zero trailing bits
      "Zm9",     // non-zero trailing bits
      "Zm9v+/",  // standard alphabet
      "Zm 9v",  "Zm9v\n", "Zm9v\r\n", "Zm9v!",
  };
  for (const auto& text : bad) {
    SCOPED_TRACE(std::string(text));
    ExpectInvalid(Base64UrlDecode(text));
  }
}

TEST(EncodingTest, HexRejectsMalformed) {
  const std::string_view bad[] = {"0",    "abc", "0g", "g0", "zz", " 0", "00 ",
                                  "0x00", "-1",  "AB", "aB", "Ab", "\n0"};
  for (const auto& text : bad) {
    SCOPED_TRACE(std::string(text));
    ExpectInvalid(HexDecode(text));
  }
  EXPECT_EQ(*HexDecode("00ff7f80"), (Bytes{0x00, 0xff, 0x7f, 0x80}));
  EXPECT_EQ(HexEncode(Bytes{0xab, 0xcd, 0xef}), "abcdef");
}

TEST(EncodingTest, EveryByteStringHasOneAcceptedEncoding) {
  // Flipping the low bits of the last character of a partial quantum must be refused.
  for (const auto& [b64, b64url] : {std::pair{"QQ==", "QQ"}, std::pair{"QUI=", "QUI"}}) {
    SCOPED_TRACE(b64);
    ASSERT_TRUE(Base64Decode(b64).ok());
    ASSERT_TRUE(Base64UrlDecode(b64url).ok());
    std::string alt = b64;
    std::string alt_url = b64url;
    const std::size_t last = alt_url.size() - 1;
    alt[last] = static_cast<char>(alt[last] + 1);
    alt_url[last] = static_cast<char>(alt_url[last] + 1);
    ExpectInvalid(Base64Decode(alt));
    ExpectInvalid(Base64UrlDecode(alt_url));
  }
}

}  // namespace
}  // namespace lockbox::crypto
