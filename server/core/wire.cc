#include "server/core/wire.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "server/logical/fields.h"

namespace lockbox::core {
namespace {

using logical::Operation;

constexpr std::string_view kJsonContentType = "application/json";
constexpr std::string_view kMergePatchContentType = "application/merge-patch+json";
constexpr std::string_view kJwksTarget = "/.well-known/jwks.json";
constexpr std::string_view kJwksLogicalPath = "identity/oidc/.well-known/keys";

const std::string* FindHeader(const http::HttpRequest& request, std::string_view lower_name) {
  for (const auto& [name, value] : request.headers) {
    if (name == lower_name) return &value;
  }
  return nullptr;
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Collapses "//", strips the leading '/', and refuses control characters and dot segments
// (which would make the ACL path and the backend's path disagree).
StatusOr<std::string> CleanPath(std::string_view decoded) {
  std::string path;
  path.reserve(decoded.size());
  for (char c : decoded) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) return InvalidArgumentError("invalid path: control character");
    if (c == '/' && (path.empty() || path.back() == '/')) continue;
    path.push_back(c);
  }
  if (!IsValidUtf8(path)) return InvalidArgumentError("invalid path: not UTF-8");
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    const std::string_view segment(path.data() + start, end - start);
    if (segment == "." || segment == "..") {
      return InvalidArgumentError("invalid path: '.' and '..' segments are not allowed");
    }
    start = end + 1;
  }
  return path;
}

// Rejects bodies nested deeper than kMaxJsonDepth before the parser (and every later recursive
// walk, e.g. dump()) sees them.
bool NestingWithinLimit(std::string_view body) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > kMaxJsonDepth) return false;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return true;
}

StatusOr<nlohmann::json> ParseBody(std::string_view body) {
  if (Trim(body).find_first_not_of("\r\n") == std::string_view::npos) {
    return nlohmann::json::object();
  }
  if (!NestingWithinLimit(body)) {
    return InvalidArgumentError("failed to parse JSON input: nested too deeply");
  }
  nlohmann::json parsed;
  try {
    parsed = nlohmann::json::parse(body);
  } catch (const nlohmann::json::parse_error& e) {
    // The library's message may quote the input; report only the position.
    return InvalidArgumentError("failed to parse JSON input: syntax error at byte " +
                                std::to_string(e.byte));
  }
  if (parsed.is_null()) return nlohmann::json::object();
  if (!parsed.is_object()) {
    return InvalidArgumentError("failed to parse JSON input: the body must be a JSON object");
  }
  for (auto it = parsed.begin(); it != parsed.end();) {
    if (it->is_null()) {
      it = parsed.erase(it);
    } else {
      ++it;
    }
  }
  return parsed;
}

WireError Error(int status, std::string message) {
  WireError error;
  error.status = status;
  if (!message.empty()) error.errors.push_back(std::move(message));
  return error;
}

WireError Error(const Status& status) {
  return Error(logical::HttpStatusFor(status.code()), status.message());
}

std::string ClientToken(const http::HttpRequest& request) {
  if (const std::string* token = FindHeader(request, "x-vault-token");
      token != nullptr && !Trim(*token).empty()) {
    return std::string(Trim(*token));
  }
  if (const std::string* authorization = FindHeader(request, "authorization")) {
    const std::string_view value = Trim(*authorization);
    if (value.size() > 7 && Lower(value.substr(0, 7)) == "bearer ") {
      return std::string(Trim(value.substr(7)));
    }
  }
  return "";
}

http::HttpResponse BaseResponse(int status, std::string_view request_id,
                                std::string_view content_type = kJsonContentType) {
  http::HttpResponse response;
  response.status = status;
  response.headers.emplace_back("Content-Type", std::string(content_type));
  response.headers.emplace_back("Cache-Control", "no-store");
  response.headers.emplace_back("X-Request-Id", std::string(request_id));
  return response;
}

std::string Dump(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The envelope as Dump() would write it (members in key order, compact), with each value
// serialized in place rather than copied into an envelope object first: `data` can be large, and
// this is every answer's path.
std::string EnvelopeText(const logical::Response& response, const RenderOptions& options) {
  std::string body = R"({"auth":)";
  body += response.auth.has_value() ? Dump(*response.auth) : "null";
  body += R"(,"data":)";
  if (response.data_text.has_value()) {
    body += *response.data_text;
  } else {
    body += response.data.has_value() ? Dump(*response.data) : "null";
  }
  body += R"(,"lease_duration":)";
  body += std::to_string(response.lease_duration.count());
  body += R"(,"lease_id":"","mount_type":)";
  body += Dump(options.mount_type);
  body += R"(,"renewable":)";
  body += response.renewable ? "true" : "false";
  body += R"(,"request_id":)";
  body += Dump(options.request_id);
  body += R"(,"warnings":)";
  body += response.warnings.empty() ? "null" : Dump(response.warnings);
  body += R"(,"wrap_info":null})";
  return body;
}

// Vault answers 404 for a list whose "keys" are missing or empty, unless it has other data.
bool ListFoundNothing(const logical::Response& response) {
  if (!response.data.has_value() || !response.data->is_object()) {
    return response.warnings.empty() && !response.auth.has_value();
  }
  const auto keys = response.data->find("keys");
  if (keys == response.data->end() || keys->is_null()) {
    return response.data->empty() && response.warnings.empty();
  }
  return keys->is_array() && keys->empty();
}

}  // namespace

