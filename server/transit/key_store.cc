#include "server/transit/key_store.h"

#include <algorithm>
#include <utility>

#include <nlohmann/json.hpp>

#include "crypto/encoding.h"
#include "crypto/jwk.h"
#include "crypto/random.h"
#include "server/transit/transit.h"

namespace lockbox::transit {
namespace {

// Context the per-version secrets are sealed under (bound as the keyring's associated data).
constexpr std::string_view kHmacSecretContext = "lockbox/transit/hmac-key/v1";
constexpr std::string_view kConvergentSecretContext = "lockbox/transit/convergent-key/v1";
constexpr std::size_t kConvergentSecretSize = 32;

std::int64_t ToNanos(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
std::chrono::system_clock::time_point FromNanos(std::int64_t ns) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::nanoseconds(ns)));
}

keyring::Caller AuditedByCaller(const keyring::Caller& caller) {
  keyring::Caller c = caller;
  c.audited_by_caller = true;
  return c;
}

Status DeleteRows(store::Transaction& tx, const std::string& mount_uuid, const std::string& name) {
  LOCKBOX_RETURN_IF_ERROR(
      tx.Execute("DELETE FROM transit_versions WHERE mount_uuid = ? AND name = ?",
                 {mount_uuid, name})
          .status());
  return tx
      .Execute("DELETE FROM transit_keys WHERE mount_uuid = ? AND name = ?", {mount_uuid, name})
      .status();
}

}  // namespace

std::optional<KeyType> ParseKeyType(std::string_view name) {
  if (name == "aes256-gcm96") return KeyType::kAes256Gcm96;
  if (name == "chacha20-poly1305") return KeyType::kChaCha20Poly1305;
  if (name == "ecdsa-p256") return KeyType::kEcdsaP256;
  if (name == "ed25519") return KeyType::kEd25519;
  if (name == "hmac") return KeyType::kHmac;
  return std::nullopt;
}

std::string_view KeyTypeName(KeyType type) {
  switch (type) {
    case KeyType::kAes256Gcm96:
      return "aes256-gcm96";
    case KeyType::kChaCha20Poly1305:
      return "chacha20-poly1305";
    case KeyType::kEcdsaP256:
      return "ecdsa-p256";
    case KeyType::kEd25519:
      return "ed25519";
    case KeyType::kHmac:
      return "hmac";
  }
  return "unknown";
}

KeyStore::KeyStore(logical::MountEntry entry, keyring::Keyring& keyring, hsm::Hsm& hsm,
                   store::Store& store, audit_log::EventLog& events, Clock clock)
    : entry_(std::move(entry)),
      keyring_(keyring),
      hsm_(hsm),
      store_(store),
      events_(events),
      clock_(std::move(clock)) {}

audit::Event KeyStore::Event(std::string_view op, const logical::Request& request,
                             std::string_view key_name) {
  audit::Event e;
  e.op = "transit." + std::string(op);
  e.path = request.path;
  e.request_id = request.caller.request_id;
  e.actor = request.caller.actor;
  e.remote_addr = request.caller.remote_addr;
  if (!key_name.empty()) e.details["key"] = std::string(key_name);
  return e;
}

std::string KeyStore::SigningLabel(std::string_view name, std::uint32_t version) const {
  return "lockbox/transit/" + entry_.uuid + "/" + std::string(name) + "/v" +
         std::to_string(version);
}

