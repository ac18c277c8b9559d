// lockboxd: the Lockbox service.
//
//  - `lockboxd --dev [--data-dir DIR] [--dev-listen-address HOST:PORT] [--dev-root-token-id ID]
//    [--dev-tls]`: the embedded default. The SoftHSM2 token, keys and SQLite store live under the
//    data dir (created on first start, reused afterwards); the server initializes itself, mounts
//    `secret/` as KV v2 and prints its address and root token.
//  - `lockboxd --config FILE`: production. On an empty data dir the server is uninitialized until
//    `PUT /v1/sys/init`; afterwards it brings everything up at start.
// Both run until SIGTERM or SIGINT, then shut down gracefully: stop accepting, finish in-flight
// requests, write the audit log's "stop" checkpoint and let the SIEM sinks take it.
//
// Start-up order (each part outlives what uses it): HSM → store → listener (answers 503 until the
// core is ready) → core, whose bring_up opens the audit log, SIEM forwarder, keyring, token store
// and engine factories once the server is initialized.
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/audit_log/audit_log.h"
#include "server/auth/approle_backend.h"
#include "server/auth/identity_backend.h"
#include "server/auth/token_backend.h"
#include "server/auth/token_store.h"
#include "server/config.h"
#include "server/core/core.h"
#include "server/core/instrumented_hsm.h"
#include "server/dev_tls.h"
#include "server/dev_token.h"
#include "server/http/listener.h"
#include "server/keyring/keyring.h"
#include "server/secrets/kv.h"
#include "server/siem/forwarder.h"
#include "server/store/store.h"
#include "server/transit/transit.h"

