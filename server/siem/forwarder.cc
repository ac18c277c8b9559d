#include "server/siem/forwarder.h"

#include <signal.h>

#include <condition_variable>
#include <optional>
#include <set>
#include <thread>

#include "server/siem/backoff.h"

namespace lockbox::siem {
namespace {

using Clock = std::chrono::steady_clock;
using SysClock = std::chrono::system_clock;

constexpr std::string_view kReadBatchSql =
    "SELECT pos, seq, kind, body FROM audit_records WHERE pos > ? ORDER BY pos LIMIT ?";
constexpr std::string_view kNewestSql = "SELECT MAX(pos) FROM audit_records";
constexpr std::string_view kLogIdSql = "SELECT value FROM audit_meta WHERE key = 'log_id'";
constexpr std::string_view kCursorSql = "SELECT pos FROM audit_sink_cursors WHERE sink = ?";
constexpr std::string_view kSaveCursorSql =
    "INSERT INTO audit_sink_cursors (sink, pos, updated) VALUES (?, ?, ?) "
    "ON CONFLICT (sink) DO UPDATE SET pos = excluded.pos, updated = excluded.updated "
    "WHERE excluded.pos > audit_sink_cursors.pos";

struct Batch {
  std::vector<StreamRecord> records;
  std::int64_t newest = 0;
};

}  // namespace

struct Forwarder::Runner {
  std::unique_ptr<Sink> sink;
  std::string name;
  DeliveryOptions options;
  std::thread thread;

  mutable std::mutex mu;
  mutable std::condition_variable wake;       // Notify / Stop
  mutable std::condition_variable delivered;  // cursor moved / stopped
  bool notified = false;
  bool stop = false;
  bool exited = false;
  // Metrics, guarded by mu.
  SinkMetrics metrics;
  std::optional<SysClock::time_point> oldest_undelivered;  // time of the record after cursor
  std::int64_t oldest_pos = 0;                             // pos oldest_undelivered belongs to
};

Forwarder::Forwarder(store::Store& store) : store_(store) {}

Forwarder::~Forwarder() { Stop(); }

StatusOr<std::unique_ptr<Forwarder>> Forwarder::Create(store::Store& store,
                                                       const std::vector<SinkConfig>& configs) {
  auto forwarder = std::make_unique<Forwarder>(store);
  for (const SinkConfig& config : configs) {
    LOCKBOX_ASSIGN_OR_RETURN(auto sink, MakeSink(config));
    LOCKBOX_RETURN_IF_ERROR(forwarder->AddSink(std::move(sink), config.delivery));
  }
  return forwarder;
}

Status Forwarder::AddSink(std::unique_ptr<Sink> sink, DeliveryOptions options) {
  std::lock_guard lock(lifecycle_mu_);
  if (started_ || stopped_) return FailedPreconditionError("forwarder already started");
  if (!sink) return InvalidArgumentError("null sink");
  if (options.batch_size == 0) return InvalidArgumentError("batch_size must be positive");
  if (options.poll_interval <= std::chrono::milliseconds(0)) {
    return InvalidArgumentError("poll_interval must be positive");
  }
  const std::string name = sink->name();
  for (const auto& r : runners_) {
    if (r->name == name) return InvalidArgumentError("duplicate sink name '" + name + "'");
  }
  auto runner = std::make_unique<Runner>();
  runner->sink = std::move(sink);
  runner->name = name;
  runner->options = options;
  runner->metrics.name = name;
  runners_.push_back(std::move(runner));
  return Status::Ok();
}

Status Forwarder::Start() {
  std::lock_guard lock(lifecycle_mu_);
  if (started_ || stopped_) return FailedPreconditionError("forwarder already started");
  started_ = true;
  for (auto& r : runners_) {
    Runner* runner = r.get();
    runner->thread = std::thread([this, runner] { Run(*runner); });
  }
  return Status::Ok();
}

void Forwarder::Notify() {
  // runners_ does not change after Start(); before Start() notifying is harmless.
  for (auto& r : runners_) {
    {
      std::lock_guard lock(r->mu);
      r->notified = true;
    }
    r->wake.notify_one();
  }
}

void Forwarder::Stop() {
  std::lock_guard lock(lifecycle_mu_);
  if (stopped_) return;
  stopped_ = true;
  for (auto& r : runners_) {
    {
      std::lock_guard l(r->mu);
      r->stop = true;
    }
    r->wake.notify_all();
    r->delivered.notify_all();
    r->sink->Cancel();
  }
  for (auto& r : runners_) {
    if (r->thread.joinable()) r->thread.join();
  }
}

std::vector<SinkMetrics> Forwarder::Metrics() const {
  std::vector<SinkMetrics> out;
  const auto now = SysClock::now();
  for (const auto& r : runners_) {
    std::lock_guard lock(r->mu);
    SinkMetrics m = r->metrics;
    m.lag_records = std::max<std::int64_t>(0, m.newest_pos - m.cursor);
    m.lag_seconds = 0;
    if (m.lag_records > 0 && r->oldest_undelivered) {
      m.lag_seconds =
          std::max(0.0, std::chrono::duration<double>(now - *r->oldest_undelivered).count());
    }
    out.push_back(std::move(m));
  }
  return out;
}

bool Forwarder::WaitDelivered(std::string_view name, std::int64_t pos,
                              std::chrono::milliseconds timeout) const {
  for (const auto& r : runners_) {
    if (r->name != name) continue;
    std::unique_lock lock(r->mu);
    return r->delivered.wait_for(lock, timeout, [&] {
      return r->metrics.cursor >= pos || r->stop || r->exited;
    }) && r->metrics.cursor >= pos;
  }
  return false;
}

void Forwarder::Run(Runner& r) {
  // A write to a closed socket must fail with EPIPE, not kill the process.
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &block, nullptr);

