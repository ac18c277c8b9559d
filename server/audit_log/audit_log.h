// AuditLog: the server's tamper-evident audit log (DESIGN.md §1.2, §7).
//
// Events are appended inside the store's commit pipeline, in the same transaction as the state
// change they record: Append() runs inside a unit of work, assigns seq, time and log_id, encodes
// the event canonically and extends the hash chain; if the unit (or its batch) rolls back, the
// chain head rolls back with it, so seq stays gap-free and the chain matches what is on disk.
// Record() is for reads and denials: it commits the event outside any state change and returns
// once it is durable; records arriving while one is queued join its unit of work.
// A background checkpointer signs {log_id, seq, hash, time, kind} inside the HSM at start, every
// N events or T seconds (even when idle) and at Close().
// Security property: if an event cannot be appended, the operation that carries it fails (the
// unit returns the error and rolls back), so no state change or read result exists without its
// record. Sensitive values reach an event only through Hmac().
// Thread safety: all methods are thread-safe. Append() must only be called inside a unit of work
// (it runs on the store's writer thread). The store and the HSM must outlive the AuditLog.
// Schema (component "audit", v1; read by the offline verifier): audit_meta(key, value) holds
// 'log_id' (TEXT), 'hmac_kek' (KEK wrapped by the MKEK) and 'hmac_key' (HMAC key wrapped by the
// KEK, AAD "lockbox/audit-hmac/v1"); audit_records(pos, seq, kind, body, hash) holds events
// (canonical text, hash h_seq) and checkpoints (JWS, hash NULL, seq = the seq covered) in stream
// order `pos`; audit_sink_cursors(sink, pos, updated) is for the SIEM forwarders. A checkpoint
// covers the committed head when it was signed, so it may trail later events in `pos` order.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "audit/chain.h"
#include "audit/checkpoint.h"
#include "audit/event.h"
#include "crypto/status.h"
#include "hsm/hsm.h"
#include "server/audit_log/event_log.h"
#include "server/store/store.h"

namespace lockbox::audit_log {

struct AuditLogOptions {
  std::string signing_key_label = "lockbox/audit/v1";
  hsm::SigningAlgorithm signing_algorithm = hsm::SigningAlgorithm::kEcdsaP256Sha256;
  std::string master_key_label = "lockbox/mkek/v1";  // wraps the audit HMAC key's KEK
  std::uint64_t checkpoint_every_events = 1000;
  std::chrono::milliseconds checkpoint_every{10'000};
  // Where audit-public-key.pem and audit-public-key.jwk are written (empty: not written).
  std::filesystem::path public_key_dir;
  // Called (on the store's writer thread) whenever events or checkpoints have committed, e.g. to
  // wake the SIEM forwarders (siem::Forwarder::Notify). Must be cheap and must not block.
  std::function<void()> on_records_committed;
};

struct Head {
  std::string log_id;
  std::uint64_t seq = 0;  // newest committed event (0: none yet)
  audit::ChainHash hash{};
  std::optional<std::string> checkpoint;  // newest checkpoint JWS
};

class AuditLog final : public EventLog {
 public:
  // Applies the audit migrations, creates the log (log_id, HMAC key, HSM signing key) on first
  // open, loads the chain head, writes the "start" checkpoint and starts the checkpointer.
  static StatusOr<std::unique_ptr<AuditLog>> Open(store::Store& store, hsm::Hsm& hsm,
                                                  AuditLogOptions options = {});
  // Stops the checkpointer and writes the "stop" checkpoint.
  ~AuditLog() override;
  Status Close();

  // Inside a unit of work: appends `event` (seq, time, log_id are assigned here).
  Status Append(store::Transaction& tx, audit::Event event) override;
  // Outside any unit: commits `event`; OK once it is durable. Concurrent records share one unit
  // of work (appended in arrival order): a failure fails every record of that unit.
  Status Record(audit::Event event) override;
  void RecordAsync(audit::Event event, std::function<void(Status)> done) override;

  // "hmac-sha256:<hex>" of a sensitive value under the audit HMAC key.
  std::string Hmac(std::string_view value) const;

  Head head() const;
  // The audit signing key's public key as a JWKS {"keys":[jwk]} and as PEM.
  nlohmann::json PublicJwks() const;
  std::string PublicKeyPem() const;

  // Writes a checkpoint now (also used by the checkpointer); returns its JWS.
  StatusOr<std::string> WriteCheckpoint(audit::CheckpointKind kind);

 private:
  struct Impl;
  explicit AuditLog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

std::vector<store::Migration> AuditMigrations();

}  // namespace lockbox::audit_log
