// lockboxd: the Lockbox service.
// Until the HTTP API lands:
//  - `lockboxd --dev` brings up the embedded default (SoftHSM2 token and SQLite database under the
//    data directory), runs an envelope-encryption smoke check through the keyring, reports what it
//    did and exits;
//  - `lockboxd --config FILE` loads the server configuration (server/config.h), brings up the HSM,
//    store, audit log (with its SIEM forwarders) and keyring, and runs until SIGTERM or SIGINT,
//    then shuts down cleanly: the "stop" checkpoint is written and delivered to the sinks.
#include <signal.h>
#include <sys/resource.h>

#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <malloc.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/encoding.h"
#include "server/audit_log/audit_log.h"
#include "server/config.h"
#include "server/dev_token.h"
#include "server/keyring/keyring.h"
#include "server/siem/forwarder.h"
#include "server/store/store.h"

namespace {

using namespace lockbox;

constexpr const char* kUsage =
    "usage: lockboxd --dev [--data-dir DIR]\n"
    "       lockboxd --config FILE\n"
    "  --dev            embedded default: SoftHSM2 token and SQLite database under the data dir\n"
    "  --data-dir DIR   where state lives (default ./lockbox-dev-data)\n"
    "  --config FILE    server configuration (JSON; see server/config.h)\n";

// How long a clean shutdown waits for the SIEM sinks to take the records committed so far.
constexpr std::chrono::milliseconds kShutdownDeliveryTimeout{5'000};

int Fail(const Status& s) {
  std::fprintf(stderr, "lockboxd: %s\n", s.ToString().c_str());
  return 1;
}

struct StartupOptions {
  std::filesystem::path data_dir;
  std::optional<hsm::HsmConfig> hsm;  // nullopt: SoftHSM2 dev token under data_dir
  std::uint64_t checkpoint_every_events = 1000;
  std::chrono::milliseconds checkpoint_every{10'000};
  std::vector<siem::SinkConfig> sinks;
};

// The running core. Members are destroyed in reverse order: keyring, audit log (writes the "stop"
// checkpoint if not closed yet), forwarder, store, HSM — each outlives what uses it.
struct Services {
  std::string store_path;
  std::unique_ptr<hsm::Hsm> hsm;
  std::unique_ptr<store::Store> store;
  std::unique_ptr<siem::Forwarder> forwarder;  // null when no sinks are configured
  std::unique_ptr<audit_log::AuditLog> audit;
  std::unique_ptr<keyring::Keyring> keyring;
};

// Shared start-up of every mode: HSM → store → (forwarder) → audit log → keyring.
StatusOr<std::unique_ptr<Services>> StartServices(const StartupOptions& options) {
  crypto::InitCrypto();
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) return UnavailableError("cannot create " + options.data_dir.string());

  auto services = std::make_unique<Services>();
  hsm::HsmConfig hsm_config;
  if (options.hsm.has_value()) {
    hsm_config = *options.hsm;
  } else {
    LOCKBOX_ASSIGN_OR_RETURN(hsm_config, server::PrepareDevToken(options.data_dir));
  }
  LOCKBOX_ASSIGN_OR_RETURN(services->hsm, hsm::Hsm::Open(hsm_config));

  store::SqliteOptions store_options;
  store_options.path = (options.data_dir / "lockbox.db").string();
  services->store_path = store_options.path;
  LOCKBOX_ASSIGN_OR_RETURN(services->store, store::OpenSqliteStore(store_options));

  if (!options.sinks.empty()) {
    LOCKBOX_ASSIGN_OR_RETURN(services->forwarder,
                             siem::Forwarder::Create(*services->store, options.sinks));
  }

  audit_log::AuditLogOptions audit_options;
  audit_options.public_key_dir = options.data_dir;
  audit_options.checkpoint_every_events = options.checkpoint_every_events;
  audit_options.checkpoint_every = options.checkpoint_every;
  if (services->forwarder) {
    siem::Forwarder* forwarder = services->forwarder.get();
    audit_options.on_records_committed = [forwarder] { forwarder->Notify(); };
  }
  LOCKBOX_ASSIGN_OR_RETURN(
      services->audit, audit_log::AuditLog::Open(*services->store, *services->hsm, audit_options));
  // Started once the audit tables exist; the start checkpoint is picked up on the first read.
  if (services->forwarder) LOCKBOX_RETURN_IF_ERROR(services->forwarder->Start());

  LOCKBOX_ASSIGN_OR_RETURN(
      services->keyring,
      keyring::Keyring::Open(*services->hsm, *services->store, *services->audit));
  return services;
}

int RunDev(const std::filesystem::path& data_dir) {
  StartupOptions options;
  options.data_dir = data_dir;
  auto started = StartServices(options);
  if (!started.ok()) return Fail(started.status());
  Services& services = **started;
  auto& kr = *services.keyring;

  constexpr std::string_view kKey = "dev/demo";
  if (kr.ReadKey(kKey).status().code() == StatusCode::kNotFound) {
    if (Status s = kr.CreateKey(kKey); !s.ok()) return Fail(s);
  }
  const std::string message = "hello from lockbox";
  auto ciphertext = kr.Encrypt(kKey, crypto::AsBytes(message), crypto::AsBytes("demo-context"));
  if (!ciphertext.ok()) return Fail(ciphertext.status());
  auto plaintext = kr.Decrypt(kKey, *ciphertext, crypto::AsBytes("demo-context"));
  if (!plaintext.ok()) return Fail(plaintext.status());
  const bool round_trip = plaintext->view() == message;
  auto meta = kr.ReadKey(kKey);

  std::printf("lockboxd (dev): data dir %s\n", std::filesystem::absolute(data_dir).c_str());
  std::printf("  HSM:      SoftHSM2 token 'lockbox-dev' (%s/softhsm)\n", data_dir.c_str());
  std::printf("  store:    %s (SQLite, WAL, synchronous=FULL)\n", services.store_path.c_str());
  std::printf("  keys:     %zu, '%s' at version %u\n", kr.ListKeys().size(),
              std::string(kKey).c_str(), meta.ok() ? meta->latest_version : 0);
  std::printf("  encrypt:  %s\n", ciphertext->c_str());
  std::printf("  decrypt:  %s\n", round_trip ? "round trip OK" : "MISMATCH");
  const auto head = services.audit->head();
  std::printf("  audit:    log %s at seq %llu; verify with\n", head.log_id.c_str(),
              static_cast<unsigned long long>(head.seq));
  std::printf("            build/bin/lockbox-audit verify --db %s --public-key %s\n",
              services.store_path.c_str(), (data_dir / "audit-public-key.pem").c_str());
  std::printf("The HTTP API is not served yet; this run checked the key hierarchy end to end.\n");
  return round_trip ? 0 : 1;
}

// Newest pos in the audit stream (0: empty).
std::int64_t NewestAuditPos(store::Store& store) {
  auto rows = store.Query("SELECT MAX(pos) FROM audit_records", {});
  if (!rows.ok() || rows->empty() || store::IsNull(rows->front(), 0)) return 0;
  auto pos = store::GetInt(rows->front(), 0);
  return pos.ok() ? *pos : 0;
}

int RunServer(const std::string& config_path) {
  auto config = server::LoadServerConfig(config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "lockboxd: %s: %s\n", config_path.c_str(),
                 config.status().message().c_str());
    return 2;
  }

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

  StartupOptions options;
  options.data_dir = config->storage_path;
  if (config->pkcs11.has_value()) {
    hsm::HsmConfig hsm_config;
    hsm_config.module_path = config->pkcs11->module;
    hsm_config.token_label = config->pkcs11->token_label;
    hsm_config.pin_file = config->pkcs11->pin_file;
    options.hsm = hsm_config;
  }
  options.checkpoint_every_events = config->audit.checkpoint_every_events;
  options.checkpoint_every = config->audit.checkpoint_interval;
  options.sinks = config->audit.sinks;
  auto started = StartServices(options);
  if (!started.ok()) return Fail(started.status());
  Services& services = **started;

  std::printf(
      "lockboxd: running (data dir %s, %zu audit sinks); the HTTP API arrives with the next "
      "release\n",
      std::filesystem::absolute(config->storage_path).c_str(), config->audit.sinks.size());
  std::fflush(stdout);

  int signal_number = 0;
  if (int rc = sigwait(&signals, &signal_number); rc != 0) {
    std::fprintf(stderr, "lockboxd: sigwait: %s\n", std::strerror(rc));
    return 1;
  }
  std::fprintf(stderr, "lockboxd: %s received, shutting down\n",
               signal_number == SIGTERM ? "SIGTERM" : "SIGINT");

  // Stop accepting work (no listener yet), then write the "stop" checkpoint.
  services.keyring.reset();
  int exit_code = 0;
  if (Status s = services.audit->Close(); !s.ok()) {
    std::fprintf(stderr, "lockboxd: closing the audit log: %s\n", s.ToString().c_str());
    exit_code = 1;
  }
  // Let every sink take what is committed (bounded), then stop the forwarder.
  if (services.forwarder) {
    const std::int64_t newest = NewestAuditPos(*services.store);
    const auto deadline = std::chrono::steady_clock::now() + kShutdownDeliveryTimeout;
    for (const auto& sink : config->audit.sinks) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (!services.forwarder->WaitDelivered(sink.name, newest,
                                             std::max(left, std::chrono::milliseconds(0)))) {
        std::fprintf(stderr,
                     "lockboxd: audit sink '%s' has not taken every record up to pos %lld; it "
                     "resumes from its cursor on the next start\n",
                     sink.name.c_str(), static_cast<long long>(newest));
      }
    }
    services.forwarder->Stop();
  }
  services.store->Shutdown();
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  // Core dumps could carry secrets: disable them.
  const rlimit no_core{0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  // Requests allocate and free buffers of up to a few hundred KiB; with glibc's default 128 KiB
  // trim threshold every such cycle shrinks and regrows the heap, and the page faults cost 10x the
  // encryption of a 64 KiB message (BENCHMARKS.md). Keep up to 64 MiB of freed heap instead.
  mallopt(M_TRIM_THRESHOLD, 64 << 20);

  bool dev = false;
  std::optional<std::string> config_path;
  std::filesystem::path data_dir = "lockbox-dev-data";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--dev") {
      dev = true;
    } else if (arg == "--data-dir" && i + 1 < argc) {
      data_dir = argv[++i];
    } else if (arg == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else {
      std::fprintf(stderr, "lockboxd: unknown argument '%s'\n%s", argv[i], kUsage);
      return 2;
    }
  }
  if (dev && config_path.has_value()) {
    std::fprintf(stderr, "lockboxd: --dev and --config are mutually exclusive\n%s", kUsage);
    return 2;
  }
  if (config_path.has_value()) return RunServer(*config_path);
  if (!dev) {
    std::fputs("lockboxd: choose --dev or --config FILE\n", stderr);
    std::fputs(kUsage, stderr);
    return 2;
  }
  return RunDev(data_dir);
}
