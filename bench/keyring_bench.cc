// Keyring envelope encryption against its ceilings, all in one run:
//   raw OpenSSL AES-256-GCM (one EVP context, key set once: the best any envelope can do),
//   the keyring with the DEK cache on and off, and raw SoftHSM2 DEK wrap/unwrap calls.
// tools/bench turns the JSON output into the ratio table of BENCHMARKS.md.
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <openssl/evp.h>

#include <memory>
#include <string>
#include <vector>

#include "crypto/random.h"
#include "hsm/hsm.h"
#include "server/audit_log/audit_log.h"
#include "server/keyring/keyring.h"
#include "server/store/store.h"
#include "tests/support/softhsm_token.h"

namespace {

using namespace lockbox;

// Drops events: isolates the envelope path's own cost. The service never runs a keyring without
// the real audit log; BM_AuditedKeyring* measure that.
class NullEventLog : public audit_log::EventLog {
 public:
  Status Append(store::Transaction&, audit::Event) override { return Status::Ok(); }
  Status Record(audit::Event) override { return Status::Ok(); }
};

// One SoftHSM2 token and store; keyrings with the DEK cache on and off (audit off), and one with
// the cache on and the real audit log.
struct Fixture {
  Fixture() {
    const hsm::HsmConfig config = token.hsm_config();
    hsm = std::move(hsm::Hsm::Open(config).value());
    store::SqliteOptions store_options;
    store_options.path = token.dir().file("bench.db");
    store = std::move(store::OpenSqliteStore(store_options).value());
    audit = std::move(audit_log::AuditLog::Open(*store, *hsm).value());
    keyring::KeyringOptions cached;
    audited_keyring = std::move(keyring::Keyring::Open(*hsm, *store, *audit, cached).value());
    if (!audited_keyring->CreateKey("bench").ok()) std::abort();
    // Opened after the key exists, so they load it.
    cached_keyring = std::move(keyring::Keyring::Open(*hsm, *store, null_log, cached).value());
    keyring::KeyringOptions uncached;
    uncached.dek_cache.enabled = false;
    uncached_keyring = std::move(keyring::Keyring::Open(*hsm, *store, null_log, uncached).value());
    mkek = hsm->FindSecretKey("lockbox/mkek/v1").value();
    auto wrapped = hsm->GenerateWrappedKey(mkek).value();
    kek = hsm->UnwrapKey(mkek, wrapped).value();
  }
  testing::SoftHsmToken token{"lockbox-bench"};
  std::unique_ptr<hsm::Hsm> hsm;
  std::unique_ptr<store::Store> store;
  NullEventLog null_log;
  std::unique_ptr<audit_log::AuditLog> audit;
  std::unique_ptr<keyring::Keyring> audited_keyring;
  std::unique_ptr<keyring::Keyring> cached_keyring;
  std::unique_ptr<keyring::Keyring> uncached_keyring;
  hsm::KeyHandle mkek, kek;
};

Fixture& F() {
  static Fixture* fixture = new Fixture();
  return *fixture;
}

std::vector<std::uint8_t> Payload(std::int64_t size) {
  return crypto::RandomVector(static_cast<std::size_t>(size));
}

void BM_RawAesGcmEncrypt(benchmark::State& state) {
  const auto key = crypto::RandomVector(32), iv = crypto::RandomVector(12);
  const auto pt = Payload(state.range(0));
  std::vector<std::uint8_t> out(pt.size() + 16);
  std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(),
                                                                      EVP_CIPHER_CTX_free);
  EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), nullptr);
  for (auto _ : state) {
    int len = 0;
    EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, nullptr, iv.data());
    EVP_EncryptUpdate(ctx.get(), out.data(), &len, pt.data(), static_cast<int>(pt.size()));
    EVP_EncryptFinal_ex(ctx.get(), out.data() + len, &len);
    EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, 16, out.data() + pt.size());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}

void BM_RawAesGcmDecrypt(benchmark::State& state) {
  const auto key = crypto::RandomVector(32), iv = crypto::RandomVector(12);
  const auto pt = Payload(state.range(0));
  std::vector<std::uint8_t> ct(pt.size()), tag(16), out(pt.size() + 16);
  std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(),
                                                                      EVP_CIPHER_CTX_free);
  int len = 0;
  EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), iv.data());
  EVP_EncryptUpdate(ctx.get(), ct.data(), &len, pt.data(), static_cast<int>(pt.size()));
  EVP_EncryptFinal_ex(ctx.get(), ct.data() + len, &len);
  EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, 16, tag.data());
  EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), nullptr);
  for (auto _ : state) {
    EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, nullptr, iv.data());
    EVP_DecryptUpdate(ctx.get(), out.data(), &len, ct.data(), static_cast<int>(ct.size()));
    EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, 16, tag.data());
    if (EVP_DecryptFinal_ex(ctx.get(), out.data() + len, &len) != 1) state.SkipWithError("tag");
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}

