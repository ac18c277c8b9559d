// HttpSink: POSTs each batch as a Splunk HEC-compatible body (application/json): one JSON object
// per record, newline-separated:
//   {"time":<epoch seconds.micros>,"host":"...","source":"lockbox","sourcetype":"lockbox:audit",
//    "event":<the event's canonical JSON, byte for byte | {"checkpoint":"<jws>"}>}
// with "Authorization: Splunk <token>" when a token is configured. Deliver() succeeds only on a
// 2xx response; redirects are not followed. Connect, read and write are each bounded by
// `timeout`. https URLs verify the server certificate (configured CA file, else the system store)
// and host name. The token never appears in errors.
// Thread safety: see Sink (Deliver from one thread; Cancel from any).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/status.h"
#include "server/siem/sink.h"

namespace lockbox::siem {

struct HttpOptions {
  std::string name;
  std::string url;                   // http://host[:port]/path or https://...
  std::optional<std::string> token;  // the HEC token itself (MakeSink reads it from token_file)
  std::chrono::milliseconds timeout{5'000};
  std::string ca_file;   // https only; empty: system CA store
  std::string hostname;  // the "host" field; empty: gethostname()
};

// The HEC body for `batch`. Records without a parseable time get `fallback_time`.
std::string FormatHecBody(const std::vector<StreamRecord>& batch, std::string_view host,
                          std::chrono::system_clock::time_point fallback_time);
// "1764277285.123456": seconds since the epoch with six fractional digits.
std::string FormatEpochSeconds(std::chrono::system_clock::time_point t);

struct ParsedUrl {
  std::string scheme;  // "http" | "https"
  std::string host;    // without brackets
  int port = 0;
  std::string path;  // "/..." (default "/")
};
StatusOr<ParsedUrl> ParseHttpUrl(std::string_view url);

class HttpSink final : public Sink {
 public:
  static StatusOr<std::unique_ptr<HttpSink>> Create(HttpOptions options);
  ~HttpSink() override;

  Status Deliver(const std::vector<StreamRecord>& batch) override;
  void Cancel() override;

 private:
  struct Impl;
  HttpSink(std::string name, std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace lockbox::siem
