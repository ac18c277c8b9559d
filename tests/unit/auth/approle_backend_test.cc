#include "server/auth/approle_backend.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

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

constexpr std::string_view kMount = "auth/approle/";

class AppRoleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(env_.Open());
    TokenStoreOptions token_options;
    token_options.clock = [this] { return now_.load(); };
    auto tokens = TokenStore::Open(env_.store(), env_.audit(), token_options);
    ASSERT_TRUE(tokens.ok()) << tokens.status().ToString();
    tokens_ = std::move(*tokens);
    mount_.path = std::string(kMount);
    mount_.type = "approle";
    mount_.uuid = "8c2f5a0e-0d51-4a63-9b1f-approle0001";
    mount_.accessor = "auth_approle_1234";
    ASSERT_NO_FATAL_FAILURE(OpenBackend());
  }

  void OpenBackend() {
    AppRoleOptions options;
    options.clock = [this] { return now_.load(); };
    options.audit_hmac = [this](std::string_view value) { return env_.audit().Hmac(value); };
    auto backend = NewAppRoleBackend(mount_, *tokens_, env_.store(), env_.audit(), options);
    ASSERT_TRUE(backend.ok()) << backend.status().ToString();
    backend_ = std::move(*backend);
  }

  StatusOr<Response> Call(Operation op, const std::string& path, json data = json::object(),
                          const std::string& remote_addr = "127.0.0.1") {
    logical::Request request = MakeRequest(op, mount_.path, path, std::move(data));
    request.remote_addr = remote_addr;
    request.caller.remote_addr = remote_addr;
    return backend_->HandleRequest(request);
  }

  // A write that must succeed with 204 (no body).
  void MustWrite(const std::string& path, json data) {
    auto response = Call(Operation::kUpdate, path, std::move(data));
    ASSERT_TRUE(response.ok()) << path << ": " << response.status().ToString();
    EXPECT_FALSE(response->data.has_value());
  }

  json MustRead(const std::string& path) {
    auto response = Call(Operation::kRead, path);
    EXPECT_TRUE(response.ok()) << path << ": " << response.status().ToString();
    if (!response.ok() || !response->data) return json();
    return *response->data;
  }

  std::string RoleId(const std::string& role) {
    return MustRead("role/" + role + "/role-id").value("role_id", "");
  }

  json MustGenerate(const std::string& role, json data = json::object()) {
    auto response = Call(Operation::kUpdate, "role/" + role + "/secret-id", std::move(data));
    EXPECT_TRUE(response.ok()) << response.status().ToString();
    if (!response.ok() || !response->data) return json();
    return *response->data;
  }

  StatusOr<Response> Login(const std::string& role_id, const std::string& secret_id,
                           const std::string& remote_addr = "127.0.0.1") {
    json data = {{"role_id", role_id}};
    if (!secret_id.empty()) data["secret_id"] = secret_id;
    return Call(Operation::kUpdate, "login", std::move(data), remote_addr);
  }

  // A login that is refused exactly as Vault refuses bad credentials.
  void ExpectRefused(const StatusOr<Response>& response) {
    ASSERT_FALSE(response.ok());
    EXPECT_EQ(response.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(response.status().message(), "invalid role or secret ID");
  }

  std::size_t EventCount() { return env_.Events().size(); }

  std::atomic<Clock::time_point> now_{Clock::time_point(seconds(1'800'000'000))};
  testing::MethodsTestEnv env_;
  std::unique_ptr<TokenStore> tokens_;
  logical::MountEntry mount_;
  std::unique_ptr<logical::Backend> backend_;
};

// --- roles ---

TEST_F(AppRoleTest, NewRoleReadsBackWithVaultDefaults) {
  MustWrite("role/web", json::object());
  EXPECT_EQ(MustRead("role/web"), json::parse(R"({
    "bind_secret_id": true, "local_secret_ids": false, "secret_id_bound_cidrs": [],
    "secret_id_num_uses": 0, "secret_id_ttl": 0, "token_bound_cidrs": [],
    "token_explicit_max_ttl": 0, "token_max_ttl": 0, "token_no_default_policy": false,
    "token_num_uses": 0, "token_period": 0, "token_policies": [], "token_ttl": 0,
    "token_type": "default"})"));
}

TEST_F(AppRoleTest, RoleFieldsAcceptVaultWeakTyping) {
  // What hvac's create_or_update_approle sends: lists as "a,b", numbers as strings.
  MustWrite("role/Web", {{"bind_secret_id", "true"},
                         {"secret_id_bound_cidrs", "127.0.0.1/32, 10.1.2.3/8"},
                         {"secret_id_num_uses", "5"},
                         {"secret_id_ttl", "10m"},
                         {"local_secret_ids", true},
                         {"token_ttl", 600},
                         {"token_max_ttl", "1h30m"},
                         {"token_explicit_max_ttl", "2h"},
                         {"token_period", "0"},
                         {"token_policies", "Ops,dev,ops"},
                         {"token_bound_cidrs", json::array({"192.168.0.0/16"})},
                         {"token_no_default_policy", 1},
                         {"token_num_uses", 2},
                         {"token_type", "service"},
                         {"unknown_field", "ignored"}});
  const json role = MustRead("role/web");  // role names are case-insensitive, as in Vault
  EXPECT_EQ(role["secret_id_bound_cidrs"], json::array({"127.0.0.1/32", "10.0.0.0/8"}));
  EXPECT_EQ(role["secret_id_num_uses"], 5);
  EXPECT_EQ(role["secret_id_ttl"], 600);
  EXPECT_EQ(role["local_secret_ids"], true);
  EXPECT_EQ(role["token_ttl"], 600);
  EXPECT_EQ(role["token_max_ttl"], 5400);
  EXPECT_EQ(role["token_explicit_max_ttl"], 7200);
  EXPECT_EQ(role["token_policies"], json::array({"dev", "ops"}));
  EXPECT_EQ(role["token_bound_cidrs"], json::array({"192.168.0.0/16"}));
  EXPECT_EQ(role["token_no_default_policy"], true);
  EXPECT_EQ(role["token_num_uses"], 2);
  EXPECT_EQ(role["token_type"], "service");
  EXPECT_FALSE(role.contains("policies"));

  // An update changes only what it names; local_secret_ids is fixed at creation.
  MustWrite("role/web", {{"token_ttl", "5m"}, {"local_secret_ids", false}});
  const json updated = MustRead("role/web");
  EXPECT_EQ(updated["token_ttl"], 300);
  EXPECT_EQ(updated["token_max_ttl"], 5400);
  EXPECT_EQ(updated["local_secret_ids"], true);
}

TEST_F(AppRoleTest, LegacyPolicyAndPeriodFieldsShowUp) {
  MustWrite("role/old", {{"policies", "b,a"}, {"period", "1h"}});
  const json role = MustRead("role/old");
  EXPECT_EQ(role["token_policies"], json::array({"a", "b"}));
  EXPECT_EQ(role["policies"], json::array({"a", "b"}));
  EXPECT_EQ(role["token_period"], 3600);
  EXPECT_EQ(role["period"], 3600);
  MustWrite("role/old", {{"token_policies", "c"}});
  EXPECT_FALSE(MustRead("role/old").contains("policies"));
}

TEST_F(AppRoleTest, ListReadDeleteRoles) {
  auto empty = Call(Operation::kList, "role/");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(empty.status().message(), "");

  MustWrite("role/b", json::object());
  MustWrite("role/a", json::object());
  auto list = Call(Operation::kList, "role/");
  ASSERT_TRUE(list.ok());
  EXPECT_EQ((*list->data)["keys"], json::array({"a", "b"}));

  auto deleted = Call(Operation::kDelete, "role/a");
  ASSERT_TRUE(deleted.ok());
  EXPECT_FALSE(deleted->data.has_value());  // 204
  EXPECT_TRUE(deleted->audited);
  auto missing = Call(Operation::kRead, "role/a");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  auto again = Call(Operation::kDelete, "role/a");  // deleting nothing is still 204
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->audited);
}

TEST_F(AppRoleTest, ExistenceCheckAndUnauthenticatedLogin) {
  logical::Request request = MakeRequest(Operation::kUpdate, mount_.path, "role/web");
  auto before = backend_->Exists(request);
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(*before, std::optional<bool>(false));
  MustWrite("role/web", json::object());
  auto after = backend_->Exists(request);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(*after, std::optional<bool>(true));
  request.relative_path = "role/web/secret-id";
  EXPECT_EQ(*backend_->Exists(request), std::optional<bool>());

  EXPECT_TRUE(backend_->IsUnauthenticated("login"));
  EXPECT_FALSE(backend_->IsUnauthenticated("role/web"));
  EXPECT_FALSE(backend_->IsUnauthenticated("role/web/secret-id"));
}

TEST_F(AppRoleTest, MalformedRoleWritesChangeNothing) {
  MustWrite("role/web", {{"token_ttl", "10m"}, {"token_policies", "a"}});
  const json before = MustRead("role/web");
  const std::size_t events_before = EventCount();
  const std::vector<json> bad = {
      {{"bind_secret_id", false}},  // no constraint left
      {{"token_ttl", "ten minutes"}},
      {{"token_ttl", -5}},
      {{"secret_id_num_uses", -1}},
      {{"token_num_uses", "many"}},
      {{"bind_secret_id", "maybe"}},
      {{"secret_id_bound_cidrs", "10.0.0.0/33"}},
      {{"token_bound_cidrs", json::array({1, 2})}},
      {{"token_type", "batch"}},
      {{"token_type", "weird"}},
      {{"token_ttl", "2h"}, {"token_max_ttl", "1h"}},
      {{"token_policies", json::object()}},
      {{"token_policies", "z"}, {"token_ttl", "bad"}},  // a valid field is not applied either
      {{"role_id", ""}},
  };
  for (const json& data : bad) {
    auto response = Call(Operation::kUpdate, "role/web", data);
    ASSERT_FALSE(response.ok()) << data.dump();
    EXPECT_EQ(response.status().code(), StatusCode::kInvalidArgument) << data.dump();
  }
  auto unconstrained = Call(Operation::kUpdate, "role/new", {{"bind_secret_id", false}});
  ASSERT_FALSE(unconstrained.ok());
  EXPECT_NE(unconstrained.status().message().find("at least one constraint"), std::string::npos);
  EXPECT_EQ(MustRead("role/web"), before);
  EXPECT_FALSE(Call(Operation::kRead, "role/new").ok());
  EXPECT_EQ(EventCount(), events_before);
}

TEST_F(AppRoleTest, RoleWithoutSecretIdNeedsCidrs) {
  MustWrite("role/net", {{"bind_secret_id", false}, {"secret_id_bound_cidrs", "10.0.0.0/8"}});
  const std::string role_id = RoleId("net");
  auto ok = Login(role_id, "", "10.9.8.7");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  ExpectRefused(Login(role_id, "", "127.0.0.1"));
}

TEST_F(AppRoleTest, RolePathsRejectBadNamesAndOperations) {
  auto bad_name = Call(Operation::kUpdate, "role/-bad", json::object());
  ASSERT_FALSE(bad_name.ok());
  EXPECT_EQ(bad_name.status().code(), StatusCode::kInvalidArgument);
  auto unknown = Call(Operation::kRead, "role/web/nonsense");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), StatusCode::kNotFound);
  auto elsewhere = Call(Operation::kRead, "other");
  ASSERT_FALSE(elsewhere.ok());
  EXPECT_EQ(elsewhere.status().code(), StatusCode::kNotFound);
  auto wrong_op = Call(Operation::kRead, "login");
  ASSERT_FALSE(wrong_op.ok());
  EXPECT_EQ(wrong_op.status().code(), StatusCode::kUnimplemented);
}

