#include "server/auth/identity_backend.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "crypto/encoding.h"
#include "crypto/jwk.h"
#include "crypto/jws.h"
#include "tests/unit/auth/methods_test_env.h"

namespace lockbox::auth {
namespace {

using logical::Operation;
using logical::Response;
using nlohmann::json;
using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using testing::MakeRequest;
using Clock = std::chrono::system_clock;

constexpr std::int64_t kStart = 1'800'000'000;

class IdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(env_.Open());
    mount_.path = "identity/";
    mount_.type = "identity";
    mount_.uuid = "5d1c9a4e-identity-0001";
    ASSERT_NO_FATAL_FAILURE(OpenBackend());
    principal_.accessor = "accessor-of-caller";
    principal_.policies = {"default"};
    principal_.expire_time = now_.load() + hours(8);
  }

  void OpenBackend() {
    IdentityOptions options;
    options.clock = [this] { return now_.load(); };
    auto backend = NewIdentityBackend(mount_, env_.hsm(), env_.store(), env_.audit(), options);
    ASSERT_TRUE(backend.ok()) << backend.status().ToString();
    backend_ = std::move(*backend);
  }

  StatusOr<Response> Call(Operation op, const std::string& path, json data = json::object()) {
    logical::Request request = MakeRequest(op, mount_.path, path, std::move(data));
    request.principal = principal_;
    return backend_->HandleRequest(request);
  }

  void MustWrite(const std::string& path, json data) {
    auto response = Call(Operation::kUpdate, path, std::move(data));
    ASSERT_TRUE(response.ok()) << path << ": " << response.status().ToString();
    EXPECT_FALSE(response->data.has_value());
    EXPECT_TRUE(response->audited);
  }

  json MustRead(const std::string& path) {
    auto response = Call(Operation::kRead, path);
    EXPECT_TRUE(response.ok()) << path << ": " << response.status().ToString();
    if (!response.ok()) return json();
    return response->raw_json ? *response->raw_json : response->data.value_or(json());
  }

  std::string MustToken(const std::string& role) {
    auto response = Call(Operation::kRead, "oidc/token/" + role);
    EXPECT_TRUE(response.ok()) << response.status().ToString();
    if (!response.ok() || !response->data) return "";
    EXPECT_TRUE(response->audited);
    return (*response->data)["token"];
  }

  json Jwks() { return MustRead("oidc/.well-known/keys"); }

  std::vector<std::string> Kids() {
    std::vector<std::string> kids;
    const json jwks = Jwks();
    for (const json& key : jwks["keys"]) kids.push_back(key["kid"]);
    return kids;
  }

  // Verifies `token` the way a relying party would: the key comes from the JWKS by kid and the
  // algorithm is pinned from that key. Returns the claims.
  StatusOr<json> VerifyWithJwks(const std::string& token) {
    LOCKBOX_ASSIGN_OR_RETURN(crypto::JwsParts parts, crypto::ParseJwsCompact(token));
    const json jwks = Jwks();
    for (const json& jwk : jwks["keys"]) {
      if (jwk["kid"] != parts.header.value("kid", "")) continue;
      LOCKBOX_ASSIGN_OR_RETURN(crypto::PublicKey key, crypto::PublicKeyFromJwk(jwk));
      LOCKBOX_ASSIGN_OR_RETURN(crypto::SignatureAlgorithm alg,
                               crypto::JwsAlgorithmFromName(jwk["alg"].get<std::string>()));
      LOCKBOX_RETURN_IF_ERROR(crypto::VerifyJws(parts, key, alg));
      return json::parse(parts.payload);
    }
    return NotFoundError("no key with this kid in the JWKS");
  }

  json Introspect(const std::string& token) {
    auto response = Call(Operation::kUpdate, "oidc/introspect", {{"token", token}});
    EXPECT_TRUE(response.ok()) << response.status().ToString();
    return response.ok() && response->raw_json ? *response->raw_json : json();
  }

  void Advance(seconds by) { now_ = now_.load() + by; }
  std::int64_t NowSeconds() {
    return std::chrono::duration_cast<seconds>(now_.load().time_since_epoch()).count();
  }

  std::atomic<Clock::time_point> now_{Clock::time_point(seconds(kStart))};
  testing::MethodsTestEnv env_;
  logical::MountEntry mount_;
  logical::Principal principal_;
  std::unique_ptr<logical::Backend> backend_;
};

