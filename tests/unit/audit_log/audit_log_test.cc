#include "server/audit_log/audit_log.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <iterator>
#include <latch>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "audit/checkpoint.h"
#include "audit/event.h"
#include "audit/verifier.h"
#include "crypto/jwk.h"
#include "crypto/signature.h"
#include "tests/support/flaky_store.h"
#include "tests/support/softhsm_token.h"
#include "tests/unit/store/fault_vfs.h"

namespace lockbox::audit_log {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

audit::Event MakeEvent(std::string op, std::string path = "k1") {
  audit::Event e;
  e.request_id = "req-" + op;
  e.actor = "system";
  e.op = std::move(op);
  e.path = std::move(path);
  e.remote_addr = "127.0.0.1";
  return e;
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Polls `done` (no fixed sleep: yields between checks) until it holds or `limit` passes.
template <typename Pred>
bool WaitFor(Pred done, std::chrono::steady_clock::duration limit = seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

class AuditLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    token_ = std::make_unique<testing::SoftHsmToken>();
    db_path_ = token_->dir().file("lockbox.db");
    options_.public_key_dir = token_->dir().path();
    OpenAll();
  }
  void TearDown() override {
    log_.reset();
    store_.reset();
    hsm_.reset();
  }

  void OpenHsmAndStore(const std::string& vfs = "") {
    const hsm::HsmConfig config = token_->hsm_config();
    auto h = hsm::Hsm::Open(config);
    ASSERT_TRUE(h.ok()) << h.status().ToString();
    hsm_ = std::move(*h);
    store::SqliteOptions store_options;
    store_options.path = db_path_;
    store_options.vfs = vfs;
    auto s = store::OpenSqliteStore(store_options);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    ASSERT_TRUE(store_->Migrate({{"test", 1, "CREATE TABLE state (id INTEGER PRIMARY KEY)"}}).ok());
  }

  void OpenAll(const std::string& vfs = "") {
    OpenHsmAndStore(vfs);
    auto log = AuditLog::Open(*store_, *hsm_, options_);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    log_ = std::move(*log);
  }

  void Restart(const std::string& vfs = "") {
    log_.reset();
    store_.reset();
    hsm_.reset();
    OpenAll(vfs);
  }

  crypto::PublicKey PublicKeyFromFile() {
    auto key = crypto::PublicKey::FromPem(ReadFile(token_->dir().path() / "audit-public-key.pem"));
    EXPECT_TRUE(key.ok()) << key.status().ToString();
    return std::move(key).value();
  }

  StatusOr<audit::VerifySummary> Verify() {
    return audit::VerifyDatabase(db_path_, PublicKeyFromFile(), std::nullopt);
  }

  std::vector<std::uint64_t> EventSeqs() {
    auto rows =
        store_->Query("SELECT seq FROM audit_records WHERE kind = 'event' ORDER BY pos", {});
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    std::vector<std::uint64_t> seqs;
    if (rows.ok()) {
      for (const auto& r : *rows) seqs.push_back(static_cast<std::uint64_t>(*store::GetInt(r, 0)));
    }
    return seqs;
  }

  std::vector<std::string> CheckpointKinds() {
    auto rows =
        store_->Query("SELECT body FROM audit_records WHERE kind = 'checkpoint' ORDER BY pos", {});
    EXPECT_TRUE(rows.ok());
    std::vector<std::string> kinds;
    const crypto::PublicKey key = PublicKeyFromFile();
    for (const auto& r : *rows) {
      auto cp = audit::VerifyCheckpoint(*store::GetText(r, 0), key);
      EXPECT_TRUE(cp.ok()) << cp.status().ToString();
      if (cp.ok()) kinds.emplace_back(audit::CheckpointKindName(cp->kind));
    }
    return kinds;
  }

  std::int64_t StateRows() {
    auto rows = store_->Query("SELECT count(*) FROM state", {});
    return rows.ok() ? *store::GetInt((*rows)[0], 0) : -1;
  }

  std::unique_ptr<testing::SoftHsmToken> token_;
  std::string db_path_;
  AuditLogOptions options_;
  std::unique_ptr<hsm::Hsm> hsm_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<AuditLog> log_;
};

std::vector<std::uint64_t> Iota(std::uint64_t n) {
  std::vector<std::uint64_t> v;
  for (std::uint64_t i = 1; i <= n; ++i) v.push_back(i);
  return v;
}

// ---- Opening ------------------------------------------------------------------------------

TEST_F(AuditLogTest, OpenWritesStartCheckpointAndPublicKeys) {
  const Head h = log_->head();
  EXPECT_EQ(h.seq, 0u);
  EXPECT_EQ(h.hash, audit::GenesisHash(h.log_id));
  EXPECT_EQ(h.log_id.rfind("lbx-log-", 0), 0u) << h.log_id;
  ASSERT_TRUE(h.checkpoint.has_value());
  const crypto::PublicKey key = PublicKeyFromFile();
  auto cp = audit::VerifyCheckpoint(*h.checkpoint, key);
  ASSERT_TRUE(cp.ok()) << cp.status().ToString();
  EXPECT_EQ(cp->kind, audit::CheckpointKind::kStart);
  EXPECT_EQ(cp->seq, 0u);
  EXPECT_EQ(cp->log_id, h.log_id);
  EXPECT_EQ(CheckpointKinds(), (std::vector<std::string>{"start"}));

  // The JWK file, the JWKS and the PEM all describe the same key.
  const auto jwk = nlohmann::json::parse(ReadFile(token_->dir().path() / "audit-public-key.jwk"));
  EXPECT_EQ(jwk.value("kid", ""), options_.signing_key_label);
  EXPECT_EQ(jwk.value("alg", ""), "ES256");
  EXPECT_FALSE(jwk.contains("d"));
  EXPECT_EQ(log_->PublicJwks()["keys"][0], jwk);
  auto from_jwk = crypto::PublicKeyFromJwk(jwk);
  ASSERT_TRUE(from_jwk.ok());
  EXPECT_EQ(from_jwk->ToPem(), log_->PublicKeyPem());
  EXPECT_EQ(ReadFile(token_->dir().path() / "audit-public-key.pem"), log_->PublicKeyPem());

  // The HMAC key is stored only wrapped: the meta table holds no 32-byte raw key.
  auto meta = store_->Query("SELECT key, length(value), typeof(value) FROM audit_meta", {});
  ASSERT_TRUE(meta.ok());
  std::map<std::string, std::string> types;
  for (const auto& r : *meta) types[*store::GetText(r, 0)] = *store::GetText(r, 2);
  EXPECT_EQ(types, (std::map<std::string, std::string>{
                       {"hmac_kek", "blob"}, {"hmac_key", "blob"}, {"log_id", "text"}}));
  auto verified = Verify();
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_EQ(verified->events, 0u);
  EXPECT_EQ(verified->checkpoints, 1u);
}

TEST_F(AuditLogTest, Ed25519SigningKeyUsesEdDsa) {
  log_.reset();
  options_.signing_key_label = "lockbox/audit/ed";
  options_.signing_algorithm = hsm::SigningAlgorithm::kEd25519;
  auto log = AuditLog::Open(*store_, *hsm_, options_);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  log_ = std::move(*log);
  EXPECT_EQ(log_->PublicJwks()["keys"][0].value("alg", ""), "EdDSA");
  ASSERT_TRUE(log_->Record(MakeEvent("op")).ok());
  ASSERT_TRUE(log_->Close().ok());
  auto key = crypto::PublicKeyFromJwk(log_->PublicJwks()["keys"][0]);
  ASSERT_TRUE(key.ok());
  // The first log (ES256 key) wrote a start and stop checkpoint: verify only the new tail.
  auto cp = audit::VerifyCheckpoint(*log_->head().checkpoint, *key);
  ASSERT_TRUE(cp.ok()) << cp.status().ToString();
  EXPECT_EQ(cp->kind, audit::CheckpointKind::kStop);
  EXPECT_EQ(cp->seq, 1u);
}

// ---- Appending inside units -----------------------------------------------------------------

TEST_F(AuditLogTest, CommittedRecordsWakeTheForwarderHook) {
  log_.reset();
  std::atomic<int> wakes{0};
  options_.on_records_committed = [&] { ++wakes; };
  auto log = AuditLog::Open(*store_, *hsm_, options_);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  log_ = std::move(*log);
  const int after_start = wakes.load();
  EXPECT_GE(after_start, 1);  // the start checkpoint
  ASSERT_TRUE(log_->Record(MakeEvent("op")).ok());
  EXPECT_EQ(wakes.load(), after_start + 1);
  // An event whose unit rolls back wakes nobody.
  EXPECT_FALSE(store_
                   ->Commit([&](store::Transaction& tx) -> Status {
                     LOCKBOX_RETURN_IF_ERROR(log_->Append(tx, MakeEvent("op")));
                     return AbortedError("the state change failed");
                   })
                   .ok());
  EXPECT_EQ(wakes.load(), after_start + 1);
  ASSERT_TRUE(log_->WriteCheckpoint(audit::CheckpointKind::kPeriodic).ok());
  EXPECT_EQ(wakes.load(), after_start + 2);
  // The stop checkpoint wakes it too; close while `wakes` is still alive.
  log_.reset();
  EXPECT_EQ(wakes.load(), after_start + 3);
}

TEST_F(AuditLogTest, EventsCommitWithTheirStateChange) {
  for (std::int64_t i = 1; i <= 3; ++i) {
    Status s = store_->Commit([&](store::Transaction& tx) -> Status {
      LOCKBOX_RETURN_IF_ERROR(tx.Execute("INSERT INTO state (id) VALUES (?)", {i}).status());
      return log_->Append(tx, MakeEvent("state.create", std::to_string(i)));
    });
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  EXPECT_EQ(StateRows(), 3);
  EXPECT_EQ(EventSeqs(), Iota(3));
  const Head h = log_->head();
  EXPECT_EQ(h.seq, 3u);
  auto rows =
      store_->Query("SELECT body, hash FROM audit_records WHERE seq = 3 AND kind = 'event'", {});
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  auto event = audit::ParseCanonicalEvent(*store::GetText((*rows)[0], 0));
  ASSERT_TRUE(event.ok()) << event.status().ToString();
  EXPECT_EQ(event->seq, 3u);
  EXPECT_EQ(event->log_id, h.log_id);
  EXPECT_EQ(event->path, "3");
  EXPECT_FALSE(event->time.empty());
  const store::Blob stored = *store::GetBlob((*rows)[0], 1);
  EXPECT_EQ(stored, store::Blob(h.hash.begin(), h.hash.end()));
  auto verified = Verify();
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_EQ(verified->events, 3u);
  EXPECT_EQ(verified->last_seq, 3u);
  EXPECT_EQ(verified->head, h.hash);
}

TEST_F(AuditLogTest, FailingUnitLeavesNeitherRowNorGap) {
  ASSERT_TRUE(log_->Record(MakeEvent("first")).ok());
  // The unit appends, then fails: its state change and its event roll back together.
  Status s = store_->Commit([&](store::Transaction& tx) -> Status {
    LOCKBOX_RETURN_IF_ERROR(tx.Execute("INSERT INTO state (id) VALUES (1)", {}).status());
    LOCKBOX_RETURN_IF_ERROR(log_->Append(tx, MakeEvent("doomed")));
    LOCKBOX_RETURN_IF_ERROR(log_->Append(tx, MakeEvent("doomed too")));
    return AbortedError("cas mismatch");
  });
  EXPECT_EQ(s, AbortedError("cas mismatch"));
  // A unit whose event cannot be encoded fails as a whole too.
  audit::Event bad = MakeEvent("bad");
  bad.details["nested"] = nlohmann::json::object({{"x", 1}});
  s = store_->Commit([&](store::Transaction& tx) -> Status {
    LOCKBOX_RETURN_IF_ERROR(tx.Execute("INSERT INTO state (id) VALUES (2)", {}).status());
    return log_->Append(tx, bad);
  });
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_EQ(log_->Record(bad).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(StateRows(), 0);
  EXPECT_EQ(log_->head().seq, 1u);

  ASSERT_TRUE(log_->Record(MakeEvent("second")).ok());
  EXPECT_EQ(EventSeqs(), Iota(2));
  auto verified = Verify();
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_EQ(verified->events, 2u);
}

TEST_F(AuditLogTest, ConcurrentRecordsAreGapFreeAndVerify) {
  constexpr int kThreads = 16;
  constexpr int kPerThread = 50;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        // Every third submission is a unit with a state change; a few of those fail.
        Status s;
        if (i % 3 == 0) {
          const std::int64_t id = t * 1000 + i;
          s = store_->Commit([&](store::Transaction& tx) -> Status {
            LOCKBOX_RETURN_IF_ERROR(tx.Execute("INSERT INTO state (id) VALUES (?)", {id}).status());
            LOCKBOX_RETURN_IF_ERROR(log_->Append(tx, MakeEvent("unit")));
            if (i % 9 == 0) return AbortedError("planned");
            return Status::Ok();
          });
          if (i % 9 == 0 && s.code() == StatusCode::kAborted) continue;
        } else {
          s = log_->Record(MakeEvent("record." + std::to_string(t)));
        }
        if (!s.ok()) failures.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(failures.load(), 0);
  int planned_failures = 0;
  for (int i = 0; i < kPerThread; ++i) planned_failures += (i % 9 == 0) ? 1 : 0;
  const std::uint64_t expected = kThreads * (kPerThread - planned_failures);
  EXPECT_EQ(EventSeqs(), Iota(expected));
  EXPECT_EQ(log_->head().seq, expected);
  auto verified = Verify();
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_EQ(verified->events, expected);
}

TEST_F(AuditLogTest, QueuedRecordsShareOneUnitAndEachIsToldOnceDurable) {
  // Hold the writer in a unit until every record is queued behind it.
  std::latch gate_running(1);
  std::latch all_queued(1);
  std::thread gate([&] {
    EXPECT_TRUE(store_
                    ->Commit([&](store::Transaction&) {
                      gate_running.count_down();
                      all_queued.wait();
                      return Status::Ok();
                    })
                    .ok());
  });
  gate_running.wait();
  const std::uint64_t units_before = store_->stats().units;
  constexpr int kRecords = 40;
  std::mutex mu;
  std::vector<Status> results;
  std::atomic<std::uint32_t> done{0};
  for (int i = 0; i < kRecords; ++i) {
    audit::Event event = MakeEvent("async." + std::to_string(i));
    if (i == 7) event.details = nlohmann::json::array();  // refused by the canonical encoding
    log_->RecordAsync(std::move(event), [&](const Status& s) {
      std::lock_guard lock(mu);
      results.push_back(s);
      done.fetch_add(1);
      done.notify_all();
    });
  }
  all_queued.count_down();
  gate.join();
  for (std::uint32_t n; (n = done.load()) < kRecords;) done.wait(n);
  ASSERT_EQ(results.size(), static_cast<std::size_t>(kRecords));
  int refused = 0;
  for (const Status& s : results) {
    if (!s.ok()) {
      ++refused;
      EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    }
  }
  EXPECT_EQ(refused, 1);                                // the bad event fails alone
  EXPECT_EQ(store_->stats().units - units_before, 1u);  // after the gate, one unit for them all
  EXPECT_EQ(EventSeqs(), Iota(kRecords - 1));
  auto verified = Verify();
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
}

TEST_F(AuditLogTest, AsyncRecordOnAFailingStoreFailsAndAfterCloseIsRefused) {
  log_.reset();
  testing::FlakyStore flaky(*store_);
  auto log = AuditLog::Open(flaky, *hsm_, options_);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  flaky.fail_commits = true;
  Status seen = Status::Ok();
  (*log)->RecordAsync(MakeEvent("lost"), [&](const Status& s) { seen = s; });  // flaky: inline
  EXPECT_EQ(seen.code(), StatusCode::kUnavailable);
  flaky.fail_commits = false;
  ASSERT_TRUE((*log)->Close().ok());
  (*log)->RecordAsync(MakeEvent("late"), [&](const Status& s) { seen = s; });
  EXPECT_EQ(seen.code(), StatusCode::kUnavailable);
}

// ---- Restart --------------------------------------------------------------------------------

TEST_F(AuditLogTest, RestartContinuesTheChain) {
  const std::string log_id = log_->head().log_id;
  const std::string hmac = log_->Hmac("token-value");
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(log_->Record(MakeEvent("before")).ok());
  Restart();
  EXPECT_EQ(log_->head().log_id, log_id);
  EXPECT_EQ(log_->head().seq, 5u);
  EXPECT_EQ(log_->Hmac("token-value"), hmac);  // the HMAC key came back from its wrapped form
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(log_->Record(MakeEvent("after")).ok());
  ASSERT_TRUE(log_->Close().ok());
  EXPECT_EQ(EventSeqs(), Iota(10));
  EXPECT_EQ(CheckpointKinds(), (std::vector<std::string>{"start", "stop", "start", "stop"}));
  auto verified = Verify();
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_EQ(verified->events, 10u);
  EXPECT_EQ(verified->checkpoints, 4u);
  EXPECT_EQ(verified->log_id, log_id);
  EXPECT_EQ(verified->head, log_->head().hash);
  // The newest checkpoint, kept outside, is a valid trusted checkpoint for the whole log.
  auto trusted = audit::VerifyDatabase(db_path_, PublicKeyFromFile(), *log_->head().checkpoint);
  EXPECT_TRUE(trusted.ok()) << trusted.status().ToString();
}

// ---- Checkpoints ----------------------------------------------------------------------------

TEST_F(AuditLogTest, PeriodicCheckpointAfterNEvents) {
  log_.reset();
  options_.checkpoint_every_events = 10;
  options_.checkpoint_every = std::chrono::hours(1);
  auto log = AuditLog::Open(*store_, *hsm_, options_);
  ASSERT_TRUE(log.ok());
  log_ = std::move(*log);
  const crypto::PublicKey key = PublicKeyFromFile();
  auto covered = [&]() -> std::uint64_t {
    auto cp = audit::VerifyCheckpoint(*log_->head().checkpoint, key);
    return cp.ok() && cp->kind == audit::CheckpointKind::kPeriodic ? cp->seq : 0;
  };
  for (int i = 0; i < 9; ++i) ASSERT_TRUE(log_->Record(MakeEvent("e")).ok());
  ASSERT_TRUE(log_->Record(MakeEvent("tenth")).ok());
  ASSERT_TRUE(WaitFor([&] { return covered() >= 10; })) << "no periodic checkpoint after 10";
  EXPECT_EQ(covered(), 10u);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(log_->Record(MakeEvent("more")).ok());
  ASSERT_TRUE(WaitFor([&] { return covered() >= 20; })) << "no periodic checkpoint after 20";
  auto verified = Verify();
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_GE(verified->checkpoints, 4u);  // 2 starts, 1 stop, 2 periodic
}

TEST_F(AuditLogTest, IdleLogStillWritesPeriodicCheckpoints) {
  log_.reset();
  options_.checkpoint_every = milliseconds(50);
  auto log = AuditLog::Open(*store_, *hsm_, options_);
  ASSERT_TRUE(log.ok());
  log_ = std::move(*log);
  const crypto::PublicKey key = PublicKeyFromFile();
  const std::string start = *log_->head().checkpoint;
  std::set<std::string> seen = {start};
  // Two fresh periodic checkpoints with no event at all: silence is visible.
  ASSERT_TRUE(WaitFor([&] {
    seen.insert(*log_->head().checkpoint);
    return seen.size() >= 3;
  }));
  auto cp = audit::VerifyCheckpoint(*log_->head().checkpoint, key);
  ASSERT_TRUE(cp.ok());
  EXPECT_EQ(cp->kind, audit::CheckpointKind::kPeriodic);
  EXPECT_EQ(cp->seq, 0u);
  EXPECT_TRUE(Verify().ok());
}

TEST_F(AuditLogTest, CloseWritesStopOnceAndRefusesLaterEvents) {
  ASSERT_TRUE(log_->Record(MakeEvent("e")).ok());
  ASSERT_TRUE(log_->Close().ok());
  ASSERT_TRUE(log_->Close().ok());  // idempotent
  auto cp = audit::VerifyCheckpoint(*log_->head().checkpoint, PublicKeyFromFile());
  ASSERT_TRUE(cp.ok());
  EXPECT_EQ(cp->kind, audit::CheckpointKind::kStop);
  EXPECT_EQ(cp->seq, 1u);
  EXPECT_EQ(CheckpointKinds(), (std::vector<std::string>{"start", "stop"}));
  EXPECT_EQ(log_->Record(MakeEvent("late")).code(), StatusCode::kUnavailable);
  log_.reset();  // the destructor does not write a second stop
  EXPECT_EQ(CheckpointKinds(), (std::vector<std::string>{"start", "stop"}));
}

TEST_F(AuditLogTest, ExplicitCheckpointCoversOnlyCommittedEvents) {
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(log_->Record(MakeEvent("e")).ok());
  auto jws = log_->WriteCheckpoint(audit::CheckpointKind::kPeriodic);
  ASSERT_TRUE(jws.ok()) << jws.status().ToString();
  auto cp = audit::VerifyCheckpoint(*jws, PublicKeyFromFile());
  ASSERT_TRUE(cp.ok());
  EXPECT_EQ(cp->seq, 3u);
  EXPECT_EQ(cp->hash, log_->head().hash);
  EXPECT_EQ(log_->head().checkpoint, *jws);
}

// ---- HMAC -----------------------------------------------------------------------------------

TEST_F(AuditLogTest, HmacHidesTheValueAndIsStablePerLog) {
  const std::string secret = "lbx.s3cr3t-token-value";
  const std::string mac = log_->Hmac(secret);
  EXPECT_EQ(mac.rfind("hmac-sha256:", 0), 0u);
  EXPECT_EQ(mac.size(), std::string("hmac-sha256:").size() + 64);
  EXPECT_EQ(mac.find(secret), std::string::npos);
  EXPECT_EQ(log_->Hmac(secret), mac);
  EXPECT_NE(log_->Hmac(secret + "x"), mac);
  audit::Event e = MakeEvent("auth.login");
  e.hmacs["token"] = mac;
  ASSERT_TRUE(log_->Record(e).ok());
  auto rows = store_->Query("SELECT body FROM audit_records", {});
  ASSERT_TRUE(rows.ok());
  for (const auto& r : *rows) {
    EXPECT_EQ(store::GetText(r, 0)->find(secret), std::string::npos);
  }

  // Another log (another database on the same token) has another key.
  log_.reset();
  store_.reset();
  db_path_ = token_->dir().file("other.db");
  OpenAll();
  EXPECT_NE(log_->Hmac(secret), mac);
}

// ---- Failures -------------------------------------------------------------------------------

TEST_F(AuditLogTest, StoreFailureFailsRecordAndHeadStays) {
  ASSERT_TRUE(log_->Record(MakeEvent("ok")).ok());
  log_.reset();
  testing::FlakyStore flaky(*store_);
  auto log = AuditLog::Open(flaky, *hsm_, options_);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  log_ = std::move(*log);
  const Head before = log_->head();
  flaky.fail_commits = true;
  EXPECT_EQ(log_->Record(MakeEvent("lost")).code(), StatusCode::kUnavailable);
  EXPECT_EQ(log_->WriteCheckpoint(audit::CheckpointKind::kPeriodic).status().code(),
            StatusCode::kUnavailable);
  const Head after = log_->head();
  EXPECT_EQ(after.seq, before.seq);
  EXPECT_EQ(after.hash, before.hash);
  EXPECT_EQ(after.checkpoint, before.checkpoint);
  flaky.fail_commits = false;
  ASSERT_TRUE(log_->Record(MakeEvent("back")).ok());
  EXPECT_EQ(log_->head().seq, 2u);
  ASSERT_TRUE(log_->Close().ok());
  EXPECT_TRUE(Verify().ok());
}

TEST_F(AuditLogTest, FailedBatchCommitRollsTheHeadBack) {
  // A real disk failure at COMMIT: the batch's events are gone, and so is their place in the
  // chain: the next event reuses the seq and the chain verifies.
  Restart(store::testing::FaultVfsName());
  ASSERT_TRUE(log_->Record(MakeEvent("one")).ok());
  const Head before = log_->head();
  store::testing::SetFailSyncs(true);
  Status s = store_->Commit([&](store::Transaction& tx) -> Status {
    LOCKBOX_RETURN_IF_ERROR(tx.Execute("INSERT INTO state (id) VALUES (7)", {}).status());
    return log_->Append(tx, MakeEvent("lost"));
  });
  Status r = log_->Record(MakeEvent("lost too"));
  store::testing::SetFailSyncs(false);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_EQ(r.code(), StatusCode::kUnavailable) << r.ToString();
  EXPECT_EQ(log_->head().seq, before.seq);
  EXPECT_EQ(log_->head().hash, before.hash);
  ASSERT_TRUE(log_->Record(MakeEvent("two")).ok());
  EXPECT_EQ(EventSeqs(), Iota(2));
  EXPECT_EQ(StateRows(), 0);
  ASSERT_TRUE(log_->Close().ok());
  auto verified = Verify();
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_EQ(verified->events, 2u);
}

TEST_F(AuditLogTest, HsmOutageFailsCheckpointsNotEvents) {
  // Fail closed on signing: with the signing key gone, a checkpoint cannot be written.
  ASSERT_TRUE(log_->Record(MakeEvent("e")).ok());
  auto destroyed = hsm_->DestroyObjectsByLabel(options_.signing_key_label);
  ASSERT_TRUE(destroyed.ok());
  ASSERT_GE(*destroyed, 1u);
  const auto before = log_->head().checkpoint;
  auto cp = log_->WriteCheckpoint(audit::CheckpointKind::kPeriodic);
  EXPECT_FALSE(cp.ok());
  EXPECT_EQ(log_->head().checkpoint, before);
  EXPECT_FALSE(log_->Close().ok());  // the stop checkpoint cannot be signed either
}

}  // namespace
}  // namespace lockbox::audit_log
