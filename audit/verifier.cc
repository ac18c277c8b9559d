#include "audit/verifier.h"

#include <openssl/evp.h>
#include <sqlite3.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <cstring>
#include <istream>
#include <memory>
#include <ostream>
#include <utility>

#include "audit/event.h"
#include "crypto/encoding.h"
#include "crypto/jws.h"

namespace lockbox::audit {
namespace {

std::string SeqPrefix(std::uint64_t seq) { return "seq " + std::to_string(seq) + ": "; }

// The seq a checkpoint claims, read WITHOUT verification: only to name the failing seq.
std::optional<std::uint64_t> UnverifiedCheckpointSeq(std::string_view jws) {
  auto parts = crypto::ParseJwsCompact(jws);
  if (!parts.ok()) return std::nullopt;
  auto payload = nlohmann::json::parse(parts->payload.begin(), parts->payload.end(), nullptr,
                                       /*allow_exceptions=*/false);
  if (!payload.is_object()) return std::nullopt;
  auto seq = payload.find("seq");
  if (seq == payload.end() || !seq->is_number_unsigned()) return std::nullopt;
  return seq->get<std::uint64_t>();
}

// "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ", as audit/event.cc requires.
bool IsEventTime(std::string_view t) {
  static constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:dd.dddddddddZ";
  if (t.size() != kShape.size()) return false;
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (kShape[i] == 'd' ? !(t[i] >= '0' && t[i] <= '9') : t[i] != kShape[i]) return false;
  }
  return true;
}

// The verifier's fast path: accepts exactly the texts ParseCanonicalEvent accepts (a canonical
// JSON object with the event's members and their types, see audit/event.cc), reading only seq
// and log_id, without a DOM or an Event. On false the caller asks ParseCanonicalEvent why.
// Member names are compared as written: a canonical name equal to one of these has no escapes,
// and a canonical object's names are unique.
bool ScanCanonicalEvent(std::string_view text, std::vector<crypto::JcsMember>& members,
                        std::vector<crypto::JcsMember>& nested, std::uint64_t& seq,
                        std::string_view& log_id_literal) {
  if (text.empty() || text.front() != '{' || !crypto::IsCanonicalJson(text, &members)) {
    return false;
  }
  enum : unsigned {
    kSeq = 1 << 0,
    kTime = 1 << 1,
    kLogId = 1 << 2,
    kRequestId = 1 << 3,
    kActor = 1 << 4,
    kOp = 1 << 5,
    kPath = 1 << 6,
    kOutcome = 1 << 7,
    kRemoteAddr = 1 << 8,
    kAllRequired = (1 << 9) - 1,
  };
  // Integers up to 2^53 survive JCS exactly (event.cc's kMaxExactInteger).
  constexpr std::uint64_t kMaxSeq = std::uint64_t{1} << 53;
  unsigned seen = 0;
  for (const crypto::JcsMember& m : members) {
    const std::string_view v = m.value;  // canonical, so never empty
    const bool is_string = v.front() == '"';
    const std::string_view name = m.name;
    if (name == "seq") {
      // An unsigned integer: canonical digits only (nlohmann's number_unsigned), at most 2^53.
      if (v.size() > 16 ||
          !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return false;
      }
      std::uint64_t value = 0;
      const auto res = std::from_chars(v.data(), v.data() + v.size(), value);
      if (res.ec != std::errc() || res.ptr != v.data() + v.size() || value > kMaxSeq) {
        return false;
      }
      seq = value;
      seen |= kSeq;
    } else if (name == "time") {
      // Escapes never fit the shape, written or decoded.
      if (!is_string || !IsEventTime(v.substr(1, v.size() - 2))) return false;
      seen |= kTime;
    } else if (name == "log_id") {
      if (!is_string) return false;
      log_id_literal = v;
      seen |= kLogId;
    } else if (name == "request_id" || name == "actor" || name == "op" || name == "path" ||
               name == "remote_addr") {
      if (!is_string) return false;
      seen |= name == "request_id" ? kRequestId
              : name == "actor"    ? kActor
              : name == "op"       ? kOp
              : name == "path"     ? kPath
                                   : kRemoteAddr;
    } else if (name == "outcome") {
      if (v != "\"ok\"" && v != "\"denied\"" && v != "\"error\"") return false;
      seen |= kOutcome;
    } else if (name == "reason") {
      if (!is_string || v == "\"\"") return false;
    } else if (name == "hmacs" || name == "details") {
      if (v.front() != '{' || v == "{}" || !crypto::IsCanonicalJson(v, &nested)) return false;
      const bool hmacs = name == "hmacs";
      for (const crypto::JcsMember& n : nested) {
        const char c = n.value.front();
        // hmacs: strings; details: strings, numbers and booleans.
        const bool ok =
            c == '"' || (!hmacs && (c == '-' || (c >= '0' && c <= '9') || c == 't' || c == 'f'));
        if (!ok) return false;
      }
    } else {
      return false;  // unknown member
    }
  }
  return seen == kAllRequired;
}

// h_n = SHA-256(h_{n-1} || event) exactly as NextHash (audit/chain.h) computes it, with the
// digest fetched once and one context reused: NextHash's Sha256Hasher re-initialises from
// EVP_sha256(), which makes OpenSSL 3 look the algorithm up again for every event (that lookup
// was about 40% of the hashing time). Any OpenSSL failure falls back to NextHash.
class EventHasher {
 public:
  EventHasher() : md_(EVP_MD_fetch(nullptr, "SHA256", nullptr)), ctx_(EVP_MD_CTX_new()) {}
  ~EventHasher() {
    EVP_MD_CTX_free(ctx_);
    EVP_MD_free(md_);
  }
  EventHasher(const EventHasher&) = delete;
  EventHasher& operator=(const EventHasher&) = delete;