Status KeyStore::Load() {
  std::map<std::string, std::shared_ptr<TransitKey>, std::less<>> loaded;
  LOCKBOX_RETURN_IF_ERROR(store_.Read([&](store::Transaction& tx) -> Status {
    LOCKBOX_ASSIGN_OR_RETURN(
        auto rows, tx.Query("SELECT name, type, derived, convergent, hmac_key_size, "
                            "deletion_allowed, created FROM transit_keys WHERE mount_uuid = ?",
                            {entry_.uuid}));
    for (const auto& row : rows) {
      auto k = std::make_shared<TransitKey>();
      LOCKBOX_ASSIGN_OR_RETURN(k->name, store::GetText(row, 0));
      LOCKBOX_ASSIGN_OR_RETURN(auto type_name, store::GetText(row, 1));
      auto type = ParseKeyType(type_name);
      if (!type) return DataLossError("transit: key '" + k->name + "' has an unknown type");
      k->policy.type = *type;
      LOCKBOX_ASSIGN_OR_RETURN(auto derived, store::GetInt(row, 2));
      LOCKBOX_ASSIGN_OR_RETURN(auto convergent, store::GetInt(row, 3));
      LOCKBOX_ASSIGN_OR_RETURN(auto hmac_key_size, store::GetInt(row, 4));
      LOCKBOX_ASSIGN_OR_RETURN(auto deletion_allowed, store::GetInt(row, 5));
      LOCKBOX_ASSIGN_OR_RETURN(auto created, store::GetInt(row, 6));
      k->policy.derived = derived != 0;
      k->policy.convergent = convergent != 0;
      k->policy.hmac_key_size = static_cast<std::uint32_t>(hmac_key_size);
      k->deletion_allowed = deletion_allowed != 0;
      k->created = FromNanos(created);
      k->keyring_name = TransitKeyringName(entry_, k->name);
      loaded.emplace(k->name, std::move(k));
    }
    LOCKBOX_ASSIGN_OR_RETURN(
        auto version_rows,
        tx.Query("SELECT name, version, hmac_secret, convergent_secret, signing_label, public_key "
                 "FROM transit_versions WHERE mount_uuid = ?",
                 {entry_.uuid}));
    for (const auto& row : version_rows) {
      LOCKBOX_ASSIGN_OR_RETURN(auto name, store::GetText(row, 0));
      auto it = loaded.find(name);
      if (it == loaded.end()) continue;
      auto m = std::make_shared<VersionMaterial>();
      LOCKBOX_ASSIGN_OR_RETURN(auto version, store::GetInt(row, 1));
      m->version = static_cast<std::uint32_t>(version);
      LOCKBOX_ASSIGN_OR_RETURN(m->hmac_secret, store::GetText(row, 2));
      LOCKBOX_ASSIGN_OR_RETURN(m->convergent_secret, store::GetText(row, 3));
      LOCKBOX_ASSIGN_OR_RETURN(m->signing_label, store::GetText(row, 4));
      LOCKBOX_ASSIGN_OR_RETURN(m->public_key, store::GetText(row, 5));
      it->second->versions.emplace(m->version, std::move(m));
    }
    return Status::Ok();
  }));
  std::unique_lock lock(mu_);
  for (auto& [name, k] : loaded) {
    // A transit row whose keyring key is gone cannot be used; its name may be created again.
    if (!keyring_.ReadKey(k->keyring_name).ok()) continue;
    keys_.emplace(name, std::move(k));
  }
  return Status::Ok();
}

std::shared_ptr<const TransitKey> KeyStore::Find(std::string_view name) const {
  std::shared_lock lock(mu_);
  auto it = keys_.find(name);
  return it == keys_.end() ? nullptr : it->second;
}

std::vector<std::string> KeyStore::List() const {
  std::shared_lock lock(mu_);
  std::vector<std::string> names;
  names.reserve(keys_.size());
  for (const auto& [name, k] : keys_) names.push_back(name);
  return names;
}

void KeyStore::Publish(std::shared_ptr<const TransitKey> key) {
  std::unique_lock lock(mu_);
  keys_[key->name] = std::move(key);
}

void KeyStore::Forget(const std::string& name) {
  std::unique_lock lock(mu_);
  keys_.erase(name);
}

