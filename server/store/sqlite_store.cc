// SQLite implementation of Store: one writer thread owning the write connection (the commit
// pipeline, see store.h) and a bounded pool of read-only WAL reader connections.
#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "server/blocking/would_block.h"
#include "server/store/store.h"

namespace lockbox::store {
namespace {

struct DbCloser {
  void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
using DbPtr = std::unique_ptr<sqlite3, DbCloser>;

struct StmtFinalizer {
  void operator()(sqlite3_stmt* stmt) const noexcept { sqlite3_finalize(stmt); }
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

// Maps a SQLite result code to a Status. `detail` is sqlite3_errmsg(): it names tables, columns
// and constraints, never bound parameter values.
Status SqliteStatus(int rc, const char* detail, std::string_view what) {
  std::string msg = "store: ";
  msg += what;
  msg += ": ";
  msg += detail != nullptr ? detail : sqlite3_errstr(rc);
  switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
      if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        return AlreadyExistsError(std::move(msg));
      }
      return FailedPreconditionError(std::move(msg));
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_BUSY:
      return UnavailableError(std::move(msg));
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return DataLossError(std::move(msg));
    case SQLITE_NOMEM:
      return ResourceExhaustedError(std::move(msg));
    case SQLITE_AUTH:
      return InternalError(msg +
                           " (transaction control, SAVEPOINT, ATTACH and PRAGMA are reserved to "
                           "the store)");
    default:
      return InternalError(std::move(msg));
  }
}

// What the statements running on a connection may do (enforced by the authorizer at prepare time).
enum class Mode {
  kInternal,   // the store's own statements: anything
  kMigration,  // schema migrations: no transaction control, SAVEPOINT, ATTACH/DETACH
  kUnit,       // units of work: additionally no PRAGMA
  kReader,     // Read(): like kUnit, and read-only statements only
};

struct SqlHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};
using StmtCache = std::unordered_map<std::string, StmtPtr, SqlHash, std::equal_to<>>;
constexpr std::size_t kMaxCachedStatements = 256;

Value ColumnValue(sqlite3_stmt* stmt, int i) {
  switch (sqlite3_column_type(stmt, i)) {
    case SQLITE_INTEGER:
      return static_cast<std::int64_t>(sqlite3_column_int64(stmt, i));
    case SQLITE_FLOAT:
      return sqlite3_column_double(stmt, i);
    case SQLITE_TEXT: {
      const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, i));
      const int n = sqlite3_column_bytes(stmt, i);
      return p == nullptr ? std::string() : std::string(p, static_cast<std::size_t>(n));
    }
    case SQLITE_BLOB: {
      const auto* p = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt, i));
      const int n = sqlite3_column_bytes(stmt, i);
      return p == nullptr ? Blob() : Blob(p, p + n);
    }
    default:
      return nullptr;
  }
}

