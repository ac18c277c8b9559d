// The sys/ backend: init, seal, mounts, auth methods, policies, capabilities, ui mounts, audit log.
#include <regex>

#include "crypto/encoding.h"
#include "tests/unit/core/core_test_env.h"

namespace lockbox::core::testing {
namespace {

using nlohmann::json;

TEST_F(CoreTest, InitCreatesDefaultsOnceAndReturnsKeys) {
  const auto response = Send("PUT", "/v1/sys/init",
                             R"({"secret_shares":5,"secret_threshold":3,"pgp_keys":null,
                                 "root_token_pgp_key":null})");
  ASSERT_EQ(response.status, 200) << response.body;
  const json body = Json(response);
  ASSERT_EQ(body["keys"].size(), 5u);
  ASSERT_EQ(body["keys_base64"].size(), 5u);
  for (std::size_t i = 0; i < 5; ++i) {
    auto hex = crypto::HexDecode(body["keys"][i].get<std::string>());
    ASSERT_TRUE(hex.ok());
    EXPECT_EQ(hex->size(), 32u);
    EXPECT_EQ(crypto::Base64Encode(*hex), body["keys_base64"][i]);
  }
  const std::string root = body["root_token"];
  EXPECT_TRUE(core_->initialized());
  EXPECT_EQ(bring_ups_, 1);
  EXPECT_EQ(Json(Send("GET", "/v1/sys/init")), json({{"initialized", true}}));

  const auto again = Send("PUT", "/v1/sys/init", R"({"secret_shares":1,"secret_threshold":1})");
  EXPECT_EQ(again.status, 400);
  EXPECT_EQ(Json(again), json({{"errors", {"Vault is already initialized"}}}));
  EXPECT_FALSE(core_->Initialize(1, 1, std::nullopt).ok());

  const json mounts = Json(Send("GET", "/v1/sys/mounts", "", root))["data"];
  EXPECT_EQ(mounts["sys/"]["type"], "system");
  EXPECT_EQ(mounts["cubbyhole/"]["type"], "cubbyhole");
  EXPECT_EQ(mounts["identity/"]["type"], "identity");
  EXPECT_FALSE(mounts.contains("secret/")) << "secret/ is a dev-mode mount";
  const json auth = Json(Send("GET", "/v1/sys/auth", "", root))["data"];
  EXPECT_EQ(auth["token/"]["type"], "token");
  EXPECT_EQ(auth["token/"]["config"]["token_type"], "default-service");
  EXPECT_EQ(Json(Send("GET", "/v1/sys/policy", "", root))["policies"], json({"default", "root"}));
  const json lookup = Json(Send("GET", "/v1/auth/token/lookup-self", "", root));
  EXPECT_EQ(lookup["data"]["policies"], json({"root"}));
  EXPECT_EQ(lookup["data"]["path"], "auth/token/root");

