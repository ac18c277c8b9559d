// The Beast/Asio side of the listener (see listener.h for the contract).
//
// Shape: `io_threads` io_contexts, each run by one thread of its own. An accept coroutine (on the
// first) hands the sockets out round-robin and spawns one connection coroutine per socket on its
// context; a connection never changes thread, so it needs no strand and the contexts share no
// lock (one io_context run by several threads was slower: its threads contend for its queue).
// The coroutine does the TLS handshake, reads a request, calls the handler on its I/O thread and
// awaits its Respond (the handler may offload to the worker pool, an asio::thread_pool of
// `worker_threads`: extra requests queue, at most one per connection), and resumes on its thread
// to write the response. Requests on one connection are handled one after another, so pipelined
// requests are answered in order.
//
// Deadlines (beast::tcp_stream's, one deadline shared by every read of a phase):
//   - the first request, TLS handshake included, must be complete `read_timeout` after accept;
//   - a kept-alive connection gets `idle_timeout` for the first byte of its next request and then
//     `read_timeout` for the whole request (slowloris defence);
//   - a response must be taken by the client within `read_timeout` as well;
//   - the handler's own time is not limited here.
#include "server/http/listener.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <array>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <thread>
#include <type_traits>
#include <unordered_map>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "server/http/message.h"
#include "server/http/rate_limiter.h"

namespace lockbox::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using beast::error_code;
using BeastRequest = bhttp::request<bhttp::string_body>;
using RequestParser = bhttp::request_parser<bhttp::string_body>;
// Everything runs on io_context executors, named as such: the type-erased any_io_executor that
// Asio and Beast default to costs a copy and a virtual call at every operation.
using Executor = asio::io_context::executor_type;
template <class T>
using Awaitable = asio::awaitable<T, Executor>;
constexpr asio::use_awaitable_t<Executor> kAwait;
using Socket = tcp::socket::rebind_executor<Executor>::other;
using TcpStream = beast::basic_stream<tcp, Executor, beast::unlimited_rate_policy>;
using PlainStream = TcpStream;
using TlsStream = beast::ssl_stream<TcpStream>;

// Bytes asked of the socket per read; the read buffer holds a header plus one such read.
constexpr std::size_t kReadChunk = 16 * 1024;
// Closing after a response: how long (and how much) unread input is drained after our FIN, so
// that the client is not sent a reset that could destroy the response in flight.
constexpr std::chrono::milliseconds kLingerTimeout{500};
constexpr std::size_t kLingerMaxBytes = 256 * 1024;
// accept() failed for a reason other than the listener closing (e.g. out of descriptors).
constexpr std::chrono::milliseconds kAcceptBackoff{50};

// TLS 1.2: ECDHE key exchange and AEAD only. TLS 1.3 suites are all AEAD + (EC)DHE.
constexpr char kTls12Ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr char kTls13Suites[] =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

std::string OpenSslReason() {
  const unsigned long error = ERR_peek_last_error();
  const char* reason = error != 0 ? ERR_reason_error_string(error) : nullptr;
  ERR_clear_error();
  return reason != nullptr ? reason : "unknown error";
}

