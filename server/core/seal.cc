#include "server/core/seal.h"

#include <algorithm>
#include <optional>

#include "crypto/encoding.h"
#include "crypto/hash.h"
#include "crypto/random.h"

namespace lockbox::core {
namespace {

constexpr std::size_t kUnsealKeyBytes = 32;

}  // namespace

Status ValidateSealParameters(int shares, int threshold) {
  if (shares < 1) return InvalidArgumentError("shares must be at least one");
  if (threshold < 1) return InvalidArgumentError("threshold must be at least one");
  if (shares > 1 && threshold == 1) {
    return InvalidArgumentError("threshold must be greater than one for multiple shares");
  }
  if (shares > 255) return InvalidArgumentError("shares must be less than 256");
  if (threshold > shares) return InvalidArgumentError("threshold cannot be larger than shares");
  return Status::Ok();
}

UnsealKeys GenerateUnsealKeys(int shares, int threshold) {
  UnsealKeys out;
  out.config.shares = shares;
  out.config.threshold = threshold;
  for (int i = 0; i < shares; ++i) {
    crypto::SecureBuffer key = crypto::RandomSecret(kUnsealKeyBytes);
    out.config.key_digests.push_back(crypto::Sha256(key.span()));
    out.keys.push_back(std::move(key));
  }
  return out;
}

nlohmann::json SealConfigToJson(const SealConfig& config) {
  nlohmann::json digests = nlohmann::json::array();
  for (const KeyDigest& digest : config.key_digests) digests.push_back(crypto::HexEncode(digest));
  return {{"shares", config.shares},
          {"threshold", config.threshold},
          {"key_sha256", std::move(digests)}};
}

StatusOr<SealConfig> SealConfigFromJson(const nlohmann::json& json) {
  try {
    SealConfig config;
    config.shares = json.at("shares").get<int>();
    config.threshold = json.at("threshold").get<int>();
    for (const auto& hex : json.at("key_sha256")) {
      auto bytes = crypto::HexDecode(hex.get<std::string>());
      if (!bytes.ok() || bytes->size() != sizeof(KeyDigest)) {
        return DataLossError("core_meta: malformed unseal key digest");
      }
      KeyDigest digest;
      std::copy(bytes->begin(), bytes->end(), digest.begin());
      config.key_digests.push_back(digest);
    }
    if (static_cast<int>(config.key_digests.size()) != config.shares ||
        !ValidateSealParameters(config.shares, config.threshold).ok()) {
      return DataLossError("core_meta: inconsistent seal configuration");
    }
    return config;
  } catch (const nlohmann::json::exception&) {
    return DataLossError("core_meta: malformed seal configuration");
  }
}

StatusOr<crypto::SecureBuffer> DecodeUnsealKey(std::string_view text) {
  auto bytes = crypto::HexDecode(text);
  if (!bytes.ok()) bytes = crypto::Base64Decode(text);
  if (!bytes.ok()) return InvalidArgumentError("'key' must be a valid hex or base64 string");
  crypto::SecureBuffer key = crypto::SecureBuffer::Copy(*bytes);
  crypto::SecureZero(*bytes);
  return key;
}

void SealState::Configure(SealConfig config) {
  std::lock_guard lock(mutex_);
  config_ = std::move(config);
  submitted_.clear();
  sealed_.store(false, std::memory_order_release);
}

SealState::Snapshot SealState::SnapshotLocked() const {
  Snapshot out;
  out.sealed = sealed_.load(std::memory_order_acquire);
  out.shares = config_.shares;
  out.threshold = config_.threshold;
  out.progress = static_cast<int>(submitted_.size());
  return out;
}

SealState::Snapshot SealState::snapshot() const {
  std::lock_guard lock(mutex_);
  return SnapshotLocked();
}

void SealState::Seal() {
  std::lock_guard lock(mutex_);
  submitted_.clear();
  sealed_.store(true, std::memory_order_release);
}

void SealState::Reset() {
  std::lock_guard lock(mutex_);
  submitted_.clear();
}

StatusOr<SealState::Snapshot> SealState::Submit(std::span<const std::uint8_t> key) {
  std::lock_guard lock(mutex_);
  if (!sealed_.load(std::memory_order_acquire)) return SnapshotLocked();
  const KeyDigest digest = crypto::Sha256(key);
  std::optional<std::size_t> match;
  for (std::size_t i = 0; i < config_.key_digests.size(); ++i) {
    // Every digest is compared, so the time taken does not reveal which key matched.
    if (crypto::ConstantTimeEquals(digest, config_.key_digests[i])) match = i;
  }
  if (!match.has_value()) return InvalidArgumentError("unseal failed, invalid key");
  if (!submitted_.insert(*match).second) {
    return InvalidArgumentError("given key has already been provided during this unseal process");
  }
  if (static_cast<int>(submitted_.size()) >= config_.threshold) {
    submitted_.clear();
    sealed_.store(false, std::memory_order_release);
  }
  return SnapshotLocked();
}

}  // namespace lockbox::core
