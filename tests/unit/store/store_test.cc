#include "server/store/store.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <latch>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "server/blocking/would_block.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/store/fault_vfs.h"

extern char** environ;

namespace lockbox::store {
namespace {

using lockbox::testing::TempDir;

std::unique_ptr<Store> OpenOrDie(const SqliteOptions& options) {
  auto store = OpenSqliteStore(options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  if (!store.ok()) std::abort();
  return std::move(store).value();
}

std::unique_ptr<Store> OpenOrDie(const std::string& path) {
  SqliteOptions options;
  options.path = path;
  return OpenOrDie(options);
}

const std::vector<Migration>& TestMigrations() {
  static const std::vector<Migration> kMigrations = {
      {"test", 1, "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)"},
      {"test", 2,
       "CREATE TABLE rows_ (id INTEGER PRIMARY KEY, owner INTEGER NOT NULL, seq INTEGER NOT NULL);"
       "CREATE UNIQUE INDEX rows_owner_seq ON rows_ (owner, seq)"},
  };
  return kMigrations;
}

Status InsertItem(Transaction& tx, std::int64_t id, const std::string& name) {
  return tx.Execute("INSERT INTO items (id, name) VALUES (?, ?)", {id, name}).status();
}

std::int64_t CountItems(Store& store) {
  auto rows = store.Query("SELECT count(*) FROM items", {});
  EXPECT_TRUE(rows.ok()) << rows.status().ToString();
  if (!rows.ok()) return -1;
  return *GetInt((*rows)[0], 0);
}

std::set<std::int64_t> ItemIds(Store& store) {
  auto rows = store.Query("SELECT id FROM items", {});
  EXPECT_TRUE(rows.ok()) << rows.status().ToString();
  std::set<std::int64_t> ids;
  if (rows.ok()) {
    for (const Row& r : *rows) ids.insert(*GetInt(r, 0));
  }
  return ids;
}

// Spins (yielding, no sleeping) until `n` units wait in the commit queue. Called from inside a
// unit, it holds the writer until the others have piled up, so they must share the next batch.
void WaitUntilQueued(const Store& store, std::uint64_t n) {
  while (store.stats().queued < n) std::this_thread::yield();
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.file("lockbox.db");
    store_ = OpenOrDie(path_);
    ASSERT_TRUE(store_->Migrate(TestMigrations()).ok());
  }

  TempDir dir_;
  std::string path_;
  std::unique_ptr<Store> store_;
};

// ---- Accessors ----------------------------------------------------------------------------

TEST(RowAccessorsTest, TypedGetters) {
  const Row row = {nullptr, std::int64_t{7}, 1.5, std::string("x"), Blob{1, 2}};
  EXPECT_TRUE(IsNull(row, 0));
  EXPECT_FALSE(IsNull(row, 1));
  EXPECT_FALSE(IsNull(row, 9));
  EXPECT_EQ(*GetInt(row, 1), 7);
  EXPECT_EQ(*GetText(row, 3), "x");
  EXPECT_EQ(*GetBlob(row, 4), (Blob{1, 2}));
  EXPECT_EQ(GetInt(row, 3).status().code(), StatusCode::kInternal);
  EXPECT_EQ(GetText(row, 4).status().code(), StatusCode::kInternal);
  EXPECT_EQ(GetBlob(row, 0).status().code(), StatusCode::kInternal);
  EXPECT_EQ(GetInt(row, 5).status().code(), StatusCode::kInternal);
}

// ---- Basics ---------------------------------------------------------------------------------

std::uint64_t CommitsTimed(const CommitStats& s) {
  std::uint64_t total = 0;
  for (std::uint64_t n : s.commit_duration_buckets) total += n;
  return total;
}

TEST_F(StoreTest, CommitThenReadBack) {
  const CommitStats before = store_->stats();
  ASSERT_TRUE(store_->Commit([](Transaction& tx) { return InsertItem(tx, 1, "alpha"); }).ok());
  auto rows = store_->Query("SELECT id, name FROM items WHERE id = ?", {std::int64_t{1}});
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ(*GetInt((*rows)[0], 0), 1);
  EXPECT_EQ(*GetText((*rows)[0], 1), "alpha");
  const CommitStats s = store_->stats();
  EXPECT_EQ(s.units, 1u);
  EXPECT_EQ(s.batches, 1u);
  EXPECT_EQ(s.max_batch, 1u);
  EXPECT_EQ(s.queued, 0u);
  // The COMMIT (with its sync) is timed once, and took some time.
  EXPECT_EQ(CommitsTimed(s), CommitsTimed(before) + 1);
  EXPECT_GT(s.commit_duration_nanos, before.commit_duration_nanos);
}

TEST_F(StoreTest, ValuesRoundTrip) {
  const std::string text_with_nul("a\0b", 3);
  const Blob binary = {0, 255, 1, 0};
  ASSERT_TRUE(
      store_
          ->Migrate({{"values", 1, "CREATE TABLE v (id INTEGER PRIMARY KEY, n, i, d, t, e, b, z)"}})
          .ok());
  const std::vector<Value> params = {
      std::int64_t{1}, nullptr,       std::numeric_limits<std::int64_t>::min(),
      -2.25,           text_with_nul, std::string(),
      binary,          Blob()};
  ASSERT_TRUE(store_
                  ->Commit([&](Transaction& tx) {
                    auto n = tx.Execute("INSERT INTO v VALUES (?, ?, ?, ?, ?, ?, ?, ?)", params);
                    if (!n.ok()) return n.status();
                    EXPECT_EQ(*n, 1);
                    return Status::Ok();
                  })
                  .ok());
  auto rows = store_->Query("SELECT n, i, d, t, e, b, z, typeof(e), typeof(z) FROM v WHERE id = ?",
                            {std::int64_t{1}});
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->size(), 1u);
  const Row& r = (*rows)[0];
  EXPECT_TRUE(IsNull(r, 0));
  EXPECT_EQ(*GetInt(r, 1), std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(std::get<double>(r[2]), -2.25);
  EXPECT_EQ(*GetText(r, 3), text_with_nul);
  EXPECT_EQ(*GetText(r, 4), "");
  EXPECT_EQ(*GetBlob(r, 5), binary);
  EXPECT_EQ(*GetBlob(r, 6), Blob());  // an empty blob stays a blob, not NULL
  EXPECT_EQ(*GetText(r, 7), "text");
  EXPECT_EQ(*GetText(r, 8), "blob");
}

TEST_F(StoreTest, ExecuteReturnsChangedRows) {
  std::vector<std::int64_t> changed;
  ASSERT_TRUE(store_
                  ->Commit([&](Transaction& tx) -> Status {
                    for (std::int64_t i = 1; i <= 3; ++i) {
                      LOCKBOX_RETURN_IF_ERROR(InsertItem(tx, i, "n" + std::to_string(i)));
                    }
                    LOCKBOX_ASSIGN_OR_RETURN(auto upd,
                                             tx.Execute("UPDATE items SET name = name || '!' "
                                                        "WHERE id >= ?",
                                                        {std::int64_t{2}}));
                    changed.push_back(upd);
                    LOCKBOX_ASSIGN_OR_RETURN(auto sel, tx.Execute("SELECT * FROM items", {}));
                    changed.push_back(sel);
                    LOCKBOX_ASSIGN_OR_RETURN(
                        auto del, tx.Execute("DELETE FROM items WHERE id = ?", {std::int64_t{99}}));
                    changed.push_back(del);
                    return Status::Ok();
                  })
                  .ok());
  EXPECT_EQ(changed, (std::vector<std::int64_t>{2, 0, 0}));
}

TEST_F(StoreTest, NewDatabaseFileIsPrivate) {
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(StoreOpenTest, PragmasAreSet) {
  TempDir dir;
  auto store = OpenOrDie(dir.file("p.db"));
  auto mode = store->Query("SELECT * FROM pragma_journal_mode", {});
  // PRAGMA (and pragma functions) are reserved to the store.
  EXPECT_FALSE(mode.ok());
  store.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(dir.file("p.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr),
            SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)), "wal");
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

TEST(StoreOpenTest, MissingDirectoryIsUnavailable) {
  TempDir dir;
  SqliteOptions options;
  options.path = dir.file("missing/sub/x.db");
  auto store = OpenSqliteStore(options);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kUnavailable);
  options.path = "";
  EXPECT_EQ(OpenSqliteStore(options).status().code(), StatusCode::kInvalidArgument);
}

// ---- Migrations -----------------------------------------------------------------------------

TEST(StoreMigrationTest, RunOnceAcrossReopen) {
  TempDir dir;
  const std::string path = dir.file("m.db");
  // Out of order on purpose: v2 needs v1's table.
  const std::vector<Migration> migrations = {
      {"kv", 2, "ALTER TABLE kv ADD COLUMN extra TEXT"},
      {"kv", 1, "CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB)"},
      {"other", 1, "CREATE TABLE other (x INTEGER)"},
  };
  {
    auto store = OpenOrDie(path);
    Status s = store->Migrate(migrations);
    ASSERT_TRUE(s.ok()) << s.ToString();
    // Again in the same process: nothing re-runs (re-running CREATE TABLE would fail).
    s = store->Migrate(migrations);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  auto store = OpenOrDie(path);
  Status s = store->Migrate(migrations);
  ASSERT_TRUE(s.ok()) << s.ToString();
  auto rows = store->Query(
      "SELECT component, version FROM schema_migrations ORDER BY component, version", {});
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 3u);
  EXPECT_EQ(*GetText((*rows)[0], 0), "kv");
  EXPECT_EQ(*GetInt((*rows)[1], 1), 2);
  EXPECT_EQ(*GetText((*rows)[2], 0), "other");
  EXPECT_TRUE(store->Query("SELECT k, v, extra FROM kv", {}).ok());
}

TEST(StoreMigrationTest, FailingMigrationLeavesNoTrace) {
  TempDir dir;
  auto store = OpenOrDie(dir.file("m.db"));
  const std::vector<Migration> migrations = {
      {"bad", 1, "CREATE TABLE half (x INTEGER); INSERT INTO no_such_table VALUES (1)"},
      {"bad", 2, "CREATE TABLE later (x INTEGER)"},
  };
  Status s = store->Migrate(migrations);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_NE(s.message().find("migration bad v1"), std::string::npos) << s.message();
  auto tables = store->Query(
      "SELECT name FROM sqlite_schema WHERE type = 'table' AND name IN ('half', 'later')", {});
  ASSERT_TRUE(tables.ok());
  EXPECT_TRUE(tables->empty());
  auto recorded = store->Query("SELECT count(*) FROM schema_migrations", {});
  ASSERT_TRUE(recorded.ok());
  EXPECT_EQ(*GetInt((*recorded)[0], 0), 0);
  // The writer is fine afterwards.
  EXPECT_TRUE(store->Migrate({{"good", 1, "CREATE TABLE good (x INTEGER)"}}).ok());
}

TEST(StoreMigrationTest, RejectsBadLists) {
  TempDir dir;
  auto store = OpenOrDie(dir.file("m.db"));
  EXPECT_EQ(store->Migrate({{"a", 1, "CREATE TABLE a (x)"}, {"a", 1, "CREATE TABLE b (x)"}}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Migrate({{"a", 0, "CREATE TABLE a (x)"}}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Migrate({{"", 1, "CREATE TABLE a (x)"}}).code(), StatusCode::kInvalidArgument);
  // Transaction control inside a migration would break the writer's transaction.
  EXPECT_FALSE(store->Migrate({{"a", 1, "COMMIT; CREATE TABLE a (x)"}}).ok());
  EXPECT_TRUE(store->Migrate({{"a", 1, "CREATE TABLE a (x)"}}).ok());
}

// ---- Error mapping --------------------------------------------------------------------------

TEST_F(StoreTest, ErrorsAreMappedAndCarryNoValues) {
  ASSERT_TRUE(store_
                  ->Migrate({{"checks", 1,
                              "CREATE TABLE parent (id INTEGER PRIMARY KEY);"
                              "CREATE TABLE child (id INTEGER PRIMARY KEY, "
                              "  parent INTEGER NOT NULL REFERENCES parent(id), "
                              "  secret TEXT CHECK (length(secret) < 5))"}})
                  .ok());
  ASSERT_TRUE(store_->Commit([](Transaction& tx) { return InsertItem(tx, 1, "taken"); }).ok());
  const std::string secret = "s3cr3t-value-do-not-log";

  auto code_of = [&](const std::string& sql, const std::vector<Value>& params) {
    Status s = store_->Commit([&](Transaction& tx) { return tx.Execute(sql, params).status(); });
    EXPECT_EQ(s.message().find(secret), std::string::npos) << s.message();
    return s.code();
  };
  EXPECT_EQ(code_of("INSERT INTO items (id, name) VALUES (?, ?)", {std::int64_t{2}, "taken"}),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(code_of("INSERT INTO items (id, name) VALUES (?, ?)", {std::int64_t{1}, secret}),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(code_of("INSERT INTO items (id, name) VALUES (?, ?)", {std::int64_t{3}, nullptr}),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(code_of("INSERT INTO child (parent, secret) VALUES (?, ?)", {std::int64_t{42}, "ok"}),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(code_of("INSERT INTO parent (id) VALUES (?)", {std::int64_t{1}}), StatusCode::kOk);
  EXPECT_EQ(code_of("INSERT INTO child (parent, secret) VALUES (?, ?)", {std::int64_t{1}, secret}),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(code_of("INSERT INTO nope VALUES (?)", {secret}), StatusCode::kInternal);
  EXPECT_EQ(code_of("SELEKT ?", {secret}), StatusCode::kInternal);
  EXPECT_EQ(code_of("INSERT INTO items (id, name) VALUES (?, ?)", {secret}),
            StatusCode::kInvalidArgument);  // parameter count
  EXPECT_EQ(code_of("INSERT INTO parent (id) VALUES (5); DELETE FROM items", {}),
            StatusCode::kInvalidArgument);  // one statement per call
  EXPECT_EQ(code_of("", {}), StatusCode::kInvalidArgument);
  EXPECT_EQ(code_of("INSERT INTO parent (id) VALUES (6); -- trailing comment", {}),
            StatusCode::kOk);
  // Reserved statements.
  EXPECT_FALSE(
      store_->Commit([](Transaction& tx) { return tx.Execute("COMMIT", {}).status(); }).ok());
  EXPECT_FALSE(
      store_->Commit([](Transaction& tx) { return tx.Execute("SAVEPOINT x", {}).status(); }).ok());
  EXPECT_FALSE(store_
                   ->Commit([](Transaction& tx) {
                     return tx.Execute("PRAGMA foreign_keys = OFF", {}).status();
                   })
                   .ok());
  EXPECT_FALSE(store_
                   ->Commit([&](Transaction& tx) {
                     return tx.Execute("ATTACH DATABASE ? AS other", {dir_.file("x.db")}).status();
                   })
                   .ok());
  // The pipeline still works and foreign keys are still enforced.
  EXPECT_EQ(code_of("INSERT INTO child (parent, secret) VALUES (?, ?)", {std::int64_t{7}, "ok"}),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(CountItems(*store_), 1);
}

TEST_F(StoreTest, ReadRejectsWrites) {
  Status s = store_->Read([](Transaction& tx) {
    return tx.Execute("INSERT INTO items (id, name) VALUES (1, 'x')", {}).status();
  });
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CountItems(*store_), 0);
}

TEST_F(StoreTest, CommitFromInsideAUnitFailsInsteadOfDeadlocking) {
  Status inner;
  Status outer = store_->Commit([&](Transaction& tx) {
    inner = store_->Commit([](Transaction&) { return Status::Ok(); });
    return InsertItem(tx, 1, "outer");
  });
  EXPECT_TRUE(outer.ok());
  EXPECT_EQ(inner.code(), StatusCode::kInternal);
  EXPECT_EQ(store_->Commit(UnitOfWork()).code(), StatusCode::kInvalidArgument);
}

// ---- Commit pipeline --------------------------------------------------------------------------

// 16 threads x 200 commits, each inserting its own row and returning its rowid.
TEST_F(StoreTest, ConcurrentCommitsAreBatchedAndEachGetsItsOwnResult) {
  constexpr int kThreads = 16;
  constexpr int kPerThread = 200;
  std::latch gate_running(1);
  // The gate unit holds the writer until every worker's first commit is queued.
  std::thread gate([&] {
    Status s = store_->Commit([&](Transaction&) {
      gate_running.count_down();
      WaitUntilQueued(*store_, kThreads);
      return Status::Ok();
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
  });
  gate_running.wait();

  std::vector<std::vector<std::int64_t>> rowids(kThreads, std::vector<std::int64_t>(kPerThread));
  std::atomic<int> failures{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::int64_t rowid = -1;
        Status s = store_->Commit([&](Transaction& tx) -> Status {
          LOCKBOX_ASSIGN_OR_RETURN(
              std::vector<Row> rows,
              tx.Query("INSERT INTO rows_ (owner, seq) VALUES (?, ?) RETURNING id",
                       {std::int64_t{t}, std::int64_t{i}}));
          if (rows.size() != 1) return InternalError("no id");
          LOCKBOX_ASSIGN_OR_RETURN(rowid, GetInt(rows[0], 0));
          return Status::Ok();
        });
        if (!s.ok() || rowid <= 0) failures.fetch_add(1);
        rowids[t][i] = rowid;
      }
    });
  }
  for (auto& w : workers) w.join();
  gate.join();
  ASSERT_EQ(failures.load(), 0);

  auto rows = store_->Query("SELECT id, owner, seq FROM rows_", {});
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), static_cast<std::size_t>(kThreads * kPerThread));
  std::map<std::int64_t, std::pair<std::int64_t, std::int64_t>> by_id;
  for (const Row& r : *rows) by_id[*GetInt(r, 0)] = {*GetInt(r, 1), *GetInt(r, 2)};
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      auto it = by_id.find(rowids[t][i]);
      ASSERT_NE(it, by_id.end());
      EXPECT_EQ(it->second, std::make_pair(std::int64_t{t}, std::int64_t{i}));
    }
  }
  const CommitStats s = store_->stats();
  EXPECT_EQ(s.units, static_cast<std::uint64_t>(kThreads * kPerThread + 1));
  EXPECT_LT(s.batches, s.units);
  EXPECT_GE(s.max_batch, static_cast<std::uint64_t>(kThreads));
  EXPECT_EQ(s.queued, 0u);
}

// Runs `units` from one thread each while a gate unit holds the writer until all are queued: they
// then share one batch (checked through stats). Returns each unit's result.
std::vector<Status> RunInOneBatch(Store& store, std::vector<UnitOfWork> units) {
  const CommitStats before = store.stats();
  std::latch gate_running(1);
  std::thread gate([&] {
    Status s = store.Commit([&](Transaction&) {
      gate_running.count_down();
      WaitUntilQueued(store, units.size());
      return Status::Ok();
    });
    EXPECT_TRUE(s.ok());
  });
  gate_running.wait();
  std::vector<Status> results(units.size());
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < units.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = store.Commit(std::move(units[i])); });
  }
  for (auto& t : threads) t.join();
  gate.join();
  const CommitStats after = store.stats();
  EXPECT_EQ(after.batches - before.batches, 2u);  // the gate's batch, then all the units
  EXPECT_EQ(after.units - before.units, units.size() + 1);
  EXPECT_EQ(after.max_batch, units.size());
  return results;
}

TEST_F(StoreTest, FailingUnitInABatchRollsBackAlone) {
  std::vector<UnitOfWork> units;
  units.push_back([](Transaction& tx) { return InsertItem(tx, 1, "one"); });
  units.push_back([](Transaction& tx) -> Status {
    LOCKBOX_RETURN_IF_ERROR(InsertItem(tx, 2, "two"));
    return InsertItem(tx, 2, "two again");  // PRIMARY KEY violation after a successful insert
  });
  units.push_back([](Transaction& tx) -> Status {
    LOCKBOX_RETURN_IF_ERROR(InsertItem(tx, 4, "four"));
    return AbortedError("cas mismatch");  // the unit's own error, returned as is
  });
  units.push_back([](Transaction& tx) { return InsertItem(tx, 3, "three"); });
  const std::vector<Status> results = RunInOneBatch(*store_, std::move(units));
  EXPECT_TRUE(results[0].ok()) << results[0].ToString();
  EXPECT_EQ(results[1].code(), StatusCode::kAlreadyExists) << results[1].ToString();
  EXPECT_EQ(results[2], AbortedError("cas mismatch"));
  EXPECT_TRUE(results[3].ok()) << results[3].ToString();
  EXPECT_EQ(ItemIds(*store_), (std::set<std::int64_t>{1, 3}));
}

TEST_F(StoreTest, ThrowingUnitIsAnErrorAndOthersCommit) {
  std::vector<UnitOfWork> units;
  units.push_back([](Transaction& tx) { return InsertItem(tx, 1, "one"); });
  units.push_back([](Transaction& tx) -> Status {
    LOCKBOX_RETURN_IF_ERROR(InsertItem(tx, 2, "two"));
    throw std::runtime_error("boom: s3cr3t");
  });
  units.push_back([](Transaction& tx) { return InsertItem(tx, 3, "three"); });
  const std::vector<Status> results = RunInOneBatch(*store_, std::move(units));
  EXPECT_TRUE(results[0].ok());
  EXPECT_EQ(results[1].code(), StatusCode::kInternal);
  EXPECT_EQ(results[1].message().find("s3cr3t"), std::string::npos);
  EXPECT_TRUE(results[2].ok());
  EXPECT_EQ(ItemIds(*store_), (std::set<std::int64_t>{1, 3}));
}

TEST(StoreBatchLimitTest, BatchesAreCappedAtMaxBatchUnits) {
  TempDir dir;
  SqliteOptions options;
  options.path = dir.file("b.db");
  options.max_batch_units = 2;
  auto store = OpenOrDie(options);
  ASSERT_TRUE(store->Migrate(TestMigrations()).ok());
  const CommitStats before = store->stats();
  std::latch gate_running(1);
  std::thread gate([&] {
    EXPECT_TRUE(store
                    ->Commit([&](Transaction&) {
                      gate_running.count_down();
                      WaitUntilQueued(*store, 5);
                      return Status::Ok();
                    })
                    .ok());
  });
  gate_running.wait();
  std::vector<std::thread> threads;
  for (std::int64_t i = 1; i <= 5; ++i) {
    threads.emplace_back([&, i] {
      EXPECT_TRUE(
          store->Commit([i](Transaction& tx) { return InsertItem(tx, i, "n" + std::to_string(i)); })
              .ok());
    });
  }
  for (auto& t : threads) t.join();
  gate.join();
  const CommitStats after = store->stats();
  EXPECT_EQ(after.batches - before.batches, 4u);  // the gate, then 2 + 2 + 1
  EXPECT_EQ(after.max_batch, 2u);
  EXPECT_EQ(CountItems(*store), 5);
}

TEST_F(StoreTest, CommitAsyncTellsEachUnitItsResultOnceItsBatchIsDurable) {
  constexpr int kUnits = 20;
  std::mutex mu;
  std::map<int, std::vector<Status>> results;  // per unit: every call of its `done`
  std::atomic<std::uint32_t> done{0};
  for (int i = 0; i < kUnits; ++i) {
    store_->CommitAsync(
        [i](Transaction& tx) -> Status {
          LOCKBOX_RETURN_IF_ERROR(InsertItem(tx, i, "async " + std::to_string(i)));
          if (i % 5 == 0) return AbortedError("planned");  // rolls back alone
          return Status::Ok();
        },
        [&, i](Status s) {
          std::lock_guard lock(mu);
          results[i].push_back(std::move(s));
          done.fetch_add(1);
          done.notify_all();
        });
  }
  for (std::uint32_t n; (n = done.load()) < kUnits;) done.wait(n);
  std::set<std::int64_t> committed;
  std::lock_guard lock(mu);
  for (int i = 0; i < kUnits; ++i) {
    ASSERT_EQ(results[i].size(), 1u) << "unit " << i;
    EXPECT_EQ(results[i][0].code(), i % 5 == 0 ? StatusCode::kAborted : StatusCode::kOk);
    if (i % 5 != 0) committed.insert(i);
  }
  store_.reset();  // what was reported OK is on disk
  EXPECT_EQ(ItemIds(*OpenOrDie(path_)), committed);
}

TEST_F(StoreTest, CommitAsyncOnAClosedStoreOrFromAUnitFailsAtOnce) {
  Status inner = Status::Ok();
  ASSERT_TRUE(store_
                  ->Commit([&](Transaction&) {
                    store_->CommitAsync([](Transaction&) { return Status::Ok(); },
                                        [&](Status s) { inner = std::move(s); });
                    return Status::Ok();
                  })
                  .ok());
  EXPECT_EQ(inner.code(), StatusCode::kInternal);  // answered at once, no deadlock
  store_->Shutdown();
  Status closed = Status::Ok();
  bool ran = false;
  store_->CommitAsync(
      [&](Transaction&) {
        ran = true;
        return Status::Ok();
      },
      [&](Status s) { closed = std::move(s); });
  EXPECT_EQ(closed.code(), StatusCode::kUnavailable);
  EXPECT_FALSE(ran);
}

TEST_F(StoreTest, InsideANonBlockingScopeReadsAndCommitsRefuseAtOnce) {
  ASSERT_TRUE(store_->Commit([](Transaction& tx) { return InsertItem(tx, 1, "before"); }).ok());
  {
    blocking::NonBlockingScope scope;
    bool ran = false;
    EXPECT_EQ(store_
                  ->Read([&](Transaction&) {
                    ran = true;
                    return Status::Ok();
                  })
                  .code(),
              StatusCode::kUnavailable);
    EXPECT_EQ(store_->Commit([&](Transaction& tx) { return InsertItem(tx, 2, "refused"); }).code(),
              StatusCode::kUnavailable);
    EXPECT_FALSE(ran);
    EXPECT_TRUE(scope.blocked());
  }
  EXPECT_EQ(ItemIds(*store_), (std::set<std::int64_t>{1}));  // nothing happened, reads work again
}

TEST_F(StoreTest, ShutdownDrainsQueuedUnitsThenRefusesCommits) {
  std::latch gate_running(1);
  std::thread gate([&] {
    Status s = store_->Commit([&](Transaction& tx) {
      gate_running.count_down();
      WaitUntilQueued(*store_, 3);
      store_->Shutdown();  // from inside a unit: stops accepting, does not wait
      return InsertItem(tx, 100, "gate");
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
  });
  gate_running.wait();
  std::vector<Status> results(3);
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] {
      results[i] = store_->Commit(
          [i](Transaction& tx) { return InsertItem(tx, i, "queued " + std::to_string(i)); });
    });
  }
  for (auto& t : threads) t.join();
  gate.join();
  for (const Status& s : results) EXPECT_TRUE(s.ok()) << s.ToString();  // drained, not dropped
  Status late = store_->Commit([](Transaction& tx) { return InsertItem(tx, 50, "late"); });
  EXPECT_EQ(late.code(), StatusCode::kUnavailable);
  EXPECT_EQ(store_->Migrate({{"late", 1, "CREATE TABLE late (x)"}}).code(),
            StatusCode::kUnavailable);
  store_->Shutdown();  // idempotent, and joins this time
  EXPECT_EQ(ItemIds(*store_), (std::set<std::int64_t>{0, 1, 2, 100}));  // reads still work
  store_.reset();
  auto reopened = OpenOrDie(path_);
  EXPECT_EQ(ItemIds(*reopened), (std::set<std::int64_t>{0, 1, 2, 100}));
}

