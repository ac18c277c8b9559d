// EventLog: the one call every engine uses to audit what it does (implemented by AuditLog).
// Thread safety: implementations are thread-safe.
#pragma once

#include <functional>

#include "audit/event.h"
#include "crypto/status.h"
#include "server/store/store.h"

namespace lockbox::audit_log {

class EventLog {
 public:
  virtual ~EventLog() = default;
  // Inside the unit of work that makes a change: the event commits with it or not at all.
  virtual Status Append(store::Transaction& tx, audit::Event event) = 0;
  // Commits the event alone (reads, denials, failures); OK only once it is durable.
  virtual Status Record(audit::Event event) = 0;
  // Record() without waiting: `done` receives its result exactly once, possibly on another thread
  // (the store's writer); it must be cheap and must not block. The default calls Record().
  virtual void RecordAsync(audit::Event event, std::function<void(Status)> done) {
    done(Record(std::move(event)));
  }
};

}  // namespace lockbox::audit_log
