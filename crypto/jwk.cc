#include "crypto/jwk.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include <array>
#include <memory>
#include <string_view>
#include <vector>

#include "crypto/encoding.h"
#include "crypto/hash.h"
#include "crypto/jcs.h"

namespace lockbox::crypto {
namespace {

using Json = nlohmann::json;

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct ParamBldFree {
  void operator()(OSSL_PARAM_BLD* p) const { OSSL_PARAM_BLD_free(p); }
};
struct ParamFree {
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
struct BnFree {
  void operator()(BIGNUM* p) const { BN_free(p); }
};
struct OpenSslFree {
  void operator()(unsigned char* p) const { OPENSSL_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, ParamFree>;
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;

Status OpenSslError(std::string_view what) {
  ERR_clear_error();
  return InternalError(std::string(what) + " failed (OpenSSL)");
}

StatusOr<std::string> RequiredString(const Json& jwk, const char* name) {
  const auto it = jwk.find(name);
  if (it == jwk.end())
    return InvalidArgumentError(std::string("JWK member '") + name + "' missing");
  if (!it->is_string()) {
    return InvalidArgumentError(std::string("JWK member '") + name + "' is not a string");
  }
  return it->get<std::string>();
}

StatusOr<std::vector<std::uint8_t>> RequiredBase64Url(const Json& jwk, const char* name) {
  LOCKBOX_ASSIGN_OR_RETURN(std::string text, RequiredString(jwk, name));
  auto decoded = Base64UrlDecode(text);
  if (!decoded.ok()) {
    return InvalidArgumentError(std::string("JWK member '") + name + "' is not base64url");
  }
  return std::move(decoded).value();
}

Status RejectMembers(const Json& jwk, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    if (jwk.contains(name)) {
      return InvalidArgumentError(std::string("public JWK contains private member '") + name + "'");
    }
  }
  return Status::Ok();
}

// Serialises an OpenSSL-built key to SPKI and loads it through PublicKey::FromDer, so JWK keys
// pass exactly the same policy and validity checks as DER/PEM keys.
StatusOr<PublicKey> ToPublicKey(EVP_PKEY* pkey) {
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(pkey, &der);
  if (len <= 0) return OpenSslError("i2d_PUBKEY");
  std::unique_ptr<unsigned char, OpenSslFree> owned(der);
  return PublicKey::FromDer(ByteView(der, static_cast<std::size_t>(len)));
}

StatusOr<PublicKey> FromParams(const char* type, OSSL_PARAM_BLD* bld) {
  ParamPtr params(OSSL_PARAM_BLD_to_param(bld));
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  if (!params || !ctx) return OpenSslError("OSSL_PARAM_BLD_to_param");
  if (EVP_PKEY_fromdata_init(ctx.get()) != 1) return OpenSslError("EVP_PKEY_fromdata_init");
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    ERR_clear_error();
    return InvalidArgumentError("JWK does not describe a valid public key");
  }
  PkeyPtr pkey(raw);
  return ToPublicKey(pkey.get());
}

StatusOr<PublicKey> EcFromJwk(const Json& jwk) {
  LOCKBOX_RETURN_IF_ERROR(RejectMembers(jwk, {"d"}));
  LOCKBOX_ASSIGN_OR_RETURN(std::string crv, RequiredString(jwk, "crv"));
  std::size_t size = 0;
  const char* group = nullptr;
  KeyType expected;
  if (crv == "P-256") {
    size = 32, group = "P-256", expected = KeyType::kEcP256;
  } else if (crv == "P-384") {
    size = 48, group = "P-384", expected = KeyType::kEcP384;
  } else {
    return InvalidArgumentError("unsupported EC curve '" + crv + "'");
  }
  LOCKBOX_ASSIGN_OR_RETURN(auto x, RequiredBase64Url(jwk, "x"));
  LOCKBOX_ASSIGN_OR_RETURN(auto y, RequiredBase64Url(jwk, "y"));
  if (x.size() != size || y.size() != size) {
    return InvalidArgumentError("EC JWK coordinates have the wrong length for " + crv);
  }
  std::vector<std::uint8_t> point;
  point.reserve(1 + 2 * size);
  point.push_back(0x04);  // uncompressed
  point.insert(point.end(), x.begin(), x.end());
  point.insert(point.end(), y.begin(), y.end());
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1) {
    return OpenSslError("OSSL_PARAM_BLD");
  }
  LOCKBOX_ASSIGN_OR_RETURN(PublicKey key, FromParams("EC", bld.get()));
  if (key.type() != expected) return InvalidArgumentError("EC JWK curve mismatch");
  return key;
}

StatusOr<PublicKey> OkpFromJwk(const Json& jwk) {
  LOCKBOX_RETURN_IF_ERROR(RejectMembers(jwk, {"d"}));
  LOCKBOX_ASSIGN_OR_RETURN(std::string crv, RequiredString(jwk, "crv"));
  if (crv != "Ed25519") return InvalidArgumentError("unsupported OKP curve '" + crv + "'");
  LOCKBOX_ASSIGN_OR_RETURN(auto x, RequiredBase64Url(jwk, "x"));
  if (x.size() != 32) return InvalidArgumentError("Ed25519 JWK 'x' must be 32 bytes");
  PkeyPtr pkey(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, x.data(), x.size()));
  if (!pkey) {
    ERR_clear_error();
    return InvalidArgumentError("invalid Ed25519 public key");
  }
  return ToPublicKey(pkey.get());
}

// RFC 7518 §2 Base64urlUInt: minimum number of octets, no leading zero octet.
StatusOr<BnPtr> RequiredUInt(const Json& jwk, const char* name) {
  LOCKBOX_ASSIGN_OR_RETURN(auto bytes, RequiredBase64Url(jwk, name));
  if (bytes.empty() || (bytes.size() > 1 && bytes[0] == 0) ||
      (bytes.size() == 1 && bytes[0] == 0)) {
    return InvalidArgumentError(std::string("JWK member '") + name +
                                "' is not a minimal positive integer");
  }
  BnPtr bn(BN_bin2bn(bytes.data(), static_cast<int>(bytes.size()), nullptr));
  if (!bn) return OpenSslError("BN_bin2bn");
  return bn;
}

StatusOr<PublicKey> RsaFromJwk(const Json& jwk) {
  LOCKBOX_RETURN_IF_ERROR(RejectMembers(jwk, {"d", "p", "q", "dp", "dq", "qi", "oth"}));
  LOCKBOX_ASSIGN_OR_RETURN(BnPtr n, RequiredUInt(jwk, "n"));
  LOCKBOX_ASSIGN_OR_RETURN(BnPtr e, RequiredUInt(jwk, "e"));
  if (BN_num_bits(n.get()) > kMaxRsaBits) return InvalidArgumentError("RSA JWK modulus too long");
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1) {
    return OpenSslError("OSSL_PARAM_BLD");
  }
  return FromParams("RSA", bld.get());
}

