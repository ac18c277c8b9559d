// Wire formats: RFC 5424 message + RFC 6587 octet counting, SD escaping, HEC body, backoff.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "server/siem/backoff.h"
#include "server/siem/http_sink.h"
#include "server/siem/sink.h"
#include "server/siem/syslog_sink.h"
#include "tests/unit/siem/siem_test_util.h"

namespace lockbox::siem {
namespace {

using std::chrono::milliseconds;

StreamRecord Event(std::int64_t pos, std::int64_t seq, std::string body,
                   std::string log_id = "L1") {
  return {pos, seq, RecordKind::kEvent, std::move(body), std::move(log_id)};
}

TEST(SyslogFormat, ExactBytesForAnEvent) {
  const StreamRecord r = Event(7, 42, R"({"op":"keyring.create","seq":42})", "log-1");
  const std::string msg = FormatSyslogMessage(r, "host-a", "2030-01-02T03:04:05.123456Z", 110);
  EXPECT_EQ(msg,
            "<110>1 2030-01-02T03:04:05.123456Z host-a lockbox - AUDIT [lockbox@32473 "
            "seq=\"42\" log_id=\"log-1\" kind=\"event\"] {\"op\":\"keyring.create\",\"seq\":42}");
  EXPECT_EQ(FrameOctetCounted(msg), std::to_string(msg.size()) + " " + msg);
  EXPECT_EQ(FrameOctetCounted("abc"), "3 abc");
  EXPECT_EQ(FrameOctetCounted(""), "0 ");
}

TEST(SyslogFormat, OctetCountIsBytesNotCharacters) {
  const std::string utf8 = "{\"path\":\"caf\xC3\xA9\"}";  // é is two bytes
  const std::string msg = FormatSyslogMessage(Event(1, 1, utf8), "h", "-", 110);
  const std::string framed = FrameOctetCounted(msg);
  const auto space = framed.find(' ');
  EXPECT_EQ(std::stoul(framed.substr(0, space)), framed.size() - space - 1);
}

TEST(SyslogFormat, Checkpoint) {
  const StreamRecord r{9, 42, RecordKind::kCheckpoint, "aGVhZA.cGF5bG9hZA.c2ln", "log-1"};
  EXPECT_EQ(FormatSyslogMessage(r, "h", "2030-01-02T03:04:05.000000Z", 110),
            "<110>1 2030-01-02T03:04:05.000000Z h lockbox - AUDIT [lockbox@32473 seq=\"42\" "
            "log_id=\"log-1\" kind=\"checkpoint\"] {\"checkpoint\":\"aGVhZA.cGF5bG9hZA.c2ln\"}");
}

TEST(SyslogFormat, SdParamEscaping) {
  EXPECT_EQ(EscapeSdParamValue("plain"), "plain");
  EXPECT_EQ(EscapeSdParamValue(R"(a"b\c]d)"), R"(a\"b\\c\]d)");
  EXPECT_EQ(EscapeSdParamValue(R"(""]])"), R"(\"\"\]\])");
  EXPECT_EQ(EscapeSdParamValue("[=]"), "[=\\]");  // only '"', '\' and ']' are escaped
  const std::string msg = FormatSyslogMessage(Event(1, 3, "{}", R"(x"y]z\)"), "h", "-", 110);
  EXPECT_NE(msg.find(R"(log_id="x\"y\]z\\")"), std::string::npos) << msg;
}

TEST(SyslogFormat, TimestampAndHostname) {
  using namespace std::chrono;
  const auto t =
      sys_days(year(2030) / 1 / 2) + hours(3) + minutes(4) + seconds(5) + microseconds(7);
  EXPECT_EQ(SyslogTimestamp(system_clock::time_point(t)), "2030-01-02T03:04:05.000007Z");
  EXPECT_EQ(SyslogHostname(""), "-");
  EXPECT_EQ(SyslogHostname("ho st\x01\xff"), "host");
  EXPECT_EQ(SyslogHostname(std::string(300, 'a')).size(), 255u);
}

TEST(SyslogFormat, PriFromFacilityAndSeverity) {
  const std::string msg = FormatSyslogMessage(Event(1, 1, "{}"), "h", "-", 13 * 8 + 6);
  EXPECT_EQ(msg.rfind("<110>1 - h lockbox - AUDIT ", 0), 0u) << msg;
}

TEST(StreamLine, EventVerbatimCheckpointWrapped) {
  EXPECT_EQ(StreamLine(Event(1, 1, R"({"b":1,"a":2})")), R"({"b":1,"a":2})");
  EXPECT_EQ(StreamLine({2, 1, RecordKind::kCheckpoint, "h.p.s", ""}), R"({"checkpoint":"h.p.s"})");
}

TEST(Rfc3339, Parse) {
  using namespace std::chrono;
  auto t = ParseRfc3339("2030-01-02T03:04:05.123456789Z");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(duration_cast<nanoseconds>(t->time_since_epoch()).count() % 1'000'000'000, 123'456'789);
  auto offset = ParseRfc3339("2030-01-02T05:04:05+02:00");
  ASSERT_TRUE(offset.has_value());
  EXPECT_EQ(duration_cast<seconds>(*t - *offset).count(), 0);
  EXPECT_FALSE(ParseRfc3339("2030-01-02 03:04:05Z").has_value());
  EXPECT_FALSE(ParseRfc3339("2030-02-30T03:04:05Z").has_value());
  EXPECT_FALSE(ParseRfc3339("2030-01-02T03:04:05").has_value());
  EXPECT_FALSE(ParseRfc3339("2030-01-02T03:04:05.Z").has_value());
  EXPECT_FALSE(ParseRfc3339("").has_value());
}

TEST(RecordTime, EventAndCheckpoint) {
  using namespace std::chrono;
  auto e = RecordTime(Event(1, 1, testing::EventBody(1)));
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(FormatEpochSeconds(*e), "1893553445.123456");
  auto c = RecordTime({2, 1, RecordKind::kCheckpoint, testing::CheckpointBody(1), ""});
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(FormatEpochSeconds(*c), "1893553445.500000");
  EXPECT_FALSE(RecordTime(Event(1, 1, "not json")).has_value());
  EXPECT_FALSE(RecordTime({2, 1, RecordKind::kCheckpoint, "no-dots", ""}).has_value());
}

TEST(HecBody, ShapeAndVerbatimEvent) {
  const std::string body1 = testing::EventBody(1);
  const std::vector<StreamRecord> batch = {
      Event(1, 1, body1),
      {2, 1, RecordKind::kCheckpoint, testing::CheckpointBody(1), "L1"},
      Event(3, 2, R"({"seq":2})"),  // no time: the fallback time is used
  };
  const auto fallback = std::chrono::system_clock::time_point(std::chrono::seconds(1'000));
  const std::string hec = FormatHecBody(batch, "host \"a\"", fallback);
  std::vector<std::string> lines;
  std::size_t start = 0;
  for (;;) {
    const auto nl = hec.find('\n', start);
    lines.push_back(hec.substr(start, nl - start));
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], R"({"time":1893553445.123456,"host":"host \"a\"","source":"lockbox",)"
                      R"("sourcetype":"lockbox:audit","event":)" +
                          body1 + "}");
  for (const std::string& line : lines) {
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j.size(), 5u);
    EXPECT_TRUE(j.at("time").is_number());
    EXPECT_EQ(j.at("host"), "host \"a\"");
    EXPECT_EQ(j.at("source"), "lockbox");
    EXPECT_EQ(j.at("sourcetype"), "lockbox:audit");
    EXPECT_TRUE(j.at("event").is_object());
  }
  EXPECT_EQ(nlohmann::json::parse(lines[1]).at("event"),
            nlohmann::json({{"checkpoint", testing::CheckpointBody(1)}}));
  EXPECT_NE(lines[2].find(R"("time":1000.000000,)"), std::string::npos) << lines[2];
}

TEST(HttpUrl, Parse) {
  auto u = ParseHttpUrl("https://splunk.example:8088/services/collector/event?x=1");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->scheme, "https");
  EXPECT_EQ(u->host, "splunk.example");
  EXPECT_EQ(u->port, 8088);
  EXPECT_EQ(u->path, "/services/collector/event?x=1");
  auto d = ParseHttpUrl("http://[::1]");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->host, "::1");
  EXPECT_EQ(d->port, 80);
  EXPECT_EQ(d->path, "/");
  EXPECT_FALSE(ParseHttpUrl("ftp://x/").ok());
  EXPECT_FALSE(ParseHttpUrl("http://").ok());
  EXPECT_FALSE(ParseHttpUrl("http://h:0/").ok());
  EXPECT_FALSE(ParseHttpUrl("http://h:70000/").ok());
  EXPECT_FALSE(ParseHttpUrl("http://h:/").ok());
  EXPECT_FALSE(ParseHttpUrl("http://user:pw@h/").ok());
}

TEST(Backoff, FullJitterWithinBounds) {
  Backoff b(milliseconds(100), milliseconds(30'000));
  EXPECT_EQ(b.Ceiling(0), milliseconds(100));
  EXPECT_EQ(b.Ceiling(1), milliseconds(200));
  EXPECT_EQ(b.Ceiling(8), milliseconds(25'600));
  EXPECT_EQ(b.Ceiling(9), milliseconds(30'000));
  EXPECT_EQ(b.Ceiling(1000), milliseconds(30'000));  // no overflow
  for (int round = 0; round < 50; ++round) {
    b.Reset();
    for (unsigned n = 0; n < 20; ++n) {
      const auto ceiling = b.Ceiling(n);
      const auto d = b.Next();
      EXPECT_GE(d.count(), 0);
      EXPECT_LE(d, std::min(milliseconds(30'000), ceiling));
    }
  }
}

TEST(Backoff, ExtremesOfTheRandomSourceHitBothEnds) {
  std::uint64_t next = 0;
  Backoff low(milliseconds(10), milliseconds(50), [&] { return next; });
  EXPECT_EQ(low.Next(), milliseconds(0));
  next = ~std::uint64_t{0};
  Backoff high(milliseconds(10), milliseconds(50), [&] { return next; });
  // ~0 % (c + 1) == c when c + 1 is a power of two; use c-specific values instead.
  std::vector<milliseconds> got;
  for (unsigned n = 0; n < 5; ++n) {
    next = static_cast<std::uint64_t>(high.Ceiling(n).count());  // exactly the ceiling
    got.push_back(high.Next());
  }
  EXPECT_EQ(got, (std::vector<milliseconds>{milliseconds(10), milliseconds(20), milliseconds(40),
                                            milliseconds(50), milliseconds(50)}));
  high.Reset();
  EXPECT_EQ(high.attempts(), 0u);
}

TEST(Backoff, SpreadsOverTheWholeRange) {
  Backoff b(milliseconds(1000), milliseconds(1000));
  milliseconds lo(1000), hi(0);
  for (int i = 0; i < 2000; ++i) {
    const auto d = b.Next();
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  }
  EXPECT_LT(lo, milliseconds(100));
  EXPECT_GT(hi, milliseconds(900));
}

}  // namespace
}  // namespace lockbox::siem
