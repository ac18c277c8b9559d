// FileSink: appends the JSONL stream (one line per record: the event's canonical JSON, or
// {"checkpoint":"<jws>"}) to a local file, and fsyncs once per batch; Deliver() returns OK only
// after fsync succeeded. The file is created with mode 0600 (and its directory fsynced) if
// missing, and reopened when it was renamed or removed (log rotation). A failed batch may leave a
// partial batch in the file; it is written again on retry (at-least-once: duplicated lines are
// identical to the originals).
// Thread safety: see Sink.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "server/siem/sink.h"

namespace lockbox::siem {

class FileSink final : public Sink {
 public:
  FileSink(std::string name, std::string path);
  ~FileSink() override;

  Status Deliver(const std::vector<StreamRecord>& batch) override;

 private:
  Status Open();
  void CloseFile();
  std::string path_;
  int fd_ = -1;
};

}  // namespace lockbox::siem
