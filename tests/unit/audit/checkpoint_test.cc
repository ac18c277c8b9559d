#include "audit/checkpoint.h"

#include <gtest/gtest.h>

#include "crypto/encoding.h"
#include "crypto/jws.h"
#include "tests/unit/audit/audit_test_util.h"

namespace lockbox::audit {
namespace {

using crypto::SignatureAlgorithm;
using nlohmann::json;
using testing::SoftwareSigner;

Checkpoint Sample() {
  Checkpoint c;
  c.log_id = "log-1";
  c.seq = 1000;
  c.hash = GenesisHash("log-1");
  c.time = "2026-11-27T21:01:25.000000001Z";
  c.kind = CheckpointKind::kPeriodic;
  return c;
}

TEST(CheckpointTest, KindNames) {
  EXPECT_EQ(CheckpointKindName(CheckpointKind::kStart), "start");
  EXPECT_EQ(CheckpointKindName(CheckpointKind::kPeriodic), "periodic");
  EXPECT_EQ(CheckpointKindName(CheckpointKind::kStop), "stop");
}

TEST(CheckpointTest, SignAndVerifyBothAlgorithms) {
  for (auto alg : {SignatureAlgorithm::kEcdsaP256Sha256, SignatureAlgorithm::kEd25519}) {
    SoftwareSigner signer(alg);
    for (auto kind : {CheckpointKind::kStart, CheckpointKind::kPeriodic, CheckpointKind::kStop}) {
      Checkpoint c = Sample();
      c.kind = kind;
      auto jws = SignCheckpoint(c, signer);
      ASSERT_TRUE(jws.ok()) << jws.status().ToString();
      auto parts = crypto::ParseJwsCompact(*jws);
      ASSERT_TRUE(parts.ok());
      EXPECT_EQ(parts->header, json({{"alg", signer.alg()},
                                     {"kid", "lockbox/audit/v1"},
                                     {"typ", "lockbox-checkpoint+jws"}}));
      EXPECT_EQ(std::string(parts->payload.begin(), parts->payload.end()),
                "{\"hash\":\"" + HashToHex(c.hash) + "\",\"kind\":\"" +
                    std::string(CheckpointKindName(kind)) +
                    "\",\"log_id\":\"log-1\",\"seq\":1000,\"time\":\"" + c.time + "\"}");
      auto back = VerifyCheckpoint(*jws, signer.public_key());
      ASSERT_TRUE(back.ok()) << back.status().ToString();
      EXPECT_EQ(back->log_id, c.log_id);
      EXPECT_EQ(back->seq, c.seq);
      EXPECT_EQ(back->hash, c.hash);
      EXPECT_EQ(back->time, c.time);
      EXPECT_EQ(back->kind, kind);
    }
  }
}

TEST(CheckpointTest, TamperingFails) {
  SoftwareSigner signer(SignatureAlgorithm::kEcdsaP256Sha256);
  const std::string jws = *SignCheckpoint(Sample(), signer);
  const auto parts = *crypto::ParseJwsCompact(jws);
  // Signature altered.
  auto sig = parts.signature;
  sig[3] ^= 0x40;
  EXPECT_EQ(VerifyCheckpoint(crypto::JwsCompact(parts.signing_input, sig), signer.public_key())
                .status()
                .code(),
            StatusCode::kDataLoss);
  // Payload altered (seq 1000 → 1001), signature kept.
  std::string payload(parts.payload.begin(), parts.payload.end());
  payload.replace(payload.find("1000"), 4, "1001");
  const std::string forged = parts.header_b64 + "." +
                             crypto::Base64UrlEncode(crypto::AsBytes(payload)) + "." +
                             crypto::Base64UrlEncode(parts.signature);
  EXPECT_EQ(VerifyCheckpoint(forged, signer.public_key()).status().code(), StatusCode::kDataLoss);
  // Other key.
  SoftwareSigner other(SignatureAlgorithm::kEcdsaP256Sha256);
  EXPECT_EQ(VerifyCheckpoint(jws, other.public_key()).status().code(), StatusCode::kDataLoss);
  // alg "none" header.
  const std::string none = crypto::Base64UrlEncode(
      crypto::AsBytes(std::string_view(R"({"alg":"none","typ":"lockbox-checkpoint+jws"})")));
  EXPECT_FALSE(VerifyCheckpoint(none + "." + parts.payload_b64 + "." + crypto::Base64UrlEncode(sig),
                                signer.public_key())
                   .ok());
}

TEST(CheckpointTest, AlgorithmPinnedByKey) {
  SoftwareSigner ed(SignatureAlgorithm::kEd25519);
  SoftwareSigner ec(SignatureAlgorithm::kEcdsaP256Sha256);
  // An EdDSA checkpoint never verifies under the P-256 key and vice versa.
  EXPECT_FALSE(VerifyCheckpoint(*SignCheckpoint(Sample(), ed), ec.public_key()).ok());
  EXPECT_FALSE(VerifyCheckpoint(*SignCheckpoint(Sample(), ec), ed.public_key()).ok());
  // P-384 and RSA audit keys are refused outright.
  auto p384 = crypto::PrivateKey::Generate(SignatureAlgorithm::kEcdsaP384Sha384);
  ASSERT_TRUE(p384.ok());
  EXPECT_EQ(VerifyCheckpoint(*SignCheckpoint(Sample(), ec), p384->public_key()).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(CheckpointTest, WrongTypRefused) {
  auto key = crypto::PrivateKey::Generate(SignatureAlgorithm::kEcdsaP256Sha256);
  ASSERT_TRUE(key.ok());
  const std::string payload = R"({"hash":")" + HashToHex(Sample().hash) +
                              R"(","kind":"stop","log_id":"l","seq":1,"time":"t"})";
  for (const json& header : {json{{"alg", "ES256"}}, json{{"alg", "ES256"}, {"typ", "JWT"}}}) {
    const std::string input = crypto::JwsSigningInput(header, crypto::AsBytes(payload));
    const std::string jws = crypto::JwsCompact(input, *key->Sign(crypto::AsBytes(input)));
    EXPECT_EQ(VerifyCheckpoint(jws, key->public_key()).status().code(),
              StatusCode::kInvalidArgument);
  }
}

TEST(CheckpointTest, SignedButMalformedPayloadRefused) {
  auto key = crypto::PrivateKey::Generate(SignatureAlgorithm::kEcdsaP256Sha256);
  ASSERT_TRUE(key.ok());
  const json header{{"alg", "ES256"}, {"typ", "lockbox-checkpoint+jws"}};
  const std::string hex = HashToHex(Sample().hash);
  for (const std::string& payload : {
           std::string(R"({"hash":")") + hex +
               R"(","kind":"weekly","log_id":"l","seq":1,"time":"t"})",
           std::string(R"({"hash":"00","kind":"stop","log_id":"l","seq":1,"time":"t"})"),
           std::string(R"({"kind":"stop","log_id":"l","seq":1,"time":"t"})"),
           std::string(R"({"hash":")") + hex +
               R"(", "kind":"stop","log_id":"l","seq":1,"time":"t"})",
           std::string(R"({"hash":")") + hex +
               R"(","kind":"stop","log_id":"l","seq":-1,"time":"t"})",
       }) {
    const std::string input = crypto::JwsSigningInput(header, crypto::AsBytes(payload));
    const std::string jws = crypto::JwsCompact(input, *key->Sign(crypto::AsBytes(input)));
    EXPECT_EQ(VerifyCheckpoint(jws, key->public_key()).status().code(),
              StatusCode::kInvalidArgument)
        << payload;
  }
}

TEST(CheckpointTest, CheckpointLine) {
  EXPECT_EQ(CheckpointLine("a.b.c"), R"({"checkpoint":"a.b.c"})");
}

}  // namespace
}  // namespace lockbox::audit