StatusOr<std::unique_ptr<ssl::context>> MakeTlsContext(const ListenerOptions& options) {
  if (options.tls_cert_file.empty() || options.tls_key_file.empty()) {
    return InvalidArgumentError("TLS needs tls_cert_file and tls_key_file");
  }
  auto context = std::make_unique<ssl::context>(ssl::context::tls_server);
  SSL_CTX* ctx = context->native_handle();
  ERR_clear_error();
  const int min_version =
      options.tls_min_version == TlsMinVersion::kTls13 ? TLS1_3_VERSION : TLS1_2_VERSION;
  if (SSL_CTX_set_min_proto_version(ctx, min_version) != 1 ||
      SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1 ||
      SSL_CTX_set_ciphersuites(ctx, kTls13Suites) != 1) {
    return InternalError("TLS context setup: " + OpenSslReason());
  }
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  // An encrypted key must fail to load, not prompt on the terminal.
  SSL_CTX_set_default_passwd_cb(ctx, [](char*, int, int, void*) { return 0; });
  if (SSL_CTX_use_certificate_chain_file(ctx, options.tls_cert_file.c_str()) != 1) {
    return InvalidArgumentError("cannot load the TLS certificate chain from '" +
                                options.tls_cert_file + "': " + OpenSslReason());
  }
  // Also refuses a key that does not match the certificate ("key values mismatch").
  if (SSL_CTX_use_PrivateKey_file(ctx, options.tls_key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return InvalidArgumentError("cannot load the TLS private key from '" + options.tls_key_file +
                                "': " + OpenSslReason());
  }
  return context;
}

Status ValidateRateLimit(const RateLimit& limit, std::string_view name) {
  if (!std::isfinite(limit.per_second) || !std::isfinite(limit.burst) || limit.per_second < 0 ||
      limit.burst < 0) {
    return InvalidArgumentError(std::string(name) + " must be finite and not negative");
  }
  return Status::Ok();
}

Status ValidateOptions(const ListenerOptions& options, const AsyncHandler& handler) {
  if (!handler) return InvalidArgumentError("listener needs a handler");
  if (options.io_threads == 0 || options.worker_threads == 0) {
    return InvalidArgumentError("listener needs at least one I/O and one worker thread");
  }
  if (options.max_connections == 0) return InvalidArgumentError("max_connections must be >= 1");
  if (options.max_header_bytes == 0 ||
      options.max_header_bytes > std::numeric_limits<std::uint32_t>::max()) {
    return InvalidArgumentError("max_header_bytes out of range");
  }
  if (options.read_timeout.count() <= 0 || options.idle_timeout.count() <= 0) {
    return InvalidArgumentError("read_timeout and idle_timeout must be positive");
  }
  LOCKBOX_RETURN_IF_ERROR(ValidateRateLimit(options.per_client, "per_client rate limit"));
  return ValidateRateLimit(options.per_token, "per_token rate limit");
}

// The peer address as clients and policies write it: IPv4-mapped IPv6 becomes plain IPv4.
std::string PeerAddress(const asio::ip::address& address) {
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6()).to_string();
  }
  return address.to_string();
}

// The status the listener answers a failed read with; 0: close without a response (timeout,
// peer gone, TLS failure, or a message cut short).
int StatusForReadError(const error_code& ec) {
  if (ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow) return 431;
  if (ec == bhttp::error::body_limit) return 413;
  if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message) return 0;
  if (&ec.category() == &bhttp::make_error_code(bhttp::error::bad_method).category()) return 400;
  return 0;
}

// Parses what `buffer` holds into `parser`: need_more if the request is not complete yet. A
// keep-alive request usually arrives whole in one read, and parsing it here saves a trip through
// the scheduler: Beast's async reads complete through a post even when they read nothing.
error_code ParseBuffered(beast::flat_buffer& buffer, RequestParser& parser) {
  parser.eager(true);  // header and body in one go, as async_read does
  error_code ec;
  while (buffer.size() > 0 && !parser.is_done()) {
    const std::size_t used = parser.put(buffer.data(), ec);
    buffer.consume(used);
    if (ec) return ec;
    if (used == 0) break;
  }
  return parser.is_done() ? error_code{} : error_code(bhttp::error::need_more);
}

std::string_view ErrorMessage(int status) {
  switch (status) {
    case 400:
      return "malformed HTTP request";
    case 413:
      return "request body too large";
    case 431:
      return "request header fields too large";
    default:
      return "internal error";
  }
}

HttpRequest ToHttpRequest(BeastRequest&& message, const std::string& remote_addr, bool tls) {
  HttpRequest request;
  request.method = std::string(message.method_string());
  request.target = std::string(message.target());
  request.headers.reserve(static_cast<std::size_t>(std::distance(message.begin(), message.end())));
  for (const auto& field : message) {
    request.headers.emplace_back(AsciiLowerCopy(field.name_string()), std::string(field.value()));
  }
  request.body = std::move(message.body());
  request.remote_addr = remote_addr;
  request.tls = tls;
  return request;
}

