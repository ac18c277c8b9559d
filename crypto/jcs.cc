// RFC 8785 canonical JSON; see jcs.h for why this is hand-written.
#include "crypto/jcs.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace lockbox::crypto {
namespace {

using Json = nlohmann::json;

// Longest SerializeJcsNumber output: "-0.00000" + 17 digits is 25 characters.
constexpr std::size_t kNumberBufferSize = 32;

// Decodes one UTF-8 scalar value starting at s[i]; advances i. Returns false for any ill-formed
// sequence (overlong forms, surrogates, values above U+10FFFF, truncation).
bool DecodeUtf8(std::string_view s, std::size_t& i, char32_t& out) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = byte(i);
  std::size_t len = 0;
  char32_t cp = 0;
  char32_t min = 0;
  if (b0 < 0x80) {
    out = b0;
    ++i;
    return true;
  } else if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return false;
  }
  if (s.size() - i < len) return false;
  for (std::size_t k = 1; k < len; ++k) {
    const unsigned char b = byte(i + k);
    if ((b & 0xC0) != 0x80) return false;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
  out = cp;
  i += len;
  return true;
}

Status ValidateUtf8(std::string_view s) {
  std::size_t i = 0;
  char32_t cp = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
    } else if (!DecodeUtf8(s, i, cp)) {
      return InvalidArgumentError("JSON string is not valid UTF-8");
    }
  }
  return Status::Ok();
}

// Sort rank of a code point such that comparing ranks orders code points as their UTF-16 code
// units compare (RFC 8785 §3.2.3): U+10000.. (high surrogate D800..DBFF first) sorts between
// U+D7FF and U+E000.
std::uint32_t Utf16Rank(char32_t cp) {
  if (cp >= 0x10000) return 0xD800 + static_cast<std::uint32_t>(cp - 0x10000);
  if (cp >= 0xE000) return static_cast<std::uint32_t>(cp) + 0x100000;
  return static_cast<std::uint32_t>(cp);
}

int HexDigitValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Next code point of a string that is valid UTF-8 (`escaped` false) or the validated body of a
// canonical JSON string literal (`escaped` true: its escapes are decoded).
char32_t NextCodePoint(std::string_view s, std::size_t& i, bool escaped) {
  const auto b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) {
    if (!escaped || b != '\\') {
      ++i;
      return b;
    }
    const char e = s[i + 1];
    i += 2;
    switch (e) {
      case 'b':
        return '\b';
      case 'f':
        return '\f';
      case 'n':
        return '\n';
      case 'r':
        return '\r';
      case 't':
        return '\t';
      case 'u': {
        char32_t v = 0;
        for (int k = 0; k < 4; ++k) v = (v << 4) | static_cast<char32_t>(HexDigitValue(s[i + k]));
        i += 4;
        return v;
      }
      default:
        return static_cast<unsigned char>(e);  // '"' or '\\'
    }
  }
  char32_t cp = 0;
  if (!DecodeUtf8(s, i, cp)) {
    ++i;  // unreachable for validated input; keeps the loop finite
    return 0xFFFD;
  }
  return cp;
}

// Compares two strings by their UTF-16 code units: <0, 0, >0.
int CompareUtf16(std::string_view a, std::string_view b, bool escaped) {
  std::size_t i = 0;
  std::size_t j = 0;
  while (i < a.size() && j < b.size()) {
    const auto ca = static_cast<unsigned char>(a[i]);
    const auto cb = static_cast<unsigned char>(b[j]);
    if (ca == cb && ca < 0x80 && (!escaped || ca != '\\')) {  // common ASCII prefix
      ++i, ++j;
      continue;
    }
    const std::uint32_t ra = Utf16Rank(NextCodePoint(a, i, escaped));
    const std::uint32_t rb = Utf16Rank(NextCodePoint(b, j, escaped));
    if (ra != rb) return ra < rb ? -1 : 1;
  }
  if (i < a.size()) return 1;
  if (j < b.size()) return -1;
  return 0;
}

