#include "server/http/message.h"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace lockbox::http {
namespace {

bool IsTokenChar(char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

}  // namespace

const std::string* HttpRequest::Header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return &value;
  }
  return nullptr;
}

char AsciiLower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string AsciiLowerCopy(std::string_view s) {
  std::string lower(s);
  std::transform(lower.begin(), lower.end(), lower.begin(), AsciiLower);
  return lower;
}

bool AsciiIEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return AsciiLower(x) == AsciiLower(y);
         });
}

HttpResponse JsonErrorResponse(int status, std::string_view message) {
  HttpResponse response;
  response.status = status;
  response.headers = {{"Content-Type", "application/json"}, {"Cache-Control", "no-store"}};
  response.body = nlohmann::json{{"errors", {std::string(message)}}}.dump();
  return response;
}

bool IsFramingHeader(std::string_view name) {
  return AsciiIEquals(name, "content-length") || AsciiIEquals(name, "transfer-encoding") ||
         AsciiIEquals(name, "connection");
}

Status ValidateResponse(const HttpResponse& response) {
  if (response.status < 200 || response.status > 599) {
    return InternalError("handler returned status " + std::to_string(response.status));
  }
  for (const auto& [name, value] : response.headers) {
    if (name.empty() || !std::all_of(name.begin(), name.end(), IsTokenChar)) {
      return InternalError("handler returned an invalid header name");
    }
    if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
      return InternalError("handler returned an invalid value for header " + name);
    }
  }
  return Status::Ok();
}

}  // namespace lockbox::http