// --- role-id ---

TEST_F(AppRoleTest, RoleIdIsARandomUuidAndCanBeReplaced) {
  MustWrite("role/a", json::object());
  MustWrite("role/b", json::object());
  const std::string a = RoleId("a");
  EXPECT_EQ(a.size(), 36u);
  EXPECT_EQ(a[14], '4');  // version 4
  EXPECT_NE(a, RoleId("b"));

  MustWrite("role/a/role-id", {{"role_id", "custom-role-id"}});
  EXPECT_EQ(RoleId("a"), "custom-role-id");
  // Another role's role_id is refused, by role-id and by role writes alike.
  auto taken = Call(Operation::kUpdate, "role/b/role-id", {{"role_id", "custom-role-id"}});
  ASSERT_FALSE(taken.ok());
  EXPECT_EQ(taken.status().code(), StatusCode::kInvalidArgument);
  auto taken_by_role = Call(Operation::kUpdate, "role/b", {{"role_id", "custom-role-id"}});
  ASSERT_FALSE(taken_by_role.ok());
  auto missing = Call(Operation::kUpdate, "role/a/role-id", json::object());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(), "missing role_id");
  auto no_role = Call(Operation::kUpdate, "role/zzz/role-id", {{"role_id", "x"}});
  ASSERT_FALSE(no_role.ok());
  EXPECT_EQ(no_role.status().code(), StatusCode::kInvalidArgument);
  auto no_role_read = Call(Operation::kRead, "role/zzz/role-id");
  ASSERT_FALSE(no_role_read.ok());
  EXPECT_EQ(no_role_read.status().code(), StatusCode::kNotFound);
}

