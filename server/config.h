// ServerConfig: `lockboxd --config FILE` (DESIGN.md §8, issue 4 "Dev mode and config").
//
// A JSON object whose keys follow Vault's server configuration:
//   {"listener": {"address": "127.0.0.1:8200",        host:port or [v6]:port (default shown)
//                 "tls_cert_file": "...", "tls_key_file": "...",   both or neither
//                 "tls_min_version": "tls12" | "tls13",            default tls12
//                 "tls_disable": false},               true only on a loopback address; when
//                                                      false, both TLS files are required
//    "storage":  {"path": "/var/lib/lockbox"},         required: the data directory
//    "pkcs11":   {"module": "/usr/lib/...so", "token_label": "...", "pin_file": "..."}
//                                                      optional, all three required when present;
//                                                      omitted: SoftHSM2 token under storage.path
//    "default_lease_ttl": "768h", "max_lease_ttl": "768h",   duration; default <= max
//    "limits":   {"max_request_bytes": N (1 MiB), "max_header_bytes": N (16 KiB),
//                 "max_connections": N (1024), "io_threads": N (half the cores, at least
//                 1), "worker_threads": N (64),
//                 "requests_per_second_per_client": N, "requests_per_second_per_token": N
//                 (token buckets; omitted: unlimited), "read_timeout": "30s", "idle_timeout":
//                 "60s"},
//    "audit":    {"checkpoint_every_events": 1000, "checkpoint_interval": "10s",
//                 "sinks": [...]}}                     sinks: see server/siem/config.h
// Durations: "<integer><unit>" with unit ms, s, m or h ("768h", "30m", "15s", "250ms"), or an
// integer number of seconds.
// Errors: INVALID_ARGUMENT whose message names the field path, e.g.
//   "listener.tls_disable: only allowed on a loopback address", "storage.path: required",
//   "unknown field 'listner'", "listener: unknown field 'adress'".
// The file itself unreadable → NOT_FOUND / UNAVAILABLE naming the path.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "crypto/status.h"
#include "server/siem/config.h"

namespace lockbox::server {

enum class TlsVersion { kTls12, kTls13 };

struct ListenerConfig {
  std::string address = "127.0.0.1:8200";
  std::string host = "127.0.0.1";  // parsed from address (brackets removed for IPv6)
  std::uint16_t port = 8200;
  std::string tls_cert_file;
  std::string tls_key_file;
  TlsVersion tls_min_version = TlsVersion::kTls12;
  bool tls_disable = false;
};

struct Pkcs11Config {
  std::string module;
  std::string token_label;
  std::string pin_file;
};

struct LimitsConfig {
  std::uint64_t max_request_bytes = 1024 * 1024;
  std::uint64_t max_header_bytes = 16 * 1024;
  std::uint64_t max_connections = 1024;
  // Threads running the event loop (TLS, HTTP, reads answered from memory); 0: half the cores,
  // at least one — the commit writer and the other half's work need the rest, and fewer I/O
  // threads mean fewer wake-ups per request (BENCHMARKS.md).
  std::uint64_t io_threads = 0;
  std::uint64_t worker_threads = 64;  // writes and cache misses block on the HSM and the store
  // Token buckets (burst = one second's worth); 0 would mean unlimited but fields are positive:
  // omit them to leave the limit off.
  std::uint64_t requests_per_second_per_client = 0;
  std::uint64_t requests_per_second_per_token = 0;
  std::chrono::milliseconds read_timeout{30'000};
  std::chrono::milliseconds idle_timeout{60'000};
};

struct AuditConfig {
  std::uint64_t checkpoint_every_events = 1000;
  std::chrono::milliseconds checkpoint_interval{10'000};
  std::vector<siem::SinkConfig> sinks;
};

struct ServerConfig {
  ListenerConfig listener;
  std::filesystem::path storage_path;
  std::optional<Pkcs11Config> pkcs11;  // nullopt: dev token under storage_path
  std::chrono::seconds default_lease_ttl{std::chrono::hours(768)};
  std::chrono::seconds max_lease_ttl{std::chrono::hours(768)};
  LimitsConfig limits;
  AuditConfig audit;
};

// Parses and validates an already-decoded config document.
StatusOr<ServerConfig> ParseServerConfig(const nlohmann::json& doc);
// Reads `path` (JSON) and parses it; JSON syntax errors are INVALID_ARGUMENT naming the file.
StatusOr<ServerConfig> LoadServerConfig(const std::string& path);

// "768h", "30m", "15s", "250ms" or integer seconds.
StatusOr<std::chrono::milliseconds> ParseConfigDuration(const nlohmann::json& value);

}  // namespace lockbox::server
