// HttpSink against a cpp-httplib server on 127.0.0.1: 2xx accepted, errors retried without loss
// or reordering, a server that never answers times out while Notify() stays immediate.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mutex>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "server/siem/forwarder.h"
#include "server/siem/http_sink.h"
#include "tests/unit/siem/siem_test_util.h"

namespace lockbox::siem {
namespace {

using std::chrono::milliseconds;
using testing::AuditStore;

constexpr milliseconds kWait{20'000};

// A HEC-like collector: records every request body; answers with the statuses queued in
// `statuses` (then 200).
class TestCollector {
 public:
  TestCollector() {
    server_.Post(
        "/services/collector/event", [this](const httplib::Request& req, httplib::Response& res) {
          std::lock_guard lock(mu_);
          int status = 200;
          if (!statuses_.empty()) {
            status = statuses_.front();
            statuses_.erase(statuses_.begin());
          }
          requests_.push_back({req.body, req.get_header_value("Authorization"),
                               req.get_header_value("Content-Type"), status});
          res.status = status;
          res.set_content(status == 200 ? R"({"text":"Success","code":0})" : R"({"text":"err"})",
                          "application/json");
        });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~TestCollector() {
    server_.stop();
    thread_.join();
  }
  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/services/collector/event";
  }
  void QueueStatuses(std::vector<int> s) {
    std::lock_guard lock(mu_);
    statuses_ = std::move(s);
  }
  struct Request {
    std::string body, authorization, content_type;
    int status;
  };
  std::vector<Request> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  // The "event" members of every line of every 2xx request, as stream lines.
  std::vector<std::string> AcceptedEvents() {
    std::vector<std::string> out;
    for (const Request& r : requests()) {
      if (r.status / 100 != 2) continue;
      std::size_t start = 0;
      for (;;) {
        const auto nl = r.body.find('\n', start);
        const std::string line = r.body.substr(start, nl - start);
        // The event member is the last one, verbatim: slice it out to keep its bytes.
        const std::string key = "\"event\":";
        const auto at = line.find(key);
        out.push_back(line.substr(at + key.size(), line.size() - at - key.size() - 1));
        if (nl == std::string::npos) break;
        start = nl + 1;
      }
    }
    return out;
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mu_;
  std::vector<int> statuses_;
  std::vector<Request> requests_;
};

DeliveryOptions Fast(std::size_t batch) {
  DeliveryOptions o;
  o.batch_size = batch;
  o.backoff_initial = milliseconds(1);
  o.backoff_max = milliseconds(20);
  o.poll_interval = milliseconds(5'000);
  return o;
}

StatusOr<std::unique_ptr<HttpSink>> MakeHttp(const std::string& url, milliseconds timeout,
                                             std::optional<std::string> token = {}) {
  HttpOptions o;
  o.name = "hec";
  o.url = url;
  o.timeout = timeout;
  o.token = std::move(token);
  o.hostname = "lockbox-test";
  return HttpSink::Create(o);
}

TEST(HttpSink, TwoHundredIsAcceptedWithTokenAndHecBody) {
  TestCollector collector;
  auto sink = MakeHttp(collector.url(), milliseconds(5'000), "hec-token-1");
  ASSERT_TRUE(sink.ok()) << sink.status().ToString();
  const std::vector<StreamRecord> batch = {
      {1, 1, RecordKind::kEvent, testing::EventBody(1), "L"},
      {2, 1, RecordKind::kCheckpoint, testing::CheckpointBody(1), "L"}};
  ASSERT_TRUE((*sink)->Deliver(batch).ok());
  const auto reqs = collector.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].authorization, "Splunk hec-token-1");
  EXPECT_EQ(reqs[0].content_type, "application/json");
  EXPECT_EQ(reqs[0].body, FormatHecBody(batch, "lockbox-test", {}));
  EXPECT_EQ(collector.AcceptedEvents(),
            (std::vector<std::string>{StreamLine(batch[0]), StreamLine(batch[1])}));
}

TEST(HttpSink, Non2xxAndConnectionErrorsFailWithoutTheToken) {
  TestCollector collector;
  collector.QueueStatuses({500, 403, 302});
  auto sink = MakeHttp(collector.url(), milliseconds(5'000), "super-secret-token");
  ASSERT_TRUE(sink.ok());
  const std::vector<StreamRecord> batch = {{1, 1, RecordKind::kEvent, "{}", "L"}};
  for (const char* expected : {"HTTP 500", "HTTP 403", "HTTP 302"}) {
    Status s = (*sink)->Deliver(batch);
    EXPECT_EQ(s.code(), StatusCode::kUnavailable);
    EXPECT_NE(s.message().find(expected), std::string::npos) << s.message();
    EXPECT_EQ(s.message().find("super-secret-token"), std::string::npos);
  }
  EXPECT_TRUE((*sink)->Deliver(batch).ok());

  // Nothing listens on this port any more.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  auto dead = MakeHttp("http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/x",
                       milliseconds(2'000), "super-secret-token");
  ASSERT_TRUE(dead.ok());
  Status s = (*dead)->Deliver(batch);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(s.message().find("super-secret-token"), std::string::npos);
}

TEST(HttpSink, ServerErrorThenSuccessIsRetriedNothingLostOrderKept) {
  AuditStore audit;
  audit.Append(10, true);
  TestCollector collector;
  collector.QueueStatuses({500, 503, 500});
  auto sink = MakeHttp(collector.url(), milliseconds(5'000));
  ASSERT_TRUE(sink.ok());
  Forwarder forwarder(audit.store());
  ASSERT_TRUE(forwarder.AddSink(std::move(sink).value(), Fast(4)).ok());
  ASSERT_TRUE(forwarder.Start().ok());
  std::int64_t last = 0;
  for (int i = 0; i < 10; ++i) {
    last = audit.Append(3, i % 3 == 0);
    forwarder.Notify();
  }
  ASSERT_TRUE(forwarder.WaitDelivered("hec", last, kWait));
  forwarder.Stop();
  std::size_t dups = 0;
  EXPECT_EQ(testing::CheckAtLeastOnceInOrder(collector.AcceptedEvents(), audit.Records(), &dups),
            "");
  EXPECT_EQ(dups, 0u);
  const auto reqs = collector.requests();
  ASSERT_GE(reqs.size(), 4u);
  // The rejected batch was re-sent unchanged.
  EXPECT_EQ(reqs[0].body, reqs[1].body);
  EXPECT_EQ(reqs[0].body, reqs[3].body);
  const auto m = forwarder.Metrics().at(0);
  EXPECT_EQ(m.failures, 3u);
  EXPECT_EQ(m.lag_records, 0);
}

// A listening socket that is never accepted: connect succeeds (kernel backlog), no answer ever.
class BlackHole {
 public:
  BlackHole() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    listen(fd_, 64);
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~BlackHole() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST(HttpSink, ServerThatNeverAnswersTimesOutAndNotifyStaysImmediate) {
  AuditStore audit;
  BlackHole hole;
  auto sink =
      MakeHttp("http://127.0.0.1:" + std::to_string(hole.port()) + "/services/collector/event",
               milliseconds(200));
  ASSERT_TRUE(sink.ok());
  const auto t0 = std::chrono::steady_clock::now();
  Status direct = (*sink)->Deliver({{1, 1, RecordKind::kEvent, "{}", "L"}});
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(direct.code(), StatusCode::kUnavailable);
  EXPECT_LT(took, std::chrono::seconds(3));  // bounded by the 200 ms timeout

  Forwarder forwarder(audit.store());
  ASSERT_TRUE(forwarder.AddSink(std::move(sink).value(), Fast(8)).ok());
  ASSERT_TRUE(forwarder.Start().ok());
  auto slowest = std::chrono::steady_clock::duration::zero();
  for (int i = 0; i < 30; ++i) {
    audit.Append(1);
    const auto n0 = std::chrono::steady_clock::now();
    forwarder.Notify();
    slowest = std::max(slowest, std::chrono::steady_clock::now() - n0);
  }
  EXPECT_LT(slowest, std::chrono::seconds(1));
  // Keeps retrying: wait (bounded) for a few timed-out attempts.
  EXPECT_FALSE(forwarder.WaitDelivered("hec", 1, milliseconds(1'000)));
  const auto m = forwarder.Metrics().at(0);
  EXPECT_GE(m.failures, 2u);
  EXPECT_EQ(m.cursor, 0);
  EXPECT_EQ(m.delivered, 0u);
  EXPECT_NE(m.last_error.find("POST http://127.0.0.1:"), std::string::npos) << m.last_error;
  const auto s0 = std::chrono::steady_clock::now();
  forwarder.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - s0, std::chrono::seconds(3));
  EXPECT_EQ(testing::StoredCursor(audit.store(), "hec"), 0);
}

}  // namespace
}  // namespace lockbox::siem