namespace {

using namespace lockbox;

constexpr const char* kUsage =
    "usage: lockboxd --dev [--data-dir DIR] [--dev-listen-address HOST:PORT]\n"
    "                      [--dev-root-token-id ID] [--dev-tls]\n"
    "       lockboxd --config FILE\n"
    "  --dev                  embedded default: SoftHSM2 token and SQLite database under the data\n"
    "                         dir, initialized on first start, secret/ mounted as KV v2\n"
    "  --data-dir DIR         where state lives (default ./lockbox-dev-data)\n"
    "  --dev-listen-address   default 127.0.0.1:8200 (port 0: any free port)\n"
    "  --dev-root-token-id    the root token to create on first start (default: random)\n"
    "  --dev-tls              serve HTTPS with a self-signed CA made under the data dir\n"
    "  --config FILE          server configuration (JSON; see server/config.h)\n";

// How long a clean shutdown waits for in-flight requests, then for the SIEM sinks.
constexpr std::chrono::milliseconds kShutdownGrace{10'000};
constexpr std::chrono::milliseconds kShutdownDeliveryTimeout{5'000};

int Fail(const Status& s) {
  std::fprintf(stderr, "lockboxd: %s\n", s.ToString().c_str());
  return 1;
}

struct RunOptions {
  server::ServerConfig config;
  bool dev = false;
  std::optional<std::string> dev_root_token_id;
  bool dev_tls = false;
};

// Everything the process runs. Members are destroyed in reverse order: the listener stops first,
// the HSM goes last.
class Runtime {
 public:
  explicit Runtime(RunOptions options) : options_(std::move(options)) {}
  ~Runtime() { Shutdown(); }

  Status Start();
  const std::string& address() const { return address_; }
  // Graceful: stop the listener (in-flight requests finish), close the audit log (stop
  // checkpoint), let the sinks take it, stop the store. Returns false if something failed.
  bool Shutdown();

 private:
  StatusOr<core::Services> BringUp();
  Status InitializeDev();
  void AppendSinkMetrics(std::string& out) const;

  RunOptions options_;
  const server::ServerConfig& config() const { return options_.config; }
  std::string address_;
  std::string ca_cert_;
  bool shut_down_ = false;

  std::unique_ptr<hsm::Hsm> device_;
  std::unique_ptr<core::InstrumentedHsm> hsm_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<siem::Forwarder> forwarder_;
  std::unique_ptr<audit_log::AuditLog> audit_;
  std::unique_ptr<keyring::Keyring> keyring_;
  std::unique_ptr<auth::TokenStore> tokens_;
  std::atomic<core::Core*> ready_core_{nullptr};
  std::unique_ptr<core::Core> core_;
  std::unique_ptr<http::Listener> listener_;
};

Status Runtime::Start() {
  crypto::InitCrypto();
  const auto& data_dir = config().storage_path;
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) return UnavailableError("cannot create " + data_dir.string());

  hsm::HsmConfig hsm_config;
  if (config().pkcs11.has_value()) {
    hsm_config.module_path = config().pkcs11->module;
    hsm_config.token_label = config().pkcs11->token_label;
    hsm_config.pin_file = config().pkcs11->pin_file;
  } else {
    LOCKBOX_ASSIGN_OR_RETURN(hsm_config, server::PrepareDevToken(data_dir));
  }
  LOCKBOX_ASSIGN_OR_RETURN(device_, hsm::Hsm::Open(hsm_config));
  hsm_ = std::make_unique<core::InstrumentedHsm>(*device_);

  store::SqliteOptions store_options;
  store_options.path = (data_dir / "lockbox.db").string();
  LOCKBOX_ASSIGN_OR_RETURN(store_, store::OpenSqliteStore(store_options));

  http::ListenerOptions listen;
  listen.host = config().listener.host;
  listen.port = config().listener.port;
  listen.tls = !config().listener.tls_disable;
  listen.tls_cert_file = config().listener.tls_cert_file;
  listen.tls_key_file = config().listener.tls_key_file;
  listen.tls_min_version = config().listener.tls_min_version == server::TlsVersion::kTls13
                               ? http::TlsMinVersion::kTls13
                               : http::TlsMinVersion::kTls12;
  if (options_.dev && options_.dev_tls) {
    LOCKBOX_ASSIGN_OR_RETURN(server::DevTlsFiles files, server::PrepareDevTls(data_dir));
    listen.tls = true;
    listen.tls_cert_file = files.server_cert;
    listen.tls_key_file = files.server_key;
    ca_cert_ = files.ca_cert;
  }
  const auto& limits = config().limits;
  listen.max_body_bytes = limits.max_request_bytes;
  listen.max_header_bytes = limits.max_header_bytes;
  listen.max_connections = limits.max_connections;
  listen.io_threads = limits.io_threads != 0
                          ? static_cast<unsigned>(limits.io_threads)
                          : std::max(1u, std::thread::hardware_concurrency() / 2);
  listen.worker_threads = static_cast<unsigned>(limits.worker_threads);
  listen.read_timeout = limits.read_timeout;
  listen.idle_timeout = limits.idle_timeout;
  listen.per_client.per_second = static_cast<double>(limits.requests_per_second_per_client);
  listen.per_token.per_second = static_cast<double>(limits.requests_per_second_per_token);
  LOCKBOX_ASSIGN_OR_RETURN(
      listener_,
      http::Listener::Start(listen, [this](http::HttpRequest& request, http::Respond respond,
                                           const http::Offload& offload) {
        core::Core* core = ready_core_.load(std::memory_order_acquire);
        if (core == nullptr) {
          return respond(http::HttpResponse{
              503, {{"Content-Type", "application/json"}}, R"({"errors":["Vault is starting"]})"});
        }
        core->Handle(request, std::move(respond), offload);
      }));
  const std::string host =
      listen.host.find(':') != std::string::npos ? "[" + listen.host + "]" : listen.host;
  address_ = std::string(listen.tls ? "https://" : "http://") + host + ":" +
             std::to_string(listener_->port());

  core::CoreOptions core_options;
  core_options.default_lease_ttl = config().default_lease_ttl;
  core_options.max_lease_ttl = config().max_lease_ttl;
  core_options.dev_mode = options_.dev;
  LOCKBOX_ASSIGN_OR_RETURN(core_,
                           core::Core::Create(core_options, *store_, [this] { return BringUp(); }));
  ready_core_.store(core_.get(), std::memory_order_release);
  if (options_.dev) LOCKBOX_RETURN_IF_ERROR(InitializeDev());
  return Status::Ok();
}

StatusOr<core::Services> Runtime::BringUp() {
  const auto& data_dir = config().storage_path;
  if (!config().audit.sinks.empty()) {
    LOCKBOX_ASSIGN_OR_RETURN(forwarder_, siem::Forwarder::Create(*store_, config().audit.sinks));
  }
  audit_log::AuditLogOptions audit_options;
  audit_options.public_key_dir = data_dir;
  audit_options.checkpoint_every_events = config().audit.checkpoint_every_events;
  audit_options.checkpoint_every = config().audit.checkpoint_interval;
  if (forwarder_) {
    siem::Forwarder* forwarder = forwarder_.get();
    audit_options.on_records_committed = [forwarder] { forwarder->Notify(); };
  }
  LOCKBOX_ASSIGN_OR_RETURN(audit_, audit_log::AuditLog::Open(*store_, *hsm_, audit_options));
  // Started once the audit tables exist; the start checkpoint is picked up on the first read.
  if (forwarder_) LOCKBOX_RETURN_IF_ERROR(forwarder_->Start());
  LOCKBOX_ASSIGN_OR_RETURN(keyring_, keyring::Keyring::Open(*hsm_, *store_, *audit_));
  auth::TokenStoreOptions token_options;
  token_options.max_ttl = config().max_lease_ttl;
  LOCKBOX_ASSIGN_OR_RETURN(tokens_, auth::TokenStore::Open(*store_, *audit_, token_options));
  LOCKBOX_RETURN_IF_ERROR(store_->Migrate(secrets::KvMigrations()));
  LOCKBOX_RETURN_IF_ERROR(store_->Migrate(transit::TransitMigrations()));
  LOCKBOX_RETURN_IF_ERROR(store_->Migrate(auth::AppRoleMigrations()));
  LOCKBOX_RETURN_IF_ERROR(store_->Migrate(auth::IdentityMigrations()));

  core::Services services;
  services.hsm = hsm_.get();
  services.audit = audit_.get();
  services.keyring = keyring_.get();
  services.tokens = tokens_.get();
  auth::TokenBackendOptions token_backend;
  token_backend.default_ttl = config().default_lease_ttl;
  token_backend.max_ttl = config().max_lease_ttl;
  LOCKBOX_ASSIGN_OR_RETURN(services.token_backend,
                           auth::NewTokenBackend(*tokens_, *store_, *audit_, token_backend));
  const std::string issuer = address_ + "/v1/identity/oidc";
  services.identity = [this, issuer](const logical::MountEntry& entry) {
    auth::IdentityOptions options;
    options.issuer = issuer;
    return auth::NewIdentityBackend(entry, *hsm_, *store_, *audit_, options);
  };
  services.secret_engines["kv"] = [this](const logical::MountEntry& entry) {
    secrets::KvOptions options;
    options.default_lease_ttl = config().default_lease_ttl;
    return secrets::NewKvBackend(entry, *keyring_, *store_, *audit_, options);
  };
  services.secret_engines["transit"] = [this](const logical::MountEntry& entry) {
    return transit::NewTransitBackend(entry, *keyring_, *hsm_, *store_, *audit_);
  };
  services.auth_methods["approle"] = [this](const logical::MountEntry& entry) {
    auth::AppRoleOptions options;
    audit_log::AuditLog* audit = audit_.get();
    options.audit_hmac = [audit](std::string_view value) { return audit->Hmac(value); };
    return auth::NewAppRoleBackend(entry, *tokens_, *store_, *audit_, options);
  };
  services.append_metrics = [this](std::string& out) { AppendSinkMetrics(out); };
  return services;
}

void Runtime::AppendSinkMetrics(std::string& out) const {
  if (!forwarder_) return;
  out += "# HELP lockbox_audit_sink_lag_records Audit records committed but not yet accepted.\n";
  out += "# TYPE lockbox_audit_sink_lag_records gauge\n";
  const auto metrics = forwarder_->Metrics();
  for (const auto& m : metrics) {
    out += "lockbox_audit_sink_lag_records{sink=\"" + m.name + "\"} " +
           std::to_string(m.lag_records) + "\n";
  }
  out += "# HELP lockbox_audit_sink_lag_seconds Age of the oldest record a sink has not taken.\n";
  out += "# TYPE lockbox_audit_sink_lag_seconds gauge\n";
  for (const auto& m : metrics) {
    out += "lockbox_audit_sink_lag_seconds{sink=\"" + m.name + "\"} " +
           std::to_string(m.lag_seconds) + "\n";
  }
}

// Dev mode initializes itself on first start and keeps the root token in <data dir>/root-token
// (0600) so later starts can print it: a development convenience, never done with --config.
Status Runtime::InitializeDev() {
  const auto token_file = config().storage_path / "root-token";
  if (!core_->initialized()) {
    LOCKBOX_ASSIGN_OR_RETURN(core::Core::InitResult init,
                             core_->Initialize(1, 1, options_.dev_root_token_id));
    std::error_code ignored;
    std::filesystem::remove(token_file, ignored);  // left by an earlier, failed first start
    LOCKBOX_RETURN_IF_ERROR(server::WriteSecretFile(token_file, init.root_token + "\n"));
  }
  std::string root_token;
  std::ifstream(token_file) >> root_token;
  std::printf("Lockbox dev server (data dir %s)\n",
              std::filesystem::absolute(config().storage_path).c_str());
  std::printf("Root Token: %s\n", root_token.c_str());
  if (!ca_cert_.empty()) std::printf("CA Cert: %s\n", ca_cert_.c_str());
  std::printf("Dev mode: state persists in the data dir; do not use it in production.\n");
  return Status::Ok();
}

bool Runtime::Shutdown() {
  if (shut_down_) return true;
  shut_down_ = true;
  bool ok = true;
  if (listener_) listener_->Stop(kShutdownGrace);
  ready_core_.store(nullptr);
  if (audit_) {
    if (Status s = audit_->Close(); !s.ok()) {
      std::fprintf(stderr, "lockboxd: closing the audit log: %s\n", s.ToString().c_str());
      ok = false;
    }
  }
  // Let every sink take what is committed (bounded), then stop the forwarder.
  if (forwarder_) {
    std::int64_t newest = 0;
    if (auto rows = store_->Query("SELECT MAX(pos) FROM audit_records", {});
        rows.ok() && !rows->empty() && !store::IsNull(rows->front(), 0)) {
      newest = store::GetInt(rows->front(), 0).value();
    }
    const auto deadline = std::chrono::steady_clock::now() + kShutdownDeliveryTimeout;
    for (const auto& sink : config().audit.sinks) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (!forwarder_->WaitDelivered(sink.name, newest,
                                     std::max(left, std::chrono::milliseconds(0)))) {
        std::fprintf(stderr,
                     "lockboxd: audit sink '%s' has not taken every record up to pos %lld; it "
                     "resumes from its cursor on the next start\n",
                     sink.name.c_str(), static_cast<long long>(newest));
      }
    }
    forwarder_->Stop();
  }
  if (store_) store_->Shutdown();
  return ok;
}

int Run(RunOptions options) {
  // Block the shutdown signals before any thread starts, so every thread inherits the mask and
  // only the sigwait below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  if (int rc = pthread_sigmask(SIG_BLOCK, &signals, nullptr); rc != 0) {
    std::fprintf(stderr, "lockboxd: pthread_sigmask: %s\n", std::strerror(rc));
    return 1;
  }
  const bool dev = options.dev;
  const auto data_dir = options.config.storage_path;
  const std::size_t sinks = options.config.audit.sinks.size();
  Runtime runtime(std::move(options));
  if (Status s = runtime.Start(); !s.ok()) return Fail(s);
  if (!dev) {
    std::printf("lockboxd: running (data dir %s, %zu audit sinks)\n",
                std::filesystem::absolute(data_dir).c_str(), sinks);
  }
  std::printf("Api Address: %s\n", runtime.address().c_str());
  std::printf("lockboxd: ready\n");
  std::fflush(stdout);

