#include "policy/policy.h"

#include <algorithm>
#include <array>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "crypto/encoding.h"
#include "policy/detail/matcher.h"
#include "policy/detail/syntax.h"

namespace lockbox::policy {
namespace {

using detail::Item;
using detail::Value;

// Larger than any real policy, small enough that parsing hostile input stays cheap.
constexpr std::size_t kMaxPolicyBytes = std::size_t{1} << 20;

constexpr std::uint32_t kEverythingButDeny =
    kCreate | kRead | kUpdate | kPatch | kDelete | kList | kSudo;

struct NamedCapability {
  std::string_view name;
  std::uint32_t bit;
};
// Vault's order for listing capabilities; deny last.
constexpr std::array<NamedCapability, 8> kCapabilities = {{{"create", kCreate},
                                                           {"read", kRead},
                                                           {"update", kUpdate},
                                                           {"patch", kPatch},
                                                           {"delete", kDelete},
                                                           {"list", kList},
                                                           {"sudo", kSudo},
                                                           {"deny", kDeny}}};

// Path keys Vault accepts but whose constraints this server does not enforce. A policy using
// them is refused, so that nobody believes they are in force (reference §7.3 item 5).
struct RefusedKey {
  std::string_view key;
  std::string_view reason;
};
constexpr std::array<RefusedKey, 7> kRefusedKeys = {{
    {"allowed_parameters", "parameter constraints are not enforced by this server"},
    {"denied_parameters", "parameter constraints are not enforced by this server"},
    {"required_parameters", "parameter constraints are not enforced by this server"},
    {"min_wrapping_ttl", "response-wrapping TTL limits are not enforced by this server"},
    {"max_wrapping_ttl", "response-wrapping TTL limits are not enforced by this server"},
    {"mfa_methods", "Enterprise MFA methods are not supported by this server"},
    {"control_group", "Enterprise control groups are not supported by this server"},
}};

Status ParseError(std::string_view message) {
  return InvalidArgumentError("failed to parse policy: " + std::string(message));
}

std::string Quoted(std::string_view text) { return "\"" + detail::Excerpt(text) + "\""; }

std::string OnLine(int line) { return line > 0 ? " on line " + std::to_string(line) : ""; }

bool IsBase64Char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/' || c == '=';
}

// Vault tries base64 on every submitted policy and keeps the decoded text when that succeeds.
// Go's decoder skips CR and LF, so line-wrapped base64 is accepted too.
std::optional<std::string> DecodeIfBase64(std::string_view text) {
  std::string compact;
  for (const char c : text) {
    if (c == '\r' || c == '\n') continue;
    if (!IsBase64Char(c)) return std::nullopt;
    compact += c;
  }
  if (compact.empty()) return std::nullopt;
  auto bytes = crypto::Base64Decode(compact);
  if (!bytes.ok()) return std::nullopt;
  return std::string(bytes->begin(), bytes->end());
}

// §7.2: templates refused, '+*' refused, '+' only as a whole segment.
Status ValidatePattern(std::string_view written, std::string_view pattern) {
  const std::string label = "path " + Quoted(written) + ": ";
  if (pattern.empty()) return ParseError(label + "empty path pattern");
  if (pattern.find("+*") != std::string_view::npos) {
    return ParseError(label + "invalid use of wildcards ('+*' is forbidden)");
  }
  std::string_view rest = pattern.ends_with('*') ? pattern.substr(0, pattern.size() - 1) : pattern;
  while (true) {
    const std::size_t slash = rest.find('/');
    const std::string_view segment = rest.substr(0, slash);
    if (segment != "+" && segment.find('+') != std::string_view::npos) {
      return ParseError(label + "invalid use of '+' (it must be a whole path segment)");
    }
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  return Status::Ok();
}

StatusOr<std::uint32_t> LegacyPolicyCapabilities(const std::string& label, const Value& value) {
  if (value.kind != Value::Kind::kString) return ParseError(label + "policy must be a string");
  const std::string& legacy = value.scalar;
  constexpr std::uint32_t kWrite = kCreate | kRead | kUpdate | kDelete | kList;
  if (legacy == "deny") return std::uint32_t{kDeny};
  if (legacy == "read") return std::uint32_t{kRead | kList};
  if (legacy == "write") return kWrite;
  if (legacy == "sudo") return kWrite | kSudo;
  return ParseError(label + "invalid policy " + Quoted(legacy));
}

StatusOr<std::uint32_t> ListedCapabilities(const std::string& label, const Value& value) {
  if (value.kind != Value::Kind::kList) {
    return ParseError(label + "capabilities must be a list of strings");
  }
  std::uint32_t caps = 0;
  for (const Value& element : value.elements) {
    if (element.kind != Value::Kind::kString) {
      return ParseError(label + "capabilities must be a list of strings");
    }
    const std::uint32_t bit = CapabilityFromName(element.scalar);
    if (bit == 0) return ParseError(label + "invalid capability " + Quoted(element.scalar));
    caps |= bit;
  }
  return caps;
}

// One `path "<written>" { … }` block.
StatusOr<PathRule> ParsePathBlock(std::string_view written, const Value& body) {
  const std::string label = "path " + Quoted(written) + ": ";
  if (written.find("{{") != std::string_view::npos) {
    return ParseError(label + "templated policy paths are not supported");
  }
  if (body.kind != Value::Kind::kObject) {
    return ParseError(label + "expected a block { capabilities = [...] }");
  }
  const Value* capabilities = nullptr;
  const Value* legacy = nullptr;
  const Value* comment = nullptr;
  for (const Item& item : body.items) {
    const std::string& key = item.keys.front();
    if (item.keys.size() != 1) {
      return ParseError(label + "expected " + Quoted(key) + " = <value>" + OnLine(item.line));
    }
    const auto refused = std::find_if(kRefusedKeys.begin(), kRefusedKeys.end(),
                                      [&](const RefusedKey& r) { return r.key == key; });
    if (refused != kRefusedKeys.end()) {
      return ParseError(label + key + " is not supported: " + std::string(refused->reason) +
                        ", so the policy is refused");
    }
    const Value** slot = key == "capabilities" ? &capabilities
                         : key == "policy"     ? &legacy
                         : key == "comment"    ? &comment
                                               : nullptr;
    if (slot == nullptr) {
      return ParseError(label + "invalid key " + Quoted(key) + OnLine(item.line));
    }
    if (*slot != nullptr) {
      return ParseError(label + "duplicate key " + Quoted(key) + OnLine(item.line));
    }
    *slot = &item.value;
  }

  PathRule rule;
  rule.pattern = std::string(written.starts_with('/') ? written.substr(1) : written);
  LOCKBOX_RETURN_IF_ERROR(ValidatePattern(written, rule.pattern));
  if (capabilities != nullptr) {
    LOCKBOX_ASSIGN_OR_RETURN(rule.capabilities, ListedCapabilities(label, *capabilities));
  }
  if (legacy != nullptr) {
    LOCKBOX_ASSIGN_OR_RETURN(const std::uint32_t legacy_caps,
                             LegacyPolicyCapabilities(label, *legacy));
    rule.capabilities |= legacy_caps;
  }
  if ((rule.capabilities & kDeny) != 0) rule.capabilities = kDeny;
  return rule;
}

// Top level: `name` and `path` only. `path` comes as HCL's `path "x" { … }` (keys [path, x]) or
// JSON's `"path": {"x": {…}}` (keys [path], an object of pattern → body).
Status ParseDocument(const Value& document, std::vector<PathRule>& rules) {
  for (const Item& item : document.items) {
    const std::string& key = item.keys.front();
    if (key != "name" && key != "path") {
      return ParseError("invalid key " + Quoted(key) + OnLine(item.line));
    }
  }
  for (const Item& item : document.items) {
    if (item.keys.front() == "name") {
      if (item.keys.size() != 1) return ParseError("expected name = \"...\"" + OnLine(item.line));
      continue;
    }
    if (item.keys.size() == 2) {
      LOCKBOX_ASSIGN_OR_RETURN(PathRule rule, ParsePathBlock(item.keys[1], item.value));
      rules.push_back(std::move(rule));
    } else if (item.keys.size() == 1 && item.value.kind == Value::Kind::kObject) {
      for (const Item& block : item.value.items) {
        if (block.keys.size() != 1) {
          return ParseError("expected path \"<pattern>\" { ... }" + OnLine(block.line));
        }
        LOCKBOX_ASSIGN_OR_RETURN(PathRule rule, ParsePathBlock(block.keys[0], block.value));
        rules.push_back(std::move(rule));
      }
    } else {
      return ParseError("expected path \"<pattern>\" { ... }" + OnLine(item.line));
    }
  }
  return Status::Ok();
}

constexpr std::string_view kDefaultPolicy = R"hcl(# Allow tokens to look up their own properties
path "auth/token/lookup-self" {
    capabilities = ["read"]
}

# Allow tokens to renew themselves
path "auth/token/renew-self" {
    capabilities = ["update"]
}

# Allow tokens to revoke themselves
path "auth/token/revoke-self" {
    capabilities = ["update"]
}

# Allow a token to look up its own capabilities on a path
path "sys/capabilities-self" {
    capabilities = ["update"]
}

# Allow a token to look up its resultant ACL from all policies. This is useful
# for UIs. It is an internal path because the format may change at any time
# based on how the internal ACL features and capabilities change.
path "sys/internal/ui/resultant-acl" {
    capabilities = ["read"]
}

# Allow a token to renew a lease via lease_id in the request body; old path for
# old clients, new path for newer
path "sys/renew" {
    capabilities = ["update"]
}
path "sys/leases/renew" {
    capabilities = ["update"]
}

# Allow looking up lease properties. This requires knowing the lease ID ahead
# of time and does not divulge any sensitive information.
path "sys/leases/lookup" {
    capabilities = ["update"]
}

# Allow a token to manage its own cubbyhole
path "cubbyhole/*" {
    capabilities = ["create", "read", "update", "delete", "list"]
}

# Allow a token to wrap arbitrary values in a response-wrapping token
path "sys/wrapping/wrap" {
    capabilities = ["update"]
}

# Allow a token to look up the creation time and TTL of a given
# response-wrapping token
path "sys/wrapping/lookup" {
    capabilities = ["update"]
}

# Allow a token to unwrap a response-wrapping token. This is a convenience to
# avoid client token swapping since this is also part of the response wrapping
# policy.
path "sys/wrapping/unwrap" {
    capabilities = ["update"]
}

# Allow general purpose tools
path "sys/tools/hash" {
    capabilities = ["update"]
}
path "sys/tools/hash/*" {
    capabilities = ["update"]
}
)hcl";

std::string_view WithoutLeadingSlashes(std::string_view path) {
  while (path.starts_with('/')) path.remove_prefix(1);
  return path;
}

}  // namespace