  Backoff backoff(r.options.backoff_initial, r.options.backoff_max);
  auto stopping = [&r] {
    std::lock_guard lock(r.mu);
    return r.stop;
  };
  auto fail = [&r](const Status& s) {
    std::lock_guard lock(r.mu);
    ++r.metrics.failures;
    ++r.metrics.consecutive_failures;
    r.metrics.last_error = s.ToString();
  };
  // Sleeps for the next backoff delay; only Stop() cuts it short (not Notify()).
  auto wait_backoff = [&] {
    const auto delay = backoff.Next();
    std::unique_lock lock(r.mu);
    r.wake.wait_for(lock, delay, [&r] { return r.stop; });
  };

  // 1. The persisted cursor.
  std::int64_t cursor = 0;
  for (;;) {
    if (stopping()) break;
    auto rows = store_.Query(kCursorSql, {r.name});
    if (rows.ok()) {
      if (!rows->empty()) {
        auto pos = store::GetInt(rows->front(), 0);
        if (pos.ok()) cursor = *pos;
      }
      std::lock_guard lock(r.mu);
      r.metrics.cursor = cursor;
      break;
    }
    fail(rows.status().WithContext("read cursor"));
    wait_backoff();
  }
  backoff.Reset();

  std::string log_id;
  while (!stopping()) {
    // 2. The next batch. Clear the flag first: a commit after this point wakes the next wait.
    {
      std::lock_guard lock(r.mu);
      r.notified = false;
    }
    Batch batch;
    Status read = store_.Read([&](store::Transaction& tx) -> Status {
      LOCKBOX_ASSIGN_OR_RETURN(
          auto rows,
          tx.Query(kReadBatchSql, {cursor, static_cast<std::int64_t>(r.options.batch_size)}));
      LOCKBOX_ASSIGN_OR_RETURN(auto newest, tx.Query(kNewestSql, {}));
      if (!newest.empty() && !store::IsNull(newest.front(), 0)) {
        LOCKBOX_ASSIGN_OR_RETURN(batch.newest, store::GetInt(newest.front(), 0));
      }
      if (!rows.empty() && log_id.empty()) {
        LOCKBOX_ASSIGN_OR_RETURN(auto meta, tx.Query(kLogIdSql, {}));
        if (meta.empty()) return DataLossError("audit_meta has no log_id");
        auto text = store::GetText(meta.front(), 0);
        if (text.ok()) {
          log_id = *text;
        } else {
          LOCKBOX_ASSIGN_OR_RETURN(auto blob, store::GetBlob(meta.front(), 0));
          log_id.assign(blob.begin(), blob.end());
        }
      }
      for (const store::Row& row : rows) {
        StreamRecord rec;
        LOCKBOX_ASSIGN_OR_RETURN(rec.pos, store::GetInt(row, 0));
        LOCKBOX_ASSIGN_OR_RETURN(rec.seq, store::GetInt(row, 1));
        LOCKBOX_ASSIGN_OR_RETURN(std::string kind, store::GetText(row, 2));
        if (kind == "event") {
          rec.kind = RecordKind::kEvent;
        } else if (kind == "checkpoint") {
          rec.kind = RecordKind::kCheckpoint;
        } else {
          return DataLossError("audit record " + std::to_string(rec.pos) + " has kind '" + kind +
                               "'");
        }
        LOCKBOX_ASSIGN_OR_RETURN(rec.body, store::GetText(row, 3));
        rec.log_id = log_id;
        batch.records.push_back(std::move(rec));
      }
      return Status::Ok();
    });
    if (!read.ok()) {
      fail(read.WithContext("read audit records"));
      wait_backoff();
      continue;
    }
    {
      std::lock_guard lock(r.mu);
      r.metrics.newest_pos = std::max(r.metrics.newest_pos, batch.newest);
      if (!batch.records.empty() && r.oldest_pos != batch.records.front().pos) {
        r.oldest_pos = batch.records.front().pos;
        r.oldest_undelivered = RecordTime(batch.records.front()).value_or(SysClock::now());
      }
    }
    if (batch.records.empty()) {
      // 3. Idle: wait for Notify(), Stop() or the poll interval.
      std::unique_lock lock(r.mu);
      r.wake.wait_for(lock, r.options.poll_interval, [&r] { return r.notified || r.stop; });
      continue;
    }

    // 4. Deliver, retrying the same batch until the sink accepts it.
    bool accepted = false;
    while (!stopping()) {
      Status s = r.sink->Deliver(batch.records);
      if (s.ok()) {
        accepted = true;
        break;
      }
      fail(s);
      wait_backoff();
    }
    if (!accepted) break;
    backoff.Reset();

    // 5. Persist the cursor, then publish it. If the commit fails, the in-memory cursor still
    // moves on (the sink has the records); a restart re-sends from the persisted cursor.
    const std::int64_t new_cursor = batch.records.back().pos;
    const std::int64_t now_s =
        std::chrono::duration_cast<std::chrono::seconds>(SysClock::now().time_since_epoch())
            .count();
    Status saved = store_.Commit([&](store::Transaction& tx) -> Status {
      return tx.Execute(kSaveCursorSql, {r.name, new_cursor, now_s}).status();
    });
    cursor = new_cursor;
    {
      std::lock_guard lock(r.mu);
      r.metrics.cursor = cursor;
      r.metrics.delivered += batch.records.size();
      ++r.metrics.batches;
      r.metrics.newest_pos = std::max(r.metrics.newest_pos, cursor);
      if (saved.ok()) {
        r.metrics.consecutive_failures = 0;
      } else {
        ++r.metrics.failures;
        ++r.metrics.consecutive_failures;
        r.metrics.last_error = saved.WithContext("save cursor").ToString();
      }
      r.oldest_undelivered.reset();
      r.oldest_pos = 0;
    }
    r.delivered.notify_all();
  }
  {
    std::lock_guard lock(r.mu);
    r.exited = true;
  }
  r.delivered.notify_all();
}

}  // namespace lockbox::siem
