// lockboxd: the Lockbox service.
// Until the HTTP API lands, `lockboxd --dev` brings up the embedded default (SoftHSM2 token and
// SQLite database under the data directory), then runs an envelope-encryption smoke check through
// the keyring and reports what it did.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>

#include "crypto/encoding.h"
#include "server/audit_log/audit_log.h"
#include "server/dev_token.h"
#include "server/keyring/keyring.h"
#include "server/store/store.h"

namespace {

using namespace lockbox;

constexpr const char* kUsage =
    "usage: lockboxd --dev [--data-dir DIR]\n"
    "  --dev            embedded default: SoftHSM2 token and SQLite database under the data dir\n"
    "  --data-dir DIR   where state lives (default ./lockbox-dev-data)\n";

int Fail(const Status& s) {
  std::fprintf(stderr, "lockboxd: %s\n", s.ToString().c_str());
  return 1;
}

int RunDev(const std::filesystem::path& data_dir) {
  crypto::InitCrypto();
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) return Fail(UnavailableError("cannot create " + data_dir.string()));

  auto hsm_config = server::PrepareDevToken(data_dir);
  if (!hsm_config.ok()) return Fail(hsm_config.status());
  auto hsm = hsm::Hsm::Open(*hsm_config);
  if (!hsm.ok()) return Fail(hsm.status());

  store::SqliteOptions store_options;
  store_options.path = (data_dir / "lockbox.db").string();
  auto store = store::OpenSqliteStore(store_options);
  if (!store.ok()) return Fail(store.status());

  audit_log::AuditLogOptions audit_options;
  audit_options.public_key_dir = data_dir;
  auto audit = audit_log::AuditLog::Open(**store, **hsm, audit_options);
  if (!audit.ok()) return Fail(audit.status());

  auto keyring = keyring::Keyring::Open(**hsm, **store, **audit);
  if (!keyring.ok()) return Fail(keyring.status());
  auto& kr = **keyring;

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
  std::printf("  store:    %s (SQLite, WAL, synchronous=FULL)\n", store_options.path.c_str());
  std::printf("  keys:     %zu, '%s' at version %u\n", kr.ListKeys().size(),
              std::string(kKey).c_str(), meta.ok() ? meta->latest_version : 0);
  std::printf("  encrypt:  %s\n", ciphertext->c_str());
  std::printf("  decrypt:  %s\n", round_trip ? "round trip OK" : "MISMATCH");
  const auto head = (*audit)->head();
  std::printf("  audit:    log %s at seq %llu; verify with\n", head.log_id.c_str(),
              static_cast<unsigned long long>(head.seq));
  std::printf("            build/bin/lockbox-audit verify --db %s --public-key %s\n",
              store_options.path.c_str(), (data_dir / "audit-public-key.pem").c_str());
  std::printf("The HTTP API is not served yet; this run checked the key hierarchy end to end.\n");
  return round_trip ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  bool dev = false;
  std::filesystem::path data_dir = "lockbox-dev-data";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--dev") {
      dev = true;
    } else if (arg == "--data-dir" && i + 1 < argc) {
      data_dir = argv[++i];
    } else if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else {
      std::fprintf(stderr, "lockboxd: unknown argument '%s'\n%s", argv[i], kUsage);
      return 2;
    }
  }
  if (!dev) {
    std::fputs("lockboxd: only --dev is available in this version\n", stderr);
    std::fputs(kUsage, stderr);
    return 2;
  }
  return RunDev(data_dir);
}