  ChainHash Next(const ChainHash& previous, std::string_view canonical_event) {
    ChainHash out{};
    unsigned int len = 0;
    if (md_ != nullptr && ctx_ != nullptr && EVP_DigestInit_ex2(ctx_, md_, nullptr) == 1 &&
        EVP_DigestUpdate(ctx_, previous.data(), previous.size()) == 1 &&
        EVP_DigestUpdate(ctx_, canonical_event.data(), canonical_event.size()) == 1 &&
        EVP_DigestFinal_ex(ctx_, out.data(), &len) == 1 && len == out.size()) {
      return out;
    }
    return NextHash(previous, canonical_event);
  }

 private:
  EVP_MD* md_;
  EVP_MD_CTX* ctx_;
};

ChainHash NextEventHash(const ChainHash& previous, std::string_view canonical_event) {
  thread_local EventHasher hasher;  // a ChainVerifier is used by one thread
  return hasher.Next(previous, canonical_event);
}

}  // namespace

ChainVerifier::ChainVerifier(crypto::PublicKey key,
                             std::optional<std::string> trusted_checkpoint_jws)
    : key_(std::move(key)) {
  if (trusted_checkpoint_jws.has_value()) {
    auto trusted = VerifyCheckpoint(*trusted_checkpoint_jws, key_);
    if (trusted.ok()) {
      trusted_ = std::move(trusted).value();
    } else {
      trusted_status_ = DataLossError("trusted checkpoint: " + trusted.status().message());
    }
  }
}

Status ChainVerifier::Fail(std::string message) {
  failed_ = DataLossError(std::move(message));
  return failed_;
}

void ChainVerifier::Start(const ChainHash& origin, std::uint64_t origin_seq) {
  started_ = true;
  origin_seq_ = origin_seq;
  prev_ = origin;
  summary_.last_seq = origin_seq;
  recent_.clear();
  recent_.push_back(origin);
  recent_base_ = origin_seq;
}

void ChainVerifier::Remember(std::uint64_t seq, const ChainHash& hash) {
  recent_.push_back(hash);
  if (recent_.size() > kCheckpointWindow) {
    recent_.pop_front();
    ++recent_base_;
  }
  (void)seq;
}

Status ChainVerifier::CheckLogId(std::uint64_t seq, const std::string& log_id,
                                 std::string_view what) {
  if (!log_id_.has_value()) {
    log_id_ = log_id;
  } else if (*log_id_ != log_id) {
    return Fail(SeqPrefix(seq) + std::string(what) + " log_id differs from the log's");
  }
  return Status::Ok();
}

// Called when the chain reaches `seq` with `hash` (or starts there).
Status ChainVerifier::CheckTrustedAt(std::uint64_t seq, const ChainHash& hash) {
  if (!trusted_.has_value() || trusted_checked_ || trusted_->seq != seq) return Status::Ok();
  trusted_checked_ = true;
  if ((log_id_.has_value() && trusted_->log_id != *log_id_) || trusted_->hash != hash) {
    return Fail(SeqPrefix(seq) + "log forked: hash differs from the trusted checkpoint");
  }
  return Status::Ok();
}

