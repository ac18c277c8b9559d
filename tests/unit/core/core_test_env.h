// Test environment for the core: a real SoftHSM2 token, SQLite store, audit log and token store,
// the real auth/token/ backend, and small fake engines (kv, transit, approle, identity) that
// record what the router hands them.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "audit/event.h"
#include "server/audit_log/audit_log.h"
#include "server/auth/token_backend.h"
#include "server/auth/token_store.h"
#include "server/core/core.h"
#include "server/core/instrumented_hsm.h"
#include "server/logical/logical.h"
#include "tests/support/softhsm_token.h"

namespace lockbox::core::testing {

// An EventLog that forwards to the real audit log until `fail` is set (the audit store is down).
class SwitchableEventLog : public audit_log::EventLog {
 public:
  explicit SwitchableEventLog(audit_log::EventLog& inner) : inner_(inner) {}
  std::atomic<bool> fail{false};
  Status Append(store::Transaction& tx, audit::Event event) override {
    if (fail) return UnavailableError("audit store down");
    return inner_.Append(tx, std::move(event));
  }
  Status Record(audit::Event event) override {
    if (fail) return UnavailableError("audit store down");
    return inner_.Record(std::move(event));
  }

 private:
  audit_log::EventLog& inner_;
};

// What the fake engines saw and hold, shared by every instance (keyed by mount uuid, so data
// follows a mount across remounts, as real engines do).
struct FakeWorld {
  std::mutex mutex;
  std::map<std::string, std::map<std::string, nlohmann::json>> data;  // uuid → key → value
  std::vector<logical::Request> requests;
  std::map<std::string, int> purges;  // uuid → count
  std::vector<logical::MountEntry> remounted;
  std::vector<logical::MountEntry> created;
  store::Store* store = nullptr;  // for slow/<key>: a read that needs the store
};

// A tiny engine: data/<key> (existence check, read, write, delete), LIST data/ (keys),
// slow/<key> (a read that needs the store and carries its own event), use/<key> and
// slowuse/<key> (attemptable POSTs carrying their own event; slowuse needs the store),
// sudo/* (root-protected), login (unauthenticated), raw, error, warn.
class FakeEngine : public logical::Backend {
 public:
  FakeEngine(logical::MountEntry entry, FakeWorld& world)
      : entry_(std::move(entry)), world_(world) {}

  StatusOr<logical::Response> HandleRequest(const logical::Request& request) override {
    std::lock_guard lock(world_.mutex);
    world_.requests.push_back(request);
    auto& kv = world_.data[entry_.uuid];
    const std::string& rel = request.relative_path;
    logical::Response response;
    if (rel == "data/" && request.operation == logical::Operation::kList) {
      nlohmann::json keys = nlohmann::json::array();
      for (const auto& [key, value] : kv) keys.push_back(key);
      response.data = nlohmann::json{{"keys", keys}};
      return response;
    }
    if (rel.starts_with("data/")) {
      const std::string key = rel.substr(5);
      switch (request.operation) {
        case logical::Operation::kRead:
          if (kv.contains(key)) response.data = kv[key];
          return response;
        case logical::Operation::kCreate:
        case logical::Operation::kUpdate:
          kv[key] = request.data;
          return response;
        case logical::Operation::kDelete:
          kv.erase(key);
          return response;
        default:
          return UnimplementedError("unsupported operation");
      }
    }
    const bool use = rel.starts_with("use/") || rel.starts_with("slowuse/");
    const bool slow = rel.starts_with("slow/") || rel.starts_with("slowuse/");
    if ((slow && !use && request.operation == logical::Operation::kRead) ||
        (use && request.operation != logical::Operation::kRead)) {
      if (slow) LOCKBOX_RETURN_IF_ERROR(world_.store->Query("SELECT 1", {}).status());
      response.data = nlohmann::json{{"slow", slow}};
      // Like a real engine's read: the router records this event, then renders the answer.
      audit::Event event;
      event.op = use ? "fake.use" : "fake.slow.read";
      event.path = request.path;
      event.request_id = request.request_id;
      event.actor = request.caller.actor;
      event.remote_addr = request.remote_addr;
      response.event = std::move(event);
      return response;
    }
    if (rel.starts_with("sudo/") || rel == "login") {
      response.data = nlohmann::json{{"ok", true}, {"sudo", request.sudo}};
      return response;
    }
    if (rel == "warn") {
      response.warnings.push_back("careful");
      return response;
    }
    if (rel == "raw") {
      response.status = 404;
      response.data = nlohmann::json{{"data", nullptr}, {"metadata", {{"version", 2}}}};
      return response;
    }
    if (rel == "error") return InvalidArgumentError("bad thing");
    return NotFoundError("unsupported path");
  }

