// The Transit secrets engine (reference §6): named, versioned keys that encrypt, decrypt,
// rewrap, HMAC, sign and verify for callers without ever handing a key out.
//
// Key material (DESIGN.md §4):
//  - Every transit key is one keyring key ("transit/<mount uuid>/<name>"): its versions, minimum
//    versions and destruction are the keyring's. aes256-gcm96 and chacha20-poly1305 data is
//    sealed in keyring envelopes (format 1 / 2): per-message DEKs wrapped inside the HSM by the
//    version's KEK, which exists outside the HSM only wrapped by the MKEK.
//  - Per-version secrets (each version's HMAC key; the convergent key of convergent keys) are
//    random bytes stored only as keyring envelopes under that very version: destroying or
//    trimming the keyring version crypto-shreds them too. Unwrapped, they live in SecureBuffers.
//  - ecdsa-p256 and ed25519 private keys are non-extractable HSM token objects labelled
//    "lockbox/transit/<mount uuid>/<name>/v<N>"; signing happens in the HSM, verification in
//    software with the public key.
//  - Nothing is exportable: export/backup refuse, `exportable`/`allow_plaintext_backup` cannot be
//    set.
//  - Convergent encryption (docs/formats.md, "Transit convergent ciphertext") is deterministic:
//    equal (version, context, associated data, plaintext) give equal ciphertexts, which reveals
//    equality of plaintexts and nothing else (nonces are synthetic: an HMAC of everything sealed).
//
// Audit: every request the backend answers carries its own audit event: reads and uses
// (encrypt, decrypt, sign, verify, hmac, read-key, ...) hand it to the router (Response.event),
// which makes it durable before the result leaves; changes commit their transit rows with their
// event in one unit (Response.audited; the keyring's own changes commit with the keyring's
// events). Errors returned as a Status are left to the router.
// Thread safety: the backend is thread-safe; uses run concurrently, changes are serialised.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "crypto/status.h"
#include "hsm/hsm.h"
#include "server/audit_log/event_log.h"
#include "server/keyring/keyring.h"
#include "server/logical/logical.h"
#include "server/store/store.h"

namespace lockbox::transit {

struct TransitOptions {
  // Wall clock for key creation times; tests inject a fake one.
  std::function<std::chrono::system_clock::time_point()> clock = [] {
    return std::chrono::system_clock::now();
  };
};

// The keyring key behind a transit key.
std::string TransitKeyringName(const logical::MountEntry& entry, std::string_view name);

// Makes the backend of a "transit" mount and loads its keys. The keyring, HSM, store and event
// log must outlive the backend. The store must have TransitMigrations() applied.
StatusOr<std::unique_ptr<logical::Backend>> NewTransitBackend(const logical::MountEntry& entry,
                                                              keyring::Keyring& keyring,
                                                              hsm::Hsm& hsm, store::Store& store,
                                                              audit_log::EventLog& events,
                                                              TransitOptions options = {});

// The transit engine's schema (component "transit"), for the store's Migrate().
std::vector<store::Migration> TransitMigrations();

}  // namespace lockbox::transit
