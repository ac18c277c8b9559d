// Forwarder: streams the audit log (events and checkpoints, in `pos` order) to SIEM sinks.
//
// One thread per sink. Each thread reads the next batch after the sink's cursor from the store
// (a reader connection: `SELECT ... FROM audit_records WHERE pos > cursor ORDER BY pos LIMIT n`),
// hands it to the sink and, only once the sink accepted the whole batch, moves the cursor and
// persists it in audit_sink_cursors through Store::Commit.
//
// Delivery guarantee: at least once, in order. The cursor never moves past a record the sink has
// not accepted; a failed batch is retried unchanged after an exponential backoff with full jitter
// (DeliveryOptions). After a crash or restart a sink may receive again the records delivered
// since the last persisted cursor (at most one batch when the cursor commit succeeded), always
// with identical content, never anything out of order. The audit log itself is the spool: a dead
// sink loses nothing, its lag grows. A sink's cursor is keyed by its name; a sink with a new name
// starts at the beginning of the log.
//
// Isolation: a slow or dead sink never blocks the audit log, requests or the other sinks.
// Notify() only sets a flag and wakes the sink threads; it never waits for I/O or the store.
// When no Notify() comes, each thread still polls every `poll_interval`.
//
// Thread safety: AddSink() and Start() from one thread during set-up (AddSink must not run
// concurrently with any other method); afterwards Notify(), Metrics(), WaitDelivered() and Stop()
// from any thread. Stop() is prompt even when a sink hangs: it cancels
// in-flight I/O (Sink::Cancel) and every attempt is bounded by the sink's timeout.
// The Store must outlive the Forwarder.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/status.h"
#include "server/siem/config.h"
#include "server/siem/sink.h"
#include "server/store/store.h"

namespace lockbox::siem {

// DeliveryOptions (batch size, backoff, poll interval) is declared in config.h.

struct SinkMetrics {
  std::string name;
  std::int64_t cursor = 0;       // pos of the newest record the sink accepted (0: none)
  std::int64_t newest_pos = 0;   // newest pos seen in the store (refreshed on every read)
  std::int64_t lag_records = 0;  // newest_pos - cursor
  double lag_seconds = 0;        // age of the oldest record not yet accepted (0 when caught up)
  std::uint64_t delivered = 0;   // records accepted (a re-delivery after a restart counts again)
  std::uint64_t batches = 0;     // batches accepted
  std::uint64_t failures = 0;    // failed attempts: delivery, store read or cursor write
  std::uint64_t consecutive_failures = 0;
  std::string last_error;  // the newest failure ("" if none); never carries secrets
};

class Forwarder {
 public:
  explicit Forwarder(store::Store& store);
  // Builds every sink of `configs` (MakeSink); not started.
  static StatusOr<std::unique_ptr<Forwarder>> Create(store::Store& store,
                                                     const std::vector<SinkConfig>& configs);
  ~Forwarder();  // Stop()
  Forwarder(const Forwarder&) = delete;
  Forwarder& operator=(const Forwarder&) = delete;

  // Before Start(): INVALID_ARGUMENT for a duplicate name or bad options.
  Status AddSink(std::unique_ptr<Sink> sink, DeliveryOptions options = {});
  // Starts one thread per sink. FAILED_PRECONDITION if already started or stopped.
  Status Start();
  // "New audit records were committed." Call after each Store::Commit() that appended audit
  // records (events or checkpoints) has returned OK. Cheap (sets a flag per sink under a mutex
  // that is never held across I/O or store access) and never blocks on a sink; safe from any
  // thread, also after Stop(). A missed call only delays delivery until `poll_interval`.
  void Notify();
  // Stops every sink thread; returns once they have exited. Idempotent.
  void Stop();

  std::vector<SinkMetrics> Metrics() const;
  // Waits until sink `name` has accepted every record up to `pos` (true), or `timeout` passes,
  // the forwarder stops, or no such sink exists (false).
  bool WaitDelivered(std::string_view name, std::int64_t pos,
                     std::chrono::milliseconds timeout) const;

 private:
  struct Runner;
  void Run(Runner& runner);
  store::Store& store_;
  std::vector<std::unique_ptr<Runner>> runners_;
  std::mutex lifecycle_mu_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace lockbox::siem
