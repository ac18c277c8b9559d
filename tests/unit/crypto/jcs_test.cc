#include "crypto/jcs.h"

#include <gtest/gtest.h>

#include "tests/support/random_edits.h"

#include <bit>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace lockbox::crypto {
namespace {

using nlohmann::json;

std::string Canon(std::string_view text) {
  auto out = CanonicalizeJsonText(text);
  EXPECT_TRUE(out.ok()) << out.status().ToString() << " for " << text;
  return out.ok() ? *out : std::string();
}

// RFC 8785 §3.2.2 (input) and §3.2.3/§3.2.4 (output).
TEST(JcsTest, Rfc8785Section322Sample) {
  const char* input = R"({
    "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
    "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
    "literals": [null, true, false]
  })";
  EXPECT_EQ(Canon(input),
            "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],"
            "\"string\":\"\xE2\x82\xAC$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}");
}

// RFC 8785 §3.2.3: names sorted by UTF-16 code units, not by UTF-8 bytes or code points
// (U+1F600, a surrogate pair, sorts before U+FB33).
TEST(JcsTest, Rfc8785Section323Sorting) {
  const char* input = R"({
    "\u20ac": "Euro Sign",
    "\r": "Carriage Return",
    "\ufb33": "Hebrew Letter Dalet With Dagesh",
    "1": "One",
    "\ud83d\ude00": "Emoji: Grinning Face",
    "\u0080": "Control",
    "\u00f6": "Latin Small Letter O With Diaeresis"
  })";
  EXPECT_EQ(Canon(input),
            "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\xC2\x80\":\"Control\","
            "\"\xC3\xB6\":\"Latin Small Letter O With Diaeresis\",\"\xE2\x82\xAC\":\"Euro Sign\","
            "\"\xF0\x9F\x98\x80\":\"Emoji: Grinning Face\","
            "\"\xEF\xAC\xB3\":\"Hebrew Letter Dalet With Dagesh\"}");
}

TEST(JcsTest, NestedStructuresSortedRecursivelyArraysKeepOrder) {
  EXPECT_EQ(Canon(R"({"b":[3,{"z":1,"a":2},1],"a":{"y":null,"x":[]},"c":{}})"),
            R"({"a":{"x":[],"y":null},"b":[3,{"a":2,"z":1},1],"c":{}})");
  EXPECT_EQ(Canon(" [ ] "), "[]");
  EXPECT_EQ(Canon("\"x\""), "\"x\"");
  EXPECT_EQ(Canon("true"), "true");
}

double FromBits(std::uint64_t bits) { return std::bit_cast<double>(bits); }

