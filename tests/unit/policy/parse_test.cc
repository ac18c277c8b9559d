// ParsePolicy: HCL subset, JSON, base64, and every refused form (reference §7.1, §7.2).
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "crypto/encoding.h"
#include "policy/policy.h"

namespace lockbox::policy {
namespace {

Policy MustParse(std::string_view text, std::string_view name = "p") {
  StatusOr<Policy> policy = ParsePolicy(name, text);
  EXPECT_TRUE(policy.ok()) << policy.status().ToString() << "\n" << text;
  return policy.ok() ? *policy : Policy{};
}

// The message of the INVALID_ARGUMENT that `text` must produce.
std::string ErrorOf(std::string_view text) {
  StatusOr<Policy> policy = ParsePolicy("p", text);
  EXPECT_FALSE(policy.ok()) << "accepted: " << text;
  if (policy.ok()) return "";
  EXPECT_EQ(policy.status().code(), StatusCode::kInvalidArgument) << policy.status().ToString();
  return policy.status().message();
}

std::string Base64(std::string_view text) { return crypto::Base64Encode(crypto::AsBytes(text)); }

TEST(ParsePolicyTest, HclBlocksAndCapabilities) {
  const Policy p = MustParse(R"(
path "secret/data/*" { capabilities = ["create", "read", "update", "patch", "delete", "list"] }
path "secret/+/teamb" {
  capabilities = ["read"]
}
path "sys/auth/*" { capabilities = ["create", "sudo"], }
)");
  ASSERT_EQ(p.rules.size(), 3u);
  EXPECT_EQ(p.rules[0].pattern, "secret/data/*");
  EXPECT_EQ(p.rules[0].capabilities, kCreate | kRead | kUpdate | kPatch | kDelete | kList);
  EXPECT_EQ(p.rules[1].pattern, "secret/+/teamb");
  EXPECT_EQ(p.rules[1].capabilities, kRead);
  EXPECT_EQ(p.rules[2].capabilities, kCreate | kSudo);
}

TEST(ParsePolicyTest, CommentsOfAllThreeKinds) {
  const Policy p = MustParse(R"(# hash comment
// slash comment
/* block
   comment spanning "lines" { } */
path "a" { /* inline */ capabilities = ["read"] } # trailing
path "b" { capabilities = [ // inside a list
  "update" ] }
)");
  ASSERT_EQ(p.rules.size(), 2u);
  EXPECT_EQ(p.rules[0].capabilities, kRead);
  EXPECT_EQ(p.rules[1].capabilities, kUpdate);
}

TEST(ParsePolicyTest, LegacyPolicyForms) {
  struct Case {
    const char* legacy;
    std::uint32_t want;
  };
  const Case cases[] = {
      {"deny", kDeny},
      {"read", kRead | kList},
      {"write", kCreate | kRead | kUpdate | kDelete | kList},
      {"sudo", kCreate | kRead | kUpdate | kDelete | kList | kSudo},
  };
  for (const Case& c : cases) {
    const Policy p = MustParse(std::string("path \"sys\" { policy = \"") + c.legacy + "\" }");
    ASSERT_EQ(p.rules.size(), 1u);
    EXPECT_EQ(p.rules[0].capabilities, c.want) << c.legacy;
  }
  // Legacy and capabilities together add up, as in Vault; deny still wins.
  EXPECT_EQ(
      MustParse(R"(path "a" { policy = "read" capabilities = ["update"] })").rules[0].capabilities,
      kRead | kList | kUpdate);
  EXPECT_EQ(
      MustParse(R"(path "a" { policy = "deny" capabilities = ["update"] })").rules[0].capabilities,
      kDeny);
  EXPECT_EQ(ErrorOf(R"(path "sys" { policy = "admin" })"),
            R"(failed to parse policy: path "sys": invalid policy "admin")");
}

TEST(ParsePolicyTest, DenyReplacesEverythingElse) {
  EXPECT_EQ(
      MustParse(R"(path "a" { capabilities = ["read", "deny", "sudo"] })").rules[0].capabilities,
      kDeny);
}

TEST(ParsePolicyTest, NameAndCommentKeysAreAllowed) {
  const Policy p = MustParse(R"(
name = "ignored"
path "a" {
  comment = "who needs this"
  capabilities = ["read"]
}
)",
                             "MyPolicy");
  EXPECT_EQ(p.name, "mypolicy");
  ASSERT_EQ(p.rules.size(), 1u);
  EXPECT_EQ(p.rules[0].capabilities, kRead);
}

TEST(ParsePolicyTest, EmptyCapabilitiesIsARuleGrantingNothing) {
  const Policy p = MustParse(R"(path "a" { capabilities = [] })");
  ASSERT_EQ(p.rules.size(), 1u);
  EXPECT_EQ(p.rules[0].capabilities, 0u);
}

TEST(ParsePolicyTest, LeadingSlashIsStripped) {
  const Policy p = MustParse(R"(path "/secret/*" { capabilities = ["read"] })");
  EXPECT_EQ(p.rules[0].pattern, "secret/*");
}

TEST(ParsePolicyTest, StringEscapes) {
  const Policy p = MustParse(R"(path "a\"b\\c\u00e9" { capabilities = ["read"] })");
  EXPECT_EQ(p.rules[0].pattern, "a\"b\\c\xc3\xa9");
}

TEST(ParsePolicyTest, RawTextIsKeptVerbatim) {
  const std::string text = "# keep me\npath \"a\" {\n  capabilities = [\"read\"]\n}\n";
  EXPECT_EQ(MustParse(text).raw, text);
}

TEST(ParsePolicyTest, Json) {
  const std::string text =
      R"({"path": {"secret/data/*": {"capabilities": ["read"]}, "sys": {"policy": "deny"}}})";
  const Policy p = MustParse(text);
  ASSERT_EQ(p.rules.size(), 2u);
  EXPECT_EQ(p.rules[0].pattern, "secret/data/*");
  EXPECT_EQ(p.rules[0].capabilities, kRead);
  EXPECT_EQ(p.rules[1].pattern, "sys");
  EXPECT_EQ(p.rules[1].capabilities, kDeny);
  EXPECT_EQ(p.raw, text);
}

TEST(ParsePolicyTest, JsonAsHvacSendsIt) {
  // hvac json.dumps(..., indent=4) of a dict policy.
  const Policy p = MustParse(
      "{\n    \"path\": {\n        \"transit/encrypt/k\": {\n            \"capabilities\": [\n"
      "                \"update\"\n            ]\n        }\n    }\n}");
  ASSERT_EQ(p.rules.size(), 1u);
  EXPECT_EQ(p.rules[0].capabilities, kUpdate);
}

TEST(ParsePolicyTest, JsonDuplicatePatternsAreKeptNotOverwritten) {
  // A JSON library keeping only the last key would turn this deny into read.
  const Policy p =
      MustParse(R"({"path": {"a": {"capabilities": ["deny"]}, "a": {"capabilities": ["read"]}}})");
  ASSERT_EQ(p.rules.size(), 2u);
  const Policy* set[] = {&p};
  EXPECT_EQ(Acl::Compile(set).Capabilities("a"), kDeny);
}

TEST(ParsePolicyTest, Base64OfHclAndJson) {
  const std::string hcl = R"(path "a" { capabilities = ["read"] })";
  const Policy from_hcl = MustParse(Base64(hcl));
  ASSERT_EQ(from_hcl.rules.size(), 1u);
  EXPECT_EQ(from_hcl.rules[0].capabilities, kRead);
  EXPECT_EQ(from_hcl.raw, hcl);  // Vault stores the decoded text

  const std::string json = R"({"path": {"b": {"capabilities": ["list"]}}})";
  const Policy from_json = MustParse(Base64(json));
  ASSERT_EQ(from_json.rules.size(), 1u);
  EXPECT_EQ(from_json.rules[0].capabilities, kList);

  // Line-wrapped base64 (as `base64` prints it) is accepted, like Go's decoder does.
  std::string wrapped = Base64(std::string(200, ' ') + hcl);
  for (std::size_t i = 76; i < wrapped.size(); i += 77) wrapped.insert(i, "\n");
  EXPECT_EQ(MustParse(wrapped).rules.size(), 1u);
}

TEST(ParsePolicyTest, Base64OfGarbageIsRefused) {
  EXPECT_FALSE(ParsePolicy("p", Base64("\xff\xfe not utf-8")).ok());
  EXPECT_FALSE(ParsePolicy("p", Base64("path \"a\" {")).ok());
}

TEST(ParsePolicyTest, InvalidCapabilityMessage) {
  EXPECT_EQ(ErrorOf(R"(path "x" { capabilities = ["reed"] })"),
            R"(failed to parse policy: path "x": invalid capability "reed")");
  EXPECT_EQ(ErrorOf(R"({"path": {"x": {"capabilities": ["y"]}}})"),
            R"(failed to parse policy: path "x": invalid capability "y")");
  // Case matters, as in Vault.
  EXPECT_NE(ErrorOf(R"(path "x" { capabilities = ["Read"] })").find("invalid capability"),
            std::string::npos);
}

TEST(ParsePolicyTest, UnknownKeysAreRefused) {
  EXPECT_EQ(ErrorOf("path \"a\" { capabilities = [\"read\"] }\nfoo = \"bar\"\n"),
            R"(failed to parse policy: invalid key "foo" on line 2)");
  EXPECT_EQ(ErrorOf("path \"a\" {\n  capabilites = [\"read\"]\n}"),
            R"(failed to parse policy: path "a": invalid key "capabilites" on line 2)");
  EXPECT_NE(
      ErrorOf(R"({"path": {"a": {"capabilities": ["read"], "x": 1}}})").find(R"(invalid key "x")"),
      std::string::npos);
  EXPECT_NE(ErrorOf(R"({"paths": {}})").find(R"(invalid key "paths")"), std::string::npos);
  // Keys are case-sensitive (Vault's CheckHCLKeys).
  EXPECT_NE(ErrorOf(R"(PATH "a" { capabilities = ["read"] })").find(R"(invalid key "PATH")"),
            std::string::npos);
}

TEST(ParsePolicyTest, ParameterConstraintsAndWrappingTtlsAreRefused) {
  const char* const kRefused[] = {
      R"(allowed_parameters = { "plaintext" = [] })",
      R"(denied_parameters = { "*" = [] })",
      R"(required_parameters = ["name"])",
      R"(min_wrapping_ttl = "1m")",
      R"(max_wrapping_ttl = "1h")",
      R"(mfa_methods = ["totp"])",
      R"(control_group = { factor "x" { identity { group_names = ["g"] } } })",
  };
  for (const char* entry : kRefused) {
    const std::string key(entry, std::string_view(entry).find(' '));
    const std::string message = ErrorOf(std::string("path \"transit/encrypt/k\" {\n") +
                                        "  capabilities = [\"update\"]\n  " + entry + "\n}");
    EXPECT_NE(message.find(R"(path "transit/encrypt/k": )" + key + " is not supported"),
              std::string::npos)
        << message;
    EXPECT_NE(message.find("refused"), std::string::npos) << message;
  }
  EXPECT_NE(
      ErrorOf(R"({"path": {"a": {"capabilities": ["read"], "allowed_parameters": {"x": []}}}})")
          .find("allowed_parameters is not supported"),
      std::string::npos);
}

TEST(ParsePolicyTest, WildcardMisuseIsRefused) {
  EXPECT_EQ(
      ErrorOf(R"(path "secret/+*" { capabilities = ["read"] })"),
      R"(failed to parse policy: path "secret/+*": invalid use of wildcards ('+*' is forbidden))");
  EXPECT_NE(ErrorOf(R"(path "a/+*/b" { capabilities = ["read"] })").find("'+*' is forbidden"),
            std::string::npos);
  for (const char* pattern : {"secret/a+b", "secret/+foo", "foo+/bar", "+a", "a/++/b", "a/+b*"}) {
    EXPECT_NE(ErrorOf(std::string("path \"") + pattern + "\" { capabilities = [\"read\"] }")
                  .find("must be a whole path segment"),
              std::string::npos)
        << pattern;
  }
  // Whole-segment forms are fine, '*' in the middle is a literal.
  for (const char* pattern : {"+", "+/a", "a/+", "a/+/b", "a/+/*", "a/+/b*", "*", "a/*/b"}) {
    EXPECT_TRUE(
        ParsePolicy("p", std::string("path \"") + pattern + "\" { capabilities = [] }").ok())
        << pattern;
  }
}