StatusOr<std::shared_ptr<VersionMaterial>> KeyStore::NewMaterial(const TransitKey& key,
                                                                 std::uint32_t version,
                                                                 const keyring::Caller& caller) {
  auto m = std::make_shared<VersionMaterial>();
  m->version = version;
  const keyring::Caller quiet = AuditedByCaller(caller);
  {
    crypto::SecureBuffer secret = crypto::RandomSecret(key.policy.hmac_key_size);
    LOCKBOX_ASSIGN_OR_RETURN(m->hmac_secret,
                             keyring_.Encrypt(key.keyring_name, secret.span(),
                                              crypto::AsBytes(kHmacSecretContext), version, quiet));
    m->hmac_key = std::make_shared<const crypto::SecureBuffer>(std::move(secret));
  }
  if (key.policy.convergent) {
    crypto::SecureBuffer secret = crypto::RandomSecret(kConvergentSecretSize);
    LOCKBOX_ASSIGN_OR_RETURN(
        m->convergent_secret,
        keyring_.Encrypt(key.keyring_name, secret.span(), crypto::AsBytes(kConvergentSecretContext),
                         version, quiet));
    m->convergent_key = std::make_shared<const crypto::SecureBuffer>(std::move(secret));
  }
  if (SupportsSigning(key.policy.type)) {
    const bool ed = key.policy.type == KeyType::kEd25519;
    m->signing_label = SigningLabel(key.name, version);
    // An object under this label can only be left over from a create or rotate cut short before
    // its row was written: it never signed anything. Start clean.
    LOCKBOX_RETURN_IF_ERROR(hsm_.DestroyObjectsByLabel(m->signing_label).status());
    LOCKBOX_ASSIGN_OR_RETURN(auto signing_key,
                             hsm_.GenerateSigningKey(ed ? hsm::SigningAlgorithm::kEd25519
                                                        : hsm::SigningAlgorithm::kEcdsaP256Sha256,
                                                     m->signing_label));
    LOCKBOX_ASSIGN_OR_RETURN(auto jwk, hsm_.PublicJwk(signing_key));
    LOCKBOX_ASSIGN_OR_RETURN(auto public_key, crypto::PublicKeyFromJwk(jwk));
    if (ed) {
      LOCKBOX_ASSIGN_OR_RETURN(auto raw, crypto::Base64UrlDecode(jwk.at("x").get<std::string>()));
      m->public_key = crypto::Base64Encode(raw);
    } else {
      m->public_key = public_key.ToPem();
    }
    m->signing_key = std::move(signing_key);
    m->verify_key = std::move(public_key);
  }
  return m;
}

Status KeyStore::SaveVersion(store::Transaction& tx, const TransitKey& key,
                             const VersionMaterial& m) {
  return tx
      .Execute(
          "INSERT INTO transit_versions (mount_uuid, name, version, hmac_secret, "
          "convergent_secret, signing_label, public_key) VALUES (?, ?, ?, ?, ?, ?, ?)",
          {entry_.uuid, key.name, std::int64_t{m.version}, m.hmac_secret, m.convergent_secret,
           m.signing_label, m.public_key})
      .status();
}

StatusOr<std::shared_ptr<const TransitKey>> KeyStore::Create(std::string_view name,
                                                             const KeyPolicy& policy,
                                                             const logical::Request& request) {
  std::lock_guard admin(admin_mu_);
  if (Find(name)) return AlreadyExistsError("key " + std::string(name) + " already exists");
  auto key = std::make_shared<TransitKey>();
  key->name = std::string(name);
  key->keyring_name = TransitKeyringName(entry_, key->name);
  key->policy = policy;
  key->created = clock_();
  keyring::KeyOptions options;
  if (policy.type == KeyType::kChaCha20Poly1305)
    options.cipher = keyring::DataCipher::kChaCha20Poly1305;
  Status created = keyring_.CreateKey(key->keyring_name, request.caller, options);
  if (created.code() == StatusCode::kAlreadyExists) {
    // An orphan of a create cut short (no transit row, so never used): replace it.
    LOCKBOX_RETURN_IF_ERROR(keyring_.DestroyKeyNow(key->keyring_name, request.caller));
    created = keyring_.CreateKey(key->keyring_name, request.caller, options);
  }
  LOCKBOX_RETURN_IF_ERROR(created);
  auto material = NewMaterial(*key, 1, request.caller);
  audit::Event event = Event("create", request, name);
  event.details["type"] = std::string(KeyTypeName(policy.type));
  event.details["derived"] = policy.derived;
  event.details["convergent_encryption"] = policy.convergent;
  Status committed = material.status();
  if (committed.ok()) {
    committed = store_.Commit([&](store::Transaction& tx) -> Status {
      LOCKBOX_RETURN_IF_ERROR(DeleteRows(tx, entry_.uuid, key->name));
      LOCKBOX_RETURN_IF_ERROR(
          tx.Execute("INSERT INTO transit_keys (mount_uuid, name, type, derived, convergent, "
                     "hmac_key_size, deletion_allowed, created) VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
                     {entry_.uuid, key->name, std::string(KeyTypeName(policy.type)),
                      std::int64_t{policy.derived}, std::int64_t{policy.convergent},
                      std::int64_t{policy.hmac_key_size}, ToNanos(key->created)})
              .status());
      LOCKBOX_RETURN_IF_ERROR(SaveVersion(tx, *key, **material));
      return events_.Append(tx, event);
    });
  }
  if (!committed.ok()) {
    // Best effort: do not leave the unused keyring key (or HSM key) behind; a later create
    // would clean them up anyway.
    (void)DestroySigningKeys(*key);
    (void)keyring_.DestroyKeyNow(key->keyring_name, request.caller);
    return committed;
  }
  key->versions.emplace(1, std::move(*material));
  Publish(key);
  return std::shared_ptr<const TransitKey>(key);
}

