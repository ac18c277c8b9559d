#include "server/auth/cidr.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace lockbox::auth {
namespace {

constexpr std::array<std::uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int BitLength(const IpAddress& address) { return address.v6 ? 128 : 32; }

// True if the first `prefix` bits of `a` and `b` are equal.
bool SamePrefix(const IpAddress& a, const IpAddress& b, int prefix) {
  const int whole = prefix / 8;
  if (std::memcmp(a.bytes.data(), b.bytes.data(), static_cast<std::size_t>(whole)) != 0) {
    return false;
  }
  const int rest = prefix % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (a.bytes[whole] & mask) == (b.bytes[whole] & mask);
}

void MaskTo(IpAddress& address, int prefix) {
  for (int bit = prefix; bit < BitLength(address); ++bit) {
    address.bytes[bit / 8] &= static_cast<std::uint8_t>(~(0x80 >> (bit % 8)));
  }
}

}  // namespace

StatusOr<IpAddress> ParseIpAddress(std::string_view text) {
  // inet_pton needs a NUL-terminated string; longer text is never an address.
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) {
    return InvalidArgumentError("invalid IP address");
  }
  const std::string copy(text);
  IpAddress address;
  if (inet_pton(AF_INET, copy.c_str(), address.bytes.data()) == 1) return address;
  if (inet_pton(AF_INET6, copy.c_str(), address.bytes.data()) != 1) {
    return InvalidArgumentError("invalid IP address");
  }
  if (std::equal(kV4MappedPrefix.begin(), kV4MappedPrefix.end(), address.bytes.begin())) {
    IpAddress v4;
    std::copy_n(address.bytes.begin() + 12, 4, v4.bytes.begin());
    return v4;
  }
  address.v6 = true;
  return address;
}

StatusOr<Cidr> Cidr::Parse(std::string_view text) {
  const Status invalid = InvalidArgumentError("invalid CIDR block \"" + std::string(text) + "\"");
  const auto slash = text.find('/');
  auto address = ParseIpAddress(text.substr(0, slash));
  if (!address.ok()) return invalid;
  Cidr cidr;
  cidr.network_ = *address;
  cidr.prefix_ = BitLength(*address);
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3 || (digits.size() > 1 && digits[0] == '0') ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return invalid;
    }
    int prefix = 0;
    for (char c : digits) prefix = prefix * 10 + (c - '0');
    // An IPv4-mapped address with an IPv6 prefix length: the prefix counts from bit 96.
    const bool mapped_v6_text =
        text.substr(0, slash).find(':') != std::string_view::npos && !address->v6;
    if (mapped_v6_text) {
      if (prefix < 96) return invalid;
      prefix -= 96;
    }
    if (prefix > cidr.prefix_) return invalid;
    cidr.prefix_ = prefix;
  }
  MaskTo(cidr.network_, cidr.prefix_);
  return cidr;
}

bool Cidr::Contains(const IpAddress& address) const {
  return address.v6 == network_.v6 && SamePrefix(address, network_, prefix_);
}

bool Cidr::Contains(const Cidr& inner) const {
  return inner.prefix_ >= prefix_ && Contains(inner.network_);
}

std::string Cidr::ToString() const {
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(network_.v6 ? AF_INET6 : AF_INET, network_.bytes.data(), text, sizeof(text));
  return std::string(text) + "/" + std::to_string(prefix_);
}

StatusOr<std::vector<Cidr>> ParseCidrList(const std::vector<std::string>& blocks,
                                          std::string_view field) {
  std::vector<Cidr> parsed;
  parsed.reserve(blocks.size());
  for (const std::string& block : blocks) {
    auto cidr = Cidr::Parse(block);
    if (!cidr.ok()) {
      return InvalidArgumentError("invalid value for \"" + std::string(field) +
                                  "\": " + cidr.status().message());
    }
    parsed.push_back(*cidr);
  }
  return parsed;
}

bool AnyCidrContains(const std::vector<Cidr>& blocks, std::string_view remote_addr) {
  auto address = ParseIpAddress(remote_addr);
  if (!address.ok()) return false;
  return std::any_of(blocks.begin(), blocks.end(),
                     [&](const Cidr& block) { return block.Contains(*address); });
}

bool CidrsWithin(const std::vector<Cidr>& inner, const std::vector<Cidr>& outer) {
  return std::all_of(inner.begin(), inner.end(), [&](const Cidr& block) {
    return std::any_of(outer.begin(), outer.end(),
                       [&](const Cidr& container) { return container.Contains(block); });
  });
}

}  // namespace lockbox::auth