// One SQLite connection with its statement caches. Used by one thread at a time.
class Connection {
 public:
  static StatusOr<std::unique_ptr<Connection>> Open(const SqliteOptions& options, bool read_only) {
    int flags = read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    flags |= SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_PRIVATECACHE | SQLITE_OPEN_EXRESCODE;
    sqlite3* raw = nullptr;
    const int rc = sqlite3_open_v2(options.path.c_str(), &raw, flags,
                                   options.vfs.empty() ? nullptr : options.vfs.c_str());
    DbPtr db(raw);
    if (rc != SQLITE_OK) {
      return SqliteStatus(rc, raw != nullptr ? sqlite3_errmsg(raw) : nullptr,
                          "open '" + options.path + "'");
    }
    sqlite3_extended_result_codes(db.get(), 1);
    // Hardening: no schema tricks, no double-quoted string literals (portable SQL), no extensions.
    sqlite3_db_config(db.get(), SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
    sqlite3_db_config(db.get(), SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);
    sqlite3_db_config(db.get(), SQLITE_DBCONFIG_DQS_DML, 0, nullptr);
    sqlite3_db_config(db.get(), SQLITE_DBCONFIG_DQS_DDL, 0, nullptr);
    sqlite3_db_config(db.get(), SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, nullptr);
    sqlite3_busy_timeout(db.get(), options.busy_timeout_ms);
    auto conn = std::unique_ptr<Connection>(new Connection(std::move(db)));
    sqlite3_set_authorizer(conn->db(), &Connection::Authorize, conn.get());
    return conn;
  }

  ~Connection() {
    // Statements before the connection (sqlite3_close_v2 would defer, but be tidy).
    internal_cache_.clear();
    user_cache_.clear();
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  sqlite3* db() const { return db_.get(); }
  bool in_transaction() const { return sqlite3_get_autocommit(db_.get()) == 0; }

  Status Error(int rc, std::string_view what) const {
    return SqliteStatus(rc, sqlite3_errmsg(db_.get()), what);
  }

  // One store-internal statement without parameters (BEGIN, SAVEPOINT, COMMIT ...).
  Status Internal(std::string_view sql) { return Run(sql, {}, Mode::kInternal, nullptr).status(); }

  // Rolls back the open transaction, if any; used on error paths.
  void RollbackQuietly() {
    if (in_transaction()) (void)Internal("ROLLBACK");
  }

  // Several statements without parameters (migrations), through sqlite3_exec.
  Status ExecScript(const std::string& sql, Mode mode) {
    ModeScope scope(this, mode);
    const int rc = sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return Error(rc, "exec");
    return Status::Ok();
  }

  StatusOr<std::int64_t> Execute(std::string_view sql, const std::vector<Value>& params,
                                 Mode mode) {
    return Run(sql, params, mode, nullptr);
  }

  StatusOr<std::vector<Row>> Query(std::string_view sql, const std::vector<Value>& params,
                                   Mode mode) {
    std::vector<Row> rows;
    LOCKBOX_RETURN_IF_ERROR(Run(sql, params, mode, &rows).status());
    return rows;
  }

 private:
  explicit Connection(DbPtr db) : db_(std::move(db)) {}

  class ModeScope {
   public:
    ModeScope(Connection* c, Mode m) : c_(c), saved_(c->mode_) { c_->mode_ = m; }
    ~ModeScope() { c_->mode_ = saved_; }
    ModeScope(const ModeScope&) = delete;
    ModeScope& operator=(const ModeScope&) = delete;

   private:
    Connection* c_;
    Mode saved_;
  };

  // Returns a statement to its pristine state after use (also on early returns and exceptions).
  class StmtUse {
   public:
    explicit StmtUse(sqlite3_stmt* s) : s_(s) {}
    ~StmtUse() {
      sqlite3_reset(s_);
      sqlite3_clear_bindings(s_);
    }
    StmtUse(const StmtUse&) = delete;
    StmtUse& operator=(const StmtUse&) = delete;

   private:
    sqlite3_stmt* s_;
  };

  static int Authorize(void* self, int action, const char*, const char*, const char*, const char*) {
    const Mode mode = static_cast<Connection*>(self)->mode_;
    if (mode == Mode::kInternal) return SQLITE_OK;
    switch (action) {
      case SQLITE_TRANSACTION:
      case SQLITE_SAVEPOINT:
      case SQLITE_ATTACH:
      case SQLITE_DETACH:
        return SQLITE_DENY;
      case SQLITE_PRAGMA:
        return mode == Mode::kMigration ? SQLITE_OK : SQLITE_DENY;
      default:
        return SQLITE_OK;
    }
  }

  StatusOr<sqlite3_stmt*> Prepare(std::string_view sql, Mode mode) {
    StmtCache& cache = mode == Mode::kInternal ? internal_cache_ : user_cache_;
    if (auto it = cache.find(sql); it != cache.end()) return it->second.get();
    if (sql.size() > static_cast<std::size_t>(INT_MAX)) {
      return InvalidArgumentError("store: statement too long");
    }
    sqlite3_stmt* raw = nullptr;
    const char* tail = nullptr;
    const int rc = sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()),
                                      SQLITE_PREPARE_PERSISTENT, &raw, &tail);
    StmtPtr stmt(raw);
    if (rc != SQLITE_OK) return Error(rc, "prepare");
    if (stmt == nullptr) return InvalidArgumentError("store: empty statement");
    // Exactly one statement per call: whatever follows may only be whitespace and comments.
    const char* end = sql.data() + sql.size();
    if (tail != nullptr && tail < end) {
      sqlite3_stmt* extra_raw = nullptr;
      const int rc2 =
          sqlite3_prepare_v3(db_.get(), tail, static_cast<int>(end - tail), 0, &extra_raw, nullptr);
      StmtPtr extra(extra_raw);
      if (rc2 != SQLITE_OK || extra != nullptr) {
        return InvalidArgumentError("store: more than one statement in one call");
      }
    }
    // No statement of this connection is running here, so dropping the cache is safe.
    if (cache.size() >= kMaxCachedStatements) cache.clear();
    sqlite3_stmt* result = stmt.get();
    cache.emplace(std::string(sql), std::move(stmt));
    return result;
  }

