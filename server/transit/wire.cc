#include "server/transit/wire.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <memory>

namespace lockbox::transit {
namespace {

constexpr std::string_view kPrefix = "vault:v";

// 0..63 for the standard alphabet, 0xFF otherwise.
constexpr std::array<std::uint8_t, 256> MakeDecodeTable() {
  std::array<std::uint8_t, 256> table{};
  for (auto& v : table) v = 0xFF;
  constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (std::size_t i = 0; i < kAlphabet.size(); ++i) {
    table[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::uint8_t>(i);
  }
  return table;
}
constexpr auto kDecodeTable = MakeDecodeTable();

Status IllegalBase64(std::size_t offset) {
  return InvalidArgumentError("illegal base64 data at input byte " + std::to_string(offset));
}

bool IsNewline(char c) { return c == '\n' || c == '\r'; }

const EVP_MD* Md(Hash hash) {
  switch (hash) {
    case Hash::kSha2_224:
      return EVP_sha224();
    case Hash::kSha2_256:
      return EVP_sha256();
    case Hash::kSha2_384:
      return EVP_sha384();
    case Hash::kSha2_512:
      return EVP_sha512();
    case Hash::kSha3_224:
      return EVP_sha3_224();
    case Hash::kSha3_256:
      return EVP_sha3_256();
    case Hash::kSha3_384:
      return EVP_sha3_384();
    case Hash::kSha3_512:
      return EVP_sha3_512();
  }
  return EVP_sha256();
}

}  // namespace

StatusOr<crypto::SecureBuffer> DecodeBase64(std::string_view text) {
  crypto::SecureBuffer out(text.size() / 4 * 3 + 3);
  std::size_t n = 0;
  std::uint8_t quantum[4];
  std::size_t j = 0;
  std::size_t i = 0;
  auto skip_newlines = [&] {
    while (i < text.size() && IsNewline(text[i])) ++i;
  };
  while (i < text.size()) {
    const char c = text[i];
    if (IsNewline(c)) {
      ++i;
      continue;
    }
    if (c == '=') {
      if (j < 2) return IllegalBase64(i);
      const std::size_t first_pad = i;
      ++i;
      if (j == 2) {  // "==" expected
        skip_newlines();
        if (i == text.size()) return IllegalBase64(text.size());
        if (text[i] != '=') return IllegalBase64(first_pad);
        ++i;
      }
      skip_newlines();
      if (i < text.size()) return IllegalBase64(i);
      out.data()[n++] = static_cast<std::uint8_t>(quantum[0] << 2 | quantum[1] >> 4);
      if (j == 3) out.data()[n++] = static_cast<std::uint8_t>(quantum[1] << 4 | quantum[2] >> 2);
      j = 0;
      break;
    }
    const std::uint8_t v = kDecodeTable[static_cast<unsigned char>(c)];
    if (v == 0xFF) return IllegalBase64(i);
    quantum[j++] = v;
    ++i;
    if (j == 4) {
      out.data()[n++] = static_cast<std::uint8_t>(quantum[0] << 2 | quantum[1] >> 4);
      out.data()[n++] = static_cast<std::uint8_t>(quantum[1] << 4 | quantum[2] >> 2);
      out.data()[n++] = static_cast<std::uint8_t>(quantum[2] << 6 | quantum[3]);
      j = 0;
    }
  }
  if (j != 0) return IllegalBase64(i - j);
  if (n == out.size()) return out;
  return crypto::SecureBuffer::Copy(out.span().first(n));
}

StatusOr<VersionedText> ParseVersioned(std::string_view text, std::string_view what) {
  const std::string invalid = "invalid " + std::string(what) + ": ";
  if (!text.starts_with(kPrefix)) return InvalidArgumentError(invalid + "no prefix");
  text.remove_prefix(kPrefix.size());
  const auto colon = text.find(':');
  if (colon == std::string_view::npos) {
    return InvalidArgumentError(invalid + "wrong number of fields");
  }
  const std::string_view digits = text.substr(0, colon);
  std::uint32_t version = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), version);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size()) {
    return InvalidArgumentError(invalid + "version number could not be decoded");
  }
  return VersionedText{version == 0 ? 1 : version, text.substr(colon + 1)};
}

std::string FormatVersioned(std::uint32_t version, std::string_view body) {
  std::string out;
  out.reserve(kPrefix.size() + 11 + body.size());
  out.append(kPrefix).append(std::to_string(version)).append(":").append(body);
  return out;
}

