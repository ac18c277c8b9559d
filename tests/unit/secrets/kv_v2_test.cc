#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <set>
#include <thread>

#include "tests/unit/secrets/kv_test_env.h"

namespace lockbox::secrets::testing {
namespace {

using logical::Operation;
using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

constexpr char kUuid[] = "0f8e7d6c-5b4a-4392-8170-a1b2c3d4e5f6";
constexpr char kStartText[] = "2027-01-15T08:00:00.945319214Z";

class KvV2Test : public KvTestEnv {
 protected:
  void SetUp() override {
    KvTestEnv::SetUp();
    backend_ = MakeBackend(Mount("secret/", kUuid, "2"));
    ASSERT_NE(backend_, nullptr);
  }

  static json WriteBody(json data, std::optional<std::int64_t> cas = std::nullopt) {
    json body{{"data", std::move(data)}};
    if (cas) body["options"] = {{"cas", *cas}};
    return body;
  }
  logical::Response Write(const std::string& path, json data,
                          std::optional<std::int64_t> cas = std::nullopt) {
    return Ok(Req(Operation::kUpdate, "data/" + path, WriteBody(std::move(data), cas)));
  }
  StatusOr<logical::Response> Read(const std::string& path, json query = json::object()) {
    return Serve(Req(Operation::kRead, "data/" + path, std::move(query)));
  }
  json ReadValue(const std::string& path, json query = json::object()) {
    auto r = Read(path, std::move(query));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok() || !r->data) return nullptr;
    EXPECT_EQ(r->status, 0);
    return r->data->at("data");
  }
  json Metadata(const std::string& path) {
    auto r = Ok(Req(Operation::kRead, "metadata/" + path));
    return r.data.value_or(json());
  }
  json Config() { return Ok(Req(Operation::kRead, "config")).data.value_or(json()); }
  StatusOr<logical::Response> List(const std::string& path) {
    return backend_->HandleRequest(Req(Operation::kList, "metadata/" + path));
  }
  void Versions(const std::string& action, const std::string& path, json versions) {
    auto r = Ok(Req(Operation::kUpdate, action + "/" + path, {{"versions", std::move(versions)}}));
    EXPECT_EQ(r.status, 0);
    EXPECT_FALSE(r.data.has_value());
  }
  std::int64_t VersionRows(const std::string& path) {
    return Count("SELECT COUNT(*) FROM kv_versions WHERE path = ?", {path});
  }
};

void ExpectStatus(const Status& s, StatusCode code, const std::string& message) {
  EXPECT_EQ(s.code(), code) << s.ToString();
  EXPECT_EQ(s.message(), message);
}

// --- config ---

TEST_F(KvV2Test, ConfigStartsEmptyAndKeepsWhatWasWritten) {
  EXPECT_EQ(Config(),
            (json{{"max_versions", 0}, {"cas_required", false}, {"delete_version_after", "0s"}}));
  auto w =
      Ok(Req(Operation::kUpdate, "config",
             {{"max_versions", "5"}, {"cas_required", "true"}, {"delete_version_after", "30m"}}));
  EXPECT_EQ(w.status, 0);
  EXPECT_FALSE(w.data.has_value());  // 204
  EXPECT_TRUE(w.audited);
  EXPECT_EQ(Config(),
            (json{{"max_versions", 5}, {"cas_required", true}, {"delete_version_after", "30m0s"}}));
  // Fields not sent are kept.
  Ok(Req(Operation::kUpdate, "config", {{"delete_version_after", 12319}}));
  EXPECT_EQ(
      Config(),
      (json{{"max_versions", 5}, {"cas_required", true}, {"delete_version_after", "3h25m19s"}}));
}

TEST_F(KvV2Test, MalformedConfigIsRefusedAndChangesNothing) {
  Ok(Req(Operation::kUpdate, "config", {{"max_versions", 7}}));
  const json before = Config();
  EXPECT_EQ(Err(Req(Operation::kUpdate, "config", {{"max_versions", "many"}})).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Err(Req(Operation::kUpdate, "config", {{"max_versions", -1}})).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Err(Req(Operation::kUpdate, "config", {{"cas_required", "maybe"}})).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Err(Req(Operation::kUpdate, "config",
                    {{"max_versions", 3}, {"delete_version_after", "soon"}}))
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Config(), before);
}

// --- data: write and read ---

TEST_F(KvV2Test, WriteAndReadHaveVaultsExactShape) {
  auto w = Write("app/db", {{"user", "admin"}, {"port", 5432}, {"tags", {"a", "b"}}});
  ASSERT_TRUE(w.data.has_value());
  EXPECT_TRUE(w.audited);
  EXPECT_EQ(*w.data, (json{{"created_time", kStartText},
                           {"custom_metadata", nullptr},
                           {"deletion_time", ""},
                           {"destroyed", false},
                           {"version", 1}}));
  Advance(seconds(1));
  auto r = Read("app/db");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 0);
  EXPECT_TRUE(r->audited);
  EXPECT_EQ(*r->data, (json{{"data", {{"user", "admin"}, {"port", 5432}, {"tags", {"a", "b"}}}},
                            {"metadata",
                             {{"created_time", kStartText},
                              {"custom_metadata", nullptr},
                              {"deletion_time", ""},
                              {"destroyed", false},
                              {"version", 1}}}}));
}

TEST_F(KvV2Test, VersionsIncreaseAndCanBeReadByNumber) {
  for (int i = 1; i <= 3; ++i) {
    EXPECT_EQ(Write("k", {{"n", i}}).data->at("version"), i);
    Advance(seconds(10));
  }
  EXPECT_EQ(ReadValue("k"), (json{{"n", 3}}));
  EXPECT_EQ(ReadValue("k", {{"version", "2"}}), (json{{"n", 2}}));
  EXPECT_EQ(ReadValue("k", {{"version", 1}}), (json{{"n", 1}}));
  EXPECT_EQ(ReadValue("k", {{"version", 0}}), (json{{"n", 3}}));
  auto v1 = Read("k", {{"version", 1}});
  EXPECT_EQ(v1->data->at("metadata").at("created_time"), kStartText);
  // Missing key or version: a bare 404.
  ExpectStatus(Read("k", {{"version", 4}}).status(), StatusCode::kNotFound, "");
  ExpectStatus(Read("nope").status(), StatusCode::kNotFound, "");
}

