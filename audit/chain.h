// The audit hash chain: h_0 = SHA-256("lockbox-audit-v1" || log_id),
// h_n = SHA-256(h_{n-1} || JCS(event_n)). Pure functions, thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "crypto/status.h"

namespace lockbox::audit {

using ChainHash = std::array<std::uint8_t, 32>;

ChainHash GenesisHash(std::string_view log_id);
ChainHash NextHash(const ChainHash& previous, std::string_view canonical_event);

std::string HashToHex(const ChainHash& hash);
StatusOr<ChainHash> HashFromHex(std::string_view hex);

}  // namespace lockbox::audit