  Status Bind(sqlite3_stmt* stmt, const std::vector<Value>& params) {
    const int expected = sqlite3_bind_parameter_count(stmt);
    if (static_cast<std::size_t>(expected) != params.size()) {
      return InvalidArgumentError("store: statement takes " + std::to_string(expected) +
                                  " parameters, " + std::to_string(params.size()) + " given");
    }
    for (int i = 0; i < expected; ++i) {
      const Value& v = params[static_cast<std::size_t>(i)];
      const int index = i + 1;
      int rc = SQLITE_OK;
      // SQLITE_STATIC: `params` outlives the statement's use, so SQLite takes no copy of values.
      if (std::holds_alternative<std::nullptr_t>(v)) {
        rc = sqlite3_bind_null(stmt, index);
      } else if (const auto* n = std::get_if<std::int64_t>(&v)) {
        rc = sqlite3_bind_int64(stmt, index, *n);
      } else if (const auto* d = std::get_if<double>(&v)) {
        rc = sqlite3_bind_double(stmt, index, *d);
      } else if (const auto* s = std::get_if<std::string>(&v)) {
        rc = sqlite3_bind_text64(stmt, index, s->data(), s->size(), SQLITE_STATIC, SQLITE_UTF8);
      } else if (const auto* b = std::get_if<Blob>(&v)) {
        // A null pointer would bind NULL: an empty blob is a zero-length blob.
        rc = b->empty() ? sqlite3_bind_zeroblob(stmt, index, 0)
                        : sqlite3_bind_blob64(stmt, index, b->data(), b->size(), SQLITE_STATIC);
      }
      if (rc != SQLITE_OK) return Error(rc, "bind parameter " + std::to_string(index));
    }
    return Status::Ok();
  }

  // Prepares (cached), binds, steps to the end; collects rows into `rows` if given.
  // Returns the number of rows the statement changed.
  StatusOr<std::int64_t> Run(std::string_view sql, const std::vector<Value>& params, Mode mode,
                             std::vector<Row>* rows) {
    ModeScope scope(this, mode);  // re-prepares during step are authorised in the same mode
    LOCKBOX_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepare(sql, mode));
    StmtUse use(stmt);
    if (mode == Mode::kReader && sqlite3_stmt_readonly(stmt) == 0) {
      return InvalidArgumentError("store: write statement in a read transaction");
    }
    LOCKBOX_RETURN_IF_ERROR(Bind(stmt, params));
    const sqlite3_int64 before = sqlite3_total_changes64(db_.get());
    const int columns = sqlite3_column_count(stmt);
    for (;;) {
      const int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) return Error(rc, "step");
      if (rows == nullptr) continue;
      Row row;
      row.reserve(static_cast<std::size_t>(columns));
      for (int i = 0; i < columns; ++i) row.push_back(ColumnValue(stmt, i));
      rows->push_back(std::move(row));
    }
    if (sqlite3_total_changes64(db_.get()) == before) return std::int64_t{0};
    return static_cast<std::int64_t>(sqlite3_changes64(db_.get()));
  }

  DbPtr db_;
  Mode mode_ = Mode::kInternal;
  StmtCache internal_cache_;  // the store's own statements, prepared in kInternal mode
  StmtCache user_cache_;      // callers' statements, prepared in their restricted mode
};

using UndoList = std::vector<std::function<void()>>;

