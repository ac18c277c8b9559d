// AuditLog implementation. See audit_log.h for the contract.
//
// State and threads:
//  - The chain head used for appending (seq, hash, next pos) is "tentative": Append() advances it
//    inside a unit of work on the store's writer thread and registers an undo with
//    Transaction::OnRollback, so a unit or batch that rolls back restores it; rows and head never
//    disagree and seq stays gap-free.
//  - What is reported and signed is the *committed* head, read from the database through a
//    reader connection (a snapshot only ever holds committed rows).
//  - A checkpoint is signed outside the writer thread (an HSM round trip must not stall the
//    commit pipeline) and then committed as its own row, after every event it covers.
#include "server/audit_log/audit_log.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include "crypto/encoding.h"
#include "crypto/hash.h"
#include "crypto/jwk.h"
#include "crypto/random.h"
#include "crypto/secure_buffer.h"
#include "server/audit_log/hsm_signer.h"
#include "server/blocking/would_block.h"

namespace lockbox::audit_log {
namespace {

constexpr std::string_view kHmacAad = "lockbox/audit-hmac/v1";
constexpr std::size_t kHmacKeyBytes = 32;

constexpr char kInsertRecord[] =
    "INSERT INTO audit_records (pos, seq, kind, body, hash) VALUES (?, ?, ?, ?, ?)";

std::int64_t ToInt64(std::uint64_t v) { return static_cast<std::int64_t>(v); }

store::Blob HashBlob(const audit::ChainHash& h) { return store::Blob(h.begin(), h.end()); }

// Writes `contents` to `path` atomically (temporary file + rename), mode 0644: public material.
Status WritePublicFile(const std::filesystem::path& path, const std::string& contents) {
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << contents;
    out.flush();
    if (!out) return UnavailableError("audit log: cannot write '" + tmp.string() + "'");
  }
  ::chmod(tmp.c_str(), 0644);
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    return UnavailableError("audit log: cannot write '" + path.string() + "': " + ec.message());
  }
  return Status::Ok();
}

struct Meta {
  std::string log_id;
  store::Blob hmac_kek;
  store::Blob hmac_key;
};

}  // namespace

std::vector<store::Migration> AuditMigrations() {
  return {
      {"audit", 1,
       "CREATE TABLE audit_meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);"
       "CREATE TABLE audit_records (pos INTEGER PRIMARY KEY, seq INTEGER NOT NULL, "
       "kind TEXT NOT NULL CHECK (kind IN ('event','checkpoint')), body TEXT NOT NULL, hash BLOB);"
       "CREATE UNIQUE INDEX audit_records_event_seq ON audit_records (seq) WHERE kind = 'event';"
       "CREATE TABLE audit_sink_cursors (sink TEXT PRIMARY KEY, pos INTEGER NOT NULL, "
       "updated INTEGER NOT NULL);"},
  };
}

struct AuditLog::Impl {
  Impl(store::Store& s, hsm::Hsm& h, AuditLogOptions o) : store(s), hsm(h), options(std::move(o)) {}

  store::Store& store;
  hsm::Hsm& hsm;
  const AuditLogOptions options;

  std::string log_id;
  crypto::SecureBuffer hmac_key;
  std::unique_ptr<HsmCheckpointSigner> signer;
  nlohmann::json public_jwk;
  std::string public_pem;

  // Tentative chain head (see the file comment) and checkpointer state.
  std::mutex mu;
  std::condition_variable cv;          // wakes the checkpointer
  std::uint64_t seq = 0;               // newest appended event
  audit::ChainHash hash{};             // h_seq
  std::int64_t next_pos = 1;           // pos of the next record (event or checkpoint)
  std::uint64_t checkpointed_seq = 0;  // seq covered by the newest checkpoint
  bool stopping = false;
  std::atomic<bool> closed{false};

  // The committed view, for head(): refreshed from the database; the newest checkpoint.
  mutable std::mutex head_mu;
  mutable Head committed;

  // Records waiting for their unit of work (RecordAsync): the first one in submits the unit,
  // which takes every record queued by the time it runs.
  struct PendingRecord {
    std::string head;  // audit::CanonicalEventHead, encoded by the caller's thread
    std::function<void(Status)> done;
    Status appended;  // Append()'s own result, once the unit has run
  };
  std::mutex pending_mu;
  std::vector<PendingRecord> pending;

  std::mutex checkpoint_mu;  // one checkpoint at a time, so they are stored in seq order
  std::mutex close_mu;
  bool close_done = false;
  Status close_status;
  std::thread checkpointer;

