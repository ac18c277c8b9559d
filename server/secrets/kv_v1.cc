// KV version 1 (Vault's unversioned "kv"/"generic"): any JSON object per path, read, written
// (204), deleted (204) and listed. Table kv_v1_entries(mount, path, ciphertext); a value is sealed
// with ValueContext("kv1", mount uuid, path).
#include <utility>

#include "server/logical/fields.h"
#include "server/secrets/kv_internal.h"

namespace lockbox::secrets::internal {
namespace {

using nlohmann::json;

std::vector<std::uint8_t> EntryContext(std::string_view uuid, std::string_view path) {
  return ValueContext("kv1", uuid, path, std::nullopt);
}

class KvV1Backend final : public KvBackendBase {
 public:
  using KvBackendBase::KvBackendBase;

  StatusOr<logical::Response> HandleRequest(const logical::Request& request) override {
    using logical::Operation;
    const std::string& path = request.relative_path;
    switch (request.operation) {
      case Operation::kList:
        return ListKeys("kv_v1_entries", path);
      case Operation::kRead:
        return Read(request);
      case Operation::kCreate:
      case Operation::kUpdate:
        return Write(request);
      case Operation::kDelete:
        return Delete(request);
      case Operation::kPatch:
        break;
    }
    return UnsupportedOperation();
  }

  StatusOr<std::optional<bool>> Exists(const logical::Request& request) override {
    if (!IsKeyPath(request.relative_path)) return std::optional<bool>(false);
    LOCKBOX_ASSIGN_OR_RETURN(auto rows, Find(request.relative_path));
    return std::optional<bool>(!rows.empty());
  }

 private:
  StatusOr<std::vector<store::Row>> Find(const std::string& path) {
    return store_.Query("SELECT ciphertext FROM kv_v1_entries WHERE mount = ? AND path = ?",
                        {uuid_, path});
  }

  // Vault: the entry's "ttl" (or legacy "lease") if it parses, else the mount's default.
  std::chrono::seconds LeaseDuration(const json& value) const {
    for (const char* field : {"ttl", "lease"}) {
      auto ttl = logical::GetDuration(value, field);
      if (ttl.ok() && *ttl) return **ttl;
    }
    const auto mount_default = entry().default_lease_ttl;
    return mount_default > std::chrono::seconds(0) ? mount_default : options_.default_lease_ttl;
  }

  StatusOr<logical::Response> Read(const logical::Request& request) {
    const std::string& path = request.relative_path;
    if (!IsKeyPath(path)) return NotFoundError("");
    LOCKBOX_ASSIGN_OR_RETURN(auto rows, Find(path));
    if (rows.empty()) return NotFoundError("");
    LOCKBOX_ASSIGN_OR_RETURN(std::string ciphertext, store::GetText(rows[0], 0));
    audit::Event event = RequestEvent("kv.read", request);
    auto value = sealer_.Open(ciphertext, EntryContext(uuid_, path), request.caller);
    if (!value.ok()) {
      event.outcome = audit::Outcome::kError;
      event.reason = value.status().message();
      LOCKBOX_RETURN_IF_ERROR(RecordRead(events_, std::move(event)));
      return value.status();
    }
    logical::Response response;
    response.lease_duration = LeaseDuration(*value);
    response.data = std::move(*value);
    response.event = std::move(event);  // durable before the value leaves (see logical.h)
    return response;
  }

  StatusOr<logical::Response> Write(const logical::Request& request) {
    const std::string& path = request.relative_path;
    if (!request.data.is_object() || request.data.empty()) {
      return InvalidArgumentError("missing data fields");
    }
    LOCKBOX_RETURN_IF_ERROR(CheckKeyPath(path));
    LOCKBOX_ASSIGN_OR_RETURN(std::string ciphertext,
                             sealer_.Seal(request.data, EntryContext(uuid_, path), request.caller));
    audit::Event event = RequestEvent("kv.write", request);
    LOCKBOX_RETURN_IF_ERROR(store_.Commit([&](store::Transaction& tx) -> Status {
      LOCKBOX_ASSIGN_OR_RETURN(
          std::int64_t updated,
          tx.Execute("UPDATE kv_v1_entries SET ciphertext = ? WHERE mount = ? AND path = ?",
                     {ciphertext, uuid_, path}));
      if (updated == 0) {
        LOCKBOX_RETURN_IF_ERROR(
            tx.Execute("INSERT INTO kv_v1_entries (ciphertext, mount, path) VALUES (?, ?, ?)",
                       {ciphertext, uuid_, path})
                .status());
      }
      return events_.Append(tx, event);
    }));
    logical::Response response;
    response.audited = true;
    return response;
  }

  StatusOr<logical::Response> Delete(const logical::Request& request) {
    const std::string& path = request.relative_path;
    LOCKBOX_RETURN_IF_ERROR(CheckKeyPath(path));
    audit::Event event = RequestEvent("kv.delete", request);
    LOCKBOX_RETURN_IF_ERROR(store_.Commit([&](store::Transaction& tx) -> Status {
      LOCKBOX_ASSIGN_OR_RETURN(
          std::int64_t removed,
          tx.Execute("DELETE FROM kv_v1_entries WHERE mount = ? AND path = ?", {uuid_, path}));
      event.details["removed"] = removed > 0;
      return events_.Append(tx, event);
    }));
    logical::Response response;
    response.audited = true;
    return response;
  }
};

}  // namespace

std::unique_ptr<logical::Backend> NewKvV1Backend(const logical::MountEntry& entry,
                                                 keyring::Keyring& keyring, store::Store& store,
                                                 audit_log::EventLog& events, KvOptions options) {
  return std::make_unique<KvV1Backend>(entry, keyring, store, events, std::move(options));
}

}  // namespace lockbox::secrets::internal
