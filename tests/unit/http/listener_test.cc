// The listener driven by real clients: the curl binary for TLS and Vault's LIST verb, raw sockets
// for keep-alive, pipelining and protocol abuse.
#include "server/http/listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "tests/support/temp_dir.h"

namespace lockbox::http {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr auto kClientTimeout = seconds(10);

struct CommandResult {
  int exit_code = -1;
  std::string output;
};

CommandResult RunCommand(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char chunk[4096];
  std::size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, pipe)) > 0) result.output.append(chunk, n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// A self-signed P-256 certificate for 127.0.0.1, made once by the openssl CLI.
class TestCertificate {
 public:
  static const TestCertificate& Get() {
    static const TestCertificate* certificate = new TestCertificate();
    return *certificate;
  }
  std::string cert_file() const { return dir_.file("cert.pem"); }
  std::string key_file() const { return dir_.file("key.pem"); }
  const testing::TempDir& dir() const { return dir_; }

 private:
  TestCertificate() {
    const CommandResult made = RunCommand(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
        "-subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 -keyout " +
        key_file() + " -out " + cert_file() + " 2>&1");
    EXPECT_EQ(made.exit_code, 0) << made.output;
  }
  testing::TempDir dir_;
};

struct RawResponse {
  std::string status_line;
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-case
  std::string body;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A plain TCP client that writes exactly what the test says and parses Content-Length-framed
// responses.
class RawClient {
 public:
  explicit RawClient(std::uint16_t port) : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ =
        fd_ >= 0 && connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  }
  ~RawClient() {
    if (fd_ >= 0) close(fd_);
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }

  bool Send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // One response; nullopt if the connection closed or stalled first. `head`: no body follows.
  std::optional<RawResponse> ReadResponse(bool head = false) {
    const auto deadline = Clock::now() + kClientTimeout;
    std::size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (ReadMore(deadline) != Read::kData) return std::nullopt;
    }
    RawResponse response;
    std::string_view header_block(buffer_.data(), end);
    std::size_t line_end = header_block.find("\r\n");
    const std::string_view status_line = header_block.substr(0, line_end);
    if (status_line.size() < 12) return std::nullopt;
    response.status_line = std::string(status_line);
    response.status = std::stoi(std::string(status_line.substr(9, 3)));
    while (line_end != std::string_view::npos) {
      const std::size_t start = line_end + 2;
      line_end = header_block.find("\r\n", start);
      const std::string_view line = header_block.substr(start, line_end - start);
      const std::size_t colon = line.find(':');
      std::string value(line.substr(colon + 1));
      value.erase(0, value.find_first_not_of(' '));
      response.headers[Lower(std::string(line.substr(0, colon)))] = value;
    }
    buffer_.erase(0, end + 4);
    std::size_t length = 0;
    if (!head && response.status != 204 && response.status != 304 && response.status >= 200) {
      length = std::stoul(
          response.header("content-length").empty() ? "0" : response.header("content-length"));
    }
    while (buffer_.size() < length) {
      if (ReadMore(deadline) != Read::kData) return std::nullopt;
    }
    response.body = buffer_.substr(0, length);
    buffer_.erase(0, length);
    return response;
  }

  // True if the server closes the connection within `timeout`; what it sent meanwhile (after
  // anything already parsed) goes to `received`.
  bool WaitClosed(Clock::duration timeout, std::string* received = nullptr) {
    const auto deadline = Clock::now() + timeout;
    Read read;
    while ((read = ReadMore(deadline)) == Read::kData) {
    }
    if (received != nullptr) *received = buffer_;
    return read == Read::kClosed;
  }

  // Sends `data` one byte per `interval` until the server closes the connection (true) or
  // `give_up` passes (false).
  bool TrickleUntilClosed(std::string_view data, milliseconds interval, Clock::duration give_up) {
    const auto deadline = Clock::now() + give_up;
    for (std::size_t i = 0; Clock::now() < deadline; ++i) {
      if (!Send(data.substr(i % data.size(), 1))) return true;
      const auto next = std::min(Clock::now() + interval, deadline);
      const Read read = ReadMore(next);
      if (read == Read::kClosed) return true;
      if (read == Read::kData) return false;  // the server answered a request it did not have
    }
    return false;
  }

 private:
  enum class Read { kData, kClosed, kTimeout };

  Read ReadMore(Clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    pollfd p{fd_, POLLIN, 0};
    if (left <= 0 || poll(&p, 1, static_cast<int>(left)) <= 0) return Read::kTimeout;
    char chunk[16384];
    const ssize_t n = recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) return Read::kClosed;  // EOF or reset
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return Read::kData;
  }

  int fd_;
  bool connected_ = false;
  std::string buffer_;
};

std::string Get(const std::string& target, const std::string& extra_headers = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: test\r\n" + extra_headers + "\r\n";
}

// Echoes the request: "METHOD target|body", with request details in response headers.
HttpResponse Echo(HttpRequest& request) {
  HttpResponse response;
  response.headers = {{"Content-Type", "text/plain"},
                      {"X-Remote", request.remote_addr},
                      {"X-Tls", request.tls ? "1" : "0"}};
  if (const std::string* probe = request.Header("x-probe")) {
    response.headers.emplace_back("X-Probe-Seen", *probe);
  }
  response.body = request.method + " " + request.target + "|" + request.body;
  return response;
}

ListenerOptions PlainOptions() {
  ListenerOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.tls = false;
  options.io_threads = 2;
  options.worker_threads = 4;
  return options;
}

