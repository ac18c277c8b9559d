// A real SoftHSM2 token in a private temporary directory, for tests.
// Writes a private softhsm2.conf, points SOFTHSM2_CONF at it (process-wide: tests using this
// run one token per process, which ctest's one-process-per-test gives us), initialises a token
// with `softhsm2-util --init-token --free`, and writes the user PIN to a 0600 file.
#pragma once

#include <string>

#include "crypto/status.h"
#include "hsm/hsm.h"
#include "tests/support/temp_dir.h"

namespace lockbox::testing {

class SoftHsmToken {
 public:
  explicit SoftHsmToken(std::string label = "lockbox-test");
  SoftHsmToken(const SoftHsmToken&) = delete;
  SoftHsmToken& operator=(const SoftHsmToken&) = delete;

  const std::string& label() const { return label_; }
  const std::string& pin() const { return pin_; }
  const std::string& pin_file() const { return pin_file_; }
  const std::string& conf_file() const { return conf_file_; }
  const std::string& module_path() const { return module_path_; }
  const TempDir& dir() const { return dir_; }
  // What Hsm::Open needs to reach this token.
  hsm::HsmConfig hsm_config() const {
    hsm::HsmConfig config;
    config.module_path = module_path_;
    config.token_label = label_;
    config.pin_file = pin_file_;
    return config;
  }

 private:
  TempDir dir_;
  std::string label_;
  std::string pin_ = "1234-user-pin";
  std::string pin_file_;
  std::string conf_file_;
  std::string module_path_ = "/usr/lib/softhsm/libsofthsm2.so";
};

}  // namespace lockbox::testing
