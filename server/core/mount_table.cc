#include "server/core/mount_table.h"

#include <mutex>

#include "crypto/encoding.h"
#include "crypto/random.h"

namespace lockbox::core {
namespace {

nlohmann::json RecordToJson(const MountRecord& record) {
  const logical::MountEntry& e = record.entry;
  return {
      {"path", e.path},
      {"kind", record.kind == MountKind::kAuth ? "auth" : "secret"},
      {"type", e.type},
      {"uuid", e.uuid},
      {"accessor", e.accessor},
      {"description", e.description},
      {"options", e.options},
      {"default_lease_ttl", e.default_lease_ttl.count()},
      {"max_lease_ttl", e.max_lease_ttl.count()},
      {"local", e.local},
      {"seal_wrap", e.seal_wrap},
      {"force_no_cache", record.force_no_cache},
      {"external_entropy_access", record.external_entropy_access},
  };
}

StatusOr<MountRecord> RecordFromJson(std::string_view text) {
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    MountRecord record;
    logical::MountEntry& e = record.entry;
    e.path = j.at("path").get<std::string>();
    record.kind = j.at("kind").get<std::string>() == "auth" ? MountKind::kAuth : MountKind::kSecret;
    e.type = j.at("type").get<std::string>();
    e.uuid = j.at("uuid").get<std::string>();
    e.accessor = j.at("accessor").get<std::string>();
    e.description = j.at("description").get<std::string>();
    e.options = j.at("options").get<std::map<std::string, std::string>>();
    e.default_lease_ttl = std::chrono::seconds(j.at("default_lease_ttl").get<std::int64_t>());
    e.max_lease_ttl = std::chrono::seconds(j.at("max_lease_ttl").get<std::int64_t>());
    e.local = j.at("local").get<bool>();
    e.seal_wrap = j.at("seal_wrap").get<bool>();
    record.force_no_cache = j.at("force_no_cache").get<bool>();
    record.external_entropy_access = j.at("external_entropy_access").get<bool>();
    return record;
  } catch (const nlohmann::json::exception&) {
    return DataLossError("core_mounts: malformed mount entry");
  }
}

}  // namespace

std::string DisplayPath(const MountRecord& record) {
  if (record.kind == MountKind::kAuth && record.entry.path.starts_with(kAuthPrefix)) {
    return record.entry.path.substr(kAuthPrefix.size());
  }
  return record.entry.path;
}

nlohmann::json MountEntryJson(const MountRecord& record) {
  const logical::MountEntry& e = record.entry;
  nlohmann::json config = {
      {"default_lease_ttl", e.default_lease_ttl.count()},
      {"max_lease_ttl", e.max_lease_ttl.count()},
      {"force_no_cache", record.force_no_cache},
  };
  if (record.kind == MountKind::kAuth) config["token_type"] = "default-service";
  return {
      {"accessor", e.accessor},
      {"config", std::move(config)},
      {"description", e.description},
      {"external_entropy_access", record.external_entropy_access},
      {"local", e.local},
      {"options", e.options.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.options)},
      {"seal_wrap", e.seal_wrap},
      {"type", e.type},
      {"uuid", e.uuid},
  };
}

StatusOr<std::string> NormalizeMountPath(std::string_view path) {
  while (path.starts_with('/')) path.remove_prefix(1);
  while (path.ends_with('/')) path.remove_suffix(1);
  if (path.empty()) return InvalidArgumentError("path cannot be empty");
  return std::string(path) + "/";
}

std::string NewMountAccessor(MountKind kind, std::string_view type) {
  const std::vector<std::uint8_t> random = crypto::RandomVector(4);
  return (kind == MountKind::kAuth ? "auth_" : "") + std::string(type) + "_" +
         crypto::HexEncode(random);
}

Status UpsertMountRow(store::Transaction& tx, const MountRecord& record) {
  LOCKBOX_RETURN_IF_ERROR(
      tx.Execute("DELETE FROM core_mounts WHERE path = ?", {record.entry.path}).status());
  return tx
      .Execute("INSERT INTO core_mounts (path, entry) VALUES (?, ?)",
               {record.entry.path, RecordToJson(record).dump()})
      .status();
}

Status DeleteMountRow(store::Transaction& tx, std::string_view path) {
  return tx.Execute("DELETE FROM core_mounts WHERE path = ?", {std::string(path)}).status();
}

StatusOr<std::vector<MountRecord>> LoadMountRows(store::Store& store) {
  LOCKBOX_ASSIGN_OR_RETURN(auto rows,
                           store.Query("SELECT entry FROM core_mounts ORDER BY path", {}));
  std::vector<MountRecord> records;
  records.reserve(rows.size());
  for (const store::Row& row : rows) {
    LOCKBOX_ASSIGN_OR_RETURN(std::string text, store::GetText(row, 0));
    LOCKBOX_ASSIGN_OR_RETURN(MountRecord record, RecordFromJson(text));
    records.push_back(std::move(record));
  }
  return records;
}

std::shared_ptr<const Mount> MountTable::Route(std::string_view path) const {
  std::shared_lock lock(mutex_);
  for (std::size_t end = path.size(); end > 0; --end) {
    if (path[end - 1] != '/') continue;
    auto it = mounts_.find(path.substr(0, end));
    if (it != mounts_.end()) return it->second;
  }
  if (!path.empty() && !path.ends_with('/')) {
    auto it = mounts_.find(std::string(path) + "/");
    if (it != mounts_.end()) return it->second;
  }
  return nullptr;
}

std::shared_ptr<const Mount> MountTable::Get(std::string_view mount_path) const {
  std::shared_lock lock(mutex_);
  auto it = mounts_.find(mount_path);
  return it == mounts_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<const Mount>> MountTable::List() const {
  std::shared_lock lock(mutex_);
  std::vector<std::shared_ptr<const Mount>> out;
  out.reserve(mounts_.size());
  for (const auto& [path, mount] : mounts_) out.push_back(mount);
  return out;
}

std::optional<std::string> MountTable::Conflict(std::string_view mount_path) const {
  std::shared_lock lock(mutex_);
  for (const auto& [path, mount] : mounts_) {
    if (mount_path.starts_with(path) || std::string_view(path).starts_with(mount_path)) {
      return path;
    }
  }
  return std::nullopt;
}

void MountTable::Publish(std::shared_ptr<const Mount> mount) {
  std::unique_lock lock(mutex_);
  const std::string path = mount->record.entry.path;
  mounts_.insert_or_assign(path, std::move(mount));
}

void MountTable::Remove(std::string_view mount_path) {
  std::unique_lock lock(mutex_);
  auto it = mounts_.find(mount_path);
  if (it != mounts_.end()) mounts_.erase(it);
}

}  // namespace lockbox::core
