// HsmCheckpointSigner: an audit::CheckpointSigner whose private key is a token object inside the
// HSM (DESIGN.md §4: label lockbox/audit/v<N>). The key never leaves the HSM; this class only
// holds its handles.
// Security property: the algorithm is the key's own (P-256 → "ES256", Ed25519 → "EdDSA"), never
// chosen by a caller.
// Thread safety: thread-safe. Handles are refreshed (found again by label) after the HSM module
// was re-initialised or when the HSM reports a stale handle.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "audit/checkpoint.h"
#include "crypto/status.h"
#include "hsm/hsm.h"

namespace lockbox::audit_log {

class HsmCheckpointSigner final : public audit::CheckpointSigner {
 public:
  // Finds the signing key by `label`, generating it with `algorithm` if the token has none.
  // An existing key keeps its own algorithm.
  static StatusOr<std::unique_ptr<HsmCheckpointSigner>> FindOrCreate(
      hsm::Hsm& hsm, const std::string& label, hsm::SigningAlgorithm algorithm);

  std::string alg() const override;
  std::string kid() const override { return label_; }
  StatusOr<std::vector<std::uint8_t>> Sign(std::span<const std::uint8_t> input) override;

  // The public key as a JWK with "kid" (the label), "alg" and "use":"sig".
  StatusOr<nlohmann::json> PublicJwk();

 private:
  HsmCheckpointSigner(hsm::Hsm& hsm, hsm::SigningKey key)
      : hsm_(hsm), label_(key.label), algorithm_(key.algorithm), key_(std::move(key)) {}
  StatusOr<hsm::SigningKey> CurrentKey(bool force_refresh);

  hsm::Hsm& hsm_;
  const std::string label_;
  const hsm::SigningAlgorithm algorithm_;
  std::mutex mu_;  // guards key_
  hsm::SigningKey key_;
};

}  // namespace lockbox::audit_log
