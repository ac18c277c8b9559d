// Transit backend against a real SoftHSM2 token, SQLite store, audit log and keyring.
#include "server/transit/transit.h"

#include <gtest/gtest.h>

#include "audit/event.h"
#include "crypto/encoding.h"
#include "crypto/jwk.h"
#include "crypto/jws.h"
#include "crypto/signature.h"
#include "server/audit_log/audit_log.h"
#include "server/blocking/would_block.h"
#include "server/transit/wire.h"
#include "tests/support/flaky_store.h"
#include "tests/support/recorded_answer.h"
#include "tests/support/softhsm_token.h"
#include "tests/unit/keyring/hsm_decorators.h"

namespace lockbox::transit {
namespace {

using json = nlohmann::json;
using logical::Operation;
using logical::Request;
using logical::Response;

constexpr std::string_view kDerivationRequired =
    "missing 'context' for key derivation; the key was created using a derived key, which means "
    "additional, per-request information must be included in order to perform operations with "
    "the key";
constexpr std::string_view kTooOld =
    "ciphertext or signature version is disallowed by policy (too old)";
constexpr std::string_view kAuthFailed = "cipher: message authentication failed";

std::string B64(std::string_view s) { return crypto::Base64Encode(crypto::AsBytes(s)); }
std::string Unb64(const json& v) {
  auto bytes = crypto::Base64Decode(v.get<std::string>());
  EXPECT_TRUE(bytes.ok());
  return bytes.ok() ? std::string(bytes->begin(), bytes->end()) : std::string();
}

class TransitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    token_ = std::make_unique<testing::SoftHsmToken>();
    entry_.path = "transit/";
    entry_.type = "transit";
    entry_.uuid = "0b8e6f2a-0000-4000-8000-00000000abcd";
    entry_.accessor = "transit_1234";
    Open();
  }

  void Open() {
    auto h = hsm::Hsm::Open(token_->hsm_config());
    ASSERT_TRUE(h.ok()) << h.status().ToString();
    real_hsm_ = std::move(*h);
    hsm_ = std::make_unique<testing::CountingHsm>(*real_hsm_);
    store::SqliteOptions store_options;
    store_options.path = token_->dir().file("lockbox.db");
    auto s = store::OpenSqliteStore(store_options);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    real_store_ = std::move(*s);
    store_ = std::make_unique<testing::FlakyStore>(*real_store_);
    ASSERT_TRUE(store_->Migrate(TransitMigrations()).ok());
    auto a = audit_log::AuditLog::Open(*store_, *real_hsm_, {});
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    audit_ = std::move(*a);
    auto k = keyring::Keyring::Open(*hsm_, *store_, *audit_);
    ASSERT_TRUE(k.ok()) << k.status().ToString();
    keyring_ = std::move(*k);
    auto b = NewTransitBackend(entry_, *keyring_, *hsm_, *store_, *audit_);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    backend_ = std::move(*b);
  }

  void Restart() {
    backend_.reset();
    keyring_.reset();
    audit_.reset();
    store_.reset();
    real_store_.reset();
    hsm_.reset();
    real_hsm_.reset();
    Open();
  }

  Request Req(Operation op, std::string rel, json data = json::object()) {
    Request r;
    r.operation = op;
    r.mount_point = entry_.path;
    r.relative_path = std::move(rel);
    r.path = entry_.path + r.relative_path;
    r.data = std::move(data);
    r.request_id = "req-" + std::to_string(++requests_);
    r.caller.request_id = r.request_id;
    r.caller.actor = "accessor-test";
    r.caller.remote_addr = "127.0.0.1";
    return r;
  }

  StatusOr<Response> Call(Operation op, std::string rel, json data = json::object()) {
    return testing::RecordedAnswer(
        backend_->HandleRequest(Req(op, std::move(rel), std::move(data))), *audit_);
  }
  StatusOr<Response> Post(std::string rel, json data = json::object()) {
    return Call(Operation::kUpdate, std::move(rel), std::move(data));
  }

  // The data of a successful (200) answer.
  json Ok(StatusOr<Response> r) {
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return json();
    EXPECT_EQ(r->status, 0);
    EXPECT_TRUE(r->audited);
    return r->data.value_or(json());
  }

  // The message of a failed answer, checking its HTTP status.
  std::string Err(StatusOr<Response> r, int http_status = 400) {
    EXPECT_FALSE(r.ok());
    if (r.ok()) return "(ok)";
    EXPECT_EQ(logical::HttpStatusFor(r.status().code()), http_status) << r.status().ToString();
    return r.status().message();
  }

  void CreateKey(std::string name, json data = json::object()) {
    auto r = Call(Operation::kCreate, "keys/" + name, std::move(data));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }

  std::string Encrypt(const std::string& key, std::string_view plaintext, json extra = {}) {
    json data = extra.is_object() ? extra : json::object();
    data["plaintext"] = B64(plaintext);
    auto out = Ok(Post("encrypt/" + key, data));
    return out.value("ciphertext", "");
  }

  StatusOr<Response> DecryptCall(const std::string& key, const std::string& ciphertext,
                                 json extra = {}) {
    json data = extra.is_object() ? extra : json::object();
    data["ciphertext"] = ciphertext;
    return Post("decrypt/" + key, data);
  }

  void AllowDeletion(const std::string& key) {
    Ok(Post("keys/" + key + "/config", {{"deletion_allowed", true}}));
  }

  std::vector<audit::Event> AuditEvents() {
    std::vector<audit::Event> events;
    auto rows =
        store_->Query("SELECT body FROM audit_records WHERE kind = 'event' ORDER BY seq", {});
    EXPECT_TRUE(rows.ok());
    for (const auto& row : *rows) {
      auto event = audit::ParseCanonicalEvent(*store::GetText(row, 0));
      if (event.ok()) events.push_back(std::move(*event));
    }
    return events;
  }

  logical::MountEntry entry_;
  int requests_ = 0;
  std::unique_ptr<testing::SoftHsmToken> token_;
  std::unique_ptr<hsm::Hsm> real_hsm_;
  std::unique_ptr<testing::CountingHsm> hsm_;
  std::unique_ptr<store::Store> real_store_;
  std::unique_ptr<testing::FlakyStore> store_;
  std::unique_ptr<audit_log::AuditLog> audit_;
  std::unique_ptr<keyring::Keyring> keyring_;
  std::unique_ptr<logical::Backend> backend_;
};

// --- keys --------------------------------------------------------------------------------------

TEST_F(TransitTest, CreateReadListAndIdempotentCreate) {
  EXPECT_EQ(Err(Call(Operation::kList, "keys/"), 404), "");
  auto created = Call(Operation::kCreate, "keys/orders");
  ASSERT_TRUE(created.ok());
  json body = Ok(std::move(created));
  EXPECT_EQ(body["name"], "orders");
  EXPECT_EQ(body["type"], "aes256-gcm96");
  EXPECT_EQ(body["derived"], false);
  EXPECT_EQ(body["exportable"], false);
  EXPECT_EQ(body["allow_plaintext_backup"], false);
  EXPECT_EQ(body["deletion_allowed"], false);
  EXPECT_EQ(body["latest_version"], 1);
  EXPECT_EQ(body["min_available_version"], 0);
  EXPECT_EQ(body["min_decryption_version"], 1);
  EXPECT_EQ(body["min_encryption_version"], 0);
  EXPECT_EQ(body["supports_encryption"], true);
  EXPECT_EQ(body["supports_decryption"], true);
  EXPECT_EQ(body["supports_derivation"], true);
  EXPECT_EQ(body["supports_signing"], false);
  EXPECT_EQ(body["auto_rotate_period"], 0);
  EXPECT_EQ(body["imported_key"], false);
  ASSERT_TRUE(body["keys"]["1"].is_number_integer());
  EXPECT_GT(body["keys"]["1"].get<std::int64_t>(), 1'600'000'000);
  EXPECT_FALSE(body.contains("kdf"));

  EXPECT_EQ(Ok(Call(Operation::kRead, "keys/orders")), body);
  auto again = Call(Operation::kUpdate, "keys/orders", {{"type", "chacha20-poly1305"}});
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->warnings.size(), 1u);
  EXPECT_EQ(again->warnings[0], "key orders already existed");
  EXPECT_EQ(Ok(std::move(again)), body);  // idempotent: still the original key

  CreateKey("billing", {{"type", "ed25519"}});
  EXPECT_EQ(Ok(Call(Operation::kList, "keys/")), json({{"keys", {"billing", "orders"}}}));
  EXPECT_EQ(Err(Call(Operation::kRead, "keys/missing"), 404), "");
}

