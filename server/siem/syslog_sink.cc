#include "server/siem/syslog_sink.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <ctime>

#include "server/siem/sigpipe.h"

namespace lockbox::siem {
namespace {

using Clock = std::chrono::steady_clock;

std::string Errno(int err) {
  char buf[128];
  return strerror_r(err, buf, sizeof buf);
}

std::string OpenSslError() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown TLS error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

bool IsIpLiteral(const std::string& s) {
  in6_addr a6;
  in_addr a4;
  return inet_pton(AF_INET, s.c_str(), &a4) == 1 || inet_pton(AF_INET6, s.c_str(), &a6) == 1;
}

}  // namespace

std::string EscapeSdParamValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '"' || c == '\\' || c == ']') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

std::string SyslogTimestamp(std::chrono::system_clock::time_point t) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch());
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(us);
  auto frac = us - secs;
  if (frac.count() < 0) {
    secs -= std::chrono::seconds(1);
    frac += std::chrono::seconds(1);
  }
  const std::time_t tt = static_cast<std::time_t>(secs.count());
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(frac.count()));
  return buf;
}

std::string SyslogHostname(std::string_view name) {
  std::string out;
  for (char c : name) {
    if (out.size() == 255) break;
    if (c >= 33 && c <= 126) out.push_back(c);
  }
  return out.empty() ? "-" : out;
}

std::string FormatSyslogMessage(const StreamRecord& record, std::string_view hostname,
                                std::string_view timestamp, int pri) {
  std::string m;
  m.reserve(record.body.size() + 160);
  m += '<';
  m += std::to_string(pri);
  m += ">1 ";
  m += timestamp;
  m += ' ';
  m += hostname;
  m += " lockbox - AUDIT [lockbox@32473 seq=\"";
  m += std::to_string(record.seq);
  m += "\" log_id=\"";
  m += EscapeSdParamValue(record.log_id);
  m += "\" kind=\"";
  m += RecordKindName(record.kind);
  m += "\"] ";
  m += StreamLine(record);
  return m;
}

std::string FrameOctetCounted(std::string_view message) {
  std::string framed = std::to_string(message.size());
  framed += ' ';
  framed += message;
  return framed;
}

struct SyslogSink::Impl {
  SyslogOptions opt;
  std::string hostname;
  std::string peer;  // "host:port" for messages
  int pri = 110;
  SSL_CTX* ctx = nullptr;
  int cancel_fd = -1;
  int fd = -1;
  SSL* ssl = nullptr;

  ~Impl() {
    Disconnect();
    if (ctx != nullptr) SSL_CTX_free(ctx);
    if (cancel_fd >= 0) close(cancel_fd);
  }

  Status Error(std::string_view what) const {
    return UnavailableError("syslog " + peer + ": " + std::string(what));
  }

  void Disconnect() {
    if (ssl != nullptr) {
      SSL_shutdown(ssl);  // best effort close_notify; non-blocking socket, result ignored
      SSL_free(ssl);
      ssl = nullptr;
      ERR_clear_error();
    }
    if (fd >= 0) {
      close(fd);
      fd = -1;
    }
  }

