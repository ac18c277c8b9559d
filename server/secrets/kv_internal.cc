#include "server/secrets/kv_internal.h"

#include <set>
#include <utility>

#include "crypto/secure_buffer.h"

namespace lockbox::secrets::internal {

std::int64_t ToNanos(TimePoint time) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(time.time_since_epoch()).count();
}

TimePoint FromNanos(std::int64_t nanos) {
  return TimePoint(
      std::chrono::duration_cast<TimePoint::duration>(std::chrono::nanoseconds(nanos)));
}

std::vector<std::uint8_t> ValueContext(std::string_view engine, std::string_view mount_uuid,
                                       std::string_view path,
                                       std::optional<std::uint64_t> version) {
  std::vector<std::uint8_t> out;
  auto append = [&out](std::string_view field) {
    const auto n = static_cast<std::uint32_t>(field.size());
    for (int shift = 24; shift >= 0; shift -= 8)
      out.push_back(static_cast<std::uint8_t>(n >> shift));
    out.insert(out.end(), field.begin(), field.end());
  };
  append("lockbox-kv-value");
  append(engine);
  append(mount_uuid);
  append(path);
  if (version) append(std::to_string(*version));
  return out;
}

keyring::Caller ValueSealer::AuditedByCaller(const keyring::Caller& caller) {
  keyring::Caller c = caller;
  c.audited_by_caller = true;
  return c;
}

StatusOr<std::string> ValueSealer::Seal(const nlohmann::json& value,
                                        std::span<const std::uint8_t> context,
                                        const keyring::Caller& caller) const {
  crypto::SecureBuffer plaintext;
  {
    std::string text;
    try {
      text = value.dump();
    } catch (const nlohmann::json::exception&) {
      return InvalidArgumentError("invalid value for \"data\": strings must be valid UTF-8");
    }
    plaintext = crypto::SecureBuffer::Copy(text);
    crypto::SecureZero({reinterpret_cast<std::uint8_t*>(text.data()), text.size()});
  }
  return keyring_.Encrypt(key_name_, plaintext.span(), context, 0, AuditedByCaller(caller));
}

StatusOr<crypto::SecureBuffer> ValueSealer::OpenText(std::string_view ciphertext,
                                                     std::span<const std::uint8_t> context,
                                                     const keyring::Caller& caller) const {
  auto plaintext = keyring_.Decrypt(key_name_, ciphertext, context, AuditedByCaller(caller));
  if (!plaintext.ok()) {
    const StatusCode code = plaintext.status().code();
    if (code == StatusCode::kInvalidArgument || code == StatusCode::kDataLoss) {
      return InternalError(std::string(kTamperedMessage));
    }
  }
  return plaintext;
}

StatusOr<nlohmann::json> ValueSealer::Open(std::string_view ciphertext,
                                           std::span<const std::uint8_t> context,
                                           const keyring::Caller& caller) const {
  LOCKBOX_ASSIGN_OR_RETURN(crypto::SecureBuffer text, OpenText(ciphertext, context, caller));
  nlohmann::json value = nlohmann::json::parse(text.view(), nullptr, false);
  if (value.is_discarded()) return InternalError("stored secret is not valid JSON");
  return value;
}

audit::Event RequestEvent(std::string_view op, const logical::Request& request) {
  audit::Event event;
  event.op = std::string(op);
  event.path = request.path;
  event.request_id =
      request.caller.request_id.empty() ? request.request_id : request.caller.request_id;
  event.actor = request.caller.actor;
  event.remote_addr =
      request.caller.remote_addr.empty() ? request.remote_addr : request.caller.remote_addr;
  return event;
}

Status RecordRead(audit_log::EventLog& events, audit::Event event) {
  if (Status s = events.Record(std::move(event)); !s.ok()) {
    return UnavailableError("audit log unavailable: " + s.message());
  }
  return Status::Ok();
}