// ---- Failing disk ---------------------------------------------------------------------------

class FaultGuard {
 public:
  ~FaultGuard() {
    testing::SetFailWrites(false);
    testing::SetFailSyncs(false);
  }
};

TEST(StoreFaultTest, FailingWritesMakeTheBatchUnavailableAndLeaveNothing) {
  TempDir dir;
  FaultGuard guard;
  SqliteOptions options;
  options.path = dir.file("f.db");
  options.vfs = testing::FaultVfsName();
  {
    auto store = OpenOrDie(options);
    ASSERT_TRUE(store->Migrate(TestMigrations()).ok());
    ASSERT_TRUE(store->Commit([](Transaction& tx) { return InsertItem(tx, 1, "before"); }).ok());

    testing::SetFailWrites(true);
    Status s = store->Commit([](Transaction& tx) { return InsertItem(tx, 2, "lost"); });
    EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
    testing::SetFailWrites(false);

    testing::SetFailSyncs(true);
    s = store->Commit([](Transaction& tx) { return InsertItem(tx, 3, "lost too"); });
    EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
    testing::SetFailSyncs(false);

    // Migrations fail the same way.
    testing::SetFailWrites(true);
    EXPECT_EQ(store->Migrate({{"late", 1, "CREATE TABLE late (x)"}}).code(),
              StatusCode::kUnavailable);
    testing::SetFailWrites(false);

    // The disk is back: the store works again.
    ASSERT_TRUE(store->Commit([](Transaction& tx) { return InsertItem(tx, 4, "after"); }).ok());
    EXPECT_EQ(ItemIds(*store), (std::set<std::int64_t>{1, 4}));
  }
  auto store = OpenOrDie(dir.file("f.db"));
  EXPECT_EQ(ItemIds(*store), (std::set<std::int64_t>{1, 4}));
}

