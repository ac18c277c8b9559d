#include "server/auth/identity_backend.h"

#include <algorithm>
#include <atomic>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <utility>

#include <nlohmann/json.hpp>

#include "crypto/encoding.h"
#include "crypto/jwk.h"
#include "crypto/jws.h"
#include "crypto/random.h"
#include "server/auth/backend_util.h"
#include "server/logical/fields.h"

namespace lockbox::auth {
namespace {

using logical::Operation;
using logical::Request;
using logical::Response;
using nlohmann::json;
using std::chrono::seconds;
using Clock = std::chrono::system_clock;

constexpr std::string_view kDefaultKey = "default";
constexpr std::size_t kClientIdBytes = 16;
constexpr std::size_t kMaxClientIdLength = 256;

// ---------------------------------------------------------------------------------------------
// Algorithms

struct Algorithm {
  std::string_view name;  // JWS "alg"
  hsm::SigningAlgorithm hsm;
  crypto::SignatureAlgorithm verify;
};

constexpr Algorithm kAlgorithms[] = {
    {"ES256", hsm::SigningAlgorithm::kEcdsaP256Sha256,
     crypto::SignatureAlgorithm::kEcdsaP256Sha256},
    {"EdDSA", hsm::SigningAlgorithm::kEd25519, crypto::SignatureAlgorithm::kEd25519},
};

StatusOr<Algorithm> FindAlgorithm(std::string_view name) {
  for (const Algorithm& algorithm : kAlgorithms) {
    if (algorithm.name == name) return algorithm;
  }
  return InvalidArgumentError("unsupported algorithm \"" + std::string(name) +
                              "\": use ES256 or EdDSA");
}

// ---------------------------------------------------------------------------------------------
// State (the in-memory copy of the tables)

struct KeyVersion {
  std::string label;  // HSM CKA_LABEL
  std::string algorithm;
  std::string kid;
  json public_jwk;  // with kid, alg, use
  Clock::time_point created;
  // When a superseded version may leave the JWKS (its last token has expired); nullopt: current.
  std::optional<Clock::time_point> retire_after;
};

struct Key {
  std::string algorithm;
  seconds rotation_period{0};
  seconds verification_ttl{0};
  std::int64_t current_version = 0;
  Clock::time_point next_rotation;
  std::map<std::int64_t, KeyVersion> versions;
  // The current version's HSM key, found on first use.
  std::optional<hsm::SigningKey> signer;
};

struct Role {
  std::string key;
  seconds ttl{0};
  std::string client_id;
};

json KeyToJson(const Key& key) {
  return {{"algorithm", key.algorithm},
          {"rotation_period", key.rotation_period.count()},
          {"verification_ttl", key.verification_ttl.count()}};
}

json RoleToJson(const Role& role) {
  return {{"key", role.key},
          {"ttl", role.ttl.count()},
          {"client_id", role.client_id},
          {"template", ""}};
}

std::string KeyLabel(std::string_view key_name, std::int64_t version) {
  return "lockbox/identity/" + std::string(key_name) + "/v" + std::to_string(version);
}

// ---------------------------------------------------------------------------------------------
// Paths

enum class RouteKind {
  kJwks,
  kDiscovery,
  kIntrospect,
  kKeyList,
  kKey,
  kKeyRotate,
  kRoleList,
  kRole,
  kToken,
};

struct Route {
  RouteKind kind;
  std::string name;
};

StatusOr<Route> ParseRoute(std::string_view path) {
  if (path.ends_with('/')) path.remove_suffix(1);
  if (!path.starts_with("oidc/")) return UnsupportedPath();
  path.remove_prefix(5);
  if (path == ".well-known/keys") return Route{RouteKind::kJwks, ""};
  if (path == ".well-known/openid-configuration") return Route{RouteKind::kDiscovery, ""};
  if (path == "introspect") return Route{RouteKind::kIntrospect, ""};
  if (path == "key") return Route{RouteKind::kKeyList, ""};
  if (path == "role") return Route{RouteKind::kRoleList, ""};
  const auto slash = path.find('/');
  if (slash == std::string_view::npos) return UnsupportedPath();
  const std::string_view collection = path.substr(0, slash);
  std::string_view name = path.substr(slash + 1);
  RouteKind kind;
  if (collection == "key" && name.ends_with("/rotate")) {
    name.remove_suffix(7);
    kind = RouteKind::kKeyRotate;
  } else if (collection == "key") {
    kind = RouteKind::kKey;
  } else if (collection == "role") {
    kind = RouteKind::kRole;
  } else if (collection == "token") {
    kind = RouteKind::kToken;
  } else {
    return UnsupportedPath();
  }
  LOCKBOX_RETURN_IF_ERROR(ValidateObjectName(name, collection == "key" ? "key" : "role"));
  return Route{kind, std::string(name)};
}

Response DataResponse(json data) {
  Response response;
  response.data = std::move(data);
  return response;
}

Response RawResponse(json body) {
  Response response;
  response.raw_json = std::move(body);
  return response;
}

Response AuditedEmptyResponse() {
  Response response;
  response.audited = true;
  return response;
}

// ---------------------------------------------------------------------------------------------

class IdentityBackend final : public logical::Backend {
 public:
  IdentityBackend(const logical::MountEntry& mount, hsm::Hsm& hsm, store::Store& store,
                  audit_log::EventLog& events, IdentityOptions options)
      : uuid_(mount.uuid),
        hsm_(hsm),
        store_(store),
        events_(events),
        options_(std::move(options)),
        mount_path_(mount.path) {}

