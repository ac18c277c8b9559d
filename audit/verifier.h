// The auditor's chain verifier, shared by the server and the offline tool `lockbox-audit`.
// Checks, in stream order: every event's canonical encoding, seq continuity from 1, every chain
// hash (and the stored one, where the source has it), every checkpoint's signature and that its
// hash matches the chain at its seq, that the log reaches the newest checkpoint, and — given a
// trusted checkpoint kept outside — that the log still holds that seq with that hash.
// Thread safety: a ChainVerifier is used by one thread.
#pragma once

#include <cstdint>
#include <deque>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "audit/chain.h"
#include "audit/checkpoint.h"
#include "crypto/jcs.h"
#include "crypto/signature.h"
#include "crypto/status.h"

namespace lockbox::audit {

struct VerifySummary {
  std::string log_id;
  std::uint64_t events = 0;
  std::uint64_t first_seq = 0;
  std::uint64_t last_seq = 0;
  std::uint64_t checkpoints = 0;
  ChainHash head{};
};

class ChainVerifier {
 public:
  // `trusted_checkpoint_jws`: verified with the same key first (constructor can't fail: a bad one
  // makes Finish() fail).
  ChainVerifier(crypto::PublicKey key, std::optional<std::string> trusted_checkpoint_jws);

  // A failure message starts with "seq N: ".
  Status AddEvent(std::string_view canonical_event, const ChainHash* stored_hash = nullptr);
  Status AddCheckpoint(std::string_view jws);
  StatusOr<VerifySummary> Finish();

  // Additions for the sources below and the tool:
  // The log id every event and checkpoint must carry (the database's audit_meta row); without it
  // the first record's log_id is taken.
  void ExpectLogId(std::string log_id) { log_id_ = std::move(log_id); }
  // Accepts a stream that starts with a checkpoint at seq S > 0 (an export --from slice): the
  // chain is checked from that signed anchor, h_S, on instead of from h_0. Off by default, so a
  // log with its first records deleted never passes as whole.
  void AllowPartial(bool allow) { allow_partial_ = allow; }
  // Newest event seq added so far, and the last checkpoint AddCheckpoint accepted.
  std::uint64_t last_seq() const { return summary_.last_seq; }
  const std::optional<Checkpoint>& last_checkpoint() const { return last_checkpoint_; }

  // Integrity failures are DATA_LOSS, with messages like "seq 42: hash mismatch",
  // "seq 17: expected seq 16", "seq 1000: checkpoint signature invalid",
  // "log ends at seq 900 before the newest checkpoint at seq 1000",
  // "trusted checkpoint at seq 1200 is beyond the end of the log (seq 1100)",
  // "seq 1200: log forked: hash differs from the trusted checkpoint".
  // Checkpoints may trail their seq in the stream by up to kCheckpointWindow events.
  static constexpr std::size_t kCheckpointWindow = 1 << 16;

 private:
  Status Fail(std::string message);
  void Start(const ChainHash& origin, std::uint64_t origin_seq);
  void Remember(std::uint64_t seq, const ChainHash& hash);
  Status CheckLogId(std::uint64_t seq, const std::string& log_id, std::string_view what);
  Status CheckTrustedAt(std::uint64_t seq, const ChainHash& hash);

  crypto::PublicKey key_;
  bool allow_partial_ = false;
  std::optional<std::string> log_id_;  // expected (ExpectLogId) or taken from the first record
  bool started_ = false;               // the chain's origin (genesis or anchor) is known
  std::uint64_t origin_seq_ = 0;       // 0 for a full log, the anchor checkpoint's seq otherwise
  ChainHash prev_{};                   // h_{last_seq}
  VerifySummary summary_;
  std::optional<Checkpoint> last_checkpoint_;
  std::optional<Checkpoint> newest_checkpoint_;
  std::vector<Checkpoint> pending_;  // verified checkpoints ahead of the chain, awaiting events
  std::deque<ChainHash> recent_;     // h_{recent_base_} .. h_{last_seq}, bounded
  std::uint64_t recent_base_ = 0;
  std::optional<Checkpoint> trusted_;
  Status trusted_status_;
  bool trusted_checked_ = false;
  Status failed_;
  // Scratch space reused by AddEvent so that verifying an event allocates nothing.
  std::vector<crypto::JcsMember> members_;
  std::vector<crypto::JcsMember> nested_members_;
  std::string event_log_id_;
};

// Sources. The database is opened read-only (SQLite, table audit_records, see server/audit_log).
// Errors reading the source (cannot open, missing table, I/O) are UNAVAILABLE/INVALID_ARGUMENT;
// integrity failures are DATA_LOSS.
// Schema read:
//   audit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)  -- row ('log_id', <id>)
//   audit_records (pos INTEGER PRIMARY KEY, seq INTEGER NOT NULL, kind TEXT NOT NULL
//                  CHECK (kind IN ('event','checkpoint')), body TEXT NOT NULL, hash BLOB)
//   in pos order; events: body = canonical event, hash = h_seq; checkpoints: body = JWS,
//   seq = the seq it covers, hash NULL.
StatusOr<VerifySummary> VerifyDatabase(const std::string& db_path, const crypto::PublicKey& key,
                                       std::optional<std::string> trusted_checkpoint_jws);
StatusOr<VerifySummary> VerifyJsonl(std::istream& in, const crypto::PublicKey& key,
                                    std::optional<std::string> trusted_checkpoint_jws,
                                    bool allow_partial = false);
// Writes events (their canonical text) and checkpoints ({"checkpoint":...}) one per line, in
// stream order. With `from_seq` > 1 the output starts at the newest checkpoint covering a seq
// before `from_seq` (the signed anchor that lets the slice verify with allow_partial), so every
// event from `from_seq` on is included, plus the few between that anchor and `from_seq`; with no
// such checkpoint it starts at the beginning of the log.
Status ExportJsonl(const std::string& db_path, std::uint64_t from_seq, std::ostream& out);

}  // namespace lockbox::audit
