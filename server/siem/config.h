// SIEM sink configuration: the server config's `audit.sinks` array (configured only in the config
// file, never through the API). Each element:
//   {"name": "siem-1",                    unique; [A-Za-z0-9._-], 1..64 characters
//    "type": "syslog" | "http" | "file",
//    "batch_size": 256,                   optional, 1..10000
//    "backoff": {"initial": "100ms", "max": "30s"},   optional
//    syslog: "address": "host:port" ("[v6addr]:port"), "timeout": "5s",
//            "tls": {"ca_file": "...", "server_name": "..."} (optional; server_name defaults to
//            the address host), "confirm_window": "50ms" (see SyslogSink: each batch waits
//            this long for a collector reset before it counts as delivered, so one syslog
//            sink moves at most batch_size records per window; raise batch_size for volume)
//    http:   "url": "https://splunk:8088/services/collector/event", "timeout": "5s",
//            "token_file": "..." (the HEC token is read from this file, never inline),
//            "ca_file": "..." (https only)
//    file:   "path": "/var/log/lockbox/audit.jsonl"}
// Durations: a string with unit ("250ms", "5s", "2m") or a number of seconds.
// Unknown fields and bad values are INVALID_ARGUMENT naming the field, e.g.
// "audit.sinks[1].address: expected host:port". Pure functions except MakeSink (reads files).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "crypto/status.h"
#include "server/siem/sink.h"
#include "server/siem/syslog_sink.h"

namespace lockbox::siem {

// How the Forwarder drives one sink.
struct DeliveryOptions {
  std::size_t batch_size = 256;
  std::chrono::milliseconds backoff_initial{100};
  std::chrono::milliseconds backoff_max{30'000};
  std::chrono::milliseconds poll_interval{1'000};
};

enum class SinkType { kSyslog, kHttp, kFile };

struct SinkConfig {
  std::string name;
  SinkType type = SinkType::kFile;
  DeliveryOptions delivery;
  std::chrono::milliseconds timeout{5'000};  // syslog, http
  // syslog
  std::string host;
  std::uint16_t port = 0;
  std::optional<SyslogTlsOptions> tls;
  std::chrono::milliseconds confirm_window{50};
  // http
  std::string url;
  std::optional<std::string> token_file;
  std::string ca_file;
  // file
  std::string path;
};

struct HostPort {
  std::string host;  // brackets removed for IPv6
  std::uint16_t port = 0;
};
// "host:port" or "[v6]:port". Port 1..65535, or 0 too when `allow_port_zero` (listeners).
StatusOr<HostPort> ParseHostPort(std::string_view text, bool allow_port_zero);

StatusOr<std::vector<SinkConfig>> ParseSinkConfigs(const nlohmann::json& sinks);

// Builds the sink (for http, reads the token from token_file). No network I/O.
StatusOr<std::unique_ptr<Sink>> MakeSink(const SinkConfig& config);

// "250ms", "5s", "2m" or a number of seconds; INVALID_ARGUMENT otherwise.
StatusOr<std::chrono::milliseconds> ParseDuration(const nlohmann::json& value);

}  // namespace lockbox::siem
