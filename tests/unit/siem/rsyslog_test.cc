// Integration: Forwarder + SyslogSink against a real rsyslogd (imtcp, omfile) that the test
// starts on a loopback port. Events arrive in order; rsyslogd is stopped while events keep being
// appended and restarted on the same port: every event arrives, none lost, order kept, repeats
// only of already-delivered records (same seq, same bytes).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "server/siem/forwarder.h"
#include "server/siem/syslog_sink.h"
#include "tests/unit/siem/siem_test_util.h"

extern char** environ;

namespace lockbox::siem {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using testing::AuditStore;

constexpr char kRsyslogd[] = "/usr/sbin/rsyslogd";

int FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

bool PortAccepts(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

// Paces a bounded polling loop that waits on an external process (not a synchronisation sleep).
void PollPause() { poll(nullptr, 0, 10); }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// rsyslogd as a child process with its own configuration in `dir` (never the system daemon).
class Rsyslogd {
 public:
  Rsyslogd(std::filesystem::path dir, int port, std::string extra_global = "",
           std::string imtcp_params = "")
      : dir_(std::move(dir)), port_(port) {
    std::filesystem::create_directories(dir_ / "work");
    std::ofstream conf(conf_path());
    conf << "global(workDirectory=\"" << (dir_ / "work").string() << "\" maxMessageSize=\"64k\""
         << extra_global << ")\n"
         << "module(load=\"imtcp\"" << imtcp_params << ")\n"
         << "template(name=\"lockboxLine\" type=\"string\" "
            "string=\"%structured-data% %msg%\\n\")\n"
         << "ruleset(name=\"lockbox\") {\n"
         << "  action(type=\"omfile\" file=\"" << out_path() << "\" template=\"lockboxLine\")\n"
         << "}\n"
         << "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"" << port_
         << "\" ruleset=\"lockbox\")\n";
  }
  ~Rsyslogd() { Stop(); }

  std::string conf_path() const { return (dir_ / "rsyslog.conf").string(); }
  std::string out_path() const { return (dir_ / "out.log").string(); }
  std::string log_path() const { return (dir_ / "rsyslogd.log").string(); }

  // Starts rsyslogd -n and waits (bounded) until its port accepts connections.
  ::testing::AssertionResult Start() {
    const std::string pid_file = (dir_ / "rsyslogd.pid").string();
    std::vector<std::string> args = {kRsyslogd, "-n", "-f", conf_path(), "-i", pid_file};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log_path().c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                     0600);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    const int rc = posix_spawn(&pid_, kRsyslogd, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) return ::testing::AssertionFailure() << "posix_spawn: " << rc;
    const auto deadline = Clock::now() + std::chrono::seconds(15);
    while (Clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return ::testing::AssertionFailure()
               << "rsyslogd exited (status " << status << "): " << ReadFile(log_path());
      }
      if (PortAccepts(port_)) return ::testing::AssertionSuccess();
      PollPause();
    }
    return ::testing::AssertionFailure()
           << "rsyslogd did not listen on " << port_ << ": " << ReadFile(log_path());
  }

  // SIGTERM and wait for the exit.
  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }

 private:
  std::filesystem::path dir_;
  int port_;
  pid_t pid_ = -1;
};

struct Received {
  std::vector<std::string> msgs;  // MSG of each line, in file order
  std::string problem;            // "" if every line's structured data matches its MSG
};

// Lines are "[lockbox@32473 seq="N" log_id="..." kind="..."] MSG".
Received ParseOutput(const std::string& path) {
  Received r;
  for (const std::string& line : testing::ReadLines(path)) {
    const auto end = line.find("\"] ");
    if (line.rfind("[lockbox@32473 seq=\"", 0) != 0 || end == std::string::npos) {
      r.problem = "unexpected line: " + line;
      continue;
    }
    std::string msg = line.substr(end + 3);
    const std::string sd = line.substr(0, end + 2);
    auto j = nlohmann::json::parse(msg, nullptr, false);
    if (j.is_discarded()) {
      r.problem = "MSG is not JSON: " + line;
    } else if (j.contains("checkpoint")) {
      if (sd.find("kind=\"checkpoint\"") == std::string::npos) r.problem = "kind: " + line;
    } else {
      const std::string want = "[lockbox@32473 seq=\"" + std::to_string(j.value("seq", -1)) +
                               "\" log_id=\"" + std::string(testing::kLogId) + "\" kind=\"event\"]";
      if (sd != want) r.problem = "structured data does not match MSG: " + line;
    }
    r.msgs.push_back(std::move(msg));
  }
  return r;
}