TEST_F(IdentityTest, Es256TokenVerifiesAgainstTheJwks) {
  MustWrite("oidc/role/app", json::object());  // key "default" is made on first use
  const json role = MustRead("oidc/role/app");
  EXPECT_EQ(role["key"], "default");
  EXPECT_EQ(role["ttl"], 900);
  const std::string client_id = role["client_id"];
  EXPECT_GE(client_id.size(), 16u);

  auto response = Call(Operation::kRead, "oidc/token/app");
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ((*response->data)["client_id"], client_id);
  EXPECT_EQ((*response->data)["ttl"], 900);
  const std::string token = (*response->data)["token"];

  auto claims = VerifyWithJwks(token);
  ASSERT_TRUE(claims.ok()) << claims.status().ToString();
  EXPECT_EQ((*claims)["iss"], "http://127.0.0.1:8200/v1/identity/oidc");
  EXPECT_EQ((*claims)["sub"], "accessor-of-caller");
  EXPECT_EQ((*claims)["aud"], client_id);
  EXPECT_EQ((*claims)["iat"], kStart);
  EXPECT_EQ((*claims)["exp"], kStart + 900);
  EXPECT_EQ((*claims)["jti"].get<std::string>().size(), 36u);

  auto parts = crypto::ParseJwsCompact(token);
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ(parts->header["alg"], "ES256");
  EXPECT_EQ(parts->header["typ"], "JWT");
  const json jwks = Jwks();
  ASSERT_EQ(jwks["keys"].size(), 1u);
  const json& jwk = jwks["keys"][0];
  EXPECT_EQ(jwk["kty"], "EC");
  EXPECT_EQ(jwk["crv"], "P-256");
  EXPECT_EQ(jwk["alg"], "ES256");
  EXPECT_EQ(jwk["use"], "sig");
  EXPECT_FALSE(jwk.contains("d"));
  EXPECT_EQ(parts->header["kid"], jwk["kid"]);
  EXPECT_EQ(jwk["kid"], *crypto::JwkThumbprint(jwk));  // RFC 7638 thumbprint, not the label
  EXPECT_EQ(Introspect(token), json({{"active", true}}));
}

TEST_F(IdentityTest, EdDsaTokenVerifiesAgainstTheJwks) {
  auto created = Call(Operation::kUpdate, "oidc/key/ed", {{"algorithm", "EdDSA"}});
  ASSERT_TRUE(created.ok()) << created.status().ToString();  // SoftHSM2 2.6 has CKM_EDDSA
  MustWrite("oidc/role/edrole", {{"key", "ed"}, {"ttl", "5m"}});
  const std::string token = MustToken("edrole");
  auto claims = VerifyWithJwks(token);
  ASSERT_TRUE(claims.ok()) << claims.status().ToString();
  EXPECT_EQ((*claims)["exp"], kStart + 300);
  auto parts = crypto::ParseJwsCompact(token);
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ(parts->header["alg"], "EdDSA");
  EXPECT_EQ(Jwks()["keys"][0]["kty"], "OKP");
  EXPECT_EQ(MustRead("oidc/key/ed")["algorithm"], "EdDSA");
}

TEST_F(IdentityTest, TamperedTokensFailVerification) {
  MustWrite("oidc/role/app", json::object());
  const std::string token = MustToken("app");
  ASSERT_TRUE(VerifyWithJwks(token).ok());
  auto parts = crypto::ParseJwsCompact(token);
  ASSERT_TRUE(parts.ok());

  // Another subject under the original signature.
  json claims = json::parse(parts->payload);
  claims["sub"] = "someone-else";
  const std::string forged_claims = parts->header_b64 + "." +
                                    crypto::Base64UrlEncode(crypto::AsBytes(claims.dump())) + "." +
                                    token.substr(token.rfind('.') + 1);
  auto forged = VerifyWithJwks(forged_claims);
  ASSERT_FALSE(forged.ok());
  EXPECT_EQ(forged.status().code(), StatusCode::kDataLoss);

  // A flipped signature bit.
  std::vector<std::uint8_t> signature = parts->signature;
  signature[10] ^= 0x01;
  const std::string flipped = parts->signing_input + "." + crypto::Base64UrlEncode(signature);
  EXPECT_FALSE(VerifyWithJwks(flipped).ok());

  // alg "none" with the signature stripped.
  json header = parts->header;
  header["alg"] = "none";
  const std::string none =
      crypto::Base64UrlEncode(crypto::AsBytes(header.dump())) + "." + parts->payload_b64 + ".";
  EXPECT_FALSE(VerifyWithJwks(none).ok());

  for (const std::string& bad : {forged_claims, flipped, none, std::string("garbage")}) {
    const json result = Introspect(bad);
    EXPECT_EQ(result["active"], false) << bad;
    EXPECT_TRUE(result.contains("error"));
  }
}