  const auto status = Json(Send("GET", "/v1/sys/seal-status"));
  EXPECT_EQ(status["sealed"], false);
  EXPECT_EQ(status["t"], 3);
  EXPECT_EQ(status["n"], 5);
  EXPECT_EQ(status["version"], "1.15.0");
  EXPECT_EQ(status["cluster_name"], "lockbox");
  const auto health = Send("GET", "/v1/sys/health");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(Json(health)["server_time_utc"], 1'800'000'000);
  EXPECT_EQ(Json(health)["cluster_id"], status["cluster_id"]);
  const auto event = LastEventFor("sys/init", "sys.init");
  ASSERT_TRUE(event.has_value());
  EXPECT_EQ(event->outcome, audit::Outcome::kOk);
  EXPECT_EQ(event->details["secret_threshold"], 3);
}

TEST_F(CoreTest, InitRefusesBadParametersWithoutChangingState) {
  EXPECT_EQ(Send("PUT", "/v1/sys/init", R"({"secret_shares":3,"secret_threshold":5})").status, 400);
  EXPECT_EQ(Send("PUT", "/v1/sys/init", R"({"secret_shares":3,"secret_threshold":1})").status, 400);
  EXPECT_EQ(Send("PUT", "/v1/sys/init", R"({"secret_shares":0,"secret_threshold":0})").status, 400);
  EXPECT_EQ(
      Send("PUT", "/v1/sys/init", R"({"secret_shares":1,"secret_threshold":1,"pgp_keys":["k"]})")
          .status,
      400);
  EXPECT_FALSE(core_->initialized());
  EXPECT_EQ(bring_ups_, 0);
}

TEST_F(CoreTest, DevModeInitMountsKvV2AtSecretWithAChosenRootToken) {
  dev_mode_ = true;
  CreateCore();
  auto result = core_->Initialize(1, 1, std::string("dev-root"));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->root_token, "dev-root");
  EXPECT_EQ(result->keys.size(), 1u);
  const json secret = Json(Send("GET", "/v1/sys/mounts", "", "dev-root"))["data"]["secret/"];
  EXPECT_EQ(secret["type"], "kv");
  EXPECT_EQ(secret["options"], json({{"version", "2"}}));
  ASSERT_EQ(Send("PUT", "/v1/secret/data/x", R"({"a":1})", "dev-root").status, 204);
}

TEST_F(CoreTest, SealRefusesUntilThresholdOfDistinctKeys) {
  const std::string root = Init(3, 2);
  ASSERT_EQ(keys_.size(), 3u);
  EXPECT_EQ(Send("PUT", "/v1/sys/seal", "", root).status, 204);
  EXPECT_TRUE(core_->sealed());
  const auto refused = Send("GET", "/v1/sys/mounts", "", root);
  EXPECT_EQ(refused.status, 503);
  EXPECT_EQ(Json(refused), json({{"errors", {"Vault is sealed"}}}));
  EXPECT_EQ(Send("GET", "/v1/sys/health").status, 503);
  EXPECT_EQ(Send("GET", "/v1/sys/health?sealedcode=200").status, 200);

  const std::string wrong(64, 'a');
  auto response = Send("PUT", "/v1/sys/unseal", json{{"key", wrong}}.dump());
  EXPECT_EQ(response.status, 400);
  EXPECT_EQ(Json(response), json({{"errors", {"unseal failed, invalid key"}}}));
  EXPECT_EQ(Send("PUT", "/v1/sys/unseal", R"({"key":"not hex!"})").status, 400);
  EXPECT_EQ(Send("PUT", "/v1/sys/unseal", "{}").status, 400);

  response = Send("PUT", "/v1/sys/unseal", json{{"key", keys_[0]}}.dump());
  ASSERT_EQ(response.status, 200);
  EXPECT_EQ(Json(response)["sealed"], true);
  EXPECT_EQ(Json(response)["progress"], 1);
  EXPECT_EQ(Send("PUT", "/v1/sys/unseal", json{{"key", keys_[0]}}.dump()).status, 400)
      << "the same key twice does not count twice";
  EXPECT_EQ(Json(Send("PUT", "/v1/sys/unseal", R"({"reset":true})"))["progress"], 0);
  ASSERT_EQ(Send("PUT", "/v1/sys/unseal", json{{"key", keys_[2]}}.dump()).status, 200);
  // The base64 form of a key works as well.
  auto bytes = crypto::HexDecode(keys_[1]);
  ASSERT_TRUE(bytes.ok());
  response = Send("PUT", "/v1/sys/unseal", json{{"key", crypto::Base64Encode(*bytes)}}.dump());
  ASSERT_EQ(response.status, 200);
  EXPECT_EQ(Json(response)["sealed"], false);
  EXPECT_FALSE(core_->sealed());
  EXPECT_EQ(Send("GET", "/v1/sys/mounts", "", root).status, 200);
  // Unseal attempts are audited; the keys never are.
  bool saw_failure = false;
  for (const auto& event : AuditEvents()) {
    const std::string text = *audit::CanonicalEvent(event);
    for (const auto& key : keys_) EXPECT_EQ(text.find(key), std::string::npos);
    saw_failure |= event.path == "sys/unseal" && event.outcome == audit::Outcome::kError;
  }
  EXPECT_TRUE(saw_failure);
  // Stored: digests only.
  auto rows = store_->Query("SELECT value FROM core_meta", {});
  ASSERT_TRUE(rows.ok());
  for (const auto& key : keys_)
    EXPECT_EQ(store::GetText((*rows)[0], 0)->find(key), std::string::npos);
}

TEST_F(CoreTest, EnableSecretsEngineWithHvacBodyAndExactEntry) {
  const std::string root = Init();
  ASSERT_EQ(Send("POST", "/v1/sys/mounts/transit",
                 R"({"type":"transit","description":null,"config":null,"options":null,
                     "plugin_name":null,"local":false,"seal_wrap":false})",
                 root)
                .status,
            204);
  ASSERT_EQ(
      Send("POST", "/v1/sys/mounts/kvv2", R"({"type":"kv","options":{"version":2}})", root).status,
      204);
  ASSERT_EQ(Send("POST", "/v1/sys/mounts/secret",
                 R"({"type":"kv","description":"","config":{"options":null,"default_lease_ttl":"",
                     "max_lease_ttl":"","force_no_cache":false},"local":false,"seal_wrap":false,
                     "external_entropy_access":false,"options":{"version":"2"}})",
                 root)
                .status,
            204);
  const auto listed = Send("GET", "/v1/sys/mounts", "", root);
  const json body = Json(listed);
  json transit = body["data"]["transit/"];
  EXPECT_TRUE(
      std::regex_match(transit["accessor"].get<std::string>(), std::regex("transit_[0-9a-f]{8}")));
  EXPECT_EQ(transit["uuid"].get<std::string>().size(), 36u);
  transit.erase("accessor");
  transit.erase("uuid");
  EXPECT_EQ(
      transit,
      json({{"config", {{"default_lease_ttl", 0}, {"force_no_cache", false}, {"max_lease_ttl", 0}}},
            {"description", ""},
            {"external_entropy_access", false},
            {"local", false},
            {"options", nullptr},
            {"seal_wrap", false},
            {"type", "transit"}}));
  EXPECT_EQ(body["transit/"]["type"], "transit") << "injected at the top level too";
  EXPECT_EQ(body["data"]["kvv2/"]["options"], json({{"version", "2"}}));
  EXPECT_EQ(body["data"]["secret/"]["options"], json({{"version", "2"}}));
  EXPECT_EQ(Json(Send("GET", "/v1/sys/mounts/transit", "", root))["data"]["type"], "transit");
  {
    std::lock_guard lock(world_.mutex);
    ASSERT_FALSE(world_.created.empty());
    EXPECT_EQ(world_.created.back().path, "secret/");
    EXPECT_EQ(world_.created.back().options.at("version"), "2");
  }
  const auto event = LastEventFor("sys/mounts/transit", "sys.mount.enable");
  ASSERT_TRUE(event.has_value());
  EXPECT_EQ(event->details["type"], "transit");
}