// The response as it goes on the wire. Written out here rather than by Beast's serializer, which
// walks the message one small buffer per header piece (and allocates a node per field) before the
// TLS stream copies them into one: the handler's headers are already checked (ValidateResponse),
// so this is a concatenation. Framing is ours: Content-Length (but not for 204/304, and for HEAD
// the length GET would send, without the body) and Connection, as Beast would write them.
std::string SerializeResponse(HttpResponse&& response, unsigned version, bool head,
                              bool keep_alive) {
  const auto status = static_cast<unsigned>(response.status);
  const bool has_body = status != 204 && status != 304;
  std::size_t size = 96 + (head ? 0 : response.body.size());
  for (const auto& [name, value] : response.headers) size += name.size() + value.size() + 4;
  std::string wire;
  wire.reserve(size);
  wire += version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
  wire += std::to_string(status);
  wire += ' ';
  wire += bhttp::obsolete_reason(bhttp::int_to_status(status));
  wire += "\r\n";
  bool cache_control = false;
  for (const auto& [name, value] : response.headers) {
    if (IsFramingHeader(name)) continue;
    cache_control = cache_control || AsciiIEquals(name, "cache-control");
    wire.append(name).append(": ").append(value).append("\r\n");
  }
  if (!cache_control) wire += "Cache-Control: no-store\r\n";
  if (version == 10 && keep_alive) wire += "Connection: keep-alive\r\n";
  if (version != 10 && !keep_alive) wire += "Connection: close\r\n";
  if (has_body) {
    wire.append("Content-Length: ").append(std::to_string(response.body.size())).append("\r\n");
  }
  wire += "\r\n";
  if (has_body && !head) wire += response.body;
  return wire;
}

// The part of a connection that Stop() reaches from another thread, always through a post to the
// connection's executor (its I/O thread).
class ConnectionBase {
 public:
  virtual ~ConnectionBase() = default;
  virtual TcpStream& tcp() = 0;
  Executor executor() { return tcp().get_executor(); }

  // On the connection's I/O thread.
  void CloseIfIdle() {
    if (idle_) Close();
  }
  void Close() {
    error_code ignored;
    tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
    tcp().close();
  }

 protected:
  // Between requests (or still in the TLS handshake): nothing in flight that Stop must wait for.
  bool idle_ = true;
};

template <class Stream>
class Connection;

// Where a handler's answer goes: the awaiting connection coroutine, resumed on its thread. The
// first Deliver() wins; if the handler drops every Respond copy without answering, the client
// gets a 500 rather than a connection that hangs forever. A response that breaks the HTTP rules
// (see ValidateResponse) becomes a 500 too.
template <class Resume>
class ResponseSlot {
 public:
  explicit ResponseSlot(Resume resume) : resume_(std::move(resume)) {}
  ResponseSlot(const ResponseSlot&) = delete;
  ResponseSlot& operator=(const ResponseSlot&) = delete;
  ~ResponseSlot() {
    if (!delivered_.exchange(true)) Post(JsonErrorResponse(500, "internal error"));
  }

  void Deliver(HttpResponse response) {
    if (delivered_.exchange(true)) return;
    if (!ValidateResponse(response).ok()) response = JsonErrorResponse(500, "internal error");
    Post(std::move(response));
  }

 private:
  void Post(HttpResponse response) {
    // The coroutine's own executor: the connection's I/O thread.
    const auto executor = asio::get_associated_executor(resume_);
    asio::post(executor, [resume = std::move(resume_), response = std::move(response)]() mutable {
      std::move(resume)(std::move(response));
    });
  }

  Resume resume_;
  std::atomic<bool> delivered_{false};
};