TEST(StoreFaultTest, WholeBatchIsUnavailableWhenCommitFails) {
  TempDir dir;
  FaultGuard guard;
  SqliteOptions options;
  options.path = dir.file("f.db");
  options.vfs = testing::FaultVfsName();
  auto store = OpenOrDie(options);
  ASSERT_TRUE(store->Migrate(TestMigrations()).ok());
  std::vector<UnitOfWork> units;
  for (std::int64_t i = 1; i <= 3; ++i) {
    units.push_back([i](Transaction& tx) { return InsertItem(tx, i, "x" + std::to_string(i)); });
  }
  // The gate arms the fault once the units are queued (the gate writes nothing, so its own
  // COMMIT needs no sync); then the units' batch runs its units fine, but its COMMIT cannot sync.
  const CommitStats before = store->stats();
  std::latch gate_running(1);
  std::thread gate([&] {
    Status s = store->Commit([&](Transaction&) {
      gate_running.count_down();
      WaitUntilQueued(*store, 3);
      testing::SetFailSyncs(true);
      return Status::Ok();
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
  });
  gate_running.wait();
  std::vector<Status> results(3);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] { results[i] = store->Commit(std::move(units[i])); });
  }
  for (auto& t : threads) t.join();
  gate.join();
  testing::SetFailSyncs(false);
  for (const Status& s : results) EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  const CommitStats after = store->stats();
  EXPECT_EQ(after.units - before.units, 4u);
  EXPECT_EQ(after.batches - before.batches, 1u);  // the gate's batch only
  EXPECT_TRUE(ItemIds(*store).empty());
}