ListenerOptions TlsOptions() {
  ListenerOptions options = PlainOptions();
  options.tls = true;
  options.tls_cert_file = TestCertificate::Get().cert_file();
  options.tls_key_file = TestCertificate::Get().key_file();
  return options;
}

std::unique_ptr<Listener> StartOrDie(ListenerOptions options, Handler handler = Echo) {
  auto listener = Listener::Start(std::move(options), std::move(handler));
  EXPECT_TRUE(listener.ok()) << listener.status().ToString();
  return listener.ok() ? std::move(listener).value() : nullptr;
}

std::string Url(const Listener& listener, const std::string& path) {
  return "https://127.0.0.1:" + std::to_string(listener.port()) + path;
}

// curl against the listener; the output ends with a line holding the HTTP status.
CommandResult Curl(const std::string& args) {
  return RunCommand("curl -sS -k --max-time 10 -w '\\n%{http_code}' " + args + " 2>&1");
}

// A gate the test opens; handlers wait at it.
class Gate {
 public:
  void Arrive() {
    std::unique_lock lock(mu_);
    ++arrived_;
    max_inside_ = std::max(max_inside_, ++inside_);
    changed_.notify_all();
    changed_.wait(lock, [this] { return open_; });
    --inside_;
  }
  void WaitArrived(int n) {
    std::unique_lock lock(mu_);
    changed_.wait(lock, [&] { return arrived_ >= n; });
  }
  void Open() {
    std::lock_guard lock(mu_);
    open_ = true;
    changed_.notify_all();
  }
  int max_inside() {
    std::lock_guard lock(mu_);
    return max_inside_;
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  bool open_ = false;
  int arrived_ = 0;
  int inside_ = 0;
  int max_inside_ = 0;
};

// Waits (bounded) for a condition on the listener's observable state.
template <class Predicate>
bool Eventually(Predicate predicate) {
  const auto deadline = Clock::now() + kClientTimeout;
  while (!predicate()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// TLS, with curl.

TEST(ListenerTlsTest, CurlListVerbOverTls) {
  auto listener = StartOrDie(TlsOptions());
  ASSERT_TRUE(listener);
  const CommandResult result = Curl("-X LIST -D - " + Url(*listener, "/v1/secret/metadata/"));
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("LIST /v1/secret/metadata/|"));
  EXPECT_THAT(Lower(result.output), HasSubstr("cache-control: no-store"));
  EXPECT_THAT(result.output, HasSubstr("X-Tls: 1"));
  EXPECT_THAT(result.output, HasSubstr("X-Remote: 127.0.0.1"));
  EXPECT_THAT(result.output, ::testing::EndsWith("\n200"));
}

TEST(ListenerTlsTest, CurlPostsBodyOverTls) {
  auto listener = StartOrDie(TlsOptions());
  ASSERT_TRUE(listener);
  const CommandResult result =
      Curl("-X PUT --data-binary 'hello body' " + Url(*listener, "/v1/transit/keys/k"));
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("PUT /v1/transit/keys/k|hello body"));
}

TEST(ListenerTlsTest, ProtocolVersions) {
  auto listener = StartOrDie(TlsOptions());
  ASSERT_TRUE(listener);
  const std::string url = Url(*listener, "/v1/sys/health");
  // SECLEVEL=0 lets the client itself speak TLS 1.1: the refusal must be the server's.
  const CommandResult tls11 =
      Curl("--tlsv1.1 --tls-max 1.1 --ciphers 'DEFAULT:@SECLEVEL=0' " + url);
  EXPECT_NE(tls11.exit_code, 0) << tls11.output;

  const CommandResult tls12 = Curl("-v --tls-max 1.2 " + url);
  EXPECT_EQ(tls12.exit_code, 0) << tls12.output;
  EXPECT_THAT(tls12.output, HasSubstr("SSL connection using TLSv1.2 / ECDHE-ECDSA-"));
  EXPECT_THAT(tls12.output, ::testing::EndsWith("\n200"));

  const CommandResult tls13 = Curl("-v --tlsv1.3 " + url);
  EXPECT_EQ(tls13.exit_code, 0) << tls13.output;
  EXPECT_THAT(tls13.output, HasSubstr("SSL connection using TLSv1.3"));
}

TEST(ListenerTlsTest, Tls13Only) {
  ListenerOptions options = TlsOptions();
  options.tls_min_version = TlsMinVersion::kTls13;
  auto listener = StartOrDie(options);
  ASSERT_TRUE(listener);
  const std::string url = Url(*listener, "/");
  EXPECT_NE(Curl("--tls-max 1.2 " + url).exit_code, 0);
  EXPECT_EQ(Curl("--tlsv1.3 " + url).exit_code, 0);
}

TEST(ListenerTlsTest, OnlyEcdheAeadCiphersInTls12) {
  auto listener = StartOrDie(TlsOptions());
  ASSERT_TRUE(listener);
  const std::string url = Url(*listener, "/");
  for (const char* weak : {"ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384",
                           "AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-SHA256"}) {
    EXPECT_NE(Curl("--tls-max 1.2 --ciphers " + std::string(weak) + " " + url).exit_code, 0)
        << weak;
  }
  for (const char* strong : {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                             "ECDHE-ECDSA-CHACHA20-POLY1305"}) {
    const CommandResult result =
        Curl("-v --tls-max 1.2 --ciphers " + std::string(strong) + " " + url);
    EXPECT_EQ(result.exit_code, 0) << strong << result.output;
    EXPECT_THAT(result.output, HasSubstr(strong));
  }
}

TEST(ListenerTlsTest, CurlReusesTheConnection) {
  auto listener = StartOrDie(TlsOptions());
  ASSERT_TRUE(listener);
  const CommandResult result =
      RunCommand("curl -sS -k --max-time 10 -o /dev/null -o /dev/null -w '%{num_connects} ' " +
                 Url(*listener, "/a") + " " + Url(*listener, "/b") + " 2>&1");
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(result.output, "1 0 ");  // the second request rode the first connection
  EXPECT_EQ(listener->stats().connections_accepted, 1u);
  EXPECT_EQ(listener->stats().requests, 2u);
}

TEST(ListenerTlsTest, PlainHttpOnTlsPortGetsNoResponse) {
  auto listener = StartOrDie(TlsOptions());
  ASSERT_TRUE(listener);
  RawClient client(listener->port());
  ASSERT_TRUE(client.Send(Get("/")));
  std::string received;
  EXPECT_TRUE(client.WaitClosed(kClientTimeout, &received));
  EXPECT_THAT(received, Not(HasSubstr("GET /|")));
}

TEST(ListenerTlsTest, BadCertificateOrKeyFiles) {
  testing::TempDir dir;
  const auto& good = TestCertificate::Get();
  ListenerOptions options = TlsOptions();

  options.tls_cert_file = dir.file("missing.pem");
  auto missing = Listener::Start(options, Echo);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(missing.status().message(), HasSubstr(dir.file("missing.pem")));

  const std::string marker = "SECRET-KEY-MATERIAL-3f9a";
  std::ofstream(dir.file("garbage.pem")) << "-----BEGIN PRIVATE KEY-----\n"
                                         << marker << "\n-----END PRIVATE KEY-----\n";
  options.tls_cert_file = good.cert_file();
  options.tls_key_file = dir.file("garbage.pem");
  auto garbage = Listener::Start(options, Echo);
  ASSERT_FALSE(garbage.ok());
  EXPECT_EQ(garbage.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(garbage.status().message(), HasSubstr(dir.file("garbage.pem")));
  EXPECT_THAT(garbage.status().message(), Not(HasSubstr(marker)));

  const CommandResult other_key =
      RunCommand("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out " +
                 dir.file("other.pem") + " 2>&1");
  ASSERT_EQ(other_key.exit_code, 0) << other_key.output;
  options.tls_key_file = dir.file("other.pem");
  auto mismatch = Listener::Start(options, Echo);
  ASSERT_FALSE(mismatch.ok());
  EXPECT_EQ(mismatch.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(mismatch.status().message(), HasSubstr(dir.file("other.pem")));

  options.tls_cert_file.clear();
  EXPECT_EQ(Listener::Start(options, Echo).status().code(), StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// Start-up errors.

TEST(ListenerStartTest, PortInUseIsUnavailable) {
  auto first = StartOrDie(PlainOptions());
  ASSERT_TRUE(first);
  ListenerOptions options = PlainOptions();
  options.port = first->port();
  auto second = Listener::Start(options, Echo);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
}

TEST(ListenerStartTest, InvalidOptions) {
  ListenerOptions bad_host = PlainOptions();
  bad_host.host = "localhost";  // a literal is required
  EXPECT_EQ(Listener::Start(bad_host, Echo).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Listener::Start(PlainOptions(), Handler()).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Listener::Start(PlainOptions(), AsyncHandler()).status().code(),
            StatusCode::kInvalidArgument);
  ListenerOptions no_workers = PlainOptions();
  no_workers.worker_threads = 0;
  EXPECT_EQ(Listener::Start(no_workers, Echo).status().code(), StatusCode::kInvalidArgument);
  ListenerOptions negative_rate = PlainOptions();
  negative_rate.per_token.per_second = -1;
  EXPECT_EQ(Listener::Start(negative_rate, Echo).status().code(), StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// HTTP semantics over raw sockets.

TEST(ListenerHttpTest, KeepAliveServesTwoRequestsOnOneConnection) {
  auto listener = StartOrDie(PlainOptions());
  ASSERT_TRUE(listener);
  RawClient client(listener->port());
  ASSERT_TRUE(client.Send(Get("/one", "X-Probe: Mixed-Case\r\n")));
  auto first = client.ReadResponse();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(first->header("connection"), "");  // keep-alive is HTTP/1.1's default
  EXPECT_EQ(first->body, "GET /one|");
  EXPECT_EQ(first->header("x-probe-seen"), "Mixed-Case");  // looked up by lower-case name
  EXPECT_EQ(first->header("x-remote"), "127.0.0.1");
  EXPECT_EQ(first->header("x-tls"), "0");
  ASSERT_TRUE(client.Send(Get("/two")));
  auto second = client.ReadResponse();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->body, "GET /two|");
  EXPECT_EQ(listener->stats().connections_accepted, 1u);
  EXPECT_EQ(listener->stats().requests, 2u);
}

TEST(ListenerHttpTest, PipelinedRequestsAreAnsweredInOrder) {
  auto listener = StartOrDie(PlainOptions());
  ASSERT_TRUE(listener);
  RawClient client(listener->port());
  ASSERT_TRUE(client.Send(Get("/first") +
                          "POST /second HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc" +
                          Get("/third")));
  for (const char* expected : {"GET /first|", "POST /second|abc", "GET /third|"}) {
    auto response = client.ReadResponse();
    ASSERT_TRUE(response) << expected;
    EXPECT_EQ(response->body, expected);
  }
}

// A request that arrives in pieces (however the server's reads split it) is parsed from what is
// buffered and completed by further reads, then the next one on the connection too.
TEST(ListenerHttpTest, RequestArrivingInPiecesIsAssembled) {
  auto listener = StartOrDie(PlainOptions());
  ASSERT_TRUE(listener);
  RawClient client(listener->port());
  const std::string request =
      "POST /pieces HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n0123456789" + Get("/next");
  // Cut in the request line, in the headers, and two bytes into the body.
  std::size_t sent = 0;
  for (const std::size_t cut :
       {std::size_t{10}, std::size_t{40}, std::size_t{56}, request.size()}) {
    ASSERT_TRUE(client.Send(std::string_view(request).substr(sent, cut - sent)));
    sent = cut;
  }
  for (const char* expected : {"POST /pieces|0123456789", "GET /next|"}) {
    auto response = client.ReadResponse();
    ASSERT_TRUE(response) << expected;
    EXPECT_EQ(response->body, expected);
  }
}

TEST(ListenerHttpTest, ConnectionCloseIsHonoured) {
  auto listener = StartOrDie(PlainOptions());
  ASSERT_TRUE(listener);
  RawClient client(listener->port());
  ASSERT_TRUE(client.Send(Get("/bye", "Connection: close\r\n")));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "GET /bye|");
  EXPECT_EQ(Lower(response->header("connection")), "close");
  EXPECT_TRUE(client.WaitClosed(kClientTimeout));

  RawClient old(listener->port());  // HTTP/1.0 without keep-alive closes too
  ASSERT_TRUE(old.Send("GET /old HTTP/1.0\r\n\r\n"));
  auto old_response = old.ReadResponse();
  ASSERT_TRUE(old_response);
  EXPECT_EQ(old_response->body, "GET /old|");
  EXPECT_TRUE(old.WaitClosed(kClientTimeout));
}

TEST(ListenerHttpTest, Http10KeepAliveIsAnsweredInKind) {
  auto listener = StartOrDie(PlainOptions());
  ASSERT_TRUE(listener);
  RawClient client(listener->port());
  for (const char* target : {"/one", "/two"}) {
    ASSERT_TRUE(
        client.Send("GET " + std::string(target) + " HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    auto response = client.ReadResponse();
    ASSERT_TRUE(response) << target;
    EXPECT_EQ(response->status_line, "HTTP/1.0 200 OK");
    EXPECT_EQ(Lower(response->header("connection")), "keep-alive");
    EXPECT_EQ(response->header("content-length"), std::to_string(response->body.size()));
    EXPECT_EQ(response->body, "GET " + std::string(target) + "|");
  }
  EXPECT_EQ(listener->stats().connections_accepted, 1u);
}

TEST(ListenerHttpTest, ArbitraryMethodTokens) {
  auto listener = StartOrDie(PlainOptions());
  ASSERT_TRUE(listener);
  RawClient client(listener->port());
  for (const std::string method : {"LIST", "PATCH", "DELETE", "X-CUSTOM"}) {
    ASSERT_TRUE(client.Send(method + " /v1/p HTTP/1.1\r\nHost: t\r\n\r\n"));
    auto response = client.ReadResponse();
    ASSERT_TRUE(response) << method;
    EXPECT_EQ(response->body, method + " /v1/p|");
  }
}

TEST(ListenerHttpTest, HeadResponseHasNoBody) {
  auto listener = StartOrDie(PlainOptions());
  ASSERT_TRUE(listener);
  RawClient client(listener->port());
  ASSERT_TRUE(client.Send("HEAD /v1/sys/health HTTP/1.1\r\nHost: t\r\n\r\n" + Get("/after")));
  auto head = client.ReadResponse(/*head=*/true);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->header("content-length"),
            std::to_string(std::string("HEAD /v1/sys/health|").size()));
  // Had the HEAD response carried a body, it would be parsed as the next status line here.
  auto after = client.ReadResponse();
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 200);
  EXPECT_EQ(after->body, "GET /after|");
}

TEST(ListenerHttpTest, CacheControlAddedUnlessSetAndHandlerHeadersKept) {
  auto listener = StartOrDie(PlainOptions(), [](HttpRequest& request) {
    HttpResponse response;
    response.status = 201;
    response.headers = {
        {"X-A", "1"}, {"Set-Cookie", "a=1"}, {"Set-Cookie", "b=2"}, {"Content-Length", "9999"}};
    if (request.target == "/cacheable") response.headers.emplace_back("Cache-Control", "max-age=5");
    response.body = "created";
    return response;
  });
  ASSERT_TRUE(listener);
  RawClient client(listener->port());
  ASSERT_TRUE(client.Send(Get("/x") + Get("/cacheable")));
  auto plain = client.ReadResponse();
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->status, 201);
  EXPECT_EQ(plain->header("cache-control"), "no-store");
  EXPECT_EQ(plain->header("x-a"), "1");
  EXPECT_EQ(plain->header("content-length"), "7");  // the handler cannot frame the message
  EXPECT_EQ(plain->body, "created");
  auto cacheable = client.ReadResponse();
  ASSERT_TRUE(cacheable);
  EXPECT_EQ(cacheable->header("cache-control"), "max-age=5");
}

TEST(ListenerHttpTest, NoContentHasNoBodyAndNoLength) {
  auto listener = StartOrDie(PlainOptions(), [](HttpRequest&) {
    return HttpResponse{.status = 204, .headers = {}, .body = "ignored"};
  });
  ASSERT_TRUE(listener);
  RawClient client(listener->port());
  ASSERT_TRUE(client.Send(Get("/a") + Get("/b")));
  for (int i = 0; i < 2; ++i) {
    auto response = client.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 204);
    EXPECT_EQ(response->headers.count("content-length"), 0u);
  }
}

TEST(ListenerHttpTest, ExpectContinue) {
  auto listener = StartOrDie(PlainOptions());
  ASSERT_TRUE(listener);
  RawClient client(listener->port());
  ASSERT_TRUE(client.Send(
      "PUT /v1/kv HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
  auto proceed = client.ReadResponse();
  ASSERT_TRUE(proceed);
  EXPECT_EQ(proceed->status, 100);
  ASSERT_TRUE(client.Send("hello"));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "PUT /v1/kv|hello");
}

TEST(ListenerHttpTest, HandlerExceptionIs500WithoutDetails) {
  auto listener = StartOrDie(PlainOptions(), [](HttpRequest&) -> HttpResponse {
    throw std::runtime_error("secret detail");
  });
  ASSERT_TRUE(listener);
  RawClient client(listener->port());
  ASSERT_TRUE(client.Send(Get("/boom") + Get("/again")));
  for (int i = 0; i < 2; ++i) {  // the connection survives
    auto response = client.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 500);
    EXPECT_EQ(response->body, R"({"errors":["internal error"]})");
    EXPECT_EQ(response->header("content-type"), "application/json");
    EXPECT_EQ(response->header("cache-control"), "no-store");
  }
}

// --- The asynchronous handler: answers on the I/O thread, later from another thread, or from
// offloaded work.

std::unique_ptr<Listener> StartAsyncOrDie(ListenerOptions options, AsyncHandler handler) {
  auto listener = Listener::Start(std::move(options), std::move(handler));
  EXPECT_TRUE(listener.ok()) << listener.status().ToString();
  return listener.ok() ? std::move(listener).value() : nullptr;
}

HttpResponse TextResponse(std::string body) {
  return HttpResponse{200, {{"Content-Type", "text/plain"}}, std::move(body)};
}

TEST(ListenerAsyncTest, AnswersFromTheIoThreadFromAnotherThreadAndFromOffloadedWork) {
  std::mutex mu;
  std::vector<std::thread> responders;
  auto listener = StartAsyncOrDie(
      PlainOptions(), [&](HttpRequest& request, Respond respond, const Offload& offload) {
        if (request.target == "/inline") return respond(TextResponse("inline"));
        if (request.target == "/offload") {
          return offload([&request, respond] { respond(TextResponse("worker " + request.body)); });
        }
        // Later, from a thread the listener does not know (like the audit pipeline's).
        std::lock_guard lock(mu);
        responders.emplace_back([respond] { respond(TextResponse("later")); });
      });
  ASSERT_TRUE(listener);
  RawClient client(listener->port());
  ASSERT_TRUE(client.Send(Get("/later") + Get("/inline") +
                          "POST /offload HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi"));
  for (const char* expected : {"later", "inline", "worker hi"}) {  // in request order
    auto response = client.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->body, expected);
  }
  std::lock_guard lock(mu);
  for (std::thread& t : responders) t.join();
}

// Connections are spread over every I/O thread (each thread keeps running while it has none),
// and a connection stays on its thread for all of its requests.
TEST(ListenerAsyncTest, ConnectionsAreSpreadOverEveryIoThreadAndStayOnTheirs) {
  std::mutex mu;
  std::map<std::string, std::set<std::thread::id>> threads_by_client;  // mu
  ListenerOptions options = PlainOptions();
  options.io_threads = 3;
  auto listener =
      StartAsyncOrDie(options, [&](HttpRequest& request, Respond respond, const Offload&) {
        {
          std::lock_guard lock(mu);
          threads_by_client[request.target].insert(std::this_thread::get_id());
        }
        respond(TextResponse("ok"));
      });
  ASSERT_TRUE(listener);
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < 6; ++i) clients.push_back(std::make_unique<RawClient>(listener->port()));
  for (int round = 0; round < 3; ++round) {
    for (std::size_t i = 0; i < clients.size(); ++i) {
      ASSERT_TRUE(clients[i]->Send(Get("/client" + std::to_string(i))));
      auto response = clients[i]->ReadResponse();
      ASSERT_TRUE(response) << "client " << i << " was not served";
      EXPECT_EQ(response->body, "ok");
    }
  }
  std::lock_guard lock(mu);
  std::set<std::thread::id> all;
  for (const auto& [client, threads] : threads_by_client) {
    EXPECT_EQ(threads.size(), 1u) << client << " moved between I/O threads";
    all.insert(threads.begin(), threads.end());
  }
  EXPECT_EQ(threads_by_client.size(), clients.size());
  EXPECT_EQ(all.size(), 3u);
}

TEST(ListenerAsyncTest, OnlyTheFirstAnswerCounts) {
  auto listener =
      StartAsyncOrDie(PlainOptions(), [](HttpRequest&, Respond respond, const Offload&) {
        respond(TextResponse("first"));
        respond(TextResponse("second"));
      });
  ASSERT_TRUE(listener);
  RawClient client(listener->port());
  ASSERT_TRUE(client.Send(Get("/a") + Get("/b")));
  for (int i = 0; i < 2; ++i) {
    auto response = client.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->body, "first");
  }
}

