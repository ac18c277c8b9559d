// A private temporary directory, removed with its contents when the object dies.
#pragma once

#include <filesystem>
#include <string>

namespace lockbox::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Directory of the public test vectors (../shared/testdata).
std::filesystem::path TestDataDir();

}  // namespace lockbox::testing