TEST_F(TransitTest, CreateRefusesBadSettingsAndChangesNothing) {
  EXPECT_EQ(Err(Call(Operation::kCreate, "keys/k", {{"convergent_encryption", true}})),
            "convergent encryption requires derivation to be enabled");
  EXPECT_EQ(Err(Call(Operation::kCreate, "keys/k", {{"type", "des"}})), "unknown key type des");
  EXPECT_EQ(Err(Call(Operation::kCreate, "keys/k", {{"type", "rsa-2048"}})),
            "key type rsa-2048 is not supported by this server");
  EXPECT_EQ(Err(Call(Operation::kCreate, "keys/k", {{"exportable", true}})),
            "exportable keys are not supported: transit keys never leave the server");
  EXPECT_EQ(Err(Call(Operation::kCreate, "keys/k", {{"allow_plaintext_backup", "true"}})),
            "plaintext backups are not supported: transit keys never leave the server");
  EXPECT_EQ(Err(Call(Operation::kCreate, "keys/k", {{"type", "ecdsa-p256"}, {"derived", true}})),
            "key derivation and convergent encryption not supported for keys of type ecdsa-p256");
  EXPECT_EQ(Err(Call(Operation::kCreate, "keys/k", {{"key_size", 64}})),
            "key_size is not valid for algorithm aes256-gcm96");
  EXPECT_EQ(Err(Call(Operation::kCreate, "keys/k", {{"type", "hmac"}, {"key_size", 16}})),
            "invalid key_size provided, must be between 32 and 512 bytes");
  EXPECT_EQ(Err(Call(Operation::kCreate, "keys/..x")), "invalid key name");
  EXPECT_EQ(Err(Call(Operation::kCreate, "keys/a b")), "invalid key name");
  // Turning the non-exportable settings off explicitly is fine.
  CreateKey("ok", {{"exportable", false}, {"allow_plaintext_backup", false}});
  EXPECT_EQ(Ok(Call(Operation::kList, "keys/")), json({{"keys", {"ok"}}}));
  EXPECT_EQ(keyring_->ListKeys().size(), 1u);
}

TEST_F(TransitTest, DeleteIsGatedAndDestroysForGood) {
  CreateKey("k");
  const std::string ct = Encrypt("k", "top secret");
  EXPECT_EQ(Err(Call(Operation::kDelete, "keys/k")),
            "error deleting policy k: deletion is not allowed for this policy");
  EXPECT_EQ(Err(Call(Operation::kDelete, "keys/none")),
            "error deleting policy none: could not delete key; not found");
  AllowDeletion("k");
  auto deleted = Call(Operation::kDelete, "keys/k");
  ASSERT_TRUE(deleted.ok()) << deleted.status().ToString();
  EXPECT_FALSE(deleted->data.has_value());  // 204
  EXPECT_TRUE(deleted->audited);
  EXPECT_EQ(Err(Call(Operation::kRead, "keys/k"), 404), "");
  EXPECT_TRUE(keyring_->ListKeys().empty());
  EXPECT_EQ(Err(DecryptCall("k", ct)), "encryption key not found");

  // A new key of the same name never opens the old ciphertext.
  CreateKey("k");
  EXPECT_EQ(Err(DecryptCall("k", ct)), kAuthFailed);
  Restart();
  EXPECT_EQ(Err(DecryptCall("k", ct)), kAuthFailed);
}

TEST_F(TransitTest, ExportBackupRestoreAreRefused) {
  CreateKey("k");
  EXPECT_EQ(Err(Call(Operation::kRead, "export/encryption-key/k"), 500),
            "exporting is disallowed on the policy");
  EXPECT_EQ(Err(Call(Operation::kRead, "export/encryption-key/k/1"), 500),
            "exporting is disallowed on the policy");
  EXPECT_EQ(Err(Call(Operation::kRead, "backup/k"), 500),
            "plaintext backup is disallowed on the policy");
  EXPECT_EQ(Err(Call(Operation::kRead, "backup/none"), 404), "");
  EXPECT_EQ(Err(Post("restore", {{"backup", "abc"}, {"name", "x"}})),
            "restoring keys is not supported: transit keys are non-exportable and have no "
            "plaintext backups");
  EXPECT_EQ(Err(Post("restore/k", {{"backup", "abc"}}), 500), "key \"k\" already exists");
  EXPECT_EQ(Err(Post("restore")), "'backup' must be supplied");
}

TEST_F(TransitTest, UnknownPathsAndOperations) {
  EXPECT_EQ(Err(Post("nothing/here"), 404), "unsupported path");
  EXPECT_EQ(Err(Call(Operation::kRead, "encrypt/k"), 405), "unsupported operation");
  EXPECT_EQ(Err(Call(Operation::kDelete, "keys/k/rotate"), 405), "unsupported operation");
  EXPECT_EQ(Err(Post("keys/k/unknown"), 404), "unsupported path");
  EXPECT_EQ(Err(Post("keys/missing/rotate"), 404), "");
}

// --- encrypt / decrypt -------------------------------------------------------------------------

TEST_F(TransitTest, EncryptDecryptRoundTripsForBothCiphers) {
  for (const std::string type : {"aes256-gcm96", "chacha20-poly1305"}) {
    SCOPED_TRACE(type);
    CreateKey(type, {{"type", type}});
    for (std::string_view plaintext :
         {std::string_view(""), std::string_view("x"), std::string_view("hello transit world")}) {
      json out = Ok(Post("encrypt/" + type, {{"plaintext", B64(plaintext)}}));
      ASSERT_TRUE(out["ciphertext"].get<std::string>().starts_with("vault:v1:"));
      EXPECT_EQ(out["key_version"], 1);
      json dec = Ok(DecryptCall(type, out["ciphertext"]));
      EXPECT_EQ(Unb64(dec["plaintext"]), plaintext);
    }
    // Vault's legacy test: "test" is valid base64 and comes back as "test".
    json out = Ok(Post("encrypt/" + type, {{"plaintext", "test"}}));
    EXPECT_EQ(Ok(DecryptCall(type, out["ciphertext"]))["plaintext"], "test");
  }
  // The cipher is bound to the key: an AES ciphertext never opens under the ChaCha key.
  const std::string aes = Encrypt("aes256-gcm96", "data");
  EXPECT_EQ(Err(DecryptCall("chacha20-poly1305", aes)), kAuthFailed);
}

