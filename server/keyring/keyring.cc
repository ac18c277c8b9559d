#include "server/keyring/keyring.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>
#include <utility>

#include "crypto/aead.h"
#include "crypto/encoding.h"
#include "crypto/random.h"
#include "server/keyring/envelope.h"

namespace lockbox::keyring {
namespace {

constexpr std::size_t kDekSize = crypto::kAes256KeySize;
constexpr std::size_t kMaxNameLength = 128;

std::int64_t ToNanos(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
TimePoint FromNanos(std::int64_t ns) {
  return TimePoint(std::chrono::duration_cast<TimePoint::duration>(std::chrono::nanoseconds(ns)));
}

Status ValidateName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) {
    return InvalidArgumentError("key name must be 1 to 128 characters");
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == '/';
    if (!ok) return InvalidArgumentError("key name may only contain A-Z a-z 0-9 - _ . /");
  }
  if (name.front() == '/' || name.back() == '/' || name.find("//") != std::string_view::npos ||
      name.find("..") != std::string_view::npos) {
    return InvalidArgumentError("key name has an empty or '..' segment");
  }
  return Status::Ok();
}

Status KeyNotFound(std::string_view name) {
  return NotFoundError("key '" + std::string(name) + "' not found");
}

// Authentication failures on caller-supplied ciphertext are bad input, not server data loss.
Status AsInvalidCiphertext(const Status& s) {
  if (s.code() == StatusCode::kDataLoss || s.code() == StatusCode::kInvalidArgument) {
    return InvalidArgumentError("invalid ciphertext: message authentication failed");
  }
  return s;
}

audit::Event KeyEvent(std::string_view op, std::string_view name, const Caller& caller) {
  audit::Event e;
  e.op = "keyring." + std::string(op);
  e.path = std::string(name);
  e.request_id = caller.request_id;
  e.actor = caller.actor;
  e.remote_addr = caller.remote_addr;
  return e;
}

std::uint8_t FormatOf(DataCipher cipher) {
  return cipher == DataCipher::kChaCha20Poly1305 ? kEnvelopeFormatChaCha20Poly1305
                                                 : kEnvelopeFormatV1;
}

}  // namespace

std::string_view KeyStateName(KeyState state) {
  switch (state) {
    case KeyState::kEnabled:
      return "enabled";
    case KeyState::kDisabled:
      return "disabled";
    case KeyState::kPendingDeletion:
      return "pending_deletion";
  }
  return "unknown";
}