// ---- Undo callbacks (Transaction::OnRollback) ---------------------------------------------

TEST_F(StoreTest, FailingUnitRunsOnlyItsOwnUndosNewestFirst) {
  // Touched only on the writer thread while units run; read after Commit() returned.
  std::vector<std::string> undone;
  std::vector<UnitOfWork> units;
  units.push_back([&](Transaction& tx) {
    tx.OnRollback([&] { undone.push_back("ok unit"); });
    return InsertItem(tx, 1, "one");
  });
  units.push_back([&](Transaction& tx) -> Status {
    tx.OnRollback([&] { undone.push_back("failing 1"); });
    LOCKBOX_RETURN_IF_ERROR(InsertItem(tx, 2, "two"));
    tx.OnRollback([&] { undone.push_back("failing 2"); });
    return AbortedError("cas mismatch");
  });
  units.push_back([&](Transaction& tx) -> Status {
    tx.OnRollback([&] { undone.push_back("throwing"); });
    throw std::runtime_error("boom");
  });
  units.push_back([&](Transaction& tx) {
    tx.OnRollback([&] { undone.push_back("ok unit 2"); });
    return InsertItem(tx, 3, "three");
  });
  const std::vector<Status> results = RunInOneBatch(*store_, std::move(units));
  EXPECT_TRUE(results[0].ok());
  EXPECT_EQ(results[1], AbortedError("cas mismatch"));
  EXPECT_EQ(results[2].code(), StatusCode::kInternal);
  EXPECT_TRUE(results[3].ok());
  // Units of one batch run in queue order, which depends on thread scheduling: compare as sets,
  // and check the failing unit's own pair ran newest first.
  std::multiset<std::string> got(undone.begin(), undone.end());
  EXPECT_EQ(got, (std::multiset<std::string>{"failing 1", "failing 2", "throwing"}));
  const auto first = std::find(undone.begin(), undone.end(), "failing 2");
  const auto second = std::find(undone.begin(), undone.end(), "failing 1");
  ASSERT_NE(first, undone.end());
  EXPECT_EQ(second, first + 1);
  EXPECT_EQ(ItemIds(*store_), (std::set<std::int64_t>{1, 3}));
}