TEST_F(KvV2Test, BadVersionParameterIs400) {
  Write("k", {{"a", 1}});
  EXPECT_EQ(Read("k", {{"version", "two"}}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Read("k", {{"version", -1}}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Read("k", {{"version", 1.5}}).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(KvV2Test, MalformedWritesAre400AndChangeNothing) {
  ExpectStatus(Err(Req(Operation::kUpdate, "data/k", json::object())), StatusCode::kInvalidArgument,
               "no data provided");
  EXPECT_EQ(Err(Req(Operation::kUpdate, "data/k", {{"data", "not an object"}})).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Err(Req(Operation::kUpdate, "data/k", {{"data", {1, 2}}})).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(
      Err(Req(Operation::kUpdate, "data/k", {{"data", {{"a", 1}}}, {"options", "cas"}})).code(),
      StatusCode::kInvalidArgument);
  EXPECT_EQ(
      Err(Req(Operation::kUpdate, "data/k", {{"data", {{"a", 1}}}, {"options", {{"cas", "one"}}}}))
          .code(),
      StatusCode::kInvalidArgument);
  EXPECT_EQ(Err(Req(Operation::kUpdate, "data/k", WriteBody({{"a", 1}}, -1))).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Err(Req(Operation::kUpdate, "data/", WriteBody({{"a", 1}}))).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Err(Req(Operation::kUpdate, "data/dir/", WriteBody({{"a", 1}}))).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM kv_metadata"), 0);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM kv_versions"), 0);
  // And on an existing key, the current version stays.
  Write("k", {{"a", 1}});
  EXPECT_EQ(Err(Req(Operation::kUpdate, "data/k", {{"data", 5}})).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Metadata("k").at("current_version"), 1);
  EXPECT_EQ(ReadValue("k"), (json{{"a", 1}}));
}

TEST_F(KvV2Test, EmptyObjectIsValidData) {
  EXPECT_EQ(Write("k", json::object()).data->at("version"), 1);
  EXPECT_EQ(ReadValue("k"), json::object());
}

// --- check-and-set ---

TEST_F(KvV2Test, CheckAndSetRules) {
  const std::string mismatch = "check-and-set parameter did not match the current version";
  ExpectStatus(Err(Req(Operation::kUpdate, "data/k", WriteBody({{"v", 1}}, 1))),
               StatusCode::kInvalidArgument, mismatch);
  EXPECT_EQ(Write("k", {{"v", 1}}, 0).data->at("version"), 1);  // cas 0: only if new
  ExpectStatus(Err(Req(Operation::kUpdate, "data/k", WriteBody({{"v", 2}}, 0))),
               StatusCode::kInvalidArgument, mismatch);
  ExpectStatus(Err(Req(Operation::kUpdate, "data/k", WriteBody({{"v", 2}}, 2))),
               StatusCode::kInvalidArgument, mismatch);
  EXPECT_EQ(Write("k", {{"v", 2}}, 1).data->at("version"), 2);
  EXPECT_EQ(Write("k", {{"v", 3}}).data->at("version"), 3);  // cas not required: allowed
  // Soft-deleted keys still have a current version.
  Ok(Req(Operation::kDelete, "data/k"));
  EXPECT_EQ(Write("k", {{"v", 4}}, 3).data->at("version"), 4);
  EXPECT_EQ(ReadValue("k"), (json{{"v", 4}}));
}

TEST_F(KvV2Test, CasRequiredByConfigOrByKey) {
  const std::string required = "check-and-set parameter required for this call";
  Ok(Req(Operation::kUpdate, "config", {{"cas_required", true}}));
  ExpectStatus(Err(Req(Operation::kUpdate, "data/k", WriteBody({{"v", 1}}))),
               StatusCode::kInvalidArgument, required);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM kv_versions"), 0);
  EXPECT_EQ(Write("k", {{"v", 1}}, 0).data->at("version"), 1);
  Ok(Req(Operation::kUpdate, "config", {{"cas_required", false}}));
  EXPECT_EQ(Write("k", {{"v", 2}}).data->at("version"), 2);
  Ok(Req(Operation::kUpdate, "metadata/k", {{"cas_required", true}}));
  ExpectStatus(Err(Req(Operation::kUpdate, "data/k", WriteBody({{"v", 3}}))),
               StatusCode::kInvalidArgument, required);
  EXPECT_EQ(Write("k", {{"v", 3}}, 2).data->at("version"), 3);
  EXPECT_EQ(Write("other", {{"v", 1}}).data->at("version"), 1);  // only key k requires it
}

// --- max_versions ---

TEST_F(KvV2Test, KeyMaxVersionsPrunesOldestPermanently) {
  Ok(Req(Operation::kUpdate, "metadata/k", {{"max_versions", 2}}));
  for (int i = 1; i <= 4; ++i) Write("k", {{"n", i}});
  const json meta = Metadata("k");
  EXPECT_EQ(meta.at("current_version"), 4);
  EXPECT_EQ(meta.at("oldest_version"), 3);
  EXPECT_EQ(meta.at("max_versions"), 2);
  EXPECT_EQ(meta.at("versions").size(), 2u);
  EXPECT_TRUE(meta.at("versions").contains("3"));
  EXPECT_TRUE(meta.at("versions").contains("4"));
  EXPECT_EQ(VersionRows("k"), 2);
  ExpectStatus(Read("k", {{"version", 1}}).status(), StatusCode::kNotFound, "");
  EXPECT_EQ(ReadValue("k", {{"version", 3}}), (json{{"n", 3}}));
}

TEST_F(KvV2Test, ConfigMaxVersionsAppliesWhenTheKeyHasNone) {
  Ok(Req(Operation::kUpdate, "config", {{"max_versions", 3}}));
  for (int i = 1; i <= 5; ++i) Write("k", {{"n", i}});
  EXPECT_EQ(Metadata("k").at("oldest_version"), 3);
  EXPECT_EQ(VersionRows("k"), 3);
  // The key's own limit wins over the mount's.
  Ok(Req(Operation::kUpdate, "metadata/k", {{"max_versions", 4}}));
  Write("k", {{"n", 6}});
  Write("k", {{"n", 7}});
  EXPECT_EQ(VersionRows("k"), 4);
  EXPECT_EQ(Metadata("k").at("oldest_version"), 4);
}

TEST_F(KvV2Test, DefaultKeepsTenVersionsAndOldestStartsAtZero) {
  for (int i = 1; i <= 10; ++i) Write("k", {{"n", i}});
  EXPECT_EQ(Metadata("k").at("oldest_version"), 0);
  EXPECT_EQ(VersionRows("k"), 10);
  Write("k", {{"n", 11}});
  Write("k", {{"n", 12}});
  EXPECT_EQ(Metadata("k").at("oldest_version"), 3);
  EXPECT_EQ(VersionRows("k"), 10);
}

TEST_F(KvV2Test, LoweringMaxVersionsPrunesSeveralOnTheNextWrite) {
  for (int i = 1; i <= 6; ++i) Write("k", {{"n", i}});
  Ok(Req(Operation::kUpdate, "metadata/k", {{"max_versions", 2}}));
  Write("k", {{"n", 7}});
  EXPECT_EQ(VersionRows("k"), 2);
  EXPECT_EQ(Metadata("k").at("oldest_version"), 6);
}

// --- delete_version_after ---

TEST_F(KvV2Test, DeleteVersionAfterStampsAFutureDeletionTime) {
  Ok(Req(Operation::kUpdate, "config", {{"delete_version_after", "1h"}}));
  auto w = Write("k", {{"v", 1}});
  EXPECT_EQ(w.data->at("deletion_time"), "2027-01-15T09:00:00.945319214Z");
  // Not yet due: readable, and the metadata shows the scheduled time.
  Advance(minutes(59));
  auto r = Read("k");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 0);
  EXPECT_EQ(r->data->at("data"), (json{{"v", 1}}));
  EXPECT_EQ(r->data->at("metadata").at("deletion_time"), "2027-01-15T09:00:00.945319214Z");
  // Due: a 404 carrying the metadata.
  Advance(minutes(2));
  r = Read("k");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 404);
  EXPECT_TRUE(r->data->at("data").is_null());
  EXPECT_EQ(r->data->at("metadata").at("version"), 1);
}

TEST_F(KvV2Test, DeleteVersionAfterIsTheSmallerOfKeyAndConfig) {
  Ok(Req(Operation::kUpdate, "config", {{"delete_version_after", "1h"}}));
  Ok(Req(Operation::kUpdate, "metadata/k", {{"delete_version_after", "30m"}}));
  EXPECT_EQ(Metadata("k").at("delete_version_after"), "30m0s");
  EXPECT_EQ(Write("k", {{"v", 1}}).data->at("deletion_time"), "2027-01-15T08:30:00.945319214Z");
  Ok(Req(Operation::kUpdate, "metadata/k", {{"delete_version_after", "2h"}}));
  EXPECT_EQ(Write("k", {{"v", 2}}).data->at("deletion_time"), "2027-01-15T09:00:00.945319214Z");
  Ok(Req(Operation::kUpdate, "config", {{"delete_version_after", "0s"}}));
  EXPECT_EQ(Write("k", {{"v", 3}}).data->at("deletion_time"), "2027-01-15T10:00:00.945319214Z");
  Ok(Req(Operation::kUpdate, "metadata/k", {{"delete_version_after", 0}}));
  EXPECT_EQ(Write("k", {{"v", 4}}).data->at("deletion_time"), "");
}

// --- soft delete, undelete, destroy ---

TEST_F(KvV2Test, SoftDeleteOfTheLatestGives404WithMetadataUntilUndeleted) {
  Write("k", {{"v", 1}});
  Write("k", {{"v", 2}});
  Advance(seconds(5));
  auto d = Ok(Req(Operation::kDelete, "data/k"));
  EXPECT_EQ(d.status, 0);
  EXPECT_FALSE(d.data.has_value());
  EXPECT_TRUE(d.audited);
  auto r = Read("k");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 404);
  EXPECT_TRUE(r->audited);
  EXPECT_EQ(*r->data, (json{{"data", nullptr},
                            {"metadata",
                             {{"created_time", kStartText},
                              {"custom_metadata", nullptr},
                              {"deletion_time", "2027-01-15T08:00:05.945319214Z"},
                              {"destroyed", false},
                              {"version", 2}}}}));
  EXPECT_EQ(ReadValue("k", {{"version", 1}}), (json{{"v", 1}}));  // only the latest
  EXPECT_EQ(Metadata("k").at("versions").at("2").at("deletion_time"),
            "2027-01-15T08:00:05.945319214Z");
  // Deleting again changes nothing (the first deletion time stays).
  Advance(seconds(5));
  Ok(Req(Operation::kDelete, "data/k"));
  EXPECT_EQ(Metadata("k").at("versions").at("2").at("deletion_time"),
            "2027-01-15T08:00:05.945319214Z");
  Versions("undelete", "k", {2});
  EXPECT_EQ(ReadValue("k"), (json{{"v", 2}}));
  EXPECT_EQ(Metadata("k").at("versions").at("2").at("deletion_time"), "");
}

TEST_F(KvV2Test, DeleteOfAMissingKeyIs204AndCreatesNothing) {
  auto d = Ok(Req(Operation::kDelete, "data/ghost"));
  EXPECT_EQ(d.status, 0);
  EXPECT_FALSE(d.data.has_value());
  Versions("delete", "ghost", {1});
  Versions("undelete", "ghost", {1});
  Versions("destroy", "ghost", {1});
  EXPECT_EQ(Count("SELECT COUNT(*) FROM kv_metadata"), 0);
}

TEST_F(KvV2Test, DeleteVersionsTakesListsAndCommaStringsAndIgnoresMissingOnes) {
  for (int i = 1; i <= 4; ++i) Write("k", {{"n", i}});
  Versions("delete", "k", {1, 2, 99});
  Versions("delete", "k", "3, 4");
  const json versions = Metadata("k").at("versions");
  for (const char* v : {"1", "2", "3", "4"}) {
    EXPECT_EQ(versions.at(v).at("deletion_time"), kStartText) << v;
  }
  for (int v = 1; v <= 4; ++v) EXPECT_EQ(Read("k", {{"version", v}})->status, 404);
  Versions("undelete", "k", json::array({"1", 3}));
  EXPECT_EQ(ReadValue("k", {{"version", 1}}), (json{{"n", 1}}));
  EXPECT_EQ(ReadValue("k", {{"version", 3}}), (json{{"n", 3}}));
  EXPECT_EQ(Read("k", {{"version", 2}})->status, 404);
}

TEST_F(KvV2Test, MalformedVersionListsAre400AndChangeNothing) {
  Write("k", {{"n", 1}});
  for (const char* action : {"delete", "undelete", "destroy"}) {
    SCOPED_TRACE(action);
    const std::string path = std::string(action) + "/k";
    ExpectStatus(Err(Req(Operation::kUpdate, path, json::object())), StatusCode::kInvalidArgument,
                 "no version number provided");
    ExpectStatus(Err(Req(Operation::kUpdate, path, {{"versions", json::array()}})),
                 StatusCode::kInvalidArgument, "no version number provided");
    EXPECT_EQ(Err(Req(Operation::kUpdate, path, {{"versions", "1,x"}})).code(),
              StatusCode::kInvalidArgument);
    EXPECT_EQ(Err(Req(Operation::kUpdate, path, {{"versions", {1, {{"a", 1}}}}})).code(),
              StatusCode::kInvalidArgument);
    EXPECT_EQ(Err(Req(Operation::kUpdate, path, {{"versions", {-1}}})).code(),
              StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(ReadValue("k"), (json{{"n", 1}}));
  EXPECT_EQ(Metadata("k").at("versions").at("1"),
            (json{{"created_time", kStartText}, {"deletion_time", ""}, {"destroyed", false}}));
}

TEST_F(KvV2Test, DestroyRemovesTheDataForGood) {
  Write("k", {{"v", 1}});
  Write("k", {{"v", 2}});
  Versions("destroy", "k", {1});
  auto r = Read("k", {{"version", 1}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->data->at("metadata").at("destroyed"), true);
  EXPECT_EQ(r->data->at("metadata").at("deletion_time"), "");
  EXPECT_TRUE(r->data->at("data").is_null());
  EXPECT_EQ(Count("SELECT COUNT(*) FROM kv_versions WHERE version = 1 AND ciphertext IS NULL"), 1);
  // Undelete cannot revive it.
  Versions("undelete", "k", {1});
  EXPECT_EQ(Read("k", {{"version", 1}})->status, 404);
  EXPECT_EQ(Metadata("k").at("versions").at("1").at("destroyed"), true);
  // Destroying the current version makes the key read as gone.
  Versions("destroy", "k", {2});
  EXPECT_EQ(Read("k")->status, 404);
  EXPECT_EQ(Metadata("k").at("current_version"), 2);
}

// --- PATCH ---

TEST_F(KvV2Test, PatchMergesIntoTheCurrentVersion) {
  Write("k", {{"a", 1}, {"b", {{"x", 1}, {"y", 2}}}, {"c", 3}});
  auto request = Req(Operation::kPatch, "data/k",
                     {{"data", {{"a", 10}, {"b", {{"y", nullptr}, {"z", 3}}}, {"c", nullptr}}}});
  request.content_type = "application/merge-patch+json";
  auto p = Ok(request);
  EXPECT_EQ(p.data->at("version"), 2);
  EXPECT_TRUE(p.audited);
  EXPECT_EQ(ReadValue("k"), (json{{"a", 10}, {"b", {{"x", 1}, {"z", 3}}}}));
  EXPECT_EQ(ReadValue("k", {{"version", 1}}),
            (json{{"a", 1}, {"b", {{"x", 1}, {"y", 2}}}, {"c", 3}}));
}

TEST_F(KvV2Test, PatchNeedsMergePatchContentTypeAndALiveKey) {
  Write("k", {{"a", 1}});
  auto request = Req(Operation::kPatch, "data/k", {{"data", {{"a", 2}}}});
  request.content_type = "application/json";
  auto wrong = Ok(request);
  EXPECT_EQ(wrong.status, 415);
  ASSERT_TRUE(wrong.raw_json.has_value());
  EXPECT_EQ(wrong.raw_json->at("errors").size(), 1u);
  EXPECT_EQ(Metadata("k").at("current_version"), 1);

  request.content_type = "application/merge-patch+json";
  auto missing = request;
  missing.relative_path = "data/ghost";
  ExpectStatus(Err(missing), StatusCode::kNotFound, "");
  auto cas = request;
  cas.data["options"] = {{"cas", 5}};
  ExpectStatus(Err(cas), StatusCode::kInvalidArgument,
               "check-and-set parameter did not match the current version");
  auto no_data = request;
  no_data.data = json::object();
  ExpectStatus(Err(no_data), StatusCode::kInvalidArgument, "no data provided");
  Ok(Req(Operation::kDelete, "data/k"));
  auto gone = Ok(request);
  EXPECT_EQ(gone.status, 404);
  EXPECT_TRUE(gone.data->at("data").is_null());
  EXPECT_EQ(Metadata("k").at("current_version"), 1);
}

// --- metadata ---

TEST_F(KvV2Test, MetadataHasVaultsExactShape) {
  Write("k", {{"v", 1}});
  Advance(seconds(60));
  Write("k", {{"v", 2}});
  Advance(seconds(60));
  Versions("delete", "k", {1});
  Versions("destroy", "k", {2});
  EXPECT_EQ(Metadata("k"), (json{{"cas_required", false},
                                 {"created_time", kStartText},
                                 {"current_version", 2},
                                 {"custom_metadata", nullptr},
                                 {"delete_version_after", "0s"},
                                 {"max_versions", 0},
                                 {"oldest_version", 0},
                                 {"updated_time", "2027-01-15T08:01:00.945319214Z"},
                                 {"versions",
                                  {{"1",
                                    {{"created_time", kStartText},
                                     {"deletion_time", "2027-01-15T08:02:00.945319214Z"},
                                     {"destroyed", false}}},
                                   {"2",
                                    {{"created_time", "2027-01-15T08:01:00.945319214Z"},
                                     {"deletion_time", ""},
                                     {"destroyed", true}}}}}}));
  ExpectStatus(Err(Req(Operation::kRead, "metadata/ghost")), StatusCode::kNotFound, "");
}

TEST_F(KvV2Test, MetadataWriteCreatesTheKeyAndSetsCustomMetadata) {
  auto w = Ok(Req(Operation::kUpdate, "metadata/k",
                  {{"max_versions", 3}, {"custom_metadata", {{"team", "blue"}, {"n", 2}}}}));
  EXPECT_EQ(w.status, 0);
  EXPECT_FALSE(w.data.has_value());
  json meta = Metadata("k");
  EXPECT_EQ(meta.at("current_version"), 0);
  EXPECT_EQ(meta.at("versions"), json::object());
  EXPECT_EQ(meta.at("custom_metadata"), (json{{"team", "blue"}, {"n", "2"}}));
  EXPECT_EQ(meta.at("created_time"), kStartText);
  ExpectStatus(Read("k").status(), StatusCode::kNotFound, "");  // no version yet
  Advance(seconds(1));
  auto data = Write("k", {{"v", 1}});
  EXPECT_EQ(data.data->at("custom_metadata"), (json{{"team", "blue"}, {"n", "2"}}));
  EXPECT_EQ(Read("k")->data->at("metadata").at("custom_metadata"),
            (json{{"team", "blue"}, {"n", "2"}}));
  meta = Metadata("k");
  EXPECT_EQ(meta.at("created_time"), kStartText);
  EXPECT_EQ(meta.at("updated_time"), "2027-01-15T08:00:01.945319214Z");
  EXPECT_EQ(meta.at("max_versions"), 3);  // untouched by the data write
}

TEST_F(KvV2Test, MalformedMetadataWritesAre400AndChangeNothing) {
  Ok(Req(Operation::kUpdate, "metadata/k", {{"max_versions", 3}}));
  const json before = Metadata("k");
  EXPECT_EQ(Err(Req(Operation::kUpdate, "metadata/k", {{"max_versions", "x"}})).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Err(Req(Operation::kUpdate, "metadata/k", {{"cas_required", "perhaps"}})).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Err(Req(Operation::kUpdate, "metadata/k", {{"delete_version_after", "-5s"}})).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Err(Req(Operation::kUpdate, "metadata/k", {{"custom_metadata", "a=b"}})).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Err(Req(Operation::kUpdate, "metadata/k",
                    {{"custom_metadata", {{"k", std::string(513, 'v')}}}}))
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Err(Req(Operation::kUpdate, "metadata/new", {{"max_versions", -2}})).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Metadata("k"), before);
  ExpectStatus(Err(Req(Operation::kRead, "metadata/new")), StatusCode::kNotFound, "");
}

TEST_F(KvV2Test, MetadataDeleteRemovesEverything) {
  for (int i = 1; i <= 3; ++i) Write("a/k", {{"n", i}});
  Write("a/other", {{"n", 1}});
  auto d = Ok(Req(Operation::kDelete, "metadata/a/k"));
  EXPECT_EQ(d.status, 0);
  EXPECT_TRUE(d.audited);
  ExpectStatus(Err(Req(Operation::kRead, "metadata/a/k")), StatusCode::kNotFound, "");
  ExpectStatus(Read("a/k").status(), StatusCode::kNotFound, "");
  ExpectStatus(Read("a/k", {{"version", 1}}).status(), StatusCode::kNotFound, "");
  EXPECT_EQ(VersionRows("a/k"), 0);
  EXPECT_EQ(List("a")->data->at("keys"), (json{"other"}));
  // Writing again starts from version 1.
  EXPECT_EQ(Write("a/k", {{"n", 9}}).data->at("version"), 1);
  // Deleting a missing key is 204.
  EXPECT_FALSE(Ok(Req(Operation::kDelete, "metadata/ghost")).data.has_value());
}

// --- LIST ---

TEST_F(KvV2Test, ListGivesSortedDirectChildrenWithFolders) {
  ExpectStatus(List("").status(), StatusCode::kNotFound, "");  // empty mount
  for (const char* path : {"z", "b/c", "b/d/e", "a", "b-x", "b0", "b/d/f"}) {
    Write(path, {{"p", path}});
  }
  Ok(Req(Operation::kDelete, "data/z"));  // soft-deleted keys are still listed
  auto root = List("");
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(root->data->at("keys"), (json{"a", "b-x", "b/", "b0", "z"}));
  EXPECT_EQ(List("b/")->data->at("keys"), (json{"c", "d/"}));
  EXPECT_EQ(List("b")->data->at("keys"), (json{"c", "d/"}));
  EXPECT_EQ(List("b/d/")->data->at("keys"), (json{"e", "f"}));
  ExpectStatus(List("nope/").status(), StatusCode::kNotFound, "");
  ExpectStatus(List("a/").status(), StatusCode::kNotFound, "");  // a key, not a folder
  // The root also lists as "metadata" without the slash.
  EXPECT_EQ(backend_->HandleRequest(Req(Operation::kList, "metadata"))->data->at("keys").size(),
            5u);
  // A key with only metadata is listed too.
  Ok(Req(Operation::kUpdate, "metadata/m", {{"max_versions", 1}}));
  EXPECT_EQ(List("")->data->at("keys"), (json{"a", "b-x", "b/", "b0", "m", "z"}));
}

// --- routing and existence ---

TEST_F(KvV2Test, UnknownPathsAndOperations) {
  ExpectStatus(Err(Req(Operation::kRead, "nothing/here")), StatusCode::kNotFound,
               "unsupported path");
  ExpectStatus(Err(Req(Operation::kRead, "data")), StatusCode::kNotFound, "unsupported path");
  ExpectStatus(Err(Req(Operation::kList, "data/")), StatusCode::kUnimplemented,
               "unsupported operation");
  EXPECT_EQ(Err(Req(Operation::kDelete, "config")).code(), StatusCode::kUnimplemented);
  EXPECT_EQ(Err(Req(Operation::kRead, "destroy/k")).code(), StatusCode::kUnimplemented);
  EXPECT_EQ(Err(Req(Operation::kPatch, "metadata/k")).code(), StatusCode::kUnimplemented);
}

TEST_F(KvV2Test, ExistenceCheckForDataAndMetadata) {
  auto exists = [&](const std::string& relative) {
    auto r = backend_->Exists(Req(Operation::kUpdate, relative));
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : std::nullopt;
  };
  EXPECT_EQ(exists("data/k"), std::optional<bool>(false));
  EXPECT_EQ(exists("metadata/k"), std::optional<bool>(false));
  EXPECT_EQ(exists("config"), std::nullopt);
  EXPECT_EQ(exists("delete/k"), std::nullopt);
  Write("k", {{"v", 1}});
  EXPECT_EQ(exists("data/k"), std::optional<bool>(true));
  EXPECT_EQ(exists("metadata/k"), std::optional<bool>(true));
  Ok(Req(Operation::kUpdate, "metadata/m", {{"max_versions", 1}}));
  EXPECT_EQ(exists("data/m"), std::optional<bool>(true));
  Ok(Req(Operation::kDelete, "metadata/k"));
  EXPECT_EQ(exists("data/k"), std::optional<bool>(false));
}

// --- at rest ---

TEST_F(KvV2Test, TheDatabaseNeverHoldsAValueInPlaintext) {
  const std::string secret = "Zq7-unique-plaintext-marker-4f1d9a";
  Write("app/secret", {{"password", secret}, {"nested", {{"also", secret + "-2"}}}});
  auto r = Read("app/secret");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->data->at("data").at("password"), secret);
  auto patch = Req(Operation::kPatch, "data/app/secret", {{"data", {{"extra", secret + "-3"}}}});
  patch.content_type = "application/merge-patch+json";
  Ok(patch);
  const std::string bytes = DatabaseBytes();
  ASSERT_GT(bytes.size(), 4096u);
  EXPECT_NE(bytes.find("app/secret"), std::string::npos);  // paths are plaintext metadata
  EXPECT_EQ(bytes.find("Zq7-unique-plaintext-marker"), std::string::npos);
  for (const auto& body : AuditBodies()) {
    EXPECT_EQ(body.find("Zq7-unique"), std::string::npos) << body;
  }
}

TEST_F(KvV2Test, ARowMovedToAnotherPathOrVersionFailsAuthentication) {
  Write("a", {{"owner", "a"}});
  Write("b", {{"owner", "b"}});
  Write("b", {{"owner", "b2"}});
  // Swap the ciphertexts of a@1 and b@1 behind the engine's back.
  auto Ciphertext = [&](const char* path, int version) {
    auto rows =
        real_store_->Query("SELECT ciphertext FROM kv_versions WHERE path = ? AND version = ?",
                           {std::string(path), std::int64_t{version}});
    EXPECT_TRUE(rows.ok() && rows->size() == 1);
    return *store::GetText(rows->at(0), 0);
  };
  const std::string a1 = Ciphertext("a", 1), b1 = Ciphertext("b", 1), b2 = Ciphertext("b", 2);
  const std::string put = "UPDATE kv_versions SET ciphertext = ? WHERE path = ? AND version = ?";
  ASSERT_TRUE(Exec(put, {b1, std::string("a"), std::int64_t{1}}).ok());
  ASSERT_TRUE(Exec(put, {a1, std::string("b"), std::int64_t{1}}).ok());
  ExpectStatus(Read("a").status(), StatusCode::kInternal, "stored secret failed authentication");
  ExpectStatus(Read("b", {{"version", 1}}).status(), StatusCode::kInternal,
               "stored secret failed authentication");
  // b's version 2 moved to version 1 of the same key: refused as well.
  ASSERT_TRUE(Exec(put, {b2, std::string("b"), std::int64_t{1}}).ok());
  ExpectStatus(Read("b", {{"version", 1}}).status(), StatusCode::kInternal,
               "stored secret failed authentication");
  EXPECT_EQ(ReadValue("b"), (json{{"owner", "b2"}}));  // untouched
  // A PATCH must open the current value first: refused, and no version is added.
  auto patch = Req(Operation::kPatch, "data/a", {{"data", {{"owner", "mallory"}}}});
  patch.content_type = "application/merge-patch+json";
  ExpectStatus(Err(patch), StatusCode::kInternal, "stored secret failed authentication");
  EXPECT_EQ(Metadata("a").at("current_version"), 1);
  // Each failure is in the audit log as an error.
  int failures = 0;
  for (const auto& e : AuditEvents()) {
    if (e.op == "kv.read" && e.outcome == audit::Outcome::kError) {
      ++failures;
      EXPECT_EQ(e.reason, "stored secret failed authentication");
    }
  }
  EXPECT_EQ(failures, 4);
}

TEST_F(KvV2Test, AnotherMountCannotOpenThisMountsRows) {
  Write("k", {{"v", "mine"}});
  auto other = MakeBackend(Mount("other/", "11111111-2222-4333-8444-555555555555", "2"));
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(
      other
          ->HandleRequest(Req(Operation::kUpdate, "data/k", WriteBody({{"v", "theirs"}}), "other/"))
          .ok());
  // Give the other mount this mount's row (even its storage key is different).
  ASSERT_TRUE(Exec("UPDATE kv_versions SET ciphertext = (SELECT ciphertext FROM kv_versions "
                   "WHERE mount = ?) WHERE mount = ?",
                   {std::string(kUuid), std::string("11111111-2222-4333-8444-555555555555")})
                  .ok());
  EXPECT_EQ(other->HandleRequest(Req(Operation::kRead, "data/k", json::object(), "other/"))
                .status()
                .code(),
            StatusCode::kInternal);
}

// --- audit ---

TEST_F(KvV2Test, ReadsAndWritesAreAuditedWithPathAndVersionButNotTheValue) {
  const std::string value = "audit-must-not-see-this-7731";
  Write("team/app", {{"token", value}});
  ReadValue("team/app");
  Ok(Req(Operation::kDelete, "data/team/app"));
  Versions("undelete", "team/app", {1});
  Versions("destroy", "team/app", {1});
  Ok(Req(Operation::kUpdate, "metadata/team/app", {{"max_versions", 4}}));
  Ok(Req(Operation::kDelete, "metadata/team/app"));
  std::map<std::string, audit::Event> by_op;
  for (const auto& e : AuditEvents()) {
    if (e.op.starts_with("kv.")) by_op[e.op] = e;
  }
  ASSERT_TRUE(by_op.contains("kv.write"));
  EXPECT_EQ(by_op["kv.write"].path, "secret/data/team/app");
  EXPECT_EQ(by_op["kv.write"].details.at("version"), 1);
  EXPECT_EQ(by_op["kv.write"].actor, "accessor-test");
  EXPECT_EQ(by_op["kv.write"].remote_addr, "192.0.2.7");
  EXPECT_FALSE(by_op["kv.write"].request_id.empty());
  ASSERT_TRUE(by_op.contains("kv.read"));
  EXPECT_EQ(by_op["kv.read"].path, "secret/data/team/app");
  EXPECT_EQ(by_op["kv.read"].details.at("version"), 1);
  EXPECT_EQ(by_op["kv.read"].outcome, audit::Outcome::kOk);
  EXPECT_EQ(by_op["kv.delete"].details.at("versions"), "1");
  EXPECT_EQ(by_op["kv.undelete"].path, "secret/undelete/team/app");
  EXPECT_EQ(by_op["kv.destroy"].details.at("versions"), "1");
  EXPECT_TRUE(by_op.contains("kv.metadata.write"));
  EXPECT_TRUE(by_op.contains("kv.metadata.delete"));
  // The keyring did not write its own decrypt/encrypt records: the engine's name the path.
  for (const auto& e : AuditEvents()) {
    EXPECT_NE(e.op, "keyring.encrypt");
    EXPECT_NE(e.op, "keyring.decrypt");
  }
  for (const auto& body : AuditBodies()) EXPECT_EQ(body.find(value), std::string::npos);
}

TEST_F(KvV2Test, NoValueIsReturnedWhenTheReadCannotBeAudited) {
  Write("k", {{"v", "x"}});
  ReadValue("k");  // warm: the value itself is served from the cache
  flaky_->fail_commits = true;
  auto r = Read("k");
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  // Writes fail too, and leave nothing behind.
  EXPECT_EQ(Err(Req(Operation::kUpdate, "data/k", WriteBody({{"v", "y"}}))).code(),
            StatusCode::kUnavailable);
  flaky_->fail_commits = false;
  EXPECT_EQ(Metadata("k").at("current_version"), 1);
  EXPECT_EQ(ReadValue("k"), (json{{"v", "x"}}));
}

// --- warm cache ---

TEST_F(KvV2Test, AWarmReadDoesNotTouchTheDatabase) {
  Write("k", {{"v", 1}});
  ReadValue("k");  // cold: fills the cache
  counting_->reads = 0;
  for (int i = 0; i < 5; ++i) EXPECT_EQ(ReadValue("k"), (json{{"v", 1}}));
  EXPECT_EQ(counting_->reads.load(), 0);
  // An explicit version equal to the current one is warm too; an older one is not.
  EXPECT_EQ(ReadValue("k", {{"version", 1}}), (json{{"v", 1}}));
  EXPECT_EQ(counting_->reads.load(), 0);
}

TEST_F(KvV2Test, EveryChangeInvalidatesTheWarmEntry) {
  Write("k", {{"v", 1}});
  EXPECT_EQ(ReadValue("k"), (json{{"v", 1}}));
  Write("k", {{"v", 2}});
  EXPECT_EQ(ReadValue("k"), (json{{"v", 2}}));
  Ok(Req(Operation::kUpdate, "metadata/k", {{"custom_metadata", {{"x", "y"}}}}));
  EXPECT_EQ(Read("k")->data->at("metadata").at("custom_metadata"), (json{{"x", "y"}}));
  Ok(Req(Operation::kDelete, "data/k"));
  EXPECT_EQ(Read("k")->status, 404);
  Versions("undelete", "k", {2});
  EXPECT_EQ(Read("k")->status, 0);
  Versions("delete", "k", {2});
  EXPECT_EQ(Read("k")->status, 404);
  Versions("undelete", "k", {2});
  Versions("destroy", "k", {2});
  EXPECT_EQ(Read("k")->data->at("metadata").at("destroyed"), true);
  Ok(Req(Operation::kDelete, "metadata/k"));
  ExpectStatus(Read("k").status(), StatusCode::kNotFound, "");
  // A failed write (cas mismatch) leaves the warm entry valid.
  Write("k", {{"v", 3}});
  ReadValue("k");
  EXPECT_EQ(Err(Req(Operation::kUpdate, "data/k", WriteBody({{"v", 4}}, 7))).code(),
            StatusCode::kInvalidArgument);
  counting_->reads = 0;
  EXPECT_EQ(ReadValue("k"), (json{{"v", 3}}));
  EXPECT_EQ(counting_->reads.load(), 0);
}

// --- concurrency ---

TEST_F(KvV2Test, ConcurrentCasWritersLoseNoUpdate) {
  Ok(Req(Operation::kUpdate, "config", {{"max_versions", 1000}}));
  constexpr int kThreads = 8;
  constexpr int kWritesEach = 6;
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kWritesEach;) {
        auto meta = backend_->HandleRequest(Req(Operation::kRead, "metadata/counter"));
        const std::int64_t current = meta.ok() ? meta->data->at("current_version").get<int>() : 0;
        auto w = backend_->HandleRequest(
            Req(Operation::kUpdate, "data/counter", WriteBody({{"t", t}, {"i", i}}, current)));
        if (w.ok()) {
          EXPECT_EQ(w->data->at("version"), current + 1);
          ++i;
        } else {
          EXPECT_EQ(w.status().message(),
                    "check-and-set parameter did not match the current version");
          ++mismatches;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(Metadata("counter").at("current_version"), kThreads * kWritesEach);
  std::set<std::pair<int, int>> seen;
  for (int v = 1; v <= kThreads * kWritesEach; ++v) {
    const json value = ReadValue("counter", {{"version", v}});
    seen.emplace(value.at("t").get<int>(), value.at("i").get<int>());
  }
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kThreads * kWritesEach));
  RecordProperty("cas_mismatches_retried", mismatches.load());
}

TEST_F(KvV2Test, ConcurrentWritersWithoutCasEachGetTheirOwnVersion) {
  Ok(Req(Operation::kUpdate, "config", {{"max_versions", 1000}}));
  constexpr int kThreads = 8;
  constexpr int kWritesEach = 5;
  std::vector<std::thread> threads;
  std::mutex mu;
  std::set<std::int64_t> versions;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kWritesEach; ++i) {
        auto w = backend_->HandleRequest(
            Req(Operation::kUpdate, "data/shared", WriteBody({{"t", t}, {"i", i}})));
        ASSERT_TRUE(w.ok()) << w.status().ToString();
        std::lock_guard lock(mu);
        EXPECT_TRUE(versions.insert(w->data->at("version").get<std::int64_t>()).second);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(versions.size(), static_cast<std::size_t>(kThreads * kWritesEach));
  EXPECT_EQ(Metadata("shared").at("current_version"), kThreads * kWritesEach);
  std::set<std::pair<int, int>> seen;
  for (std::int64_t v : versions) {
    const json value = ReadValue("shared", {{"version", v}});
    seen.emplace(value.at("t").get<int>(), value.at("i").get<int>());
  }
  EXPECT_EQ(seen.size(), versions.size());
}

TEST_F(KvV2Test, ConcurrentReadsDuringWritesNeverSeeAnOlderVersionAfterANewerOne) {
  Write("k", {{"n", 0}});
  std::atomic<bool> done{false};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      std::int64_t last = 0;
      while (!done) {
        auto read = Read("k");
        ASSERT_TRUE(read.ok()) << read.status().ToString();
        const std::int64_t n = read->data->at("data").at("n").get<std::int64_t>();
        EXPECT_GE(n, last);
        EXPECT_EQ(read->data->at("metadata").at("version").get<std::int64_t>(), n + 1);
        last = n;
      }
    });
  }
  for (int i = 1; i <= 20; ++i) {
    Write("k", {{"n", i}});
    // Once the write returned, every later read sees it.
    EXPECT_EQ(ReadValue("k").at("n"), i);
  }
  done = true;
  for (auto& th : readers) th.join();
}

