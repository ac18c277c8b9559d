#include "crypto/jwk.h"

#include <gtest/gtest.h>

#include <string>

#include "crypto/encoding.h"
#include "crypto/signature.h"

namespace lockbox::crypto {
namespace {

using nlohmann::json;

// RFC 7638 §3.1 example key (RFC 7517 Appendix A.1 public RSA key).
const char* kRfc7638N =
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_"
    "BJECPebWK"
    "RXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_"
    "FDW2QvzqY368QQMi"
    "cAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-"
    "bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr"
    "3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

json Rfc7638Jwk() {
  return {{"kty", "RSA"}, {"n", kRfc7638N}, {"e", "AQAB"}, {"alg", "RS256"}, {"kid", "2011-04-29"}};
}

// RFC 8037 Appendix A.1/A.2 Ed25519 key.
const char* kRfc8037D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
const char* kRfc8037X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

json Rfc8037PublicJwk() { return {{"kty", "OKP"}, {"crv", "Ed25519"}, {"x", kRfc8037X}}; }

TEST(JwkTest, Rfc7638Thumbprint) {
  auto thumb = JwkThumbprint(Rfc7638Jwk());
  ASSERT_TRUE(thumb.ok()) << thumb.status().ToString();
  EXPECT_EQ(*thumb, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
  // Optional members and member order do not change it.
  json bare = {{"e", "AQAB"}, {"n", kRfc7638N}, {"kty", "RSA"}};
  EXPECT_EQ(*JwkThumbprint(bare), *thumb);
  // The key loads and exports back to the same required members.
  auto key = PublicKeyFromJwk(Rfc7638Jwk());
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(key->type(), KeyType::kRsa);
  EXPECT_EQ(key->bits(), 2048);
  auto exported = PublicKeyToJwk(*key);
  ASSERT_TRUE(exported.ok());
  EXPECT_EQ(*exported, bare);
}

TEST(JwkTest, Rfc8037Ed25519Example) {
  auto key = PublicKeyFromJwk(Rfc8037PublicJwk());
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(key->type(), KeyType::kEd25519);
  // RFC 8037 A.3 thumbprint.
  EXPECT_EQ(*JwkThumbprint(Rfc8037PublicJwk()), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
  // RFC 8037 A.4: the JWS signature over
  // "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc".
  const std::string signing_input = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
  auto sig = Base64UrlDecode(
      "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg");
  ASSERT_TRUE(sig.ok());
  EXPECT_TRUE(key->Verify(SignatureAlgorithm::kEd25519, AsBytes(signing_input), *sig).ok());
  std::string tampered = signing_input;
  tampered.back() = 'h';
  EXPECT_FALSE(key->Verify(SignatureAlgorithm::kEd25519, AsBytes(tampered), *sig).ok());

  // Ed25519 is deterministic: signing with the RFC's private key "d" (wrapped as PKCS#8) gives
  // exactly the RFC's signature.
  auto d = Base64UrlDecode(kRfc8037D);
  ASSERT_TRUE(d.ok());
  auto prefix = HexDecode("302e020100300506032b657004220420");
  ASSERT_TRUE(prefix.ok());
  Bytes pkcs8 = *prefix;
  pkcs8.insert(pkcs8.end(), d->begin(), d->end());
  const std::string pem =
      "-----BEGIN PRIVATE KEY-----\n" + Base64Encode(pkcs8) + "\n-----END PRIVATE KEY-----\n";
  auto priv = PrivateKey::FromPem(pem, SignatureAlgorithm::kEd25519);
  ASSERT_TRUE(priv.ok()) << priv.status().ToString();
  EXPECT_EQ(*PublicKeyToJwk(priv->public_key()), Rfc8037PublicJwk());
  auto own_sig = priv->Sign(AsBytes(signing_input));
  ASSERT_TRUE(own_sig.ok());
  EXPECT_EQ(*own_sig, *sig);

  // The private JWK itself is not a public JWK.
  json private_jwk = Rfc8037PublicJwk();
  private_jwk["d"] = kRfc8037D;
  auto refused = PublicKeyFromJwk(private_jwk);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(JwkThumbprint(private_jwk).ok());
}

class JwkRoundTripTest : public ::testing::TestWithParam<SignatureAlgorithm> {};

TEST_P(JwkRoundTripTest, ExportImportVerify) {
  auto priv = PrivateKey::Generate(GetParam(), 2048);
  ASSERT_TRUE(priv.ok());
  auto jwk = PublicKeyToJwk(priv->public_key());
  ASSERT_TRUE(jwk.ok()) << jwk.status().ToString();
  EXPECT_FALSE(jwk->contains("d"));
  auto key = PublicKeyFromJwk(*jwk);
  ASSERT_TRUE(key.ok()) << key.status().ToString() << " " << jwk->dump();
  EXPECT_EQ(key->ToDer(), priv->public_key().ToDer());
  EXPECT_EQ(key->type(), priv->public_key().type());
  auto sig = priv->Sign(AsBytes("jwk"));
  ASSERT_TRUE(sig.ok());
  EXPECT_TRUE(key->Verify(GetParam(), AsBytes("jwk"), *sig).ok());
  auto thumb = JwkThumbprint(*jwk);
  ASSERT_TRUE(thumb.ok());
  EXPECT_EQ(thumb->size(), 43u);
  // Different key, different thumbprint.
  auto other = PrivateKey::Generate(GetParam(), 2048);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(*JwkThumbprint(*PublicKeyToJwk(other->public_key())), *thumb);
}

INSTANTIATE_TEST_SUITE_P(JwkKeyTypes, JwkRoundTripTest,
                         ::testing::Values(SignatureAlgorithm::kEd25519,
                                           SignatureAlgorithm::kEcdsaP256Sha256,
                                           SignatureAlgorithm::kEcdsaP384Sha384,
                                           SignatureAlgorithm::kRsaPssSha256));

TEST(JwkTest, EcCoordinatesAreFixedLength) {
  // P-256 coordinates with a leading zero byte must still be 32 bytes in the JWK.
  for (int i = 0; i < 64; ++i) {
    auto priv = PrivateKey::Generate(SignatureAlgorithm::kEcdsaP256Sha256);
    ASSERT_TRUE(priv.ok());
    auto jwk = PublicKeyToJwk(priv->public_key());
    ASSERT_TRUE(jwk.ok());
    EXPECT_EQ((*jwk)["x"].get<std::string>().size(), 43u);
    EXPECT_EQ((*jwk)["y"].get<std::string>().size(), 43u);
  }
}

json ValidEcJwk() {
  auto priv = PrivateKey::Generate(SignatureAlgorithm::kEcdsaP256Sha256);
  EXPECT_TRUE(priv.ok());
  return *PublicKeyToJwk(priv->public_key());
}

void ExpectRejected(const json& jwk) {
  SCOPED_TRACE(jwk.dump());
  auto key = PublicKeyFromJwk(jwk);
  ASSERT_FALSE(key.ok());
  EXPECT_EQ(key.status().code(), StatusCode::kInvalidArgument) << key.status().ToString();
  EXPECT_FALSE(JwkThumbprint(jwk).ok());
}

TEST(JwkTest, RejectsMalformedEcJwks) {
  const json good = ValidEcJwk();
  ASSERT_TRUE(PublicKeyFromJwk(good).ok());
  for (const char* member : {"kty", "crv", "x", "y"}) {
    json j = good;
    j.erase(member);
    ExpectRejected(j);
  }
  json j = good;
  j["crv"] = "P-384";  // 32-byte coordinates on P-384
  ExpectRejected(j);
  j = good;
  j["crv"] = "secp256k1";
  ExpectRejected(j);
  j = good;
  j["x"] = good["x"].get<std::string>().substr(0, 42);  // 31 bytes
  ExpectRejected(j);
  j = good;
  j["x"] = "AA" + good["x"].get<std::string>();  // not canonical / wrong length
  ExpectRejected(j);
  j = good;
  j["x"] = good["x"].get<std::string>() + "=";  // padding forbidden
  ExpectRejected(j);
  j = good;
  j["x"] = 5;
  ExpectRejected(j);
  // Not on the curve: change y.
  j = good;
  auto y = *Base64UrlDecode(good["y"].get<std::string>());
  y.back() ^= 1;
  j["y"] = Base64UrlEncode(y);
  ExpectRejected(j);
  // Private member.
  j = good;
  j["d"] = good["x"];
  ExpectRejected(j);
  ExpectRejected(json::array());
  ExpectRejected(json("EC"));
  j = good;
  j["kty"] = "oct";
  ExpectRejected(j);
}

TEST(JwkTest, RejectsMalformedOkpJwks) {
  ExpectRejected({{"kty", "OKP"}, {"crv", "X25519"}, {"x", kRfc8037X}});
  ExpectRejected({{"kty", "OKP"}, {"crv", "Ed448"}, {"x", kRfc8037X}});
  ExpectRejected({{"kty", "OKP"}, {"x", kRfc8037X}});
  ExpectRejected({{"kty", "OKP"}, {"crv", "Ed25519"}});
  ExpectRejected(
      {{"kty", "OKP"}, {"crv", "Ed25519"}, {"x", "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHUR"}});
  ExpectRejected({{"kty", "OKP"}, {"crv", "Ed25519"}, {"x", std::string(kRfc8037X) + "AAAA"}});
}

TEST(JwkTest, RejectsMalformedRsaJwks) {
  const json good = {{"kty", "RSA"}, {"n", kRfc7638N}, {"e", "AQAB"}};
  ASSERT_TRUE(PublicKeyFromJwk(good).ok());
  for (const char* member : {"n", "e"}) {
    json j = good;
    j.erase(member);
    ExpectRejected(j);
  }
  for (const char* priv : {"d", "p", "q", "dp", "dq", "qi", "oth"}) {
    json j = good;
    j[priv] = "AQAB";
    ExpectRejected(j);
  }
  // Leading zero octet on n (RFC 7518 §2: minimal octets).
  auto n = *Base64UrlDecode(kRfc7638N);
  Bytes padded = {0};
  padded.insert(padded.end(), n.begin(), n.end());
  json j = good;
  j["n"] = Base64UrlEncode(padded);
  ExpectRejected(j);
  j = good;
  j["e"] = "AAEAAQ";  // 0x00010001 with a leading zero
  ExpectRejected(j);
  j = good;
  j["e"] = "AA";  // zero
  ExpectRejected(j);
  // e = 3: refused by the public-exponent policy (FIPS 186-5: 2^16 < e < 2^256).
  j = good;
  j["e"] = "Aw";
  ExpectRejected(j);
  // 1024-bit modulus: refused by the key-size policy.
  j = good;
  j["n"] = Base64UrlEncode(ByteView(n).subspan(0, 128));
  ExpectRejected(j);
}

}  // namespace
}  // namespace lockbox::crypto
