#include "audit/verifier.h"

#include <gtest/gtest.h>

#include "tests/support/random_edits.h"

#include <chrono>
#include <cstdio>
#include <random>
#include <sstream>

#include "crypto/encoding.h"
#include "crypto/jcs.h"
#include "crypto/jws.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/audit/audit_test_util.h"

namespace lockbox::audit {
namespace {

using crypto::SignatureAlgorithm;
using testing::ExportToString;
using testing::JoinLines;
using testing::SoftwareSigner;
using testing::SplitLines;
using testing::TestLog;

constexpr std::uint64_t kEvents = 250;
constexpr std::uint64_t kEvery = 50;
// start (seq 0), periodic at 50..250, stop at 250.
constexpr std::uint64_t kCheckpoints = 7;

class VerifierTest : public ::testing::Test {
 protected:
  VerifierTest()
      : signer_(SignatureAlgorithm::kEcdsaP256Sha256),
        log_(std::make_unique<TestLog>(dir_.file("audit.db"), "log-test")) {
    log_->AppendCheckpoint(CheckpointKind::kStart, signer_);
    log_->AppendEvents(kEvents, kEvery, signer_);
    stop_jws_ = log_->AppendCheckpoint(CheckpointKind::kStop, signer_);
  }

  StatusOr<VerifySummary> VerifyDb(std::optional<std::string> trusted = std::nullopt) {
    return VerifyDatabase(log_->path(), signer_.public_key(), std::move(trusted));
  }
  StatusOr<VerifySummary> VerifyText(const std::string& jsonl,
                                     std::optional<std::string> trusted = std::nullopt,
                                     bool partial = false) {
    std::istringstream in(jsonl);
    return VerifyJsonl(in, signer_.public_key(), std::move(trusted), partial);
  }
  static std::string Message(const StatusOr<VerifySummary>& r) {
    return r.ok() ? "OK" : r.status().message();
  }

