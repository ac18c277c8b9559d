// Test helpers for the audit module: a software CheckpointSigner and a real audit database
// (the schema the server writes) filled with chained events and signed checkpoints.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "audit/chain.h"
#include "audit/checkpoint.h"
#include "audit/event.h"
#include "crypto/signature.h"

namespace lockbox::audit::testing {

// Signs with a software key (ES256 raw r||s or EdDSA).
class SoftwareSigner : public CheckpointSigner {
 public:
  explicit SoftwareSigner(crypto::SignatureAlgorithm alg);
  std::string alg() const override;
  std::string kid() const override { return "lockbox/audit/v1"; }
  StatusOr<std::vector<std::uint8_t>> Sign(std::span<const std::uint8_t> input) override;
  const crypto::PublicKey& public_key() const { return key_.public_key(); }

 private:
  crypto::PrivateKey key_;
};

// A deterministic, varied event (seq and time are set by the log).
Event SampleEvent(std::uint64_t i);

// An audit database in a file: schema as the server creates it, WAL mode.
class TestLog {
 public:
  TestLog(std::string path, std::string log_id);
  ~TestLog();
  TestLog(const TestLog&) = delete;
  TestLog& operator=(const TestLog&) = delete;

  // Appends `n` events; after every `checkpoint_every` events (0: never) a periodic checkpoint.
  void AppendEvents(std::uint64_t n, std::uint64_t checkpoint_every, CheckpointSigner& signer);
  // Writes a checkpoint over the current head; returns its JWS.
  std::string AppendCheckpoint(CheckpointKind kind, CheckpointSigner& signer);
  void Exec(const std::string& sql);
  void AdvanceClock(std::uint64_t ns) { clock_ns_ += ns; }
  void Close();

  const std::string& path() const { return path_; }
  const std::string& log_id() const { return log_id_; }
  std::uint64_t seq() const { return seq_; }
  const ChainHash& head() const { return head_; }

 private:
  std::string path_;
  std::string log_id_;
  sqlite3* db_ = nullptr;
  std::uint64_t seq_ = 0;
  ChainHash head_{};
  std::uint64_t clock_ns_ = 1795813285000000000ull;  // 2026-11-27T...
};

// Canonical events + checkpoint lines exported from a database, one per line.
std::string ExportToString(const std::string& db_path, std::uint64_t from_seq = 1);
std::vector<std::string> SplitLines(const std::string& text);
std::string JoinLines(const std::vector<std::string>& lines);
std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& content);

}  // namespace lockbox::audit::testing