bool IsValidUtf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    std::size_t extra = 0;
    std::uint32_t code = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      extra = 1;
      code = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      code = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      code = c & 0x07;
    } else {
      return false;
    }
    if (i + extra >= text.size()) return false;
    for (std::size_t k = 1; k <= extra; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code = (code << 6) | (next & 0x3F);
    }
    constexpr std::array<std::uint32_t, 4> kMinimum = {0, 0x80, 0x800, 0x10000};
    if (code < kMinimum[extra] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) {
      return false;
    }
    i += extra + 1;
  }
  return true;
}

StatusOr<std::string> UrlDecode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) return InvalidArgumentError("invalid URL escape");
      const auto hex = [](char h) -> int {
        if (h >= '0' && h <= '9') return h - '0';
        if (h >= 'a' && h <= 'f') return h - 'a' + 10;
        if (h >= 'A' && h <= 'F') return h - 'A' + 10;
        return -1;
      };
      const int high = hex(text[i + 1]);
      const int low = hex(text[i + 2]);
      if (high < 0 || low < 0) return InvalidArgumentError("invalid URL escape");
      out.push_back(static_cast<char>(high * 16 + low));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

StatusOr<std::vector<std::pair<std::string, std::string>>> ParseQuery(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> pairs;
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (item.empty()) continue;
    const std::size_t eq = item.find('=');
    LOCKBOX_ASSIGN_OR_RETURN(std::string name, UrlDecode(item.substr(0, eq), true));
    std::string value;
    if (eq != std::string_view::npos) {
      LOCKBOX_ASSIGN_OR_RETURN(value, UrlDecode(item.substr(eq + 1), true));
    }
    if (!IsValidUtf8(name) || !IsValidUtf8(value)) {
      return InvalidArgumentError("invalid query string: not UTF-8");
    }
    pairs.emplace_back(std::move(name), std::move(value));
  }
  return pairs;
}

std::string RequestIdFor(const http::HttpRequest& request) {
  if (const std::string* id = FindHeader(request, "x-request-id")) {
    const bool sane =
        !id->empty() && id->size() <= 128 && std::all_of(id->begin(), id->end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == ':' ||
                 c == '-';
        });
    if (sane) return *id;
  }
  return logical::NewUuid();
}

std::variant<WireRequest, WireError> ParseRequest(const http::HttpRequest& request) {
  const std::size_t question = request.target.find('?');
  const std::string_view raw_path = std::string_view(request.target).substr(0, question);
  const std::string_view query = question == std::string::npos
                                     ? std::string_view()
                                     : std::string_view(request.target).substr(question + 1);

  WireRequest out;
  out.client_token = ClientToken(request);
  if (const std::string* type = FindHeader(request, "content-type")) {
    out.content_type = Lower(Trim(std::string_view(*type).substr(0, type->find(';'))));
  }
  if (const std::string* wrap = FindHeader(request, "x-vault-wrap-ttl");
      wrap != nullptr && !Trim(*wrap).empty()) {
    return Error(400, "response wrapping not supported");
  }
  if (const std::string* ns = FindHeader(request, "x-vault-namespace");
      ns != nullptr && !Trim(*ns).empty()) {
    return Error(400, "namespaces are not supported");
  }

  if (raw_path == kJwksTarget) {
    if (request.method != "GET") return Error(405, "unsupported operation");
    out.path = std::string(kJwksLogicalPath);
    return out;
  }
  if (!raw_path.starts_with("/v1/")) return Error(404, "");
  auto decoded = UrlDecode(raw_path.substr(4), false);
  if (!decoded.ok()) return Error(decoded.status());
  auto path = CleanPath(*decoded);
  if (!path.ok()) return Error(path.status());
  out.path = std::move(*path);
  if (out.path.empty()) return Error(404, "");

  auto pairs = ParseQuery(query);
  if (!pairs.ok()) return Error(pairs.status());
  nlohmann::json query_data = nlohmann::json::object();
  std::optional<std::string> list_value;
  for (auto& [name, value] : *pairs) {
    if (name == "list") {
      if (!list_value.has_value()) list_value = value;
      continue;
    }
    auto existing = query_data.find(name);
    if (existing == query_data.end()) {
      query_data[name] = std::move(value);
    } else {
      if (!existing->is_array()) *existing = nlohmann::json::array({*existing});
      existing->push_back(std::move(value));
    }
  }

  const std::string& method = request.method;
  if (method == "GET" || method == "HEAD") {
    out.operation = Operation::kRead;
    if (method == "HEAD") {
      if (out.path != "sys/health") return Error(405, "unsupported operation");
      out.head = true;
    }
    if (list_value.has_value() && !list_value->empty()) {
      const std::optional<bool> list = logical::ParseGoBool(*list_value);
      if (!list.has_value()) return Error(400, "invalid value for \"list\": must be a boolean");
      if (*list) out.operation = Operation::kList;
    }
    out.data = std::move(query_data);
  } else if (method == "LIST") {
    out.operation = Operation::kList;
    out.data = std::move(query_data);
  } else if (method == "DELETE") {
    out.operation = Operation::kDelete;
    out.data = std::move(query_data);
  } else if (method == "POST" || method == "PUT" || method == "PATCH") {
    out.operation = Operation::kUpdate;
    if (method == "PATCH") {
      if (out.content_type != kMergePatchContentType) {
        return Error(415, "PATCH requires Content-Type of " + std::string(kMergePatchContentType) +
                              ", provided " + out.content_type);
      }
      out.operation = Operation::kPatch;
    }
    auto body = ParseBody(request.body);
    if (!body.ok()) return Error(body.status());
    out.data = std::move(*body);
  } else {
    return Error(405, "unsupported operation");
  }
  if (out.operation == Operation::kList && !out.path.ends_with('/')) out.path.push_back('/');
  return out;
}