// Runs `undos[from..]` newest first and drops them. Undo callbacks must not throw; if one does,
// the exception is swallowed so the remaining callbacks still run.
void RunUndos(UndoList& undos, std::size_t from = 0) {
  while (undos.size() > from) {
    std::function<void()> undo = std::move(undos.back());
    undos.pop_back();
    try {
      if (undo) undo();
    } catch (...) {
    }
  }
}

class ConnTransaction final : public Transaction {
 public:
  // `undos`, `commit_hooks`: where OnRollback() and OnCommit() register callbacks (the writer's
  // batch lists); null for readers.
  ConnTransaction(Connection& conn, Mode mode, UndoList* undos = nullptr,
                  UndoList* commit_hooks = nullptr)
      : conn_(conn), mode_(mode), undos_(undos), commit_hooks_(commit_hooks) {}
  StatusOr<std::int64_t> Execute(std::string_view sql, const std::vector<Value>& params) override {
    return conn_.Execute(sql, params, mode_);
  }
  StatusOr<std::vector<Row>> Query(std::string_view sql,
                                   const std::vector<Value>& params) override {
    return conn_.Query(sql, params, mode_);
  }
  void OnRollback(std::function<void()> undo) override {
    if (undos_ != nullptr && undo) undos_->push_back(std::move(undo));
  }
  void OnCommit(std::function<void()> done) override {
    if (commit_hooks_ != nullptr && done) commit_hooks_->push_back(std::move(done));
  }

 private:
  Connection& conn_;
  Mode mode_;
  UndoList* undos_;
  UndoList* commit_hooks_;
};

class SqliteStore;
// The store whose writer runs on this thread (detects Commit() from inside a unit).
thread_local const SqliteStore* tl_writer_of = nullptr;

class SqliteStore final : public Store {
 public:
  SqliteStore(const SqliteOptions& options, std::unique_ptr<Connection> writer,
              std::vector<std::unique_ptr<Connection>> readers)
      : max_batch_units_(std::max<std::size_t>(1, options.max_batch_units)),
        writer_(std::move(writer)),
        idle_readers_(std::move(readers)) {}

  ~SqliteStore() override {
    Shutdown();
    {
      std::lock_guard<std::mutex> lock(readers_mu_);
      idle_readers_.clear();
    }
    writer_.reset();  // last: the last connection to close checkpoints the WAL
  }

  void Start() {
    writer_thread_ = std::thread([this] { WriterLoop(); });
  }

