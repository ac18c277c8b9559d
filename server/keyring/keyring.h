// Keyring: named, versioned keys and envelope encryption on top of the HSM.
//
// Key hierarchy (DESIGN.md §4): the MKEK lives in the HSM; each key version has a KEK generated in
// the HSM and stored only wrapped by the MKEK; each message is sealed with AES-256-GCM under a DEK
// that the version's KEK wraps inside the HSM. Plaintext DEKs exist only in locked memory.
//
// Security properties:
//  - A ciphertext decrypts only under the key name, key version and context it was made with
//    (the data AAD binds format, name and context; the wrapped DEK's AAD binds name and version).
//  - Versions below min_decryption_version are refused; destroyed keys' wrapped KEKs are erased
//    and their HSM objects destroyed, so their ciphertexts can never be decrypted again.
//  - Disabled keys and keys scheduled for deletion neither encrypt nor decrypt.
//  - Every state change is durable (store commit pipeline) before the call returns, and committed
//    in the same transaction as its audit event. Every encrypt, decrypt, rewrap and data key, and
//    every refused or failed operation, is recorded durably before the call returns; if the audit
//    record cannot be written the call fails (UNAVAILABLE) and returns no result.
// Thread safety: all methods are thread-safe. Encrypt/decrypt run concurrently; state changes are
// serialised among themselves and publish a new immutable key state when committed.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "audit/event.h"
#include "crypto/secure_buffer.h"
#include "crypto/status.h"
#include "hsm/hsm.h"
#include "server/audit_log/event_log.h"
#include "server/keyring/dek_cache.h"
#include "server/store/store.h"

namespace lockbox::keyring {

using TimePoint = std::chrono::system_clock::time_point;

// Who asks: copied into the operation's audit event.
struct Caller {
  std::string request_id;
  std::string actor = "system";  // token accessor, "role:<id>", "partner:<id>" or "system"
  std::string remote_addr;
  // Uses only (encrypt, decrypt, rewrap, data key): the caller records this use in its own audit
  // event, durably before it releases the result (e.g. the KV engine's read record, which names
  // the secret's path). State changes are always audited by the keyring.
  bool audited_by_caller = false;
};

struct KeyringOptions {
  std::string master_key_label = "lockbox/mkek/v1";
  // Generate the MKEK in the HSM if it does not exist yet (first start).
  bool create_master_key = true;
  DekCacheOptions dek_cache;
  std::chrono::seconds default_deletion_wait{std::chrono::hours(24 * 7)};
  std::chrono::seconds min_deletion_wait{std::chrono::hours(24)};
  // Injectable wall clock (deletion schedules); tests use a fake one.
  std::function<TimePoint()> clock = [] { return std::chrono::system_clock::now(); };
};

enum class KeyState { kEnabled, kDisabled, kPendingDeletion };
std::string_view KeyStateName(KeyState state);

// The AEAD that seals a key's data (fixed when the key is created; the envelope's format byte
// names it, see docs/formats.md). Both take the same 32-byte DEK and 12-byte random nonce.
enum class DataCipher { kAes256Gcm, kChaCha20Poly1305 };

struct KeyOptions {
  DataCipher cipher = DataCipher::kAes256Gcm;
};

struct KeyVersionInfo {
  std::uint32_t version = 0;
  TimePoint created;
};

struct KeyMetadata {
  std::string name;
  KeyState state = KeyState::kEnabled;
  DataCipher cipher = DataCipher::kAes256Gcm;
  std::uint32_t latest_version = 0;
  // Versions below this were trimmed (their KEKs erased); `versions` lists only the others.
  std::uint32_t min_available_version = 1;
  std::uint32_t min_decryption_version = 1;
  std::uint32_t min_encryption_version = 0;  // 0: always the latest version
  std::optional<TimePoint> deletion_time;
  TimePoint created;
  TimePoint updated;
  std::vector<KeyVersionInfo> versions;
};

struct DataKey {
  std::string ciphertext;                         // the DEK sealed under the named key
  std::optional<crypto::SecureBuffer> plaintext;  // absent for "wrapped only"
};

class Keyring {
 public:
  // Applies the keyring's schema migrations, finds (or creates) the MKEK and loads all keys.
  // `events` must outlive the keyring.
  static StatusOr<std::unique_ptr<Keyring>> Open(hsm::Hsm& hsm, store::Store& store,
                                                 audit_log::EventLog& events,
                                                 KeyringOptions options = {});
  ~Keyring();