bool InjectsDataAtTopLevel(std::string_view path) {
  static constexpr std::array<std::string_view, 16> kExact = {"sys/audit",
                                                              "sys/auth",
                                                              "sys/config/cors",
                                                              "sys/config/auditing/request-headers",
                                                              "sys/capabilities",
                                                              "sys/capabilities-accessor",
                                                              "sys/capabilities-self",
                                                              "sys/ha-status",
                                                              "sys/key-status",
                                                              "sys/mounts",
                                                              "sys/policy",
                                                              "sys/rekey/backup",
                                                              "sys/rekey/recovery-key-backup",
                                                              "sys/remount",
                                                              "sys/rotate",
                                                              "sys/wrapping/wrap"};
  static constexpr std::array<std::string_view, 6> kPrefixes = {
      "sys/audit/",  "sys/audit-hash/", "sys/auth/", "sys/config/auditing/request-headers/",
      "sys/mounts/", "sys/policy/"};
  if (std::find(kExact.begin(), kExact.end(), path) != kExact.end()) return true;
  return std::any_of(kPrefixes.begin(), kPrefixes.end(),
                     [&](std::string_view prefix) { return path.starts_with(prefix); });
}

http::HttpResponse RenderResponse(const logical::Response& response, std::string_view path,
                                  const RenderOptions& options) {
  if (response.raw_text.has_value()) {
    http::HttpResponse out =
        BaseResponse(response.status != 0 ? response.status : 200, options.request_id,
                     response.raw_content_type.empty() ? "text/plain" : response.raw_content_type);
    if (!options.head) out.body = *response.raw_text;
    return out;
  }
  if (response.raw_json.has_value()) {
    http::HttpResponse out =
        BaseResponse(response.status != 0 ? response.status : 200, options.request_id);
    if (!options.head) out.body = Dump(*response.raw_json);
    return out;
  }
  const bool has_body = response.data.has_value() || response.data_text.has_value() ||
                        response.auth.has_value() || !response.warnings.empty();
  if (response.status == 0) {
    if (options.operation == Operation::kRead && !has_body) {
      return RenderErrors(404, {}, options.request_id, options.head);
    }
    if (options.operation == Operation::kList && ListFoundNothing(response)) {
      return RenderErrors(404, {}, options.request_id, options.head);
    }
    if (!has_body) return BaseResponse(204, options.request_id);
  }

  http::HttpResponse out =
      BaseResponse(response.status != 0 ? response.status : 200, options.request_id);
  if (options.head) return out;
  if (!(response.data.has_value() && response.data->is_object() && InjectsDataAtTopLevel(path))) {
    out.body = EnvelopeText(response, options);
    return out;
  }
  nlohmann::json envelope = {
      {"request_id", options.request_id},
      {"lease_id", ""},
      {"renewable", response.renewable},
      {"lease_duration", response.lease_duration.count()},
      {"data", response.data.value_or(nullptr)},
      {"wrap_info", nullptr},
      {"warnings",
       response.warnings.empty() ? nlohmann::json(nullptr) : nlohmann::json(response.warnings)},
      {"auth", response.auth.value_or(nullptr)},
      {"mount_type", options.mount_type},
  };
  for (const auto& [key, value] : response.data->items()) {
    if (!envelope.contains(key)) envelope[key] = value;
  }
  out.body = Dump(envelope);
  return out;
}

http::HttpResponse RenderErrors(int status, const std::vector<std::string>& errors,
                                std::string_view request_id, bool head) {
  http::HttpResponse out = BaseResponse(status, request_id);
  if (!head) out.body = Dump(nlohmann::json{{"errors", errors}});
  return out;
}

http::HttpResponse RenderStatus(const Status& status, std::string_view request_id, bool head) {
  std::vector<std::string> errors;
  if (!status.message().empty()) errors.push_back(status.message());
  return RenderErrors(logical::HttpStatusFor(status.code()), errors, request_id, head);
}

}  // namespace lockbox::core
