// Listener: Lockbox's HTTP(S) front door on Boost.Beast + Asio. This header is Beast-free; Beast
// and Asio stay inside server/http/*.cc.
//
// Design: an io_context run by a few I/O threads accepts connections, performs the TLS handshake
// and parses requests; each complete request goes to the handler on the I/O thread, which answers
// at once or later from another thread, or offloads it to a worker pool (where it may block on
// the HSM or the store without stalling the event loop); the response is written back on the
// connection's strand. Keep-alive, any method token (Vault's LIST included),
// limits (header bytes, body bytes, connections), read and idle timeouts, and token-bucket rate
// limits per client address and per presented token (429 with Retry-After) are enforced here,
// before the handler runs.
//
// TLS: OpenSSL, TLS 1.2 minimum (1.3 preferred, or 1.3 only), AEAD ciphers with forward secrecy
// only, no compression, no renegotiation. A client certificate is neither requested nor required.
// Plain HTTP only when `tls` is false, which callers allow on loopback addresses only.
//
// Thread safety: Start/port/Stop may be called from any thread; the handler is called
// concurrently from the I/O threads, offloaded work from the worker threads; Respond may be
// called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "crypto/status.h"

namespace lockbox::http {

struct HttpRequest {
  std::string method;  // the method token as sent ("GET", "LIST", ...)
  std::string target;  // the request-target: path and optional "?query"
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
  std::string body;
  std::string remote_addr;  // peer IP address, without port
  bool tls = false;
  // The first value of header `lower_name`, or nullptr.
  const std::string* Header(std::string_view lower_name) const;
};

struct HttpResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;  // e.g. {"Content-Type", ...}
  std::string body;
};

// Delivers the answer to a request. Call it exactly once, from any thread; later calls are
// ignored, and if every copy is destroyed uncalled the client gets a 500.
using Respond = std::function<void(HttpResponse)>;
// Runs `work` on the listener's worker pool, where it may block.
using Offload = std::function<void(std::function<void()>)>;
// Runs on an I/O thread, so it must not block: it answers through `respond` — at once, or later
// from any thread (e.g. once an audit record is durable) — or hands the request to `offload`.
// `request` stays valid until it has responded. Must not throw (an exception becomes a 500
// without details, unless it already responded); neither may offloaded work.
using AsyncHandler = std::function<void(HttpRequest&, Respond, const Offload&)>;
// The simple form: runs on a worker thread, may block, returns the answer.
using Handler = std::function<HttpResponse(HttpRequest&)>;

enum class TlsMinVersion { kTls12, kTls13 };

struct RateLimit {
  double per_second = 0;  // 0: unlimited
  double burst = 0;       // bucket size; 0: per_second
};

struct ListenerOptions {
  std::string host = "127.0.0.1";  // IPv4 or IPv6 literal
  std::uint16_t port = 8200;       // 0: any free port (see Listener::port())
  bool tls = true;
  std::string tls_cert_file;  // PEM chain
  std::string tls_key_file;   // PEM private key
  TlsMinVersion tls_min_version = TlsMinVersion::kTls12;
  std::size_t max_header_bytes = 16 * 1024;        // 431 beyond
  std::size_t max_body_bytes = 1024 * 1024;        // 413 beyond
  std::size_t max_connections = 1024;              // further connections are closed at accept
  std::chrono::milliseconds read_timeout{30'000};  // a request must arrive within this
  std::chrono::milliseconds idle_timeout{60'000};  // keep-alive connection without a request
  unsigned io_threads = 2;
  unsigned worker_threads = 64;
  RateLimit per_client;  // keyed by remote address
  RateLimit per_token;   // keyed by a hash of X-Vault-Token / Authorization: Bearer
};

struct ListenerStats {
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_open = 0;
  std::uint64_t connections_refused = 0;  // over max_connections
  std::uint64_t requests = 0;
  std::uint64_t rate_limited = 0;
};

class Listener {
 public:
  // Binds, listens and starts the I/O and worker threads. UNAVAILABLE if the address cannot be
  // bound; INVALID_ARGUMENT if TLS is on and the certificate or key cannot be loaded.
  static StatusOr<std::unique_ptr<Listener>> Start(ListenerOptions options, AsyncHandler handler);
  static StatusOr<std::unique_ptr<Listener>> Start(ListenerOptions options, Handler handler);
  virtual ~Listener() = default;  // implies Stop()

  virtual std::uint16_t port() const = 0;
  virtual ListenerStats stats() const = 0;
  // Graceful: stops accepting, lets in-flight requests finish and their responses be written
  // (at most `grace`), closes idle connections, joins every thread. Idempotent.
  virtual void Stop(std::chrono::milliseconds grace = std::chrono::milliseconds(10'000)) = 0;
};

}  // namespace lockbox::http