  // Polls `sock` for `events` until `until`: its revents, 0 on timeout; an error if cancelled.
  StatusOr<short> PollUntil(int sock, short events, Clock::time_point until) {
    for (;;) {
      const auto now = Clock::now();
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - now).count();
      pollfd fds[2] = {{sock, events, 0}, {cancel_fd, POLLIN, 0}};
      const int r = poll(fds, 2, static_cast<int>(std::clamp<long long>(left, 0, INT_MAX)));
      if (r < 0) {
        if (errno == EINTR) continue;
        return Error("poll: " + Errno(errno));
      }
      if (fds[1].revents != 0) return Error("cancelled");
      if (r > 0 && fds[0].revents != 0) return fds[0].revents;
      if (Clock::now() >= until) return static_cast<short>(0);
    }
  }

  Status Wait(int sock, short events, Clock::time_point deadline, std::string_view what) {
    LOCKBOX_ASSIGN_OR_RETURN(short revents, PollUntil(sock, events, deadline));
    if (revents == 0) return Error(std::string(what) + ": timed out");
    return Status::Ok();
  }

  Status Connect(Clock::time_point deadline) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* list = nullptr;
    const std::string port = std::to_string(opt.port);
    const int gai = getaddrinfo(opt.host.c_str(), port.c_str(), &hints, &list);
    if (gai != 0) return Error(std::string("resolve: ") + gai_strerror(gai));
    Status last = Error("connect: no address");
    for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
      const int s = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (s < 0) {
        last = Error("socket: " + Errno(errno));
        continue;
      }
      int r = connect(s, ai->ai_addr, ai->ai_addrlen);
      if (r < 0 && errno != EINPROGRESS) {
        last = Error("connect: " + Errno(errno));
        close(s);
        continue;
      }
      if (r < 0) {
        Status waited = Wait(s, POLLOUT, deadline, "connect");
        if (!waited.ok()) {
          close(s);
          last = waited;
          if (Clock::now() >= deadline || Cancelled()) break;
          continue;
        }
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          last = Error("connect: " + Errno(err));
          close(s);
          continue;
        }
      }
      const int one = 1;
      setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
      fd = s;
      break;
    }
    freeaddrinfo(list);
    if (fd < 0) return last;
    if (ctx != nullptr) {
      Status hs = Handshake(deadline);
      if (!hs.ok()) {
        Disconnect();
        return hs;
      }
    }
    return Status::Ok();
  }

  bool Cancelled() const {
    pollfd p{cancel_fd, POLLIN, 0};
    return poll(&p, 1, 0) > 0;
  }

  Status Handshake(Clock::time_point deadline) {
    ERR_clear_error();
    ssl = SSL_new(ctx);
    if (ssl == nullptr) return Error("TLS: " + OpenSslError());
    SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    const std::string& name = opt.tls->server_name;
    if (IsIpLiteral(name)) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl, name.c_str());
      SSL_set1_host(ssl, name.c_str());
    }
    SSL_set_fd(ssl, fd);
    for (;;) {
      const int r = SSL_connect(ssl);
      if (r == 1) return Status::Ok();
      const int e = SSL_get_error(ssl, r);
      if (e == SSL_ERROR_WANT_READ) {
        LOCKBOX_RETURN_IF_ERROR(Wait(fd, POLLIN, deadline, "TLS handshake"));
      } else if (e == SSL_ERROR_WANT_WRITE) {
        LOCKBOX_RETURN_IF_ERROR(Wait(fd, POLLOUT, deadline, "TLS handshake"));
      } else {
        const long verify = SSL_get_verify_result(ssl);
        if (verify != X509_V_OK) {
          ERR_clear_error();
          return Error(std::string("TLS handshake: certificate verification failed: ") +
                       X509_verify_cert_error_string(verify));
        }
        if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
          return Error("TLS handshake: connection closed");
        }
        return Error("TLS handshake: " + OpenSslError());
      }
    }
  }

  // OK if the connection is still usable: not closed or reset by the peer. Discards anything the
  // peer sent (a collector sends no application data; TLS 1.3 session tickets are consumed).
  Status CheckAlive() {
    pollfd p{fd, static_cast<short>(POLLIN | POLLRDHUP), 0};
    if (poll(&p, 1, 0) < 0 && errno != EINTR) return Error("poll: " + Errno(errno));
    if ((p.revents & (POLLERR | POLLHUP | POLLRDHUP | POLLNVAL)) != 0) {
      return Error("connection closed by the collector");
    }
    if ((p.revents & POLLIN) == 0) return Status::Ok();
    char buf[4096];
    for (;;) {
      if (ssl != nullptr) {
        ERR_clear_error();
        const int r = SSL_read(ssl, buf, sizeof buf);
        if (r > 0) continue;
        const int e = SSL_get_error(ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return Status::Ok();
        ERR_clear_error();
        return Error("connection closed by the collector");
      }
      const ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Status::Ok();
      if (n < 0 && errno == EINTR) continue;
      return Error(n == 0 ? "connection closed by the collector" : "recv: " + Errno(errno));
    }
  }

  Status WriteAll(const std::string& data, Clock::time_point deadline) {
    std::size_t off = 0;
    while (off < data.size()) {
      const std::size_t chunk = std::min<std::size_t>(data.size() - off, INT_MAX);
      if (ssl != nullptr) {
        ERR_clear_error();
        const int r = SSL_write(ssl, data.data() + off, static_cast<int>(chunk));
        if (r > 0) {
          off += static_cast<std::size_t>(r);
          continue;
        }
        const int e = SSL_get_error(ssl, r);
        if (e == SSL_ERROR_WANT_WRITE) {
          LOCKBOX_RETURN_IF_ERROR(Wait(fd, POLLOUT, deadline, "write"));
        } else if (e == SSL_ERROR_WANT_READ) {
          LOCKBOX_RETURN_IF_ERROR(Wait(fd, POLLIN, deadline, "write"));
        } else {
          return Error(e == SSL_ERROR_SYSCALL ? "write: " + Errno(errno)
                                              : "TLS write: " + OpenSslError());
        }
        continue;
      }
      const ssize_t n = send(fd, data.data() + off, chunk, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        off += static_cast<std::size_t>(n);
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        LOCKBOX_RETURN_IF_ERROR(Wait(fd, POLLOUT, deadline, "write"));
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        return Error("write: " + Errno(errno));
      }
    }
    return Status::Ok();
  }

  // Waits until the peer's TCP stack acknowledged every byte, then watches the connection for
  // `confirm_window`: a close or reset in that time fails the batch.
  Status Confirm(Clock::time_point deadline) {
    std::optional<Clock::time_point> window_end;
    for (;;) {
      int unacked = 0;
      if (ioctl(fd, SIOCOUTQ, &unacked) < 0) return Error("SIOCOUTQ: " + Errno(errno));
      const auto now = Clock::now();
      if (unacked == 0 && !window_end) window_end = now + opt.confirm_window;
      if (window_end && now >= *window_end) return CheckAlive();
      if (now >= deadline) return Error("timed out waiting for the collector to acknowledge");
      const auto until =
          std::min(deadline, window_end ? *window_end : now + std::chrono::milliseconds(1));
      LOCKBOX_ASSIGN_OR_RETURN(short revents,
                               PollUntil(fd, static_cast<short>(POLLIN | POLLRDHUP), until));
      if (revents != 0) LOCKBOX_RETURN_IF_ERROR(CheckAlive());
      // CheckAlive consumed what woke us (e.g. a TLS session ticket) and the peer is still there.
    }
  }

  Status Deliver(const std::vector<StreamRecord>& batch) {
    if (Cancelled()) return Error("cancelled");
    if (fd >= 0 && !CheckAlive().ok()) Disconnect();  // the last batch was confirmed: reconnect
    if (fd < 0) LOCKBOX_RETURN_IF_ERROR(Connect(Clock::now() + opt.timeout));
    const std::string timestamp = SyslogTimestamp(std::chrono::system_clock::now());
    std::string payload;
    for (const StreamRecord& r : batch) {
      payload += FrameOctetCounted(FormatSyslogMessage(r, hostname, timestamp, pri));
    }
    const auto deadline = Clock::now() + opt.timeout;
    Status s = WriteAll(payload, deadline);
    if (s.ok()) s = Confirm(deadline);
    if (!s.ok()) Disconnect();
    return s;
  }
};