// --- purge and factory ---

TEST_F(KvV2Test, PurgeDeletesEveryRowAndRetiresTheStorageKey) {
  Ok(Req(Operation::kUpdate, "config", {{"max_versions", 4}}));
  Write("a", {{"v", 1}});
  Write("b/c", {{"v", 1}});
  ReadValue("a");  // warm
  ASSERT_TRUE(backend_->Purge().ok());
  for (const char* table : {"kv_config", "kv_metadata", "kv_versions"}) {
    EXPECT_EQ(Count("SELECT COUNT(*) FROM " + std::string(table) + " WHERE mount = ?",
                    {std::string(kUuid)}),
              0)
        << table;
  }
  auto key = keyring_->ReadKey(std::string("kv/") + kUuid);
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(key->state, keyring::KeyState::kPendingDeletion);
  ExpectStatus(Read("a").status(), StatusCode::kNotFound, "");  // the cache was dropped too
  EXPECT_TRUE(backend_->Purge().ok());                          // idempotent
  bool purge_event = false;
  for (const auto& e : AuditEvents()) purge_event |= e.op == "kv.purge" && e.path == "secret/";
  EXPECT_TRUE(purge_event);
}

TEST_F(KvV2Test, FactoryPicksTheVersionAndMakesTheStorageKey) {
  EXPECT_TRUE(keyring_->ReadKey(std::string("kv/") + kUuid).ok());
  auto v3 = NewKvBackend(Mount("x/", "33333333-2222-4333-8444-555555555555", "3"), *keyring_,
                         *counting_, *audit_, options_);
  EXPECT_EQ(v3.status().code(), StatusCode::kInvalidArgument);
  auto no_uuid = NewKvBackend(Mount("x/", "", "2"), *keyring_, *counting_, *audit_, options_);
  EXPECT_EQ(no_uuid.status().code(), StatusCode::kInvalidArgument);
  // Loading an existing mount again reuses its key and sees its data.
  Write("k", {{"v", 1}});
  backend_ = MakeBackend(Mount("secret/", kUuid, "2"));
  EXPECT_EQ(ReadValue("k"), (json{{"v", 1}}));
  EXPECT_EQ(keyring_->ReadKey(std::string("kv/") + kUuid)->latest_version, 1u);
}

}  // namespace
}  // namespace lockbox::secrets::testing