Status ChainVerifier::AddEvent(std::string_view canonical_event, const ChainHash* stored_hash) {
  if (!failed_.ok()) return failed_;
  const std::uint64_t expected = started_ ? summary_.last_seq + 1 : 1;
  std::uint64_t seq = 0;
  std::string_view log_id_literal;
  if (!ScanCanonicalEvent(canonical_event, members_, nested_members_, seq, log_id_literal)) {
    // Refused. The reference parser says why (it refuses the same texts; should it ever accept
    // one the fast path refused, the event still fails).
    auto event = ParseCanonicalEvent(canonical_event);
    return Fail(SeqPrefix(expected) + (event.ok() ? std::string("audit event is not canonical JSON")
                                                  : event.status().message()));
  }
  if (seq != expected) {
    return Fail(SeqPrefix(seq) + "expected seq " + std::to_string(expected));
  }
  event_log_id_.clear();
  crypto::AppendJcsStringValue(log_id_literal, event_log_id_);
  LOCKBOX_RETURN_IF_ERROR(CheckLogId(seq, event_log_id_, "event"));
  if (!started_) {
    Start(GenesisHash(*log_id_), 0);
    LOCKBOX_RETURN_IF_ERROR(CheckTrustedAt(0, prev_));
  }
  const ChainHash hash = NextEventHash(prev_, canonical_event);
  if (stored_hash != nullptr && *stored_hash != hash) {
    return Fail(SeqPrefix(seq) + "hash mismatch");
  }
  prev_ = hash;
  summary_.last_seq = seq;
  if (summary_.events++ == 0) summary_.first_seq = seq;
  Remember(seq, hash);
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->seq != seq) {
      ++it;
      continue;
    }
    if (it->hash != hash) {
      return Fail(SeqPrefix(seq) + "checkpoint hash does not match the chain");
    }
    it = pending_.erase(it);
  }
  return CheckTrustedAt(seq, hash);
}

Status ChainVerifier::AddCheckpoint(std::string_view jws) {
  if (!failed_.ok()) return failed_;
  auto checkpoint = VerifyCheckpoint(jws, key_);
  if (!checkpoint.ok()) {
    const std::uint64_t seq = UnverifiedCheckpointSeq(jws).value_or(summary_.last_seq);
    if (checkpoint.status().code() == StatusCode::kDataLoss) {
      return Fail(SeqPrefix(seq) + "checkpoint signature invalid");
    }
    return Fail(SeqPrefix(seq) + "checkpoint invalid: " + checkpoint.status().message());
  }
  const Checkpoint& c = *checkpoint;
  LOCKBOX_RETURN_IF_ERROR(CheckLogId(c.seq, c.log_id, "checkpoint"));
  ++summary_.checkpoints;
  last_checkpoint_ = c;
  if (!newest_checkpoint_.has_value() || c.seq >= newest_checkpoint_->seq) newest_checkpoint_ = c;

  if (!started_) {
    if (c.seq == 0) {
      if (c.hash != GenesisHash(c.log_id)) {
        return Fail(SeqPrefix(0) + "checkpoint hash does not match the chain");
      }
      Start(c.hash, 0);
      return CheckTrustedAt(0, c.hash);
    }
    if (allow_partial_) {
      // A signed anchor: the slice is checked from h_{c.seq} on.
      if (trusted_.has_value() && trusted_->seq < c.seq) {
        return Fail("trusted checkpoint at seq " + std::to_string(trusted_->seq) +
                    " precedes the start of the stream (seq " + std::to_string(c.seq) + ")");
      }
      Start(c.hash, c.seq);
      return CheckTrustedAt(c.seq, c.hash);
    }
    pending_.push_back(c);
    return Status::Ok();
  }
  if (c.seq > summary_.last_seq) {
    pending_.push_back(c);
    return Status::Ok();
  }
  if (c.seq < recent_base_) {
    return Fail(SeqPrefix(c.seq) + (c.seq < origin_seq_ ? "checkpoint precedes the stream"
                                                        : "checkpoint too far behind the log"));
  }
  if (recent_[c.seq - recent_base_] != c.hash) {
    return Fail(SeqPrefix(c.seq) + "checkpoint hash does not match the chain");
  }
  return Status::Ok();
}

