// RFC 8785 canonical JSON; see jcs.h for why this is hand-written.
#include "crypto/jcs.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace lockbox::crypto {
namespace {

using Json = nlohmann::json;

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
    if (!DecodeUtf8(s, i, cp)) return InvalidArgumentError("JSON string is not valid UTF-8");
  }
  return Status::Ok();
}

// Property-name sort key: the UTF-16 code units of the name (RFC 8785 §3.2.3).
StatusOr<std::u16string> ToUtf16(std::string_view s) {
  std::u16string out;
  out.reserve(s.size());
  std::size_t i = 0;
  char32_t cp = 0;
  while (i < s.size()) {
    if (!DecodeUtf8(s, i, cp)) return InvalidArgumentError("JSON member name is not valid UTF-8");
    if (cp >= 0x10000) {
      const char32_t v = cp - 0x10000;
      out.push_back(static_cast<char16_t>(0xD800 + (v >> 10)));
      out.push_back(static_cast<char16_t>(0xDC00 + (v & 0x3FF)));
    } else {
      out.push_back(static_cast<char16_t>(cp));
    }
  }
  return out;
}

// RFC 8785 §3.2.2.2 string serialisation. The input must already be valid UTF-8.
void AppendString(std::string_view s, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (u < 0x20) {
          out += "\\u00";
          out.push_back(kHex[u >> 4]);
          out.push_back(kHex[u & 0xF]);
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

Status Append(const Json& v, std::size_t depth, std::string& out) {
  switch (v.type()) {
    case Json::value_t::null:
      out += "null";
      return Status::Ok();
    case Json::value_t::boolean:
      out += v.get<bool>() ? "true" : "false";
      return Status::Ok();
    case Json::value_t::number_integer: {
      LOCKBOX_ASSIGN_OR_RETURN(std::string n,
                               SerializeJcsNumber(static_cast<double>(v.get<std::int64_t>())));
      out += n;
      return Status::Ok();
    }
    case Json::value_t::number_unsigned: {
      LOCKBOX_ASSIGN_OR_RETURN(std::string n,
                               SerializeJcsNumber(static_cast<double>(v.get<std::uint64_t>())));
      out += n;
      return Status::Ok();
    }
    case Json::value_t::number_float: {
      LOCKBOX_ASSIGN_OR_RETURN(std::string n, SerializeJcsNumber(v.get<double>()));
      out += n;
      return Status::Ok();
    }
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
      std::vector<std::pair<std::u16string, Json::const_iterator>> members;
      members.reserve(v.size());
      for (auto it = v.cbegin(); it != v.cend(); ++it) {
        LOCKBOX_ASSIGN_OR_RETURN(std::u16string key, ToUtf16(it.key()));
        members.emplace_back(std::move(key), it);
      }
      std::sort(members.begin(), members.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
      out.push_back('{');
      bool first = true;
      for (const auto& [key16, it] : members) {
        if (!first) out.push_back(',');
        first = false;
        AppendString(it.key(), out);
        out.push_back(':');
        LOCKBOX_RETURN_IF_ERROR(Append(it.value(), depth + 1, out));
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

}  // namespace

StatusOr<std::string> SerializeJcsNumber(double value) {
  if (!std::isfinite(value)) return InvalidArgumentError("NaN and Infinity are not valid JSON");
  if (value == 0) return std::string("0");  // also -0 (ECMAScript ToString(-0) is "0")
  std::string out;
  if (value < 0) {
    out.push_back('-');
    value = -value;
  }
  // Shortest round-trip digits (the unique shortest, closest to the value, as ECMAScript
  // Number::toString step 5 and its Note 2 require), in the form d[.ddd]e±x.
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::scientific);
  if (res.ec != std::errc()) return InternalError("number formatting failed");
  const std::string_view sci(buf, static_cast<std::size_t>(res.ptr - buf));
  const std::size_t e_pos = sci.find('e');
  if (e_pos == std::string_view::npos) return InternalError("unexpected number format");
  std::string digits;
  for (const char c : sci.substr(0, e_pos)) {
    if (c != '.') digits.push_back(c);
  }
  int exp10 = 0;
  std::string_view exp_text = sci.substr(e_pos + 1);
  if (!exp_text.empty() && exp_text.front() == '+') exp_text.remove_prefix(1);
  const auto exp_res = std::from_chars(exp_text.data(), exp_text.data() + exp_text.size(), exp10);
  if (exp_res.ec != std::errc()) return InternalError("unexpected number exponent");

  // ECMAScript: value = 0.digits × 10^n, k digits.
  const int k = static_cast<int>(digits.size());
  const int n = exp10 + 1;
  if (k <= n && n <= 21) {
    out += digits;
    out.append(static_cast<std::size_t>(n - k), '0');
  } else if (0 < n && n <= 21) {
    out.append(digits, 0, static_cast<std::size_t>(n));
    out.push_back('.');
    out.append(digits, static_cast<std::size_t>(n));
  } else if (-6 < n && n <= 0) {
    out += "0.";
    out.append(static_cast<std::size_t>(-n), '0');
    out += digits;
  } else {
    out.push_back(digits[0]);
    if (k > 1) {
      out.push_back('.');
      out.append(digits, 1);
    }
    out.push_back('e');
    out.push_back(n - 1 >= 0 ? '+' : '-');
    out += std::to_string(n - 1 >= 0 ? n - 1 : 1 - n);
  }
  return out;
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
