#include "server/auth/token_backend.h"

#include <gtest/gtest.h>

#include <set>

#include "tests/unit/auth/token_test_env.h"

namespace lockbox::auth {
namespace {

using logical::Operation;
using logical::Request;
using logical::Response;
using nlohmann::json;
using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

class TokenBackendTest : public TokenTestBase {
 protected:
  void SetUp() override {
    TokenTestBase::SetUp();
    TokenBackendOptions options;
    options.default_ttl = hours(768);
    options.max_ttl = hours(768);
    options_.max_ttl = hours(768);
    options_.default_ttl = hours(768);
    OpenTokens();
    auto b = NewTokenBackend(*tokens_, *store_, *audit_, options);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    backend_ = std::move(*b);
    root_ = MustIssueRoot();
  }

  // A request as the router hands it over: authenticated as `token`, sudo for root.
  Request Req(Operation op, std::string relative_path, json data, const std::string& token,
              bool sudo = false) {
    Request req;
    req.operation = op;
    req.mount_point = "auth/token/";
    req.relative_path = std::move(relative_path);
    req.path = req.mount_point + req.relative_path;
    req.data = std::move(data);
    req.client_token = token;
    req.request_id = "req-42";
    auto principal = tokens_->LookupToken(token);
    if (principal.ok()) {
      req.principal.accessor = principal->accessor;
      req.principal.policies = principal->policies;
      req.principal.root = principal->policies == std::vector<std::string>{"root"};
      req.caller.actor = principal->accessor;
    }
    req.sudo = sudo || req.principal.root;
    req.caller.request_id = req.request_id;
    return req;
  }

  StatusOr<Response> Call(Operation op, std::string path, json data, const std::string& token,
                          bool sudo = false) {
    return backend_->HandleRequest(Req(op, std::move(path), std::move(data), token, sudo));
  }

  // POST auth/token/<path>; returns the auth block of a successful create.
  json MustCreate(const std::string& path, json data, const std::string& token, bool sudo = false) {
    auto r = Call(Operation::kUpdate, path, std::move(data), token, sudo);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return json::object();
    EXPECT_TRUE(r->auth.has_value());
    EXPECT_FALSE(r->data.has_value());
    EXPECT_TRUE(r->audited);
    return r->auth.value_or(json::object());
  }

  static void ExpectError(const StatusOr<Response>& r, StatusCode code, std::string_view message) {
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), code) << r.status().ToString();
    EXPECT_EQ(r.status().message(), message);
  }

  static bool IsNoContent(const StatusOr<Response>& r) {
    return r.ok() && !r->data && !r->auth && r->warnings.empty() && r->status == 0;
  }

  std::unique_ptr<logical::Backend> backend_;
  IssuedToken root_;
};

TEST_F(TokenBackendTest, CreateUnderRootHasVaultsAuthBlock) {
  // hvac: create(ttl="30m", explicit_max_ttl="5m") under root → lease_duration 300.
  const json auth =
      MustCreate("create", {{"ttl", "30m"}, {"explicit_max_ttl", "5m"}}, root_.client_token);
  EXPECT_TRUE(auth["client_token"].get<std::string>().starts_with("lbx."));
  EXPECT_EQ(auth["policies"], json::array({"root"}));
  EXPECT_EQ(auth["token_policies"], json::array({"root"}));
  EXPECT_TRUE(auth["metadata"].is_null());
  EXPECT_EQ(auth["lease_duration"], 300);
  EXPECT_EQ(auth["renewable"], true);
  EXPECT_EQ(auth["entity_id"], "");
  EXPECT_EQ(auth["token_type"], "service");
  EXPECT_EQ(auth["orphan"], false);
  EXPECT_TRUE(auth["mfa_requirement"].is_null());
  EXPECT_EQ(auth["num_uses"], 0);
  EXPECT_EQ(auth.size(), 12u);
  // A root child without ttl never expires (its root parent does not either).
  const json forever = MustCreate("create", json::object(), root_.client_token);
  EXPECT_EQ(forever["lease_duration"], 0);
  EXPECT_EQ(forever["renewable"], false);
}

