// Dev mode's embedded HSM: a SoftHSM2 token kept under the data directory.
// On first start it writes <data>/softhsm/softhsm2.conf, initialises a token with random user and
// SO PINs (stored 0600 beside it) and points SOFTHSM2_CONF at it; later starts reuse it.
#pragma once

#include <filesystem>
#include <string_view>

#include "crypto/status.h"
#include "hsm/hsm.h"

namespace lockbox::server {

StatusOr<hsm::HsmConfig> PrepareDevToken(const std::filesystem::path& data_dir);

// Creates `path` with mode 0600 from the first byte (fails if it exists), writes `content` and
// fsyncs it. For PINs and dev mode's root token.
Status WriteSecretFile(const std::filesystem::path& path, std::string_view content);

}  // namespace lockbox::server