  lockbox::testing::TempDir dir_;
  SoftwareSigner signer_;
  std::unique_ptr<TestLog> log_;
  std::string stop_jws_;
};

TEST_F(VerifierTest, ValidDatabaseAndExportVerify) {
  auto db = VerifyDb();
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  EXPECT_EQ(db->log_id, "log-test");
  EXPECT_EQ(db->events, kEvents);
  EXPECT_EQ(db->first_seq, 1u);
  EXPECT_EQ(db->last_seq, kEvents);
  EXPECT_EQ(db->checkpoints, kCheckpoints);
  EXPECT_EQ(db->head, log_->head());

  const std::string jsonl = ExportToString(log_->path());
  EXPECT_EQ(SplitLines(jsonl).size(), kEvents + kCheckpoints);
  auto js = VerifyText(jsonl);
  ASSERT_TRUE(js.ok()) << js.status().ToString();
  EXPECT_EQ(js->events, kEvents);
  EXPECT_EQ(js->first_seq, 1u);
  EXPECT_EQ(js->last_seq, kEvents);
  EXPECT_EQ(js->checkpoints, kCheckpoints);
  EXPECT_EQ(js->head, log_->head());
}

TEST_F(VerifierTest, EveryCheckpointLineWorksAsTrustedCheckpoint) {
  const std::string jsonl = ExportToString(log_->path());
  int checked = 0;
  for (const std::string& line : SplitLines(jsonl)) {
    if (!line.starts_with("{\"checkpoint\"")) continue;
    const std::string jws = nlohmann::json::parse(line)["checkpoint"];
    EXPECT_TRUE(VerifyDb(jws).ok()) << Message(VerifyDb(jws));
    EXPECT_TRUE(VerifyText(jsonl, jws).ok()) << Message(VerifyText(jsonl, jws));
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(kCheckpoints));
}

TEST_F(VerifierTest, OneByteChangedInEventBody) {
  const std::string jsonl = ExportToString(log_->path());
  log_->Exec(
      "UPDATE audit_records SET body = replace(body, '\"req-120\"', '\"req-12X\"') "
      "WHERE kind = 'event' AND seq = 120");
  EXPECT_EQ(Message(VerifyDb()), "seq 120: hash mismatch");
  // In a JSONL stream (no stored hashes) the next checkpoint catches it.
  auto lines = SplitLines(jsonl);
  for (auto& line : lines) {
    if (line.find("\"req-120\"") != std::string::npos)
      line.replace(line.find("req-120"), 7, "req-12X");
  }
  EXPECT_EQ(Message(VerifyText(JoinLines(lines))),
            "seq 150: checkpoint hash does not match the chain");
}

TEST_F(VerifierTest, NonCanonicalEventBody) {
  log_->Exec(
      "UPDATE audit_records SET body = replace(body, '{\"actor\"', '{ \"actor\"') "
      "WHERE kind = 'event' AND seq = 33");
  EXPECT_EQ(Message(VerifyDb()), "seq 33: audit event is not canonical JSON");
}

TEST_F(VerifierTest, StoredHashAltered) {
  log_->Exec("UPDATE audit_records SET hash = zeroblob(32) WHERE kind = 'event' AND seq = 7");
  EXPECT_EQ(Message(VerifyDb()), "seq 7: hash mismatch");
  log_->Exec("UPDATE audit_records SET hash = NULL WHERE kind = 'event' AND seq = 7");
  EXPECT_EQ(Message(VerifyDb()), "seq 7: stored hash missing or malformed");
}

TEST_F(VerifierTest, RowDeletedInTheMiddle) {
  const std::string jsonl = ExportToString(log_->path());
  log_->Exec("DELETE FROM audit_records WHERE kind = 'event' AND seq = 77");
  EXPECT_EQ(Message(VerifyDb()), "seq 78: expected seq 77");
  auto lines = SplitLines(jsonl);
  std::erase_if(lines,
                [](const std::string& l) { return l.find("\"seq\":77,") != std::string::npos; });
  EXPECT_EQ(Message(VerifyText(JoinLines(lines))), "seq 78: expected seq 77");
}

TEST_F(VerifierTest, NewestRowsDeletedCaughtByTrustedCheckpoint) {
  // The auditor kept the newest checkpoint line (e.g. from the SIEM).
  const auto lines = SplitLines(ExportToString(log_->path()));
  const std::string trusted = nlohmann::json::parse(lines.back())["checkpoint"];
  ASSERT_EQ(trusted, stop_jws_);
  // Everything after the checkpoint at seq 200 removed: consistent on its own...
  log_->Exec(
      "DELETE FROM audit_records WHERE pos > (SELECT pos FROM audit_records "
      "WHERE kind = 'checkpoint' AND seq = 200)");
  auto alone = VerifyDb();
  ASSERT_TRUE(alone.ok()) << alone.status().ToString();
  EXPECT_EQ(alone->last_seq, 200u);
  // ...but not against what the auditor holds.
  EXPECT_EQ(Message(VerifyDb(trusted)),
            "trusted checkpoint at seq 250 is beyond the end of the log (seq 200)");
}

TEST_F(VerifierTest, NewestEventsDeletedBeforeTheirCheckpoint) {
  log_->Exec("DELETE FROM audit_records WHERE kind = 'event' AND seq > 230");
  EXPECT_EQ(Message(VerifyDb()), "log ends at seq 230 before the newest checkpoint at seq 250");
}

TEST_F(VerifierTest, TwoRowsSwapped) {
  log_->Exec(
      "UPDATE audit_records SET pos = -pos WHERE kind = 'event' AND seq IN (30, 31);"
      "UPDATE audit_records SET pos = (SELECT -pos FROM audit_records WHERE seq = 31 AND "
      "kind = 'event') WHERE kind = 'event' AND seq = 30 AND pos < 0;"
      "UPDATE audit_records SET pos = (SELECT MIN(pos) FROM audit_records WHERE pos > 0 AND "
      "seq > 29) - 1 WHERE kind = 'event' AND seq = 31 AND pos < 0;");
  // Row order now: ... 29, 31, 30, 32 ...
  EXPECT_EQ(Message(VerifyDb()), "seq 31: expected seq 30");
}

TEST_F(VerifierTest, TwoBodiesSwapped) {
  log_->Exec(
      "UPDATE audit_records SET body = CASE seq WHEN 60 THEN (SELECT body FROM audit_records "
      "WHERE kind='event' AND seq = 61) ELSE (SELECT body FROM audit_records WHERE kind='event' "
      "AND seq = 60) END WHERE kind = 'event' AND seq IN (60, 61)");
  EXPECT_EQ(Message(VerifyDb()), "seq 61: expected seq 60");
}

TEST_F(VerifierTest, RowInserted) {
  // The attacker makes room after seq 40 and inserts a well-formed, correctly hashed event 41.
  log_->Exec("UPDATE audit_records SET pos = pos * 2 + 1000000");
  log_->Exec("UPDATE audit_records SET pos = pos - 1000000");
  Event forged = testing::SampleEvent(41);
  forged.seq = 41;
  forged.log_id = "log-test";
  forged.time = "2026-11-27T21:01:25.000000001Z";
  forged.path = "transit/keys/forged";
  const std::string body = *CanonicalEvent(forged);
  // h_40 from the database.
  std::string h40_hex;
  {
    auto lines = SplitLines(ExportToString(log_->path()));
    ChainHash h = GenesisHash("log-test");
    for (const auto& l : lines) {
      if (l.starts_with("{\"checkpoint\"")) continue;
      h = NextHash(h, l);
      if (l.find("\"seq\":40,") != std::string::npos) break;
    }
    h40_hex = HashToHex(NextHash(h, body));
  }
  log_->Exec(
      "INSERT INTO audit_records (pos, seq, kind, body, hash) VALUES ((SELECT pos + 1 "
      "FROM audit_records WHERE kind = 'event' AND seq = 40), 41, 'event', '" +
      body + "', X'" + h40_hex + "')");
  EXPECT_EQ(Message(VerifyDb()), "seq 41: expected seq 42");
}

TEST_F(VerifierTest, CheckpointSignatureAltered) {
  const std::string jsonl = ExportToString(log_->path());
  // Flip a character in the middle of the signature of the checkpoint at seq 100.
  log_->Exec(
      "UPDATE audit_records SET body = substr(body, 1, length(body) - 20) || "
      "CASE substr(body, length(body) - 19, 1) WHEN 'A' THEN 'B' ELSE 'A' END || "
      "substr(body, length(body) - 18) WHERE kind = 'checkpoint' AND seq = 100");
  EXPECT_EQ(Message(VerifyDb()), "seq 100: checkpoint signature invalid");
}

// Rebuilds the log as an attacker without the HSM key would: event 30 changed, every hash
// recomputed, checkpoints either re-signed with the attacker's key or (signer == nullptr) copied
// from the original.
void RecomputeAttack(const TestLog& original, const crypto::PublicKey& original_key,
                     const std::string& path, CheckpointSigner* signer) {
  TestLog forged(path, original.log_id());
  const auto lines = SplitLines(ExportToString(original.path()));
  forged.Exec("BEGIN");
  ChainHash h = GenesisHash(original.log_id());
  std::uint64_t seq = 0;
  for (const auto& line : lines) {
    std::string body;
    std::string kind;
    std::string hash_sql = "NULL";
    if (line.starts_with("{\"checkpoint\"")) {
      kind = "checkpoint";
      body = nlohmann::json::parse(line)["checkpoint"];
      if (signer != nullptr) {
        Checkpoint c = *VerifyCheckpoint(body, original_key);
        c.hash = h;
        body = *SignCheckpoint(c, *signer);
      }
    } else {
      kind = "event";
      Event e = *ParseCanonicalEvent(line);
      if (e.seq == 30) e.path = "transit/keys/attacker";
      body = *CanonicalEvent(e);
      h = NextHash(h, body);
      seq = e.seq;
      hash_sql = "X'" + HashToHex(h) + "'";
    }
    forged.Exec("INSERT INTO audit_records (seq, kind, body, hash) VALUES (" + std::to_string(seq) +
                ", '" + kind + "', '" + body + "', " + hash_sql + ")");
  }
  forged.Exec("COMMIT");
}

TEST_F(VerifierTest, RecomputedChainWithAttackerKeyFails) {
  SoftwareSigner attacker(SignatureAlgorithm::kEcdsaP256Sha256);
  const std::string path = dir_.file("forged.db");
  RecomputeAttack(*log_, signer_.public_key(), path, &attacker);
  // Internally consistent under the attacker's own key...
  EXPECT_TRUE(VerifyDatabase(path, attacker.public_key(), std::nullopt).ok());
  // ...but not under the audit key: the very first checkpoint (start, seq 0) fails.
  EXPECT_EQ(Message(VerifyDatabase(path, signer_.public_key(), std::nullopt)),
            "seq 0: checkpoint signature invalid");
}

TEST_F(VerifierTest, RecomputedChainWithCopiedCheckpointsFails) {
  const std::string path = dir_.file("forged.db");
  RecomputeAttack(*log_, signer_.public_key(), path, nullptr);
  EXPECT_EQ(Message(VerifyDatabase(path, signer_.public_key(), std::nullopt)),
            "seq 50: checkpoint hash does not match the chain");
  std::ostringstream out;
  ASSERT_TRUE(ExportJsonl(path, 1, out).ok());
  EXPECT_EQ(Message(VerifyText(out.str())), "seq 50: checkpoint hash does not match the chain");
}

TEST_F(VerifierTest, ForkDetectedAgainstTrustedCheckpoint) {
  // A second history from the same key and log id (e.g. a restored backup that kept going):
  // the first 200 events agree, then it diverges.
  TestLog fork(dir_.file("fork.db"), "log-test");
  fork.AppendCheckpoint(CheckpointKind::kStart, signer_);
  fork.AppendEvents(200, kEvery, signer_);
  fork.AdvanceClock(1);  // from seq 201 on, the event times differ by 1 ns
  fork.AppendEvents(60, kEvery, signer_);
  auto forked = VerifyDatabase(fork.path(), signer_.public_key(), std::nullopt);
  ASSERT_TRUE(forked.ok()) << forked.status().ToString();
  EXPECT_EQ(Message(VerifyDatabase(fork.path(), signer_.public_key(), stop_jws_)),
            "seq 250: log forked: hash differs from the trusted checkpoint");
}

TEST_F(VerifierTest, TrustedCheckpointFromAnotherKeyOrMalformed) {
  SoftwareSigner other(SignatureAlgorithm::kEcdsaP256Sha256);
  Checkpoint c = *VerifyCheckpoint(stop_jws_, signer_.public_key());
  EXPECT_EQ(Message(VerifyDb(*SignCheckpoint(c, other))),
            "trusted checkpoint: checkpoint signature invalid");
  EXPECT_FALSE(VerifyDb(std::string("not-a-jws")).ok());
}

TEST_F(VerifierTest, WrongLogId) {
  log_->Exec("UPDATE audit_meta SET value = 'other-log' WHERE key = 'log_id'");
  EXPECT_EQ(Message(VerifyDb()), "seq 0: checkpoint log_id differs from the log's");
  log_->Exec("DELETE FROM audit_meta");
  EXPECT_EQ(Message(VerifyDb()), "audit_meta has no log_id");
}

TEST_F(VerifierTest, ExportFromSeqVerifiesAsPartialSlice) {
  const std::string slice = ExportToString(log_->path(), 120);
  const auto lines = SplitLines(slice);
  ASSERT_FALSE(lines.empty());
  // Starts at the signed anchor covering seq 100, then events 101...
  const std::string anchor = nlohmann::json::parse(lines.front())["checkpoint"];
  EXPECT_EQ(VerifyCheckpoint(anchor, signer_.public_key())->seq, 100u);
  EXPECT_EQ(ParseCanonicalEvent(lines[1])->seq, 101u);
  EXPECT_EQ(lines.size(), (kEvents - 100) + 5);
  auto partial = VerifyText(slice, std::nullopt, /*partial=*/true);
  ASSERT_TRUE(partial.ok()) << partial.status().ToString();
  EXPECT_EQ(partial->first_seq, 101u);
  EXPECT_EQ(partial->last_seq, kEvents);
  EXPECT_EQ(partial->events, kEvents - 100);
  EXPECT_EQ(partial->checkpoints, 5u);
  EXPECT_EQ(partial->head, log_->head());
  EXPECT_TRUE(VerifyText(slice, stop_jws_, true).ok());
  // Without --partial a slice never passes as a whole log.
  EXPECT_EQ(Message(VerifyText(slice)), "seq 101: expected seq 1");
  // A trusted checkpoint older than the slice cannot be checked: refused.
  const std::string jsonl = ExportToString(log_->path());
  std::string cp50;
  for (const auto& l : SplitLines(jsonl)) {
    if (l.starts_with("{\"checkpoint\"") &&
        VerifyCheckpoint(nlohmann::json::parse(l)["checkpoint"].get<std::string>(),
                         signer_.public_key())
                ->seq == 50) {
      cp50 = nlohmann::json::parse(l)["checkpoint"];
    }
  }
  EXPECT_EQ(Message(VerifyText(slice, cp50, true)),
            "trusted checkpoint at seq 50 precedes the start of the stream (seq 100)");
  // --from 1 is the whole log.
  EXPECT_EQ(ExportToString(log_->path(), 1), jsonl);
}

TEST(VerifierEmptyTest, EmptyLogs) {
  lockbox::testing::TempDir dir;
  SoftwareSigner signer(SignatureAlgorithm::kEcdsaP256Sha256);
  TestLog log(dir.file("empty.db"), "log-empty");
  auto db = VerifyDatabase(log.path(), signer.public_key(), std::nullopt);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  EXPECT_EQ(db->events, 0u);
  EXPECT_EQ(db->head, GenesisHash("log-empty"));
  std::istringstream empty("");
  EXPECT_TRUE(VerifyJsonl(empty, signer.public_key(), std::nullopt).ok());
  // A trusted checkpoint at seq 5 against an empty log.
  Checkpoint c{"log-empty", 5, GenesisHash("x"), "2026-11-27T21:01:25.000000001Z",
               CheckpointKind::kPeriodic};
  const std::string jws = *SignCheckpoint(c, signer);
  EXPECT_EQ(VerifyDatabase(log.path(), signer.public_key(), jws).status().message(),
            "trusted checkpoint at seq 5 is beyond the end of the log (seq 0)");
  std::istringstream empty2("");
  EXPECT_FALSE(VerifyJsonl(empty2, signer.public_key(), jws).ok());
  // The start checkpoint alone (seq 0, h_0) is a valid log, and a valid trusted checkpoint.
  const std::string start = log.AppendCheckpoint(CheckpointKind::kStart, signer);
  auto with_start = VerifyDatabase(log.path(), signer.public_key(), start);
  ASSERT_TRUE(with_start.ok()) << with_start.status().ToString();
  EXPECT_EQ(with_start->checkpoints, 1u);
}

TEST(VerifierEmptyTest, UnreadableDatabase) {
  lockbox::testing::TempDir dir;
  SoftwareSigner signer(SignatureAlgorithm::kEcdsaP256Sha256);
  auto missing = VerifyDatabase(dir.file("missing.db"), signer.public_key(), std::nullopt);
  EXPECT_EQ(missing.status().code(), StatusCode::kUnavailable);
  testing::WriteFile(dir.file("garbage.db"), std::string(4096, 'x'));
  auto garbage = VerifyDatabase(dir.file("garbage.db"), signer.public_key(), std::nullopt);
  EXPECT_FALSE(garbage.ok());
  EXPECT_NE(garbage.status().code(), StatusCode::kDataLoss);
}

TEST(ChainVerifierTest, CheckpointMayTrailItsSeqInTheStream) {
  SoftwareSigner signer(SignatureAlgorithm::kEd25519);
  ChainVerifier v(signer.public_key(), std::nullopt);
  ChainHash h = GenesisHash("l");
  ChainHash h3{};
  // Assigned from std::string, not a literal: GCC 12 -O3 reports a false -Wrestrict on the latter.
  const std::string log_id = "l";
  const std::string time = "2026-11-27T21:01:25.000000001Z";
  for (std::uint64_t seq = 1; seq <= 6; ++seq) {
    Event e = testing::SampleEvent(seq);
    e.seq = seq;
    e.log_id = log_id;
    e.time = time;
    const std::string text = *CanonicalEvent(e);
    h = NextHash(h, text);
    if (seq == 3) h3 = h;
    ASSERT_TRUE(v.AddEvent(text, &h).ok());
  }
  Checkpoint c{"l", 3, h3, "2026-11-27T21:01:25.000000001Z", CheckpointKind::kPeriodic};
  EXPECT_TRUE(v.AddCheckpoint(*SignCheckpoint(c, signer)).ok());
  c.hash = h;
  EXPECT_EQ(v.AddCheckpoint(*SignCheckpoint(c, signer)).message(),
            "seq 3: checkpoint hash does not match the chain");
  // Once failed, the verifier stays failed.
  EXPECT_FALSE(v.Finish().ok());
}

// ChainVerifier::AddEvent checks events on a fast path (no DOM, no Event); it must accept exactly
// what ParseCanonicalEvent accepts and fail with its message otherwise.
std::string FirstEventText(const std::string& log_id = "l") {
  Event e = testing::SampleEvent(2);  // with hmacs and details
  e.seq = 1;
  e.log_id = log_id;
  e.time = std::string("2026-11-27T21:01:25.000000001Z");
  return *CanonicalEvent(e);
}

// Adds `text` as the first event of a fresh verifier; "OK" or the failure message.
std::string AddFirst(std::string_view text) {
  testing::SoftwareSigner signer(SignatureAlgorithm::kEd25519);
  ChainVerifier v(signer.public_key(), std::nullopt);
  const Status s = v.AddEvent(text);
  return s.ok() ? "OK" : s.message();
}

// What the verifier must say about `text` as the first event, per ParseCanonicalEvent.
std::string Reference(std::string_view text) {
  auto e = ParseCanonicalEvent(text);
  if (!e.ok()) return "seq 1: " + e.status().message();
  if (e->seq != 1) return "seq " + std::to_string(e->seq) + ": expected seq 1";
  return "OK";
}

TEST(ChainVerifierFastPathTest, RefusesNonCanonicalEventsLikeTheParser) {
  const std::string good = FirstEventText();
  EXPECT_EQ(AddFirst(good), "OK");
  const std::string not_canonical = "seq 1: audit event is not canonical JSON";
  auto replaced = [&](std::string_view from, std::string_view to) {
    std::string t = good;
    const auto at = t.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return at == std::string::npos ? t : t.replace(at, from.size(), to);
  };
  const std::vector<std::string> refused = {
      " " + good,                                                // whitespace
      good + "\n",                                               // trailing content
      replaced("\"seq\":1", "\"seq\":1.0"),                      // number forms
      replaced("\"seq\":1", "\"seq\":1e0"),                      //
      replaced("\"seq\":1", "\"seq\":1.00"),                     //
      replaced("\"op\":\"keyring.", "\"op\":\"keyring\\u002e"),  // needless escape
      replaced("\"op\":\"keyring.", "\"op\":\"keyring\\/"),      //
      replaced("\"actor\":", "\"actor\" :"),                     //
      replaced("\"request_id\":\"req-2\"", "\"request_id\":\"req-2\",\"request_id\":\"x\""),
  };
  for (const std::string& t : refused) {
    EXPECT_EQ(AddFirst(t), not_canonical) << t;
    EXPECT_EQ(Reference(t), not_canonical) << t;
  }
  // Members out of order (swap "actor" to the end).
  {
    auto j = nlohmann::json::parse(good);
    std::string t = "{";
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() != "actor") t += "\"" + it.key() + "\":" + *crypto::CanonicalizeJson(*it) + ",";
    }
    t += "\"actor\":" + *crypto::CanonicalizeJson(j["actor"]) + "}";
    EXPECT_EQ(AddFirst(t), not_canonical) << t;
  }
  EXPECT_EQ(AddFirst(replaced("\"seq\":1", "\"seq\":01")),
            "seq 1: audit event is not a JSON object");  // not JSON at all
  EXPECT_EQ(AddFirst("[]"), "seq 1: audit event is not a JSON object");
  EXPECT_EQ(AddFirst(""), "seq 1: audit event is not a JSON object");
}

