// LoadServerConfig / ParseServerConfig: a full valid configuration, defaults, and every error case
// with the field it names.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "server/config.h"
#include "tests/support/temp_dir.h"

namespace lockbox::server {
namespace {

using nlohmann::json;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

json Minimal() {
  return json::parse(R"({"listener": {"tls_disable": true}, "storage": {"path": "/tmp/x"}})");
}

// The message of the error ParseServerConfig gives for `doc` (fails the test if it parses).
std::string ErrorOf(const json& doc) {
  auto parsed = ParseServerConfig(doc);
  EXPECT_FALSE(parsed.ok()) << doc.dump();
  if (parsed.ok()) return "";
  EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << parsed.status().ToString();
  return parsed.status().message();
}

TEST(ServerConfig, FullValidFile) {
  testing::TempDir dir;
  const std::string path = dir.file("lockbox.json");
  std::ofstream(path) << R"({
    "listener": {"address": "0.0.0.0:8443", "tls_cert_file": "/etc/lockbox/cert.pem",
                 "tls_key_file": "/etc/lockbox/key.pem", "tls_min_version": "tls13",
                 "tls_disable": false},
    "storage": {"path": "/var/lib/lockbox"},
    "pkcs11": {"module": "/usr/lib/softhsm/libsofthsm2.so", "token_label": "prod",
               "pin_file": "/etc/lockbox/pin"},
    "default_lease_ttl": "30m",
    "max_lease_ttl": "768h",
    "limits": {"max_request_bytes": 1048576, "max_header_bytes": 16384, "max_connections": 200,
               "io_threads": 3},
    "audit": {"checkpoint_every_events": 500, "checkpoint_interval": "15s",
              "sinks": [{"name": "local", "type": "file", "path": "/var/log/lockbox.jsonl"}]}
  })";
  auto config = LoadServerConfig(path);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->listener.address, "0.0.0.0:8443");
  EXPECT_EQ(config->listener.host, "0.0.0.0");
  EXPECT_EQ(config->listener.port, 8443);
  EXPECT_EQ(config->listener.tls_cert_file, "/etc/lockbox/cert.pem");
  EXPECT_EQ(config->listener.tls_key_file, "/etc/lockbox/key.pem");
  EXPECT_EQ(config->listener.tls_min_version, TlsVersion::kTls13);
  EXPECT_FALSE(config->listener.tls_disable);
  EXPECT_EQ(config->storage_path, "/var/lib/lockbox");
  ASSERT_TRUE(config->pkcs11.has_value());
  EXPECT_EQ(config->pkcs11->module, "/usr/lib/softhsm/libsofthsm2.so");
  EXPECT_EQ(config->pkcs11->token_label, "prod");
  EXPECT_EQ(config->pkcs11->pin_file, "/etc/lockbox/pin");
  EXPECT_EQ(config->default_lease_ttl, minutes(30));
  EXPECT_EQ(config->max_lease_ttl, hours(768));
  EXPECT_EQ(config->limits.max_request_bytes, 1048576u);
  EXPECT_EQ(config->limits.max_header_bytes, 16384u);
  EXPECT_EQ(config->limits.max_connections, 200u);
  EXPECT_EQ(config->limits.io_threads, 3u);
  EXPECT_EQ(config->audit.checkpoint_every_events, 500u);
  EXPECT_EQ(config->audit.checkpoint_interval, seconds(15));
  ASSERT_EQ(config->audit.sinks.size(), 1u);
  EXPECT_EQ(config->audit.sinks[0].name, "local");
  EXPECT_EQ(config->audit.sinks[0].type, siem::SinkType::kFile);
  EXPECT_EQ(config->audit.sinks[0].path, "/var/log/lockbox.jsonl");
}

TEST(ServerConfig, Defaults) {
  auto config = ParseServerConfig(Minimal());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->listener.address, "127.0.0.1:8200");
  EXPECT_EQ(config->listener.port, 8200);
  EXPECT_EQ(config->listener.tls_min_version, TlsVersion::kTls12);
  EXPECT_TRUE(config->listener.tls_disable);
  EXPECT_FALSE(config->pkcs11.has_value());  // dev token under storage.path
  EXPECT_EQ(config->default_lease_ttl, hours(768));
  EXPECT_EQ(config->max_lease_ttl, hours(768));
  EXPECT_EQ(config->audit.checkpoint_every_events, 1000u);
  EXPECT_EQ(config->audit.checkpoint_interval, seconds(10));
  EXPECT_TRUE(config->audit.sinks.empty());
}

TEST(ServerConfig, TlsDisableAllowedOnLoopbackAddresses) {
  for (const char* address : {"127.0.0.1:8200", "127.1.2.3:1", "[::1]:8200", "localhost:80"}) {
    json doc = Minimal();
    doc["listener"]["address"] = address;
    auto config = ParseServerConfig(doc);
    EXPECT_TRUE(config.ok()) << address << ": " << config.status().ToString();
  }
  json doc = Minimal();
  doc["listener"]["address"] = "[::1]:9000";
  auto config = ParseServerConfig(doc);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->listener.host, "::1");
  EXPECT_EQ(config->listener.port, 9000);
}