  StatusOr<std::optional<bool>> Exists(const logical::Request& request) override {
    if (!request.relative_path.starts_with("data/")) return std::optional<bool>();
    std::lock_guard lock(world_.mutex);
    return std::optional<bool>(world_.data[entry_.uuid].contains(request.relative_path.substr(5)));
  }
  bool IsUnauthenticated(std::string_view relative_path) const override {
    return relative_path == "login";
  }
  bool IsAttemptableUse(std::string_view relative_path) const override {
    return relative_path.starts_with("use/") || relative_path.starts_with("slowuse/");
  }
  bool IsSudo(std::string_view relative_path) const override {
    return relative_path.starts_with("sudo/");
  }
  Status Purge() override {
    std::lock_guard lock(world_.mutex);
    world_.purges[entry_.uuid]++;
    world_.data.erase(entry_.uuid);
    return Status::Ok();
  }
  void Remounted(const logical::MountEntry& entry) override {
    std::lock_guard lock(world_.mutex);
    entry_ = entry;
    world_.remounted.push_back(entry);
  }

 private:
  logical::MountEntry entry_;
  FakeWorld& world_;
};

// identity/: only the public JWKS.
class FakeIdentity : public logical::Backend {
 public:
  StatusOr<logical::Response> HandleRequest(const logical::Request& request) override {
    if (request.relative_path != "oidc/.well-known/keys") return NotFoundError("unsupported path");
    logical::Response response;
    response.raw_json = nlohmann::json{{"keys", {{{"kid", "identity-key"}}}}};
    return response;
  }
  bool IsUnauthenticated(std::string_view relative_path) const override {
    return relative_path == "oidc/.well-known/keys";
  }
  Status Purge() override { return Status::Ok(); }
};

class CoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    token_ = std::make_unique<lockbox::testing::SoftHsmToken>();
    auto hsm = hsm::Hsm::Open(token_->hsm_config());
    ASSERT_TRUE(hsm.ok()) << hsm.status().ToString();
    real_hsm_ = std::move(*hsm);
    hsm_ = std::make_unique<InstrumentedHsm>(*real_hsm_);
    store::SqliteOptions store_options;
    store_options.path = token_->dir().file("lockbox.db");
    auto store = store::OpenSqliteStore(store_options);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    world_.store = store_.get();
    auto audit = audit_log::AuditLog::Open(*store_, *hsm_);
    ASSERT_TRUE(audit.ok()) << audit.status().ToString();
    audit_ = std::move(*audit);
    events_ = std::make_unique<SwitchableEventLog>(*audit_);
    auth::TokenStoreOptions token_options;
    token_options.clock = [this] { return now_; };
    auto tokens = auth::TokenStore::Open(*store_, *events_, token_options);
    ASSERT_TRUE(tokens.ok()) << tokens.status().ToString();
    tokens_ = std::move(*tokens);
    CreateCore();
  }

  CoreOptions Options() {
    CoreOptions options;
    options.clock = [this] { return now_; };
    options.dev_mode = dev_mode_;
    return options;
  }

  // A fresh Core over the same store (a restart of the process, minus the HSM and audit log).
  void CreateCore() {
    core_.reset();
    bring_ups_ = 0;
    auto core = Core::Create(Options(), *store_, [this]() -> StatusOr<Services> {
      ++bring_ups_;
      Services services;
      services.hsm = hsm_.get();
      services.audit = audit_.get();
      services.events = events_.get();
      services.tokens = tokens_.get();
      LOCKBOX_ASSIGN_OR_RETURN(services.token_backend,
                               auth::NewTokenBackend(*tokens_, *store_, *events_));
      services.identity =
          [](const logical::MountEntry&) -> StatusOr<std::unique_ptr<logical::Backend>> {
        return std::unique_ptr<logical::Backend>(std::make_unique<FakeIdentity>());
      };
      const logical::BackendFactory fake =
          [this](const logical::MountEntry& entry) -> StatusOr<std::unique_ptr<logical::Backend>> {
        {
          std::lock_guard lock(world_.mutex);
          world_.created.push_back(entry);
        }
        return std::unique_ptr<logical::Backend>(std::make_unique<FakeEngine>(entry, world_));
      };
      services.secret_engines = {{"kv", fake}, {"transit", fake}};
      services.auth_methods = {{"approle", fake}};
      services.append_metrics = [](std::string& out) { out += "lockbox_siem_lag_events 0\n"; };
      return services;
    });
    ASSERT_TRUE(core.ok()) << core.status().ToString();
    core_ = std::move(*core);
  }

  http::HttpResponse Send(std::string method, std::string target, std::string body = "",
                          std::string token = "",
                          std::vector<std::pair<std::string, std::string>> headers = {}) {
    http::HttpRequest request;
    request.method = std::move(method);
    request.target = std::move(target);
    request.body = std::move(body);
    request.remote_addr = "127.0.0.1";
    request.headers = std::move(headers);
    if (!token.empty()) request.headers.emplace_back("x-vault-token", token);
    return core_->Handle(request);
  }

  // As the listener calls the core: on the "I/O thread" (this one), with an offload that runs
  // the work on another thread and counts it.
  http::HttpResponse SendAsListener(std::string method, std::string target, std::string token,
                                    int& offloaded) {
    http::HttpRequest request;
    request.method = std::move(method);
    request.target = std::move(target);
    request.remote_addr = "127.0.0.1";
    request.headers.emplace_back("x-vault-token", std::move(token));
    std::promise<http::HttpResponse> answer;
    std::vector<std::thread> workers;
    core_->Handle(
        request, [&answer](http::HttpResponse response) { answer.set_value(std::move(response)); },
        [&](std::function<void()> work) {
          ++offloaded;
          workers.emplace_back(std::move(work));
        });
    http::HttpResponse response = answer.get_future().get();
    for (std::thread& worker : workers) worker.join();
    return response;
  }

  static nlohmann::json Json(const http::HttpResponse& response) {
    return nlohmann::json::parse(response.body, nullptr, false);
  }
  static std::string Header(const http::HttpResponse& response, std::string_view name) {
    for (const auto& [key, value] : response.headers) {
      if (key == name) return value;
    }
    return "";
  }

  // PUT sys/init with one unseal key; returns the root token and keeps the keys in keys_.
  std::string Init(int shares = 1, int threshold = 1) {
    const auto response =
        Send("PUT", "/v1/sys/init",
             nlohmann::json{{"secret_shares", shares}, {"secret_threshold", threshold}}.dump());
    EXPECT_EQ(response.status, 200) << response.body;
    const auto body = Json(response);
    keys_ = body.value("keys", std::vector<std::string>{});
    return body.value("root_token", "");
  }

  // A token with these policies, straight from the token store.
  std::string TokenWith(std::vector<std::string> policies, std::string path = "auth/token/create") {
    auth::TokenParams params;
    params.policies = std::move(policies);
    params.path = std::move(path);
    params.ttl = std::chrono::hours(1);
    auto issued = tokens_->Issue(params, keyring::Caller{});
    EXPECT_TRUE(issued.ok()) << issued.status().ToString();
    return issued.ok() ? issued->client_token : "";
  }

  void PutPolicy(const std::string& root, const std::string& name, const std::string& text) {
    const auto response =
        Send("PUT", "/v1/sys/policies/acl/" + name, nlohmann::json{{"policy", text}}.dump(), root);
    ASSERT_EQ(response.status, 204) << response.body;
  }

  void Mount(const std::string& root, const std::string& path, nlohmann::json body) {
    const auto response = Send("POST", "/v1/sys/mounts/" + path, body.dump(), root);
    ASSERT_EQ(response.status, 204) << response.body;
  }

  std::vector<audit::Event> AuditEvents() {
    std::vector<audit::Event> events;
    auto rows =
        store_->Query("SELECT body FROM audit_records WHERE kind = 'event' ORDER BY seq", {});
    EXPECT_TRUE(rows.ok());
    for (const auto& row : *rows) {
      auto event = audit::ParseCanonicalEvent(*store::GetText(row, 0));
      EXPECT_TRUE(event.ok());
      if (event.ok()) events.push_back(std::move(*event));
    }
    return events;
  }

  // The newest audit event for `path` (and `op`, if given).
  std::optional<audit::Event> LastEventFor(std::string_view path, std::string_view op = "") {
    std::optional<audit::Event> found;
    for (auto& event : AuditEvents()) {
      if (event.path == path && (op.empty() || event.op == op)) found = std::move(event);
    }
    return found;
  }

  std::chrono::system_clock::time_point now_ =
      std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));
  std::unique_ptr<lockbox::testing::SoftHsmToken> token_;
  std::unique_ptr<hsm::Hsm> real_hsm_;
  std::unique_ptr<InstrumentedHsm> hsm_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<audit_log::AuditLog> audit_;
  std::unique_ptr<SwitchableEventLog> events_;
  std::unique_ptr<auth::TokenStore> tokens_;
  FakeWorld world_;
  bool dev_mode_ = false;
  int bring_ups_ = 0;
  std::unique_ptr<Core> core_;
  std::vector<std::string> keys_;
};

}  // namespace lockbox::core::testing
