#include "server/keyring/dek_cache.h"

namespace lockbox::keyring {
namespace {

std::string DecryptionId(std::string_view key, std::uint32_t version,
                         const std::vector<std::uint8_t>& wrapped) {
  std::string id(key);
  id.push_back('\0');
  id += std::to_string(version);
  id.push_back('\0');
  id.append(wrapped.begin(), wrapped.end());
  return id;
}

bool BelongsTo(const std::string& id, std::string_view key) {
  return id.size() > key.size() && id.compare(0, key.size(), key) == 0 && id[key.size()] == '\0';
}

}  // namespace

std::string DekCache::SlotId(std::string_view key, std::uint32_t version) {
  std::string id(key);
  id.push_back('\0');
  id += std::to_string(version);
  return id;
}

std::optional<CachedDek> DekCache::TakeEncryptionDek(std::string_view key, std::uint32_t version) {
  if (!options_.enabled) return std::nullopt;
  const auto now = Clock::now();
  std::lock_guard lock(mu_);
  auto it = encryption_.find(SlotId(key, version));
  if (it == encryption_.end()) return std::nullopt;
  EncryptionSlot& slot = it->second;
  if (!Fresh(slot.created, now) || slot.uses >= options_.max_encryptions_per_dek) {
    encryption_.erase(it);
    return std::nullopt;
  }
  ++slot.uses;
  return slot.dek;
}

void DekCache::PutEncryptionDek(std::string_view key, std::uint32_t version, const CachedDek& dek) {
  if (!options_.enabled) return;
  std::lock_guard lock(mu_);
  encryption_[SlotId(key, version)] = EncryptionSlot{dek, Clock::now(), 1};
  InsertLocked(DecryptionId(key, version, dek.wrapped), dek.key);
}

std::shared_ptr<const crypto::SecureBuffer> DekCache::FindDecryptionDek(
    std::string_view key, std::uint32_t version, const std::vector<std::uint8_t>& wrapped) {
  if (!options_.enabled) return nullptr;
  const auto now = Clock::now();
  const std::string id = DecryptionId(key, version, wrapped);
  std::lock_guard lock(mu_);
  auto found = by_id_.find(id);
  if (found == by_id_.end()) return nullptr;
  auto entry = found->second;
  if (!Fresh(entry->created, now)) {
    lru_.erase(entry);
    by_id_.erase(found);
    return nullptr;
  }
  lru_.splice(lru_.begin(), lru_, entry);
  return entry->dek;
}

void DekCache::PutDecryptionDek(std::string_view key, std::uint32_t version, const CachedDek& dek) {
  if (!options_.enabled) return;
  std::lock_guard lock(mu_);
  InsertLocked(DecryptionId(key, version, dek.wrapped), dek.key);
}

void DekCache::InsertLocked(std::string id, std::shared_ptr<const crypto::SecureBuffer> dek) {
  if (auto found = by_id_.find(id); found != by_id_.end()) {
    lru_.splice(lru_.begin(), lru_, found->second);
    return;
  }
  lru_.push_front(Entry{id, std::move(dek), Clock::now()});
  by_id_.emplace(std::move(id), lru_.begin());
  while (lru_.size() > options_.max_entries) {
    by_id_.erase(lru_.back().id);
    lru_.pop_back();
  }
}

void DekCache::EvictKey(std::string_view key) {
  std::lock_guard lock(mu_);
  std::erase_if(encryption_, [&](const auto& slot) { return BelongsTo(slot.first, key); });
  for (auto it = lru_.begin(); it != lru_.end();) {
    if (BelongsTo(it->id, key)) {
      by_id_.erase(it->id);
      it = lru_.erase(it);
    } else {
      ++it;
    }
  }
}

std::size_t DekCache::size() const {
  std::lock_guard lock(mu_);
  return lru_.size();
}

}  // namespace lockbox::keyring