TEST_F(TransitTest, DecryptErrorsAreVaultsStrings) {
  CreateKey("k");
  const std::string ct = Encrypt("k", "payload");
  EXPECT_EQ(Err(DecryptCall("k", "nope:v1:abc")), "invalid ciphertext: no prefix");
  EXPECT_EQ(Err(DecryptCall("k", "vault:v1")), "invalid ciphertext: wrong number of fields");
  EXPECT_EQ(Err(DecryptCall("k", "vault:vX:abc")),
            "invalid ciphertext: version number could not be decoded");
  EXPECT_EQ(Err(DecryptCall("k", "vault:v2:" + ct.substr(9))),
            "invalid ciphertext: version is too new");
  EXPECT_EQ(Err(DecryptCall("k", "vault:v1:%%%")), "invalid ciphertext: could not decode base64");
  std::string tampered = ct;
  tampered[tampered.size() - 3] = tampered[tampered.size() - 3] == 'A' ? 'B' : 'A';
  EXPECT_EQ(Err(DecryptCall("k", tampered)), kAuthFailed);
  EXPECT_EQ(Err(Post("decrypt/k")), "missing ciphertext to decrypt");
  EXPECT_EQ(Err(DecryptCall("missing", ct)), "encryption key not found");
  EXPECT_EQ(Err(Post("encrypt/k", {{"plaintext", "hello world"}})),
            "illegal base64 data at input byte 5");
  EXPECT_EQ(Err(Post("encrypt/k")), "missing plaintext to encrypt");
  EXPECT_EQ(Err(Post("encrypt/k", {{"plaintext", B64("x")}, {"nonce", B64("n")}})),
            "nonce provided when not allowed");
}

TEST_F(TransitTest, CiphertextOfOneKeyFailsOnAnother) {
  CreateKey("a");
  CreateKey("b");
  const std::string ct = Encrypt("a", "only for a");
  EXPECT_EQ(Err(DecryptCall("b", ct)), kAuthFailed);
  EXPECT_EQ(Unb64(Ok(DecryptCall("a", ct))["plaintext"]), "only for a");
}

TEST_F(TransitTest, EncryptUpsertsOnlyWithCreate) {
  Request probe = Req(Operation::kUpdate, "encrypt/auto");
  auto exists = backend_->Exists(probe);
  ASSERT_TRUE(exists.ok());
  ASSERT_TRUE(exists->has_value());
  EXPECT_FALSE(**exists);
  EXPECT_EQ(Err(Post("encrypt/auto", {{"plaintext", B64("x")}})), "encryption key not found");

  auto created = Call(Operation::kCreate, "encrypt/auto",
                      {{"plaintext", B64("x")}, {"type", "chacha20-poly1305"}});
  json out = Ok(std::move(created));
  EXPECT_EQ(out["key_version"], 1);
  EXPECT_EQ(Ok(Call(Operation::kRead, "keys/auto"))["type"], "chacha20-poly1305");
  EXPECT_TRUE(**backend_->Exists(probe));
  EXPECT_FALSE(backend_->Exists(Req(Operation::kUpdate, "decrypt/auto"))->has_value());

  // A context on upsert makes the key derived.
  Ok(Call(Operation::kCreate, "encrypt/derived-auto",
          {{"plaintext", B64("x")}, {"context", B64("ctx")}}));
  json body = Ok(Call(Operation::kRead, "keys/derived-auto"));
  EXPECT_EQ(body["derived"], true);
  EXPECT_EQ(body["kdf"], "hkdf_sha256");
}

TEST_F(TransitTest, AssociatedDataIsBound) {
  CreateKey("k");
  const std::string ct = Encrypt("k", "msg", {{"associated_data", B64("row-7")}});
  EXPECT_EQ(Err(DecryptCall("k", ct)), kAuthFailed);
  EXPECT_EQ(Err(DecryptCall("k", ct, {{"associated_data", B64("row-8")}})), kAuthFailed);
  EXPECT_EQ(Unb64(Ok(DecryptCall("k", ct, {{"associated_data", B64("row-7")}}))["plaintext"]),
            "msg");
}

// --- batches -----------------------------------------------------------------------------------

TEST_F(TransitTest, BatchKeepsOrderReferencesAndReportsItemErrors) {
  CreateKey("k");
  json batch = json::array({{{"plaintext", B64("one")}, {"reference", "r1"}},
                            {{"plaintext", "aGVs!bG8="}, {"reference", "r2"}},
                            {{"plaintext", B64("three")}}});
  auto r = Post("encrypt/k", {{"plaintext", ""}, {"batch_input", batch}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 400);
  EXPECT_TRUE(r->audited);
  const json results = (*r->data)["batch_results"];
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0]["reference"], "r1");
  EXPECT_EQ(results[0]["key_version"], 1);
  EXPECT_EQ(results[1],
            json({{"error", "illegal base64 data at input byte 4"}, {"reference", "r2"}}));
  EXPECT_EQ(results[2]["reference"], "");
  EXPECT_FALSE(results[2].contains("error"));

  // partial_failure_response_code applies when some items succeeded...
  auto partial =
      Post("encrypt/k", {{"batch_input", batch}, {"partial_failure_response_code", 207}});
  ASSERT_TRUE(partial.ok());
  EXPECT_EQ(partial->status, 207);
  // ...not when all failed, and an out-of-range code falls back with a warning.
  auto all_failed = Post("encrypt/k", {{"batch_input", json::array({{{"plaintext", "!"}}})},
                                       {"partial_failure_response_code", 207}});
  ASSERT_TRUE(all_failed.ok());
  EXPECT_EQ(all_failed->status, 400);
  auto bad_code =
      Post("encrypt/k", {{"batch_input", batch}, {"partial_failure_response_code", 999}});
  ASSERT_TRUE(bad_code.ok());
  EXPECT_EQ(bad_code->status, 400);
  EXPECT_EQ(bad_code->warnings.size(), 1u);

  // Decrypt the good ones in a batch, in order, with one bad ciphertext between.
  json dec_batch = json::array({{{"ciphertext", results[2]["ciphertext"]}, {"reference", "c"}},
                                {{"ciphertext", "vault:v1:AAAA"}, {"reference", "bad"}},
                                {{"ciphertext", results[0]["ciphertext"]}, {"reference", "a"}}});
  auto dec = Post("decrypt/k", {{"batch_input", dec_batch}});
  ASSERT_TRUE(dec.ok());
  EXPECT_EQ(dec->status, 400);
  const json dr = (*dec->data)["batch_results"];
  EXPECT_EQ(Unb64(dr[0]["plaintext"]), "three");
  EXPECT_EQ(dr[0]["reference"], "c");
  EXPECT_EQ(dr[1]["reference"], "bad");
  EXPECT_TRUE(dr[1].contains("error"));
  EXPECT_EQ(Unb64(dr[2]["plaintext"]), "one");

  // All good → plain 200.
  json good = json::array({{{"ciphertext", results[0]["ciphertext"]}}});
  auto ok = Post("decrypt/k", {{"batch_input", good}});
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->status, 0);

  EXPECT_EQ(Err(Post("encrypt/k", {{"batch_input", json::array()}})),
            "missing batch input to process");
  EXPECT_EQ(Err(Post("encrypt/k", {{"batch_input", "x"}})),
            "failed to parse batch input: expected a list");
}

// --- derivation, convergence --------------------------------------------------------------------

TEST_F(TransitTest, DerivedKeysNeedAndBindTheirContext) {
  CreateKey("d", {{"derived", true}});
  json body = Ok(Call(Operation::kRead, "keys/d"));
  EXPECT_EQ(body["kdf"], "hkdf_sha256");
  EXPECT_EQ(body["convergent_encryption"], false);
  EXPECT_EQ(Err(Post("encrypt/d", {{"plaintext", B64("x")}})), kDerivationRequired);
  const std::string ct = Encrypt("d", "tenant data", {{"context", B64("tenant-1")}});
  EXPECT_EQ(Err(DecryptCall("d", ct)), kDerivationRequired);
  EXPECT_EQ(Err(DecryptCall("d", ct, {{"context", B64("tenant-2")}})), kAuthFailed);
  EXPECT_EQ(Unb64(Ok(DecryptCall("d", ct, {{"context", B64("tenant-1")}}))["plaintext"]),
            "tenant data");
  EXPECT_EQ(Err(Post("encrypt/d",
                     {{"batch_input", json::array({{{"plaintext", B64("a")}, {"context", B64("c")}},
                                                   {{"plaintext", B64("b")}}})}})),
            "context should be set either in all the request blocks or in none");
  EXPECT_EQ(Err(Post("datakey/plaintext/d")), kDerivationRequired);
}

