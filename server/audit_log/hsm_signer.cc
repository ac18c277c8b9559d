#include "server/audit_log/hsm_signer.h"

#include <utility>

namespace lockbox::audit_log {

StatusOr<std::unique_ptr<HsmCheckpointSigner>> HsmCheckpointSigner::FindOrCreate(
    hsm::Hsm& hsm, const std::string& label, hsm::SigningAlgorithm algorithm) {
  auto found = hsm.FindSigningKey(label);
  if (!found.ok() && found.status().code() == StatusCode::kNotFound) {
    found = hsm.GenerateSigningKey(algorithm, label);
    if (!found.ok()) return found.status().WithContext("generate audit signing key");
  } else if (!found.ok()) {
    return found.status().WithContext("find audit signing key");
  }
  hsm::SigningKey key = std::move(found).value();
  if (key.label.empty()) key.label = label;
  return std::unique_ptr<HsmCheckpointSigner>(new HsmCheckpointSigner(hsm, std::move(key)));
}

std::string HsmCheckpointSigner::alg() const {
  return algorithm_ == hsm::SigningAlgorithm::kEd25519 ? "EdDSA" : "ES256";
}

StatusOr<hsm::SigningKey> HsmCheckpointSigner::CurrentKey(bool force_refresh) {
  std::lock_guard<std::mutex> lock(mu_);
  if (force_refresh || key_.private_key.generation != hsm_.generation()) {
    LOCKBOX_ASSIGN_OR_RETURN(hsm::SigningKey fresh, hsm_.FindSigningKey(label_));
    if (fresh.algorithm != algorithm_) {
      return FailedPreconditionError("audit signing key '" + label_ + "' changed its algorithm");
    }
    if (fresh.label.empty()) fresh.label = label_;
    key_ = std::move(fresh);
  }
  return key_;
}

StatusOr<std::vector<std::uint8_t>> HsmCheckpointSigner::Sign(std::span<const std::uint8_t> input) {
  LOCKBOX_ASSIGN_OR_RETURN(hsm::SigningKey key, CurrentKey(false));
  auto signature = hsm_.Sign(key, input);
  if (!signature.ok() && signature.status().code() == StatusCode::kNotFound) {
    // A stale object handle (token re-inserted, module re-initialised): find the key again once.
    LOCKBOX_ASSIGN_OR_RETURN(key, CurrentKey(true));
    signature = hsm_.Sign(key, input);
  }
  if (!signature.ok()) return signature.status().WithContext("sign audit checkpoint");
  return signature;
}

StatusOr<nlohmann::json> HsmCheckpointSigner::PublicJwk() {
  LOCKBOX_ASSIGN_OR_RETURN(hsm::SigningKey key, CurrentKey(false));
  LOCKBOX_ASSIGN_OR_RETURN(nlohmann::json jwk, hsm_.PublicJwk(key));
  jwk["kid"] = label_;
  jwk["alg"] = alg();
  jwk["use"] = "sig";
  return jwk;
}

}  // namespace lockbox::audit_log
