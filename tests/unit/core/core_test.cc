// The request pipeline: processing order, envelope, routing, existence check, ACL, sudo, audit.
#include <thread>

#include "server/blocking/would_block.h"
#include "tests/unit/core/core_test_env.h"

namespace lockbox::core::testing {
namespace {

using nlohmann::json;

TEST_F(CoreTest, UninitializedServerRefusesWith503AndHealth501) {
  EXPECT_FALSE(core_->initialized());
  EXPECT_TRUE(core_->sealed());
  EXPECT_EQ(bring_ups_, 0);
  auto response = Send("GET", "/v1/secret/data/a");
  EXPECT_EQ(response.status, 503);
  EXPECT_EQ(Json(response), json({{"errors", {"Vault is not initialized"}}}));
  response = Send("GET", "/v1/sys/health");
  EXPECT_EQ(response.status, 501);
  EXPECT_EQ(Json(response)["initialized"], false);
  EXPECT_EQ(Json(response)["sealed"], true);
  EXPECT_EQ(Send("GET", "/v1/sys/health?uninitcode=200").status, 200);
  EXPECT_EQ(Send("HEAD", "/v1/sys/health").status, 501);
  EXPECT_EQ(Send("HEAD", "/v1/sys/health").body, "");
  EXPECT_EQ(Json(Send("GET", "/v1/sys/init")), json({{"initialized", false}}));
  const auto status = Json(Send("GET", "/v1/sys/seal-status"));
  EXPECT_EQ(status["initialized"], false);
  EXPECT_EQ(status["sealed"], true);
  EXPECT_EQ(status["t"], 0);
  EXPECT_EQ(Send("GET", "/v1/sys/leader").status, 200);
}

TEST_F(CoreTest, EnvelopeShapeHeadersAndRequestId) {
  const std::string root = Init();
  const auto response = Send("GET", "/v1/sys/mounts", "", root, {{"x-request-id", "client-req-1"}});
  ASSERT_EQ(response.status, 200) << response.body;
  EXPECT_EQ(Header(response, "Content-Type"), "application/json");
  EXPECT_EQ(Header(response, "X-Request-Id"), "client-req-1");
  const json body = Json(response);
  EXPECT_EQ(body["request_id"], "client-req-1");
  EXPECT_EQ(body["lease_id"], "");
  EXPECT_EQ(body["renewable"], false);
  EXPECT_EQ(body["lease_duration"], 0);
  EXPECT_TRUE(body["wrap_info"].is_null());
  EXPECT_TRUE(body["warnings"].is_null());
  EXPECT_TRUE(body["auth"].is_null());
  EXPECT_EQ(body["mount_type"], "system");
  EXPECT_TRUE(body["data"].contains("sys/"));
  EXPECT_TRUE(body.contains("sys/")) << "sys/mounts data is injected at the top level";

  const auto generated = Send("GET", "/v1/sys/mounts", "", root);
  EXPECT_EQ(Header(generated, "X-Request-Id").size(), 36u);
  EXPECT_EQ(Json(generated)["request_id"], Header(generated, "X-Request-Id"));
}

TEST_F(CoreTest, NoContentVersusOkAndErrorsArray) {
  const std::string root = Init();
  Mount(root, "kv", {{"type", "kv"}});
  auto write = Send("POST", "/v1/kv/data/a", R"({"v":1})", root);
  EXPECT_EQ(write.status, 204);
  EXPECT_EQ(write.body, "");
  EXPECT_EQ(Send("POST", "/v1/kv/warn", "", root).status, 200);
  EXPECT_EQ(Json(Send("POST", "/v1/kv/warn", "", root))["warnings"], json({"careful"}));
  auto read = Send("GET", "/v1/kv/data/a", "", root);
  EXPECT_EQ(read.status, 200);
  EXPECT_EQ(Json(read)["data"], json({{"v", 1}}));
  EXPECT_EQ(Json(read)["mount_type"], "kv");
  auto missing = Send("GET", "/v1/kv/data/nope", "", root);
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.body, R"({"errors":[]})");
  auto error = Send("GET", "/v1/kv/error", "", root);
  EXPECT_EQ(error.status, 400);
  EXPECT_EQ(Json(error), json({{"errors", {"bad thing"}}}));
  auto raw = Send("GET", "/v1/kv/raw", "", root);
  EXPECT_EQ(raw.status, 404);
  EXPECT_FALSE(Json(raw).contains("errors"));
  EXPECT_EQ(Json(raw)["data"]["metadata"]["version"], 2);
  auto unknown = Send("GET", "/v1/nomount/x", "", root);
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(Json(unknown),
            json({{"errors", {"no handler for route \"nomount/x\". route entry not found."}}}));
}

TEST_F(CoreTest, ListVerbQueryListAndBadListValue) {
  const std::string root = Init();
  Mount(root, "kv", {{"type", "kv"}});
  EXPECT_EQ(Send("LIST", "/v1/kv/data", "", root).status, 404) << "no keys → 404";
  ASSERT_EQ(Send("PUT", "/v1/kv/data/b", "{}", root).status, 204);
  ASSERT_EQ(Send("PUT", "/v1/kv/data/a", "{}", root).status, 204);
  for (const char* target : {"/v1/kv/data", "/v1/kv/data/"}) {
    const auto listed = Send("LIST", target, "", root);
    ASSERT_EQ(listed.status, 200) << listed.body;
    EXPECT_EQ(Json(listed)["data"]["keys"], json({"a", "b"}));
  }
  EXPECT_EQ(Json(Send("GET", "/v1/kv/data?list=true", "", root))["data"]["keys"], json({"a", "b"}));
  EXPECT_EQ(Json(Send("GET", "/v1/kv/data?list=True", "", root))["data"]["keys"], json({"a", "b"}));
  const auto bad = Send("GET", "/v1/kv/data?list=maybe", "", root);
  EXPECT_EQ(bad.status, 400);
  std::lock_guard lock(world_.mutex);
  EXPECT_EQ(world_.requests.back().path, "kv/data/");
  EXPECT_EQ(world_.requests.back().relative_path, "data/");
}

TEST_F(CoreTest, NullsAreAbsentAndQueryIsDataForReads) {
  const std::string root = Init();
  Mount(root, "kv", {{"type", "kv"}});
  ASSERT_EQ(Send("POST", "/v1/kv/data/a", R"({"gone":null,"kept":2})", root).status, 204);
  EXPECT_EQ(Json(Send("GET", "/v1/kv/data/a", "", root))["data"], json({{"kept", 2}}));
  ASSERT_EQ(Send("GET", "/v1/kv/data/a?version=3", "", root).status, 200);
  std::lock_guard lock(world_.mutex);
  EXPECT_EQ(world_.requests.back().data, json({{"version", "3"}}));
  EXPECT_EQ(world_.requests.back().caller.request_id, world_.requests.back().request_id);
  EXPECT_EQ(world_.requests.back().remote_addr, "127.0.0.1");
}

TEST_F(CoreTest, LongestMountRouting) {
  const std::string root = Init();
  Mount(root, "team/kv", {{"type", "kv"}});
  Mount(root, "teamkv", {{"type", "kv"}});
  ASSERT_EQ(Send("PUT", "/v1/team/kv/data/x", R"({"v":"deep"})", root).status, 204);
  ASSERT_EQ(Send("PUT", "/v1/teamkv/data/x", R"({"v":"flat"})", root).status, 204);
  EXPECT_EQ(Json(Send("GET", "/v1/team/kv/data/x", "", root))["data"]["v"], "deep");
  EXPECT_EQ(Json(Send("GET", "/v1/teamkv/data/x", "", root))["data"]["v"], "flat");
  {
    std::lock_guard lock(world_.mutex);
    EXPECT_EQ(world_.requests.back().mount_point, "teamkv/");
    EXPECT_EQ(world_.requests.back().relative_path, "data/x");
  }
  // "team/" itself is not a mount, and "team/kvx" is not under "team/kv/".
  EXPECT_EQ(Send("GET", "/v1/team/other", "", root).status, 404);
  EXPECT_EQ(Send("GET", "/v1/team/kvx/data/x", "", root).status, 404);
  // The mount path without its slash still reaches the mount.
  EXPECT_EQ(Send("GET", "/v1/teamkv", "", root).status, 404);
  std::lock_guard lock(world_.mutex);
  EXPECT_EQ(world_.requests.back().mount_point, "teamkv/");
  EXPECT_EQ(world_.requests.back().relative_path, "");
}

TEST_F(CoreTest, MissingInvalidOrExpiredTokenIsDeniedAndAudited) {
  const std::string root = Init();
  Mount(root, "kv", {{"type", "kv"}});
  for (const std::string& token : {std::string(), std::string("lbx.not-a-token")}) {
    const auto response = Send("GET", "/v1/kv/data/a", "", token);
    EXPECT_EQ(response.status, 403);
    EXPECT_EQ(Json(response), json({{"errors", {"permission denied"}}}));
  }
  const std::string short_lived = TokenWith({"default"});
  now_ += std::chrono::hours(2);
  EXPECT_EQ(Send("GET", "/v1/kv/data/a", "", short_lived).status, 403);
  const auto event = LastEventFor("kv/data/a");
  ASSERT_TRUE(event.has_value());
  EXPECT_EQ(event->outcome, audit::Outcome::kDenied);
  EXPECT_EQ(event->actor, "anonymous");
  EXPECT_EQ(event->reason, "permission denied");
  EXPECT_EQ(event->details["status"], 403);
  // Authorization: Bearer works like X-Vault-Token.
  EXPECT_EQ(Send("GET", "/v1/sys/mounts", "", "", {{"authorization", "Bearer " + root}}).status,
            200);
}

TEST_F(CoreTest, ReadsAreAnsweredWithoutOffloadUnlessTheyWouldBlock) {
  const std::string root = Init();
  Mount(root, "kv", {{"type", "kv"}});
  ASSERT_EQ(Send("PUT", "/v1/kv/data/a", R"({"v":1})", root).status, 204);
  int offloaded = 0;
  auto inline_read = SendAsListener("GET", "/v1/kv/data/a", root, offloaded);
  EXPECT_EQ(inline_read.status, 200);
  EXPECT_EQ(Json(inline_read)["data"], json({{"v", 1}}));
  EXPECT_EQ(offloaded, 0);
  // A read that needs the store is attempted, refused without effect, and run again by a worker:
  // one answer, one audit event.
  const std::size_t events_before = AuditEvents().size();
  auto slow_read = SendAsListener("GET", "/v1/kv/slow/b", root, offloaded);
  EXPECT_EQ(slow_read.status, 200);
  EXPECT_EQ(Json(slow_read)["data"], json({{"slow", true}}));
  EXPECT_EQ(offloaded, 1);
  EXPECT_EQ(AuditEvents().size(), events_before + 1);
  ASSERT_TRUE(LastEventFor("kv/slow/b").has_value());
  EXPECT_EQ(LastEventFor("kv/slow/b")->op, "fake.slow.read");  // the engine's, not the router's
  // Writes are refused before they reach the engine, and run once, by a worker.
  const std::size_t requests_before = world_.requests.size();
  EXPECT_EQ(SendAsListener("PUT", "/v1/kv/data/c", root, offloaded).status, 204);
  EXPECT_EQ(offloaded, 2);
  EXPECT_EQ(world_.requests.size(), requests_before + 1);
  // A POST the engine calls a use is attempted like a read: answered here, or refused without
  // effect and run again (one answer, one event) when it needs the store.
  auto inline_use = SendAsListener("POST", "/v1/kv/use/d", root, offloaded);
  EXPECT_EQ(inline_use.status, 200);
  EXPECT_EQ(Json(inline_use)["data"], json({{"slow", false}}));
  EXPECT_EQ(offloaded, 2);
  ASSERT_TRUE(LastEventFor("kv/use/d").has_value());
  EXPECT_EQ(LastEventFor("kv/use/d")->op, "fake.use");
  const std::size_t events_before_use = AuditEvents().size();
  auto slow_use = SendAsListener("POST", "/v1/kv/slowuse/e", root, offloaded);
  EXPECT_EQ(slow_use.status, 200);
  EXPECT_EQ(Json(slow_use)["data"], json({{"slow", true}}));
  EXPECT_EQ(offloaded, 3);
  EXPECT_EQ(AuditEvents().size(), events_before_use + 1);
}

TEST_F(CoreTest, InstrumentedHsmRefusesInsideANonBlockingScope) {
  {
    blocking::NonBlockingScope scope;
    EXPECT_EQ(hsm_->FindSecretKey("lockbox/mkek/v1").status().code(), StatusCode::kUnavailable);
    EXPECT_EQ(hsm_->DestroyObjectsByLabel("lockbox/none").status().code(),
              StatusCode::kUnavailable);
    EXPECT_TRUE(scope.blocked());
  }
  // Outside the scope the call reaches the token again.
  EXPECT_NE(hsm_->FindSecretKey("lockbox/mkek/v1").status().code(), StatusCode::kUnavailable);
}

TEST_F(CoreTest, AclDeniesAndAuditsWithTheAccessor) {
  const std::string root = Init();
  Mount(root, "kv", {{"type", "kv"}});
  ASSERT_EQ(Send("PUT", "/v1/kv/data/a", R"({"v":1})", root).status, 204);
  PutPolicy(root, "reader", R"(path "kv/data/a" { capabilities = ["read"] })");
  const std::string reader = TokenWith({"default", "reader"});
  EXPECT_EQ(Send("GET", "/v1/kv/data/a", "", reader).status, 200);
  const auto denied = Send("GET", "/v1/kv/data/b", "", reader);
  EXPECT_EQ(denied.status, 403);
  EXPECT_EQ(Json(denied), json({{"errors", {"permission denied"}}}));
  EXPECT_EQ(Send("DELETE", "/v1/kv/data/a", "", reader).status, 403);
  const auto event = LastEventFor("kv/data/a");
  ASSERT_TRUE(event.has_value());
  EXPECT_EQ(event->op, "kv.delete");
  EXPECT_EQ(event->outcome, audit::Outcome::kDenied);
  auto principal = tokens_->Authenticate(reader, "127.0.0.1");
  ASSERT_TRUE(principal.ok());
  EXPECT_EQ(event->actor, principal->accessor);
  EXPECT_EQ(event->request_id.size(), 36u);
  EXPECT_EQ(event->remote_addr, "127.0.0.1");
  std::lock_guard lock(world_.mutex);
  for (const auto& request : world_.requests) {
    EXPECT_NE(request.operation, logical::Operation::kDelete) << "a denied request never runs";
  }
}

TEST_F(CoreTest, ExistenceCheckPicksCreateOrUpdateCapability) {
  const std::string root = Init();
  Mount(root, "kv", {{"type", "kv"}});
  ASSERT_EQ(Send("PUT", "/v1/kv/data/existing", "{}", root).status, 204);
  PutPolicy(root, "creator", R"(path "kv/data/*" { capabilities = ["create"] })");
  PutPolicy(root, "updater", R"(path "kv/data/*" { capabilities = ["update"] })");
  const std::string creator = TokenWith({"creator"});
  const std::string updater = TokenWith({"updater"});
  EXPECT_EQ(Send("POST", "/v1/kv/data/new1", "{}", creator).status, 204);
  EXPECT_EQ(Send("POST", "/v1/kv/data/existing", "{}", creator).status, 403);
  EXPECT_EQ(Send("POST", "/v1/kv/data/new2", "{}", updater).status, 403);
  EXPECT_EQ(Send("PUT", "/v1/kv/data/existing", "{}", updater).status, 204);
  std::lock_guard lock(world_.mutex);
  EXPECT_EQ(world_.requests.back().operation, logical::Operation::kUpdate);
  EXPECT_EQ(world_.requests[world_.requests.size() - 2].operation, logical::Operation::kCreate);
}

TEST_F(CoreTest, SudoPathsNeedSudo) {
  const std::string root = Init();
  Mount(root, "kv", {{"type", "kv"}});
  PutPolicy(root, "plain", R"(
path "kv/sudo/*" { capabilities = ["read"] }
path "sys/auth/*" { capabilities = ["create", "update"] }
path "sys/seal" { capabilities = ["update"] })");
  PutPolicy(root, "admin", R"(
path "kv/sudo/*" { capabilities = ["read", "sudo"] }
path "sys/auth/*" { capabilities = ["update", "sudo"] })");
  const std::string plain = TokenWith({"plain"});
  const std::string admin = TokenWith({"admin"});
  EXPECT_EQ(Send("GET", "/v1/kv/sudo/x", "", plain).status, 403);
  const auto allowed = Send("GET", "/v1/kv/sudo/x", "", admin);
  EXPECT_EQ(allowed.status, 200);
  EXPECT_EQ(Json(allowed)["data"]["sudo"], true) << "Request.sudo is set";
  EXPECT_EQ(Send("POST", "/v1/sys/auth/approle", R"({"type":"approle"})", plain).status, 403);
  EXPECT_EQ(Send("POST", "/v1/sys/auth/approle", R"({"type":"approle"})", admin).status, 204);
  EXPECT_EQ(Send("PUT", "/v1/sys/seal", "", plain).status, 403);
  EXPECT_FALSE(core_->sealed());
  EXPECT_EQ(Json(Send("GET", "/v1/kv/sudo/x", "", root))["data"]["sudo"], true);
}

TEST_F(CoreTest, PolicyChangeTakesEffectOnTheNextRequest) {
  const std::string root = Init();
  Mount(root, "kv", {{"type", "kv"}});
  ASSERT_EQ(Send("PUT", "/v1/kv/data/a", "{}", root).status, 204);
  PutPolicy(root, "p", R"(path "kv/data/a" { capabilities = ["read"] })");
  const std::string token = TokenWith({"p"});
  EXPECT_EQ(Send("GET", "/v1/kv/data/a", "", token).status, 200);
  EXPECT_EQ(Send("GET", "/v1/kv/data/a", "", token).status, 200);  // cached ACL
  PutPolicy(root, "p", R"(path "kv/data/a" { capabilities = ["deny"] })");
  EXPECT_EQ(Send("GET", "/v1/kv/data/a", "", token).status, 403);
  PutPolicy(root, "p", R"(path "kv/data/*" { capabilities = ["read"] })");
  EXPECT_EQ(Send("GET", "/v1/kv/data/a", "", token).status, 200);
  ASSERT_EQ(Send("DELETE", "/v1/sys/policy/p", "", root).status, 204);
  EXPECT_EQ(Send("GET", "/v1/kv/data/a", "", token).status, 403)
      << "a deleted policy grants nothing";
}

TEST_F(CoreTest, AuditFailureFailsClosedWithoutData) {
  const std::string root = Init();
  Mount(root, "kv", {{"type", "kv"}});
  ASSERT_EQ(Send("PUT", "/v1/kv/data/a", R"({"secret":"s3cr3t-value"})", root).status, 204);
  events_->fail = true;
  const auto read = Send("GET", "/v1/kv/data/a", "", root);
  EXPECT_EQ(read.status, 503);
  EXPECT_EQ(Json(read), json({{"errors", {"audit log unavailable"}}}));
  EXPECT_EQ(read.body.find("s3cr3t"), std::string::npos);
  // Also when the engine hands over its own event (the answer is never rendered).
  const auto engine_event_read = Send("GET", "/v1/kv/slow/b", "", root);
  EXPECT_EQ(engine_event_read.status, 503);
  EXPECT_EQ(engine_event_read.body.find("slow"), std::string::npos);
  // Denials and state changes fail closed too: no policy is created without its event.
  EXPECT_EQ(Send("GET", "/v1/kv/data/a").status, 503);
  const auto put = Send("PUT", "/v1/sys/policies/acl/x",
                        json{{"policy", R"(path "a" { capabilities = ["read"] })"}}.dump(), root);
  EXPECT_EQ(put.status, 503);
  events_->fail = false;
  EXPECT_EQ(Send("GET", "/v1/sys/policies/acl/x", "", root).status, 404);
  EXPECT_EQ(Send("GET", "/v1/kv/data/a", "", root).status, 200);
  const auto event = LastEventFor("kv/data/a");
  ASSERT_TRUE(event.has_value());
  EXPECT_EQ(event->op, "kv.read");
  EXPECT_EQ(event->outcome, audit::Outcome::kOk);
  for (const auto& e : AuditEvents()) {
    EXPECT_EQ(audit::CanonicalEvent(e)->find("s3cr3t"), std::string::npos);
    EXPECT_EQ(audit::CanonicalEvent(e)->find(root), std::string::npos)
        << "tokens are never audited";
  }
}

TEST_F(CoreTest, UnauthenticatedBackendPathsAndTheJwksRoute) {
  const std::string root = Init();
  ASSERT_EQ(Send("POST", "/v1/sys/auth/approle", R"({"type":"approle"})", root).status, 204);
  const auto login = Send("POST", "/v1/auth/approle/login", R"({"role_id":"r"})");
  EXPECT_EQ(login.status, 200);
  EXPECT_EQ(Send("POST", "/v1/auth/approle/sudo/x", "{}").status, 403);
  const auto jwks = Send("GET", "/.well-known/jwks.json");
  EXPECT_EQ(jwks.status, 200);
  EXPECT_EQ(Json(jwks), json({{"keys", {{{"kid", "identity-key"}}}}}));
  EXPECT_EQ(Send("GET", "/v1/identity/oidc/.well-known/keys").status, 200);
  EXPECT_EQ(Send("GET", "/v1/identity/other").status, 403);
  EXPECT_EQ(Send("GET", "/favicon.ico").status, 404);
}

TEST_F(CoreTest, MalformedRequestsAreRefusedAndAudited) {
  const std::string root = Init();
  auto bad = Send("POST", "/v1/sys/policies/acl/x", R"({"policy": )", root);
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(Send("BREW", "/v1/sys/mounts", "", root).status, 405);
  EXPECT_EQ(Send("GET", "/v1/sys/mounts", "", root, {{"x-vault-wrap-ttl", "30s"}}).status, 400);
  const auto event = AuditEvents().back();
  EXPECT_EQ(event.op, "http.request");
  EXPECT_EQ(event.outcome, audit::Outcome::kError);
  EXPECT_EQ(event.reason, "response wrapping not supported");
}

TEST_F(CoreTest, RestartLoadsTheMountTableAndPolicies) {
  const std::string root = Init();
  Mount(root, "kv", {{"type", "kv"}, {"options", {{"version", 2}}}});
  PutPolicy(root, "p", R"(path "kv/data/*" { capabilities = ["read"] })");
  const auto before = Json(Send("GET", "/v1/sys/mounts", "", root))["data"];
  CreateCore();
  EXPECT_EQ(bring_ups_, 1) << "an initialized server brings its services up at once";
  EXPECT_TRUE(core_->initialized());
  EXPECT_FALSE(core_->sealed());
  EXPECT_EQ(Json(Send("GET", "/v1/sys/mounts", "", root))["data"], before);
  EXPECT_EQ(Json(Send("GET", "/v1/sys/policies/acl/p", "", root))["data"]["policy"],
            R"(path "kv/data/*" { capabilities = ["read"] })");
  EXPECT_EQ(Send("GET", "/v1/kv/data/a", "", TokenWith({"p"})).status, 404);
}

TEST_F(CoreTest, MetricsExposeRequestsHsmStoreAndExtras) {
  const std::string root = Init();
  ASSERT_EQ(Send("GET", "/v1/sys/mounts", "", root).status, 200);
  ASSERT_TRUE(audit_->WriteCheckpoint(audit::CheckpointKind::kPeriodic).ok());  // an HSM Sign call
  const auto metrics = Send("GET", "/v1/sys/metrics?format=prometheus", "", root);
  ASSERT_EQ(metrics.status, 200);
  EXPECT_EQ(Header(metrics, "Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  const std::string& text = metrics.body;
  EXPECT_NE(text.find("lockbox_http_requests_total{route=\"sys.read\",code=\"200\"}"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("# TYPE lockbox_http_request_duration_seconds histogram"), std::string::npos);
  EXPECT_NE(
      text.find("lockbox_http_request_duration_seconds_bucket{route=\"sys.read\",le=\"+Inf\"}"),
      std::string::npos);
  EXPECT_NE(text.find("lockbox_hsm_call_duration_seconds_count{call=\"Sign\"}"), std::string::npos);
  EXPECT_EQ(text.find("lockbox_hsm_call_duration_seconds_count{call=\"Sign\"} 0\n"),
            std::string::npos);
  EXPECT_NE(text.find("lockbox_store_commit_batches_total "), std::string::npos);
  // The commit durations: a histogram whose count is every COMMIT so far (at least one).
  EXPECT_NE(text.find("lockbox_store_commit_duration_seconds_bucket{le=\"0.0005\"} "),
            std::string::npos);
  EXPECT_EQ(text.find("lockbox_store_commit_duration_seconds_count 0\n"), std::string::npos);
  EXPECT_NE(text.find("lockbox_store_commit_duration_seconds_count "), std::string::npos);
  EXPECT_NE(text.find("lockbox_siem_lag_events 0\n"), std::string::npos);
  EXPECT_EQ(text.find("kv/data"), std::string::npos) << "no raw paths in labels";
  EXPECT_EQ(Send("GET", "/v1/sys/metrics", "", root).status, 200);
  EXPECT_EQ(Send("GET", "/v1/sys/metrics?format=json", "", root).status, 400);
  EXPECT_EQ(Send("GET", "/v1/sys/metrics").status, 403);
}

TEST_F(CoreTest, ExpiredTokensAreTidiedWithTheirChildren) {
  const std::string root = Init();
  auth::TokenParams parent_params;
  parent_params.policies = {"default"};
  parent_params.ttl = std::chrono::hours(1);
  auto parent = tokens_->Issue(parent_params, keyring::Caller{});
  ASSERT_TRUE(parent.ok()) << parent.status().ToString();
  auth::TokenParams child_params = parent_params;
  child_params.ttl = std::chrono::hours(3);
  child_params.parent_accessor = parent->entry.accessor;
  auto child = tokens_->Issue(child_params, keyring::Caller{});
  ASSERT_TRUE(child.ok()) << child.status().ToString();
  EXPECT_EQ(Send("GET", "/v1/auth/token/lookup-self", "", child->client_token).status, 200);
  now_ += std::chrono::seconds(30);  // within the interval: nothing to tidy yet
  EXPECT_EQ(Send("GET", "/v1/auth/token/lookup-self", "", child->client_token).status, 200);
  now_ += std::chrono::hours(2);  // the parent expired; the next request tidies
  EXPECT_EQ(Send("GET", "/v1/sys/health").status, 200);
  EXPECT_EQ(Send("GET", "/v1/auth/token/lookup-self", "", child->client_token).status, 403);
  EXPECT_EQ(Send("GET", "/v1/auth/token/lookup-self", "", root).status, 200);
}

TEST_F(CoreTest, ATokensLastUseIsServedAuditedAndThenRevoked) {
  const std::string root = Init();
  Mount(root, "kv", {{"type", "kv"}});
  ASSERT_EQ(Send("PUT", "/v1/kv/data/a", R"({"v":1})", root).status, 204);
  PutPolicy(root, "reader", R"(path "kv/data/a" { capabilities = ["read"] })");
  auto issue_once = [&] {
    auth::TokenParams params;
    params.policies = {"reader"};
    params.num_uses = 1;
    auto issued = tokens_->Issue(params, keyring::Caller{});
    EXPECT_TRUE(issued.ok()) << issued.status().ToString();
    return std::move(issued).value();
  };
  const auth::IssuedToken once = issue_once();
  EXPECT_EQ(Send("GET", "/v1/kv/data/a", "", once.client_token).status, 200);
  EXPECT_EQ(Send("GET", "/v1/kv/data/a", "", once.client_token).status, 403);
  // The log reads in order: the read the last use paid for, then the revocation.
  std::optional<std::size_t> read_at, revoke_at;
  const std::vector<audit::Event> events = AuditEvents();
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (events[i].actor != once.entry.accessor) continue;
    if (events[i].op == "kv.read" && events[i].outcome == audit::Outcome::kOk) read_at = i;
    if (events[i].op == "token.revoke") revoke_at = i;
  }
  ASSERT_TRUE(read_at && revoke_at);
  EXPECT_LT(*read_at, *revoke_at);
  EXPECT_EQ(events[*revoke_at].details["reason"], "num_uses exhausted");

  // Audit down: the last use is answered 503 without the data, and the token stays refused.
  const auth::IssuedToken unlucky = issue_once();
  events_->fail = true;
  const auto refused = Send("GET", "/v1/kv/data/a", "", unlucky.client_token);
  EXPECT_EQ(refused.status, 503);
  EXPECT_EQ(Json(refused), json({{"errors", {"audit log unavailable"}}}));
  events_->fail = false;
  EXPECT_EQ(Send("GET", "/v1/kv/data/a", "", unlucky.client_token).status, 403);
}

TEST_F(CoreTest, ConcurrentRequestsAndPolicyChanges) {
  const std::string root = Init();
  Mount(root, "kv", {{"type", "kv"}});
  ASSERT_EQ(Send("PUT", "/v1/kv/data/a", R"({"v":1})", root).status, 204);
  PutPolicy(root, "p", R"(path "kv/data/a" { capabilities = ["read"] })");
  const std::string token = TokenWith({"p"});
  std::atomic<int> unexpected{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 15; ++i) {
        const int status = Send("GET", "/v1/kv/data/a", "", token).status;
        if (status != 200 && status != 403) ++unexpected;
      }
    });
  }
  for (int i = 0; i < 6; ++i) {
    PutPolicy(root, "p",
              i % 2 == 0 ? R"(path "kv/data/a" { capabilities = ["deny"] })"
                         : R"(path "kv/data/a" { capabilities = ["read"] })");
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(unexpected, 0);
  // The last change (read) is what every request sees now.
  EXPECT_EQ(Send("GET", "/v1/kv/data/a", "", token).status, 200);
}

}  // namespace
}  // namespace lockbox::core::testing