// --- secret-ids ---

TEST_F(AppRoleTest, GenerateLookupListAndDestroySecretIds) {
  MustWrite("role/web", json::object());
  auto none = Call(Operation::kList, "role/web/secret-id/");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound);

  // hvac sends metadata as a JSON-encoded string and lists as "a,b".
  const json generated =
      MustGenerate("web", {{"metadata", R"({"foo":"bar"})"}, {"cidr_list", "127.0.0.1/32"}});
  const std::string secret_id = generated["secret_id"];
  const std::string accessor = generated["secret_id_accessor"];
  EXPECT_EQ(secret_id.size(), 36u);
  EXPECT_EQ(accessor.size(), 36u);
  EXPECT_EQ(generated["secret_id_ttl"], 0);
  EXPECT_EQ(generated["secret_id_num_uses"], 0);

  auto lookup = Call(Operation::kUpdate, "role/web/secret-id/lookup", {{"secret_id", secret_id}});
  ASSERT_TRUE(lookup.ok()) << lookup.status().ToString();
  const json& data = *lookup->data;
  EXPECT_EQ(data["cidr_list"], json::array({"127.0.0.1/32"}));
  EXPECT_EQ(data["creation_time"], "2027-01-15T08:00:00Z");
  EXPECT_EQ(data["last_updated_time"], "2027-01-15T08:00:00Z");
  EXPECT_EQ(data["expiration_time"], "0001-01-01T00:00:00Z");
  EXPECT_EQ(data["metadata"], json({{"foo", "bar"}}));
  EXPECT_EQ(data["secret_id_accessor"], accessor);
  EXPECT_EQ(data["secret_id_num_uses"], 0);
  EXPECT_EQ(data["secret_id_ttl"], 0);
  EXPECT_EQ(data["token_bound_cidrs"], json::array());
  EXPECT_EQ(data.size(), 9u);

  auto by_accessor = Call(Operation::kUpdate, "role/web/secret-id-accessor/lookup",
                          {{"secret_id_accessor", accessor}});
  ASSERT_TRUE(by_accessor.ok());
  EXPECT_EQ(*by_accessor->data, data);

  const json second = MustGenerate("web");
  auto list = Call(Operation::kList, "role/web/secret-id/");
  ASSERT_TRUE(list.ok());
  std::vector<std::string> expected = {accessor, second["secret_id_accessor"]};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ((*list->data)["keys"], json(expected));

  auto destroyed =
      Call(Operation::kUpdate, "role/web/secret-id/destroy", {{"secret_id", secret_id}});
  ASSERT_TRUE(destroyed.ok());
  EXPECT_FALSE(destroyed->data.has_value());
  EXPECT_TRUE(destroyed->audited);
  auto gone = Call(Operation::kUpdate, "role/web/secret-id/lookup", {{"secret_id", secret_id}});
  ASSERT_TRUE(gone.ok());  // Vault: 204 for an unknown secret-id
  EXPECT_FALSE(gone->data.has_value());
  auto accessor_gone = Call(Operation::kUpdate, "role/web/secret-id-accessor/lookup",
                            {{"secret_id_accessor", accessor}});
  EXPECT_FALSE(accessor_gone.ok());

  auto destroy_by_accessor = Call(Operation::kUpdate, "role/web/secret-id-accessor/destroy",
                                  {{"secret_id_accessor", second["secret_id_accessor"]}});
  ASSERT_TRUE(destroy_by_accessor.ok());
  EXPECT_TRUE(destroy_by_accessor->audited);
  EXPECT_FALSE(Call(Operation::kList, "role/web/secret-id/").ok());
  ExpectRefused(Login(RoleId("web"), second["secret_id"]));
}