TEST(ServerConfig, Durations) {
  EXPECT_EQ(*ParseConfigDuration(json("768h")), hours(768));
  EXPECT_EQ(*ParseConfigDuration(json("30m")), minutes(30));
  EXPECT_EQ(*ParseConfigDuration(json("15s")), seconds(15));
  EXPECT_EQ(*ParseConfigDuration(json("200ms")), milliseconds(200));
  EXPECT_EQ(*ParseConfigDuration(json(90)), seconds(90));
  for (const json& bad : {json("15"), json("s"), json("1d"), json("-5s"), json("1.5h"), json(1.5),
                          json(-3), json(true), json::object(), json("99999999999999h")}) {
    EXPECT_FALSE(ParseConfigDuration(bad).ok()) << bad.dump();
  }
}

struct ErrorCase {
  const char* doc;      // a whole config document
  const char* message;  // the exact error message
};

class ServerConfigError : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ServerConfigError, NamesTheField) {
  const json doc = json::parse(GetParam().doc);
  EXPECT_EQ(ErrorOf(doc), GetParam().message);
}

#define L R"("listener": {"tls_disable": true})"
#define S R"("storage": {"path": "/tmp/x"})"

INSTANTIATE_TEST_SUITE_P(
    All, ServerConfigError,
    ::testing::Values(
        ErrorCase{R"([1, 2])", "expected a JSON object"},
        ErrorCase{"{" L ", " S R"(, "listner": {}})", "unknown field 'listner'"},
        // listener
        ErrorCase{"{" S R"(, "listener": "127.0.0.1"})", "listener: expected an object"},
        ErrorCase{"{" S R"(, "listener": {"tls_disable": true, "adress": "x"}})",
                  "listener: unknown field 'adress'"},
        ErrorCase{"{" S R"(, "listener": {"tls_disable": true, "address": 8200}})",
                  "listener.address: expected a string"},
        ErrorCase{"{" S R"(, "listener": {"tls_disable": true, "address": "localhost"}})",
                  "listener.address: expected host:port"},
        ErrorCase{"{" S R"(, "listener": {"tls_disable": true, "address": "h:70000"}})",
                  "listener.address: expected host:port (port 0..65535)"},
        ErrorCase{"{" S R"(, "listener": {"tls_disable": "yes"}})",
                  "listener.tls_disable: expected true or false"},
        ErrorCase{"{" S R"(, "listener": {"tls_disable": true, "address": "0.0.0.0:8200"}})",
                  "listener.tls_disable: only allowed on a loopback address"},
        ErrorCase{"{" S R"(, "listener": {"tls_disable": true, "address": "10.0.0.1:8200"}})",
                  "listener.tls_disable: only allowed on a loopback address"},
        ErrorCase{"{" S R"(, "listener": {"tls_disable": true, "address": "[::]:8200"}})",
                  "listener.tls_disable: only allowed on a loopback address"},
        ErrorCase{"{" S R"(, "listener": {"tls_disable": true, "address": "vault.example:1"}})",
                  "listener.tls_disable: only allowed on a loopback address"},
        ErrorCase{"{" S R"(, "listener": {"tls_key_file": "/k"}})",
                  "listener.tls_cert_file: required unless tls_disable is true"},
        ErrorCase{"{" S R"(})", "listener.tls_cert_file: required unless tls_disable is true"},
        ErrorCase{"{" S R"(, "listener": {"tls_cert_file": "/c"}})",
                  "listener.tls_key_file: required unless tls_disable is true"},
        ErrorCase{"{" S R"(, "listener": {"tls_cert_file": "", "tls_key_file": "/k"}})",
                  "listener.tls_cert_file: expected a non-empty string"},
        ErrorCase{"{" S R"(, "listener": {"tls_disable": true, "tls_min_version": "tls11"}})",
                  "listener.tls_min_version: expected \"tls12\" or \"tls13\""},
        ErrorCase{"{" S R"(, "listener": {"tls_disable": true, "tls_min_version": 1.2}})",
                  "listener.tls_min_version: expected a string"},
        // storage
        ErrorCase{"{" L "}", "storage.path: required"},
        ErrorCase{"{" L R"(, "storage": {}})", "storage.path: required"},
        ErrorCase{"{" L R"(, "storage": {"path": ""}})",
                  "storage.path: expected a non-empty string"},
        ErrorCase{"{" L R"(, "storage": {"path": 3}})", "storage.path: expected a string"},
        ErrorCase{"{" L R"(, "storage": {"path": "/x", "type": "raft"}})",
                  "storage: unknown field 'type'"},
        ErrorCase{"{" L R"(, "storage": "/x"})", "storage: expected an object"},
        // pkcs11
        ErrorCase{"{" L ", " S R"(, "pkcs11": {"module": "/m.so", "token_label": "t"}})",
                  "pkcs11.pin_file: required"},
        ErrorCase{"{" L ", " S R"(, "pkcs11": {"token_label": "t", "pin_file": "/p"}})",
                  "pkcs11.module: required"},
        ErrorCase{"{" L ", " S
                  R"(, "pkcs11": {"module": "/m.so", "token_label": 7, "pin_file": "/p"}})",
                  "pkcs11.token_label: expected a string"},
        ErrorCase{
            "{" L ", " S
            R"(, "pkcs11": {"module": "/m", "token_label": "t", "pin_file": "/p", "pin": "1"}})",
            "pkcs11: unknown field 'pin'"},
        ErrorCase{"{" L ", " S R"(, "pkcs11": true})", "pkcs11: expected an object"},
        // lease TTLs
        ErrorCase{"{" L ", " S R"(, "default_lease_ttl": "10 days"})",
                  "default_lease_ttl: expected a duration such as \"15s\" (units ms, s, m, h)"},
        ErrorCase{"{" L ", " S R"(, "max_lease_ttl": false})",
                  "max_lease_ttl: expected a duration such as \"15s\" (units ms, s, m, h)"},
        ErrorCase{"{" L ", " S R"(, "max_lease_ttl": "500ms"})",
                  "max_lease_ttl: must be at least 1s"},
        ErrorCase{"{" L ", " S R"(, "default_lease_ttl": "2h", "max_lease_ttl": "1h"})",
                  "default_lease_ttl: must not exceed max_lease_ttl"},
        // limits
        ErrorCase{"{" L ", " S R"(, "limits": {"max_connections": 0}})",
                  "limits.max_connections: expected a positive integer"},
        ErrorCase{"{" L ", " S R"(, "limits": {"io_threads": 0}})",
                  "limits.io_threads: expected a positive integer"},
        ErrorCase{"{" L ", " S R"(, "limits": {"max_request_bytes": -1}})",
                  "limits.max_request_bytes: expected a positive integer"},
        ErrorCase{"{" L ", " S R"(, "limits": {"max_header_bytes": "64k"}})",
                  "limits.max_header_bytes: expected a positive integer"},
        ErrorCase{"{" L ", " S R"(, "limits": {"max_header_bytes": 1.5}})",
                  "limits.max_header_bytes: expected a positive integer"},
        ErrorCase{"{" L ", " S R"(, "limits": {"max_body": 1}})",
                  "limits: unknown field 'max_body'"},
        ErrorCase{"{" L ", " S R"(, "limits": []})", "limits: expected an object"},
        // audit
        ErrorCase{"{" L ", " S R"(, "audit": {"checkpoint_every_events": 0}})",
                  "audit.checkpoint_every_events: expected a positive integer"},
        ErrorCase{"{" L ", " S R"(, "audit": {"checkpoint_interval": "soon"}})",
                  "audit.checkpoint_interval: expected a duration such as \"15s\" (units ms, s, "
                  "m, h)"},
        ErrorCase{"{" L ", " S R"(, "audit": {"checkpoint_interval": "1ms"}})",
                  "audit.checkpoint_interval: must be at least 10ms"},
        ErrorCase{"{" L ", " S R"(, "audit": {"checkpoints": 5}})",
                  "audit: unknown field 'checkpoints'"},
        ErrorCase{"{" L ", " S R"(, "audit": {"sinks": {}}})", "audit.sinks: expected an array"},
        ErrorCase{"{" L ", " S
                  R"(, "audit": {"sinks": [{"name": "s", "type": "syslog", "address": "nope"}]}})",
                  "audit.sinks[0].address: expected host:port"}));

#undef L
#undef S

TEST(ServerConfig, SinkErrorsKeepTheSiemMessages) {
  json doc = Minimal();
  doc["audit"]["sinks"] = json::parse(
      R"([{"name": "a", "type": "file", "path": "/a"}, {"name": "a", "type": "file", "path": "/b"}])");
  EXPECT_EQ(ErrorOf(doc), "audit.sinks[1].name: duplicate sink name 'a'");
  doc["audit"]["sinks"] = json::parse(R"([{"name": "a", "type": "file", "path": "/a", "x": 1}])");
  const std::string message = ErrorOf(doc);
  EXPECT_NE(message.find("audit.sinks[0]"), std::string::npos) << message;
  EXPECT_NE(message.find("x: unknown field"), std::string::npos) << message;
}

TEST(ServerConfig, FileErrors) {
  testing::TempDir dir;
  auto missing = LoadServerConfig(dir.file("absent.json"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("absent.json"), std::string::npos);

  const std::string path = dir.file("broken.json");
  std::ofstream(path) << R"({"storage": {"path": "/x"},)";
  auto broken = LoadServerConfig(path);
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(broken.status().message().find("not valid JSON"), std::string::npos);
}

}  // namespace
}  // namespace lockbox::server