TEST_F(StoreTest, CommittedUnitsRunNoUndoAndReadsIgnoreOnRollback) {
  int undone = 0;
  for (std::int64_t i = 1; i <= 3; ++i) {
    ASSERT_TRUE(store_
                    ->Commit([&, i](Transaction& tx) {
                      tx.OnRollback([&] { ++undone; });
                      return InsertItem(tx, i, "n" + std::to_string(i));
                    })
                    .ok());
  }
  // A later failing unit must not run the undos of earlier, committed batches.
  EXPECT_FALSE(store_->Commit([](Transaction& tx) { return InsertItem(tx, 1, "dup"); }).ok());
  EXPECT_EQ(undone, 0);
  Status s = store_->Read([&](Transaction& tx) -> Status {
    tx.OnRollback([&] { ++undone; });
    return NotFoundError("reader fails");
  });
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(undone, 0);
  EXPECT_EQ(CountItems(*store_), 3);
}

TEST_F(StoreTest, CommitHooksRunOnlyForUnitsThatCommitted) {
  int committed = 0;
  ASSERT_TRUE(store_
                  ->Commit([&](Transaction& tx) {
                    tx.OnCommit([&] { ++committed; });
                    return InsertItem(tx, 1, "a");
                  })
                  .ok());
  EXPECT_EQ(committed, 1);  // ran before Commit() returned
  // A unit that fails after registering its hook: the hook never runs.
  EXPECT_FALSE(store_
                   ->Commit([&](Transaction& tx) {
                     tx.OnCommit([&] { ++committed; });
                     return InsertItem(tx, 1, "duplicate key");
                   })
                   .ok());
  EXPECT_EQ(committed, 1);
  ASSERT_TRUE(store_
                  ->Read([&](Transaction& tx) -> Status {
                    tx.OnCommit([&] { ++committed; });
                    return Status::Ok();
                  })
                  .ok());
  EXPECT_EQ(committed, 1);
}