  Status LoadOrCreateMeta();
  Status LoadHead();
  Status SetUpSigner();
  StatusOr<Head> ReadCommittedHead() const;
  Status Append(store::Transaction& tx, audit::Event event);
  // Appends an event already encoded up to its seq and time (audit::CanonicalEventHead, with
  // this log's log_id): the part that must wait for the event's turn.
  Status AppendHead(store::Transaction& tx, std::string head);
  void RecordAsync(audit::Event event, std::function<void(Status)> done);
  std::vector<PendingRecord> TakePending();
  StatusOr<std::string> WriteCheckpoint(audit::CheckpointKind kind);
  void CheckpointerLoop();
  Status Close();
};

Status AuditLog::Impl::LoadOrCreateMeta() {
  LOCKBOX_ASSIGN_OR_RETURN(std::vector<store::Row> rows,
                           store.Query("SELECT key, value FROM audit_meta", {}));
  Meta meta;
  for (const store::Row& row : rows) {
    LOCKBOX_ASSIGN_OR_RETURN(std::string key, store::GetText(row, 0));
    if (key == "log_id") {
      LOCKBOX_ASSIGN_OR_RETURN(meta.log_id, store::GetText(row, 1));
    } else if (key == "hmac_kek") {
      LOCKBOX_ASSIGN_OR_RETURN(meta.hmac_kek, store::GetBlob(row, 1));
    } else if (key == "hmac_key") {
      LOCKBOX_ASSIGN_OR_RETURN(meta.hmac_key, store::GetBlob(row, 1));
    }
  }
  auto mkek = hsm.FindSecretKey(options.master_key_label);
  if (!mkek.ok() && mkek.status().code() == StatusCode::kNotFound && rows.empty()) {
    mkek = hsm.GenerateMasterKey(options.master_key_label);
    if (!mkek.ok() && mkek.status().code() == StatusCode::kAlreadyExists) {
      mkek = hsm.FindSecretKey(options.master_key_label);  // created concurrently
    }
  }
  if (!mkek.ok()) return mkek.status().WithContext("audit log: master key");

  if (rows.empty()) {
    // First open: a new log.
    meta.log_id = "lbx-log-" + crypto::Base64UrlEncode(crypto::RandomVector(12));
    LOCKBOX_ASSIGN_OR_RETURN(meta.hmac_kek, hsm.GenerateWrappedKey(*mkek));
    LOCKBOX_ASSIGN_OR_RETURN(hsm::KeyHandle kek, hsm.UnwrapKey(*mkek, meta.hmac_kek));
    crypto::SecureBuffer key = crypto::RandomSecret(kHmacKeyBytes);
    auto wrapped = hsm.WrapData(kek, key.span(), crypto::AsBytes(kHmacAad));
    (void)hsm.DestroyObject(kek);
    if (!wrapped.ok()) return wrapped.status().WithContext("audit log: wrap HMAC key");
    meta.hmac_key = std::move(wrapped).value();
    LOCKBOX_RETURN_IF_ERROR(store.Commit([&](store::Transaction& tx) -> Status {
      constexpr char kInsert[] = "INSERT INTO audit_meta (key, value) VALUES (?, ?)";
      LOCKBOX_RETURN_IF_ERROR(tx.Execute(kInsert, {"log_id", meta.log_id}).status());
      LOCKBOX_RETURN_IF_ERROR(tx.Execute(kInsert, {"hmac_kek", meta.hmac_kek}).status());
      return tx.Execute(kInsert, {"hmac_key", meta.hmac_key}).status();
    }));
    log_id = std::move(meta.log_id);
    hmac_key = std::move(key);
    return Status::Ok();
  }

  if (meta.log_id.empty() || meta.hmac_kek.empty() || meta.hmac_key.empty()) {
    return DataLossError("audit log: audit_meta is incomplete");
  }
  LOCKBOX_ASSIGN_OR_RETURN(hsm::KeyHandle kek, hsm.UnwrapKey(*mkek, meta.hmac_kek));
  auto key = hsm.UnwrapData(kek, meta.hmac_key, crypto::AsBytes(kHmacAad));
  (void)hsm.DestroyObject(kek);
  if (!key.ok()) return key.status().WithContext("audit log: unwrap HMAC key");
  if (key->size() != kHmacKeyBytes) return DataLossError("audit log: HMAC key has a wrong size");
  log_id = std::move(meta.log_id);
  hmac_key = std::move(key).value();
  return Status::Ok();
}