TEST_F(IdentityTest, ExpiryIsInTheExpClaim) {
  MustWrite("oidc/role/app", {{"ttl", "10m"}});
  const std::string token = MustToken("app");
  auto claims = VerifyWithJwks(token);
  ASSERT_TRUE(claims.ok());
  Advance(minutes(9) + seconds(59));
  EXPECT_GT((*claims)["exp"].get<std::int64_t>(), NowSeconds());
  EXPECT_EQ(Introspect(token)["active"], true);
  Advance(seconds(1));
  EXPECT_LE((*claims)["exp"].get<std::int64_t>(), NowSeconds());
  EXPECT_EQ(Introspect(token), json({{"active", false}, {"error", "token expired"}}));
}

TEST_F(IdentityTest, TtlIsCappedByTheCallersTokenExpiry) {
  MustWrite("oidc/role/app", {{"ttl", "1h"}});
  principal_.expire_time = now_.load() + seconds(100) + std::chrono::milliseconds(700);
  auto response = Call(Operation::kRead, "oidc/token/app");
  ASSERT_TRUE(response.ok());
  EXPECT_EQ((*response->data)["ttl"], 100);
  auto claims = VerifyWithJwks((*response->data)["token"]);
  ASSERT_TRUE(claims.ok());
  EXPECT_EQ((*claims)["exp"], kStart + 100);

  principal_.expire_time = std::nullopt;  // a non-expiring (root) token: the role's ttl
  response = Call(Operation::kRead, "oidc/token/app");
  ASSERT_TRUE(response.ok());
  EXPECT_EQ((*response->data)["ttl"], 3600);

  principal_.expire_time = now_.load();  // expired caller
  auto expired = Call(Operation::kRead, "oidc/token/app");
  ASSERT_FALSE(expired.ok());
  EXPECT_EQ(expired.status().code(), StatusCode::kPermissionDenied);
}