std::optional<Hash> ParseHash(std::string_view name) {
  if (name == "sha2-224") return Hash::kSha2_224;
  if (name == "sha2-256") return Hash::kSha2_256;
  if (name == "sha2-384") return Hash::kSha2_384;
  if (name == "sha2-512") return Hash::kSha2_512;
  if (name == "sha3-224") return Hash::kSha3_224;
  if (name == "sha3-256") return Hash::kSha3_256;
  if (name == "sha3-384") return Hash::kSha3_384;
  if (name == "sha3-512") return Hash::kSha3_512;
  return std::nullopt;
}

std::vector<std::uint8_t> HashOf(Hash hash, std::span<const std::uint8_t> data) {
  std::vector<std::uint8_t> out(EVP_MAX_MD_SIZE);
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out.data(), &len, Md(hash), nullptr);
  out.resize(len);
  return out;
}

StatusOr<std::vector<std::uint8_t>> HmacOf(
    Hash hash, std::span<const std::uint8_t> key,
    std::initializer_list<std::span<const std::uint8_t>> parts) {
  std::unique_ptr<EVP_MAC, decltype(&EVP_MAC_free)> mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr),
                                                        &EVP_MAC_free);
  std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)> ctx(
      mac ? EVP_MAC_CTX_new(mac.get()) : nullptr, &EVP_MAC_CTX_free);
  char digest[32];
  const std::string_view name = EVP_MD_get0_name(Md(hash));
  name.copy(digest, sizeof digest - 1);
  digest[std::min(name.size(), sizeof digest - 1)] = '\0';
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  static const std::uint8_t kEmpty = 0;
  std::vector<std::uint8_t> out(EVP_MAX_MD_SIZE);
  std::size_t len = 0;
  bool ok =
      ctx && EVP_MAC_init(ctx.get(), key.empty() ? &kEmpty : key.data(), key.size(), params) == 1;
  for (auto part : parts) {
    ok = ok && (part.empty() || EVP_MAC_update(ctx.get(), part.data(), part.size()) == 1);
  }
  ok = ok && EVP_MAC_final(ctx.get(), out.data(), &len, out.size()) == 1;
  if (!ok) return InternalError("HMAC computation failed");
  out.resize(len);
  return out;
}

StatusOr<crypto::SecureBuffer> HkdfSha256(std::span<const std::uint8_t> ikm,
                                          std::span<const std::uint8_t> info, std::size_t size) {
  std::unique_ptr<EVP_KDF, decltype(&EVP_KDF_free)> kdf(EVP_KDF_fetch(nullptr, "HKDF", nullptr),
                                                        &EVP_KDF_free);
  if (!kdf) return InternalError("HKDF unavailable");
  std::unique_ptr<EVP_KDF_CTX, decltype(&EVP_KDF_CTX_free)> ctx(EVP_KDF_CTX_new(kdf.get()),
                                                                &EVP_KDF_CTX_free);
  if (!ctx) return InternalError("HKDF context");
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<std::uint8_t*>(ikm.data()),
                                        ikm.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<std::uint8_t*>(info.data()),
                                        info.size()),
      OSSL_PARAM_construct_end()};
  crypto::SecureBuffer out(size);
  if (EVP_KDF_derive(ctx.get(), out.data(), out.size(), params) != 1) {
    return InternalError("HKDF derivation failed");
  }
  return out;
}

StatusOr<std::vector<std::uint8_t>> EcdsaRawToDer(std::span<const std::uint8_t> raw) {
  if (raw.size() != 64) return InternalError("ECDSA P-256 signature is not 64 bytes");
  std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)> sig(ECDSA_SIG_new(), &ECDSA_SIG_free);
  BIGNUM* r = BN_bin2bn(raw.data(), 32, nullptr);
  BIGNUM* s = BN_bin2bn(raw.data() + 32, 32, nullptr);
  if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return InternalError("ECDSA signature encoding failed");
  }
  unsigned char* der = nullptr;
  const int len = i2d_ECDSA_SIG(sig.get(), &der);
  if (len <= 0) return InternalError("ECDSA signature encoding failed");
  std::vector<std::uint8_t> out(der, der + len);
  OPENSSL_free(der);
  return out;
}

}  // namespace lockbox::transit