TEST_F(CoreTest, EnableRefusesBadMountsWithoutChangingTheTable) {
  const std::string root = Init();
  Mount(root, "transit", {{"type", "transit"}});
  const auto before = Json(Send("GET", "/v1/sys/mounts", "", root))["data"];
  const auto error = [&](const std::string& path, const json& body) {
    const auto response = Send("POST", "/v1/sys/mounts/" + path, body.dump(), root);
    EXPECT_EQ(response.status, 400) << path << " " << response.body;
    const json errors = Json(response)["errors"];
    return errors.empty() ? std::string() : errors[0].get<std::string>();
  };
  EXPECT_EQ(error("transit", {{"type", "kv"}}), "path is already in use at transit/");
  EXPECT_EQ(error("transit/sub", {{"type", "kv"}}), "path is already in use at transit/");
  EXPECT_EQ(error("sys", {{"type", "kv"}}), "path is already in use at sys/");
  EXPECT_EQ(error("auth/x", {{"type", "kv"}}), "path is already in use at auth/");
  EXPECT_EQ(error("cubbyhole/x", {{"type", "kv"}}), "path is already in use at cubbyhole/");
  EXPECT_EQ(error("pki", {{"type", "pki"}}), "unknown backend type: \"pki\"");
  EXPECT_EQ(error("sys2", {{"type", "system"}}), "unknown backend type: \"system\"");
  EXPECT_NE(error("t2", {{"type", "transit"}, {"options", {{"version", "2"}}}}), "");
  EXPECT_NE(error("k3", {{"type", "kv"}, {"options", {{"version", "3"}}}}), "");
  EXPECT_NE(error("k4", {{"description", "no type"}}), "");
  EXPECT_NE(error("k5", {{"type", "kv"}, {"config", {{"default_lease_ttl", "9999h"}}}}), "");
  EXPECT_EQ(Json(Send("GET", "/v1/sys/mounts", "", root))["data"], before);
}

