// KV version 2 (reference §5). Tables (component "kv"): kv_config(mount, ...) per mount,
// kv_metadata(mount, path, ...) per key, kv_versions(mount, path, version, ..., ciphertext) per
// version; times are nanoseconds since the Unix epoch, durations seconds. A version's ciphertext
// is sealed with ValueContext("kv2", mount uuid, path, version) and is NULL once destroyed.
#include "server/secrets/kv_internal.h"

#include <algorithm>
#include <array>
#include <map>
#include <mutex>
#include <utility>

#include "server/logical/fields.h"
#include "server/secrets/kv_read_cache.h"

namespace lockbox::secrets::internal {
namespace {

using nlohmann::json;
using std::chrono::seconds;

constexpr std::int64_t kDefaultMaxVersions = 10;
// Writes without cas retry when another writer took the version they sealed for; each round
// someone wins, so this bound is only reached under pathological contention.
constexpr int kMaxWriteAttempts = 64;
constexpr std::size_t kMaxCustomMetadataKeys = 64;
constexpr std::size_t kMaxCustomMetadataKeyLength = 128;
constexpr std::size_t kMaxCustomMetadataValueLength = 512;
constexpr std::string_view kMergePatchType = "application/merge-patch+json";

enum class RouteKind { kConfig, kData, kMetadata, kDelete, kUndelete, kDestroy };

struct Route {
  RouteKind kind;
  std::string path;  // the key (or, for LIST metadata, the prefix)
};

std::optional<Route> ParseRoute(std::string_view relative) {
  if (relative == "config") return Route{RouteKind::kConfig, ""};
  if (relative == "metadata") return Route{RouteKind::kMetadata, ""};
  static constexpr std::pair<std::string_view, RouteKind> kPrefixes[] = {
      {"data/", RouteKind::kData},       {"metadata/", RouteKind::kMetadata},
      {"delete/", RouteKind::kDelete},   {"undelete/", RouteKind::kUndelete},
      {"destroy/", RouteKind::kDestroy},
  };
  for (const auto& [prefix, kind] : kPrefixes) {
    if (relative.starts_with(prefix)) {
      return Route{kind, std::string(relative.substr(prefix.size()))};
    }
  }
  return std::nullopt;
}

bool IsWrite(logical::Operation op) {
  return op == logical::Operation::kCreate || op == logical::Operation::kUpdate;
}

struct MountConfig {
  std::int64_t max_versions = 0;
  bool cas_required = false;
  seconds delete_version_after{0};
};

struct KeyMetadata {
  std::int64_t max_versions = 0;
  bool cas_required = false;
  seconds delete_version_after{0};
  json custom_metadata;  // null or an object of strings
  std::uint64_t current_version = 0;
  std::uint64_t oldest_version = 0;
  TimePoint created;
  TimePoint updated;
};

std::int64_t EffectiveMaxVersions(const KeyMetadata& key, const MountConfig& config) {
  if (key.max_versions > 0) return key.max_versions;
  if (config.max_versions > 0) return config.max_versions;
  return kDefaultMaxVersions;
}

// The smaller of the key's and the mount's, ignoring one that is not set (0: never).
seconds EffectiveDeleteVersionAfter(const KeyMetadata& key, const MountConfig& config) {
  const seconds a = key.delete_version_after, b = config.delete_version_after;
  if (a > seconds(0) && b > seconds(0)) return std::min(a, b);
  return std::max(a, b);
}

bool IsDeleted(const StoredVersion& v, TimePoint now) {
  return v.deletion_time && *v.deletion_time <= now;
}

std::string FormatOptionalTime(const std::optional<TimePoint>& time) {
  return time ? logical::FormatRfc3339Nano(*time) : "";
}

json VersionMetadataJson(const StoredVersion& v) {
  return json{{"created_time", logical::FormatRfc3339Nano(v.created)},
              {"custom_metadata", v.custom_metadata},
              {"deletion_time", FormatOptionalTime(v.deletion_time)},
              {"destroyed", v.destroyed},
              {"version", v.version}};
}

store::Value NullableTime(const std::optional<TimePoint>& time) {
  if (!time) return nullptr;
  return ToNanos(*time);
}

std::vector<std::uint8_t> VersionContext(std::string_view uuid, std::string_view path,
                                         std::uint64_t version) {
  return ValueContext("kv2", uuid, path, version);
}

// --- Rows ---

StatusOr<MountConfig> LoadConfig(store::Transaction& tx, const std::string& uuid) {
  LOCKBOX_ASSIGN_OR_RETURN(
      auto rows, tx.Query("SELECT max_versions, cas_required, delete_version_after FROM kv_config "
                          "WHERE mount = ?",
                          {uuid}));
  MountConfig config;
  if (rows.empty()) return config;
  LOCKBOX_ASSIGN_OR_RETURN(config.max_versions, store::GetInt(rows[0], 0));
  LOCKBOX_ASSIGN_OR_RETURN(std::int64_t cas, store::GetInt(rows[0], 1));
  LOCKBOX_ASSIGN_OR_RETURN(std::int64_t dva, store::GetInt(rows[0], 2));
  config.cas_required = cas != 0;
  config.delete_version_after = seconds(dva);
  return config;
}

Status SaveConfig(store::Transaction& tx, const std::string& uuid, const MountConfig& config) {
  const std::vector<store::Value> values{config.max_versions, std::int64_t{config.cas_required},
                                         std::int64_t{config.delete_version_after.count()}, uuid};
  LOCKBOX_ASSIGN_OR_RETURN(std::int64_t changed,
                           tx.Execute("UPDATE kv_config SET max_versions = ?, cas_required = ?, "
                                      "delete_version_after = ? WHERE mount = ?",
                                      values));
  if (changed > 0) return Status::Ok();
  return tx
      .Execute(
          "INSERT INTO kv_config (max_versions, cas_required, delete_version_after, mount) "
          "VALUES (?, ?, ?, ?)",
          values)
      .status();
}

StatusOr<std::optional<KeyMetadata>> LoadMetadata(store::Transaction& tx, const std::string& uuid,
                                                  const std::string& path) {
  LOCKBOX_ASSIGN_OR_RETURN(
      auto rows, tx.Query("SELECT max_versions, cas_required, delete_version_after, "
                          "custom_metadata, current_version, oldest_version, created, updated "
                          "FROM kv_metadata WHERE mount = ? AND path = ?",
                          {uuid, path}));
  if (rows.empty()) return std::optional<KeyMetadata>();
  const store::Row& row = rows[0];
  KeyMetadata m;
  LOCKBOX_ASSIGN_OR_RETURN(m.max_versions, store::GetInt(row, 0));
  LOCKBOX_ASSIGN_OR_RETURN(std::int64_t cas, store::GetInt(row, 1));
  LOCKBOX_ASSIGN_OR_RETURN(std::int64_t dva, store::GetInt(row, 2));
  m.cas_required = cas != 0;
  m.delete_version_after = seconds(dva);
  if (!store::IsNull(row, 3)) {
    LOCKBOX_ASSIGN_OR_RETURN(std::string custom, store::GetText(row, 3));
    m.custom_metadata = json::parse(custom, nullptr, false);
    if (!m.custom_metadata.is_object()) return InternalError("kv: corrupt custom_metadata");
  }
  LOCKBOX_ASSIGN_OR_RETURN(std::int64_t current, store::GetInt(row, 4));
  LOCKBOX_ASSIGN_OR_RETURN(std::int64_t oldest, store::GetInt(row, 5));
  LOCKBOX_ASSIGN_OR_RETURN(std::int64_t created, store::GetInt(row, 6));
  LOCKBOX_ASSIGN_OR_RETURN(std::int64_t updated, store::GetInt(row, 7));
  m.current_version = static_cast<std::uint64_t>(current);
  m.oldest_version = static_cast<std::uint64_t>(oldest);
  m.created = FromNanos(created);
  m.updated = FromNanos(updated);
  return std::optional<KeyMetadata>(std::move(m));
}

Status SaveMetadata(store::Transaction& tx, const std::string& uuid, const std::string& path,
                    const KeyMetadata& m, bool exists) {
  store::Value custom = nullptr;
  if (m.custom_metadata.is_object()) custom = m.custom_metadata.dump();
  const std::vector<store::Value> values{m.max_versions,
                                         std::int64_t{m.cas_required},
                                         std::int64_t{m.delete_version_after.count()},
                                         custom,
                                         static_cast<std::int64_t>(m.current_version),
                                         static_cast<std::int64_t>(m.oldest_version),
                                         ToNanos(m.created),
                                         ToNanos(m.updated),
                                         uuid,
                                         path};
  if (exists) {
    return tx
        .Execute(
            "UPDATE kv_metadata SET max_versions = ?, cas_required = ?, "
            "delete_version_after = ?, custom_metadata = ?, current_version = ?, "
            "oldest_version = ?, created = ?, updated = ? WHERE mount = ? AND path = ?",
            values)
        .status();
  }
  return tx
      .Execute(
          "INSERT INTO kv_metadata (max_versions, cas_required, delete_version_after, "
          "custom_metadata, current_version, oldest_version, created, updated, mount, path) "
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
          values)
      .status();
}

StatusOr<StoredVersion> VersionFromRow(const store::Row& row, bool with_ciphertext) {
  StoredVersion v;
  LOCKBOX_ASSIGN_OR_RETURN(std::int64_t version, store::GetInt(row, 0));
  LOCKBOX_ASSIGN_OR_RETURN(std::int64_t created, store::GetInt(row, 1));
  v.version = static_cast<std::uint64_t>(version);
  v.created = FromNanos(created);
  if (!store::IsNull(row, 2)) {
    LOCKBOX_ASSIGN_OR_RETURN(std::int64_t deletion, store::GetInt(row, 2));
    v.deletion_time = FromNanos(deletion);
  }
  LOCKBOX_ASSIGN_OR_RETURN(std::int64_t destroyed, store::GetInt(row, 3));
  v.destroyed = destroyed != 0;
  if (with_ciphertext && !v.destroyed) {
    LOCKBOX_ASSIGN_OR_RETURN(v.ciphertext, store::GetText(row, 4));
  }
  return v;
}

StatusOr<std::optional<StoredVersion>> LoadVersion(store::Transaction& tx, const std::string& uuid,
                                                   const std::string& path, std::uint64_t version) {
  LOCKBOX_ASSIGN_OR_RETURN(auto rows,
                           tx.Query("SELECT version, created, deletion_time, destroyed, ciphertext "
                                    "FROM kv_versions WHERE mount = ? AND path = ? AND version = ?",
                                    {uuid, path, static_cast<std::int64_t>(version)}));
  if (rows.empty()) return std::optional<StoredVersion>();
  LOCKBOX_ASSIGN_OR_RETURN(StoredVersion v, VersionFromRow(rows[0], true));
  return std::optional<StoredVersion>(std::move(v));
}

StatusOr<std::vector<StoredVersion>> LoadVersionList(store::Transaction& tx,
                                                     const std::string& uuid,
                                                     const std::string& path) {
  LOCKBOX_ASSIGN_OR_RETURN(
      auto rows, tx.Query("SELECT version, created, deletion_time, destroyed FROM kv_versions "
                          "WHERE mount = ? AND path = ? ORDER BY version",
                          {uuid, path}));
  std::vector<StoredVersion> versions;
  for (const auto& row : rows) {
    LOCKBOX_ASSIGN_OR_RETURN(StoredVersion v, VersionFromRow(row, false));
    versions.push_back(std::move(v));
  }
  return versions;
}

// --- Request fields ---

StatusOr<std::int64_t> NonNegative(std::optional<std::int64_t> value, std::string_view field) {
  if (value && *value < 0) {
    return InvalidArgumentError("invalid value for \"" + std::string(field) +
                                "\": must not be negative");
  }
  return value.value_or(0);
}

// `versions`: a JSON array of integers (or numeric strings), a comma-separated string, or one
// integer (Vault's TypeCommaIntSlice).
StatusOr<std::vector<std::uint64_t>> GetVersions(const json& data) {
  auto it = data.find("versions");
  std::vector<json> items;
  if (it != data.end()) {
    if (it->is_array()) {
      items.assign(it->begin(), it->end());
    } else if (it->is_string()) {
      const std::string& text = it->get_ref<const std::string&>();
      std::size_t start = 0;
      while (start <= text.size()) {
        const std::size_t comma = std::min(text.find(',', start), text.size());
        std::string item = text.substr(start, comma - start);
        item.erase(0, item.find_first_not_of(' '));
        item.erase(item.find_last_not_of(' ') + 1);
        if (!item.empty()) items.emplace_back(item);
        start = comma + 1;
      }
    } else {
      items.push_back(*it);
    }
  }
  std::vector<std::uint64_t> versions;
  for (const auto& item : items) {
    LOCKBOX_ASSIGN_OR_RETURN(auto v, logical::GetInt(json{{"versions", item}}, "versions"));
    LOCKBOX_ASSIGN_OR_RETURN(std::int64_t n, NonNegative(v, "versions"));
    versions.push_back(static_cast<std::uint64_t>(n));
  }
  if (versions.empty()) return InvalidArgumentError("no version number provided");
  return versions;
}

struct WriteInput {
  const json* data = nullptr;
  std::optional<std::int64_t> cas;
};

// `data` (a JSON object, required) and `options.cas` of a write or patch.
StatusOr<WriteInput> GetWriteInput(const json& body) {
  WriteInput input;
  auto data = body.find("data");
  if (data == body.end()) return InvalidArgumentError("no data provided");
  if (!data->is_object()) {
    return InvalidArgumentError("invalid value for \"data\": must be a JSON object");
  }
  input.data = &*data;
  if (auto options = body.find("options"); options != body.end()) {
    if (!options->is_object()) {
      return InvalidArgumentError("invalid value for \"options\": must be a JSON object");
    }
    LOCKBOX_ASSIGN_OR_RETURN(input.cas, logical::GetInt(*options, "cas"));
    LOCKBOX_RETURN_IF_ERROR(NonNegative(input.cas, "cas").status());
  }
  return input;
}

Status ValidateCustomMetadata(const std::map<std::string, std::string>& custom) {
  if (custom.size() > kMaxCustomMetadataKeys) {
    return InvalidArgumentError("custom_metadata may have at most 64 keys");
  }
  for (const auto& [key, value] : custom) {
    if (key.empty() || key.size() > kMaxCustomMetadataKeyLength) {
      return InvalidArgumentError("custom_metadata keys must be 1 to 128 bytes");
    }
    if (value.size() > kMaxCustomMetadataValueLength) {
      return InvalidArgumentError("custom_metadata values must be at most 512 bytes");
    }
  }
  return Status::Ok();
}

}  // namespace

class KvV2Backend final : public KvBackendBase {
 public:
  KvV2Backend(const logical::MountEntry& entry, keyring::Keyring& keyring, store::Store& store,
              audit_log::EventLog& events, KvOptions options)
      : KvBackendBase(entry, keyring, store, events, std::move(options)),
        cache_(options_.read_cache_entries, options_.read_cache_bytes) {}

