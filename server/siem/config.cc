#include "server/siem/config.h"

#include <cmath>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

#include "server/siem/file_sink.h"
#include "server/siem/http_sink.h"

namespace lockbox::siem {
namespace {

using std::chrono::milliseconds;

Status FieldError(const std::string& field, std::string_view problem) {
  return InvalidArgumentError(field + ": " + std::string(problem));
}

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

StatusOr<std::string> NonEmptyString(const nlohmann::json& obj, const std::string& key,
                                     const std::string& field) {
  const auto& v = obj.at(key);
  if (!v.is_string() || v.get<std::string>().empty()) {
    return FieldError(field, "expected a non-empty string");
  }
  const std::string s = v.get<std::string>();
  if (s.find('\0') != std::string::npos) return FieldError(field, "contains a NUL byte");
  return s;
}

StatusOr<milliseconds> DurationField(const nlohmann::json& value, const std::string& field,
                                     milliseconds min, milliseconds max) {
  auto d = ParseDuration(value);
  if (!d.ok()) return FieldError(field, d.status().message());
  if (*d < min || *d > max) {
    return FieldError(field, "out of range (" + std::to_string(min.count()) + "ms.." +
                                 std::to_string(max.count()) + "ms)");
  }
  return *d;
}

StatusOr<SinkConfig> ParseOne(const nlohmann::json& j, const std::string& at) {
  if (!j.is_object()) return FieldError(at, "expected an object");
  SinkConfig c;
  if (!j.contains("name")) return FieldError(at + ".name", "required");
  if (!j.at("name").is_string() || !ValidName(j.at("name").get<std::string>())) {
    return FieldError(at + ".name", "expected 1..64 characters of [A-Za-z0-9._-]");
  }
  c.name = j.at("name").get<std::string>();
  if (!j.contains("type")) return FieldError(at + ".type", "required");
  const auto& type = j.at("type");
  std::set<std::string> allowed = {"name", "type", "batch_size", "backoff"};
  if (type == "syslog") {
    c.type = SinkType::kSyslog;
    allowed.insert({"address", "tls", "timeout", "confirm_window"});
  } else if (type == "http") {
    c.type = SinkType::kHttp;
    allowed.insert({"url", "token_file", "timeout", "ca_file"});
  } else if (type == "file") {
    c.type = SinkType::kFile;
    allowed.insert("path");
  } else {
    return FieldError(at + ".type", "expected \"syslog\", \"http\" or \"file\"");
  }
  for (const auto& [key, value] : j.items()) {
    if (allowed.count(key) == 0) return FieldError(at + "." + key, "unknown field");
  }

  if (j.contains("batch_size")) {
    const auto& b = j.at("batch_size");
    if (!b.is_number_integer() || b.get<std::int64_t>() < 1 || b.get<std::int64_t>() > 10000) {
      return FieldError(at + ".batch_size", "expected an integer 1..10000");
    }
    c.delivery.batch_size = static_cast<std::size_t>(b.get<std::int64_t>());
  }
  if (j.contains("backoff")) {
    const auto& b = j.at("backoff");
    const std::string f = at + ".backoff";
    if (!b.is_object()) return FieldError(f, "expected an object {initial, max}");
    for (const auto& [key, value] : b.items()) {
      if (key != "initial" && key != "max") return FieldError(f + "." + key, "unknown field");
    }
    if (b.contains("initial")) {
      LOCKBOX_ASSIGN_OR_RETURN(
          c.delivery.backoff_initial,
          DurationField(b.at("initial"), f + ".initial", milliseconds(1), milliseconds(600'000)));
    }
    if (b.contains("max")) {
      LOCKBOX_ASSIGN_OR_RETURN(
          c.delivery.backoff_max,
          DurationField(b.at("max"), f + ".max", milliseconds(1), milliseconds(3'600'000)));
    }
    if (c.delivery.backoff_max < c.delivery.backoff_initial) {
      return FieldError(f + ".max", "must not be less than initial");
    }
  }
  if (j.contains("timeout")) {
    LOCKBOX_ASSIGN_OR_RETURN(c.timeout, DurationField(j.at("timeout"), at + ".timeout",
                                                      milliseconds(1), milliseconds(600'000)));
  }

  switch (c.type) {
    case SinkType::kSyslog: {
      if (!j.contains("address")) return FieldError(at + ".address", "required");
      if (!j.at("address").is_string()) return FieldError(at + ".address", "expected host:port");
      auto a = ParseHostPort(j.at("address").get<std::string>(), /*allow_port_zero=*/false);
      if (!a.ok()) return FieldError(at + ".address", a.status().message());
      c.host = a->host;
      c.port = a->port;
      if (j.contains("tls")) {
        const auto& t = j.at("tls");
        const std::string f = at + ".tls";
        if (!t.is_object()) return FieldError(f, "expected an object {ca_file, server_name}");
        for (const auto& [key, value] : t.items()) {
          if (key != "ca_file" && key != "server_name") {
            return FieldError(f + "." + key, "unknown field");
          }
        }
        SyslogTlsOptions tls;
        if (!t.contains("ca_file")) return FieldError(f + ".ca_file", "required");
        LOCKBOX_ASSIGN_OR_RETURN(tls.ca_file, NonEmptyString(t, "ca_file", f + ".ca_file"));
        if (t.contains("server_name")) {
          LOCKBOX_ASSIGN_OR_RETURN(tls.server_name,
                                   NonEmptyString(t, "server_name", f + ".server_name"));
        } else {
          tls.server_name = c.host;
        }
        c.tls = std::move(tls);
      }
      if (j.contains("confirm_window")) {
        LOCKBOX_ASSIGN_OR_RETURN(c.confirm_window,
                                 DurationField(j.at("confirm_window"), at + ".confirm_window",
                                               milliseconds(0), milliseconds(10'000)));
      }
      if (c.confirm_window >= c.timeout) {
        return FieldError(at + ".confirm_window", "must be shorter than timeout");
      }
      break;
    }
    case SinkType::kHttp: {
      if (!j.contains("url")) return FieldError(at + ".url", "required");
      LOCKBOX_ASSIGN_OR_RETURN(c.url, NonEmptyString(j, "url", at + ".url"));
      auto url = ParseHttpUrl(c.url);
      if (!url.ok()) return FieldError(at + ".url", url.status().message());
      if (j.contains("token_file")) {
        LOCKBOX_ASSIGN_OR_RETURN(c.token_file, NonEmptyString(j, "token_file", at + ".token_file"));
      }
      if (j.contains("ca_file")) {
        LOCKBOX_ASSIGN_OR_RETURN(c.ca_file, NonEmptyString(j, "ca_file", at + ".ca_file"));
        if (url->scheme != "https") return FieldError(at + ".ca_file", "needs an https url");
      }
      break;
    }
    case SinkType::kFile: {
      if (!j.contains("path")) return FieldError(at + ".path", "required");
      LOCKBOX_ASSIGN_OR_RETURN(c.path, NonEmptyString(j, "path", at + ".path"));
      break;
    }
  }
  return c;
}

}  // namespace

StatusOr<milliseconds> ParseDuration(const nlohmann::json& value) {
  if (value.is_number()) {
    const double secs = value.get<double>();
    if (!std::isfinite(secs) || secs < 0 || secs > 1e7) {
      return InvalidArgumentError("expected a duration");
    }
    return milliseconds(static_cast<std::int64_t>(std::llround(secs * 1000)));
  }
  if (!value.is_string()) return InvalidArgumentError("expected a duration such as \"5s\"");
  const std::string s = value.get<std::string>();
  std::size_t i = 0;
  std::int64_t n = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9' && i < 10) n = n * 10 + (s[i++] - '0');
  const std::string unit = s.substr(i);
  if (i == 0 || i > 9) {
    return InvalidArgumentError("expected a duration such as \"5s\" (units ms, s, m)");
  }
  if (unit == "ms") return milliseconds(n);
  if (unit == "s") return milliseconds(n * 1000);
  if (unit == "m") return milliseconds(n * 60'000);
  return InvalidArgumentError("expected a duration such as \"5s\" (units ms, s, m)");
}

StatusOr<HostPort> ParseHostPort(std::string_view text, bool allow_port_zero) {
  std::string_view host, port;
  if (!text.empty() && text[0] == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return InvalidArgumentError("expected host:port");
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) {
      return InvalidArgumentError("expected host:port");
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host.empty() || port.empty() || port.size() > 5) {
    return InvalidArgumentError("expected host:port");
  }
  for (char c : host) {
    if (c <= ' ' || c == '/' || c == '@' || c > '~') {
      return InvalidArgumentError("expected host:port");
    }
  }
  unsigned p = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return InvalidArgumentError("expected host:port");
    p = p * 10 + static_cast<unsigned>(c - '0');
  }
  const unsigned min_port = allow_port_zero ? 0 : 1;
  if (p < min_port || p > 65535) {
    return InvalidArgumentError("expected host:port (port " + std::to_string(min_port) +
                                "..65535)");
  }
  return HostPort{std::string(host), static_cast<std::uint16_t>(p)};
}

StatusOr<std::vector<SinkConfig>> ParseSinkConfigs(const nlohmann::json& sinks) {
  if (sinks.is_null()) return std::vector<SinkConfig>{};
  if (!sinks.is_array()) return FieldError("audit.sinks", "expected an array");
  std::vector<SinkConfig> out;
  std::set<std::string> names;
  for (std::size_t i = 0; i < sinks.size(); ++i) {
    const std::string at = "audit.sinks[" + std::to_string(i) + "]";
    LOCKBOX_ASSIGN_OR_RETURN(SinkConfig c, ParseOne(sinks[i], at));
    if (!names.insert(c.name).second) {
      return FieldError(at + ".name", "duplicate sink name '" + c.name + "'");
    }
    out.push_back(std::move(c));
  }
  return out;
}

StatusOr<std::unique_ptr<Sink>> MakeSink(const SinkConfig& config) {
  switch (config.type) {
    case SinkType::kFile:
      return std::unique_ptr<Sink>(std::make_unique<FileSink>(config.name, config.path));
    case SinkType::kSyslog: {
      SyslogOptions o;
      o.name = config.name;
      o.host = config.host;
      o.port = config.port;
      o.tls = config.tls;
      o.timeout = config.timeout;
      o.confirm_window = config.confirm_window;
      LOCKBOX_ASSIGN_OR_RETURN(auto sink, SyslogSink::Create(std::move(o)));
      return std::unique_ptr<Sink>(std::move(sink));
    }
    case SinkType::kHttp: {
      HttpOptions o;
      o.name = config.name;
      o.url = config.url;
      o.timeout = config.timeout;
      o.ca_file = config.ca_file;
      if (config.token_file) {
        std::ifstream in(*config.token_file, std::ios::binary);
        if (!in) {
          return FailedPreconditionError("audit sink '" + config.name +
                                         "': cannot read token_file " + *config.token_file);
        }
        std::string token((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        while (!token.empty() && (token.back() == '\n' || token.back() == '\r' ||
                                  token.back() == ' ' || token.back() == '\t')) {
          token.pop_back();
        }
        if (token.empty() || token.size() > 4096 ||
            token.find_first_of("\r\n") != std::string::npos) {
          return FailedPreconditionError("audit sink '" + config.name +
                                         "': token_file must hold one non-empty line");
        }
        o.token = std::move(token);
      }
      LOCKBOX_ASSIGN_OR_RETURN(auto sink, HttpSink::Create(std::move(o)));
      return std::unique_ptr<Sink>(std::move(sink));
    }
  }
  return InternalError("unknown sink type");
}

}  // namespace lockbox::siem
