#include "server/auth/approle_backend.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <utility>

#include "crypto/encoding.h"
#include "crypto/hash.h"
#include "crypto/random.h"
#include "server/auth/backend_util.h"
#include "server/auth/cidr.h"
#include "server/logical/fields.h"

namespace lockbox::auth {
namespace {

using logical::Operation;
using logical::Request;
using logical::Response;
using nlohmann::json;
using std::chrono::seconds;

constexpr std::size_t kSecretIdKeySize = 32;
constexpr std::string_view kInvalidCredentials = "invalid role or secret ID";
// What Vault prints for a secret-id that never expires (Go's zero time.Time).
constexpr std::string_view kZeroTime = "0001-01-01T00:00:00Z";

// ---------------------------------------------------------------------------------------------
// Roles

struct Role {
  std::string role_id;
  bool bind_secret_id = true;
  std::vector<std::string> secret_id_bound_cidrs;
  std::int64_t secret_id_num_uses = 0;
  seconds secret_id_ttl{0};
  bool local_secret_ids = false;
  seconds token_ttl{0};
  seconds token_max_ttl{0};
  seconds token_explicit_max_ttl{0};
  seconds token_period{0};
  std::vector<std::string> token_policies;
  std::vector<std::string> token_bound_cidrs;
  bool token_no_default_policy = false;
  std::int64_t token_num_uses = 0;
  std::string token_type = "default";
  // Set through the legacy names: GET also shows "policies" / "period" (reference §4).
  bool legacy_policies = false;
  bool legacy_period = false;
};

// The role as GET role/:name shows it; also its stored form (without role_id).
json RoleToJson(const Role& role) {
  json out = {{"bind_secret_id", role.bind_secret_id},
              {"local_secret_ids", role.local_secret_ids},
              {"secret_id_bound_cidrs", role.secret_id_bound_cidrs},
              {"secret_id_num_uses", role.secret_id_num_uses},
              {"secret_id_ttl", role.secret_id_ttl.count()},
              {"token_bound_cidrs", role.token_bound_cidrs},
              {"token_explicit_max_ttl", role.token_explicit_max_ttl.count()},
              {"token_max_ttl", role.token_max_ttl.count()},
              {"token_no_default_policy", role.token_no_default_policy},
              {"token_num_uses", role.token_num_uses},
              {"token_period", role.token_period.count()},
              {"token_policies", role.token_policies},
              {"token_ttl", role.token_ttl.count()},
              {"token_type", role.token_type}};
  if (role.legacy_policies) out["policies"] = role.token_policies;
  if (role.legacy_period) out["period"] = role.token_period.count();
  return out;
}

StatusOr<Role> RoleFromStored(std::string role_id, const std::string& text) {
  const json stored = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!stored.is_object()) return DataLossError("corrupt approle role entry");
  try {
    Role role;
    role.role_id = std::move(role_id);
    role.bind_secret_id = stored.at("bind_secret_id").get<bool>();
    role.local_secret_ids = stored.at("local_secret_ids").get<bool>();
    role.secret_id_bound_cidrs = stored.at("secret_id_bound_cidrs").get<std::vector<std::string>>();
    role.secret_id_num_uses = stored.at("secret_id_num_uses").get<std::int64_t>();
    role.secret_id_ttl = seconds(stored.at("secret_id_ttl").get<std::int64_t>());
    role.token_bound_cidrs = stored.at("token_bound_cidrs").get<std::vector<std::string>>();
    role.token_explicit_max_ttl = seconds(stored.at("token_explicit_max_ttl").get<std::int64_t>());
    role.token_max_ttl = seconds(stored.at("token_max_ttl").get<std::int64_t>());
    role.token_no_default_policy = stored.at("token_no_default_policy").get<bool>();
    role.token_num_uses = stored.at("token_num_uses").get<std::int64_t>();
    role.token_period = seconds(stored.at("token_period").get<std::int64_t>());
    role.token_policies = stored.at("token_policies").get<std::vector<std::string>>();
    role.token_ttl = seconds(stored.at("token_ttl").get<std::int64_t>());
    role.token_type = stored.at("token_type").get<std::string>();
    role.legacy_policies = stored.contains("policies");
    role.legacy_period = stored.contains("period");
    return role;
  } catch (const json::exception&) {
    return DataLossError("corrupt approle role entry");
  }
}

// Lower-cased, trimmed, de-duplicated and sorted, as Vault sanitises policy lists.
std::vector<std::string> NormalizePolicies(const std::vector<std::string>& policies) {
  std::set<std::string> out;
  for (std::string policy : policies) {
    std::transform(policy.begin(), policy.end(), policy.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    out.insert(std::move(policy));
  }
  return {out.begin(), out.end()};
}

// The smaller of two durations where 0 means "unset"; 0 if both are unset.
seconds SmallestPositive(seconds a, seconds b) {
  if (a.count() == 0) return b;
  if (b.count() == 0) return a;
  return std::min(a, b);
}

Status NotNegative(std::int64_t value, std::string_view field) {
  if (value < 0) return InvalidArgumentError(std::string(field) + " cannot be negative");
  return Status::Ok();
}

// Canonical text of each block (also validates them).
StatusOr<std::vector<std::string>> CanonicalCidrs(const std::vector<std::string>& blocks,
                                                  std::string_view field) {
  LOCKBOX_ASSIGN_OR_RETURN(std::vector<Cidr> parsed, ParseCidrList(blocks, field));
  std::vector<std::string> out;
  for (const Cidr& cidr : parsed) out.push_back(cidr.ToString());
  return out;
}

// Overlays the request's role fields on `role` (a stored role, or defaults when `creating`) and
// checks the result. Touches nothing but `role`.
Status ApplyRoleFields(const json& data, bool creating, Role& role) {
  using logical::GetBool;
  using logical::GetDuration;
  using logical::GetInt;
  using logical::GetString;
  using logical::GetStringList;

  LOCKBOX_ASSIGN_OR_RETURN(auto bind_secret_id, GetBool(data, "bind_secret_id"));
  if (bind_secret_id) role.bind_secret_id = *bind_secret_id;
  LOCKBOX_ASSIGN_OR_RETURN(auto secret_id_cidrs, GetStringList(data, "secret_id_bound_cidrs"));
  if (secret_id_cidrs) {
    LOCKBOX_ASSIGN_OR_RETURN(role.secret_id_bound_cidrs,
                             CanonicalCidrs(*secret_id_cidrs, "secret_id_bound_cidrs"));
  }
  LOCKBOX_ASSIGN_OR_RETURN(auto secret_id_num_uses, GetInt(data, "secret_id_num_uses"));
  if (secret_id_num_uses) {
    LOCKBOX_RETURN_IF_ERROR(NotNegative(*secret_id_num_uses, "secret_id_num_uses"));
    role.secret_id_num_uses = *secret_id_num_uses;
  }
  LOCKBOX_ASSIGN_OR_RETURN(auto secret_id_ttl, GetDuration(data, "secret_id_ttl"));
  if (secret_id_ttl) role.secret_id_ttl = *secret_id_ttl;
  // Vault only honours local_secret_ids when the role is created.
  LOCKBOX_ASSIGN_OR_RETURN(auto local_secret_ids, GetBool(data, "local_secret_ids"));
  if (local_secret_ids && creating) role.local_secret_ids = *local_secret_ids;

  struct DurationField {
    std::string_view name;
    seconds* target;
  };
  for (const DurationField& field :
       {DurationField{"token_ttl", &role.token_ttl},
        DurationField{"token_max_ttl", &role.token_max_ttl},
        DurationField{"token_explicit_max_ttl", &role.token_explicit_max_ttl}}) {
    LOCKBOX_ASSIGN_OR_RETURN(auto value, GetDuration(data, field.name));
    if (value) *field.target = *value;
  }
  LOCKBOX_ASSIGN_OR_RETURN(auto token_period, GetDuration(data, "token_period"));
  LOCKBOX_ASSIGN_OR_RETURN(auto period, GetDuration(data, "period"));
  if (token_period) {
    role.token_period = *token_period;
    role.legacy_period = false;
  } else if (period) {
    role.token_period = *period;
    role.legacy_period = true;
  }
  LOCKBOX_ASSIGN_OR_RETURN(auto token_policies, GetStringList(data, "token_policies"));
  LOCKBOX_ASSIGN_OR_RETURN(auto policies, GetStringList(data, "policies"));
  if (token_policies) {
    role.token_policies = NormalizePolicies(*token_policies);
    role.legacy_policies = false;
  } else if (policies) {
    role.token_policies = NormalizePolicies(*policies);
    role.legacy_policies = true;
  }
  LOCKBOX_ASSIGN_OR_RETURN(auto token_cidrs, GetStringList(data, "token_bound_cidrs"));
  if (token_cidrs) {
    LOCKBOX_ASSIGN_OR_RETURN(role.token_bound_cidrs,
                             CanonicalCidrs(*token_cidrs, "token_bound_cidrs"));
  }
  LOCKBOX_ASSIGN_OR_RETURN(auto no_default, GetBool(data, "token_no_default_policy"));
  if (no_default) role.token_no_default_policy = *no_default;
  LOCKBOX_ASSIGN_OR_RETURN(auto token_num_uses, GetInt(data, "token_num_uses"));
  if (token_num_uses) {
    LOCKBOX_RETURN_IF_ERROR(NotNegative(*token_num_uses, "token_num_uses"));
    role.token_num_uses = *token_num_uses;
  }
  LOCKBOX_ASSIGN_OR_RETURN(auto token_type, GetString(data, "token_type"));
  if (token_type) {
    if (*token_type == "batch" || *token_type == "default-batch") {
      return InvalidArgumentError("token_type \"" + *token_type +
                                  "\" is not supported: only service tokens are issued");
    }
    if (*token_type != "default" && *token_type != "service" && *token_type != "default-service") {
      return InvalidArgumentError("invalid value for \"token_type\": \"" + *token_type + "\"");
    }
    role.token_type = *token_type;
  }

  if (!role.bind_secret_id && role.secret_id_bound_cidrs.empty() &&
      role.token_bound_cidrs.empty()) {
    return InvalidArgumentError(
        "at least one constraint should be enabled on the role: bind_secret_id, "
        "secret_id_bound_cidrs or token_bound_cidrs");
  }
  if (role.token_max_ttl.count() > 0 && role.token_ttl > role.token_max_ttl) {
    return InvalidArgumentError("token_ttl cannot be greater than token_max_ttl");
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Secret-ids

struct SecretId {
  std::string accessor;
  std::int64_t num_uses = 0;  // remaining; 0: unlimited
  seconds ttl{0};
  Clock::time_point creation_time;
  std::optional<Clock::time_point> expiration_time;
  Clock::time_point last_updated_time;
  std::map<std::string, std::string> metadata;
  std::vector<std::string> cidr_list;
  std::vector<std::string> token_bound_cidrs;
};

constexpr std::string_view kSecretIdColumns =
    "accessor, num_uses, ttl, creation_time, expiration_time, last_updated_time, metadata, "
    "cidr_list, token_bound_cidrs, secret_id_hmac";

// A row of kSecretIdColumns; the stored HMAC goes to `hmac` unless it is null.
StatusOr<SecretId> SecretIdFromRow(const store::Row& row, store::Blob* hmac) {
  SecretId entry;
  LOCKBOX_ASSIGN_OR_RETURN(entry.accessor, store::GetText(row, 0));
  LOCKBOX_ASSIGN_OR_RETURN(entry.num_uses, store::GetInt(row, 1));
  LOCKBOX_ASSIGN_OR_RETURN(std::int64_t ttl, store::GetInt(row, 2));
  entry.ttl = seconds(ttl);
  LOCKBOX_ASSIGN_OR_RETURN(std::int64_t created, store::GetInt(row, 3));
  entry.creation_time = FromUnixNanos(created);
  LOCKBOX_ASSIGN_OR_RETURN(std::int64_t expires, store::GetInt(row, 4));
  if (expires != 0) entry.expiration_time = FromUnixNanos(expires);
  LOCKBOX_ASSIGN_OR_RETURN(std::int64_t updated, store::GetInt(row, 5));
  entry.last_updated_time = FromUnixNanos(updated);
  LOCKBOX_ASSIGN_OR_RETURN(std::string metadata, store::GetText(row, 6));
  LOCKBOX_ASSIGN_OR_RETURN(std::string cidr_list, store::GetText(row, 7));
  LOCKBOX_ASSIGN_OR_RETURN(std::string token_cidrs, store::GetText(row, 8));
  if (hmac != nullptr) {
    LOCKBOX_ASSIGN_OR_RETURN(*hmac, store::GetBlob(row, 9));
  }
  try {
    entry.metadata = json::parse(metadata).get<std::map<std::string, std::string>>();
    entry.cidr_list = json::parse(cidr_list).get<std::vector<std::string>>();
    entry.token_bound_cidrs = json::parse(token_cidrs).get<std::vector<std::string>>();
  } catch (const json::exception&) {
    return DataLossError("corrupt approle secret-id entry");
  }
  return entry;
}

// The lookup shape of reference §4.
json SecretIdToJson(const SecretId& entry) {
  return {
      {"cidr_list", entry.cidr_list},
      {"creation_time", logical::FormatRfc3339Nano(entry.creation_time)},
      {"expiration_time", entry.expiration_time ? logical::FormatRfc3339Nano(*entry.expiration_time)
                                                : std::string(kZeroTime)},
      {"last_updated_time", logical::FormatRfc3339Nano(entry.last_updated_time)},
      {"metadata", entry.metadata},
      {"secret_id_accessor", entry.accessor},
      {"secret_id_num_uses", entry.num_uses},
      {"secret_id_ttl", entry.ttl.count()},
      {"token_bound_cidrs", entry.token_bound_cidrs}};
}

// The fields of secret-id / custom-secret-id, parsed before the role is known.
struct SecretIdRequest {
  std::map<std::string, std::string> metadata;
  std::vector<Cidr> cidr_list;
  std::vector<Cidr> token_bound_cidrs;
  std::optional<std::int64_t> num_uses;
  std::optional<seconds> ttl;
};

// `metadata` is a JSON-encoded string (what hvac sends); a JSON object is accepted as well.
StatusOr<std::map<std::string, std::string>> ParseMetadata(const json& data) {
  const auto it = data.find("metadata");
  if (it == data.end() || it->is_null()) return std::map<std::string, std::string>{};
  json object = *it;
  if (it->is_string()) {
    if (it->get_ref<const std::string&>().empty()) return std::map<std::string, std::string>{};
    object = json::parse(it->get_ref<const std::string&>(), nullptr, /*allow_exceptions=*/false);
  }
  const bool strings_only =
      object.is_object() && std::all_of(object.begin(), object.end(),
                                        [](const json& value) { return value.is_string(); });
  if (!strings_only) {
    return InvalidArgumentError(
        "invalid value for \"metadata\": expected a JSON object with string values");
  }
  return object.get<std::map<std::string, std::string>>();
}

StatusOr<SecretIdRequest> ParseSecretIdRequest(const json& data) {
  SecretIdRequest out;
  LOCKBOX_ASSIGN_OR_RETURN(out.metadata, ParseMetadata(data));
  LOCKBOX_ASSIGN_OR_RETURN(auto cidr_list, logical::GetStringList(data, "cidr_list"));
  if (cidr_list) {
    LOCKBOX_ASSIGN_OR_RETURN(out.cidr_list, ParseCidrList(*cidr_list, "cidr_list"));
  }
  LOCKBOX_ASSIGN_OR_RETURN(auto token_cidrs, logical::GetStringList(data, "token_bound_cidrs"));
  if (token_cidrs) {
    LOCKBOX_ASSIGN_OR_RETURN(out.token_bound_cidrs,
                             ParseCidrList(*token_cidrs, "token_bound_cidrs"));
  }
  LOCKBOX_ASSIGN_OR_RETURN(out.num_uses, logical::GetInt(data, "num_uses"));
  if (out.num_uses) LOCKBOX_RETURN_IF_ERROR(NotNegative(*out.num_uses, "num_uses"));
  LOCKBOX_ASSIGN_OR_RETURN(out.ttl, logical::GetDuration(data, "ttl"));
  return out;
}

std::vector<std::string> CidrTexts(const std::vector<Cidr>& blocks) {
  std::vector<std::string> out;
  for (const Cidr& block : blocks) out.push_back(block.ToString());
  return out;
}

// A secret-id's limits come from the role; a request may tighten them, never loosen them.
StatusOr<SecretId> NewSecretIdEntry(const SecretIdRequest& request, const Role& role,
                                    Clock::time_point now) {
  SecretId entry;
  entry.accessor = logical::NewUuid();
  entry.num_uses = role.secret_id_num_uses;
  if (request.num_uses) {
    if (role.secret_id_num_uses > 0 &&
        (*request.num_uses == 0 || *request.num_uses > role.secret_id_num_uses)) {
      return InvalidArgumentError("num_uses cannot be higher than the role's secret_id_num_uses");
    }
    entry.num_uses = *request.num_uses;
  }
  entry.ttl = role.secret_id_ttl;
  if (request.ttl) {
    if (role.secret_id_ttl.count() > 0 &&
        (request.ttl->count() == 0 || *request.ttl > role.secret_id_ttl)) {
      return InvalidArgumentError("ttl cannot be longer than the role's secret_id_ttl");
    }
    entry.ttl = *request.ttl;
  }
  LOCKBOX_ASSIGN_OR_RETURN(std::vector<Cidr> role_secret_cidrs,
                           ParseCidrList(role.secret_id_bound_cidrs, "secret_id_bound_cidrs"));
  if (!role_secret_cidrs.empty() && !CidrsWithin(request.cidr_list, role_secret_cidrs)) {
    return InvalidArgumentError("cidr_list must be a subset of the role's secret_id_bound_cidrs");
  }
  LOCKBOX_ASSIGN_OR_RETURN(std::vector<Cidr> role_token_cidrs,
                           ParseCidrList(role.token_bound_cidrs, "token_bound_cidrs"));
  if (!role_token_cidrs.empty() && !CidrsWithin(request.token_bound_cidrs, role_token_cidrs)) {
    return InvalidArgumentError(
        "token_bound_cidrs must be a subset of the role's token_bound_cidrs");
  }
  entry.creation_time = now;
  entry.last_updated_time = now;
  if (entry.ttl.count() > 0) entry.expiration_time = now + entry.ttl;
  entry.metadata = request.metadata;
  entry.cidr_list = CidrTexts(request.cidr_list);
  entry.token_bound_cidrs = CidrTexts(request.token_bound_cidrs);
  return entry;
}

store::Blob SecretIdHmac(const store::Blob& key, std::string_view secret_id) {
  return crypto::Hmac(crypto::HashAlgorithm::kSha256, key, crypto::AsBytes(secret_id));
}

// ---------------------------------------------------------------------------------------------
// Paths

enum class RouteKind {
  kLogin,
  kRoleList,
  kRole,
  kRoleId,
  kSecretId,
  kCustomSecretId,
  kSecretIdLookup,
  kSecretIdDestroy,
  kAccessorLookup,
  kAccessorDestroy,
};

struct Route {
  RouteKind kind;
  std::string role_name;  // lower-cased
};

StatusOr<Route> ParseRoute(std::string_view path) {
  if (path.ends_with('/')) path.remove_suffix(1);
  if (path == "login") return Route{RouteKind::kLogin, ""};
  if (path == "role") return Route{RouteKind::kRoleList, ""};
  if (!path.starts_with("role/")) return UnsupportedPath();
  path.remove_prefix(5);
  const auto slash = path.find('/');
  std::string name(path.substr(0, slash));
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  LOCKBOX_RETURN_IF_ERROR(ValidateObjectName(name, "role"));
  const std::string_view rest = slash == std::string_view::npos ? "" : path.substr(slash + 1);
  static const std::map<std::string_view, RouteKind> kSubPaths = {
      {"", RouteKind::kRole},
      {"role-id", RouteKind::kRoleId},
      {"secret-id", RouteKind::kSecretId},
      {"custom-secret-id", RouteKind::kCustomSecretId},
      {"secret-id/lookup", RouteKind::kSecretIdLookup},
      {"secret-id/destroy", RouteKind::kSecretIdDestroy},
      {"secret-id-accessor/lookup", RouteKind::kAccessorLookup},
      {"secret-id-accessor/destroy", RouteKind::kAccessorDestroy},
  };
  const auto it = kSubPaths.find(rest);
  if (it == kSubPaths.end()) return UnsupportedPath();
  return Route{it->second, std::move(name)};
}

Response DataResponse(json data) {
  Response response;
  response.data = std::move(data);
  return response;
}

Response ListResponse(std::vector<std::string> keys) {
  return DataResponse(json{{"keys", std::move(keys)}});
}

Status RoleMissing(std::string_view name) {
  return InvalidArgumentError("role \"" + std::string(name) + "\" does not exist");
}

// ---------------------------------------------------------------------------------------------

class AppRoleBackend final : public logical::Backend {
 public:
  AppRoleBackend(const logical::MountEntry& mount, TokenStore& tokens, store::Store& store,
                 audit_log::EventLog& events, AppRoleOptions options)
      : uuid_(mount.uuid),
        tokens_(tokens),
        store_(store),
        events_(events),
        options_(std::move(options)),
        mount_(mount) {}

  StatusOr<Response> HandleRequest(const Request& request) override {
    LOCKBOX_ASSIGN_OR_RETURN(Route route, ParseRoute(request.relative_path));
    const Operation op = request.operation;
    switch (route.kind) {
      case RouteKind::kLogin:
        if (IsWrite(op)) return Login(request);
        break;
      case RouteKind::kRoleList:
        if (op == Operation::kList) return ListRoles();
        break;
      case RouteKind::kRole:
        if (op == Operation::kRead) return ReadRole(route.role_name);
        if (IsWrite(op)) return WriteRole(request, route.role_name);
        if (op == Operation::kDelete) return DeleteRole(request, route.role_name);
        break;
      case RouteKind::kRoleId:
        if (op == Operation::kRead) return ReadRoleId(route.role_name);
        if (IsWrite(op)) return WriteRoleId(request, route.role_name);
        break;
      case RouteKind::kSecretId:
        if (op == Operation::kList) return ListSecretIds(route.role_name);
        if (IsWrite(op)) return GenerateSecretId(request, route.role_name, std::nullopt);
        break;
      case RouteKind::kCustomSecretId:
        if (IsWrite(op)) {
          LOCKBOX_ASSIGN_OR_RETURN(auto secret_id, logical::GetString(request.data, "secret_id"));
          if (!secret_id || secret_id->empty()) return InvalidArgumentError("missing secret_id");
          return GenerateSecretId(request, route.role_name, std::move(*secret_id));
        }
        break;
      case RouteKind::kSecretIdLookup:
        if (IsWrite(op)) return LookupSecretId(request, route.role_name, /*by_accessor=*/false);
        break;
      case RouteKind::kSecretIdDestroy:
        if (IsWrite(op) || op == Operation::kDelete) {
          return DestroySecretId(request, route.role_name, /*by_accessor=*/false);
        }
        break;
      case RouteKind::kAccessorLookup:
        if (IsWrite(op)) return LookupSecretId(request, route.role_name, /*by_accessor=*/true);
        break;
      case RouteKind::kAccessorDestroy:
        if (IsWrite(op) || op == Operation::kDelete) {
          return DestroySecretId(request, route.role_name, /*by_accessor=*/true);
        }
        break;
    }
    return UnsupportedOperation();
  }

  StatusOr<std::optional<bool>> Exists(const Request& request) override {
    auto route = ParseRoute(request.relative_path);
    if (!route.ok() || route->kind != RouteKind::kRole) return std::optional<bool>{};
    LOCKBOX_ASSIGN_OR_RETURN(
        auto rows, store_.Query("SELECT 1 FROM approle_roles WHERE mount_uuid = ? AND name = ?",
                                {uuid_, route->role_name}));
    return std::optional<bool>(!rows.empty());
  }

  bool IsUnauthenticated(std::string_view relative_path) const override {
    return relative_path == "login";
  }

  Status Purge() override {
    return store_.Commit([&](store::Transaction& tx) -> Status {
      LOCKBOX_ASSIGN_OR_RETURN(
          std::int64_t secret_ids,
          tx.Execute("DELETE FROM approle_secret_ids WHERE mount_uuid = ?", {uuid_}));
      LOCKBOX_ASSIGN_OR_RETURN(
          std::int64_t roles,
          tx.Execute("DELETE FROM approle_roles WHERE mount_uuid = ?", {uuid_}));
      audit::Event event;
      event.op = "approle.purge";
      event.actor = "system";
      event.path = MountPath();
      event.details = {{"mount_uuid", uuid_}, {"roles", roles}, {"secret_ids", secret_ids}};
      return events_.Append(tx, std::move(event));
    });
  }

  void Remounted(const logical::MountEntry& entry) override {
    std::lock_guard lock(mount_mu_);
    mount_ = entry;
  }

 private:
  std::string MountPath() const {
    std::lock_guard lock(mount_mu_);
    return mount_.path;
  }

  // Reads the role `name` inside `tx`; nullopt if it does not exist. `hmac_key` gets the role's
  // secret-id HMAC key when not null.
  StatusOr<std::optional<Role>> LoadRole(store::Transaction& tx, std::string_view name,
                                         store::Blob* hmac_key) const {
    LOCKBOX_ASSIGN_OR_RETURN(
        auto rows, tx.Query("SELECT role_id, config, secret_id_hmac_key FROM approle_roles "
                            "WHERE mount_uuid = ? AND name = ?",
                            {uuid_, std::string(name)}));
    if (rows.empty()) return std::optional<Role>{};
    LOCKBOX_ASSIGN_OR_RETURN(std::string role_id, store::GetText(rows[0], 0));
    LOCKBOX_ASSIGN_OR_RETURN(std::string config, store::GetText(rows[0], 1));
    if (hmac_key != nullptr) {
      LOCKBOX_ASSIGN_OR_RETURN(*hmac_key, store::GetBlob(rows[0], 2));
    }
    LOCKBOX_ASSIGN_OR_RETURN(Role role, RoleFromStored(std::move(role_id), config));
    return std::optional<Role>(std::move(role));
  }

  // Refuses a role_id another role of this mount already has.
  Status CheckRoleIdFree(store::Transaction& tx, std::string_view role_id,
                         std::string_view name) const {
    LOCKBOX_ASSIGN_OR_RETURN(auto rows,
                             tx.Query("SELECT 1 FROM approle_roles WHERE mount_uuid = ? AND "
                                      "role_id = ? AND name <> ?",
                                      {uuid_, std::string(role_id), std::string(name)}));
    if (!rows.empty()) return InvalidArgumentError("role_id is already in use by another role");
    return Status::Ok();
  }

  // --- roles ---

  StatusOr<Response> ListRoles() {
    LOCKBOX_ASSIGN_OR_RETURN(
        auto rows,
        store_.Query("SELECT name FROM approle_roles WHERE mount_uuid = ? ORDER BY name", {uuid_}));
    if (rows.empty()) return NotFoundError("");
    std::vector<std::string> names;
    for (const auto& row : rows) {
      LOCKBOX_ASSIGN_OR_RETURN(std::string name, store::GetText(row, 0));
      names.push_back(std::move(name));
    }
    return ListResponse(std::move(names));
  }

  StatusOr<Response> ReadRole(const std::string& name) {
    std::optional<Role> role;
    LOCKBOX_RETURN_IF_ERROR(store_.Read([&](store::Transaction& tx) -> Status {
      LOCKBOX_ASSIGN_OR_RETURN(role, LoadRole(tx, name, nullptr));
      return Status::Ok();
    }));
    if (!role) return NotFoundError("");
    return DataResponse(RoleToJson(*role));
  }

  StatusOr<Response> WriteRole(const Request& request, const std::string& name) {
    LOCKBOX_ASSIGN_OR_RETURN(auto requested_role_id, logical::GetString(request.data, "role_id"));
    if (requested_role_id && requested_role_id->empty()) {
      return InvalidArgumentError("invalid value for \"role_id\": must not be empty");
    }
    LOCKBOX_RETURN_IF_ERROR(store_.Commit([&](store::Transaction& tx) -> Status {
      LOCKBOX_ASSIGN_OR_RETURN(std::optional<Role> existing, LoadRole(tx, name, nullptr));
      const bool creating = !existing;
      Role role = creating ? Role{} : std::move(*existing);
      LOCKBOX_RETURN_IF_ERROR(ApplyRoleFields(request.data, creating, role));
      if (requested_role_id) {
        role.role_id = *requested_role_id;
      } else if (creating) {
        role.role_id = logical::NewUuid();
      }
      LOCKBOX_RETURN_IF_ERROR(CheckRoleIdFree(tx, role.role_id, name));
      const std::string config = RoleToJson(role).dump();
      if (creating) {
        LOCKBOX_RETURN_IF_ERROR(
            tx.Execute("INSERT INTO approle_roles (mount_uuid, name, role_id, secret_id_hmac_key, "
                       "config) VALUES (?, ?, ?, ?, ?)",
                       {uuid_, name, role.role_id, crypto::RandomVector(kSecretIdKeySize), config})
                .status());
      } else {
        LOCKBOX_RETURN_IF_ERROR(tx.Execute("UPDATE approle_roles SET role_id = ?, config = ? "
                                           "WHERE mount_uuid = ? AND name = ?",
                                           {role.role_id, config, uuid_, name})
                                    .status());
      }
      audit::Event event =
          RequestEvent(request, creating ? "approle.role.create" : "approle.role.update");
      event.details = {{"role", name}, {"role_id_changed", requested_role_id.has_value()}};
      return events_.Append(tx, std::move(event));
    }));
    Response response;
    response.audited = true;
    return response;
  }

  StatusOr<Response> DeleteRole(const Request& request, const std::string& name) {
    bool deleted = false;
    LOCKBOX_RETURN_IF_ERROR(store_.Commit([&](store::Transaction& tx) -> Status {
      LOCKBOX_ASSIGN_OR_RETURN(
          std::int64_t secret_ids,
          tx.Execute("DELETE FROM approle_secret_ids WHERE mount_uuid = ? AND role_name = ?",
                     {uuid_, name}));
      LOCKBOX_ASSIGN_OR_RETURN(
          std::int64_t roles,
          tx.Execute("DELETE FROM approle_roles WHERE mount_uuid = ? AND name = ?", {uuid_, name}));
      deleted = roles > 0;
      if (!deleted) return Status::Ok();
      audit::Event event = RequestEvent(request, "approle.role.delete");
      event.details = {{"role", name}, {"secret_ids", secret_ids}};
      return events_.Append(tx, std::move(event));
    }));
    Response response;
    response.audited = deleted;
    return response;
  }

  StatusOr<Response> ReadRoleId(const std::string& name) {
    std::optional<Role> role;
    LOCKBOX_RETURN_IF_ERROR(store_.Read([&](store::Transaction& tx) -> Status {
      LOCKBOX_ASSIGN_OR_RETURN(role, LoadRole(tx, name, nullptr));
      return Status::Ok();
    }));
    if (!role) return NotFoundError("");
    return DataResponse(json{{"role_id", role->role_id}});
  }

  StatusOr<Response> WriteRoleId(const Request& request, const std::string& name) {
    LOCKBOX_ASSIGN_OR_RETURN(auto role_id, logical::GetString(request.data, "role_id"));
    if (!role_id || role_id->empty()) return InvalidArgumentError("missing role_id");
    LOCKBOX_RETURN_IF_ERROR(store_.Commit([&](store::Transaction& tx) -> Status {
      LOCKBOX_ASSIGN_OR_RETURN(std::optional<Role> role, LoadRole(tx, name, nullptr));
      if (!role) return RoleMissing(name);
      LOCKBOX_RETURN_IF_ERROR(CheckRoleIdFree(tx, *role_id, name));
      LOCKBOX_RETURN_IF_ERROR(
          tx.Execute("UPDATE approle_roles SET role_id = ? WHERE mount_uuid = ? AND name = ?",
                     {*role_id, uuid_, name})
              .status());
      audit::Event event = RequestEvent(request, "approle.role_id.update");
      event.details = {{"role", name}};
      return events_.Append(tx, std::move(event));
    }));
    Response response;
    response.audited = true;
    return response;
  }

  // --- secret-ids ---

  // secret-id (random) or custom-secret-id (`custom` holds the caller's secret-id).
  StatusOr<Response> GenerateSecretId(const Request& request, const std::string& name,
                                      std::optional<std::string> custom) {
    LOCKBOX_ASSIGN_OR_RETURN(SecretIdRequest fields, ParseSecretIdRequest(request.data));
    const std::string secret_id = custom ? std::move(*custom) : logical::NewUuid();
    const Clock::time_point now = options_.clock();
    SecretId entry;
    LOCKBOX_RETURN_IF_ERROR(store_.Commit([&](store::Transaction& tx) -> Status {
      store::Blob key;
      LOCKBOX_ASSIGN_OR_RETURN(std::optional<Role> role, LoadRole(tx, name, &key));
      if (!role) return RoleMissing(name);
      LOCKBOX_ASSIGN_OR_RETURN(entry, NewSecretIdEntry(fields, *role, now));
      const store::Blob hmac = SecretIdHmac(key, secret_id);
      LOCKBOX_ASSIGN_OR_RETURN(auto taken,
                               tx.Query("SELECT 1 FROM approle_secret_ids WHERE mount_uuid = ? "
                                        "AND role_name = ? AND secret_id_hmac = ?",
                                        {uuid_, name, hmac}));
      if (!taken.empty()) return InvalidArgumentError("secret_id is already registered");
      LOCKBOX_RETURN_IF_ERROR(
          tx.Execute("INSERT INTO approle_secret_ids (mount_uuid, role_name, secret_id_hmac, "
                     "accessor, num_uses, ttl, creation_time, expiration_time, last_updated_time, "
                     "metadata, cidr_list, token_bound_cidrs) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     {uuid_, name, hmac, entry.accessor, entry.num_uses,
                      static_cast<std::int64_t>(entry.ttl.count()), ToUnixNanos(now),
                      entry.expiration_time ? ToUnixNanos(*entry.expiration_time) : std::int64_t{0},
                      ToUnixNanos(now), json(entry.metadata).dump(), json(entry.cidr_list).dump(),
                      json(entry.token_bound_cidrs).dump()})
              .status());
      audit::Event event = RequestEvent(request, "approle.secret_id.create");
      event.details = {{"role", name},
                       {"secret_id_accessor", entry.accessor},
                       {"num_uses", entry.num_uses},
                       {"ttl", static_cast<std::int64_t>(entry.ttl.count())},
                       {"custom", custom.has_value()}};
      return events_.Append(tx, std::move(event));
    }));
    Response response = DataResponse(json{{"secret_id", secret_id},
                                          {"secret_id_accessor", entry.accessor},
                                          {"secret_id_ttl", entry.ttl.count()},
                                          {"secret_id_num_uses", entry.num_uses}});
    response.audited = true;
    return response;
  }

  StatusOr<Response> ListSecretIds(const std::string& name) {
    std::vector<std::string> accessors;
    bool role_exists = false;
    LOCKBOX_RETURN_IF_ERROR(store_.Read([&](store::Transaction& tx) -> Status {
      LOCKBOX_ASSIGN_OR_RETURN(std::optional<Role> role, LoadRole(tx, name, nullptr));
      role_exists = role.has_value();
      LOCKBOX_ASSIGN_OR_RETURN(
          auto rows, tx.Query("SELECT accessor FROM approle_secret_ids WHERE mount_uuid = ? AND "
                              "role_name = ? ORDER BY accessor",
                              {uuid_, name}));
      for (const auto& row : rows) {
        LOCKBOX_ASSIGN_OR_RETURN(std::string accessor, store::GetText(row, 0));
        accessors.push_back(std::move(accessor));
      }
      return Status::Ok();
    }));
    if (!role_exists) return RoleMissing(name);
    if (accessors.empty()) return NotFoundError("");
    return ListResponse(std::move(accessors));
  }

  // The WHERE clause (after mount and role) and its value for a secret-id named by value or by
  // accessor; the value needs the role's HMAC key.
  struct SecretIdSelector {
    std::string clause;
    store::Value value;
  };
  StatusOr<std::string> SelectorInput(const Request& request, bool by_accessor) const {
    const std::string_view field = by_accessor ? "secret_id_accessor" : "secret_id";
    LOCKBOX_ASSIGN_OR_RETURN(auto value, logical::GetString(request.data, field));
    if (!value || value->empty()) return InvalidArgumentError("missing " + std::string(field));
    return std::move(*value);
  }
  static SecretIdSelector Selector(bool by_accessor, const std::string& input,
                                   const store::Blob& key) {
    if (by_accessor) return {"accessor = ?", input};
    return {"secret_id_hmac = ?", SecretIdHmac(key, input)};
  }

  StatusOr<Response> LookupSecretId(const Request& request, const std::string& name,
                                    bool by_accessor) {
    LOCKBOX_ASSIGN_OR_RETURN(const std::string input, SelectorInput(request, by_accessor));
    bool role_exists = false;
    std::optional<SecretId> entry;
    LOCKBOX_RETURN_IF_ERROR(store_.Read([&](store::Transaction& tx) -> Status {
      store::Blob key;
      LOCKBOX_ASSIGN_OR_RETURN(std::optional<Role> role, LoadRole(tx, name, &key));
      role_exists = role.has_value();
      if (!role_exists) return Status::Ok();
      const SecretIdSelector selector = Selector(by_accessor, input, key);
      LOCKBOX_ASSIGN_OR_RETURN(auto rows,
                               tx.Query("SELECT " + std::string(kSecretIdColumns) +
                                            " FROM approle_secret_ids WHERE mount_uuid = ? AND "
                                            "role_name = ? AND " +
                                            selector.clause,
                                        {uuid_, name, selector.value}));
      if (rows.empty()) return Status::Ok();
      LOCKBOX_ASSIGN_OR_RETURN(entry, SecretIdFromRow(rows[0], nullptr));
      return Status::Ok();
    }));
    if (!role_exists) return RoleMissing(name);
    if (!entry) {
      // Vault: an unknown secret-id reads as nothing (204); an unknown accessor is an error.
      if (by_accessor) {
        return InvalidArgumentError("failed to find accessor entry for secret_id_accessor");
      }
      return Response{};
    }
    return DataResponse(SecretIdToJson(*entry));
  }

  StatusOr<Response> DestroySecretId(const Request& request, const std::string& name,
                                     bool by_accessor) {
    LOCKBOX_ASSIGN_OR_RETURN(const std::string input, SelectorInput(request, by_accessor));
    bool deleted = false;
    LOCKBOX_RETURN_IF_ERROR(store_.Commit([&](store::Transaction& tx) -> Status {
      store::Blob key;
      LOCKBOX_ASSIGN_OR_RETURN(std::optional<Role> role, LoadRole(tx, name, &key));
      if (!role) return RoleMissing(name);
      const SecretIdSelector selector = Selector(by_accessor, input, key);
      LOCKBOX_ASSIGN_OR_RETURN(
          auto rows, tx.Query("SELECT accessor FROM approle_secret_ids WHERE mount_uuid = ? AND "
                              "role_name = ? AND " +
                                  selector.clause,
                              {uuid_, name, selector.value}));
      if (rows.empty()) return Status::Ok();
      LOCKBOX_ASSIGN_OR_RETURN(std::string accessor, store::GetText(rows[0], 0));
      LOCKBOX_RETURN_IF_ERROR(tx.Execute("DELETE FROM approle_secret_ids WHERE mount_uuid = ? "
                                         "AND role_name = ? AND accessor = ?",
                                         {uuid_, name, accessor})
                                  .status());
      deleted = true;
      audit::Event event = RequestEvent(request, "approle.secret_id.destroy");
      event.details = {{"role", name}, {"secret_id_accessor", accessor}};
      return events_.Append(tx, std::move(event));
    }));
    Response response;
    response.audited = deleted;
    return response;
  }

  // --- login ---

  // What the login unit found: the role and the secret-id that were accepted, or why not.
  struct LoginCheck {
    std::string role_name;
    Role role;
    SecretId secret_id;  // when the role binds secret-ids
    std::string denial;  // non-empty: refused, for the audit record only
  };

  // Runs inside the login unit: checks role_id, secret-id, expiry and CIDRs, and spends one use.
  Status CheckAndSpend(store::Transaction& tx, const std::string& role_id,
                       const std::optional<std::string>& secret_id, const std::string& remote_addr,
                       Clock::time_point now, LoginCheck& check) const {
    LOCKBOX_ASSIGN_OR_RETURN(
        auto roles, tx.Query("SELECT name FROM approle_roles WHERE mount_uuid = ? AND role_id = ?",
                             {uuid_, role_id}));
    if (roles.empty()) {
      check.denial = "unknown role_id";
      return Status::Ok();
    }
    LOCKBOX_ASSIGN_OR_RETURN(check.role_name, store::GetText(roles[0], 0));
    store::Blob key;
    LOCKBOX_ASSIGN_OR_RETURN(std::optional<Role> role, LoadRole(tx, check.role_name, &key));
    if (!role) return InternalError("approle role vanished inside its transaction");
    check.role = std::move(*role);
    if (!check.role.secret_id_bound_cidrs.empty()) {
      LOCKBOX_ASSIGN_OR_RETURN(
          std::vector<Cidr> blocks,
          ParseCidrList(check.role.secret_id_bound_cidrs, "secret_id_bound_cidrs"));
      if (!AnyCidrContains(blocks, remote_addr)) {
        check.denial = "client address not in the role's secret_id_bound_cidrs";
        return Status::Ok();
      }
    }
    if (!check.role.bind_secret_id) return Status::Ok();
    if (!secret_id || secret_id->empty()) {
      check.denial = "missing secret_id";
      return Status::Ok();
    }
    const store::Blob hmac = SecretIdHmac(key, *secret_id);
    LOCKBOX_ASSIGN_OR_RETURN(auto rows,
                             tx.Query("SELECT " + std::string(kSecretIdColumns) +
                                          " FROM approle_secret_ids WHERE mount_uuid = ? AND "
                                          "role_name = ? AND secret_id_hmac = ?",
                                      {uuid_, check.role_name, hmac}));
    store::Blob stored_hmac;
    if (!rows.empty()) {
      LOCKBOX_ASSIGN_OR_RETURN(check.secret_id, SecretIdFromRow(rows[0], &stored_hmac));
    }
    // The index found the row; the constant-time comparison is what accepts it.
    if (rows.empty() || !crypto::ConstantTimeEquals(stored_hmac, hmac)) {
      check.denial = "unknown secret_id";
      return Status::Ok();
    }
    SecretId& entry = check.secret_id;
    if (entry.expiration_time && now >= *entry.expiration_time) {
      check.denial = "secret_id expired";
      return Status::Ok();
    }
    if (!entry.cidr_list.empty()) {
      LOCKBOX_ASSIGN_OR_RETURN(std::vector<Cidr> blocks,
                               ParseCidrList(entry.cidr_list, "cidr_list"));
      if (!AnyCidrContains(blocks, remote_addr)) {
        check.denial = "client address not in the secret_id's cidr_list";
        return Status::Ok();
      }
    }
    if (entry.num_uses == 0) return Status::Ok();
    if (entry.num_uses == 1) {
      return tx
          .Execute(
              "DELETE FROM approle_secret_ids WHERE mount_uuid = ? AND role_name = ? "
              "AND secret_id_hmac = ?",
              {uuid_, check.role_name, hmac})
          .status();
    }
    --entry.num_uses;
    return tx
        .Execute(
            "UPDATE approle_secret_ids SET num_uses = ?, last_updated_time = ? WHERE "
            "mount_uuid = ? AND role_name = ? AND secret_id_hmac = ?",
            {entry.num_uses, ToUnixNanos(now), uuid_, check.role_name, hmac})
        .status();
  }

  std::string LoginActor(const LoginCheck& check, const std::string& role_id) const {
    if (!check.role_name.empty()) return "role:" + check.role_name;
    if (options_.audit_hmac) return "role:" + options_.audit_hmac(role_id);
    return "role:unknown";
  }

  TokenParams LoginTokenParams(const LoginCheck& check) const {
    const Role& role = check.role;
    const logical::MountEntry mount = [this] {
      std::lock_guard lock(mount_mu_);
      return mount_;
    }();
    TokenParams params;
    params.policies = role.token_policies;
    if (!role.token_no_default_policy) params.policies.push_back("default");
    params.policies = NormalizePolicies(params.policies);
    params.meta = check.secret_id.metadata;
    params.meta["role_name"] = check.role_name;
    // "auth/approle/" → display name "approle", as Vault names tokens of an auth mount.
    std::string display = mount.path.substr(0, mount.path.size() - 1);
    if (display.starts_with("auth/")) display.erase(0, 5);
    std::replace(display.begin(), display.end(), '/', '-');
    params.display_name = display;
    params.path = mount.path + "login";
    // The role's limits replace Lockbox's short defaults; the mount's tuning caps both.
    seconds max_ttl = SmallestPositive(role.token_max_ttl, role.token_explicit_max_ttl);
    if (max_ttl.count() == 0) max_ttl = options_.default_token_max_ttl;
    if (mount.max_lease_ttl.count() > 0) max_ttl = std::min(max_ttl, mount.max_lease_ttl);
    seconds ttl = role.token_ttl.count() > 0            ? role.token_ttl
                  : mount.default_lease_ttl.count() > 0 ? mount.default_lease_ttl
                                                        : options_.default_token_ttl;
    params.ttl = std::min(ttl, max_ttl);
    params.explicit_max_ttl = max_ttl;
    params.period = role.token_period;
    params.num_uses = role.token_num_uses;
    params.renewable = true;
    params.bound_cidrs = check.secret_id.token_bound_cidrs.empty()
                             ? role.token_bound_cidrs
                             : check.secret_id.token_bound_cidrs;
    return params;
  }

  StatusOr<Response> Login(const Request& request) {
    LOCKBOX_ASSIGN_OR_RETURN(auto role_id, logical::GetString(request.data, "role_id"));
    if (!role_id || role_id->empty()) return InvalidArgumentError("missing role_id");
    LOCKBOX_ASSIGN_OR_RETURN(auto secret_id, logical::GetString(request.data, "secret_id"));
    const Clock::time_point now = options_.clock();

    LoginCheck check;
    const Status committed = store_.Commit([&](store::Transaction& tx) -> Status {
      check = LoginCheck{};
      LOCKBOX_RETURN_IF_ERROR(
          CheckAndSpend(tx, *role_id, secret_id, request.remote_addr, now, check));
      // A refusal commits nothing here; it is recorded on its own below.
      if (!check.denial.empty()) return AbortedError("login refused");
      audit::Event event = RequestEvent(request, "approle.login");
      event.actor = LoginActor(check, *role_id);
      event.details = {{"role", check.role_name}};
      if (check.role.bind_secret_id) {
        event.details["secret_id_accessor"] = check.secret_id.accessor;
        event.details["secret_id_num_uses_left"] = check.secret_id.num_uses;
      }
      return events_.Append(tx, std::move(event));
    });
    if (!check.denial.empty()) {
      audit::Event event = RequestEvent(request, "approle.login");
      event.actor = LoginActor(check, *role_id);
      event.outcome = audit::Outcome::kDenied;
      event.reason = check.denial;
      if (!check.role_name.empty()) event.details = {{"role", check.role_name}};
      LOCKBOX_RETURN_IF_ERROR(events_.Record(std::move(event)));
      return InvalidArgumentError(std::string(kInvalidCredentials));
    }
    LOCKBOX_RETURN_IF_ERROR(committed);

    keyring::Caller caller = request.caller;
    caller.actor = LoginActor(check, *role_id);
    auto issued = tokens_.Issue(LoginTokenParams(check), caller);
    if (!issued.ok()) {
      audit::Event event = RequestEvent(request, "approle.login");
      event.actor = caller.actor;
      event.outcome = audit::Outcome::kError;
      event.reason = "token issue failed: " + issued.status().message();
      event.details = {{"role", check.role_name}};
      LOCKBOX_RETURN_IF_ERROR(events_.Record(std::move(event)));
      return issued.status();
    }
    Response response;
    response.auth = TokenStore::AuthBlock(issued->entry, issued->client_token, options_.clock());
    response.audited = true;
    return response;
  }

  const std::string uuid_;
  TokenStore& tokens_;
  store::Store& store_;
  audit_log::EventLog& events_;
  const AppRoleOptions options_;
  mutable std::mutex mount_mu_;
  logical::MountEntry mount_;  // guarded by mount_mu_ (sys/remount changes its path)
};

}  // namespace

std::vector<store::Migration> AppRoleMigrations() {
  return {{"approle", 1, R"sql(
CREATE TABLE approle_roles (
  mount_uuid TEXT NOT NULL,
  name TEXT NOT NULL,
  role_id TEXT NOT NULL,
  secret_id_hmac_key BLOB NOT NULL,
  config TEXT NOT NULL,
  PRIMARY KEY (mount_uuid, name),
  UNIQUE (mount_uuid, role_id)
);
CREATE TABLE approle_secret_ids (
  mount_uuid TEXT NOT NULL,
  role_name TEXT NOT NULL,
  secret_id_hmac BLOB NOT NULL,
  accessor TEXT NOT NULL,
  num_uses INTEGER NOT NULL,
  ttl INTEGER NOT NULL,
  creation_time INTEGER NOT NULL,
  expiration_time INTEGER NOT NULL,
  last_updated_time INTEGER NOT NULL,
  metadata TEXT NOT NULL,
  cidr_list TEXT NOT NULL,
  token_bound_cidrs TEXT NOT NULL,
  PRIMARY KEY (mount_uuid, role_name, secret_id_hmac),
  UNIQUE (mount_uuid, role_name, accessor)
);
)sql"}};
}

StatusOr<std::unique_ptr<logical::Backend>> NewAppRoleBackend(const logical::MountEntry& mount,
                                                              TokenStore& tokens,
                                                              store::Store& store,
                                                              audit_log::EventLog& events,
                                                              AppRoleOptions options) {
  if (mount.uuid.empty() || !mount.path.ends_with('/')) {
    return InvalidArgumentError("approle mount needs a uuid and a path ending in '/'");
  }
  LOCKBOX_RETURN_IF_ERROR(store.Migrate(AppRoleMigrations()));
  return std::unique_ptr<logical::Backend>(
      new AppRoleBackend(mount, tokens, store, events, std::move(options)));
}

}  // namespace lockbox::auth
