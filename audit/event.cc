#include "audit/event.h"

#include <cmath>
#include <utility>

#include "crypto/jcs.h"

namespace lockbox::audit {
namespace {

using nlohmann::json;

// Integers up to 2^53 survive JCS (which prints every number as an IEEE-754 double) exactly.
constexpr std::uint64_t kMaxExactInteger = std::uint64_t{1} << 53;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ", the only shape FormatTime produces.
bool IsEventTime(std::string_view t) {
  static constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:dd.dddddddddZ";
  if (t.size() != kShape.size()) return false;
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (kShape[i] == 'd' ? !IsDigit(t[i]) : t[i] != kShape[i]) return false;
  }
  return true;
}

Status CheckDetails(const json& details) {
  if (details.is_null()) return Status::Ok();
  if (!details.is_object()) return InvalidArgumentError("audit event details must be an object");
  for (const auto& [name, value] : details.items()) {
    if (!value.is_string() && !value.is_number() && !value.is_boolean()) {
      return InvalidArgumentError("audit event detail '" + name +
                                  "' must be a string, number or boolean");
    }
  }
  return Status::Ok();
}

StatusOr<std::string> GetString(const json& object, const char* name) {
  auto it = object.find(name);
  if (it == object.end() || !it->is_string()) {
    return InvalidArgumentError(std::string("audit event has no string \"") + name + "\"");
  }
  return it->get<std::string>();
}

}  // namespace

std::string_view OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kOk:
      return "ok";
    case Outcome::kDenied:
      return "denied";
    case Outcome::kError:
      return "error";
  }
  return "";
}

std::string FormatTime(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  const auto ns = time_point_cast<nanoseconds>(t);
  const auto day = floor<days>(ns);
  const year_month_day ymd{day};
  const hh_mm_ss<nanoseconds> tod{ns - day};
  // system_clock counts int64 nanoseconds: years 1677 to 2262, always four digits.
  const int year = int(ymd.year());
  // Digits written in place: snprintf was a measurable part of every audit append.
  std::string text = "0000-00-00T00:00:00.000000000Z";
  const auto put = [&text](std::size_t end, long long value) {
    for (std::size_t i = end; value != 0; value /= 10)
      text[--i] = static_cast<char>('0' + value % 10);
  };
  put(4, year);
  put(7, unsigned(ymd.month()));
  put(10, unsigned(ymd.day()));
  put(13, tod.hours().count());
  put(16, tod.minutes().count());
  put(19, tod.seconds().count());
  put(29, tod.subseconds().count());
  return text;
}

namespace {

json HmacsObject(const Event& event) {
  json hmacs = json::object();
  for (const auto& [field, value] : event.hmacs) hmacs[field] = value;
  return hmacs;
}

}  // namespace

json EventToJson(const Event& event) {
  json j = json::object();
  j["log_id"] = event.log_id;
  j["request_id"] = event.request_id;
  j["actor"] = event.actor;
  j["op"] = event.op;
  j["path"] = event.path;
  j["outcome"] = std::string(OutcomeName(event.outcome));
  if (!event.reason.empty()) j["reason"] = event.reason;
  j["remote_addr"] = event.remote_addr;
  if (!event.hmacs.empty()) j["hmacs"] = HmacsObject(event);
  if (!event.details.is_null() && !event.details.empty()) j["details"] = event.details;
  j["seq"] = event.seq;
  j["time"] = event.time;
  return j;
}

StatusOr<std::string> CanonicalEventHead(const Event& event) {
  LOCKBOX_RETURN_IF_ERROR(CheckDetails(event.details));
  // Written member by member in JCS order rather than built as a json tree and canonicalised:
  // that was most of the encoding cost of every audited request. The top-level names are ASCII,
  // so their byte order is their UTF-16 order; the nested objects go through CanonicalizeJson.
  // Every member sorts before "seq" ("actor" … "request_id").
  std::string head;
  head.reserve(192 + event.actor.size() + event.log_id.size() + event.op.size() +
               event.path.size() + event.reason.size() + event.remote_addr.size() +
               event.request_id.size());
  head += '{';
  const auto name = [&head](std::string_view member) {
    head += '"';
    head += member;
    head += "\":";
  };
  const auto string_member = [&](std::string_view member, std::string_view value) -> Status {
    name(member);
    LOCKBOX_RETURN_IF_ERROR(crypto::AppendJcsString(value, head));
    head += ',';
    return Status::Ok();
  };
  const auto object_member = [&](std::string_view member, const json& value) -> Status {
    name(member);
    LOCKBOX_ASSIGN_OR_RETURN(std::string text, crypto::CanonicalizeJson(value));
    head += text;
    head += ',';
    return Status::Ok();
  };
  LOCKBOX_RETURN_IF_ERROR(string_member("actor", event.actor));
  if (!event.details.is_null() && !event.details.empty()) {
    LOCKBOX_RETURN_IF_ERROR(object_member("details", event.details));
  }
  if (!event.hmacs.empty()) LOCKBOX_RETURN_IF_ERROR(object_member("hmacs", HmacsObject(event)));
  LOCKBOX_RETURN_IF_ERROR(string_member("log_id", event.log_id));
  LOCKBOX_RETURN_IF_ERROR(string_member("op", event.op));
  LOCKBOX_RETURN_IF_ERROR(string_member("outcome", OutcomeName(event.outcome)));
  LOCKBOX_RETURN_IF_ERROR(string_member("path", event.path));
  if (!event.reason.empty()) LOCKBOX_RETURN_IF_ERROR(string_member("reason", event.reason));
  LOCKBOX_RETURN_IF_ERROR(string_member("remote_addr", event.remote_addr));
  LOCKBOX_RETURN_IF_ERROR(string_member("request_id", event.request_id));
  return head;
}

