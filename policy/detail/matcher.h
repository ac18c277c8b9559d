// Rule lookup for a compiled ACL (reference §7.2, §7.3): an exact-match table, a longest-prefix
// table for trailing-'*' globs, and the '+' segment-wildcard rules sorted by priority.
//
// Security property: exactly one rule decides a path (exact first; otherwise the highest-priority
// of the longest-prefix glob and the matching '+' rules); no match means no capability.
// Performance: tables are sorted vectors built once; lookups scan the request path through
// string_views and never allocate.
// Thread safety: immutable after construction; const methods are safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.h"

namespace lockbox::policy::detail {

// True if some '/'-separated segment of `pattern` is exactly "+" (ignoring a trailing '*'):
// Vault's segment-wildcard form (`+`, `+/a`, `a/+/b`, `a/+`, `a/+/*`).
bool HasSegmentWildcard(std::string_view pattern);

class Matcher {
 public:
  Matcher() = default;
  // `rules` must already be merged: one entry per pattern string.
  explicit Matcher(std::vector<PathRule> rules);

  // §7.3 step 2 for a request path without leading '/': the chosen rule's capabilities, or 0.
  std::uint32_t Capabilities(std::string_view path) const;
  // True if some rule that can apply to a path starting with `prefix` grants a non-deny
  // capability (see Acl::AnyCapabilityUnder).
  bool AnyGrantUnder(std::string_view prefix) const;

 private:
  // The §7.3 priority key of a non-exact rule (for a glob, the wildcard position is its length).
  struct Rank {
    std::size_t first_wildcard = 0;
    bool ends_in_glob = false;
    std::size_t plus_segments = 0;
    std::string_view body;  // the pattern without its trailing '*'
  };
  static bool Outranks(const Rank& a, const Rank& b);

  struct ExactRule {
    std::string path;
    std::uint32_t caps = 0;
  };
  struct GlobRule {
    std::string prefix;  // the pattern without its trailing '*'
    std::uint32_t caps = 0;
    // Index in globs_ of the longest other prefix that is a prefix of this one; -1 if none.
    std::ptrdiff_t parent = -1;
    Rank rank() const { return {prefix.size(), true, 0, prefix}; }
  };
  struct SegmentRule {
    std::string body;  // the pattern without its trailing '*'
    std::uint32_t caps = 0;
    bool ends_in_glob = false;
    std::size_t segments = 0;
    std::size_t plus_segments = 0;
    std::size_t first_wildcard = 0;  // byte offset of the first '+' segment
    Rank rank() const { return {first_wildcard, ends_in_glob, plus_segments, body}; }
    bool Matches(std::string_view path, std::size_t path_segments) const;
    bool CouldMatchUnder(std::string_view prefix) const;
  };

  const ExactRule* FindExact(std::string_view path) const;
  const GlobRule* LongestGlob(std::string_view path) const;
  // §7.3 2b-2c; nullopt if neither a glob nor a '+' rule matches.
  std::optional<std::uint32_t> FindNonExact(std::string_view path) const;

  std::vector<ExactRule> exact_;       // sorted by path
  std::vector<GlobRule> globs_;        // sorted by prefix
  std::vector<SegmentRule> segments_;  // highest priority first
};

}  // namespace lockbox::policy::detail