StatusOr<std::unique_ptr<SyslogSink>> SyslogSink::Create(SyslogOptions options) {
  if (options.host.empty()) return InvalidArgumentError("syslog sink: empty host");
  if (options.port == 0) return InvalidArgumentError("syslog sink: port 0");
  if (options.timeout <= std::chrono::milliseconds(0)) {
    return InvalidArgumentError("syslog sink: timeout must be positive");
  }
  if (options.facility < 0 || options.facility > 23 || options.severity < 0 ||
      options.severity > 7) {
    return InvalidArgumentError("syslog sink: facility 0..23, severity 0..7");
  }
  auto impl = std::make_unique<Impl>();
  impl->pri = options.facility * 8 + options.severity;
  impl->peer =
      (options.host.find(':') != std::string::npos ? "[" + options.host + "]" : options.host) +
      ":" + std::to_string(options.port);
  if (options.hostname.empty()) {
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) == 0) options.hostname = buf;
  }
  impl->hostname = SyslogHostname(options.hostname);
  impl->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (impl->cancel_fd < 0) return InternalError("eventfd: " + Errno(errno));
  if (options.tls) {
    if (options.tls->server_name.empty()) options.tls->server_name = options.host;
    impl->ctx = SSL_CTX_new(TLS_client_method());
    if (impl->ctx == nullptr) return InternalError("SSL_CTX_new: " + OpenSslError());
    SSL_CTX_set_min_proto_version(impl->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(impl->ctx, SSL_VERIFY_PEER, nullptr);
    if (SSL_CTX_load_verify_locations(impl->ctx, options.tls->ca_file.c_str(), nullptr) != 1) {
      ERR_clear_error();
      return InvalidArgumentError("syslog sink: cannot load CA file " + options.tls->ca_file);
    }
  }
  std::string name = options.name;
  impl->opt = std::move(options);
  return std::unique_ptr<SyslogSink>(new SyslogSink(std::move(name), std::move(impl)));
}

SyslogSink::SyslogSink(std::string name, std::unique_ptr<Impl> impl)
    : Sink(std::move(name)), impl_(std::move(impl)) {}

SyslogSink::~SyslogSink() = default;

Status SyslogSink::Deliver(const std::vector<StreamRecord>& batch) {
  if (batch.empty()) return Status::Ok();
  internal::ScopedSigpipeBlock no_sigpipe;
  return impl_->Deliver(batch);
}

void SyslogSink::Cancel() {
  const std::uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = write(impl_->cancel_fd, &one, sizeof one);
}

}  // namespace lockbox::siem
