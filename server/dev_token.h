// Dev mode's embedded HSM: a SoftHSM2 token kept under the data directory.
// On first start it writes <data>/softhsm/softhsm2.conf, initialises a token with random user and
// SO PINs (stored 0600 beside it) and points SOFTHSM2_CONF at it; later starts reuse it.
#pragma once

#include <filesystem>

#include "crypto/status.h"
#include "hsm/hsm.h"

namespace lockbox::server {

StatusOr<hsm::HsmConfig> PrepareDevToken(const std::filesystem::path& data_dir);

}  // namespace lockbox::server
