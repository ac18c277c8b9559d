#include "server/config.h"

#include <arpa/inet.h>

#include <fstream>
#include <initializer_list>
#include <limits>
#include <sstream>
#include <string_view>

#include <nlohmann/json.hpp>

namespace lockbox::server {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

Status FieldError(const std::string& field, std::string_view problem) {
  return InvalidArgumentError(field + ": " + std::string(problem));
}

std::string Join(const std::string& prefix, const std::string& key) {
  return prefix.empty() ? key : prefix + "." + key;
}

// Every key of `obj` must be in `allowed`.
Status CheckObject(const json& obj, const std::string& field,
                   const std::vector<std::string_view>& allowed) {
  if (!obj.is_object()) {
    return field.empty() ? InvalidArgumentError("expected a JSON object")
                         : FieldError(field, "expected an object");
  }
  for (const auto& [key, value] : obj.items()) {
    bool known = false;
    for (std::string_view a : allowed) known = known || key == a;
    if (!known) {
      const std::string message = "unknown field '" + key + "'";
      return field.empty() ? InvalidArgumentError(message) : FieldError(field, message);
    }
  }
  return Status::Ok();
}

StatusOr<std::string> StringField(const json& v, const std::string& field, bool non_empty = true) {
  if (!v.is_string()) return FieldError(field, "expected a string");
  std::string s = v.get<std::string>();
  if (non_empty && s.empty()) return FieldError(field, "expected a non-empty string");
  if (s.find('\0') != std::string::npos) return FieldError(field, "contains a NUL byte");
  return s;
}

StatusOr<bool> BoolField(const json& v, const std::string& field) {
  if (!v.is_boolean()) return FieldError(field, "expected true or false");
  return v.get<bool>();
}

StatusOr<std::uint64_t> PositiveIntField(const json& v, const std::string& field) {
  // Parsed non-negative integers are unsigned, built ones may be signed; floats and strings are
  // refused.
  if (v.is_number_unsigned() && v.get<std::uint64_t>() >= 1) return v.get<std::uint64_t>();
  if (v.is_number_integer() && v.get<std::int64_t>() >= 1) {
    return static_cast<std::uint64_t>(v.get<std::int64_t>());
  }
  return FieldError(field, "expected a positive integer");
}

StatusOr<milliseconds> DurationField(const json& v, const std::string& field) {
  auto d = ParseConfigDuration(v);
  if (!d.ok()) return FieldError(field, d.status().message());
  return *d;
}

bool IsLoopback(const std::string& host) {
  if (host == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    return IN6_IS_ADDR_LOOPBACK(&v6) != 0;
  }
  return false;
}

Status ParseListener(const json& j, ListenerConfig& out) {
  const std::string at = "listener";
  LOCKBOX_RETURN_IF_ERROR(CheckObject(
      j, at, {"address", "tls_cert_file", "tls_key_file", "tls_min_version", "tls_disable"}));
  if (j.contains("address")) {
    LOCKBOX_ASSIGN_OR_RETURN(out.address, StringField(j["address"], at + ".address"));
  }
  auto address = siem::ParseHostPort(out.address, /*allow_port_zero=*/true);
  if (!address.ok()) return FieldError(at + ".address", address.status().message());
  out.host = address->host;
  out.port = address->port;
  if (j.contains("tls_cert_file")) {
    LOCKBOX_ASSIGN_OR_RETURN(out.tls_cert_file,
                             StringField(j["tls_cert_file"], at + ".tls_cert_file"));
  }
  if (j.contains("tls_key_file")) {
    LOCKBOX_ASSIGN_OR_RETURN(out.tls_key_file,
                             StringField(j["tls_key_file"], at + ".tls_key_file"));
  }
  if (j.contains("tls_min_version")) {
    LOCKBOX_ASSIGN_OR_RETURN(std::string v,
                             StringField(j["tls_min_version"], at + ".tls_min_version"));
    if (v == "tls12") {
      out.tls_min_version = TlsVersion::kTls12;
    } else if (v == "tls13") {
      out.tls_min_version = TlsVersion::kTls13;
    } else {
      return FieldError(at + ".tls_min_version", "expected \"tls12\" or \"tls13\"");
    }
  }
  if (j.contains("tls_disable")) {
    LOCKBOX_ASSIGN_OR_RETURN(out.tls_disable, BoolField(j["tls_disable"], at + ".tls_disable"));
  }
  if (out.tls_disable) {
    if (!IsLoopback(out.host)) {
      return FieldError(at + ".tls_disable", "only allowed on a loopback address");
    }
  } else {
    if (out.tls_cert_file.empty()) {
      return FieldError(at + ".tls_cert_file", "required unless tls_disable is true");
    }
    if (out.tls_key_file.empty()) {
      return FieldError(at + ".tls_key_file", "required unless tls_disable is true");
    }
  }
  return Status::Ok();
}

Status ParseStorage(const json& j, ServerConfig& out) {
  LOCKBOX_RETURN_IF_ERROR(CheckObject(j, "storage", {"path"}));
  if (!j.contains("path")) return FieldError("storage.path", "required");
  LOCKBOX_ASSIGN_OR_RETURN(std::string path, StringField(j["path"], "storage.path"));
  out.storage_path = path;
  return Status::Ok();
}

Status ParsePkcs11(const json& j, ServerConfig& out) {
  LOCKBOX_RETURN_IF_ERROR(CheckObject(j, "pkcs11", {"module", "token_label", "pin_file"}));
  Pkcs11Config p;
  for (const char* key : {"module", "token_label", "pin_file"}) {
    const std::string field = Join("pkcs11", key);
    if (!j.contains(key)) return FieldError(field, "required");
    LOCKBOX_ASSIGN_OR_RETURN(std::string v, StringField(j[key], field));
    if (std::string_view(key) == "module") p.module = v;
    if (std::string_view(key) == "token_label") p.token_label = v;
    if (std::string_view(key) == "pin_file") p.pin_file = v;
  }
  out.pkcs11 = std::move(p);
  return Status::Ok();
}

Status ParseLimits(const json& j, LimitsConfig& out) {
  struct CountField {
    const char* name;
    std::uint64_t LimitsConfig::*member;
  };
  static constexpr CountField kCounts[] = {
      {"max_request_bytes", &LimitsConfig::max_request_bytes},
      {"max_header_bytes", &LimitsConfig::max_header_bytes},
      {"max_connections", &LimitsConfig::max_connections},
      {"io_threads", &LimitsConfig::io_threads},
      {"worker_threads", &LimitsConfig::worker_threads},
      {"requests_per_second_per_client", &LimitsConfig::requests_per_second_per_client},
      {"requests_per_second_per_token", &LimitsConfig::requests_per_second_per_token},
  };
  struct DurationFieldSpec {
    const char* name;
    milliseconds LimitsConfig::*member;
  };
  static constexpr DurationFieldSpec kDurations[] = {
      {"read_timeout", &LimitsConfig::read_timeout},
      {"idle_timeout", &LimitsConfig::idle_timeout},
  };
  std::vector<std::string_view> known;
  for (const auto& f : kCounts) known.emplace_back(f.name);
  for (const auto& f : kDurations) known.emplace_back(f.name);
  LOCKBOX_RETURN_IF_ERROR(CheckObject(j, "limits", known));
  for (const auto& f : kCounts) {
    if (!j.contains(f.name)) continue;
    LOCKBOX_ASSIGN_OR_RETURN(out.*f.member,
                             PositiveIntField(j[f.name], std::string("limits.") + f.name));
  }
  for (const auto& f : kDurations) {
    if (!j.contains(f.name)) continue;
    LOCKBOX_ASSIGN_OR_RETURN(out.*f.member,
                             DurationField(j[f.name], std::string("limits.") + f.name));
  }
  return Status::Ok();
}

Status ParseAudit(const json& j, AuditConfig& out) {
  LOCKBOX_RETURN_IF_ERROR(
      CheckObject(j, "audit", {"checkpoint_every_events", "checkpoint_interval", "sinks"}));
  if (j.contains("checkpoint_every_events")) {
    LOCKBOX_ASSIGN_OR_RETURN(
        out.checkpoint_every_events,
        PositiveIntField(j["checkpoint_every_events"], "audit.checkpoint_every_events"));
  }
  if (j.contains("checkpoint_interval")) {
    LOCKBOX_ASSIGN_OR_RETURN(out.checkpoint_interval,
                             DurationField(j["checkpoint_interval"], "audit.checkpoint_interval"));
    if (out.checkpoint_interval < milliseconds(10)) {
      return FieldError("audit.checkpoint_interval", "must be at least 10ms");
    }
  }
  if (j.contains("sinks")) {
    // ParseSinkConfigs names its fields "audit.sinks[i]....": keep its messages as they are.
    LOCKBOX_ASSIGN_OR_RETURN(out.sinks, siem::ParseSinkConfigs(j["sinks"]));
  }
  return Status::Ok();
}

}  // namespace