StatusOr<VerifySummary> ChainVerifier::Finish() {
  if (!failed_.ok()) return failed_;
  if (!trusted_status_.ok()) return Fail(trusted_status_.message());
  if (!started_ && log_id_.has_value()) {
    // An empty log whose id is known (database): its head is h_0.
    Start(GenesisHash(*log_id_), 0);
    LOCKBOX_RETURN_IF_ERROR(CheckTrustedAt(0, prev_));
  }
  if (!pending_.empty()) {
    const auto newest =
        std::max_element(pending_.begin(), pending_.end(),
                         [](const Checkpoint& a, const Checkpoint& b) { return a.seq < b.seq; });
    return Fail("log ends at seq " + std::to_string(summary_.last_seq) +
                " before the newest checkpoint at seq " + std::to_string(newest->seq));
  }
  if (trusted_.has_value() && !trusted_checked_) {
    if (log_id_.has_value() && trusted_->log_id != *log_id_) {
      return Fail("trusted checkpoint is for another log");
    }
    if (!started_ || trusted_->seq > summary_.last_seq) {
      return Fail("trusted checkpoint at seq " + std::to_string(trusted_->seq) +
                  " is beyond the end of the log (seq " + std::to_string(summary_.last_seq) + ")");
    }
    return Fail("trusted checkpoint at seq " + std::to_string(trusted_->seq) +
                " precedes the start of the stream (seq " + std::to_string(origin_seq_) + ")");
  }
  summary_.log_id = log_id_.value_or("");
  summary_.head = started_ ? prev_ : ChainHash{};
  return summary_;
}

// ---------------------------------------------------------------------------------------------
// SQLite sources.

namespace {

struct DbClose {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalize {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using DbPtr = std::unique_ptr<sqlite3, DbClose>;
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalize>;

StatusOr<DbPtr> OpenReadOnly(const std::string& path) {
  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
  DbPtr db(raw);
  if (rc != SQLITE_OK) {
    return UnavailableError("cannot open audit database '" + path +
                            "': " + (raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
  }
  sqlite3_busy_timeout(db.get(), 5000);
  return db;
}

StatusOr<StmtPtr> Prepare(sqlite3* db, const char* sql) {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &raw, nullptr) != SQLITE_OK) {
    return UnavailableError(std::string("cannot read audit database: ") + sqlite3_errmsg(db));
  }
  return StmtPtr(raw);
}

std::string_view ColumnText(sqlite3_stmt* s, int col) {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s, col));
  return p ? std::string_view(p, static_cast<std::size_t>(sqlite3_column_bytes(s, col)))
           : std::string_view();
}

StatusOr<std::string> ReadLogId(sqlite3* db) {
  LOCKBOX_ASSIGN_OR_RETURN(StmtPtr stmt,
                           Prepare(db, "SELECT value FROM audit_meta WHERE key = 'log_id'"));
  const int rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_ROW) return std::string(ColumnText(stmt.get(), 0));
  if (rc == SQLITE_DONE) return DataLossError("audit_meta has no log_id");
  return UnavailableError(std::string("cannot read audit database: ") + sqlite3_errmsg(db));
}

// Reads one snapshot: both queries run in one read transaction.
class ReadTransaction {
 public:
  explicit ReadTransaction(sqlite3* db) : db_(db) {
    ok_ = sqlite3_exec(db_, "BEGIN", nullptr, nullptr, nullptr) == SQLITE_OK;
  }
  ~ReadTransaction() {
    if (ok_) sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
  }
  ReadTransaction(const ReadTransaction&) = delete;
  ReadTransaction& operator=(const ReadTransaction&) = delete;

 private:
  sqlite3* db_;
  bool ok_ = false;
};

}  // namespace

