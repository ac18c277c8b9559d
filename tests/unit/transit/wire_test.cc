#include "server/transit/wire.h"

#include <gtest/gtest.h>

#include "crypto/encoding.h"
#include "crypto/signature.h"

namespace lockbox::transit {
namespace {

using crypto::AsBytes;

std::string Hex(std::span<const std::uint8_t> b) { return crypto::HexEncode(b); }

TEST(DecodeBase64Test, DecodesPaddedStandardBase64) {
  auto a = DecodeBase64("YQ==");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->view(), "a");
  auto ab = DecodeBase64("YWI=");
  ASSERT_TRUE(ab.ok());
  EXPECT_EQ(ab->view(), "ab");
  auto hello = DecodeBase64("aGVs\nbG8=");  // Go skips CR and LF
  ASSERT_TRUE(hello.ok());
  EXPECT_EQ(hello->view(), "hello");
  auto empty = DecodeBase64("");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
  // Vault's legacy test: "test" is valid base64 and must round-trip byte for byte.
  auto test = DecodeBase64("test");
  ASSERT_TRUE(test.ok());
  EXPECT_EQ(crypto::Base64Encode(test->span()), "test");
}

TEST(DecodeBase64Test, ErrorsCarryGosOffsets) {
  auto message = [](std::string_view text) {
    auto r = DecodeBase64(text);
    EXPECT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    return r.status().message();
  };
  EXPECT_EQ(message("hello world"), "illegal base64 data at input byte 5");
  EXPECT_EQ(message("aGVsbG8"), "illegal base64 data at input byte 4");  // missing padding
  EXPECT_EQ(message("abc"), "illegal base64 data at input byte 0");
  EXPECT_EQ(message("Y==="), "illegal base64 data at input byte 1");
  EXPECT_EQ(message("YQ="), "illegal base64 data at input byte 3");
  EXPECT_EQ(message("YQ=x"), "illegal base64 data at input byte 2");
  EXPECT_EQ(message("YQ==YQ=="), "illegal base64 data at input byte 4");
  EXPECT_EQ(message("aGVs-bG8"), "illegal base64 data at input byte 4");  // base64url is not std
}

TEST(ParseVersionedTest, SplitsAndNamesErrorsAsVault) {
  auto ok = ParseVersioned("vault:v12:abc:def", "ciphertext");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->version, 12u);
  EXPECT_EQ(ok->body, "abc:def");
  EXPECT_EQ(ParseVersioned("vault:v0:x", "ciphertext")->version, 1u);  // Vault's legacy v0
  EXPECT_EQ(ParseVersioned("vault:1:x", "ciphertext").status().message(),
            "invalid ciphertext: no prefix");
  EXPECT_EQ(ParseVersioned("vault:v1", "ciphertext").status().message(),
            "invalid ciphertext: wrong number of fields");
  EXPECT_EQ(ParseVersioned("vault:vx:abc", "signature").status().message(),
            "invalid signature: version number could not be decoded");
  EXPECT_EQ(ParseVersioned("vault:v:abc", "hmac").status().message(),
            "invalid hmac: version number could not be decoded");
  EXPECT_EQ(ParseVersioned("vault:v99999999999:abc", "ciphertext").status().message(),
            "invalid ciphertext: version number could not be decoded");
  EXPECT_EQ(FormatVersioned(3, "Zm9v"), "vault:v3:Zm9v");
}

TEST(HashTest, KnownVectors) {
  EXPECT_EQ(Hex(HashOf(*ParseHash("sha2-256"), AsBytes("abc"))),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Hex(HashOf(*ParseHash("sha2-224"), AsBytes("abc"))),
            "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7");
  EXPECT_EQ(Hex(HashOf(*ParseHash("sha3-256"), AsBytes("abc"))),
            "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532");
  EXPECT_FALSE(ParseHash("md5").has_value());
  EXPECT_FALSE(ParseHash("SHA2-256").has_value());
}

TEST(HashTest, HmacRfc4231Case2AndParts) {
  // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
  auto mac = HmacOf(Hash::kSha2_256, AsBytes("Jefe"), {AsBytes("what do ya want for nothing?")});
  ASSERT_TRUE(mac.ok());
  EXPECT_EQ(Hex(*mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  auto parts = HmacOf(Hash::kSha2_256, AsBytes("Jefe"),
                      {AsBytes("what do ya "), AsBytes("want for nothing?")});
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ(*parts, *mac);
}

TEST(HashTest, HkdfRfc5869Case3) {
  const std::vector<std::uint8_t> ikm(22, 0x0b);
  auto okm = HkdfSha256(ikm, {}, 42);
  ASSERT_TRUE(okm.ok());
  EXPECT_EQ(Hex(okm->span()),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8");
}

TEST(EcdsaDerTest, RawSignatureReencodedAsDerVerifies) {
  auto key = crypto::PrivateKey::Generate(crypto::SignatureAlgorithm::kEcdsaP256Sha256);
  ASSERT_TRUE(key.ok());
  auto raw = key->Sign(AsBytes("message"), crypto::EcdsaSignatureFormat::kRawRS);
  ASSERT_TRUE(raw.ok());
  auto der = EcdsaRawToDer(*raw);
  ASSERT_TRUE(der.ok());
  EXPECT_TRUE(key->public_key()
                  .Verify(crypto::SignatureAlgorithm::kEcdsaP256Sha256, AsBytes("message"), *der,
                          crypto::EcdsaSignatureFormat::kDer)
                  .ok());
  EXPECT_FALSE(key->public_key()
                   .Verify(crypto::SignatureAlgorithm::kEcdsaP256Sha256, AsBytes("other"), *der,
                           crypto::EcdsaSignatureFormat::kDer)
                   .ok());
  EXPECT_FALSE(EcdsaRawToDer(std::vector<std::uint8_t>(63, 1)).ok());
}

}  // namespace
}  // namespace lockbox::transit