TEST(StoreFaultTest, FailedBatchCommitRunsTheUndosOfEveryUnitNewestFirst) {
  TempDir dir;
  FaultGuard guard;
  SqliteOptions options;
  options.path = dir.file("f.db");
  options.vfs = testing::FaultVfsName();
  auto store = OpenOrDie(options);
  ASSERT_TRUE(store->Migrate(TestMigrations()).ok());
  // Writer-thread only while units run; read after every Commit() returned.
  std::vector<std::int64_t> ran;
  std::vector<std::int64_t> undone;
  int gate_undone = 0;
  std::vector<UnitOfWork> units;
  for (std::int64_t i = 1; i <= 3; ++i) {
    units.push_back([&, i](Transaction& tx) {
      ran.push_back(i);
      tx.OnRollback([&, i] { undone.push_back(i); });
      tx.OnRollback([&, i] { undone.push_back(-i); });
      return InsertItem(tx, i, "x" + std::to_string(i));
    });
  }
  std::latch gate_running(1);
  std::thread gate([&] {
    Status s = store->Commit([&](Transaction& tx) {
      tx.OnRollback([&] { ++gate_undone; });
      gate_running.count_down();
      WaitUntilQueued(*store, 3);
      testing::SetFailSyncs(true);
      return Status::Ok();
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
  });
  gate_running.wait();
  std::vector<Status> results(3);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] { results[i] = store->Commit(std::move(units[i])); });
  }
  for (auto& t : threads) t.join();
  gate.join();
  testing::SetFailSyncs(false);
  for (const Status& s : results) EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_EQ(gate_undone, 0);  // the gate's batch committed
  // Newest first across the batch: the last unit's second callback, then its first, ...
  ASSERT_EQ(ran.size(), 3u);
  std::vector<std::int64_t> expected;
  for (auto it = ran.rbegin(); it != ran.rend(); ++it) {
    expected.push_back(-*it);
    expected.push_back(*it);
  }
  EXPECT_EQ(undone, expected);
  EXPECT_TRUE(ItemIds(*store).empty());
  // The next batch starts clean: nothing is undone again.
  undone.clear();
  ASSERT_TRUE(store
                  ->Commit([&](Transaction& tx) {
                    tx.OnRollback([&] { undone.push_back(99); });
                    return InsertItem(tx, 9, "after");
                  })
                  .ok());
  EXPECT_TRUE(undone.empty());
}