TEST_F(AppRoleTest, SecretIdTtlShowsAsExpirationTime) {
  MustWrite("role/web", {{"secret_id_ttl", "1h"}});
  const json generated = MustGenerate("web", {{"ttl", "90s"}});
  EXPECT_EQ(generated["secret_id_ttl"], 90);
  auto lookup = Call(Operation::kUpdate, "role/web/secret-id/lookup",
                     {{"secret_id", generated["secret_id"]}});
  ASSERT_TRUE(lookup.ok());
  EXPECT_EQ((*lookup->data)["expiration_time"], "2027-01-15T08:01:30Z");
  // Without a ttl the role's applies.
  EXPECT_EQ(MustGenerate("web")["secret_id_ttl"], 3600);
}

TEST_F(AppRoleTest, SecretIdRequestsCannotLoosenTheRole) {
  MustWrite("role/web", {{"secret_id_num_uses", 3},
                         {"secret_id_ttl", "1h"},
                         {"secret_id_bound_cidrs", "10.0.0.0/8"},
                         {"token_bound_cidrs", "10.0.0.0/16"}});
  const std::size_t events_before = EventCount();
  const std::vector<json> bad = {
      {{"num_uses", 4}},
      {{"num_uses", 0}},
      {{"num_uses", -1}},
      {{"ttl", "2h"}},
      {{"ttl", 0}},
      {{"cidr_list", "192.168.0.0/24"}},
      {{"cidr_list", "10.0.0.0/7"}},
      {{"token_bound_cidrs", "10.1.0.0/16"}},
      {{"cidr_list", "not-a-cidr"}},
      {{"metadata", "{not json"}},
      {{"metadata", R"({"n": 1})"}},
      {{"metadata", R"(["a"])"}},
  };
  for (const json& data : bad) {
    auto response = Call(Operation::kUpdate, "role/web/secret-id", data);
    ASSERT_FALSE(response.ok()) << data.dump();
    EXPECT_EQ(response.status().code(), StatusCode::kInvalidArgument) << data.dump();
  }
  EXPECT_FALSE(Call(Operation::kList, "role/web/secret-id/").ok());
  EXPECT_EQ(EventCount(), events_before);

  const json ok = MustGenerate("web", {{"num_uses", 2},
                                       {"ttl", "30m"},
                                       {"cidr_list", "10.1.0.0/16"},
                                       {"token_bound_cidrs", "10.0.1.0/24"},
                                       {"metadata", json({{"team", "a"}})}});
  EXPECT_EQ(ok["secret_id_num_uses"], 2);
  EXPECT_EQ(ok["secret_id_ttl"], 1800);
}

