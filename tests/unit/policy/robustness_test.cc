// Hostile input: random bytes and mutations of valid policies must either parse or fail with
// INVALID_ARGUMENT, never crash, hang or return another code; whatever parses must compile and
// answer lookups. Deterministic seeds, so a failure reproduces.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "crypto/encoding.h"
#include "policy/policy.h"

namespace lockbox::policy {
namespace {

const std::vector<std::string>& Corpus() {
  static const std::vector<std::string> corpus = {
      std::string(DefaultPolicyText()),
      R"(path "secret/data/*" { capabilities = ["create", "read", "update", "patch", "delete", "list"] }
path "secret/+/teamb" { capabilities = ["read"] }
path "sys" { policy = "deny" }   # legacy
/* block */ path "transit/+/k*" { capabilities = ["update"], comment = "c" }
// line comment
name = "x")",
      R"({"path": {"secret/data/*": {"capabilities": ["read"]}, "sys": {"policy": "deny"}}})",
      R"({"name": "n", "path": {"a/+/b/*": {"capabilities": ["list", "sudo"], "comment": [1, 2.5e3, true, null]}}})",
  };
  return corpus;
}

// Parses `text`; on success compiles it and asks a few questions. Fails the test on any outcome
// other than OK or INVALID_ARGUMENT.
void Exercise(const std::string& text) {
  StatusOr<Policy> policy = ParsePolicy("fuzz", text);
  if (!policy.ok()) {
    ASSERT_EQ(policy.status().code(), StatusCode::kInvalidArgument) << policy.status().ToString();
    ASSERT_FALSE(policy.status().message().empty());
    return;
  }
  const Policy* set[] = {&*policy};
  const Acl acl = Acl::Compile(set);
  for (const PathRule& rule : policy->rules) {
    (void)acl.Capabilities(rule.pattern);
    (void)acl.Capabilities(rule.pattern + "/x/");
    (void)acl.AnyCapabilityUnder(rule.pattern);
  }
  (void)acl.Capabilities("secret/data/x");
  (void)acl.AnyCapabilityUnder("secret/");
}

TEST(RobustnessTest, RandomBytes) {
  std::mt19937 rng(1);
  for (int i = 0; i < 3000; ++i) {
    std::string text(rng() % 200, '\0');
    for (char& c : text) c = static_cast<char>(rng());
    Exercise(text);
    // Also as base64, which ParsePolicy decodes first.
    Exercise(crypto::Base64Encode(crypto::AsBytes(text)));
  }
}

TEST(RobustnessTest, RandomTokenSoup) {
  // Sequences of policy-language tokens reach much deeper into the parser than random bytes.
  const std::vector<std::string> tokens = {
      "path",        "\"a/+/b\"", "\"secret/*\"", "{",      "}",        "[",        "]",
      "=",           ",",         "capabilities", "policy", "\"read\"", "\"deny\"", "\"write\"",
      "comment",     "name",      "#c\n",         "//c\n",  "/*c*/",    "\n",       " ",
      "1",           "-2.5e3",    "true",         "null",   ":",        "\"",       "\\",
      "\"\\u00e9\"", "{{",        "+*",           "<<"};
  std::mt19937 rng(2);
  for (int i = 0; i < 20000; ++i) {
    std::string text;
    const int n = 1 + static_cast<int>(rng() % 30);
    for (int k = 0; k < n; ++k) text += tokens[rng() % tokens.size()] + " ";
    Exercise(text);
  }
}

TEST(RobustnessTest, MutatedValidPolicies) {
  std::mt19937 rng(3);
  for (int i = 0; i < 20000; ++i) {
    std::string text = Corpus()[rng() % Corpus().size()];
    const int mutations = 1 + static_cast<int>(rng() % 4);
    for (int m = 0; m < mutations && !text.empty(); ++m) {
      const std::size_t at = rng() % text.size();
      switch (rng() % 5) {
        case 0:  // flip a byte
          text[at] = static_cast<char>(rng());
          break;
        case 1:  // delete a run
          text.erase(at, 1 + rng() % 8);
          break;
        case 2:  // duplicate a run
          text.insert(at, text.substr(at, 1 + rng() % 16));
          break;
        case 3:  // insert a structural character
          text.insert(at, 1, "{}[]\"=,/*#+\n\\"[rng() % 13]);
          break;
        default:  // truncate
          text.resize(at);
          break;
      }
    }
    Exercise(text);
  }
}

TEST(RobustnessTest, PathologicalShapes) {
  Exercise(std::string(100000, '{'));
  Exercise(std::string(100000, '['));
  Exercise("name = " + std::string(100000, '['));
  Exercise("{\"path\":" + std::string(100000, '{'));
  Exercise(std::string(100000, '"'));
  Exercise("/*" + std::string(100000, '*'));
  Exercise("path " + std::string(50000, '"') + " {}");
  Exercise("path \"" + std::string(100000, 'a') + "\" { capabilities = [\"read\"] }");
  Exercise("path \"" + std::string(50000, '+') + "\" {}");
  std::string many_rules;
  for (int i = 0; i < 5000; ++i) {
    many_rules += "path \"p/" + std::to_string(i) +
                  (i % 3 == 0   ? "/+/x"
                   : i % 3 == 1 ? "*"
                                : "") +
                  "\" { capabilities = [\"read\"] }\n";
  }
  Exercise(many_rules);
}

}  // namespace
}  // namespace lockbox::policy