// RFC 8785 §3.2.2.2 string serialisation. The input must already be valid UTF-8.
void AppendString(std::string_view s, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  std::size_t run = 0;  // start of the pending run of characters written as they are
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto u = static_cast<unsigned char>(s[i]);
    if (u >= 0x20 && u != '"' && u != '\\') continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (u) {
      case '"':
        out.append("\\\"", 2);
        break;
      case '\\':
        out.append("\\\\", 2);
        break;
      case '\b':
        out.append("\\b", 2);
        break;
      case '\f':
        out.append("\\f", 2);
        break;
      case '\n':
        out.append("\\n", 2);
        break;
      case '\r':
        out.append("\\r", 2);
        break;
      case '\t':
        out.append("\\t", 2);
        break;
      default: {
        const char esc[6] = {'\\', 'u', '0', '0', kHex[u >> 4], kHex[u & 0xF]};
        out.append(esc, sizeof(esc));
      }
    }
  }
  out.append(s.data() + run, s.size() - run);
  out.push_back('"');
}

// ECMAScript Number::toString of a finite double into `buf` (kNumberBufferSize bytes); returns
// the length, 0 for NaN/Infinity or a formatting failure.
std::size_t FormatNumber(double value, char* buf) {
  if (!std::isfinite(value)) return 0;
  char* out = buf;
  if (value == 0) {  // also -0 (ECMAScript ToString(-0) is "0")
    *out = '0';
    return 1;
  }
  if (value < 0) {
    *out++ = '-';
    value = -value;
  }
  // Shortest round-trip digits (the unique shortest, closest to the value, as ECMAScript
  // Number::toString step 5 and its Note 2 require), in the form d[.ddd]e±x.
  char sci[64];
  const auto res = std::to_chars(sci, sci + sizeof(sci), value, std::chars_format::scientific);
  if (res.ec != std::errc()) return 0;
  char digits[32];
  int k = 0;  // number of significant digits
  const char* p = sci;
  for (; p < res.ptr && *p != 'e'; ++p) {
    if (*p != '.') {
      if (k >= static_cast<int>(sizeof(digits))) return 0;
      digits[k++] = *p;
    }
  }
  if (p == res.ptr || k == 0) return 0;
  ++p;  // 'e'
  if (p < res.ptr && *p == '+') ++p;
  int exp10 = 0;
  const auto exp_res = std::from_chars(p, res.ptr, exp10);
  if (exp_res.ec != std::errc() || exp_res.ptr != res.ptr) return 0;

  // ECMAScript: value = 0.digits × 10^n, k digits.
  const int n = exp10 + 1;
  const auto put = [&](const char* s, int len) {
    std::memcpy(out, s, static_cast<std::size_t>(len));
    out += len;
  };
  const auto zeros = [&](int len) {
    std::memset(out, '0', static_cast<std::size_t>(len));
    out += len;
  };
  if (k <= n && n <= 21) {
    put(digits, k);
    zeros(n - k);
  } else if (0 < n && n <= 21) {
    put(digits, n);
    *out++ = '.';
    put(digits + n, k - n);
  } else if (-6 < n && n <= 0) {
    put("0.", 2);
    zeros(-n);
    put(digits, k);
  } else {
    *out++ = digits[0];
    if (k > 1) {
      *out++ = '.';
      put(digits + 1, k - 1);
    }
    *out++ = 'e';
    *out++ = n - 1 >= 0 ? '+' : '-';
    const int e = n - 1 >= 0 ? n - 1 : 1 - n;
    const auto r = std::to_chars(out, buf + kNumberBufferSize, e);
    if (r.ec != std::errc()) return 0;
    out = r.ptr;
  }
  return static_cast<std::size_t>(out - buf);
}

// Integers of magnitude up to 2^53 are exact doubles below 10^21, which ECMAScript prints as
// plain decimal integers: print them directly.
constexpr std::uint64_t kMaxExactInteger = std::uint64_t{1} << 53;

template <typename Int>
void AppendInteger(Int value, std::string& out) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof(buf), value);
  out.append(buf, static_cast<std::size_t>(r.ptr - buf));
}

