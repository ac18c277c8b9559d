#include "server/keyring/keyring.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <thread>

#include "audit/event.h"
#include "audit/verifier.h"
#include "crypto/encoding.h"
#include "crypto/signature.h"
#include "server/audit_log/audit_log.h"
#include "server/keyring/envelope.h"
#include "tests/support/flaky_store.h"
#include "tests/support/softhsm_token.h"
#include "tests/unit/keyring/hsm_decorators.h"

namespace lockbox::keyring {
namespace {

using crypto::AsBytes;
using std::chrono::hours;
using std::chrono::seconds;

std::string Str(const crypto::SecureBuffer& b) { return std::string(b.view()); }

class KeyringTest : public ::testing::Test {
 protected:
  void SetUp() override {
    token_ = std::make_unique<testing::SoftHsmToken>();
    options_.clock = [this] { return now_; };
    Open();
  }

  void Open() {
    const hsm::HsmConfig config = token_->hsm_config();
    auto h = hsm::Hsm::Open(config);
    ASSERT_TRUE(h.ok()) << h.status().ToString();
    real_hsm_ = std::move(*h);
    hsm_ = std::make_unique<testing::CountingHsm>(*real_hsm_);
    store::SqliteOptions store_options;
    store_options.path = token_->dir().file("lockbox.db");
    auto s = store::OpenSqliteStore(store_options);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    real_store_ = std::move(*s);
    store_ = std::make_unique<testing::FlakyStore>(*real_store_);
    audit_log::AuditLogOptions audit_options;
    audit_options.public_key_dir = token_->dir().path();
    auto a = audit_log::AuditLog::Open(*store_, *real_hsm_, audit_options);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    audit_ = std::move(*a);
    auto k = Keyring::Open(*hsm_, *store_, *audit_, options_);
    ASSERT_TRUE(k.ok()) << k.status().ToString();
    keyring_ = std::move(*k);
  }

  // A process restart: every object is dropped and rebuilt from the token and the database.
  void Restart() {
    keyring_.reset();
    audit_.reset();
    store_.reset();
    real_store_.reset();
    hsm_.reset();
    real_hsm_.reset();
    Open();
  }

  std::string MustEncrypt(std::string_view name, std::string_view plaintext,
                          std::string_view context = "") {
    auto ct = keyring_->Encrypt(name, AsBytes(plaintext), AsBytes(context));
    EXPECT_TRUE(ct.ok()) << ct.status().ToString();
    return ct.ok() ? *ct : std::string();
  }

  StatusOr<std::string> DecryptText(std::string_view name, std::string_view ct,
                                    std::string_view context = "") {
    auto pt = keyring_->Decrypt(name, ct, AsBytes(context));
    if (!pt.ok()) return pt.status();
    return Str(*pt);
  }

