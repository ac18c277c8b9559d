// Internal to server/core: the state behind Core and the services the sys backend uses.
// Thread safety: see core.h; the accessors return thread-safe components.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "audit/event.h"
#include "server/core/core.h"
#include "server/core/metrics.h"
#include "server/core/mount_table.h"
#include "server/core/policy_store.h"
#include "server/core/seal.h"

namespace lockbox::core {

class SysBackend;

class CoreImpl {
 public:
  CoreImpl(CoreOptions options, store::Store& store, std::function<StatusOr<Services>()> bring_up);
  ~CoreImpl();

  // Loads the policies and, if the server was initialized, brings the services up and loads the
  // mount table.
  Status Start();
  // Answers `request`, blocking where needed (store, HSM); the answer may be sent later, from
  // the audit pipeline's thread.
  void Handle(http::HttpRequest& request, http::Respond respond);
  // The same without blocking, for an I/O thread: false (and nothing sent, `respond` untouched)
  // if the request is neither a read nor an attemptable use (logical::Backend::IsAttemptableUse),
  // or would have had to block.
  bool TryHandleWithoutBlocking(http::HttpRequest& request, http::Respond& respond);
  StatusOr<Core::InitResult> Initialize(int secret_shares, int secret_threshold,
                                        std::optional<std::string> root_token_id,
                                        const keyring::Caller& caller);
  bool initialized() const { return initialized_.load(std::memory_order_acquire); }

  // --- For the sys backend ---
  const CoreOptions& options() const { return options_; }
  std::chrono::system_clock::time_point now() const { return options_.clock(); }
  store::Store& store() { return store_; }
  SealState& seal() { return seal_; }
  MountTable& mounts() { return mounts_; }
  PolicyStore& policies() { return *policies_; }
  RequestMetrics& metrics() { return metrics_; }
  // Only once initialized():
  Services& services() { return services_; }
  audit_log::EventLog& events();
  const std::string& cluster_id() const { return cluster_id_; }

  // Serialises changes of the mount table (enable, disable, remount, tune).
  std::mutex& mount_change_mutex() { return mount_change_mutex_; }
  // The backend for a mount table row (INVALID_ARGUMENT "unknown backend type" if none).
  StatusOr<std::shared_ptr<logical::Backend>> MakeBackend(const MountRecord& record);
  // The caller's compiled ACL (Acl::Root() for root tokens).
  policy::Acl AclFor(const logical::Principal& principal) const;
  // An audit event for `request` (request id, actor, path, remote address) with `op`.
  audit::Event EventFor(const logical::Request& request, std::string op, int status) const;

 private:
  // An answer and the audit event that must be durable before it leaves (none: send at once).
  struct Reply {
    Reply() = default;
    Reply(http::HttpResponse r) : response(std::move(r)) {}  // NOLINT: nothing left to record
    Reply(http::HttpResponse r, audit::Event e) : response(std::move(r)), event(std::move(e)) {}
    http::HttpResponse response;
    std::optional<audit::Event> event;
  };
  Reply Compute(http::HttpRequest& request, const std::string& request_id, std::string& route);
  // Sends `reply`, once its event (if any) is durable, and counts it in the metrics.
  void Deliver(Reply reply, std::string route, std::chrono::steady_clock::time_point start,
               std::string request_id, http::Respond respond);
  Reply Dispatch(http::HttpRequest& http, const std::string& request_id, std::string& route);
  // Whether a POST/PUT to `path` (API path, no "v1/") may be attempted without blocking.
  bool IsAttemptableUse(const std::string& path) const;
  Reply HandleStatusEndpoint(logical::Request& request, bool head, std::string& route);
  // Authenticates, authorises and runs a request on its backend; then revokes the token if the
  // request spent its last use.
  Reply Serve(logical::Request& request, std::string& route);
  Reply AuthorizeAndRun(logical::Request& request, std::string& route);
  // The rendered answer with the event recording the outcome of `request` (none if `audited`).
  Reply Finish(const logical::Request& request, std::string_view op, http::HttpResponse response,
               std::string_view reason, bool audited);
  Reply Deny(const logical::Request& request, std::string_view op);
  // Revokes expired tokens if token_tidy_interval has passed since the last time.
  void TidyTokensIfDue();

  CoreOptions options_;
  store::Store& store_;
  std::function<StatusOr<Services>()> bring_up_;

  std::mutex init_mutex_;     // Initialize() and bring-up
  bool services_up_ = false;  // under init_mutex_
  std::atomic<bool> initialized_{false};
  Services services_;  // written before initialized_ is set, then read-only
  std::shared_ptr<logical::Backend> token_backend_;
  std::string cluster_id_;
  std::atomic<std::int64_t> next_tidy_{0};  // options_.clock() time, nanoseconds since epoch
  // Answers waiting for their audit record; the destructor waits for them (their completions
  // use this object).
  std::atomic<std::uint32_t> awaiting_audit_{0};

  SealState seal_;
  MountTable mounts_;
  std::mutex mount_change_mutex_;
  std::unique_ptr<PolicyStore> policies_;
  RequestMetrics metrics_;
  std::shared_ptr<SysBackend> sys_;
  std::shared_ptr<logical::Backend> cubbyhole_;
};

}  // namespace lockbox::core