TEST_F(TransitTest, ConvergentEncryptionIsDeterministicPerContextAndPlaintext) {
  CreateKey("c", {{"derived", true}, {"convergent_encryption", true}});
  json body = Ok(Call(Operation::kRead, "keys/c"));
  EXPECT_EQ(body["convergent_encryption"], true);
  EXPECT_EQ(body["convergent_encryption_version"], 3);
  const json ctx1 = {{"context", B64("ctx-1")}};
  const std::string a1 = Encrypt("c", "same", ctx1);
  EXPECT_EQ(Encrypt("c", "same", ctx1), a1);
  EXPECT_NE(Encrypt("c", "same", {{"context", B64("ctx-2")}}), a1);
  EXPECT_NE(Encrypt("c", "other", ctx1), a1);
  EXPECT_NE(Encrypt("c", "same", {{"context", B64("ctx-1")}, {"associated_data", B64("ad")}}), a1);
  EXPECT_EQ(Unb64(Ok(DecryptCall("c", a1, ctx1))["plaintext"]), "same");
  EXPECT_EQ(Err(DecryptCall("c", a1, {{"context", B64("ctx-2")}})), kAuthFailed);
  EXPECT_EQ(Err(Post("encrypt/c", {{"plaintext", B64("x")},
                                   {"context", B64("ctx-1")},
                                   {"nonce", B64("123456789012")}})),
            "nonce provided when not allowed");
  // Tampering with the payload (even the nonce part) fails authentication.
  std::string tampered = a1;
  tampered[12] = tampered[12] == 'A' ? 'B' : 'A';
  EXPECT_EQ(Err(DecryptCall("c", tampered, ctx1)), kAuthFailed);
  // Another key's convergent ciphertext does not open here.
  CreateKey("c2", {{"derived", true}, {"convergent_encryption", true}});
  EXPECT_EQ(Err(DecryptCall("c2", a1, ctx1)), kAuthFailed);

  // Deterministic across a restart; a new version gives a new ciphertext.
  Restart();
  EXPECT_EQ(Encrypt("c", "same", ctx1), a1);
  Ok(Post("keys/c/rotate"));
  const std::string v2 = Encrypt("c", "same", ctx1);
  EXPECT_TRUE(v2.starts_with("vault:v2:"));
  EXPECT_EQ(Unb64(Ok(DecryptCall("c", v2, ctx1))["plaintext"]), "same");
  EXPECT_EQ(Unb64(Ok(DecryptCall("c", a1, ctx1))["plaintext"]), "same");
  // Rewrap of a convergent ciphertext moves it to v2 (the deterministic v2 ciphertext).
  json rewrapped = Ok(Post("rewrap/c", {{"ciphertext", a1}, {"context", B64("ctx-1")}}));
  EXPECT_EQ(rewrapped["ciphertext"], v2);
  EXPECT_FALSE(rewrapped.contains("plaintext"));
}

TEST_F(TransitTest, ConvergentChaChaKeyWorks) {
  CreateKey("cc",
            {{"type", "chacha20-poly1305"}, {"derived", true}, {"convergent_encryption", true}});
  const json ctx = {{"context", B64("k")}};
  const std::string ct = Encrypt("cc", "value", ctx);
  EXPECT_EQ(Encrypt("cc", "value", ctx), ct);
  EXPECT_EQ(Unb64(Ok(DecryptCall("cc", ct, ctx))["plaintext"]), "value");
}

// --- versions, configuration, rewrap, trim ------------------------------------------------------

TEST_F(TransitTest, RotateMinVersionsAndTooOld) {
  CreateKey("k");
  const std::string v1 = Encrypt("k", "first");
  json rotated = Ok(Post("keys/k/rotate"));
  EXPECT_EQ(rotated["latest_version"], 2);
  EXPECT_TRUE(rotated["keys"].contains("2"));
  const std::string v2 = Encrypt("k", "second");
  EXPECT_TRUE(v2.starts_with("vault:v2:"));
  json old = Ok(Post("encrypt/k", {{"plaintext", B64("x")}, {"key_version", 1}}));
  EXPECT_EQ(old["key_version"], 1);
  EXPECT_EQ(Err(Post("encrypt/k", {{"plaintext", B64("x")}, {"key_version", 3}})),
            "requested version for encryption is higher than the latest key version");

  // Invalid configurations change nothing.
  EXPECT_EQ(Err(Post("keys/k/config", {{"min_decryption_version", 3}})),
            "cannot set min decryption version of 3, latest key version is 2");
  EXPECT_EQ(Err(Post("keys/k/config", {{"min_encryption_version", 3}})),
            "cannot set min encryption version of 3, latest key version is 2");
  EXPECT_EQ(Err(Post("keys/k/config", {{"min_decryption_version", -1}})),
            "min decryption version cannot be negative");
  EXPECT_EQ(
      Err(Post("keys/k/config", {{"min_decryption_version", 2}, {"min_encryption_version", 1}})),
      "cannot set min encryption/decryption values; min encryption version of 1 must be "
      "greater than or equal to min decryption version of 2");
  EXPECT_EQ(Err(Post("keys/k/config", {{"exportable", true}})),
            "exportable keys are not supported: transit keys never leave the server");
  EXPECT_EQ(Ok(Call(Operation::kRead, "keys/k"))["min_decryption_version"], 1);

  auto coerced = Post("keys/k/config", {{"min_decryption_version", 0}});
  ASSERT_TRUE(coerced.ok());
  EXPECT_EQ(coerced->warnings.size(), 1u);
  EXPECT_EQ((*coerced->data)["min_decryption_version"], 1);

  json configured = Ok(Post("keys/k/config", {{"min_decryption_version", "2"}}));
  EXPECT_EQ(configured["min_decryption_version"], 2);
  EXPECT_EQ(Err(DecryptCall("k", v1)), kTooOld);
  EXPECT_EQ(Unb64(Ok(DecryptCall("k", v2))["plaintext"]), "second");
  EXPECT_EQ(Err(Post("encrypt/k", {{"plaintext", B64("x")}, {"key_version", 1}})),
            "requested version for encryption is less than the minimum encryption key version");
  EXPECT_EQ(Err(Post("rewrap/k", {{"ciphertext", v1}})), kTooOld);

  // Settings survive a restart.
  Restart();
  EXPECT_EQ(Err(DecryptCall("k", v1)), kTooOld);
  EXPECT_EQ(Ok(Call(Operation::kRead, "keys/k"))["min_decryption_version"], 2);
}

TEST_F(TransitTest, RewrapMovesToLatestWithoutPlaintext) {
  CreateKey("k", {{"derived", true}});
  const json ctx = {{"context", B64("c")}};
  const std::string v1 = Encrypt("k", "keep me", ctx);
  Ok(Post("keys/k/rotate"));
  Ok(Post("keys/k/rotate"));
  json out = Ok(Post("rewrap/k", {{"ciphertext", v1}, {"context", B64("c")}}));
  EXPECT_EQ(out.size(), 2u);  // ciphertext and key_version only
  EXPECT_EQ(out["key_version"], 3);
  const std::string v3 = out["ciphertext"];
  EXPECT_TRUE(v3.starts_with("vault:v3:"));
  EXPECT_EQ(v3.find("keep me"), std::string::npos);
  EXPECT_EQ(Unb64(Ok(DecryptCall("k", v3, ctx))["plaintext"]), "keep me");
  json to2 = Ok(Post("rewrap/k", {{"ciphertext", v1}, {"context", B64("c")}, {"key_version", 2}}));
  EXPECT_EQ(to2["key_version"], 2);
  // A rewrap never vouches for a ciphertext that would not decrypt.
  EXPECT_EQ(Err(Post("rewrap/k", {{"ciphertext", v1}, {"context", B64("other")}})), kAuthFailed);
  EXPECT_EQ(Err(Post("rewrap/k", {{"ciphertext", v1}})), kDerivationRequired);
  // Batch rewrap keeps order.
  auto batch =
      Post("rewrap/k",
           {{"batch_input",
             json::array({{{"ciphertext", v1}, {"context", B64("c")}, {"reference", "x"}}})}});
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ((*batch->data)["batch_results"][0]["key_version"], 3);
  EXPECT_EQ((*batch->data)["batch_results"][0]["reference"], "x");
}