  TimePoint now_ = TimePoint(seconds(1'800'000'000));
  KeyringOptions options_;
  std::unique_ptr<testing::SoftHsmToken> token_;
  std::unique_ptr<hsm::Hsm> real_hsm_;
  std::unique_ptr<testing::CountingHsm> hsm_;
  std::unique_ptr<store::Store> real_store_;
  std::unique_ptr<testing::FlakyStore> store_;
  std::unique_ptr<audit_log::AuditLog> audit_;
  std::unique_ptr<Keyring> keyring_;

  // The audit events recorded so far, parsed, in seq order.
  std::vector<audit::Event> AuditEvents() {
    std::vector<audit::Event> events;
    auto rows =
        store_->Query("SELECT body FROM audit_records WHERE kind = 'event' ORDER BY seq", {});
    EXPECT_TRUE(rows.ok());
    for (const auto& row : *rows) {
      auto event = audit::ParseCanonicalEvent(*store::GetText(row, 0));
      EXPECT_TRUE(event.ok());
      if (event.ok()) events.push_back(std::move(*event));
    }
    return events;
  }
};

TEST_F(KeyringTest, EncryptDecryptRoundTripForManySizes) {
  ASSERT_TRUE(keyring_->CreateKey("app").ok());
  for (std::size_t size : {0, 1, 15, 16, 17, 1024, 65536}) {
    SCOPED_TRACE(size);
    const std::string plaintext(size, static_cast<char>('a' + size % 26));
    const std::string ct = MustEncrypt("app", plaintext, "ctx");
    EXPECT_TRUE(ct.starts_with("vault:v1:"));
    if (size >= 8) {  // shorter strings could turn up in the random bytes by chance
      auto env = DecodeEnvelope(ct);
      ASSERT_TRUE(env.ok());
      const std::string sealed(env->sealed.begin(), env->sealed.end());
      EXPECT_EQ(sealed.find(plaintext), std::string::npos);
    }
    auto pt = DecryptText("app", ct, "ctx");
    ASSERT_TRUE(pt.ok()) << pt.status().ToString();
    EXPECT_EQ(*pt, plaintext);
  }
}

TEST_F(KeyringTest, SamePlaintextGivesDifferentCiphertexts) {
  ASSERT_TRUE(keyring_->CreateKey("app").ok());
  EXPECT_NE(MustEncrypt("app", "hello"), MustEncrypt("app", "hello"));
}

TEST_F(KeyringTest, WrongContextOrOtherKeyFails) {
  ASSERT_TRUE(keyring_->CreateKey("a").ok());
  ASSERT_TRUE(keyring_->CreateKey("b").ok());
  const std::string ct = MustEncrypt("a", "secret", "tenant-1");
  EXPECT_EQ(DecryptText("a", ct, "tenant-2").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DecryptText("a", ct, "").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DecryptText("b", ct, "tenant-1").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DecryptText("a", ct, "tenant-1").value(), "secret");
}

TEST_F(KeyringTest, EveryCorruptionIsRefusedWithoutPlaintext) {
  ASSERT_TRUE(keyring_->CreateKey("app").ok());
  const std::string ct = MustEncrypt("app", "attack at dawn");
  const auto bin = *crypto::Base64Decode(ct.substr(std::string("vault:v1:").size()));
  for (std::size_t i = 0; i < bin.size(); ++i) {
    for (std::uint8_t mask : {0x01, 0x80}) {
      auto flipped = bin;
      flipped[i] ^= mask;
      SCOPED_TRACE(i);
      auto pt = DecryptText("app", "vault:v1:" + crypto::Base64Encode(flipped));
      ASSERT_FALSE(pt.ok());
      EXPECT_NE(pt.status().code(), StatusCode::kOk);
      EXPECT_EQ(pt.status().message().find("attack"), std::string::npos);
    }
  }
  for (std::size_t n = 0; n < ct.size(); ++n) {
    EXPECT_FALSE(DecryptText("app", ct.substr(0, n)).ok()) << "truncated to " << n;
  }
  EXPECT_FALSE(DecryptText("app", "kms:v1:" + ct.substr(9)).ok());
  EXPECT_FALSE(DecryptText("app", "vault:v2:" + ct.substr(9)).ok());  // version mismatch
  EXPECT_EQ(DecryptText("app", ct).value(), "attack at dawn");
}

TEST_F(KeyringTest, TooNewVersionIsRefused) {
  ASSERT_TRUE(keyring_->CreateKey("app").ok());
  ASSERT_TRUE(keyring_->RotateKey("app").ok());
  const std::string v2 = MustEncrypt("app", "x");
  ASSERT_TRUE(v2.starts_with("vault:v2:"));
  // The same ciphertext presented to a key that only has version 1.
  ASSERT_TRUE(keyring_->CreateKey("other").ok());
  auto pt = DecryptText("other", v2);
  ASSERT_FALSE(pt.ok());
  EXPECT_EQ(pt.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(pt.status().message().find("version"), std::string::npos);
}

TEST_F(KeyringTest, RotationAndMinimumVersions) {
  ASSERT_TRUE(keyring_->CreateKey("app").ok());
  const std::string v1 = MustEncrypt("app", "one");
  ASSERT_TRUE(keyring_->RotateKey("app").ok());
  const std::string v2 = MustEncrypt("app", "two");
  EXPECT_TRUE(v2.starts_with("vault:v2:"));
  EXPECT_EQ(DecryptText("app", v1).value(), "one");

  auto meta = keyring_->ReadKey("app");
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ(meta->latest_version, 2u);
  ASSERT_EQ(meta->versions.size(), 2u);

  // Encrypting under an explicit old version is allowed until min_encryption_version forbids it.
  auto old = keyring_->Encrypt("app", AsBytes("old"), {}, 1);
  ASSERT_TRUE(old.ok());
  EXPECT_TRUE(old->starts_with("vault:v1:"));
  ASSERT_TRUE(keyring_->SetMinVersions("app", 1, 2).ok());
  EXPECT_EQ(keyring_->Encrypt("app", AsBytes("old"), {}, 1).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(keyring_->Encrypt("app", AsBytes("x"), {}, 3).status().code(),
            StatusCode::kInvalidArgument);

  ASSERT_TRUE(keyring_->SetMinVersions("app", 2, 0).ok());
  auto refused = DecryptText("app", v1);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("too old"), std::string::npos);
  EXPECT_EQ(DecryptText("app", v2).value(), "two");

  EXPECT_EQ(keyring_->SetMinVersions("app", 3, 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(keyring_->SetMinVersions("app", 0, 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(keyring_->SetMinVersions("app", 2, 1).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(keyring_->ReadKey("app")->min_decryption_version, 2u);  // bad input changed nothing
}

TEST_F(KeyringTest, RewrapMovesToLatestVersionAndKeepsContext) {
  ASSERT_TRUE(keyring_->CreateKey("app").ok());
  const std::string v1 = MustEncrypt("app", "payload", "ctx");
  ASSERT_TRUE(keyring_->RotateKey("app").ok());
  auto rewrapped = keyring_->Rewrap("app", v1, AsBytes("ctx"));
  ASSERT_TRUE(rewrapped.ok()) << rewrapped.status().ToString();
  EXPECT_TRUE(rewrapped->starts_with("vault:v2:"));
  // Only the wrapped DEK changed: nonce and sealed data are the same bytes.
  auto a = DecodeEnvelope(v1), b = DecodeEnvelope(*rewrapped);
  EXPECT_EQ(a->sealed, b->sealed);
  EXPECT_EQ(a->nonce, b->nonce);
  EXPECT_NE(a->wrapped_dek, b->wrapped_dek);

  ASSERT_TRUE(keyring_->SetMinVersions("app", 2, 0).ok());
  EXPECT_EQ(DecryptText("app", *rewrapped, "ctx").value(), "payload");
  EXPECT_FALSE(DecryptText("app", *rewrapped, "other").ok());
  EXPECT_FALSE(keyring_->Rewrap("app", v1, AsBytes("ctx")).ok());  // v1 now too old
  EXPECT_FALSE(keyring_->Rewrap("app", *rewrapped, AsBytes("wrong")).ok());
}

TEST_F(KeyringTest, EverythingSurvivesARestart) {
  ASSERT_TRUE(keyring_->CreateKey("app").ok());
  const std::string v1 = MustEncrypt("app", "first", "c");
  ASSERT_TRUE(keyring_->RotateKey("app").ok());
  const std::string v2 = MustEncrypt("app", "second", "c");
  ASSERT_TRUE(keyring_->CreateKey("off").ok());
  ASSERT_TRUE(keyring_->SetEnabled("off", false).ok());
  ASSERT_TRUE(keyring_->SetMinVersions("app", 1, 2).ok());

  Restart();

  EXPECT_EQ(keyring_->ListKeys(), (std::vector<std::string>{"app", "off"}));
  EXPECT_EQ(DecryptText("app", v1, "c").value(), "first");
  EXPECT_EQ(DecryptText("app", v2, "c").value(), "second");
  auto meta = keyring_->ReadKey("app");
  EXPECT_EQ(meta->latest_version, 2u);
  EXPECT_EQ(meta->min_encryption_version, 2u);
  EXPECT_EQ(keyring_->ReadKey("off")->state, KeyState::kDisabled);
  // The first use after a restart unwraps each KEK from its stored, MKEK-wrapped form.
  EXPECT_GE(hsm_->kek_unwraps.load(), 2);
}

TEST_F(KeyringTest, DisabledKeyNeitherEncryptsNorDecrypts) {
  ASSERT_TRUE(keyring_->CreateKey("app").ok());
  const std::string ct = MustEncrypt("app", "x");
  ASSERT_TRUE(keyring_->SetEnabled("app", false).ok());
  EXPECT_EQ(keyring_->Encrypt("app", AsBytes("x")).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(DecryptText("app", ct).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(keyring_->RotateKey("app").code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(keyring_->SetEnabled("app", true).ok());
  EXPECT_EQ(DecryptText("app", ct).value(), "x");
}

TEST_F(KeyringTest, DeletionWaitsCanBeCancelledAndDestroysForGood) {
  ASSERT_TRUE(keyring_->CreateKey("app").ok());
  const std::string ct = MustEncrypt("app", "doomed");

  EXPECT_EQ(keyring_->ScheduleDeletion("app", seconds(60)).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(keyring_->ScheduleDeletion("app").ok());  // default: 7 days
  auto meta = keyring_->ReadKey("app");
  EXPECT_EQ(meta->state, KeyState::kPendingDeletion);
  EXPECT_EQ(*meta->deletion_time, now_ + hours(24 * 7));
  EXPECT_EQ(DecryptText("app", ct).status().code(), StatusCode::kFailedPrecondition);

  ASSERT_TRUE(keyring_->CancelDeletion("app").ok());
  EXPECT_EQ(DecryptText("app", ct).value(), "doomed");

  ASSERT_TRUE(keyring_->ScheduleDeletion("app", hours(48)).ok());
  EXPECT_EQ(keyring_->DestroyKey("app").code(), StatusCode::kFailedPrecondition);
  now_ += hours(47);
  EXPECT_TRUE(keyring_->DestroyDueKeys()->empty());
  now_ += hours(1);
  auto destroyed = keyring_->DestroyDueKeys();
  ASSERT_TRUE(destroyed.ok());
  EXPECT_EQ(*destroyed, std::vector<std::string>{"app"});
  EXPECT_EQ(keyring_->ReadKey("app").status().code(), StatusCode::kNotFound);

  auto rows = store_->Query("SELECT COUNT(*) FROM keyring_versions WHERE name = ?", {"app"});
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(*store::GetInt(rows->at(0), 0), 0);

  // Neither a restart nor a new key under the same name brings the data back.
  Restart();
  EXPECT_EQ(DecryptText("app", ct).status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(keyring_->CreateKey("app").ok());
  auto pt = DecryptText("app", ct);
  ASSERT_FALSE(pt.ok());
  EXPECT_EQ(pt.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(KeyringTest, ChaChaKeysSealWithFormatTwoAndStayBoundToTheirCipher) {
  ASSERT_TRUE(keyring_->CreateKey("cc", {}, KeyOptions{DataCipher::kChaCha20Poly1305}).ok());
  ASSERT_TRUE(keyring_->CreateKey("aes").ok());
  EXPECT_EQ(keyring_->ReadKey("cc")->cipher, DataCipher::kChaCha20Poly1305);
  EXPECT_EQ(keyring_->ReadKey("aes")->cipher, DataCipher::kAes256Gcm);
  const std::string ct = MustEncrypt("cc", "chacha payload", "ctx");
  auto env = DecodeEnvelope(ct);
  ASSERT_TRUE(env.ok());
  EXPECT_EQ(env->format, kEnvelopeFormatChaCha20Poly1305);
  EXPECT_EQ(DecryptText("cc", ct, "ctx").value(), "chacha payload");
  EXPECT_FALSE(DecryptText("cc", ct, "other").ok());
  // Relabelling the format byte does not make the data open as AES-GCM, or vice versa.
  Envelope relabelled = *env;
  relabelled.format = kEnvelopeFormatV1;
  EXPECT_EQ(DecryptText("cc", EncodeEnvelope(relabelled), "ctx").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(DecryptText("aes", ct, "ctx").status().code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(keyring_->RotateKey("cc").ok());
  auto rewrapped = keyring_->Rewrap("cc", ct, AsBytes("ctx"));
  ASSERT_TRUE(rewrapped.ok()) << rewrapped.status().ToString();
  EXPECT_EQ(DecodeEnvelope(*rewrapped)->format, kEnvelopeFormatChaCha20Poly1305);
  Restart();
  EXPECT_EQ(DecryptText("cc", *rewrapped, "ctx").value(), "chacha payload");
  EXPECT_EQ(keyring_->ReadKey("cc")->cipher, DataCipher::kChaCha20Poly1305);
}

TEST_F(KeyringTest, RewrapToAChosenVersion) {
  ASSERT_TRUE(keyring_->CreateKey("app").ok());
  const std::string v1 = MustEncrypt("app", "payload");
  ASSERT_TRUE(keyring_->RotateKey("app").ok());
  ASSERT_TRUE(keyring_->RotateKey("app").ok());
  auto to2 = keyring_->Rewrap("app", v1, {}, {}, 2);
  ASSERT_TRUE(to2.ok()) << to2.status().ToString();
  EXPECT_TRUE(to2->starts_with("vault:v2:"));
  EXPECT_EQ(DecryptText("app", *to2).value(), "payload");
  EXPECT_EQ(keyring_->Rewrap("app", v1, {}, {}, 4).status().code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(keyring_->SetMinVersions("app", 1, 3).ok());
  EXPECT_EQ(keyring_->Rewrap("app", v1, {}, {}, 2).status().code(),
            StatusCode::kFailedPrecondition);
}

TEST_F(KeyringTest, DestroyKeyNowShredsWithoutWaitingAndRunsTheCallersWork) {
  ASSERT_TRUE(keyring_->CreateKey("app").ok());
  const std::string ct = MustEncrypt("app", "gone");
  ASSERT_TRUE(store_->Migrate({{"keyring_test", 1, "CREATE TABLE side (v INTEGER)"}}).ok());
  Caller alice{"req-9", "alice", "10.0.0.1"};
  ASSERT_TRUE(keyring_
                  ->DestroyKeyNow("app", alice,
                                  [](store::Transaction& tx) {
                                    return tx.Execute("INSERT INTO side VALUES (1)", {}).status();
                                  })
                  .ok());
  EXPECT_EQ(keyring_->ReadKey("app").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(*store::GetInt(store_->Query("SELECT COUNT(*) FROM side", {})->at(0), 0), 1);
  EXPECT_EQ(*store::GetInt(store_->Query("SELECT COUNT(*) FROM keyring_versions", {})->at(0), 0),
            0);
  const auto events = AuditEvents();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().op, "keyring.destroy");
  EXPECT_EQ(events.back().actor, "alice");
  EXPECT_EQ(events.back().details["immediate"], true);
  ASSERT_TRUE(keyring_->CreateKey("app").ok());
  EXPECT_EQ(DecryptText("app", ct).status().code(), StatusCode::kInvalidArgument);

  // The caller's work failing rolls everything back: the key survives.
  const std::string kept = MustEncrypt("app", "kept");
  EXPECT_FALSE(
      keyring_->DestroyKeyNow("app", {}, [](store::Transaction&) { return InternalError("boom"); })
          .ok());
  EXPECT_EQ(DecryptText("app", kept).value(), "kept");
  EXPECT_EQ(keyring_->DestroyKeyNow("none").code(), StatusCode::kNotFound);
}

TEST_F(KeyringTest, TrimVersionsErasesOldKeksOnly) {
  ASSERT_TRUE(keyring_->CreateKey("app").ok());
  const std::string v1 = MustEncrypt("app", "one");
  ASSERT_TRUE(keyring_->RotateKey("app").ok());
  const std::string v2 = MustEncrypt("app", "two");
  ASSERT_TRUE(keyring_->RotateKey("app").ok());
  // Versions still allowed to decrypt cannot be trimmed.
  EXPECT_EQ(keyring_->TrimVersions("app", 2).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(keyring_->SetMinVersions("app", 2, 0).ok());
  ASSERT_TRUE(keyring_->TrimVersions("app", 2).ok());
  auto meta = keyring_->ReadKey("app");
  EXPECT_EQ(meta->min_available_version, 2u);
  ASSERT_EQ(meta->versions.size(), 2u);
  EXPECT_EQ(meta->versions[0].version, 2u);
  EXPECT_EQ(keyring_->TrimVersions("app", 1).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(keyring_->SetMinVersions("app", 1, 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(
      *store::GetInt(
          store_->Query("SELECT COUNT(*) FROM keyring_versions WHERE version = 1", {})->at(0), 0),
      0);
  Restart();
  EXPECT_EQ(keyring_->ReadKey("app")->min_available_version, 2u);
  EXPECT_EQ(DecryptText("app", v2).value(), "two");
  EXPECT_EQ(DecryptText("app", v1).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(keyring_->Encrypt("app", AsBytes("x"), {}, 1).status().code(),
            StatusCode::kFailedPrecondition);
}

TEST_F(KeyringTest, DekCacheKeepsTheHsmOffTheHotPath) {
  ASSERT_TRUE(keyring_->CreateKey("app").ok());
  std::vector<std::string> cts;
  for (int i = 0; i < 50; ++i) cts.push_back(MustEncrypt("app", "m" + std::to_string(i)));
  EXPECT_EQ(hsm_->wraps.load(), 1);
  for (int i = 0; i < 50; ++i)
    EXPECT_EQ(DecryptText("app", cts[i]).value(), "m" + std::to_string(i));
  EXPECT_EQ(hsm_->unwraps.load(), 0);
}

TEST_F(KeyringTest, DekUseLimitForcesAFreshDataKey) {
  options_.dek_cache.max_encryptions_per_dek = 10;
  Restart();
  ASSERT_TRUE(keyring_->CreateKey("app").ok());
  for (int i = 0; i < 25; ++i) MustEncrypt("app", "x");
  EXPECT_EQ(hsm_->wraps.load(), 3);
}

TEST_F(KeyringTest, WithoutTheCacheEveryMessageGoesToTheHsm) {
  options_.dek_cache.enabled = false;
  Restart();
  ASSERT_TRUE(keyring_->CreateKey("app").ok());
  std::vector<std::string> cts;
  for (int i = 0; i < 5; ++i) cts.push_back(MustEncrypt("app", "x"));
  EXPECT_EQ(hsm_->wraps.load(), 5);
  for (const auto& ct : cts) EXPECT_EQ(DecryptText("app", ct).value(), "x");
  EXPECT_EQ(hsm_->unwraps.load(), 5);
  EXPECT_EQ(keyring_->dek_cache().size(), 0u);
}

TEST_F(KeyringTest, CacheMissAfterRestartUnwrapsOnceThenHits) {
  ASSERT_TRUE(keyring_->CreateKey("app").ok());
  const std::string ct = MustEncrypt("app", "x");
  Restart();
  EXPECT_EQ(DecryptText("app", ct).value(), "x");
  EXPECT_EQ(DecryptText("app", ct).value(), "x");
  EXPECT_EQ(hsm_->unwraps.load(), 1);
}

TEST_F(KeyringTest, KekDestroyedBehindItsBackIsUnwrappedAgain) {
  options_.dek_cache.enabled = false;
  Restart();
  ASSERT_TRUE(keyring_->CreateKey("app").ok());
  const std::string ct = MustEncrypt("app", "x");
  ASSERT_EQ(hsm_->kek_unwraps.load(), 1);
  ASSERT_TRUE(real_hsm_->DestroyObject(hsm_->last_unwrapped_key).ok());
  EXPECT_EQ(DecryptText("app", ct).value(), "x");
  EXPECT_EQ(hsm_->kek_unwraps.load(), 2);
}

TEST_F(KeyringTest, DataKeysPlaintextAndWrappedOnly) {
  ASSERT_TRUE(keyring_->CreateKey("app").ok());
  auto dk = keyring_->GenerateDataKey("app", true, AsBytes("c"), 256);
  ASSERT_TRUE(dk.ok()) << dk.status().ToString();
  ASSERT_TRUE(dk->plaintext.has_value());
  EXPECT_EQ(dk->plaintext->size(), 32u);
  auto unwrapped = keyring_->Decrypt("app", dk->ciphertext, AsBytes("c"));
  ASSERT_TRUE(unwrapped.ok());
  EXPECT_EQ(Str(*unwrapped), Str(*dk->plaintext));

  auto wrapped_only = keyring_->GenerateDataKey("app", false, {}, 512);
  ASSERT_TRUE(wrapped_only.ok());
  EXPECT_FALSE(wrapped_only->plaintext.has_value());
  EXPECT_EQ(keyring_->Decrypt("app", wrapped_only->ciphertext)->size(), 64u);
  EXPECT_EQ(keyring_->GenerateDataKey("app", true, {}, 100).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(KeyringTest, BadNamesAndMissingKeys) {
  for (const char* bad : {"", "a b", "/x", "x/", "a//b", "..", "a/../b", "ключ", "x\n"}) {
    EXPECT_EQ(keyring_->CreateKey(bad).code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(keyring_->CreateKey(std::string(129, 'a')).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(keyring_->CreateKey("transit/app-1.v2_x").ok());
  EXPECT_EQ(keyring_->CreateKey("transit/app-1.v2_x").code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(keyring_->Encrypt("nope", AsBytes("x")).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(keyring_->RotateKey("nope").code(), StatusCode::kNotFound);
  EXPECT_EQ(keyring_->ScheduleDeletion("nope").code(), StatusCode::kNotFound);
  EXPECT_EQ(keyring_->ListKeys(), std::vector<std::string>{"transit/app-1.v2_x"});
}

TEST_F(KeyringTest, HsmOutageFailsClosedAndChangesNothing) {
  ASSERT_TRUE(keyring_->CreateKey("app").ok());
  const std::string ct = MustEncrypt("app", "x");
  options_.dek_cache.enabled = false;
  Restart();
  hsm_->down = true;
  EXPECT_EQ(keyring_->CreateKey("new").code(), StatusCode::kUnavailable);
  EXPECT_EQ(keyring_->RotateKey("app").code(), StatusCode::kUnavailable);
  EXPECT_EQ(keyring_->Encrypt("app", AsBytes("x")).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(DecryptText("app", ct).status().code(), StatusCode::kUnavailable);
  hsm_->down = false;
  EXPECT_EQ(keyring_->ListKeys(), std::vector<std::string>{"app"});
  EXPECT_EQ(keyring_->ReadKey("app")->latest_version, 1u);
  EXPECT_EQ(DecryptText("app", ct).value(), "x");
  Restart();
  EXPECT_EQ(keyring_->ListKeys(), std::vector<std::string>{"app"});
}

TEST_F(KeyringTest, StoreFailureLeavesNoHalfWrittenKey) {
  ASSERT_TRUE(keyring_->CreateKey("app").ok());
  store_->fail_commits = true;
  EXPECT_EQ(keyring_->CreateKey("new").code(), StatusCode::kUnavailable);
  EXPECT_EQ(keyring_->RotateKey("app").code(), StatusCode::kUnavailable);
  EXPECT_EQ(keyring_->SetEnabled("app", false).code(), StatusCode::kUnavailable);
  EXPECT_EQ(keyring_->ScheduleDeletion("app").code(), StatusCode::kUnavailable);
  store_->fail_commits = false;
  EXPECT_EQ(keyring_->ListKeys(), std::vector<std::string>{"app"});
  auto meta = keyring_->ReadKey("app");
  EXPECT_EQ(meta->latest_version, 1u);
  EXPECT_EQ(meta->state, KeyState::kEnabled);
  Restart();
  EXPECT_EQ(keyring_->ListKeys(), std::vector<std::string>{"app"});
  EXPECT_EQ(keyring_->ReadKey("app")->latest_version, 1u);
}

TEST_F(KeyringTest, MissingMasterKeyIsRefusedWhenCreationIsOff) {
  keyring_.reset();
  options_.master_key_label = "lockbox/mkek/v9";
  options_.create_master_key = false;
  auto k = Keyring::Open(*hsm_, *store_, *audit_, options_);
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), StatusCode::kNotFound);
}

TEST_F(KeyringTest, ConcurrentUseDuringRotation) {
  ASSERT_TRUE(keyring_->CreateKey("app").ok());
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const std::string msg = std::to_string(t) + ":" + std::to_string(i);
        auto ct = keyring_->Encrypt("app", AsBytes(msg), AsBytes("c"));
        if (!ct.ok()) {
          ++failures;
          continue;
        }
        auto pt = keyring_->Decrypt("app", *ct, AsBytes("c"));
        if (!pt.ok() || Str(*pt) != msg) ++failures;
      }
    });
  }
  for (int r = 0; r < 5; ++r) ASSERT_TRUE(keyring_->RotateKey("app").ok());
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(keyring_->ReadKey("app")->latest_version, 6u);
}

TEST_F(KeyringTest, EveryKeyEventIsAuditedAndTheChainVerifies) {
  const Caller alice{"req-1", "token:acc-alice", "127.0.0.1"};
  ASSERT_TRUE(keyring_->CreateKey("app", alice).ok());
  auto ct = keyring_->Encrypt("app", AsBytes("top secret payload"), AsBytes("c"), 0, alice);
  ASSERT_TRUE(ct.ok());
  ASSERT_TRUE(keyring_->Decrypt("app", *ct, AsBytes("c"), alice).ok());
  ASSERT_FALSE(keyring_->Decrypt("app", *ct, AsBytes("wrong"), alice).ok());
  ASSERT_TRUE(keyring_->RotateKey("app", alice).ok());
  ASSERT_TRUE(keyring_->Rewrap("app", *ct, AsBytes("c"), alice).ok());
  ASSERT_TRUE(keyring_->GenerateDataKey("app", false, {}, 256, alice).ok());
  ASSERT_TRUE(keyring_->SetMinVersions("app", 1, 0, alice).ok());
  ASSERT_TRUE(keyring_->SetEnabled("app", false, alice).ok());
  ASSERT_TRUE(keyring_->SetEnabled("app", true, alice).ok());
  ASSERT_TRUE(keyring_->ScheduleDeletion("app", std::nullopt, alice).ok());
  ASSERT_TRUE(keyring_->CancelDeletion("app", alice).ok());
  ASSERT_TRUE(keyring_->ScheduleDeletion("app", std::nullopt, alice).ok());
  now_ += hours(24 * 8);
  ASSERT_TRUE(keyring_->DestroyKey("app", alice).ok());
  ASSERT_FALSE(keyring_->CreateKey("bad name", alice).ok());

  const std::vector<std::pair<std::string, audit::Outcome>> expected = {
      {"keyring.create", audit::Outcome::kOk},
      {"keyring.encrypt", audit::Outcome::kOk},
      {"keyring.decrypt", audit::Outcome::kOk},
      {"keyring.decrypt", audit::Outcome::kError},
      {"keyring.rotate", audit::Outcome::kOk},
      {"keyring.rewrap", audit::Outcome::kOk},
      {"keyring.datakey", audit::Outcome::kOk},
      {"keyring.config", audit::Outcome::kOk},
      {"keyring.disable", audit::Outcome::kOk},
      {"keyring.enable", audit::Outcome::kOk},
      {"keyring.schedule_deletion", audit::Outcome::kOk},
      {"keyring.cancel_deletion", audit::Outcome::kOk},
      {"keyring.schedule_deletion", audit::Outcome::kOk},
      {"keyring.destroy", audit::Outcome::kOk},
      {"keyring.create", audit::Outcome::kError},
  };
  const auto events = AuditEvents();
  ASSERT_EQ(events.size(), expected.size());
  for (std::size_t i = 0; i < events.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(events[i].op, expected[i].first);
    EXPECT_EQ(events[i].outcome, expected[i].second);
    EXPECT_EQ(events[i].actor, "token:acc-alice");
    EXPECT_EQ(events[i].request_id, "req-1");
    EXPECT_EQ(events[i].seq, i + 1);
  }
  EXPECT_EQ(events[0].path, "app");
  EXPECT_EQ(events[4].details.at("version"), 2);
  EXPECT_FALSE(events[3].reason.empty());

  // Nothing secret in the log: no plaintext, no ciphertext-derived plaintext.
  auto rows = store_->Query("SELECT body FROM audit_records", {});
  for (const auto& row : *rows) {
    EXPECT_EQ(store::GetText(row, 0)->find("top secret"), std::string::npos);
  }

  // The chain an auditor would check offline verifies with the published public key.
  std::ifstream pem_file(token_->dir().file("audit-public-key.pem"));
  const std::string pem((std::istreambuf_iterator<char>(pem_file)), {});
  auto key = crypto::PublicKey::FromPem(pem);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  auto summary = audit::VerifyDatabase(token_->dir().file("lockbox.db"), *key, std::nullopt);
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_EQ(summary->events, expected.size());
}

TEST_F(KeyringTest, AuditFailureFailsClosedWithoutResults) {
  ASSERT_TRUE(keyring_->CreateKey("app").ok());
  const std::string ct = MustEncrypt("app", "x");
  const auto before = AuditEvents().size();
  store_->fail_commits = true;
  auto enc = keyring_->Encrypt("app", AsBytes("x"));
  ASSERT_FALSE(enc.ok());
  EXPECT_EQ(enc.status().code(), StatusCode::kUnavailable);
  auto dec = keyring_->Decrypt("app", ct);
  ASSERT_FALSE(dec.ok());
  EXPECT_EQ(dec.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(keyring_->GenerateDataKey("app", true).status().code(), StatusCode::kUnavailable);
  store_->fail_commits = false;
  EXPECT_EQ(AuditEvents().size(), before);
  EXPECT_EQ(DecryptText("app", ct).value(), "x");
}

}  // namespace
}  // namespace lockbox::keyring