StatusOr<VerifySummary> VerifyDatabase(const std::string& db_path, const crypto::PublicKey& key,
                                       std::optional<std::string> trusted_checkpoint_jws) {
  LOCKBOX_ASSIGN_OR_RETURN(DbPtr db, OpenReadOnly(db_path));
  ReadTransaction txn(db.get());
  LOCKBOX_ASSIGN_OR_RETURN(
      StmtPtr stmt,
      Prepare(db.get(), "SELECT seq, kind, body, hash FROM audit_records ORDER BY pos"));
  LOCKBOX_ASSIGN_OR_RETURN(std::string log_id, ReadLogId(db.get()));
  ChainVerifier verifier(key, std::move(trusted_checkpoint_jws));
  verifier.ExpectLogId(log_id);
  int rc;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    const sqlite3_int64 row_seq = sqlite3_column_int64(stmt.get(), 0);
    const std::string_view kind = ColumnText(stmt.get(), 1);
    const std::string_view body = ColumnText(stmt.get(), 2);
    // Built only on failure: no allocation per row.
    const auto prefix = [row_seq] { return "seq " + std::to_string(row_seq) + ": "; };
    if (kind == "event") {
      if (sqlite3_column_type(stmt.get(), 3) != SQLITE_BLOB ||
          sqlite3_column_bytes(stmt.get(), 3) != static_cast<int>(sizeof(ChainHash))) {
        return DataLossError(prefix() + "stored hash missing or malformed");
      }
      ChainHash stored;
      std::memcpy(stored.data(), sqlite3_column_blob(stmt.get(), 3), stored.size());
      LOCKBOX_RETURN_IF_ERROR(verifier.AddEvent(body, &stored));
      if (static_cast<std::uint64_t>(row_seq) != verifier.last_seq()) {
        return DataLossError("seq " + std::to_string(verifier.last_seq()) +
                             ": row seq column differs (" + std::to_string(row_seq) + ")");
      }
    } else if (kind == "checkpoint") {
      LOCKBOX_RETURN_IF_ERROR(verifier.AddCheckpoint(body));
      if (static_cast<std::uint64_t>(row_seq) != verifier.last_checkpoint()->seq) {
        return DataLossError("seq " + std::to_string(verifier.last_checkpoint()->seq) +
                             ": checkpoint row seq column differs (" + std::to_string(row_seq) +
                             ")");
      }
    } else {
      return DataLossError(prefix() + "unknown record kind");
    }
  }
  if (rc != SQLITE_DONE) {
    return UnavailableError(std::string("cannot read audit database: ") + sqlite3_errmsg(db.get()));
  }
  return verifier.Finish();
}

StatusOr<VerifySummary> VerifyJsonl(std::istream& in, const crypto::PublicKey& key,
                                    std::optional<std::string> trusted_checkpoint_jws,
                                    bool allow_partial) {
  static constexpr std::string_view kCheckpointPrefix = "{\"checkpoint\":\"";
  ChainVerifier verifier(key, std::move(trusted_checkpoint_jws));
  verifier.AllowPartial(allow_partial);
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(kCheckpointPrefix)) {
      const std::string_view rest = std::string_view(line).substr(kCheckpointPrefix.size());
      const std::size_t end = rest.find('"');
      const std::string_view jws = rest.substr(0, end);
      if (end == std::string_view::npos || CheckpointLine(jws) != line) {
        return DataLossError("seq " + std::to_string(verifier.last_seq()) +
                             ": malformed checkpoint line");
      }
      LOCKBOX_RETURN_IF_ERROR(verifier.AddCheckpoint(jws));
    } else {
      LOCKBOX_RETURN_IF_ERROR(verifier.AddEvent(line));
    }
  }
  if (in.bad()) return UnavailableError("cannot read the JSONL stream");
  return verifier.Finish();
}

Status ExportJsonl(const std::string& db_path, std::uint64_t from_seq, std::ostream& out) {
  LOCKBOX_ASSIGN_OR_RETURN(DbPtr db, OpenReadOnly(db_path));
  ReadTransaction txn(db.get());
  sqlite3_int64 start_pos = INT64_MIN;
  if (from_seq > 1) {
    LOCKBOX_ASSIGN_OR_RETURN(
        StmtPtr anchor,
        Prepare(db.get(),
                "SELECT pos FROM audit_records WHERE kind = 'checkpoint' AND seq < ?1 "
                "ORDER BY pos DESC LIMIT 1"));
    sqlite3_bind_int64(anchor.get(), 1, static_cast<sqlite3_int64>(from_seq));
    const int rc = sqlite3_step(anchor.get());
    if (rc == SQLITE_ROW) {
      start_pos = sqlite3_column_int64(anchor.get(), 0);
    } else if (rc != SQLITE_DONE) {
      return UnavailableError(std::string("cannot read audit database: ") +
                              sqlite3_errmsg(db.get()));
    }
  }
  LOCKBOX_ASSIGN_OR_RETURN(
      StmtPtr stmt,
      Prepare(db.get(), "SELECT kind, body FROM audit_records WHERE pos >= ?1 ORDER BY pos"));
  sqlite3_bind_int64(stmt.get(), 1, start_pos);
  int rc;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    const std::string_view kind = ColumnText(stmt.get(), 0);
    const std::string_view body = ColumnText(stmt.get(), 1);
    if (kind == "checkpoint") {
      out << CheckpointLine(body) << '\n';
    } else {
      out << body << '\n';
    }
  }
  if (rc != SQLITE_DONE) {
    return UnavailableError(std::string("cannot read audit database: ") + sqlite3_errmsg(db.get()));
  }
  out.flush();
  if (!out) return UnavailableError("cannot write the export");
  return Status::Ok();
}

}  // namespace lockbox::audit
