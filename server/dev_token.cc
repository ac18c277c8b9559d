#include "server/dev_token.h"

#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include "crypto/encoding.h"
#include "crypto/random.h"

extern char** environ;

namespace lockbox::server {

Status WriteSecretFile(const std::filesystem::path& path, std::string_view content) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return UnavailableError("cannot create " + path.string());
  const auto written = ::write(fd, content.data(), content.size());
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (written != static_cast<ssize_t>(content.size()) || !synced) {
    return UnavailableError("cannot write " + path.string());
  }
  return Status::Ok();
}

namespace {

constexpr const char* kTokenLabel = "lockbox-dev";

// Runs softhsm2-util without a shell (paths and PINs never pass through one).
Status RunSoftHsmUtil(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>("softhsm2-util"));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, "softhsm2-util", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return UnavailableError("cannot run softhsm2-util (is softhsm2 installed?)");
  int status = 0;
  if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return UnavailableError("softhsm2-util --init-token failed");
  }
  return Status::Ok();
}

}  // namespace

StatusOr<hsm::HsmConfig> PrepareDevToken(const std::filesystem::path& data_dir) {
  const auto dir = data_dir / "softhsm";
  const auto tokens = dir / "tokens";
  const auto conf = dir / "softhsm2.conf";
  const auto pin_file = dir / "user-pin";
  std::error_code ec;
  std::filesystem::create_directories(tokens, ec);
  if (ec) return UnavailableError("cannot create " + tokens.string() + ": " + ec.message());
  std::filesystem::permissions(dir, std::filesystem::perms::owner_all, ec);

  if (!std::filesystem::exists(conf)) {
    std::ofstream out(conf);
    out << "directories.tokendir = " << tokens.string() << "\n"
        << "objectstore.backend = file\n"
        << "log.level = ERROR\n"
        << "slots.removable = false\n";
    if (!out) return UnavailableError("cannot write " + conf.string());
  }
  setenv("SOFTHSM2_CONF", conf.c_str(), 1);

  if (!std::filesystem::exists(pin_file)) {
    const std::string user_pin = crypto::Base64UrlEncode(crypto::RandomVector(18));
    const std::string so_pin = crypto::Base64UrlEncode(crypto::RandomVector(18));
    LOCKBOX_RETURN_IF_ERROR(RunSoftHsmUtil(
        {"--init-token", "--free", "--label", kTokenLabel, "--pin", user_pin, "--so-pin", so_pin}));
    LOCKBOX_RETURN_IF_ERROR(WriteSecretFile(dir / "so-pin", so_pin));
    LOCKBOX_RETURN_IF_ERROR(WriteSecretFile(pin_file, user_pin));
  }

  hsm::HsmConfig config;
  config.token_label = kTokenLabel;
  config.pin_file = pin_file.string();
  return config;
}

}  // namespace lockbox::server