StatusOr<milliseconds> ParseConfigDuration(const json& value) {
  constexpr std::int64_t kMaxMs = std::int64_t{100} * 365 * 24 * 3600 * 1000;  // 100 years
  if (value.is_number_unsigned() || (value.is_number_integer() && value.get<std::int64_t>() >= 0)) {
    const std::uint64_t secs = value.get<std::uint64_t>();
    if (secs > static_cast<std::uint64_t>(kMaxMs / 1000)) {
      return InvalidArgumentError("duration out of range");
    }
    return milliseconds(static_cast<std::int64_t>(secs) * 1000);
  }
  if (value.is_number()) {
    return InvalidArgumentError("expected a duration such as \"15s\" or a whole number of seconds");
  }
  if (!value.is_string()) {
    return InvalidArgumentError("expected a duration such as \"15s\" (units ms, s, m, h)");
  }
  const std::string s = value.get<std::string>();
  std::size_t i = 0;
  std::int64_t n = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9' && i < 12) n = n * 10 + (s[i++] - '0');
  if (i == 0 || (i < s.size() && s[i] >= '0' && s[i] <= '9')) {
    return InvalidArgumentError("expected a duration such as \"15s\" (units ms, s, m, h)");
  }
  const std::string unit = s.substr(i);
  std::int64_t factor = 0;
  if (unit == "ms") factor = 1;
  if (unit == "s") factor = 1000;
  if (unit == "m") factor = 60 * 1000;
  if (unit == "h") factor = 3600 * 1000;
  if (factor == 0) {
    return InvalidArgumentError("expected a duration such as \"15s\" (units ms, s, m, h)");
  }
  if (n > kMaxMs / factor) return InvalidArgumentError("duration out of range");
  return milliseconds(n * factor);
}

