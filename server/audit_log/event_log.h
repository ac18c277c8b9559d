// EventLog: the one call every engine uses to audit what it does (implemented by AuditLog).
// Thread safety: implementations are thread-safe.
#pragma once

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
};

}  // namespace lockbox::audit_log
