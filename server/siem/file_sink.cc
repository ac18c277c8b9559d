#include "server/siem/file_sink.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace lockbox::siem {
namespace {

std::string Errno(int err) {
  char buf[128];
  return strerror_r(err, buf, sizeof buf);
}

}  // namespace

FileSink::FileSink(std::string name, std::string path)
    : Sink(std::move(name)), path_(std::move(path)) {}

FileSink::~FileSink() { CloseFile(); }

void FileSink::CloseFile() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

Status FileSink::Open() {
  if (fd_ >= 0) {
    // Still the file at path_? (Rotation renames or removes it.)
    struct stat open_st {
    }, path_st{};
    if (fstat(fd_, &open_st) == 0 && stat(path_.c_str(), &path_st) == 0 &&
        open_st.st_dev == path_st.st_dev && open_st.st_ino == path_st.st_ino) {
      return Status::Ok();
    }
    CloseFile();
  }
  bool created = false;
  fd_ = open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd_ < 0 && errno == ENOENT) {
    fd_ = open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    created = fd_ >= 0;
  }
  if (fd_ < 0) return UnavailableError("file sink " + path_ + ": open: " + Errno(errno));
  if (created) {
    // Make the new directory entry durable too.
    std::string dir = std::filesystem::path(path_).parent_path().string();
    if (dir.empty()) dir = ".";
    const int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      fsync(dfd);
      close(dfd);
    }
  }
  return Status::Ok();
}

Status FileSink::Deliver(const std::vector<StreamRecord>& batch) {
  if (batch.empty()) return Status::Ok();
  LOCKBOX_RETURN_IF_ERROR(Open());
  std::string data;
  for (const StreamRecord& r : batch) {
    data += StreamLine(r);
    data += '\n';
  }
  std::size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = write(fd_, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      CloseFile();
      return UnavailableError("file sink " + path_ + ": write: " + Errno(err));
    }
    off += static_cast<std::size_t>(n);
  }
  if (fsync(fd_) != 0) {
    const int err = errno;
    CloseFile();
    return UnavailableError("file sink " + path_ + ": fsync: " + Errno(err));
  }
  return Status::Ok();
}

}  // namespace lockbox::siem