StatusOr<std::string> BnParamBase64Url(EVP_PKEY* pkey, const char* param, std::size_t pad) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(pkey, param, &raw) != 1) return OpenSslError("EVP_PKEY_get_bn_param");
  BnPtr bn(raw);
  const std::size_t len = pad != 0 ? pad : static_cast<std::size_t>(BN_num_bytes(bn.get()));
  std::vector<std::uint8_t> bytes(len == 0 ? 1 : len);
  if (BN_bn2binpad(bn.get(), bytes.data(), static_cast<int>(bytes.size())) < 0) {
    return OpenSslError("BN_bn2binpad");
  }
  return Base64UrlEncode(bytes);
}

}  // namespace

StatusOr<PublicKey> PublicKeyFromJwk(const nlohmann::json& jwk) {
  if (!jwk.is_object()) return InvalidArgumentError("JWK is not a JSON object");
  LOCKBOX_ASSIGN_OR_RETURN(std::string kty, RequiredString(jwk, "kty"));
  if (kty == "EC") return EcFromJwk(jwk);
  if (kty == "OKP") return OkpFromJwk(jwk);
  if (kty == "RSA") return RsaFromJwk(jwk);
  return InvalidArgumentError("unsupported JWK key type '" + kty + "'");
}

StatusOr<nlohmann::json> PublicKeyToJwk(const PublicKey& key) {
  EVP_PKEY* pkey = key.native_handle();
  if (pkey == nullptr) return FailedPreconditionError("empty public key");
  Json jwk = Json::object();
  switch (key.type()) {
    case KeyType::kEd25519: {
      std::array<std::uint8_t, 32> x{};
      std::size_t len = x.size();
      if (EVP_PKEY_get_raw_public_key(pkey, x.data(), &len) != 1 || len != x.size()) {
        return OpenSslError("EVP_PKEY_get_raw_public_key");
      }
      jwk["kty"] = "OKP";
      jwk["crv"] = "Ed25519";
      jwk["x"] = Base64UrlEncode(x);
      return jwk;
    }
    case KeyType::kEcP256:
    case KeyType::kEcP384: {
      const std::size_t size = key.type() == KeyType::kEcP256 ? 32 : 48;
      LOCKBOX_ASSIGN_OR_RETURN(std::string x,
                               BnParamBase64Url(pkey, OSSL_PKEY_PARAM_EC_PUB_X, size));
      LOCKBOX_ASSIGN_OR_RETURN(std::string y,
                               BnParamBase64Url(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, size));
      jwk["kty"] = "EC";
      jwk["crv"] = key.type() == KeyType::kEcP256 ? "P-256" : "P-384";
      jwk["x"] = x;
      jwk["y"] = y;
      return jwk;
    }
    case KeyType::kRsa: {
      LOCKBOX_ASSIGN_OR_RETURN(std::string n, BnParamBase64Url(pkey, OSSL_PKEY_PARAM_RSA_N, 0));
      LOCKBOX_ASSIGN_OR_RETURN(std::string e, BnParamBase64Url(pkey, OSSL_PKEY_PARAM_RSA_E, 0));
      jwk["kty"] = "RSA";
      jwk["n"] = n;
      jwk["e"] = e;
      return jwk;
    }
  }
  return InternalError("unknown key type");
}

StatusOr<std::string> JwkThumbprint(const nlohmann::json& jwk) {
  LOCKBOX_ASSIGN_OR_RETURN(PublicKey key, PublicKeyFromJwk(jwk));
  // Use the members as given (their strict decoding above makes the text unique per key).
  Json required = Json::object();
  switch (key.type()) {
    case KeyType::kEd25519:
      required = {{"crv", jwk.at("crv")}, {"kty", jwk.at("kty")}, {"x", jwk.at("x")}};
      break;
    case KeyType::kEcP256:
    case KeyType::kEcP384:
      required = {
          {"crv", jwk.at("crv")}, {"kty", jwk.at("kty")}, {"x", jwk.at("x")}, {"y", jwk.at("y")}};
      break;
    case KeyType::kRsa:
      required = {{"e", jwk.at("e")}, {"kty", jwk.at("kty")}, {"n", jwk.at("n")}};
      break;
  }
  LOCKBOX_ASSIGN_OR_RETURN(std::string canonical, CanonicalizeJson(required));
  return Base64UrlEncode(Sha256(canonical));
}

}  // namespace lockbox::crypto