TEST_F(TokenBackendTest, PoliciesFollowVaultsRules) {
  // Sudo caller: policies as asked, plus default, sorted and lower-cased.
  const json a = MustCreate("create", {{"policies", "Foo,bar"}}, root_.client_token);
  EXPECT_EQ(a["policies"], json::array({"bar", "default", "foo"}));
  EXPECT_EQ(a["lease_duration"], 768 * 3600);  // the mount's default TTL
  const std::string a_token = a["client_token"];

  // Non-sudo caller: inherit when omitted; subsets allowed; anything else refused.
  EXPECT_EQ(MustCreate("create", json::object(), a_token)["policies"],
            json::array({"bar", "default", "foo"}));
  EXPECT_EQ(MustCreate("create", {{"policies", json::array({"foo"})}}, a_token)["policies"],
            json::array({"default", "foo"}));
  EXPECT_EQ(MustCreate("create", {{"policies", json::array({"foo"})}, {"no_default_policy", true}},
                       a_token)["policies"],
            json::array({"foo"}));
  const auto before = TokenRows();
  ExpectError(
      Call(Operation::kUpdate, "create", {{"policies", json::array({"foo", "baz"})}}, a_token),
      StatusCode::kInvalidArgument, "child policies must be subset of parent");
  ExpectError(Call(Operation::kUpdate, "create", {{"policies", json::array({"root"})}}, a_token),
              StatusCode::kInvalidArgument, "child policies must be subset of parent");
  // Even with sudo, root only comes from a root parent.
  ExpectError(Call(Operation::kUpdate, "create", {{"policies", json::array({"root"})}}, a_token,
                   /*sudo=*/true),
              StatusCode::kInvalidArgument,
              "root tokens may not be created without parent token being root");
  ExpectError(
      Call(Operation::kUpdate, "create", {{"policies", "response-wrapping"}}, root_.client_token),
      StatusCode::kInvalidArgument, "cannot assign policy \"response-wrapping\"");
  EXPECT_EQ(TokenRows(), before);
}

TEST_F(TokenBackendTest, SudoOnlyFieldsAreRefusedWithoutSudo) {
  const std::string user =
      MustCreate("create", {{"policies", "app"}}, root_.client_token)["client_token"];
  ExpectError(Call(Operation::kUpdate, "create", {{"id", "custom"}}, user),
              StatusCode::kInvalidArgument, "root or sudo privileges required to specify token id");
  ExpectError(Call(Operation::kUpdate, "create", {{"no_parent", true}}, user),
              StatusCode::kInvalidArgument,
              "root or sudo privileges required to create orphan token");
  ExpectError(Call(Operation::kUpdate, "create", {{"period", "1h"}}, user),
              StatusCode::kInvalidArgument,
              "root or sudo privileges required to create periodic token");

  const json custom = MustCreate(
      "create", {{"id", "custom-id"}, {"no_parent", true}, {"policies", "app"}, {"period", "1h"}},
      root_.client_token);
  EXPECT_EQ(custom["client_token"], "custom-id");
  EXPECT_EQ(custom["orphan"], true);
  EXPECT_EQ(custom["lease_duration"], 3600);
  EXPECT_TRUE(Authenticates("custom-id"));
}

TEST_F(TokenBackendTest, CreateFieldsAreWeaklyTypedAndApplied) {
  const json auth = MustCreate("create",
                               {{"ttl", 90},
                                {"renewable", "false"},
                                {"num_uses", "3"},
                                {"display_name", "my app!"},
                                {"meta", {{"team", "blue"}, {"n", 2}}}},
                               root_.client_token);
  EXPECT_EQ(auth["lease_duration"], 90);
  EXPECT_EQ(auth["renewable"], false);
  EXPECT_EQ(auth["num_uses"], 3);
  EXPECT_EQ(auth["metadata"], json({{"team", "blue"}, {"n", "2"}}));
  auto entry = tokens_->LookupToken(auth["client_token"].get<std::string>());
  ASSERT_TRUE(entry.ok());
  EXPECT_EQ(entry->display_name, "token-my-app");
  EXPECT_EQ(entry->path, "auth/token/create");
  // The legacy "lease" field is the ttl.
  EXPECT_EQ(MustCreate("create", {{"lease", "2m"}}, root_.client_token)["lease_duration"], 120);

  const auto before = TokenRows();
  auto bad = Call(Operation::kUpdate, "create", {{"ttl", "soon"}}, root_.client_token);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  ExpectError(Call(Operation::kUpdate, "create", {{"num_uses", -1}}, root_.client_token),
              StatusCode::kInvalidArgument, "number of uses cannot be negative");
  ExpectError(Call(Operation::kUpdate, "create", {{"type", "batch"}}, root_.client_token),
              StatusCode::kInvalidArgument, "batch tokens are not supported");
  EXPECT_EQ(TokenRows(), before);
}