TEST(ChainVerifierFastPathTest, RefusesCanonicalTextsThatAreNotEventsLikeTheParser) {
  const auto base = nlohmann::json::parse(FirstEventText());
  std::vector<nlohmann::json> cases;
  for (auto it = base.begin(); it != base.end(); ++it) {
    auto j = base;
    j.erase(it.key());  // each member missing
    cases.push_back(j);
    for (const nlohmann::json& v :
         {nlohmann::json(nullptr), nlohmann::json(true), nlohmann::json(7), nlohmann::json(-7),
          nlohmann::json(1.5), nlohmann::json(""), nlohmann::json("ok"), nlohmann::json::array(),
          nlohmann::json::object(), nlohmann::json({{"a", "b"}}), nlohmann::json({{"a", 1}}),
          nlohmann::json({{"a", nullptr}}), nlohmann::json({{"a", {1}}})}) {
      auto k = base;
      k[it.key()] = v;  // each member with each kind of value
      cases.push_back(k);
    }
  }
  for (const char* name : {"reason", "zzz", "Seq", "details", "hmacs"}) {
    auto j = base;
    j[name] = "x";
    cases.push_back(j);
  }
  for (const std::uint64_t seq : {std::uint64_t{0}, std::uint64_t{2}, (std::uint64_t{1} << 53),
                                  (std::uint64_t{1} << 53) + 2, std::uint64_t{1} << 60}) {
    auto j = base;
    j["seq"] = seq;
    cases.push_back(j);
  }
  for (const char* outcome : {"ok", "denied", "error", "OK", "okay", ""}) {
    auto j = base;
    j["outcome"] = outcome;
    cases.push_back(j);
  }
  for (const char* time : {"2026-11-27T21:01:25.000000001Z", "2026-11-27T21:01:25Z",
                           "2026-11-27 21:01:25.000000001Z", "2026-11-27T21:01:25.00000000\"Z"}) {
    auto j = base;
    j["time"] = time;
    cases.push_back(j);
  }
  int accepted = 0;
  for (const auto& j : cases) {
    const std::string text = *crypto::CanonicalizeJson(j);
    EXPECT_EQ(AddFirst(text), Reference(text)) << text;
    if (Reference(text) == "OK") ++accepted;
  }
  EXPECT_GT(accepted, 5);  // the cases do include valid events
}