class ListenerImpl final : public Listener {
 public:
  ListenerImpl(ListenerOptions options, AsyncHandler handler, std::unique_ptr<ssl::context> tls)
      : options_(std::move(options)),
        handler_(std::move(handler)),
        tls_(std::move(tls)),
        limiter_(options_.per_client, options_.per_token),
        io_(MakeIoContexts(options_.io_threads)),
        acceptor_(*io_.front()),
        workers_(options_.worker_threads),
        offload_([this](std::function<void()> work) {
          asio::post(workers_, [work = std::move(work)] {
            try {
              work();
            } catch (...) {  // the contract forbids it; never let it end a worker thread
            }
          });
        }) {}
  ~ListenerImpl() override {
    Listener& listener = *this;
    listener.Stop();  // with the default grace of listener.h
  }

  Status Listen();
  void StartThreads();

  std::uint16_t port() const override { return port_; }
  ListenerStats stats() const override;
  void Stop(std::chrono::milliseconds grace) override;

  const ListenerOptions& options() const { return options_; }
  bool stopping() const { return stopping_.load(); }
  // Rate limits, then the handler; resumes on the caller's I/O thread.
  Awaitable<HttpResponse> Dispatch(HttpRequest& request);

 private:
  Awaitable<void> AcceptLoop();
  void Accept(Socket socket);
  template <class Stream, class... StreamArgs>
  void Launch(std::string remote_addr, StreamArgs&&... stream_args);
  void Unregister(ConnectionBase* connection);

  const ListenerOptions options_;
  const AsyncHandler handler_;
  const std::unique_ptr<ssl::context> tls_;  // outlives io_, hence every stream
  RequestRateLimiter limiter_;
  static std::vector<std::unique_ptr<asio::io_context>> MakeIoContexts(unsigned count);

  // One per I/O thread; the first also runs the accept loop.
  const std::vector<std::unique_ptr<asio::io_context>> io_;
  // Keep every context's run() going while it has no connection, until Stop().
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> io_keep_running_;
  std::size_t next_io_ = 0;  // the context the next connection goes to; accept loop only
  tcp::acceptor acceptor_;
  asio::thread_pool workers_;
  const Offload offload_;
  std::vector<std::thread> io_threads_;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};

  mutable std::mutex mu_;
  std::condition_variable drained_;  // connections_ became empty or the accept loop ended
  std::unordered_map<ConnectionBase*, std::shared_ptr<ConnectionBase>> connections_;  // mu_
  bool accepting_ = false;                                                            // mu_
  std::uint64_t connections_accepted_ = 0;                                            // mu_
  std::uint64_t connections_refused_ = 0;                                             // mu_
  std::atomic<std::uint64_t> requests_{0};
  std::atomic<std::uint64_t> rate_limited_{0};

  std::mutex stop_mu_;  // serialises Stop()
  bool stopped_ = false;
};

template <class Stream>
class Connection final : public ConnectionBase {
 public:
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

  template <class... StreamArgs>
  Connection(ListenerImpl& listener, std::string remote_addr, StreamArgs&&... stream_args)
      : listener_(listener),
        remote_addr_(std::move(remote_addr)),
        stream_(std::forward<StreamArgs>(stream_args)...) {}

  TcpStream& tcp() override { return beast::get_lowest_layer(stream_); }

  // The connection's life: handshake, then requests until close, error, timeout or Stop().
  Awaitable<void> Run();

 private:
  // Reads the rest of a request ParseBuffered() could not complete (headers, then body, sending
  // 100 Continue when the client waits for it).
  Awaitable<error_code> ReadRequest(beast::flat_buffer& buffer, RequestParser& parser);
  Awaitable<error_code> Write(HttpResponse response, unsigned version, bool head, bool keep_alive);
  // TLS close_notify, our FIN, then drain what the client still sends (bounded) and close.
  Awaitable<void> CloseGracefully();

  ListenerImpl& listener_;
  const std::string remote_addr_;
  Stream stream_;
};

