// Test decorator around the real HSM: counts calls and injects outages.
#pragma once

#include <atomic>

#include <nlohmann/json.hpp>

#include "hsm/hsm.h"

namespace lockbox::testing {

// Forwards to a real Hsm, counting the calls that matter to the keyring and failing every call
// with UNAVAILABLE while `down` is set (the module went away).
class CountingHsm : public hsm::Hsm {
 public:
  explicit CountingHsm(hsm::Hsm& inner) : inner_(inner) {}

  std::atomic<int> wraps{0}, unwraps{0}, kek_unwraps{0}, kek_generations{0};
  std::atomic<bool> down{false};
  hsm::KeyHandle last_unwrapped_key;  // the newest KEK handle UnwrapKey returned

  std::uint64_t generation() const override { return inner_.generation(); }
  StatusOr<hsm::KeyHandle> GenerateMasterKey(std::string_view label) override {
    if (down) return Down();
    return inner_.GenerateMasterKey(label);
  }
  StatusOr<hsm::KeyHandle> FindSecretKey(std::string_view label) override {
    if (down) return Down();
    return inner_.FindSecretKey(label);
  }
  StatusOr<std::vector<std::uint8_t>> GenerateWrappedKey(const hsm::KeyHandle& k) override {
    if (down) return Down();
    ++kek_generations;
    return inner_.GenerateWrappedKey(k);
  }
  StatusOr<hsm::KeyHandle> UnwrapKey(const hsm::KeyHandle& k,
                                     std::span<const std::uint8_t> wrapped) override {
    if (down) return Down();
    ++kek_unwraps;
    auto handle = inner_.UnwrapKey(k, wrapped);
    if (handle.ok()) last_unwrapped_key = *handle;
    return handle;
  }
  StatusOr<std::vector<std::uint8_t>> WrapData(const hsm::KeyHandle& k,
                                               std::span<const std::uint8_t> data,
                                               std::span<const std::uint8_t> aad) override {
    if (down) return Down();
    ++wraps;
    return inner_.WrapData(k, data, aad);
  }
  StatusOr<crypto::SecureBuffer> UnwrapData(const hsm::KeyHandle& k,
                                            std::span<const std::uint8_t> wrapped,
                                            std::span<const std::uint8_t> aad) override {
    if (down) return Down();
    ++unwraps;
    return inner_.UnwrapData(k, wrapped, aad);
  }
  StatusOr<hsm::SigningKey> GenerateSigningKey(hsm::SigningAlgorithm a,
                                               std::string_view label) override {
    if (down) return Down();
    return inner_.GenerateSigningKey(a, label);
  }
  StatusOr<hsm::SigningKey> FindSigningKey(std::string_view label) override {
    if (down) return Down();
    return inner_.FindSigningKey(label);
  }
  StatusOr<std::vector<std::uint8_t>> Sign(const hsm::SigningKey& k,
                                           std::span<const std::uint8_t> m) override {
    if (down) return Down();
    return inner_.Sign(k, m);
  }
  StatusOr<std::vector<std::uint8_t>> SignDigest(const hsm::SigningKey& k,
                                                 std::span<const std::uint8_t> d) override {
    if (down) return Down();
    return inner_.SignDigest(k, d);
  }
  StatusOr<nlohmann::json> PublicJwk(const hsm::SigningKey& k) override {
    if (down) return Down();
    return inner_.PublicJwk(k);
  }
  Status DestroyObject(const hsm::KeyHandle& k) override {
    if (down) return Down();
    return inner_.DestroyObject(k);
  }
  StatusOr<std::size_t> DestroyObjectsByLabel(std::string_view label) override {
    if (down) return Down();
    return inner_.DestroyObjectsByLabel(label);
  }
  StatusOr<hsm::KeyAttributes> GetAttributes(const hsm::KeyHandle& k) override {
    if (down) return Down();
    return inner_.GetAttributes(k);
  }

 private:
  static Status Down() { return UnavailableError("C_Encrypt: CKR_DEVICE_REMOVED"); }
  hsm::Hsm& inner_;
};

}  // namespace lockbox::testing