  StatusOr<logical::Response> HandleRequest(const logical::Request& request) override;
  StatusOr<std::optional<bool>> Exists(const logical::Request& request) override;

 protected:
  void OnPurge(store::Transaction& tx) override { cache_.ChangingAll(tx); }

 private:
  // A version to read: the current one (0) or a given one; nullptr if the key or version does
  // not exist. The current version comes from the warm cache when it can.
  StatusOr<std::shared_ptr<const StoredVersion>> FindVersion(const std::string& path,
                                                             std::uint64_t version);
  // Opens a readable version's value (as the JSON text it was sealed as, or parsed); records
  // failures (and only failures) in the audit log.
  StatusOr<crypto::SecureBuffer> OpenValueText(const logical::Request& request,
                                               const std::string& path, const StoredVersion& v);
  StatusOr<json> OpenValue(const logical::Request& request, const std::string& path,
                           const StoredVersion& v);
  // `opened` as it is, after recording it in the audit log if it failed.
  template <class Value>
  StatusOr<Value> AuditedOpen(const logical::Request& request, const StoredVersion& v,
                              StatusOr<Value> opened);
  // 404 with the version's metadata and no data (Vault's answer for a deleted or destroyed
  // version).
  static logical::Response GoneResponse(const StoredVersion& v);
  // The current version, as a hint for the version a write without cas will create.
  StatusOr<std::uint64_t> CurrentVersionHint(const std::string& path);

