// Store: Lockbox's persistence, behind an interface a PostgreSQL backend could implement later
// (keep SQL portable: no SQLite-only syntax in callers' statements).
//
// Writes go through the commit pipeline: Commit() hands a unit of work to the single writer,
// which batches every queued unit into one transaction (durable: WAL + synchronous=FULL), runs
// each unit under its own savepoint (a failing unit rolls back alone; the others still commit),
// commits, and only then wakes each caller with its own result. When Commit() returns OK the
// unit's effects are on disk. Group commit: after a batch of several units the writer waits
// briefly (at most an eighth of that batch's duration, at most 2 ms, never after a lone unit) for
// its submitters to come back, so concurrent callers share fewer, fuller transactions. Reads use
// separate reader connections and never block the writer. Thread safety: every method may be called
// from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "crypto/status.h"

namespace lockbox::store {

using Blob = std::vector<std::uint8_t>;
// SQL values: NULL, INTEGER, REAL, TEXT, BLOB.
using Value = std::variant<std::nullptr_t, std::int64_t, double, std::string, Blob>;
using Row = std::vector<Value>;

// Typed accessors for a row's columns: INTERNAL if the column has another type.
StatusOr<std::int64_t> GetInt(const Row& row, std::size_t column);
StatusOr<std::string> GetText(const Row& row, std::size_t column);
StatusOr<Blob> GetBlob(const Row& row, std::size_t column);
bool IsNull(const Row& row, std::size_t column);

// Statement execution inside a transaction (writer) or a read snapshot (reader).
class Transaction {
 public:
  virtual ~Transaction() = default;
  // Runs one statement; returns the number of rows changed.
  virtual StatusOr<std::int64_t> Execute(std::string_view sql,
                                         const std::vector<Value>& params) = 0;
  virtual StatusOr<std::vector<Row>> Query(std::string_view sql,
                                           const std::vector<Value>& params) = 0;
  // Registers `undo`, which restores in-memory state the unit changed alongside its statements
  // (e.g. a counter or a cache). Undo callbacks run on the writer thread, newest first, if the
  // unit rolls back (it returned an error or threw) or if its batch cannot be committed (then the
  // callbacks of every unit of the batch run, newest first, before any waiter is woken). They are
  // dropped, unrun, once the batch has committed. An undo must not throw (exceptions are
  // swallowed) and must not call Commit(). On a Read() transaction this does nothing.
  virtual void OnRollback(std::function<void()> undo) = 0;
  // Registers `done`, run on the writer thread once the unit's batch has committed durably (not
  // if the unit or its batch rolls back). For cheap notifications only (e.g. waking a forwarder):
  // it must not block or call Commit(). On a Read() transaction this does nothing.
  virtual void OnCommit(std::function<void()> done) = 0;
};

// A unit of work: runs on the writer thread inside the batch transaction under its own
// savepoint. Returning a non-OK status rolls back everything the unit did, and only that.
// Units must be short and must not block on other units (they run one after another).
using UnitOfWork = std::function<Status(Transaction&)>;

// Schema migrations are owned by the module whose tables they create; each (component, version)
// runs exactly once, in version order, in its own transaction.
struct Migration {
  std::string component;  // e.g. "keyring"
  int version = 0;        // 1, 2, ... per component
  std::string sql;        // one or more statements
};

// Upper bounds (seconds) of the commit duration histogram in CommitStats.
inline constexpr std::array<double, 10> kCommitDurationBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                                 0.025,  0.05,  0.1,    0.25,  1};

struct CommitStats {
  std::uint64_t units = 0;    // units committed or rolled back
  std::uint64_t batches = 0;  // transactions committed
  std::uint64_t max_batch = 0;
  std::uint64_t queued = 0;  // units submitted and not yet taken by the writer (a snapshot)
  // Each COMMIT statement of the pipeline, i.e. the WAL write, its sync and a checkpoint when
  // one is due: what the device adds to every waiting unit. Per bucket of kCommitDurationBounds
  // (not cumulative), the last one past the largest bound.
  std::array<std::uint64_t, kCommitDurationBounds.size() + 1> commit_duration_buckets{};
  std::uint64_t commit_duration_nanos = 0;  // their sum
};

class Store {
 public:
  virtual ~Store() = default;

  // Applies migrations not yet recorded in schema_migrations.
  virtual Status Migrate(const std::vector<Migration>& migrations) = 0;

  // Submits `unit` to the commit pipeline and waits until its batch has committed durably.
  // Returns the unit's own error if it failed, UNAVAILABLE if the batch could not be committed
  // (disk full, I/O error, store closed): then nothing of the unit is on disk.
  virtual Status Commit(UnitOfWork unit) = 0;

  // Commit() without waiting: `done` receives what Commit() would have returned, exactly once —
  // on the writer thread once the unit's batch has committed or failed (it must be cheap and must
  // not block or call Commit()), or at once on the calling thread if the store is closed. This is
  // how a request thread hands its audit record over and moves on to the next request. The
  // default runs Commit() on the calling thread (for stores without a writer).
  virtual void CommitAsync(UnitOfWork unit, std::function<void(Status)> done);

  // Runs `reader` on a reader connection inside one read transaction (a consistent snapshot taken
  // when Read() starts). Waits for a free pooled connection: do not nest Read() calls.
  virtual Status Read(const std::function<Status(Transaction&)>& reader) = 0;

  // Convenience: one query on a reader connection.
  virtual StatusOr<std::vector<Row>> Query(std::string_view sql, const std::vector<Value>& params);

  virtual CommitStats stats() const = 0;

  // Stops accepting commits (Commit() then returns UNAVAILABLE), lets the writer finish every unit
  // already queued, and stops it. Reads keep working until the store is destroyed. Idempotent;
  // the destructor calls it. The default does nothing (for stores without a writer).
  virtual void Shutdown() {}
};

struct SqliteOptions {
  std::string path;                    // database file; created if missing
  std::size_t max_batch_units = 512;   // units per transaction at most
  std::size_t reader_connections = 4;  // pooled reader connections
  int busy_timeout_ms = 5000;
  std::string vfs;  // SQLite VFS name; empty: the default (tests inject faults)
};

// Opens (creating if needed) a SQLite store in WAL mode with synchronous=FULL and
// secure_delete=ON (deleted wrapped keys do not linger in free pages), and starts the writer.
// A new database file is created with mode 0600 (the WAL and shm files inherit it). Statements of
// units may not use transaction control, SAVEPOINT, ATTACH/DETACH or PRAGMA; statements run in
// Read() must be read-only. Each Execute()/Query() takes exactly one statement.
StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const SqliteOptions& options);

}  // namespace lockbox::store
