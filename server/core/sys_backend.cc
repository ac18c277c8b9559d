#include "server/core/sys_backend.h"

#include <algorithm>
#include <array>

#include "crypto/encoding.h"
#include "server/core/instrumented_hsm.h"
#include "server/logical/fields.h"

namespace lockbox::core {
namespace {

using logical::Operation;
using logical::Response;

constexpr std::string_view kUnsupportedOperation = "unsupported operation";

bool IsWrite(Operation operation) {
  return operation == Operation::kUpdate || operation == Operation::kCreate;
}

Status Unsupported() { return UnimplementedError(std::string(kUnsupportedOperation)); }

Response Data(nlohmann::json data) {
  Response response;
  response.data = std::move(data);
  return response;
}

Response Raw(nlohmann::json body, int status = 0) {
  Response response;
  response.raw_json = std::move(body);
  response.status = status;
  return response;
}

bool Authenticated(const logical::Request& request) {
  return request.principal.root || !request.principal.accessor.empty();
}

}  // namespace

bool SysBackend::IsStatusEndpoint(std::string_view path) {
  static constexpr std::array<std::string_view, 5> kPaths = {
      "sys/init", "sys/seal-status", "sys/unseal", "sys/health", "sys/leader"};
  return std::find(kPaths.begin(), kPaths.end(), path) != kPaths.end();
}

bool SysBackend::IsPublicPath(std::string_view path) {
  return path == "sys/audit-log/public-key" || path == "sys/internal/ui/mounts" ||
         path.starts_with("sys/internal/ui/mounts/");
}

bool SysBackend::IsSudo(std::string_view relative_path) const { return relative_path == "seal"; }

StatusOr<Response> SysBackend::HandleRequest(const logical::Request& request) {
  const std::string_view path = request.relative_path;
  const Operation op = request.operation;
  const bool read = op == Operation::kRead;
  const auto only = [&](bool allowed, auto&& handler) -> StatusOr<Response> {
    if (!allowed) return Unsupported();
    return handler();
  };

  if (path == "init") return Init(request);
  if (path == "seal-status") return only(read, [&] { return SealStatus(); });
  if (path == "unseal") return only(IsWrite(op), [&] { return Unseal(request); });
  if (path == "health") return only(read, [&] { return Health(request); });
  if (path == "leader") return only(read, [&] { return Leader(); });
  if (path == "seal") return only(IsWrite(op), [&] { return Seal(request); });

  if (path == "mounts") return only(read, [&] { return ListMounts(MountKind::kSecret); });
  if (path == "auth") return only(read, [&] { return ListMounts(MountKind::kAuth); });
  for (const auto& [prefix, kind] : {std::pair{std::string_view("mounts/"), MountKind::kSecret},
                                     std::pair{std::string_view("auth/"), MountKind::kAuth}}) {
    if (!path.starts_with(prefix) || path.size() == prefix.size()) continue;
    std::string_view rest = path.substr(prefix.size());
    if (rest.ends_with("/tune")) {
      rest.remove_suffix(5);
      return Tune(kind, rest, request);
    }
    return MountPath(kind, rest, request);
  }
  if (path == "remount") return only(IsWrite(op), [&] { return Remount(request); });
  if (path.starts_with("remount/status/")) {
    return only(read, [&] { return RemountStatus(path.substr(15)); });
  }

  if (path == "policy" || path == "policy/") {
    return only(read || op == Operation::kList, [&] { return ListPolicies(true); });
  }
  if (path.starts_with("policy/")) return PolicyPath(path.substr(7), true, request);
  if (path == "policies/acl/")
    return only(op == Operation::kList, [&] { return ListPolicies(false); });
  if (path.starts_with("policies/acl/")) return PolicyPath(path.substr(13), false, request);
  if (path == "capabilities-self") {
    return only(IsWrite(op), [&] { return CapabilitiesSelf(request); });
  }
  if (path == "internal/ui/mounts") return only(read, [&] { return UiMounts(request); });
  if (path.starts_with("internal/ui/mounts/")) {
    return only(read, [&] { return UiMount(path.substr(19), request); });
  }

  if (path == "audit-log/public-key") return only(read, [&] { return AuditLogPublicKey(); });
  if (path == "audit-log/head") return only(read, [&] { return AuditLogHead(); });
  if (path == "metrics") return only(read, [&] { return Metrics(request); });
  return NotFoundError("unsupported path");
}

// --- Status endpoints ---

StatusOr<Response> SysBackend::Init(const logical::Request& request) {
  if (request.operation == Operation::kRead) {
    return Raw({{"initialized", core_.initialized()}});
  }
  if (!IsWrite(request.operation)) return Unsupported();
  LOCKBOX_ASSIGN_OR_RETURN(auto shares, logical::GetInt(request.data, "secret_shares"));
  LOCKBOX_ASSIGN_OR_RETURN(auto threshold, logical::GetInt(request.data, "secret_threshold"));
  LOCKBOX_ASSIGN_OR_RETURN(auto pgp_keys, logical::GetStringList(request.data, "pgp_keys"));
  LOCKBOX_ASSIGN_OR_RETURN(auto root_pgp, logical::GetString(request.data, "root_token_pgp_key"));
  if ((pgp_keys.has_value() && !pgp_keys->empty()) ||
      (root_pgp.has_value() && !root_pgp->empty())) {
    return InvalidArgumentError("PGP keys are not supported");
  }
  const auto to_int = [](const std::optional<std::int64_t>& v) {
    return static_cast<int>(std::clamp<std::int64_t>(v.value_or(0), -1, 1 << 16));
  };
  LOCKBOX_ASSIGN_OR_RETURN(
      Core::InitResult result,
      core_.Initialize(to_int(shares), to_int(threshold), std::nullopt, request.caller));
  nlohmann::json hex = nlohmann::json::array();
  nlohmann::json base64 = nlohmann::json::array();
  for (const std::string& key : result.keys) {
    hex.push_back(key);
    auto bytes = crypto::HexDecode(key);
    if (!bytes.ok()) return InternalError("unseal key encoding");
    base64.push_back(crypto::Base64Encode(*bytes));
    crypto::SecureZero(*bytes);
  }
  Response response = Raw({{"keys", std::move(hex)},
                           {"keys_base64", std::move(base64)},
                           {"root_token", result.root_token}});
  response.audited = true;  // Initialize() committed its event with the new state
  return response;
}

StatusOr<Response> SysBackend::SealStatus() const {
  const SealState::Snapshot seal = core_.seal().snapshot();
  const bool initialized = core_.initialized();
  nlohmann::json body = {
      {"type", "shamir"},
      {"initialized", initialized},
      {"sealed", !initialized || seal.sealed},
      {"t", initialized ? seal.threshold : 0},
      {"n", initialized ? seal.shares : 0},
      {"progress", initialized ? seal.progress : 0},
      {"nonce", ""},
      {"version", core_.options().version},
      {"build_date", ""},
      {"migration", false},
      {"recovery_seal", false},
      {"storage_type", "sqlite"},
  };
  if (initialized) {
    body["cluster_name"] = core_.options().cluster_name;
    body["cluster_id"] = core_.cluster_id();
  }
  return Raw(std::move(body));
}

StatusOr<Response> SysBackend::Unseal(const logical::Request& request) {
  if (!core_.initialized()) return InvalidArgumentError("Vault is not initialized");
  LOCKBOX_ASSIGN_OR_RETURN(auto reset, logical::GetBool(request.data, "reset"));
  if (reset.value_or(false)) {
    core_.seal().Reset();
    return SealStatus();
  }
  LOCKBOX_ASSIGN_OR_RETURN(auto key_text, logical::GetString(request.data, "key"));
  if (!key_text.has_value() || key_text->empty()) {
    return InvalidArgumentError(
        "'key' must be specified in request body as JSON, or 'reset' set to true");
  }
  LOCKBOX_ASSIGN_OR_RETURN(crypto::SecureBuffer key, DecodeUnsealKey(*key_text));
  LOCKBOX_RETURN_IF_ERROR(core_.seal().Submit(key.span()).status());
  return SealStatus();
}

StatusOr<Response> SysBackend::Health(const logical::Request& request) const {
  const auto code = [&](std::string_view field, int fallback) -> StatusOr<int> {
    LOCKBOX_ASSIGN_OR_RETURN(auto value, logical::GetInt(request.data, field));
    if (!value.has_value()) return fallback;
    if (*value < 200 || *value > 599) {
      return InvalidArgumentError("invalid value for \"" + std::string(field) +
                                  "\": must be an HTTP status code");
    }
    return static_cast<int>(*value);
  };
  LOCKBOX_ASSIGN_OR_RETURN(const int active, code("activecode", 200));
  LOCKBOX_ASSIGN_OR_RETURN(const int sealed_code, code("sealedcode", 503));
  LOCKBOX_ASSIGN_OR_RETURN(const int uninit, code("uninitcode", 501));
  for (std::string_view unused : {"standbycode", "drsecondarycode", "performancestandbycode"}) {
    LOCKBOX_RETURN_IF_ERROR(code(unused, 0).status());  // validated; never a standby
  }
  const bool initialized = core_.initialized();
  const bool sealed = !initialized || core_.seal().sealed();
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(core_.now().time_since_epoch());
  nlohmann::json body = {
      {"initialized", initialized},
      {"sealed", sealed},
      {"standby", false},
      {"performance_standby", false},
      {"replication_performance_mode", "disabled"},
      {"replication_dr_mode", "disabled"},
      {"server_time_utc", now.count()},
      {"version", core_.options().version},
  };
  if (initialized) {
    body["cluster_name"] = core_.options().cluster_name;
    body["cluster_id"] = core_.cluster_id();
  }
  return Raw(std::move(body), !initialized ? uninit : sealed ? sealed_code : active);
}

StatusOr<Response> SysBackend::Leader() const {
  return Raw({{"ha_enabled", false},
              {"is_self", false},
              {"leader_address", ""},
              {"leader_cluster_address", ""},
              {"performance_standby", false},
              {"performance_standby_last_remote_wal", 0}});
}

StatusOr<Response> SysBackend::Seal(const logical::Request& request) {
  (void)request;
  core_.seal().Seal();
  return Response{};
}

// --- Policies ---

StatusOr<Response> SysBackend::ListPolicies(bool legacy) const {
  std::vector<std::string> names = core_.policies().Names();
  names.push_back("root");
  nlohmann::json data = {{"keys", names}};
  if (legacy) data["policies"] = names;
  return Data(std::move(data));
}

StatusOr<Response> SysBackend::PolicyPath(std::string_view raw_name, bool legacy,
                                          const logical::Request& request) {
  std::string name(raw_name);
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (name.empty()) return InvalidArgumentError("policy name must be specified");
  const std::string_view text_field = legacy ? "rules" : "policy";

  switch (request.operation) {
    case Operation::kRead: {
      if (name == "root") return Data({{"name", "root"}, {text_field, ""}});
      auto stored = core_.policies().Get(name);
      if (stored == nullptr) return NotFoundError("");
      return Data({{"name", stored->name}, {text_field, stored->raw}});
    }
    case Operation::kCreate:
    case Operation::kUpdate: {
      Response response;
      if (name != raw_name) response.warnings.push_back("policy name was converted to " + name);
      LOCKBOX_ASSIGN_OR_RETURN(auto text, logical::GetString(request.data, "policy"));
      if (legacy && (!text.has_value() || text->empty())) {
        LOCKBOX_ASSIGN_OR_RETURN(text, logical::GetString(request.data, "rules"));
        if (text.has_value() && !text->empty()) {
          response.warnings.push_back("'rules' is deprecated, please use 'policy' instead");
        }
      }
      if (!text.has_value() || text->empty()) {
        return InvalidArgumentError("'policy' parameter not supplied or empty");
      }
      if (name == "root") return InvalidArgumentError("cannot update \"root\" policy");
      LOCKBOX_ASSIGN_OR_RETURN(policy::Policy parsed, policy::ParsePolicy(name, *text));
      const int status = response.warnings.empty() ? 204 : 200;
      LOCKBOX_RETURN_IF_ERROR(core_.policies().Put(std::move(parsed), [&](store::Transaction& tx) {
        audit::Event event = core_.EventFor(request, "sys.policy.write", status);
        event.details["name"] = name;
        return core_.events().Append(tx, std::move(event));
      }));
      response.audited = true;
      return response;
    }
    case Operation::kDelete: {
      if (name == "root" || name == "default") {
        return InvalidArgumentError("cannot delete \"" + name + "\" policy");
      }
      LOCKBOX_RETURN_IF_ERROR(core_.policies().Delete(name, [&](store::Transaction& tx) {
        audit::Event event = core_.EventFor(request, "sys.policy.delete", 204);
        event.details["name"] = name;
        return core_.events().Append(tx, std::move(event));
      }));
      Response response;
      response.audited = true;
      return response;
    }
    default:
      return Unsupported();
  }
}

StatusOr<Response> SysBackend::CapabilitiesSelf(const logical::Request& request) const {
  LOCKBOX_ASSIGN_OR_RETURN(auto paths, logical::GetStringList(request.data, "paths"));
  if (!paths.has_value() || paths->empty()) {
    LOCKBOX_ASSIGN_OR_RETURN(auto path, logical::GetString(request.data, "path"));
    if (!path.has_value() || path->empty()) {
      return InvalidArgumentError("'paths' must be specified");
    }
    paths = std::vector<std::string>{*path};
  }
  const policy::Acl acl = core_.AclFor(request.principal);
  nlohmann::json data = nlohmann::json::object();
  nlohmann::json last;
  for (const std::string& path : *paths) {
    std::string_view checked = path;
    while (checked.starts_with('/')) checked.remove_prefix(1);
    std::vector<std::string> names = request.principal.root
                                         ? std::vector<std::string>{"root"}
                                         : policy::CapabilityNames(acl.Capabilities(checked));
    std::sort(names.begin(), names.end());  // Vault answers in sorted order
    last = names;
    data[path] = last;
  }
  if (paths->size() == 1) data["capabilities"] = last;
  return Data(std::move(data));
}

StatusOr<Response> SysBackend::UiMounts(const logical::Request& request) const {
  nlohmann::json secret = nlohmann::json::object();
  nlohmann::json auth = nlohmann::json::object();
  if (Authenticated(request)) {
    const policy::Acl acl = core_.AclFor(request.principal);
    for (const auto& mount : core_.mounts().List()) {
      const MountRecord& record = mount->record;
      if (!request.principal.root && !acl.AnyCapabilityUnder(record.entry.path)) continue;
      (record.kind == MountKind::kAuth ? auth : secret)[DisplayPath(record)] =
          MountEntryJson(record);
    }
  }
  return Data({{"secret", std::move(secret)}, {"auth", std::move(auth)}});
}

StatusOr<Response> SysBackend::UiMount(std::string_view raw_path,
                                       const logical::Request& request) const {
  std::string path(raw_path);
  if (!path.ends_with('/')) path.push_back('/');
  const auto mount = core_.mounts().Route(path);
  const bool allowed =
      mount != nullptr && Authenticated(request) &&
      (request.principal.root ||
       core_.AclFor(request.principal).AnyCapabilityUnder(mount->record.entry.path));
  if (!allowed) {
    return PermissionDeniedError(
        "preflight capability check returned 403, please ensure client's policies grant access "
        "to path \"" +
        path + "\"");
  }
  nlohmann::json data = MountEntryJson(mount->record);
  data["path"] = DisplayPath(mount->record);
  return Data(std::move(data));
}

// --- Audit log and metrics ---

StatusOr<Response> SysBackend::AuditLogPublicKey() const {
  audit_log::AuditLog* audit = core_.services().audit;
  if (audit == nullptr) return UnavailableError("audit log unavailable");
  return Raw(audit->PublicJwks());
}

StatusOr<Response> SysBackend::AuditLogHead() const {
  audit_log::AuditLog* audit = core_.services().audit;
  if (audit == nullptr) return UnavailableError("audit log unavailable");
  const audit_log::Head head = audit->head();
  return Data({{"log_id", head.log_id},
               {"seq", head.seq},
               {"hash", crypto::HexEncode(head.hash)},
               {"checkpoint", head.checkpoint.has_value() ? nlohmann::json(*head.checkpoint)
                                                          : nlohmann::json(nullptr)}});
}

StatusOr<Response> SysBackend::Metrics(const logical::Request& request) const {
  LOCKBOX_ASSIGN_OR_RETURN(auto format, logical::GetString(request.data, "format"));
  if (format.has_value() && !format->empty() && *format != "prometheus") {
    return InvalidArgumentError("unsupported metrics format \"" + *format + "\"");
  }
  std::string text;
  core_.metrics().AppendPrometheus(text);
  if (const auto* hsm = dynamic_cast<const InstrumentedHsm*>(core_.services().hsm)) {
    hsm->AppendPrometheus(text);
  }
  AppendStoreMetrics(core_.store().stats(), text);
  if (core_.services().append_metrics) core_.services().append_metrics(text);
  Response response;
  response.raw_text = std::move(text);
  response.raw_content_type = std::string(kPrometheusContentType);
  return response;
}

}  // namespace lockbox::core
