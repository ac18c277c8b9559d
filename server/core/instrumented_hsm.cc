#include "server/core/instrumented_hsm.h"

#include <nlohmann/json.hpp>

#include "server/blocking/would_block.h"

namespace lockbox::core {
namespace {

constexpr std::array<std::string_view, 13> kCallNames = {
    "GenerateMasterKey", "FindSecretKey",         "GenerateWrappedKey", "UnwrapKey", "WrapData",
    "UnwrapData",        "GenerateSigningKey",    "FindSigningKey",     "Sign",      "PublicJwk",
    "DestroyObject",     "DestroyObjectsByLabel", "GetAttributes"};

bool Failed(const Status& status) { return !status.ok(); }
template <typename T>
bool Failed(const StatusOr<T>& result) {
  return !result.ok();
}

}  // namespace

InstrumentedHsm::InstrumentedHsm(hsm::Hsm& inner) : inner_(inner) {
  static_assert(kCallNames.size() == kCallCount);
  for (auto& call : calls_) call = std::make_unique<CallMetrics>();
}

template <typename F>
auto InstrumentedHsm::Timed(Call which, F&& call) {
  if (blocking::RefuseToBlock()) return decltype(call())(blocking::WouldBlockError());
  const auto start = std::chrono::steady_clock::now();
  auto result = call();
  CallMetrics& metrics = *calls_[which];
  metrics.latency.Observe(std::chrono::steady_clock::now() - start);
  if (Failed(result)) metrics.errors.fetch_add(1, std::memory_order_relaxed);
  return result;
}

StatusOr<hsm::KeyHandle> InstrumentedHsm::GenerateMasterKey(std::string_view label) {
  return Timed(kGenerateMasterKey, [&] { return inner_.GenerateMasterKey(label); });
}
StatusOr<hsm::KeyHandle> InstrumentedHsm::FindSecretKey(std::string_view label) {
  return Timed(kFindSecretKey, [&] { return inner_.FindSecretKey(label); });
}
StatusOr<std::vector<std::uint8_t>> InstrumentedHsm::GenerateWrappedKey(
    const hsm::KeyHandle& wrapping_key) {
  return Timed(kGenerateWrappedKey, [&] { return inner_.GenerateWrappedKey(wrapping_key); });
}
StatusOr<hsm::KeyHandle> InstrumentedHsm::UnwrapKey(const hsm::KeyHandle& wrapping_key,
                                                    std::span<const std::uint8_t> wrapped) {
  return Timed(kUnwrapKey, [&] { return inner_.UnwrapKey(wrapping_key, wrapped); });
}
StatusOr<std::vector<std::uint8_t>> InstrumentedHsm::WrapData(const hsm::KeyHandle& kek,
                                                              std::span<const std::uint8_t> data,
                                                              std::span<const std::uint8_t> aad) {
  return Timed(kWrapData, [&] { return inner_.WrapData(kek, data, aad); });
}
StatusOr<crypto::SecureBuffer> InstrumentedHsm::UnwrapData(const hsm::KeyHandle& kek,
                                                           std::span<const std::uint8_t> wrapped,
                                                           std::span<const std::uint8_t> aad) {
  return Timed(kUnwrapData, [&] { return inner_.UnwrapData(kek, wrapped, aad); });
}
StatusOr<hsm::SigningKey> InstrumentedHsm::GenerateSigningKey(hsm::SigningAlgorithm algorithm,
                                                              std::string_view label) {
  return Timed(kGenerateSigningKey, [&] { return inner_.GenerateSigningKey(algorithm, label); });
}
StatusOr<hsm::SigningKey> InstrumentedHsm::FindSigningKey(std::string_view label) {
  return Timed(kFindSigningKey, [&] { return inner_.FindSigningKey(label); });
}
StatusOr<std::vector<std::uint8_t>> InstrumentedHsm::Sign(const hsm::SigningKey& key,
                                                          std::span<const std::uint8_t> message) {
  return Timed(kSign, [&] { return inner_.Sign(key, message); });
}
StatusOr<std::vector<std::uint8_t>> InstrumentedHsm::SignDigest(
    const hsm::SigningKey& key, std::span<const std::uint8_t> digest) {
  return Timed(kSign, [&] { return inner_.SignDigest(key, digest); });
}
StatusOr<nlohmann::json> InstrumentedHsm::PublicJwk(const hsm::SigningKey& key) {
  return Timed(kPublicJwk, [&] { return inner_.PublicJwk(key); });
}
Status InstrumentedHsm::DestroyObject(const hsm::KeyHandle& key) {
  return Timed(kDestroyObject, [&] { return inner_.DestroyObject(key); });
}
StatusOr<std::size_t> InstrumentedHsm::DestroyObjectsByLabel(std::string_view label) {
  return Timed(kDestroyObjectsByLabel, [&] { return inner_.DestroyObjectsByLabel(label); });
}
StatusOr<hsm::KeyAttributes> InstrumentedHsm::GetAttributes(const hsm::KeyHandle& key) {
  return Timed(kGetAttributes, [&] { return inner_.GetAttributes(key); });
}

void InstrumentedHsm::AppendPrometheus(std::string& out) const {
  AppendMetricHeader(out, "lockbox_hsm_call_duration_seconds", "histogram",
                     "Time spent in HSM (PKCS#11) calls, by call.");
  for (std::size_t i = 0; i < kCallCount; ++i) {
    calls_[i]->latency.AppendPrometheus(out, "lockbox_hsm_call_duration_seconds",
                                        "call=\"" + std::string(kCallNames[i]) + "\"");
  }
  AppendMetricHeader(out, "lockbox_hsm_call_errors_total", "counter",
                     "HSM calls that returned an error, by call.");
  for (std::size_t i = 0; i < kCallCount; ++i) {
    out.append("lockbox_hsm_call_errors_total{call=\"")
        .append(kCallNames[i])
        .append("\"} ")
        .append(std::to_string(calls_[i]->errors.load(std::memory_order_relaxed)))
        .append("\n");
  }
}

}  // namespace lockbox::core