  Status Migrate(const std::vector<Migration>& migrations) override;
  Status Commit(UnitOfWork unit) override;
  void CommitAsync(UnitOfWork unit, std::function<void(Status)> done) override;
  Status Read(const std::function<Status(Transaction&)>& reader) override;
  CommitStats stats() const override {
    CommitStats s;
    s.units = units_.load(std::memory_order_relaxed);
    s.batches = batches_.load(std::memory_order_relaxed);
    s.max_batch = max_batch_.load(std::memory_order_relaxed);
    s.queued = queued_.load(std::memory_order_relaxed);
    for (std::size_t i = 0; i < s.commit_duration_buckets.size(); ++i) {
      s.commit_duration_buckets[i] = commit_buckets_[i].load(std::memory_order_relaxed);
    }
    s.commit_duration_nanos = commit_nanos_.load(std::memory_order_relaxed);
    return s;
  }
  void Shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    work_cv_.notify_all();
    if (tl_writer_of == this) return;  // called from a unit: the writer stops after draining
    std::lock_guard<std::mutex> lock(join_mu_);
    if (writer_thread_.joinable()) writer_thread_.join();
  }

 private:
  // Where a submitter waits for its result. One per submitting thread, reused across commits,
  // shared with the writer so that it outlives the writer's notify even if the submitter has
  // already returned (and its thread exited). `done` is a futex word (C++20 atomic wait):
  // waking a submitter touches no lock the writer or other submitters need.
  struct Waiter {
    std::atomic<std::uint32_t> done{0};
  };
  static const std::shared_ptr<Waiter>& ThreadWaiter() {
    thread_local const std::shared_ptr<Waiter> waiter = std::make_shared<Waiter>();
    return waiter;
  }

  // One submission to the writer: a unit (batched) or an exclusive job (its own transaction).
  // A waited-for Job lives on the submitter's stack; the writer writes `result`, then releases
  // `waiter->done`, and never touches the Job after that. An asynchronous Job (`on_done` set) is
  // owned by the queue and then by the writer, which hands it `result` and deletes it.
  struct Job {
    UnitOfWork unit;
    std::function<Status(Connection&)> exclusive;
    Status result;
    std::shared_ptr<Waiter> waiter;
    std::function<void(Status)> on_done;
  };

  Status Submit(Job& job);
  // Queues `job` (false if the store is closed; then the caller keeps it).
  bool Enqueue(Job* job);
  void Complete(const std::vector<Job*>& batch);
  void WriterLoop();
  void RunBatch(const std::vector<Job*>& batch);
  // COMMIT on the writer connection, its duration recorded for stats().
  Status TimedCommit();
  void RunExclusive(Job& job);
  Status RunUnit(const UnitOfWork& unit);
  void FailBatch(const std::vector<Job*>& batch, const Status& cause);

  // Undo callbacks registered by the units of the running batch (writer thread only).
  UndoList undos_;
  UndoList commit_hooks_;  // OnCommit callbacks of the current batch

  const std::size_t max_batch_units_;

  // Writer state: touched only by the writer thread once started (and by the destructor after).
  std::unique_ptr<Connection> writer_;

  std::mutex mu_;  // guards queue_, stopping_, wake_at_
  std::condition_variable work_cv_;
  std::deque<Job*> queue_;
  bool stopping_ = false;
  // Submit() wakes the writer once the queue holds this many jobs (1: any; larger while the
  // writer gathers a group commit, so it is not woken for every single arrival).
  std::size_t wake_at_ = 1;

  std::mutex join_mu_;
  std::thread writer_thread_;

  std::mutex readers_mu_;
  std::condition_variable readers_cv_;
  std::vector<std::unique_ptr<Connection>> idle_readers_;

  std::atomic<std::uint64_t> units_{0};
  std::atomic<std::uint64_t> batches_{0};
  std::atomic<std::uint64_t> max_batch_{0};
  std::atomic<std::uint64_t> queued_{0};
  std::array<std::atomic<std::uint64_t>, kCommitDurationBounds.size() + 1> commit_buckets_{};
  std::atomic<std::uint64_t> commit_nanos_{0};
};

Status SqliteStore::Submit(Job& job) {
  if (blocking::RefuseToBlock()) return blocking::WouldBlockError();
  if (tl_writer_of == this) {
    return InternalError("store: Commit/Migrate called from inside a unit of work");
  }
  job.waiter = ThreadWaiter();
  job.waiter->done.store(0, std::memory_order_relaxed);
  if (!Enqueue(&job)) return UnavailableError("store: closed");
  // A late notify for an earlier job of this thread only causes a spurious wake-up here.
  while (job.waiter->done.load(std::memory_order_acquire) == 0) job.waiter->done.wait(0);
  return std::move(job.result);
}

bool SqliteStore::Enqueue(Job* job) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return false;
  queue_.push_back(job);
  queued_.fetch_add(1, std::memory_order_relaxed);
  if (queue_.size() >= wake_at_) work_cv_.notify_one();
  return true;
}

Status SqliteStore::Commit(UnitOfWork unit) {
  if (!unit) return InvalidArgumentError("store: empty unit of work");
  Job job;
  job.unit = std::move(unit);
  return Submit(job);
}

void SqliteStore::CommitAsync(UnitOfWork unit, std::function<void(Status)> done) {
  if (!unit) return done(InvalidArgumentError("store: empty unit of work"));
  if (tl_writer_of == this) {
    return done(InternalError("store: Commit/Migrate called from inside a unit of work"));
  }
  auto job = std::make_unique<Job>();
  job->unit = std::move(unit);
  job->on_done = std::move(done);
  if (!Enqueue(job.get())) return job->on_done(UnavailableError("store: closed"));
  job.release();  // the writer deletes it once `on_done` has run
}

void SqliteStore::Complete(const std::vector<Job*>& batch) {
  // A waited-for Job may die as soon as its `done` is set: keep only the waiter.
  std::vector<std::shared_ptr<Waiter>> waiters;
  waiters.reserve(batch.size());
  for (Job* job : batch) {
    if (job->on_done) {
      const std::unique_ptr<Job> owned(job);
      try {
        owned->on_done(std::move(owned->result));
      } catch (...) {  // the contract says cheap and non-throwing; never let it stop the writer
      }
      continue;
    }
    waiters.push_back(job->waiter);
    job->waiter->done.store(1, std::memory_order_release);
  }
  for (const auto& waiter : waiters) waiter->done.notify_one();
}

