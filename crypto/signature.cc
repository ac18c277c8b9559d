#include "crypto/signature.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>

namespace lockbox::crypto {
namespace {

struct EvpMdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct EvpPkeyCtxFree {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
struct EcdsaSigFree {
  void operator()(ECDSA_SIG* p) const { ECDSA_SIG_free(p); }
};
struct BnFree {
  void operator()(BIGNUM* p) const { BN_free(p); }
};
struct OpenSslFree {
  void operator()(unsigned char* p) const { OPENSSL_free(p); }
};
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, EvpMdCtxFree>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, EvpPkeyCtxFree>;
using BioPtr = std::unique_ptr<BIO, BioFree>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, EcdsaSigFree>;
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;
using OsslBytesPtr = std::unique_ptr<unsigned char, OpenSslFree>;
using OwnedPkey = std::unique_ptr<EVP_PKEY, void (*)(EVP_PKEY*)>;

OwnedPkey Own(EVP_PKEY* p) { return OwnedPkey(p, &EVP_PKEY_free); }

// The one failure every bad signature gets (see header).
Status VerificationFailed() {
  ERR_clear_error();
  return DataLossError("signature verification failed");
}

Status OpenSslError(std::string_view what) {
  ERR_clear_error();
  return InternalError(std::string(what) + " failed (OpenSSL)");
}

const EVP_MD* DigestFor(SignatureAlgorithm alg) {
  switch (alg) {
    case SignatureAlgorithm::kEd25519:
      return nullptr;
    case SignatureAlgorithm::kEcdsaP256Sha256:
    case SignatureAlgorithm::kRsaPssSha256:
    case SignatureAlgorithm::kRsaPkcs1Sha256:
      return EVP_sha256();
    case SignatureAlgorithm::kEcdsaP384Sha384:
      return EVP_sha384();
    case SignatureAlgorithm::kRsaPssSha512:
      return EVP_sha512();
  }
  return nullptr;
}

bool IsEcdsa(SignatureAlgorithm alg) {
  return alg == SignatureAlgorithm::kEcdsaP256Sha256 || alg == SignatureAlgorithm::kEcdsaP384Sha384;
}
bool IsRsa(SignatureAlgorithm alg) {
  return alg == SignatureAlgorithm::kRsaPssSha256 || alg == SignatureAlgorithm::kRsaPssSha512 ||
         alg == SignatureAlgorithm::kRsaPkcs1Sha256;
}
bool IsRsaPss(SignatureAlgorithm alg) {
  return alg == SignatureAlgorithm::kRsaPssSha256 || alg == SignatureAlgorithm::kRsaPssSha512;
}

std::size_t CoordinateSize(KeyType type) { return type == KeyType::kEcP384 ? 48 : 32; }

// Type, curve and size policy for every key that enters the process.
StatusOr<KeyType> Classify(EVP_PKEY* pkey) {
  switch (EVP_PKEY_get_base_id(pkey)) {
    case EVP_PKEY_ED25519:
      return KeyType::kEd25519;
    case EVP_PKEY_EC: {
      char name[64] = {};
      std::size_t len = 0;
      if (EVP_PKEY_get_group_name(pkey, name, sizeof(name), &len) != 1) {
        ERR_clear_error();
        return InvalidArgumentError("EC key without a named curve");
      }
      const std::string_view curve(name, len);
      if (curve == "prime256v1" || curve == "P-256") return KeyType::kEcP256;
      if (curve == "secp384r1" || curve == "P-384") return KeyType::kEcP384;
      return InvalidArgumentError("unsupported EC curve (only P-256 and P-384)");
    }
    case EVP_PKEY_RSA: {
      const int bits = EVP_PKEY_get_bits(pkey);
      if (bits < kMinRsaBits) return InvalidArgumentError("RSA key shorter than 2048 bits");
      if (bits > kMaxRsaBits) return InvalidArgumentError("RSA key longer than 8192 bits");
      // FIPS 186-5 / SP 800-56B: e odd and 2^16 < e < 2^256; n odd.
      BIGNUM* n_raw = nullptr;
      BIGNUM* e_raw = nullptr;
      const bool got = EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n_raw) == 1 &&
                       EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e_raw) == 1;
      BnPtr n(n_raw);
      BnPtr e(e_raw);
      if (!got) return OpenSslError("EVP_PKEY_get_bn_param");
      if (!BN_is_odd(n.get()) || !BN_is_odd(e.get()) || BN_num_bits(e.get()) < 17 ||
          BN_num_bits(e.get()) > 256) {
        return InvalidArgumentError(
            "RSA public key outside policy (n and e odd, 2^16 < e < 2^256)");
      }
      return KeyType::kRsa;
    }
    default:
      return InvalidArgumentError("unsupported key type");
  }
}

// Range and curve membership checks on a public key (EC point on the curve and in the prime-order
// subgroup; RSA modulus/exponent sanity).
Status CheckPublic(EVP_PKEY* pkey) {
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr));
  if (!ctx) return OpenSslError("EVP_PKEY_CTX_new_from_pkey");
  if (EVP_PKEY_public_check(ctx.get()) != 1) {
    ERR_clear_error();
    return InvalidArgumentError("invalid public key");
  }
  return Status::Ok();
}