// RFC 8785 Appendix B: IEEE-754 bit patterns and their ECMAScript serialisation.
TEST(JcsTest, Rfc8785AppendixBNumbers) {
  const struct {
    std::uint64_t bits;
    const char* expected;
  } kCases[] = {
      {0x0000000000000000, "0"},
      {0x8000000000000000, "0"},
      {0x0000000000000001, "5e-324"},
      {0x8000000000000001, "-5e-324"},
      {0x7fefffffffffffff, "1.7976931348623157e+308"},
      {0xffefffffffffffff, "-1.7976931348623157e+308"},
      {0x4340000000000000, "9007199254740992"},
      {0xc340000000000000, "-9007199254740992"},
      {0x4430000000000000, "295147905179352830000"},
      {0x44b52d02c7e14af5, "9.999999999999997e+22"},
      {0x44b52d02c7e14af6, "1e+23"},
      {0x44b52d02c7e14af7, "1.0000000000000001e+23"},
      {0x444b1ae4d6e2ef4e, "999999999999999700000"},
      {0x444b1ae4d6e2ef4f, "999999999999999900000"},
      {0x444b1ae4d6e2ef50, "1e+21"},
      {0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"},
      {0x3eb0c6f7a0b5ed8d, "0.000001"},
      {0x41b3de4355555553, "333333333.3333332"},
      {0x41b3de4355555554, "333333333.33333325"},
      {0x41b3de4355555555, "333333333.3333333"},
      {0x41b3de4355555556, "333333333.3333334"},
      {0x41b3de4355555557, "333333333.33333343"},
      {0xbecbf647612f3696, "-0.0000033333333333333333"},
      {0x43143ff3c1cb0959, "1424953923781206.2"},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.expected);
    const double v = FromBits(c.bits);
    auto direct = SerializeJcsNumber(v);
    ASSERT_TRUE(direct.ok()) << direct.status().ToString();
    EXPECT_EQ(*direct, c.expected);
    // Through a parsed document too: the printed text must parse back to the same double.
    auto doc = CanonicalizeJson(json::array({v}));
    ASSERT_TRUE(doc.ok());
    EXPECT_EQ(*doc, std::string("[") + c.expected + "]");
    EXPECT_EQ(std::bit_cast<std::uint64_t>(json::parse(*doc)[0].get<double>()) & ~(1ULL << 63),
              c.bits & ~(1ULL << 63));
  }
  // Appendix B's NaN and Infinity rows have no serialisation.
  EXPECT_FALSE(SerializeJcsNumber(FromBits(0x7fffffffffffffff)).ok());
  EXPECT_FALSE(SerializeJcsNumber(FromBits(0x7ff0000000000000)).ok());
  EXPECT_FALSE(SerializeJcsNumber(-std::numeric_limits<double>::infinity()).ok());
}

TEST(JcsTest, NumberFormattingBoundaries) {
  EXPECT_EQ(*SerializeJcsNumber(1e20), "100000000000000000000");
  EXPECT_EQ(*SerializeJcsNumber(1e21), "1e+21");
  EXPECT_EQ(*SerializeJcsNumber(123e18), "123000000000000000000");
  EXPECT_EQ(*SerializeJcsNumber(1.5e21), "1.5e+21");
  EXPECT_EQ(*SerializeJcsNumber(1e-6), "0.000001");
  EXPECT_EQ(*SerializeJcsNumber(1e-7), "1e-7");
  EXPECT_EQ(*SerializeJcsNumber(1.25e-7), "1.25e-7");
  EXPECT_EQ(*SerializeJcsNumber(0.5), "0.5");
  EXPECT_EQ(*SerializeJcsNumber(-12.75), "-12.75");
  EXPECT_EQ(*SerializeJcsNumber(100), "100");
}

TEST(JcsTest, IntegersAreSerialisedAsDoubles) {
  // nlohmann stores these as int64/uint64; JCS prints the double they denote.
  EXPECT_EQ(Canon("[1, -1, -0, 0, 1000000, 1e3, 10.0]"), "[1,-1,0,0,1000000,1000,10]");
  EXPECT_EQ(Canon("1000000000000000000000"), "1e+21");
  EXPECT_EQ(Canon("9007199254740993"), "9007199254740992");  // 2^53 + 1 rounds to even
  EXPECT_EQ(Canon("18446744073709551615"), "18446744073709552000");
  EXPECT_EQ(Canon("-9223372036854775808"), "-9223372036854776000");
  EXPECT_EQ(*CanonicalizeJson(json(std::uint64_t{1} << 63)), "9223372036854776000");
  EXPECT_EQ(*CanonicalizeJson(json(std::int64_t{-42})), "-42");
  EXPECT_EQ(*CanonicalizeJson(json(-0.0)), "0");
}

TEST(JcsTest, StringEscapes) {
  // Only the seven short escapes and \u00xx for other controls; '/', DEL, U+2028 stay raw.
  EXPECT_EQ(Canon(R"("\b\f\n\r\t\"\\\/\u0000\u001f\u0001 \u007f\u2028")"),
            "\"\\b\\f\\n\\r\\t\\\"\\\\/\\u0000\\u001f\\u0001 \x7F\xE2\x80\xA8\"");
  EXPECT_EQ(Canon(R"("\u00e9\u00C9")"), "\"\xC3\xA9\xC3\x89\"");
  EXPECT_EQ(Canon(R"({"\u000b":1})"), "{\"\\u000b\":1}");
}

