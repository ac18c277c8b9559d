// The logical layer between the HTTP transport and the engines (Vault's "logical.Request").
//
// The router (server/core) turns an HTTP request into a logical::Request: the method becomes an
// Operation, the path is normalised and split at the longest mount, the body (or the query string
// for GET/DELETE/LIST) becomes `data` with JSON nulls removed, and the caller is authenticated and
// authorised before any backend runs. A backend (one instance per mount: KV, transit, token,
// AppRole, identity, sys) answers with a Response or a Status; the router maps either onto Vault's
// wire format (`../shared/reference/vault-api-subset.md` §1).
//
// Error mapping (HttpStatusFor): INVALID_ARGUMENT, FAILED_PRECONDITION, ABORTED, DATA_LOSS → 400;
// PERMISSION_DENIED, UNAUTHENTICATED → 403; NOT_FOUND → 404 (message "" gives {"errors":[]});
// UNIMPLEMENTED → 405; ALREADY_EXISTS → 409; RESOURCE_EXHAUSTED → 429; UNAVAILABLE → 503;
// INTERNAL → 500. Error messages reach the client verbatim: never put a secret in one.
//
// Thread safety: Backend::HandleRequest and Exists are called concurrently from many request
// threads; implementations must be thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "crypto/status.h"
#include "server/keyring/keyring.h"

namespace lockbox::logical {

enum class Operation { kRead, kList, kCreate, kUpdate, kDelete, kPatch };

// The ACL capability an operation needs: "read", "list", "create", "update", "delete", "patch".
std::string_view CapabilityName(Operation operation);

// Who is calling, resolved by the router from the client token before the backend runs.
struct Principal {
  std::string accessor;               // token accessor; "" for unauthenticated paths
  std::vector<std::string> policies;  // sorted, lower-case; contains "root" for root tokens
  bool root = false;                  // the root policy: bypasses every ACL check
  std::string display_name;
  std::string entity_id;  // stable id for identity tokens: "" if none
  std::map<std::string, std::string> metadata;
  // When the token expires (nullopt: never); identity tokens never outlive it.
  std::optional<std::chrono::system_clock::time_point> expire_time;
  // This request spent the token's last use: it runs, then the core revokes the token.
  bool last_use = false;
};

// One mount: a secrets engine or auth method at a path (the mount table's row).
struct MountEntry {
  std::string path;      // "secret/", "transit/", "auth/approle/" (always ends in '/')
  std::string type;      // "kv", "transit", "approle", "token", "identity", "system", ...
  std::string uuid;      // stable across remounts: engines key their stored data by it
  std::string accessor;  // "kv_1a2b3c4d"
  std::string description;
  std::map<std::string, std::string> options;  // e.g. {"version": "2"}
  std::chrono::seconds default_lease_ttl{0};   // 0: system default
  std::chrono::seconds max_lease_ttl{0};       // 0: system default
  bool local = false;
  bool seal_wrap = false;
};

struct Request {
  Operation operation = Operation::kRead;
  std::string path;         // full logical path, e.g. "secret/data/a" or "secret/metadata/" (list)
  std::string mount_point;  // the mount's path, e.g. "secret/" or "auth/approle/"
  std::string relative_path;  // the rest, e.g. "data/a"; list operations keep their trailing '/'
  // A JSON object: the body for POST/PUT/PATCH, the query parameters (as strings) otherwise.
  // Members whose value was JSON null are removed (null means absent).
  nlohmann::json data = nlohmann::json::object();
  std::string content_type;  // of the body, lower-case, parameters stripped
  std::string request_id;
  std::string remote_addr;   // client IP address, without port
  std::string client_token;  // the raw token as presented ("" if none); never log or audit it
  Principal principal;       // empty for unauthenticated paths
  bool sudo = false;         // the caller's ACL grants "sudo" on `path` (always for root)
  // Filled by the router for the keyring/audit: request_id, actor (accessor or "anonymous"),
  // remote_addr.
  keyring::Caller caller;
};

struct Response {
  // 0: 200 if there is a body (data, auth or warnings), 204 otherwise. Set explicitly for
  // Vault's "raw" answers (e.g. 404 with metadata for a deleted KV version, 400 for a batch with
  // failed items): the envelope is still sent, without an "errors" key.
  int status = 0;
  std::optional<nlohmann::json> data;  // the envelope's "data"
  // Instead of `data`: the envelope's "data" as JSON text, spliced into the answer as it is (a KV
  // read's stored value, which the server wrote and the keyring authenticated, is not parsed only
  // to be written out again). Only text this server rendered goes here.
  std::optional<std::string> data_text;
  std::optional<nlohmann::json> auth;  // the envelope's "auth" block
  std::vector<std::string> warnings;
  std::chrono::seconds lease_duration{0};
  bool renewable = false;
  // Not the envelope: the body is exactly this JSON (sys/health, sys/init, sys/seal-status, JWKS).
  std::optional<nlohmann::json> raw_json;
  // Not JSON at all (sys/metrics): body and its content type.
  std::optional<std::string> raw_text;
  std::string raw_content_type;
  // True when the backend already wrote this request's audit event itself (a state change and its
  // event in one transaction, or a keyring operation). Otherwise the router records one.
  bool audited = false;
  // The event of a read or use (a KV read, a transit decrypt): the router records it instead of
  // its own, durably, before any of this answer leaves; if it cannot, the answer is 503 without
  // data. Recording it in the router lets the request thread move on while the record commits.
  std::optional<audit::Event> event;
};

// A secrets engine or auth method mounted at one path.
class Backend {
 public:
  virtual ~Backend() = default;

  virtual StatusOr<Response> HandleRequest(const Request& request) = 0;

  // Vault's existence check (reference §1.5 step 5), asked for POST/PUT before authorisation:
  // true → the ACL needs "update", false → "create". nullopt: the path has no existence check
  // ("update"). The request's operation is kUpdate while this is asked; HandleRequest then sees
  // kCreate or kUpdate accordingly.
  virtual StatusOr<std::optional<bool>> Exists(const Request& request) {
    (void)request;
    return std::optional<bool>{};
  }

  // True if a POST/PUT to `relative_path` is a use that changes nothing, but idempotent caches,
  // before its first blocking call (server/blocking/would_block.h), as every read: the router may
  // then attempt it on a thread that must not block, as it does reads. Transit's encrypt, sign…
  virtual bool IsAttemptableUse(std::string_view relative_path) const {
    (void)relative_path;
    return false;
  }

  // Paths (relative to the mount) that need no token, e.g. AppRole's "login".
  virtual bool IsUnauthenticated(std::string_view relative_path) const {
    (void)relative_path;
    return false;
  }

  // Root-protected paths (relative to the mount) that need "sudo" besides the capability.
  virtual bool IsSudo(std::string_view relative_path) const {
    (void)relative_path;
    return false;
  }

  // Deletes everything this mount stores (the mount is being disabled). Idempotent.
  virtual Status Purge() = 0;

  // The mount moved (sys/remount): data stays keyed by the mount's uuid.
  virtual void Remounted(const MountEntry& entry) { (void)entry; }
};

// Makes the backend of a new or loaded mount (bound by main to the engine's dependencies).
using BackendFactory = std::function<StatusOr<std::unique_ptr<Backend>>(const MountEntry& entry)>;

// Maps a status code onto the HTTP status Vault would send (see the header comment).
int HttpStatusFor(StatusCode code);

}  // namespace lockbox::logical
