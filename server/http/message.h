// Beast-free pieces of the listener's message handling: header lookup, the JSON error responses
// the listener produces itself, and the checks a handler's response must pass before it is
// serialised (a CR or LF in a header would let a handler's input split the response).
// Thread safety: free functions, reentrant.
#pragma once

#include <string>
#include <string_view>

#include "crypto/status.h"
#include "server/http/listener.h"

namespace lockbox::http {

char AsciiLower(char c);
std::string AsciiLowerCopy(std::string_view s);
bool AsciiIEquals(std::string_view a, std::string_view b);

// `{"errors":[message]}` with Content-Type application/json and Cache-Control no-store.
HttpResponse JsonErrorResponse(int status, std::string_view message);

// Headers that frame the message on the connection; the listener sets them, never the handler.
bool IsFramingHeader(std::string_view name);

// OK if the status is a final status (200..599) and every header name is an RFC 9110 token and
// every value is free of CR, LF and NUL.
Status ValidateResponse(const HttpResponse& response);

}  // namespace lockbox::http
