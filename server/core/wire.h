// The Vault wire format (reference §1): turning an HTTP request into the parts of a
// logical::Request, and a logical::Response or an error into the HTTP response.
//
// Parsing: only `/v1/...` (and GET `/.well-known/jwks.json`, answered by the identity mount's
// `oidc/.well-known/keys`); the path is percent-decoded, `//` collapsed, the leading '/' stripped;
// '.'/'..' segments and control characters are refused. Methods map to operations (GET read,
// GET ?list=<Go bool> or LIST → list with a trailing '/', POST/PUT update, DELETE, PATCH with
// application/merge-patch+json, HEAD only for sys/health). The body must be a JSON object (an empty
// body is {}), nested at most kMaxJsonDepth deep; GET/DELETE/LIST take the query string as data.
// Top-level JSON nulls are removed. X-Vault-Wrap-TTL and a non-empty X-Vault-Namespace → 400.
// Rendering: `Content-Type: application/json` exactly, `Cache-Control: no-store`, `X-Request-Id`;
// the envelope of §1.3 (with sys data injection), 204 for an empty answer, 404 for a read (or a
// list without keys) that found nothing, raw JSON/text passthrough, errors as {"errors":[...]}.
// Error messages never quote the request body (it may hold secrets).
// Thread safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "crypto/status.h"
#include "server/http/listener.h"
#include "server/logical/logical.h"

namespace lockbox::core {

inline constexpr int kMaxJsonDepth = 128;

struct WireRequest {
  logical::Operation operation = logical::Operation::kRead;
  bool head = false;  // HEAD sys/health: answer without a body
  std::string path;   // logical path (list operations end with '/')
  nlohmann::json data = nlohmann::json::object();
  std::string content_type;  // lower case, parameters stripped
  std::string client_token;  // X-Vault-Token, else Authorization: Bearer
};

// A request the router refuses before routing: the HTTP status and the error messages.
struct WireError {
  int status = 400;
  std::vector<std::string> errors;
};

// Parses `request`; on failure the WireError says what to answer.
std::variant<WireRequest, WireError> ParseRequest(const http::HttpRequest& request);

// Percent-decodes `text` ('+' → ' ' only when `plus_is_space`). INVALID_ARGUMENT on a bad escape.
StatusOr<std::string> UrlDecode(std::string_view text, bool plus_is_space);

// Query string → ordered (name, value) pairs, decoded.
StatusOr<std::vector<std::pair<std::string, std::string>>> ParseQuery(std::string_view query);

// Strict UTF-8 (no overlong forms, surrogates or code points above U+10FFFF).
bool IsValidUtf8(std::string_view text);

// The client's X-Request-Id if it is 1-128 characters of [A-Za-z0-9._:-], else a new UUID.
std::string RequestIdFor(const http::HttpRequest& request);

// True for the sys paths whose `data` Vault also copies to the top level of the envelope.
bool InjectsDataAtTopLevel(std::string_view path);

struct RenderOptions {
  std::string_view request_id;
  std::string_view mount_type;
  logical::Operation operation = logical::Operation::kRead;
  bool head = false;
};

http::HttpResponse RenderResponse(const logical::Response& response, std::string_view path,
                                  const RenderOptions& options);
// {"errors":[...]} with `status` (an empty list renders as {"errors":[]}).
http::HttpResponse RenderErrors(int status, const std::vector<std::string>& errors,
                                std::string_view request_id, bool head = false);
// A Status through logical::HttpStatusFor (NOT_FOUND with an empty message → {"errors":[]}).
http::HttpResponse RenderStatus(const Status& status, std::string_view request_id,
                                bool head = false);

}  // namespace lockbox::core