void SqliteStore::WriterLoop() {
  tl_writer_of = this;
  std::vector<Job*> batch;
  batch.reserve(max_batch_units_);
  // Group commit: the submitters of the last batch usually come straight back (a request thread
  // audits its next operation). Once a batch of several units is done, the writer waits a little
  // for them, so the next transaction carries them too instead of only those that queued during
  // the last fsync: fewer, fuller transactions. Bounded: at most an eighth of the last batch's
  // duration (a quarter made audited KV reads ~6% slower: alternating runs, BENCHMARKS.md) and
  // kMaxGroupWait, never after a lone unit (no concurrency: no wait, no latency added), and it
  // stops as soon as they are all back.
  constexpr auto kMaxGroupWait = std::chrono::microseconds(2000);
  std::size_t gather_target = 0;  // queue length to wait for (0: do not wait)
  std::chrono::steady_clock::duration last_batch_time{};
  for (;;) {
    batch.clear();
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) break;  // stopping, and everything queued has been done
      if (gather_target > queue_.size() && !stopping_ && !queue_.front()->exclusive) {
        const auto wait =
            std::min<std::chrono::steady_clock::duration>(kMaxGroupWait, last_batch_time / 8);
        wake_at_ = gather_target;
        work_cv_.wait_until(lock, std::chrono::steady_clock::now() + wait,
                            [&] { return stopping_ || queue_.size() >= gather_target; });
        wake_at_ = 1;
      }
      if (queue_.front()->exclusive) {
        batch.push_back(queue_.front());
        queue_.pop_front();
      } else {
        while (!queue_.empty() && !queue_.front()->exclusive && batch.size() < max_batch_units_) {
          batch.push_back(queue_.front());
          queue_.pop_front();
        }
      }
      queued_.fetch_sub(batch.size(), std::memory_order_relaxed);
    }
    const auto started = std::chrono::steady_clock::now();
    if (batch.front()->exclusive) {
      RunExclusive(*batch.front());
    } else {
      RunBatch(batch);
    }
    last_batch_time = std::chrono::steady_clock::now() - started;
    {
      std::lock_guard<std::mutex> lock(mu_);
      // Wait next time for this batch's submitters on top of what queued meanwhile.
      gather_target =
          batch.size() > 1 ? std::min(max_batch_units_, queue_.size() + batch.size()) : 0;
    }
    Complete(batch);
  }
}

Status SqliteStore::RunUnit(const UnitOfWork& unit) {
  ConnTransaction tx(*writer_, Mode::kUnit, &undos_, &commit_hooks_);
  try {
    return unit(tx);
  } catch (...) {
    // what() is not used: exception texts may quote input (secrets).
    return InternalError("store: unit of work threw an exception");
  }
}

void SqliteStore::FailBatch(const std::vector<Job*>& batch, const Status& cause) {
  writer_->RollbackQuietly();
  RunUndos(undos_);  // every unit of the batch, newest first
  commit_hooks_.clear();
  const Status failed = UnavailableError("store: transaction not committed: " + cause.message());
  for (Job* job : batch) job->result = failed;
}