TEST(ListenerAsyncTest, DroppedResponderThrowingHandlerAndThrowingWorkAre500) {
  auto listener = StartAsyncOrDie(
      PlainOptions(), [](HttpRequest& request, const Respond& respond, const Offload& offload) {
        if (request.target == "/drop") return;  // every copy of `respond` dies unanswered
        if (request.target == "/throw") throw std::runtime_error("secret detail");
        offload([] { throw std::runtime_error("secret detail"); });
        (void)respond;
      });
  ASSERT_TRUE(listener);
  RawClient client(listener->port());
  ASSERT_TRUE(client.Send(Get("/drop") + Get("/throw") + Get("/work")));
  for (int i = 0; i < 3; ++i) {  // the connection survives each
    auto response = client.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 500);
    EXPECT_EQ(response->body, R"({"errors":["internal error"]})");
  }
}

TEST(ListenerAsyncTest, StopWaitsForAnAnswerStillOnItsWay) {
  std::promise<Respond> pending;
  auto listener =
      StartAsyncOrDie(PlainOptions(), [&](HttpRequest&, Respond respond, const Offload&) {
        pending.set_value(std::move(respond));
      });
  ASSERT_TRUE(listener);
  RawClient client(listener->port());
  ASSERT_TRUE(client.Send(Get("/slow")));
  Respond respond = pending.get_future().get();
  const std::uint16_t port = listener->port();
  std::thread stopper([&] { listener->Stop(std::chrono::milliseconds(10'000)); });
  // Stopping (new connections are refused); the connection awaiting its answer stays open.
  EXPECT_TRUE(Eventually([&] { return !RawClient(port).connected(); }));
  respond(TextResponse("made it"));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "made it");
  stopper.join();
}

TEST(ListenerHttpTest, HandlerHeaderInjectionIs500) {
  auto listener = StartOrDie(PlainOptions(), [](HttpRequest& request) {
    return HttpResponse{.status = 200,
                        .headers = {{"Location", request.target + "\r\nSet-Cookie: evil=1"}},
                        .body = "x"};
  });
  ASSERT_TRUE(listener);
  RawClient client(listener->port());
  ASSERT_TRUE(client.Send(Get("/redirect")));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 500);
  EXPECT_EQ(response->headers.count("set-cookie"), 0u);
  EXPECT_EQ(response->body, R"({"errors":["internal error"]})");
}

// ---------------------------------------------------------------------------------------------
// Limits and protocol abuse.

void ExpectErrorThenClosed(RawClient& client, int status, const std::string& message) {
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, status);
  EXPECT_EQ(response->header("content-type"), "application/json");
  EXPECT_EQ(response->body, R"({"errors":[")" + message + R"("]})");
  EXPECT_EQ(Lower(response->header("connection")), "close");
  EXPECT_TRUE(client.WaitClosed(kClientTimeout));
}

TEST(ListenerLimitsTest, OversizedHeadersAre431) {
  ListenerOptions options = PlainOptions();
  options.max_header_bytes = 1024;
  std::atomic<int> calls{0};
  auto listener = StartOrDie(options, [&](HttpRequest& request) {
    ++calls;
    return Echo(request);
  });
  ASSERT_TRUE(listener);
  {
    RawClient client(listener->port());  // just under the limit passes
    ASSERT_TRUE(client.Send(Get("/", "X-Pad: " + std::string(900, 'a') + "\r\n")));
    auto response = client.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
  }
  RawClient client(listener->port());
  ASSERT_TRUE(client.Send(Get("/", "X-Pad: " + std::string(4000, 'a') + "\r\n")));
  ExpectErrorThenClosed(client, 431, "request header fields too large");
  EXPECT_EQ(calls.load(), 1);

  RawClient no_end(listener->port());  // a header block that never ends
  ASSERT_TRUE(no_end.Send("GET / HTTP/1.1\r\n" + std::string(3000, 'x')));
  ExpectErrorThenClosed(no_end, 431, "request header fields too large");
}

TEST(ListenerLimitsTest, OversizedBodyIs413) {
  ListenerOptions options = PlainOptions();
  options.max_body_bytes = 1000;
  std::atomic<int> calls{0};
  auto listener = StartOrDie(options, [&](HttpRequest& request) {
    ++calls;
    return Echo(request);
  });
  ASSERT_TRUE(listener);
  {
    RawClient client(listener->port());  // exactly the limit passes
    ASSERT_TRUE(client.Send("PUT / HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n" +
                            std::string(1000, 'b')));
    auto response = client.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
  }
  {
    // Declared too large: refused from the header, before any of the body is read.
    RawClient client(listener->port());
    ASSERT_TRUE(client.Send("PUT / HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n"));
    ExpectErrorThenClosed(client, 413, "request body too large");
  }
  {
    // Chunked: refused once the chunks pass the limit.
    RawClient client(listener->port());
    std::string request = "PUT / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 3; ++i) request += "200\r\n" + std::string(512, 'c') + "\r\n";
    ASSERT_TRUE(client.Send(request));
    ExpectErrorThenClosed(client, 413, "request body too large");
  }
  EXPECT_EQ(calls.load(), 1);
}

TEST(ListenerLimitsTest, MalformedRequestsAre400) {
  std::atomic<int> calls{0};
  auto listener = StartOrDie(PlainOptions(), [&](HttpRequest& request) {
    ++calls;
    return Echo(request);
  });
  ASSERT_TRUE(listener);
  for (const std::string& bad : {
           std::string("GARBAGE\r\n\r\n"),
           std::string("GET / HTTP/9.9\r\nHost: t\r\n\r\n"),
           std::string("GET / HTTP/1.1\r\nBad Header: x\r\n\r\n"),
           std::string("GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n"),
           // request smuggling: both framings
           std::string("POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n"
                       "\r\n0\r\n\r\n"),
           std::string("POST / HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde"),
       }) {
    RawClient client(listener->port());
    ASSERT_TRUE(client.Send(bad));
    ExpectErrorThenClosed(client, 400, "malformed HTTP request");
  }
  EXPECT_EQ(calls.load(), 0);
}

TEST(ListenerLimitsTest, SlowRequestIsClosedAfterReadTimeout) {
  ListenerOptions options = PlainOptions();
  options.read_timeout = milliseconds(300);
  std::atomic<int> calls{0};
  auto listener = StartOrDie(options, [&](HttpRequest& request) {
    ++calls;
    return Echo(request);
  });
  ASSERT_TRUE(listener);
  RawClient client(listener->port());
  const auto start = Clock::now();
  // Slowloris: a byte every 50 ms keeps the connection busy but the request never completes in
  // time.
  EXPECT_TRUE(client.TrickleUntilClosed(Get("/slow", "X-Pad: " + std::string(200, 'p') + "\r\n"),
                                        milliseconds(50), kClientTimeout));
  EXPECT_GE(Clock::now() - start, milliseconds(250));
  EXPECT_EQ(calls.load(), 0);

  RawClient silent(listener->port());  // connects and says nothing
  std::string received;
  EXPECT_TRUE(silent.WaitClosed(kClientTimeout, &received));
  EXPECT_EQ(received, "");
}

TEST(ListenerLimitsTest, IdleKeepAliveConnectionIsClosed) {
  ListenerOptions options = PlainOptions();
  options.idle_timeout = milliseconds(300);
  auto listener = StartOrDie(options);
  ASSERT_TRUE(listener);
  RawClient client(listener->port());
  ASSERT_TRUE(client.Send(Get("/")));
  ASSERT_TRUE(client.ReadResponse());
  const auto start = Clock::now();
  EXPECT_TRUE(client.WaitClosed(kClientTimeout));
  EXPECT_GE(Clock::now() - start, milliseconds(250));
}

TEST(ListenerLimitsTest, ConnectionsBeyondTheLimitAreClosed) {
  ListenerOptions options = PlainOptions();
  options.max_connections = 2;
  auto listener = StartOrDie(options);
  ASSERT_TRUE(listener);
  auto first = std::make_unique<RawClient>(listener->port());
  RawClient second(listener->port());
  for (RawClient* client : {first.get(), &second}) {  // served, hence registered
    ASSERT_TRUE(client->Send(Get("/")));
    ASSERT_TRUE(client->ReadResponse());
  }
  RawClient third(listener->port());
  ASSERT_TRUE(third.connected());  // the kernel completes the handshake; the listener drops it
  third.Send(Get("/"));
  std::string received;
  EXPECT_TRUE(third.WaitClosed(kClientTimeout, &received));
  EXPECT_EQ(received, "");
  EXPECT_EQ(listener->stats().connections_refused, 1u);
  EXPECT_EQ(listener->stats().connections_open, 2u);

  first.reset();  // frees a slot once the listener notices
  ASSERT_TRUE(Eventually([&] { return listener->stats().connections_open == 1; }));
  RawClient fourth(listener->port());
  ASSERT_TRUE(fourth.Send(Get("/again")));
  auto response = fourth.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "GET /again|");
  EXPECT_EQ(listener->stats().connections_accepted, 3u);
}