// True if some member name may sort differently by UTF-16 code units than by UTF-8 bytes (the
// order nlohmann's std::map keeps): only names with U+E000..U+FFFF or U+10000.. can.
bool MapOrderMayDiffer(const Json& object) {
  for (auto it = object.cbegin(); it != object.cend(); ++it) {
    for (const char c : it.key()) {
      if (static_cast<unsigned char>(c) >= 0xEE) return true;
    }
  }
  return false;
}

Status Append(const Json& v, std::size_t depth, std::string& out);

Status AppendMember(const std::string& key, const Json& value, std::size_t depth, bool first,
                    std::string& out) {
  if (!first) out.push_back(',');
  AppendString(key, out);
  out.push_back(':');
  return Append(value, depth + 1, out);
}

Status Append(const Json& v, std::size_t depth, std::string& out) {
  switch (v.type()) {
    case Json::value_t::null:
      out.append("null", 4);
      return Status::Ok();
    case Json::value_t::boolean:
      if (v.get<bool>()) {
        out.append("true", 4);
      } else {
        out.append("false", 5);
      }
      return Status::Ok();
    case Json::value_t::number_integer: {
      const auto i = v.get<std::int64_t>();
      if (i >= -static_cast<std::int64_t>(kMaxExactInteger) &&
          i <= static_cast<std::int64_t>(kMaxExactInteger)) {
        AppendInteger(i, out);
        return Status::Ok();
      }
      return AppendJcsNumber(static_cast<double>(i), out);
    }
    case Json::value_t::number_unsigned: {
      const auto u = v.get<std::uint64_t>();
      if (u <= kMaxExactInteger) {
        AppendInteger(u, out);
        return Status::Ok();
      }
      return AppendJcsNumber(static_cast<double>(u), out);
    }
    case Json::value_t::number_float:
      return AppendJcsNumber(v.get<double>(), out);
    case Json::value_t::string: {
      const auto& s = v.get_ref<const std::string&>();
      LOCKBOX_RETURN_IF_ERROR(ValidateUtf8(s));
      AppendString(s, out);
      return Status::Ok();
    }
    case Json::value_t::array: {
      if (depth >= kMaxJcsDepth) return InvalidArgumentError("JSON nested too deeply");
      out.push_back('[');
      bool first = true;
      for (const auto& e : v) {
        if (!first) out.push_back(',');
        first = false;
        LOCKBOX_RETURN_IF_ERROR(Append(e, depth + 1, out));
      }
      out.push_back(']');
      return Status::Ok();
    }
    case Json::value_t::object: {
      if (depth >= kMaxJcsDepth) return InvalidArgumentError("JSON nested too deeply");
      for (auto it = v.cbegin(); it != v.cend(); ++it) {
        if (!ValidateUtf8(it.key()).ok()) {
          return InvalidArgumentError("JSON member name is not valid UTF-8");
        }
      }
      out.push_back('{');
      bool first = true;
      if (!MapOrderMayDiffer(v)) {
        // The map's byte order is code point order, which is UTF-16 order for these names.
        for (auto it = v.cbegin(); it != v.cend(); ++it) {
          LOCKBOX_RETURN_IF_ERROR(AppendMember(it.key(), it.value(), depth, first, out));
          first = false;
        }
      } else {
        std::vector<Json::const_iterator> members;
        members.reserve(v.size());
        for (auto it = v.cbegin(); it != v.cend(); ++it) members.push_back(it);
        std::sort(members.begin(), members.end(), [](const auto& a, const auto& b) {
          return CompareUtf16(a.key(), b.key(), /*escaped=*/false) < 0;
        });
        for (const auto& it : members) {
          LOCKBOX_RETURN_IF_ERROR(AppendMember(it.key(), it.value(), depth, first, out));
          first = false;
        }
      }
      out.push_back('}');
      return Status::Ok();
    }
    case Json::value_t::binary:
      return InvalidArgumentError("JSON binary values have no canonical form");
    case Json::value_t::discarded:
      return InvalidArgumentError("discarded JSON value");
  }
  return InvalidArgumentError("unknown JSON value type");
}

// One-pass check that a text is canonical (IsCanonicalJson). Every rule mirrors what Append
// would write for the value the text denotes.
class CanonicalChecker {
 public:
  explicit CanonicalChecker(std::string_view text) : s_(text) {}