  // --- Lifecycle ---
  Status CreateKey(std::string_view name, const Caller& caller = {},
                   const KeyOptions& options = {});
  StatusOr<KeyMetadata> ReadKey(std::string_view name) const;
  std::vector<std::string> ListKeys() const;
  Status RotateKey(std::string_view name, const Caller& caller = {});
  // 0 for min_encryption_version means "latest". Versions must satisfy
  // min_available_version <= min_decryption_version <= latest and min_encryption_version <= latest.
  Status SetMinVersions(std::string_view name, std::uint32_t min_decryption_version,
                        std::uint32_t min_encryption_version, const Caller& caller = {});
  Status SetEnabled(std::string_view name, bool enabled, const Caller& caller = {});
  // Schedules destruction after `wait` (default options.default_deletion_wait, at least
  // options.min_deletion_wait). The key cannot be used while pending; CancelDeletion restores it.
  Status ScheduleDeletion(std::string_view name, std::optional<std::chrono::seconds> wait = {},
                          const Caller& caller = {});
  Status CancelDeletion(std::string_view name, const Caller& caller = {});
  // Destroys a key whose deletion time has passed: wrapped KEKs erased, HSM objects destroyed.
  Status DestroyKey(std::string_view name, const Caller& caller = {});
  // Destroys a key now, whatever its state and without a waiting period: for callers that enforce
  // their own deletion gate (transit's deletion_allowed). Audited as "keyring.destroy" with
  // details.immediate = true. `also` (optional) runs in the same unit of work as the erasure and
  // its audit event, so the caller's own rows go in the same transaction.
  Status DestroyKeyNow(std::string_view name, const Caller& caller = {},
                       store::UnitOfWork also = {});
  // Crypto-shreds every version below `min_available_version` (wrapped KEKs erased, HSM objects
  // destroyed). Requires min_available_version <= min_decryption_version, so no version still
  // allowed to decrypt is removed; lowering it is refused. `also` as for DestroyKeyNow.
  Status TrimVersions(std::string_view name, std::uint32_t min_available_version,
                      const Caller& caller = {}, store::UnitOfWork also = {});
  // Destroys every key whose deletion time has passed; returns the names destroyed.
  StatusOr<std::vector<std::string>> DestroyDueKeys();

  // --- Envelope encryption. `context` is bound as associated data. ---
  // key_version 0 = latest; otherwise >= min_encryption_version and >= min_decryption_version.
  StatusOr<std::string> Encrypt(std::string_view name, std::span<const std::uint8_t> plaintext,
                                std::span<const std::uint8_t> context = {},
                                std::uint32_t key_version = 0, const Caller& caller = {});
  StatusOr<crypto::SecureBuffer> Decrypt(std::string_view name, std::string_view ciphertext,
                                         std::span<const std::uint8_t> context = {},
                                         const Caller& caller = {});
  // Re-wraps the DEK under `key_version` (0 = latest; otherwise the rules of Encrypt) with an HSM
  // unwrap + wrap; the sealed data is untouched and the plaintext is never exposed.
  StatusOr<std::string> Rewrap(std::string_view name, std::string_view ciphertext,
                               std::span<const std::uint8_t> context = {},
                               const Caller& caller = {}, std::uint32_t key_version = 0);
  // A fresh random data key of `bits` (128, 256 or 512), sealed under the named key.
  StatusOr<DataKey> GenerateDataKey(std::string_view name, bool include_plaintext,
                                    std::span<const std::uint8_t> context = {},
                                    std::uint32_t bits = 256, const Caller& caller = {});

  const DekCache& dek_cache() const;

 private:
  struct Impl;
  explicit Keyring(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The keyring's schema, for the store's Migrate().
std::vector<store::Migration> KeyringMigrations();

}  // namespace lockbox::keyring
