// The KV secrets engines: KV version 2 (versioned, check-and-set, soft delete, metadata) and
// KV version 1 (unversioned), on the wire exactly as Vault's (reference §5; mount options §2).
//
// Security properties:
//  - Secret values are never stored in plaintext: every value (each KV v2 version, each KV v1
//    entry) is sealed through the keyring under one storage key per mount ("kv/<mount uuid>")
//    with associated data binding the engine version, the mount's uuid, the path and (v2) the
//    version number, so a row copied to another path, version or mount fails authentication.
//    Metadata (paths, times, version numbers, custom_metadata) is stored in the clear.
//  - Every state change commits in the same transaction as its audit event; every read of a
//    value carries its event (op "kv.read", the request path and version, never the value) in
//    Response.event, which the router makes durable before the value leaves (or answers 503).
//  - Writes with check-and-set are linearizable: the cas check and the version assignment run
//    inside the store's unit of work, so concurrent writers with the same cas get exactly one
//    winner.
//  - Purge (mount disabled) deletes every row of the mount and schedules the storage key for
//    destruction (crypto-shredding once the keyring's waiting period has passed); the key can no
//    longer encrypt or decrypt from that moment.
// Thread safety: backends are thread-safe (see logical::Backend).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "crypto/status.h"
#include "server/audit_log/event_log.h"
#include "server/keyring/keyring.h"
#include "server/logical/logical.h"
#include "server/store/store.h"

namespace lockbox::secrets {

struct KvOptions {
  // Wall clock for created/deletion times; tests inject a fake one.
  std::function<std::chrono::system_clock::time_point()> clock = [] {
    return std::chrono::system_clock::now();
  };
  // KV v2 warm read cache of current versions (ciphertext and metadata only, never plaintext).
  std::size_t read_cache_entries = 10'000;
  std::size_t read_cache_bytes = 64u << 20;
  // How long the storage key of a purged mount waits before it may be destroyed; nullopt: the
  // keyring's default. Must not be below the keyring's minimum.
  std::optional<std::chrono::seconds> key_deletion_wait;
  // KV v1 lease_duration when neither the entry's "ttl" nor the mount sets one (Vault: 768h).
  std::chrono::seconds default_lease_ttl{std::chrono::hours(768)};
};

// The keyring key that seals a mount's values.
std::string KvStorageKeyName(const logical::MountEntry& entry);

// Makes the backend of a "kv"/"generic" mount: KV v2 when entry.options["version"] is "2",
// KV v1 otherwise. Creates the mount's storage key if it does not exist yet. The keyring, store
// and event log must outlive the backend.
StatusOr<std::unique_ptr<logical::Backend>> NewKvBackend(const logical::MountEntry& entry,
                                                         keyring::Keyring& keyring,
                                                         store::Store& store,
                                                         audit_log::EventLog& events,
                                                         KvOptions options = {});

// The KV engines' schema (component "kv"), for the store's Migrate().
std::vector<store::Migration> KvMigrations();

}  // namespace lockbox::secrets