TEST(ParsePolicyTest, TemplatedPathsAreRefused) {
  EXPECT_EQ(
      ErrorOf(R"(path "identity/entity/id/{{identity.entity.id}}" { capabilities = ["read"] })"),
      R"(failed to parse policy: path "identity/entity/id/{{identity.entity.id}}": )"
      "templated policy paths are not supported");
}

TEST(ParsePolicyTest, MalformedStructureIsRefused) {
  const char* const kBad[] = {
      R"(path "a" "b" { capabilities = ["read"] })",                      // two labels
      R"(path = "a")",                                                    // not a block
      R"(path { capabilities = ["read"] })",                              // no pattern
      R"(path "a" { capabilities = "read" })",                            // not a list
      R"(path "a" { capabilities = ["read", 1] })",                       // not strings
      R"(path "a" { policy = ["read"] })",                                // not a string
      R"(path "a" { capabilities = ["read"] capabilities = ["list"] })",  // duplicate key
      R"(path "a" = { capabilities = ["read"] })",                        // '=' after labels
      R"(path "/" { capabilities = ["read"] })",                          // empty pattern
      R"(path "a" { capabilities ["read"] })",                            // missing '='
      R"(path "a" { capabilities = ["read" "list"] })",                   // missing comma
      R"(path "a" { capabilities = [read] })",                            // unquoted
      R"(path "a" { capabilities = ["read"] )",                           // missing '}'
      R"(path "a { capabilities = ["read"] })",                           // unterminated string
      "path \"a\nb\" { }",                                                // newline in string
      R"(path "a" { capabilities = ["\q"] })",                            // bad escape
      R"(path "a" { capabilities = ["\ud800"] })",                        // surrogate escape
      "/* unterminated",                                                  // comment
      "path \"a\" { comment = <<EOF\nx\nEOF\n }",                         // heredoc
      "path \"a\" { } }",                                                 // stray brace
      "path \"a\" { } ;",                                                 // stray character
      R"({"path": {"a": {"capabilities": ["read"]}})",                    // JSON: missing brace
      R"({"path": {"a": {"capabilities": ["read"],}}})",                  // JSON: trailing comma
      R"({"path": [{"a": {}}]})",                                         // JSON: path as a list
      R"({"path": {"a": "read"}})",  // JSON: body not an object
      "path \"\xc3\x28\" { }",       // invalid UTF-8
  };
  for (const char* text : kBad) {
    const std::string message = ErrorOf(text);
    EXPECT_TRUE(message.starts_with("failed to parse policy: ")) << text << " -> " << message;
  }
}

