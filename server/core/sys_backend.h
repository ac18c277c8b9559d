// SysBackend: the `sys/` mount (reference §2): init, seal-status, unseal, seal, health, leader,
// mounts and auth methods (enable, disable, read, tune, remount), policies (sys/policy and
// sys/policies/acl), capabilities-self, internal/ui/mounts, audit-log public key and head, and
// metrics. The router handles authentication and the ACL before calling it (the status endpoints
// and the public paths excepted); state changes commit together with their audit event and come
// back with Response::audited set.
// Thread safety: thread-safe (state lives in the core's thread-safe components).
#pragma once

#include <deque>
#include <mutex>
#include <string>
#include <string_view>

#include "server/core/core_impl.h"
#include "server/logical/logical.h"

namespace lockbox::core {

class SysBackend final : public logical::Backend {
 public:
  explicit SysBackend(CoreImpl& core) : core_(core) {}

  StatusOr<logical::Response> HandleRequest(const logical::Request& request) override;
  bool IsSudo(std::string_view relative_path) const override;
  Status Purge() override { return Status::Ok(); }

  // Paths (relative to /v1/) answered before the initialized/sealed checks, without a token.
  static bool IsStatusEndpoint(std::string_view path);
  // Paths (relative to /v1/) that take a token if one is given but need none.
  static bool IsPublicPath(std::string_view path);

 private:
  // Status endpoints.
  StatusOr<logical::Response> Init(const logical::Request& request);
  StatusOr<logical::Response> SealStatus() const;
  StatusOr<logical::Response> Unseal(const logical::Request& request);
  StatusOr<logical::Response> Health(const logical::Request& request) const;
  StatusOr<logical::Response> Leader() const;
  StatusOr<logical::Response> Seal(const logical::Request& request);

  // Mounts and auth methods (sys_mounts.cc).
  StatusOr<logical::Response> ListMounts(MountKind kind) const;
  StatusOr<logical::Response> MountPath(MountKind kind, std::string_view path,
                                        const logical::Request& request);
  StatusOr<logical::Response> ReadMount(MountKind kind, std::string_view path) const;
  StatusOr<logical::Response> EnableMount(MountKind kind, std::string_view path,
                                          const logical::Request& request);
  StatusOr<logical::Response> DisableMount(MountKind kind, std::string_view path,
                                           const logical::Request& request);
  StatusOr<logical::Response> Tune(MountKind kind, std::string_view path,
                                   const logical::Request& request);
  StatusOr<logical::Response> Remount(const logical::Request& request);
  StatusOr<logical::Response> RemountStatus(std::string_view migration_id) const;

  // Policies and capabilities.
  StatusOr<logical::Response> ListPolicies(bool legacy) const;
  StatusOr<logical::Response> PolicyPath(std::string_view name, bool legacy,
                                         const logical::Request& request);
  StatusOr<logical::Response> CapabilitiesSelf(const logical::Request& request) const;
  StatusOr<logical::Response> UiMounts(const logical::Request& request) const;
  StatusOr<logical::Response> UiMount(std::string_view path, const logical::Request& request) const;

  // Audit log and metrics.
  StatusOr<logical::Response> AuditLogPublicKey() const;
  StatusOr<logical::Response> AuditLogHead() const;
  StatusOr<logical::Response> Metrics(const logical::Request& request) const;

  CoreImpl& core_;

  struct Migration {
    std::string id;
    std::string from;
    std::string to;
  };
  mutable std::mutex migrations_mutex_;
  std::deque<Migration> migrations_;  // the most recent remounts, for sys/remount/status
};

}  // namespace lockbox::core
