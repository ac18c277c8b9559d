// Pieces shared by the KV v1 and v2 backends (internal to server/secrets): sealing values through
// the keyring, the associated data that binds a sealed value to its place, audit events, listing,
// and the base class that owns a mount's dependencies and its purge.
// Thread safety: ValueSealer and KvBackendBase are thread-safe; the functions are pure.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "audit/event.h"
#include "crypto/status.h"
#include "server/audit_log/event_log.h"
#include "server/keyring/keyring.h"
#include "server/logical/logical.h"
#include "server/secrets/kv.h"
#include "server/store/store.h"

namespace lockbox::secrets::internal {

using TimePoint = std::chrono::system_clock::time_point;

std::int64_t ToNanos(TimePoint time);
TimePoint FromNanos(std::int64_t nanos);

// The associated data of a sealed value: a format tag, then each field as a 4-byte big-endian
// length and its bytes, so no two (engine, mount, path, version) tuples share an encoding.
// `version` is absent for KV v1 (unversioned).
std::vector<std::uint8_t> ValueContext(std::string_view engine, std::string_view mount_uuid,
                                       std::string_view path, std::optional<std::uint64_t> version);

// Seals JSON values under one keyring key. The caller audits the use (audited_by_caller), so
// the record can name the secret's path; the serialized plaintext lives only in a SecureBuffer.
class ValueSealer {
 public:
  ValueSealer(keyring::Keyring& keyring, std::string key_name)
      : keyring_(keyring), key_name_(std::move(key_name)) {}

  const std::string& key_name() const { return key_name_; }

  StatusOr<std::string> Seal(const nlohmann::json& value, std::span<const std::uint8_t> context,
                             const keyring::Caller& caller) const;
  // The value as the compact JSON text Seal() wrote. INTERNAL "stored secret failed
  // authentication" when the ciphertext does not open under this context (tampered, or moved from
  // another path/version/mount); other keyring errors as is.
  StatusOr<crypto::SecureBuffer> OpenText(std::string_view ciphertext,
                                          std::span<const std::uint8_t> context,
                                          const keyring::Caller& caller) const;
  // OpenText(), parsed; INTERNAL if it is not JSON.
  StatusOr<nlohmann::json> Open(std::string_view ciphertext, std::span<const std::uint8_t> context,
                                const keyring::Caller& caller) const;

 private:
  static keyring::Caller AuditedByCaller(const keyring::Caller& caller);

  keyring::Keyring& keyring_;
  const std::string key_name_;
};

// The message of a sealed value that does not authenticate.
inline constexpr std::string_view kTamperedMessage = "stored secret failed authentication";

// An event for `request` (request id, actor, remote address, full logical path).
audit::Event RequestEvent(std::string_view op, const logical::Request& request);

// Records a read's event durably; UNAVAILABLE (and the caller releases nothing) if it cannot.
Status RecordRead(audit_log::EventLog& events, audit::Event event);

// The direct children of `prefix` among `paths` (all starting with `prefix`): keys as they are,
// folders with a trailing '/', sorted and unique.
std::vector<std::string> DirectChildren(std::string_view prefix,
                                        const std::vector<std::string>& paths);

// A key path names one secret: non-empty and not ending in '/' (those are list prefixes).
bool IsKeyPath(std::string_view path);
// INVALID_ARGUMENT unless IsKeyPath(path).
Status CheckKeyPath(std::string_view path);

Status UnsupportedPath();
Status UnsupportedOperation();

// What both KV engines share: their dependencies, the sealer of the mount's storage key,
// listing and purging the mount's rows.
class KvBackendBase : public logical::Backend {
 public:
  KvBackendBase(const logical::MountEntry& entry, keyring::Keyring& keyring, store::Store& store,
                audit_log::EventLog& events, KvOptions options);

  // Deletes every row of the mount (one unit, with a "kv.purge" event) and schedules the storage
  // key for destruction. Idempotent.
  Status Purge() override;
  void Remounted(const logical::MountEntry& entry) override;

 protected:
  // Runs inside Purge's unit of work (e.g. to invalidate caches on commit).
  virtual void OnPurge(store::Transaction& tx) { (void)tx; }

  // LIST of `table` (mount, path, ...) under `prefix` ("" or "a/b", '/' optional): the direct
  // children as {"keys": [...]}, or a bare 404 when there are none (Vault).
  StatusOr<logical::Response> ListKeys(std::string_view table, std::string_view prefix);

  TimePoint Now() const { return options_.clock(); }
  logical::MountEntry entry() const;

  const std::string uuid_;
  keyring::Keyring& keyring_;
  store::Store& store_;
  audit_log::EventLog& events_;
  const KvOptions options_;
  const ValueSealer sealer_;

 private:
  mutable std::mutex mu_;
  logical::MountEntry entry_;  // guarded by mu_ (its path changes on remount)
};

// The engines (kv_v1.cc, kv_v2.cc).
std::unique_ptr<logical::Backend> NewKvV1Backend(const logical::MountEntry& entry,
                                                 keyring::Keyring& keyring, store::Store& store,
                                                 audit_log::EventLog& events, KvOptions options);
std::unique_ptr<logical::Backend> NewKvV2Backend(const logical::MountEntry& entry,
                                                 keyring::Keyring& keyring, store::Store& store,
                                                 audit_log::EventLog& events, KvOptions options);

}  // namespace lockbox::secrets::internal