StatusOr<std::string> CompleteCanonicalEvent(std::string head, std::uint64_t seq,
                                             std::string_view time) {
  if (seq > kMaxExactInteger) return InvalidArgumentError("audit event seq out of range");
  if (!IsEventTime(time)) {
    return InvalidArgumentError("audit event time must be RFC 3339 UTC with nanoseconds");
  }
  // Both need no escaping: seq is an exact integer, time only digits and "-:.TZ".
  head += R"("seq":)";
  head += std::to_string(seq);
  head += R"(,"time":")";
  head += time;
  head += R"("})";
  return head;
}

StatusOr<std::string> CanonicalEvent(const Event& event) {
  LOCKBOX_ASSIGN_OR_RETURN(std::string head, CanonicalEventHead(event));
  return CompleteCanonicalEvent(std::move(head), event.seq, event.time);
}

StatusOr<Event> ParseCanonicalEvent(std::string_view text) {
  // nlohmann refuses invalid UTF-8 and trailing content; duplicate members, whitespace, member
  // order, escapes and number forms all make the canonical form differ from the text.
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return InvalidArgumentError("audit event is not a JSON object");
  }
  auto canonical = crypto::CanonicalizeJson(j);
  if (!canonical.ok() || *canonical != text) {
    return InvalidArgumentError("audit event is not canonical JSON");
  }
  Event event;
  auto seq = j.find("seq");
  if (seq == j.end() || !seq->is_number_unsigned() ||
      seq->get<std::uint64_t>() > kMaxExactInteger) {
    return InvalidArgumentError("audit event has no valid \"seq\"");
  }
  event.seq = seq->get<std::uint64_t>();
  LOCKBOX_ASSIGN_OR_RETURN(event.time, GetString(j, "time"));
  if (!IsEventTime(event.time)) return InvalidArgumentError("audit event time is malformed");
  LOCKBOX_ASSIGN_OR_RETURN(event.log_id, GetString(j, "log_id"));
  LOCKBOX_ASSIGN_OR_RETURN(event.request_id, GetString(j, "request_id"));
  LOCKBOX_ASSIGN_OR_RETURN(event.actor, GetString(j, "actor"));
  LOCKBOX_ASSIGN_OR_RETURN(event.op, GetString(j, "op"));
  LOCKBOX_ASSIGN_OR_RETURN(event.path, GetString(j, "path"));
  LOCKBOX_ASSIGN_OR_RETURN(std::string outcome, GetString(j, "outcome"));
  if (outcome == "ok") {
    event.outcome = Outcome::kOk;
  } else if (outcome == "denied") {
    event.outcome = Outcome::kDenied;
  } else if (outcome == "error") {
    event.outcome = Outcome::kError;
  } else {
    return InvalidArgumentError("audit event outcome is unknown");
  }
  LOCKBOX_ASSIGN_OR_RETURN(event.remote_addr, GetString(j, "remote_addr"));
  std::size_t members = 9;  // the required ones
  if (j.contains("reason")) {
    LOCKBOX_ASSIGN_OR_RETURN(event.reason, GetString(j, "reason"));
    if (event.reason.empty()) return InvalidArgumentError("audit event reason is empty");
    ++members;
  }
  if (auto hmacs = j.find("hmacs"); hmacs != j.end()) {
    if (!hmacs->is_object() || hmacs->empty()) {
      return InvalidArgumentError("audit event hmacs must be a non-empty object");
    }
    for (const auto& [name, value] : hmacs->items()) {
      if (!value.is_string()) return InvalidArgumentError("audit event hmac is not a string");
      event.hmacs.emplace(name, value.get<std::string>());
    }
    ++members;
  }
  if (auto details = j.find("details"); details != j.end()) {
    if (!details->is_object() || details->empty()) {
      return InvalidArgumentError("audit event details must be a non-empty object");
    }
    LOCKBOX_RETURN_IF_ERROR(CheckDetails(*details));
    event.details = *details;
    ++members;
  }
  if (j.size() != members) return InvalidArgumentError("audit event has unknown members");
  return event;
}

}  // namespace lockbox::audit