template <class Stream>
Awaitable<void> Connection<Stream>::Run() {
  const ListenerOptions& options = listener_.options();
  error_code ec;
  tcp().expires_after(options.read_timeout);
  if constexpr (kTls) {
    co_await stream_.async_handshake(ssl::stream_base::server, asio::redirect_error(kAwait, ec));
    if (ec) co_return;
  }
  beast::flat_buffer buffer(options.max_header_bytes + kReadChunk);
  for (bool first = true;; first = false) {
    if (buffer.size() == 0) {
      idle_ = true;
      if (listener_.stopping()) co_return;
      if (!first) tcp().expires_after(options.idle_timeout);
      const std::size_t n = co_await stream_.async_read_some(buffer.prepare(kReadChunk),
                                                             asio::redirect_error(kAwait, ec));
      if (ec) co_return;
      buffer.commit(n);
    }
    idle_ = false;

    RequestParser parser;
    parser.header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
    parser.body_limit(std::uint64_t{options.max_body_bytes});
    ec = ParseBuffered(buffer, parser);
    if (ec == bhttp::error::need_more) {
      if (!first) tcp().expires_after(options.read_timeout);  // the first has had its since accept
      ec = co_await ReadRequest(buffer, parser);
    }
    if (ec) {
      if (const int status = StatusForReadError(ec); status != 0) {
        if (!co_await Write(JsonErrorResponse(status, ErrorMessage(status)), 11, false, false)) {
          co_await CloseGracefully();
        }
      }
      co_return;
    }

    BeastRequest& message = parser.get();
    const unsigned version = message.version();
    const bool client_keep_alive = message.keep_alive();
    HttpRequest request = ToHttpRequest(parser.release(), remote_addr_, kTls);
    const bool head = request.method == "HEAD";
    // No deadline while the handler works: nothing is pending on the stream until the write,
    // which sets its own.
    HttpResponse response = co_await listener_.Dispatch(request);
    const bool keep_alive = client_keep_alive && !listener_.stopping();
    tcp().expires_after(options.read_timeout);
    if (co_await Write(std::move(response), version, head, keep_alive)) co_return;
    if (!keep_alive) {
      co_await CloseGracefully();
      co_return;
    }
  }
}

template <class Stream>
Awaitable<error_code> Connection<Stream>::ReadRequest(beast::flat_buffer& buffer,
                                                      RequestParser& parser) {
  error_code ec;
  co_await bhttp::async_read_header(stream_, buffer, parser, asio::redirect_error(kAwait, ec));
  if (ec || parser.is_done()) co_return ec;
  const BeastRequest& message = parser.get();
  if (auto expect = message.find(bhttp::field::expect);
      message.version() == 11 && expect != message.end() &&
      AsciiIEquals(expect->value(), "100-continue")) {
    bhttp::response<bhttp::empty_body> proceed{bhttp::status::continue_, 11};
    co_await bhttp::async_write(stream_, proceed, asio::redirect_error(kAwait, ec));
    if (ec) co_return ec;
  }
  co_await bhttp::async_read(stream_, buffer, parser, asio::redirect_error(kAwait, ec));
  co_return ec;
}

template <class Stream>
Awaitable<error_code> Connection<Stream>::Write(HttpResponse response, unsigned version, bool head,
                                                bool keep_alive) {
  const std::string wire = SerializeResponse(std::move(response), version, head, keep_alive);
  error_code ec;
  co_await asio::async_write(stream_, asio::buffer(wire), asio::redirect_error(kAwait, ec));
  co_return ec;
}

template <class Stream>
Awaitable<void> Connection<Stream>::CloseGracefully() {
  error_code ec;
  tcp().expires_after(kLingerTimeout);
  if constexpr (kTls) {
    co_await stream_.async_shutdown(asio::redirect_error(kAwait, ec));
  }
  tcp().socket().shutdown(tcp::socket::shutdown_send, ec);
  std::array<char, 4096> sink;
  for (std::size_t drained = 0; drained < kLingerMaxBytes;) {
    ec = {};
    drained += co_await tcp().async_read_some(asio::buffer(sink), asio::redirect_error(kAwait, ec));
    if (ec) break;
  }
  tcp().close();
}