  Status Load() {
    std::lock_guard write(write_mu_);
    LOCKBOX_ASSIGN_OR_RETURN(
        auto key_rows,
        store_.Query("SELECT name, algorithm, rotation_period, verification_ttl, "
                     "current_version, next_rotation FROM identity_keys WHERE mount_uuid = ?",
                     {uuid_}));
    std::map<std::string, Key> keys;
    for (const auto& row : key_rows) {
      LOCKBOX_ASSIGN_OR_RETURN(std::string name, store::GetText(row, 0));
      Key key;
      LOCKBOX_ASSIGN_OR_RETURN(key.algorithm, store::GetText(row, 1));
      LOCKBOX_ASSIGN_OR_RETURN(std::int64_t rotation_period, store::GetInt(row, 2));
      LOCKBOX_ASSIGN_OR_RETURN(std::int64_t verification_ttl, store::GetInt(row, 3));
      LOCKBOX_ASSIGN_OR_RETURN(key.current_version, store::GetInt(row, 4));
      LOCKBOX_ASSIGN_OR_RETURN(std::int64_t next_rotation, store::GetInt(row, 5));
      key.rotation_period = seconds(rotation_period);
      key.verification_ttl = seconds(verification_ttl);
      key.next_rotation = FromUnixNanos(next_rotation);
      keys.emplace(std::move(name), std::move(key));
    }
    LOCKBOX_ASSIGN_OR_RETURN(
        auto version_rows,
        store_.Query("SELECT key_name, version, hsm_label, algorithm, kid, public_jwk, created, "
                     "retire_after FROM identity_key_versions WHERE mount_uuid = ?",
                     {uuid_}));
    for (const auto& row : version_rows) {
      LOCKBOX_ASSIGN_OR_RETURN(std::string key_name, store::GetText(row, 0));
      LOCKBOX_ASSIGN_OR_RETURN(std::int64_t number, store::GetInt(row, 1));
      KeyVersion version;
      LOCKBOX_ASSIGN_OR_RETURN(version.label, store::GetText(row, 2));
      LOCKBOX_ASSIGN_OR_RETURN(version.algorithm, store::GetText(row, 3));
      LOCKBOX_ASSIGN_OR_RETURN(version.kid, store::GetText(row, 4));
      LOCKBOX_ASSIGN_OR_RETURN(std::string jwk, store::GetText(row, 5));
      LOCKBOX_ASSIGN_OR_RETURN(std::int64_t created, store::GetInt(row, 6));
      version.public_jwk = json::parse(jwk, nullptr, /*allow_exceptions=*/false);
      version.created = FromUnixNanos(created);
      if (!store::IsNull(row, 7)) {
        LOCKBOX_ASSIGN_OR_RETURN(std::int64_t retire_after, store::GetInt(row, 7));
        version.retire_after = FromUnixNanos(retire_after);
      }
      auto key = keys.find(key_name);
      if (key == keys.end() || !version.public_jwk.is_object()) {
        return DataLossError("corrupt identity key version of key '" + key_name + "'");
      }
      key->second.versions.emplace(number, std::move(version));
    }
    for (const auto& [name, key] : keys) {
      if (!key.versions.contains(key.current_version)) {
        return DataLossError("identity key '" + name + "' has no current version");
      }
    }
    LOCKBOX_ASSIGN_OR_RETURN(
        auto role_rows, store_.Query("SELECT name, key_name, ttl, client_id FROM identity_roles "
                                     "WHERE mount_uuid = ?",
                                     {uuid_}));
    std::map<std::string, Role> roles;
    for (const auto& row : role_rows) {
      LOCKBOX_ASSIGN_OR_RETURN(std::string name, store::GetText(row, 0));
      Role role;
      LOCKBOX_ASSIGN_OR_RETURN(role.key, store::GetText(row, 1));
      LOCKBOX_ASSIGN_OR_RETURN(std::int64_t ttl, store::GetInt(row, 2));
      LOCKBOX_ASSIGN_OR_RETURN(role.client_id, store::GetText(row, 3));
      role.ttl = seconds(ttl);
      roles.emplace(std::move(name), std::move(role));
    }
    std::unique_lock state(state_mu_);
    keys_ = std::move(keys);
    roles_ = std::move(roles);
    UpdateDeadlineLocked();
    return Status::Ok();
  }

  StatusOr<Response> HandleRequest(const Request& request) override {
    LOCKBOX_ASSIGN_OR_RETURN(Route route, ParseRoute(request.relative_path));
    const Operation op = request.operation;
    switch (route.kind) {
      case RouteKind::kJwks:
        if (op == Operation::kRead) return Jwks(request);
        break;
      case RouteKind::kDiscovery:
        if (op == Operation::kRead) return Discovery();
        break;
      case RouteKind::kIntrospect:
        if (IsWrite(op)) return Introspect(request);
        break;
      case RouteKind::kKeyList:
        if (op == Operation::kList) return ListNames(/*keys=*/true);
        break;
      case RouteKind::kKey:
        if (op == Operation::kRead) return ReadKey(request, route.name);
        if (IsWrite(op)) return WriteKey(request, route.name);
        if (op == Operation::kDelete) return DeleteKey(request, route.name);
        break;
      case RouteKind::kKeyRotate:
        if (IsWrite(op)) return RotateKeyRequest(request, route.name);
        break;
      case RouteKind::kRoleList:
        if (op == Operation::kList) return ListNames(/*keys=*/false);
        break;
      case RouteKind::kRole:
        if (op == Operation::kRead) return ReadRole(route.name);
        if (IsWrite(op)) return WriteRole(request, route.name);
        if (op == Operation::kDelete) return DeleteRole(request, route.name);
        break;
      case RouteKind::kToken:
        if (op == Operation::kRead) return IssueToken(request, route.name);
        break;
    }
    return UnsupportedOperation();
  }

  bool IsUnauthenticated(std::string_view relative_path) const override {
    return relative_path == "oidc/.well-known/keys" ||
           relative_path == "oidc/.well-known/openid-configuration";
  }

