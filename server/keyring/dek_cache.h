// DekCache: keeps plaintext DEKs (in locked memory) so repeated encrypts and decrypts skip the
// HSM. Bounded by entry count (LRU), age and, for encryption, the number of messages sealed under
// one DEK (random 96-bit nonces: the bound keeps the nonce-collision risk far below NIST's 2^-32).
// Thread safety: all methods are thread-safe (one internal mutex; each call holds it briefly).
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "crypto/secure_buffer.h"

namespace lockbox::keyring {

struct DekCacheOptions {
  bool enabled = true;
  std::size_t max_entries = 4096;
  std::chrono::seconds max_age{300};
  std::uint64_t max_encryptions_per_dek = std::uint64_t{1} << 24;
};

struct CachedDek {
  std::shared_ptr<const crypto::SecureBuffer> key;
  std::vector<std::uint8_t> wrapped;
};

class DekCache {
 public:
  using Clock = std::chrono::steady_clock;

  explicit DekCache(DekCacheOptions options) : options_(options) {}

  const DekCacheOptions& options() const { return options_; }

  // The DEK currently used to encrypt under (key, version), if it is fresh and under its use
  // limit; counts one use.
  std::optional<CachedDek> TakeEncryptionDek(std::string_view key, std::uint32_t version);
  // Makes `dek` the encryption DEK of (key, version) and also caches it for decryption.
  void PutEncryptionDek(std::string_view key, std::uint32_t version, const CachedDek& dek);

  std::shared_ptr<const crypto::SecureBuffer> FindDecryptionDek(
      std::string_view key, std::uint32_t version, const std::vector<std::uint8_t>& wrapped);
  void PutDecryptionDek(std::string_view key, std::uint32_t version, const CachedDek& dek);

  // Drops every DEK of a key (rotation keeps old ones valid; destruction and disabling call this).
  void EvictKey(std::string_view key);
  std::size_t size() const;

 private:
  struct Entry {
    std::string id;  // key NUL version NUL wrapped
    std::shared_ptr<const crypto::SecureBuffer> dek;
    Clock::time_point created;
  };
  struct EncryptionSlot {
    CachedDek dek;
    Clock::time_point created;
    std::uint64_t uses = 0;
  };

  static std::string SlotId(std::string_view key, std::uint32_t version);
  bool Fresh(Clock::time_point created, Clock::time_point now) const {
    return now - created < options_.max_age;
  }
  void InsertLocked(std::string id, std::shared_ptr<const crypto::SecureBuffer> dek);

  const DekCacheOptions options_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, EncryptionSlot> encryption_;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> by_id_;
};

}  // namespace lockbox::keyring
