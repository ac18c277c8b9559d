#include "server/logical/fields.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "crypto/encoding.h"
#include "crypto/random.h"

namespace lockbox::logical {
namespace {

Status InvalidField(std::string_view field, std::string_view why) {
  return InvalidArgumentError("invalid value for \"" + std::string(field) +
                              "\": " + std::string(why));
}

const nlohmann::json* Find(const nlohmann::json& data, std::string_view field) {
  if (!data.is_object()) return nullptr;
  auto it = data.find(field);
  if (it == data.end() || it->is_null()) return nullptr;
  return &*it;
}

std::optional<std::int64_t> ParseDecimal(std::string_view text) {
  std::int64_t value = 0;
  if (text.empty()) return std::nullopt;
  const char* begin = text.data();
  if (*begin == '+') ++begin;
  auto [end, ec] = std::from_chars(begin, text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// Whole-second value of a JSON number, or nullopt if it is not integral.
std::optional<std::int64_t> IntegralNumber(const nlohmann::json& value) {
  if (value.is_number_integer()) return value.get<std::int64_t>();
  if (value.is_number_float()) {
    const double d = value.get<double>();
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9.2e18) {
      return static_cast<std::int64_t>(d);
    }
  }
  return std::nullopt;
}

std::string Trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t");
  return std::string(text.substr(first, last - first + 1));
}

}  // namespace

std::optional<bool> ParseGoBool(std::string_view text) {
  if (text == "1" || text == "t" || text == "T" || text == "TRUE" || text == "true" ||
      text == "True") {
    return true;
  }
  if (text == "0" || text == "f" || text == "F" || text == "FALSE" || text == "false" ||
      text == "False") {
    return false;
  }
  return std::nullopt;
}

StatusOr<std::optional<std::string>> GetString(const nlohmann::json& data, std::string_view field) {
  const nlohmann::json* value = Find(data, field);
  if (value == nullptr) return std::optional<std::string>{};
  if (value->is_string()) return std::optional<std::string>(value->get<std::string>());
  if (value->is_number() || value->is_boolean()) return std::optional<std::string>(value->dump());
  return InvalidField(field, "expected a string");
}

StatusOr<std::optional<bool>> GetBool(const nlohmann::json& data, std::string_view field) {
  const nlohmann::json* value = Find(data, field);
  if (value == nullptr) return std::optional<bool>{};
  if (value->is_boolean()) return std::optional<bool>(value->get<bool>());
  if (auto n = IntegralNumber(*value); n && (*n == 0 || *n == 1)) {
    return std::optional<bool>(*n == 1);
  }
  if (value->is_string()) {
    if (auto b = ParseGoBool(value->get_ref<const std::string&>())) return std::optional<bool>(*b);
  }
  return InvalidField(field, "expected a boolean");
}

StatusOr<std::optional<std::int64_t>> GetInt(const nlohmann::json& data, std::string_view field) {
  const nlohmann::json* value = Find(data, field);
  if (value == nullptr) return std::optional<std::int64_t>{};
  if (auto n = IntegralNumber(*value)) return std::optional<std::int64_t>(*n);
  if (value->is_string()) {
    if (auto n = ParseDecimal(value->get_ref<const std::string&>())) {
      return std::optional<std::int64_t>(*n);
    }
  }
  return InvalidField(field, "expected an integer");
}

StatusOr<std::chrono::seconds> ParseGoDuration(std::string_view text) {
  if (text.empty()) return InvalidArgumentError("empty duration");
  if (auto whole = ParseDecimal(text)) {
    if (*whole < 0) return InvalidArgumentError("negative duration");
    return std::chrono::seconds(*whole);
  }
  // Go's time.ParseDuration grammar: [-+]?([0-9]*(\.[0-9]*)?[a-z]+)+, units ns us µs ms s m h;
  // plus "d" (days), which newer Vault accepts. Hand-written: no Debian C++ library parses Go
  // durations, and the grammar is a few lines.
  std::size_t i = 0;
  if (text[0] == '+') i = 1;
  if (text[0] == '-') return InvalidArgumentError("negative duration");
  long double total_seconds = 0;
  bool any = false;
  while (i < text.size()) {
    const std::size_t number_start = i;
    while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) ++i;
    if (i == number_start)
      return InvalidArgumentError("invalid duration \"" + std::string(text) + "\"");
    const std::string number(text.substr(number_start, i - number_start));
    if (number == "." || number.find('.') != number.rfind('.')) {
      return InvalidArgumentError("invalid duration \"" + std::string(text) + "\"");
    }
    const std::size_t unit_start = i;
    while (i < text.size() && !((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) ++i;
    const std::string_view unit = text.substr(unit_start, i - unit_start);
    long double scale = 0;
    if (unit == "ns") {
      scale = 1e-9L;
    } else if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs") {
      scale = 1e-6L;
    } else if (unit == "ms") {
      scale = 1e-3L;
    } else if (unit == "s") {
      scale = 1;
    } else if (unit == "m") {
      scale = 60;
    } else if (unit == "h") {
      scale = 3600;
    } else if (unit == "d") {
      scale = 86400;
    } else {
      return InvalidArgumentError("invalid duration \"" + std::string(text) + "\"");
    }
    total_seconds += std::strtold(number.c_str(), nullptr) * scale;
    any = true;
  }
  if (!any || total_seconds > 9.2e15L) {
    return InvalidArgumentError("invalid duration \"" + std::string(text) + "\"");
  }
  return std::chrono::seconds(static_cast<std::int64_t>(total_seconds));
}

StatusOr<std::optional<std::chrono::seconds>> GetDuration(const nlohmann::json& data,
                                                          std::string_view field) {
  const nlohmann::json* value = Find(data, field);
  if (value == nullptr) return std::optional<std::chrono::seconds>{};
  if (auto n = IntegralNumber(*value)) {
    if (*n < 0) return InvalidField(field, "negative duration");
    return std::optional<std::chrono::seconds>(std::chrono::seconds(*n));
  }
  if (value->is_string()) {
    auto parsed = ParseGoDuration(value->get_ref<const std::string&>());
    if (!parsed.ok()) return InvalidField(field, parsed.status().message());
    return std::optional<std::chrono::seconds>(*parsed);
  }
  return InvalidField(field, "expected a duration");
}

StatusOr<std::optional<std::vector<std::string>>> GetStringList(const nlohmann::json& data,
                                                                std::string_view field) {
  const nlohmann::json* value = Find(data, field);
  if (value == nullptr) return std::optional<std::vector<std::string>>{};
  std::vector<std::string> items;
  auto add = [&items](std::string_view item) {
    std::string trimmed = Trim(item);
    if (!trimmed.empty()) items.push_back(std::move(trimmed));
  };
  if (value->is_string()) {
    std::string_view text = value->get_ref<const std::string&>();
    while (true) {
      const auto comma = text.find(',');
      add(text.substr(0, comma));
      if (comma == std::string_view::npos) break;
      text.remove_prefix(comma + 1);
    }
  } else if (value->is_array()) {
    for (const auto& item : *value) {
      if (!item.is_string()) return InvalidField(field, "expected a list of strings");
      add(item.get_ref<const std::string&>());
    }
  } else {
    return InvalidField(field, "expected a list of strings");
  }
  return std::optional<std::vector<std::string>>(std::move(items));
}

StatusOr<std::optional<std::map<std::string, std::string>>> GetStringMap(const nlohmann::json& data,
                                                                         std::string_view field) {
  const nlohmann::json* value = Find(data, field);
  if (value == nullptr) return std::optional<std::map<std::string, std::string>>{};
  if (!value->is_object()) return InvalidField(field, "expected an object");
  std::map<std::string, std::string> out;
  for (const auto& [key, item] : value->items()) {
    if (item.is_string()) {
      out[key] = item.get<std::string>();
    } else if (item.is_number() || item.is_boolean()) {
      out[key] = item.dump();
    } else if (!item.is_null()) {
      return InvalidField(field, "values must be strings");
    }
  }
  return std::optional<std::map<std::string, std::string>>(std::move(out));
}

std::string FormatGoDuration(std::chrono::seconds duration) {
  std::int64_t s = duration.count();
  if (s == 0) return "0s";
  std::string out;
  if (s < 0) {
    out = "-";
    s = -s;
  }
  const std::int64_t hours = s / 3600;
  const std::int64_t minutes = (s % 3600) / 60;
  const std::int64_t seconds = s % 60;
  if (hours > 0) out += std::to_string(hours) + "h";
  if (hours > 0 || minutes > 0) out += std::to_string(minutes) + "m";
  out += std::to_string(seconds) + "s";
  return out;
}

std::string FormatRfc3339Nano(std::chrono::system_clock::time_point time) {
  const auto since_epoch = time.time_since_epoch();
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch - secs).count();
  if (nanos < 0) {
    nanos += 1'000'000'000;
    secs -= std::chrono::seconds(1);
  }
  const std::time_t t = static_cast<std::time_t>(secs.count());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  std::string out(buf);
  if (nanos != 0) {
    char frac[32];
    std::snprintf(frac, sizeof(frac), ".%09lld", static_cast<long long>(nanos));
    std::string fraction(frac);
    while (fraction.back() == '0') fraction.pop_back();
    out += fraction;
  }
  out += 'Z';
  return out;
}