// ---------------------------------------------------------------------------------------------
// Rate limits.

TEST(ListenerRateLimitTest, PerClientBurstThen429) {
  ListenerOptions options = PlainOptions();
  options.per_client = {.per_second = 0.01, .burst = 3};
  std::atomic<int> calls{0};
  auto listener = StartOrDie(options, [&](HttpRequest& request) {
    ++calls;
    return Echo(request);
  });
  ASSERT_TRUE(listener);
  RawClient client(listener->port());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(client.Send(Get("/")));
    auto response = client.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
  }
  ASSERT_TRUE(client.Send(Get("/")));
  auto limited = client.ReadResponse();
  ASSERT_TRUE(limited);
  EXPECT_EQ(limited->status, 429);
  EXPECT_EQ(limited->body, R"({"errors":["rate limit exceeded"]})");
  EXPECT_EQ(limited->header("content-type"), "application/json");
  EXPECT_EQ(limited->header("retry-after"), "100");  // one token at 0.01/s
  EXPECT_EQ(calls.load(), 3);
  EXPECT_EQ(listener->stats().rate_limited, 1u);

  RawClient other_connection(listener->port());  // same address, same bucket
  ASSERT_TRUE(other_connection.Send(Get("/")));
  auto again = other_connection.ReadResponse();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 429);
}