TEST_F(CoreTest, KvAliasesSetTheVersion) {
  const std::string root = Init();
  Mount(root, "v1", {{"type", "kv-v1"}});
  Mount(root, "v2", {{"type", "kv-v2"}});
  Mount(root, "g", {{"type", "generic"}});
  const json data = Json(Send("GET", "/v1/sys/mounts", "", root))["data"];
  EXPECT_EQ(data["v1/"]["type"], "kv");
  EXPECT_EQ(data["v1/"]["options"], json({{"version", "1"}}));
  EXPECT_EQ(data["v2/"]["options"], json({{"version", "2"}}));
  EXPECT_EQ(data["g/"]["type"], "kv");
  EXPECT_TRUE(data["g/"]["options"].is_null());
}

TEST_F(CoreTest, DisablePurgesAndIsIdempotent) {
  const std::string root = Init();
  Mount(root, "kv", {{"type", "kv"}});
  ASSERT_EQ(Send("PUT", "/v1/kv/data/a", R"({"v":1})", root).status, 204);
  std::string uuid;
  {
    std::lock_guard lock(world_.mutex);
    uuid = world_.created.back().uuid;
  }
  EXPECT_EQ(Send("DELETE", "/v1/sys/mounts/kv", "", root).status, 204);
  {
    std::lock_guard lock(world_.mutex);
    EXPECT_EQ(world_.purges[uuid], 1);
    EXPECT_FALSE(world_.data.contains(uuid));
  }
  EXPECT_EQ(Send("GET", "/v1/kv/data/a", "", root).status, 404);
  EXPECT_FALSE(Json(Send("GET", "/v1/sys/mounts", "", root))["data"].contains("kv/"));
  EXPECT_EQ(Send("DELETE", "/v1/sys/mounts/kv", "", root).status, 204);
  EXPECT_EQ(Send("DELETE", "/v1/sys/mounts/sys", "", root).status, 400);
  EXPECT_EQ(Send("DELETE", "/v1/sys/mounts/cubbyhole", "", root).status, 400);
  EXPECT_EQ(Send("DELETE", "/v1/sys/auth/token", "", root).status, 400);
  // Gone after a restart too.
  CreateCore();
  EXPECT_FALSE(Json(Send("GET", "/v1/sys/mounts", "", root))["data"].contains("kv/"));
  EXPECT_TRUE(LastEventFor("sys/mounts/kv", "sys.mount.disable").has_value());
}

