#include "crypto/hash.h"

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

using Bytes = std::vector<std::uint8_t>;

Bytes Hex(std::string_view hex) {
  auto decoded = HexDecode(hex);
  EXPECT_TRUE(decoded.ok()) << decoded.status().ToString();
  return decoded.ok() ? *decoded : Bytes{};
}

std::string HexOf(std::span<const std::uint8_t> b) { return HexEncode(b); }

// --- SHA-2 (FIPS 180-4 examples) ---

TEST(HashTest, Sha2KnownAnswers) {
  EXPECT_EQ(HexOf(Sha256(std::string_view(""))),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(HexOf(Sha256(std::string_view("abc"))),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(HexOf(Digest(HashAlgorithm::kSha256, AsBytes("abc"))),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(HexOf(Digest(HashAlgorithm::kSha384, AsBytes("abc"))),
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed"
            "8086072ba1e7cc2358baeca134c825a7");
  EXPECT_EQ(HexOf(Digest(HashAlgorithm::kSha512, AsBytes("abc"))),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
            "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
  EXPECT_EQ(
      HexOf(Sha256(std::string_view("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))),
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(HashTest, DigestSizes) {
  EXPECT_EQ(DigestSize(HashAlgorithm::kSha256), 32u);
  EXPECT_EQ(DigestSize(HashAlgorithm::kSha384), 48u);
  EXPECT_EQ(DigestSize(HashAlgorithm::kSha512), 64u);
  for (auto alg : {HashAlgorithm::kSha256, HashAlgorithm::kSha384, HashAlgorithm::kSha512}) {
    EXPECT_EQ(Digest(alg, {}).size(), DigestSize(alg));
  }
}

TEST(HashTest, Sha256HasherMatchesOneShotAndIsReusable) {
  const Bytes data = RandomVector(1000);
  Sha256Hasher hasher;
  // Arbitrary split points.
  hasher.Update(std::span(data).first(1));
  hasher.Update(std::span(data).subspan(1, 0));
  hasher.Update(std::span(data).subspan(1, 500));
  hasher.Update(std::span(data).subspan(501));
  EXPECT_EQ(hasher.Finish(), Sha256(data));
  // Reuse after Finish() starts from scratch.
  hasher.Update(std::string_view("ab"));
  hasher.Update(std::string_view("c"));
  EXPECT_EQ(HexOf(hasher.Finish()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(HexOf(hasher.Finish()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(HashTest, AuditChainShape) {
  // h_1 = SHA-256(h_0 || event) computed incrementally equals the one-shot digest.
  const auto h0 = Sha256(std::string_view("lockbox-audit-v1log"));
  Sha256Hasher hasher;
  hasher.Update(h0);
  hasher.Update(std::string_view(R"({"seq":1})"));
  Bytes joined(h0.begin(), h0.end());
  const std::string_view event = R"({"seq":1})";
  joined.insert(joined.end(), event.begin(), event.end());
  EXPECT_EQ(hasher.Finish(), Sha256(joined));
}

TEST(HashTest, ConstantTimeEquals) {
  const Bytes a = {1, 2, 3, 4};
  Bytes b = a;
  EXPECT_TRUE(ConstantTimeEquals(a, b));
  for (std::size_t i = 0; i < b.size(); ++i) {
    Bytes c = a;
    c[i] ^= 0x01;
    EXPECT_FALSE(ConstantTimeEquals(a, c));
  }
  EXPECT_FALSE(ConstantTimeEquals(a, std::span(a).first(3)));  // prefix, unequal lengths
  EXPECT_FALSE(ConstantTimeEquals(Bytes{}, a));
  EXPECT_TRUE(ConstantTimeEquals(Bytes{}, Bytes{}));
  EXPECT_TRUE(ConstantTimeEquals(std::string_view("token"), std::string_view("token")));
  EXPECT_FALSE(ConstantTimeEquals(std::string_view("token"), std::string_view("tokeN")));
  EXPECT_FALSE(ConstantTimeEquals(std::string_view("token"), std::string_view("token2")));
  EXPECT_TRUE(ConstantTimeEquals(std::string_view(""), std::string_view("")));
}

// --- HMAC: RFC 4231 test cases 1-7 ---

struct Rfc4231Case {
  int number;
  Bytes key;
  Bytes data;
  std::string sha256;
  std::string sha384;
  std::string sha512;
  std::size_t truncate_to = 0;  // bytes; 0 = full output
};

std::vector<Rfc4231Case> Rfc4231Cases() {
  Bytes key4;
  for (std::uint8_t i = 1; i <= 25; ++i) key4.push_back(i);
  const std::string_view data7 =
      "This is a test using a larger than block-size key and a larger than block-size data. The "
      "key needs to be hashed before being used by the HMAC algorithm.";
  const std::string_view data6 = "Test Using Larger Than Block-Size Key - Hash Key First";
  auto bytes = [](std::string_view s) { return Bytes(s.begin(), s.end()); };
  return {
      {1, Bytes(20, 0x0b), bytes("Hi There"),
       "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
       "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c"
       "faea9ea9076ede7f4af152e8b2fa9cb6",
       "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
       "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854"},
      {2, bytes("Jefe"), bytes("what do ya want for nothing?"),
       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
       "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e"
       "8e2240ca5e69e2c78b3239ecfab21649",
       "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
       "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"},
      {3, Bytes(20, 0xaa), Bytes(50, 0xdd),
       "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
       "88062608d3e6ad8a0aa2ace014c8a86f0aa635d947ac9febe83ef4e55966144b"
       "2a5ab39dc13814b94e3ab6e101a34f27",
       "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39"
       "bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb"},
      {4, key4, Bytes(50, 0xcd), "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
       "3e8a69b7783c25851933ab6290af6ca77a9981480850009cc5577c6e1f573b4e"
       "6801dd23c4a7d679ccf8a386c674cffb",
       "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3db"
       "a91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd"},
      {5, Bytes(20, 0x0c), bytes("Test With Truncation"), "a3b6167473100ee06e0c796c2955552b",
       "3abf34c3503b2a23a46efc619baef897", "415fad6271580a531d4179bc891d87a6", 16},
      {6, Bytes(131, 0xaa), bytes(data6),
       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
       "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c6"
       "0c2ef6ab4030fe8296248df163f44952",
       "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352"
       "6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598"},
      {7, Bytes(131, 0xaa), bytes(data7),
       "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
       "6617178e941f020d351e2f254e8fd32c602420feb0b8fb9adccebb82461e99c5"
       "a678cc31e799176d3860e6110c46523e",
       "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944"
       "b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58"},
  };
}

TEST(HmacTest, Rfc4231) {
  int run = 0;
  for (const Rfc4231Case& c : Rfc4231Cases()) {
    SCOPED_TRACE("RFC 4231 test case " + std::to_string(c.number));
    const std::pair<HashAlgorithm, const std::string*> expectations[] = {
        {HashAlgorithm::kSha256, &c.sha256},
        {HashAlgorithm::kSha384, &c.sha384},
        {HashAlgorithm::kSha512, &c.sha512}};
    for (const auto& [alg, expected] : expectations) {
      std::vector<std::uint8_t> mac = Hmac(alg, c.key, c.data);
      ASSERT_EQ(mac.size(), DigestSize(alg));
      if (c.truncate_to != 0) mac.resize(c.truncate_to);
      EXPECT_EQ(HexOf(mac), *expected);
      ++run;
    }
  }
  EXPECT_EQ(run, 21);
}

TEST(HmacTest, EmptyKeyAndData) {
  // RFC 2104 allows empty keys; cross-checked value of HMAC-SHA256("", "").
  EXPECT_EQ(HexOf(Hmac(HashAlgorithm::kSha256, {}, {})),
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

// --- HMAC: Wycheproof hmac_sha256_test.json ---

TEST(HmacWycheproof, HmacSha256) {
  const auto path = lockbox::testing::TestDataDir() / "wycheproof" / "hmac_sha256_test.json";
  std::ifstream in(path);
  ASSERT_TRUE(in.good()) << path;
  const nlohmann::json doc = nlohmann::json::parse(in);
  int total = 0, valid_ok = 0, invalid_rejected = 0, acceptable = 0, truncated = 0;
  for (const auto& group : doc.at("testGroups")) {
    // tagSize in bits; groups with tagSize < 256 compare the truncated prefix of the full MAC.
    const std::size_t tag_bytes = group.at("tagSize").get<std::size_t>() / 8;
    ASSERT_GT(tag_bytes, 0u);
    ASSERT_LE(tag_bytes, 32u);
    for (const auto& t : group.at("tests")) {
      SCOPED_TRACE("tcId " + std::to_string(t.at("tcId").get<int>()) + " (" +
                   t.at("comment").get<std::string>() + ")");
      ++total;
      if (tag_bytes < 32) ++truncated;
      const Bytes key = Hex(t.at("key").get<std::string>());
      const Bytes msg = Hex(t.at("msg").get<std::string>());
      const Bytes tag = Hex(t.at("tag").get<std::string>());
      const std::string result = t.at("result").get<std::string>();
      const Bytes mac = Hmac(HashAlgorithm::kSha256, key, msg);
      ASSERT_EQ(mac.size(), 32u);
      const bool match = ConstantTimeEquals(std::span(mac).first(tag_bytes), tag);
      if (result == "valid") {
        EXPECT_TRUE(match);
        if (match) ++valid_ok;
      } else if (result == "invalid") {
        EXPECT_FALSE(match);
        if (!match) ++invalid_rejected;
      } else if (result == "acceptable") {
        // Either verdict is allowed by Wycheproof; none occur in the current file.
        ++acceptable;
      } else {
        ADD_FAILURE() << "unknown result " << result;
      }
    }
  }
  EXPECT_EQ(total, doc.at("numberOfTests").get<int>());
  EXPECT_EQ(total, valid_ok + invalid_rejected + acceptable);
  EXPECT_GT(truncated, 0);
  std::cout << "[wycheproof] hmac_sha256_test.json: " << total << " cases run (" << valid_ok
            << " valid ok, " << invalid_rejected << " invalid rejected, " << acceptable
            << " acceptable; " << truncated << " with truncated tags), numberOfTests "
            << doc.at("numberOfTests").get<int>() << "\n";
}

}  // namespace
}  // namespace lockbox::crypto