TEST_F(AppRoleTest, SecretIdOperationsOnMissingRoleAre400) {
  for (const auto& [op, path] : std::vector<std::pair<Operation, std::string>>{
           {Operation::kUpdate, "role/none/secret-id"},
           {Operation::kList, "role/none/secret-id/"},
           {Operation::kUpdate, "role/none/secret-id/lookup"},
           {Operation::kUpdate, "role/none/secret-id/destroy"}}) {
    auto response = Call(op, path, {{"secret_id", "x"}});
    ASSERT_FALSE(response.ok()) << path;
    EXPECT_EQ(response.status().code(), StatusCode::kInvalidArgument) << path;
    EXPECT_EQ(response.status().message(), "role \"none\" does not exist") << path;
  }
}

TEST_F(AppRoleTest, CustomSecretIds) {
  MustWrite("role/web", json::object());
  auto created = Call(Operation::kUpdate, "role/web/custom-secret-id",
                      {{"secret_id", "my-own-secret-id-123"}});
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ((*created->data)["secret_id"], "my-own-secret-id-123");
  auto duplicate = Call(Operation::kUpdate, "role/web/custom-secret-id",
                        {{"secret_id", "my-own-secret-id-123"}});
  ASSERT_FALSE(duplicate.ok());
  EXPECT_EQ(duplicate.status().code(), StatusCode::kInvalidArgument);
  auto missing = Call(Operation::kUpdate, "role/web/custom-secret-id", json::object());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(), "missing secret_id");
  auto login = Login(RoleId("web"), "my-own-secret-id-123");
  EXPECT_TRUE(login.ok()) << login.status().ToString();
}

TEST_F(AppRoleTest, SecretIdsAreStoredOnlyAsHmacsAndNeverAudited) {
  MustWrite("role/web", json::object());
  const std::string secret_id = MustGenerate("web", {{"num_uses", 5}})["secret_id"];
  ASSERT_TRUE(Login(RoleId("web"), secret_id).ok());
  ExpectRefused(Login(RoleId("web"), secret_id + "x"));

  auto rows = env_.store().Query(
      "SELECT secret_id_hmac, accessor, metadata, cidr_list, token_bound_cidrs "
      "FROM approle_secret_ids",
      {});
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  const store::Blob hmac = *store::GetBlob((*rows)[0], 0);
  EXPECT_EQ(hmac.size(), 32u);
  const std::string stored(hmac.begin(), hmac.end());
  EXPECT_EQ(stored.find(secret_id), std::string::npos);
  for (std::size_t column = 1; column < 5; ++column) {
    EXPECT_EQ(store::GetText((*rows)[0], column)->find(secret_id), std::string::npos);
  }
  EXPECT_EQ(env_.AllAuditText().find(secret_id), std::string::npos);
}

// --- login ---