StatusOr<PublicKey> PublicFromPkey(EVP_PKEY* pkey);

const unsigned char* DataOrEmpty(ByteView v) {
  static const unsigned char kEmpty = 0;
  return v.empty() ? &kEmpty : v.data();
}

// r||s (each `coord` bytes) → DER ECDSA-Sig-Value.
StatusOr<Bytes> RawToDer(ByteView raw, std::size_t coord) {
  if (raw.size() != 2 * coord) return VerificationFailed();
  BnPtr r(BN_bin2bn(raw.data(), static_cast<int>(coord), nullptr));
  BnPtr s(BN_bin2bn(raw.data() + coord, static_cast<int>(coord), nullptr));
  EcdsaSigPtr sig(ECDSA_SIG_new());
  if (!r || !s || !sig) return OpenSslError("ECDSA_SIG_new");
  if (ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) return OpenSslError("ECDSA_SIG_set0");
  r.release();  // owned by sig now
  s.release();
  unsigned char* der = nullptr;
  const int len = i2d_ECDSA_SIG(sig.get(), &der);
  if (len <= 0) return OpenSslError("i2d_ECDSA_SIG");
  OsslBytesPtr owned(der);
  return Bytes(der, der + len);
}

// Accepts only canonical DER: parse, re-encode, compare.
Status CheckCanonicalDer(ByteView der) {
  if (der.empty() || der.size() > 256) return VerificationFailed();
  const unsigned char* p = der.data();
  EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig || p != der.data() + der.size()) return VerificationFailed();
  unsigned char* re = nullptr;
  const int len = i2d_ECDSA_SIG(sig.get(), &re);
  if (len <= 0) return VerificationFailed();
  OsslBytesPtr owned(re);
  if (static_cast<std::size_t>(len) != der.size() || std::memcmp(re, der.data(), der.size()) != 0) {
    return VerificationFailed();
  }
  return Status::Ok();
}

StatusOr<Bytes> DerToRaw(ByteView der, std::size_t coord) {
  const unsigned char* p = der.data();
  EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig) return OpenSslError("d2i_ECDSA_SIG");
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  Bytes out(2 * coord);
  if (BN_bn2binpad(r, out.data(), static_cast<int>(coord)) < 0 ||
      BN_bn2binpad(s, out.data() + coord, static_cast<int>(coord)) < 0) {
    return OpenSslError("BN_bn2binpad");
  }
  return out;
}

Status ConfigureRsa(EVP_PKEY_CTX* pctx, SignatureAlgorithm alg) {
  if (IsRsaPss(alg)) {
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, DigestFor(alg)) != 1) {
      return OpenSslError("RSA-PSS parameters");
    }
  } else if (IsRsa(alg)) {
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) {
      return OpenSslError("RSA PKCS#1 parameters");
    }
  }
  return Status::Ok();
}

