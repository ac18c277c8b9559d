// Core: Lockbox's Vault-compatible request router — the glue between the HTTP listener and the
// engines (../shared/reference/vault-api-subset.md §1, §2, §7).
//
// Handle() turns one HTTP request into a logical::Request and answers it in Vault's wire format,
// in Vault's order (§1.5): status endpoints (sys/init, seal-status, unseal, health, leader) →
// 503 while uninitialized or sealed → authenticate the token → route to the longest mount →
// existence check (create vs update) → ACL (compiled per policy set, cached; root bypasses; sudo
// paths) → backend → audit. It also owns the `sys/` backend (mounts, auth methods, policies,
// capabilities, seal, metrics, audit-log head and public key), the persisted mount table, the
// policy store and the unseal keys. Every token_tidy_interval it has the token store revoke
// expired tokens with their subtrees.
//
// Security properties:
//  - Deny by default: no token, an unknown/expired token, a missing policy or no matching rule →
//    403 "permission denied"; denials are audited.
//  - Every request past the status endpoints is recorded in the audit log (op, logical path,
//    token accessor — never the token —, outcome, reason, remote address, request id, status)
//    unless the backend committed its own event. If the record cannot be written the answer is
//    503 {"errors":["audit log unavailable"]} and carries no data (fail closed). State changes of
//    the sys backend commit with their audit event in one unit of work.
//  - Error messages and audit reasons never contain request bodies, tokens or secrets.
//  - Unseal keys are random, returned once, and stored only as SHA-256 digests.
// Thread safety: Handle() may be called concurrently from any number of threads; Initialize() is
// serialised internally.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "crypto/status.h"
#include "hsm/hsm.h"
#include "server/audit_log/audit_log.h"
#include "server/auth/token_store.h"
#include "server/http/listener.h"
#include "server/keyring/keyring.h"
#include "server/logical/logical.h"
#include "server/store/store.h"

namespace lockbox::core {

struct CoreOptions {
  std::string version = "1.15.0";
  std::string cluster_name = "lockbox";
  std::chrono::seconds default_lease_ttl{std::chrono::hours(768)};
  std::chrono::seconds max_lease_ttl{std::chrono::hours(768)};
  bool dev_mode = false;  // Initialize() also mounts secret/ as kv v2
  // How often expired tokens (and their subtrees) are revoked (TokenStore::RevokeExpired); the
  // first request after the interval has passed does it. 0: never.
  std::chrono::seconds token_tidy_interval{60};
  std::function<std::chrono::system_clock::time_point()> clock;  // default: system_clock::now
};

// What exists once the server is initialized (owned by main; the pointers stay valid until the
// Core is destroyed).
struct Services {
  hsm::Hsm* hsm = nullptr;  // an InstrumentedHsm adds its call latencies to sys/metrics
  audit_log::AuditLog* audit = nullptr;
  // Where the core records its audit events; nullptr: `audit`. (Tests inject failures here.)
  audit_log::EventLog* events = nullptr;
  keyring::Keyring* keyring = nullptr;
  auth::TokenStore* tokens = nullptr;
  std::unique_ptr<logical::Backend> token_backend;                // mounted at auth/token/
  logical::BackendFactory identity;                               // mounted at identity/
  std::map<std::string, logical::BackendFactory> secret_engines;  // "kv", "transit"
  std::map<std::string, logical::BackendFactory> auth_methods;    // "approle"
  std::function<void(std::string& out)> append_metrics;           // extra Prometheus text
};

class CoreImpl;

class Core {
 public:
  // Applies the core's migrations (component "core") to `store`. If the server was initialized
  // before, calls bring_up() at once and loads the policies and the mount table; otherwise the
  // core stays uninitialized until Initialize() or PUT sys/init, which call bring_up() then.
  // `store` must outlive the Core.
  static StatusOr<std::unique_ptr<Core>> Create(CoreOptions options, store::Store& store,
                                                std::function<StatusOr<Services>()> bring_up);
  ~Core();

  // The listener's AsyncHandler, called on an I/O thread. Never throws. Reads are answered there
  // unless they would block (a cache miss that needs the store or the HSM); everything else is
  // offloaded to the worker pool. Answers that carry an audit record are sent from the audit
  // pipeline's thread once the record is durable; no request thread waits for it.
  void Handle(http::HttpRequest& request, http::Respond respond, const http::Offload& offload);
  // The same, waiting for the answer (tools and tests).
  http::HttpResponse Handle(http::HttpRequest& request);

  struct InitResult {
    std::string root_token;
    std::vector<std::string> keys;  // unseal keys, hex
  };
  // Brings the services up, creates the default policy, the default mounts (sys/, cubbyhole/,
  // identity/, auth/token/; dev mode: secret/ kv v2) and the root token (id `root_token_id` if
  // given). FAILED_PRECONDITION "Vault is already initialized" the second time.
  StatusOr<InitResult> Initialize(int secret_shares, int secret_threshold,
                                  std::optional<std::string> root_token_id);

  bool initialized() const;
  bool sealed() const;

 private:
  explicit Core(std::unique_ptr<CoreImpl> impl);
  std::unique_ptr<CoreImpl> impl_;
};

// The core's schema (core_meta, core_mounts, core_policies), for Store::Migrate().
std::vector<store::Migration> CoreMigrations();

}  // namespace lockbox::core