// Random byte edits of events: the fast path and the parser agree on every one.
TEST(ChainVerifierFastPathTest, AgreesWithTheParserOnMutatedEvents) {
  std::vector<std::string> seeds = {FirstEventText(), FirstEventText("a\"b\\c\u00e9\U0001F600")};
  {
    Event e = testing::SampleEvent(13);  // denied, with a reason
    e.seq = 1;
    e.log_id = "l";
    e.time = std::string("2026-11-27T21:01:25.000000001Z");
    e.details = {{"n", -1.5e-7}, {"big", 1e21}, {"s", "x\ty"}};
    seeds.push_back(*CanonicalEvent(e));
  }
  static constexpr char kAlphabet[] =
      "\"\\{}[],: 0123456789-+.eEabfnrtuzASq\x7f\x01\x1f\xc3\xa9\xed\xa0\xf0\x9f";
  std::mt19937 rng(8785);
  int agreed_ok = 0;
  for (const std::string& seed : seeds) {
    for (int n = 0; n < 4000; ++n) {
      const std::string t = lockbox::testing::RandomEdits(
          seed, std::string_view(kAlphabet, sizeof(kAlphabet) - 1), 2, rng);
      const std::string want = Reference(t);
      ASSERT_EQ(AddFirst(t), want) << t;
      if (want == "OK") ++agreed_ok;
    }
  }
  EXPECT_GT(agreed_ok, 0);  // some edits keep the event valid (e.g. inside a string)
}

