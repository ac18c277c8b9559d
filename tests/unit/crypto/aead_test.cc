#include "crypto/aead.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "crypto/encoding.h"
#include "crypto/random.h"
#include "tests/support/temp_dir.h"

namespace lockbox::crypto {
namespace {

using SealFn = StatusOr<Bytes> (*)(ByteView, ByteView, ByteView, ByteView);
using OpenFn = StatusOr<SecureBuffer> (*)(ByteView, ByteView, ByteView, ByteView);

Bytes Hex(std::string_view hex) {
  auto decoded = HexDecode(hex);
  EXPECT_TRUE(decoded.ok()) << decoded.status().ToString();
  return decoded.ok() ? *decoded : Bytes{};
}

Bytes Concat(const Bytes& a, const Bytes& b) {
  Bytes out = a;
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

Bytes ToBytes(const SecureBuffer& b) { return Bytes(b.data(), b.data() + b.size()); }

nlohmann::json LoadWycheproof(const std::string& file) {
  const auto path = lockbox::testing::TestDataDir() / "wycheproof" / file;
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  return nlohmann::json::parse(in);
}

struct AeadPrimitive {
  const char* name;
  SealFn seal;
  OpenFn open;
  std::size_t key_size;
  std::size_t nonce_size;
};

const AeadPrimitive kAesGcm{"AES-256-GCM", &AesGcmSeal, &AesGcmOpen, 32, 12};
const AeadPrimitive kChaCha{"ChaCha20-Poly1305", &ChaCha20Poly1305Seal, &ChaCha20Poly1305Open, 32,
                            12};
const AeadPrimitive kXChaCha{"XChaCha20-Poly1305", &XChaCha20Poly1305Seal, &XChaCha20Poly1305Open,
                             32, 24};

struct WycheproofCounts {
  int total = 0;
  int valid_passed = 0;    // sealed to the exact ct||tag and opened to the exact msg
  int invalid_failed = 0;  // open refused with DATA_LOSS
  int refused = 0;         // parameters outside the API (key/nonce/tag size): INVALID_ARGUMENT
  int acceptable = 0;      // either outcome allowed; if opened, the plaintext must be msg
};

// One Wycheproof AEAD test case (aead_test_schema.json):
//  - key or nonce size the API does not support: Seal and Open must both refuse with
//    INVALID_ARGUMENT, whatever the expected result (the API never processes such inputs).
//  - tag size other than 128 bits: the API only produces and accepts full 16-byte tags, so opening
//    ct || truncated-tag must fail.
//  - "valid": Seal(msg) == ct || tag and Open(ct || tag) == msg.
//  - "invalid": Open(ct || tag) fails with DATA_LOSS, and Seal(msg) does not produce ct || tag.
//  - "acceptable": (none in the current files) Open may succeed or fail; success must yield msg.
void RunAeadCase(const AeadPrimitive& p, const nlohmann::json& t, int tag_bits,
                 WycheproofCounts* counts) {
  const Bytes key = Hex(t.at("key").get<std::string>());
  const Bytes iv = Hex(t.at("iv").get<std::string>());
  const Bytes aad = Hex(t.at("aad").get<std::string>());
  const Bytes msg = Hex(t.at("msg").get<std::string>());
  const Bytes ct_tag =
      Concat(Hex(t.at("ct").get<std::string>()), Hex(t.at("tag").get<std::string>()));
  const std::string result = t.at("result").get<std::string>();

  if (key.size() != p.key_size || iv.size() != p.nonce_size) {
    auto sealed = p.seal(key, iv, aad, msg);
    auto opened = p.open(key, iv, aad, ct_tag);
    const bool ok = sealed.status().code() == StatusCode::kInvalidArgument &&
                    opened.status().code() == StatusCode::kInvalidArgument;
    EXPECT_TRUE(ok) << "seal: " << sealed.status().ToString()
                    << " open: " << opened.status().ToString();
    if (ok) ++counts->refused;
    return;
  }
  if (tag_bits != 128) {
    auto opened = p.open(key, iv, aad, ct_tag);
    EXPECT_FALSE(opened.ok());
    if (!opened.ok()) ++counts->refused;
    return;
  }
  if (result == "valid") {
    auto sealed = p.seal(key, iv, aad, msg);
    ASSERT_TRUE(sealed.ok()) << sealed.status().ToString();
    EXPECT_EQ(*sealed, ct_tag);
    auto opened = p.open(key, iv, aad, ct_tag);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    EXPECT_EQ(ToBytes(*opened), msg);
    if (*sealed == ct_tag && ToBytes(*opened) == msg) ++counts->valid_passed;
  } else if (result == "invalid") {
    auto opened = p.open(key, iv, aad, ct_tag);
    ASSERT_FALSE(opened.ok());
    EXPECT_EQ(opened.status().code(), StatusCode::kDataLoss);
    EXPECT_EQ(opened.status().message(), "message authentication failed");
    auto sealed = p.seal(key, iv, aad, msg);
    ASSERT_TRUE(sealed.ok()) << sealed.status().ToString();
    EXPECT_NE(*sealed, ct_tag);
    if (opened.status().code() == StatusCode::kDataLoss && *sealed != ct_tag) {
      ++counts->invalid_failed;
    }
  } else if (result == "acceptable") {
    auto opened = p.open(key, iv, aad, ct_tag);
    if (opened.ok()) {
      EXPECT_EQ(ToBytes(*opened), msg);
    }
    ++counts->acceptable;
  } else {
    ADD_FAILURE() << "unknown result " << result;
  }
}

// Runs every test case of a Wycheproof AEAD file and checks the count against numberOfTests.
WycheproofCounts RunAeadWycheproof(const AeadPrimitive& p, const std::string& file) {
  WycheproofCounts counts;
  const nlohmann::json doc = LoadWycheproof(file);
  for (const auto& group : doc.at("testGroups")) {
    const int tag_bits = group.at("tagSize").get<int>();
    for (const auto& t : group.at("tests")) {
      SCOPED_TRACE(std::string(p.name) + " tcId " + std::to_string(t.at("tcId").get<int>()) + " (" +
                   t.at("comment").get<std::string>() + ")");
      ++counts.total;
      RunAeadCase(p, t, tag_bits, &counts);
    }
  }
  EXPECT_EQ(counts.total, doc.at("numberOfTests").get<int>());
  std::cout << "[wycheproof] " << file << ": " << counts.total << " cases run ("
            << counts.valid_passed << " valid ok, " << counts.invalid_failed
            << " invalid rejected, " << counts.refused << " refused by design, "
            << counts.acceptable << " acceptable), numberOfTests "
            << doc.at("numberOfTests").get<int>() << "\n";
  return counts;
}

TEST(AeadWycheproof, AesGcm) {
  const WycheproofCounts c = RunAeadWycheproof(kAesGcm, "aes_gcm_test.json");
  // The file holds 128- and 192-bit keys and non-96-bit IVs: those must all be refused, and the
  // 256-bit/96-bit cases must all be processed.
  EXPECT_GT(c.refused, 0);
  EXPECT_GT(c.valid_passed, 0);
  EXPECT_GT(c.invalid_failed, 0);
  EXPECT_EQ(c.total, c.valid_passed + c.invalid_failed + c.refused + c.acceptable);
}

TEST(AeadWycheproof, ChaCha20Poly1305) {
  const WycheproofCounts c = RunAeadWycheproof(kChaCha, "chacha20_poly1305_test.json");
  EXPECT_GT(c.valid_passed, 0);
  EXPECT_GT(c.invalid_failed, 0);
  EXPECT_EQ(c.total, c.valid_passed + c.invalid_failed + c.refused + c.acceptable);
}

TEST(AeadWycheproof, XChaCha20Poly1305) {
  const WycheproofCounts c = RunAeadWycheproof(kXChaCha, "xchacha20_poly1305_test.json");
  EXPECT_GT(c.valid_passed, 0);
  EXPECT_GT(c.invalid_failed, 0);
  EXPECT_EQ(c.total, c.valid_passed + c.invalid_failed + c.refused + c.acceptable);
}

// --- Negative tests on the explicit-nonce primitives ---

class AeadPrimitiveTest : public ::testing::TestWithParam<AeadPrimitive> {};

TEST_P(AeadPrimitiveTest, RoundTripIncludingEmpty) {
  const AeadPrimitive& p = GetParam();
  const Bytes key = RandomVector(p.key_size);
  const Bytes nonce = RandomVector(p.nonce_size);
  for (const std::size_t len : {0u, 1u, 15u, 16u, 17u, 1000u}) {
    SCOPED_TRACE(len);
    const Bytes pt = RandomVector(len);
    for (const Bytes& aad : {Bytes{}, Bytes{1, 2, 3}}) {
      auto sealed = p.seal(key, nonce, aad, pt);
      ASSERT_TRUE(sealed.ok()) << sealed.status().ToString();
      EXPECT_EQ(sealed->size(), len + 16);
      auto opened = p.open(key, nonce, aad, *sealed);
      ASSERT_TRUE(opened.ok()) << opened.status().ToString();
      EXPECT_EQ(ToBytes(*opened), pt);
    }
  }
}

TEST_P(AeadPrimitiveTest, EverySingleBitFlipFails) {
  const AeadPrimitive& p = GetParam();
  const Bytes key = RandomVector(p.key_size);
  const Bytes nonce = RandomVector(p.nonce_size);
  const Bytes aad = {'h', 'd', 'r'};
  const Bytes pt = RandomVector(24);
  auto sealed = p.seal(key, nonce, aad, pt);
  ASSERT_TRUE(sealed.ok());
  for (std::size_t bit = 0; bit < sealed->size() * 8; ++bit) {
    SCOPED_TRACE(bit);
    Bytes tampered = *sealed;
    tampered[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
    auto opened = p.open(key, nonce, aad, tampered);
    ASSERT_FALSE(opened.ok());
    EXPECT_EQ(opened.status().code(), StatusCode::kDataLoss);
    EXPECT_EQ(opened.status().message(), "message authentication failed");
  }
}

TEST_P(AeadPrimitiveTest, WrongAadKeyNonceAndTruncationFail) {
  const AeadPrimitive& p = GetParam();
  const Bytes key = RandomVector(p.key_size);
  const Bytes nonce = RandomVector(p.nonce_size);
  const Bytes aad = {'a', 'a', 'd'};
  const Bytes pt = RandomVector(40);
  auto sealed = p.seal(key, nonce, aad, pt);
  ASSERT_TRUE(sealed.ok());

  auto wrong_aad = p.open(key, nonce, Bytes{'a', 'a', 'e'}, *sealed);
  EXPECT_EQ(wrong_aad.status().code(), StatusCode::kDataLoss);
  auto missing_aad = p.open(key, nonce, Bytes{}, *sealed);
  EXPECT_EQ(missing_aad.status().code(), StatusCode::kDataLoss);

  Bytes other_key = key;
  other_key[0] ^= 1;
  auto wrong_key = p.open(other_key, nonce, aad, *sealed);
  EXPECT_EQ(wrong_key.status().code(), StatusCode::kDataLoss);

  Bytes other_nonce = nonce;
  other_nonce.back() ^= 0x80;
  auto wrong_nonce = p.open(key, other_nonce, aad, *sealed);
  EXPECT_EQ(wrong_nonce.status().code(), StatusCode::kDataLoss);

  for (std::size_t len = 0; len < sealed->size(); ++len) {
    SCOPED_TRACE(len);
    const Bytes truncated(sealed->begin(), sealed->begin() + static_cast<std::ptrdiff_t>(len));
    auto opened = p.open(key, nonce, aad, truncated);
    ASSERT_FALSE(opened.ok());
    EXPECT_EQ(opened.status().code(), StatusCode::kDataLoss);
  }
  Bytes extended = *sealed;
  extended.push_back(0);
  EXPECT_EQ(p.open(key, nonce, aad, extended).status().code(), StatusCode::kDataLoss);
}

TEST_P(AeadPrimitiveTest, BadKeyAndNonceSizesAreInvalidArgument) {
  const AeadPrimitive& p = GetParam();
  const Bytes pt = {1, 2, 3};
  for (const std::size_t key_size : {0u, 16u, 24u, 31u, 33u, 64u}) {
    SCOPED_TRACE(key_size);
    const Bytes key(key_size, 7);
    const Bytes nonce(p.nonce_size, 1);
    EXPECT_EQ(p.seal(key, nonce, {}, pt).status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(p.open(key, nonce, {}, Bytes(32, 0)).status().code(), StatusCode::kInvalidArgument);
  }
  for (const std::size_t nonce_size : {0u, 8u, 11u, 13u, 16u, 23u, 25u}) {
    if (nonce_size == p.nonce_size) continue;
    SCOPED_TRACE(nonce_size);
    const Bytes key(p.key_size, 7);
    const Bytes nonce(nonce_size, 1);
    EXPECT_EQ(p.seal(key, nonce, {}, pt).status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(p.open(key, nonce, {}, Bytes(32, 0)).status().code(), StatusCode::kInvalidArgument);
  }
}

INSTANTIATE_TEST_SUITE_P(AeadPrimitives, AeadPrimitiveTest,
                         ::testing::Values(kAesGcm, kChaCha, kXChaCha),
                         [](const ::testing::TestParamInfo<AeadPrimitive>& info) {
                           switch (info.index) {
                             case 0:
                               return std::string("AesGcm");
                             case 1:
                               return std::string("ChaCha20Poly1305");
                             default:
                               return std::string("XChaCha20Poly1305");
                           }
                         });

// --- Tink-style Aead objects ---

struct AeadFactory {
  const char* name;
  StatusOr<std::unique_ptr<Aead>> (*make)(ByteView);
  OpenFn open;
  std::size_t nonce_size;
};

class AeadObjectTest : public ::testing::TestWithParam<AeadFactory> {};

TEST_P(AeadObjectTest, RoundTripAndLayout) {
  const AeadFactory& f = GetParam();
  const Bytes key = RandomVector(32);
  auto aead = f.make(key);
  ASSERT_TRUE(aead.ok()) << aead.status().ToString();
  const Bytes pt = {'s', 'e', 'c', 'r', 'e', 't'};
  const Bytes aad = {'c', 't', 'x'};
  auto c1 = (*aead)->Encrypt(pt, aad);
  auto c2 = (*aead)->Encrypt(pt, aad);
  ASSERT_TRUE(c1.ok() && c2.ok());
  EXPECT_EQ(c1->size(), f.nonce_size + pt.size() + 16);
  EXPECT_NE(*c1, *c2);  // fresh random nonce each time
  auto d = (*aead)->Decrypt(*c1, aad);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->view(), "secret");
  // Layout is nonce || ct || tag: the explicit-nonce primitive opens it.
  const ByteView whole(*c1);
  auto opened = f.open(key, whole.first(f.nonce_size), aad, whole.subspan(f.nonce_size));
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(ToBytes(*opened), pt);
  // Empty plaintext.
  auto empty = (*aead)->Encrypt({}, {});
  ASSERT_TRUE(empty.ok());
  auto empty_pt = (*aead)->Decrypt(*empty, {});
  ASSERT_TRUE(empty_pt.ok());
  EXPECT_TRUE(empty_pt->empty());
}

TEST_P(AeadObjectTest, TamperingAndWrongInputsFail) {
  const AeadFactory& f = GetParam();
  const Bytes key = RandomVector(32);
  auto aead = f.make(key);
  ASSERT_TRUE(aead.ok());
  const Bytes pt = RandomVector(20);
  const Bytes aad = {'x'};
  auto ct = (*aead)->Encrypt(pt, aad);
  ASSERT_TRUE(ct.ok());
  for (std::size_t bit = 0; bit < ct->size() * 8; ++bit) {
    SCOPED_TRACE(bit);
    Bytes tampered = *ct;
    tampered[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
    auto d = (*aead)->Decrypt(tampered, aad);
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.status().code(), StatusCode::kDataLoss);
  }
  EXPECT_EQ((*aead)->Decrypt(*ct, Bytes{'y'}).status().code(), StatusCode::kDataLoss);
  for (std::size_t len = 0; len < ct->size(); ++len) {
    SCOPED_TRACE(len);
    const Bytes truncated(ct->begin(), ct->begin() + static_cast<std::ptrdiff_t>(len));
    EXPECT_EQ((*aead)->Decrypt(truncated, aad).status().code(), StatusCode::kDataLoss);
  }
  Bytes other_key = key;
  other_key[31] ^= 1;
  auto other = f.make(other_key);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ((*other)->Decrypt(*ct, aad).status().code(), StatusCode::kDataLoss);
}

TEST_P(AeadObjectTest, RejectsBadKeySize) {
  const AeadFactory& f = GetParam();
  for (const std::size_t size : {0u, 16u, 24u, 31u, 33u}) {
    SCOPED_TRACE(size);
    EXPECT_EQ(f.make(Bytes(size, 1)).status().code(), StatusCode::kInvalidArgument);
  }
}

INSTANTIATE_TEST_SUITE_P(AeadObjects, AeadObjectTest,
                         ::testing::Values(AeadFactory{"Aes256Gcm", &NewAes256Gcm, &AesGcmOpen, 12},
                                           AeadFactory{"XChaCha20Poly1305", &NewXChaCha20Poly1305,
                                                       &XChaCha20Poly1305Open, 24}),
                         [](const ::testing::TestParamInfo<AeadFactory>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace lockbox::crypto