TEST_F(TransitTest, TrimShredsOldVersions) {
  CreateKey("k");
  const std::string v1 = Encrypt("k", "one");
  Ok(Post("keys/k/rotate"));
  Ok(Post("keys/k/rotate"));
  EXPECT_EQ(Err(Post("keys/k/trim", {{"min_available_version", 2}})),
            "minimum available version cannot be set when minimum encryption version is not set");
  Ok(Post("keys/k/config", {{"min_decryption_version", 2}, {"min_encryption_version", 3}}));
  EXPECT_EQ(Err(Post("keys/k/trim", {{"min_available_version", 3}})),
            "minimum available version cannot be greater than minimum decryption version");
  EXPECT_EQ(Err(Post("keys/k/trim")), "missing min_available_version");
  json trimmed = Ok(Post("keys/k/trim", {{"min_available_version", 2}}));
  EXPECT_EQ(trimmed["min_available_version"], 2);
  EXPECT_FALSE(trimmed["keys"].contains("1"));
  EXPECT_TRUE(trimmed["keys"].contains("2"));
  EXPECT_EQ(Err(Post("keys/k/trim", {{"min_available_version", 1}})),
            "minimum available version cannot be decremented");
  EXPECT_EQ(Err(Post("keys/k/config", {{"min_decryption_version", 1}})),
            "cannot set min decryption version of 1 below the min available version of 2");
  auto rows = store_->Query("SELECT COUNT(*) FROM keyring_versions WHERE version = 1", {});
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(*store::GetInt((*rows)[0], 0), 0);  // the version-1 KEK is erased
  Restart();
  EXPECT_EQ(Err(DecryptCall("k", v1)), kTooOld);
  EXPECT_FALSE(Ok(Call(Operation::kRead, "keys/k"))["keys"].contains("1"));
}

// --- datakey -----------------------------------------------------------------------------------

TEST_F(TransitTest, DataKeyPlaintextDecryptsToTheSameKey) {
  CreateKey("k");
  json plain = Ok(Post("datakey/plaintext/k"));
  EXPECT_EQ(Unb64(plain["plaintext"]).size(), 32u);
  EXPECT_EQ(plain["key_version"], 1);
  EXPECT_EQ(Ok(DecryptCall("k", plain["ciphertext"]))["plaintext"], plain["plaintext"]);
  json wrapped = Ok(Post("datakey/wrapped/k", {{"bits", 512}}));
  EXPECT_FALSE(wrapped.contains("plaintext"));
  EXPECT_EQ(Unb64(Ok(DecryptCall("k", wrapped["ciphertext"]))["plaintext"]).size(), 64u);
  EXPECT_EQ(Unb64(Ok(Post("datakey/plaintext/k", {{"bits", "128"}}))["plaintext"]).size(), 16u);
  EXPECT_EQ(Err(Post("datakey/plaintext/k", {{"bits", 100}})), "invalid bit length");
  EXPECT_EQ(Err(Post("datakey/other/k")), "Invalid path, must be 'plaintext' or 'wrapped'");
  EXPECT_EQ(Err(Post("datakey/plaintext/none")), "encryption key not found");
}

// --- HMAC --------------------------------------------------------------------------------------

TEST_F(TransitTest, HmacGenerateAndVerify) {
  CreateKey("k");
  json out = Ok(Post("hmac/k", {{"input", B64("message")}}));
  const std::string mac = out["hmac"];
  ASSERT_TRUE(mac.starts_with("vault:v1:"));
  EXPECT_EQ(Unb64(json(mac.substr(9))).size(), 32u);
  EXPECT_EQ(Ok(Post("hmac/k", {{"input", B64("message")}}))["hmac"], mac);  // deterministic
  EXPECT_EQ(Ok(Post("verify/k", {{"input", B64("message")}, {"hmac", mac}}))["valid"], true);
  EXPECT_EQ(Ok(Post("verify/k", {{"input", B64("massage")}, {"hmac", mac}}))["valid"], false);
  std::string tampered = mac;
  tampered[10] = tampered[10] == 'A' ? 'B' : 'A';
  EXPECT_EQ(Ok(Post("verify/k", {{"input", B64("message")}, {"hmac", tampered}}))["valid"], false);
  EXPECT_EQ(Err(Post("verify/k", {{"input", B64("message")}, {"hmac", "vault:v1:***"}})),
            "invalid hmac: could not decode base64");
  EXPECT_EQ(Err(Post("verify/k", {{"input", B64("message")}, {"hmac", "nope"}})),
            "invalid hmac: no prefix");

  json sha512 = Ok(Post("hmac/k/sha2-512", {{"input", B64("message")}}));
  EXPECT_EQ(Unb64(json(sha512["hmac"].get<std::string>().substr(9))).size(), 64u);
  EXPECT_EQ(
      Ok(Post("verify/k/sha2-512", {{"input", B64("message")}, {"hmac", sha512["hmac"]}}))["valid"],
      true);
  EXPECT_EQ(Ok(Post("verify/k", {{"input", B64("message")}, {"hmac", sha512["hmac"]}}))["valid"],
            false);  // another algorithm
  json body_alg = Ok(Post("hmac/k", {{"input", B64("message")}, {"algorithm", "sha2-512"}}));
  EXPECT_EQ(body_alg["hmac"], sha512["hmac"]);
  EXPECT_EQ(Err(Post("hmac/k/md5", {{"input", B64("m")}})), "unsupported algorithm md5");

  // Versions: each version has its own HMAC key; min_decryption_version retires old ones.
  Ok(Post("keys/k/rotate"));
  json v2 = Ok(Post("hmac/k", {{"input", B64("message")}}));
  EXPECT_TRUE(v2["hmac"].get<std::string>().starts_with("vault:v2:"));
  EXPECT_NE(v2["hmac"].get<std::string>().substr(9), mac.substr(9));
  json v1 = Ok(Post("hmac/k", {{"input", B64("message")}, {"key_version", 1}}));
  EXPECT_EQ(v1["hmac"], mac);
  Ok(Post("keys/k/config", {{"min_decryption_version", 2}}));
  EXPECT_EQ(Err(Post("verify/k", {{"input", B64("message")}, {"hmac", mac}})), kTooOld);
  EXPECT_EQ(Err(Post("hmac/k", {{"input", B64("m")}, {"key_version", 3}})),
            "cannot generate HMAC: version is too new");

  // Batch.
  auto batch =
      Post("hmac/k", {{"batch_input", json::array({{{"input", B64("a")}, {"reference", "1"}},
                                                   {{"input", "!"}, {"reference", "2"}}})}});
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ(batch->status, 400);
  EXPECT_TRUE((*batch->data)["batch_results"][0].contains("hmac"));
  EXPECT_EQ((*batch->data)["batch_results"][1]["error"], "illegal base64 data at input byte 0");

  // Restart: the HMAC key comes back from its wrapped form.
  Restart();
  EXPECT_EQ(Ok(Post("hmac/k", {{"input", B64("message")}}))["hmac"], v2["hmac"]);
}

