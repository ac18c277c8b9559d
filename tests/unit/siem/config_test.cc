// audit.sinks parsing: valid configurations and every error case, and MakeSink.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "server/siem/config.h"
#include "tests/support/temp_dir.h"

namespace lockbox::siem {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

TEST(SinkConfig, ValidAllTypes) {
  const json sinks = json::parse(R"([
    {"name": "rsyslog", "type": "syslog", "address": "siem.example:6514", "timeout": "3s",
     "tls": {"ca_file": "/etc/ca.pem"}, "batch_size": 100,
     "backoff": {"initial": "50ms", "max": "10s"}, "confirm_window": "20ms"},
    {"name": "v6", "type": "syslog", "address": "[::1]:514"},
    {"name": "splunk", "type": "http", "url": "https://splunk:8088/services/collector/event",
     "token_file": "/etc/lockbox/hec-token", "ca_file": "/etc/ca.pem", "timeout": 2.5},
    {"name": "local.jsonl", "type": "file", "path": "/var/log/lockbox/audit.jsonl"}
  ])");
  auto parsed = ParseSinkConfigs(sinks);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->size(), 4u);
  const SinkConfig& s = (*parsed)[0];
  EXPECT_EQ(s.name, "rsyslog");
  EXPECT_EQ(s.type, SinkType::kSyslog);
  EXPECT_EQ(s.host, "siem.example");
  EXPECT_EQ(s.port, 6514);
  EXPECT_EQ(s.timeout, milliseconds(3000));
  ASSERT_TRUE(s.tls.has_value());
  EXPECT_EQ(s.tls->ca_file, "/etc/ca.pem");
  EXPECT_EQ(s.tls->server_name, "siem.example");  // defaults to the address host
  EXPECT_EQ(s.delivery.batch_size, 100u);
  EXPECT_EQ(s.delivery.backoff_initial, milliseconds(50));
  EXPECT_EQ(s.delivery.backoff_max, milliseconds(10'000));
  EXPECT_EQ(s.confirm_window, milliseconds(20));
  EXPECT_EQ((*parsed)[1].host, "::1");
  EXPECT_EQ((*parsed)[1].port, 514);
  EXPECT_FALSE((*parsed)[1].tls.has_value());
  EXPECT_EQ((*parsed)[1].delivery.batch_size, 256u);  // defaults
  EXPECT_EQ((*parsed)[1].delivery.backoff_initial, milliseconds(100));
  EXPECT_EQ((*parsed)[1].delivery.backoff_max, milliseconds(30'000));
  const SinkConfig& h = (*parsed)[2];
  EXPECT_EQ(h.type, SinkType::kHttp);
  EXPECT_EQ(h.url, "https://splunk:8088/services/collector/event");
  EXPECT_EQ(h.token_file, "/etc/lockbox/hec-token");
  EXPECT_EQ(h.ca_file, "/etc/ca.pem");
  EXPECT_EQ(h.timeout, milliseconds(2500));
  EXPECT_EQ((*parsed)[3].type, SinkType::kFile);
  EXPECT_EQ((*parsed)[3].path, "/var/log/lockbox/audit.jsonl");
}

TEST(SinkConfig, EmptyOrAbsent) {
  auto empty = ParseSinkConfigs(json::array());
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
  auto absent = ParseSinkConfigs(json());
  ASSERT_TRUE(absent.ok());
  EXPECT_TRUE(absent->empty());
}

TEST(SinkConfig, Durations) {
  EXPECT_EQ(*ParseDuration("250ms"), milliseconds(250));
  EXPECT_EQ(*ParseDuration("5s"), milliseconds(5000));
  EXPECT_EQ(*ParseDuration("2m"), milliseconds(120'000));
  EXPECT_EQ(*ParseDuration(1.5), milliseconds(1500));
  for (const json& bad : {json("5"), json("s"), json("5h"), json("-5s"), json(" 5s"), json(-1),
                          json(true), json::array(), json("99999999999s")}) {
    EXPECT_FALSE(ParseDuration(bad).ok()) << bad.dump();
  }
}

struct ErrorCase {
  const char* config;  // the audit.sinks array
  const char* message;
};

class SinkConfigError : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(SinkConfigError, NamesTheField) {
  auto parsed = ParseSinkConfigs(json::parse(GetParam().config));
  ASSERT_FALSE(parsed.ok()) << GetParam().config;
  EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(parsed.status().message(), GetParam().message);
}

#define FILE_OK R"({"name":"f","type":"file","path":"/tmp/x"})"

INSTANTIATE_TEST_SUITE_P(
    AllErrors, SinkConfigError,
    ::testing::Values(
        ErrorCase{R"({"name":"x"})", "audit.sinks: expected an array"},
        ErrorCase{R"([42])", "audit.sinks[0]: expected an object"},
        ErrorCase{R"([{"type":"file","path":"/x"}])", "audit.sinks[0].name: required"},
        ErrorCase{R"([{"name":"","type":"file","path":"/x"}])",
                  "audit.sinks[0].name: expected 1..64 characters of [A-Za-z0-9._-]"},
        ErrorCase{R"([{"name":"a b","type":"file","path":"/x"}])",
                  "audit.sinks[0].name: expected 1..64 characters of [A-Za-z0-9._-]"},
        ErrorCase{R"([{"name":7,"type":"file","path":"/x"}])",
                  "audit.sinks[0].name: expected 1..64 characters of [A-Za-z0-9._-]"},
        ErrorCase{"[" FILE_OK "," FILE_OK "]", "audit.sinks[1].name: duplicate sink name 'f'"},
        ErrorCase{R"([{"name":"x","path":"/x"}])", "audit.sinks[0].type: required"},
        ErrorCase{R"([{"name":"x","type":"kafka"}])",
                  "audit.sinks[0].type: expected \"syslog\", \"http\" or \"file\""},
        ErrorCase{R"([{"name":"x","type":1}])",
                  "audit.sinks[0].type: expected \"syslog\", \"http\" or \"file\""},
        ErrorCase{R"([{"name":"x","type":"file","path":"/x","colour":"red"}])",
                  "audit.sinks[0].colour: unknown field"},
        // Fields of another sink type are unknown here.
        ErrorCase{R"([{"name":"x","type":"file","path":"/x","url":"http://h/"}])",
                  "audit.sinks[0].url: unknown field"},
        ErrorCase{R"([{"name":"x","type":"file","path":"/x","timeout":"1s"}])",
                  "audit.sinks[0].timeout: unknown field"},
        ErrorCase{R"([{"name":"x","type":"http","url":"http://h/","address":"h:1"}])",
                  "audit.sinks[0].address: unknown field"},
        ErrorCase{R"([{"name":"x","type":"file"}])", "audit.sinks[0].path: required"},
        ErrorCase{R"([{"name":"x","type":"file","path":""}])",
                  "audit.sinks[0].path: expected a non-empty string"},
        ErrorCase{R"([{"name":"x","type":"file","path":"/x","batch_size":0}])",
                  "audit.sinks[0].batch_size: expected an integer 1..10000"},
        ErrorCase{R"([{"name":"x","type":"file","path":"/x","batch_size":10001}])",
                  "audit.sinks[0].batch_size: expected an integer 1..10000"},
        ErrorCase{R"([{"name":"x","type":"file","path":"/x","batch_size":1.5}])",
                  "audit.sinks[0].batch_size: expected an integer 1..10000"},
        ErrorCase{R"([{"name":"x","type":"file","path":"/x","backoff":"1s"}])",
                  "audit.sinks[0].backoff: expected an object {initial, max}"},
        ErrorCase{R"([{"name":"x","type":"file","path":"/x","backoff":{"min":"1s"}}])",
                  "audit.sinks[0].backoff.min: unknown field"},
        ErrorCase{R"([{"name":"x","type":"file","path":"/x","backoff":{"initial":"fast"}}])",
                  "audit.sinks[0].backoff.initial: expected a duration such as \"5s\" (units ms, "
                  "s, m)"},
        ErrorCase{R"([{"name":"x","type":"file","path":"/x","backoff":{"initial":"0ms"}}])",
                  "audit.sinks[0].backoff.initial: out of range (1ms..600000ms)"},
        ErrorCase{
            R"([{"name":"x","type":"file","path":"/x","backoff":{"initial":"2s","max":"1s"}}])",
            "audit.sinks[0].backoff.max: must not be less than initial"},
        ErrorCase{R"([)" FILE_OK R"(,{"name":"s","type":"syslog"}])",
                  "audit.sinks[1].address: required"},
        ErrorCase{R"([)" FILE_OK R"(,{"name":"s","type":"syslog","address":"nohost"}])",
                  "audit.sinks[1].address: expected host:port"},
        ErrorCase{R"([{"name":"s","type":"syslog","address":"h:"}])",
                  "audit.sinks[0].address: expected host:port"},
        ErrorCase{R"([{"name":"s","type":"syslog","address":":514"}])",
                  "audit.sinks[0].address: expected host:port"},
        ErrorCase{R"([{"name":"s","type":"syslog","address":"h:0"}])",
                  "audit.sinks[0].address: expected host:port (port 1..65535)"},
        ErrorCase{R"([{"name":"s","type":"syslog","address":"h:65536"}])",
                  "audit.sinks[0].address: expected host:port (port 1..65535)"},
        ErrorCase{R"([{"name":"s","type":"syslog","address":"h:51x"}])",
                  "audit.sinks[0].address: expected host:port"},
        ErrorCase{R"([{"name":"s","type":"syslog","address":"::1:514"}])",
                  "audit.sinks[0].address: expected host:port"},
        ErrorCase{R"([{"name":"s","type":"syslog","address":514}])",
                  "audit.sinks[0].address: expected host:port"},
        ErrorCase{R"([{"name":"s","type":"syslog","address":"h:1","timeout":"0s"}])",
                  "audit.sinks[0].timeout: out of range (1ms..600000ms)"},
        ErrorCase{R"([{"name":"s","type":"syslog","address":"h:1","tls":true}])",
                  "audit.sinks[0].tls: expected an object {ca_file, server_name}"},
        ErrorCase{R"([{"name":"s","type":"syslog","address":"h:1","tls":{}}])",
                  "audit.sinks[0].tls.ca_file: required"},
        ErrorCase{R"([{"name":"s","type":"syslog","address":"h:1","tls":{"ca_file":""}}])",
                  "audit.sinks[0].tls.ca_file: expected a non-empty string"},
        ErrorCase{
            R"([{"name":"s","type":"syslog","address":"h:1","tls":{"ca_file":"c","verify":false}}])",
            "audit.sinks[0].tls.verify: unknown field"},
        ErrorCase{
            R"([{"name":"s","type":"syslog","address":"h:1","tls":{"ca_file":"c","server_name":5}}])",
            "audit.sinks[0].tls.server_name: expected a non-empty string"},
        ErrorCase{R"([{"name":"s","type":"syslog","address":"h:1","timeout":"1s",
                      "confirm_window":"2s"}])",
                  "audit.sinks[0].confirm_window: must be shorter than timeout"},
        ErrorCase{R"([{"name":"h","type":"http"}])", "audit.sinks[0].url: required"},
        ErrorCase{R"([{"name":"h","type":"http","url":"splunk:8088"}])",
                  "audit.sinks[0].url: expected an http:// or https:// URL"},
        ErrorCase{R"([{"name":"h","type":"http","url":"https://:8088/"}])",
                  "audit.sinks[0].url: URL has no host"},
        ErrorCase{R"([{"name":"h","type":"http","url":"https://u:p@h/"}])",
                  "audit.sinks[0].url: URL must not carry credentials (use token_file)"},
        ErrorCase{R"([{"name":"h","type":"http","url":"https://h/","token":"abc"}])",
                  "audit.sinks[0].token: unknown field"},
        ErrorCase{R"([{"name":"h","type":"http","url":"https://h/","token_file":""}])",
                  "audit.sinks[0].token_file: expected a non-empty string"},
        ErrorCase{R"([{"name":"h","type":"http","url":"http://h/","ca_file":"/ca.pem"}])",
                  "audit.sinks[0].ca_file: needs an https url"},
        ErrorCase{R"([{"name":"h","type":"http","url":"http://h/","timeout":"soon"}])",
                  "audit.sinks[0].timeout: expected a duration such as \"5s\" (units ms, s, m)"}));

TEST(MakeSink, BuildsEachTypeAndReadsTheToken) {
  lockbox::testing::TempDir dir;
  { std::ofstream(dir.file("token")) << "00000000-1111-2222-3333-444444444444\n"; }
  const json sinks = json::parse(R"([
    {"name": "s", "type": "syslog", "address": "127.0.0.1:1"},
    {"name": "h", "type": "http", "url": "http://127.0.0.1:1/services/collector/event",
     "token_file": ")" + dir.file("token") +
                                 R"("},
    {"name": "f", "type": "file", "path": ")" +
                                 dir.file("out.jsonl") + R"("}
  ])");
  auto configs = ParseSinkConfigs(sinks);
  ASSERT_TRUE(configs.ok()) << configs.status().ToString();
  for (const SinkConfig& c : *configs) {
    auto sink = MakeSink(c);
    ASSERT_TRUE(sink.ok()) << sink.status().ToString();
    EXPECT_EQ((*sink)->name(), c.name);
  }
}

TEST(MakeSink, Errors) {
  lockbox::testing::TempDir dir;
  SinkConfig http;
  http.name = "h";
  http.type = SinkType::kHttp;
  http.url = "http://127.0.0.1:1/";
  http.token_file = dir.file("missing");
  auto missing = MakeSink(http);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kFailedPrecondition);
  { std::ofstream(dir.file("empty")) << "\n"; }
  http.token_file = dir.file("empty");
  EXPECT_FALSE(MakeSink(http).ok());
  { std::ofstream(dir.file("two")) << "secret-one\nsecret-two\n"; }
  http.token_file = dir.file("two");
  auto two = MakeSink(http);
  ASSERT_FALSE(two.ok());
  EXPECT_EQ(two.status().message().find("secret"), std::string::npos);  // never the token

  SinkConfig syslog;
  syslog.name = "s";
  syslog.type = SinkType::kSyslog;
  syslog.host = "127.0.0.1";
  syslog.port = 6514;
  syslog.tls = SyslogTlsOptions{dir.file("no-ca.pem"), "127.0.0.1"};
  auto no_ca = MakeSink(syslog);
  ASSERT_FALSE(no_ca.ok());
  EXPECT_EQ(no_ca.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace lockbox::siem
