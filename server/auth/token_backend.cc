#include "server/auth/token_backend.h"

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/auth/backend_util.h"
#include "server/auth/cidr.h"
#include "server/logical/fields.h"

namespace lockbox::auth {
namespace {

using logical::Operation;
using logical::Request;
using logical::Response;
using std::chrono::seconds;

constexpr std::string_view kRolesPrefix = "roles/";
constexpr std::string_view kCreatePrefix = "create/";
// Policies Vault reserves for its own tokens.
constexpr std::string_view kNonAssignablePolicies[] = {"response-wrapping", "control-group"};

// A token role (Vault's tsRoleEntry). Durations are whole seconds. The legacy fields (period,
// explicit_max_ttl, bound_cidrs) are kept for reads; the token_* fields are what applies.
struct TokenRole {
  std::string name;
  std::vector<std::string> allowed_policies;
  std::vector<std::string> disallowed_policies;
  std::vector<std::string> allowed_policies_glob;
  std::vector<std::string> disallowed_policies_glob;
  bool orphan = false;
  bool renewable = true;
  std::string path_suffix;
  std::vector<std::string> allowed_entity_aliases;
  std::string token_type = "default-service";
  std::int64_t period = 0;
  std::int64_t token_period = 0;
  std::int64_t explicit_max_ttl = 0;
  std::int64_t token_explicit_max_ttl = 0;
  std::int64_t token_num_uses = 0;
  std::vector<std::string> bound_cidrs;
  std::vector<std::string> token_bound_cidrs;
  bool token_no_default_policy = false;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TokenRole, name, allowed_policies,
                                                disallowed_policies, allowed_policies_glob,
                                                disallowed_policies_glob, orphan, renewable,
                                                path_suffix, allowed_entity_aliases, token_type,
                                                period, token_period, explicit_max_ttl,
                                                token_explicit_max_ttl, token_num_uses, bound_cidrs,
                                                token_bound_cidrs, token_no_default_policy)

bool Contains(const std::vector<std::string>& list, std::string_view item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

// go-glob: '*' matches any run of characters (including none); nothing else is special.
bool GlobMatch(std::string_view pattern, std::string_view text) {
  const auto star = pattern.find('*');
  if (star == std::string_view::npos) return pattern == text;
  if (!text.starts_with(pattern.substr(0, star))) return false;
  text.remove_prefix(star);
  pattern.remove_prefix(star);
  while (!pattern.empty() && pattern.front() == '*') pattern.remove_prefix(1);
  const auto next = pattern.find('*');
  if (next == std::string_view::npos) return text.ends_with(pattern);
  const std::string_view piece = pattern.substr(0, next);
  for (auto at = text.find(piece); at != std::string_view::npos; at = text.find(piece, at + 1)) {
    if (GlobMatch(pattern.substr(next), text.substr(at + piece.size()))) return true;
  }
  return false;
}

bool ContainsGlob(const std::vector<std::string>& patterns, std::string_view item) {
  return std::any_of(patterns.begin(), patterns.end(),
                     [&](const std::string& p) { return GlobMatch(p, item); });
}

// Go's %q of a []string: ["a" "b"].
std::string QuoteList(const std::vector<std::string>& list) {
  std::string out = "[";
  for (std::size_t i = 0; i < list.size(); ++i) out += (i ? " \"" : "\"") + list[i] + "\"";
  return out + "]";
}

// Vault's strutil.RemoveDuplicates(list, lowercase=true): trimmed, lower-cased, sorted, unique.
std::vector<std::string> LowerSortedUnique(std::vector<std::string> list) {
  std::vector<std::string> out;
  for (std::string& item : list) {
    std::transform(item.begin(), item.end(), item.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (!item.empty()) out.push_back(std::move(item));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// "token-" + name with every character outside [A-Za-z0-9-] replaced by '-', one trailing '-'
// dropped (Vault's displayNameSanitize).
std::string TokenDisplayName(std::string_view name) {
  std::string full = "token-" + std::string(name);
  for (char& c : full) {
    const bool keep =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    if (!keep) c = '-';
  }
  if (full.ends_with('-')) full.pop_back();
  return full;
}

// A role's path suffix: Vault's `\w[\w-.]+\w` (plus '/' between segments), never "..".
Status ValidatePathSuffix(std::string_view suffix) {
  auto word = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  };
  const bool ok = suffix.size() >= 3 && word(suffix.front()) && word(suffix.back()) &&
                  std::all_of(suffix.begin(), suffix.end(),
                              [&](char c) { return word(c) || c == '-' || c == '.' || c == '/'; });
  if (!ok) {
    return InvalidArgumentError(
        "given role path suffix contains invalid characters; must match \\w[\\w-.]+\\w");
  }
  if (suffix.find("..") != std::string_view::npos || suffix.find("//") != std::string_view::npos) {
    return InvalidArgumentError(
        "error registering path suffix: path cannot contain parent "
        "references or empty segments");
  }
  return Status::Ok();
}

std::int64_t UnixSeconds(Clock::time_point t) {
  return std::chrono::duration_cast<seconds>(t.time_since_epoch()).count();
}

// The `data` of lookup, lookup-self and lookup-accessor (Vault's handleLookup).
nlohmann::json LookupData(const TokenEntry& e, std::string_view id, Clock::time_point now) {
  nlohmann::json data = {
      {"id", std::string(id)},
      {"accessor", e.accessor},
      {"policies", e.policies},
      {"path", e.path},
      {"meta", e.meta.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.meta)},
      {"display_name", e.display_name},
      {"num_uses", e.num_uses},
      {"orphan", e.orphan()},
      {"creation_time", UnixSeconds(e.creation_time)},
      {"creation_ttl", e.creation_ttl.count()},
      {"expire_time", nullptr},
      {"ttl", 0},
      {"explicit_max_ttl", e.explicit_max_ttl.count()},
      {"entity_id", ""},
      {"type", "service"}};
  if (!e.role.empty()) data["role"] = e.role;
  if (e.period > seconds(0)) data["period"] = e.period.count();
  if (!e.bound_cidrs.empty()) data["bound_cidrs"] = e.bound_cidrs;
  if (e.expire_time) {  // the token has a lease: non-expiring tokens show none of these
    data["expire_time"] = logical::FormatRfc3339Nano(*e.expire_time);
    data["ttl"] = RemainingTtl(e, now);
    data["renewable"] = e.renewable;
    data["issue_time"] = logical::FormatRfc3339Nano(e.creation_time);
    if (e.last_renewal_time) {
      data["last_renewal_time"] = UnixSeconds(*e.last_renewal_time);
      data["last_renewal"] = logical::FormatRfc3339Nano(*e.last_renewal_time);
    }
  }
  return data;
}

Response DataResponse(nlohmann::json data) {
  Response r;
  r.data = std::move(data);
  return r;
}

Response AuditedResponse() {
  Response r;
  r.audited = true;
  return r;
}

class TokenBackend final : public logical::Backend {
 public:
  TokenBackend(TokenStore& tokens, store::Store& store, audit_log::EventLog& events,
               TokenBackendOptions options)
      : tokens_(tokens), store_(store), events_(events), options_(options) {}

  StatusOr<Response> HandleRequest(const Request& req) override {
    const std::string_view path = req.relative_path;
    const Operation op = req.operation;
    const bool write = IsWrite(op);
    if (path == "create" || path == "create-orphan") {
      if (!write) return UnsupportedOperation();
      return Create(req, path == "create-orphan", nullptr);
    }
    if (path.starts_with(kCreatePrefix)) {
      const std::string_view name = path.substr(kCreatePrefix.size());
      if (!ValidateObjectName(name, "role").ok()) return UnsupportedPath();
      if (!write) return UnsupportedOperation();
      LOCKBOX_ASSIGN_OR_RETURN(auto role, LoadRole(name));
      if (!role) return InvalidArgumentError("unknown role " + std::string(name));
      return Create(req, false, &*role);
    }
    if (path == "lookup-self" || path == "lookup") {
      if (!write && op != Operation::kRead) return UnsupportedOperation();
      return Lookup(req, path == "lookup-self");
    }
    if (path == "lookup-accessor") {
      if (!write) return UnsupportedOperation();
      return LookupByAccessor(req);
    }
    if (path == "renew" || path == "renew-self" || path == "renew-accessor") {
      if (!write) return UnsupportedOperation();
      return path == "renew-accessor" ? RenewByAccessor(req) : Renew(req, path == "renew-self");
    }
    if (path == "revoke" || path == "revoke-self" || path == "revoke-orphan") {
      if (!write) return UnsupportedOperation();
      return Revoke(req, path);
    }
    if (path == "revoke-accessor") {
      if (!write) return UnsupportedOperation();
      return RevokeByAccessor(req);
    }
    if (path == "accessors" || path == "accessors/") {
      if (op != Operation::kList) return UnsupportedOperation();
      return ListAccessors();
    }
    if (path == "roles" || path == "roles/") {
      if (op != Operation::kList) return UnsupportedOperation();
      return ListRoles();
    }
    if (path.starts_with(kRolesPrefix)) {
      const std::string_view name = path.substr(kRolesPrefix.size());
      if (!ValidateObjectName(name, "role").ok()) return UnsupportedPath();
      if (write) return WriteRole(req, name);
      if (op == Operation::kRead) return ReadRole(name);
      if (op == Operation::kDelete) return DeleteRole(req, name);
      return UnsupportedOperation();
    }
    return UnsupportedPath();
  }

  StatusOr<std::optional<bool>> Exists(const Request& req) override {
    const std::string_view path = req.relative_path;
    if (!path.starts_with(kRolesPrefix)) return std::optional<bool>();
    const std::string_view name = path.substr(kRolesPrefix.size());
    if (!ValidateObjectName(name, "role").ok()) return std::optional<bool>();
    LOCKBOX_ASSIGN_OR_RETURN(auto role, LoadRole(name));
    return std::optional<bool>(role.has_value());
  }

  bool IsSudo(std::string_view relative_path) const override {
    return relative_path.starts_with("accessors") || relative_path.starts_with("revoke-orphan");
  }

  Status Purge() override {
    return FailedPreconditionError("the token auth method cannot be disabled");
  }

 private:
  // --- token creation (Vault's handleCreateCommon) -------------------------------------------

  StatusOr<Response> Create(const Request& req, bool orphan_path, const TokenRole* role) {
    auto parent_or = tokens_.LookupToken(req.client_token);
    if (!parent_or.ok()) {
      if (parent_or.status().code() != StatusCode::kNotFound) return parent_or.status();
      return InvalidArgumentError("parent token lookup failed: no parent found");
    }
    const TokenEntry& parent = *parent_or;
    if (parent.num_uses != 0) {  // limited, or spent (-1)
      return InvalidArgumentError("restricted use token cannot generate child tokens");
    }
    const nlohmann::json& d = req.data;
    LOCKBOX_ASSIGN_OR_RETURN(auto id, logical::GetString(d, "id"));
    LOCKBOX_ASSIGN_OR_RETURN(auto requested_policies, logical::GetStringList(d, "policies"));
    LOCKBOX_ASSIGN_OR_RETURN(auto meta, logical::GetStringMap(d, "meta"));
    LOCKBOX_ASSIGN_OR_RETURN(auto no_parent, logical::GetBool(d, "no_parent"));
    LOCKBOX_ASSIGN_OR_RETURN(auto no_default_policy, logical::GetBool(d, "no_default_policy"));
    LOCKBOX_ASSIGN_OR_RETURN(auto renewable_field, logical::GetBool(d, "renewable"));
    LOCKBOX_ASSIGN_OR_RETURN(auto ttl_field, logical::GetDuration(d, "ttl"));
    LOCKBOX_ASSIGN_OR_RETURN(auto lease_field, logical::GetDuration(d, "lease"));
    LOCKBOX_ASSIGN_OR_RETURN(auto explicit_max_field, logical::GetDuration(d, "explicit_max_ttl"));
    LOCKBOX_ASSIGN_OR_RETURN(auto display_name, logical::GetString(d, "display_name"));
    LOCKBOX_ASSIGN_OR_RETURN(auto num_uses_field, logical::GetInt(d, "num_uses"));
    LOCKBOX_ASSIGN_OR_RETURN(auto period_field, logical::GetDuration(d, "period"));
    LOCKBOX_ASSIGN_OR_RETURN(auto type, logical::GetString(d, "type"));
    LOCKBOX_ASSIGN_OR_RETURN(auto entity_alias, logical::GetString(d, "entity_alias"));

    const bool sudo = req.sudo;
    const bool skip_default = no_default_policy.value_or(false);
    const std::vector<std::string> policies =
        requested_policies.value_or(std::vector<std::string>{});
    bool renewable = renewable_field.value_or(true);
    std::vector<std::string> warnings;

    const std::string type_name = type.value_or("");
    if (type_name == "batch") return InvalidArgumentError("batch tokens are not supported");
    if (!type_name.empty() && type_name != "service") {
      return InvalidArgumentError("invalid 'token_type' value");
    }
    std::int64_t num_uses = num_uses_field.value_or(0);
    if (num_uses < 0) return InvalidArgumentError("number of uses cannot be negative");
    if (entity_alias && !entity_alias->empty()) {
      if (role == nullptr) {
        return InvalidArgumentError(
            "'entity_alias' is only allowed in combination with token role");
      }
      return InvalidArgumentError("entity aliases are not supported");
    }

    TokenParams params;
    params.path = "auth/token/" + req.relative_path;
    params.meta = meta.value_or(std::map<std::string, std::string>{});
    params.parent_accessor = parent.accessor;
    if (role != nullptr) {
      params.role = role->name;
      renewable = renewable && role->renewable;
      // 0 means unlimited, so a role's limit replaces 0 and otherwise the smaller one wins.
      if (role->token_num_uses != 0 && (num_uses == 0 || role->token_num_uses < num_uses)) {
        num_uses = role->token_num_uses;
      }
      if (!role->path_suffix.empty()) params.path += "/" + role->path_suffix;
    }
    params.num_uses = num_uses;
    if (display_name && !display_name->empty()) {
      params.display_name = TokenDisplayName(*display_name);
    }
    if (id && !id->empty()) {
      if (!sudo) {
        return InvalidArgumentError("root or sudo privileges required to specify token id");
      }
      params.id = *id;
    }

    LOCKBOX_ASSIGN_OR_RETURN(params.policies,
                             ChildPolicies(parent, role, policies, skip_default, sudo));

    if (role != nullptr) {
      if (role->orphan) params.parent_accessor.clear();
      if (!role->token_bound_cidrs.empty()) params.bound_cidrs = role->token_bound_cidrs;
    } else if (no_parent.value_or(false)) {
      if (!sudo) {
        return InvalidArgumentError("root or sudo privileges required to create orphan token");
      }
      params.parent_accessor.clear();
    } else if (orphan_path) {
      params.parent_accessor.clear();  // create-orphan: the ACL on that path decides
    }
    if (role == nullptr && !params.parent_accessor.empty()) params.bound_cidrs = parent.bound_cidrs;

    seconds explicit_max = explicit_max_field.value_or(seconds(0));
    seconds period(0);
    if (period_field && *period_field > seconds(0)) {
      if (!sudo) {
        return InvalidArgumentError("root or sudo privileges required to create periodic token");
      }
      period = *period_field;
    }
    seconds ttl = ttl_field ? *ttl_field : lease_field.value_or(seconds(0));
    if (role != nullptr) {
      // A limit set both by the call and by the role: the lesser wins, with Vault's warning.
      auto take_lesser = [&warnings](seconds& value, seconds role_value, const char* what) {
        if (role_value <= seconds(0)) return;
        if (value == seconds(0)) {
          value = role_value;
          return;
        }
        value = std::min(value, role_value);
        warnings.push_back(std::string(what) +
                           " specified both during creation call and in role; using the lesser "
                           "value of " +
                           std::to_string(value.count()) + " seconds");
      };
      take_lesser(explicit_max, seconds(role->token_explicit_max_ttl), "Explicit max TTL");
      take_lesser(period, seconds(role->token_period), "Period");
    }

    const bool root = Contains(params.policies, "root");
    if (period > seconds(0) || ttl > seconds(0) || !root) {
      LOCKBOX_ASSIGN_OR_RETURN(
          ttl, CalculateTtl({seconds(0), ttl, period, explicit_max, tokens_.Now()},
                            options_.default_ttl, options_.max_ttl, tokens_.Now(), &warnings));
    }
    if (ttl == seconds(0) && explicit_max > seconds(0)) ttl = explicit_max;
    if (ttl == seconds(0)) {
      if (parent.creation_ttl != seconds(0)) {
        return InvalidArgumentError("expiring root tokens cannot create non-expiring root tokens");
      }
      renewable = false;
      params.bound_cidrs.clear();
    }
    params.ttl = ttl;
    params.explicit_max_ttl = explicit_max;
    params.period = period;
    params.renewable = renewable;

    LOCKBOX_ASSIGN_OR_RETURN(IssuedToken issued, tokens_.Issue(params, req.caller));
    Response r = AuditedResponse();
    r.auth = TokenStore::AuthBlock(issued.entry, issued.client_token, tokens_.Now());
    r.warnings = std::move(warnings);
    return r;
  }

  // The new token's policies: Vault's rules for roles, inheritance, the subset rule (without
  // sudo), "default", reserved policies and root-only "root".
  StatusOr<std::vector<std::string>> ChildPolicies(const TokenEntry& parent, const TokenRole* role,
                                                   const std::vector<std::string>& requested,
                                                   bool no_default_policy, bool sudo) const {
    std::vector<std::string> chosen = requested;
    bool add_default = false;
    const bool role_filters =
        role != nullptr &&
        (!role->allowed_policies.empty() || !role->disallowed_policies.empty() ||
         !role->allowed_policies_glob.empty() || !role->disallowed_policies_glob.empty());
    if (role_filters) {
      const bool role_add_default = !no_default_policy && !role->token_no_default_policy &&
                                    !Contains(role->disallowed_policies, "default") &&
                                    !ContainsGlob(role->disallowed_policies_glob, "default");
      std::vector<std::string> final_policies;
      if (!requested.empty()) final_policies = SanitizePolicies(requested, role_add_default);
      if (!role->allowed_policies.empty() || !role->allowed_policies_glob.empty()) {
        const auto allowed = SanitizePolicies(role->allowed_policies, role_add_default);
        if (final_policies.empty()) {
          final_policies = allowed;
        } else {
          const auto allowed_glob = SanitizePolicies(role->allowed_policies_glob, false);
          for (const auto& p : final_policies) {
            if (!Contains(allowed, p) && !ContainsGlob(allowed_glob, p)) {
              return InvalidArgumentError("token policies (" + QuoteList(final_policies) +
                                          ") must be subset of the role's allowed policies (" +
                                          QuoteList(allowed) + ") or glob policies (" +
                                          QuoteList(allowed_glob) + ")");
            }
          }
        }
      } else if (final_policies.empty()) {
        final_policies = SanitizePolicies(parent.policies, role_add_default);
      }
      for (const auto& p : final_policies) {
        if (Contains(role->disallowed_policies, p) ||
            ContainsGlob(role->disallowed_policies_glob, p)) {
          return InvalidArgumentError("token policy \"" + p + "\" is disallowed by this role");
        }
      }
      chosen = std::move(final_policies);
    } else if (requested.empty()) {
      chosen = SanitizePolicies(parent.policies, false);
    } else if (!sudo) {
      const auto asked = SanitizePolicies(requested, false);
      const auto own = SanitizePolicies(parent.policies, false);
      for (const auto& p : asked) {
        if (!Contains(own, p)) {
          return InvalidArgumentError("child policies must be subset of parent");
        }
      }
      add_default = !no_default_policy && Contains(parent.policies, "default");
    } else {
      add_default = !no_default_policy;
    }
    std::vector<std::string> out = SanitizePolicies(std::move(chosen), add_default);
    if (no_default_policy) std::erase(out, "default");
    for (const auto& p : out) {
      for (std::string_view reserved : kNonAssignablePolicies) {
        if (p == reserved) return InvalidArgumentError("cannot assign policy \"" + p + "\"");
      }
    }
    if (Contains(out, "root") && !Contains(parent.policies, "root")) {
      return InvalidArgumentError("root tokens may not be created without parent token being root");
    }
    if (out.empty()) return InvalidArgumentError("token must have at least one policy");
    return out;
  }

  // --- lookup, renew, revoke -----------------------------------------------------------------

  // The "token" field, or for the -self paths (and a lookup without one) the caller's token.
  static StatusOr<std::string> TargetToken(const Request& req, bool self) {
    if (self) return req.client_token;
    LOCKBOX_ASSIGN_OR_RETURN(auto token, logical::GetString(req.data, "token"));
    return token.value_or("");
  }

  static StatusOr<std::string> RequiredAccessor(const Request& req) {
    LOCKBOX_ASSIGN_OR_RETURN(auto accessor, logical::GetString(req.data, "accessor"));
    if (!accessor || accessor->empty()) return InvalidArgumentError("missing accessor");
    return *accessor;
  }

  StatusOr<Response> Lookup(const Request& req, bool self) {
    LOCKBOX_ASSIGN_OR_RETURN(std::string token, TargetToken(req, self));
    if (token.empty()) token = req.client_token;
    if (token.empty()) return InvalidArgumentError("missing token ID");
    auto entry = tokens_.LookupToken(token);
    if (!entry.ok()) {
      if (entry.status().code() == StatusCode::kNotFound) return PermissionDeniedError("bad token");
      return entry.status();
    }
    return DataResponse(LookupData(*entry, token, tokens_.Now()));
  }

  StatusOr<Response> LookupByAccessor(const Request& req) {
    LOCKBOX_ASSIGN_OR_RETURN(std::string accessor, RequiredAccessor(req));
    auto entry = tokens_.LookupAccessor(accessor);
    if (!entry.ok()) {
      if (entry.status().code() == StatusCode::kNotFound) {
        return InvalidArgumentError("invalid accessor");
      }
      return entry.status();
    }
    return DataResponse(LookupData(*entry, "", tokens_.Now()));
  }

  // Renews the token with `accessor`; the auth block carries `client_token` ("" by accessor).
  StatusOr<Response> RenewEntry(const Request& req, const std::string& accessor,
                                const std::string& client_token) {
    LOCKBOX_ASSIGN_OR_RETURN(auto increment, logical::GetDuration(req.data, "increment"));
    auto renewed = tokens_.Renew(accessor, increment.value_or(seconds(0)), req.caller, req.path);
    if (!renewed.ok()) {
      if (renewed.status().code() == StatusCode::kNotFound) {
        return InvalidArgumentError("token not found");
      }
      return renewed.status();
    }
    Response r = AuditedResponse();
    r.auth = TokenStore::AuthBlock(*renewed, client_token, tokens_.Now());
    return r;
  }

  StatusOr<Response> Renew(const Request& req, bool self) {
    LOCKBOX_ASSIGN_OR_RETURN(std::string token, TargetToken(req, self));
    if (token.empty()) return InvalidArgumentError("missing token ID");
    auto entry = tokens_.LookupToken(token);
    if (!entry.ok()) {
      if (entry.status().code() == StatusCode::kNotFound) {
        return InvalidArgumentError("token not found");
      }
      return entry.status();
    }
    return RenewEntry(req, entry->accessor, token);
  }

  StatusOr<Response> RenewByAccessor(const Request& req) {
    LOCKBOX_ASSIGN_OR_RETURN(std::string accessor, RequiredAccessor(req));
    auto entry = tokens_.LookupAccessor(accessor);
    if (!entry.ok()) {
      if (entry.status().code() == StatusCode::kNotFound) {
        return InvalidArgumentError("invalid accessor");
      }
      return entry.status();
    }
    return RenewEntry(req, accessor, "");
  }

  // revoke, revoke-self (the token and its subtree; 204 even if it is already gone, as Vault)
  // and revoke-orphan (sudo; its children become orphans).
  StatusOr<Response> Revoke(const Request& req, std::string_view path) {
    const bool orphan = path == "revoke-orphan";
    if (orphan && !req.sudo) {
      return InvalidArgumentError("root or sudo privileges required to revoke and orphan");
    }
    LOCKBOX_ASSIGN_OR_RETURN(std::string token, TargetToken(req, path == "revoke-self"));
    if (token.empty()) return InvalidArgumentError("missing token ID");
    auto entry = tokens_.LookupToken(token);
    if (!entry.ok()) {
      if (entry.status().code() != StatusCode::kNotFound) return entry.status();
      if (orphan) return InvalidArgumentError("token to revoke not found");
      return Response{};
    }
    return RevokeEntry(req, entry->accessor, orphan);
  }

  StatusOr<Response> RevokeByAccessor(const Request& req) {
    LOCKBOX_ASSIGN_OR_RETURN(std::string accessor, RequiredAccessor(req));
    auto entry = tokens_.LookupAccessor(accessor);
    if (!entry.ok()) {
      if (entry.status().code() != StatusCode::kNotFound) return entry.status();
      Response r;
      r.warnings.push_back("No token found with this accessor");
      return r;
    }
    return RevokeEntry(req, accessor, false);
  }

  StatusOr<Response> RevokeEntry(const Request& req, const std::string& accessor, bool orphan) {
    Status s = tokens_.Revoke(accessor, orphan, req.caller, req.path);
    if (s.code() == StatusCode::kNotFound) return Response{};  // revoked meanwhile
    if (!s.ok()) return s;
    return AuditedResponse();
  }

  StatusOr<Response> ListAccessors() {
    LOCKBOX_ASSIGN_OR_RETURN(auto accessors, tokens_.ListAccessors());
    if (accessors.empty()) return NotFoundError("");
    return DataResponse({{"keys", accessors}});
  }

  // --- token roles ---------------------------------------------------------------------------

  StatusOr<std::optional<TokenRole>> LoadRole(std::string_view name) {
    LOCKBOX_ASSIGN_OR_RETURN(auto rows, store_.Query("SELECT body FROM token_roles WHERE name = ?",
                                                     {std::string(name)}));
    if (rows.empty()) return std::optional<TokenRole>();
    LOCKBOX_ASSIGN_OR_RETURN(std::string body, store::GetText(rows.front(), 0));
    const nlohmann::json json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (!json.is_object()) return DataLossError("token role: malformed stored role");
    try {
      return std::optional<TokenRole>(json.get<TokenRole>());
    } catch (const nlohmann::json::exception&) {
      return DataLossError("token role: malformed stored role");
    }
  }

  // Applies the request's fields to `role` (a new role starts from the defaults, an existing one
  // keeps whatever the request leaves out).
  static Status ApplyRoleFields(const nlohmann::json& d, TokenRole& role) {
    LOCKBOX_ASSIGN_OR_RETURN(auto orphan, logical::GetBool(d, "orphan"));
    LOCKBOX_ASSIGN_OR_RETURN(auto renewable, logical::GetBool(d, "renewable"));
    LOCKBOX_ASSIGN_OR_RETURN(auto path_suffix, logical::GetString(d, "path_suffix"));
    LOCKBOX_ASSIGN_OR_RETURN(auto allowed, logical::GetStringList(d, "allowed_policies"));
    LOCKBOX_ASSIGN_OR_RETURN(auto disallowed, logical::GetStringList(d, "disallowed_policies"));
    LOCKBOX_ASSIGN_OR_RETURN(auto allowed_glob, logical::GetStringList(d, "allowed_policies_glob"));
    LOCKBOX_ASSIGN_OR_RETURN(auto disallowed_glob,
                             logical::GetStringList(d, "disallowed_policies_glob"));
    LOCKBOX_ASSIGN_OR_RETURN(auto aliases, logical::GetStringList(d, "allowed_entity_aliases"));
    LOCKBOX_ASSIGN_OR_RETURN(auto token_type, logical::GetString(d, "token_type"));
    LOCKBOX_ASSIGN_OR_RETURN(auto period, logical::GetDuration(d, "period"));
    LOCKBOX_ASSIGN_OR_RETURN(auto token_period, logical::GetDuration(d, "token_period"));
    LOCKBOX_ASSIGN_OR_RETURN(auto explicit_max, logical::GetDuration(d, "explicit_max_ttl"));
    LOCKBOX_ASSIGN_OR_RETURN(auto token_explicit_max,
                             logical::GetDuration(d, "token_explicit_max_ttl"));
    LOCKBOX_ASSIGN_OR_RETURN(auto num_uses, logical::GetInt(d, "token_num_uses"));
    LOCKBOX_ASSIGN_OR_RETURN(auto bound_cidrs, logical::GetStringList(d, "bound_cidrs"));
    LOCKBOX_ASSIGN_OR_RETURN(auto token_bound_cidrs,
                             logical::GetStringList(d, "token_bound_cidrs"));
    LOCKBOX_ASSIGN_OR_RETURN(auto no_default, logical::GetBool(d, "token_no_default_policy"));

    if (path_suffix && !path_suffix->empty()) {
      LOCKBOX_RETURN_IF_ERROR(ValidatePathSuffix(*path_suffix));
    }
    if (token_type && *token_type != "service" && *token_type != "default-service") {
      if (*token_type == "batch" || *token_type == "default-batch") {
        return InvalidArgumentError("batch tokens are not supported");
      }
      return InvalidArgumentError("invalid 'token_type' value \"" + *token_type + "\"");
    }
    if (num_uses && *num_uses < 0) {
      return InvalidArgumentError("token_num_uses cannot be negative");
    }
    for (const auto* cidrs : {&bound_cidrs, &token_bound_cidrs}) {
      if (*cidrs) LOCKBOX_RETURN_IF_ERROR(ParseCidrList(**cidrs, "token_bound_cidrs").status());
    }

    if (orphan) role.orphan = *orphan;
    if (renewable) role.renewable = *renewable;
    if (path_suffix) role.path_suffix = *path_suffix;
    if (allowed) role.allowed_policies = SanitizePolicies(*allowed, false);
    if (disallowed) role.disallowed_policies = LowerSortedUnique(*disallowed);
    if (allowed_glob) role.allowed_policies_glob = SanitizePolicies(*allowed_glob, false);
    if (disallowed_glob) role.disallowed_policies_glob = LowerSortedUnique(*disallowed_glob);
    if (aliases) role.allowed_entity_aliases = LowerSortedUnique(*aliases);
    if (token_type) role.token_type = *token_type;
    // The token_* fields win; the legacy names set them too when the token_* one is absent.
    if (period) role.period = period->count();
    if (token_period || period)
      role.token_period = (token_period ? *token_period : *period).count();
    if (explicit_max) role.explicit_max_ttl = explicit_max->count();
    if (token_explicit_max || explicit_max) {
      role.token_explicit_max_ttl =
          (token_explicit_max ? *token_explicit_max : *explicit_max).count();
    }
    if (num_uses) role.token_num_uses = *num_uses;
    if (bound_cidrs) role.bound_cidrs = *bound_cidrs;
    if (token_bound_cidrs || bound_cidrs) {
      role.token_bound_cidrs = token_bound_cidrs ? *token_bound_cidrs : *bound_cidrs;
    }
    if (no_default) role.token_no_default_policy = *no_default;
    return Status::Ok();
  }

  StatusOr<Response> WriteRole(const Request& req, std::string_view name) {
    LOCKBOX_ASSIGN_OR_RETURN(auto existing, LoadRole(name));
    TokenRole role = existing.value_or(TokenRole{});
    role.name = std::string(name);
    LOCKBOX_RETURN_IF_ERROR(ApplyRoleFields(req.data, role));
    const std::string body = nlohmann::json(role).dump();
    audit::Event event = RequestEvent(req, "token.role.write");
    event.details = {{"role", role.name}};
    LOCKBOX_RETURN_IF_ERROR(store_.Commit([&](store::Transaction& tx) -> Status {
      LOCKBOX_RETURN_IF_ERROR(tx.Execute("INSERT INTO token_roles (name, body) VALUES (?, ?) "
                                         "ON CONFLICT (name) DO UPDATE SET body = excluded.body",
                                         {role.name, body})
                                  .status());
      return events_.Append(tx, event);
    }));
    return AuditedResponse();
  }

  StatusOr<Response> ReadRole(std::string_view name) {
    LOCKBOX_ASSIGN_OR_RETURN(auto role, LoadRole(name));
    if (!role) return NotFoundError("");
    nlohmann::json data = {{"period", role->period},
                           {"token_period", role->token_period},
                           {"explicit_max_ttl", role->explicit_max_ttl},
                           {"token_explicit_max_ttl", role->token_explicit_max_ttl},
                           {"disallowed_policies", role->disallowed_policies},
                           {"allowed_policies", role->allowed_policies},
                           {"disallowed_policies_glob", role->disallowed_policies_glob},
                           {"allowed_policies_glob", role->allowed_policies_glob},
                           {"name", role->name},
                           {"orphan", role->orphan},
                           {"path_suffix", role->path_suffix},
                           {"renewable", role->renewable},
                           {"token_type", role->token_type},
                           {"allowed_entity_aliases", role->allowed_entity_aliases},
                           {"token_no_default_policy", role->token_no_default_policy}};
    if (!role->token_bound_cidrs.empty()) data["token_bound_cidrs"] = role->token_bound_cidrs;
    if (!role->bound_cidrs.empty()) data["bound_cidrs"] = role->bound_cidrs;
    if (role->token_num_uses > 0) data["token_num_uses"] = role->token_num_uses;
    return DataResponse(std::move(data));
  }

  StatusOr<Response> DeleteRole(const Request& req, std::string_view name) {
    audit::Event event = RequestEvent(req, "token.role.delete");
    event.details = {{"role", std::string(name)}};
    LOCKBOX_RETURN_IF_ERROR(store_.Commit([&](store::Transaction& tx) -> Status {
      LOCKBOX_RETURN_IF_ERROR(
          tx.Execute("DELETE FROM token_roles WHERE name = ?", {std::string(name)}).status());
      return events_.Append(tx, event);
    }));
    return AuditedResponse();
  }

  StatusOr<Response> ListRoles() {
    LOCKBOX_ASSIGN_OR_RETURN(auto rows,
                             store_.Query("SELECT name FROM token_roles ORDER BY name", {}));
    if (rows.empty()) return NotFoundError("");
    std::vector<std::string> keys;
    for (const auto& row : rows) {
      LOCKBOX_ASSIGN_OR_RETURN(std::string name, store::GetText(row, 0));
      keys.push_back(std::move(name));
    }
    return DataResponse({{"keys", keys}});
  }

  TokenStore& tokens_;
  store::Store& store_;
  audit_log::EventLog& events_;
  const TokenBackendOptions options_;
};

}  // namespace

StatusOr<std::unique_ptr<logical::Backend>> NewTokenBackend(TokenStore& tokens, store::Store& store,
                                                            audit_log::EventLog& events,
                                                            TokenBackendOptions options) {
  if (options.default_ttl <= seconds(0) || options.max_ttl <= seconds(0)) {
    return InvalidArgumentError("token backend: default and max TTL must be positive");
  }
  return std::unique_ptr<logical::Backend>(
      std::make_unique<TokenBackend>(tokens, store, events, options));
}

}  // namespace lockbox::auth
