#include "tests/unit/siem/siem_test_util.h"

#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "crypto/encoding.h"
#include "server/siem/syslog_sink.h"

namespace lockbox::siem::testing {

std::vector<store::Migration> AuditSchema() {
  return {{"siem_test_audit", 1,
           "CREATE TABLE audit_meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);"
           "CREATE TABLE audit_records (pos INTEGER PRIMARY KEY, seq INTEGER NOT NULL, kind TEXT "
           "NOT NULL CHECK (kind IN ('event','checkpoint')), body TEXT NOT NULL, hash BLOB);"
           "CREATE UNIQUE INDEX audit_records_event_seq ON audit_records (seq) WHERE kind = "
           "'event';"
           "CREATE TABLE audit_sink_cursors (sink TEXT PRIMARY KEY, pos INTEGER NOT NULL, "
           "updated INTEGER NOT NULL);"}};
}

std::string EventBody(std::int64_t seq, std::string_view time) {
  // Keys in JCS order; "path" carries characters that need escaping in syslog SD and JSON.
  return std::string("{\"log_id\":\"") + kLogId +
         "\",\"op\":\"test.op\",\"path\":\"a\\\"]\\\\b\"," + "\"seq\":" + std::to_string(seq) +
         ",\"time\":\"" + std::string(time) + "\"}";
}

std::string CheckpointBody(std::int64_t seq) {
  const std::string header = R"({"alg":"ES256","kid":"test","typ":"lockbox-checkpoint+jws"})";
  const std::string payload = std::string(R"({"hash":"00","kind":"periodic","log_id":")") + kLogId +
                              R"(","seq":)" + std::to_string(seq) +
                              R"(,"time":"2030-01-02T03:04:05.5Z"})";
  return crypto::Base64UrlEncode(crypto::AsBytes(header)) + "." +
         crypto::Base64UrlEncode(crypto::AsBytes(payload)) + ".c2lnbmF0dXJl";
}

AuditStore::AuditStore() {
  store::SqliteOptions options;
  options.path = dir_.file("audit.db");
  auto opened = store::OpenSqliteStore(options);
  if (!opened.ok()) throw std::runtime_error(opened.status().ToString());
  store_ = std::move(opened).value();
  Status migrated = store_->Migrate(AuditSchema());
  if (!migrated.ok()) throw std::runtime_error(migrated.ToString());
  Status meta = store_->Commit([](store::Transaction& tx) -> Status {
    return tx
        .Execute("INSERT INTO audit_meta (key, value) VALUES ('log_id', ?)", {std::string(kLogId)})
        .status();
  });
  if (!meta.ok()) throw std::runtime_error(meta.ToString());
}

std::int64_t AuditStore::Append(int n, bool checkpoint) {
  std::lock_guard lock(mu_);  // one appender at a time keeps seq gap-free, like the audit log
  std::vector<StreamRecord> added;
  const std::string time =
      event_time_.empty() ? SyslogTimestamp(std::chrono::system_clock::now()) : event_time_;
  Status s = store_->Commit([&](store::Transaction& tx) -> Status {
    added.clear();
    std::int64_t seq = seq_;
    auto insert = [&](RecordKind kind, std::int64_t at, std::string body) -> Status {
      const char* kind_name = kind == RecordKind::kEvent ? "event" : "checkpoint";
      LOCKBOX_RETURN_IF_ERROR(
          tx.Execute("INSERT INTO audit_records (seq, kind, body) VALUES (?, ?, ?)",
                     {at, std::string(kind_name), body})
              .status());
      LOCKBOX_ASSIGN_OR_RETURN(auto rows, tx.Query("SELECT last_insert_rowid()", {}));
      LOCKBOX_ASSIGN_OR_RETURN(std::int64_t pos, store::GetInt(rows.front(), 0));
      added.push_back({pos, at, kind, std::move(body), kLogId});
      return Status::Ok();
    };
    for (int i = 0; i < n; ++i) {
      ++seq;
      LOCKBOX_RETURN_IF_ERROR(insert(RecordKind::kEvent, seq, EventBody(seq, time)));
    }
    if (checkpoint)
      LOCKBOX_RETURN_IF_ERROR(insert(RecordKind::kCheckpoint, seq, CheckpointBody(seq)));
    return Status::Ok();
  });
  if (!s.ok()) throw std::runtime_error(s.ToString());
  seq_ += n;
  records_.insert(records_.end(), added.begin(), added.end());
  return records_.empty() ? 0 : records_.back().pos;
}

std::int64_t AuditStore::last_seq() const {
  std::lock_guard lock(mu_);
  return seq_;
}

void AuditStore::set_event_time(std::string time) {
  std::lock_guard lock(mu_);
  event_time_ = std::move(time);
}

std::vector<StreamRecord> AuditStore::Records() const {
  std::lock_guard lock(mu_);
  return records_;
}

std::vector<std::string> ReadLines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

std::int64_t StoredCursor(store::Store& store, const std::string& sink) {
  auto rows = store.Query("SELECT pos FROM audit_sink_cursors WHERE sink = ?", {sink});
  if (!rows.ok() || rows->empty()) return 0;
  auto pos = store::GetInt(rows->front(), 0);
  return pos.ok() ? *pos : 0;
}

}  // namespace lockbox::siem::testing

namespace lockbox::siem::testing {

std::string CheckAtLeastOnceInOrder(const std::vector<std::string>& lines,
                                    const std::vector<StreamRecord>& records,
                                    std::size_t* duplicates) {
  std::size_t next = 0;
  std::size_t dups = 0;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (next < records.size() && lines[i] == StreamLine(records[next])) {
      ++next;
      continue;
    }
    bool seen = false;
    for (std::size_t k = 0; k < next && !seen; ++k) seen = lines[i] == StreamLine(records[k]);
    if (!seen) {
      return "line " + std::to_string(i + 1) + " is neither the next record (pos " +
             (next < records.size() ? std::to_string(records[next].pos) : "-") +
             ") nor a delivered one: " + lines[i].substr(0, 200);
    }
    ++dups;
  }
  if (duplicates != nullptr) *duplicates = dups;
  if (next != records.size()) {
    return "only " + std::to_string(next) + " of " + std::to_string(records.size()) +
           " records arrived";
  }
  return "";
}

}  // namespace lockbox::siem::testing
