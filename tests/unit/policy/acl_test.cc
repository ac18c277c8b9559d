// Acl: merge, lookup and the five priority rules of reference §7.3, with Vault's own examples,
// plus a randomized comparison against a brute-force transcription of Vault's algorithm.
#include <algorithm>
#include <cstdint>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "policy/policy.h"

namespace lockbox::policy {
namespace {

constexpr std::uint32_t kAll = kCreate | kRead | kUpdate | kPatch | kDelete | kList | kSudo;

// Compiles HCL policies (each string one policy).
Acl CompileHcl(const std::vector<std::string>& texts) {
  std::vector<Policy> policies;
  for (const std::string& text : texts) {
    StatusOr<Policy> policy = ParsePolicy("p", text);
    EXPECT_TRUE(policy.ok()) << policy.status().ToString() << "\n" << text;
    if (policy.ok()) policies.push_back(*policy);
  }
  std::vector<const Policy*> set;
  for (const Policy& p : policies) set.push_back(&p);
  return Acl::Compile(set);
}

std::string Rule(const std::string& pattern, const std::string& caps) {
  return "path \"" + pattern + "\" { capabilities = [" + caps + "] }\n";
}

struct LookupCase {
  const char* what;
  std::vector<std::string> policies;
  const char* path;
  std::uint32_t want;
};

class LookupTest : public ::testing::TestWithParam<LookupCase> {};

TEST_P(LookupTest, ChoosesTheRightRule) {
  const LookupCase& c = GetParam();
  EXPECT_EQ(CompileHcl(c.policies).Capabilities(c.path), c.want) << c.what << ": " << c.path;
}

const LookupCase kLookupCases[] = {
    // 2a: exact rule first, then stop.
    {"exact beats glob",
     {Rule("secret/foo", R"("read")") + Rule("secret/*", R"("update")")},
     "secret/foo",
     kRead},
    {"exact beats glob (other path)",
     {Rule("secret/foo", R"("read")") + Rule("secret/*", R"("update")")},
     "secret/bar",
     kUpdate},
    {"exact beats + rule",
     {Rule("secret/a/b", R"("read")") + Rule("secret/+/b", R"("update")")},
     "secret/a/b",
     kRead},
    {"exact matches only itself", {Rule("secret/foo", R"("read")")}, "secret/foo/bar", 0},
    {"exact is not a prefix", {Rule("secret/foo", R"("read")")}, "secret/fo", 0},
    // §7.2 LIST: trailing '/' also matches the exact pattern without it.
    {"LIST trailing slash",
     {Rule("secret/metadata/foo", R"("list")")},
     "secret/metadata/foo/",
     kList},
    {"LIST trailing slash, exact with slash",
     {Rule("secret/metadata/foo/", R"("read")")},
     "secret/metadata/foo/",
     kRead},
    {"LIST trims one slash only",
     {Rule("secret/metadata/foo", R"("list")")},
     "secret/metadata/foo//",
     0},
    {"glob covers its own LIST",
     {Rule("secret/metadata/*", R"("list")")},
     "secret/metadata/",
     kList},
    {"glob covers deeper LIST",
     {Rule("secret/metadata/*", R"("list")")},
     "secret/metadata/a/b/",
     kList},
    // 2b: longest prefix among globs.
    {"longer prefix wins",
     {Rule("secret/*", R"("read")") + Rule("secret/data/*", R"("update")")},
     "secret/data/x",
     kUpdate},
    {"shorter prefix elsewhere",
     {Rule("secret/*", R"("read")") + Rule("secret/data/*", R"("update")")},
     "secret/other",
     kRead},
    {"glob prefix is textual", {Rule("secret/zip-*", R"("read")")}, "secret/zip-zap/zong", kRead},
    {"star alone matches all", {Rule("*", R"("read")")}, "anything/at/all", kRead},
    {"star in the middle is literal", {Rule("a/*/b", R"("read")")}, "a/x/b", 0},
    {"star in the middle, literal match", {Rule("a/*/b", R"("read")")}, "a/*/b", kRead},
    // 3: no fall-through to a less specific rule.
    {"no fall-through",
     {Rule("secret/*", R"("read", "list")") + Rule("secret/data/*", R"("create")")},
     "secret/data/x",
     kCreate},
    {"no fall-through from + rule",
     {Rule("secret/*", R"("read")") + Rule("secret/+/private", R"("create")")},
     "secret/a/private",
     kCreate},
    // 3: deny in the chosen rule.
    {"deny in chosen glob",
     {Rule("secret/*", R"("read", "sudo")") + Rule("secret/data/*", R"("deny")")},
     "secret/data/x",
     kDeny},
    {"deny in chosen + rule",
     {Rule("secret/*", R"("read")") + Rule("secret/+/private", R"("deny")")},
     "secret/a/private",
     kDeny},
    {"deny in chosen exact",
     {Rule("secret/*", R"("sudo")") + Rule("secret/x", R"("deny")")},
     "secret/x",
     kDeny},
    // 1: merge across policies by identical pattern.
    {"merge unions",
     {Rule("secret/x", R"("read")"), Rule("secret/x", R"("update")")},
     "secret/x",
     kRead | kUpdate},
    {"merge: deny wins",
     {Rule("secret/x", R"("read", "sudo")"), Rule("secret/x", R"("deny")")},
     "secret/x",
     kDeny},
    {"merge: deny wins regardless of order",
     {Rule("secret/x", R"("deny")"), Rule("secret/x", R"("sudo")")},
     "secret/x",
     kDeny},
    {"merge within one policy",
     {Rule("secret/*", R"("read")") + Rule("secret/*", R"("list")")},
     "secret/y",
     kRead | kList},
    {"merge + rules",
     {Rule("a/+/c", R"("read")"), Rule("a/+/c", R"("patch")")},
     "a/b/c",
     kRead | kPatch},
    {"different patterns never unioned",
     {Rule("secret/x", R"("read")"), Rule("secret/x*", R"("update")")},
     "secret/x",
     kRead},
    {"different patterns never unioned (glob)",
     {Rule("secret/x", R"("read")"), Rule("secret/x*", R"("update")")},
     "secret/xy",
     kUpdate},
    // §7.2 '+' segment count.
    {"+ one segment", {Rule("secret/+/teamb", R"("read")")}, "secret/a/teamb", kRead},
    {"+ not two segments", {Rule("secret/+/teamb", R"("read")")}, "secret/a/b/teamb", 0},
    {"+ not zero segments", {Rule("secret/+/teamb", R"("read")")}, "secret/teamb", 0},
    {"+ segment count includes trailing slash",
     {Rule("secret/+/teamb", R"("read")")},
     "secret/a/teamb/",
     0},
    {"+ alone", {Rule("+", R"("read")")}, "secret", kRead},
    {"+ alone, one segment only", {Rule("+", R"("read")")}, "secret/a", 0},
    {"leading +", {Rule("+/data/x", R"("read")")}, "kv/data/x", kRead},
    {"trailing +", {Rule("secret/+", R"("read")")}, "secret/a", kRead},
    {"trailing + matches an empty LIST segment", {Rule("secret/+", R"("list")")}, "secret/", kList},
    // '+' with a trailing '*'.
    {"+ then *", {Rule("secret/+/foo/*", R"("read")")}, "secret/a/foo/x/y", kRead},
    {"+ then *: LIST of the folder", {Rule("secret/+/foo/*", R"("list")")}, "secret/a/foo/", kList},
    {"+ then *: needs the slash", {Rule("secret/+/foo/*", R"("read")")}, "secret/a/foo", 0},
    {"+ then *: segment count", {Rule("secret/+/foo/*", R"("read")")}, "secret/a/b/foo/x", 0},
    {"+ then partial *", {Rule("secret/+/fo*", R"("read")")}, "secret/a/foo/bar", kRead},
    {"+ then partial *: prefix must match", {Rule("secret/+/fo*", R"("read")")}, "secret/a/f", 0},
    // 2c rule 1: first wildcard or glob earlier => lower priority.
    {"rule 1: glob later beats + earlier",
     {Rule("secret/a/*", R"("read")") + Rule("secret/+/foo", R"("update")")},
     "secret/a/foo",
     kRead},
    {"rule 1: + later beats + earlier",
     {Rule("foo/bar/+/baz", R"("read")") + Rule("foo/+/bar/baz", R"("update")")},
     "foo/bar/bar/baz",
     kRead},
    {"rule 1: + later beats glob earlier",
     {Rule("secret/*", R"("read")") + Rule("secret/a/+", R"("update")")},
     "secret/a/b",
     kUpdate},
    // Rule 2: ending in '*' => lower.
    {"rule 2: + beats glob at the same position",
     {Rule("foo/*", R"("read")") + Rule("foo/+", R"("update")")},
     "foo/bar",
     kUpdate},
    {"rule 2: + rule without * beats + rule with *",
     {Rule("foo/+/bar", R"("read")") + Rule("foo/+/ba*", R"("update")")},
     "foo/x/bar",
     kRead},
    {"rule 2: glob vs + rule, same position",
     {Rule("secret/*", R"("update")") + Rule("secret/+/foo", R"("read")")},
     "secret/a/foo",
     kRead},
    {"rule 2: glob still applies where + does not match",
     {Rule("secret/*", R"("update")") + Rule("secret/+/foo", R"("read")")},
     "secret/a/bar",
     kUpdate},
    // Rule 3: more '+' segments => lower. Vault's documented example.
    {"rule 3: secret/* beats secret/+/+/foo/*",
     {Rule("secret/*", R"("read")") + Rule("secret/+/+/foo/*", R"("update")")},
     "secret/a/b/foo/c",
     kRead},
    {"rule 3: fewer + wins",
     {Rule("a/+/+/c", R"("read")") + Rule("a/+/b/c", R"("update")")},
     "a/x/b/c",
     kUpdate},
    // Rule 4: shorter => lower.
    {"rule 4: longer prefix segment wins",
     {Rule("foo/+/bar/ba*", R"("read")") + Rule("foo/+/bar/b*", R"("update")")},
     "foo/x/bar/baz",
     kRead},
    {"rule 4: longer + rule wins",
     {Rule("a/+/bc*", R"("read")") + Rule("a/+/b*", R"("update")")},
     "a/x/bcd",
     kRead},
    // Rule 5: lexicographically smaller => lower ("a/+/c/+" > "a/+/+/d": 'c' > '+').
    {"rule 5: lexicographically larger wins",
     {Rule("a/+/c/+", R"("read")") + Rule("a/+/+/d", R"("update")")},
     "a/x/c/d",
     kRead},
    {"rule 5: independent of capabilities",
     {Rule("a/+/c/+", R"("update")") + Rule("a/+/+/d", R"("read")")},
     "a/x/c/d",
     kUpdate},
    // 2d: nothing matches.
    {"no rule", {Rule("secret/*", R"("read")")}, "transit/keys/k", 0},
    {"empty policy set", {}, "secret/x", 0},
    {"rule granting nothing blocks fall-through",
     {Rule("secret/*", R"("read")") + Rule("secret/data/*", "")},
     "secret/data/x",
     0},
    // Request paths never start with '/', but stripping one is harmless.
    {"leading slash in request", {Rule("secret/foo", R"("read")")}, "/secret/foo", kRead},
    // Longest-prefix structure with nested and sibling prefixes.
    {"nested globs 1",
     {Rule("a*", "\"create\"") + Rule("ab*", "\"read\"") + Rule("abc*", "\"update\"") +
      Rule("abd*", "\"patch\"") + Rule("b*", "\"delete\"")},
     "abcz",
     kUpdate},
    {"nested globs 2",
     {Rule("a*", "\"create\"") + Rule("ab*", "\"read\"") + Rule("abc*", "\"update\"") +
      Rule("abd*", "\"patch\"") + Rule("b*", "\"delete\"")},
     "abx",
     kRead},
    {"nested globs 3",
     {Rule("a*", "\"create\"") + Rule("ab*", "\"read\"") + Rule("abc*", "\"update\"") +
      Rule("abd*", "\"patch\"") + Rule("b*", "\"delete\"")},
     "ac",
     kCreate},
    {"nested globs 4",
     {Rule("a*", "\"create\"") + Rule("ab*", "\"read\"") + Rule("abc*", "\"update\"") +
      Rule("abd*", "\"patch\"") + Rule("b*", "\"delete\"")},
     "abdzz",
     kPatch},
    {"nested globs 5",
     {Rule("a*", "\"create\"") + Rule("ab*", "\"read\"") + Rule("abc*", "\"update\"") +
      Rule("abd*", "\"patch\"") + Rule("b*", "\"delete\"")},
     "c",
     0},
};

INSTANTIATE_TEST_SUITE_P(Priority, LookupTest, ::testing::ValuesIn(kLookupCases));

TEST(AclTest, RootAllowsEverything) {
  const Acl root = Acl::Root();
  EXPECT_TRUE(root.is_root());
  EXPECT_EQ(root.Capabilities("sys/auth/x"), kAll);
  EXPECT_TRUE(root.Allows("sys/audit", kUpdate, /*needs_sudo=*/true));
  EXPECT_TRUE(root.AnyCapabilityUnder("anything/"));
  EXPECT_FALSE(CompileHcl({Rule("*", R"("sudo")")}).is_root());
}

TEST(AclTest, DefaultConstructedAclDeniesEverything) {
  const Acl acl;
  EXPECT_FALSE(acl.is_root());
  EXPECT_EQ(acl.Capabilities("secret/x"), 0u);
  EXPECT_FALSE(acl.Allows("secret/x", kRead, false));
  EXPECT_FALSE(acl.AnyCapabilityUnder("secret/"));
}

TEST(AclTest, CompileSkipsNullPolicies) {
  const Policy* set[] = {nullptr};
  EXPECT_EQ(Acl::Compile(set).Capabilities("x"), 0u);
}

TEST(AclTest, Allows) {
  const Acl acl =
      CompileHcl({Rule("sys/auth/*", R"("create", "update", "sudo")") +
                  Rule("secret/*", R"("read", "update")") + Rule("secret/denied", R"("deny")")});
  EXPECT_TRUE(acl.Allows("secret/x", kRead, false));
  EXPECT_FALSE(acl.Allows("secret/x", kDelete, false));
  EXPECT_FALSE(acl.Allows("secret/x", kRead, /*needs_sudo=*/true));
  EXPECT_TRUE(acl.Allows("sys/auth/approle", kUpdate, /*needs_sudo=*/true));
  EXPECT_FALSE(acl.Allows("sys/auth/approle", kRead, /*needs_sudo=*/true));
  EXPECT_FALSE(acl.Allows("secret/denied", kRead, false));
  EXPECT_FALSE(acl.Allows("secret/denied", kDeny, false));
  EXPECT_FALSE(acl.Allows("transit/x", kRead, false));
  EXPECT_FALSE(acl.Allows("secret/x", 0, false));
}

TEST(AclTest, AnyCapabilityUnder) {
  struct Case {
    const char* what;
    std::string policy;
    const char* prefix;
    bool want;
  };
  const Case cases[] = {
      {"exact rule under the mount", Rule("secret/data/foo", R"("read")"), "secret/", true},
      {"other mount", Rule("secret/data/foo", R"("read")"), "transit/", false},
      {"glob under the mount", Rule("secret/data/*", R"("list")"), "secret/", true},
      {"glob covering the mount", Rule("secr*", R"("read")"), "secret/", true},
      {"star covers everything", Rule("*", R"("read")"), "kv/", true},
      {"only deny under the mount", Rule("secret/*", R"("deny")"), "secret/", false},
      {"only deny and nothing", Rule("secret/a", R"("deny")") + Rule("secret/b", ""), "secret/",
       false},
      {"shadowed covering glob", Rule("*", R"("read")") + Rule("secret/*", R"("deny")"), "secret/",
       false},
      {"covering glob, exact deny on the mount",
       Rule("*", R"("read")") + Rule("secret/", R"("deny")"), "secret/", true},
      {"mount path without slash (LIST rule)", Rule("secret", R"("list")"), "secret/", true},
      {"+ in the first segment", Rule("+/data/*", R"("read")"), "secret/", true},
      {"+ rule with literal tail", Rule("auth/+/login", R"("update")"), "auth/approle/", true},
      {"+ rule, shorter prefix", Rule("auth/+/login", R"("update")"), "auth/", true},
      {"+ rule, other mount", Rule("auth/+/login", R"("update")"), "sys/", false},
      {"+ rule, mismatch after +", Rule("a/+/login", R"("update")"), "a/x/logout/", false},
      {"+ rule too short for the mount", Rule("+", R"("read")"), "secret/", false},
      {"+ rule ending in a prefix segment", Rule("+/da*", R"("read")"), "kv/data/", true},
      {"+ rule ending in a prefix segment, mismatch", Rule("+/da*", R"("read")"), "kv/meta/",
       false},
      {"+ rule deny", Rule("+/data/*", R"("deny")"), "secret/", false},
      {"partial last segment", Rule("secret/+/foo", R"("read")"), "secret/x/fo", true},
      {"partial last segment mismatch", Rule("secret/+/foo", R"("read")"), "secret/x/ba", false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(CompileHcl({c.policy}).AnyCapabilityUnder(c.prefix), c.want) << c.what;
  }
}

// ---------------------------------------------------------------------------------------------
// Brute force: a direct transcription of Vault's ACL.AllowOperation for reference §7.3 (linear
// scans, strings split into vectors), compared with the compiled ACL on random rule sets.

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t slash = s.find('/', start);
    parts.push_back(
        s.substr(start, slash == std::string::npos ? std::string::npos : slash - start));
    if (slash == std::string::npos) return parts;
    start = slash + 1;
  }
}

struct Candidate {
  std::size_t first_wildcard;
  bool is_prefix;
  std::size_t wildcards;
  std::string body;
  std::uint32_t caps;
};

bool Less(const Candidate& a, const Candidate& b) {
  if (a.first_wildcard != b.first_wildcard) return a.first_wildcard < b.first_wildcard;
  if (a.is_prefix != b.is_prefix) return a.is_prefix;
  if (a.wildcards != b.wildcards) return a.wildcards > b.wildcards;
  if (a.body.size() != b.body.size()) return a.body.size() < b.body.size();
  return a.body < b.body;
}

std::uint32_t BruteForce(const std::vector<PathRule>& merged, std::string path) {
  while (!path.empty() && path.front() == '/') path.erase(0, 1);
  auto has_plus_segment = [](const std::string& pattern) {
    std::string body = pattern;
    if (!body.empty() && body.back() == '*') body.pop_back();
    for (const std::string& segment : Split(body)) {
      if (segment == "+") return true;
    }
    return false;
  };
  for (const PathRule& r : merged) {
    if (!has_plus_segment(r.pattern) && (r.pattern.empty() || r.pattern.back() != '*') &&
        r.pattern == path) {
      return r.capabilities;
    }
  }
  if (!path.empty() && path.back() == '/') {
    const std::string trimmed = path.substr(0, path.size() - 1);
    for (const PathRule& r : merged) {
      if (!has_plus_segment(r.pattern) && (r.pattern.empty() || r.pattern.back() != '*') &&
          r.pattern == trimmed) {
        return r.capabilities;
      }
    }
  }
  std::vector<Candidate> candidates;
  std::optional<Candidate> longest_glob;
  for (const PathRule& r : merged) {
    if (has_plus_segment(r.pattern) || r.pattern.empty() || r.pattern.back() != '*') continue;
    const std::string prefix = r.pattern.substr(0, r.pattern.size() - 1);
    if (path.rfind(prefix, 0) == 0 &&
        (!longest_glob || prefix.size() > longest_glob->body.size())) {
      longest_glob = Candidate{prefix.size(), true, 0, prefix, r.capabilities};
    }
  }
  if (longest_glob) candidates.push_back(*longest_glob);
  const std::vector<std::string> path_parts = Split(path);
  for (const PathRule& r : merged) {
    if (!has_plus_segment(r.pattern)) continue;
    Candidate c{0, false, 0, r.pattern, r.capabilities};
    if (c.body.back() == '*') {
      c.is_prefix = true;
      c.body.pop_back();
    }
    c.first_wildcard = c.body.find('+');
    const std::vector<std::string> rule_parts = Split(c.body);
    if (path_parts.size() < rule_parts.size()) continue;
    if (!c.is_prefix && path_parts.size() != rule_parts.size()) continue;
    bool match = true;
    for (std::size_t i = 0; i < rule_parts.size() && match; ++i) {
      if (rule_parts[i] == "+") {
        ++c.wildcards;
      } else if (rule_parts[i] != path_parts[i]) {
        match =
            c.is_prefix && i + 1 == rule_parts.size() && path_parts[i].rfind(rule_parts[i], 0) == 0;
      }
    }
    if (match) candidates.push_back(c);
  }
  if (candidates.empty()) return 0;
  return std::max_element(candidates.begin(), candidates.end(), Less)->caps;
}

TEST(AclTest, MatchesBruteForceOnRandomRuleSets) {
  std::mt19937 rng(20240611);
  const std::vector<std::string> segments = {"a", "b", "ab", "+", "", "ba"};
  auto random_path = [&](bool allow_plus) {
    std::string s;
    const int n = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < n; ++i) {
      std::string seg = segments[rng() % segments.size()];
      if (!allow_plus && seg == "+") seg = "b";
      s += (i ? "/" : "") + seg;
    }
    if (rng() % 4 == 0) s += "/";
    return s;
  };
  const std::uint32_t kCapsPool[] = {kRead, kUpdate, kList, kSudo, kDeny, kCreate, kPatch, 0};
  for (int round = 0; round < 300; ++round) {
    std::vector<Policy> policies(1 + rng() % 3);
    for (Policy& p : policies) {
      const int rules = static_cast<int>(rng() % 10);
      for (int i = 0; i < rules; ++i) {
        std::string pattern = random_path(/*allow_plus=*/true);
        if (rng() % 2 == 0 && !pattern.ends_with("+")) pattern += "*";
        if (pattern.find("+*") != std::string::npos) continue;
        p.rules.push_back({pattern, kCapsPool[rng() % std::size(kCapsPool)]});
      }
    }
    std::vector<const Policy*> set;
    std::map<std::string, std::uint32_t> merged_map;
    for (const Policy& p : policies) {
      set.push_back(&p);
      for (const PathRule& r : p.rules) {
        std::uint32_t& caps = merged_map[r.pattern];
        caps |= r.capabilities;
        if (caps & kDeny) caps = kDeny;
      }
    }
    std::vector<PathRule> merged;
    for (const auto& [pattern, caps] : merged_map) merged.push_back({pattern, caps});
    const Acl acl = Acl::Compile(set);
    for (int q = 0; q < 50; ++q) {
      const std::string path = random_path(/*allow_plus=*/false);
      ASSERT_EQ(acl.Capabilities(path), BruteForce(merged, path))
          << "round " << round << " path " << path;
    }
  }
}

}  // namespace
}  // namespace lockbox::policy