  // One attempt to add version `base + 1` holding `value`. nullopt: the key's current version
  // was no longer `base` (another writer won the race); seal again and retry.
  StatusOr<std::optional<logical::Response>> AddVersion(const logical::Request& request,
                                                        const std::string& path, const json& value,
                                                        std::optional<std::int64_t> cas,
                                                        std::uint64_t base, std::string_view op);

  StatusOr<logical::Response> ReadConfig();
  StatusOr<logical::Response> WriteConfig(const logical::Request& request);
  StatusOr<logical::Response> ReadData(const logical::Request& request, const std::string& path);
  StatusOr<logical::Response> WriteData(const logical::Request& request, const std::string& path);
  StatusOr<logical::Response> PatchData(const logical::Request& request, const std::string& path);
  StatusOr<logical::Response> DeleteLatest(const logical::Request& request,
                                           const std::string& path);
  StatusOr<logical::Response> ChangeVersions(const logical::Request& request, RouteKind kind,
                                             const std::string& path);
  StatusOr<logical::Response> ReadMetadata(const std::string& path);
  StatusOr<logical::Response> WriteMetadata(const logical::Request& request,
                                            const std::string& path);
  StatusOr<logical::Response> DeleteMetadata(const logical::Request& request,
                                             const std::string& path);

