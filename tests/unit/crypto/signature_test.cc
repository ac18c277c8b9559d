#include "crypto/signature.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "crypto/encoding.h"
#include "crypto/hash.h"
#include "crypto/jwk.h"
#include "tests/support/temp_dir.h"

namespace lockbox::crypto {
namespace {

using nlohmann::json;

json LoadWycheproof(const std::string& name) {
  const auto path = lockbox::testing::TestDataDir() / "wycheproof" / name;
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

Bytes Hex(const json& v) {
  auto out = HexDecode(v.get<std::string>());
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  return out.ok() ? *out : Bytes();
}

// Runs every test of a Wycheproof signature-verification file. The group's key is loaded from
// `publicKeyDer`; the PEM and JWK forms (when present) are loaded too and must give the same key.
// Expected outcome: "valid" verifies; "invalid" fails (DATA_LOSS, or INVALID_ARGUMENT only
// for a key we refuse to load); the four files used here contain no "acceptable" cases, and
// if one appears we expect it to be rejected (strict policy: BER signatures, odd encodings).
struct Counts {
  int run = 0;
  int valid = 0;
  int invalid = 0;
  int acceptable = 0;
};

Counts RunWycheproof(const std::string& file, SignatureAlgorithm alg, EcdsaSignatureFormat fmt) {
  const json doc = LoadWycheproof(file);
  Counts counts;
  for (const auto& group : doc.at("testGroups")) {
    const Bytes der = Hex(group.at("publicKeyDer"));
    auto key = PublicKey::FromDer(der);
    EXPECT_TRUE(key.ok()) << key.status().ToString();
    if (!key.ok()) continue;
    if (group.contains("publicKeyPem")) {
      auto pem_key = PublicKey::FromPem(group.at("publicKeyPem").get<std::string>());
      EXPECT_TRUE(pem_key.ok()) << pem_key.status().ToString();
      if (pem_key.ok()) {
        EXPECT_EQ(pem_key->ToDer(), der);
      }
    }
    if (group.contains("publicKeyJwk")) {
      auto jwk_key = PublicKeyFromJwk(group.at("publicKeyJwk"));
      EXPECT_TRUE(jwk_key.ok()) << jwk_key.status().ToString();
      if (jwk_key.ok()) {
        EXPECT_EQ(jwk_key->ToDer(), der);
      }
    }
    for (const auto& test : group.at("tests")) {
      const int tc_id = test.at("tcId").get<int>();
      SCOPED_TRACE("tcId " + std::to_string(tc_id) + ": " + test.value("comment", ""));
      const Bytes msg = Hex(test.at("msg"));
      const Bytes sig = Hex(test.at("sig"));
      const std::string result = test.at("result").get<std::string>();
      const Status st = key->Verify(alg, msg, sig, fmt);
      ++counts.run;
      if (result == "valid") {
        ++counts.valid;
        EXPECT_TRUE(st.ok()) << st.ToString();
      } else if (result == "invalid") {
        ++counts.invalid;
        EXPECT_FALSE(st.ok());
        EXPECT_EQ(st.code(), StatusCode::kDataLoss) << st.ToString();
      } else {
        ++counts.acceptable;
        EXPECT_FALSE(st.ok()) << "acceptable case expected to be rejected by strict policy";
      }
    }
  }
  EXPECT_EQ(counts.run, doc.at("numberOfTests").get<int>());
  return counts;
}

TEST(SignatureWycheproofTest, Ed25519) {
  const Counts c = RunWycheproof("ed25519_test.json", SignatureAlgorithm::kEd25519,
                                 EcdsaSignatureFormat::kRawRS);
  EXPECT_EQ(c.run, 150);
  EXPECT_GT(c.valid, 0);
  EXPECT_GT(c.invalid, 0);
}

TEST(SignatureWycheproofTest, EcdsaP256Sha256Der) {
  const Counts c = RunWycheproof("ecdsa_secp256r1_sha256_test.json",
                                 SignatureAlgorithm::kEcdsaP256Sha256, EcdsaSignatureFormat::kDer);
  EXPECT_EQ(c.run, 471);
  EXPECT_GT(c.valid, 0);
  EXPECT_GT(c.invalid, 0);
}

TEST(SignatureWycheproofTest, EcdsaP256Sha256P1363) {
  const Counts c =
      RunWycheproof("ecdsa_secp256r1_sha256_p1363_test.json", SignatureAlgorithm::kEcdsaP256Sha256,
                    EcdsaSignatureFormat::kRawRS);
  EXPECT_EQ(c.run, 252);
  EXPECT_GT(c.valid, 0);
  EXPECT_GT(c.invalid, 0);
}

TEST(SignatureWycheproofTest, RsaPss2048Sha256Mgf1Salt32) {
  const json doc = LoadWycheproof("rsa_pss_2048_sha256_mgf1_32_test.json");
  for (const auto& group : doc.at("testGroups")) {
    // The file's parameters are exactly what kRsaPssSha256 implements.
    ASSERT_EQ(group.at("sha"), "SHA-256");
    ASSERT_EQ(group.at("mgf"), "MGF1");
    ASSERT_EQ(group.at("mgfSha"), "SHA-256");
    ASSERT_EQ(group.at("sLen"), 32);
  }
  const Counts c = RunWycheproof("rsa_pss_2048_sha256_mgf1_32_test.json",
                                 SignatureAlgorithm::kRsaPssSha256, EcdsaSignatureFormat::kRawRS);
  EXPECT_EQ(c.run, 108);
  EXPECT_GT(c.valid, 0);
  EXPECT_GT(c.invalid, 0);
}

// --- round trips and negative tests with generated keys ---

constexpr SignatureAlgorithm kAllAlgorithms[] = {
    SignatureAlgorithm::kEd25519,         SignatureAlgorithm::kEcdsaP256Sha256,
    SignatureAlgorithm::kEcdsaP384Sha384, SignatureAlgorithm::kRsaPssSha256,
    SignatureAlgorithm::kRsaPssSha512,    SignatureAlgorithm::kRsaPkcs1Sha256,
};

bool IsEcdsa(SignatureAlgorithm alg) {
  return alg == SignatureAlgorithm::kEcdsaP256Sha256 || alg == SignatureAlgorithm::kEcdsaP384Sha384;
}

class SignatureRoundTripTest : public ::testing::TestWithParam<SignatureAlgorithm> {};

TEST_P(SignatureRoundTripTest, SignVerifyTamperWrongKey) {
  const SignatureAlgorithm alg = GetParam();
  auto key = PrivateKey::Generate(alg, 2048);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(key->algorithm(), alg);
  EXPECT_TRUE(KeyTypeMatches(key->public_key().type(), alg));
  const std::string text = "lockbox signature test message";
  const ByteView msg = AsBytes(text);

  const std::vector<EcdsaSignatureFormat> formats =
      IsEcdsa(alg) ? std::vector{EcdsaSignatureFormat::kRawRS, EcdsaSignatureFormat::kDer}
                   : std::vector{EcdsaSignatureFormat::kRawRS};
  for (const auto fmt : formats) {
    SCOPED_TRACE(fmt == EcdsaSignatureFormat::kDer ? "DER" : "raw");
    auto sig = key->Sign(msg, fmt);
    ASSERT_TRUE(sig.ok()) << sig.status().ToString();
    if (alg == SignatureAlgorithm::kEcdsaP256Sha256 && fmt == EcdsaSignatureFormat::kRawRS) {
      EXPECT_EQ(sig->size(), 64u);
    }
    if (alg == SignatureAlgorithm::kEcdsaP384Sha384 && fmt == EcdsaSignatureFormat::kRawRS) {
      EXPECT_EQ(sig->size(), 96u);
    }
    EXPECT_TRUE(key->public_key().Verify(alg, msg, *sig, fmt).ok());

    // Empty message round trip.
    auto empty_sig = key->Sign({}, fmt);
    ASSERT_TRUE(empty_sig.ok());
    EXPECT_TRUE(key->public_key().Verify(alg, {}, *empty_sig, fmt).ok());

    // Tampered message.
    std::string other = text;
    other[0] ^= 1;
    Status st = key->public_key().Verify(alg, AsBytes(other), *sig, fmt);
    EXPECT_EQ(st.code(), StatusCode::kDataLoss) << st.ToString();

    // Tampered signature: flip a bit in the middle and at the end; truncate; extend.
    for (std::size_t pos : {sig->size() / 2, sig->size() - 1}) {
      Bytes bad = *sig;
      bad[pos] ^= 0x01;
      EXPECT_EQ(key->public_key().Verify(alg, msg, bad, fmt).code(), StatusCode::kDataLoss);
    }
    Bytes truncated(sig->begin(), sig->end() - 1);
    EXPECT_EQ(key->public_key().Verify(alg, msg, truncated, fmt).code(), StatusCode::kDataLoss);
    Bytes extended = *sig;
    extended.push_back(0);
    EXPECT_EQ(key->public_key().Verify(alg, msg, extended, fmt).code(), StatusCode::kDataLoss);
    EXPECT_EQ(key->public_key().Verify(alg, msg, {}, fmt).code(), StatusCode::kDataLoss);

    // Wrong key of the same type.
    auto other_key = PrivateKey::Generate(alg, 2048);
    ASSERT_TRUE(other_key.ok());
    EXPECT_EQ(other_key->public_key().Verify(alg, msg, *sig, fmt).code(), StatusCode::kDataLoss);
  }

  // Public key PEM and DER round trips keep verifying.
  auto sig = key->Sign(msg);
  ASSERT_TRUE(sig.ok());
  auto from_pem = PublicKey::FromPem(key->public_key().ToPem());
  ASSERT_TRUE(from_pem.ok()) << from_pem.status().ToString();
  EXPECT_TRUE(from_pem->Verify(alg, msg, *sig).ok());
  auto from_der = PublicKey::FromDer(key->public_key().ToDer());
  ASSERT_TRUE(from_der.ok());
  EXPECT_TRUE(from_der->Verify(alg, msg, *sig).ok());

  // Private key PEM round trip signs verifiable signatures.
  auto pem = key->ToPem();
  ASSERT_TRUE(pem.ok());
  EXPECT_NE(pem->view().find("BEGIN PRIVATE KEY"), std::string_view::npos);
  auto reloaded = PrivateKey::FromPem(pem->view(), alg);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status().ToString();
  auto sig2 = reloaded->Sign(msg);
  ASSERT_TRUE(sig2.ok());
  EXPECT_TRUE(key->public_key().Verify(alg, msg, *sig2).ok());
}

// Algorithm pinning: a signature is only checked under the algorithm the key type allows.
TEST_P(SignatureRoundTripTest, AlgorithmPinning) {
  const SignatureAlgorithm alg = GetParam();
  auto key = PrivateKey::Generate(alg, 2048);
  ASSERT_TRUE(key.ok());
  const ByteView msg = AsBytes("pinned");
  auto sig = key->Sign(msg);
  ASSERT_TRUE(sig.ok());
  for (const SignatureAlgorithm other : kAllAlgorithms) {
    if (other == alg) continue;
    SCOPED_TRACE(std::string(SignatureAlgorithmName(other)));
    const Status st = key->public_key().Verify(other, msg, *sig);
    EXPECT_FALSE(st.ok());
    if (KeyTypeMatches(key->public_key().type(), other)) {
      // Same RSA key, different padding/hash: the signature must not verify.
      EXPECT_EQ(st.code(), StatusCode::kDataLoss) << st.ToString();
    } else {
      EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
    }
  }
  // A private key loaded from PEM is bound to a compatible algorithm.
  auto pem = key->ToPem();
  ASSERT_TRUE(pem.ok());
  for (const SignatureAlgorithm other : kAllAlgorithms) {
    auto loaded = PrivateKey::FromPem(pem->view(), other);
    EXPECT_EQ(loaded.ok(), KeyTypeMatches(key->public_key().type(), other))
        << SignatureAlgorithmName(other);
  }
}

INSTANTIATE_TEST_SUITE_P(SignatureAllAlgorithms, SignatureRoundTripTest,
                         ::testing::ValuesIn(kAllAlgorithms),
                         [](const ::testing::TestParamInfo<SignatureAlgorithm>& info) {
                           std::string name(SignatureAlgorithmName(info.param));
                           for (char& c : name) {
                             if (c == '-' || c == '_') c = 'X';
                           }
                           return name;
                         });

TEST(SignatureTest, KeyTypesAndSizes) {
  auto ed = PrivateKey::Generate(SignatureAlgorithm::kEd25519);
  ASSERT_TRUE(ed.ok());
  EXPECT_EQ(ed->public_key().type(), KeyType::kEd25519);
  auto p384 = PrivateKey::Generate(SignatureAlgorithm::kEcdsaP384Sha384);
  ASSERT_TRUE(p384.ok());
  EXPECT_EQ(p384->public_key().type(), KeyType::kEcP384);
  EXPECT_EQ(p384->public_key().bits(), 384);
  auto rsa = PrivateKey::Generate(SignatureAlgorithm::kRsaPssSha512, 2048);
  ASSERT_TRUE(rsa.ok());
  EXPECT_EQ(rsa->public_key().type(), KeyType::kRsa);
  EXPECT_EQ(rsa->public_key().bits(), 2048);
  EXPECT_FALSE(PrivateKey::Generate(SignatureAlgorithm::kRsaPkcs1Sha256, 1024).ok());
}

TEST(SignatureTest, RefusesShortRsaKeysAndUnsupportedCurves) {
  // 1024-bit RSA SubjectPublicKeyInfo (generated with openssl; public data only).
  const char* rsa1024 =
      "-----BEGIN PUBLIC KEY-----\n"
      "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC4CY0HEhkSr5ZXFvdxcIEzBWt2\n"
      "zSs5MPhAwTV/QTB18oqvQnGMsBZDE3NijGrkulmKGYP3BJbph0V5A14FWz7pQyzM\n"
      "moiis9AGQ0VqNn8bVbJ0L71UDs4AlW0QZCEg2zKlPqMyAIojjGjVmjTuiaY4qP34\n"
      "IwztAJk6o+ZK8tzOBQIDAQAB\n"
      "-----END PUBLIC KEY-----\n";
  auto rsa = PublicKey::FromPem(rsa1024);
  ASSERT_FALSE(rsa.ok());
  EXPECT_EQ(rsa.status().code(), StatusCode::kInvalidArgument);
  // secp256k1 key (SPKI DER): valid point on an unsupported curve.
  auto k1 = HexDecode(
      "3056301006072a8648ce3d020106052b8104000a03420004"
      "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
      "483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8");
  ASSERT_TRUE(k1.ok());
  auto k1_key = PublicKey::FromDer(*k1);
  ASSERT_FALSE(k1_key.ok());
  EXPECT_EQ(k1_key.status().code(), StatusCode::kInvalidArgument);
}

TEST(SignatureTest, RejectsMalformedKeys) {
  EXPECT_FALSE(PublicKey::FromPem("").ok());
  EXPECT_FALSE(
      PublicKey::FromPem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").ok());
  EXPECT_FALSE(PublicKey::FromDer(Bytes{}).ok());
  EXPECT_FALSE(PublicKey::FromDer(Bytes{0x30, 0x00}).ok());

  auto key = PrivateKey::Generate(SignatureAlgorithm::kEcdsaP256Sha256);
  ASSERT_TRUE(key.ok());
  Bytes der = key->public_key().ToDer();
  ASSERT_TRUE(PublicKey::FromDer(der).ok());
  Bytes trailing = der;
  trailing.push_back(0);
  EXPECT_FALSE(PublicKey::FromDer(trailing).ok());
  // Point moved off the curve: change the last byte of y.
  Bytes off_curve = der;
  off_curve.back() ^= 0x01;
  EXPECT_FALSE(PublicKey::FromDer(off_curve).ok());
  // Two PEM blocks are refused.
  const std::string pem = key->public_key().ToPem();
  EXPECT_FALSE(PublicKey::FromPem(pem + pem).ok());
  // A private key is not a public key, and garbage is not a private key.
  auto priv_pem = key->ToPem();
  ASSERT_TRUE(priv_pem.ok());
  EXPECT_FALSE(PublicKey::FromPem(priv_pem->view()).ok());
  EXPECT_FALSE(PrivateKey::FromPem(pem, SignatureAlgorithm::kEcdsaP256Sha256).ok());
}

TEST(SignatureTest, EcdsaDerMustBeCanonical) {
  auto key = PrivateKey::Generate(SignatureAlgorithm::kEcdsaP256Sha256);
  ASSERT_TRUE(key.ok());
  const ByteView msg = AsBytes("der");
  auto der = key->Sign(msg, EcdsaSignatureFormat::kDer);
  ASSERT_TRUE(der.ok());
  ASSERT_TRUE(
      key->public_key()
          .Verify(SignatureAlgorithm::kEcdsaP256Sha256, msg, *der, EcdsaSignatureFormat::kDer)
          .ok());
  // Long-form length for the SEQUENCE (BER, not DER).
  ASSERT_LT((*der)[1], 0x80);
  Bytes ber = {0x30, 0x81, (*der)[1]};
  ber.insert(ber.end(), der->begin() + 2, der->end());
  EXPECT_EQ(key->public_key()
                .Verify(SignatureAlgorithm::kEcdsaP256Sha256, msg, ber, EcdsaSignatureFormat::kDer)
                .code(),
            StatusCode::kDataLoss);
  // A raw signature given as DER and vice versa fails.
  auto raw = key->Sign(msg, EcdsaSignatureFormat::kRawRS);
  ASSERT_TRUE(raw.ok());
  EXPECT_FALSE(
      key->public_key()
          .Verify(SignatureAlgorithm::kEcdsaP256Sha256, msg, *raw, EcdsaSignatureFormat::kDer)
          .ok());
  EXPECT_FALSE(
      key->public_key()
          .Verify(SignatureAlgorithm::kEcdsaP256Sha256, msg, *der, EcdsaSignatureFormat::kRawRS)
          .ok());
}

// VerifyEcdsaDigest checks a signature over a digest as given: an ES256/ES384 signature verifies
// over the message's SHA-256/SHA-384, not over any other digest, with the same strict encodings.
TEST(SignatureTest, EcdsaDigestVerification) {
  for (auto [alg, hash] :
       {std::pair{SignatureAlgorithm::kEcdsaP256Sha256, HashAlgorithm::kSha256},
        std::pair{SignatureAlgorithm::kEcdsaP384Sha384, HashAlgorithm::kSha384}}) {
    auto key = PrivateKey::Generate(alg);
    ASSERT_TRUE(key.ok());
    const ByteView msg = AsBytes("digest me");
    const auto digest = Digest(hash, msg);
    auto raw = key->Sign(msg, EcdsaSignatureFormat::kRawRS);
    auto der = key->Sign(msg, EcdsaSignatureFormat::kDer);
    ASSERT_TRUE(raw.ok() && der.ok());
    const PublicKey& pub = key->public_key();
    EXPECT_TRUE(pub.VerifyEcdsaDigest(digest, *raw).ok());
    EXPECT_TRUE(pub.VerifyEcdsaDigest(digest, *der, EcdsaSignatureFormat::kDer).ok());
    EXPECT_EQ(pub.VerifyEcdsaDigest(Digest(HashAlgorithm::kSha512, msg), *raw).code(),
              StatusCode::kDataLoss);
    Bytes tampered = *raw;
    tampered[5] ^= 1;
    EXPECT_EQ(pub.VerifyEcdsaDigest(digest, tampered).code(), StatusCode::kDataLoss);
    EXPECT_EQ(pub.VerifyEcdsaDigest(digest, *raw, EcdsaSignatureFormat::kDer).code(),
              StatusCode::kDataLoss);
    EXPECT_EQ(pub.VerifyEcdsaDigest({}, *raw).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(pub.VerifyEcdsaDigest(Bytes(65, 1), *raw).code(), StatusCode::kInvalidArgument);
  }
  auto ed = PrivateKey::Generate(SignatureAlgorithm::kEd25519);
  ASSERT_TRUE(ed.ok());
  EXPECT_EQ(ed->public_key().VerifyEcdsaDigest(Bytes(32, 1), Bytes(64, 1)).code(),
            StatusCode::kInvalidArgument);
}

TEST(SignatureTest, PublicKeyCopiesShareTheKey) {
  auto key = PrivateKey::Generate(SignatureAlgorithm::kEd25519);
  ASSERT_TRUE(key.ok());
  PublicKey copy = key->public_key();
  auto sig = key->Sign(AsBytes("x"));
  ASSERT_TRUE(sig.ok());
  PrivateKey moved = std::move(*key);
  EXPECT_TRUE(copy.Verify(SignatureAlgorithm::kEd25519, AsBytes("x"), *sig).ok());
  EXPECT_EQ(copy.ToDer(), moved.public_key().ToDer());
}

}  // namespace
}  // namespace lockbox::crypto