TEST(ListenerRateLimitTest, PerTokenBucketsAreSeparate) {
  ListenerOptions options = PlainOptions();
  options.per_token = {.per_second = 0.5, .burst = 2};
  auto listener = StartOrDie(options);
  ASSERT_TRUE(listener);
  RawClient client(listener->port());
  const auto status_of = [&](const std::string& headers) {
    EXPECT_TRUE(client.Send(Get("/", headers)));
    auto response = client.ReadResponse();
    return response ? response->status : -1;
  };
  EXPECT_EQ(status_of("X-Vault-Token: token-a\r\n"), 200);
  EXPECT_EQ(status_of("Authorization: Bearer token-a\r\n"), 200);  // same token, same bucket
  EXPECT_EQ(status_of("X-Vault-Token: token-a\r\n"), 429);
  EXPECT_EQ(status_of("X-Vault-Token: token-b\r\n"), 200);
  EXPECT_EQ(status_of("X-Vault-Token: token-b\r\n"), 200);
  EXPECT_EQ(status_of("X-Vault-Token: token-b\r\n"), 429);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(status_of(""), 200);  // no token: not token-limited
  EXPECT_EQ(listener->stats().rate_limited, 2u);
}

// ---------------------------------------------------------------------------------------------
// Concurrency and the worker pool.