TEST_F(CoreTest, RemountMovesTheMountWithItsData) {
  const std::string root = Init();
  Mount(root, "old", {{"type", "kv"}, {"description", "mine"}});
  ASSERT_EQ(Send("PUT", "/v1/old/data/a", R"({"v":1})", root).status, 204);
  const json before = Json(Send("GET", "/v1/sys/mounts", "", root))["data"]["old/"];
  const auto moved = Send("POST", "/v1/sys/remount", R"({"from":"old","to":"new/place"})", root);
  ASSERT_EQ(moved.status, 200) << moved.body;
  const std::string id = Json(moved)["data"]["migration_id"];
  EXPECT_EQ(Json(moved)["migration_id"], id);
  const auto status = Json(Send("GET", "/v1/sys/remount/status/" + id, "", root));
  EXPECT_EQ(
      status["data"]["migration_info"],
      json({{"source_mount", "old/"}, {"target_mount", "new/place/"}, {"status", "success"}}));
  const json mounts = Json(Send("GET", "/v1/sys/mounts", "", root))["data"];
  EXPECT_FALSE(mounts.contains("old/"));
  EXPECT_EQ(mounts["new/place/"], before) << "same uuid, accessor and config";
  EXPECT_EQ(Json(Send("GET", "/v1/new/place/data/a", "", root))["data"]["v"], 1);
  EXPECT_EQ(Send("GET", "/v1/old/data/a", "", root).status, 404);
  {
    std::lock_guard lock(world_.mutex);
    ASSERT_FALSE(world_.remounted.empty());
    EXPECT_EQ(world_.remounted.back().path, "new/place/");
  }
  EXPECT_EQ(Send("POST", "/v1/sys/remount", R"({"from":"sys","to":"x"})", root).status, 400);
  EXPECT_EQ(Send("POST", "/v1/sys/remount", R"({"from":"nope","to":"x"})", root).status, 400);
  EXPECT_EQ(Send("POST", "/v1/sys/remount", R"({"from":"new/place","to":"auth/x"})", root).status,
            400);
  EXPECT_EQ(Send("POST", "/v1/sys/remount", R"({"from":"new/place","to":"identity"})", root).status,
            400);
  CreateCore();
  EXPECT_TRUE(Json(Send("GET", "/v1/sys/mounts", "", root))["data"].contains("new/place/"));
}

TEST_F(CoreTest, TuneReadsEffectiveValuesAndWrites) {
  const std::string root = Init();
  Mount(root, "kv", {{"type", "kv"}, {"options", {{"version", "2"}}}, {"description", "d"}});
  auto tune = Json(Send("GET", "/v1/sys/mounts/kv/tune", "", root));
  EXPECT_EQ(tune["data"], json({{"default_lease_ttl", 2764800},
                                {"max_lease_ttl", 2764800},
                                {"force_no_cache", false},
                                {"description", "d"},
                                {"options", {{"version", "2"}}}}));
  EXPECT_EQ(tune["default_lease_ttl"], 2764800);
  ASSERT_EQ(Send("POST", "/v1/sys/mounts/kv/tune",
                 R"({"default_lease_ttl":"1h","max_lease_ttl":7200,"description":"new"})", root)
                .status,
            204);
  tune = Json(Send("GET", "/v1/sys/mounts/kv/tune", "", root))["data"];
  EXPECT_EQ(tune["default_lease_ttl"], 3600);
  EXPECT_EQ(tune["max_lease_ttl"], 7200);
  EXPECT_EQ(tune["description"], "new");
  const json entry = Json(Send("GET", "/v1/sys/mounts", "", root))["data"]["kv/"];
  EXPECT_EQ(entry["config"]["default_lease_ttl"], 3600);
  {
    std::lock_guard lock(world_.mutex);
    EXPECT_EQ(world_.remounted.back().default_lease_ttl, std::chrono::hours(1));
  }
  EXPECT_EQ(Send("POST", "/v1/sys/mounts/kv/tune", R"({"default_lease_ttl":"3h"})", root).status,
            400);
  EXPECT_EQ(Send("POST", "/v1/sys/mounts/kv/tune", R"({"options":{"version":"1"}})", root).status,
            400);
  EXPECT_EQ(
      Send("POST", "/v1/sys/mounts/kv/tune", R"({"default_lease_ttl":"system"})", root).status,
      204);
  EXPECT_EQ(Json(Send("GET", "/v1/sys/mounts/kv/tune", "", root))["data"]["default_lease_ttl"],
            2764800);
  EXPECT_EQ(Send("GET", "/v1/sys/mounts/nope/tune", "", root).status, 400);
}

