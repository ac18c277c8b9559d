// Bring-up shared by the token store and token backend tests: a real SoftHSM2 token, a real
// SQLite store behind a decorator that counts reads and can fail commits, a real AuditLog, and a
// TokenStore on a fake clock.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "audit/event.h"
#include "server/audit_log/audit_log.h"
#include "server/auth/token_store.h"
#include "server/store/store.h"
#include "tests/support/softhsm_token.h"

namespace lockbox::auth {

// A real store that counts reader transactions (Read and Query) and, while `fail_commits` is
// set, fails every Commit with UNAVAILABLE before its unit runs (as a full disk would).
class CountingStore : public store::Store {
 public:
  explicit CountingStore(store::Store& inner) : inner_(inner) {}
  std::atomic<bool> fail_commits{false};
  std::atomic<std::uint64_t> reads{0};

  Status Migrate(const std::vector<store::Migration>& m) override { return inner_.Migrate(m); }
  Status Commit(store::UnitOfWork unit) override {
    if (fail_commits) return UnavailableError("store: database or disk is full");
    return inner_.Commit(std::move(unit));
  }
  Status Read(const std::function<Status(store::Transaction&)>& reader) override {
    ++reads;
    return inner_.Read(reader);
  }
  StatusOr<std::vector<store::Row>> Query(std::string_view sql,
                                          const std::vector<store::Value>& params) override {
    ++reads;
    return inner_.Query(sql, params);
  }
  store::CommitStats stats() const override { return inner_.stats(); }

 private:
  store::Store& inner_;
};

class TokenTestBase : public ::testing::Test {
 protected:
  void SetUp() override {
    hsm_token_ = std::make_unique<testing::SoftHsmToken>();
    auto h = hsm::Hsm::Open(hsm_token_->hsm_config());
    ASSERT_TRUE(h.ok()) << h.status().ToString();
    hsm_ = std::move(*h);
    store::SqliteOptions store_options;
    store_options.path = hsm_token_->dir().file("lockbox.db");
    auto s = store::OpenSqliteStore(store_options);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    real_store_ = std::move(*s);
    store_ = std::make_unique<CountingStore>(*real_store_);
    audit_log::AuditLogOptions audit_options;
    audit_options.checkpoint_every = std::chrono::hours(1);  // no background reads mid-test
    auto a = audit_log::AuditLog::Open(*store_, *hsm_, audit_options);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    audit_ = std::move(*a);
    options_.clock = [this] { return now_; };
    options_.max_ttl = std::chrono::hours(24);
    options_.default_ttl = std::chrono::hours(2);
    OpenTokens();
    caller_.actor = "test-actor";
    caller_.request_id = "req-1";
  }

  void OpenTokens() {
    tokens_.reset();
    auto t = TokenStore::Open(*store_, *audit_, options_);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    tokens_ = std::move(*t);
  }

  IssuedToken MustIssue(const TokenParams& params) {
    auto issued = tokens_->Issue(params, caller_);
    EXPECT_TRUE(issued.ok()) << issued.status().ToString();
    return issued.ok() ? *issued : IssuedToken{};
  }

  IssuedToken MustIssueRoot() {
    auto issued = CreateRootToken(*tokens_, std::nullopt, caller_);
    EXPECT_TRUE(issued.ok()) << issued.status().ToString();
    return issued.ok() ? *issued : IssuedToken{};
  }

  static TokenParams Params(std::vector<std::string> policies, std::string parent = "") {
    TokenParams p;
    p.policies = std::move(policies);
    p.parent_accessor = std::move(parent);
    p.ttl = std::chrono::hours(1);
    return p;
  }

  bool Authenticates(const std::string& token, std::string_view remote_addr = "127.0.0.1") {
    return tokens_->Authenticate(token, remote_addr).ok();
  }

  std::int64_t TokenRows() {
    auto rows = real_store_->Query("SELECT COUNT(*) FROM tokens", {});
    EXPECT_TRUE(rows.ok());
    return rows.ok() ? *store::GetInt(rows->front(), 0) : -1;
  }

  // The audit events recorded so far, parsed, in seq order.
  std::vector<audit::Event> AuditEvents() {
    std::vector<audit::Event> events;
    auto rows =
        real_store_->Query("SELECT body FROM audit_records WHERE kind = 'event' ORDER BY seq", {});
    EXPECT_TRUE(rows.ok());
    for (const auto& row : *rows) {
      auto event = audit::ParseCanonicalEvent(*store::GetText(row, 0));
      EXPECT_TRUE(event.ok());
      if (event.ok()) events.push_back(std::move(*event));
    }
    return events;
  }

  std::vector<audit::Event> EventsWithOp(std::string_view op) {
    std::vector<audit::Event> out;
    for (auto& e : AuditEvents()) {
      if (e.op == op) out.push_back(std::move(e));
    }
    return out;
  }

  // Every audit record's text, concatenated (to search it for secrets).
  std::string AuditText() {
    std::string text;
    auto rows = real_store_->Query("SELECT body FROM audit_records", {});
    EXPECT_TRUE(rows.ok());
    for (const auto& row : *rows) text += *store::GetText(row, 0) + "\n";
    return text;
  }

  Clock::time_point now_ = Clock::time_point(std::chrono::seconds(1'800'000'000));
  TokenStoreOptions options_;
  keyring::Caller caller_;
  std::unique_ptr<testing::SoftHsmToken> hsm_token_;
  std::unique_ptr<hsm::Hsm> hsm_;
  std::unique_ptr<store::Store> real_store_;
  std::unique_ptr<CountingStore> store_;
  std::unique_ptr<audit_log::AuditLog> audit_;
  std::unique_ptr<TokenStore> tokens_;
};

}  // namespace lockbox::auth