// Waits (bounded) until the output file holds every record of `audit`.
std::string WaitForAll(const Rsyslogd& rsyslogd, const AuditStore& audit, std::size_t* dups,
                       std::size_t* lines) {
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  std::string problem;
  for (;;) {
    const Received got = ParseOutput(rsyslogd.out_path());
    problem = got.problem;
    if (problem.empty()) {
      problem = testing::CheckAtLeastOnceInOrder(got.msgs, audit.Records(), dups);
      *lines = got.msgs.size();
    }
    if (problem.empty() || Clock::now() >= deadline) return problem;
    PollPause();
  }
}

std::unique_ptr<SyslogSink> MakeSyslog(int port, std::optional<SyslogTlsOptions> tls = {}) {
  SyslogOptions o;
  o.name = "rsyslog";
  o.host = "127.0.0.1";
  o.port = static_cast<std::uint16_t>(port);
  o.tls = std::move(tls);
  o.timeout = milliseconds(2'000);
  o.confirm_window = milliseconds(50);
  o.hostname = "lockbox-test";
  auto sink = SyslogSink::Create(o);
  EXPECT_TRUE(sink.ok()) << sink.status().ToString();
  return sink.ok() ? std::move(sink).value() : nullptr;
}

DeliveryOptions Options() {
  DeliveryOptions o;
  o.batch_size = 50;
  o.backoff_initial = milliseconds(5);
  o.backoff_max = milliseconds(200);
  o.poll_interval = milliseconds(200);
  return o;
}

// The scenario shared by the plain and TLS variants.
void RunStopRestartScenario(AuditStore& audit, Rsyslogd& rsyslogd, std::unique_ptr<Sink> sink) {
  ASSERT_TRUE(rsyslogd.Start());
  Forwarder forwarder(audit.store());
  ASSERT_TRUE(forwarder.AddSink(std::move(sink), Options()).ok());
  ASSERT_TRUE(forwarder.Start().ok());

  // Phase 1: rsyslogd up.
  std::int64_t last = 0;
  for (int i = 0; i < 10; ++i) {
    last = audit.Append(10, i % 4 == 3);
    forwarder.Notify();
  }
  ASSERT_TRUE(forwarder.WaitDelivered("rsyslog", last, milliseconds(20'000)));
  std::size_t dups = 0, lines = 0;
  ASSERT_EQ(WaitForAll(rsyslogd, audit, &dups, &lines), "");
  EXPECT_EQ(dups, 0u);

  // Phase 2: events keep being appended while rsyslogd stops and restarts.
  std::atomic<bool> stop_appending{false};
  std::atomic<std::int64_t> slowest_us{0};
  std::atomic<int> appended{0};
  std::thread appender([&] {
    int i = 0;
    while (!stop_appending.load()) {
      const auto t0 = Clock::now();
      audit.Append(1 + i % 3, i % 25 == 24);
      forwarder.Notify();
      const auto us =
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count();
      if (us > slowest_us.load()) slowest_us.store(us);
      ++i;
      appended.store(i);
      std::this_thread::sleep_for(milliseconds(2));  // load shaping, not synchronisation
    }
  });
  // Let the stream flow (bounded wait on delivery progress), then stop the collector mid-flow.
  ASSERT_TRUE(forwarder.WaitDelivered("rsyslog", last + 40, milliseconds(20'000)));
  rsyslogd.Stop();
  const auto failures_before = forwarder.Metrics().at(0).failures;
  const int appended_at_stop = appended.load();
  // Wait (bounded) until the forwarder has noticed the outage and more events were appended.
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while ((forwarder.Metrics().at(0).failures == failures_before ||
          appended.load() < appended_at_stop + 50) &&
         Clock::now() < deadline) {
    PollPause();
  }
  const auto outage = forwarder.Metrics().at(0);
  EXPECT_GT(outage.failures, failures_before);
  EXPECT_GT(outage.lag_records, 0);
  EXPECT_FALSE(outage.last_error.empty());
  ASSERT_TRUE(rsyslogd.Start());  // same port
  const int appended_at_restart = appended.load();
  while (appended.load() < appended_at_restart + 30 && Clock::now() < deadline) PollPause();
  stop_appending.store(true);
  appender.join();
  last = audit.Append(5, true);
  forwarder.Notify();

  ASSERT_TRUE(forwarder.WaitDelivered("rsyslog", last, milliseconds(30'000)))
      << forwarder.Metrics().at(0).last_error;
  const std::string problem = WaitForAll(rsyslogd, audit, &dups, &lines);
  EXPECT_EQ(problem, "");
  EXPECT_LT(slowest_us.load(), 1'000'000) << "an append + Notify took over 1 s";
  const auto m = forwarder.Metrics().at(0);
  EXPECT_EQ(m.lag_records, 0);
  EXPECT_EQ(testing::StoredCursor(audit.store(), "rsyslog"), last);
  ::testing::Test::RecordProperty("records", static_cast<int>(audit.Records().size()));
  ::testing::Test::RecordProperty("duplicates", static_cast<int>(dups));
  std::printf("rsyslog: %zu records, %zu lines received, %zu duplicates, %llu failed attempts\n",
              audit.Records().size(), lines, dups, static_cast<unsigned long long>(m.failures));
  forwarder.Stop();
}

TEST(Rsyslog, EventsArriveInOrderAcrossACollectorRestart) {
  if (access(kRsyslogd, X_OK) != 0) {
    GTEST_SKIP() << "rsyslogd not installed (" << kRsyslogd << "): apt-get install rsyslog";
  }
  AuditStore audit;
  const int port = FreeLoopbackPort();
  Rsyslogd rsyslogd(audit.dir().path() / "rsyslog", port);
  RunStopRestartScenario(audit, rsyslogd, MakeSyslog(port));
}

// Makes a self-signed certificate (its own CA) for localhost / 127.0.0.1 with the openssl CLI.
::testing::AssertionResult MakeCertificate(const std::filesystem::path& dir) {
  const std::string cmd =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
      "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout '" +
      (dir / "key.pem").string() + "' -out '" + (dir / "cert.pem").string() + "' >'" +
      (dir / "openssl.log").string() + "' 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    return ::testing::AssertionFailure()
           << "openssl req failed: " << ReadFile((dir / "openssl.log").string());
  }
  return ::testing::AssertionSuccess();
}

constexpr char kGtlsDriver[] = "/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so";

// RFC 5425: the same scenario over TLS (rsyslog's gtls driver; the sink verifies the
// certificate against the CA file and the host name).
TEST(Rsyslog, TlsEventsArriveInOrderAcrossACollectorRestart) {
  if (access(kRsyslogd, X_OK) != 0 || access(kGtlsDriver, R_OK) != 0) {
    GTEST_SKIP() << "rsyslogd or its gtls driver not installed: apt-get install rsyslog "
                    "rsyslog-gnutls";
  }
  AuditStore audit;
  const auto tls_dir = audit.dir().path() / "tls";
  std::filesystem::create_directories(tls_dir);
  ASSERT_TRUE(MakeCertificate(tls_dir));
  const std::string cert = (tls_dir / "cert.pem").string();
  const int port = FreeLoopbackPort();
  Rsyslogd rsyslogd(audit.dir().path() / "rsyslog", port,
                    " defaultNetstreamDriver=\"gtls\" defaultNetstreamDriverCAFile=\"" + cert +
                        "\" defaultNetstreamDriverCertFile=\"" + cert +
                        "\" defaultNetstreamDriverKeyFile=\"" + (tls_dir / "key.pem").string() +
                        "\"",
                    " streamDriver.name=\"gtls\" streamDriver.mode=\"1\" "
                    "streamDriver.authMode=\"anon\"");

  // A wrong expected name is refused (and nothing is sent).
  {
    ASSERT_TRUE(rsyslogd.Start());
    auto wrong = MakeSyslog(port, SyslogTlsOptions{cert, "siem.example.org"});
    ASSERT_NE(wrong, nullptr);
    Status s = wrong->Deliver({{1, 1, RecordKind::kEvent, "{}", "L"}});
    EXPECT_EQ(s.code(), StatusCode::kUnavailable);
    EXPECT_NE(s.message().find("certificate verification failed"), std::string::npos)
        << s.message();
    rsyslogd.Stop();
  }
  RunStopRestartScenario(audit, rsyslogd, MakeSyslog(port, SyslogTlsOptions{cert, "localhost"}));
}

}  // namespace
}  // namespace lockbox::siem
