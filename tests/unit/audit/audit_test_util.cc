#include "tests/unit/audit/audit_test_util.h"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "audit/verifier.h"

namespace lockbox::audit::testing {
namespace {

crypto::PrivateKey Generate(crypto::SignatureAlgorithm alg) {
  auto key = crypto::PrivateKey::Generate(alg);
  if (!key.ok()) throw std::runtime_error(key.status().ToString());
  return std::move(key).value();
}

}  // namespace

SoftwareSigner::SoftwareSigner(crypto::SignatureAlgorithm alg) : key_(Generate(alg)) {}

std::string SoftwareSigner::alg() const {
  return key_.algorithm() == crypto::SignatureAlgorithm::kEd25519 ? "EdDSA" : "ES256";
}

StatusOr<std::vector<std::uint8_t>> SoftwareSigner::Sign(std::span<const std::uint8_t> input) {
  return key_.Sign(input, crypto::EcdsaSignatureFormat::kRawRS);
}

Event SampleEvent(std::uint64_t i) {
  static const char* kOps[] = {"keyring.create", "keyring.encrypt", "keyring.decrypt",
                               "keyring.rotate", "keyring.rewrap"};
  Event e;
  e.request_id = "req-" + std::to_string(i);
  e.actor = (i % 3 == 0) ? "system" : "role:app-" + std::to_string(i % 7);
  e.op = kOps[i % 5];
  e.path = "transit/keys/key-" + std::to_string(i % 11);
  e.remote_addr = "127.0.0.1";
  if (i % 13 == 0) {
    e.outcome = Outcome::kDenied;
    e.reason = "permission denied";
  }
  if (i % 2 == 0) {
    e.hmacs["plaintext"] =
        "hmac-sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  }
  e.details = {{"version", static_cast<int>(i % 4 + 1)}, {"cached", i % 2 == 0}};
  return e;
}

TestLog::TestLog(std::string path, std::string log_id)
    : path_(std::move(path)), log_id_(std::move(log_id)) {
  if (sqlite3_open(path_.c_str(), &db_) != SQLITE_OK) throw std::runtime_error("sqlite open");
  Exec("PRAGMA journal_mode=WAL");
  Exec("CREATE TABLE audit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
  Exec(
      "CREATE TABLE audit_records (pos INTEGER PRIMARY KEY, seq INTEGER NOT NULL, kind TEXT NOT "
      "NULL CHECK (kind IN ('event','checkpoint')), body TEXT NOT NULL, hash BLOB)");
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db_, "INSERT INTO audit_meta VALUES ('log_id', ?1)", -1, &s, nullptr);
  sqlite3_bind_text(s, 1, log_id_.data(), static_cast<int>(log_id_.size()), SQLITE_TRANSIENT);
  if (sqlite3_step(s) != SQLITE_DONE) throw std::runtime_error("insert meta");
  sqlite3_finalize(s);
  head_ = GenesisHash(log_id_);
}

TestLog::~TestLog() { Close(); }

void TestLog::Close() {
  if (db_ != nullptr) sqlite3_close(db_);
  db_ = nullptr;
}

void TestLog::Exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string message = err ? err : "?";
    sqlite3_free(err);
    throw std::runtime_error("sql: " + sql + ": " + message);
  }
}

void TestLog::AppendEvents(std::uint64_t n, std::uint64_t checkpoint_every,
                           CheckpointSigner& signer) {
  Exec("BEGIN");
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db_,
                     "INSERT INTO audit_records (seq, kind, body, hash) VALUES (?1, 'event', ?2, "
                     "?3)",
                     -1, &s, nullptr);
  for (std::uint64_t i = 0; i < n; ++i) {
    Event e = SampleEvent(seq_ + 1);
    e.seq = ++seq_;
    e.log_id = log_id_;
    clock_ns_ += 1234567;
    e.time = FormatTime(std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::nanoseconds(clock_ns_))));
    auto text = CanonicalEvent(e);
    if (!text.ok()) throw std::runtime_error(text.status().ToString());
    head_ = NextHash(head_, *text);
    sqlite3_bind_int64(s, 1, static_cast<sqlite3_int64>(e.seq));
    sqlite3_bind_text(s, 2, text->data(), static_cast<int>(text->size()), SQLITE_TRANSIENT);
    sqlite3_bind_blob(s, 3, head_.data(), static_cast<int>(head_.size()), SQLITE_TRANSIENT);
    if (sqlite3_step(s) != SQLITE_DONE) throw std::runtime_error("insert event");
    sqlite3_reset(s);
    if (checkpoint_every != 0 && seq_ % checkpoint_every == 0) {
      AppendCheckpoint(CheckpointKind::kPeriodic, signer);
    }
  }
  sqlite3_finalize(s);
  Exec("COMMIT");
}

std::string TestLog::AppendCheckpoint(CheckpointKind kind, CheckpointSigner& signer) {
  Checkpoint c;
  c.log_id = log_id_;
  c.seq = seq_;
  c.hash = head_;
  c.time = FormatTime(std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::nanoseconds(clock_ns_))));
  c.kind = kind;
  auto jws = SignCheckpoint(c, signer);
  if (!jws.ok()) throw std::runtime_error(jws.status().ToString());
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db_,
                     "INSERT INTO audit_records (seq, kind, body, hash) VALUES (?1, 'checkpoint', "
                     "?2, NULL)",
                     -1, &s, nullptr);
  sqlite3_bind_int64(s, 1, static_cast<sqlite3_int64>(seq_));
  sqlite3_bind_text(s, 2, jws->data(), static_cast<int>(jws->size()), SQLITE_TRANSIENT);
  if (sqlite3_step(s) != SQLITE_DONE) throw std::runtime_error("insert checkpoint");
  sqlite3_finalize(s);
  return *jws;
}

std::string ExportToString(const std::string& db_path, std::uint64_t from_seq) {
  std::ostringstream out;
  Status status = ExportJsonl(db_path, from_seq, out);
  if (!status.ok()) throw std::runtime_error(status.ToString());
  return out.str();
}

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

std::string JoinLines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines) out += line + "\n";
  return out;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

}  // namespace lockbox::audit::testing
