#include "server/logical/fields.h"

#include <gtest/gtest.h>

#include <set>

#include "server/logical/logical.h"

namespace lockbox::logical {
namespace {

using nlohmann::json;
using std::chrono::seconds;

TEST(FieldsTest, BoolAcceptsGoSpellingsNumbersAndJsonBooleans) {
  for (const char* yes : {"1", "t", "T", "TRUE", "true", "True"}) {
    EXPECT_EQ(*GetBool(json{{"b", yes}}, "b").value(), true) << yes;
  }
  for (const char* no : {"0", "f", "F", "FALSE", "false", "False"}) {
    EXPECT_EQ(*GetBool(json{{"b", no}}, "b").value(), false) << no;
  }
  EXPECT_TRUE(*GetBool(json{{"b", true}}, "b").value());
  EXPECT_TRUE(*GetBool(json{{"b", 1}}, "b").value());
  EXPECT_FALSE(GetBool(json{{"b", "yes"}}, "b").ok());
  EXPECT_FALSE(GetBool(json{{"b", 2}}, "b").ok());
  EXPECT_FALSE(GetBool(json{{"b", json::array()}}, "b").ok());
  EXPECT_FALSE(GetBool(json::object(), "b").value().has_value());
  EXPECT_FALSE(GetBool(json{{"b", nullptr}}, "b").value().has_value()) << "null is absent";
}

TEST(FieldsTest, IntAcceptsNumbersAndDecimalStrings) {
  EXPECT_EQ(*GetInt(json{{"n", 5}}, "n").value(), 5);
  EXPECT_EQ(*GetInt(json{{"n", "42"}}, "n").value(), 42);
  EXPECT_EQ(*GetInt(json{{"n", 3.0}}, "n").value(), 3);
  EXPECT_EQ(*GetInt(json{{"n", "-7"}}, "n").value(), -7);
  EXPECT_FALSE(GetInt(json{{"n", 3.5}}, "n").ok());
  EXPECT_FALSE(GetInt(json{{"n", "4x"}}, "n").ok());
  EXPECT_FALSE(GetInt(json{{"n", ""}}, "n").ok());
  EXPECT_FALSE(GetInt(json{{"n", true}}, "n").ok());
  const Status bad = GetInt(json{{"num_uses", "x"}}, "num_uses").status();
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("\"num_uses\""), std::string::npos) << bad.message();
}

TEST(FieldsTest, DurationsTakeSecondsNumericStringsAndGoStrings) {
  EXPECT_EQ(*GetDuration(json{{"ttl", 90}}, "ttl").value(), seconds(90));
  EXPECT_EQ(*GetDuration(json{{"ttl", "90"}}, "ttl").value(), seconds(90));
  EXPECT_EQ(*GetDuration(json{{"ttl", "1h30m"}}, "ttl").value(), seconds(5400));
  EXPECT_EQ(*GetDuration(json{{"ttl", "768h"}}, "ttl").value(), seconds(768 * 3600));
  EXPECT_EQ(*GetDuration(json{{"ttl", "1.5h"}}, "ttl").value(), seconds(5400));
  EXPECT_EQ(*GetDuration(json{{"ttl", "2d"}}, "ttl").value(), seconds(172800));
  EXPECT_EQ(*GetDuration(json{{"ttl", "1500ms"}}, "ttl").value(), seconds(1));
  EXPECT_EQ(*GetDuration(json{{"ttl", "0s"}}, "ttl").value(), seconds(0));
  for (const char* bad : {"", "h", "1x", "-5s", "1..5s", "5 s", "1h-3m"}) {
    EXPECT_FALSE(GetDuration(json{{"ttl", bad}}, "ttl").ok()) << bad;
  }
  EXPECT_FALSE(GetDuration(json{{"ttl", -1}}, "ttl").ok());
  EXPECT_FALSE(GetDuration(json{{"ttl", json::object()}}, "ttl").ok());
}

TEST(FieldsTest, GoDurationFormattingMatchesGo) {
  EXPECT_EQ(FormatGoDuration(seconds(0)), "0s");
  EXPECT_EQ(FormatGoDuration(seconds(30)), "30s");
  EXPECT_EQ(FormatGoDuration(seconds(1800)), "30m0s");
  EXPECT_EQ(FormatGoDuration(seconds(12319)), "3h25m19s");
  EXPECT_EQ(FormatGoDuration(seconds(3600)), "1h0m0s");
  for (std::int64_t s : {0, 1, 59, 60, 61, 3599, 3600, 86400, 987654}) {
    EXPECT_EQ(*ParseGoDuration(FormatGoDuration(seconds(s))), seconds(s)) << s;
  }
}

TEST(FieldsTest, StringListsTakeArraysOrCommaStrings) {
  EXPECT_EQ(*GetStringList(json{{"p", "a, b,,c"}}, "p").value(),
            (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(*GetStringList(json{{"p", json::array({"x", " y "})}}, "p").value(),
            (std::vector<std::string>{"x", "y"}));
  EXPECT_TRUE(GetStringList(json{{"p", ""}}, "p").value()->empty());
  EXPECT_FALSE(GetStringList(json{{"p", json::array({1})}}, "p").ok());
  EXPECT_FALSE(GetStringList(json{{"p", 5}}, "p").ok());
}

TEST(FieldsTest, StringMapsCoerceValuesToStrings) {
  auto map = GetStringMap(json{{"options", {{"version", 2}, {"x", "y"}, {"b", true}}}}, "options");
  ASSERT_TRUE(map.ok());
  EXPECT_EQ((**map).at("version"), "2");
  EXPECT_EQ((**map).at("x"), "y");
  EXPECT_EQ((**map).at("b"), "true");
  EXPECT_FALSE(GetStringMap(json{{"options", "v"}}, "options").ok());
  EXPECT_FALSE(GetStringMap(json{{"options", {{"k", json::array()}}}}, "options").ok());
}

TEST(FieldsTest, StringsRenderScalarsButRefuseContainers) {
  EXPECT_EQ(*GetString(json{{"s", "v"}}, "s").value(), "v");
  EXPECT_EQ(*GetString(json{{"s", 12}}, "s").value(), "12");
  EXPECT_FALSE(GetString(json{{"s", json::object()}}, "s").ok());
}

TEST(FieldsTest, Rfc3339NanoLikeGoAndRoundTrips) {
  using namespace std::chrono;
  const auto base = sys_days(year(2018) / 3 / 22) + hours(2) + minutes(24) + seconds(6);
  EXPECT_EQ(FormatRfc3339Nano(base), "2018-03-22T02:24:06Z");
  const auto with_nanos = base + nanoseconds(945319214);
  EXPECT_EQ(FormatRfc3339Nano(with_nanos), "2018-03-22T02:24:06.945319214Z");
  EXPECT_EQ(FormatRfc3339Nano(base + milliseconds(100)), "2018-03-22T02:24:06.1Z");
  EXPECT_EQ(*ParseRfc3339("2018-03-22T02:24:06.945319214Z"), with_nanos);
  EXPECT_EQ(*ParseRfc3339("2018-03-22T02:24:06Z"), base);
  for (const char* bad : {"2018-03-22 02:24:06Z", "2018-13-22T02:24:06Z", "2018-02-30T00:00:00Z",
                          "2018-03-22T02:24:06.Z", "2018-03-22T02:24:06+01:00", "x"}) {
    EXPECT_FALSE(ParseRfc3339(bad).ok()) << bad;
  }
}

TEST(FieldsTest, UuidsAreVersion4AndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = NewUuid();
    ASSERT_EQ(id.size(), 36u);
    EXPECT_EQ(id[14], '4');
    EXPECT_NE(std::string("89ab").find(id[19]), std::string::npos);
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(LogicalTest, StatusCodesMapOntoVaultHttpCodes) {
  EXPECT_EQ(HttpStatusFor(StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusFor(StatusCode::kAborted), 400);
  EXPECT_EQ(HttpStatusFor(StatusCode::kPermissionDenied), 403);
  EXPECT_EQ(HttpStatusFor(StatusCode::kNotFound), 404);
  EXPECT_EQ(HttpStatusFor(StatusCode::kUnimplemented), 405);
  EXPECT_EQ(HttpStatusFor(StatusCode::kAlreadyExists), 409);
  EXPECT_EQ(HttpStatusFor(StatusCode::kUnavailable), 503);
  EXPECT_EQ(HttpStatusFor(StatusCode::kInternal), 500);
  EXPECT_EQ(CapabilityName(Operation::kList), "list");
}

}  // namespace
}  // namespace lockbox::logical