  bool Check(std::vector<JcsMember>* members) {
    if (!Value(0, members)) return false;
    return pos_ == s_.size();
  }

 private:
  bool Value(std::size_t depth, std::vector<JcsMember>* members) {
    if (pos_ >= s_.size()) return false;
    switch (s_[pos_]) {
      case '{':
        return Object(depth, members);
      case '[':
        return Array(depth);
      case '"':
        return String();
      case 't':
        return Literal("true");
      case 'f':
        return Literal("false");
      case 'n':
        return Literal("null");
      default:
        return Number();
    }
  }

  bool Literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  // Canonical strings: raw valid UTF-8 except '"', '\\' and controls, which are written as
  // \" \\ \b \f \n \r \t or \u00xx (lower-case hex, only for the other controls).
  bool String() {
    const std::size_t n = s_.size();
    std::size_t i = pos_ + 1;
    while (true) {
      while (i < n) {
        const auto c = static_cast<unsigned char>(s_[i]);
        if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) break;
        ++i;
      }
      if (i >= n) return false;
      const auto c = static_cast<unsigned char>(s_[i]);
      if (c == '"') {
        pos_ = i + 1;
        return true;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        if (n - i < 2) return false;
        switch (s_[i + 1]) {
          case '"':
          case '\\':
          case 'b':
          case 'f':
          case 'n':
          case 'r':
          case 't':
            i += 2;
            continue;
          case 'u': {
            if (n - i < 6 || s_[i + 2] != '0' || s_[i + 3] != '0') return false;
            const char h = s_[i + 4];
            const char l = s_[i + 5];
            if ((h != '0' && h != '1') || !((l >= '0' && l <= '9') || (l >= 'a' && l <= 'f'))) {
              return false;
            }
            const int v = (h - '0') * 16 + HexDigitValue(l);
            if (v == '\b' || v == '\t' || v == '\n' || v == '\f' || v == '\r') return false;
            i += 6;
            continue;
          }
          default:
            return false;
        }
      }
      char32_t cp = 0;
      if (!DecodeUtf8(s_, i, cp)) return false;
    }
  }

  static bool IsNumberChar(char c) {
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
  }
  static bool IsDigit(char c) { return c >= '0' && c <= '9'; }

  // A canonical number is exactly AppendJcsNumber of the double it denotes.
  bool Number() {
    const std::size_t start = pos_;
    while (pos_ < s_.size() && IsNumberChar(s_[pos_])) ++pos_;
    const std::string_view token = s_.substr(start, pos_ - start);
    if (token.empty()) return false;
    // Fast path: an integer of at most 15 digits (below 2^53) is canonical iff it has no
    // leading zero and is not "-0".
    const std::size_t sign = token[0] == '-' ? 1 : 0;
    const std::size_t ndigits = token.size() - sign;
    if (ndigits >= 1 && ndigits <= 15 &&
        std::all_of(token.begin() + static_cast<std::ptrdiff_t>(sign), token.end(), IsDigit)) {
      return token[sign] != '0' || token.size() == 1;
    }
    double value = 0;
    const auto res = std::from_chars(token.data(), token.data() + token.size(), value);
    if (res.ec != std::errc() || res.ptr != token.data() + token.size()) return false;
    char buf[kNumberBufferSize];
    const std::size_t len = FormatNumber(value, buf);
    return len != 0 && token == std::string_view(buf, len);
  }

  bool Array(std::size_t depth) {
    if (depth >= kMaxJcsDepth) return false;
    ++pos_;  // '['
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      return true;
    }
    while (true) {
      if (!Value(depth + 1, nullptr)) return false;
      if (pos_ >= s_.size()) return false;
      const char c = s_[pos_++];
      if (c == ']') return true;
      if (c != ',') return false;
    }
  }

  bool Object(std::size_t depth, std::vector<JcsMember>* members) {
    if (depth >= kMaxJcsDepth) return false;
    ++pos_;  // '{'
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return true;
    }
    std::string_view previous;
    bool first = true;
    while (true) {
      if (pos_ >= s_.size() || s_[pos_] != '"') return false;
      const std::size_t name_start = pos_ + 1;
      if (!String()) return false;
      const std::string_view name = s_.substr(name_start, pos_ - 1 - name_start);
      // Strictly ascending by UTF-16 code units: sorted, and no duplicate names.
      if (!first && CompareUtf16(previous, name, /*escaped=*/true) >= 0) return false;
      previous = name;
      first = false;
      if (pos_ >= s_.size() || s_[pos_] != ':') return false;
      const std::size_t value_start = ++pos_;
      if (!Value(depth + 1, nullptr)) return false;
      if (members != nullptr) {
        members->push_back({name, s_.substr(value_start, pos_ - value_start)});
      }
      if (pos_ >= s_.size()) return false;
      const char c = s_[pos_++];
      if (c == '}') return true;
      if (c != ',') return false;
    }
  }

  std::string_view s_;
  std::size_t pos_ = 0;
};

}  // namespace