TEST_F(CoreTest, AuthMethodsEnableListTuneAndDisableRevokesTheirTokens) {
  const std::string root = Init();
  ASSERT_EQ(
      Send("POST", "/v1/sys/auth/approle", R"({"type":"approle","local":false})", root).status,
      204);
  EXPECT_EQ(Send("POST", "/v1/sys/auth/other", R"({"type":"token"})", root).status, 400);
  EXPECT_EQ(Send("POST", "/v1/sys/auth/approle/x", R"({"type":"approle"})", root).status, 400);
  const json auth = Json(Send("GET", "/v1/sys/auth", "", root));
  EXPECT_TRUE(auth.contains("approle/")) << "hvac checks the top-level keys";
  EXPECT_TRUE(std::regex_match(auth["data"]["approle/"]["accessor"].get<std::string>(),
                               std::regex("auth_approle_[0-9a-f]{8}")));
  const json tune = Json(Send("GET", "/v1/sys/auth/approle/tune", "", root))["data"];
  EXPECT_EQ(tune["token_type"], "default-service");
  EXPECT_EQ(Send("POST", "/v1/sys/auth/approle/tune", R"({"max_lease_ttl":"2h"})", root).status,
            204);
  EXPECT_EQ(Json(Send("GET", "/v1/sys/auth/approle/tune", "", root))["data"]["max_lease_ttl"],
            7200);

  const std::string approle_token = TokenWith({"default"}, "auth/approle/login");
  const std::string other_token = TokenWith({"default"}, "auth/token/create");
  ASSERT_EQ(Send("GET", "/v1/auth/token/lookup-self", "", approle_token).status, 200);
  EXPECT_EQ(Send("DELETE", "/v1/sys/auth/approle", "", root).status, 204);
  EXPECT_EQ(Send("GET", "/v1/auth/token/lookup-self", "", approle_token).status, 403);
  EXPECT_EQ(Send("GET", "/v1/auth/token/lookup-self", "", other_token).status, 200);
  EXPECT_FALSE(Json(Send("GET", "/v1/sys/auth", "", root))["data"].contains("approle/"));
  EXPECT_EQ(Send("POST", "/v1/auth/approle/login", "{}").status, 403) << "no mount any more";
  EXPECT_EQ(Send("DELETE", "/v1/sys/auth/approle", "", root).status, 204);
}

