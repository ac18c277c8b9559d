// Vault ACL policies (reference §7): parse (JSON and the HCL subset Vault policies use), compile
// a token's policy set once, and decide capabilities for a request path.
//
// Security properties: deny by default (no matching rule → no capability); a `deny` in the chosen
// rule wins over everything; only the single highest-priority rule counts (no fall-through);
// parameter constraints and templated paths are refused at parse time rather than silently
// ignored. The root policy is not parsed: Acl::Root() allows everything.
// Thread safety: Policy and Acl are immutable values; Acl methods are const, allocation-free and
// safe to call from any number of threads.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/status.h"

namespace lockbox::policy {

// Capability bits.
enum Capability : std::uint32_t {
  kCreate = 1u << 0,
  kRead = 1u << 1,
  kUpdate = 1u << 2,
  kPatch = 1u << 3,
  kDelete = 1u << 4,
  kList = 1u << 5,
  kSudo = 1u << 6,
  kDeny = 1u << 7,
};

// "create" → kCreate, ...; 0 for an unknown name.
std::uint32_t CapabilityFromName(std::string_view name);
// Names of the set bits in Vault's order (create, read, update, patch, delete, list, sudo), or
// ["deny"] when kDeny is set or no bit is.
std::vector<std::string> CapabilityNames(std::uint32_t capabilities);

struct PathRule {
  std::string pattern;  // as written, leading '/' stripped
  std::uint32_t capabilities = 0;
};

struct Policy {
  std::string name;  // lower-case
  std::string raw;   // the text as submitted, base64-decoded if it was base64 (as Vault
                     // stores it; returned by sys/policy reads)
  std::vector<PathRule> rules;
};

// Parses HCL (`path "…" { capabilities = [...] }`, legacy `policy = "read"`, comments `#`, `//`,
// `/* */`) or JSON (`{"path": {...}}`); the text may also be base64 of either. INVALID_ARGUMENT
// with Vault's message for a syntax error, an unknown key, an invalid capability
// (`path "x": invalid capability "y"`), an invalid glob (`+*`), templated paths, or parameter
// constraints (not enforced here, so refused).
StatusOr<Policy> ParsePolicy(std::string_view name, std::string_view text);

// The default policy's text (reference §7.1): what `default` contains at init.
std::string_view DefaultPolicyText();

// A token's compiled policy set.
class Acl {
 public:
  // Merges the rules of `policies` by identical pattern (capabilities unioned, deny wins) and
  // builds the lookup structures.
  static Acl Compile(std::span<const Policy* const> policies);
  static Acl Root();

  bool is_root() const;
  // The capabilities of the single rule chosen for `path` (request path relative to /v1/, list
  // requests with their trailing '/'); 0 when no rule matches; kDeny if the chosen rule denies.
  std::uint32_t Capabilities(std::string_view path) const;
  // True if `capability` (and kSudo too when `needs_sudo`) is granted for `path`.
  bool Allows(std::string_view path, std::uint32_t capability, bool needs_sudo) const;
  // True if any rule under `prefix` (a mount path like "secret/") grants a capability other than
  // deny (sys/internal/ui/mounts).
  bool AnyCapabilityUnder(std::string_view prefix) const;

 private:
  struct Compiled;
  std::shared_ptr<const Compiled> compiled_;
};

}  // namespace lockbox::policy