  Status Purge() override {
    std::lock_guard write(write_mu_);
    std::vector<std::string> labels;
    {
      std::shared_lock state(state_mu_);
      for (const auto& [name, key] : keys_) {
        for (const auto& [number, version] : key.versions) labels.push_back(version.label);
      }
    }
    // HSM objects first: a failed commit leaves rows whose objects are gone, and a retry
    // finishes the job (destroying by label is idempotent).
    for (const std::string& label : labels) {
      LOCKBOX_RETURN_IF_ERROR(hsm_.DestroyObjectsByLabel(label).status());
    }
    LOCKBOX_RETURN_IF_ERROR(store_.Commit([&](store::Transaction& tx) -> Status {
      for (std::string_view table : {"identity_roles", "identity_key_versions", "identity_keys"}) {
        LOCKBOX_RETURN_IF_ERROR(
            tx.Execute("DELETE FROM " + std::string(table) + " WHERE mount_uuid = ?", {uuid_})
                .status());
      }
      audit::Event event = SystemEvent("identity.purge", mount_path_);
      event.details = {{"mount_uuid", uuid_},
                       {"hsm_keys_destroyed", static_cast<std::int64_t>(labels.size())}};
      return events_.Append(tx, std::move(event));
    }));
    std::unique_lock state(state_mu_);
    keys_.clear();
    roles_.clear();
    UpdateDeadlineLocked();
    return Status::Ok();
  }

  void Remounted(const logical::MountEntry& entry) override {
    std::lock_guard write(write_mu_);
    mount_path_ = entry.path;
  }

 private:
  audit::Event SystemEvent(std::string op, std::string path) const {
    audit::Event event;
    event.op = std::move(op);
    event.path = std::move(path);
    event.actor = "system";
    return event;
  }

  std::string KeyPath(std::string_view name) const {
    return mount_path_ + "oidc/key/" + std::string(name);
  }

  // --- maintenance: scheduled rotation and pruning ---

  // Earliest moment some key must rotate or some old version may be pruned. Needs state_mu_.
  void UpdateDeadlineLocked() {
    std::int64_t deadline = std::numeric_limits<std::int64_t>::max();
    for (const auto& [name, key] : keys_) {
      deadline = std::min(deadline, ToUnixNanos(key.next_rotation));
      for (const auto& [number, version] : key.versions) {
        if (version.retire_after) deadline = std::min(deadline, ToUnixNanos(*version.retire_after));
      }
    }
    next_deadline_ns_.store(deadline);
  }

  // Rotates keys whose rotation_period has passed and prunes versions past their retire time.
  // Cheap (one atomic load) until something is due.
  Status Maintain(const Request& request) {
    if (ToUnixNanos(options_.clock()) < next_deadline_ns_.load()) return Status::Ok();
    std::lock_guard write(write_mu_);
    const Clock::time_point now = options_.clock();
    std::vector<std::string> due_rotation;
    std::vector<std::pair<std::string, std::int64_t>> due_prune;
    {
      std::shared_lock state(state_mu_);
      for (const auto& [name, key] : keys_) {
        if (now >= key.next_rotation) due_rotation.push_back(name);
        for (const auto& [number, version] : key.versions) {
          if (version.retire_after && now >= *version.retire_after) {
            due_prune.emplace_back(name, number);
          }
        }
      }
    }
    for (const std::string& name : due_rotation) {
      LOCKBOX_RETURN_IF_ERROR(RotateLocked(request, name, std::nullopt, std::nullopt,
                                           /*scheduled=*/true));
    }
    for (const auto& [name, number] : due_prune) {
      LOCKBOX_RETURN_IF_ERROR(PruneLocked(request, name, number));
    }
    std::unique_lock state(state_mu_);
    UpdateDeadlineLocked();
    return Status::Ok();
  }

  // Destroys an expired old version's HSM objects, then forgets it. Needs write_mu_.
  Status PruneLocked(const Request& request, const std::string& name, std::int64_t number) {
    std::string label;
    {
      std::shared_lock state(state_mu_);
      label = keys_.at(name).versions.at(number).label;
    }
    LOCKBOX_RETURN_IF_ERROR(hsm_.DestroyObjectsByLabel(label).status());
    LOCKBOX_RETURN_IF_ERROR(store_.Commit([&](store::Transaction& tx) -> Status {
      LOCKBOX_RETURN_IF_ERROR(tx.Execute("DELETE FROM identity_key_versions WHERE mount_uuid = ? "
                                         "AND key_name = ? AND version = ?",
                                         {uuid_, name, number})
                                  .status());
      audit::Event event = SystemEvent("identity.key.prune", KeyPath(name));
      event.request_id = request.caller.request_id;
      event.details = {{"key", name}, {"version", number}};
      return events_.Append(tx, std::move(event));
    }));
    std::unique_lock state(state_mu_);
    keys_.at(name).versions.erase(number);
    return Status::Ok();
  }

  // --- key versions in the HSM ---

  struct NewVersion {
    KeyVersion version;
    hsm::SigningKey signer;
  };

  // Generates version `number` of key `name` in the HSM. A label left by a crash between an
  // earlier generation and its commit is not in the store (the store is the truth): it is
  // destroyed and generated afresh. Needs write_mu_.
  StatusOr<NewVersion> GenerateVersion(const std::string& name, std::int64_t number,
                                       const Algorithm& algorithm, Clock::time_point now) {
    const std::string label = KeyLabel(name, number);
    auto generated = hsm_.GenerateSigningKey(algorithm.hsm, label);
    if (!generated.ok() && generated.status().code() == StatusCode::kAlreadyExists) {
      LOCKBOX_RETURN_IF_ERROR(hsm_.DestroyObjectsByLabel(label).status());
      generated = hsm_.GenerateSigningKey(algorithm.hsm, label);
    }
    if (!generated.ok()) {
      return generated.status().WithContext("generate identity key '" + name + "'");
    }
    auto jwk = hsm_.PublicJwk(*generated);
    StatusOr<std::string> kid = jwk.ok() ? crypto::JwkThumbprint(*jwk) : jwk.status();
    if (!kid.ok()) {
      (void)hsm_.DestroyObjectsByLabel(label);  // the original error is the one to report
      return kid.status();
    }
    NewVersion out{
        KeyVersion{label, std::string(algorithm.name), *kid, std::move(*jwk), now, std::nullopt},
        *generated};
    out.version.public_jwk["kid"] = *kid;
    out.version.public_jwk["alg"] = algorithm.name;
    out.version.public_jwk["use"] = "sig";
    return out;
  }