TEST_F(TransitTest, HmacKeyType) {
  CreateKey("h", {{"type", "hmac"}, {"key_size", 64}});
  json body = Ok(Call(Operation::kRead, "keys/h"));
  EXPECT_EQ(body["type"], "hmac");
  EXPECT_EQ(body["supports_encryption"], false);
  EXPECT_EQ(body["supports_signing"], false);
  const std::string mac = Ok(Post("hmac/h", {{"input", B64("x")}}))["hmac"];
  EXPECT_EQ(Ok(Post("verify/h", {{"input", B64("x")}, {"hmac", mac}}))["valid"], true);
  EXPECT_EQ(Err(Post("encrypt/h", {{"plaintext", B64("x")}})),
            "key type hmac does not support encryption");
  EXPECT_EQ(Err(Post("sign/h", {{"input", B64("x")}})), "key type hmac does not support signing");
}

// --- signatures --------------------------------------------------------------------------------

// ECDSA signs a digest by the hash the request names (URL or hash_algorithm), or the input as
// given when it is prehashed; each signature verifies with OpenSSL over that digest and only
// under the same choice.
TEST_F(TransitTest, EcdsaHashAlgorithmsAndPrehashedInput) {
  CreateKey("sig", {{"type", "ecdsa-p256"}});
  auto public_key = crypto::PublicKey::FromPem(
      Ok(Call(Operation::kRead, "keys/sig"))["keys"]["1"]["public_key"].get<std::string>());
  ASSERT_TRUE(public_key.ok());
  const auto message = crypto::AsBytes("pay 10 EUR");
  const auto signature_of = [](const json& body) {
    return *crypto::Base64Decode(body["signature"].get<std::string>().substr(9));
  };
  for (const auto& [name, hash] :
       {std::pair{"sha2-224", Hash::kSha2_224}, std::pair{"sha2-384", Hash::kSha2_384},
        std::pair{"sha2-512", Hash::kSha2_512}, std::pair{"sha3-256", Hash::kSha3_256}}) {
    SCOPED_TRACE(name);
    const json by_url = Ok(Post(std::string("sign/sig/") + name, {{"input", B64("pay 10 EUR")}}));
    const json by_field =
        Ok(Post("sign/sig", {{"input", B64("pay 10 EUR")}, {"hash_algorithm", name}}));
    const auto digest = HashOf(hash, message);
    for (const json& body : {by_url, by_field}) {
      EXPECT_TRUE(
          public_key
              ->VerifyEcdsaDigest(digest, signature_of(body), crypto::EcdsaSignatureFormat::kDer)
              .ok());
    }
    EXPECT_EQ(Ok(Post(std::string("verify/sig/") + name,
                      {{"input", B64("pay 10 EUR")}, {"signature", by_url["signature"]}}))["valid"],
              true);
    // Verified under another hash (the default sha2-256), the same signature is false.
    EXPECT_EQ(Ok(Post("verify/sig",
                      {{"input", B64("pay 10 EUR")}, {"signature", by_url["signature"]}}))["valid"],
              false);
  }

  // Prehashed: the input is the digest itself, here a SHA-384 computed by the client.
  const auto digest = HashOf(Hash::kSha2_384, message);
  const std::string digest_b64 = crypto::Base64Encode(digest);
  const json prehashed = Ok(Post("sign/sig", {{"input", digest_b64}, {"prehashed", true}}));
  EXPECT_TRUE(
      public_key
          ->VerifyEcdsaDigest(digest, signature_of(prehashed), crypto::EcdsaSignatureFormat::kDer)
          .ok());
  EXPECT_EQ(Ok(Post("verify/sig", {{"input", digest_b64},
                                   {"signature", prehashed["signature"]},
                                   {"prehashed", true}}))["valid"],
            true);
  EXPECT_EQ(Ok(Post("verify/sig/sha2-384", {{"input", B64("pay 10 EUR")},
                                            {"signature", prehashed["signature"]}}))["valid"],
            true);
  EXPECT_EQ(Ok(Post("verify/sig",
                    {{"input", digest_b64}, {"signature", prehashed["signature"]}}))["valid"],
            false);  // not prehashed: its SHA-256 was not what was signed
  EXPECT_EQ(Err(Post("sign/sig", {{"input", B64(std::string(65, 'x'))}, {"prehashed", true}})),
            "a digest to sign must be 1 to 64 bytes");

  // Ed25519 signs the message itself: a prehashed input is refused, not signed as if it were.
  CreateKey("ed", {{"type", "ed25519"}});
  EXPECT_EQ(Err(Post("sign/ed", {{"input", digest_b64}, {"prehashed", true}})),
            "prehashed input is not supported for ed25519 keys");
}

TEST_F(TransitTest, EcdsaSignVerifyAsn1AndJws) {
  CreateKey("sig", {{"type", "ecdsa-p256"}});
  json body = Ok(Call(Operation::kRead, "keys/sig"));
  EXPECT_EQ(body["supports_signing"], true);
  EXPECT_EQ(body["supports_encryption"], false);
  const json v1 = body["keys"]["1"];
  EXPECT_EQ(v1["name"], "P-256");
  ASSERT_TRUE(v1["public_key"].get<std::string>().starts_with("-----BEGIN PUBLIC KEY-----"));
  EXPECT_TRUE(v1["creation_time"].get<std::string>().ends_with("Z"));
  auto public_key = crypto::PublicKey::FromPem(v1["public_key"].get<std::string>());
  ASSERT_TRUE(public_key.ok());

  json signed_out = Ok(Post("sign/sig", {{"input", B64("pay 10 EUR")}}));
  const std::string sig = signed_out["signature"];
  EXPECT_EQ(signed_out["key_version"], 1);
  ASSERT_TRUE(sig.starts_with("vault:v1:"));
  // asn1: standard base64 of a DER signature, verifiable with the published key.
  auto der = crypto::Base64Decode(sig.substr(9));
  ASSERT_TRUE(der.ok());
  EXPECT_TRUE(public_key
                  ->Verify(crypto::SignatureAlgorithm::kEcdsaP256Sha256,
                           crypto::AsBytes("pay 10 EUR"), *der, crypto::EcdsaSignatureFormat::kDer)
                  .ok());
  EXPECT_EQ(Ok(Post("verify/sig", {{"input", B64("pay 10 EUR")}, {"signature", sig}}))["valid"],
            true);
  EXPECT_EQ(Ok(Post("verify/sig", {{"input", B64("pay 99 EUR")}, {"signature", sig}}))["valid"],
            false);
  // A tampered signature is a clean "false", a malformed one a 400.
  auto bytes = *der;
  bytes[bytes.size() - 1] ^= 1;
  const std::string tampered = "vault:v1:" + crypto::Base64Encode(bytes);
  EXPECT_EQ(
      Ok(Post("verify/sig", {{"input", B64("pay 10 EUR")}, {"signature", tampered}}))["valid"],
      false);
  EXPECT_EQ(Err(Post("verify/sig", {{"input", B64("x")}, {"signature", "vault:v1:%%"}})),
            "invalid base64 signature value");
  EXPECT_EQ(Err(Post("verify/sig", {{"input", B64("x")}, {"signature", "sig"}})),
            "invalid signature: no prefix");
  EXPECT_EQ(Err(Post("verify/sig", {{"input", B64("x")}})),
            "neither a 'signature' nor an 'hmac' were given to verify");
  EXPECT_EQ(Err(Post("verify/sig", {{"input", B64("x")}, {"signature", "vault:v2:AAAA"}})),
            "invalid signature: version is too new");

  // JWS marshaling: base64url r||s; a compact JWS built around it verifies with crypto/jws.h.
  const std::string signing_input =
      crypto::JwsSigningInput({{"alg", "ES256"}, {"typ", "JWT"}}, crypto::AsBytes("{\"a\":1}"));
  json jws_out =
      Ok(Post("sign/sig", {{"input", B64(signing_input)}, {"marshaling_algorithm", "jws"}}));
  const std::string jws_sig = jws_out["signature"];
  auto raw = crypto::Base64UrlDecode(jws_sig.substr(9));
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw->size(), 64u);
  auto parts = crypto::ParseJwsCompact(crypto::JwsCompact(signing_input, *raw));
  ASSERT_TRUE(parts.ok());
  EXPECT_TRUE(
      crypto::VerifyJws(*parts, *public_key, crypto::SignatureAlgorithm::kEcdsaP256Sha256).ok());
  EXPECT_EQ(Ok(Post("verify/sig", {{"input", B64(signing_input)},
                                   {"signature", jws_sig},
                                   {"marshaling_algorithm", "jws"}}))["valid"],
            true);

  // Refused options.
  EXPECT_EQ(Err(Post("sign/sig/md5", {{"input", B64("x")}})), "unsupported hash algorithm md5");
  EXPECT_EQ(Err(Post("sign/sig", {{"input", B64("x")}, {"marshaling_algorithm", "pem"}})),
            "invalid marshaling type \"pem\"");
  EXPECT_EQ(Err(Post("sign/none", {{"input", B64("x")}})), "signing key not found");
  CreateKey("aes");
  EXPECT_EQ(Err(Post("sign/aes", {{"input", B64("x")}})),
            "key type aes256-gcm96 does not support signing");

  // Rotation: new HSM key; old signatures verify until min_decryption_version retires them.
  json rotated = Ok(Post("keys/sig/rotate"));
  EXPECT_NE(rotated["keys"]["2"]["public_key"], v1["public_key"]);
  json s2 = Ok(Post("sign/sig", {{"input", B64("pay 10 EUR")}}));
  EXPECT_EQ(s2["key_version"], 2);
  EXPECT_EQ(Ok(Post("verify/sig", {{"input", B64("pay 10 EUR")}, {"signature", sig}}))["valid"],
            true);
  Ok(Post("keys/sig/config", {{"min_decryption_version", 2}}));
  EXPECT_EQ(Err(Post("verify/sig", {{"input", B64("pay 10 EUR")}, {"signature", sig}})), kTooOld);

  // The private keys are non-extractable HSM token objects.
  auto found = hsm_->FindSigningKey("lockbox/transit/" + entry_.uuid + "/sig/v2");
  ASSERT_TRUE(found.ok());
  auto attrs = hsm_->GetAttributes(found->private_key);
  ASSERT_TRUE(attrs.ok());
  EXPECT_TRUE(attrs->sensitive);
  EXPECT_FALSE(attrs->extractable);
  EXPECT_TRUE(attrs->token);

  // Deleting the key destroys the HSM objects.
  AllowDeletion("sig");
  auto deleted = Call(Operation::kDelete, "keys/sig");
  ASSERT_TRUE(deleted.ok()) << deleted.status().ToString();
  EXPECT_EQ(hsm_->FindSigningKey("lockbox/transit/" + entry_.uuid + "/sig/v2").status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(hsm_->FindSigningKey("lockbox/transit/" + entry_.uuid + "/sig/v1").status().code(),
            StatusCode::kNotFound);
}

