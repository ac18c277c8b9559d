#include "audit/chain.h"

#include <algorithm>

#include "crypto/encoding.h"
#include "crypto/hash.h"

namespace lockbox::audit {

namespace {
constexpr std::string_view kGenesisDomain = "lockbox-audit-v1";
}  // namespace

ChainHash GenesisHash(std::string_view log_id) {
  crypto::Sha256Hasher hasher;
  hasher.Update(kGenesisDomain);
  hasher.Update(log_id);
  return hasher.Finish();
}

ChainHash NextHash(const ChainHash& previous, std::string_view canonical_event) {
  // One hasher per thread (Finish() resets it): saves a context allocation per event.
  thread_local crypto::Sha256Hasher hasher;
  hasher.Update(std::span<const std::uint8_t>(previous));
  hasher.Update(canonical_event);
  return hasher.Finish();
}

std::string HashToHex(const ChainHash& hash) { return crypto::HexEncode(hash); }

StatusOr<ChainHash> HashFromHex(std::string_view hex) {
  if (hex.size() != 64) return InvalidArgumentError("chain hash must be 64 hex digits");
  auto bytes = crypto::HexDecode(hex);
  if (!bytes.ok()) return InvalidArgumentError("chain hash must be lower-case hex");
  ChainHash hash;
  std::copy(bytes->begin(), bytes->end(), hash.begin());
  return hash;
}

}  // namespace lockbox::audit