TEST_F(IdentityTest, SubjectIsTheEntityAndACallerIsRequired) {
  MustWrite("oidc/role/app", json::object());
  principal_.entity_id = "entity-42";
  auto claims = VerifyWithJwks(MustToken("app"));
  ASSERT_TRUE(claims.ok());
  EXPECT_EQ((*claims)["sub"], "entity-42");

  principal_ = logical::Principal{};  // no token at all
  auto anonymous = Call(Operation::kRead, "oidc/token/app");
  ASSERT_FALSE(anonymous.ok());
  EXPECT_EQ(anonymous.status().code(), StatusCode::kPermissionDenied);
  principal_.accessor = "a";
  auto missing_role = Call(Operation::kRead, "oidc/token/none");
  ASSERT_FALSE(missing_role.ok());
  EXPECT_EQ(missing_role.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(IdentityTest, RotationKeepsTheOldKeyUntilItsTokensHaveExpired) {
  MustWrite("oidc/key/k", {{"verification_ttl", "1h"}, {"rotation_period", "24h"}});
  MustWrite("oidc/role/app", {{"key", "k"}, {"ttl", "30m"}});
  const std::string old_token = MustToken("app");
  const std::vector<std::string> before = Kids();
  ASSERT_EQ(before.size(), 1u);

  MustWrite("oidc/key/k/rotate", json::object());
  const std::vector<std::string> after = Kids();
  ASSERT_EQ(after.size(), 2u);
  const std::string new_token = MustToken("app");
  auto new_parts = crypto::ParseJwsCompact(new_token);
  ASSERT_TRUE(new_parts.ok());
  EXPECT_NE(new_parts->header["kid"], before[0]);
  EXPECT_TRUE(VerifyWithJwks(old_token).ok());
  EXPECT_TRUE(VerifyWithJwks(new_token).ok());

  Advance(minutes(59));
  EXPECT_EQ(Kids().size(), 2u);
  EXPECT_TRUE(VerifyWithJwks(old_token).ok());
  Advance(minutes(1));  // rotation time + verification_ttl: every v1 token has expired
  auto claims = json::parse(crypto::ParseJwsCompact(old_token)->payload);
  EXPECT_LT(claims["exp"].get<std::int64_t>(), NowSeconds());
  const std::vector<std::string> pruned = Kids();
  ASSERT_EQ(pruned.size(), 1u);
  EXPECT_EQ(pruned[0], new_parts->header["kid"]);
  EXPECT_FALSE(VerifyWithJwks(old_token).ok());
  EXPECT_TRUE(VerifyWithJwks(new_token).ok());
  auto v1 = env_.hsm().FindSigningKey("lockbox/identity/k/v1");
  ASSERT_FALSE(v1.ok());
  EXPECT_EQ(v1.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(env_.hsm().FindSigningKey("lockbox/identity/k/v2").ok());

  std::vector<std::string> ops;
  for (const audit::Event& event : env_.Events()) {
    if (event.op.starts_with("identity.key.")) ops.push_back(event.op);
  }
  EXPECT_EQ(ops, (std::vector<std::string>{"identity.key.create", "identity.key.rotate",
                                           "identity.key.prune"}));
}

TEST_F(IdentityTest, KeysRotateOnTheirOwnEveryRotationPeriod) {
  MustWrite("oidc/key/k", {{"rotation_period", "1h"}, {"verification_ttl", "2h"}});
  MustWrite("oidc/role/app", {{"key", "k"}});
  const std::string first_kid = crypto::ParseJwsCompact(MustToken("app"))->header["kid"];
  Advance(minutes(59));
  EXPECT_EQ(crypto::ParseJwsCompact(MustToken("app"))->header["kid"], first_kid);
  Advance(minutes(1));
  const std::string token = MustToken("app");
  EXPECT_NE(crypto::ParseJwsCompact(token)->header["kid"], first_kid);
  EXPECT_TRUE(VerifyWithJwks(token).ok());
  EXPECT_EQ(Kids().size(), 2u);
  bool scheduled_rotation_audited = false;
  for (const audit::Event& event : env_.Events()) {
    if (event.op == "identity.key.rotate") {
      EXPECT_EQ(event.actor, "system");
      EXPECT_EQ(event.details["scheduled"], true);
      scheduled_rotation_audited = true;
    }
  }
  EXPECT_TRUE(scheduled_rotation_audited);
}

TEST_F(IdentityTest, TokensIssuedWhileRotatingAllVerify) {
  MustWrite("oidc/key/k", json::object());
  MustWrite("oidc/role/app", {{"key", "k"}});
  std::vector<std::vector<std::string>> tokens(4);
  std::vector<std::thread> threads;
  for (auto& mine : tokens) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) mine.push_back(MustToken("app"));
    });
  }
  for (int i = 0; i < 3; ++i) MustWrite("oidc/key/k/rotate", json::object());
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(Kids().size(), 4u);
  for (const auto& mine : tokens) {
    ASSERT_EQ(mine.size(), 10u);
    for (const std::string& token : mine) {
      auto claims = VerifyWithJwks(token);
      EXPECT_TRUE(claims.ok()) << claims.status().ToString();
    }
  }
}

TEST_F(IdentityTest, VerificationTtlMustCoverEveryRoleTtl) {
  MustWrite("oidc/key/k", {{"verification_ttl", "1h"}});
  MustWrite("oidc/role/app", {{"key", "k"}, {"ttl", "45m"}});
  const std::size_t events_before = env_.Events().size();
  auto too_long = Call(Operation::kUpdate, "oidc/role/app", {{"ttl", "2h"}});
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(too_long.status().code(), StatusCode::kInvalidArgument);
  auto too_short = Call(Operation::kUpdate, "oidc/key/k", {{"verification_ttl", "30m"}});
  ASSERT_FALSE(too_short.ok());
  EXPECT_EQ(too_short.status().code(), StatusCode::kInvalidArgument);
  auto rotate_short = Call(Operation::kUpdate, "oidc/key/k/rotate", {{"verification_ttl", "1m"}});
  ASSERT_FALSE(rotate_short.ok());
  EXPECT_EQ(MustRead("oidc/key/k")["verification_ttl"], 3600);
  EXPECT_EQ(MustRead("oidc/role/app")["ttl"], 2700);
  EXPECT_EQ(Kids().size(), 1u);
  EXPECT_EQ(env_.Events().size(), events_before);
}