TEST_F(TokenBackendTest, RestrictedUseTokensCannotCreateChildren) {
  const std::string limited = MustCreate("create", {{"policies", "app"}, {"num_uses", 5}},
                                         root_.client_token)["client_token"];
  ExpectError(Call(Operation::kUpdate, "create", json::object(), limited),
              StatusCode::kInvalidArgument, "restricted use token cannot generate child tokens");
  // Nor can a token whose last use is the create request itself (spent, num_uses -1).
  const std::string once = MustCreate("create", {{"policies", "app"}, {"num_uses", 1}},
                                      root_.client_token)["client_token"];
  ASSERT_TRUE(tokens_->Authenticate(once, "127.0.0.1")->last_use);
  const auto rows = TokenRows();
  ExpectError(Call(Operation::kUpdate, "create", json::object(), once),
              StatusCode::kInvalidArgument, "restricted use token cannot generate child tokens");
  EXPECT_EQ(TokenRows(), rows);
}

TEST_F(TokenBackendTest, OrphansAndExpiringRootParents) {
  EXPECT_EQ(MustCreate("create-orphan", json::object(), root_.client_token)["orphan"], true);
  const std::string expiring_root =
      MustCreate("create", {{"ttl", "1h"}}, root_.client_token)["client_token"];
  ExpectError(Call(Operation::kUpdate, "create", json::object(), expiring_root),
              StatusCode::kInvalidArgument,
              "expiring root tokens cannot create non-expiring root tokens");
  ExpectError(Call(Operation::kUpdate, "create", json::object(), "lbx.unknown"),
              StatusCode::kInvalidArgument, "parent token lookup failed: no parent found");
}

