#include "tests/support/softhsm_token.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace lockbox::testing {

SoftHsmToken::SoftHsmToken(std::string label) : label_(std::move(label)) {
  const auto tokens = dir_.path() / "tokens";
  std::filesystem::create_directories(tokens);
  conf_file_ = dir_.file("softhsm2.conf");
  {
    std::ofstream conf(conf_file_);
    conf << "directories.tokendir = " << tokens.string() << "\n"
         << "objectstore.backend = file\n"
         << "log.level = ERROR\n"
         << "slots.removable = false\n";
  }
  setenv("SOFTHSM2_CONF", conf_file_.c_str(), 1);
  const std::string cmd = "softhsm2-util --init-token --free --label '" + label_ +
                          "' --so-pin 5678-so-pin --pin '" + pin_ + "' >/dev/null";
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("softhsm2-util --init-token failed");
  pin_file_ = dir_.file("pin");
  {
    std::ofstream pin(pin_file_);
    pin << pin_ << "\n";
  }
  chmod(pin_file_.c_str(), 0600);
}

}  // namespace lockbox::testing