std::string BioToString(BIO* bio) {
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  return len > 0 ? std::string(data, static_cast<std::size_t>(len)) : std::string();
}

// Refuses PEM input with a second block or other trailing content.
bool OnlyWhitespaceLeft(BIO* bio) {
  char buf[256];
  int n = 0;
  while ((n = BIO_read(bio, buf, sizeof(buf))) > 0) {
    for (int i = 0; i < n; ++i) {
      if (buf[i] != ' ' && buf[i] != '\n' && buf[i] != '\r' && buf[i] != '\t') return false;
    }
  }
  return true;
}

int NoPassphrase(char*, int, int, void*) { return -1; }

StatusOr<PublicKey> PublicFromPkey(EVP_PKEY* pkey) {
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(pkey, &der);
  if (len <= 0) return OpenSslError("i2d_PUBKEY");
  OsslBytesPtr owned(der);
  return PublicKey::FromDer(ByteView(der, static_cast<std::size_t>(len)));
}

}  // namespace

std::string_view SignatureAlgorithmName(SignatureAlgorithm alg) {
  switch (alg) {
    case SignatureAlgorithm::kEd25519:
      return "ed25519";
    case SignatureAlgorithm::kEcdsaP256Sha256:
      return "ecdsa-p256-sha256";
    case SignatureAlgorithm::kEcdsaP384Sha384:
      return "ecdsa-p384-sha384";
    case SignatureAlgorithm::kRsaPssSha256:
      return "rsa-pss-sha256";
    case SignatureAlgorithm::kRsaPssSha512:
      return "rsa-pss-sha512";
    case SignatureAlgorithm::kRsaPkcs1Sha256:
      return "rsa-v1_5-sha256";
  }
  return "unknown";
}

bool KeyTypeMatches(KeyType type, SignatureAlgorithm alg) {
  switch (alg) {
    case SignatureAlgorithm::kEd25519:
      return type == KeyType::kEd25519;
    case SignatureAlgorithm::kEcdsaP256Sha256:
      return type == KeyType::kEcP256;
    case SignatureAlgorithm::kEcdsaP384Sha384:
      return type == KeyType::kEcP384;
    case SignatureAlgorithm::kRsaPssSha256:
    case SignatureAlgorithm::kRsaPssSha512:
    case SignatureAlgorithm::kRsaPkcs1Sha256:
      return type == KeyType::kRsa;
  }
  return false;
}

// --- PublicKey ---

StatusOr<PublicKey> PublicKey::FromDer(ByteView spki) {
  if (spki.empty() || spki.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
    return InvalidArgumentError("empty or oversized public key");
  }
  const unsigned char* p = spki.data();
  OwnedPkey pkey = Own(d2i_PUBKEY(nullptr, &p, static_cast<long>(spki.size())));
  if (!pkey) {
    ERR_clear_error();
    return InvalidArgumentError("malformed SubjectPublicKeyInfo");
  }
  if (p != spki.data() + spki.size()) {
    return InvalidArgumentError("trailing bytes after SubjectPublicKeyInfo");
  }
  LOCKBOX_ASSIGN_OR_RETURN(KeyType type, Classify(pkey.get()));
  LOCKBOX_RETURN_IF_ERROR(CheckPublic(pkey.get()));
  return PublicKey(std::shared_ptr<EVP_PKEY>(pkey.release(), &EVP_PKEY_free), type);
}

StatusOr<PublicKey> PublicKey::FromPem(std::string_view pem) {
  if (pem.size() > 64 * 1024) return InvalidArgumentError("PEM too large");
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return OpenSslError("BIO_new_mem_buf");
  OwnedPkey pkey = Own(PEM_read_bio_PUBKEY(bio.get(), nullptr, &NoPassphrase, nullptr));
  if (!pkey) {
    ERR_clear_error();
    return InvalidArgumentError("malformed PEM public key");
  }
  if (!OnlyWhitespaceLeft(bio.get())) return InvalidArgumentError("trailing data after PEM key");
  // Round-trip through DER so that both entry points apply exactly the same checks.
  return PublicFromPkey(pkey.get());
}