TEST_F(TokenBackendTest, LookupShapes) {
  const json auth = MustCreate(
      "create", {{"policies", "app"}, {"ttl", "1h"}, {"meta", {{"k", "v"}}}}, root_.client_token);
  const std::string token = auth["client_token"];
  now_ += seconds(100);
  for (const auto& [op, path, data] :
       {std::tuple{Operation::kRead, "lookup-self", json::object()},
        std::tuple{Operation::kUpdate, "lookup-self", json::object()},
        std::tuple{Operation::kUpdate, "lookup", json{{"token", token}}},
        std::tuple{Operation::kRead, "lookup", json{{"token", token}}}}) {
    SCOPED_TRACE(path);
    const std::string caller = std::string(path) == "lookup-self" ? token : root_.client_token;
    auto r = Call(op, path, data, caller);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_TRUE(r->data.has_value());
    const json& d = *r->data;
    std::set<std::string> keys;
    for (const auto& [k, v] : d.items()) keys.insert(k);
    EXPECT_EQ(keys, (std::set<std::string>{
                        "accessor", "creation_time", "creation_ttl", "display_name", "entity_id",
                        "expire_time", "explicit_max_ttl", "id", "issue_time", "meta", "num_uses",
                        "orphan", "path", "policies", "renewable", "ttl", "type"}));
    EXPECT_EQ(d["id"], token);
    EXPECT_EQ(d["accessor"], auth["accessor"]);
    EXPECT_EQ(d["creation_time"], 1'800'000'000);
    EXPECT_EQ(d["creation_ttl"], 3600);
    EXPECT_EQ(d["ttl"], 3500);
    EXPECT_EQ(d["expire_time"], "2027-01-15T09:00:00Z");
    EXPECT_EQ(d["issue_time"], "2027-01-15T08:00:00Z");
    EXPECT_EQ(d["policies"], json::array({"app", "default"}));
    EXPECT_EQ(d["meta"], json({{"k", "v"}}));
    EXPECT_EQ(d["display_name"], "token");
    EXPECT_EQ(d["path"], "auth/token/create");
    EXPECT_EQ(d["orphan"], false);
    EXPECT_EQ(d["renewable"], true);
    EXPECT_EQ(d["type"], "service");
    EXPECT_EQ(d["entity_id"], "");
    EXPECT_FALSE(r->audited);
  }
  auto by_accessor = Call(Operation::kUpdate, "lookup-accessor", {{"accessor", auth["accessor"]}},
                          root_.client_token);
  ASSERT_TRUE(by_accessor.ok());
  EXPECT_EQ((*by_accessor->data)["id"], "");
  EXPECT_EQ((*by_accessor->data)["ttl"], 3500);

  // The root token: no lease.
  auto root = Call(Operation::kRead, "lookup-self", json::object(), root_.client_token);
  ASSERT_TRUE(root.ok());
  const json& d = *root->data;
  EXPECT_TRUE(d["expire_time"].is_null());
  EXPECT_EQ(d["ttl"], 0);
  EXPECT_EQ(d["creation_ttl"], 0);
  EXPECT_EQ(d["policies"], json::array({"root"}));
  EXPECT_EQ(d["path"], "auth/token/root");
  EXPECT_FALSE(d.contains("issue_time"));
  EXPECT_FALSE(d.contains("renewable"));
  EXPECT_TRUE(d["meta"].is_null());
}

TEST_F(TokenBackendTest, UnknownAndRevokedTokensGetVaultsErrors) {
  const json auth = MustCreate("create", {{"policies", "app"}}, root_.client_token);
  const std::string token = auth["client_token"];
  ASSERT_TRUE(
      IsNoContent(Call(Operation::kUpdate, "revoke", {{"token", token}}, root_.client_token)));
  ExpectError(Call(Operation::kUpdate, "lookup", {{"token", token}}, root_.client_token),
              StatusCode::kPermissionDenied, "bad token");
  ExpectError(Call(Operation::kUpdate, "lookup-accessor", {{"accessor", auth["accessor"]}},
                   root_.client_token),
              StatusCode::kInvalidArgument, "invalid accessor");
  ExpectError(Call(Operation::kUpdate, "renew", {{"token", token}}, root_.client_token),
              StatusCode::kInvalidArgument, "token not found");
  ExpectError(Call(Operation::kUpdate, "renew-accessor", {{"accessor", auth["accessor"]}},
                   root_.client_token),
              StatusCode::kInvalidArgument, "invalid accessor");
  ExpectError(Call(Operation::kUpdate, "revoke-orphan", {{"token", token}}, root_.client_token),
              StatusCode::kInvalidArgument, "token to revoke not found");
  // Revoking what is gone is still 204, as Vault answers; by accessor it warns.
  EXPECT_TRUE(
      IsNoContent(Call(Operation::kUpdate, "revoke", {{"token", token}}, root_.client_token)));
  auto warned = Call(Operation::kUpdate, "revoke-accessor", {{"accessor", auth["accessor"]}},
                     root_.client_token);
  ASSERT_TRUE(warned.ok());
  EXPECT_EQ(warned->warnings, std::vector<std::string>{"No token found with this accessor"});
  ExpectError(Call(Operation::kUpdate, "lookup-accessor", json::object(), root_.client_token),
              StatusCode::kInvalidArgument, "missing accessor");
  ExpectError(Call(Operation::kUpdate, "revoke", json::object(), root_.client_token),
              StatusCode::kInvalidArgument, "missing token ID");
}

TEST_F(TokenBackendTest, RenewPaths) {
  const json auth =
      MustCreate("create", {{"policies", "app"}, {"ttl", "1h"}, {"explicit_max_ttl", "2h"}},
                 root_.client_token);
  const std::string token = auth["client_token"];
  now_ += minutes(30);
  auto self = Call(Operation::kUpdate, "renew-self", {{"increment", "10h"}}, token);
  ASSERT_TRUE(self.ok()) << self.status().ToString();
  EXPECT_EQ((*self->auth)["client_token"], token);
  EXPECT_EQ((*self->auth)["lease_duration"], 90 * 60);  // capped by explicit max from creation
  EXPECT_TRUE(self->audited);
  auto other =
      Call(Operation::kUpdate, "renew", {{"token", token}, {"increment", 600}}, root_.client_token);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ((*other->auth)["lease_duration"], 600);
  auto by_accessor = Call(Operation::kUpdate, "renew-accessor", {{"accessor", auth["accessor"]}},
                          root_.client_token);
  ASSERT_TRUE(by_accessor.ok());
  EXPECT_EQ((*by_accessor->auth)["client_token"], "");
  EXPECT_EQ((*by_accessor->auth)["lease_duration"], 3600);  // the token's ttl without increment

  const std::string fixed = MustCreate("create", {{"policies", "app"}, {"renewable", false}},
                                       root_.client_token)["client_token"];
  ExpectError(Call(Operation::kUpdate, "renew-self", json::object(), fixed),
              StatusCode::kFailedPrecondition, "lease is not renewable");
  EXPECT_EQ(logical::HttpStatusFor(StatusCode::kFailedPrecondition), 400);
}

TEST_F(TokenBackendTest, RevokePathsAndSudo) {
  EXPECT_TRUE(backend_->IsSudo("revoke-orphan"));
  EXPECT_TRUE(backend_->IsSudo("accessors/"));
  EXPECT_FALSE(backend_->IsSudo("revoke"));
  EXPECT_FALSE(backend_->IsSudo("create"));

  const std::string parent =
      MustCreate("create", {{"policies", "app"}}, root_.client_token)["client_token"];
  const json child = MustCreate("create", json::object(), parent);
  const std::string child_token = child["client_token"];
  ExpectError(Call(Operation::kUpdate, "revoke-orphan", {{"token", parent}}, parent),
              StatusCode::kInvalidArgument,
              "root or sudo privileges required to revoke and orphan");
  auto orphaned =
      Call(Operation::kUpdate, "revoke-orphan", {{"token", parent}}, root_.client_token);
  ASSERT_TRUE(IsNoContent(orphaned));
  EXPECT_TRUE(orphaned->audited);
  EXPECT_FALSE(Authenticates(parent));
  EXPECT_TRUE(Authenticates(child_token));
  EXPECT_TRUE(tokens_->LookupToken(child_token)->orphan());

  const json grandchild = MustCreate("create", json::object(), child_token);
  ASSERT_TRUE(IsNoContent(Call(Operation::kUpdate, "revoke-self", json::object(), child_token)));
  EXPECT_FALSE(Authenticates(child_token));
  EXPECT_FALSE(Authenticates(grandchild["client_token"]));

  const json other = MustCreate("create", json::object(), root_.client_token);
  ASSERT_TRUE(IsNoContent(Call(Operation::kUpdate, "revoke-accessor",
                               {{"accessor", other["accessor"]}}, root_.client_token)));
  EXPECT_FALSE(Authenticates(other["client_token"]));
}

TEST_F(TokenBackendTest, ListAccessors) {
  const json a = MustCreate("create", json::object(), root_.client_token);
  auto list = Call(Operation::kList, "accessors/", json::object(), root_.client_token);
  ASSERT_TRUE(list.ok());
  const json keys = (*list->data)["keys"];
  EXPECT_EQ(keys.size(), 2u);
  EXPECT_NE(std::find(keys.begin(), keys.end(), a["accessor"]), keys.end());
  EXPECT_NE(std::find(keys.begin(), keys.end(), root_.entry.accessor), keys.end());
  EXPECT_EQ(
      Call(Operation::kRead, "accessors/", json::object(), root_.client_token).status().code(),
      StatusCode::kUnimplemented);
}

TEST_F(TokenBackendTest, RolesLifecycleAndTheirEffectOnCreate) {
  ExpectError(Call(Operation::kList, "roles/", json::object(), root_.client_token),
              StatusCode::kNotFound, "");
  auto exists = backend_->Exists(
      Req(Operation::kUpdate, "roles/testrole", json::object(), root_.client_token));
  ASSERT_TRUE(exists.ok());
  EXPECT_EQ(*exists, std::optional<bool>(false));

  auto written = Call(Operation::kCreate, "roles/testrole",
                      {{"allowed_policies", "testpolicy"},
                       {"path_suffix", "prod-v1"},
                       {"period", "2h"},
                       {"orphan", true}},
                      root_.client_token);
  ASSERT_TRUE(IsNoContent(written)) << written.status().ToString();
  EXPECT_TRUE(written->audited);
  EXPECT_EQ(*backend_->Exists(
                Req(Operation::kUpdate, "roles/testrole", json::object(), root_.client_token)),
            std::optional<bool>(true));
  EXPECT_EQ(
      *backend_->Exists(Req(Operation::kUpdate, "create", json::object(), root_.client_token)),
      std::optional<bool>());

  auto read = Call(Operation::kRead, "roles/testrole", json::object(), root_.client_token);
  ASSERT_TRUE(read.ok());
  const json& role = *read->data;
  EXPECT_EQ(role["name"], "testrole");
  EXPECT_EQ(role["allowed_policies"], json::array({"testpolicy"}));
  EXPECT_EQ(role["disallowed_policies"], json::array());
  EXPECT_EQ(role["orphan"], true);
  EXPECT_EQ(role["renewable"], true);
  EXPECT_EQ(role["path_suffix"], "prod-v1");
  EXPECT_EQ(role["period"], 7200);
  EXPECT_EQ(role["token_period"], 7200);
  EXPECT_EQ(role["token_type"], "default-service");

  // hvac: a role with allowed_policies="testpolicy" gives ["default","testpolicy"]. The role's
  // period needs no sudo from the caller.
  const std::string user =
      MustCreate("create", {{"policies", "other"}}, root_.client_token)["client_token"];
  const json auth = MustCreate("create/testrole", json::object(), user);
  EXPECT_EQ(auth["policies"], json::array({"default", "testpolicy"}));
  EXPECT_EQ(auth["orphan"], true);
  EXPECT_EQ(auth["lease_duration"], 7200);
  auto lookup = Call(Operation::kRead, "lookup-self", json::object(),
                     auth["client_token"].get<std::string>());
  ASSERT_TRUE(lookup.ok());
  EXPECT_EQ((*lookup->data)["path"], "auth/token/create/testrole/prod-v1");
  EXPECT_EQ((*lookup->data)["role"], "testrole");
  EXPECT_EQ((*lookup->data)["period"], 7200);
  ExpectError(Call(Operation::kUpdate, "create/testrole", {{"policies", "other"}}, user),
              StatusCode::kInvalidArgument,
              "token policies ([\"default\" \"other\"]) must be subset of the role's allowed "
              "policies ([\"default\" \"testpolicy\"]) or glob policies ([])");

  ASSERT_TRUE(IsNoContent(Call(Operation::kUpdate, "roles/deny",
                               {{"disallowed_policies", "Secret"}}, root_.client_token)));
  const std::string secret_holder =
      MustCreate("create", {{"policies", "secret,app"}}, root_.client_token)["client_token"];
  ExpectError(Call(Operation::kUpdate, "create/deny", json::object(), secret_holder),
              StatusCode::kInvalidArgument, "token policy \"secret\" is disallowed by this role");

  auto list = Call(Operation::kList, "roles/", json::object(), root_.client_token);
  ASSERT_TRUE(list.ok());
  EXPECT_EQ((*list->data)["keys"], json::array({"deny", "testrole"}));

  ASSERT_TRUE(
      IsNoContent(Call(Operation::kDelete, "roles/testrole", json::object(), root_.client_token)));
  ExpectError(Call(Operation::kRead, "roles/testrole", json::object(), root_.client_token),
              StatusCode::kNotFound, "");
  ExpectError(Call(Operation::kUpdate, "create/testrole", json::object(), user),
              StatusCode::kInvalidArgument, "unknown role testrole");
  EXPECT_EQ(EventsWithOp("token.role.write").size(), 2u);
  EXPECT_EQ(EventsWithOp("token.role.delete").size(), 1u);
}

TEST_F(TokenBackendTest, RoleUpdateKeepsUnsetFieldsAndValidatesInput) {
  ASSERT_TRUE(
      IsNoContent(Call(Operation::kCreate, "roles/r",
                       {{"allowed_policies", "a"}, {"renewable", false}}, root_.client_token)));
  ASSERT_TRUE(IsNoContent(
      Call(Operation::kUpdate, "roles/r", {{"token_num_uses", 4}}, root_.client_token)));
  auto read = Call(Operation::kRead, "roles/r", json::object(), root_.client_token);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ((*read->data)["allowed_policies"], json::array({"a"}));
  EXPECT_EQ((*read->data)["renewable"], false);
  EXPECT_EQ((*read->data)["token_num_uses"], 4);
  const json auth = MustCreate("create/r", json::object(), root_.client_token);
  EXPECT_EQ(auth["renewable"], false);
  EXPECT_EQ(auth["num_uses"], 4);

  const auto events = AuditEvents().size();
  EXPECT_EQ(Call(Operation::kUpdate, "roles/r", {{"token_bound_cidrs", "10.0.0.0/99"}},
                 root_.client_token)
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Call(Operation::kUpdate, "roles/r", {{"path_suffix", "../x"}}, root_.client_token)
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Call(Operation::kUpdate, "roles/r", {{"token_type", "batch"}}, root_.client_token)
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(AuditEvents().size(), events);
  EXPECT_EQ((*Call(Operation::kRead, "roles/r", json::object(), root_.client_token)
                  ->data)["token_num_uses"],
            4);
  ExpectError(Call(Operation::kUpdate, "roles/bad name", json::object(), root_.client_token),
              StatusCode::kNotFound, "unsupported path");
}

TEST_F(TokenBackendTest, StoreFailureIssuesNothing) {
  const auto before = TokenRows();
  store_->fail_commits = true;
  auto r = Call(Operation::kUpdate, "create", {{"policies", "a"}}, root_.client_token);
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(Call(Operation::kUpdate, "roles/r", json::object(), root_.client_token).status().code(),
            StatusCode::kUnavailable);
  store_->fail_commits = false;
  EXPECT_EQ(TokenRows(), before);
}

TEST_F(TokenBackendTest, UnknownPathsAndOperations) {
  ExpectError(Call(Operation::kRead, "nope", json::object(), root_.client_token),
              StatusCode::kNotFound, "unsupported path");
  ExpectError(Call(Operation::kRead, "create", json::object(), root_.client_token),
              StatusCode::kUnimplemented, "unsupported operation");
  ExpectError(Call(Operation::kDelete, "lookup-self", json::object(), root_.client_token),
              StatusCode::kUnimplemented, "unsupported operation");
  EXPECT_EQ(backend_->Purge().code(), StatusCode::kFailedPrecondition);
}

TEST_F(TokenBackendTest, AuditEventsNeverContainTokens) {
  const json a = MustCreate("create", {{"policies", "app"}}, root_.client_token);
  const std::string token = a["client_token"];
  ASSERT_TRUE(Call(Operation::kUpdate, "renew-self", json::object(), token).ok());
  ASSERT_TRUE(
      IsNoContent(Call(Operation::kUpdate, "revoke", {{"token", token}}, root_.client_token)));
  auto creates = EventsWithOp("token.create");
  ASSERT_EQ(creates.size(), 2u);  // root and a
  EXPECT_EQ(creates[1].actor, root_.entry.accessor);
  EXPECT_EQ(creates[1].request_id, "req-42");
  EXPECT_EQ(creates[1].details["accessor"], a["accessor"]);
  ASSERT_EQ(EventsWithOp("token.renew").size(), 1u);
  EXPECT_EQ(EventsWithOp("token.renew")[0].path, "auth/token/renew-self");
  ASSERT_EQ(EventsWithOp("token.revoke").size(), 1u);
  EXPECT_EQ(EventsWithOp("token.revoke")[0].path, "auth/token/revoke");
  const std::string text = AuditText();
  EXPECT_EQ(text.find(token.substr(4)), std::string::npos);
  EXPECT_EQ(text.find(root_.client_token.substr(4)), std::string::npos);
}

}  // namespace
}  // namespace lockbox::auth