  // Commits `change` with the request's event (op) and marks `path` changing in the cache.
  StatusOr<logical::Response> CommitChange(
      const logical::Request& request, std::string_view op, const std::string& path,
      const std::function<Status(store::Transaction&, audit::Event&)>& change);

  // Writers of one path in this process take turns (striped by path hash): the version a write
  // seals for is then the one it commits, instead of many concurrent writers of a hot key racing
  // and retrying until they give up. The version check inside the unit still decides.
  std::mutex& WriteLock(const std::string& path) {
    return write_locks_[std::hash<std::string>{}(path) % write_locks_.size()];
  }

  KvReadCache cache_;
  std::array<std::mutex, 64> write_locks_;
};

StatusOr<logical::Response> KvV2Backend::HandleRequest(const logical::Request& request) {
  using logical::Operation;
  const auto route = ParseRoute(request.relative_path);
  if (!route) return UnsupportedPath();
  const Operation op = request.operation;
  const std::string& path = route->path;
  switch (route->kind) {
    case RouteKind::kConfig:
      if (op == Operation::kRead) return ReadConfig();
      if (IsWrite(op)) return WriteConfig(request);
      break;
    case RouteKind::kData:
      if (op == Operation::kRead) return ReadData(request, path);
      if (IsWrite(op)) return WriteData(request, path);
      if (op == Operation::kPatch) return PatchData(request, path);
      if (op == Operation::kDelete) return DeleteLatest(request, path);
      break;
    case RouteKind::kMetadata:
      if (op == Operation::kList) return ListKeys("kv_metadata", path);
      if (op == Operation::kRead) return ReadMetadata(path);
      if (IsWrite(op)) return WriteMetadata(request, path);
      if (op == Operation::kDelete) return DeleteMetadata(request, path);
      break;
    case RouteKind::kDelete:
    case RouteKind::kUndelete:
    case RouteKind::kDestroy:
      if (IsWrite(op)) return ChangeVersions(request, route->kind, path);
      break;
  }
  return UnsupportedOperation();
}

StatusOr<std::optional<bool>> KvV2Backend::Exists(const logical::Request& request) {
  const auto route = ParseRoute(request.relative_path);
  if (!route || (route->kind != RouteKind::kData && route->kind != RouteKind::kMetadata)) {
    return std::optional<bool>();
  }
  if (!IsKeyPath(route->path)) return std::optional<bool>(false);
  if (cache_.Find(route->path)) return std::optional<bool>(true);
  LOCKBOX_ASSIGN_OR_RETURN(auto rows, store_.Query("SELECT 1 FROM kv_metadata WHERE mount = ? "
                                                   "AND path = ?",
                                                   {uuid_, route->path}));
  return std::optional<bool>(!rows.empty());
}

// --- config ---

StatusOr<logical::Response> KvV2Backend::ReadConfig() {
  MountConfig config;
  LOCKBOX_RETURN_IF_ERROR(store_.Read([&](store::Transaction& tx) -> Status {
    LOCKBOX_ASSIGN_OR_RETURN(config, LoadConfig(tx, uuid_));
    return Status::Ok();
  }));
  logical::Response response;
  response.data =
      json{{"max_versions", config.max_versions},
           {"cas_required", config.cas_required},
           {"delete_version_after", logical::FormatGoDuration(config.delete_version_after)}};
  return response;
}

StatusOr<logical::Response> KvV2Backend::WriteConfig(const logical::Request& request) {
  LOCKBOX_ASSIGN_OR_RETURN(auto max_versions, logical::GetInt(request.data, "max_versions"));
  LOCKBOX_RETURN_IF_ERROR(NonNegative(max_versions, "max_versions").status());
  LOCKBOX_ASSIGN_OR_RETURN(auto cas_required, logical::GetBool(request.data, "cas_required"));
  LOCKBOX_ASSIGN_OR_RETURN(auto dva, logical::GetDuration(request.data, "delete_version_after"));
  audit::Event event = RequestEvent("kv.config.write", request);
  LOCKBOX_RETURN_IF_ERROR(store_.Commit([&](store::Transaction& tx) -> Status {
    LOCKBOX_ASSIGN_OR_RETURN(MountConfig config, LoadConfig(tx, uuid_));
    if (max_versions) config.max_versions = *max_versions;
    if (cas_required) config.cas_required = *cas_required;
    if (dva) config.delete_version_after = *dva;
    LOCKBOX_RETURN_IF_ERROR(SaveConfig(tx, uuid_, config));
    event.details["max_versions"] = config.max_versions;
    event.details["cas_required"] = config.cas_required;
    event.details["delete_version_after"] = config.delete_version_after.count();
    return events_.Append(tx, event);
  }));
  logical::Response response;
  response.audited = true;
  return response;
}

// --- data ---

StatusOr<std::shared_ptr<const StoredVersion>> KvV2Backend::FindVersion(const std::string& path,
                                                                        std::uint64_t version) {
  if (auto cached = cache_.Find(path); cached && (version == 0 || cached->version == version)) {
    return cached;
  }
  const std::uint64_t ticket = cache_.FillTicket();
  std::shared_ptr<StoredVersion> found;
  LOCKBOX_RETURN_IF_ERROR(store_.Read([&](store::Transaction& tx) -> Status {
    LOCKBOX_ASSIGN_OR_RETURN(auto meta, LoadMetadata(tx, uuid_, path));
    if (!meta) return Status::Ok();
    const std::uint64_t wanted = version == 0 ? meta->current_version : version;
    if (wanted == 0) return Status::Ok();
    LOCKBOX_ASSIGN_OR_RETURN(auto v, LoadVersion(tx, uuid_, path, wanted));
    if (!v) return Status::Ok();
    v->custom_metadata = std::move(meta->custom_metadata);
    v->metadata_text = VersionMetadataJson(*v).dump();
    found = std::make_shared<StoredVersion>(std::move(*v));
    if (wanted == meta->current_version) cache_.Fill(path, found, ticket);
    return Status::Ok();
  }));
  return std::shared_ptr<const StoredVersion>(std::move(found));
}

template <class Value>
StatusOr<Value> KvV2Backend::AuditedOpen(const logical::Request& request, const StoredVersion& v,
                                         StatusOr<Value> opened) {
  if (!opened.ok()) {
    audit::Event event = RequestEvent("kv.read", request);
    event.details["version"] = v.version;
    event.outcome = audit::Outcome::kError;
    event.reason = opened.status().message();
    LOCKBOX_RETURN_IF_ERROR(RecordRead(events_, std::move(event)));
  }
  return opened;
}

StatusOr<crypto::SecureBuffer> KvV2Backend::OpenValueText(const logical::Request& request,
                                                          const std::string& path,
                                                          const StoredVersion& v) {
  return AuditedOpen(
      request, v,
      sealer_.OpenText(v.ciphertext, VersionContext(uuid_, path, v.version), request.caller));
}

StatusOr<json> KvV2Backend::OpenValue(const logical::Request& request, const std::string& path,
                                      const StoredVersion& v) {
  return AuditedOpen(
      request, v,
      sealer_.Open(v.ciphertext, VersionContext(uuid_, path, v.version), request.caller));
}

namespace {
// The envelope's data, {"data":…,"metadata":…}, written as the JSON text Dump() would make of it.
std::string VersionAnswer(std::string_view value_text, const StoredVersion& v) {
  constexpr std::string_view kOpen = R"({"data":)", kMiddle = R"(,"metadata":)", kClose = "}";
  std::string answer;
  answer.reserve(kOpen.size() + value_text.size() + kMiddle.size() + v.metadata_text.size() +
                 kClose.size());
  answer.append(kOpen).append(value_text).append(kMiddle).append(v.metadata_text).append(kClose);
  return answer;
}
}  // namespace

logical::Response KvV2Backend::GoneResponse(const StoredVersion& v) {
  logical::Response response;
  response.status = 404;
  response.data_text = VersionAnswer("null", v);
  return response;
}

StatusOr<logical::Response> KvV2Backend::ReadData(const logical::Request& request,
                                                  const std::string& path) {
  LOCKBOX_ASSIGN_OR_RETURN(auto version_field, logical::GetInt(request.data, "version"));
  LOCKBOX_ASSIGN_OR_RETURN(std::int64_t version, NonNegative(version_field, "version"));
  if (!IsKeyPath(path)) return NotFoundError("");
  LOCKBOX_ASSIGN_OR_RETURN(auto v, FindVersion(path, static_cast<std::uint64_t>(version)));
  if (!v) return NotFoundError("");
  audit::Event event = RequestEvent("kv.read", request);
  event.details["version"] = v->version;
  if (v->destroyed || IsDeleted(*v, Now())) {
    event.details["deleted"] = true;
    logical::Response gone = GoneResponse(*v);
    gone.event = std::move(event);
    return gone;
  }
  // The stored text goes into the answer as it is: Seal() wrote it as the compact JSON a parse and
  // dump would give back, and it authenticated, so re-parsing it would only cost time.
  LOCKBOX_ASSIGN_OR_RETURN(crypto::SecureBuffer value, OpenValueText(request, path, *v));
  logical::Response response;
  response.data_text = VersionAnswer(value.view(), *v);
  response.event = std::move(event);  // durable before the value leaves (see logical.h)
  return response;
}

StatusOr<std::uint64_t> KvV2Backend::CurrentVersionHint(const std::string& path) {
  if (auto cached = cache_.Find(path)) return cached->version;
  LOCKBOX_ASSIGN_OR_RETURN(
      auto rows, store_.Query("SELECT current_version FROM kv_metadata WHERE mount = ? AND "
                              "path = ?",
                              {uuid_, path}));
  if (rows.empty()) return std::uint64_t{0};
  LOCKBOX_ASSIGN_OR_RETURN(std::int64_t current, store::GetInt(rows[0], 0));
  return static_cast<std::uint64_t>(current);
}

StatusOr<std::optional<logical::Response>> KvV2Backend::AddVersion(
    const logical::Request& request, const std::string& path, const json& value,
    std::optional<std::int64_t> cas, std::uint64_t base, std::string_view op) {
  const std::uint64_t version = base + 1;
  // Sealed before the unit of work (keyring calls do not belong on the writer thread); the
  // version it is bound to is checked inside the unit.
  LOCKBOX_ASSIGN_OR_RETURN(
      std::string ciphertext,
      sealer_.Seal(value, VersionContext(uuid_, path, version), request.caller));
  bool raced = false;
  StoredVersion written;
  audit::Event event = RequestEvent(op, request);
  Status s = store_.Commit([&](store::Transaction& tx) -> Status {
    LOCKBOX_ASSIGN_OR_RETURN(MountConfig config, LoadConfig(tx, uuid_));
    LOCKBOX_ASSIGN_OR_RETURN(auto existing, LoadMetadata(tx, uuid_, path));
    const bool exists = existing.has_value();
    KeyMetadata meta = existing.value_or(KeyMetadata{});
    if (!cas && (config.cas_required || meta.cas_required)) {
      return InvalidArgumentError("check-and-set parameter required for this call");
    }
    if (cas && static_cast<std::uint64_t>(*cas) != meta.current_version) {
      return InvalidArgumentError("check-and-set parameter did not match the current version");
    }
    if (meta.current_version != base) {
      raced = true;
      return AbortedError("kv: the key changed while the value was sealed");
    }
    const TimePoint now = Now();
    if (!exists) meta.created = now;
    meta.updated = now;
    meta.current_version = version;
    written.version = version;
    written.created = now;
    if (const seconds dva = EffectiveDeleteVersionAfter(meta, config); dva > seconds(0)) {
      written.deletion_time = now + dva;
    }
    written.custom_metadata = meta.custom_metadata;
    LOCKBOX_RETURN_IF_ERROR(
        tx.Execute("INSERT INTO kv_versions (mount, path, version, created, deletion_time, "
                   "destroyed, ciphertext) VALUES (?, ?, ?, ?, ?, 0, ?)",
                   {uuid_, path, static_cast<std::int64_t>(version), ToNanos(now),
                    NullableTime(written.deletion_time), ciphertext})
            .status());
    // Versions beyond the limit are removed for good, oldest first.
    LOCKBOX_ASSIGN_OR_RETURN(
        auto count,
        tx.Query("SELECT COUNT(*) FROM kv_versions WHERE mount = ? AND path = ?", {uuid_, path}));
    LOCKBOX_ASSIGN_OR_RETURN(std::int64_t kept, store::GetInt(count.at(0), 0));
    const std::int64_t max_versions = EffectiveMaxVersions(meta, config);
    if (kept > max_versions) {
      const std::int64_t last_removed = static_cast<std::int64_t>(version) - max_versions;
      LOCKBOX_RETURN_IF_ERROR(tx.Execute("DELETE FROM kv_versions WHERE mount = ? AND path = ? "
                                         "AND version <= ?",
                                         {uuid_, path, last_removed})
                                  .status());
      meta.oldest_version = static_cast<std::uint64_t>(last_removed) + 1;
      event.details["oldest_version"] = meta.oldest_version;
    }
    LOCKBOX_RETURN_IF_ERROR(SaveMetadata(tx, uuid_, path, meta, exists));
    cache_.Changing(tx, path);
    event.details["version"] = version;
    return events_.Append(tx, event);
  });
  if (raced) return std::optional<logical::Response>();
  LOCKBOX_RETURN_IF_ERROR(s);
  logical::Response response;
  response.data = VersionMetadataJson(written);
  response.audited = true;
  return std::optional<logical::Response>(std::move(response));
}

StatusOr<logical::Response> KvV2Backend::WriteData(const logical::Request& request,
                                                   const std::string& path) {
  LOCKBOX_ASSIGN_OR_RETURN(WriteInput input, GetWriteInput(request.data));
  LOCKBOX_RETURN_IF_ERROR(CheckKeyPath(path));
  std::lock_guard turn(WriteLock(path));
  for (int attempt = 0; attempt < kMaxWriteAttempts; ++attempt) {
    // With cas the version to create is known: cas + 1, or a cas mismatch.
    std::uint64_t base = 0;
    if (input.cas) {
      base = static_cast<std::uint64_t>(*input.cas);
    } else {
      LOCKBOX_ASSIGN_OR_RETURN(base, CurrentVersionHint(path));
    }
    LOCKBOX_ASSIGN_OR_RETURN(auto response,
                             AddVersion(request, path, *input.data, input.cas, base, "kv.write"));
    if (response) return std::move(*response);
  }
  return AbortedError("too many concurrent writes to this key; retry");
}

StatusOr<logical::Response> KvV2Backend::PatchData(const logical::Request& request,
                                                   const std::string& path) {
  if (request.content_type != kMergePatchType) {
    logical::Response response;
    response.status = 415;
    response.raw_json = json{
        {"errors", json::array({"PATCH requires Content-Type: " + std::string(kMergePatchType)})}};
    return response;
  }
  LOCKBOX_ASSIGN_OR_RETURN(WriteInput input, GetWriteInput(request.data));
  LOCKBOX_RETURN_IF_ERROR(CheckKeyPath(path));
  std::lock_guard turn(WriteLock(path));
  for (int attempt = 0; attempt < kMaxWriteAttempts; ++attempt) {
    LOCKBOX_ASSIGN_OR_RETURN(auto current, FindVersion(path, 0));
    if (!current) return NotFoundError("");
    if (current->destroyed || IsDeleted(*current, Now())) return GoneResponse(*current);
    if (input.cas && static_cast<std::uint64_t>(*input.cas) != current->version) {
      return InvalidArgumentError("check-and-set parameter did not match the current version");
    }
    LOCKBOX_ASSIGN_OR_RETURN(json value, OpenValue(request, path, *current));
    value.merge_patch(*input.data);
    LOCKBOX_ASSIGN_OR_RETURN(
        auto response, AddVersion(request, path, value, input.cas, current->version, "kv.patch"));
    if (response) return std::move(*response);
  }
  return AbortedError("too many concurrent writes to this key; retry");
}

StatusOr<logical::Response> KvV2Backend::CommitChange(
    const logical::Request& request, std::string_view op, const std::string& path,
    const std::function<Status(store::Transaction&, audit::Event&)>& change) {
  audit::Event event = RequestEvent(op, request);
  LOCKBOX_RETURN_IF_ERROR(store_.Commit([&](store::Transaction& tx) -> Status {
    LOCKBOX_RETURN_IF_ERROR(change(tx, event));
    cache_.Changing(tx, path);
    return events_.Append(tx, event);
  }));
  logical::Response response;
  response.audited = true;
  return response;
}

StatusOr<logical::Response> KvV2Backend::DeleteLatest(const logical::Request& request,
                                                      const std::string& path) {
  LOCKBOX_RETURN_IF_ERROR(CheckKeyPath(path));
  return CommitChange(
      request, "kv.delete", path, [&](store::Transaction& tx, audit::Event& event) -> Status {
        LOCKBOX_ASSIGN_OR_RETURN(auto meta, LoadMetadata(tx, uuid_, path));
        if (!meta || meta->current_version == 0) return Status::Ok();
        LOCKBOX_ASSIGN_OR_RETURN(auto v, LoadVersion(tx, uuid_, path, meta->current_version));
        const TimePoint now = Now();
        if (!v || v->destroyed || IsDeleted(*v, now)) return Status::Ok();
        event.details["versions"] = std::to_string(v->version);
        return tx
            .Execute(
                "UPDATE kv_versions SET deletion_time = ? WHERE mount = ? "
                "AND path = ? AND version = ?",
                {ToNanos(now), uuid_, path, static_cast<std::int64_t>(v->version)})
            .status();
      });
}

StatusOr<logical::Response> KvV2Backend::ChangeVersions(const logical::Request& request,
                                                        RouteKind kind, const std::string& path) {
  LOCKBOX_ASSIGN_OR_RETURN(auto versions, GetVersions(request.data));
  LOCKBOX_RETURN_IF_ERROR(CheckKeyPath(path));
  const std::string_view op = kind == RouteKind::kDelete     ? "kv.delete"
                              : kind == RouteKind::kUndelete ? "kv.undelete"
                                                             : "kv.destroy";
  return CommitChange(
      request, op, path, [&](store::Transaction& tx, audit::Event& event) -> Status {
        const TimePoint now = Now();
        std::string changed;
        for (std::uint64_t number : versions) {
          LOCKBOX_ASSIGN_OR_RETURN(auto v, LoadVersion(tx, uuid_, path, number));
          if (!v) continue;  // missing versions are ignored
          std::string sql;
          std::vector<store::Value> params;
          if (kind == RouteKind::kDelete && !v->destroyed && !IsDeleted(*v, now)) {
            sql = "UPDATE kv_versions SET deletion_time = ?";
            params.emplace_back(ToNanos(now));
          } else if (kind == RouteKind::kUndelete && !v->destroyed && v->deletion_time) {
            sql = "UPDATE kv_versions SET deletion_time = NULL";
          } else if (kind == RouteKind::kDestroy && !v->destroyed) {
            // The ciphertext goes with it; secure_delete keeps its bytes out of free pages.
            sql = "UPDATE kv_versions SET destroyed = 1, ciphertext = NULL";
          } else {
            continue;
          }
          sql += " WHERE mount = ? AND path = ? AND version = ?";
          params.insert(params.end(), {uuid_, path, static_cast<std::int64_t>(number)});
          LOCKBOX_RETURN_IF_ERROR(tx.Execute(sql, params).status());
          changed += (changed.empty() ? "" : ",") + std::to_string(number);
        }
        event.details["versions"] = changed;
        return Status::Ok();
      });
}

// --- metadata ---

StatusOr<logical::Response> KvV2Backend::ReadMetadata(const std::string& path) {
  if (!IsKeyPath(path)) return NotFoundError("");
  std::optional<KeyMetadata> meta;
  std::vector<StoredVersion> versions;
  LOCKBOX_RETURN_IF_ERROR(store_.Read([&](store::Transaction& tx) -> Status {
    LOCKBOX_ASSIGN_OR_RETURN(meta, LoadMetadata(tx, uuid_, path));
    if (!meta) return Status::Ok();
    LOCKBOX_ASSIGN_OR_RETURN(versions, LoadVersionList(tx, uuid_, path));
    return Status::Ok();
  }));
  if (!meta) return NotFoundError("");
  json by_version = json::object();
  for (const auto& v : versions) {
    by_version[std::to_string(v.version)] =
        json{{"created_time", logical::FormatRfc3339Nano(v.created)},
             {"deletion_time", FormatOptionalTime(v.deletion_time)},
             {"destroyed", v.destroyed}};
  }
  logical::Response response;
  response.data =
      json{{"cas_required", meta->cas_required},
           {"created_time", logical::FormatRfc3339Nano(meta->created)},
           {"current_version", meta->current_version},
           {"custom_metadata", meta->custom_metadata},
           {"delete_version_after", logical::FormatGoDuration(meta->delete_version_after)},
           {"max_versions", meta->max_versions},
           {"oldest_version", meta->oldest_version},
           {"updated_time", logical::FormatRfc3339Nano(meta->updated)},
           {"versions", std::move(by_version)}};
  return response;
}

StatusOr<logical::Response> KvV2Backend::WriteMetadata(const logical::Request& request,
                                                       const std::string& path) {
  LOCKBOX_ASSIGN_OR_RETURN(auto max_versions, logical::GetInt(request.data, "max_versions"));
  LOCKBOX_RETURN_IF_ERROR(NonNegative(max_versions, "max_versions").status());
  LOCKBOX_ASSIGN_OR_RETURN(auto cas_required, logical::GetBool(request.data, "cas_required"));
  LOCKBOX_ASSIGN_OR_RETURN(auto dva, logical::GetDuration(request.data, "delete_version_after"));
  LOCKBOX_ASSIGN_OR_RETURN(auto custom, logical::GetStringMap(request.data, "custom_metadata"));
  if (custom) LOCKBOX_RETURN_IF_ERROR(ValidateCustomMetadata(*custom));
  LOCKBOX_RETURN_IF_ERROR(CheckKeyPath(path));
  return CommitChange(request, "kv.metadata.write", path,
                      [&](store::Transaction& tx, audit::Event& event) -> Status {
                        LOCKBOX_ASSIGN_OR_RETURN(auto existing, LoadMetadata(tx, uuid_, path));
                        KeyMetadata meta = existing.value_or(KeyMetadata{});
                        const TimePoint now = Now();
                        if (!existing) meta.created = now;
                        meta.updated = now;
                        if (max_versions) meta.max_versions = *max_versions;
                        if (cas_required) meta.cas_required = *cas_required;
                        if (dva) meta.delete_version_after = *dva;
                        if (custom) meta.custom_metadata = *custom;
                        event.details["max_versions"] = meta.max_versions;
                        event.details["cas_required"] = meta.cas_required;
                        event.details["delete_version_after"] = meta.delete_version_after.count();
                        return SaveMetadata(tx, uuid_, path, meta, existing.has_value());
                      });
}

StatusOr<logical::Response> KvV2Backend::DeleteMetadata(const logical::Request& request,
                                                        const std::string& path) {
  LOCKBOX_RETURN_IF_ERROR(CheckKeyPath(path));
  return CommitChange(
      request, "kv.metadata.delete", path,
      [&](store::Transaction& tx, audit::Event& event) -> Status {
        LOCKBOX_ASSIGN_OR_RETURN(
            std::int64_t removed,
            tx.Execute("DELETE FROM kv_versions WHERE mount = ? AND path = ?", {uuid_, path}));
        event.details["versions_removed"] = removed;
        return tx.Execute("DELETE FROM kv_metadata WHERE mount = ? AND path = ?", {uuid_, path})
            .status();
      });
}

std::unique_ptr<logical::Backend> NewKvV2Backend(const logical::MountEntry& entry,
                                                 keyring::Keyring& keyring, store::Store& store,
                                                 audit_log::EventLog& events, KvOptions options) {
  return std::make_unique<KvV2Backend>(entry, keyring, store, events, std::move(options));
}

}  // namespace lockbox::secrets::internal
