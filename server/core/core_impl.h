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
  http::HttpResponse Handle(http::HttpRequest& request);
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
  struct Routed;
  http::HttpResponse Dispatch(http::HttpRequest& http, const std::string& request_id,
                              std::string& route);
  http::HttpResponse HandleStatusEndpoint(logical::Request& request, bool head, std::string& route);
  http::HttpResponse Serve(logical::Request& request, std::string& route);
  // Records the outcome of `request`; the rendered answer, or 503 if the record failed.
  http::HttpResponse Finish(const logical::Request& request, std::string_view op,
                            http::HttpResponse response, std::string_view reason, bool audited);
  http::HttpResponse Deny(const logical::Request& request, std::string_view op);
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

  SealState seal_;
  MountTable mounts_;
  std::mutex mount_change_mutex_;
  std::unique_ptr<PolicyStore> policies_;
  RequestMetrics metrics_;
  std::shared_ptr<SysBackend> sys_;
  std::shared_ptr<logical::Backend> cubbyhole_;
};

}  // namespace lockbox::core
