#include "crypto/jws.h"

#include <utility>

#include "crypto/encoding.h"
#include "crypto/jcs.h"

namespace lockbox::crypto {
namespace {

std::string ToString(std::span<const std::uint8_t> bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

}  // namespace

std::string_view JwsAlgorithmName(SignatureAlgorithm alg) {
  switch (alg) {
    case SignatureAlgorithm::kEd25519:
      return "EdDSA";
    case SignatureAlgorithm::kEcdsaP256Sha256:
      return "ES256";
    case SignatureAlgorithm::kEcdsaP384Sha384:
      return "ES384";
    case SignatureAlgorithm::kRsaPssSha256:
      return "PS256";
    case SignatureAlgorithm::kRsaPssSha512:
      return "PS512";
    case SignatureAlgorithm::kRsaPkcs1Sha256:
      return "RS256";
  }
  return "";
}

StatusOr<SignatureAlgorithm> JwsAlgorithmFromName(std::string_view name) {
  for (SignatureAlgorithm alg :
       {SignatureAlgorithm::kEd25519, SignatureAlgorithm::kEcdsaP256Sha256,
        SignatureAlgorithm::kEcdsaP384Sha384, SignatureAlgorithm::kRsaPssSha256,
        SignatureAlgorithm::kRsaPssSha512, SignatureAlgorithm::kRsaPkcs1Sha256}) {
    if (JwsAlgorithmName(alg) == name) return alg;
  }
  return InvalidArgumentError("unsupported JWS algorithm");
}

std::string JwsSigningInput(const nlohmann::json& protected_header,
                            std::span<const std::uint8_t> payload) {
  auto canonical = CanonicalizeJson(protected_header);
  std::string header = canonical.ok() ? std::move(canonical).value() : protected_header.dump();
  std::string out = Base64UrlEncode(AsBytes(header));
  out.push_back('.');
  out += Base64UrlEncode(payload);
  return out;
}

std::string JwsCompact(std::string_view signing_input, std::span<const std::uint8_t> signature) {
  std::string out(signing_input);
  out.push_back('.');
  out += Base64UrlEncode(signature);
  return out;
}

StatusOr<JwsParts> ParseJwsCompact(std::string_view compact) {
  if (compact.size() > kMaxJwsCompactSize) return InvalidArgumentError("JWS too large");
  const std::size_t first = compact.find('.');
  if (first == std::string_view::npos) return InvalidArgumentError("JWS must have three parts");
  const std::size_t second = compact.find('.', first + 1);
  if (second == std::string_view::npos || compact.find('.', second + 1) != std::string_view::npos) {
    return InvalidArgumentError("JWS must have three parts");
  }
  JwsParts parts;
  parts.header_b64 = std::string(compact.substr(0, first));
  parts.payload_b64 = std::string(compact.substr(first + 1, second - first - 1));
  const std::string_view signature_b64 = compact.substr(second + 1);
  if (parts.header_b64.empty()) return InvalidArgumentError("JWS header is empty");
  if (signature_b64.empty()) return InvalidArgumentError("JWS signature is empty");

  auto header_bytes = Base64UrlDecode(parts.header_b64);
  if (!header_bytes.ok()) return InvalidArgumentError("JWS header is not canonical base64url");
  auto payload = Base64UrlDecode(parts.payload_b64);
  if (!payload.ok()) return InvalidArgumentError("JWS payload is not canonical base64url");
  auto signature = Base64UrlDecode(signature_b64);
  if (!signature.ok()) return InvalidArgumentError("JWS signature is not canonical base64url");

  // Strict JSON first (no duplicate members, valid UTF-8, no trailing content).
  const std::string header_text = ToString(*header_bytes);
  if (auto strict = CanonicalizeJsonText(header_text); !strict.ok()) {
    return InvalidArgumentError("JWS header is not valid JSON");
  }
  parts.header = nlohmann::json::parse(header_text, nullptr, /*allow_exceptions=*/false);
  if (!parts.header.is_object()) return InvalidArgumentError("JWS header is not a JSON object");
  auto alg = parts.header.find("alg");
  if (alg == parts.header.end() || !alg->is_string()) {
    return InvalidArgumentError("JWS header has no string \"alg\"");
  }
  if (auto crit = parts.header.find("crit"); crit != parts.header.end()) {
    if (!crit->is_array() || !crit->empty()) {
      return InvalidArgumentError("JWS header has critical extensions");
    }
  }
  parts.payload = std::move(payload).value();
  parts.signature = std::move(signature).value();
  parts.signing_input = std::string(compact.substr(0, second));
  return parts;
}

Status VerifyJws(const JwsParts& parts, const PublicKey& key, SignatureAlgorithm pinned) {
  auto alg = parts.header.find("alg");
  if (!parts.header.is_object() || alg == parts.header.end() || !alg->is_string()) {
    return InvalidArgumentError("JWS header has no string \"alg\"");
  }
  if (alg->get_ref<const std::string&>() != JwsAlgorithmName(pinned)) {
    return InvalidArgumentError("JWS \"alg\" does not match the pinned algorithm");
  }
  if (!KeyTypeMatches(key.type(), pinned)) {
    return InvalidArgumentError("key type does not match the pinned algorithm");
  }
  if (parts.signature.empty()) return DataLossError("signature verification failed");
  return key.Verify(pinned, AsBytes(parts.signing_input), parts.signature,
                    EcdsaSignatureFormat::kRawRS);
}

}  // namespace lockbox::crypto
