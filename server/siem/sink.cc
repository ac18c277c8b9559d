#include "server/siem/sink.h"

#include <nlohmann/json.hpp>

#include "crypto/encoding.h"

namespace lockbox::siem {
namespace {

bool Digits(std::string_view s, std::size_t at, std::size_t n, int& out) {
  if (at + n > s.size()) return false;
  int v = 0;
  for (std::size_t i = at; i < at + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  out = v;
  return true;
}

std::optional<std::chrono::system_clock::time_point> TimeField(const nlohmann::json& j) {
  if (!j.is_object()) return std::nullopt;
  auto it = j.find("time");
  if (it == j.end()) return std::nullopt;
  if (it->is_string()) return ParseRfc3339(it->get<std::string>());
  if (it->is_number()) {
    const double secs = it->get<double>();
    return std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::duration<double>(secs)));
  }
  return std::nullopt;
}

}  // namespace

std::string_view RecordKindName(RecordKind kind) {
  return kind == RecordKind::kCheckpoint ? "checkpoint" : "event";
}

std::string StreamLine(const StreamRecord& record) {
  if (record.kind == RecordKind::kEvent) return record.body;
  return nlohmann::json{{"checkpoint", record.body}}.dump();
}

std::optional<std::chrono::system_clock::time_point> ParseRfc3339(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm)
  int year, month, day, hour, minute, second;
  if (!Digits(s, 0, 4, year) || s.size() < 20 || s[4] != '-' || !Digits(s, 5, 2, month) ||
      s[7] != '-' || !Digits(s, 8, 2, day) || (s[10] != 'T' && s[10] != 't') ||
      !Digits(s, 11, 2, hour) || s[13] != ':' || !Digits(s, 14, 2, minute) || s[16] != ':' ||
      !Digits(s, 17, 2, second)) {
    return std::nullopt;
  }
  std::size_t i = 19;
  std::int64_t frac_ns = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    std::size_t digits = 0;
    std::int64_t scale = 100'000'000;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      if (digits < 9) frac_ns += (s[i] - '0') * scale;
      scale /= 10;
      ++digits;
      ++i;
    }
    if (digits == 0) return std::nullopt;
  }
  int offset_min = 0;
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    ++i;
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    int oh, om;
    if (!Digits(s, i + 1, 2, oh) || i + 3 >= s.size() || s[i + 3] != ':' ||
        !Digits(s, i + 4, 2, om)) {
      return std::nullopt;
    }
    offset_min = (oh * 60 + om) * (s[i] == '-' ? -1 : 1);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  const std::chrono::year_month_day ymd{std::chrono::year(year),
                                        std::chrono::month(static_cast<unsigned>(month)),
                                        std::chrono::day(static_cast<unsigned>(day))};
  if (!ymd.ok() || hour > 23 || minute > 59 || second > 60) return std::nullopt;
  auto t = std::chrono::sys_days(ymd) + std::chrono::hours(hour) + std::chrono::minutes(minute) +
           std::chrono::seconds(second) - std::chrono::minutes(offset_min) +
           std::chrono::nanoseconds(frac_ns);
  return std::chrono::time_point_cast<std::chrono::system_clock::duration>(t);
}

std::optional<std::chrono::system_clock::time_point> RecordTime(const StreamRecord& record) {
  if (record.kind == RecordKind::kEvent) {
    auto j = nlohmann::json::parse(record.body, nullptr, /*allow_exceptions=*/false);
    return TimeField(j);
  }
  // JWS compact: header.payload.signature; the payload is base64url JSON.
  const auto first = record.body.find('.');
  const auto second = first == std::string::npos ? first : record.body.find('.', first + 1);
  if (second == std::string::npos) return std::nullopt;
  auto payload =
      crypto::Base64UrlDecode(std::string_view(record.body).substr(first + 1, second - first - 1));
  if (!payload.ok()) return std::nullopt;
  auto j = nlohmann::json::parse(payload->begin(), payload->end(), nullptr, false);
  return TimeField(j);
}

}  // namespace lockbox::siem