StatusOr<Head> AuditLog::Impl::ReadCommittedHead() const {
  Head h;
  h.log_id = log_id;
  h.hash = audit::GenesisHash(log_id);
  LOCKBOX_RETURN_IF_ERROR(store.Read([&](store::Transaction& tx) -> Status {
    LOCKBOX_ASSIGN_OR_RETURN(std::vector<store::Row> rows,
                             tx.Query("SELECT seq, hash FROM audit_records WHERE kind = 'event' "
                                      "ORDER BY seq DESC LIMIT 1",
                                      {}));
    if (rows.empty()) return Status::Ok();
    LOCKBOX_ASSIGN_OR_RETURN(std::int64_t s, store::GetInt(rows[0], 0));
    LOCKBOX_ASSIGN_OR_RETURN(store::Blob b, store::GetBlob(rows[0], 1));
    if (s <= 0 || b.size() != h.hash.size()) {
      return DataLossError("audit log: malformed newest event row");
    }
    h.seq = static_cast<std::uint64_t>(s);
    std::copy(b.begin(), b.end(), h.hash.begin());
    return Status::Ok();
  }));
  return h;
}

Status AuditLog::Impl::LoadHead() {
  LOCKBOX_ASSIGN_OR_RETURN(Head h, ReadCommittedHead());
  LOCKBOX_ASSIGN_OR_RETURN(std::vector<store::Row> pos,
                           store.Query("SELECT max(pos) FROM audit_records", {}));
  LOCKBOX_ASSIGN_OR_RETURN(
      std::vector<store::Row> cp,
      store.Query("SELECT seq, body FROM audit_records WHERE kind = 'checkpoint' "
                  "ORDER BY pos DESC LIMIT 1",
                  {}));
  std::lock_guard<std::mutex> lock(mu);
  seq = h.seq;
  hash = h.hash;
  next_pos = 1;
  if (!pos.empty() && !store::IsNull(pos[0], 0)) {
    LOCKBOX_ASSIGN_OR_RETURN(std::int64_t max_pos, store::GetInt(pos[0], 0));
    next_pos = max_pos + 1;
  }
  if (!cp.empty()) {
    LOCKBOX_ASSIGN_OR_RETURN(std::int64_t cp_seq, store::GetInt(cp[0], 0));
    LOCKBOX_ASSIGN_OR_RETURN(std::string body, store::GetText(cp[0], 1));
    checkpointed_seq = static_cast<std::uint64_t>(cp_seq);
    h.checkpoint = std::move(body);
  }
  std::lock_guard<std::mutex> head_lock(head_mu);
  committed = std::move(h);
  return Status::Ok();
}

Status AuditLog::Impl::SetUpSigner() {
  LOCKBOX_ASSIGN_OR_RETURN(signer, HsmCheckpointSigner::FindOrCreate(hsm, options.signing_key_label,
                                                                     options.signing_algorithm));
  LOCKBOX_ASSIGN_OR_RETURN(public_jwk, signer->PublicJwk());
  LOCKBOX_ASSIGN_OR_RETURN(crypto::PublicKey key, crypto::PublicKeyFromJwk(public_jwk));
  public_pem = key.ToPem();
  if (!options.public_key_dir.empty()) {
    LOCKBOX_RETURN_IF_ERROR(
        WritePublicFile(options.public_key_dir / "audit-public-key.pem", public_pem));
    LOCKBOX_RETURN_IF_ERROR(WritePublicFile(options.public_key_dir / "audit-public-key.jwk",
                                            public_jwk.dump(2) + "\n"));
  }
  return Status::Ok();
}

Status AuditLog::Impl::Append(store::Transaction& tx, audit::Event event) {
  event.log_id = log_id;  // AppendHead refuses if the log is closed
  LOCKBOX_ASSIGN_OR_RETURN(std::string head, audit::CanonicalEventHead(event));
  return AppendHead(tx, std::move(head));
}

Status AuditLog::Impl::AppendHead(store::Transaction& tx, std::string head) {
  if (closed.load(std::memory_order_acquire)) return UnavailableError("audit log: closed");
  const std::string time = audit::FormatTime(std::chrono::system_clock::now());
  std::unique_lock<std::mutex> lock(mu);
  const std::uint64_t event_seq = seq + 1;
  LOCKBOX_ASSIGN_OR_RETURN(std::string body,
                           audit::CompleteCanonicalEvent(std::move(head), event_seq, time));
  const audit::ChainHash next = audit::NextHash(hash, body);
  const std::int64_t pos = next_pos;
  LOCKBOX_RETURN_IF_ERROR(tx.Execute(kInsertRecord, {pos, ToInt64(event_seq), std::string("event"),
                                                     std::move(body), HashBlob(next)})
                              .status()
                              .WithContext("audit log: append"));
  const std::uint64_t previous_seq = seq;
  const audit::ChainHash previous_hash = hash;
  seq = event_seq;
  hash = next;
  next_pos = pos + 1;
  const bool wake = options.checkpoint_every_events > 0 &&
                    seq - checkpointed_seq == options.checkpoint_every_events;
  lock.unlock();
  // Undos run newest first, so each restores exactly the head it found.
  if (options.on_records_committed) tx.OnCommit(options.on_records_committed);
  tx.OnRollback([this, previous_seq, previous_hash, pos] {
    std::lock_guard<std::mutex> undo_lock(mu);
    seq = previous_seq;
    hash = previous_hash;
    next_pos = pos;
  });
  if (wake) cv.notify_one();
  return Status::Ok();
}