std::vector<store::Migration> KeyringMigrations() {
  return {{"keyring", 1, R"sql(
CREATE TABLE keyring_keys (
  name TEXT PRIMARY KEY,
  enabled INTEGER NOT NULL,
  latest_version INTEGER NOT NULL,
  min_decryption_version INTEGER NOT NULL,
  min_encryption_version INTEGER NOT NULL,
  deletion_time INTEGER,
  created INTEGER NOT NULL,
  updated INTEGER NOT NULL
);
CREATE TABLE keyring_versions (
  name TEXT NOT NULL REFERENCES keyring_keys(name) ON DELETE CASCADE,
  version INTEGER NOT NULL,
  wrapped_kek BLOB NOT NULL,
  master_key_label TEXT NOT NULL,
  created INTEGER NOT NULL,
  PRIMARY KEY (name, version)
);
)sql"},
          // Per-key data cipher (the envelope format byte) and trimmed versions.
          {"keyring", 2, R"sql(
ALTER TABLE keyring_keys ADD COLUMN format INTEGER NOT NULL DEFAULT 1;
ALTER TABLE keyring_keys ADD COLUMN min_available_version INTEGER NOT NULL DEFAULT 1;
)sql"}};
}

// One key version: its wrapped KEK (persistent) and, once used, the unwrapped KEK's HSM handle.
struct VersionEntry {
  std::uint32_t version = 0;
  TimePoint created;
  std::vector<std::uint8_t> wrapped_kek;
  std::string master_key_label;

  mutable std::mutex kek_mu;
  mutable std::optional<hsm::KeyHandle> kek;
};

// An immutable snapshot of a key; state changes publish a new one (versions are shared).
struct KeyEntry {
  std::string name;
  bool enabled = true;
  std::uint8_t format = kEnvelopeFormatV1;  // the data cipher of every envelope of this key
  std::uint32_t latest_version = 0;
  std::uint32_t min_available_version = 1;
  std::uint32_t min_decryption_version = 1;
  std::uint32_t min_encryption_version = 0;
  std::optional<TimePoint> deletion_time;
  TimePoint created;
  TimePoint updated;
  // versions[i] is version i + 1; null below min_available_version (trimmed).
  std::vector<std::shared_ptr<VersionEntry>> versions;

  KeyState state() const {
    if (deletion_time) return KeyState::kPendingDeletion;
    return enabled ? KeyState::kEnabled : KeyState::kDisabled;
  }
  const VersionEntry& Version(std::uint32_t v) const { return *versions[v - 1]; }
};

struct Keyring::Impl {
  Impl(hsm::Hsm& h, store::Store& s, audit_log::EventLog& e, KeyringOptions o)
      : hsm(h), store(s), events(e), options(std::move(o)), cache(options.dek_cache) {}

  hsm::Hsm& hsm;
  store::Store& store;
  audit_log::EventLog& events;
  const KeyringOptions options;
  DekCache cache;

  mutable std::shared_mutex keys_mu;
  std::unordered_map<std::string, std::shared_ptr<const KeyEntry>> keys;

  std::mutex admin_mu;  // serialises state changes

  std::mutex master_mu;
  std::map<std::string, hsm::KeyHandle, std::less<>> master_keys;

  std::shared_ptr<const KeyEntry> Find(std::string_view name) const {
    std::shared_lock lock(keys_mu);
    auto it = keys.find(std::string(name));
    return it == keys.end() ? nullptr : it->second;
  }

  void Publish(std::shared_ptr<const KeyEntry> entry) {
    std::unique_lock lock(keys_mu);
    keys[entry->name] = std::move(entry);
  }

  // The MKEK's handle (the Hsm keeps handles valid across its own re-initialisations).
  StatusOr<hsm::KeyHandle> MasterKey(const std::string& label) {
    std::lock_guard lock(master_mu);
    auto it = master_keys.find(label);
    if (it != master_keys.end()) return it->second;
    LOCKBOX_ASSIGN_OR_RETURN(hsm::KeyHandle handle, hsm.FindSecretKey(label));
    master_keys[label] = handle;
    return handle;
  }

  StatusOr<hsm::KeyHandle> Kek(const VersionEntry& v, bool refresh) {
    std::lock_guard lock(v.kek_mu);
    if (!refresh && v.kek) return *v.kek;
    LOCKBOX_ASSIGN_OR_RETURN(hsm::KeyHandle mkek, MasterKey(v.master_key_label));
    auto unwrapped = hsm.UnwrapKey(mkek, v.wrapped_kek);
    if (!unwrapped.ok()) return unwrapped.status().WithContext("unwrap key-encryption key");
    v.kek = *unwrapped;
    return *unwrapped;
  }

  // Runs an HSM operation with the version's KEK; if the KEK object is gone (destroyed behind
  // our back) it is unwrapped again once.
  template <typename Op>
  auto WithKek(const VersionEntry& v, Op op) -> decltype(op(hsm::KeyHandle{})) {
    LOCKBOX_ASSIGN_OR_RETURN(hsm::KeyHandle kek, Kek(v, false));
    auto result = op(kek);
    if (result.ok() || result.status().code() != StatusCode::kNotFound) return result;
    LOCKBOX_ASSIGN_OR_RETURN(kek, Kek(v, true));
    return op(kek);
  }

  StatusOr<std::shared_ptr<VersionEntry>> NewVersion(std::uint32_t number) {
    LOCKBOX_ASSIGN_OR_RETURN(hsm::KeyHandle mkek, MasterKey(options.master_key_label));
    auto wrapped = hsm.GenerateWrappedKey(mkek);
    if (!wrapped.ok()) return wrapped.status().WithContext("generate key-encryption key");
    auto v = std::make_shared<VersionEntry>();
    v->version = number;
    v->created = options.clock();
    v->wrapped_kek = std::move(*wrapped);
    v->master_key_label = options.master_key_label;
    return v;
  }

  static Status SaveKey(store::Transaction& tx, const KeyEntry& k) {
    auto r = tx.Execute(
        "INSERT INTO keyring_keys (name, enabled, latest_version, min_decryption_version, "
        "min_encryption_version, deletion_time, created, updated, format, "
        "min_available_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET enabled = excluded.enabled, "
        "latest_version = excluded.latest_version, "
        "min_decryption_version = excluded.min_decryption_version, "
        "min_encryption_version = excluded.min_encryption_version, "
        "deletion_time = excluded.deletion_time, updated = excluded.updated, "
        "min_available_version = excluded.min_available_version",
        {k.name, std::int64_t{k.enabled ? 1 : 0}, std::int64_t{k.latest_version},
         std::int64_t{k.min_decryption_version}, std::int64_t{k.min_encryption_version},
         k.deletion_time ? store::Value(ToNanos(*k.deletion_time)) : store::Value(nullptr),
         ToNanos(k.created), ToNanos(k.updated), std::int64_t{k.format},
         std::int64_t{k.min_available_version}});
    return r.status();
  }

  static Status SaveVersion(store::Transaction& tx, const std::string& name,
                            const VersionEntry& v) {
    auto r = tx.Execute(
        "INSERT INTO keyring_versions (name, version, wrapped_kek, master_key_label, created) "
        "VALUES (?, ?, ?, ?, ?)",
        {name, std::int64_t{v.version}, v.wrapped_kek, v.master_key_label, ToNanos(v.created)});
    return r.status();
  }

  // Commits `work` and the audit event in one unit of work.
  Status CommitWithEvent(const audit::Event& event,
                         const std::function<Status(store::Transaction&)>& work) {
    return store.Commit([&](store::Transaction& tx) -> Status {
      LOCKBOX_RETURN_IF_ERROR(work(tx));
      return events.Append(tx, event);
    });
  }

  // Records a refused or failed operation. The operation's own error is returned, unless even
  // its record cannot be written: then the audit failure is (fail closed).
  Status Failed(audit::Event event, const Status& error) {
    event.outcome = audit::Outcome::kError;
    event.reason = error.ToString();
    if (Status s = events.Record(std::move(event)); !s.ok()) {
      return UnavailableError("audit log unavailable: " + s.message());
    }
    return error;
  }

  // Runs a state change whose unit appends `event` (see CommitWithEvent); records failures.
  Status AuditedChange(audit::Event event, const std::function<Status(audit::Event&)>& op) {
    Status s = op(event);
    return s.ok() ? s : Failed(std::move(event), s);
  }

  // Runs a use of a key (encrypt, decrypt...) and makes its record durable before the result
  // is released.
  // With caller.audited_by_caller the caller records the use in its own event instead.
  template <typename T>
  StatusOr<T> AuditedUse(const Caller& caller, audit::Event event,
                         const std::function<StatusOr<T>(audit::Event&)>& op) {
    if (caller.audited_by_caller) return op(event);
    StatusOr<T> result = op(event);
    if (!result.ok()) return Failed(std::move(event), result.status());
    if (Status s = events.Record(std::move(event)); !s.ok()) {
      return UnavailableError("audit log unavailable: " + s.message());
    }
    return result;
  }

  // Applies `change` to a copy of the key's current state, persists it with its audit event,
  // then publishes it.
  Status Change(std::string_view name, audit::Event& event,
                const std::function<Status(KeyEntry&)>& change) {
    std::lock_guard admin(admin_mu);
    auto current = Find(name);
    if (!current) return KeyNotFound(name);
    auto next = std::make_shared<KeyEntry>(*current);
    LOCKBOX_RETURN_IF_ERROR(change(*next));
    next->updated = options.clock();
    LOCKBOX_RETURN_IF_ERROR(
        CommitWithEvent(event, [&](store::Transaction& tx) { return SaveKey(tx, *next); }));
    if (next->state() != KeyState::kEnabled) cache.EvictKey(name);
    Publish(std::move(next));
    return Status::Ok();
  }

  Status CheckUsable(const KeyEntry& k) const {
    switch (k.state()) {
      case KeyState::kEnabled:
        return Status::Ok();
      case KeyState::kDisabled:
        return FailedPreconditionError("key '" + k.name + "' is disabled");
      case KeyState::kPendingDeletion:
        return FailedPreconditionError("key '" + k.name + "' is scheduled for deletion");
    }
    return InternalError("unknown key state");
  }

  // The version an encryption (or rewrap) uses: `requested`, or the latest for 0.
  static StatusOr<std::uint32_t> EncryptionVersion(const KeyEntry& k, std::uint32_t requested) {
    if (requested == 0) return k.latest_version;
    if (requested > k.latest_version) {
      return InvalidArgumentError("requested key version does not exist");
    }
    if (requested < k.min_decryption_version || requested < k.min_encryption_version) {
      return FailedPreconditionError(
          "requested version for encryption is less than the minimum encryption key version");
    }
    return requested;
  }

  // The DEK of an envelope this key may open (format and version checked).
  StatusOr<std::shared_ptr<const crypto::SecureBuffer>> OpeningDek(const KeyEntry& k,
                                                                   const Envelope& env) {
    // An envelope of another cipher was not made by this key.
    if (env.format != k.format) {
      return InvalidArgumentError("invalid ciphertext: message authentication failed");
    }
    LOCKBOX_RETURN_IF_ERROR(CheckDecryptionVersion(k, env.key_version));
    return DecryptionDek(k, env);
  }

  static StatusOr<crypto::SecureBuffer> Open(const KeyEntry& k, const Envelope& env,
                                             const crypto::SecureBuffer& dek,
                                             std::span<const std::uint8_t> context) {
    auto plaintext = OpenData(env.format, dek.span(), env.nonce,
                              DataAad(env.format, k.name, context), env.sealed);
    if (!plaintext.ok()) return AsInvalidCiphertext(plaintext.status());
    return std::move(*plaintext);
  }

  // Version checks shared by decrypt and rewrap.
  static Status CheckDecryptionVersion(const KeyEntry& k, std::uint32_t version) {
    if (version == 0 || version > k.latest_version) {
      return InvalidArgumentError("invalid ciphertext: key version " + std::to_string(version) +
                                  " does not exist");
    }
    if (version < k.min_decryption_version) {
      return FailedPreconditionError(
          "ciphertext or signature version is disallowed by policy (too old)");
    }
    return Status::Ok();
  }

  // The plaintext DEK of an envelope: from the cache or unwrapped inside the HSM.
  StatusOr<std::shared_ptr<const crypto::SecureBuffer>> DecryptionDek(const KeyEntry& k,
                                                                      const Envelope& env) {
    if (auto cached = cache.FindDecryptionDek(k.name, env.key_version, env.wrapped_dek)) {
      return cached;
    }
    const auto aad = DekAad(env.format, k.name, env.key_version);
    auto dek = WithKek(k.Version(env.key_version), [&](const hsm::KeyHandle& kek) {
      return hsm.UnwrapData(kek, env.wrapped_dek, aad);
    });
    if (!dek.ok()) return AsInvalidCiphertext(dek.status());
    if (dek->size() != kDekSize) return InvalidArgumentError("invalid ciphertext: bad data key");
    auto shared = std::make_shared<const crypto::SecureBuffer>(std::move(*dek));
    cache.PutDecryptionDek(k.name, env.key_version, CachedDek{shared, env.wrapped_dek});
    return shared;
  }

  StatusOr<std::vector<std::uint8_t>> WrapDek(const KeyEntry& k, std::uint32_t version,
                                              const crypto::SecureBuffer& dek) {
    const auto aad = DekAad(k.format, k.name, version);
    auto wrapped = WithKek(k.Version(version), [&](const hsm::KeyHandle& kek) {
      return hsm.WrapData(kek, dek.span(), aad);
    });
    if (!wrapped.ok()) return wrapped.status().WithContext("wrap data key");
    return wrapped;
  }

  StatusOr<CachedDek> EncryptionDek(const KeyEntry& k, std::uint32_t version) {
    if (auto cached = cache.TakeEncryptionDek(k.name, version)) return *cached;
    auto fresh = std::make_shared<const crypto::SecureBuffer>(crypto::RandomSecret(kDekSize));
    LOCKBOX_ASSIGN_OR_RETURN(auto wrapped, WrapDek(k, version, *fresh));
    CachedDek dek{std::move(fresh), std::move(wrapped)};
    cache.PutEncryptionDek(k.name, version, dek);
    return dek;
  }

  // Seals `plaintext` under (key, version) into an envelope.
  StatusOr<std::string> Seal(const KeyEntry& k, std::uint32_t version,
                             std::span<const std::uint8_t> plaintext,
                             std::span<const std::uint8_t> context) {
    LOCKBOX_ASSIGN_OR_RETURN(CachedDek dek, EncryptionDek(k, version));
    Envelope env;
    env.format = k.format;
    env.key_version = version;
    env.wrapped_dek = std::move(dek.wrapped);
    env.nonce = crypto::RandomVector(crypto::kAesGcmNonceSize);
    LOCKBOX_ASSIGN_OR_RETURN(env.sealed, SealData(env.format, dek.key->span(), env.nonce,
                                                  DataAad(env.format, k.name, context), plaintext));
    return EncodeEnvelope(env);
  }

  // Forgets the unwrapped KEKs of versions whose wrapped KEKs were erased.
  void DropKeks(const std::vector<std::shared_ptr<VersionEntry>>& versions) {
    for (const auto& v : versions) {
      if (!v) continue;
      std::lock_guard lock(v->kek_mu);
      if (v->kek) {
        // A failure leaves only a session object, which dies with the HSM session anyway; the
        // wrapped KEK is already gone, so it can never be recreated.
        (void)hsm.DestroyObject(*v->kek);
      }
      v->kek.reset();
    }
  }

  // Crypto-shreds a key (admin_mu held): the wrapped KEKs are the only way back to the DEKs.
  // secure_delete keeps their bytes out of the database's free pages.
  Status Destroy(const KeyEntry& k, audit::Event& event, const store::UnitOfWork& also) {
    event.details["versions"] = k.latest_version;
    LOCKBOX_RETURN_IF_ERROR(CommitWithEvent(event, [&](store::Transaction& tx) -> Status {
      LOCKBOX_RETURN_IF_ERROR(
          tx.Execute("DELETE FROM keyring_versions WHERE name = ?", {k.name}).status());
      LOCKBOX_RETURN_IF_ERROR(
          tx.Execute("DELETE FROM keyring_keys WHERE name = ?", {k.name}).status());
      return also ? also(tx) : Status::Ok();
    }));
    {
      std::unique_lock lock(keys_mu);
      keys.erase(k.name);
    }
    cache.EvictKey(k.name);
    DropKeks(k.versions);
    return Status::Ok();
  }

  Status Load() {
    return store.Read([&](store::Transaction& tx) -> Status {
      LOCKBOX_ASSIGN_OR_RETURN(
          auto key_rows,
          tx.Query("SELECT name, enabled, latest_version, min_decryption_version, "
                   "min_encryption_version, deletion_time, created, updated, format, "
                   "min_available_version FROM keyring_keys",
                   {}));
      std::unordered_map<std::string, std::shared_ptr<KeyEntry>> loaded;
      for (const auto& row : key_rows) {
        auto k = std::make_shared<KeyEntry>();
        LOCKBOX_ASSIGN_OR_RETURN(k->name, store::GetText(row, 0));
        LOCKBOX_ASSIGN_OR_RETURN(auto enabled, store::GetInt(row, 1));
        LOCKBOX_ASSIGN_OR_RETURN(auto latest, store::GetInt(row, 2));
        LOCKBOX_ASSIGN_OR_RETURN(auto min_dec, store::GetInt(row, 3));
        LOCKBOX_ASSIGN_OR_RETURN(auto min_enc, store::GetInt(row, 4));
        if (!store::IsNull(row, 5)) {
          LOCKBOX_ASSIGN_OR_RETURN(auto deletion, store::GetInt(row, 5));
          k->deletion_time = FromNanos(deletion);
        }
        LOCKBOX_ASSIGN_OR_RETURN(auto created, store::GetInt(row, 6));
        LOCKBOX_ASSIGN_OR_RETURN(auto updated, store::GetInt(row, 7));
        LOCKBOX_ASSIGN_OR_RETURN(auto format, store::GetInt(row, 8));
        LOCKBOX_ASSIGN_OR_RETURN(auto min_available, store::GetInt(row, 9));
        if (format != kEnvelopeFormatV1 && format != kEnvelopeFormatChaCha20Poly1305) {
          return DataLossError("keyring: key '" + k->name + "' has an unknown format");
        }
        k->format = static_cast<std::uint8_t>(format);
        k->min_available_version = static_cast<std::uint32_t>(min_available);
        k->enabled = enabled != 0;
        k->latest_version = static_cast<std::uint32_t>(latest);
        k->min_decryption_version = static_cast<std::uint32_t>(min_dec);
        k->min_encryption_version = static_cast<std::uint32_t>(min_enc);
        k->created = FromNanos(created);
        k->updated = FromNanos(updated);
        k->versions.resize(k->latest_version);
        loaded.emplace(k->name, std::move(k));
      }
      LOCKBOX_ASSIGN_OR_RETURN(
          auto version_rows,
          tx.Query("SELECT name, version, wrapped_kek, master_key_label, created "
                   "FROM keyring_versions",
                   {}));
      for (const auto& row : version_rows) {
        LOCKBOX_ASSIGN_OR_RETURN(auto name, store::GetText(row, 0));
        LOCKBOX_ASSIGN_OR_RETURN(auto number, store::GetInt(row, 1));
        auto it = loaded.find(name);
        if (it == loaded.end() || number < it->second->min_available_version ||
            number > it->second->latest_version) {
          return DataLossError("keyring: version row without a key: '" + name + "'");
        }
        auto v = std::make_shared<VersionEntry>();
        v->version = static_cast<std::uint32_t>(number);
        LOCKBOX_ASSIGN_OR_RETURN(v->wrapped_kek, store::GetBlob(row, 2));
        LOCKBOX_ASSIGN_OR_RETURN(v->master_key_label, store::GetText(row, 3));
        LOCKBOX_ASSIGN_OR_RETURN(auto created, store::GetInt(row, 4));
        v->created = FromNanos(created);
        it->second->versions[v->version - 1] = std::move(v);
      }
      for (auto& [name, k] : loaded) {
        for (std::uint32_t v = k->min_available_version; v <= k->latest_version; ++v) {
          if (!k->versions[v - 1]) {
            return DataLossError("keyring: key '" + name + "' is missing a version");
          }
        }
        keys.emplace(name, std::move(k));
      }
      return Status::Ok();
    });
  }
};

Keyring::Keyring(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Keyring::~Keyring() = default;

StatusOr<std::unique_ptr<Keyring>> Keyring::Open(hsm::Hsm& hsm, store::Store& store,
                                                 audit_log::EventLog& events,
                                                 KeyringOptions options) {
  crypto::InitCrypto();
  LOCKBOX_RETURN_IF_ERROR(store.Migrate(KeyringMigrations()));
  auto impl = std::make_unique<Impl>(hsm, store, events, std::move(options));
  auto mkek = impl->MasterKey(impl->options.master_key_label);
  if (!mkek.ok() && mkek.status().code() == StatusCode::kNotFound &&
      impl->options.create_master_key) {
    auto created = hsm.GenerateMasterKey(impl->options.master_key_label);
    if (!created.ok()) return created.status().WithContext("generate master key");
  } else if (!mkek.ok()) {
    return mkek.status().WithContext("find master key");
  }
  LOCKBOX_RETURN_IF_ERROR(impl->Load());
  return std::unique_ptr<Keyring>(new Keyring(std::move(impl)));
}

Status Keyring::CreateKey(std::string_view name, const Caller& caller, const KeyOptions& options) {
  return impl_->AuditedChange(KeyEvent("create", name, caller), [&](audit::Event& event) {
    LOCKBOX_RETURN_IF_ERROR(ValidateName(name));
    std::lock_guard admin(impl_->admin_mu);
    if (impl_->Find(name)) return AlreadyExistsError("key '" + std::string(name) + "' exists");
    LOCKBOX_ASSIGN_OR_RETURN(auto version, impl_->NewVersion(1));
    auto k = std::make_shared<KeyEntry>();
    k->name = std::string(name);
    k->format = FormatOf(options.cipher);
    k->latest_version = 1;
    k->created = k->updated = version->created;
    k->versions.push_back(version);
    event.details["version"] = 1;
    event.details["format"] = k->format;
    LOCKBOX_RETURN_IF_ERROR(impl_->CommitWithEvent(event, [&](store::Transaction& tx) -> Status {
      LOCKBOX_RETURN_IF_ERROR(Impl::SaveKey(tx, *k));
      return Impl::SaveVersion(tx, k->name, *version);
    }));
    impl_->Publish(std::move(k));
    return Status::Ok();
  });
}

StatusOr<KeyMetadata> Keyring::ReadKey(std::string_view name) const {
  auto k = impl_->Find(name);
  if (!k) return KeyNotFound(name);
  KeyMetadata m;
  m.name = k->name;
  m.state = k->state();
  m.cipher = k->format == kEnvelopeFormatChaCha20Poly1305 ? DataCipher::kChaCha20Poly1305
                                                          : DataCipher::kAes256Gcm;
  m.latest_version = k->latest_version;
  m.min_available_version = k->min_available_version;
  m.min_decryption_version = k->min_decryption_version;
  m.min_encryption_version = k->min_encryption_version;
  m.deletion_time = k->deletion_time;
  m.created = k->created;
  m.updated = k->updated;
  for (const auto& v : k->versions) {
    if (v) m.versions.push_back({v->version, v->created});
  }
  return m;
}

std::vector<std::string> Keyring::ListKeys() const {
  std::vector<std::string> names;
  {
    std::shared_lock lock(impl_->keys_mu);
    for (const auto& [name, k] : impl_->keys) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

Status Keyring::RotateKey(std::string_view name, const Caller& caller) {
  return impl_->AuditedChange(KeyEvent("rotate", name, caller), [&](audit::Event& event) {
    std::lock_guard admin(impl_->admin_mu);
    auto current = impl_->Find(name);
    if (!current) return KeyNotFound(name);
    LOCKBOX_RETURN_IF_ERROR(impl_->CheckUsable(*current));
    LOCKBOX_ASSIGN_OR_RETURN(auto version, impl_->NewVersion(current->latest_version + 1));
    auto next = std::make_shared<KeyEntry>(*current);
    next->latest_version = version->version;
    next->updated = version->created;
    next->versions.push_back(version);
    event.details["version"] = version->version;
    LOCKBOX_RETURN_IF_ERROR(impl_->CommitWithEvent(event, [&](store::Transaction& tx) -> Status {
      LOCKBOX_RETURN_IF_ERROR(Impl::SaveKey(tx, *next));
      return Impl::SaveVersion(tx, next->name, *version);
    }));
    impl_->Publish(std::move(next));
    return Status::Ok();
  });
}

Status Keyring::SetMinVersions(std::string_view name, std::uint32_t min_decryption_version,
                               std::uint32_t min_encryption_version, const Caller& caller) {
  audit::Event event = KeyEvent("config", name, caller);
  event.details["min_decryption_version"] = min_decryption_version;
  event.details["min_encryption_version"] = min_encryption_version;
  return impl_->AuditedChange(std::move(event), [&](audit::Event& e) {
    return impl_->Change(name, e, [&](KeyEntry& k) -> Status {
      if (min_decryption_version < 1 || min_decryption_version > k.latest_version) {
        return InvalidArgumentError(
            "min_decryption_version must be between 1 and the latest version");
      }
      if (min_decryption_version < k.min_available_version) {
        return InvalidArgumentError(
            "min_decryption_version cannot be below the minimum available version");
      }
      if (min_encryption_version > k.latest_version) {
        return InvalidArgumentError("min_encryption_version cannot be above the latest version");
      }
      if (min_encryption_version != 0 && min_encryption_version < min_decryption_version) {
        return InvalidArgumentError(
            "min_encryption_version cannot be below min_decryption_version");
      }
      k.min_decryption_version = min_decryption_version;
      k.min_encryption_version = min_encryption_version;
      return Status::Ok();
    });
  });
}

Status Keyring::SetEnabled(std::string_view name, bool enabled, const Caller& caller) {
  return impl_->AuditedChange(
      KeyEvent(enabled ? "enable" : "disable", name, caller), [&](audit::Event& e) {
        return impl_->Change(name, e, [&](KeyEntry& k) -> Status {
          if (k.deletion_time) {
            return FailedPreconditionError("key '" + k.name + "' is scheduled for deletion");
          }
          k.enabled = enabled;
          return Status::Ok();
        });
      });
}

Status Keyring::ScheduleDeletion(std::string_view name, std::optional<std::chrono::seconds> wait,
                                 const Caller& caller) {
  return impl_->AuditedChange(KeyEvent("schedule_deletion", name, caller), [&](audit::Event& e) {
    const auto delay = wait.value_or(impl_->options.default_deletion_wait);
    if (delay < impl_->options.min_deletion_wait) {
      return InvalidArgumentError("deletion waiting period is shorter than the minimum of " +
                                  std::to_string(impl_->options.min_deletion_wait.count()) + "s");
    }
    e.details["waiting_period_seconds"] = delay.count();
    return impl_->Change(name, e, [&](KeyEntry& k) -> Status {
      if (k.deletion_time) {
        return FailedPreconditionError("key '" + k.name + "' is already scheduled for deletion");
      }
      k.deletion_time = impl_->options.clock() + delay;
      return Status::Ok();
    });
  });
}

Status Keyring::CancelDeletion(std::string_view name, const Caller& caller) {
  return impl_->AuditedChange(KeyEvent("cancel_deletion", name, caller), [&](audit::Event& e) {
    return impl_->Change(name, e, [&](KeyEntry& k) -> Status {
      if (!k.deletion_time) {
        return FailedPreconditionError("key '" + k.name + "' is not scheduled for deletion");
      }
      k.deletion_time.reset();
      return Status::Ok();
    });
  });
}

Status Keyring::DestroyKey(std::string_view name, const Caller& caller) {
  return impl_->AuditedChange(KeyEvent("destroy", name, caller), [&](audit::Event& event) {
    std::lock_guard admin(impl_->admin_mu);
    auto k = impl_->Find(name);
    if (!k) return KeyNotFound(name);
    if (!k->deletion_time || impl_->options.clock() < *k->deletion_time) {
      return FailedPreconditionError("key '" + k->name + "' is not due for destruction");
    }
    return impl_->Destroy(*k, event, {});
  });
}

Status Keyring::DestroyKeyNow(std::string_view name, const Caller& caller, store::UnitOfWork also) {
  return impl_->AuditedChange(KeyEvent("destroy", name, caller), [&](audit::Event& event) {
    std::lock_guard admin(impl_->admin_mu);
    auto k = impl_->Find(name);
    if (!k) return KeyNotFound(name);
    event.details["immediate"] = true;
    return impl_->Destroy(*k, event, also);
  });
}

Status Keyring::TrimVersions(std::string_view name, std::uint32_t min_available_version,
                             const Caller& caller, store::UnitOfWork also) {
  audit::Event event = KeyEvent("trim", name, caller);
  event.details["min_available_version"] = min_available_version;
  return impl_->AuditedChange(std::move(event), [&](audit::Event& e) {
    std::lock_guard admin(impl_->admin_mu);
    auto current = impl_->Find(name);
    if (!current) return KeyNotFound(name);
    if (min_available_version < current->min_available_version) {
      return InvalidArgumentError("the minimum available version cannot be lowered");
    }
    if (min_available_version > current->min_decryption_version) {
      return InvalidArgumentError(
          "the minimum available version cannot be above min_decryption_version");
    }
    auto next = std::make_shared<KeyEntry>(*current);
    next->min_available_version = min_available_version;
    next->updated = impl_->options.clock();
    std::vector<std::shared_ptr<VersionEntry>> trimmed;
    for (std::uint32_t v = current->min_available_version; v < min_available_version; ++v) {
      trimmed.push_back(std::move(next->versions[v - 1]));
    }
    LOCKBOX_RETURN_IF_ERROR(impl_->CommitWithEvent(e, [&](store::Transaction& tx) -> Status {
      LOCKBOX_RETURN_IF_ERROR(tx.Execute("DELETE FROM keyring_versions WHERE name = ? AND "
                                         "version < ?",
                                         {next->name, std::int64_t{min_available_version}})
                                  .status());
      LOCKBOX_RETURN_IF_ERROR(Impl::SaveKey(tx, *next));
      return also ? also(tx) : Status::Ok();
    }));
    impl_->Publish(next);
    impl_->cache.EvictKey(next->name);
    impl_->DropKeks(trimmed);
    return Status::Ok();
  });
}

StatusOr<std::vector<std::string>> Keyring::DestroyDueKeys() {
  std::vector<std::string> due;
  const auto now = impl_->options.clock();
  {
    std::shared_lock lock(impl_->keys_mu);
    for (const auto& [name, k] : impl_->keys) {
      if (k->deletion_time && *k->deletion_time <= now) due.push_back(name);
    }
  }
  std::sort(due.begin(), due.end());
  for (const auto& name : due) LOCKBOX_RETURN_IF_ERROR(DestroyKey(name));
  return due;
}

StatusOr<std::string> Keyring::Encrypt(std::string_view name,
                                       std::span<const std::uint8_t> plaintext,
                                       std::span<const std::uint8_t> context,
                                       std::uint32_t key_version, const Caller& caller) {
  return impl_->AuditedUse<std::string>(
      caller, KeyEvent("encrypt", name, caller), [&](audit::Event& event) -> StatusOr<std::string> {
        auto k = impl_->Find(name);
        if (!k) return KeyNotFound(name);
        LOCKBOX_RETURN_IF_ERROR(impl_->CheckUsable(*k));
        LOCKBOX_ASSIGN_OR_RETURN(std::uint32_t version, Impl::EncryptionVersion(*k, key_version));
        event.details["key_version"] = version;
        return impl_->Seal(*k, version, plaintext, context);
      });
}

StatusOr<crypto::SecureBuffer> Keyring::Decrypt(std::string_view name, std::string_view ciphertext,
                                                std::span<const std::uint8_t> context,
                                                const Caller& caller) {
  return impl_->AuditedUse<crypto::SecureBuffer>(
      caller, KeyEvent("decrypt", name, caller),
      [&](audit::Event& event) -> StatusOr<crypto::SecureBuffer> {
        auto k = impl_->Find(name);
        if (!k) return KeyNotFound(name);
        LOCKBOX_RETURN_IF_ERROR(impl_->CheckUsable(*k));
        LOCKBOX_ASSIGN_OR_RETURN(Envelope env, DecodeEnvelope(ciphertext));
        event.details["key_version"] = env.key_version;
        LOCKBOX_ASSIGN_OR_RETURN(auto dek, impl_->OpeningDek(*k, env));
        return Impl::Open(*k, env, *dek, context);
      });
}

StatusOr<std::string> Keyring::Rewrap(std::string_view name, std::string_view ciphertext,
                                      std::span<const std::uint8_t> context, const Caller& caller,
                                      std::uint32_t key_version) {
  return impl_->AuditedUse<std::string>(
      caller, KeyEvent("rewrap", name, caller), [&](audit::Event& event) -> StatusOr<std::string> {
        auto k = impl_->Find(name);
        if (!k) return KeyNotFound(name);
        LOCKBOX_RETURN_IF_ERROR(impl_->CheckUsable(*k));
        LOCKBOX_ASSIGN_OR_RETURN(std::uint32_t target, Impl::EncryptionVersion(*k, key_version));
        LOCKBOX_ASSIGN_OR_RETURN(Envelope env, DecodeEnvelope(ciphertext));
        event.details["from_version"] = env.key_version;
        // The DEK alone cannot prove the context: check the data's tag before vouching for it,
        // so a rewrap never launders a ciphertext that would not decrypt. The plaintext is
        // dropped unread.
        LOCKBOX_ASSIGN_OR_RETURN(auto dek, impl_->OpeningDek(*k, env));
        LOCKBOX_RETURN_IF_ERROR(Impl::Open(*k, env, *dek, context).status());
        LOCKBOX_ASSIGN_OR_RETURN(env.wrapped_dek, impl_->WrapDek(*k, target, *dek));
        env.key_version = target;
        event.details["key_version"] = env.key_version;
        return EncodeEnvelope(env);
      });
}

StatusOr<DataKey> Keyring::GenerateDataKey(std::string_view name, bool include_plaintext,
                                           std::span<const std::uint8_t> context,
                                           std::uint32_t bits, const Caller& caller) {
  return impl_->AuditedUse<DataKey>(
      caller, KeyEvent("datakey", name, caller), [&](audit::Event& event) -> StatusOr<DataKey> {
        if (bits != 128 && bits != 256 && bits != 512) {
          return InvalidArgumentError("bits must be 128, 256 or 512");
        }
        event.details["bits"] = bits;
        event.details["plaintext_returned"] = include_plaintext;
        auto k = impl_->Find(name);
        if (!k) return KeyNotFound(name);
        LOCKBOX_RETURN_IF_ERROR(impl_->CheckUsable(*k));
        event.details["key_version"] = k->latest_version;
        crypto::SecureBuffer key = crypto::RandomSecret(bits / 8);
        DataKey out;
        LOCKBOX_ASSIGN_OR_RETURN(out.ciphertext,
                                 impl_->Seal(*k, k->latest_version, key.span(), context));
        if (include_plaintext) out.plaintext = std::move(key);
        return out;
      });
}

const DekCache& Keyring::dek_cache() const { return impl_->cache; }

}  // namespace lockbox::keyring