  static Status InsertVersion(store::Transaction& tx, const std::string& uuid,
                              const std::string& name, std::int64_t number,
                              const KeyVersion& version) {
    return tx
        .Execute(
            "INSERT INTO identity_key_versions (mount_uuid, key_name, version, hsm_label, "
            "algorithm, kid, public_jwk, created, retire_after) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
            {uuid, name, number, version.label, version.algorithm, version.kid,
             version.public_jwk.dump(), ToUnixNanos(version.created)})
        .status();
  }

  // Makes a new version the signer of key `name`; the previous one verifies until now +
  // verification_ttl. `algorithm`/`verification_ttl` override the key's (an update that changes
  // the algorithm, or rotate's verification_ttl). Needs write_mu_.
  Status RotateLocked(const Request& request, const std::string& name,
                      std::optional<Algorithm> new_algorithm,
                      std::optional<seconds> verification_ttl, bool scheduled) {
    Key key;
    {
      std::shared_lock state(state_mu_);
      const Key& current = keys_.at(name);
      key.algorithm = current.algorithm;
      key.rotation_period = current.rotation_period;
      key.verification_ttl = current.verification_ttl;
      key.current_version = current.current_version;
    }
    if (new_algorithm) key.algorithm = std::string(new_algorithm->name);
    LOCKBOX_ASSIGN_OR_RETURN(const Algorithm algorithm, FindAlgorithm(key.algorithm));
    const Clock::time_point now = options_.clock();
    const std::int64_t previous = key.current_version;
    const std::int64_t number = previous + 1;
    const Clock::time_point retire_after = now + verification_ttl.value_or(key.verification_ttl);
    LOCKBOX_ASSIGN_OR_RETURN(NewVersion created, GenerateVersion(name, number, algorithm, now));
    const Status committed = store_.Commit([&](store::Transaction& tx) -> Status {
      LOCKBOX_RETURN_IF_ERROR(InsertVersion(tx, uuid_, name, number, created.version));
      LOCKBOX_RETURN_IF_ERROR(
          tx.Execute("UPDATE identity_key_versions SET retire_after = ? WHERE mount_uuid = ? AND "
                     "key_name = ? AND version = ?",
                     {ToUnixNanos(retire_after), uuid_, name, previous})
              .status());
      LOCKBOX_RETURN_IF_ERROR(
          tx.Execute("UPDATE identity_keys SET algorithm = ?, current_version = ?, "
                     "next_rotation = ? WHERE mount_uuid = ? AND name = ?",
                     {key.algorithm, number, ToUnixNanos(now + key.rotation_period), uuid_, name})
              .status());
      audit::Event event = RequestEvent(request, "identity.key.rotate");
      if (scheduled) event.actor = "system";
      event.path = KeyPath(name);
      event.details = {{"key", name},
                       {"version", number},
                       {"algorithm", key.algorithm},
                       {"kid", created.version.kid},
                       {"scheduled", scheduled}};
      return events_.Append(tx, std::move(event));
    });
    if (!committed.ok()) {
      (void)hsm_.DestroyObjectsByLabel(created.version.label);  // report the commit's error
      return committed;
    }
    std::unique_lock state(state_mu_);
    Key& stored = keys_.at(name);
    stored.versions.at(previous).retire_after = retire_after;
    stored.versions.emplace(number, std::move(created.version));
    stored.algorithm = key.algorithm;
    stored.current_version = number;
    stored.next_rotation = now + key.rotation_period;
    stored.signer = created.signer;
    UpdateDeadlineLocked();
    return Status::Ok();
  }

  // Creates key `name` with version 1. Needs write_mu_.
  Status CreateKeyLocked(const Request& request, const std::string& name, Key key) {
    LOCKBOX_ASSIGN_OR_RETURN(const Algorithm algorithm, FindAlgorithm(key.algorithm));
    const Clock::time_point now = options_.clock();
    key.current_version = 1;
    key.next_rotation = now + key.rotation_period;
    LOCKBOX_ASSIGN_OR_RETURN(NewVersion created, GenerateVersion(name, 1, algorithm, now));
    const Status committed = store_.Commit([&](store::Transaction& tx) -> Status {
      LOCKBOX_RETURN_IF_ERROR(
          tx.Execute(
                "INSERT INTO identity_keys (mount_uuid, name, algorithm, rotation_period, "
                "verification_ttl, current_version, next_rotation) "
                "VALUES (?, ?, ?, ?, ?, 1, ?)",
                {uuid_, name, key.algorithm, static_cast<std::int64_t>(key.rotation_period.count()),
                 static_cast<std::int64_t>(key.verification_ttl.count()),
                 ToUnixNanos(key.next_rotation)})
              .status());
      LOCKBOX_RETURN_IF_ERROR(InsertVersion(tx, uuid_, name, 1, created.version));
      audit::Event event = RequestEvent(request, "identity.key.create");
      event.path = KeyPath(name);
      event.details = {
          {"key", name},
          {"algorithm", key.algorithm},
          {"kid", created.version.kid},
          {"rotation_period", static_cast<std::int64_t>(key.rotation_period.count())},
          {"verification_ttl", static_cast<std::int64_t>(key.verification_ttl.count())}};
      return events_.Append(tx, std::move(event));
    });
    if (!committed.ok()) {
      (void)hsm_.DestroyObjectsByLabel(created.version.label);  // report the commit's error
      return committed;
    }
    key.versions.emplace(1, std::move(created.version));
    key.signer = created.signer;
    std::unique_lock state(state_mu_);
    keys_[name] = std::move(key);
    UpdateDeadlineLocked();
    return Status::Ok();
  }