TEST(JcsTest, AppendJcsStringMatchesCanonicalizeAndRefusesInvalidUtf8) {
  for (const std::string& value :
       {std::string(""), std::string("plain"), std::string("\b\f\n\r\t\"\\/ \x01\x1f\x7f"),
        std::string("\xC3\xA9 \xF0\x9F\x98\x80"), std::string(1, '\0')}) {
    std::string out = "prefix";
    ASSERT_TRUE(AppendJcsString(value, out).ok());
    EXPECT_EQ(out, "prefix" + *CanonicalizeJson(nlohmann::json(value)));
  }
  std::string out = "prefix";
  EXPECT_EQ(AppendJcsString("\xC3\x28", out).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(AppendJcsString("\xED\xA0\x80", out).code(),
            StatusCode::kInvalidArgument);  // surrogate
  EXPECT_EQ(out, "prefix");
}

TEST(JcsTest, WhitespaceAndMemberOrderDoNotMatter) {
  EXPECT_EQ(Canon("{ \"b\" : 1 ,\n\t\"a\" : [ 1 , 2 ] }"), Canon(R"({"a":[1,2],"b":1})"));
}

TEST(JcsTest, RejectsMalformedText) {
  for (const char* bad : {"",
                          "{",
                          "[1,]",
                          "{\"a\":1,}",
                          "01",
                          "1.",
                          ".5",
                          "+1",
                          "NaN",
                          "Infinity",
                          "[1] x",
                          "/* c */ 1",
                          "{'a':1}",
                          "\"\\x41\"",
                          "\"a\nb\"",
                          "\"\\ud800\"",
                          "\"\\udc00\\ud800\"",
                          "\"\xC0\xAF\"",
                          "\"\xFF\"",
                          "\"\xED\xA0\x80\"",
                          "tru",
                          "[1 2]"}) {
    SCOPED_TRACE(bad);
    auto out = CanonicalizeJsonText(bad);
    ASSERT_FALSE(out.ok()) << *out;
    EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  }
}

TEST(JcsTest, RejectsByteOrderMark) { EXPECT_FALSE(CanonicalizeJsonText("\xEF\xBB\xBF{}").ok()); }

TEST(JcsTest, RejectsDuplicateMemberNames) {
  auto out = CanonicalizeJsonText(R"({"a":1,"a":2})");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  // Same name spelled differently after unescaping is still a duplicate.
  EXPECT_FALSE(CanonicalizeJsonText(R"({"a":1,"\u0061":2})").ok());
  EXPECT_FALSE(CanonicalizeJsonText(R"({"x":{"a":1,"b":{},"a":3}})").ok());
  // Same name in different objects is fine.
  EXPECT_EQ(Canon(R"({"a":{"a":1},"b":{"a":2}})"), R"({"a":{"a":1},"b":{"a":2}})");
  EXPECT_EQ(Canon(R"([{"a":1},{"a":2}])"), R"([{"a":1},{"a":2}])");
}

TEST(JcsTest, RejectsNonFiniteAndOverflow) {
  EXPECT_FALSE(CanonicalizeJsonText("1e400").ok());
  EXPECT_FALSE(CanonicalizeJsonText("[-1e999]").ok());
  EXPECT_FALSE(CanonicalizeJson(json(std::nan(""))).ok());
  EXPECT_FALSE(CanonicalizeJson(json::array({1, std::numeric_limits<double>::infinity()})).ok());
}

TEST(JcsTest, RejectsInvalidUtf8InBuiltValues) {
  EXPECT_FALSE(CanonicalizeJson(json("\xC3")).ok());
  EXPECT_FALSE(CanonicalizeJson(json({{"\xFF", 1}})).ok());
  EXPECT_FALSE(CanonicalizeJson(json::binary({1, 2, 3})).ok());
}

TEST(JcsTest, RejectsExcessiveNesting) {
  std::string deep(kMaxJcsDepth + 1, '[');
  deep += std::string(kMaxJcsDepth + 1, ']');
  EXPECT_FALSE(CanonicalizeJsonText(deep).ok());
  std::string ok(kMaxJcsDepth, '[');
  ok += std::string(kMaxJcsDepth, ']');
  EXPECT_TRUE(CanonicalizeJsonText(ok).ok());
}

// IsCanonicalJson(t) must hold exactly when parsing t and canonicalising gives back t.
bool ReferenceIsCanonical(std::string_view t) {
  const json j = json::parse(t.begin(), t.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return false;
  auto c = CanonicalizeJson(j);
  return c.ok() && *c == t;
}

TEST(JcsCheckTest, AcceptsCanonicalOutput) {
  for (const char* input :
       {R"({"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001,-0,
           1e21,1e-7,123456789012345678,9007199254740993,-5e-324,1.7976931348623157e308],
           "string":"\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/\u007f\b\f\r\t\u0000\u001f",
           "literals":[null,true,false],"":{},"e":[],"n":[[[]],{"a":{}}]})",
        R"({"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh",
           "1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin"})",
        "0", "-1", "\"\"", "null", "[1,2,3]", "1.5", R"({"a":1,"b":2})"}) {
    const std::string canonical = Canon(input);
    EXPECT_TRUE(IsCanonicalJson(canonical)) << canonical;
    EXPECT_TRUE(ReferenceIsCanonical(canonical)) << canonical;
  }
  std::string deep(kMaxJcsDepth, '[');
  deep += std::string(kMaxJcsDepth, ']');
  EXPECT_TRUE(IsCanonicalJson(deep));
  EXPECT_FALSE(IsCanonicalJson("[" + deep + "]"));
}