TEST(ChainVerifierFastPathTest, EscapedLogIdIsComparedDecoded) {
  const std::string id = "log \"one\"\\\u00e9";
  const std::string text = FirstEventText(id);
  ASSERT_NE(text.find("\\\""), std::string::npos);
  testing::SoftwareSigner signer(SignatureAlgorithm::kEd25519);
  {
    ChainVerifier v(signer.public_key(), std::nullopt);
    v.ExpectLogId(id);
    ASSERT_TRUE(v.AddEvent(text).ok());
    auto summary = v.Finish();
    ASSERT_TRUE(summary.ok());
    EXPECT_EQ(summary->log_id, id);
    EXPECT_EQ(summary->head, NextHash(GenesisHash(id), text));
  }
  {
    ChainVerifier v(signer.public_key(), std::nullopt);
    v.ExpectLogId("log \\\"one\\\"\\\\\u00e9");  // the escaped spelling is another id
    EXPECT_EQ(v.AddEvent(text).message(), "seq 1: event log_id differs from the log's");
  }
}

// Verification speed on a 200k-event log (run with --gtest_also_run_disabled_tests).
TEST(VerifierSpeedTest, DISABLED_Verify200kEvents) {
  lockbox::testing::TempDir dir;
  SoftwareSigner signer(SignatureAlgorithm::kEcdsaP256Sha256);
  TestLog log(dir.file("big.db"), "log-big");
  log.AppendCheckpoint(CheckpointKind::kStart, signer);
  log.AppendEvents(200000, 1000, signer);
  log.Close();
  const auto start = std::chrono::steady_clock::now();
  auto summary = VerifyDatabase(log.path(), signer.public_key(), std::nullopt);
  const double db_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_EQ(summary->events, 200000u);
  const std::string jsonl = ExportToString(log.path());
  std::istringstream in(jsonl);
  const auto start2 = std::chrono::steady_clock::now();
  auto js = VerifyJsonl(in, signer.public_key(), std::nullopt);
  const double js_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start2).count();
  ASSERT_TRUE(js.ok());
  std::printf("verify --db: 200000 events in %.3f s = %.0f events/s\n", db_s, 200000 / db_s);
  std::printf("verify --jsonl: 200000 events in %.3f s = %.0f events/s\n", js_s, 200000 / js_s);
}

}  // namespace
}  // namespace lockbox::audit
