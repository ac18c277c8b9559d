// Test environment for the AppRole and identity backends: a real SoftHSM2 token, a SQLite store
// and the audit log on top of them, plus helpers to build requests and read audit events.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "audit/event.h"
#include "hsm/hsm.h"
#include "server/audit_log/audit_log.h"
#include "server/logical/logical.h"
#include "server/store/store.h"
#include "tests/support/softhsm_token.h"

namespace lockbox::testing {

class MethodsTestEnv {
 public:
  // Call from SetUp() under ASSERT_NO_FATAL_FAILURE.
  void Open() {
    if (!token_) token_ = std::make_unique<SoftHsmToken>();
    auto h = hsm::Hsm::Open(token_->hsm_config());
    ASSERT_TRUE(h.ok()) << h.status().ToString();
    hsm_ = std::move(*h);
    store::SqliteOptions store_options;
    store_options.path = token_->dir().file("lockbox.db");
    auto s = store::OpenSqliteStore(store_options);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    auto a = audit_log::AuditLog::Open(*store_, *hsm_);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    audit_ = std::move(*a);
  }

  hsm::Hsm& hsm() { return *hsm_; }
  store::Store& store() { return *store_; }
  audit_log::AuditLog& audit() { return *audit_; }

  // The audit events recorded so far, in seq order.
  std::vector<audit::Event> Events() {
    std::vector<audit::Event> events;
    auto rows =
        store_->Query("SELECT body FROM audit_records WHERE kind = 'event' ORDER BY seq", {});
    EXPECT_TRUE(rows.ok());
    if (!rows.ok()) return events;
    for (const auto& row : *rows) {
      auto event = audit::ParseCanonicalEvent(*store::GetText(row, 0));
      EXPECT_TRUE(event.ok());
      if (event.ok()) events.push_back(std::move(*event));
    }
    return events;
  }

  // Every audit record's text, for "this secret never reaches the audit log" checks.
  std::string AllAuditText() {
    std::string text;
    auto rows = store_->Query("SELECT body FROM audit_records", {});
    EXPECT_TRUE(rows.ok());
    if (!rows.ok()) return text;
    for (const auto& row : *rows) text += *store::GetText(row, 0) + "\n";
    return text;
  }

 private:
  std::unique_ptr<SoftHsmToken> token_;
  std::unique_ptr<hsm::Hsm> hsm_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<audit_log::AuditLog> audit_;
};

inline logical::Request MakeRequest(logical::Operation operation, const std::string& mount,
                                    const std::string& relative_path,
                                    nlohmann::json data = nlohmann::json::object()) {
  logical::Request request;
  request.operation = operation;
  request.mount_point = mount;
  request.relative_path = relative_path;
  request.path = mount + relative_path;
  request.data = std::move(data);
  request.request_id = "req-" + relative_path;
  request.remote_addr = "127.0.0.1";
  request.caller.request_id = request.request_id;
  request.caller.actor = "accessor-admin";
  request.caller.remote_addr = request.remote_addr;
  return request;
}

}  // namespace lockbox::testing