TEST(JcsCheckTest, RefusesEveryOtherSpelling) {
  for (const char* t : {"",
                        " 1",
                        "1 ",
                        "01",
                        "-0",
                        "1.0",
                        "1e2",
                        "1E+2",
                        "+1",
                        ".5",
                        "1.",
                        "1e400",
                        "NaN",
                        "\"\\u0041\"",
                        "\"\\/\"",
                        "\"\\u000A\"",
                        "\"\\u000a\"",
                        "\"\\u001F\"",
                        "\"\\U001f\"",
                        "\"\x01\"",
                        "\"\xC3\"",
                        "\"\xED\xA0\x80\"",
                        "\"\xC0\xAF\"",
                        "\"\\ud83d\\ude00\"",
                        "\xEF\xBB\xBF{}",
                        R"({"b":1,"a":2})",
                        R"({"a":1,"a":1})",
                        R"({"a":1,"\u0061":1})",
                        R"({"\ufb33":1,"\ud83d\ude00":2})",
                        "{\"\xEF\xAC\xB3\":1,\"\xF0\x9F\x98\x80\":2}",
                        "[1,]",
                        "[,1]",
                        "{\"a\"}",
                        "{\"a\":}",
                        "{,}",
                        "[",
                        "]",
                        "tru",
                        "nul",
                        "[1]]",
                        "{} {}",
                        "\"a",
                        "9007199254740993",
                        "123456789012345678",
                        "1e21x",
                        "[1 ,2]"}) {
    EXPECT_FALSE(IsCanonicalJson(t)) << t;
    EXPECT_FALSE(ReferenceIsCanonical(t)) << t;
  }
  // The same names sorted by UTF-16 code units (U+1F600 before U+FB33) are canonical.
  EXPECT_TRUE(IsCanonicalJson("{\"\xF0\x9F\x98\x80\":2,\"\xEF\xAC\xB3\":1}"));
  EXPECT_TRUE(IsCanonicalJson(R"({"a\"":1,"a#":2})"));  // '"' < '#' once decoded
  EXPECT_FALSE(IsCanonicalJson(R"({"a#":2,"a\"":1})"));
}

// Random edits of canonical texts: the one-pass check and the reference agree on every one.
TEST(JcsCheckTest, AgreesWithParseAndCanonicalizeOnMutations) {
  const std::vector<std::string> seeds = {
      Canon(R"({"numbers":[333333333.33333329,1E30,4.50,2e-3,1e-27,-12,0,1e21,1e-7,5e-324],
               "string":"\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/","literals":[null,true,false],
               "nested":{"z":[{},[]],"\u00e9":"\ud83d\ude00","\ufb33":"x"},"a\"b":"c\\d"})"),
      Canon(R"({"seq":42,"time":"2026-11-27T21:01:25.000000001Z","log_id":"l","details":
               {"version":3,"cached":true,"ratio":-0.25}})")};
  static constexpr char kAlphabet[] =
      "\"\\{}[],: 0123456789-+.eEabfnrtuzA\x7f\x01\x1f\xc3\xa9\xed\xa0\xef\xac\xf0\x9f\x98";
  std::mt19937 rng(8785);
  int canonical = 0;
  for (const std::string& seed : seeds) {
    for (int n = 0; n < 20000; ++n) {
      const std::string t = lockbox::testing::RandomEdits(
          seed, std::string_view(kAlphabet, sizeof(kAlphabet) - 1), 3, rng);
      const bool want = ReferenceIsCanonical(t);
      ASSERT_EQ(IsCanonicalJson(t), want) << t;
      canonical += want ? 1 : 0;
    }
  }
  EXPECT_GT(canonical, 100);
}

TEST(JcsCheckTest, MembersAndStringValues) {
  std::vector<JcsMember> members;
  ASSERT_TRUE(IsCanonicalJson(R"({"a":"x\"y\\z\n\u001f","b":{"c":[1,2]},"c":-1.5})", &members));
  ASSERT_EQ(members.size(), 3u);
  EXPECT_EQ(members[0].name, "a");
  EXPECT_EQ(members[0].value, R"("x\"y\\z\n\u001f")");
  EXPECT_EQ(members[1].value, R"({"c":[1,2]})");
  EXPECT_EQ(members[2].value, "-1.5");
  std::string value;
  AppendJcsStringValue(members[0].value, value);
  EXPECT_EQ(value, "x\"y\\z\n\x1f");
  value.clear();
  AppendJcsStringValue("\"\xC3\xA9\\t\"", value);
  EXPECT_EQ(value, "\xC3\xA9\t");
  // Not an object, or not canonical: no members.
  EXPECT_TRUE(IsCanonicalJson("[1]", &members));
  EXPECT_TRUE(members.empty());
  EXPECT_FALSE(IsCanonicalJson(R"({"a":1,"b":01})", &members));
  EXPECT_TRUE(members.empty());
}

TEST(JcsCheckTest, AppendJcsNumberMatchesSerialize) {
  std::mt19937_64 rng(1);
  std::string out;
  for (int i = 0; i < 100000; ++i) {
    const double d = std::bit_cast<double>(rng());
    if (!std::isfinite(d)) continue;
    out.clear();
    ASSERT_TRUE(AppendJcsNumber(d, out).ok());
    EXPECT_EQ(out, *SerializeJcsNumber(d));
    // The text denotes d again, and is canonical.
    double back = 0;
    std::from_chars(out.data(), out.data() + out.size(), back);
    EXPECT_EQ(back, d) << out;
    EXPECT_TRUE(IsCanonicalJson(out)) << out;
  }
  EXPECT_FALSE(AppendJcsNumber(std::numeric_limits<double>::infinity(), out).ok());
}

}  // namespace
}  // namespace lockbox::crypto