TEST_F(TransitTest, Ed25519SignVerifyAndBatch) {
  CreateKey("ed", {{"type", "ed25519"}});
  json body = Ok(Call(Operation::kRead, "keys/ed"));
  EXPECT_EQ(body["keys"]["1"]["name"], "ed25519");
  auto raw_public = crypto::Base64Decode(body["keys"]["1"]["public_key"].get<std::string>());
  ASSERT_TRUE(raw_public.ok());
  EXPECT_EQ(raw_public->size(), 32u);
  auto public_key = crypto::PublicKeyFromJwk(
      {{"kty", "OKP"}, {"crv", "Ed25519"}, {"x", crypto::Base64UrlEncode(*raw_public)}});
  ASSERT_TRUE(public_key.ok());

  auto batch =
      Post("sign/ed", {{"batch_input", json::array({{{"input", B64("a")}, {"reference", "A"}},
                                                    {{"input", B64("b")}, {"reference", "B"}}})}});
  ASSERT_TRUE(batch.ok());
  const json results = (*batch->data)["batch_results"];
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[1]["reference"], "B");
  for (int i = 0; i < 2; ++i) {
    auto sig = crypto::Base64Decode(results[i]["signature"].get<std::string>().substr(9));
    ASSERT_TRUE(sig.ok());
    EXPECT_TRUE(public_key
                    ->Verify(crypto::SignatureAlgorithm::kEd25519,
                             crypto::AsBytes(i == 0 ? "a" : "b"), *sig)
                    .ok());
  }
  auto verify =
      Post("verify/ed",
           {{"batch_input", json::array({
                                {{"input", B64("a")}, {"signature", results[0]["signature"]}},
                                {{"input", B64("a")}, {"signature", results[1]["signature"]}},
                            })}});
  ASSERT_TRUE(verify.ok());
  EXPECT_EQ(verify->status, 0);
  EXPECT_EQ((*verify->data)["batch_results"][0]["valid"], true);
  EXPECT_EQ((*verify->data)["batch_results"][1]["valid"], false);

  // Survives a restart (HSM token objects found again by label).
  Restart();
  json s = Ok(Post("sign/ed", {{"input", B64("after restart")}}));
  EXPECT_EQ(Ok(Post("verify/ed",
                    {{"input", B64("after restart")}, {"signature", s["signature"]}}))["valid"],
            true);
}

// --- random, hash ------------------------------------------------------------------------------

TEST_F(TransitTest, RandomBytes) {
  json def = Ok(Post("random"));
  EXPECT_EQ(Unb64(def["random_bytes"]).size(), 32u);
  EXPECT_NE(Ok(Post("random"))["random_bytes"], def["random_bytes"]);
  json hex = Ok(Post("random/16", {{"format", "hex"}}));
  EXPECT_EQ(hex["random_bytes"].get<std::string>().size(), 32u);
  EXPECT_TRUE(crypto::HexDecode(hex["random_bytes"].get<std::string>()).ok());
  EXPECT_EQ(Unb64(Ok(Post("random/platform/8"))["random_bytes"]).size(), 8u);
  EXPECT_EQ(Unb64(Ok(Post("random/all", {{"bytes", 4}}))["random_bytes"]).size(), 4u);
  EXPECT_EQ(Unb64(Ok(Post("random", {{"bytes", "12"}}))["random_bytes"]).size(), 12u);
  EXPECT_EQ(Err(Post("random", {{"bytes", 0}})), "\"bytes\" cannot be less than 1");
  EXPECT_EQ(Err(Post("random/200000")), "\"bytes\" should be less than 131072");
  EXPECT_EQ(Err(Post("random", {{"format", "base32"}})),
            "unsupported encoding format \"base32\"; must be \"hex\" or \"base64\"");
  EXPECT_EQ(Err(Post("random/moon/8")),
            "unsupported entropy source \"moon\"; must be \"platform\" or \"seal\", or \"all\"");
  EXPECT_EQ(Err(Post("random/xyz")), "error parsing url-set byte count: invalid syntax");
}

TEST_F(TransitTest, HashFormats) {
  EXPECT_EQ(Ok(Post("hash", {{"input", B64("abc")}}))["sum"],
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Ok(Post("hash/sha3-256", {{"input", B64("abc")}}))["sum"],
            "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532");
  EXPECT_EQ(
      Ok(Post("hash",
              {{"input", B64("abc")}, {"algorithm", "sha2-224"}, {"format", "base64"}}))["sum"],
      "Iwl9IjQF2CKGQqR3vaJVsyqtvOS9oLP342ydpw==");
  EXPECT_EQ(Err(Post("hash/sha1", {{"input", B64("abc")}})), "unsupported algorithm sha1");
  EXPECT_EQ(Err(Post("hash", {{"input", B64("abc")}, {"format", "raw"}})),
            "unsupported encoding format \"raw\"; must be \"hex\" or \"base64\"");
  EXPECT_EQ(Err(Post("hash", {{"input", "a b"}})),
            "unable to decode input as base64: illegal base64 data at input byte 1");
}