TEST(ParsePolicyTest, SyntaxErrorsCarryTheLine) {
  EXPECT_EQ(ErrorOf("path \"a\" {\n  capabilities = [\"read\"]\n  x\n}"),
            "failed to parse policy: line 4: expected '=' or '{' after \"x\", found '}'");
}

TEST(ParsePolicyTest, EmptyAndOversizedInputs) {
  EXPECT_EQ(ErrorOf(""), "'policy' parameter not supplied or empty");
  EXPECT_NE(ErrorOf(std::string(2 << 20, ' ')).find("larger than"), std::string::npos);
  // Whitespace and comments only: a valid policy with no rules (as in Vault).
  EXPECT_TRUE(MustParse("  # nothing\n").rules.empty());
}

TEST(ParsePolicyTest, NestingIsBounded) {
  const std::string deep_hcl = "path \"a\" { comment = " + std::string(10000, '[') + " }";
  EXPECT_NE(ErrorOf(deep_hcl).find("nesting deeper than"), std::string::npos);
  const std::string deep_json =
      "{\"name\": " + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_NE(ErrorOf(deep_json).find("nesting deeper than"), std::string::npos);
  // Moderate nesting in an ignored value is fine.
  EXPECT_TRUE(ParsePolicy("p", "name = [[[[\"x\"]]]]").ok());
}