std::uint32_t CapabilityFromName(std::string_view name) {
  for (const NamedCapability& c : kCapabilities) {
    if (c.name == name) return c.bit;
  }
  return 0;
}

std::vector<std::string> CapabilityNames(std::uint32_t capabilities) {
  std::vector<std::string> names;
  if ((capabilities & kDeny) == 0) {
    for (const NamedCapability& c : kCapabilities) {
      if ((capabilities & c.bit) != 0) names.emplace_back(c.name);
    }
  }
  if (names.empty()) names.emplace_back("deny");
  return names;
}

StatusOr<Policy> ParsePolicy(std::string_view name, std::string_view text) {
  if (text.empty()) return InvalidArgumentError("'policy' parameter not supplied or empty");
  if (text.size() > kMaxPolicyBytes) {
    return InvalidArgumentError("policy is larger than " + std::to_string(kMaxPolicyBytes) +
                                " bytes");
  }
  Policy policy;
  policy.name.reserve(name.size());
  std::transform(name.begin(), name.end(), std::back_inserter(policy.name), [](char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
  });
  policy.raw = DecodeIfBase64(text).value_or(std::string(text));
  if (!detail::IsValidUtf8(policy.raw)) return ParseError("the policy is not valid UTF-8");

  // As HCL1 does: a document whose first non-space character is '{' is JSON.
  const std::size_t first = policy.raw.find_first_not_of(" \t\r\n");
  const bool is_json = first != std::string::npos && policy.raw[first] == '{';
  StatusOr<Value> document = is_json ? detail::ParseJson(policy.raw) : detail::ParseHcl(policy.raw);
  if (!document.ok()) return ParseError(document.status().message());
  LOCKBOX_RETURN_IF_ERROR(ParseDocument(*document, policy.rules));
  return policy;
}

