#include "crypto/jws.h"

#include <gtest/gtest.h>

#include <string>

#include "crypto/encoding.h"
#include "crypto/jwk.h"
#include "crypto/signature.h"

namespace lockbox::crypto {
namespace {

using nlohmann::json;

// RFC 7515 Appendix A.3 (ECDSA P-256 SHA-256): the public JWK and the compact JWS.
constexpr const char* kA3X = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
constexpr const char* kA3Y = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
constexpr const char* kA3Header = "eyJhbGciOiJFUzI1NiJ9";
constexpr const char* kA3Payload =
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVl"
    "fQ";
constexpr const char* kA3Signature =
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

// RFC 8037 Appendix A.4 (Ed25519).
constexpr const char* kEdX = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
constexpr const char* kEdJws =
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

std::string A3Jws() { return std::string(kA3Header) + "." + kA3Payload + "." + kA3Signature; }

PublicKey A3Key() {
  auto key = PublicKeyFromJwk(json{{"kty", "EC"}, {"crv", "P-256"}, {"x", kA3X}, {"y", kA3Y}});
  EXPECT_TRUE(key.ok()) << key.status().ToString();
  return *key;
}

Status ParseAndVerify(std::string_view jws, const PublicKey& key, SignatureAlgorithm alg) {
  auto parts = ParseJwsCompact(jws);
  if (!parts.ok()) return parts.status();
  return VerifyJws(*parts, key, alg);
}

TEST(JwsTest, Rfc7515A3Verifies) {
  auto parts = ParseJwsCompact(A3Jws());
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();
  EXPECT_EQ(parts->header, json({{"alg", "ES256"}}));
  EXPECT_EQ(parts->header_b64, kA3Header);
  EXPECT_EQ(parts->payload_b64, kA3Payload);
  EXPECT_EQ(parts->signing_input, std::string(kA3Header) + "." + kA3Payload);
  EXPECT_EQ(std::string(parts->payload.begin(), parts->payload.end()),
            "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}");
  EXPECT_EQ(parts->signature.size(), 64u);
  EXPECT_TRUE(VerifyJws(*parts, A3Key(), SignatureAlgorithm::kEcdsaP256Sha256).ok());
}

TEST(JwsTest, Rfc8037A4EdDsaVerifies) {
  auto key = PublicKeyFromJwk(json{{"kty", "OKP"}, {"crv", "Ed25519"}, {"x", kEdX}});
  ASSERT_TRUE(key.ok());
  EXPECT_TRUE(ParseAndVerify(kEdJws, *key, SignatureAlgorithm::kEd25519).ok());
  // The Ed25519 key never verifies under a pinned ES256.
  EXPECT_FALSE(ParseAndVerify(kEdJws, *key, SignatureAlgorithm::kEcdsaP256Sha256).ok());
}

TEST(JwsTest, TamperedPartsFail) {
  const PublicKey key = A3Key();
  // Header: same alg, different bytes ({"alg":"ES256","x":1}).
  const std::string other_header = Base64UrlEncode(AsBytes(R"({"alg":"ES256","x":1})"));
  EXPECT_EQ(ParseAndVerify(other_header + "." + kA3Payload + "." + kA3Signature, key,
                           SignatureAlgorithm::kEcdsaP256Sha256)
                .code(),
            StatusCode::kDataLoss);
  // Payload: one character changed.
  std::string payload = kA3Payload;
  payload[5] = payload[5] == 'A' ? 'B' : 'A';
  EXPECT_EQ(ParseAndVerify(std::string(kA3Header) + "." + payload + "." + kA3Signature, key,
                           SignatureAlgorithm::kEcdsaP256Sha256)
                .code(),
            StatusCode::kDataLoss);
  // Signature: one byte flipped.
  auto sig = *Base64UrlDecode(kA3Signature);
  sig[10] ^= 0x01;
  EXPECT_EQ(ParseAndVerify(std::string(kA3Header) + "." + kA3Payload + "." + Base64UrlEncode(sig),
                           key, SignatureAlgorithm::kEcdsaP256Sha256)
                .code(),
            StatusCode::kDataLoss);
  // Signature truncated.
  sig = *Base64UrlDecode(kA3Signature);
  sig.pop_back();
  EXPECT_FALSE(
      ParseAndVerify(std::string(kA3Header) + "." + kA3Payload + "." + Base64UrlEncode(sig), key,
                     SignatureAlgorithm::kEcdsaP256Sha256)
          .ok());
}

TEST(JwsTest, AlgNoneRefused) {
  const std::string none = Base64UrlEncode(AsBytes(R"({"alg":"none"})"));
  // Unsigned form (empty signature) is malformed; with a signature it is an alg mismatch.
  EXPECT_EQ(ParseJwsCompact(none + "." + kA3Payload + ".").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseAndVerify(none + "." + kA3Payload + "." + kA3Signature, A3Key(),
                           SignatureAlgorithm::kEcdsaP256Sha256)
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_FALSE(JwsAlgorithmFromName("none").ok());
  EXPECT_FALSE(JwsAlgorithmFromName("HS256").ok());
}

TEST(JwsTest, AlgMismatchRefused) {
  // ES256 header checked with an Ed25519 key pinned to EdDSA: refused on "alg".
  auto ed = PrivateKey::Generate(SignatureAlgorithm::kEd25519);
  ASSERT_TRUE(ed.ok());
  EXPECT_EQ(ParseAndVerify(A3Jws(), ed->public_key(), SignatureAlgorithm::kEd25519).code(),
            StatusCode::kInvalidArgument);
  // ES256 header, Ed25519 key, but pinned ES256: the key type does not match.
  EXPECT_EQ(ParseAndVerify(A3Jws(), ed->public_key(), SignatureAlgorithm::kEcdsaP256Sha256).code(),
            StatusCode::kInvalidArgument);
  // A validly signed EdDSA JWS whose header claims ES256.
  const std::string input =
      JwsSigningInput(json{{"alg", "ES256"}}, AsBytes(std::string_view("payload")));
  auto sig = ed->Sign(AsBytes(input));
  ASSERT_TRUE(sig.ok());
  EXPECT_FALSE(
      ParseAndVerify(JwsCompact(input, *sig), ed->public_key(), SignatureAlgorithm::kEd25519).ok());
  // Pinned ES384 on the A.3 token (header says ES256).
  EXPECT_FALSE(ParseAndVerify(A3Jws(), A3Key(), SignatureAlgorithm::kEcdsaP384Sha384).ok());
}

TEST(JwsTest, WrongKeyFails) {
  auto other = PrivateKey::Generate(SignatureAlgorithm::kEcdsaP256Sha256);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(
      ParseAndVerify(A3Jws(), other->public_key(), SignatureAlgorithm::kEcdsaP256Sha256).code(),
      StatusCode::kDataLoss);
}

TEST(JwsTest, SignRoundTrip) {
  for (SignatureAlgorithm alg :
       {SignatureAlgorithm::kEcdsaP256Sha256, SignatureAlgorithm::kEd25519}) {
    auto key = PrivateKey::Generate(alg);
    ASSERT_TRUE(key.ok());
    json header = {{"typ", "x"}, {"alg", std::string(JwsAlgorithmName(alg))}};
    const std::string input = JwsSigningInput(header, AsBytes(std::string_view("{\"a\":1}")));
    // The header is serialised canonically (sorted members).
    EXPECT_EQ(input.substr(0, input.find('.')),
              Base64UrlEncode(AsBytes("{\"alg\":\"" + std::string(JwsAlgorithmName(alg)) +
                                      "\",\"typ\":\"x\"}")));
    auto sig = key->Sign(AsBytes(input));
    ASSERT_TRUE(sig.ok());
    EXPECT_TRUE(ParseAndVerify(JwsCompact(input, *sig), key->public_key(), alg).ok());
    EXPECT_EQ(*JwsAlgorithmFromName(JwsAlgorithmName(alg)), alg);
  }
}

TEST(JwsTest, MalformedRefused) {
  const std::string h = kA3Header, p = kA3Payload, s = kA3Signature;
  for (const std::string& bad : {
           std::string(""),
           h + "." + p,
           h + "." + p + "." + s + ".",
           h + "." + p + "." + s + "." + s,
           "." + p + "." + s,
           h + "=." + p + "." + s,                               // padding
           h + "." + p + "." + s + "=",                          // padding
           h + "." + p + " ." + s,                               // whitespace
           h + "." + p + "." + s.substr(0, s.size() - 1) + "R",  // non-zero trailing bits
           h + "." + p + ".Dt+h",                                // standard base64 alphabet
           Base64UrlEncode(AsBytes(std::string_view("[1]"))) + "." + p + "." + s,
           Base64UrlEncode(AsBytes(std::string_view("{\"alg\":1}"))) + "." + p + "." + s,
           Base64UrlEncode(AsBytes(std::string_view("{\"typ\":\"JWT\"}"))) + "." + p + "." + s,
           Base64UrlEncode(AsBytes(std::string_view(R"({"alg":"ES256","alg":"ES256"})"))) + "." +
               p + "." + s,
           Base64UrlEncode(AsBytes(std::string_view(R"({"alg":"ES256","crit":["b64"]})"))) + "." +
               p + "." + s,
           Base64UrlEncode(AsBytes(std::string_view(R"({"alg":"ES256"} x)"))) + "." + p + "." + s,
       }) {
    EXPECT_EQ(ParseJwsCompact(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
  // An empty crit list is tolerated.
  const std::string empty_crit =
      Base64UrlEncode(AsBytes(std::string_view(R"({"alg":"ES256","crit":[]})")));
  EXPECT_TRUE(ParseJwsCompact(empty_crit + "." + p + "." + s).ok());
  // Oversized input.
  EXPECT_FALSE(ParseJwsCompact(std::string(kMaxJwsCompactSize + 1, 'a')).ok());
}

}  // namespace
}  // namespace lockbox::crypto