Status KeyStore::Rotate(const TransitKey& key, const logical::Request& request) {
  std::lock_guard admin(admin_mu_);
  auto current = Find(key.name);
  if (!current) return NotFoundError("");
  LOCKBOX_RETURN_IF_ERROR(keyring_.RotateKey(current->keyring_name, request.caller));
  LOCKBOX_ASSIGN_OR_RETURN(auto meta, keyring_.ReadKey(current->keyring_name));
  LOCKBOX_ASSIGN_OR_RETURN(auto material,
                           NewMaterial(*current, meta.latest_version, request.caller));
  audit::Event event = Event("rotate", request, key.name);
  event.details["version"] = meta.latest_version;
  LOCKBOX_RETURN_IF_ERROR(store_.Commit([&](store::Transaction& tx) -> Status {
    LOCKBOX_RETURN_IF_ERROR(SaveVersion(tx, *current, *material));
    return events_.Append(tx, event);
  }));
  auto next = std::make_shared<TransitKey>(*current);
  next->versions[material->version] = std::move(material);
  Publish(std::move(next));
  return Status::Ok();
}

StatusOr<std::shared_ptr<const VersionMaterial>> KeyStore::Material(
    const TransitKey& key, std::uint32_t version, const logical::Request& request) {
  if (auto it = key.versions.find(version); it != key.versions.end()) return it->second;
  std::lock_guard admin(admin_mu_);
  auto current = Find(key.name);
  if (!current) return NotFoundError("");
  if (auto it = current->versions.find(version); it != current->versions.end()) {
    return it->second;
  }
  // A version the keyring has but whose material was never recorded (a rotate cut short).
  LOCKBOX_ASSIGN_OR_RETURN(auto meta, keyring_.ReadKey(current->keyring_name));
  if (version < meta.min_available_version || version > meta.latest_version) {
    return InvalidArgumentError("invalid key version");
  }
  LOCKBOX_ASSIGN_OR_RETURN(auto material, NewMaterial(*current, version, request.caller));
  audit::Event event = Event("version_material", request, key.name);
  event.details["version"] = version;
  LOCKBOX_RETURN_IF_ERROR(store_.Commit([&](store::Transaction& tx) -> Status {
    LOCKBOX_RETURN_IF_ERROR(SaveVersion(tx, *current, *material));
    return events_.Append(tx, event);
  }));
  auto next = std::make_shared<TransitKey>(*current);
  next->versions[version] = material;
  Publish(std::move(next));
  return std::shared_ptr<const VersionMaterial>(std::move(material));
}