TEST(StoreFaultTest, FailingWritesRunTheUnitsUndoOnce) {
  // Writes fail (in WAL mode usually at COMMIT): the unit's undo runs exactly once.
  TempDir dir;
  FaultGuard guard;
  SqliteOptions options;
  options.path = dir.file("f.db");
  options.vfs = testing::FaultVfsName();
  auto store = OpenOrDie(options);
  ASSERT_TRUE(store->Migrate(TestMigrations()).ok());
  int undone = 0;
  testing::SetFailWrites(true);
  Status s = store->Commit([&](Transaction& tx) {
    tx.OnRollback([&] { ++undone; });
    return InsertItem(tx, 1, "x");
  });
  testing::SetFailWrites(false);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  // Whether the write failed at a statement (unit error) or at COMMIT, the undo ran exactly once.
  EXPECT_EQ(undone, 1);
  EXPECT_TRUE(ItemIds(*store).empty());
}

// ---- Reads ----------------------------------------------------------------------------------

TEST_F(StoreTest, ReadSeesOneSnapshot) {
  ASSERT_TRUE(store_->Commit([](Transaction& tx) { return InsertItem(tx, 1, "one"); }).ok());
  std::int64_t first = -1, second = -1;
  Status commit_during_read;
  Status s = store_->Read([&](Transaction& tx) -> Status {
    LOCKBOX_ASSIGN_OR_RETURN(auto a, tx.Query("SELECT count(*) FROM items", {}));
    LOCKBOX_ASSIGN_OR_RETURN(first, GetInt(a[0], 0));
    commit_during_read = store_->Commit([](Transaction& w) { return InsertItem(w, 2, "two"); });
    LOCKBOX_ASSIGN_OR_RETURN(auto b, tx.Query("SELECT count(*) FROM items", {}));
    LOCKBOX_ASSIGN_OR_RETURN(second, GetInt(b[0], 0));
    return Status::Ok();
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_TRUE(commit_during_read.ok()) << commit_during_read.ToString();
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 1);
  EXPECT_EQ(CountItems(*store_), 2);
}

TEST_F(StoreTest, SnapshotStartsAtReadNotAtFirstStatement) {
  Status s = store_->Read([&](Transaction& tx) -> Status {
    LOCKBOX_RETURN_IF_ERROR(store_->Commit([](Transaction& w) { return InsertItem(w, 1, "one"); }));
    LOCKBOX_ASSIGN_OR_RETURN(auto a, tx.Query("SELECT count(*) FROM items", {}));
    EXPECT_EQ(*GetInt(a[0], 0), 0);
    return Status::Ok();
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(CountItems(*store_), 1);
}

TEST_F(StoreTest, ReaderErrorsAndExceptionsAreReturned) {
  EXPECT_EQ(store_->Read([](Transaction&) { return NotFoundError("nope"); }),
            NotFoundError("nope"));
  EXPECT_EQ(store_->Read([](Transaction&) -> Status { throw std::runtime_error("x"); }).code(),
            StatusCode::kInternal);
  // The connections are still usable (more reads than pooled connections).
  for (int i = 0; i < 10; ++i) EXPECT_EQ(CountItems(*store_), 0);
}

TEST_F(StoreTest, ConcurrentReadersShareTheBoundedPool) {
  ASSERT_TRUE(store_->Commit([](Transaction& tx) { return InsertItem(tx, 1, "one"); }).ok());
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 12; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        if (CountItems(*store_) != 1) wrong.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

// ---- Durability under SIGKILL ---------------------------------------------------------------

constexpr char kChildDbEnv[] = "LOCKBOX_STORE_DURABILITY_DB";
constexpr char kChildFdEnv[] = "LOCKBOX_STORE_DURABILITY_FD";
constexpr int kChildFd = 200;

// Helper run in a child process by SigkillLosesNothingAcknowledged: commits numbered rows from
// four threads and reports each number on the pipe once Commit() returned OK.
TEST(StoreDurabilityChild, CommitStream) {
  const char* db = std::getenv(kChildDbEnv);
  const char* fd_text = std::getenv(kChildFdEnv);
  if (db == nullptr || fd_text == nullptr) {
    GTEST_SKIP() << "helper process for StoreDurabilityTest; runs only when spawned by it";
  }
  const int fd = std::atoi(fd_text);
  auto store = OpenOrDie(db);
  ASSERT_TRUE(store->Migrate(TestMigrations()).ok());
  std::atomic<std::int64_t> next{1};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (;;) {
        const std::int64_t n = next.fetch_add(1);
        if (n > 1'000'000) return;
        Status s = store->Commit(
            [n](Transaction& tx) { return InsertItem(tx, n, "row " + std::to_string(n)); });
        if (!s.ok()) std::_Exit(3);
        // 8 bytes < PIPE_BUF: each write is atomic. The parent gone (EPIPE) ends the child.
        if (::write(fd, &n, sizeof n) != static_cast<ssize_t>(sizeof n)) std::_Exit(4);
      }
    });
  }
  for (auto& t : threads) t.join();
}

TEST(StoreDurabilityTest, SigkillLosesNothingAcknowledged) {
  TempDir dir;
  const std::string db = dir.file("durable.db");
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  ASSERT_NE(fds[0], kChildFd);
  ASSERT_NE(fds[1], kChildFd);

  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  env_strings.push_back(std::string(kChildDbEnv) + "=" + db);
  env_strings.push_back(std::string(kChildFdEnv) + "=" + std::to_string(kChildFd));
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string exe = "/proc/self/exe";
  std::string filter = "--gtest_filter=StoreDurabilityChild.CommitStream";
  std::vector<char*> argv = {exe.data(), filter.data(), nullptr};

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], kChildFd);  // dup2 clears FD_CLOEXEC
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  ASSERT_EQ(rc, 0) << std::strerror(rc);

  std::set<std::int64_t> acked;
  std::vector<char> buffer;
  char chunk[4096];
  while (acked.size() < 300) {
    const ssize_t n = ::read(fds[0], chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the child died early: checked below
    buffer.insert(buffer.end(), chunk, chunk + n);
    std::size_t used = 0;
    for (; used + sizeof(std::int64_t) <= buffer.size(); used += sizeof(std::int64_t)) {
      std::int64_t v;
      std::memcpy(&v, buffer.data() + used, sizeof v);
      acked.insert(v);
    }
    buffer.erase(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(used));
  }
  ::kill(pid, SIGKILL);
  int wstatus = 0;
  ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
  ::close(fds[0]);
  ASSERT_GE(acked.size(), 300u) << "child exited early, status " << wstatus;
  ASSERT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL) << wstatus;

  auto store = OpenOrDie(db);
  const std::set<std::int64_t> present = ItemIds(*store);
  std::size_t missing = 0;
  for (std::int64_t n : acked) missing += present.count(n) == 0 ? 1 : 0;
  EXPECT_EQ(missing, 0u) << "acknowledged rows lost after SIGKILL";
  EXPECT_GE(present.size(), acked.size());
  // The database is intact.
  store.reset();
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open_v2(db.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(raw, "PRAGMA integrity_check", -1, &stmt, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)), "ok");
  sqlite3_finalize(stmt);
  sqlite3_close(raw);
}

// ---- Throughput (disabled: run with --gtest_also_run_disabled_tests) ----------------------

TEST(StoreBenchTest, DISABLED_TinyInserts64Threads) {
  TempDir dir;
  auto store = OpenOrDie(dir.file("bench.db"));
  ASSERT_TRUE(store->Migrate(TestMigrations()).ok());
  constexpr int kThreads = 64;
  constexpr int kPerThread = 500;
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Status s = store->Commit([&](Transaction& tx) {
          return tx
              .Execute("INSERT INTO rows_ (owner, seq) VALUES (?, ?)",
                       {std::int64_t{t}, std::int64_t{i}})
              .status();
        });
        if (!s.ok()) failures.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(failures.load(), 0);
  const CommitStats s = store->stats();
  std::printf("%d commits in %.2f s: %.0f commits/s, %llu batches, max batch %llu\n",
              kThreads * kPerThread, seconds, kThreads * kPerThread / seconds,
              static_cast<unsigned long long>(s.batches),
              static_cast<unsigned long long>(s.max_batch));
}

}  // namespace
}  // namespace lockbox::store