Status ListenerImpl::Listen() {
  error_code ec;
  const asio::ip::address address = asio::ip::make_address(options_.host, ec);
  if (ec) {
    return InvalidArgumentError("listener host '" + options_.host +
                                "' is not an IPv4 or IPv6 address literal");
  }
  const tcp::endpoint endpoint(address, options_.port);
  const auto where = [&] {
    return "cannot listen on " + options_.host + " port " + std::to_string(options_.port) + ": " +
           ec.message();
  };
  if (acceptor_.open(endpoint.protocol(), ec)) return UnavailableError(where());
  if (acceptor_.set_option(asio::socket_base::reuse_address(true), ec)) {
    return UnavailableError(where());
  }
  if (acceptor_.bind(endpoint, ec)) return UnavailableError(where());
  if (acceptor_.listen(asio::socket_base::max_listen_connections, ec)) {
    return UnavailableError(where());
  }
  port_ = acceptor_.local_endpoint(ec).port();
  if (ec) return UnavailableError(where());
  return Status::Ok();
}

void ListenerImpl::StartThreads() {
  {
    std::lock_guard lock(mu_);
    accepting_ = true;
  }
  asio::co_spawn(*io_.front(), AcceptLoop(), [this](std::exception_ptr) {
    std::lock_guard lock(mu_);
    accepting_ = false;
    drained_.notify_all();
  });
  io_threads_.reserve(io_.size());
  for (const auto& io : io_) {
    io_keep_running_.push_back(asio::make_work_guard(*io));
    io_threads_.emplace_back([&io = *io] { io.run(); });
  }
}

std::vector<std::unique_ptr<asio::io_context>> ListenerImpl::MakeIoContexts(unsigned count) {
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  contexts.reserve(count);
  for (unsigned i = 0; i < count; ++i) {
    contexts.push_back(std::make_unique<asio::io_context>(1));  // hint: one thread runs it
  }
  return contexts;
}

Awaitable<void> ListenerImpl::AcceptLoop() {
  for (;;) {
    error_code ec;
    asio::io_context& io = *io_[next_io_];
    next_io_ = (next_io_ + 1) % io_.size();
    auto socket = co_await acceptor_.async_accept(io, asio::redirect_error(kAwait, ec));
    if (stopping_ || !acceptor_.is_open()) co_return;
    if (ec) {
      asio::steady_timer backoff(*io_.front(), kAcceptBackoff);
      co_await backoff.async_wait(asio::redirect_error(kAwait, ec));
      continue;
    }
    Accept(std::move(socket));
  }
}

void ListenerImpl::Accept(Socket socket) {
  error_code ec;
  const tcp::endpoint peer = socket.remote_endpoint(ec);
  if (ec) return;  // already gone
  socket.set_option(tcp::no_delay(true), ec);
  if (tls_) {
    Launch<TlsStream>(PeerAddress(peer.address()), std::move(socket), *tls_);
  } else {
    Launch<PlainStream>(PeerAddress(peer.address()), std::move(socket));
  }
}

template <class Stream, class... StreamArgs>
void ListenerImpl::Launch(std::string remote_addr, StreamArgs&&... stream_args) {
  auto connection = std::make_shared<Connection<Stream>>(*this, std::move(remote_addr),
                                                         std::forward<StreamArgs>(stream_args)...);
  {
    std::lock_guard lock(mu_);
    if (stopping_ || connections_.size() >= options_.max_connections) {
      if (!stopping_) ++connections_refused_;
      connection->Close();  // nobody else uses the socket yet
      return;
    }
    connections_.emplace(connection.get(), connection);
    ++connections_accepted_;
  }
  asio::co_spawn(connection->executor(), connection->Run(),
                 [this, connection](std::exception_ptr) { Unregister(connection.get()); });
}

void ListenerImpl::Unregister(ConnectionBase* connection) {
  std::lock_guard lock(mu_);
  connections_.erase(connection);
  if (connections_.empty()) drained_.notify_all();
}

