// CIDR blocks (IPv4 and IPv6) and the "is this client address inside one of them" check that
// AppRole's cidr_list / secret_id_bound_cidrs / token_bound_cidrs need.
//
// Parsing uses inet_pton only: a block is "<address>/<prefix>" (prefix 0-32 or 0-128) or a bare
// address (a host block, /32 or /128). Host bits below the prefix are masked off, as Go's
// net.ParseCIDR does for Vault. IPv4-mapped IPv6 addresses ("::ffff:10.0.0.1") are treated as
// the IPv4 address, so a dual-stack listener's client matches an IPv4 block. Anything else
// (zone ids, spaces, ports, brackets, leading zeros in a prefix) is refused.
// Security property: fail closed — an address that does not parse matches nothing.
// Thread safety: values and pure functions.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/status.h"

namespace lockbox::auth {

// An IPv4 or IPv6 address (IPv4 kept as 4 bytes; IPv4-mapped IPv6 is folded to IPv4).
struct IpAddress {
  bool v6 = false;
  std::array<std::uint8_t, 16> bytes{};  // the first 4 are used for IPv4
};

// INVALID_ARGUMENT if `text` is not a literal IPv4 or IPv6 address.
StatusOr<IpAddress> ParseIpAddress(std::string_view text);

class Cidr {
 public:
  // INVALID_ARGUMENT "invalid CIDR block \"...\"" if `text` is not a block or a bare address.
  static StatusOr<Cidr> Parse(std::string_view text);

  bool Contains(const IpAddress& address) const;
  // True if every address of `inner` is inside this block.
  bool Contains(const Cidr& inner) const;
  // Canonical text: masked network address and prefix, e.g. "10.0.0.0/8", "2001:db8::/32".
  std::string ToString() const;

 private:
  IpAddress network_;
  int prefix_ = 0;
};

// Parses every block; the error names `field` and the offending block.
StatusOr<std::vector<Cidr>> ParseCidrList(const std::vector<std::string>& blocks,
                                          std::string_view field);

// True if `remote_addr` parses and lies inside at least one block. An empty list holds nothing:
// callers skip the check themselves when no restriction is configured.
bool AnyCidrContains(const std::vector<Cidr>& blocks, std::string_view remote_addr);

// True if every block of `inner` lies inside some block of `outer`.
bool CidrsWithin(const std::vector<Cidr>& inner, const std::vector<Cidr>& outer);

}  // namespace lockbox::auth