  // The longest ttl of the roles that use key `name`, and one such role. Needs state_mu_.
  std::pair<seconds, std::string> LongestRoleTtlLocked(std::string_view name) const {
    std::pair<seconds, std::string> longest{seconds(0), ""};
    for (const auto& [role_name, role] : roles_) {
      if (role.key == name && role.ttl > longest.first) longest = {role.ttl, role_name};
    }
    return longest;
  }

  Status CheckVerificationTtl(std::string_view key_name, seconds verification_ttl) const {
    std::shared_lock state(state_mu_);
    const auto [longest, role] = LongestRoleTtlLocked(key_name);
    if (verification_ttl < longest) {
      return InvalidArgumentError("verification_ttl cannot be shorter than the ttl of role \"" +
                                  role + "\" that uses this key");
    }
    return Status::Ok();
  }

  // --- keys ---

  StatusOr<Response> ListNames(bool keys) {
    std::vector<std::string> names;
    {
      std::shared_lock state(state_mu_);
      if (keys) {
        for (const auto& [name, key] : keys_) names.push_back(name);
      } else {
        for (const auto& [name, role] : roles_) names.push_back(name);
      }
    }
    if (names.empty()) return NotFoundError("");
    return DataResponse(json{{"keys", std::move(names)}});
  }

  StatusOr<Response> ReadKey(const Request& request, const std::string& name) {
    LOCKBOX_RETURN_IF_ERROR(Maintain(request));
    std::shared_lock state(state_mu_);
    const auto it = keys_.find(name);
    if (it == keys_.end()) return NotFoundError("");
    return DataResponse(KeyToJson(it->second));
  }

  StatusOr<Response> WriteKey(const Request& request, const std::string& name) {
    LOCKBOX_ASSIGN_OR_RETURN(auto algorithm_name, logical::GetString(request.data, "algorithm"));
    LOCKBOX_ASSIGN_OR_RETURN(auto rotation_period,
                             logical::GetDuration(request.data, "rotation_period"));
    LOCKBOX_ASSIGN_OR_RETURN(auto verification_ttl,
                             logical::GetDuration(request.data, "verification_ttl"));
    std::optional<Algorithm> algorithm;
    if (algorithm_name) {
      LOCKBOX_ASSIGN_OR_RETURN(algorithm, FindAlgorithm(*algorithm_name));
    }
    if (rotation_period && *rotation_period < options_.min_rotation_period) {
      return InvalidArgumentError("rotation_period must be at least " +
                                  logical::FormatGoDuration(options_.min_rotation_period));
    }
    if (verification_ttl && verification_ttl->count() == 0) {
      return InvalidArgumentError("verification_ttl must be positive");
    }

    std::lock_guard write(write_mu_);
    std::optional<Key> existing;
    {
      std::shared_lock state(state_mu_);
      if (auto it = keys_.find(name); it != keys_.end()) {
        existing = Key{it->second.algorithm,
                       it->second.rotation_period,
                       it->second.verification_ttl,
                       it->second.current_version,
                       it->second.next_rotation,
                       {},
                       std::nullopt};
      }
    }
    if (!existing) {
      Key key;
      key.algorithm = algorithm ? std::string(algorithm->name) : "ES256";
      key.rotation_period = rotation_period.value_or(options_.default_rotation_period);
      key.verification_ttl = verification_ttl.value_or(options_.default_verification_ttl);
      LOCKBOX_RETURN_IF_ERROR(CreateKeyLocked(request, name, std::move(key)));
      return AuditedEmptyResponse();
    }
    const seconds new_verification_ttl = verification_ttl.value_or(existing->verification_ttl);
    LOCKBOX_RETURN_IF_ERROR(CheckVerificationTtl(name, new_verification_ttl));
    const Clock::time_point now = options_.clock();
    const seconds new_rotation_period = rotation_period.value_or(existing->rotation_period);
    const Clock::time_point next_rotation = new_rotation_period != existing->rotation_period
                                                ? now + new_rotation_period
                                                : existing->next_rotation;
    LOCKBOX_RETURN_IF_ERROR(store_.Commit([&](store::Transaction& tx) -> Status {
      LOCKBOX_RETURN_IF_ERROR(
          tx.Execute("UPDATE identity_keys SET rotation_period = ?, verification_ttl = ?, "
                     "next_rotation = ? WHERE mount_uuid = ? AND name = ?",
                     {static_cast<std::int64_t>(new_rotation_period.count()),
                      static_cast<std::int64_t>(new_verification_ttl.count()),
                      ToUnixNanos(next_rotation), uuid_, name})
              .status());
      audit::Event event = RequestEvent(request, "identity.key.update");
      event.details = {
          {"key", name},
          {"rotation_period", static_cast<std::int64_t>(new_rotation_period.count())},
          {"verification_ttl", static_cast<std::int64_t>(new_verification_ttl.count())}};
      return events_.Append(tx, std::move(event));
    }));
    {
      std::unique_lock state(state_mu_);
      Key& key = keys_.at(name);
      key.rotation_period = new_rotation_period;
      key.verification_ttl = new_verification_ttl;
      key.next_rotation = next_rotation;
      UpdateDeadlineLocked();
    }
    // A new algorithm needs a new key: Vault rotates when the algorithm changes.
    if (algorithm && algorithm->name != existing->algorithm) {
      LOCKBOX_RETURN_IF_ERROR(
          RotateLocked(request, name, algorithm, std::nullopt, /*scheduled=*/false));
    }
    return AuditedEmptyResponse();
  }

  StatusOr<Response> RotateKeyRequest(const Request& request, const std::string& name) {
    LOCKBOX_ASSIGN_OR_RETURN(auto verification_ttl,
                             logical::GetDuration(request.data, "verification_ttl"));
    std::lock_guard write(write_mu_);
    {
      std::shared_lock state(state_mu_);
      if (!keys_.contains(name)) {
        return InvalidArgumentError("key \"" + name + "\" does not exist");
      }
    }
    if (verification_ttl) LOCKBOX_RETURN_IF_ERROR(CheckVerificationTtl(name, *verification_ttl));
    LOCKBOX_RETURN_IF_ERROR(
        RotateLocked(request, name, std::nullopt, verification_ttl, /*scheduled=*/false));
    return AuditedEmptyResponse();
  }