Status KeyStore::Configure(const TransitKey& key,
                           std::optional<std::pair<std::uint32_t, std::uint32_t>> min_versions,
                           std::optional<bool> deletion_allowed, const logical::Request& request) {
  std::lock_guard admin(admin_mu_);
  auto current = Find(key.name);
  if (!current) return NotFoundError("");
  if (min_versions) {
    LOCKBOX_RETURN_IF_ERROR(keyring_.SetMinVersions(current->keyring_name, min_versions->first,
                                                    min_versions->second, request.caller));
  }
  auto next = std::make_shared<TransitKey>(*current);
  if (deletion_allowed) next->deletion_allowed = *deletion_allowed;
  audit::Event event = Event("config", request, key.name);
  event.details["deletion_allowed"] = next->deletion_allowed;
  if (min_versions) {
    event.details["min_decryption_version"] = min_versions->first;
    event.details["min_encryption_version"] = min_versions->second;
  }
  LOCKBOX_RETURN_IF_ERROR(store_.Commit([&](store::Transaction& tx) -> Status {
    LOCKBOX_RETURN_IF_ERROR(
        tx.Execute("UPDATE transit_keys SET deletion_allowed = ? WHERE "
                   "mount_uuid = ? AND name = ?",
                   {std::int64_t{next->deletion_allowed}, entry_.uuid, next->name})
            .status());
    return events_.Append(tx, event);
  }));
  Publish(std::move(next));
  return Status::Ok();
}

Status KeyStore::Trim(const TransitKey& key, std::uint32_t min_available_version,
                      const logical::Request& request) {
  std::lock_guard admin(admin_mu_);
  auto current = Find(key.name);
  if (!current) return NotFoundError("");
  auto next = std::make_shared<TransitKey>(*current);
  // Signing keys of trimmed versions go first: if that fails, nothing was trimmed.
  for (auto it = next->versions.begin();
       it != next->versions.end() && it->first < min_available_version;) {
    if (!it->second->signing_label.empty()) {
      LOCKBOX_RETURN_IF_ERROR(hsm_.DestroyObjectsByLabel(it->second->signing_label).status());
    }
    it = next->versions.erase(it);
  }
  audit::Event event = Event("trim", request, key.name);
  event.details["min_available_version"] = min_available_version;
  LOCKBOX_RETURN_IF_ERROR(keyring_.TrimVersions(
      current->keyring_name, min_available_version, request.caller,
      [&](store::Transaction& tx) -> Status {
        LOCKBOX_RETURN_IF_ERROR(
            tx.Execute("DELETE FROM transit_versions WHERE mount_uuid = ? AND name = ? AND "
                       "version < ?",
                       {entry_.uuid, current->name, std::int64_t{min_available_version}})
                .status());
        return events_.Append(tx, event);
      }));
  Publish(std::move(next));
  return Status::Ok();
}

Status KeyStore::DestroySigningKeys(const TransitKey& key) {
  if (!SupportsSigning(key.policy.type)) return Status::Ok();
  // Every version the keyring knows, recorded or not (a rotate cut short leaves an unrecorded
  // HSM key behind).
  std::uint32_t latest = key.versions.empty() ? 1 : key.versions.rbegin()->first;
  if (auto meta = keyring_.ReadKey(key.keyring_name); meta.ok()) {
    latest = std::max(latest, meta->latest_version);
  }
  for (std::uint32_t v = 1; v <= latest; ++v) {
    LOCKBOX_RETURN_IF_ERROR(hsm_.DestroyObjectsByLabel(SigningLabel(key.name, v)).status());
  }
  return Status::Ok();
}

Status KeyStore::Erase(const TransitKey& key, const audit::Event& event,
                       const keyring::Caller& caller) {
  LOCKBOX_RETURN_IF_ERROR(DestroySigningKeys(key));
  LOCKBOX_RETURN_IF_ERROR(
      keyring_.DestroyKeyNow(key.keyring_name, caller, [&](store::Transaction& tx) -> Status {
        LOCKBOX_RETURN_IF_ERROR(DeleteRows(tx, entry_.uuid, key.name));
        return events_.Append(tx, event);
      }));
  Forget(key.name);
  return Status::Ok();
}

Status KeyStore::Delete(const TransitKey& key, const logical::Request& request) {
  std::lock_guard admin(admin_mu_);
  auto current = Find(key.name);
  if (!current) return NotFoundError("");
  return Erase(*current, Event("delete", request, key.name), request.caller);
}