int PublicKey::bits() const { return key_ ? EVP_PKEY_get_bits(key_.get()) : 0; }

std::string PublicKey::ToPem() const {
  if (!key_) return {};
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key_.get()) != 1) {
    ERR_clear_error();
    return {};
  }
  return BioToString(bio.get());
}

Bytes PublicKey::ToDer() const {
  if (!key_) return {};
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(key_.get(), &der);
  if (len <= 0) {
    ERR_clear_error();
    return {};
  }
  OsslBytesPtr owned(der);
  return Bytes(der, der + len);
}

Status PublicKey::Verify(SignatureAlgorithm alg, ByteView message, ByteView signature,
                         EcdsaSignatureFormat format) const {
  if (!key_) return FailedPreconditionError("empty public key");
  if (!KeyTypeMatches(type_, alg)) {
    return InvalidArgumentError("algorithm " + std::string(SignatureAlgorithmName(alg)) +
                                " does not match the key type");
  }
  Bytes der;
  ByteView sig = signature;
  if (IsEcdsa(alg)) {
    if (format == EcdsaSignatureFormat::kRawRS) {
      LOCKBOX_ASSIGN_OR_RETURN(der, RawToDer(signature, CoordinateSize(type_)));
      sig = der;
    } else {
      LOCKBOX_RETURN_IF_ERROR(CheckCanonicalDer(signature));
    }
  } else if (IsRsa(alg)) {
    if (signature.size() != static_cast<std::size_t>(EVP_PKEY_get_size(key_.get()))) {
      return VerificationFailed();
    }
  } else if (signature.size() != 64) {
    return VerificationFailed();
  }

  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx) return OpenSslError("EVP_MD_CTX_new");
  EVP_PKEY_CTX* pctx = nullptr;  // owned by ctx
  if (EVP_DigestVerifyInit(ctx.get(), &pctx, DigestFor(alg), nullptr, key_.get()) != 1) {
    return OpenSslError("EVP_DigestVerifyInit");
  }
  LOCKBOX_RETURN_IF_ERROR(ConfigureRsa(pctx, alg));
  if (EVP_DigestVerify(ctx.get(), DataOrEmpty(sig), sig.size(), DataOrEmpty(message),
                       message.size()) != 1) {
    return VerificationFailed();
  }
  return Status::Ok();
}

Status PublicKey::VerifyEcdsaDigest(ByteView digest, ByteView signature,
                                    EcdsaSignatureFormat format) const {
  if (!key_) return FailedPreconditionError("empty public key");
  if (type_ != KeyType::kEcP256 && type_ != KeyType::kEcP384) {
    return InvalidArgumentError("only ECDSA keys verify digests");
  }
  if (digest.empty() || digest.size() > 64) {
    return InvalidArgumentError("a digest to verify must be 1 to 64 bytes");
  }
  Bytes der;
  ByteView sig = signature;
  if (format == EcdsaSignatureFormat::kRawRS) {
    LOCKBOX_ASSIGN_OR_RETURN(der, RawToDer(signature, CoordinateSize(type_)));
    sig = der;
  } else {
    LOCKBOX_RETURN_IF_ERROR(CheckCanonicalDer(signature));
  }
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key_.get(), nullptr));
  if (!ctx) return OpenSslError("EVP_PKEY_CTX_new_from_pkey");
  if (EVP_PKEY_verify_init(ctx.get()) != 1) return OpenSslError("EVP_PKEY_verify_init");
  if (EVP_PKEY_verify(ctx.get(), sig.data(), sig.size(), digest.data(), digest.size()) != 1) {
    return VerificationFailed();
  }
  return Status::Ok();
}

// --- PrivateKey ---

PrivateKey::~PrivateKey() = default;