StatusOr<std::chrono::system_clock::time_point> ParseRfc3339(std::string_view text) {
  // YYYY-MM-DDTHH:MM:SS[.fraction]Z
  auto bad = [&] { return InvalidArgumentError("invalid time \"" + std::string(text) + "\""); };
  if (text.size() < 20 || text.back() != 'Z' || text[4] != '-' || text[7] != '-' ||
      (text[10] != 'T' && text[10] != 't') || text[13] != ':' || text[16] != ':') {
    return bad();
  }
  auto field = [&](std::size_t pos, std::size_t len) -> std::optional<int> {
    int v = 0;
    for (std::size_t i = pos; i < pos + len; ++i) {
      if (text[i] < '0' || text[i] > '9') return std::nullopt;
      v = v * 10 + (text[i] - '0');
    }
    return v;
  };
  auto year = field(0, 4), month = field(5, 2), day = field(8, 2), hour = field(11, 2),
       minute = field(14, 2), second = field(17, 2);
  if (!year || !month || !day || !hour || !minute || !second || *month < 1 || *month > 12 ||
      *day < 1 || *day > 31 || *hour > 23 || *minute > 59 || *second > 60) {
    return bad();
  }
  std::int64_t nanos = 0;
  std::size_t pos = 19;
  if (text[pos] == '.') {
    ++pos;
    std::size_t digits = 0;
    while (pos < text.size() - 1) {
      if (text[pos] < '0' || text[pos] > '9' || digits == 9) return bad();
      nanos = nanos * 10 + (text[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return bad();
    for (; digits < 9; ++digits) nanos *= 10;
  }
  if (pos != text.size() - 1) return bad();
  const std::chrono::year_month_day ymd{std::chrono::year(*year),
                                        std::chrono::month(static_cast<unsigned>(*month)),
                                        std::chrono::day(static_cast<unsigned>(*day))};
  if (!ymd.ok()) return bad();
  const auto days = std::chrono::sys_days(ymd);
  return std::chrono::time_point_cast<std::chrono::system_clock::duration>(
      days + std::chrono::hours(*hour) + std::chrono::minutes(*minute) +
      std::chrono::seconds(*second) + std::chrono::nanoseconds(nanos));
}

std::string NewUuid() {
  std::uint8_t b[16];
  crypto::RandomBytes(b);
  b[6] = static_cast<std::uint8_t>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<std::uint8_t>((b[8] & 0x3f) | 0x80);
  const std::string hex = crypto::HexEncode(b);
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20, 12);
}

}  // namespace lockbox::logical
