// Audit appends per second through the commit pipeline (AuditLog::Record, synchronous=FULL, WAL)
// with 1, 8 and 64 concurrent submitters, next to the raw SQLite ceiling measured in the same run:
// one connection, WAL, synchronous=FULL, 64 rows of the audit_records shape per transaction with
// one prepared statement (what any pipeline on this disk can at best do).
// Each audit event is a realistic one (actor, op, path, remote address, one HMAC, details).
// Run: build/bin/audit_bench --benchmark_format=json (items_per_second = appends/s).
#include <benchmark/benchmark.h>
#include <sqlite3.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "audit/chain.h"
#include "audit/event.h"
#include "hsm/hsm.h"
#include "server/audit_log/audit_log.h"
#include "server/store/store.h"
#include "tests/support/softhsm_token.h"

namespace {

using namespace lockbox;

// One SoftHSM2 token, one store, one audit log for the whole run (the token is per process).
struct Fixture {
  Fixture() {
    const hsm::HsmConfig config = token.hsm_config();
    hsm = std::move(hsm::Hsm::Open(config).value());
    store::SqliteOptions store_options;
    store_options.path = token.dir().file("audit-bench.db");
    store = std::move(store::OpenSqliteStore(store_options).value());
    audit = std::move(audit_log::AuditLog::Open(*store, *hsm).value());
    token_mac = audit->Hmac("lbx.bench-token");
  }
  testing::SoftHsmToken token{"lockbox-audit-bench"};
  std::unique_ptr<hsm::Hsm> hsm;
  std::unique_ptr<store::Store> store;
  std::unique_ptr<audit_log::AuditLog> audit;
  std::string token_mac;
};

Fixture& F() {
  static Fixture* fixture = new Fixture();
  return *fixture;
}

audit::Event BenchEvent(int thread, std::int64_t i, const std::string& token_mac) {
  audit::Event e;
  e.request_id = "req-" + std::to_string(thread) + "-" + std::to_string(i);
  e.actor = "accessor:3f9c2a7b1e";
  e.op = "keyring.decrypt";
  e.path = "transit/keys/payments";
  e.remote_addr = "10.0.3.17";
  e.hmacs["token"] = token_mac;
  e.details = {{"key_version", 3}, {"batch", false}};
  return e;
}

void BM_AuditRecord(benchmark::State& state) {
  Fixture& f = F();
  const int thread = state.thread_index();
  std::int64_t i = 0;
  std::int64_t failures = 0;
  const store::CommitStats before = f.store->stats();
  for (auto _ : state) {
    if (!f.audit->Record(BenchEvent(thread, i++, f.token_mac)).ok()) ++failures;
  }
  state.SetItemsProcessed(state.iterations());
  if (failures > 0) state.SkipWithError("Record failed");
  if (thread == 0) {
    // Units per committed transaction during this run (approximate: threads end at different
    // times); checkpoints add a few transactions of their own.
    const store::CommitStats after = f.store->stats();
    const auto batches = after.batches - before.batches;
    state.counters["avg_batch"] = batches == 0 ? 0.0
                                               : static_cast<double>(after.units - before.units) /
                                                     static_cast<double>(batches);
  }
}
BENCHMARK(BM_AuditRecord)->Threads(1)->Threads(8)->Threads(64)->UseRealTime()->MinTime(2.0);

// The raw ceiling: direct SQLite, no pipeline, no hashing, no canonicalisation.
struct RawDb {
  explicit RawDb(const std::string& path) {
    if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) std::abort();
    Exec("PRAGMA journal_mode=WAL");
    Exec("PRAGMA synchronous=FULL");
    Exec(
        "CREATE TABLE audit_records (pos INTEGER PRIMARY KEY, seq INTEGER NOT NULL, "
        "kind TEXT NOT NULL CHECK (kind IN ('event','checkpoint')), body TEXT NOT NULL, "
        "hash BLOB)");
    Exec(
        "CREATE UNIQUE INDEX audit_records_event_seq ON audit_records (seq) "
        "WHERE kind = 'event'");
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO audit_records (pos, seq, kind, body, hash) "
                           "VALUES (?, ?, 'event', ?, ?)",
                           -1, &insert, nullptr) != SQLITE_OK) {
      std::abort();
    }
  }
  ~RawDb() {
    sqlite3_finalize(insert);
    sqlite3_close(db);
  }
  void Exec(const char* sql) {
    if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK) std::abort();
  }
  sqlite3* db = nullptr;
  sqlite3_stmt* insert = nullptr;
};

void BM_RawSqliteBatched(benchmark::State& state) {
  Fixture& f = F();
  // Google Benchmark calls this function several times (iteration estimation): a fresh file each.
  static std::atomic<int> run{0};
  RawDb raw(f.token.dir().file("raw-" + std::to_string(run.fetch_add(1)) + ".db"));
  // The same bytes an audit row holds: a canonical event of the same shape and a 32-byte hash.
  audit::Event e = BenchEvent(0, 0, f.token_mac);
  e.seq = 123456;
  e.log_id = "lbx-log-AAAAAAAAAAAAAAAA";
  e.time = audit::FormatTime(std::chrono::system_clock::now());
  const std::string body = audit::CanonicalEvent(e).value();
  const audit::ChainHash hash = audit::NextHash(audit::GenesisHash(e.log_id), body);
  const std::int64_t per_tx = state.range(0);
  std::int64_t seq = 0;
  for (auto _ : state) {
    raw.Exec("BEGIN");
    for (std::int64_t n = 0; n < per_tx; ++n) {
      ++seq;
      sqlite3_bind_int64(raw.insert, 1, seq);
      sqlite3_bind_int64(raw.insert, 2, seq);
      sqlite3_bind_text(raw.insert, 3, body.data(), static_cast<int>(body.size()), SQLITE_STATIC);
      sqlite3_bind_blob(raw.insert, 4, hash.data(), static_cast<int>(hash.size()), SQLITE_STATIC);
      if (sqlite3_step(raw.insert) != SQLITE_DONE) std::abort();
      sqlite3_reset(raw.insert);
    }
    raw.Exec("COMMIT");
  }
  state.SetItemsProcessed(state.iterations() * per_tx);
  state.counters["rows_per_tx"] = static_cast<double>(per_tx);
}
BENCHMARK(BM_RawSqliteBatched)->Arg(64)->UseRealTime()->MinTime(2.0);

}  // namespace

BENCHMARK_MAIN();