std::string_view DefaultPolicyText() { return kDefaultPolicy; }

struct Acl::Compiled {
  bool root = false;
  detail::Matcher matcher;
};

Acl Acl::Compile(std::span<const Policy* const> policies) {
  // §7.3 step 1: merge by identical pattern string; a deny anywhere leaves only deny.
  std::map<std::string, std::uint32_t, std::less<>> merged;
  for (const Policy* policy : policies) {
    if (policy == nullptr) continue;
    for (const PathRule& rule : policy->rules) {
      std::uint32_t& caps = merged[rule.pattern];
      caps |= rule.capabilities;
      if ((caps & kDeny) != 0) caps = kDeny;
    }
  }
  std::vector<PathRule> rules;
  rules.reserve(merged.size());
  for (auto& [pattern, caps] : merged) rules.push_back({pattern, caps});

  auto compiled = std::make_shared<Compiled>();
  compiled->matcher = detail::Matcher(std::move(rules));
  Acl acl;
  acl.compiled_ = std::move(compiled);
  return acl;
}

Acl Acl::Root() {
  auto compiled = std::make_shared<Compiled>();
  compiled->root = true;
  Acl acl;
  acl.compiled_ = std::move(compiled);
  return acl;
}

bool Acl::is_root() const { return compiled_ != nullptr && compiled_->root; }

std::uint32_t Acl::Capabilities(std::string_view path) const {
  if (compiled_ == nullptr) return 0;
  if (compiled_->root) return kEverythingButDeny;
  // Request paths never start with '/'; stripping is defence in depth, as in Vault.
  return compiled_->matcher.Capabilities(WithoutLeadingSlashes(path));
}

bool Acl::Allows(std::string_view path, std::uint32_t capability, bool needs_sudo) const {
  const std::uint32_t required = capability | (needs_sudo ? kSudo : 0u);
  const std::uint32_t granted = Capabilities(path);
  return required != 0 && (granted & kDeny) == 0 && (granted & required) == required;
}

bool Acl::AnyCapabilityUnder(std::string_view prefix) const {
  if (compiled_ == nullptr) return false;
  if (compiled_->root) return true;
  return compiled_->matcher.AnyGrantUnder(WithoutLeadingSlashes(prefix));
}

}  // namespace lockbox::policy
