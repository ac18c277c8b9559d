#include <gtest/gtest.h>

#include "tests/unit/secrets/kv_test_env.h"

namespace lockbox::secrets::testing {
namespace {

using logical::Operation;
using std::chrono::hours;
using std::chrono::seconds;

constexpr char kUuid[] = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d";

class KvV1Test : public KvTestEnv {
 protected:
  void SetUp() override {
    KvTestEnv::SetUp();
    backend_ = MakeBackend(Mount("kv/", kUuid, ""));
    ASSERT_NE(backend_, nullptr);
  }
  logical::Request Kv(Operation op, std::string path, json data = json::object()) {
    return Req(op, std::move(path), std::move(data), "kv/");
  }
};

TEST_F(KvV1Test, WriteReadDeleteRoundTrip) {
  auto w = Ok(Kv(Operation::kUpdate, "app/db", {{"user", "admin"}, {"port", 5432}}));
  EXPECT_EQ(w.status, 0);
  EXPECT_FALSE(w.data.has_value());  // 204
  EXPECT_TRUE(w.audited);
  auto r = Ok(Kv(Operation::kRead, "app/db"));
  EXPECT_EQ(*r.data, (json{{"user", "admin"}, {"port", 5432}}));
  EXPECT_TRUE(r.audited);
  EXPECT_EQ(r.lease_duration, hours(768));
  // Unversioned: a write replaces the value.
  Ok(Kv(Operation::kUpdate, "app/db", {{"user", "root"}}));
  EXPECT_EQ(*Ok(Kv(Operation::kRead, "app/db")).data, (json{{"user", "root"}}));
  auto d = Ok(Kv(Operation::kDelete, "app/db"));
  EXPECT_FALSE(d.data.has_value());
  EXPECT_EQ(Err(Kv(Operation::kRead, "app/db")).code(), StatusCode::kNotFound);
  EXPECT_EQ(Err(Kv(Operation::kRead, "app/db")).message(), "");
  EXPECT_FALSE(Ok(Kv(Operation::kDelete, "app/db")).data.has_value());  // missing: still 204
}

TEST_F(KvV1Test, LeaseDurationComesFromTtlThenTheMount) {
  Ok(Kv(Operation::kUpdate, "a", {{"v", 1}, {"ttl", "1h"}}));
  EXPECT_EQ(Ok(Kv(Operation::kRead, "a")).lease_duration, seconds(3600));
  Ok(Kv(Operation::kUpdate, "b", {{"v", 1}, {"ttl", "soon"}}));  // unparsable: ignored
  EXPECT_EQ(Ok(Kv(Operation::kRead, "b")).lease_duration, hours(768));
  auto entry = Mount("kv/", kUuid, "");
  entry.default_lease_ttl = seconds(60);
  backend_ = MakeBackend(entry);
  EXPECT_EQ(Ok(Kv(Operation::kRead, "b")).lease_duration, seconds(60));
}

TEST_F(KvV1Test, MalformedWritesAre400AndChangeNothing) {
  EXPECT_EQ(Err(Kv(Operation::kUpdate, "a", json::object())).message(), "missing data fields");
  EXPECT_EQ(Err(Kv(Operation::kUpdate, "", {{"v", 1}})).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Err(Kv(Operation::kUpdate, "dir/", {{"v", 1}})).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM kv_v1_entries"), 0);
  EXPECT_EQ(Err(Kv(Operation::kPatch, "a", {{"v", 1}})).code(), StatusCode::kUnimplemented);
}

TEST_F(KvV1Test, ListGivesDirectChildrenAnd404WhenEmpty) {
  EXPECT_EQ(Err(Kv(Operation::kList, "")).code(), StatusCode::kNotFound);
  for (const char* path : {"b/c", "a", "b/d/e", "b-x"})
    Ok(Kv(Operation::kUpdate, path, {{"p", 1}}));
  EXPECT_EQ(Ok(Kv(Operation::kList, "")).data->at("keys"), (json{"a", "b-x", "b/"}));
  EXPECT_EQ(Ok(Kv(Operation::kList, "b/")).data->at("keys"), (json{"c", "d/"}));
  EXPECT_EQ(Err(Kv(Operation::kList, "zzz/")).code(), StatusCode::kNotFound);
}

TEST_F(KvV1Test, ExistenceCheck) {
  auto exists = [&](const std::string& path) {
    auto r = backend_->Exists(Kv(Operation::kUpdate, path));
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : std::nullopt;
  };
  EXPECT_EQ(exists("a"), std::optional<bool>(false));
  Ok(Kv(Operation::kUpdate, "a", {{"v", 1}}));
  EXPECT_EQ(exists("a"), std::optional<bool>(true));
}

TEST_F(KvV1Test, ValuesAreSealedAndBoundToTheirPath) {
  const std::string secret = "v1-plaintext-marker-83jd02kd";
  Ok(Kv(Operation::kUpdate, "a", {{"secret", secret}}));
  Ok(Kv(Operation::kUpdate, "b", {{"secret", "other"}}));
  EXPECT_EQ(DatabaseBytes().find("v1-plaintext-marker"), std::string::npos);
  for (const auto& body : AuditBodies()) EXPECT_EQ(body.find(secret), std::string::npos);
  ASSERT_TRUE(Exec("UPDATE kv_v1_entries SET ciphertext = (SELECT ciphertext FROM kv_v1_entries "
                   "WHERE path = 'a') WHERE path = 'b'")
                  .ok());
  auto r = backend_->HandleRequest(Kv(Operation::kRead, "b"));
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
  EXPECT_EQ(r.status().message(), "stored secret failed authentication");
  EXPECT_EQ(Ok(Kv(Operation::kRead, "a")).data->at("secret"), secret);
}

TEST_F(KvV1Test, ReadsAndWritesAreAudited) {
  Ok(Kv(Operation::kUpdate, "team/x", {{"v", "hidden-value-1234"}}));
  Ok(Kv(Operation::kRead, "team/x"));
  Ok(Kv(Operation::kDelete, "team/x"));
  std::vector<std::string> ops;
  for (const auto& e : AuditEvents()) {
    if (e.op.starts_with("kv.")) {
      ops.push_back(e.op);
      EXPECT_EQ(e.path, "kv/team/x");
    }
  }
  EXPECT_EQ(ops, (std::vector<std::string>{"kv.write", "kv.read", "kv.delete"}));
}

TEST_F(KvV1Test, NoValueWithoutItsAuditRecord) {
  Ok(Kv(Operation::kUpdate, "y", {{"v", 1}}));
  flaky_->fail_commits = true;
  EXPECT_EQ(Err(Kv(Operation::kRead, "y")).code(), StatusCode::kUnavailable);
  EXPECT_EQ(Err(Kv(Operation::kUpdate, "z", {{"v", 1}})).code(), StatusCode::kUnavailable);
  flaky_->fail_commits = false;
  EXPECT_EQ(Err(Kv(Operation::kRead, "z")).code(), StatusCode::kNotFound);
}

TEST_F(KvV1Test, PurgeDeletesTheMountsEntries) {
  Ok(Kv(Operation::kUpdate, "a", {{"v", 1}}));
  ASSERT_TRUE(backend_->Purge().ok());
  EXPECT_EQ(Count("SELECT COUNT(*) FROM kv_v1_entries"), 0);
  EXPECT_EQ(keyring_->ReadKey(std::string("kv/") + kUuid)->state,
            keyring::KeyState::kPendingDeletion);
}

}  // namespace
}  // namespace lockbox::secrets::testing
