#include "server/keyring/envelope.h"

#include <gtest/gtest.h>

#include "crypto/encoding.h"

namespace lockbox::keyring {
namespace {

Envelope Sample() {
  Envelope e;
  e.key_version = 7;
  e.wrapped_dek = std::vector<std::uint8_t>(60, 0xAB);
  e.nonce = std::vector<std::uint8_t>(12, 0x01);
  e.sealed = std::vector<std::uint8_t>(16 + 5, 0x02);
  return e;
}

TEST(EnvelopeTest, RoundTrip) {
  const std::string text = EncodeEnvelope(Sample());
  ASSERT_TRUE(text.starts_with("vault:v7:"));
  auto decoded = DecodeEnvelope(text);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->format, kEnvelopeFormatV1);
  EXPECT_EQ(decoded->key_version, 7u);
  EXPECT_EQ(decoded->wrapped_dek, Sample().wrapped_dek);
  EXPECT_EQ(decoded->nonce, Sample().nonce);
  EXPECT_EQ(decoded->sealed, Sample().sealed);
}

TEST(EnvelopeTest, RejectsMalformedText) {
  const std::string good = EncodeEnvelope(Sample());
  const std::string body = good.substr(std::string("vault:v7:").size());
  for (const std::string& bad :
       {std::string(""), std::string("vault:"), std::string("vault:v"), "vault:v:" + body,
        "vault:v0:" + body, "vault:v07:" + body, "vault:v8:" + body, "vault:vx:" + body,
        "vault:v-7:" + body, "vault:v99999999999:" + body, "vault:v7" + body, "kms:v7:" + body,
        "vault:v7:" + body + "!", "vault:v7:" + body.substr(1), "vault:v7: " + body,
        std::string("vault:v7:AAAA")}) {
    SCOPED_TRACE(bad);
    auto decoded = DecodeEnvelope(bad);
    ASSERT_FALSE(decoded.ok());
    EXPECT_EQ(decoded.status().code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(decoded.status().message().starts_with("invalid ciphertext: "));
  }
}

TEST(EnvelopeTest, RejectsBadBinaryFields) {
  auto encode_raw = [](std::vector<std::uint8_t> bin) {
    return "vault:v7:" + crypto::Base64Encode(bin);
  };
  auto text = EncodeEnvelope(Sample());
  auto bin = *crypto::Base64Decode(text.substr(9));

  auto unknown_format = bin;
  unknown_format[0] = 0x7f;  // 1 and 2 are AES-256-GCM and ChaCha20-Poly1305
  EXPECT_FALSE(DecodeEnvelope(encode_raw(unknown_format)).ok());

  auto zero_dek = bin;
  zero_dek[5] = zero_dek[6] = 0;
  EXPECT_FALSE(DecodeEnvelope(encode_raw(zero_dek)).ok());

  auto long_dek = bin;
  long_dek[5] = 0xFF;
  EXPECT_FALSE(DecodeEnvelope(encode_raw(long_dek)).ok());

  // Every truncation is refused: the sealed part must at least hold a tag.
  const std::size_t min_size = 7 + 60 + 12 + 16;
  for (std::size_t n = 0; n < min_size; ++n) {
    SCOPED_TRACE(n);
    EXPECT_FALSE(DecodeEnvelope(encode_raw({bin.begin(), bin.begin() + n})).ok());
  }
}

TEST(EnvelopeTest, AadSeparatesNamesVersionsAndContexts) {
  const std::vector<std::uint8_t> ctx1 = {1}, ctx2 = {2};
  EXPECT_NE(DataAad(1, "a", ctx1), DataAad(1, "a", ctx2));
  EXPECT_NE(DataAad(1, "a", ctx1), DataAad(1, "b", ctx1));
  EXPECT_NE(DataAad(1, "a", ctx1), DataAad(2, "a", ctx1));
  // Length prefixes keep name/context boundaries unambiguous.
  const std::vector<std::uint8_t> b = {'b'}, none;
  EXPECT_NE(DataAad(1, "ab", none), DataAad(1, "a", b));
  EXPECT_NE(DekAad(1, "a", 1), DekAad(1, "a", 2));
  EXPECT_NE(DekAad(1, "a", 1), DekAad(1, "b", 1));
  EXPECT_NE(DekAad(1, "a", 1), DataAad(1, "a", none));
}

}  // namespace
}  // namespace lockbox::keyring
