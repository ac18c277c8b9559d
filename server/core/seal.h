// Seal state and unseal keys.
//
// Lockbox's master keys live in the HSM, so an initialized server starts unsealed. `sys/seal` is an
// operator's emergency brake: the core then refuses every request but the status endpoints with 503
// until `threshold` distinct unseal keys (handed out once, at init) are submitted to `sys/unseal`.
// Unseal keys are 32 random bytes each; only their SHA-256 digests are stored, and submitted keys
// are compared against them in constant time. The seal state itself is not persisted: a restart
// unseals (the HSM PIN is the start-up credential).
// Thread safety: SealState is thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <set>
#include <span>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "crypto/secure_buffer.h"
#include "crypto/status.h"

namespace lockbox::core {

using KeyDigest = std::array<std::uint8_t, 32>;

struct SealConfig {
  int shares = 0;
  int threshold = 0;
  std::vector<KeyDigest> key_digests;  // one per share
};

// Vault's rules for secret_shares / secret_threshold (INVALID_ARGUMENT with Vault's messages).
Status ValidateSealParameters(int shares, int threshold);

struct UnsealKeys {
  SealConfig config;
  std::vector<crypto::SecureBuffer> keys;  // handed to the caller once, never stored
};
UnsealKeys GenerateUnsealKeys(int shares, int threshold);

nlohmann::json SealConfigToJson(const SealConfig& config);
StatusOr<SealConfig> SealConfigFromJson(const nlohmann::json& json);

// An unseal key as submitted: hex (Vault's "keys") or standard base64 ("keys_base64").
StatusOr<crypto::SecureBuffer> DecodeUnsealKey(std::string_view text);

class SealState {
 public:
  struct Snapshot {
    bool sealed = true;
    int shares = 0;
    int threshold = 0;
    int progress = 0;
  };

  // Installs the configuration (at start or init) and unseals.
  void Configure(SealConfig config);
  bool sealed() const { return sealed_.load(std::memory_order_acquire); }
  Snapshot snapshot() const;
  void Seal();
  // Forgets the keys submitted so far.
  void Reset();
  // Counts one key towards the threshold and unseals once it is reached. INVALID_ARGUMENT if the
  // key is not one of the unseal keys or was already submitted in this round. A no-op when
  // unsealed.
  StatusOr<Snapshot> Submit(std::span<const std::uint8_t> key);

 private:
  Snapshot SnapshotLocked() const;

  std::atomic<bool> sealed_{true};
  mutable std::mutex mutex_;
  SealConfig config_;
  std::set<std::size_t> submitted_;  // indexes into config_.key_digests
};

}  // namespace lockbox::core