TEST(CapabilityNamesTest, RoundTripAndOrder) {
  for (const char* name : {"create", "read", "update", "patch", "delete", "list", "sudo", "deny"}) {
    const std::uint32_t bit = CapabilityFromName(name);
    EXPECT_NE(bit, 0u) << name;
    EXPECT_EQ(CapabilityNames(bit), std::vector<std::string>{name});
  }
  EXPECT_EQ(CapabilityFromName("root"), 0u);
  EXPECT_EQ(CapabilityFromName("READ"), 0u);
  EXPECT_EQ(CapabilityFromName(""), 0u);
  EXPECT_EQ(CapabilityNames(kSudo | kList | kCreate | kRead),
            (std::vector<std::string>{"create", "read", "list", "sudo"}));
  EXPECT_EQ(CapabilityNames(0), std::vector<std::string>{"deny"});
  EXPECT_EQ(CapabilityNames(kDeny | kRead), std::vector<std::string>{"deny"});
}

TEST(DefaultPolicyTest, ParsesAndGrantsWhatClientsNeed) {
  const Policy policy = MustParse(DefaultPolicyText(), "default");
  const Policy* set[] = {&policy};
  const Acl acl = Acl::Compile(set);
  for (const char* path :
       {"auth/token/renew-self", "auth/token/revoke-self", "sys/capabilities-self",
        "sys/leases/renew", "sys/leases/lookup", "sys/wrapping/wrap", "sys/wrapping/lookup",
        "sys/wrapping/unwrap", "sys/tools/hash", "sys/tools/hash/sha2-256"}) {
    EXPECT_EQ(acl.Capabilities(path), kUpdate) << path;
  }
  EXPECT_EQ(acl.Capabilities("auth/token/lookup-self"), kRead);
  EXPECT_EQ(acl.Capabilities("sys/internal/ui/resultant-acl"), kRead);
  EXPECT_EQ(acl.Capabilities("cubbyhole/my/secret"), kCreate | kRead | kUpdate | kDelete | kList);
  EXPECT_EQ(acl.Capabilities("cubbyhole/"), kCreate | kRead | kUpdate | kDelete | kList);
  // Nothing beyond that.
  for (const char* path : {"auth/token/create", "auth/token/lookup", "secret/data/x", "sys/mounts",
                           "sys/policy/default", "sys/wrapping/rewrap", "sys/leases/revoke"}) {
    EXPECT_EQ(acl.Capabilities(path), 0u) << path;
  }
}

}  // namespace
}  // namespace lockbox::policy
