// Forwarder + FileSink against a real SQLite store: order, cursor persistence across restarts,
// at-least-once redelivery, backoff on failures, isolation of a hanging sink, lag metrics.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "server/siem/file_sink.h"
#include "server/siem/forwarder.h"
#include "server/siem/syslog_sink.h"
#include "tests/unit/siem/siem_test_util.h"

namespace lockbox::siem {
namespace {

using std::chrono::milliseconds;
using testing::AuditStore;
using testing::CheckAtLeastOnceInOrder;
using testing::ReadLines;
using testing::StoredCursor;

constexpr milliseconds kWait{20'000};

DeliveryOptions Fast(std::size_t batch = 7) {
  DeliveryOptions o;
  o.batch_size = batch;
  o.backoff_initial = milliseconds(1);
  o.backoff_max = milliseconds(20);
  o.poll_interval = milliseconds(5'000);  // long: tests rely on Notify(), not polling
  return o;
}

// Delegates to a FileSink; the calls listed in `lose_ack_on` write the batch and then report a
// failure (an acknowledgement lost on the way back), those in `fail_on` fail without writing.
class FlakySink : public Sink {
 public:
  FlakySink(std::string name, std::string path, std::set<int> fail_on, std::set<int> lose_ack_on)
      : Sink(std::move(name)),
        inner_("inner", std::move(path)),
        fail_on_(std::move(fail_on)),
        lose_ack_on_(std::move(lose_ack_on)) {}
  Status Deliver(const std::vector<StreamRecord>& batch) override {
    int call;
    {
      std::lock_guard lock(mu_);
      call = ++calls_;
      cv_.notify_all();
    }
    if (fail_on_.count(call)) return UnavailableError("injected failure " + std::to_string(call));
    LOCKBOX_RETURN_IF_ERROR(inner_.Deliver(batch));
    if (lose_ack_on_.count(call)) return UnavailableError("injected lost ack");
    return Status::Ok();
  }
  // Waits until Deliver() has been entered `n` times.
  bool WaitCalls(int n, milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return calls_ >= n; });
  }

 private:
  FileSink inner_;
  std::set<int> fail_on_, lose_ack_on_;
  std::mutex mu_;
  std::condition_variable cv_;
  int calls_ = 0;
};

// Hangs in Deliver() until cancelled, like a SIEM that accepts a connection and never answers.
class HangingSink : public Sink {
 public:
  explicit HangingSink(std::string name) : Sink(std::move(name)) {}
  Status Deliver(const std::vector<StreamRecord>&) override {
    std::unique_lock lock(mu_);
    ++entered_;
    cv_.notify_all();
    cv_.wait(lock, [this] { return cancelled_; });
    return UnavailableError("cancelled");
  }
  void Cancel() override {
    std::lock_guard lock(mu_);
    cancelled_ = true;
    cv_.notify_all();
  }
  bool WaitEntered(milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [this] { return entered_ > 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int entered_ = 0;
  bool cancelled_ = false;
};

TEST(Forwarder, RecordsAppendedWhileRunningArriveInPosOrder) {
  AuditStore audit;
  audit.Append(5, true);  // some history before the start
  const std::string out = audit.dir().file("audit.jsonl");
  Forwarder forwarder(audit.store());
  ASSERT_TRUE(forwarder.AddSink(std::make_unique<FileSink>("file", out), Fast()).ok());
  ASSERT_TRUE(forwarder.Start().ok());

  std::int64_t last = 0;
  std::thread appender([&] {
    for (int i = 0; i < 120; ++i) {
      last = audit.Append(1 + i % 4, i % 10 == 9);
      forwarder.Notify();
    }
  });
  appender.join();
  ASSERT_TRUE(forwarder.WaitDelivered("file", last, kWait));
  forwarder.Stop();

  const auto records = audit.Records();
  ASSERT_EQ(records.back().pos, last);
  std::size_t dups = 0;
  EXPECT_EQ(CheckAtLeastOnceInOrder(ReadLines(out), records, &dups), "");
  EXPECT_EQ(dups, 0u);
  EXPECT_EQ(ReadLines(out).size(), records.size());
  EXPECT_EQ(StoredCursor(audit.store(), "file"), last);
  const auto m = forwarder.Metrics().at(0);
  EXPECT_EQ(m.name, "file");
  EXPECT_EQ(m.cursor, last);
  EXPECT_EQ(m.lag_records, 0);
  EXPECT_EQ(m.lag_seconds, 0);
  EXPECT_EQ(m.delivered, records.size());
  EXPECT_EQ(m.failures, 0u);
  EXPECT_EQ(m.last_error, "");
}

TEST(Forwarder, RestartContinuesFromThePersistedCursor) {
  AuditStore audit;
  const std::string out = audit.dir().file("audit.jsonl");
  const std::int64_t first = audit.Append(40, true);
  {
    Forwarder forwarder(audit.store());
    ASSERT_TRUE(forwarder.AddSink(std::make_unique<FileSink>("file", out), Fast()).ok());
    ASSERT_TRUE(forwarder.Start().ok());
    forwarder.Notify();
    ASSERT_TRUE(forwarder.WaitDelivered("file", first, kWait));
  }  // destroyed: stopped
  EXPECT_EQ(StoredCursor(audit.store(), "file"), first);
  const std::size_t lines_before = ReadLines(out).size();

  // Appended while no forwarder runs: the log is the spool.
  audit.Append(30, true);
  const std::int64_t second = audit.Append(3);
  Forwarder restarted(audit.store());
  ASSERT_TRUE(restarted.AddSink(std::make_unique<FileSink>("file", out), Fast()).ok());
  ASSERT_TRUE(restarted.Start().ok());
  ASSERT_TRUE(restarted.WaitDelivered("file", second, kWait));  // found by the first read
  restarted.Stop();

  const auto lines = ReadLines(out);
  std::size_t dups = 0;
  EXPECT_EQ(CheckAtLeastOnceInOrder(lines, audit.Records(), &dups), "");
  EXPECT_EQ(dups, 0u);  // clean stop: the cursor was saved
  EXPECT_GT(lines.size(), lines_before);
  EXPECT_EQ(StoredCursor(audit.store(), "file"), second);
  EXPECT_EQ(restarted.Metrics().at(0).delivered, audit.Records().size() - lines_before);
}

TEST(Forwarder, LostAcknowledgementRedeliversOnlyThatBatch) {
  AuditStore audit;
  const std::string out = audit.dir().file("audit.jsonl");
  const std::int64_t last = audit.Append(50, true);
  auto sink = std::make_unique<FlakySink>("flaky", out, std::set<int>{},
                                          std::set<int>{2, 5});  // calls 2 and 5 lose the ack
  Forwarder forwarder(audit.store());
  ASSERT_TRUE(forwarder.AddSink(std::move(sink), Fast(10)).ok());
  ASSERT_TRUE(forwarder.Start().ok());
  ASSERT_TRUE(forwarder.WaitDelivered("flaky", last, kWait));
  forwarder.Stop();

  const auto lines = ReadLines(out);
  std::size_t dups = 0;
  EXPECT_EQ(CheckAtLeastOnceInOrder(lines, audit.Records(), &dups), "");
  EXPECT_EQ(dups, 20u);  // two batches of 10 sent twice
  // The repeats come right after the originals (same batch retried).
  EXPECT_EQ(std::vector<std::string>(lines.begin() + 10, lines.begin() + 20),
            std::vector<std::string>(lines.begin() + 20, lines.begin() + 30));
  const auto m = forwarder.Metrics().at(0);
  EXPECT_EQ(m.failures, 2u);
  EXPECT_EQ(m.last_error, "UNAVAILABLE: injected lost ack");
}

TEST(Forwarder, FailuresBackOffAndRetryTheSameBatch) {
  AuditStore audit;
  const std::string out = audit.dir().file("audit.jsonl");
  const std::int64_t last = audit.Append(25);
  Forwarder forwarder(audit.store());
  ASSERT_TRUE(forwarder
                  .AddSink(std::make_unique<FlakySink>(
                               "flaky", out, std::set<int>{1, 2, 3, 4, 5, 7}, std::set<int>{}),
                           Fast(10))
                  .ok());
  ASSERT_TRUE(forwarder.Start().ok());
  ASSERT_TRUE(forwarder.WaitDelivered("flaky", last, kWait));
  forwarder.Stop();
  std::size_t dups = 0;
  EXPECT_EQ(CheckAtLeastOnceInOrder(ReadLines(out), audit.Records(), &dups), "");
  EXPECT_EQ(dups, 0u);
  const auto m = forwarder.Metrics().at(0);
  EXPECT_EQ(m.failures, 6u);
  EXPECT_EQ(m.consecutive_failures, 0u);
  EXPECT_EQ(m.delivered, 25u);
  EXPECT_EQ(m.batches, 3u);
}

TEST(Forwarder, HangingSinkBlocksNeitherNotifyNorOtherSinksAndStopIsPrompt) {
  AuditStore audit;
  const std::string out = audit.dir().file("audit.jsonl");
  auto hanging = std::make_unique<HangingSink>("hanging");
  HangingSink* hanging_ptr = hanging.get();
  Forwarder forwarder(audit.store());
  ASSERT_TRUE(forwarder.AddSink(std::move(hanging), Fast()).ok());
  ASSERT_TRUE(forwarder.AddSink(std::make_unique<FileSink>("file", out), Fast()).ok());
  ASSERT_TRUE(forwarder.Start().ok());

  audit.Append(3);
  forwarder.Notify();
  ASSERT_TRUE(hanging_ptr->WaitEntered(kWait));
  auto slowest = std::chrono::steady_clock::duration::zero();
  std::int64_t last = 0;
  for (int i = 0; i < 50; ++i) {
    last = audit.Append(2);
    const auto t0 = std::chrono::steady_clock::now();
    forwarder.Notify();
    slowest = std::max(slowest, std::chrono::steady_clock::now() - t0);
  }
  EXPECT_LT(slowest, std::chrono::seconds(1));
  ASSERT_TRUE(forwarder.WaitDelivered("file", last, kWait));
  EXPECT_FALSE(forwarder.WaitDelivered("hanging", 1, milliseconds(0)));
  const auto metrics = forwarder.Metrics();
  EXPECT_EQ(metrics[0].cursor, 0);
  EXPECT_EQ(metrics[1].cursor, last);

  const auto t0 = std::chrono::steady_clock::now();
  forwarder.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_EQ(StoredCursor(audit.store(), "hanging"), 0);
  EXPECT_EQ(CheckAtLeastOnceInOrder(ReadLines(out), audit.Records()), "");
}

TEST(Forwarder, LagMetricsWhileASinkIsDown) {
  AuditStore audit;
  audit.set_event_time(SyslogTimestamp(std::chrono::system_clock::now() - std::chrono::hours(1)));
  const std::int64_t last = audit.Append(12);
  const std::string out = audit.dir().file("audit.jsonl");
  // Fails its first 1000 calls: with 1..20 ms backoff it stays down for the whole test.
  std::set<int> always;
  for (int i = 1; i <= 1000; ++i) always.insert(i);
  auto sink = std::make_unique<FlakySink>("down", out, always, std::set<int>{});
  FlakySink* flaky = sink.get();
  Forwarder forwarder(audit.store());
  ASSERT_TRUE(forwarder.AddSink(std::move(sink), Fast(5)).ok());
  ASSERT_TRUE(forwarder.Start().ok());
  // The third attempt starts after the first two failures were recorded.
  ASSERT_TRUE(flaky->WaitCalls(3, kWait));
  const auto m = forwarder.Metrics().at(0);
  forwarder.Stop();
  EXPECT_GE(m.failures, 2u);
  EXPECT_EQ(m.cursor, 0);
  EXPECT_EQ(m.newest_pos, last);
  EXPECT_EQ(m.lag_records, last);
  EXPECT_GT(m.lag_seconds, 3500);  // the oldest undelivered event is an hour old
  EXPECT_LT(m.lag_seconds, 3700);
  EXPECT_EQ(m.last_error.rfind("UNAVAILABLE: injected failure", 0), 0u) << m.last_error;
  EXPECT_EQ(m.delivered, 0u);
}

TEST(Forwarder, LifecycleErrors) {
  AuditStore audit;
  Forwarder forwarder(audit.store());
  EXPECT_TRUE(forwarder.AddSink(std::make_unique<FileSink>("a", audit.dir().file("a"))).ok());
  EXPECT_EQ(forwarder.AddSink(std::make_unique<FileSink>("a", audit.dir().file("b"))).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(forwarder.AddSink(nullptr).code(), StatusCode::kInvalidArgument);
  forwarder.Notify();  // before Start: harmless
  ASSERT_TRUE(forwarder.Start().ok());
  EXPECT_EQ(forwarder.Start().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(forwarder.AddSink(std::make_unique<FileSink>("c", audit.dir().file("c"))).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_FALSE(forwarder.WaitDelivered("nope", 1, milliseconds(0)));
  forwarder.Stop();
  forwarder.Stop();
  forwarder.Notify();  // after Stop: harmless
}

TEST(Forwarder, CreateFromConfig) {
  AuditStore audit;
  const std::int64_t last = audit.Append(4, true);
  auto configs = ParseSinkConfigs(nlohmann::json::parse(R"([{"name":"f","type":"file","path":")" +
                                                        audit.dir().file("c.jsonl") + R"("}])"));
  ASSERT_TRUE(configs.ok());
  auto forwarder = Forwarder::Create(audit.store(), *configs);
  ASSERT_TRUE(forwarder.ok()) << forwarder.status().ToString();
  ASSERT_TRUE((*forwarder)->Start().ok());
  ASSERT_TRUE((*forwarder)->WaitDelivered("f", last, kWait));
  EXPECT_EQ(CheckAtLeastOnceInOrder(ReadLines(audit.dir().file("c.jsonl")), audit.Records()), "");
}

TEST(FileSink, AppendsLinesAndReopensAfterRotation) {
  lockbox::testing::TempDir dir;
  FileSink sink("f", dir.file("out.jsonl"));
  const StreamRecord e{1, 1, RecordKind::kEvent, R"({"seq":1})", "L"};
  const StreamRecord c{2, 1, RecordKind::kCheckpoint, "a.b.c", "L"};
  ASSERT_TRUE(sink.Deliver({e, c}).ok());
  EXPECT_EQ(ReadLines(dir.file("out.jsonl")),
            (std::vector<std::string>{R"({"seq":1})", R"({"checkpoint":"a.b.c"})"}));
  std::filesystem::rename(dir.file("out.jsonl"), dir.file("out.jsonl.1"));
  ASSERT_TRUE(sink.Deliver({e}).ok());
  EXPECT_EQ(ReadLines(dir.file("out.jsonl")), (std::vector<std::string>{R"({"seq":1})"}));
  EXPECT_EQ(ReadLines(dir.file("out.jsonl.1")).size(), 2u);
  EXPECT_EQ(
      std::filesystem::status(dir.file("out.jsonl")).permissions() & std::filesystem::perms::all,
      std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  FileSink bad("b", dir.file("no/such/dir/x.jsonl"));
  EXPECT_EQ(bad.Deliver({e}).code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace lockbox::siem