// --- audit, crash leftovers ----------------------------------------------------------------------

TEST_F(TransitTest, EveryAnswerIsAuditedWithoutSecrets) {
  CreateKey("k");
  const std::string secret = "the plaintext must not be audited";
  const std::string ct = Encrypt("k", secret);
  Ok(DecryptCall("k", ct));
  auto events = AuditEvents();
  std::vector<std::string> ops;
  for (const auto& e : events) {
    ops.push_back(e.op);
    const std::string text = *audit::CanonicalEvent(e);
    EXPECT_EQ(text.find(secret), std::string::npos);
    EXPECT_EQ(text.find(B64(secret)), std::string::npos);
  }
  EXPECT_NE(std::find(ops.begin(), ops.end(), "transit.create"), ops.end());
  EXPECT_NE(std::find(ops.begin(), ops.end(), "keyring.create"), ops.end());
  ASSERT_GE(events.size(), 2u);
  const auto& decrypt = events.back();
  EXPECT_EQ(decrypt.op, "transit.decrypt");
  EXPECT_EQ(decrypt.path, "transit/decrypt/k");
  EXPECT_EQ(decrypt.actor, "accessor-test");
  EXPECT_EQ(events[events.size() - 2].op, "transit.encrypt");
  EXPECT_EQ(events[events.size() - 2].details["key_version"], 1);
}

TEST_F(TransitTest, WarmEncryptDecryptStayOutOfTheHsm) {
  CreateKey("k");
  const std::string first = Encrypt("k", std::string(256, 'p'));
  Ok(DecryptCall("k", first));
  const int wraps = hsm_->wraps.load(), unwraps = hsm_->unwraps.load();
  for (int i = 0; i < 50; ++i) {
    const std::string ct = Encrypt("k", std::string(256, static_cast<char>('a' + i % 26)));
    EXPECT_EQ(Unb64(Ok(DecryptCall("k", ct))["plaintext"]).size(), 256u);
  }
  EXPECT_EQ(hsm_->wraps.load(), wraps);
  EXPECT_EQ(hsm_->unwraps.load(), unwraps);
}

// What the router attempts on an I/O thread (IsAttemptableUse): uses of a warm key complete
// without a blocking call; an encrypt that would create its key refuses before changing anything.
TEST_F(TransitTest, WarmUsesCompleteWithoutBlockingAndUpsertRefusesTo) {
  CreateKey("k");
  const std::string ct = Encrypt("k", "warm");  // fills the keyring's caches
  Ok(DecryptCall("k", ct));
  for (const char* use :
       {"encrypt/k", "decrypt/k", "rewrap/k", "datakey/plaintext/k", "hmac/k", "hmac/k/sha2-512",
        "sign/k", "verify/k", "random", "random/32", "hash", "hash/sha2-512"}) {
    EXPECT_TRUE(backend_->IsAttemptableUse(use)) << use;
  }
  for (const char* change :
       {"keys/k", "keys/k/rotate", "keys/k/config", "keys/k/trim", "restore", "restore/k",
        "export/encryption-key/k", "backup/k", "", "encrypted/k"}) {
    EXPECT_FALSE(backend_->IsAttemptableUse(change)) << change;
  }
  {
    blocking::NonBlockingScope scope;
    auto encrypted =
        backend_->HandleRequest(Req(Operation::kUpdate, "encrypt/k", {{"plaintext", B64("x")}}));
    EXPECT_TRUE(encrypted.ok()) << encrypted.status().ToString();
    auto decrypted =
        backend_->HandleRequest(Req(Operation::kUpdate, "decrypt/k", {{"ciphertext", ct}}));
    ASSERT_TRUE(decrypted.ok()) << decrypted.status().ToString();
    EXPECT_EQ(Unb64(decrypted->data->at("plaintext")), "warm");
    EXPECT_FALSE(scope.blocked());
  }
  const int kek_generations = hsm_->kek_generations.load();
  {
    blocking::NonBlockingScope scope;
    auto upsert =
        backend_->HandleRequest(Req(Operation::kCreate, "encrypt/new", {{"plaintext", B64("x")}}));
    EXPECT_EQ(upsert.status().code(), StatusCode::kUnavailable);
    EXPECT_TRUE(scope.blocked());
  }
  EXPECT_EQ(hsm_->kek_generations.load(), kek_generations);  // refused before the key store
  EXPECT_EQ(Err(Call(Operation::kRead, "keys/new"), 404), "");
}

TEST_F(TransitTest, AuditOutageFailsClosedWithoutResultsOrChanges) {
  CreateKey("k");
  CreateKey("s", {{"type", "ed25519"}});
  const std::string ct = Encrypt("k", "secret");
  store_->fail_commits = true;
  EXPECT_EQ(Err(DecryptCall("k", ct), 503).find("audit log unavailable"), 0u);
  EXPECT_EQ(Err(Post("encrypt/k", {{"plaintext", B64("x")}}), 503).find("audit log unavailable"),
            0u);
  EXPECT_EQ(Err(Post("sign/s", {{"input", B64("x")}}), 503).find("audit log unavailable"), 0u);
  auto batch = Post("decrypt/k", {{"batch_input", json::array({{{"ciphertext", ct}}})}});
  EXPECT_EQ(batch.status().code(), StatusCode::kUnavailable);
  // Changes fail without leaving anything behind.
  EXPECT_FALSE(Post("keys/k/rotate").ok());
  EXPECT_FALSE(Call(Operation::kCreate, "keys/new").ok());
  store_->fail_commits = false;
  EXPECT_EQ(Ok(Call(Operation::kRead, "keys/k"))["latest_version"], 1);
  EXPECT_EQ(Err(Call(Operation::kRead, "keys/new"), 404), "");
  EXPECT_EQ(Unb64(Ok(DecryptCall("k", ct))["plaintext"]), "secret");
}

TEST_F(TransitTest, OrphanKeyringKeyFromACutShortCreateIsReplaced) {
  // A create that stopped after the keyring step leaves a keyring key without a transit row.
  const std::string keyring_name = TransitKeyringName(entry_, "orphan");
  ASSERT_TRUE(keyring_->CreateKey(keyring_name).ok());
  auto orphan_ct = keyring_->Encrypt(keyring_name, crypto::AsBytes("x"));
  ASSERT_TRUE(orphan_ct.ok());
  CreateKey("orphan");
  EXPECT_EQ(Err(DecryptCall("orphan", *orphan_ct)), kAuthFailed);
  EXPECT_EQ(Unb64(Ok(DecryptCall("orphan", Encrypt("orphan", "fresh")))["plaintext"]), "fresh");
}

TEST_F(TransitTest, PurgeDestroysEverythingOfTheMount) {
  CreateKey("a");
  CreateKey("s", {{"type", "ecdsa-p256"}});
  ASSERT_TRUE(keyring_->CreateKey(TransitKeyringName(entry_, "leftover")).ok());
  ASSERT_TRUE(backend_->Purge().ok());
  EXPECT_TRUE(keyring_->ListKeys().empty());
  EXPECT_EQ(Err(Call(Operation::kList, "keys/"), 404), "");
  EXPECT_EQ(hsm_->FindSigningKey("lockbox/transit/" + entry_.uuid + "/s/v1").status().code(),
            StatusCode::kNotFound);
  Restart();
  EXPECT_EQ(Err(Call(Operation::kList, "keys/"), 404), "");
}

}  // namespace
}  // namespace lockbox::transit
