// KeyStore: one transit mount's keys — their policy rows (type, derivation, deletion gate), the
// keyring key behind each, and each version's material (HMAC secret, convergent secret, HSM
// signing key). Key material rules: see transit.h.
//
// Crash safety: a create or rotate first changes the keyring, then commits the transit rows with
// the transit audit event. A keyring key without its transit row (a create cut short) is an
// orphan nobody ever used: the next create of that name destroys it first. A version without its
// transit row (a rotate cut short) gets its material on first use. Deletion destroys the HSM
// signing keys first, then erases the keyring key and the transit rows in one transaction.
// Thread safety: all methods are thread-safe. Snapshots (TransitKey) are immutable and shared;
// changes are serialised and publish a new snapshot.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "audit/event.h"
#include "crypto/secure_buffer.h"
#include "crypto/signature.h"
#include "crypto/status.h"
#include "hsm/hsm.h"
#include "server/audit_log/event_log.h"
#include "server/keyring/keyring.h"
#include "server/logical/logical.h"
#include "server/store/store.h"

namespace lockbox::transit {

enum class KeyType { kAes256Gcm96, kChaCha20Poly1305, kEcdsaP256, kEd25519, kHmac };

// Known and supported type names; nullopt otherwise.
std::optional<KeyType> ParseKeyType(std::string_view name);
std::string_view KeyTypeName(KeyType type);
inline bool SupportsEncryption(KeyType t) {
  return t == KeyType::kAes256Gcm96 || t == KeyType::kChaCha20Poly1305;
}
inline bool SupportsSigning(KeyType t) {
  return t == KeyType::kEcdsaP256 || t == KeyType::kEd25519;
}

// One version's material. The stored fields are immutable; the unwrapped forms are filled on
// first use and cached (guarded by mu).
struct VersionMaterial {
  std::uint32_t version = 0;
  std::string hmac_secret;        // keyring envelope of the version's HMAC key
  std::string convergent_secret;  // keyring envelope of the convergent key ("" if not convergent)
  std::string signing_label;      // HSM label of the signing key ("" if not a signing key)
  std::string public_key;         // PEM (ecdsa-p256) or base64 (ed25519); "" otherwise

  mutable std::mutex mu;
  mutable std::shared_ptr<const crypto::SecureBuffer> hmac_key;
  mutable std::shared_ptr<const crypto::SecureBuffer> convergent_key;
  mutable std::optional<hsm::SigningKey> signing_key;
  mutable std::optional<crypto::PublicKey> verify_key;
};

struct KeyPolicy {
  KeyType type = KeyType::kAes256Gcm96;
  bool derived = false;
  bool convergent = false;
  std::uint32_t hmac_key_size = 32;  // bytes of each version's HMAC key
};

// An immutable snapshot of one transit key.
struct TransitKey {
  std::string name;
  std::string keyring_name;
  KeyPolicy policy;
  bool deletion_allowed = false;
  std::chrono::system_clock::time_point created;
  std::map<std::uint32_t, std::shared_ptr<const VersionMaterial>> versions;
};

class KeyStore {
 public:
  using Clock = std::function<std::chrono::system_clock::time_point()>;

  KeyStore(logical::MountEntry entry, keyring::Keyring& keyring, hsm::Hsm& hsm, store::Store& store,
           audit_log::EventLog& events, Clock clock);

  Status Load();

  std::shared_ptr<const TransitKey> Find(std::string_view name) const;
  std::vector<std::string> List() const;

  // Creates a key (keyring key, version 1 material, rows, audit event "transit.create").
  // ALREADY_EXISTS if it exists.
  StatusOr<std::shared_ptr<const TransitKey>> Create(std::string_view name, const KeyPolicy& policy,
                                                     const logical::Request& request);
  Status Rotate(const TransitKey& key, const logical::Request& request);
  // Applies validated settings: min versions through the keyring (when given), the deletion
  // gate in the transit row (when given).
  Status Configure(const TransitKey& key,
                   std::optional<std::pair<std::uint32_t, std::uint32_t>> min_versions,
                   std::optional<bool> deletion_allowed, const logical::Request& request);
  Status Trim(const TransitKey& key, std::uint32_t min_available_version,
              const logical::Request& request);
  // Destroys the key for good (no gate: the caller checks deletion_allowed).
  Status Delete(const TransitKey& key, const logical::Request& request);
  // Destroys every key of the mount, and any orphan keyring key under its prefix.
  Status Purge();

  // The material of `version` (created if a rotate was cut short before recording it).
  StatusOr<std::shared_ptr<const VersionMaterial>> Material(const TransitKey& key,
                                                            std::uint32_t version,
                                                            const logical::Request& request);
  // Unwrapped per-version secrets (cached).
  StatusOr<std::shared_ptr<const crypto::SecureBuffer>> HmacKey(const TransitKey& key,
                                                                const VersionMaterial& material,
                                                                const keyring::Caller& caller);
  StatusOr<std::shared_ptr<const crypto::SecureBuffer>> ConvergentKey(
      const TransitKey& key, const VersionMaterial& material, const keyring::Caller& caller);
  StatusOr<hsm::SigningKey> SigningKey(const VersionMaterial& material);
  StatusOr<crypto::PublicKey> VerifyKey(const VersionMaterial& material);

  const logical::MountEntry& entry() const { return entry_; }
  keyring::Keyring& keyring() { return keyring_; }
  hsm::Hsm& hsm() { return hsm_; }

  // The audit event of a transit operation on behalf of `request`.
  static audit::Event Event(std::string_view op, const logical::Request& request,
                            std::string_view key_name);

 private:
  StatusOr<std::shared_ptr<VersionMaterial>> NewMaterial(const TransitKey& key,
                                                         std::uint32_t version,
                                                         const keyring::Caller& caller);
  Status SaveVersion(store::Transaction& tx, const TransitKey& key, const VersionMaterial& m);
  std::string SigningLabel(std::string_view name, std::uint32_t version) const;
  Status DestroySigningKeys(const TransitKey& key);
  // Erases the keyring key and the key's rows; `event` commits with them.
  Status Erase(const TransitKey& key, const audit::Event& event, const keyring::Caller& caller);
  void Publish(std::shared_ptr<const TransitKey> key);
  void Forget(const std::string& name);

  logical::MountEntry entry_;
  keyring::Keyring& keyring_;
  hsm::Hsm& hsm_;
  store::Store& store_;
  audit_log::EventLog& events_;
  Clock clock_;

  mutable std::shared_mutex mu_;
  std::map<std::string, std::shared_ptr<const TransitKey>, std::less<>> keys_;
  std::mutex admin_mu_;  // serialises changes
};

}  // namespace lockbox::transit
