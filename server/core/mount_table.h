// The mount table: which backend answers which path prefix (reference §2, "mount entries").
//
// Rows are persisted in `core_mounts` (one JSON entry per mount, keyed by its routing path) and
// changed only inside units of work that also append the change's audit event. The in-memory
// table answers the hot-path question "which mount owns this path" by longest prefix.
// Mount paths always end in '/'; auth methods are routed as "auth/<path>/". A mount may be
// neither a prefix of another mount nor have one as its prefix.
// Thread safety: MountTable is thread-safe (readers share a lock; Mount values are immutable and
// handed out as shared_ptr, so a request keeps its mount alive while a change replaces it).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "crypto/status.h"
#include "server/logical/logical.h"
#include "server/store/store.h"

namespace lockbox::core {

enum class MountKind { kSecret, kAuth };

// A mount table row: the backend-facing entry plus what only the table keeps.
struct MountRecord {
  logical::MountEntry entry;  // entry.path is the routing path: "secret/", "auth/approle/"
  MountKind kind = MountKind::kSecret;
  bool force_no_cache = false;
  bool external_entropy_access = false;
};

struct Mount {
  MountRecord record;
  std::shared_ptr<logical::Backend> backend;
};

inline constexpr std::string_view kAuthPrefix = "auth/";

// The key under which sys/mounts and sys/auth list the mount ("approle/" for "auth/approle/").
std::string DisplayPath(const MountRecord& record);

// The mount entry exactly as sys/mounts and sys/auth show it: accessor, config
// {default_lease_ttl, max_lease_ttl, force_no_cache[, token_type]}, description,
// external_entropy_access, local, options (string map or null), seal_wrap, type, uuid.
nlohmann::json MountEntryJson(const MountRecord& record);

// "/a/b" → "a/b/". INVALID_ARGUMENT for an empty path.
StatusOr<std::string> NormalizeMountPath(std::string_view path);

// A random accessor: "<type>_<8 hex>" ("auth_<type>_<8 hex>" for auth methods, as Vault does).
std::string NewMountAccessor(MountKind kind, std::string_view type);

// Persistence, inside a unit of work (Upsert replaces the row of the same path).
Status UpsertMountRow(store::Transaction& tx, const MountRecord& record);
Status DeleteMountRow(store::Transaction& tx, std::string_view path);
StatusOr<std::vector<MountRecord>> LoadMountRows(store::Store& store);

class MountTable {
 public:
  // The mount owning `path` (longest mount path that is a prefix of it; "secret" also finds
  // "secret/"), or nullptr.
  std::shared_ptr<const Mount> Route(std::string_view path) const;
  // The mount at exactly `mount_path`, or nullptr.
  std::shared_ptr<const Mount> Get(std::string_view mount_path) const;
  // Every mount, by path.
  std::vector<std::shared_ptr<const Mount>> List() const;
  // The path of a mount that is a prefix of `mount_path` or has it as a prefix, if any.
  std::optional<std::string> Conflict(std::string_view mount_path) const;

  // Adds or replaces the mount at its path.
  void Publish(std::shared_ptr<const Mount> mount);
  void Remove(std::string_view mount_path);

 private:
  mutable std::shared_mutex mutex_;
  std::map<std::string, std::shared_ptr<const Mount>, std::less<>> mounts_;
};

}  // namespace lockbox::core
