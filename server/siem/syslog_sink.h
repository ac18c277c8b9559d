// SyslogSink: RFC 5424 messages over TCP with octet-counting framing (RFC 6587 §3.4.1,
// "MSG-LEN SP SYSLOG-MSG"), optionally inside TLS (RFC 5425; OpenSSL, TLS 1.2+, the server
// certificate verified against a CA file and the configured host name).
//
// Message: <PRI>1 TIMESTAMP HOSTNAME lockbox - AUDIT
//          [lockbox@32473 seq="N" log_id="..." kind="event|checkpoint"] MSG
// where MSG is the event's canonical JSON byte for byte, or {"checkpoint":"<jws>"}.
// PRI defaults to facility 13 (log audit), severity 6 (informational) = 110.
//
// Delivery: one connection is kept open across batches and re-established after any error. Plain
// syslog over TCP has no application acknowledgement, so Deliver() reports a batch accepted only
// when (1) every byte was written, (2) the peer's TCP stack acknowledged all of it (the socket's
// send queue drained) and (3) the connection then stayed open for `confirm_window` (a collector
// that is shutting down closes or resets the connection; the batch is then reported failed and
// re-sent). A collector killed without closing its connection after that window can still lose
// the batch: that is the limit of RFC 6587 transport (RELP would be needed to do better).
// Every connect, handshake, write and confirmation is bounded by `timeout`.
// Thread safety: see Sink (Deliver from one thread; Cancel from any).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/status.h"
#include "server/siem/sink.h"

namespace lockbox::siem {

struct SyslogTlsOptions {
  std::string ca_file;      // PEM CA bundle the server certificate must chain to
  std::string server_name;  // DNS name or IP the certificate must match (also SNI)
};

struct SyslogOptions {
  std::string name;  // sink name
  std::string host;  // collector host name or IP literal
  std::uint16_t port = 0;
  std::optional<SyslogTlsOptions> tls;
  std::chrono::milliseconds timeout{5'000};
  std::chrono::milliseconds confirm_window{50};
  std::string hostname;  // HOSTNAME field; empty: gethostname()
  int facility = 13;     // log audit
  int severity = 6;      // informational
};

// RFC 5424 §6.3.3: '"', '\' and ']' in a PARAM-VALUE are escaped with a backslash.
std::string EscapeSdParamValue(std::string_view value);
// RFC 5424 TIMESTAMP, UTC with microseconds: "2026-11-27T21:01:25.123456Z".
std::string SyslogTimestamp(std::chrono::system_clock::time_point t);
// A HOSTNAME field: printable US-ASCII, at most 255 characters; "-" (NILVALUE) when empty.
std::string SyslogHostname(std::string_view name);
// One SYSLOG-MSG (without framing).
std::string FormatSyslogMessage(const StreamRecord& record, std::string_view hostname,
                                std::string_view timestamp, int pri = 110);
// Octet-counting frame: decimal byte length, one space, the message.
std::string FrameOctetCounted(std::string_view message);

class SyslogSink final : public Sink {
 public:
  // Validates the options and loads the CA file (no connection yet).
  static StatusOr<std::unique_ptr<SyslogSink>> Create(SyslogOptions options);
  ~SyslogSink() override;

  Status Deliver(const std::vector<StreamRecord>& batch) override;
  void Cancel() override;

 private:
  struct Impl;
  SyslogSink(std::string name, std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace lockbox::siem