Status KeyStore::Purge() {
  std::lock_guard admin(admin_mu_);
  logical::Request system;
  system.path = entry_.path;
  for (const auto& name : List()) {
    auto key = Find(name);
    if (key) LOCKBOX_RETURN_IF_ERROR(Erase(*key, Event("purge", system, name), system.caller));
  }
  const std::string prefix = TransitKeyringName(entry_, "");
  for (const auto& orphan : keyring_.ListKeys()) {
    if (orphan.starts_with(prefix)) {
      LOCKBOX_RETURN_IF_ERROR(keyring_.DestroyKeyNow(orphan, system.caller));
    }
  }
  audit::Event event = Event("purge", system, "");
  return store_.Commit([&](store::Transaction& tx) -> Status {
    LOCKBOX_RETURN_IF_ERROR(
        tx.Execute("DELETE FROM transit_versions WHERE mount_uuid = ?", {entry_.uuid}).status());
    LOCKBOX_RETURN_IF_ERROR(
        tx.Execute("DELETE FROM transit_keys WHERE mount_uuid = ?", {entry_.uuid}).status());
    return events_.Append(tx, event);
  });
}

StatusOr<std::shared_ptr<const crypto::SecureBuffer>> KeyStore::HmacKey(
    const TransitKey& key, const VersionMaterial& material, const keyring::Caller& caller) {
  {
    std::lock_guard lock(material.mu);
    if (material.hmac_key) return material.hmac_key;
  }
  LOCKBOX_ASSIGN_OR_RETURN(
      auto secret, keyring_.Decrypt(key.keyring_name, material.hmac_secret,
                                    crypto::AsBytes(kHmacSecretContext), AuditedByCaller(caller)));
  std::lock_guard lock(material.mu);
  if (!material.hmac_key) {
    material.hmac_key = std::make_shared<const crypto::SecureBuffer>(std::move(secret));
  }
  return material.hmac_key;
}

StatusOr<std::shared_ptr<const crypto::SecureBuffer>> KeyStore::ConvergentKey(
    const TransitKey& key, const VersionMaterial& material, const keyring::Caller& caller) {
  {
    std::lock_guard lock(material.mu);
    if (material.convergent_key) return material.convergent_key;
  }
  if (material.convergent_secret.empty()) return InternalError("convergent key material missing");
  LOCKBOX_ASSIGN_OR_RETURN(
      auto secret,
      keyring_.Decrypt(key.keyring_name, material.convergent_secret,
                       crypto::AsBytes(kConvergentSecretContext), AuditedByCaller(caller)));
  std::lock_guard lock(material.mu);
  if (!material.convergent_key) {
    material.convergent_key = std::make_shared<const crypto::SecureBuffer>(std::move(secret));
  }
  return material.convergent_key;
}

StatusOr<hsm::SigningKey> KeyStore::SigningKey(const VersionMaterial& material) {
  {
    std::lock_guard lock(material.mu);
    if (material.signing_key) return *material.signing_key;
  }
  // Fail closed: a recorded version whose HSM key is gone is not regenerated.
  LOCKBOX_ASSIGN_OR_RETURN(auto signing_key, hsm_.FindSigningKey(material.signing_label));
  std::lock_guard lock(material.mu);
  material.signing_key = signing_key;
  return signing_key;
}

StatusOr<crypto::PublicKey> KeyStore::VerifyKey(const VersionMaterial& material) {
  {
    std::lock_guard lock(material.mu);
    if (material.verify_key) return *material.verify_key;
  }
  StatusOr<crypto::PublicKey> key = InternalError("no public key");
  if (material.public_key.starts_with("-----BEGIN")) {
    key = crypto::PublicKey::FromPem(material.public_key);
  } else {
    LOCKBOX_ASSIGN_OR_RETURN(auto raw, crypto::Base64Decode(material.public_key));
    key = crypto::PublicKeyFromJwk(
        {{"kty", "OKP"}, {"crv", "Ed25519"}, {"x", crypto::Base64UrlEncode(raw)}});
  }
  if (!key.ok()) return key.status();
  std::lock_guard lock(material.mu);
  material.verify_key = *key;
  return *key;
}

}  // namespace lockbox::transit