TEST(ListenerConcurrencyTest, ManyKeepAliveClients) {
  constexpr int kClients = 64;
  constexpr int kRequests = 25;
  ListenerOptions options = PlainOptions();
  options.worker_threads = 8;
  auto listener = StartOrDie(options);
  ASSERT_TRUE(listener);
  std::atomic<int> answered{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      RawClient client(listener->port());
      for (int r = 0; r < kRequests; ++r) {
        const std::string target = "/c" + std::to_string(c) + "/r" + std::to_string(r);
        if (!client.Send(Get(target))) return;
        auto response = client.ReadResponse();
        if (!response || response->body != "GET " + target + "|") return;
        ++answered;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(answered.load(), kClients * kRequests);
  EXPECT_EQ(listener->stats().connections_accepted, static_cast<std::uint64_t>(kClients));
  EXPECT_EQ(listener->stats().requests, static_cast<std::uint64_t>(kClients * kRequests));
}

TEST(ListenerConcurrencyTest, CurlParallel) {
  auto listener = StartOrDie(TlsOptions());
  ASSERT_TRUE(listener);
  std::string urls;
  for (int i = 0; i < 40; ++i) urls += " " + Url(*listener, "/p" + std::to_string(i));
  const CommandResult result =
      RunCommand("curl -sS -k --max-time 20 --parallel --parallel-max 16 -w '%{http_code}\\n' " +
                 urls + " 2>&1");
  EXPECT_EQ(result.exit_code, 0) << result.output;
  for (int i = 0; i < 40; ++i) {
    EXPECT_THAT(result.output, HasSubstr("GET /p" + std::to_string(i) + "|"));
  }
}

TEST(ListenerConcurrencyTest, WorkerPoolIsBoundedAndQueues) {
  constexpr int kRequests = 6;
  ListenerOptions options = PlainOptions();
  options.worker_threads = 2;
  Gate gate;
  auto listener = StartOrDie(options, [&](HttpRequest& request) {
    gate.Arrive();
    return Echo(request);
  });
  ASSERT_TRUE(listener);
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < kRequests; ++i) {
    clients.push_back(std::make_unique<RawClient>(listener->port()));
    ASSERT_TRUE(clients.back()->Send(Get("/q" + std::to_string(i))));
  }
  // Every request has been read and handed over before any handler may finish.
  ASSERT_TRUE(Eventually([&] { return listener->stats().requests == kRequests; }));
  gate.WaitArrived(2);
  gate.Open();
  for (int i = 0; i < kRequests; ++i) {
    auto response = clients[i]->ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->body, "GET /q" + std::to_string(i) + "|");
  }
  EXPECT_EQ(gate.max_inside(), 2);
}