TEST_F(IdentityTest, MalformedWritesChangeNothing) {
  const std::size_t events_before = env_.Events().size();
  const std::vector<std::pair<std::string, json>> bad = {
      {"oidc/key/k", {{"algorithm", "RS256"}}},
      {"oidc/key/k", {{"algorithm", "none"}}},
      {"oidc/key/k", {{"rotation_period", "30s"}}},
      {"oidc/key/k", {{"verification_ttl", "soon"}}},
      {"oidc/key/k", {{"verification_ttl", 0}}},
      {"oidc/role/r", {{"template", R"({"groups": {{identity.entity.groups.names}}})"}}},
      {"oidc/role/r", {{"key", "missing"}}},
      {"oidc/role/r", {{"ttl", 0}}},
      {"oidc/role/r", {{"ttl", "25h"}}},
      {"oidc/role/r", {{"ttl", "-1s"}}},
      {"oidc/role/r", {{"client_id", "has space"}}},
      {"oidc/role/r", {{"key", "../etc"}}},
      {"oidc/key/-bad", json::object()},
  };
  for (const auto& [path, data] : bad) {
    auto response = Call(Operation::kUpdate, path, data);
    ASSERT_FALSE(response.ok()) << path << " " << data.dump();
    EXPECT_EQ(response.status().code(), StatusCode::kInvalidArgument) << path << data.dump();
  }
  EXPECT_FALSE(Call(Operation::kList, "oidc/key/").ok());
  EXPECT_FALSE(Call(Operation::kList, "oidc/role/").ok());
  EXPECT_EQ(Jwks(), json({{"keys", json::array()}}));
  EXPECT_EQ(env_.Events().size(), events_before);
}

TEST_F(IdentityTest, KeysInUseCannotBeDeleted) {
  MustWrite("oidc/key/k", json::object());
  MustWrite("oidc/role/a", {{"key", "k"}});
  MustWrite("oidc/role/b", {{"key", "k"}});
  auto refused = Call(Operation::kDelete, "oidc/key/k");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().message(),
            "unable to delete key \"k\" because it is currently referenced by these roles: a, b");
  EXPECT_TRUE(env_.hsm().FindSigningKey("lockbox/identity/k/v1").ok());

  ASSERT_TRUE(Call(Operation::kDelete, "oidc/role/a").ok());
  ASSERT_TRUE(Call(Operation::kDelete, "oidc/role/b").ok());
  auto deleted = Call(Operation::kDelete, "oidc/key/k");
  ASSERT_TRUE(deleted.ok()) << deleted.status().ToString();
  EXPECT_TRUE(deleted->audited);
  EXPECT_FALSE(env_.hsm().FindSigningKey("lockbox/identity/k/v1").ok());
  EXPECT_EQ(Jwks()["keys"].size(), 0u);
  auto read = Call(Operation::kRead, "oidc/key/k");
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), StatusCode::kNotFound);
  // The name can be used again (its HSM labels are free).
  MustWrite("oidc/key/k", json::object());
}

TEST_F(IdentityTest, ReadsAndListsHaveVaultShapes) {
  MustWrite("oidc/key/k", {{"rotation_period", "2h"}, {"verification_ttl", "3h"}});
  EXPECT_EQ(MustRead("oidc/key/k"),
            json({{"algorithm", "ES256"}, {"rotation_period", 7200}, {"verification_ttl", 10800}}));
  MustWrite("oidc/role/r", {{"key", "k"}, {"ttl", "1h"}, {"client_id", "my-audience"}});
  EXPECT_EQ(MustRead("oidc/role/r"),
            json({{"key", "k"}, {"ttl", 3600}, {"client_id", "my-audience"}, {"template", ""}}));
  MustWrite("oidc/role/r", {{"ttl", "30m"}});  // updates keep the other fields
  EXPECT_EQ(MustRead("oidc/role/r")["client_id"], "my-audience");
  auto keys = Call(Operation::kList, "oidc/key/");
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ((*keys->data)["keys"], json::array({"k"}));
  auto roles = Call(Operation::kList, "oidc/role/");
  ASSERT_TRUE(roles.ok());
  EXPECT_EQ((*roles->data)["keys"], json::array({"r"}));
  auto missing = Call(Operation::kRead, "oidc/role/none");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  auto wrong_op = Call(Operation::kDelete, "oidc/token/r");
  ASSERT_FALSE(wrong_op.ok());
  EXPECT_EQ(wrong_op.status().code(), StatusCode::kUnimplemented);
  auto unknown = Call(Operation::kRead, "oidc/nothing/x");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), StatusCode::kNotFound);
}