void SqliteStore::RunBatch(const std::vector<Job*>& batch) {
  units_.fetch_add(batch.size(), std::memory_order_relaxed);
  undos_.clear();
  commit_hooks_.clear();
  if (Status s = writer_->Internal("BEGIN IMMEDIATE"); !s.ok()) return FailBatch(batch, s);
  for (Job* job : batch) {
    if (Status s = writer_->Internal("SAVEPOINT u"); !s.ok()) return FailBatch(batch, s);
    const std::size_t unit_undos = undos_.size();
    const std::size_t unit_hooks = commit_hooks_.size();
    Status result = RunUnit(job->unit);
    if (!writer_->in_transaction()) {
      // SQLite rolled the whole transaction back (I/O error, disk full): the batch is lost.
      return FailBatch(batch, result.ok() ? InternalError("transaction ended by a unit") : result);
    }
    if (result.ok()) {
      if (Status s = writer_->Internal("RELEASE u"); !s.ok()) return FailBatch(batch, s);
    } else {
      RunUndos(undos_, unit_undos);  // this unit's only, newest first
      commit_hooks_.resize(unit_hooks);
      if (Status s = writer_->Internal("ROLLBACK TO u"); !s.ok()) return FailBatch(batch, s);
      if (Status s = writer_->Internal("RELEASE u"); !s.ok()) return FailBatch(batch, s);
    }
    job->result = std::move(result);
  }
  if (Status s = TimedCommit(); !s.ok()) return FailBatch(batch, s);
  undos_.clear();  // committed: nothing to undo
  for (auto& done : commit_hooks_) {
    try {
      done();
    } catch (...) {
    }
  }
  commit_hooks_.clear();
  batches_.fetch_add(1, std::memory_order_relaxed);
  const std::uint64_t n = batch.size();
  std::uint64_t max = max_batch_.load(std::memory_order_relaxed);
  while (n > max && !max_batch_.compare_exchange_weak(max, n, std::memory_order_relaxed)) {
  }
}

Status SqliteStore::TimedCommit() {
  const auto start = std::chrono::steady_clock::now();
  Status committed = writer_->Internal("COMMIT");
  const auto nanos =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count();
  const double seconds = static_cast<double>(nanos) / 1e9;
  std::size_t bucket = 0;
  while (bucket < kCommitDurationBounds.size() && seconds > kCommitDurationBounds[bucket]) ++bucket;
  commit_buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  commit_nanos_.fetch_add(static_cast<std::uint64_t>(nanos), std::memory_order_relaxed);
  return committed;
}

void SqliteStore::RunExclusive(Job& job) {
  if (Status s = writer_->Internal("BEGIN IMMEDIATE"); !s.ok()) {
    writer_->RollbackQuietly();
    job.result = UnavailableError("store: transaction not committed: " + s.message());
    return;
  }
  Status result;
  try {
    result = job.exclusive(*writer_);
  } catch (...) {
    result = InternalError("store: job threw an exception");
  }
  if (!result.ok()) {
    writer_->RollbackQuietly();
    job.result = std::move(result);
    return;
  }
  if (Status s = TimedCommit(); !s.ok()) {
    writer_->RollbackQuietly();
    job.result = UnavailableError("store: transaction not committed: " + s.message());
    return;
  }
  job.result = Status::Ok();
}

Status SqliteStore::Migrate(const std::vector<Migration>& migrations) {
  // Components in order of first appearance; each component's versions ascending.
  std::vector<std::string> components;
  std::map<std::string, std::vector<const Migration*>> by_component;
  std::set<std::pair<std::string, int>> seen;
  for (const Migration& m : migrations) {
    if (m.component.empty()) return InvalidArgumentError("store: migration without component");
    if (m.version <= 0) {
      return InvalidArgumentError("store: migration " + m.component + " has version " +
                                  std::to_string(m.version) + " (must be >= 1)");
    }
    if (!seen.emplace(m.component, m.version).second) {
      return InvalidArgumentError("store: duplicate migration " + m.component + " v" +
                                  std::to_string(m.version));
    }
    auto [it, inserted] = by_component.try_emplace(m.component);
    if (inserted) components.push_back(m.component);
    it->second.push_back(&m);
  }
  for (const std::string& component : components) {
    std::vector<const Migration*>& list = by_component[component];
    std::sort(list.begin(), list.end(),
              [](const Migration* a, const Migration* b) { return a->version < b->version; });
    for (const Migration* m : list) {
      Job job;
      job.exclusive = [m](Connection& c) -> Status {
        const std::vector<Value> key = {m->component, static_cast<std::int64_t>(m->version)};
        LOCKBOX_ASSIGN_OR_RETURN(
            std::vector<Row> applied,
            c.Query("SELECT 1 FROM schema_migrations WHERE component = ? AND version = ?", key,
                    Mode::kInternal));
        if (!applied.empty()) return Status::Ok();
        LOCKBOX_RETURN_IF_ERROR(c.ExecScript(m->sql, Mode::kMigration));
        const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count();
        return c
            .Execute(
                "INSERT INTO schema_migrations(component, version, applied_at) VALUES (?, ?, ?)",
                {m->component, static_cast<std::int64_t>(m->version), now}, Mode::kInternal)
            .status();
      };
      Status s = Submit(job);
      if (!s.ok()) {
        return s.WithContext("migration " + m->component + " v" + std::to_string(m->version));
      }
    }
  }
  return Status::Ok();
}

