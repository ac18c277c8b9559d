// InstrumentedHsm: an hsm::Hsm decorator that times every call into the wrapped HSM and counts its
// failures, for sys/metrics (lockbox_hsm_call_duration_seconds{call},
// lockbox_hsm_call_errors_total{call}). main wraps the real Hsm in it and hands the decorator to
// every component; the core finds it behind Services::hsm and adds its series to sys/metrics.
// It adds no behaviour: arguments, results and errors pass through unchanged, and nothing about
// keys or data is recorded (only the call's name and duration).
// Thread safety: as thread-safe as the wrapped Hsm; the counters are atomics. The wrapped Hsm must
// outlive the decorator.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "hsm/hsm.h"
#include "server/core/metrics.h"

namespace lockbox::core {

class InstrumentedHsm final : public hsm::Hsm {
 public:
  explicit InstrumentedHsm(hsm::Hsm& inner);

  std::uint64_t generation() const override { return inner_.generation(); }
  StatusOr<hsm::KeyHandle> GenerateMasterKey(std::string_view label) override;
  StatusOr<hsm::KeyHandle> FindSecretKey(std::string_view label) override;
  StatusOr<std::vector<std::uint8_t>> GenerateWrappedKey(
      const hsm::KeyHandle& wrapping_key) override;
  StatusOr<hsm::KeyHandle> UnwrapKey(const hsm::KeyHandle& wrapping_key,
                                     std::span<const std::uint8_t> wrapped) override;
  StatusOr<std::vector<std::uint8_t>> WrapData(const hsm::KeyHandle& kek,
                                               std::span<const std::uint8_t> data,
                                               std::span<const std::uint8_t> aad) override;
  StatusOr<crypto::SecureBuffer> UnwrapData(const hsm::KeyHandle& kek,
                                            std::span<const std::uint8_t> wrapped,
                                            std::span<const std::uint8_t> aad) override;
  StatusOr<hsm::SigningKey> GenerateSigningKey(hsm::SigningAlgorithm algorithm,
                                               std::string_view label) override;
  StatusOr<hsm::SigningKey> FindSigningKey(std::string_view label) override;
  StatusOr<std::vector<std::uint8_t>> Sign(const hsm::SigningKey& key,
                                           std::span<const std::uint8_t> message) override;
  // Timed as a Sign.
  StatusOr<std::vector<std::uint8_t>> SignDigest(const hsm::SigningKey& key,
                                                 std::span<const std::uint8_t> digest) override;
  StatusOr<nlohmann::json> PublicJwk(const hsm::SigningKey& key) override;
  Status DestroyObject(const hsm::KeyHandle& key) override;
  StatusOr<std::size_t> DestroyObjectsByLabel(std::string_view label) override;
  StatusOr<hsm::KeyAttributes> GetAttributes(const hsm::KeyHandle& key) override;

  // Appends the two metric families, one series per HSM call.
  void AppendPrometheus(std::string& out) const;

 private:
  enum Call : std::size_t {
    kGenerateMasterKey,
    kFindSecretKey,
    kGenerateWrappedKey,
    kUnwrapKey,
    kWrapData,
    kUnwrapData,
    kGenerateSigningKey,
    kFindSigningKey,
    kSign,
    kPublicJwk,
    kDestroyObject,
    kDestroyObjectsByLabel,
    kGetAttributes,
    kCallCount,
  };
  struct CallMetrics {
    Histogram latency{LatencyBuckets()};
    std::atomic<std::uint64_t> errors{0};
  };

  // Runs `call` against the inner HSM, timing it under `which`.
  template <typename F>
  auto Timed(Call which, F&& call);

  hsm::Hsm& inner_;
  std::array<std::unique_ptr<CallMetrics>, kCallCount> calls_;
};

}  // namespace lockbox::core
