// Test helpers for the SIEM forwarder tests: a SQLite store with the audit tables (the exact
// schema the audit log writes) and an appender of synthetic events and checkpoints.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "server/siem/sink.h"
#include "server/store/store.h"
#include "tests/support/temp_dir.h"

namespace lockbox::siem::testing {

inline constexpr char kLogId[] = "log-0123456789abcdef";

// The audit tables, as server/audit_log creates them.
std::vector<store::Migration> AuditSchema();

// The canonical (JCS: sorted keys, no spaces) body of a synthetic event.
std::string EventBody(std::int64_t seq, std::string_view time = "2030-01-02T03:04:05.123456789Z");
// A JWS-shaped checkpoint string whose payload carries seq and time (signature is fake).
std::string CheckpointBody(std::int64_t seq);

class AuditStore {
 public:
  AuditStore();  // ASSERTs internally via exceptions on failure
  store::Store& store() { return *store_; }
  const lockbox::testing::TempDir& dir() const { return dir_; }

  // Appends `n` events in one commit (and a checkpoint after them if `checkpoint`); returns the
  // newest pos. Thread-safe.
  std::int64_t Append(int n, bool checkpoint = false);
  std::int64_t last_seq() const;
  // The "time" of events appended from now on (default: the current time at append).
  void set_event_time(std::string time);
  // Every record appended so far, in pos order.
  std::vector<StreamRecord> Records() const;

 private:
  lockbox::testing::TempDir dir_;
  std::unique_ptr<store::Store> store_;
  mutable std::mutex mu_;
  std::int64_t seq_ = 0;
  std::string event_time_;
  std::vector<StreamRecord> records_;
};

// Reads a file's lines (without the newline).
std::vector<std::string> ReadLines(const std::string& path);

// The persisted cursor of `sink` (0 if none).
std::int64_t StoredCursor(store::Store& store, const std::string& sink);

}  // namespace lockbox::siem::testing

namespace lockbox::siem::testing {

// Checks an at-least-once stream: every line is the stream line of one of `records`, the first
// occurrences are exactly `records` in pos order, and a repeated line is always a record that
// was already delivered. Returns "" when valid, else a description of the first problem.
// `duplicates` (optional) receives the number of repeated lines.
std::string CheckAtLeastOnceInOrder(const std::vector<std::string>& lines,
                                    const std::vector<StreamRecord>& records,
                                    std::size_t* duplicates = nullptr);

}  // namespace lockbox::siem::testing