  StatusOr<Response> DeleteKey(const Request& request, const std::string& name) {
    std::lock_guard write(write_mu_);
    std::vector<std::string> labels;
    {
      std::shared_lock state(state_mu_);
      const auto it = keys_.find(name);
      if (it == keys_.end()) return Response{};
      std::string users;
      for (const auto& [role_name, role] : roles_) {
        if (role.key == name) users += (users.empty() ? "" : ", ") + role_name;
      }
      if (!users.empty()) {
        return InvalidArgumentError(
            "unable to delete key \"" + name +
            "\" because it is currently referenced by these roles: " + users);
      }
      for (const auto& [number, version] : it->second.versions) labels.push_back(version.label);
    }
    // HSM objects first, as in Purge(): a retry after a failed commit finishes the job.
    for (const std::string& label : labels) {
      LOCKBOX_RETURN_IF_ERROR(hsm_.DestroyObjectsByLabel(label).status());
    }
    LOCKBOX_RETURN_IF_ERROR(store_.Commit([&](store::Transaction& tx) -> Status {
      LOCKBOX_RETURN_IF_ERROR(
          tx.Execute("DELETE FROM identity_key_versions WHERE mount_uuid = ? AND key_name = ?",
                     {uuid_, name})
              .status());
      LOCKBOX_RETURN_IF_ERROR(
          tx.Execute("DELETE FROM identity_keys WHERE mount_uuid = ? AND name = ?", {uuid_, name})
              .status());
      audit::Event event = RequestEvent(request, "identity.key.delete");
      event.details = {{"key", name},
                       {"hsm_keys_destroyed", static_cast<std::int64_t>(labels.size())}};
      return events_.Append(tx, std::move(event));
    }));
    std::unique_lock state(state_mu_);
    keys_.erase(name);
    UpdateDeadlineLocked();
    return AuditedEmptyResponse();
  }

  // --- roles ---

  StatusOr<Response> ReadRole(const std::string& name) {
    std::shared_lock state(state_mu_);
    const auto it = roles_.find(name);
    if (it == roles_.end()) return NotFoundError("");
    return DataResponse(RoleToJson(it->second));
  }

  StatusOr<Response> WriteRole(const Request& request, const std::string& name) {
    LOCKBOX_ASSIGN_OR_RETURN(auto key_name, logical::GetString(request.data, "key"));
    LOCKBOX_ASSIGN_OR_RETURN(auto ttl, logical::GetDuration(request.data, "ttl"));
    LOCKBOX_ASSIGN_OR_RETURN(auto client_id, logical::GetString(request.data, "client_id"));
    LOCKBOX_ASSIGN_OR_RETURN(auto template_text, logical::GetString(request.data, "template"));
    if (template_text && !template_text->empty()) {
      return InvalidArgumentError("template is not supported: tokens carry the standard claims");
    }
    if (key_name) LOCKBOX_RETURN_IF_ERROR(ValidateObjectName(*key_name, "key"));
    if (ttl && (ttl->count() == 0 || *ttl > options_.max_role_ttl)) {
      return InvalidArgumentError("ttl must be positive and at most " +
                                  logical::FormatGoDuration(options_.max_role_ttl));
    }
    if (client_id && (client_id->empty() || client_id->size() > kMaxClientIdLength ||
                      !std::all_of(client_id->begin(), client_id->end(),
                                   [](char c) { return c > 0x20 && c < 0x7f; }))) {
      return InvalidArgumentError(
          "invalid value for \"client_id\": 1 to 256 printable ASCII characters");
    }

    std::lock_guard write(write_mu_);
    std::optional<Role> existing;
    {
      std::shared_lock state(state_mu_);
      if (auto it = roles_.find(name); it != roles_.end()) existing = it->second;
    }
    Role role = existing.value_or(Role{std::string(kDefaultKey), options_.default_role_ttl, ""});
    if (key_name) role.key = *key_name;
    if (ttl) role.ttl = *ttl;
    if (client_id) role.client_id = *client_id;
    if (role.client_id.empty()) {
      role.client_id = crypto::Base64UrlEncode(crypto::RandomVector(kClientIdBytes));
    }
    std::optional<seconds> key_verification_ttl;
    {
      std::shared_lock state(state_mu_);
      if (auto it = keys_.find(role.key); it != keys_.end()) {
        key_verification_ttl = it->second.verification_ttl;
      }
    }
    if (!key_verification_ttl && role.key != kDefaultKey) {
      return InvalidArgumentError("key \"" + role.key + "\" does not exist");
    }
    if (role.ttl > key_verification_ttl.value_or(options_.default_verification_ttl)) {
      return InvalidArgumentError("ttl cannot be longer than the verification_ttl of key \"" +
                                  role.key + "\"");
    }
    if (!key_verification_ttl) {
      // The "default" key is made on first use, as Vault does.
      Key key;
      key.algorithm = "ES256";
      key.rotation_period = options_.default_rotation_period;
      key.verification_ttl = options_.default_verification_ttl;
      LOCKBOX_RETURN_IF_ERROR(CreateKeyLocked(request, role.key, std::move(key)));
    }
    LOCKBOX_RETURN_IF_ERROR(store_.Commit([&](store::Transaction& tx) -> Status {
      const std::vector<store::Value> values = {
          role.key, static_cast<std::int64_t>(role.ttl.count()), role.client_id, uuid_, name};
      if (existing) {
        LOCKBOX_RETURN_IF_ERROR(tx.Execute("UPDATE identity_roles SET key_name = ?, ttl = ?, "
                                           "client_id = ? WHERE mount_uuid = ? AND name = ?",
                                           values)
                                    .status());
      } else {
        LOCKBOX_RETURN_IF_ERROR(tx.Execute("INSERT INTO identity_roles (key_name, ttl, "
                                           "client_id, mount_uuid, name) VALUES (?, ?, ?, ?, ?)",
                                           values)
                                    .status());
      }
      audit::Event event =
          RequestEvent(request, existing ? "identity.role.update" : "identity.role.create");
      event.details = {{"role", name},
                       {"key", role.key},
                       {"ttl", static_cast<std::int64_t>(role.ttl.count())},
                       {"client_id", role.client_id}};
      return events_.Append(tx, std::move(event));
    }));
    std::unique_lock state(state_mu_);
    roles_[name] = std::move(role);
    return AuditedEmptyResponse();
  }

