#include "server/core/wire.h"

#include <gtest/gtest.h>

#include <chrono>

#include "server/core/metrics.h"

namespace lockbox::core {
namespace {

using logical::Operation;

http::HttpRequest Request(std::string method, std::string target, std::string body = "",
                          std::vector<std::pair<std::string, std::string>> headers = {}) {
  http::HttpRequest request;
  request.method = std::move(method);
  request.target = std::move(target);
  request.body = std::move(body);
  request.headers = std::move(headers);
  return request;
}

WireRequest Parsed(const http::HttpRequest& request) {
  auto result = ParseRequest(request);
  const auto* error = std::get_if<WireError>(&result);
  EXPECT_EQ(error, nullptr) << (error != nullptr && !error->errors.empty() ? error->errors[0] : "");
  return error == nullptr ? std::get<WireRequest>(result) : WireRequest{};
}

WireError Refused(const http::HttpRequest& request) {
  auto result = ParseRequest(request);
  EXPECT_TRUE(std::holds_alternative<WireError>(result));
  return std::holds_alternative<WireError>(result) ? std::get<WireError>(result) : WireError{};
}

TEST(WireTest, MethodsMapToOperations) {
  EXPECT_EQ(Parsed(Request("GET", "/v1/secret/data/a")).operation, Operation::kRead);
  EXPECT_EQ(Parsed(Request("POST", "/v1/secret/data/a")).operation, Operation::kUpdate);
  EXPECT_EQ(Parsed(Request("PUT", "/v1/secret/data/a")).operation, Operation::kUpdate);
  EXPECT_EQ(Parsed(Request("DELETE", "/v1/secret/data/a")).operation, Operation::kDelete);
  EXPECT_EQ(Parsed(Request("PATCH", "/v1/secret/data/a", "{}",
                           {{"content-type", "application/merge-patch+json; charset=utf-8"}}))
                .operation,
            Operation::kPatch);
  EXPECT_EQ(
      Refused(Request("PATCH", "/v1/secret/data/a", "{}", {{"content-type", "application/json"}}))
          .status,
      415);
  EXPECT_EQ(Refused(Request("OPTIONS", "/v1/secret/data/a")).status, 405);
  EXPECT_EQ(Refused(Request("HEAD", "/v1/secret/data/a")).status, 405);
  const WireRequest head = Parsed(Request("HEAD", "/v1/sys/health"));
  EXPECT_TRUE(head.head);
  EXPECT_EQ(head.operation, Operation::kRead);
}

TEST(WireTest, ListVerbAndListQueryAppendSlash) {
  const WireRequest list = Parsed(Request("LIST", "/v1/secret/metadata"));
  EXPECT_EQ(list.operation, Operation::kList);
  EXPECT_EQ(list.path, "secret/metadata/");
  for (const char* value : {"true", "True", "1", "t", "TRUE"}) {
    const WireRequest get =
        Parsed(Request("GET", std::string("/v1/secret/metadata?list=") + value));
    EXPECT_EQ(get.operation, Operation::kList) << value;
    EXPECT_EQ(get.path, "secret/metadata/");
    EXPECT_FALSE(get.data.contains("list"));
  }
  const WireRequest read = Parsed(Request("GET", "/v1/secret/metadata?list=false"));
  EXPECT_EQ(read.operation, Operation::kRead);
  EXPECT_EQ(read.path, "secret/metadata");
  const WireError bad = Refused(Request("GET", "/v1/secret/metadata?list=yes"));
  EXPECT_EQ(bad.status, 400);
  ASSERT_EQ(bad.errors.size(), 1u);
}

TEST(WireTest, PathIsDecodedCollapsedAndChecked) {
  EXPECT_EQ(Parsed(Request("GET", "/v1//secret///data/my%20key")).path, "secret/data/my key");
  EXPECT_EQ(Refused(Request("GET", "/v2/secret")).status, 404);
  EXPECT_TRUE(Refused(Request("GET", "/v2/secret")).errors.empty());
  EXPECT_EQ(Refused(Request("GET", "/v1/")).status, 404);
  EXPECT_EQ(Refused(Request("GET", "/v1/secret/../sys/mounts")).status, 400);
  EXPECT_EQ(Refused(Request("GET", "/v1/secret/%2e%2e/sys")).status, 400);
  EXPECT_EQ(Refused(Request("GET", "/v1/secret/a%00b")).status, 400);
  EXPECT_EQ(Refused(Request("GET", "/v1/secret/%zz")).status, 400);
  EXPECT_EQ(Refused(Request("GET", "/v1/secret/%ff%fe")).status, 400);
  const WireRequest jwks = Parsed(Request("GET", "/.well-known/jwks.json"));
  EXPECT_EQ(jwks.path, "identity/oidc/.well-known/keys");
  EXPECT_EQ(Refused(Request("POST", "/.well-known/jwks.json")).status, 405);
}

TEST(WireTest, QueryStringBecomesDataForReads) {
  const WireRequest read = Parsed(Request("GET", "/v1/secret/data/a?version=2&x=a+b%21&m=1&m=2"));
  EXPECT_EQ(read.data["version"], "2");
  EXPECT_EQ(read.data["x"], "a b!");
  EXPECT_EQ(read.data["m"], nlohmann::json::array({"1", "2"}));
  // Writes take the body, not the query.
  const WireRequest write = Parsed(Request("POST", "/v1/secret/data/a?version=2", R"({"a":1})"));
  EXPECT_FALSE(write.data.contains("version"));
  EXPECT_EQ(write.data["a"], 1);
}

TEST(WireTest, BodyMustBeAJsonObjectAndNullsAreAbsent) {
  EXPECT_EQ(Parsed(Request("POST", "/v1/a/b", "")).data, nlohmann::json::object());
  EXPECT_EQ(Parsed(Request("POST", "/v1/a/b", "  \n")).data, nlohmann::json::object());
  EXPECT_EQ(Parsed(Request("POST", "/v1/a/b", "null")).data, nlohmann::json::object());
  const WireRequest parsed =
      Parsed(Request("POST", "/v1/a/b", R"({"description":null,"type":"kv","n":{"x":null}})"));
  EXPECT_FALSE(parsed.data.contains("description"));
  EXPECT_EQ(parsed.data["type"], "kv");
  EXPECT_TRUE(parsed.data["n"].contains("x"));  // only the top level is cleaned
  EXPECT_EQ(Refused(Request("POST", "/v1/a/b", "[1,2]")).status, 400);
  const WireError bad = Refused(Request("POST", "/v1/a/b", R"({"secret":"hunter2)"));
  EXPECT_EQ(bad.status, 400);
  ASSERT_EQ(bad.errors.size(), 1u);
  EXPECT_EQ(bad.errors[0].find("hunter2"), std::string::npos) << "the body is never echoed";
  EXPECT_EQ(
      Refused(Request("POST", "/v1/a/b", std::string(200, '[') + std::string(200, ']'))).status,
      400);
}

TEST(WireTest, HeadersTokenWrappingNamespace) {
  EXPECT_EQ(Parsed(Request("GET", "/v1/a/b", "", {{"authorization", "Bearer tok1"}})).client_token,
            "tok1");
  EXPECT_EQ(Parsed(Request("GET", "/v1/a/b", "",
                           {{"authorization", "Bearer tok1"}, {"x-vault-token", "tok2"}}))
                .client_token,
            "tok2");
  EXPECT_EQ(Parsed(Request("GET", "/v1/a/b", "", {{"authorization", "Basic abc"}})).client_token,
            "");
  const WireError wrap = Refused(Request("GET", "/v1/a/b", "", {{"x-vault-wrap-ttl", "60s"}}));
  EXPECT_EQ(wrap.status, 400);
  EXPECT_EQ(wrap.errors, std::vector<std::string>{"response wrapping not supported"});
  EXPECT_EQ(Refused(Request("GET", "/v1/a/b", "", {{"x-vault-namespace", "team"}})).status, 400);
  EXPECT_EQ(Parsed(Request("GET", "/v1/a/b", "", {{"x-vault-namespace", ""}})).path, "a/b");
}

TEST(WireTest, RequestIdEchoedOnlyWhenSane) {
  EXPECT_EQ(RequestIdFor(Request("GET", "/v1/a", "", {{"x-request-id", "abc-123.x_y:z"}})),
            "abc-123.x_y:z");
  const std::string generated =
      RequestIdFor(Request("GET", "/v1/a", "", {{"x-request-id", "bad id\r\ninjected"}}));
  EXPECT_EQ(generated.size(), 36u);
  EXPECT_NE(generated, RequestIdFor(Request("GET", "/v1/a")));
}

TEST(WireTest, RenderEnvelope204And404) {
  logical::Response empty;
  EXPECT_EQ(RenderResponse(empty, "a/b", {"rid", "kv", Operation::kUpdate}).status, 204);
  EXPECT_EQ(RenderResponse(empty, "a/b", {"rid", "kv", Operation::kUpdate}).body, "");
  const auto not_found = RenderResponse(empty, "a/b", {"rid", "kv", Operation::kRead});
  EXPECT_EQ(not_found.status, 404);
  EXPECT_EQ(not_found.body, R"({"errors":[]})");
  logical::Response no_keys;
  no_keys.data = nlohmann::json{{"keys", nlohmann::json::array()}};
  EXPECT_EQ(RenderResponse(no_keys, "a/", {"rid", "kv", Operation::kList}).status, 404);

  logical::Response warned;
  warned.warnings = {"w"};
  const auto with_warning = RenderResponse(warned, "a/b", {"rid", "kv", Operation::kUpdate});
  EXPECT_EQ(with_warning.status, 200);
  const auto envelope = nlohmann::json::parse(with_warning.body);
  EXPECT_EQ(envelope, (nlohmann::json{{"request_id", "rid"},
                                      {"lease_id", ""},
                                      {"renewable", false},
                                      {"lease_duration", 0},
                                      {"data", nullptr},
                                      {"wrap_info", nullptr},
                                      {"warnings", {"w"}},
                                      {"auth", nullptr},
                                      {"mount_type", "kv"}}));
  bool content_type = false;
  for (const auto& [name, value] : with_warning.headers) {
    if (name == "Content-Type") content_type = value == "application/json";
  }
  EXPECT_TRUE(content_type);
}

TEST(WireTest, EnvelopeIsCompactSortedJsonWithEveryField) {
  logical::Response full;
  full.data = nlohmann::json{{"z", "\u00e9\"quoted\"\n"}, {"a", {1, 2}}, {"n", nullptr}};
  full.auth = nlohmann::json{{"client_token", "t"}, {"policies", {"default"}}};
  full.warnings = {"one", "two"};
  full.lease_duration = std::chrono::seconds(3600);
  full.renewable = true;
  const auto rendered = RenderResponse(full, "kv/data/x", {"rid-\"1", "kv", Operation::kRead});
  const nlohmann::json expected = {
      {"request_id", "rid-\"1"},    {"lease_id", ""},     {"renewable", true},
      {"lease_duration", 3600},     {"data", *full.data}, {"wrap_info", nullptr},
      {"warnings", {"one", "two"}}, {"auth", *full.auth}, {"mount_type", "kv"}};
  EXPECT_EQ(rendered.body, expected.dump());  // byte for byte what a json object dumps
  EXPECT_EQ(RenderResponse(full, "kv/data/x", {"rid", "kv", Operation::kRead, true}).body, "");
}

TEST(WireTest, DataTextIsSplicedAsItIs) {
  const nlohmann::json data = {{"data", {{"k", "v\u00e9"}}}, {"metadata", {{"version", 3}}}};
  logical::Response parsed;
  parsed.data = data;
  logical::Response spliced;
  spliced.data_text = data.dump();
  const RenderOptions options{"rid", "kv", Operation::kRead};
  const auto from_text = RenderResponse(spliced, "kv/data/x", options);
  EXPECT_EQ(from_text.status, 200);
  EXPECT_EQ(from_text.body, RenderResponse(parsed, "kv/data/x", options).body);
  // Verbatim: not parsed and re-written (spacing kept), and the text alone makes a body.
  spliced.data_text = R"({"data": 1})";
  EXPECT_NE(RenderResponse(spliced, "kv/data/x", options).body.find(R"("data":{"data": 1})"),
            std::string::npos);
  spliced.status = 404;
  EXPECT_EQ(RenderResponse(spliced, "kv/data/x", options).status, 404);
}
TEST(WireTest, SysInjectionFollowsVaultsRoutes) {
  EXPECT_TRUE(InjectsDataAtTopLevel("sys/mounts"));
  EXPECT_TRUE(InjectsDataAtTopLevel("sys/mounts/transit/tune"));
  EXPECT_TRUE(InjectsDataAtTopLevel("sys/auth"));
  EXPECT_TRUE(InjectsDataAtTopLevel("sys/policy/"));
  EXPECT_TRUE(InjectsDataAtTopLevel("sys/capabilities-self"));
  EXPECT_FALSE(InjectsDataAtTopLevel("sys/policies/acl/"));
  EXPECT_FALSE(InjectsDataAtTopLevel("sys/internal/ui/mounts/secret"));
  EXPECT_FALSE(InjectsDataAtTopLevel("sys/remount/status/x"));
  logical::Response listed;
  listed.data = nlohmann::json{{"transit/", {{"type", "transit"}}}, {"request_id", "spoofed"}};
  const auto body = nlohmann::json::parse(
      RenderResponse(listed, "sys/mounts", {"rid", "system", Operation::kRead}).body);
  EXPECT_EQ(body["transit/"]["type"], "transit");
  EXPECT_EQ(body["request_id"], "rid") << "data never overrides the envelope";
  EXPECT_FALSE(
      nlohmann::json::parse(
          RenderResponse(listed, "sys/policies/acl/", {"rid", "system", Operation::kList}).body)
          .contains("transit/"));
}

TEST(WireTest, RawResponsesPassThrough) {
  logical::Response raw;
  raw.raw_json = nlohmann::json{{"initialized", true}};
  raw.status = 501;
  const auto rendered = RenderResponse(raw, "sys/health", {"rid", "system", Operation::kRead});
  EXPECT_EQ(rendered.status, 501);
  EXPECT_EQ(rendered.body, R"({"initialized":true})");
  EXPECT_EQ(RenderResponse(raw, "sys/health", {"rid", "system", Operation::kRead, true}).body, "");
  logical::Response text;
  text.raw_text = "m 1\n";
  text.raw_content_type = "text/plain; version=0.0.4";
  const auto metrics = RenderResponse(text, "sys/metrics", {"rid", "system", Operation::kRead});
  EXPECT_EQ(metrics.body, "m 1\n");
}

TEST(WireTest, StatusErrorsMapToVaultCodes) {
  EXPECT_EQ(RenderStatus(NotFoundError(""), "r").body, R"({"errors":[]})");
  EXPECT_EQ(RenderStatus(NotFoundError(""), "r").status, 404);
  EXPECT_EQ(RenderStatus(InvalidArgumentError("bad"), "r").body, R"({"errors":["bad"]})");
  EXPECT_EQ(RenderStatus(UnimplementedError("unsupported operation"), "r").status, 405);
  EXPECT_EQ(RenderStatus(UnavailableError("x"), "r").status, 503);
}

TEST(MetricsTest, HistogramIsCumulativeAndCountsMatch) {
  RequestMetrics metrics;
  metrics.Record("kv.read", 200, std::chrono::microseconds(300));
  metrics.Record("kv.read", 200, std::chrono::milliseconds(20));
  metrics.Record("kv.read", 404, std::chrono::seconds(100));
  std::string text;
  metrics.AppendPrometheus(text);
  EXPECT_NE(text.find("lockbox_http_requests_total{route=\"kv.read\",code=\"200\"} 2\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("lockbox_http_requests_total{route=\"kv.read\",code=\"404\"} 1\n"),
            std::string::npos);
  EXPECT_NE(
      text.find(
          "lockbox_http_request_duration_seconds_bucket{route=\"kv.read\",le=\"0.0005\"} 1\n"),
      std::string::npos);
  EXPECT_NE(
      text.find("lockbox_http_request_duration_seconds_bucket{route=\"kv.read\",le=\"0.025\"} 2\n"),
      std::string::npos);
  EXPECT_NE(
      text.find("lockbox_http_request_duration_seconds_bucket{route=\"kv.read\",le=\"+Inf\"} 3\n"),
      std::string::npos);
  EXPECT_NE(text.find("lockbox_http_request_duration_seconds_count{route=\"kv.read\"} 3\n"),
            std::string::npos);
  EXPECT_EQ(EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

}  // namespace
}  // namespace lockbox::core