TEST_F(AppRoleTest, LoginIssuesAServiceTokenWithTheRolesSettings) {
  MustWrite(
      "role/web",
      {{"token_policies", "ops,Dev"}, {"token_num_uses", 7}, {"token_bound_cidrs", "127.0.0.0/8"}});
  const std::string secret_id =
      MustGenerate("web", {{"metadata", R"({"foo":"bar"})"}})["secret_id"];
  auto response = Login(RoleId("web"), secret_id);
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_TRUE(response->audited);
  ASSERT_TRUE(response->auth.has_value());
  const json& auth = *response->auth;
  EXPECT_EQ(auth["policies"], json::array({"default", "dev", "ops"}));
  EXPECT_EQ(auth["token_policies"], json::array({"default", "dev", "ops"}));
  EXPECT_EQ(auth["metadata"], json({{"foo", "bar"}, {"role_name", "web"}}));
  EXPECT_EQ(auth["lease_duration"], 900);  // 15 minutes unless the role says otherwise
  EXPECT_EQ(auth["renewable"], true);
  EXPECT_EQ(auth["token_type"], "service");
  EXPECT_EQ(auth["num_uses"], 7);

  auto entry = tokens_->LookupToken(auth["client_token"].get<std::string>());
  ASSERT_TRUE(entry.ok()) << entry.status().ToString();
  EXPECT_EQ(entry->path, "auth/approle/login");
  EXPECT_EQ(entry->display_name, "approle");
  EXPECT_EQ(entry->explicit_max_ttl, hours(1));
  EXPECT_EQ(entry->creation_ttl, minutes(15));
  EXPECT_EQ(entry->bound_cidrs, std::vector<std::string>{"127.0.0.0/8"});
  EXPECT_TRUE(entry->orphan());
  // The token is usable from the bound network only.
  EXPECT_TRUE(tokens_->Authenticate(auth["client_token"].get<std::string>(), "127.0.0.1").ok());
  EXPECT_FALSE(tokens_->Authenticate(auth["client_token"].get<std::string>(), "10.0.0.1").ok());
}

TEST_F(AppRoleTest, LoginTtlsComeFromTheRoleWhenSet) {
  MustWrite("role/long", {{"token_ttl", "2h"}, {"token_max_ttl", "4h"}, {"token_period", 0}});
  MustWrite("role/nodefault", {{"token_policies", "x"}, {"token_no_default_policy", true}});
  MustWrite("role/capped", {{"token_ttl", "3h"}, {"token_explicit_max_ttl", "90m"}});
  auto long_login = Login(RoleId("long"), MustGenerate("long")["secret_id"]);
  ASSERT_TRUE(long_login.ok());
  EXPECT_EQ((*long_login->auth)["lease_duration"], 7200);
  auto entry = tokens_->LookupAccessor((*long_login->auth)["accessor"].get<std::string>());
  ASSERT_TRUE(entry.ok());
  EXPECT_EQ(entry->explicit_max_ttl, hours(4));

  auto nodefault = Login(RoleId("nodefault"), MustGenerate("nodefault")["secret_id"]);
  ASSERT_TRUE(nodefault.ok());
  EXPECT_EQ((*nodefault->auth)["policies"], json::array({"x"}));

  auto capped = Login(RoleId("capped"), MustGenerate("capped")["secret_id"]);
  ASSERT_TRUE(capped.ok());
  EXPECT_EQ((*capped->auth)["lease_duration"], 5400);
}

