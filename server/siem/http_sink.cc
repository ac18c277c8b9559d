#include "server/siem/http_sink.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "server/siem/sigpipe.h"

namespace lockbox::siem {

std::string FormatEpochSeconds(std::chrono::system_clock::time_point t) {
  const auto us =
      std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  const long long secs = us >= 0 ? us / 1'000'000 : -((-us + 999'999) / 1'000'000);
  const long long frac = us - secs * 1'000'000;
  char buf[48];
  std::snprintf(buf, sizeof buf, "%lld.%06lld", secs, frac);
  return buf;
}

std::string FormatHecBody(const std::vector<StreamRecord>& batch, std::string_view host,
                          std::chrono::system_clock::time_point fallback_time) {
  const std::string host_json = nlohmann::json(std::string(host)).dump();
  std::string body;
  for (const StreamRecord& r : batch) {
    if (!body.empty()) body += '\n';
    body += "{\"time\":";
    body += FormatEpochSeconds(RecordTime(r).value_or(fallback_time));
    body += ",\"host\":";
    body += host_json;
    body += ",\"source\":\"lockbox\",\"sourcetype\":\"lockbox:audit\",\"event\":";
    body += StreamLine(r);  // canonical JSON kept byte for byte
    body += '}';
  }
  return body;
}

StatusOr<ParsedUrl> ParseHttpUrl(std::string_view url) {
  ParsedUrl out;
  std::string_view rest;
  if (url.rfind("http://", 0) == 0) {
    out.scheme = "http";
    out.port = 80;
    rest = url.substr(7);
  } else if (url.rfind("https://", 0) == 0) {
    out.scheme = "https";
    out.port = 443;
    rest = url.substr(8);
  } else {
    return InvalidArgumentError("expected an http:// or https:// URL");
  }
  const auto slash = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, slash);
  out.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (!out.path.empty() && out.path[0] != '/') out.path = "/" + out.path;
  if (out.path.find('#') != std::string::npos) return InvalidArgumentError("URL has a fragment");
  if (authority.find('@') != std::string_view::npos) {
    return InvalidArgumentError("URL must not carry credentials (use token_file)");
  }
  std::string_view port_text;
  if (!authority.empty() && authority[0] == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return InvalidArgumentError("bad IPv6 host in URL");
    out.host = std::string(authority.substr(1, close - 1));
    const auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return InvalidArgumentError("bad port in URL");
      port_text = after.substr(1);
      if (port_text.empty()) return InvalidArgumentError("bad port in URL");
    }
  } else {
    const auto colon = authority.find(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) return InvalidArgumentError("bad port in URL");
    }
  }
  if (out.host.empty()) return InvalidArgumentError("URL has no host");
  if (!port_text.empty()) {
    int port = 0;
    for (char c : port_text) {
      if (c < '0' || c > '9' || port > 65535) return InvalidArgumentError("bad port in URL");
      port = port * 10 + (c - '0');
    }
    if (port < 1 || port > 65535) return InvalidArgumentError("bad port in URL");
    out.port = port;
  }
  return out;
}

struct HttpSink::Impl {
  HttpOptions opt;
  ParsedUrl url;
  std::string hostname;
  std::string target;  // scheme://host:port/path without query, for messages
  std::unique_ptr<httplib::Client> client;
  std::atomic<bool> cancelled{false};
};

StatusOr<std::unique_ptr<HttpSink>> HttpSink::Create(HttpOptions options) {
  auto parsed = ParseHttpUrl(options.url);
  if (!parsed.ok()) return parsed.status().WithContext("http sink url");
  if (options.timeout <= std::chrono::milliseconds(0)) {
    return InvalidArgumentError("http sink: timeout must be positive");
  }
  if (!options.ca_file.empty() && parsed->scheme != "https") {
    return InvalidArgumentError("http sink: ca_file needs an https URL");
  }
  if (options.token &&
      (options.token->empty() || options.token->find_first_of("\r\n") != std::string::npos)) {
    return InvalidArgumentError("http sink: token must be one non-empty line");
  }
  auto impl = std::make_unique<Impl>();
  impl->url = *parsed;
  const std::string host =
      parsed->host.find(':') != std::string::npos ? "[" + parsed->host + "]" : parsed->host;
  const std::string origin = parsed->scheme + "://" + host + ":" + std::to_string(parsed->port);
  const auto query = parsed->path.find('?');
  impl->target = origin + parsed->path.substr(0, query);
  impl->client = std::make_unique<httplib::Client>(origin);
  if (!impl->client->is_valid()) return InvalidArgumentError("http sink: unusable URL");
  const auto secs = options.timeout.count() / 1000;
  const auto usecs = (options.timeout.count() % 1000) * 1000;
  impl->client->set_connection_timeout(secs, usecs);
  impl->client->set_read_timeout(secs, usecs);
  impl->client->set_write_timeout(secs, usecs);
  impl->client->set_keep_alive(true);
  impl->client->set_follow_location(false);
  if (parsed->scheme == "https") {
    if (!options.ca_file.empty()) impl->client->set_ca_cert_path(options.ca_file);
    impl->client->enable_server_certificate_verification(true);
  }
  if (options.hostname.empty()) {
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) == 0) options.hostname = buf;
  }
  impl->hostname = options.hostname;
  std::string name = options.name;
  impl->opt = std::move(options);
  return std::unique_ptr<HttpSink>(new HttpSink(std::move(name), std::move(impl)));
}

HttpSink::HttpSink(std::string name, std::unique_ptr<Impl> impl)
    : Sink(std::move(name)), impl_(std::move(impl)) {}

HttpSink::~HttpSink() = default;

Status HttpSink::Deliver(const std::vector<StreamRecord>& batch) {
  if (batch.empty()) return Status::Ok();
  if (impl_->cancelled.load()) return UnavailableError("POST " + impl_->target + ": cancelled");
  internal::ScopedSigpipeBlock no_sigpipe;
  const std::string body = FormatHecBody(batch, impl_->hostname, std::chrono::system_clock::now());
  httplib::Headers headers;
  if (impl_->opt.token) headers.emplace("Authorization", "Splunk " + *impl_->opt.token);
  auto res = impl_->client->Post(impl_->url.path, headers, body, "application/json");
  if (!res) {
    return UnavailableError("POST " + impl_->target + ": " + httplib::to_string(res.error()));
  }
  if (res->status < 200 || res->status > 299) {
    return UnavailableError("POST " + impl_->target + ": HTTP " + std::to_string(res->status));
  }
  return Status::Ok();
}

void HttpSink::Cancel() {
  impl_->cancelled.store(true);
  impl_->client->stop();
}

}  // namespace lockbox::siem