keyring::Keyring& Keyring(bool cached) {
  return cached ? *F().cached_keyring : *F().uncached_keyring;
}

void BM_KeyringEncrypt(benchmark::State& state) {
  auto& kr = Keyring(state.range(1) != 0);
  const auto pt = Payload(state.range(0));
  for (auto _ : state) {
    auto ct = kr.Encrypt("bench", pt);
    if (!ct.ok()) state.SkipWithError(ct.status().ToString().c_str());
    benchmark::DoNotOptimize(ct);
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}

void BM_KeyringDecrypt(benchmark::State& state) {
  auto& kr = Keyring(state.range(1) != 0);
  const auto pt = Payload(state.range(0));
  const std::string ct = kr.Encrypt("bench", pt).value();
  for (auto _ : state) {
    auto out = kr.Decrypt("bench", ct);
    if (!out.ok()) state.SkipWithError(out.status().ToString().c_str());
    benchmark::DoNotOptimize(out);
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}

// Encrypt and decrypt with every operation's audit record durable before it returns
// (synchronous=FULL): the group commit shares one fsync among concurrent callers.
void BM_AuditedKeyringEncrypt(benchmark::State& state) {
  auto& kr = *F().audited_keyring;
  const auto pt = Payload(state.range(0));
  for (auto _ : state) {
    auto ct = kr.Encrypt("bench", pt);
    if (!ct.ok()) state.SkipWithError(ct.status().ToString().c_str());
    benchmark::DoNotOptimize(ct);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_AuditedKeyringDecrypt(benchmark::State& state) {
  auto& kr = *F().audited_keyring;
  const auto pt = Payload(state.range(0));
  const std::string ct = kr.Encrypt("bench", pt).value();
  for (auto _ : state) {
    auto out = kr.Decrypt("bench", ct);
    if (!out.ok()) state.SkipWithError(out.status().ToString().c_str());
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_SoftHsmWrapDek(benchmark::State& state) {
  auto& f = F();
  const auto dek = crypto::RandomSecret(32);
  const std::vector<std::uint8_t> aad = {1, 2, 3};
  for (auto _ : state) {
    auto wrapped = f.hsm->WrapData(f.kek, dek.span(), aad);
    if (!wrapped.ok()) state.SkipWithError(wrapped.status().ToString().c_str());
    benchmark::DoNotOptimize(wrapped);
  }
}

void BM_SoftHsmUnwrapDek(benchmark::State& state) {
  auto& f = F();
  const auto dek = crypto::RandomSecret(32);
  const std::vector<std::uint8_t> aad = {1, 2, 3};
  const auto wrapped = f.hsm->WrapData(f.kek, dek.span(), aad).value();
  for (auto _ : state) {
    auto unwrapped = f.hsm->UnwrapData(f.kek, wrapped, aad);
    if (!unwrapped.ok()) state.SkipWithError(unwrapped.status().ToString().c_str());
    benchmark::DoNotOptimize(unwrapped);
  }
}

void Sizes(benchmark::internal::Benchmark* b) {
  for (std::int64_t size : {32, 1024, 65536}) b->Arg(size);
}
void SizesAndCache(benchmark::internal::Benchmark* b) {
  for (std::int64_t cache : {1, 0}) {
    for (std::int64_t size : {32, 1024, 65536}) b->Args({size, cache});
  }
}

BENCHMARK(BM_RawAesGcmEncrypt)->Apply(Sizes);
BENCHMARK(BM_RawAesGcmDecrypt)->Apply(Sizes);
BENCHMARK(BM_KeyringEncrypt)->Apply(SizesAndCache)->ArgNames({"bytes", "cache"});
BENCHMARK(BM_KeyringDecrypt)->Apply(SizesAndCache)->ArgNames({"bytes", "cache"});
BENCHMARK(BM_AuditedKeyringEncrypt)->Arg(1024)->Threads(1)->Threads(16)->Threads(64)->UseRealTime();
BENCHMARK(BM_AuditedKeyringDecrypt)->Arg(1024)->Threads(1)->Threads(16)->Threads(64)->UseRealTime();
BENCHMARK(BM_SoftHsmWrapDek);
BENCHMARK(BM_SoftHsmUnwrapDek);

}  // namespace

int main(int argc, char** argv) {
  mallopt(M_TRIM_THRESHOLD, 64 << 20);  // as lockboxd's main does
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
