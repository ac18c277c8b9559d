// Dev-mode TLS material (`lockboxd --dev --dev-tls`): a self-signed CA and a server certificate
// it signs, for 127.0.0.1, ::1 and localhost, written under `<data dir>/tls/` on first use and
// reused afterwards. ECDSA P-256 keys; the private keys are written 0600. For development only:
// production certificates come from the config file.
// Thread safety: call once at start-up.
#pragma once

#include <filesystem>
#include <string>

#include "crypto/status.h"

namespace lockbox::server {

struct DevTlsFiles {
  std::string ca_cert;      // PEM: give to clients (curl --cacert, VAULT_CACERT)
  std::string server_cert;  // PEM: the server certificate followed by the CA
  std::string server_key;   // PEM private key (0600)
};

StatusOr<DevTlsFiles> PrepareDevTls(const std::filesystem::path& data_dir);

}  // namespace lockbox::server