StatusOr<PrivateKey> PrivateKey::Generate(SignatureAlgorithm alg, int rsa_bits) {
  EVP_PKEY* raw = nullptr;
  switch (alg) {
    case SignatureAlgorithm::kEd25519:
      raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
      break;
    case SignatureAlgorithm::kEcdsaP256Sha256:
      raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
      break;
    case SignatureAlgorithm::kEcdsaP384Sha384:
      raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384");
      break;
    case SignatureAlgorithm::kRsaPssSha256:
    case SignatureAlgorithm::kRsaPssSha512:
    case SignatureAlgorithm::kRsaPkcs1Sha256:
      if (rsa_bits < kMinRsaBits || rsa_bits > kMaxRsaBits) {
        return InvalidArgumentError("RSA key size outside [2048, 8192]");
      }
      raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(rsa_bits));
      break;
  }
  OwnedPkey pkey = Own(raw);
  if (!pkey) return OpenSslError("key generation");
  LOCKBOX_ASSIGN_OR_RETURN(PublicKey pub, PublicFromPkey(pkey.get()));
  return PrivateKey(std::move(pkey), alg, std::move(pub));
}

StatusOr<PrivateKey> PrivateKey::FromPem(std::string_view pem, SignatureAlgorithm alg) {
  if (pem.size() > 64 * 1024) return InvalidArgumentError("PEM too large");
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return OpenSslError("BIO_new_mem_buf");
  OwnedPkey pkey = Own(PEM_read_bio_PrivateKey(bio.get(), nullptr, &NoPassphrase, nullptr));
  if (!pkey) {
    ERR_clear_error();
    return InvalidArgumentError("malformed or encrypted PEM private key");
  }
  if (!OnlyWhitespaceLeft(bio.get())) return InvalidArgumentError("trailing data after PEM key");
  LOCKBOX_ASSIGN_OR_RETURN(PublicKey pub, PublicFromPkey(pkey.get()));
  if (!KeyTypeMatches(pub.type(), alg)) {
    return InvalidArgumentError("private key type does not match algorithm " +
                                std::string(SignatureAlgorithmName(alg)));
  }
  return PrivateKey(std::move(pkey), alg, std::move(pub));
}

StatusOr<Bytes> PrivateKey::Sign(ByteView message, EcdsaSignatureFormat format) const {
  if (!key_) return FailedPreconditionError("empty (moved-from) private key");
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx) return OpenSslError("EVP_MD_CTX_new");
  EVP_PKEY_CTX* pctx = nullptr;  // owned by ctx
  if (EVP_DigestSignInit(ctx.get(), &pctx, DigestFor(alg_), nullptr, key_.get()) != 1) {
    return OpenSslError("EVP_DigestSignInit");
  }
  LOCKBOX_RETURN_IF_ERROR(ConfigureRsa(pctx, alg_));
  std::size_t len = 0;
  if (EVP_DigestSign(ctx.get(), nullptr, &len, DataOrEmpty(message), message.size()) != 1) {
    return OpenSslError("EVP_DigestSign");
  }
  Bytes sig(len);
  if (EVP_DigestSign(ctx.get(), sig.data(), &len, DataOrEmpty(message), message.size()) != 1) {
    return OpenSslError("EVP_DigestSign");
  }
  sig.resize(len);
  if (IsEcdsa(alg_) && format == EcdsaSignatureFormat::kRawRS) {
    return DerToRaw(sig, CoordinateSize(public_key_.type()));
  }
  return sig;
}

StatusOr<SecureBuffer> PrivateKey::ToPem() const {
  if (!key_) return FailedPreconditionError("empty (moved-from) private key");
  BioPtr bio(BIO_new(BIO_s_secmem()));
  if (!bio) return OpenSslError("BIO_new");
  if (PEM_write_bio_PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return OpenSslError("PEM_write_bio_PrivateKey");
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  if (len <= 0) return OpenSslError("BIO_get_mem_data");
  return SecureBuffer::Copy(std::string_view(data, static_cast<std::size_t>(len)));
}

}  // namespace lockbox::crypto