TEST_F(CoreTest, PolicyCrud) {
  const std::string root = Init();
  const std::string hcl = "# team policy\npath \"kv/*\" {\n  capabilities = [\"read\"]\n}\n";
  auto response = Send("PUT", "/v1/sys/policy/Team", json{{"policy", hcl}}.dump(), root);
  ASSERT_EQ(response.status, 200);
  EXPECT_EQ(Json(response)["warnings"], json({"policy name was converted to team"}));
  auto read = Json(Send("GET", "/v1/sys/policy/team", "", root));
  EXPECT_EQ(read["data"], json({{"name", "team"}, {"rules", hcl}}));
  EXPECT_EQ(read["rules"], hcl) << "sys/policy is injected";
  auto acl = Json(Send("GET", "/v1/sys/policies/acl/team", "", root));
  EXPECT_EQ(acl["data"], json({{"name", "team"}, {"policy", hcl}}));
  EXPECT_FALSE(acl.contains("policy"));
  EXPECT_EQ(
      Json(Send("GET", "/v1/sys/policy", "", root))["data"],
      json({{"keys", {"default", "team", "root"}}, {"policies", {"default", "team", "root"}}}));
  EXPECT_EQ(Json(Send("LIST", "/v1/sys/policies/acl", "", root))["data"],
            json({{"keys", {"default", "team", "root"}}}));
  EXPECT_EQ(Json(Send("GET", "/v1/sys/policies/acl?list=true", "", root))["data"]["keys"].size(),
            3u);
  // Legacy `rules` with its warning.
  response = Send("PUT", "/v1/sys/policy/legacy", json{{"rules", hcl}}.dump(), root);
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(Json(response)["warnings"].size(), 1u);

  const auto error = [&](const std::string& method, const std::string& target, const json& body) {
    const auto r = Send(method, target, body.dump(), root);
    EXPECT_EQ(r.status, 400) << target << " " << r.body;
    return Json(r)["errors"][0].get<std::string>();
  };
  EXPECT_EQ(error("DELETE", "/v1/sys/policy/default", json::object()),
            "cannot delete \"default\" policy");
  EXPECT_EQ(error("DELETE", "/v1/sys/policies/acl/root", json::object()),
            "cannot delete \"root\" policy");
  EXPECT_EQ(error("PUT", "/v1/sys/policy/root", {{"policy", hcl}}),
            "cannot update \"root\" policy");
  EXPECT_EQ(error("PUT", "/v1/sys/policy/x", json::object()),
            "'policy' parameter not supplied or empty");
  error("PUT", "/v1/sys/policy/x", {{"policy", R"(path "a" { capabilities = ["fly"] })"}});
  EXPECT_EQ(Send("GET", "/v1/sys/policy/x", "", root).status, 404);

  EXPECT_EQ(Send("DELETE", "/v1/sys/policy/team", "", root).status, 204);
  EXPECT_EQ(Send("GET", "/v1/sys/policy/team", "", root).status, 404);
  EXPECT_EQ(Send("DELETE", "/v1/sys/policy/team", "", root).status, 204);
  // default can be edited.
  ASSERT_EQ(Send("PUT", "/v1/sys/policies/acl/default", json{{"policy", hcl}}.dump(), root).status,
            204);
  EXPECT_EQ(Json(Send("GET", "/v1/sys/policies/acl/default", "", root))["data"]["policy"], hcl);
  const auto event = LastEventFor("sys/policies/acl/default", "sys.policy.write");
  ASSERT_TRUE(event.has_value());
  EXPECT_EQ(event->details["name"], "default");
}

TEST_F(CoreTest, CapabilitiesSelf) {
  const std::string root = Init();
  PutPolicy(root, "p", R"(
path "kv/data/*" { capabilities = ["read", "list"] }
path "kv/data/secret" { capabilities = ["deny"] })");
  const std::string token = TokenWith({"default", "p"});
  auto response = Send("POST", "/v1/sys/capabilities-self",
                       R"({"paths":["kv/data/a","kv/data/secret","/other"]})", token);
  ASSERT_EQ(response.status, 200) << response.body;
  json body = Json(response);
  EXPECT_EQ(
      body["data"],
      json({{"kv/data/a", {"list", "read"}}, {"kv/data/secret", {"deny"}}, {"/other", {"deny"}}}))
      << "sorted, as Vault answers";
  EXPECT_EQ(body["kv/data/a"], json({"list", "read"})) << "injected";
  body = Json(Send("POST", "/v1/sys/capabilities-self", R"({"path":"kv/data/a"})", token));
  EXPECT_EQ(body["data"]["capabilities"], json({"list", "read"}));
  body = Json(Send("POST", "/v1/sys/capabilities-self", R"({"paths":"kv/data/a"})", root));
  EXPECT_EQ(body["data"]["capabilities"], json({"root"}));
  EXPECT_EQ(Send("POST", "/v1/sys/capabilities-self", "{}", token).status, 400);
  EXPECT_EQ(
      Send("POST", "/v1/sys/capabilities-self", R"({"paths":["a"]})", TokenWith({"p"})).status, 403)
      << "needs update on sys/capabilities-self (the default policy grants it)";
}

