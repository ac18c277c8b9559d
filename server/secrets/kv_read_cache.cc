#include "server/secrets/kv_read_cache.h"

#include <utility>

namespace lockbox::secrets::internal {
namespace {

// Bookkeeping per entry beyond the path and ciphertext (map node, list node, metadata).
constexpr std::size_t kEntryOverhead = 256;

}  // namespace

std::shared_ptr<const StoredVersion> KvReadCache::Find(const std::string& path) {
  std::lock_guard lock(mu_);
  if (changing_all_ > 0 || changing_.contains(path)) return nullptr;
  auto it = entries_.find(path);
  if (it == entries_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  return it->second.value;
}

std::uint64_t KvReadCache::FillTicket() const {
  std::lock_guard lock(mu_);
  return epoch_;
}

void KvReadCache::Fill(const std::string& path, std::shared_ptr<const StoredVersion> value,
                       std::uint64_t ticket) {
  const std::size_t bytes =
      kEntryOverhead + path.size() + value->ciphertext.size() + value->metadata_text.size();
  if (max_entries_ == 0 || bytes > max_bytes_) return;
  std::lock_guard lock(mu_);
  if (ticket != epoch_ || changing_all_ > 0 || changing_.contains(path)) return;
  EraseLocked(path);
  while (!lru_.empty() && (entries_.size() >= max_entries_ || bytes_ + bytes > max_bytes_)) {
    const std::string victim = lru_.back();  // a copy: erasing frees the list's string
    EraseLocked(victim);
  }
  lru_.push_front(path);
  entries_.emplace(path, Entry{std::move(value), bytes, lru_.begin()});
  bytes_ += bytes;
}

void KvReadCache::Changing(store::Transaction& tx, const std::string& path) {
  {
    std::lock_guard lock(mu_);
    ++changing_[path];
    EraseLocked(path);
  }
  auto done = [this, path] {
    std::lock_guard lock(mu_);
    ChangeDoneLocked(&path);
  };
  tx.OnCommit(done);
  tx.OnRollback(done);
}

void KvReadCache::ChangingAll(store::Transaction& tx) {
  {
    std::lock_guard lock(mu_);
    ++changing_all_;
    entries_.clear();
    lru_.clear();
    bytes_ = 0;
  }
  auto done = [this] {
    std::lock_guard lock(mu_);
    ChangeDoneLocked(nullptr);
  };
  tx.OnCommit(done);
  tx.OnRollback(done);
}

std::size_t KvReadCache::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

void KvReadCache::EraseLocked(const std::string& path) {
  auto it = entries_.find(path);
  if (it == entries_.end()) return;
  bytes_ -= it->second.bytes;
  lru_.erase(it->second.lru);
  entries_.erase(it);
}

void KvReadCache::ChangeDoneLocked(const std::string* path) {
  ++epoch_;
  if (path == nullptr) {
    --changing_all_;
    return;
  }
  EraseLocked(*path);
  if (auto it = changing_.find(*path); it != changing_.end() && --it->second == 0) {
    changing_.erase(it);
  }
}

}  // namespace lockbox::secrets::internal