TEST_F(AppRoleTest, LoginFailuresAllLookTheSame) {
  MustWrite("role/web", json::object());
  const std::string role_id = RoleId("web");
  const std::string good = MustGenerate("web")["secret_id"];

  auto no_role_id = Call(Operation::kUpdate, "login", {{"secret_id", good}});
  ASSERT_FALSE(no_role_id.ok());
  EXPECT_EQ(no_role_id.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(no_role_id.status().message(), "missing role_id");

  ExpectRefused(Login("no-such-role-id", good));
  ExpectRefused(Login(role_id, "wrong-secret"));
  ExpectRefused(Login(role_id, ""));
  ExpectRefused(Login(role_id, good.substr(0, 35)));

  const std::vector<audit::Event> events = env_.Events();
  std::vector<std::string> reasons;
  for (const audit::Event& event : events) {
    if (event.op != "approle.login") continue;
    EXPECT_EQ(event.outcome, audit::Outcome::kDenied);
    reasons.push_back(event.reason);
    if (event.reason == "unknown role_id") {
      EXPECT_EQ(event.actor, "role:" + env_.audit().Hmac("no-such-role-id"));
    } else {
      EXPECT_EQ(event.actor, "role:web");
    }
  }
  EXPECT_EQ(reasons, (std::vector<std::string>{"unknown role_id", "unknown secret_id",
                                               "missing secret_id", "unknown secret_id"}));
  const std::string audit_text = env_.AllAuditText();
  EXPECT_EQ(audit_text.find(good), std::string::npos);
  EXPECT_EQ(audit_text.find("wrong-secret"), std::string::npos);
  EXPECT_EQ(audit_text.find(role_id), std::string::npos);

  // The good secret-id still works: failures spent nothing.
  EXPECT_TRUE(Login(role_id, good).ok());
}

TEST_F(AppRoleTest, SecretIdUsesAreSpentAndTheLastOneDeletesIt) {
  MustWrite("role/web", json::object());
  const json generated = MustGenerate("web", {{"num_uses", 2}});
  const std::string secret_id = generated["secret_id"];
  ASSERT_TRUE(Login(RoleId("web"), secret_id).ok());
  auto lookup = Call(Operation::kUpdate, "role/web/secret-id/lookup", {{"secret_id", secret_id}});
  ASSERT_TRUE(lookup.ok());
  EXPECT_EQ((*lookup->data)["secret_id_num_uses"], 1);
  ASSERT_TRUE(Login(RoleId("web"), secret_id).ok());
  ExpectRefused(Login(RoleId("web"), secret_id));
  EXPECT_FALSE(Call(Operation::kList, "role/web/secret-id/").ok());

  const std::vector<audit::Event> events = env_.Events();
  int ok_logins = 0;
  for (const audit::Event& event : events) {
    if (event.op == "approle.login" && event.outcome == audit::Outcome::kOk) {
      ++ok_logins;
      EXPECT_EQ(event.details["secret_id_accessor"], generated["secret_id_accessor"]);
    }
  }
  EXPECT_EQ(ok_logins, 2);
}

TEST_F(AppRoleTest, ConcurrentLoginsNeverDoubleSpendAUse) {
  MustWrite("role/web", json::object());
  const std::string role_id = RoleId("web");
  const std::string secret_id = MustGenerate("web", {{"num_uses", 3}})["secret_id"];
  std::atomic<int> succeeded{0};
  std::atomic<int> refused{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      auto response = Login(role_id, secret_id);
      if (response.ok()) {
        ++succeeded;
      } else if (response.status().message() == "invalid role or secret ID") {
        ++refused;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(succeeded.load(), 3);
  EXPECT_EQ(refused.load(), 5);
  auto accessors = tokens_->ListAccessors();
  ASSERT_TRUE(accessors.ok());
  EXPECT_EQ(accessors->size(), 3u);
}

TEST_F(AppRoleTest, AFailedTokenIssueIsAuditedAndTheUseStaysSpent) {
  // The token store refuses a token without policies: a role that grants none fails at issue.
  MustWrite("role/nopolicy", {{"token_no_default_policy", true}});
  const std::string secret_id = MustGenerate("nopolicy", {{"num_uses", 2}})["secret_id"];
  auto response = Login(RoleId("nopolicy"), secret_id);
  ASSERT_FALSE(response.ok());
  EXPECT_NE(response.status().message(), "invalid role or secret ID");
  auto lookup =
      Call(Operation::kUpdate, "role/nopolicy/secret-id/lookup", {{"secret_id", secret_id}});
  ASSERT_TRUE(lookup.ok());
  EXPECT_EQ((*lookup->data)["secret_id_num_uses"], 1);  // fail closed: the use is gone
  const std::vector<audit::Event> events = env_.Events();
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events[events.size() - 2].op, "approle.login");
  EXPECT_EQ(events[events.size() - 2].outcome, audit::Outcome::kOk);
  EXPECT_EQ(events.back().op, "approle.login");
  EXPECT_EQ(events.back().outcome, audit::Outcome::kError);
  EXPECT_TRUE(events.back().reason.starts_with("token issue failed: ")) << events.back().reason;
  EXPECT_EQ(events.back().actor, "role:nopolicy");
}

TEST_F(AppRoleTest, ExpiredSecretIdsAreRefused) {
  MustWrite("role/web", json::object());
  const std::string secret_id = MustGenerate("web", {{"ttl", "10m"}})["secret_id"];
  now_ = now_.load() + minutes(9) + seconds(59);
  ASSERT_TRUE(Login(RoleId("web"), secret_id).ok());
  now_ = now_.load() + seconds(1);
  ExpectRefused(Login(RoleId("web"), secret_id));
  EXPECT_EQ(env_.Events().back().reason, "secret_id expired");
}

TEST_F(AppRoleTest, CidrBindingsAreEnforced) {
  MustWrite("role/web", {{"secret_id_bound_cidrs", "10.0.0.0/8,2001:db8::/32"}});
  const std::string role_id = RoleId("web");
  const std::string any = MustGenerate("web")["secret_id"];
  const std::string narrow = MustGenerate("web", {{"cidr_list", "10.1.0.0/16"}})["secret_id"];
  EXPECT_TRUE(Login(role_id, any, "10.200.0.1").ok());
  EXPECT_TRUE(Login(role_id, any, "2001:db8::5").ok());
  EXPECT_TRUE(Login(role_id, any, "::ffff:10.0.0.1").ok());
  ExpectRefused(Login(role_id, any, "127.0.0.1"));
  EXPECT_EQ(env_.Events().back().reason, "client address not in the role's secret_id_bound_cidrs");
  ExpectRefused(Login(role_id, any, "not-an-address"));
  EXPECT_TRUE(Login(role_id, narrow, "10.1.2.3").ok());
  ExpectRefused(Login(role_id, narrow, "10.2.0.1"));
  EXPECT_EQ(env_.Events().back().reason, "client address not in the secret_id's cidr_list");
}

TEST_F(AppRoleTest, DeletingARoleDeletesItsSecretIds) {
  MustWrite("role/web", json::object());
  const std::string role_id = RoleId("web");
  const std::string secret_id = MustGenerate("web")["secret_id"];
  ASSERT_TRUE(Call(Operation::kDelete, "role/web").ok());
  MustWrite("role/web", {{"role_id", role_id}});
  ExpectRefused(Login(role_id, secret_id));
  EXPECT_FALSE(Call(Operation::kList, "role/web/secret-id/").ok());
}

TEST_F(AppRoleTest, StateChangesAreAuditedWithoutSecrets) {
  MustWrite("role/web", json::object());
  const json generated = MustGenerate("web");
  ASSERT_TRUE(Call(Operation::kUpdate, "role/web/secret-id/destroy",
                   {{"secret_id", generated["secret_id"]}})
                  .ok());
  ASSERT_TRUE(Call(Operation::kDelete, "role/web").ok());
  std::vector<std::string> ops;
  for (const audit::Event& event : env_.Events()) {
    if (!event.op.starts_with("approle.")) continue;
    ops.push_back(event.op);
    EXPECT_EQ(event.actor, "accessor-admin");
    EXPECT_EQ(event.outcome, audit::Outcome::kOk);
  }
  EXPECT_EQ(ops, (std::vector<std::string>{"approle.role.create", "approle.secret_id.create",
                                           "approle.secret_id.destroy", "approle.role.delete"}));
  const std::vector<audit::Event> events = env_.Events();
  for (const audit::Event& event : events) {
    if (event.op == "approle.secret_id.create") {
      EXPECT_EQ(event.details["secret_id_accessor"], generated["secret_id_accessor"]);
    }
  }
  EXPECT_EQ(env_.AllAuditText().find(generated["secret_id"].get<std::string>()), std::string::npos);
}

TEST_F(AppRoleTest, RemountKeepsDataAndPurgeDeletesIt) {
  MustWrite("role/web", json::object());
  const std::string role_id = RoleId("web");
  const std::string secret_id = MustGenerate("web")["secret_id"];

  mount_.path = "auth/machines/";
  backend_->Remounted(mount_);
  auto login = Login(role_id, secret_id);
  ASSERT_TRUE(login.ok()) << login.status().ToString();
  auto entry = tokens_->LookupAccessor((*login->auth)["accessor"].get<std::string>());
  ASSERT_TRUE(entry.ok());
  EXPECT_EQ(entry->path, "auth/machines/login");
  EXPECT_EQ(entry->display_name, "machines");

  // A backend rebuilt for the same mount (restart) sees the same roles.
  ASSERT_NO_FATAL_FAILURE(OpenBackend());
  EXPECT_EQ(RoleId("web"), role_id);

  ASSERT_TRUE(backend_->Purge().ok());
  EXPECT_FALSE(Call(Operation::kRead, "role/web").ok());
  ExpectRefused(Login(role_id, secret_id));
  auto rows = env_.store().Query("SELECT COUNT(*) FROM approle_secret_ids", {});
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(*store::GetInt((*rows)[0], 0), 0);
  EXPECT_EQ(env_.Events().back().op, "approle.login");  // the refusal after the purge
  ASSERT_TRUE(backend_->Purge().ok());                  // idempotent
}

TEST_F(AppRoleTest, MountsDoNotSeeEachOthersRoles) {
  MustWrite("role/web", json::object());
  logical::MountEntry other = mount_;
  other.path = "auth/other/";
  other.uuid = "another-uuid";
  auto backend = NewAppRoleBackend(other, *tokens_, env_.store(), env_.audit());
  ASSERT_TRUE(backend.ok());
  auto read = (*backend)->HandleRequest(MakeRequest(Operation::kRead, other.path, "role/web"));
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace lockbox::auth