StatusOr<std::string> AuditLog::Impl::WriteCheckpoint(audit::CheckpointKind kind) {
  std::lock_guard<std::mutex> serial(checkpoint_mu);
  LOCKBOX_ASSIGN_OR_RETURN(Head h, ReadCommittedHead());
  audit::Checkpoint cp;
  cp.log_id = log_id;
  cp.seq = h.seq;
  cp.hash = h.hash;
  cp.time = audit::FormatTime(std::chrono::system_clock::now());
  cp.kind = kind;
  // Signed here, on the caller's thread: the writer thread never waits for the HSM.
  LOCKBOX_ASSIGN_OR_RETURN(std::string jws, audit::SignCheckpoint(cp, *signer));
  LOCKBOX_RETURN_IF_ERROR(store.Commit([&](store::Transaction& tx) -> Status {
    std::unique_lock<std::mutex> lock(mu);
    const std::int64_t pos = next_pos;
    LOCKBOX_RETURN_IF_ERROR(
        tx.Execute(kInsertRecord, {pos, ToInt64(cp.seq), std::string("checkpoint"), jws, nullptr})
            .status()
            .WithContext("audit log: write checkpoint"));
    next_pos = pos + 1;
    lock.unlock();
    if (options.on_records_committed) tx.OnCommit(options.on_records_committed);
    tx.OnRollback([this, pos] {
      std::lock_guard<std::mutex> undo_lock(mu);
      next_pos = pos;
    });
    return Status::Ok();
  }));
  {
    std::lock_guard<std::mutex> lock(mu);
    checkpointed_seq = std::max(checkpointed_seq, cp.seq);
  }
  std::lock_guard<std::mutex> head_lock(head_mu);
  if (h.seq >= committed.seq) {
    committed.seq = h.seq;
    committed.hash = h.hash;
  }
  committed.checkpoint = jws;
  return jws;
}

void AuditLog::Impl::CheckpointerLoop() {
  const auto every = std::max(options.checkpoint_every, std::chrono::milliseconds(1));
  auto deadline = std::chrono::steady_clock::now() + every;
  std::unique_lock<std::mutex> lock(mu);
  for (;;) {
    const bool by_count = cv.wait_until(lock, deadline, [&] {
      return stopping || (options.checkpoint_every_events > 0 &&
                          seq - checkpointed_seq >= options.checkpoint_every_events);
    });
    if (stopping) return;
    lock.unlock();
    if (by_count) {
      // The events that woke us were appended by a batch that may still be committing: an empty
      // unit queued now lands in a later batch, so once it returns they are committed (or rolled
      // back) and the checkpoint below covers them.
      (void)store.Commit([](store::Transaction&) { return Status::Ok(); });
    }
    // On failure (HSM or store down) the next period tries again; the failure shows as silence.
    (void)WriteCheckpoint(audit::CheckpointKind::kPeriodic);
    deadline = std::chrono::steady_clock::now() + every;
    lock.lock();
  }
}

Status AuditLog::Impl::Close() {
  std::lock_guard<std::mutex> close_lock(close_mu);
  if (close_done) return close_status;
  {
    std::lock_guard<std::mutex> lock(mu);
    stopping = true;
  }
  cv.notify_all();
  if (checkpointer.joinable()) checkpointer.join();
  auto stop = WriteCheckpoint(audit::CheckpointKind::kStop);
  closed.store(true, std::memory_order_release);
  close_status = stop.status();
  close_done = true;
  return close_status;
}

// ---- AuditLog --------------------------------------------------------------------------------

AuditLog::AuditLog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

AuditLog::~AuditLog() { (void)Close(); }

StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(store::Store& store, hsm::Hsm& hsm,
                                                   AuditLogOptions options) {
  crypto::InitCrypto();
  LOCKBOX_RETURN_IF_ERROR(store.Migrate(AuditMigrations()));
  auto impl = std::make_unique<Impl>(store, hsm, std::move(options));
  LOCKBOX_RETURN_IF_ERROR(impl->LoadOrCreateMeta());
  LOCKBOX_RETURN_IF_ERROR(impl->SetUpSigner());
  LOCKBOX_RETURN_IF_ERROR(impl->LoadHead());
  auto start = impl->WriteCheckpoint(audit::CheckpointKind::kStart);
  if (!start.ok()) return start.status().WithContext("audit log: start checkpoint");
  Impl* raw = impl.get();
  impl->checkpointer = std::thread([raw] { raw->CheckpointerLoop(); });
  return std::unique_ptr<AuditLog>(new AuditLog(std::move(impl)));
}

Status AuditLog::Close() { return impl_->Close(); }

Status AuditLog::Append(store::Transaction& tx, audit::Event event) {
  return impl_->Append(tx, std::move(event));
}

Status AuditLog::Record(audit::Event event) {
  if (blocking::RefuseToBlock()) return blocking::WouldBlockError();
  // Waits on a futex word, like the store's own Commit().
  struct Result {
    std::atomic<std::uint32_t> done{0};
    Status status;
  };
  const auto result = std::make_shared<Result>();
  impl_->RecordAsync(std::move(event), [result](Status status) {
    result->status = std::move(status);
    result->done.store(1, std::memory_order_release);
    result->done.notify_one();
  });
  while (result->done.load(std::memory_order_acquire) == 0) result->done.wait(0);
  return std::move(result->status);
}

void AuditLog::RecordAsync(audit::Event event, std::function<void(Status)> done) {
  impl_->RecordAsync(std::move(event), std::move(done));
}

std::vector<AuditLog::Impl::PendingRecord> AuditLog::Impl::TakePending() {
  std::lock_guard<std::mutex> lock(pending_mu);
  return std::exchange(pending, {});
}

void AuditLog::Impl::RecordAsync(audit::Event event, std::function<void(Status)> done) {
  if (closed.load(std::memory_order_acquire)) return done(UnavailableError("audit log: closed"));
  // Encoded here, on the caller's thread: the commit writer, whose time every queued record
  // waits for, only adds seq and time. A record the encoding refuses fails alone, at once.
  event.log_id = log_id;
  StatusOr<std::string> head = audit::CanonicalEventHead(event);
  if (!head.ok()) return done(head.status());
  bool first = false;
  {
    std::lock_guard<std::mutex> lock(pending_mu);
    first = pending.empty();
    pending.push_back({std::move(head).value(), std::move(done), Status::Ok()});
  }
  if (!first) return;  // the unit already queued takes it
  // The unit takes the records queued by the time it runs; if it never runs (store closed),
  // the completion takes them. A record AppendHead() refuses (it then leaves the chain
  // unchanged) fails alone; a batch that does not commit fails them all.
  auto taken = std::make_shared<std::optional<std::vector<PendingRecord>>>();
  store.CommitAsync(
      [this, taken](store::Transaction& tx) {
        *taken = TakePending();
        for (PendingRecord& record : **taken) {
          record.appended = AppendHead(tx, std::move(record.head));
        }
        return Status::Ok();
      },
      [this, taken](const Status& status) {
        std::vector<PendingRecord> records =
            taken->has_value() ? std::move(**taken) : TakePending();
        for (PendingRecord& record : records) {
          record.done(status.ok() ? std::move(record.appended) : status);
        }
      });
}

std::string AuditLog::Hmac(std::string_view value) const {
  const std::vector<std::uint8_t> mac =
      crypto::Hmac(crypto::HashAlgorithm::kSha256, impl_->hmac_key.span(), crypto::AsBytes(value));
  return "hmac-sha256:" + crypto::HexEncode(mac);
}

Head AuditLog::head() const {
  auto fresh = impl_->ReadCommittedHead();
  std::lock_guard<std::mutex> lock(impl_->head_mu);
  // The database is the truth; if it cannot be read, the last head seen is reported.
  if (fresh.ok() && fresh->seq >= impl_->committed.seq) {
    impl_->committed.seq = fresh->seq;
    impl_->committed.hash = fresh->hash;
  }
  return impl_->committed;
}

nlohmann::json AuditLog::PublicJwks() const {
  return nlohmann::json{{"keys", nlohmann::json::array({impl_->public_jwk})}};
}

std::string AuditLog::PublicKeyPem() const { return impl_->public_pem; }

StatusOr<std::string> AuditLog::WriteCheckpoint(audit::CheckpointKind kind) {
  if (impl_->closed.load(std::memory_order_acquire)) return UnavailableError("audit log: closed");
  return impl_->WriteCheckpoint(kind);
}

}  // namespace lockbox::audit_log