std::vector<std::string> DirectChildren(std::string_view prefix,
                                        const std::vector<std::string>& paths) {
  std::set<std::string> children;
  for (const auto& path : paths) {
    const std::string_view rest = std::string_view(path).substr(prefix.size());
    if (rest.empty()) continue;
    const auto slash = rest.find('/');
    children.emplace(slash == std::string_view::npos ? rest : rest.substr(0, slash + 1));
  }
  return {children.begin(), children.end()};
}

bool IsKeyPath(std::string_view path) { return !path.empty() && path.back() != '/'; }

Status CheckKeyPath(std::string_view path) {
  if (IsKeyPath(path)) return Status::Ok();
  return InvalidArgumentError("invalid path: a key path must be non-empty and not end in '/'");
}

Status UnsupportedPath() { return NotFoundError("unsupported path"); }
Status UnsupportedOperation() { return UnimplementedError("unsupported operation"); }

KvBackendBase::KvBackendBase(const logical::MountEntry& entry, keyring::Keyring& keyring,
                             store::Store& store, audit_log::EventLog& events, KvOptions options)
    : uuid_(entry.uuid),
      keyring_(keyring),
      store_(store),
      events_(events),
      options_(std::move(options)),
      sealer_(keyring, KvStorageKeyName(entry)),
      entry_(entry) {}

logical::MountEntry KvBackendBase::entry() const {
  std::lock_guard lock(mu_);
  return entry_;
}

void KvBackendBase::Remounted(const logical::MountEntry& entry) {
  std::lock_guard lock(mu_);
  entry_ = entry;
}

StatusOr<logical::Response> KvBackendBase::ListKeys(std::string_view table,
                                                    std::string_view list_path) {
  std::string prefix(list_path);
  if (!prefix.empty() && prefix.back() != '/') prefix += '/';
  // A range scan on the primary key: every path that starts with `prefix` sorts in
  // [prefix, prefix with its last byte incremented). Paths in a list are mount-relative.
  std::string upper = prefix;
  while (!upper.empty() && static_cast<unsigned char>(upper.back()) == 0xff) upper.pop_back();
  std::string sql = "SELECT path FROM " + std::string(table) + " WHERE mount = ? AND path >= ?";
  std::vector<store::Value> params{uuid_, prefix};
  if (!upper.empty()) {
    upper.back() = static_cast<char>(static_cast<unsigned char>(upper.back()) + 1);
    sql += " AND path < ?";
    params.emplace_back(upper);
  }
  sql += " ORDER BY path";
  LOCKBOX_ASSIGN_OR_RETURN(auto rows, store_.Query(sql, params));
  std::vector<std::string> paths;
  paths.reserve(rows.size());
  for (const auto& row : rows) {
    LOCKBOX_ASSIGN_OR_RETURN(std::string path, store::GetText(row, 0));
    if (path.starts_with(prefix)) paths.push_back(std::move(path));
  }
  std::vector<std::string> keys = DirectChildren(prefix, paths);
  if (keys.empty()) return NotFoundError("");
  logical::Response response;
  response.data = nlohmann::json{{"keys", std::move(keys)}};
  return response;
}

Status KvBackendBase::Purge() {
  audit::Event event;
  event.op = "kv.purge";
  event.path = entry().path;
  LOCKBOX_RETURN_IF_ERROR(store_.Commit([&](store::Transaction& tx) -> Status {
    for (const char* table : {"kv_versions", "kv_metadata", "kv_config", "kv_v1_entries"}) {
      LOCKBOX_RETURN_IF_ERROR(
          tx.Execute("DELETE FROM " + std::string(table) + " WHERE mount = ?", {uuid_}).status());
    }
    OnPurge(tx);
    return events_.Append(tx, event);
  }));
  // Crypto-shredding: from now on the key neither encrypts nor decrypts; the keyring destroys
  // its wrapped KEKs once the waiting period has passed (DestroyDueKeys).
  Status s = keyring_.ScheduleDeletion(sealer_.key_name(), options_.key_deletion_wait);
  if (s.code() == StatusCode::kNotFound || s.code() == StatusCode::kFailedPrecondition) {
    return Status::Ok();  // already destroyed or already scheduled: purged before
  }
  return s;
}

}  // namespace lockbox::secrets::internal
