// Test bring-up for the KV engines: a real SoftHSM2 token, SQLite store, audit log and keyring.
// The engine sees the store through a CountingStore (counts reads) over a FlakyStore (can fail
// commits); the audit log and keyring use the FlakyStore too, so an audit outage is testable.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "audit/event.h"
#include "server/audit_log/audit_log.h"
#include "server/keyring/keyring.h"
#include "server/logical/logical.h"
#include "server/secrets/kv.h"
#include "tests/support/flaky_store.h"
#include "tests/support/recorded_answer.h"
#include "tests/support/softhsm_token.h"

namespace lockbox::secrets::testing {

using nlohmann::json;
using TimePoint = std::chrono::system_clock::time_point;

// Counts the reads that reach the database (Query() goes through Read()).
class CountingStore : public store::Store {
 public:
  explicit CountingStore(store::Store& inner) : inner_(inner) {}
  std::atomic<int> reads{0};

  Status Migrate(const std::vector<store::Migration>& m) override { return inner_.Migrate(m); }
  Status Commit(store::UnitOfWork unit) override { return inner_.Commit(std::move(unit)); }
  Status Read(const std::function<Status(store::Transaction&)>& reader) override {
    ++reads;
    return inner_.Read(reader);
  }
  store::CommitStats stats() const override { return inner_.stats(); }

 private:
  store::Store& inner_;
};

class KvTestEnv : public ::testing::Test {
 protected:
  // 2027-01-15T08:00:00.945319214Z
  static constexpr std::chrono::nanoseconds kStart{1'800'000'000'945'319'214};

  void SetUp() override {
    token_ = std::make_unique<lockbox::testing::SoftHsmToken>();
    auto h = hsm::Hsm::Open(token_->hsm_config());
    ASSERT_TRUE(h.ok()) << h.status().ToString();
    hsm_ = std::move(*h);
    store::SqliteOptions store_options;
    store_options.path = db_path();
    auto s = store::OpenSqliteStore(store_options);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    real_store_ = std::move(*s);
    flaky_ = std::make_unique<lockbox::testing::FlakyStore>(*real_store_);
    counting_ = std::make_unique<CountingStore>(*flaky_);
    audit_log::AuditLogOptions audit_options;
    auto a = audit_log::AuditLog::Open(*flaky_, *hsm_, audit_options);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    audit_ = std::move(*a);
    keyring::KeyringOptions keyring_options;
    keyring_options.clock = [this] { return Now(); };
    auto k = keyring::Keyring::Open(*hsm_, *flaky_, *audit_, keyring_options);
    ASSERT_TRUE(k.ok()) << k.status().ToString();
    keyring_ = std::move(*k);
    ASSERT_TRUE(real_store_->Migrate(KvMigrations()).ok());
    options_.clock = [this] { return Now(); };
  }

  void TearDown() override {
    backend_.reset();
    keyring_.reset();
    audit_.reset();
    counting_.reset();
    flaky_.reset();
    real_store_.reset();
    hsm_.reset();
  }

  TimePoint Now() {
    std::lock_guard lock(clock_mu_);
    return now_;
  }
  void Advance(std::chrono::nanoseconds d) {
    std::lock_guard lock(clock_mu_);
    now_ += std::chrono::duration_cast<TimePoint::duration>(d);
  }

  std::string db_path() const { return token_->dir().file("lockbox.db"); }

  static logical::MountEntry Mount(std::string path, std::string uuid, std::string version) {
    logical::MountEntry entry;
    entry.path = std::move(path);
    entry.type = "kv";
    entry.uuid = std::move(uuid);
    entry.accessor = "kv_0a1b2c3d";
    if (!version.empty()) entry.options["version"] = std::move(version);
    return entry;
  }

  std::unique_ptr<logical::Backend> MakeBackend(const logical::MountEntry& entry) {
    auto b = NewKvBackend(entry, *keyring_, *counting_, *audit_, options_);
    EXPECT_TRUE(b.ok()) << b.status().ToString();
    return b.ok() ? std::move(*b) : nullptr;
  }

  logical::Request Req(logical::Operation op, std::string relative, json data = json::object(),
                       const std::string& mount = "secret/") {
    logical::Request r;
    r.operation = op;
    r.mount_point = mount;
    r.relative_path = std::move(relative);
    r.path = mount + r.relative_path;
    r.data = std::move(data);
    r.request_id = "req-" + std::to_string(++request_counter_);
    r.remote_addr = "192.0.2.7";
    r.caller.request_id = r.request_id;
    r.caller.actor = "accessor-test";
    r.caller.remote_addr = r.remote_addr;
    return r;
  }

  // Runs a request against backend_ and records its read event as the router does.
  StatusOr<logical::Response> Serve(const logical::Request& request) {
    return lockbox::testing::RecordedAnswer(backend_->HandleRequest(request), *audit_);
  }

  // Runs a request against backend_ and expects success.
  logical::Response Ok(const logical::Request& request) {
    auto r = Serve(request);
    EXPECT_TRUE(r.ok()) << request.path << ": " << r.status().ToString();
    return r.ok() ? std::move(*r) : logical::Response{};
  }
  Status Err(const logical::Request& request) {
    auto r = Serve(request);
    EXPECT_FALSE(r.ok()) << request.path << " unexpectedly succeeded";
    return r.ok() ? Status::Ok() : r.status();
  }

  std::vector<audit::Event> AuditEvents() {
    std::vector<audit::Event> events;
    auto rows =
        real_store_->Query("SELECT body FROM audit_records WHERE kind = 'event' ORDER BY seq", {});
    EXPECT_TRUE(rows.ok());
    if (!rows.ok()) return events;
    for (const auto& row : *rows) {
      auto event = audit::ParseCanonicalEvent(*store::GetText(row, 0));
      EXPECT_TRUE(event.ok());
      if (event.ok()) events.push_back(std::move(*event));
    }
    return events;
  }
  std::vector<std::string> AuditBodies() {
    std::vector<std::string> bodies;
    auto rows = real_store_->Query("SELECT body FROM audit_records", {});
    EXPECT_TRUE(rows.ok());
    if (rows.ok()) {
      for (const auto& row : *rows) bodies.push_back(*store::GetText(row, 0));
    }
    return bodies;
  }

  std::int64_t Count(const std::string& sql, const std::vector<store::Value>& params = {}) {
    auto rows = real_store_->Query(sql, params);
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    return rows.ok() ? *store::GetInt(rows->at(0), 0) : -1;
  }

  Status Exec(const std::string& sql, const std::vector<store::Value>& params = {}) {
    return real_store_->Commit(
        [&](store::Transaction& tx) { return tx.Execute(sql, params).status(); });
  }

  static std::string FileBytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  // Every byte SQLite has written: the main file and the write-ahead log.
  std::string DatabaseBytes() { return FileBytes(db_path()) + FileBytes(db_path() + "-wal"); }

  std::mutex clock_mu_;
  TimePoint now_ = TimePoint(std::chrono::duration_cast<TimePoint::duration>(kStart));
  std::atomic<int> request_counter_{0};
  KvOptions options_;
  std::unique_ptr<lockbox::testing::SoftHsmToken> token_;
  std::unique_ptr<hsm::Hsm> hsm_;
  std::unique_ptr<store::Store> real_store_;
  std::unique_ptr<lockbox::testing::FlakyStore> flaky_;
  std::unique_ptr<CountingStore> counting_;
  std::unique_ptr<audit_log::AuditLog> audit_;
  std::unique_ptr<keyring::Keyring> keyring_;
  std::unique_ptr<logical::Backend> backend_;
};

}  // namespace lockbox::secrets::testing
