// Signed checkpoints: a JWS (compact, ES256 or EdDSA) over the JCS of
// {"hash":hex,"kind":"start|periodic|stop","log_id":...,"seq":N,"time":RFC3339}.
// Protected header: {"alg":"ES256"|"EdDSA","kid":<signing key
// label>,"typ":"lockbox-checkpoint+jws"}. Security property: a checkpoint verifies only under the
// audit public key, with the algorithm the key pins; anything else about it (header, payload,
// signature) altered fails verification.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "audit/chain.h"
#include "crypto/signature.h"
#include "crypto/status.h"

namespace lockbox::audit {

enum class CheckpointKind { kStart, kPeriodic, kStop };
std::string_view CheckpointKindName(CheckpointKind kind);

struct Checkpoint {
  std::string log_id;
  std::uint64_t seq = 0;  // the newest event seq it covers (0: empty log)
  ChainHash hash{};       // h_seq
  std::string time;       // RFC 3339 UTC, ns
  CheckpointKind kind = CheckpointKind::kPeriodic;
};

// Signs JWS signing inputs. The server's implementation signs inside the HSM.
class CheckpointSigner {
 public:
  virtual ~CheckpointSigner() = default;
  virtual std::string alg() const = 0;  // "ES256" (raw r||s) or "EdDSA"
  virtual std::string kid() const = 0;
  virtual StatusOr<std::vector<std::uint8_t>> Sign(std::span<const std::uint8_t> input) = 0;
};

// Returns the JWS compact serialization.
StatusOr<std::string> SignCheckpoint(const Checkpoint& checkpoint, CheckpointSigner& signer);
// Verifies the JWS with `key` (alg pinned by the key type; "none" and others refused) and returns
// the checkpoint. DATA_LOSS for a bad signature, INVALID_ARGUMENT for malformed input.
StatusOr<Checkpoint> VerifyCheckpoint(std::string_view jws, const crypto::PublicKey& key);

// A checkpoint line of the JSONL stream: {"checkpoint":"<jws>"}.
std::string CheckpointLine(std::string_view jws);

}  // namespace lockbox::audit