  StatusOr<Response> DeleteRole(const Request& request, const std::string& name) {
    std::lock_guard write(write_mu_);
    {
      std::shared_lock state(state_mu_);
      if (!roles_.contains(name)) return Response{};
    }
    LOCKBOX_RETURN_IF_ERROR(store_.Commit([&](store::Transaction& tx) -> Status {
      LOCKBOX_RETURN_IF_ERROR(
          tx.Execute("DELETE FROM identity_roles WHERE mount_uuid = ? AND name = ?", {uuid_, name})
              .status());
      audit::Event event = RequestEvent(request, "identity.role.delete");
      event.details = {{"role", name}};
      return events_.Append(tx, std::move(event));
    }));
    std::unique_lock state(state_mu_);
    roles_.erase(name);
    return AuditedEmptyResponse();
  }

  // --- tokens ---

  // What a token needs, copied out of the state so that signing runs without the lock.
  struct Signer {
    std::string key_name;
    std::int64_t version = 0;
    Algorithm algorithm;
    std::string kid;
    std::string label;
    std::optional<hsm::SigningKey> handle;
  };

  StatusOr<Signer> CurrentSigner(const std::string& key_name) {
    Signer signer;
    {
      std::shared_lock state(state_mu_);
      const auto it = keys_.find(key_name);
      if (it == keys_.end()) {
        return FailedPreconditionError("key \"" + key_name + "\" does not exist");
      }
      const KeyVersion& version = it->second.versions.at(it->second.current_version);
      LOCKBOX_ASSIGN_OR_RETURN(signer.algorithm, FindAlgorithm(version.algorithm));
      signer.key_name = key_name;
      signer.version = it->second.current_version;
      signer.kid = version.kid;
      signer.label = version.label;
      signer.handle = it->second.signer;
    }
    if (signer.handle) return signer;
    // First use since start: find the HSM object and remember it if still current.
    LOCKBOX_ASSIGN_OR_RETURN(hsm::SigningKey handle, hsm_.FindSigningKey(signer.label));
    if (handle.algorithm != signer.algorithm.hsm) {
      return DataLossError("identity key '" + key_name + "' has the wrong type in the HSM");
    }
    signer.handle = handle;
    std::unique_lock state(state_mu_);
    if (auto it = keys_.find(key_name);
        it != keys_.end() && it->second.current_version == signer.version) {
      it->second.signer = handle;
    }
    return signer;
  }

  StatusOr<Response> IssueToken(const Request& request, const std::string& role_name) {
    const logical::Principal& principal = request.principal;
    const std::string& subject =
        principal.entity_id.empty() ? principal.accessor : principal.entity_id;
    if (subject.empty()) return PermissionDeniedError("permission denied");
    LOCKBOX_RETURN_IF_ERROR(Maintain(request));
    Role role;
    {
      std::shared_lock state(state_mu_);
      const auto it = roles_.find(role_name);
      if (it == roles_.end()) {
        return InvalidArgumentError("role \"" + role_name + "\" not found");
      }
      role = it->second;
    }
    LOCKBOX_ASSIGN_OR_RETURN(Signer signer, CurrentSigner(role.key));

    const Clock::time_point now = options_.clock();
    const auto iat = std::chrono::floor<seconds>(now);
    seconds ttl = role.ttl;
    if (principal.expire_time) {
      // Whole seconds the caller's token has left: the JWT must not outlive it.
      const seconds left = std::chrono::floor<seconds>(*principal.expire_time - now);
      if (left.count() <= 0) return PermissionDeniedError("permission denied");
      ttl = std::min(ttl, left);
    }
    const std::string jti = logical::NewUuid();
    const json header = {{"alg", signer.algorithm.name}, {"kid", signer.kid}, {"typ", "JWT"}};
    const json claims = {{"iss", options_.issuer},
                         {"sub", subject},
                         {"aud", role.client_id},
                         {"iat", iat.time_since_epoch().count()},
                         {"exp", (iat + ttl).time_since_epoch().count()},
                         {"jti", jti}};
    const std::string signing_input =
        crypto::JwsSigningInput(header, crypto::AsBytes(claims.dump()));
    LOCKBOX_ASSIGN_OR_RETURN(auto signature,
                             hsm_.Sign(*signer.handle, crypto::AsBytes(signing_input)));

    audit::Event event = RequestEvent(request, "identity.token");
    event.details = {{"role", role_name},
                     {"key", signer.key_name},
                     {"key_version", signer.version},
                     {"jti", jti},
                     {"ttl", static_cast<std::int64_t>(ttl.count())}};
    LOCKBOX_RETURN_IF_ERROR(events_.Record(std::move(event)));
    Response response = DataResponse(json{{"token", crypto::JwsCompact(signing_input, signature)},
                                          {"client_id", role.client_id},
                                          {"ttl", ttl.count()}});
    response.audited = true;
    return response;
  }

  // --- public documents ---

  StatusOr<Response> Jwks(const Request& request) {
    LOCKBOX_RETURN_IF_ERROR(Maintain(request));
    json keys = json::array();
    std::shared_lock state(state_mu_);
    for (const auto& [name, key] : keys_) {
      for (const auto& [number, version] : key.versions) keys.push_back(version.public_jwk);
    }
    return RawResponse(json{{"keys", std::move(keys)}});
  }

