// KvReadCache: the warm read path of one KV v2 mount. It keeps, per key, the current version's
// metadata and its CIPHERTEXT (never plaintext), so a read of the current version needs no
// database access; decryption then goes through the keyring (whose DEK cache spares the HSM).
//
// Consistency: a change to a path marks the path "changing" inside its unit of work; while it is
// changing the cache neither answers nor fills for that path, and when the unit commits or rolls
// back (store OnCommit/OnRollback hooks, which run before the writer wakes its submitter) the
// entry is dropped and the cache's epoch advances. A reader takes a ticket (the epoch) before its
// database snapshot and may fill only if the epoch is unchanged and nothing is changing, so a
// snapshot older than a committed change can never be cached. Bounded by entries and bytes (LRU).
// Thread safety: all methods are thread-safe (one mutex, held briefly).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "server/store/store.h"

namespace lockbox::secrets::internal {

// One version of a key as a read needs it (also what the cache keeps for the current version).
struct StoredVersion {
  std::uint64_t version = 0;
  std::chrono::system_clock::time_point created;
  std::optional<std::chrono::system_clock::time_point> deletion_time;
  bool destroyed = false;
  std::string ciphertext;          // "" when destroyed
  nlohmann::json custom_metadata;  // null or an object of strings
  // The version's metadata as reads answer it, rendered as JSON text once when the version is
  // loaded, since a cached version is read many times.
  std::string metadata_text;
};

class KvReadCache {
 public:
  KvReadCache(std::size_t max_entries, std::size_t max_bytes)
      : max_entries_(max_entries), max_bytes_(max_bytes) {}

  // The cached current version of `path`; nullptr on a miss or while the path is changing.
  std::shared_ptr<const StoredVersion> Find(const std::string& path);

  // Taken before the database read whose result may be cached.
  std::uint64_t FillTicket() const;
  // Caches `value` for `path` unless a change committed, rolled back or is in flight since
  // `ticket` was taken.
  void Fill(const std::string& path, std::shared_ptr<const StoredVersion> value,
            std::uint64_t ticket);

  // Inside the unit of work that changes `path` (resp. every path): see the header comment.
  void Changing(store::Transaction& tx, const std::string& path);
  void ChangingAll(store::Transaction& tx);

  std::size_t size() const;

 private:
  struct Entry {
    std::shared_ptr<const StoredVersion> value;
    std::size_t bytes = 0;
    std::list<std::string>::iterator lru;
  };

  void EraseLocked(const std::string& path);
  void ChangeDoneLocked(const std::string* path);

  const std::size_t max_entries_;
  const std::size_t max_bytes_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;
  std::list<std::string> lru_;  // most recently used first
  std::size_t bytes_ = 0;
  std::uint64_t epoch_ = 0;
  std::map<std::string, int> changing_;  // path → units in flight
  int changing_all_ = 0;
};

}  // namespace lockbox::secrets::internal
