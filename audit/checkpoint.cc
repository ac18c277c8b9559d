#include "audit/checkpoint.h"

#include <utility>

#include "crypto/encoding.h"
#include "crypto/jcs.h"
#include "crypto/jws.h"

namespace lockbox::audit {
namespace {

using nlohmann::json;

constexpr std::string_view kCheckpointTyp = "lockbox-checkpoint+jws";
constexpr std::uint64_t kMaxExactInteger = std::uint64_t{1} << 53;

StatusOr<CheckpointKind> KindFromName(std::string_view name) {
  for (CheckpointKind kind :
       {CheckpointKind::kStart, CheckpointKind::kPeriodic, CheckpointKind::kStop}) {
    if (CheckpointKindName(kind) == name) return kind;
  }
  return InvalidArgumentError("checkpoint kind is unknown");
}

StatusOr<crypto::SignatureAlgorithm> PinnedAlgorithm(const crypto::PublicKey& key) {
  switch (key.type()) {
    case crypto::KeyType::kEcP256:
      return crypto::SignatureAlgorithm::kEcdsaP256Sha256;
    case crypto::KeyType::kEd25519:
      return crypto::SignatureAlgorithm::kEd25519;
    default:
      return InvalidArgumentError("audit public key must be EC P-256 or Ed25519");
  }
}

json PayloadJson(const Checkpoint& c) {
  return json{{"hash", HashToHex(c.hash)},
              {"kind", std::string(CheckpointKindName(c.kind))},
              {"log_id", c.log_id},
              {"seq", c.seq},
              {"time", c.time}};
}

}  // namespace

std::string_view CheckpointKindName(CheckpointKind kind) {
  switch (kind) {
    case CheckpointKind::kStart:
      return "start";
    case CheckpointKind::kPeriodic:
      return "periodic";
    case CheckpointKind::kStop:
      return "stop";
  }
  return "";
}

StatusOr<std::string> SignCheckpoint(const Checkpoint& checkpoint, CheckpointSigner& signer) {
  const std::string alg = signer.alg();
  if (alg != "ES256" && alg != "EdDSA") {
    return InvalidArgumentError("checkpoint signer algorithm must be ES256 or EdDSA");
  }
  if (checkpoint.seq > kMaxExactInteger) return InvalidArgumentError("checkpoint seq out of range");
  LOCKBOX_ASSIGN_OR_RETURN(std::string payload, crypto::CanonicalizeJson(PayloadJson(checkpoint)));
  const json header{{"alg", alg}, {"kid", signer.kid()}, {"typ", std::string(kCheckpointTyp)}};
  const std::string input = crypto::JwsSigningInput(header, crypto::AsBytes(payload));
  LOCKBOX_ASSIGN_OR_RETURN(std::vector<std::uint8_t> signature,
                           signer.Sign(crypto::AsBytes(input)));
  if (signature.empty()) return InternalError("checkpoint signer returned an empty signature");
  return crypto::JwsCompact(input, signature);
}

StatusOr<Checkpoint> VerifyCheckpoint(std::string_view jws, const crypto::PublicKey& key) {
  LOCKBOX_ASSIGN_OR_RETURN(crypto::SignatureAlgorithm alg, PinnedAlgorithm(key));
  LOCKBOX_ASSIGN_OR_RETURN(crypto::JwsParts parts, crypto::ParseJwsCompact(jws));
  auto typ = parts.header.find("typ");
  if (typ == parts.header.end() || !typ->is_string() ||
      typ->get_ref<const std::string&>() != kCheckpointTyp) {
    return InvalidArgumentError("checkpoint JWS typ must be lockbox-checkpoint+jws");
  }
  Status verified = crypto::VerifyJws(parts, key, alg);
  if (!verified.ok()) {
    if (verified.code() == StatusCode::kDataLoss) {
      return DataLossError("checkpoint signature invalid");
    }
    return verified;
  }
  // Signed by the audit key; still refuse anything but the exact canonical payload we write.
  const std::string text(parts.payload.begin(), parts.payload.end());
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || j.size() != 5) {
    return InvalidArgumentError("checkpoint payload is malformed");
  }
  auto canonical = crypto::CanonicalizeJson(j);
  if (!canonical.ok() || *canonical != text) {
    return InvalidArgumentError("checkpoint payload is not canonical JSON");
  }
  Checkpoint c;
  auto log_id = j.find("log_id");
  auto seq = j.find("seq");
  auto hash = j.find("hash");
  auto time = j.find("time");
  auto kind = j.find("kind");
  if (log_id == j.end() || !log_id->is_string() || seq == j.end() || !seq->is_number_unsigned() ||
      hash == j.end() || !hash->is_string() || time == j.end() || !time->is_string() ||
      kind == j.end() || !kind->is_string()) {
    return InvalidArgumentError("checkpoint payload is malformed");
  }
  c.log_id = log_id->get<std::string>();
  c.seq = seq->get<std::uint64_t>();
  if (c.seq > kMaxExactInteger) return InvalidArgumentError("checkpoint seq out of range");
  LOCKBOX_ASSIGN_OR_RETURN(c.hash, HashFromHex(hash->get_ref<const std::string&>()));
  c.time = time->get<std::string>();
  LOCKBOX_ASSIGN_OR_RETURN(c.kind, KindFromName(kind->get_ref<const std::string&>()));
  return c;
}

std::string CheckpointLine(std::string_view jws) {
  auto line = crypto::CanonicalizeJson(json{{"checkpoint", std::string(jws)}});
  if (line.ok()) return std::move(line).value();
  return json{{"checkpoint", std::string(jws)}}.dump();
}

}  // namespace lockbox::audit
