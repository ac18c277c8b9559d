#include "audit/event.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "crypto/jcs.h"

namespace lockbox::audit {
namespace {

using std::chrono::system_clock;

system_clock::time_point FromNanos(long long ns) {
  return system_clock::time_point(
      std::chrono::duration_cast<system_clock::duration>(std::chrono::nanoseconds(ns)));
}

Event Sample() {
  Event e;
  e.seq = 42;
  e.time = "2026-11-27T21:01:25.000000001Z";
  e.log_id = "log-1";
  e.request_id = "req-7";
  e.actor = "role:app";
  e.op = "keyring.decrypt";
  e.path = "transit/keys/k1";
  e.outcome = Outcome::kOk;
  e.remote_addr = "10.0.0.1";
  return e;
}

TEST(EventTest, FormatTime) {
  EXPECT_EQ(FormatTime(FromNanos(0)), "1970-01-01T00:00:00.000000000Z");
  // 2026-11-27T21:01:25Z = 1795813285 s since the epoch.
  EXPECT_EQ(FormatTime(FromNanos(1795813285LL * 1000000000LL + 1)),
            "2026-11-27T21:01:25.000000001Z");
  EXPECT_EQ(FormatTime(FromNanos(1795813285LL * 1000000000LL + 123456789)),
            "2026-11-27T21:01:25.123456789Z");
  // Leap day and a time before the epoch.
  EXPECT_EQ(FormatTime(FromNanos(951782400LL * 1000000000LL)), "2000-02-29T00:00:00.000000000Z");
  EXPECT_EQ(FormatTime(FromNanos(-1)), "1969-12-31T23:59:59.999999999Z");
}

TEST(EventTest, CanonicalText) {
  auto text = CanonicalEvent(Sample());
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  EXPECT_EQ(*text,
            R"({"actor":"role:app","log_id":"log-1","op":"keyring.decrypt","outcome":"ok",)"
            R"("path":"transit/keys/k1","remote_addr":"10.0.0.1","request_id":"req-7","seq":42,)"
            R"("time":"2026-11-27T21:01:25.000000001Z"})");
}

// The two-step encoding the log uses (head before the event's turn, seq and time at append) gives
// the bytes of the JCS of the whole event, for every mix of optional members and odd strings.
TEST(EventTest, HeadThenSeqAndTimeIsTheCanonicalEvent) {
  std::vector<Event> events;
  events.push_back(Sample());
  Event full = Sample();
  full.outcome = Outcome::kError;
  full.reason = "quote \" backslash \\ tab \t \u00e9 \U0001F600";
  full.hmacs = {{"token", "hmac-sha256:00"}, {"z\u00e9", "x"}, {"a\uffff", "y"}};
  full.details = {{"version", 3}, {"cached", false}, {"ratio", 0.25}, {"\u00e9", "v"}};
  full.seq = std::uint64_t{1} << 53;
  events.push_back(full);
  Event empty_strings = Sample();
  empty_strings.actor = empty_strings.path = empty_strings.remote_addr = "";
  empty_strings.seq = 0;
  events.push_back(empty_strings);
  for (const Event& e : events) {
    auto expected = crypto::CanonicalizeJson(EventToJson(e));
    ASSERT_TRUE(expected.ok());
    auto head = CanonicalEventHead(e);
    ASSERT_TRUE(head.ok()) << head.status().ToString();
    Event other_turn = e;
    other_turn.seq = 7;
    other_turn.time = "2000-01-01T00:00:00.000000000Z";
    EXPECT_EQ(*CanonicalEventHead(other_turn), *head);  // the head does not depend on the turn
    auto whole = CompleteCanonicalEvent(*head, e.seq, e.time);
    ASSERT_TRUE(whole.ok()) << whole.status().ToString();
    EXPECT_EQ(*whole, *expected);
    EXPECT_EQ(*CanonicalEvent(e), *expected);
  }
  EXPECT_EQ(CompleteCanonicalEvent(*CanonicalEventHead(Sample()), (std::uint64_t{1} << 53) + 1,
                                   Sample().time)
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(CompleteCanonicalEvent(*CanonicalEventHead(Sample()), 1, "2026-11-27T21:01:25Z")
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  Event nested = Sample();
  nested.details = {{"nested", {{"a", 1}}}};
  EXPECT_EQ(CanonicalEventHead(nested).status().code(), StatusCode::kInvalidArgument);
  for (std::string Event::*member :
       {&Event::actor, &Event::path, &Event::reason, &Event::remote_addr, &Event::request_id}) {
    Event invalid = Sample();
    invalid.*member = "bad \xC3\x28 utf-8";  // a lead byte without its continuation
    EXPECT_EQ(CanonicalEventHead(invalid).status().code(), StatusCode::kInvalidArgument);
  }
}

TEST(EventTest, OptionalMembers) {
  Event e = Sample();
  e.outcome = Outcome::kDenied;
  e.reason = "policy denies";
  e.hmacs["token"] = "hmac-sha256:00ff";
  e.details = {{"version", 3}, {"cached", true}, {"mode", "x"}, {"ratio", 0.5}};
  auto text = CanonicalEvent(e);
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  EXPECT_NE(text->find(R"("details":{"cached":true,"mode":"x","ratio":0.5,"version":3})"),
            std::string::npos);
  EXPECT_NE(text->find(R"("hmacs":{"token":"hmac-sha256:00ff"})"), std::string::npos);
  EXPECT_NE(text->find(R"("outcome":"denied","path")"), std::string::npos);
  EXPECT_NE(text->find(R"("reason":"policy denies")"), std::string::npos);
  auto parsed = ParseCanonicalEvent(*text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->seq, 42u);
  EXPECT_EQ(parsed->outcome, Outcome::kDenied);
  EXPECT_EQ(parsed->reason, "policy denies");
  EXPECT_EQ(parsed->hmacs, e.hmacs);
  EXPECT_EQ(parsed->details, e.details);
  EXPECT_EQ(*CanonicalEvent(*parsed), *text);
  // Empty reason/hmacs/details are omitted, never present as empty values.
  auto plain = *CanonicalEvent(Sample());
  EXPECT_EQ(plain.find("reason"), std::string::npos);
  EXPECT_EQ(plain.find("hmacs"), std::string::npos);
  EXPECT_EQ(plain.find("details"), std::string::npos);
}

TEST(EventTest, InvalidEventsRefused) {
  Event e = Sample();
  e.details = {{"nested", {{"a", 1}}}};
  EXPECT_EQ(CanonicalEvent(e).status().code(), StatusCode::kInvalidArgument);
  e.details = {{"list", {1, 2}}};
  EXPECT_EQ(CanonicalEvent(e).status().code(), StatusCode::kInvalidArgument);
  e.details = {{"null", nullptr}};
  EXPECT_EQ(CanonicalEvent(e).status().code(), StatusCode::kInvalidArgument);
  e.details = nlohmann::json::array();
  EXPECT_EQ(CanonicalEvent(e).status().code(), StatusCode::kInvalidArgument);
  e = Sample();
  e.time = "2026-11-27T21:01:25Z";
  EXPECT_EQ(CanonicalEvent(e).status().code(), StatusCode::kInvalidArgument);
  e = Sample();
  e.path = std::string("\xff\xfe");  // invalid UTF-8
  EXPECT_EQ(CanonicalEvent(e).status().code(), StatusCode::kInvalidArgument);
}

TEST(EventTest, ParseRefusesNonCanonicalOrIncomplete) {
  const std::string good = *CanonicalEvent(Sample());
  ASSERT_TRUE(ParseCanonicalEvent(good).ok());
  auto refused = [](const std::string& text) {
    return ParseCanonicalEvent(text).status().code() == StatusCode::kInvalidArgument;
  };
  EXPECT_TRUE(refused(good + "\n"));
  EXPECT_TRUE(refused(" " + good));
  EXPECT_TRUE(refused(std::string(good).replace(good.find(":42"), 3, ": 42")));
  EXPECT_TRUE(refused(std::string(good).replace(good.find("42"), 2, "42.0")));
  EXPECT_TRUE(refused(std::string(good).replace(good.find("42"), 2, "4.2e1")));
  // Member order swapped.
  EXPECT_TRUE(
      refused(R"({"log_id":"log-1","actor":"role:app","op":"keyring.decrypt","outcome":"ok",)"
              R"("path":"transit/keys/k1","remote_addr":"10.0.0.1","request_id":"req-7","seq":42,)"
              R"("time":"2026-11-27T21:01:25.000000001Z"})"));
  // Missing member (no remote_addr).
  EXPECT_TRUE(
      refused(R"({"actor":"role:app","log_id":"log-1","op":"keyring.decrypt","outcome":"ok",)"
              R"("path":"transit/keys/k1","request_id":"req-7","seq":42,)"
              R"("time":"2026-11-27T21:01:25.000000001Z"})"));
  // Unknown member.
  EXPECT_TRUE(refused(std::string(good).replace(good.size() - 1, 1, R"(,"zz":1})")));
  // Duplicate member (canonical output would drop it).
  EXPECT_TRUE(refused(std::string(good).replace(1, 0, R"("actor":"x",)")));
  // Bad outcome, empty reason, negative seq, escaped character that JCS writes raw.
  EXPECT_TRUE(refused(std::string(good).replace(good.find("\"ok\""), 4, "\"maybe\"")));
  EXPECT_TRUE(
      refused(std::string(good).replace(good.find(",\"remote_addr"), 0, ",\"reason\":\"\"")));
  EXPECT_TRUE(refused(std::string(good).replace(good.find("42"), 2, "-42")));
  EXPECT_TRUE(refused(std::string(good).replace(good.find("role:app"), 1, "\\u0072")));
  EXPECT_TRUE(refused("[]"));
  EXPECT_TRUE(refused(""));
}

}  // namespace
}  // namespace lockbox::audit