StatusOr<std::string> SerializeJcsNumber(double value) {
  std::string out;
  LOCKBOX_RETURN_IF_ERROR(AppendJcsNumber(value, out));
  return out;
}

Status AppendJcsNumber(double value, std::string& out) {
  if (!std::isfinite(value)) return InvalidArgumentError("NaN and Infinity are not valid JSON");
  char buf[kNumberBufferSize];
  const std::size_t len = FormatNumber(value, buf);
  if (len == 0) return InternalError("number formatting failed");
  out.append(buf, len);
  return Status::Ok();
}

Status AppendJcsString(std::string_view s, std::string& out) {
  LOCKBOX_RETURN_IF_ERROR(ValidateUtf8(s));
  AppendString(s, out);
  return Status::Ok();
}

bool IsCanonicalJson(std::string_view text, std::vector<JcsMember>* members) {
  if (members != nullptr) members->clear();
  CanonicalChecker checker(text);
  if (checker.Check(members)) return true;
  if (members != nullptr) members->clear();
  return false;
}

void AppendJcsStringValue(std::string_view literal, std::string& out) {
  if (literal.size() < 2) return;
  const std::string_view body = literal.substr(1, literal.size() - 2);
  if (body.find('\\') == std::string_view::npos) {
    out.append(body);
    return;
  }
  std::size_t i = 0;
  while (i < body.size()) {
    const auto c = static_cast<unsigned char>(body[i]);
    if (c >= 0x80 || c != '\\') {
      out.push_back(body[i++]);  // raw UTF-8 is copied byte by byte
    } else {
      out.push_back(static_cast<char>(NextCodePoint(body, i, /*escaped=*/true)));  // < 0x80
    }
  }
}

StatusOr<std::string> CanonicalizeJson(const nlohmann::json& value) {
  std::string out;
  LOCKBOX_RETURN_IF_ERROR(Append(value, 0, out));
  return out;
}

StatusOr<std::string> CanonicalizeJsonText(std::string_view text) {
  // nlohmann keeps the last of duplicate member names; I-JSON (RFC 7493 §2.3) forbids them, so
  // track the names of every open object and flag a repeat.
  // RFC 8259 §8.1: no byte order mark (nlohmann would silently skip one).
  if (text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") {
    return InvalidArgumentError("byte order mark before JSON text");
  }
  std::vector<std::set<std::string>> open_objects;
  bool duplicate = false;
  bool too_deep = false;
  const Json::parser_callback_t callback = [&](int depth, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case Json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case Json::parse_event_t::key:
        if (!open_objects.empty() && parsed.is_string() &&
            !open_objects.back().insert(parsed.get<std::string>()).second) {
          duplicate = true;
        }
        break;
      default:
        break;
    }
    if (depth > static_cast<int>(kMaxJcsDepth)) too_deep = true;
    return true;
  };
  Json parsed = Json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/false,
                            /*ignore_comments=*/false);
  if (parsed.is_discarded()) return InvalidArgumentError("malformed JSON");
  if (duplicate) return InvalidArgumentError("duplicate JSON member name");
  if (too_deep) return InvalidArgumentError("JSON nested too deeply");
  return CanonicalizeJson(parsed);
}

}  // namespace lockbox::crypto