  int signal_number = 0;
  if (int rc = sigwait(&signals, &signal_number); rc != 0) {
    std::fprintf(stderr, "lockboxd: sigwait: %s\n", std::strerror(rc));
    return 1;
  }
  std::fprintf(stderr, "lockboxd: %s received, shutting down\n",
               signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
  return runtime.Shutdown() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  // Core dumps could carry secrets: disable them.
  const rlimit no_core{0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  // Requests allocate and free buffers of up to a few hundred KiB; with glibc's default 128 KiB
  // trim threshold every such cycle shrinks and regrows the heap, and the page faults cost 10x the
  // encryption of a 64 KiB message (BENCHMARKS.md). Keep up to 64 MiB of freed heap instead.
  // (Release builds allocate with jemalloc, which keeps freed memory itself; this is for glibc's
  // malloc in the sanitizer builds and wherever jemalloc is left out.)
  mallopt(M_TRIM_THRESHOLD, 64 << 20);

  RunOptions options;
  std::optional<std::string> config_path;
  std::filesystem::path data_dir = "lockbox-dev-data";
  std::string dev_address = "127.0.0.1:8200";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--dev") {
      options.dev = true;
    } else if (arg == "--dev-tls") {
      options.dev_tls = true;
    } else if (arg == "--data-dir" && has_value) {
      data_dir = argv[++i];
    } else if (arg == "--dev-listen-address" && has_value) {
      dev_address = argv[++i];
    } else if (arg == "--dev-root-token-id" && has_value) {
      options.dev_root_token_id = argv[++i];
    } else if (arg == "--config" && has_value) {
      config_path = argv[++i];
    } else if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else {
      std::fprintf(stderr, "lockboxd: unknown argument '%s'\n%s", argv[i], kUsage);
      return 2;
    }
  }
  if (options.dev == config_path.has_value()) {
    std::fprintf(stderr, "lockboxd: choose one of --dev or --config FILE\n%s", kUsage);
    return 2;
  }
  if (config_path.has_value()) {
    auto config = server::LoadServerConfig(*config_path);
    if (!config.ok()) {
      std::fprintf(stderr, "lockboxd: %s: %s\n", config_path->c_str(),
                   config.status().message().c_str());
      return 2;
    }
    options.config = std::move(*config);
  } else {
    // Dev mode is the same server on a generated configuration: plain HTTP on loopback
    // unless --dev-tls.
    auto config = server::ParseServerConfig(
        nlohmann::json{{"listener", {{"address", dev_address}, {"tls_disable", true}}},
                       {"storage", {{"path", data_dir.string()}}}});
    if (!config.ok()) {
      std::fprintf(stderr, "lockboxd: --dev-listen-address: %s\n",
                   config.status().message().c_str());
      return 2;
    }
    options.config = std::move(*config);
  }
  return Run(std::move(options));
}
