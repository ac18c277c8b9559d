#include "server/core/core.h"

#include <array>
#include <future>
#include <variant>

#include "crypto/encoding.h"
#include "server/blocking/would_block.h"
#include "server/core/core_impl.h"
#include "server/core/sys_backend.h"
#include "server/core/wire.h"
#include "server/logical/fields.h"

namespace lockbox::core {
namespace {

using logical::Operation;

constexpr std::string_view kAuditUnavailable = "audit log unavailable";
constexpr std::string_view kPermissionDenied = "permission denied";

// Root-protected paths (reference §1.5 step 6): "x*" is a prefix, anything else exact.
constexpr std::array<std::string_view, 11> kSudoPaths = {"sys/auth/*",
                                                         "sys/audit",
                                                         "sys/audit/*",
                                                         "sys/remount",
                                                         "sys/rotate*",
                                                         "sys/raw*",
                                                         "sys/config/auditing/*",
                                                         "sys/leases/lookup/*",
                                                         "sys/revoke-prefix/*",
                                                         "auth/token/accessors*",
                                                         "auth/token/revoke-orphan/*"};

bool IsRootProtected(std::string_view path) {
  for (std::string_view pattern : kSudoPaths) {
    if (pattern.ends_with('*') ? path.starts_with(pattern.substr(0, pattern.size() - 1))
                               : path == pattern) {
      return true;
    }
  }
  return false;
}

// The cubbyhole/ mount: recorded for compatibility, nothing is stored under it.
class CubbyholeBackend final : public logical::Backend {
 public:
  StatusOr<logical::Response> HandleRequest(const logical::Request&) override {
    return NotFoundError("");
  }
  Status Purge() override { return Status::Ok(); }
};

// How a mount type appears in audit ops and metric routes ("sys", not "system").
std::string Label(std::string_view mount_type) {
  return mount_type == "system" ? "sys" : std::string(mount_type);
}

std::string Op(std::string_view label, Operation operation) {
  return std::string(label) + "." + std::string(logical::CapabilityName(operation));
}

audit::Outcome OutcomeFor(int status) {
  if (status == 403) return audit::Outcome::kDenied;
  return status < 400 ? audit::Outcome::kOk : audit::Outcome::kError;
}

// The reason recorded for a failed request: the first error message of the answer.
std::string ReasonFor(const http::HttpResponse& response) {
  if (response.status < 400) return "";
  const auto body = nlohmann::json::parse(response.body, nullptr, false);
  if (body.is_object() && body.contains("errors") && body["errors"].is_array() &&
      !body["errors"].empty() && body["errors"][0].is_string()) {
    return body["errors"][0].get<std::string>();
  }
  return "status " + std::to_string(response.status);
}

MountRecord BuiltinMount(std::string path, std::string type, std::string description,
                         MountKind kind, bool local) {
  MountRecord record;
  record.kind = kind;
  record.entry.path = std::move(path);
  record.entry.type = std::move(type);
  record.entry.description = std::move(description);
  record.entry.local = local;
  record.entry.uuid = logical::NewUuid();
  record.entry.accessor = NewMountAccessor(kind, record.entry.type);
  return record;
}

std::vector<MountRecord> DefaultMounts(bool dev_mode) {
  std::vector<MountRecord> mounts = {
      BuiltinMount("sys/", "system", "system endpoints used for control, policy and debugging",
                   MountKind::kSecret, false),
      BuiltinMount("cubbyhole/", "cubbyhole", "per-token private secret storage",
                   MountKind::kSecret, true),
      BuiltinMount("identity/", "identity", "identity store", MountKind::kSecret, false),
      BuiltinMount("auth/token/", "token", "token based credentials", MountKind::kAuth, false),
  };
  if (dev_mode) {
    MountRecord secret =
        BuiltinMount("secret/", "kv", "key/value secret storage", MountKind::kSecret, false);
    secret.entry.options["version"] = "2";
    mounts.push_back(std::move(secret));
  }
  return mounts;
}

struct InitMeta {
  std::string cluster_id;
  SealConfig seal;
};

StatusOr<std::optional<InitMeta>> LoadInitMeta(store::Store& store) {
  LOCKBOX_ASSIGN_OR_RETURN(auto rows,
                           store.Query("SELECT value FROM core_meta WHERE key = 'init'", {}));
  if (rows.empty()) return std::optional<InitMeta>();
  LOCKBOX_ASSIGN_OR_RETURN(std::string text, store::GetText(rows[0], 0));
  const auto json = nlohmann::json::parse(text, nullptr, false);
  if (!json.is_object() || !json.contains("cluster_id") || !json["cluster_id"].is_string() ||
      !json.contains("seal")) {
    return DataLossError("core_meta: malformed init record");
  }
  InitMeta meta;
  meta.cluster_id = json["cluster_id"].get<std::string>();
  LOCKBOX_ASSIGN_OR_RETURN(meta.seal, SealConfigFromJson(json["seal"]));
  return std::optional<InitMeta>(std::move(meta));
}

}  // namespace

std::vector<store::Migration> CoreMigrations() {
  return {{"core", 1,
           "CREATE TABLE core_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
           "CREATE TABLE core_mounts (path TEXT PRIMARY KEY, entry TEXT NOT NULL);"
           "CREATE TABLE core_policies (name TEXT PRIMARY KEY, raw TEXT NOT NULL);"}};
}

// --- CoreImpl ---

CoreImpl::CoreImpl(CoreOptions options, store::Store& store,
                   std::function<StatusOr<Services>()> bring_up)
    : options_(std::move(options)), store_(store), bring_up_(std::move(bring_up)) {
  if (!options_.clock) options_.clock = [] { return std::chrono::system_clock::now(); };
  sys_ = std::make_shared<SysBackend>(*this);
  cubbyhole_ = std::make_shared<CubbyholeBackend>();
}

CoreImpl::~CoreImpl() {
  for (std::uint32_t n; (n = awaiting_audit_.load(std::memory_order_acquire)) != 0;) {
    awaiting_audit_.wait(n);
  }
}

Status CoreImpl::Start() {
  LOCKBOX_ASSIGN_OR_RETURN(policies_, PolicyStore::Load(store_));
  LOCKBOX_ASSIGN_OR_RETURN(std::optional<InitMeta> meta, LoadInitMeta(store_));
  if (!meta.has_value()) return Status::Ok();
  std::lock_guard lock(init_mutex_);
  LOCKBOX_ASSIGN_OR_RETURN(services_, bring_up_());
  token_backend_ = std::move(services_.token_backend);
  services_up_ = true;
  LOCKBOX_ASSIGN_OR_RETURN(auto records, LoadMountRows(store_));
  for (const MountRecord& record : records) {
    auto backend = MakeBackend(record);
    if (!backend.ok()) return backend.status().WithContext("mount " + record.entry.path);
    mounts_.Publish(std::make_shared<const Mount>(Mount{record, std::move(*backend)}));
  }
  cluster_id_ = meta->cluster_id;
  seal_.Configure(std::move(meta->seal));
  initialized_.store(true, std::memory_order_release);
  return Status::Ok();
}

audit_log::EventLog& CoreImpl::events() {
  return services_.events != nullptr ? *services_.events : *services_.audit;
}

StatusOr<std::shared_ptr<logical::Backend>> CoreImpl::MakeBackend(const MountRecord& record) {
  const std::string& type = record.entry.type;
  const std::string& path = record.entry.path;
  // Built-in backends exist only at their own paths.
  if (type == "system" && path == "sys/") return std::shared_ptr<logical::Backend>(sys_);
  if (type == "cubbyhole" && path == "cubbyhole/") return cubbyhole_;
  if (type == "token" && path == "auth/token/" && token_backend_ != nullptr) return token_backend_;
  logical::BackendFactory factory;
  if (type == "identity" && path == "identity/") {
    factory = services_.identity;
  } else {
    const auto& factories =
        record.kind == MountKind::kAuth ? services_.auth_methods : services_.secret_engines;
    if (const auto it = factories.find(type); it != factories.end()) factory = it->second;
  }
  if (!factory) return InvalidArgumentError("unknown backend type: \"" + type + "\"");
  LOCKBOX_ASSIGN_OR_RETURN(std::unique_ptr<logical::Backend> backend, factory(record.entry));
  if (backend == nullptr) return InternalError("backend factory for \"" + type + "\" failed");
  return std::shared_ptr<logical::Backend>(std::move(backend));
}

policy::Acl CoreImpl::AclFor(const logical::Principal& principal) const {
  if (principal.root) return policy::Acl::Root();
  return policies_->AclFor(principal.policies);
}

audit::Event CoreImpl::EventFor(const logical::Request& request, std::string op, int status) const {
  audit::Event event;
  event.request_id = request.request_id;
  event.actor = request.caller.actor;
  event.op = std::move(op);
  event.path = request.path;
  event.remote_addr = request.remote_addr;
  event.details["status"] = status;
  return event;
}

StatusOr<Core::InitResult> CoreImpl::Initialize(int secret_shares, int secret_threshold,
                                                std::optional<std::string> root_token_id,
                                                const keyring::Caller& caller) {
  LOCKBOX_RETURN_IF_ERROR(ValidateSealParameters(secret_shares, secret_threshold));
  std::lock_guard lock(init_mutex_);
  if (initialized()) return FailedPreconditionError("Vault is already initialized");
  if (!services_up_) {
    LOCKBOX_ASSIGN_OR_RETURN(services_, bring_up_());
    token_backend_ = std::move(services_.token_backend);
    services_up_ = true;
  }
  if (services_.tokens == nullptr || (services_.audit == nullptr && services_.events == nullptr)) {
    return FailedPreconditionError("bring-up provided no token store or audit log");
  }

  std::vector<std::shared_ptr<const Mount>> mounts;
  const std::vector<MountRecord> records = DefaultMounts(options_.dev_mode);
  for (const MountRecord& record : records) {
    LOCKBOX_ASSIGN_OR_RETURN(std::shared_ptr<logical::Backend> backend, MakeBackend(record));
    mounts.push_back(std::make_shared<const Mount>(Mount{record, std::move(backend)}));
  }
  LOCKBOX_ASSIGN_OR_RETURN(policy::Policy default_policy,
                           policy::ParsePolicy("default", policy::DefaultPolicyText()));

  auth::TokenParams root;
  root.id = std::move(root_token_id);
  root.policies = {"root"};
  root.display_name = "root";
  root.path = "auth/token/root";
  root.ttl = std::chrono::seconds(0);
  root.renewable = false;
  LOCKBOX_ASSIGN_OR_RETURN(auth::IssuedToken root_token, services_.tokens->Issue(root, caller));

  UnsealKeys keys = GenerateUnsealKeys(secret_shares, secret_threshold);
  const std::string cluster_id = logical::NewUuid();
  const nlohmann::json meta = {{"cluster_id", cluster_id},
                               {"seal", SealConfigToJson(keys.config)},
                               {"initialized_at", logical::FormatRfc3339Nano(now())}};
  const Status committed = store_.Commit([&](store::Transaction& tx) -> Status {
    LOCKBOX_RETURN_IF_ERROR(
        tx.Execute("INSERT INTO core_meta (key, value) VALUES ('init', ?)", {meta.dump()})
            .status());
    for (const MountRecord& record : records) LOCKBOX_RETURN_IF_ERROR(UpsertMountRow(tx, record));
    LOCKBOX_RETURN_IF_ERROR(PolicyStore::InsertRow(tx, default_policy));
    audit::Event event;
    event.request_id = caller.request_id;
    event.actor = caller.actor;
    event.remote_addr = caller.remote_addr;
    event.op = "sys.init";
    event.path = "sys/init";
    event.details = {{"secret_shares", secret_shares},
                     {"secret_threshold", secret_threshold},
                     {"root_token_accessor", root_token.entry.accessor}};
    return events().Append(tx, std::move(event));
  });
  if (!committed.ok()) {
    // Best effort: the root token of a failed init must not stay usable.
    (void)services_.tokens->Revoke(root_token.entry.accessor, false, caller);
    return committed;
  }
  policies_->Publish(std::move(default_policy));
  for (auto& mount : mounts) mounts_.Publish(std::move(mount));
  cluster_id_ = cluster_id;
  seal_.Configure(keys.config);
  initialized_.store(true, std::memory_order_release);

  Core::InitResult result;
  result.root_token = std::move(root_token.client_token);
  for (const crypto::SecureBuffer& key : keys.keys) {
    result.keys.push_back(crypto::HexEncode(key.span()));
  }
  return result;
}

void CoreImpl::Handle(http::HttpRequest& request, http::Respond respond) {
  const auto start = std::chrono::steady_clock::now();
  const std::string request_id = RequestIdFor(request);
  std::string route = "invalid";
  Reply reply = Compute(request, request_id, route);  // sets `route`
  Deliver(std::move(reply), std::move(route), start, request_id, std::move(respond));
}

bool CoreImpl::TryHandleWithoutBlocking(http::HttpRequest& request, http::Respond& respond) {
  // Reads are attempted: they change nothing before their first blocking call (see
  // server/blocking/would_block.h), so a refused attempt can simply be run again. So are the
  // POSTs and PUTs that the mount's backend says are such uses (Dispatch refuses the others).
  if (request.method != "GET" && request.method != "HEAD" && request.method != "LIST" &&
      request.method != "POST" && request.method != "PUT") {
    return false;
  }
  const auto start = std::chrono::steady_clock::now();
  const std::string request_id = RequestIdFor(request);
  std::string route = "invalid";
  Reply reply;
  {
    blocking::NonBlockingScope scope;
    reply = Compute(request, request_id, route);
    if (scope.blocked()) return false;
  }
  Deliver(std::move(reply), std::move(route), start, request_id, std::move(respond));
  return true;
}

CoreImpl::Reply CoreImpl::Compute(http::HttpRequest& request, const std::string& request_id,
                                  std::string& route) {
  try {
    TidyTokensIfDue();
    return Dispatch(request, request_id, route);
  } catch (...) {  // the listener's contract: never throw, never leak details
    return RenderErrors(500, {"internal error"}, request_id);
  }
}

void CoreImpl::Deliver(Reply reply, std::string route, std::chrono::steady_clock::time_point start,
                       std::string request_id, http::Respond respond) {
  if (!reply.event) {
    metrics_.Record(route, reply.response.status, std::chrono::steady_clock::now() - start);
    return respond(std::move(reply.response));
  }
  // The answer leaves once its record is durable; this thread moves on meanwhile.
  awaiting_audit_.fetch_add(1, std::memory_order_relaxed);
  events().RecordAsync(
      std::move(*reply.event), [this, start, request_id = std::move(request_id),
                                route = std::move(route), response = std::move(reply.response),
                                respond = std::move(respond)](const Status& recorded) mutable {
        if (!recorded.ok()) {
          response = RenderErrors(503, {std::string(kAuditUnavailable)}, request_id);
        }
        metrics_.Record(route, response.status, std::chrono::steady_clock::now() - start);
        respond(std::move(response));
        if (awaiting_audit_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
          awaiting_audit_.notify_all();
        }
      });
}

void CoreImpl::TidyTokensIfDue() {
  if (options_.token_tidy_interval.count() <= 0 || !initialized()) return;
  const std::int64_t now =
      std::chrono::duration_cast<std::chrono::nanoseconds>(options_.clock().time_since_epoch())
          .count();
  std::int64_t due = next_tidy_.load(std::memory_order_relaxed);
  if (now < due) return;
  // Revoking commits: a request that must not block leaves it to one that may.
  if (blocking::RefuseToBlock()) return;
  const std::int64_t next =
      now +
      std::chrono::duration_cast<std::chrono::nanoseconds>(options_.token_tidy_interval).count();
  // One request thread wins the slot; the others go on at once.
  if (!next_tidy_.compare_exchange_strong(due, next, std::memory_order_relaxed)) return;
  keyring::Caller caller;
  caller.actor = "system";
  // A failure is retried at the next interval; expired tokens are refused meanwhile anyway.
  (void)services_.tokens->RevokeExpired(caller);
}

CoreImpl::Reply CoreImpl::Dispatch(http::HttpRequest& http, const std::string& request_id,
                                   std::string& route) {
  auto parsed = ParseRequest(http);
  logical::Request request;
  request.request_id = request_id;
  request.remote_addr = http.remote_addr;
  request.caller.request_id = request_id;
  request.caller.actor = "anonymous";
  request.caller.remote_addr = http.remote_addr;

  if (const auto* error = std::get_if<WireError>(&parsed)) {
    http::HttpResponse response = RenderErrors(error->status, error->errors, request_id);
    if (!initialized()) return response;
    request.path = http.target.substr(0, http.target.find('?'));
    if (!IsValidUtf8(request.path)) request.path = "(not UTF-8)";
    return Finish(request, "http.request", std::move(response), "", false);
  }
  WireRequest& wire = std::get<WireRequest>(parsed);
  if (wire.operation != Operation::kRead && wire.operation != Operation::kList &&
      !IsAttemptableUse(wire.path) && blocking::RefuseToBlock()) {
    return Reply{};  // refused before anything happened: the request runs again where it may block
  }
  request.operation = wire.operation;
  request.path = std::move(wire.path);
  request.data = std::move(wire.data);
  request.content_type = std::move(wire.content_type);
  request.client_token = std::move(wire.client_token);

  if (SysBackend::IsStatusEndpoint(request.path)) {
    return HandleStatusEndpoint(request, wire.head, route);
  }
  route = Op("none", request.operation);
  if (!initialized()) return RenderErrors(503, {"Vault is not initialized"}, request_id);
  if (seal_.sealed()) {
    return Finish(request, Op("http", request.operation),
                  RenderErrors(503, {"Vault is sealed"}, request_id), "", false);
  }
  return Serve(request, route);
}

bool CoreImpl::IsAttemptableUse(const std::string& path) const {
  const std::shared_ptr<const Mount> mount = mounts_.Route(path);
  if (mount == nullptr || SysBackend::IsStatusEndpoint(path)) return false;
  const std::string& mount_point = mount->record.entry.path;
  return mount->backend->IsAttemptableUse(
      std::string_view(path).substr(std::min(path.size(), mount_point.size())));
}

CoreImpl::Reply CoreImpl::HandleStatusEndpoint(logical::Request& request, bool head,
                                               std::string& route) {
  route = Op("sys", request.operation);
  request.mount_point = "sys/";
  request.relative_path = request.path.substr(request.mount_point.size());
  auto result = sys_->HandleRequest(request);
  http::HttpResponse response =
      result.ok() ? RenderResponse(*result, request.path,
                                   {request.request_id, "system", request.operation, head})
                  : RenderStatus(result.status(), request.request_id, head);
  // Reads of the status endpoints are polled by load balancers and not audited; unseal attempts
  // and init are (init records its own event).
  if (request.operation == Operation::kRead || !initialized()) return response;
  return Finish(request, Op("sys", request.operation), std::move(response), "",
                result.ok() && result->audited);
}

CoreImpl::Reply CoreImpl::Serve(logical::Request& request, std::string& route) {
  Reply reply = AuthorizeAndRun(request, route);
  if (!request.principal.last_use) return reply;
  // The request's own record goes first, then the revocation it causes, so that the log never
  // shows a token used after its revocation. (This thread may block: spending the use did.)
  if (reply.event) {
    if (!events().Record(std::move(*reply.event)).ok()) {
      reply.response = RenderErrors(503, {std::string(kAuditUnavailable)}, request.request_id);
    }
    reply.event.reset();
  }
  // A failure leaves the token spent: refused meanwhile, revoked by the next token tidy.
  (void)services_.tokens->RevokeSpent(request.principal.accessor);
  return reply;
}

CoreImpl::Reply CoreImpl::AuthorizeAndRun(logical::Request& request, std::string& route) {
  const std::shared_ptr<const Mount> mount = mounts_.Route(request.path);
  if (mount != nullptr) {
    request.mount_point = mount->record.entry.path;
    request.relative_path = request.path.size() > request.mount_point.size()
                                ? request.path.substr(request.mount_point.size())
                                : std::string();
  }
  const bool unauthenticated =
      SysBackend::IsPublicPath(request.path) ||
      (mount != nullptr && mount->backend->IsUnauthenticated(request.relative_path));
  const std::string label = mount != nullptr ? Label(mount->record.entry.type) : "none";
  route = Op(label, request.operation);

  if (!request.client_token.empty()) {
    auto principal = services_.tokens->Authenticate(request.client_token, request.remote_addr);
    if (principal.ok()) {
      request.principal = std::move(*principal);
      if (!request.principal.accessor.empty()) request.caller.actor = request.principal.accessor;
    } else if (!unauthenticated) {
      const StatusCode code = principal.status().code();
      if (code == StatusCode::kPermissionDenied || code == StatusCode::kUnauthenticated ||
          code == StatusCode::kNotFound) {
        return Deny(request, Op(label, request.operation));
      }
      return Finish(request, Op(label, request.operation),
                    RenderStatus(principal.status(), request.request_id), "", false);
    }
  } else if (!unauthenticated) {
    return Deny(request, Op(label, request.operation));
  }

  if (mount == nullptr) {
    return Finish(
        request, Op(label, request.operation),
        RenderErrors(404, {"no handler for route \"" + request.path + "\". route entry not found."},
                     request.request_id),
        "", false);
  }
  logical::Backend& backend = *mount->backend;

  if (request.operation == Operation::kUpdate) {
    auto exists = backend.Exists(request);
    if (!exists.ok()) {
      return Finish(request, Op(label, request.operation),
                    RenderStatus(exists.status(), request.request_id), "", false);
    }
    if (exists->has_value() && !**exists) request.operation = Operation::kCreate;
  }
  const std::string op = Op(label, request.operation);
  route = op;

  if (request.principal.root) {
    request.sudo = true;
  } else if (!unauthenticated) {
    const policy::Acl acl = policies_->AclFor(request.principal.policies);
    const std::uint32_t granted = acl.Capabilities(request.path);
    const std::uint32_t needed =
        policy::CapabilityFromName(logical::CapabilityName(request.operation));
    const bool needs_sudo = IsRootProtected(request.path) || backend.IsSudo(request.relative_path);
    const bool allowed = (granted & policy::kDeny) == 0 && (granted & needed) != 0 &&
                         (!needs_sudo || (granted & policy::kSudo) != 0);
    if (!allowed) return Deny(request, op);
    request.sudo = (granted & policy::kSudo) != 0;
  }

  auto result = backend.HandleRequest(request);
  if (!result.ok()) {
    return Finish(request, op, RenderStatus(result.status(), request.request_id), "", false);
  }
  http::HttpResponse response =
      RenderResponse(*result, request.path,
                     {request.request_id, mount->record.entry.type, request.operation, false});
  if (result->event) return Reply(std::move(response), std::move(*result->event));
  return Finish(request, op, std::move(response), "", result->audited);
}

CoreImpl::Reply CoreImpl::Deny(const logical::Request& request, std::string_view op) {
  return Finish(request, op,
                RenderErrors(403, {std::string(kPermissionDenied)}, request.request_id), "", false);
}

CoreImpl::Reply CoreImpl::Finish(const logical::Request& request, std::string_view op,
                                 http::HttpResponse response, std::string_view reason,
                                 bool audited) {
  if (audited) return response;
  audit::Event event = EventFor(request, std::string(op), response.status);
  event.outcome = OutcomeFor(response.status);
  event.reason = reason.empty() ? ReasonFor(response) : std::string(reason);
  return Reply(std::move(response), std::move(event));
}

// --- Core ---

Core::Core(std::unique_ptr<CoreImpl> impl) : impl_(std::move(impl)) {}
Core::~Core() = default;

StatusOr<std::unique_ptr<Core>> Core::Create(CoreOptions options, store::Store& store,
                                             std::function<StatusOr<Services>()> bring_up) {
  LOCKBOX_RETURN_IF_ERROR(store.Migrate(CoreMigrations()));
  auto impl = std::make_unique<CoreImpl>(std::move(options), store, std::move(bring_up));
  LOCKBOX_RETURN_IF_ERROR(impl->Start());
  return std::unique_ptr<Core>(new Core(std::move(impl)));
}

void Core::Handle(http::HttpRequest& request, http::Respond respond, const http::Offload& offload) {
  if (impl_->TryHandleWithoutBlocking(request, respond)) return;
  offload([this, &request, respond = std::move(respond)]() mutable {
    impl_->Handle(request, std::move(respond));
  });
}

http::HttpResponse Core::Handle(http::HttpRequest& request) {
  std::promise<http::HttpResponse> answer;
  impl_->Handle(request,
                [&answer](http::HttpResponse response) { answer.set_value(std::move(response)); });
  return answer.get_future().get();
}

StatusOr<Core::InitResult> Core::Initialize(int secret_shares, int secret_threshold,
                                            std::optional<std::string> root_token_id) {
  keyring::Caller caller;
  caller.actor = "system";
  return impl_->Initialize(secret_shares, secret_threshold, std::move(root_token_id), caller);
}

bool Core::initialized() const { return impl_->initialized(); }
bool Core::sealed() const { return !impl_->initialized() || impl_->seal().sealed(); }

}  // namespace lockbox::core