TEST_F(IdentityTest, ChangingTheAlgorithmRotatesTheKey) {
  MustWrite("oidc/key/k", json::object());
  MustWrite("oidc/role/r", {{"key", "k"}});
  MustWrite("oidc/key/k", {{"algorithm", "EdDSA"}});
  const json jwks = Jwks();
  ASSERT_EQ(jwks["keys"].size(), 2u);
  const std::string token = MustToken("r");
  EXPECT_EQ(crypto::ParseJwsCompact(token)->header["alg"], "EdDSA");
  EXPECT_TRUE(VerifyWithJwks(token).ok());
}

TEST_F(IdentityTest, KeysAndRolesSurviveARestart) {
  MustWrite("oidc/key/k", {{"algorithm", "EdDSA"}});
  MustWrite("oidc/role/r", {{"key", "k"}});
  MustWrite("oidc/key/k/rotate", json::object());
  const std::string before_restart = MustToken("r");
  const json jwks = Jwks();

  ASSERT_NO_FATAL_FAILURE(OpenBackend());  // loads from the store; finds the HSM key on use
  EXPECT_EQ(Jwks(), jwks);
  EXPECT_TRUE(VerifyWithJwks(before_restart).ok());
  const std::string after_restart = MustToken("r");
  EXPECT_TRUE(VerifyWithJwks(after_restart).ok());
  EXPECT_EQ(crypto::ParseJwsCompact(after_restart)->header["kid"],
            crypto::ParseJwsCompact(before_restart)->header["kid"]);
}

TEST_F(IdentityTest, TokenIssuanceIsAuditedWithoutTheJwt) {
  MustWrite("oidc/role/app", json::object());
  const std::string token = MustToken("app");
  const json claims = json::parse(crypto::ParseJwsCompact(token)->payload);
  const audit::Event event = env_.Events().back();
  EXPECT_EQ(event.op, "identity.token");
  EXPECT_EQ(event.actor, "accessor-admin");
  EXPECT_EQ(event.details["role"], "app");
  EXPECT_EQ(event.details["jti"], claims["jti"]);
  const std::string audit_text = env_.AllAuditText();
  EXPECT_EQ(audit_text.find(token.substr(token.rfind('.') + 1)), std::string::npos);
  EXPECT_EQ(audit_text.find(token.substr(0, token.rfind('.'))), std::string::npos);
}

TEST_F(IdentityTest, DiscoveryDocumentAndPublicPaths) {
  const json discovery = MustRead("oidc/.well-known/openid-configuration");
  EXPECT_EQ(discovery["issuer"], "http://127.0.0.1:8200/v1/identity/oidc");
  EXPECT_EQ(discovery["jwks_uri"], "http://127.0.0.1:8200/v1/identity/oidc/.well-known/keys");
  EXPECT_EQ(discovery["id_token_signing_alg_values_supported"], json::array({"ES256", "EdDSA"}));
  EXPECT_TRUE(backend_->IsUnauthenticated("oidc/.well-known/keys"));
  EXPECT_TRUE(backend_->IsUnauthenticated("oidc/.well-known/openid-configuration"));
  EXPECT_FALSE(backend_->IsUnauthenticated("oidc/token/app"));
  EXPECT_FALSE(backend_->IsUnauthenticated("oidc/key/k"));
}

TEST_F(IdentityTest, PurgeDestroysKeysAndRows) {
  MustWrite("oidc/key/k", json::object());
  MustWrite("oidc/role/r", {{"key", "k"}});
  MustWrite("oidc/key/k/rotate", json::object());
  ASSERT_TRUE(backend_->Purge().ok());
  EXPECT_FALSE(env_.hsm().FindSigningKey("lockbox/identity/k/v1").ok());
  EXPECT_FALSE(env_.hsm().FindSigningKey("lockbox/identity/k/v2").ok());
  EXPECT_EQ(Jwks()["keys"].size(), 0u);
  for (const char* table : {"identity_keys", "identity_key_versions", "identity_roles"}) {
    auto rows = env_.store().Query(std::string("SELECT COUNT(*) FROM ") + table, {});
    ASSERT_TRUE(rows.ok());
    EXPECT_EQ(*store::GetInt((*rows)[0], 0), 0) << table;
  }
  EXPECT_EQ(env_.Events().back().op, "identity.purge");
  ASSERT_NO_FATAL_FAILURE(OpenBackend());
  EXPECT_FALSE(Call(Operation::kRead, "oidc/role/r").ok());
}

}  // namespace
}  // namespace lockbox::auth
