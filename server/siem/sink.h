// SIEM sinks: destinations the Forwarder streams audit records to (DESIGN.md §7).
//
// A StreamRecord is one row of audit_records: an event (body = its canonical JCS text) or a
// checkpoint (body = its JWS compact string). Records are delivered in `pos` order, which is the
// stream order of events and checkpoints; `seq` is the event sequence number (for a checkpoint:
// the newest event seq it covers).
//
// Delivery contract: Deliver() returns OK only when the sink accepted the whole batch; any error
// means "not known to be delivered", and the Forwarder retries the same batch later (at least once:
// a sink may therefore see a record more than once, always with identical content).
// Every Deliver() is bounded by the sink's own timeouts, so it never hangs forever.
// Thread safety: a sink is driven by one Forwarder thread; Deliver() is not called concurrently.
// Cancel() may be called from any thread at any time (it makes an in-flight or later Deliver()
// fail promptly; used by Forwarder::Stop()). Error messages never carry tokens or secrets.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "crypto/status.h"

namespace lockbox::siem {

enum class RecordKind { kEvent, kCheckpoint };
std::string_view RecordKindName(RecordKind kind);  // "event" | "checkpoint"

struct StreamRecord {
  std::int64_t pos = 0;
  std::int64_t seq = 0;
  RecordKind kind = RecordKind::kEvent;
  std::string body;  // event: canonical JSON; checkpoint: JWS compact
  std::string log_id;
};

// The record's line of the JSONL stream: the event body, or {"checkpoint":"<jws>"}.
std::string StreamLine(const StreamRecord& record);

// The record's own time: an event's "time" field, a checkpoint's payload "time" (RFC 3339).
// nullopt when the record carries no parseable time.
std::optional<std::chrono::system_clock::time_point> RecordTime(const StreamRecord& record);

// Parses an RFC 3339 date-time ("2026-11-27T21:01:25.123456789Z", offsets allowed).
std::optional<std::chrono::system_clock::time_point> ParseRfc3339(std::string_view text);

class Sink {
 public:
  explicit Sink(std::string name) : name_(std::move(name)) {}
  virtual ~Sink() = default;
  Sink(const Sink&) = delete;
  Sink& operator=(const Sink&) = delete;

  // The configured sink name (also the key of its persisted cursor).
  virtual std::string name() const { return name_; }
  // Delivers `batch` (non-empty, ascending pos). OK only when the whole batch was accepted.
  virtual Status Deliver(const std::vector<StreamRecord>& batch) = 0;
  // Aborts in-flight and future I/O promptly (sticky). Thread-safe. Default: nothing to abort.
  virtual void Cancel() {}

 private:
  std::string name_;
};

}  // namespace lockbox::siem