  StatusOr<Response> Discovery() const {
    json algorithms = json::array();
    for (const Algorithm& algorithm : kAlgorithms) algorithms.push_back(algorithm.name);
    return RawResponse(json{{"issuer", options_.issuer},
                            {"jwks_uri", options_.issuer + "/.well-known/keys"},
                            {"response_types_supported", json::array({"id_token"})},
                            {"subject_types_supported", json::array({"public"})},
                            {"id_token_signing_alg_values_supported", std::move(algorithms)}});
  }

  // Why `token` is not an active token of this mount (its signature, issuer, expiry and, when
  // given, audience), or OK.
  Status CheckToken(std::string_view token, const std::optional<std::string>& client_id) {
    LOCKBOX_ASSIGN_OR_RETURN(crypto::JwsParts parts, crypto::ParseJwsCompact(token));
    const auto kid = parts.header.find("kid");
    if (kid == parts.header.end() || !kid->is_string()) {
      return InvalidArgumentError("token has no kid");
    }
    std::optional<json> jwk;
    std::string algorithm_name;
    {
      std::shared_lock state(state_mu_);
      for (const auto& [name, key] : keys_) {
        for (const auto& [number, version] : key.versions) {
          if (version.kid == kid->get_ref<const std::string&>()) {
            jwk = version.public_jwk;
            algorithm_name = version.algorithm;
          }
        }
      }
    }
    if (!jwk) return InvalidArgumentError("unknown signing key");
    LOCKBOX_ASSIGN_OR_RETURN(const Algorithm algorithm, FindAlgorithm(algorithm_name));
    LOCKBOX_ASSIGN_OR_RETURN(crypto::PublicKey key, crypto::PublicKeyFromJwk(*jwk));
    LOCKBOX_RETURN_IF_ERROR(crypto::VerifyJws(parts, key, algorithm.verify));
    const json claims = json::parse(parts.payload, nullptr, /*allow_exceptions=*/false);
    if (!claims.is_object() || !claims.contains("exp") || !claims["exp"].is_number_integer() ||
        !claims.contains("iss") || !claims["iss"].is_string()) {
      return InvalidArgumentError("malformed claims");
    }
    if (claims["iss"].get<std::string>() != options_.issuer) {
      return InvalidArgumentError("wrong issuer");
    }
    const auto now = std::chrono::floor<seconds>(options_.clock()).time_since_epoch().count();
    if (claims["exp"].get<std::int64_t>() <= now) return InvalidArgumentError("token expired");
    if (client_id && claims.value("aud", json()) != *client_id) {
      return InvalidArgumentError("wrong audience");
    }
    return Status::Ok();
  }

  StatusOr<Response> Introspect(const Request& request) {
    LOCKBOX_ASSIGN_OR_RETURN(auto token, logical::GetString(request.data, "token"));
    LOCKBOX_ASSIGN_OR_RETURN(auto client_id, logical::GetString(request.data, "client_id"));
    if (!token || token->empty()) return InvalidArgumentError("missing token");
    LOCKBOX_RETURN_IF_ERROR(Maintain(request));
    const Status status = CheckToken(*token, client_id);
    if (status.ok()) return RawResponse(json{{"active", true}});
    if (status.code() != StatusCode::kInvalidArgument && status.code() != StatusCode::kDataLoss) {
      return status;
    }
    return RawResponse(json{{"active", false}, {"error", status.message()}});
  }

  const std::string uuid_;
  hsm::Hsm& hsm_;
  store::Store& store_;
  audit_log::EventLog& events_;
  const IdentityOptions options_;

  // Serialises every change (and HSM key generation/destruction); taken before state_mu_.
  std::mutex write_mu_;
  std::string mount_path_;  // guarded by write_mu_
  mutable std::shared_mutex state_mu_;
  std::map<std::string, Key> keys_;    // guarded by state_mu_
  std::map<std::string, Role> roles_;  // guarded by state_mu_
  std::atomic<std::int64_t> next_deadline_ns_{std::numeric_limits<std::int64_t>::max()};
};

}  // namespace

std::vector<store::Migration> IdentityMigrations() {
  return {{"identity", 1, R"sql(
CREATE TABLE identity_keys (
  mount_uuid TEXT NOT NULL,
  name TEXT NOT NULL,
  algorithm TEXT NOT NULL,
  rotation_period INTEGER NOT NULL,
  verification_ttl INTEGER NOT NULL,
  current_version INTEGER NOT NULL,
  next_rotation INTEGER NOT NULL,
  PRIMARY KEY (mount_uuid, name)
);
CREATE TABLE identity_key_versions (
  mount_uuid TEXT NOT NULL,
  key_name TEXT NOT NULL,
  version INTEGER NOT NULL,
  hsm_label TEXT NOT NULL,
  algorithm TEXT NOT NULL,
  kid TEXT NOT NULL,
  public_jwk TEXT NOT NULL,
  created INTEGER NOT NULL,
  retire_after INTEGER,
  PRIMARY KEY (mount_uuid, key_name, version)
);
CREATE TABLE identity_roles (
  mount_uuid TEXT NOT NULL,
  name TEXT NOT NULL,
  key_name TEXT NOT NULL,
  ttl INTEGER NOT NULL,
  client_id TEXT NOT NULL,
  PRIMARY KEY (mount_uuid, name)
);
)sql"}};
}

StatusOr<std::unique_ptr<logical::Backend>> NewIdentityBackend(const logical::MountEntry& mount,
                                                               hsm::Hsm& hsm, store::Store& store,
                                                               audit_log::EventLog& events,
                                                               IdentityOptions options) {
  if (mount.uuid.empty() || !mount.path.ends_with('/')) {
    return InvalidArgumentError("identity mount needs a uuid and a path ending in '/'");
  }
  LOCKBOX_RETURN_IF_ERROR(store.Migrate(IdentityMigrations()));
  auto backend = std::make_unique<IdentityBackend>(mount, hsm, store, events, std::move(options));
  LOCKBOX_RETURN_IF_ERROR(backend->Load());
  return std::unique_ptr<logical::Backend>(std::move(backend));
}

}  // namespace lockbox::auth
