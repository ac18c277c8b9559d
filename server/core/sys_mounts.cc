// sys/mounts, sys/auth, sys/remount: the mount table's endpoints (reference §2, §2.1).
#include <array>

#include "server/core/sys_backend.h"
#include "server/logical/fields.h"

namespace lockbox::core {
namespace {

using logical::Operation;
using logical::Response;
using std::chrono::seconds;

// Paths no mount may live under (the built-in mounts, and auth methods' namespace).
constexpr std::array<std::string_view, 4> kReservedPrefixes = {"sys/", "auth/", "cubbyhole/",
                                                               "identity/"};
// Built-in mounts that can be neither disabled nor moved.
constexpr std::array<std::string_view, 4> kProtectedMounts = {"sys/", "cubbyhole/", "identity/",
                                                              "auth/token/"};
constexpr std::size_t kRememberedMigrations = 64;

bool IsWrite(Operation operation) {
  return operation == Operation::kUpdate || operation == Operation::kCreate;
}

bool IsProtected(std::string_view path) {
  return std::find(kProtectedMounts.begin(), kProtectedMounts.end(), path) !=
         kProtectedMounts.end();
}

std::string FullPath(MountKind kind, const std::string& normalized) {
  return kind == MountKind::kAuth ? std::string(kAuthPrefix) + normalized : normalized;
}

// How an error message names a mount: auth methods without "auth/", as Vault does.
std::string Shown(MountKind kind, std::string_view full_path) {
  if (kind == MountKind::kAuth && full_path.starts_with(kAuthPrefix)) {
    full_path.remove_prefix(kAuthPrefix.size());
  }
  return std::string(full_path);
}

// A lease TTL of a mount config or tune request: absent or "" → nullopt; "system" → 0 (the system
// default) when allowed; else a duration.
StatusOr<std::optional<seconds>> TtlField(const nlohmann::json& object, std::string_view field,
                                          bool allow_system) {
  const auto it = object.find(field);
  if (it == object.end() || it->is_null()) return std::optional<seconds>();
  if (it->is_string()) {
    const std::string& text = it->get_ref<const std::string&>();
    if (text.empty()) return std::optional<seconds>();
    if (allow_system && text == "system") return std::optional<seconds>(seconds(0));
  }
  return logical::GetDuration(object, field);
}

Status CheckTtls(seconds default_ttl, seconds max_ttl, const CoreOptions& options) {
  if (max_ttl > options.max_lease_ttl) {
    return InvalidArgumentError("max_lease_ttl cannot be greater than the system max lease TTL");
  }
  const seconds effective_max = max_ttl.count() != 0 ? max_ttl : options.max_lease_ttl;
  if (default_ttl > effective_max) {
    return InvalidArgumentError("default_lease_ttl cannot be greater than max_lease_ttl");
  }
  return Status::Ok();
}

// Applies Vault's type aliases and the kv "version" option rules.
Status NormalizeType(MountKind kind, std::string& type,
                     std::map<std::string, std::string>& options) {
  if (kind == MountKind::kSecret) {
    if (type == "generic") {
      type = "kv";
    } else if (type == "kv-v1" || type == "kv-v2") {
      options["version"] = type == "kv-v1" ? "1" : "2";
      type = "kv";
    }
  }
  if (auto version = options.find("version"); version != options.end()) {
    if (type != "kv") {
      return InvalidArgumentError("the \"version\" option is only supported by the kv engine");
    }
    if (version->second.empty()) {
      options.erase(version);
    } else if (version->second != "1" && version->second != "2") {
      return InvalidArgumentError("invalid kv version \"" + version->second + "\": must be 1 or 2");
    }
  }
  return Status::Ok();
}

StatusOr<std::string> CheckNewMountPath(MountKind kind, std::string_view raw_path,
                                        const MountTable& mounts) {
  LOCKBOX_ASSIGN_OR_RETURN(std::string normalized, NormalizeMountPath(raw_path));
  const std::string full = FullPath(kind, normalized);
  if (kind == MountKind::kSecret) {
    for (std::string_view reserved : kReservedPrefixes) {
      if (full.starts_with(reserved)) {
        return InvalidArgumentError("path is already in use at " + std::string(reserved));
      }
    }
  }
  if (auto conflict = mounts.Conflict(full)) {
    return InvalidArgumentError("path is already in use at " + Shown(kind, *conflict));
  }
  return full;
}

}  // namespace

StatusOr<Response> SysBackend::ListMounts(MountKind kind) const {
  nlohmann::json data = nlohmann::json::object();
  for (const auto& mount : core_.mounts().List()) {
    if (mount->record.kind == kind)
      data[DisplayPath(mount->record)] = MountEntryJson(mount->record);
  }
  Response response;
  response.data = std::move(data);
  return response;
}

StatusOr<Response> SysBackend::MountPath(MountKind kind, std::string_view path,
                                         const logical::Request& request) {
  if (request.operation == Operation::kRead) return ReadMount(kind, path);
  if (IsWrite(request.operation)) return EnableMount(kind, path, request);
  if (request.operation == Operation::kDelete) return DisableMount(kind, path, request);
  return UnimplementedError("unsupported operation");
}

StatusOr<Response> SysBackend::ReadMount(MountKind kind, std::string_view path) const {
  LOCKBOX_ASSIGN_OR_RETURN(std::string normalized, NormalizeMountPath(path));
  const auto mount = core_.mounts().Get(FullPath(kind, normalized));
  if (mount == nullptr || mount->record.kind != kind) {
    return InvalidArgumentError(
        (kind == MountKind::kAuth ? "No auth engine at " : "No secret engine mount at ") +
        normalized);
  }
  Response response;
  response.data = MountEntryJson(mount->record);
  return response;
}

StatusOr<Response> SysBackend::EnableMount(MountKind kind, std::string_view path,
                                           const logical::Request& request) {
  const nlohmann::json& data = request.data;
  LOCKBOX_ASSIGN_OR_RETURN(auto type, logical::GetString(data, "type"));
  if (!type.has_value() || type->empty()) {
    return InvalidArgumentError("backend type must be specified as a string");
  }
  MountRecord record;
  record.kind = kind;
  logical::MountEntry& entry = record.entry;
  entry.type = *type;
  LOCKBOX_ASSIGN_OR_RETURN(auto options, logical::GetStringMap(data, "options"));
  if (options.has_value()) entry.options = std::move(*options);
  LOCKBOX_RETURN_IF_ERROR(NormalizeType(kind, entry.type, entry.options));
  LOCKBOX_ASSIGN_OR_RETURN(auto description, logical::GetString(data, "description"));
  entry.description = description.value_or("");
  LOCKBOX_ASSIGN_OR_RETURN(auto local, logical::GetBool(data, "local"));
  entry.local = local.value_or(false);
  LOCKBOX_ASSIGN_OR_RETURN(auto seal_wrap, logical::GetBool(data, "seal_wrap"));
  entry.seal_wrap = seal_wrap.value_or(false);
  LOCKBOX_ASSIGN_OR_RETURN(auto entropy, logical::GetBool(data, "external_entropy_access"));
  record.external_entropy_access = entropy.value_or(false);
  if (const auto config = data.find("config"); config != data.end()) {
    if (!config->is_object()) return InvalidArgumentError("invalid value for \"config\"");
    LOCKBOX_ASSIGN_OR_RETURN(auto default_ttl, TtlField(*config, "default_lease_ttl", false));
    LOCKBOX_ASSIGN_OR_RETURN(auto max_ttl, TtlField(*config, "max_lease_ttl", false));
    LOCKBOX_ASSIGN_OR_RETURN(auto no_cache, logical::GetBool(*config, "force_no_cache"));
    entry.default_lease_ttl = default_ttl.value_or(seconds(0));
    entry.max_lease_ttl = max_ttl.value_or(seconds(0));
    record.force_no_cache = no_cache.value_or(false);
  }
  LOCKBOX_RETURN_IF_ERROR(CheckTtls(entry.default_lease_ttl, entry.max_lease_ttl, core_.options()));
  if (kind == MountKind::kAuth && entry.type == "token") {
    return InvalidArgumentError("token credential backend cannot be instantiated");
  }

  std::lock_guard lock(core_.mount_change_mutex());
  LOCKBOX_ASSIGN_OR_RETURN(entry.path, CheckNewMountPath(kind, path, core_.mounts()));
  entry.uuid = logical::NewUuid();
  entry.accessor = NewMountAccessor(kind, entry.type);
  LOCKBOX_ASSIGN_OR_RETURN(std::shared_ptr<logical::Backend> backend, core_.MakeBackend(record));
  LOCKBOX_RETURN_IF_ERROR(core_.store().Commit([&](store::Transaction& tx) -> Status {
    LOCKBOX_RETURN_IF_ERROR(UpsertMountRow(tx, record));
    audit::Event event = core_.EventFor(
        request, kind == MountKind::kAuth ? "sys.auth.enable" : "sys.mount.enable", 204);
    event.details["type"] = entry.type;
    event.details["mount"] = entry.path;
    return core_.events().Append(tx, std::move(event));
  }));
  core_.mounts().Publish(std::make_shared<const Mount>(Mount{record, std::move(backend)}));
  Response response;
  response.audited = true;
  return response;
}

StatusOr<Response> SysBackend::DisableMount(MountKind kind, std::string_view path,
                                            const logical::Request& request) {
  LOCKBOX_ASSIGN_OR_RETURN(std::string normalized, NormalizeMountPath(path));
  const std::string full = FullPath(kind, normalized);
  if (IsProtected(full)) {
    return InvalidArgumentError("cannot unmount \"" + Shown(kind, full) + "\"");
  }
  std::lock_guard lock(core_.mount_change_mutex());
  const auto mount = core_.mounts().Get(full);
  if (mount == nullptr || mount->record.kind != kind) return Response{};  // 204, as Vault does
  // Unroute first so no new request reaches the backend while its data is purged; put the mount
  // back if the purge or the commit fails, so that the operator can retry.
  core_.mounts().Remove(full);
  Status status = Status::Ok();
  if (kind == MountKind::kAuth) {
    status = core_.services().tokens->RevokeByPathPrefix(full, request.caller);
  }
  if (status.ok()) status = mount->backend->Purge();
  if (status.ok()) {
    status = core_.store().Commit([&](store::Transaction& tx) -> Status {
      LOCKBOX_RETURN_IF_ERROR(DeleteMountRow(tx, full));
      audit::Event event = core_.EventFor(
          request, kind == MountKind::kAuth ? "sys.auth.disable" : "sys.mount.disable", 204);
      event.details["type"] = mount->record.entry.type;
      event.details["mount"] = full;
      return core_.events().Append(tx, std::move(event));
    });
  }
  if (!status.ok()) {
    core_.mounts().Publish(mount);
    return status;
  }
  Response response;
  response.audited = true;
  return response;
}

StatusOr<Response> SysBackend::Tune(MountKind kind, std::string_view path,
                                    const logical::Request& request) {
  LOCKBOX_ASSIGN_OR_RETURN(std::string normalized, NormalizeMountPath(path));
  const std::string full = FullPath(kind, normalized);
  const auto missing = [&] {
    return InvalidArgumentError("cannot fetch mount entry for path \"" + normalized + "\"");
  };
  if (request.operation == Operation::kRead) {
    const auto mount = core_.mounts().Get(full);
    if (mount == nullptr || mount->record.kind != kind) return missing();
    const logical::MountEntry& entry = mount->record.entry;
    const CoreOptions& options = core_.options();
    nlohmann::json data = {
        {"default_lease_ttl", (entry.default_lease_ttl.count() != 0 ? entry.default_lease_ttl
                                                                    : options.default_lease_ttl)
                                  .count()},
        {"max_lease_ttl",
         (entry.max_lease_ttl.count() != 0 ? entry.max_lease_ttl : options.max_lease_ttl).count()},
        {"force_no_cache", mount->record.force_no_cache},
        {"description", entry.description},
    };
    if (!entry.options.empty()) data["options"] = entry.options;
    if (kind == MountKind::kAuth) data["token_type"] = "default-service";
    Response response;
    response.data = std::move(data);
    return response;
  }
  if (!IsWrite(request.operation)) return UnimplementedError("unsupported operation");

  std::lock_guard lock(core_.mount_change_mutex());
  const auto mount = core_.mounts().Get(full);
  if (mount == nullptr || mount->record.kind != kind) return missing();
  MountRecord record = mount->record;
  logical::MountEntry& entry = record.entry;
  LOCKBOX_ASSIGN_OR_RETURN(auto default_ttl, TtlField(request.data, "default_lease_ttl", true));
  LOCKBOX_ASSIGN_OR_RETURN(auto max_ttl, TtlField(request.data, "max_lease_ttl", true));
  if (default_ttl.has_value()) entry.default_lease_ttl = *default_ttl;
  if (max_ttl.has_value()) entry.max_lease_ttl = *max_ttl;
  LOCKBOX_RETURN_IF_ERROR(CheckTtls(entry.default_lease_ttl, entry.max_lease_ttl, core_.options()));
  LOCKBOX_ASSIGN_OR_RETURN(auto description, logical::GetString(request.data, "description"));
  if (description.has_value()) entry.description = *description;
  LOCKBOX_ASSIGN_OR_RETURN(auto options, logical::GetStringMap(request.data, "options"));
  if (options.has_value()) {
    std::map<std::string, std::string> merged = entry.options;
    for (auto& [key, value] : *options) merged[key] = value;
    std::string type = entry.type;
    LOCKBOX_RETURN_IF_ERROR(NormalizeType(kind, type, merged));
    const auto version = [](const std::map<std::string, std::string>& o) {
      const auto it = o.find("version");
      return it == o.end() ? std::string("1") : it->second;
    };
    if (type == "kv" && version(merged) != version(entry.options)) {
      return InvalidArgumentError("changing the version of a kv mount is not supported");
    }
    entry.options = std::move(merged);
  }
  LOCKBOX_RETURN_IF_ERROR(core_.store().Commit([&](store::Transaction& tx) -> Status {
    LOCKBOX_RETURN_IF_ERROR(UpsertMountRow(tx, record));
    audit::Event event =
        core_.EventFor(request, kind == MountKind::kAuth ? "sys.auth.tune" : "sys.mount.tune", 204);
    event.details["mount"] = full;
    event.details["default_lease_ttl"] = entry.default_lease_ttl.count();
    event.details["max_lease_ttl"] = entry.max_lease_ttl.count();
    return core_.events().Append(tx, std::move(event));
  }));
  // The backend keeps its copy of the entry (lease TTLs, options) current.
  mount->backend->Remounted(entry);
  core_.mounts().Publish(std::make_shared<const Mount>(Mount{record, mount->backend}));
  Response response;
  response.audited = true;
  return response;
}

StatusOr<Response> SysBackend::Remount(const logical::Request& request) {
  LOCKBOX_ASSIGN_OR_RETURN(auto from, logical::GetString(request.data, "from"));
  LOCKBOX_ASSIGN_OR_RETURN(auto to, logical::GetString(request.data, "to"));
  if (!from.has_value() || from->empty() || !to.has_value() || to->empty()) {
    return InvalidArgumentError("both 'from' and 'to' path must be specified as a string");
  }
  LOCKBOX_ASSIGN_OR_RETURN(std::string source, NormalizeMountPath(*from));
  LOCKBOX_ASSIGN_OR_RETURN(std::string target, NormalizeMountPath(*to));
  const MountKind kind = source.starts_with(kAuthPrefix) ? MountKind::kAuth : MountKind::kSecret;
  if (target.starts_with(kAuthPrefix) != (kind == MountKind::kAuth)) {
    return InvalidArgumentError("cannot move mounts between auth methods and secrets engines");
  }
  if (IsProtected(source)) return InvalidArgumentError("cannot remount \"" + source + "\"");
  // CheckNewMountPath takes auth targets without their "auth/" prefix.
  const std::string_view target_relative =
      kind == MountKind::kAuth ? std::string_view(target).substr(kAuthPrefix.size()) : target;
  if (target_relative.empty()) return InvalidArgumentError("path cannot be empty");

  std::lock_guard lock(core_.mount_change_mutex());
  const auto mount = core_.mounts().Get(source);
  if (mount == nullptr) return InvalidArgumentError("no matching mount at \"" + source + "\"");
  LOCKBOX_ASSIGN_OR_RETURN(std::string full_target,
                           CheckNewMountPath(kind, target_relative, core_.mounts()));
  MountRecord record = mount->record;
  record.entry.path = full_target;
  LOCKBOX_RETURN_IF_ERROR(core_.store().Commit([&](store::Transaction& tx) -> Status {
    LOCKBOX_RETURN_IF_ERROR(DeleteMountRow(tx, source));
    LOCKBOX_RETURN_IF_ERROR(UpsertMountRow(tx, record));
    audit::Event event = core_.EventFor(request, "sys.remount", 200);
    event.details["from"] = source;
    event.details["to"] = full_target;
    return core_.events().Append(tx, std::move(event));
  }));
  mount->backend->Remounted(record.entry);
  core_.mounts().Remove(source);
  core_.mounts().Publish(std::make_shared<const Mount>(Mount{record, mount->backend}));

  Migration migration{logical::NewUuid(), source, full_target};
  {
    std::lock_guard migrations_lock(migrations_mutex_);
    migrations_.push_back(migration);
    if (migrations_.size() > kRememberedMigrations) migrations_.pop_front();
  }
  Response response;
  response.data = nlohmann::json{{"migration_id", migration.id}};
  response.audited = true;
  return response;
}

StatusOr<Response> SysBackend::RemountStatus(std::string_view migration_id) const {
  std::lock_guard lock(migrations_mutex_);
  for (const Migration& migration : migrations_) {
    if (migration.id != migration_id) continue;
    Response response;
    response.data = nlohmann::json{{"migration_id", migration.id},
                                   {"migration_info",
                                    {{"source_mount", migration.from},
                                     {"target_mount", migration.to},
                                     {"status", "success"}}}};
    return response;
  }
  return NotFoundError("");
}

}  // namespace lockbox::core