StatusOr<ServerConfig> ParseServerConfig(const json& doc) {
  LOCKBOX_RETURN_IF_ERROR(CheckObject(
      doc, "",
      {"listener", "storage", "pkcs11", "default_lease_ttl", "max_lease_ttl", "limits", "audit"}));
  ServerConfig out;
  if (!doc.contains("storage")) return FieldError("storage.path", "required");
  LOCKBOX_RETURN_IF_ERROR(ParseStorage(doc["storage"], out));
  if (doc.contains("listener")) {
    LOCKBOX_RETURN_IF_ERROR(ParseListener(doc["listener"], out.listener));
  } else {
    // Defaults: 127.0.0.1:8200; TLS files are then required unless tls_disable.
    LOCKBOX_RETURN_IF_ERROR(ParseListener(json::object(), out.listener));
  }
  if (doc.contains("pkcs11")) LOCKBOX_RETURN_IF_ERROR(ParsePkcs11(doc["pkcs11"], out));
  for (const char* key : {"default_lease_ttl", "max_lease_ttl"}) {
    if (!doc.contains(key)) continue;
    LOCKBOX_ASSIGN_OR_RETURN(milliseconds d, DurationField(doc[key], key));
    if (d < std::chrono::seconds(1)) return FieldError(key, "must be at least 1s");
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(d);
    (std::string_view(key) == "default_lease_ttl" ? out.default_lease_ttl : out.max_lease_ttl) =
        secs;
  }
  if (out.default_lease_ttl > out.max_lease_ttl) {
    return FieldError("default_lease_ttl", "must not exceed max_lease_ttl");
  }
  if (doc.contains("limits")) LOCKBOX_RETURN_IF_ERROR(ParseLimits(doc["limits"], out.limits));
  if (doc.contains("audit")) LOCKBOX_RETURN_IF_ERROR(ParseAudit(doc["audit"], out.audit));
  return out;
}

StatusOr<ServerConfig> LoadServerConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot read config file " + path);
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return UnavailableError("cannot read config file " + path);
  json doc = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return InvalidArgumentError(path + ": not valid JSON");
  return ParseServerConfig(doc);
}

}  // namespace lockbox::server