Awaitable<HttpResponse> ListenerImpl::Dispatch(HttpRequest& request) {
  requests_.fetch_add(1, std::memory_order_relaxed);
  if (const RateLimitDecision decision = limiter_.Admit(request); !decision.allowed) {
    rate_limited_.fetch_add(1, std::memory_order_relaxed);
    HttpResponse refused = JsonErrorResponse(429, "rate limit exceeded");
    refused.headers.emplace_back("Retry-After", std::to_string(decision.retry_after.count()));
    co_return refused;
  }
  // The coroutine waits for the handler's Respond, which resumes it on the connection's thread
  // from whichever thread answers.
  co_return co_await asio::async_initiate<const asio::use_awaitable_t<Executor>,
                                          void(HttpResponse)>(
      [this, &request](auto resume) {
        auto slot = std::make_shared<ResponseSlot<decltype(resume)>>(std::move(resume));
        const Respond respond = [slot](HttpResponse response) {
          slot->Deliver(std::move(response));
        };
        try {
          handler_(request, respond, offload_);
        } catch (...) {
          respond(JsonErrorResponse(500, "internal error"));  // ignored if it already responded
        }
      },
      kAwait);
}

ListenerStats ListenerImpl::stats() const {
  ListenerStats stats;
  {
    std::lock_guard lock(mu_);
    stats.connections_accepted = connections_accepted_;
    stats.connections_open = connections_.size();
    stats.connections_refused = connections_refused_;
  }
  stats.requests = requests_.load(std::memory_order_relaxed);
  stats.rate_limited = rate_limited_.load(std::memory_order_relaxed);
  return stats;
}

void ListenerImpl::Stop(std::chrono::milliseconds grace) {
  std::lock_guard stop_lock(stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  const auto deadline = std::chrono::steady_clock::now() + grace;
  std::unique_lock lock(mu_);
  stopping_ = true;  // under mu_: Launch() either sees it or its connection is in the sweep below
  asio::post(*io_.front(), [this] {
    error_code ignored;
    acceptor_.close(ignored);
  });
  const auto drained = [this] { return connections_.empty() && !accepting_; };
  for (const auto& [raw, connection] : connections_) {
    asio::post(connection->executor(), [connection] { connection->CloseIfIdle(); });
  }
  if (!drained_.wait_until(lock, deadline, drained)) {
    // Grace is over: cut every connection. A handler still running cannot be interrupted; its
    // connection ends (and Stop returns) when it does.
    for (const auto& [raw, connection] : connections_) {
      asio::post(connection->executor(), [connection] { connection->Close(); });
    }
    drained_.wait(lock, drained);
  }
  lock.unlock();
  for (const auto& io : io_) io->stop();
  for (std::thread& thread : io_threads_) thread.join();
  workers_.join();
}

}  // namespace

StatusOr<std::unique_ptr<Listener>> Listener::Start(ListenerOptions options, Handler handler) {
  if (!handler) return InvalidArgumentError("listener needs a handler");
  return Start(std::move(options),
               [handler = std::move(handler)](HttpRequest& request, const Respond& respond,
                                              const Offload& offload) {
                 offload([&handler, &request, respond] {
                   try {
                     respond(handler(request));
                   } catch (...) {
                     respond(JsonErrorResponse(500, "internal error"));
                   }
                 });
               });
}

StatusOr<std::unique_ptr<Listener>> Listener::Start(ListenerOptions options, AsyncHandler handler) {
  LOCKBOX_RETURN_IF_ERROR(ValidateOptions(options, handler));
  std::unique_ptr<ssl::context> tls;
  if (options.tls) {
    LOCKBOX_ASSIGN_OR_RETURN(tls, MakeTlsContext(options));
  }
  auto listener =
      std::make_unique<ListenerImpl>(std::move(options), std::move(handler), std::move(tls));
  LOCKBOX_RETURN_IF_ERROR(listener->Listen());
  listener->StartThreads();
  return std::unique_ptr<Listener>(std::move(listener));
}

}  // namespace lockbox::http