Status SqliteStore::Read(const std::function<Status(Transaction&)>& reader) {
  if (blocking::RefuseToBlock()) return blocking::WouldBlockError();
  if (!reader) return InvalidArgumentError("store: empty reader");
  std::unique_ptr<Connection> conn;
  {
    std::unique_lock<std::mutex> lock(readers_mu_);
    readers_cv_.wait(lock, [this] { return !idle_readers_.empty(); });
    conn = std::move(idle_readers_.back());
    idle_readers_.pop_back();
  }
  Status result = [&]() -> Status {
    LOCKBOX_RETURN_IF_ERROR(conn->Internal("BEGIN"));
    // Take the snapshot now rather than at the reader's first statement.
    if (Status s = conn->Internal("SELECT 1 FROM sqlite_schema LIMIT 1"); !s.ok()) {
      conn->RollbackQuietly();
      return s;
    }
    ConnTransaction tx(*conn, Mode::kReader);
    Status r;
    try {
      r = reader(tx);
    } catch (...) {
      r = InternalError("store: reader threw an exception");
    }
    if (Status s = conn->Internal("COMMIT"); !s.ok()) {
      conn->RollbackQuietly();
      if (r.ok()) r = s;
    }
    return r;
  }();
  {
    std::lock_guard<std::mutex> lock(readers_mu_);
    idle_readers_.push_back(std::move(conn));
  }
  readers_cv_.notify_one();
  return result;
}

// A new file gets mode 0600; SQLite gives the WAL and shm files the database file's mode.
Status CreatePrivateFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int err = errno;
    return UnavailableError("store: cannot open '" + path + "': " + std::strerror(err));
  }
  ::close(fd);
  return Status::Ok();
}

}  // namespace

StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const SqliteOptions& options) {
  if (options.path.empty()) return InvalidArgumentError("store: empty database path");
  LOCKBOX_RETURN_IF_ERROR(CreatePrivateFile(options.path));
  LOCKBOX_ASSIGN_OR_RETURN(std::unique_ptr<Connection> writer,
                           Connection::Open(options, /*read_only=*/false));
  LOCKBOX_ASSIGN_OR_RETURN(std::vector<Row> mode,
                           writer->Query("PRAGMA journal_mode=WAL", {}, Mode::kInternal));
  const StatusOr<std::string> journal =
      mode.size() == 1 ? GetText(mode[0], 0) : StatusOr<std::string>(InternalError("no row"));
  if (!journal.ok() || *journal != "wal") {
    return UnavailableError("store: cannot switch '" + options.path + "' to WAL mode");
  }
  for (const char* pragma :
       {"PRAGMA synchronous=FULL", "PRAGMA secure_delete=ON", "PRAGMA foreign_keys=ON"}) {
    LOCKBOX_RETURN_IF_ERROR(writer->Internal(pragma));
  }
  LOCKBOX_RETURN_IF_ERROR(writer->ExecScript(
      "CREATE TABLE IF NOT EXISTS schema_migrations ("
      "component TEXT NOT NULL, version INTEGER NOT NULL, applied_at INTEGER NOT NULL, "
      "PRIMARY KEY (component, version))",
      Mode::kInternal));
  std::vector<std::unique_ptr<Connection>> readers;
  const std::size_t reader_count = std::max<std::size_t>(1, options.reader_connections);
  for (std::size_t i = 0; i < reader_count; ++i) {
    LOCKBOX_ASSIGN_OR_RETURN(std::unique_ptr<Connection> reader,
                             Connection::Open(options, /*read_only=*/true));
    readers.push_back(std::move(reader));
  }
  auto store = std::make_unique<SqliteStore>(options, std::move(writer), std::move(readers));
  store->Start();
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace lockbox::store