// ---------------------------------------------------------------------------------------------
// Stop.

TEST(ListenerStopTest, InFlightRequestFinishesIdleConnectionsCloseNewOnesRefused) {
  Gate gate;
  auto listener = StartOrDie(PlainOptions(), [&](HttpRequest& request) {
    if (request.target == "/block") gate.Arrive();
    return Echo(request);
  });
  ASSERT_TRUE(listener);
  const std::uint16_t port = listener->port();

  RawClient idle(port);
  ASSERT_TRUE(idle.Send(Get("/warmup")));
  ASSERT_TRUE(idle.ReadResponse());
  RawClient busy(port);
  ASSERT_TRUE(busy.Send(Get("/block")));
  gate.WaitArrived(1);

  std::thread stopper([&] { listener->Stop(seconds(30)); });
  EXPECT_TRUE(idle.WaitClosed(kClientTimeout));  // while the other request is still in flight
  EXPECT_TRUE(Eventually([&] { return !RawClient(port).connected(); }));

  gate.Open();
  auto response = busy.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "GET /block|");
  EXPECT_EQ(Lower(response->header("connection")), "close");
  EXPECT_TRUE(busy.WaitClosed(kClientTimeout));
  stopper.join();
  EXPECT_EQ(listener->stats().connections_open, 0u);
  listener->Stop();  // idempotent
  EXPECT_FALSE(RawClient(port).connected());
}

TEST(ListenerStopTest, GraceExpiryCutsHalfReceivedRequests) {
  auto listener = StartOrDie(PlainOptions());  // read_timeout 30 s: only Stop ends this
  ASSERT_TRUE(listener);
  RawClient partial(listener->port());
  ASSERT_TRUE(partial.Send("GET /partial HTTP/1.1\r\nHost: "));
  ASSERT_TRUE(Eventually([&] { return listener->stats().connections_open == 1; }));
  const auto start = Clock::now();
  listener->Stop(milliseconds(200));
  EXPECT_LT(Clock::now() - start, seconds(5));
  EXPECT_TRUE(partial.WaitClosed(kClientTimeout));
}

TEST(ListenerStopTest, DestructorStops) {
  std::uint16_t port;
  {
    auto listener = StartOrDie(PlainOptions());
    ASSERT_TRUE(listener);
    port = listener->port();
    RawClient client(port);
    ASSERT_TRUE(client.Send(Get("/")));
    ASSERT_TRUE(client.ReadResponse());
  }
  EXPECT_FALSE(RawClient(port).connected());
}

}  // namespace
}  // namespace lockbox::http