TEST_F(CoreTest, InternalUiMounts) {
  const std::string root = Init();
  Mount(root, "secret", {{"type", "kv"}, {"options", {{"version", "2"}}}});
  Mount(root, "transit", {{"type", "transit"}});
  PutPolicy(root, "p", R"(path "secret/data/app/*" { capabilities = ["read"] })");
  const std::string token = TokenWith({"p"});

  auto response = Send("GET", "/v1/sys/internal/ui/mounts/secret/app/config", "", token);
  ASSERT_EQ(response.status, 200) << response.body;
  json data = Json(response)["data"];
  EXPECT_EQ(data["path"], "secret/");
  EXPECT_EQ(data["type"], "kv");
  EXPECT_EQ(data["options"]["version"], "2");
  EXPECT_FALSE(Json(response).contains("path")) << "not injected";
  EXPECT_EQ(Json(Send("GET", "/v1/sys/internal/ui/mounts/secret", "", token))["data"]["path"],
            "secret/");

  response = Send("GET", "/v1/sys/internal/ui/mounts/transit", "", token);
  EXPECT_EQ(response.status, 403);
  EXPECT_EQ(Json(response)["errors"][0],
            "preflight capability check returned 403, please ensure client's policies grant "
            "access to path \"transit/\"");
  EXPECT_EQ(Send("GET", "/v1/sys/internal/ui/mounts/nomount/x", "", token).status, 403);
  EXPECT_EQ(Send("GET", "/v1/sys/internal/ui/mounts/secret/app").status, 403) << "no token";
  EXPECT_EQ(Send("GET", "/v1/sys/internal/ui/mounts/secret/app", "", "lbx.bogus").status, 403);
  EXPECT_EQ(Send("GET", "/v1/sys/internal/ui/mounts/transit", "", root).status, 200);

  data = Json(Send("GET", "/v1/sys/internal/ui/mounts", "", token))["data"];
  EXPECT_TRUE(data["secret"].contains("secret/"));
  EXPECT_FALSE(data["secret"].contains("transit/"));
  data = Json(Send("GET", "/v1/sys/internal/ui/mounts"))["data"];
  EXPECT_EQ(data, json({{"secret", json::object()}, {"auth", json::object()}}));
  data = Json(Send("GET", "/v1/sys/internal/ui/mounts", "", root))["data"];
  EXPECT_TRUE(data["auth"].contains("token/"));
}

TEST_F(CoreTest, AuditLogPublicKeyAndHead) {
  const std::string root = Init();
  const auto key = Send("GET", "/v1/sys/audit-log/public-key");
  ASSERT_EQ(key.status, 200);
  EXPECT_EQ(Json(key), audit_->PublicJwks());
  const auto head = Send("GET", "/v1/sys/audit-log/head", "", root);
  ASSERT_EQ(head.status, 200);
  const json data = Json(head)["data"];
  EXPECT_EQ(data["log_id"], audit_->head().log_id);
  EXPECT_GE(data["seq"].get<std::uint64_t>(), 1u);
  EXPECT_EQ(data["hash"].get<std::string>().size(), 64u);
  EXPECT_TRUE(data["checkpoint"].is_string());
  EXPECT_EQ(Send("GET", "/v1/sys/audit-log/head").status, 403);
}

TEST_F(CoreTest, CubbyholeAnswers404AndUnknownSysPaths404) {
  const std::string root = Init();
  EXPECT_EQ(Send("GET", "/v1/cubbyhole/x", "", root).status, 404);
  const auto unknown = Send("GET", "/v1/sys/nothing-here", "", root);
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(Json(unknown), json({{"errors", {"unsupported path"}}}));
  EXPECT_EQ(Send("DELETE", "/v1/sys/mounts", "", root).status, 405);
  EXPECT_EQ(Send("GET", "/v1/sys/unseal").status, 405);
}

}  // namespace
}  // namespace lockbox::core::testing
