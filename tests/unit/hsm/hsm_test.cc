// Hsm against a real SoftHSM2 token (one token per test, in a private temporary directory).
#include "hsm/hsm.h"

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <p11-kit/pkcs11.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <array>
#include <atomic>
#include <barrier>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "crypto/encoding.h"
#include "crypto/hash.h"
#include "crypto/jwk.h"
#include "crypto/signature.h"
#include "hsm/ckr.h"
#include "tests/support/softhsm_token.h"
#include "tests/support/temp_dir.h"

namespace lockbox::hsm {
namespace {

using crypto::AsBytes;
using testing::SoftHsmToken;

std::vector<std::uint8_t> Bytes(std::string_view s) { return {s.begin(), s.end()}; }

// A second, test-only door to the same module (dlopen returns the already loaded library, so it
// shares the Hsm's PKCS#11 state: object handles, login state, sessions). Never initialises or
// finalises the module unless asked to.
class RawModule {
 public:
  explicit RawModule(const std::string& path) {
    dl_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (dl_ == nullptr) return;
    auto get = reinterpret_cast<CK_C_GetFunctionList>(dlsym(dl_, "C_GetFunctionList"));
    if (get != nullptr) get(&f_);
  }
  ~RawModule() {
    if (session_ != CK_INVALID_HANDLE) f_->C_CloseSession(session_);
    if (dl_ != nullptr) dlclose(dl_);
  }
  RawModule(const RawModule&) = delete;
  RawModule& operator=(const RawModule&) = delete;

  CK_FUNCTION_LIST_PTR f() const { return f_; }

  // Opens a R/W session on the token labelled `label` and logs the user in.
  CK_SESSION_HANDLE Session(const std::string& label, const std::string& pin) {
    if (session_ != CK_INVALID_HANDLE) return session_;
    CK_ULONG n = 0;
    f_->C_GetSlotList(CK_TRUE, nullptr, &n);
    std::vector<CK_SLOT_ID> slots(n);
    f_->C_GetSlotList(CK_TRUE, slots.data(), &n);
    for (CK_SLOT_ID s : slots) {
      CK_TOKEN_INFO info{};
      if (f_->C_GetTokenInfo(s, &info) != CKR_OK) continue;
      std::string l(reinterpret_cast<char*>(info.label), sizeof info.label);
      l.erase(l.find_last_not_of(' ') + 1);
      if (l != label) continue;
      slot_ = s;
      if (f_->C_OpenSession(s, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &session_) !=
          CKR_OK) {
        return CK_INVALID_HANDLE;
      }
      CK_RV rv =
          f_->C_Login(session_, CKU_USER,
                      reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(pin.data())), pin.size());
      EXPECT_TRUE(rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN) << CkrName(rv);
      return session_;
    }
    return CK_INVALID_HANDLE;
  }
  CK_SLOT_ID slot() const { return slot_; }
  // Forget the session without closing it (after closing all sessions behind everyone's back).
  void ForgetSession() { session_ = CK_INVALID_HANDLE; }

 private:
  void* dl_ = nullptr;
  CK_FUNCTION_LIST_PTR f_ = nullptr;
  CK_SLOT_ID slot_ = 0;
  CK_SESSION_HANDLE session_ = CK_INVALID_HANDLE;
};

class HsmTest : public ::testing::Test {
 protected:
  HsmConfig Config(std::size_t max_sessions = 4) const {
    HsmConfig c = token_.hsm_config();
    c.max_sessions = max_sessions;
    return c;
  }
  std::unique_ptr<Hsm> OpenOrDie(std::size_t max_sessions = 4) {
    auto hsm = Hsm::Open(Config(max_sessions));
    EXPECT_TRUE(hsm.ok()) << hsm.status().ToString();
    return hsm.ok() ? std::move(hsm).value() : nullptr;
  }
  std::string WritePinFile(const std::string& name, const std::string& content, mode_t mode) {
    const std::string path = token_.dir().file(name);
    {
      std::ofstream out(path);
      out << content;
    }
    chmod(path.c_str(), mode);
    return path;
  }

  SoftHsmToken token_;
};

// --- CKR mapping and the PIN file (no HSM needed) ---------------------------------------------

TEST(CkrTest, NamesAndCodes) {
  EXPECT_EQ(CkrName(CKR_OK), "CKR_OK");
  EXPECT_EQ(CkrName(CKR_PIN_INCORRECT), "CKR_PIN_INCORRECT");
  EXPECT_EQ(CkrName(CKR_WRAPPED_KEY_INVALID), "CKR_WRAPPED_KEY_INVALID");
  EXPECT_EQ(CkrName(CKR_CRYPTOKI_NOT_INITIALIZED), "CKR_CRYPTOKI_NOT_INITIALIZED");
  EXPECT_EQ(CkrName(CKR_FUNCTION_REJECTED), "CKR_FUNCTION_REJECTED");
  EXPECT_EQ(CkrName(CKR_VENDOR_DEFINED | 5), "CKR_VENDOR_DEFINED");
  EXPECT_EQ(CkrName(0x7777), "CKR_UNKNOWN");

  EXPECT_EQ(CkrStatusCode(CKR_DEVICE_ERROR), StatusCode::kUnavailable);
  EXPECT_EQ(CkrStatusCode(CKR_TOKEN_NOT_PRESENT), StatusCode::kUnavailable);
  EXPECT_EQ(CkrStatusCode(CKR_SESSION_HANDLE_INVALID), StatusCode::kUnavailable);
  EXPECT_EQ(CkrStatusCode(CKR_PIN_INCORRECT), StatusCode::kUnauthenticated);
  EXPECT_EQ(CkrStatusCode(CKR_PIN_LOCKED), StatusCode::kUnauthenticated);
  EXPECT_EQ(CkrStatusCode(CKR_OBJECT_HANDLE_INVALID), StatusCode::kNotFound);
  EXPECT_EQ(CkrStatusCode(CKR_KEY_HANDLE_INVALID), StatusCode::kNotFound);
  EXPECT_EQ(CkrStatusCode(CKR_ENCRYPTED_DATA_INVALID), StatusCode::kDataLoss);
  EXPECT_EQ(CkrStatusCode(CKR_ENCRYPTED_DATA_LEN_RANGE), StatusCode::kDataLoss);
  EXPECT_EQ(CkrStatusCode(CKR_WRAPPED_KEY_INVALID), StatusCode::kDataLoss);
  EXPECT_EQ(CkrStatusCode(CKR_WRAPPED_KEY_LEN_RANGE), StatusCode::kDataLoss);
  EXPECT_EQ(CkrStatusCode(CKR_SIGNATURE_INVALID), StatusCode::kDataLoss);
  EXPECT_EQ(CkrStatusCode(CKR_ARGUMENTS_BAD), StatusCode::kInvalidArgument);
  EXPECT_EQ(CkrStatusCode(CKR_MECHANISM_INVALID), StatusCode::kInvalidArgument);
  EXPECT_EQ(CkrStatusCode(CKR_TEMPLATE_INCONSISTENT), StatusCode::kInvalidArgument);
  EXPECT_EQ(CkrStatusCode(CKR_TEMPLATE_INCOMPLETE), StatusCode::kInvalidArgument);
  EXPECT_EQ(CkrStatusCode(CKR_GENERAL_ERROR), StatusCode::kInternal);

  const Status s = CkrToStatus("C_UnwrapKey", CKR_WRAPPED_KEY_INVALID);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_EQ(s.message(), "C_UnwrapKey: CKR_WRAPPED_KEY_INVALID");
  EXPECT_TRUE(CkrToStatus("C_Encrypt", CKR_OK).ok());
}

TEST(ReadPinFileTest, ModesNewlineAndEmpty) {
  testing::TempDir dir;
  auto write = [&](const std::string& name, const std::string& content, mode_t mode) {
    const std::string path = dir.file(name);
    std::ofstream(path) << content;
    chmod(path.c_str(), mode);
    return path;
  };
  auto ok = ReadPinFile(write("a", "s3cret\n", 0600));
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->view(), "s3cret");
  auto ro = ReadPinFile(write("b", "s3cret", 0400));
  ASSERT_TRUE(ro.ok()) << ro.status().ToString();
  EXPECT_EQ(ro->view(), "s3cret");
  for (mode_t mode : {0644, 0640, 0604, 0700, 0660, 0200}) {
    const std::string path = write("m" + std::to_string(mode), "s3cret\n", mode);
    auto bad = ReadPinFile(path);
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.status().code(), StatusCode::kPermissionDenied) << mode;
    EXPECT_NE(bad.status().message().find(path), std::string::npos);
    EXPECT_EQ(bad.status().message().find("s3cret"), std::string::npos);
  }
  EXPECT_EQ(ReadPinFile(write("e", "", 0600)).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadPinFile(dir.file("missing")).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ReadPinFile(dir.path().string()).status().code(), StatusCode::kPermissionDenied);
}

// --- Opening ------------------------------------------------------------------------------------

TEST_F(HsmTest, OpensWithTheRightPin) {
  auto hsm = OpenOrDie();
  ASSERT_NE(hsm, nullptr);
  EXPECT_EQ(hsm->generation(), 0u);
}

TEST_F(HsmTest, WrongPinIsUnauthenticated) {
  HsmConfig c = Config();
  c.pin_file = WritePinFile("wrong-pin", "not-the-pin\n", 0600);
  auto hsm = Hsm::Open(c);
  ASSERT_FALSE(hsm.ok());
  EXPECT_EQ(hsm.status().code(), StatusCode::kUnauthenticated) << hsm.status().ToString();
  EXPECT_EQ(hsm.status().message(), "C_Login: CKR_PIN_INCORRECT");
  // The failed open finalised the module: a good open afterwards works.
  EXPECT_NE(OpenOrDie(), nullptr);
}

TEST_F(HsmTest, PinFileMode0644IsPermissionDenied) {
  HsmConfig c = Config();
  c.pin_file = WritePinFile("loose-pin", token_.pin() + "\n", 0644);
  auto hsm = Hsm::Open(c);
  ASSERT_FALSE(hsm.ok());
  EXPECT_EQ(hsm.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(hsm.status().message().find(c.pin_file), std::string::npos);
  EXPECT_NE(hsm.status().message().find("0644"), std::string::npos);
  EXPECT_EQ(hsm.status().message().find(token_.pin()), std::string::npos);
}

TEST_F(HsmTest, PinFileMode0400IsAccepted) {
  HsmConfig c = Config();
  c.pin_file = WritePinFile("ro-pin", token_.pin() + "\n", 0400);
  auto hsm = Hsm::Open(c);
  EXPECT_TRUE(hsm.ok()) << hsm.status().ToString();
}

TEST_F(HsmTest, MissingModuleIsUnavailable) {
  HsmConfig c = Config();
  c.module_path = token_.dir().file("no-such-module.so");
  auto hsm = Hsm::Open(c);
  ASSERT_FALSE(hsm.ok());
  EXPECT_EQ(hsm.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(hsm.status().message().rfind("cannot load PKCS#11 module " + c.module_path + ": ", 0),
            0u)
      << hsm.status().message();
}

TEST_F(HsmTest, UnknownTokenIsNotFound) {
  HsmConfig c = Config();
  c.token_label = "no-such-token";
  auto hsm = Hsm::Open(c);
  ASSERT_FALSE(hsm.ok());
  EXPECT_EQ(hsm.status().code(), StatusCode::kNotFound) << hsm.status().ToString();
}

TEST_F(HsmTest, TwoHsmsShareTheModule) {
  auto a = OpenOrDie();
  auto b = OpenOrDie();
  ASSERT_TRUE(a && b);
  auto mkek = a->GenerateMasterKey("lockbox/mkek/v1");
  ASSERT_TRUE(mkek.ok()) << mkek.status().ToString();
  auto found = b->FindSecretKey("lockbox/mkek/v1");
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  a.reset();  // the module stays initialised for b
  auto wrapped = b->GenerateWrappedKey(*found);
  ASSERT_TRUE(wrapped.ok()) << wrapped.status().ToString();
  EXPECT_TRUE(b->UnwrapKey(*found, *wrapped).ok());
}

// --- Master key ---------------------------------------------------------------------------------

TEST_F(HsmTest, MasterKeyAttributes) {
  auto hsm = OpenOrDie();
  ASSERT_NE(hsm, nullptr);
  auto mkek = hsm->GenerateMasterKey("lockbox/mkek/v1");
  ASSERT_TRUE(mkek.ok()) << mkek.status().ToString();
  auto attrs = hsm->GetAttributes(*mkek);
  ASSERT_TRUE(attrs.ok()) << attrs.status().ToString();
  EXPECT_TRUE(attrs->token);
  EXPECT_TRUE(attrs->sensitive);
  EXPECT_FALSE(attrs->extractable);
  EXPECT_TRUE(attrs->always_sensitive);
  EXPECT_TRUE(attrs->never_extractable);
  EXPECT_TRUE(attrs->wrap);
  EXPECT_TRUE(attrs->unwrap);
  EXPECT_FALSE(attrs->encrypt);
  EXPECT_FALSE(attrs->decrypt);
  EXPECT_FALSE(attrs->sign);
  EXPECT_EQ(attrs->label, "lockbox/mkek/v1");

  auto again = hsm->GenerateMasterKey("lockbox/mkek/v1");
  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists);
  auto found = hsm->FindSecretKey("lockbox/mkek/v1");
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_EQ(found->object, mkek->object);
  EXPECT_EQ(hsm->FindSecretKey("lockbox/mkek/v2").status().code(), StatusCode::kNotFound);
}

TEST_F(HsmTest, MasterKeyIsAToken) {
  {
    auto hsm = OpenOrDie();
    ASSERT_NE(hsm, nullptr);
    ASSERT_TRUE(hsm->GenerateMasterKey("lockbox/mkek/v1").ok());
  }
  auto hsm = OpenOrDie();  // a fresh C_Initialize reads the token from disk again
  ASSERT_NE(hsm, nullptr);
  EXPECT_TRUE(hsm->FindSecretKey("lockbox/mkek/v1").ok());
}

// --- KEKs ---------------------------------------------------------------------------------------

class KekTest : public HsmTest {
 protected:
  void SetUp() override {
    hsm_ = OpenOrDie();
    ASSERT_NE(hsm_, nullptr);
    auto mkek = hsm_->GenerateMasterKey("lockbox/mkek/v1");
    ASSERT_TRUE(mkek.ok()) << mkek.status().ToString();
    mkek_ = *mkek;
    auto wrapped = hsm_->GenerateWrappedKey(mkek_);
    ASSERT_TRUE(wrapped.ok()) << wrapped.status().ToString();
    wrapped_ = *wrapped;
    auto kek = hsm_->UnwrapKey(mkek_, wrapped_);
    ASSERT_TRUE(kek.ok()) << kek.status().ToString();
    kek_ = *kek;
  }

  std::unique_ptr<Hsm> hsm_;
  KeyHandle mkek_;
  std::vector<std::uint8_t> wrapped_;
  KeyHandle kek_;
};

TEST_F(KekTest, WrappedKekIsKeyWrapPadOf32Bytes) {
  // RFC 5649 of a 32-byte key: 32 bytes + 8-byte integrity block.
  EXPECT_EQ(wrapped_.size(), 40u);
  auto other = hsm_->GenerateWrappedKey(mkek_);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(*other, wrapped_);
}

TEST_F(KekTest, UnwrappedKekAttributes) {
  auto attrs = hsm_->GetAttributes(kek_);
  ASSERT_TRUE(attrs.ok()) << attrs.status().ToString();
  EXPECT_FALSE(attrs->token);
  EXPECT_TRUE(attrs->sensitive);
  EXPECT_FALSE(attrs->extractable);
  EXPECT_TRUE(attrs->encrypt);
  EXPECT_TRUE(attrs->decrypt);
  EXPECT_FALSE(attrs->wrap);
  EXPECT_FALSE(attrs->unwrap);
  EXPECT_FALSE(attrs->sign);
}

TEST_F(KekTest, RawValueReadIsRefused) {
  RawModule raw(token_.module_path());
  ASSERT_NE(raw.f(), nullptr);
  CK_SESSION_HANDLE s = raw.Session(token_.label(), token_.pin());
  ASSERT_NE(s, CK_INVALID_HANDLE);
  for (const KeyHandle& h : {mkek_, kek_}) {
    std::array<std::uint8_t, 64> value{};
    CK_ATTRIBUTE a{CKA_VALUE, value.data(), value.size()};
    CK_RV rv = raw.f()->C_GetAttributeValue(s, h.object, &a, 1);
    EXPECT_EQ(rv, CKR_ATTRIBUTE_SENSITIVE) << CkrName(rv);
    EXPECT_EQ(a.ulValueLen, CK_UNAVAILABLE_INFORMATION);
    EXPECT_EQ(value, (std::array<std::uint8_t, 64>{}));
    // Nor can it be wrapped out under a key we know (non-extractable).
    CK_ULONG len = 0;
    CK_MECHANISM mech{CKM_AES_KEY_WRAP_PAD, nullptr, 0};
    rv = raw.f()->C_WrapKey(s, &mech, mkek_.object, h.object, nullptr, &len);
    EXPECT_NE(rv, CKR_OK);
  }
}

TEST_F(KekTest, TamperedWrappedKekIsRejected) {
  for (std::size_t i = 0; i < wrapped_.size(); ++i) {
    for (std::uint8_t flip : {0x01, 0x80}) {
      auto bad = wrapped_;
      bad[i] ^= flip;
      auto kek = hsm_->UnwrapKey(mkek_, bad);
      ASSERT_FALSE(kek.ok()) << "byte " << i;
      EXPECT_EQ(kek.status().code(), StatusCode::kDataLoss) << kek.status().ToString();
    }
  }
  for (std::size_t len : {0, 1, 8, 16, 24, 32, 39, 48}) {
    std::vector<std::uint8_t> bad(wrapped_.begin(),
                                  wrapped_.begin() + std::min(len, wrapped_.size()));
    bad.resize(len, 0);
    auto kek = hsm_->UnwrapKey(mkek_, bad);
    ASSERT_FALSE(kek.ok()) << "length " << len;
    EXPECT_EQ(kek.status().code(), StatusCode::kDataLoss) << len << ": " << kek.status().ToString();
  }
  // Wrapped under another master key.
  auto mkek2 = hsm_->GenerateMasterKey("lockbox/mkek/v2");
  ASSERT_TRUE(mkek2.ok());
  EXPECT_EQ(hsm_->UnwrapKey(*mkek2, wrapped_).status().code(), StatusCode::kDataLoss);
}

TEST_F(KekTest, WrapDataRoundTrip) {
  const auto dek = Bytes("0123456789abcdef0123456789abcdef");
  const auto aad = Bytes("transit/keys/payments:v3");
  auto wrapped = hsm_->WrapData(kek_, dek, aad);
  ASSERT_TRUE(wrapped.ok()) << wrapped.status().ToString();
  EXPECT_EQ(wrapped->size(), 12 + dek.size() + 16);
  auto again = hsm_->WrapData(kek_, dek, aad);
  ASSERT_TRUE(again.ok());
  EXPECT_NE(*again, *wrapped);  // fresh IV each time
  auto plain = hsm_->UnwrapData(kek_, *wrapped, aad);
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_TRUE(std::ranges::equal(plain->span(), dek));

  // Empty data and empty AAD work too.
  auto empty = hsm_->WrapData(kek_, {}, {});
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  auto empty_plain = hsm_->UnwrapData(kek_, *empty, {});
  ASSERT_TRUE(empty_plain.ok()) << empty_plain.status().ToString();
  EXPECT_TRUE(empty_plain->empty());
}

TEST_F(KekTest, WrongAadAndTamperingFail) {
  const auto dek = Bytes("0123456789abcdef0123456789abcdef");
  const auto aad = Bytes("transit/keys/payments:v3");
  auto wrapped = hsm_->WrapData(kek_, dek, aad);
  ASSERT_TRUE(wrapped.ok());
  auto wrong = hsm_->UnwrapData(kek_, *wrapped, Bytes("transit/keys/payments:v4"));
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), StatusCode::kDataLoss) << wrong.status().ToString();
  for (std::size_t i = 0; i < wrapped->size(); ++i) {
    auto bad = *wrapped;
    bad[i] ^= 0x01;
    auto r = hsm_->UnwrapData(kek_, bad, aad);
    ASSERT_FALSE(r.ok()) << "byte " << i;
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << r.status().ToString();
  }
  std::vector<std::uint8_t> shortened(wrapped->begin(), wrapped->end() - 1);
  EXPECT_EQ(hsm_->UnwrapData(kek_, shortened, aad).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(hsm_->UnwrapData(kek_, std::vector<std::uint8_t>(27), aad).status().code(),
            StatusCode::kDataLoss);
  // A different KEK cannot open it.
  auto other_wrapped = hsm_->GenerateWrappedKey(mkek_);
  ASSERT_TRUE(other_wrapped.ok());
  auto other = hsm_->UnwrapKey(mkek_, *other_wrapped);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(hsm_->UnwrapData(*other, *wrapped, aad).status().code(), StatusCode::kDataLoss);
  // The session pool survives all those failures.
  EXPECT_TRUE(hsm_->UnwrapData(kek_, *wrapped, aad).ok());
}

TEST_F(KekTest, KekUnwrappedTwiceIsTheSameKey) {
  auto twin = hsm_->UnwrapKey(mkek_, wrapped_);
  ASSERT_TRUE(twin.ok()) << twin.status().ToString();
  EXPECT_NE(twin->object, kek_.object);
  const auto dek = Bytes("a data key of thirty-two bytes!!");
  auto a = hsm_->WrapData(kek_, dek, Bytes("aad"));
  auto b = hsm_->WrapData(*twin, dek, Bytes("aad"));
  ASSERT_TRUE(a.ok() && b.ok());
  auto pa = hsm_->UnwrapData(*twin, *a, Bytes("aad"));
  auto pb = hsm_->UnwrapData(kek_, *b, Bytes("aad"));
  ASSERT_TRUE(pa.ok() && pb.ok()) << pa.status().ToString() << pb.status().ToString();
  EXPECT_TRUE(std::ranges::equal(pa->span(), dek));
  EXPECT_TRUE(std::ranges::equal(pb->span(), dek));
}

TEST_F(KekTest, KekCannotWrapOrBeUsedAsMaster) {
  // The KEK may only encrypt/decrypt: using it to wrap a key is refused by the HSM.
  EXPECT_FALSE(hsm_->GenerateWrappedKey(kek_).ok());
  // The MKEK may only wrap/unwrap: it cannot encrypt data.
  auto r = hsm_->WrapData(mkek_, Bytes("x"), {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied) << r.status().ToString();
}

TEST_F(KekTest, DestroyThenUseIsNotFound) {
  ASSERT_TRUE(hsm_->DestroyObject(kek_).ok());
  auto r = hsm_->WrapData(kek_, Bytes("x"), {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound) << r.status().ToString();
  auto n = hsm_->DestroyObjectsByLabel("lockbox/mkek/v1");
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 1u);
  EXPECT_EQ(hsm_->FindSecretKey("lockbox/mkek/v1").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(hsm_->DestroyObjectsByLabel("lockbox/mkek/v1").value(), 0u);
}

TEST_F(KekTest, SessionPoolUnderContention) {
  auto hsm = Hsm::Open(Config(/*max_sessions=*/2));
  ASSERT_TRUE(hsm.ok()) << hsm.status().ToString();
  auto kek = (*hsm)->UnwrapKey(mkek_, wrapped_);
  ASSERT_TRUE(kek.ok());
  constexpr int kThreads = 8, kCalls = 150;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCalls; ++i) {
        const std::string dek = "dek-" + std::to_string(t) + "-" + std::to_string(i);
        const std::string aad = "aad-" + std::to_string(t);
        auto w = (*hsm)->WrapData(*kek, AsBytes(dek), AsBytes(aad));
        if (!w.ok()) {
          ++failures;
          continue;
        }
        auto p = (*hsm)->UnwrapData(*kek, *w, AsBytes(aad));
        if (!p.ok() || p->view() != dek) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST_F(KekTest, RecoversWhenSessionsAreClosedBehindItsBack) {
  const auto dek = Bytes("0123456789abcdef0123456789abcdef");
  auto before = hsm_->WrapData(kek_, dek, Bytes("aad"));
  ASSERT_TRUE(before.ok());
  const std::uint64_t generation = hsm_->generation();
  {
    RawModule raw(token_.module_path());
    ASSERT_NE(raw.Session(token_.label(), token_.pin()), CK_INVALID_HANDLE);
    ASSERT_EQ(raw.f()->C_CloseAllSessions(raw.slot()), CKR_OK);
    raw.ForgetSession();
  }
  // The pool session, the owner session and the unwrapped KEK are gone, and so is the login.
  auto plain = hsm_->UnwrapData(kek_, *before, Bytes("aad"));
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_TRUE(std::ranges::equal(plain->span(), dek));
  EXPECT_GT(hsm_->generation(), generation);  // session objects were lost
  // Old handles keep working (re-created from what made them).
  auto after = hsm_->WrapData(kek_, dek, Bytes("aad"));
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  auto wrapped = hsm_->GenerateWrappedKey(mkek_);
  ASSERT_TRUE(wrapped.ok()) << wrapped.status().ToString();
  auto fresh = hsm_->UnwrapKey(mkek_, *wrapped);
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  EXPECT_EQ(fresh->generation, hsm_->generation());
  auto attrs = hsm_->GetAttributes(kek_);
  ASSERT_TRUE(attrs.ok()) << attrs.status().ToString();
  EXPECT_FALSE(attrs->extractable);
}

// 8 threads wrap and unwrap DEKs in two phases; `fault` runs between them, with no call in
// flight, while every thread waits. Every round trip must succeed and give the DEK back.
template <typename Fault>
void RoundTripAcrossAFault(Hsm& hsm, const KeyHandle& kek, Fault fault) {
  constexpr int kThreads = 8, kCalls = 60;
  std::atomic<int> failed{0}, wrong{0};
  std::barrier phase(kThreads, fault);
  auto work = [&](int t) {
    for (int i = 0; i < 2 * kCalls; ++i) {
      if (i == kCalls) phase.arrive_and_wait();
      const std::string dek = "dek-" + std::to_string(t) + "-" + std::to_string(i);
      auto w = hsm.WrapData(kek, AsBytes(dek), AsBytes("aad"));
      if (!w.ok()) {
        if (++failed < 4) std::printf("wrap: %s\n", w.status().ToString().c_str());
        continue;
      }
      auto p = hsm.UnwrapData(kek, *w, AsBytes("aad"));
      if (!p.ok()) {
        if (++failed < 4) std::printf("unwrap: %s\n", p.status().ToString().c_str());
      } else if (p->view() != dek) {
        ++wrong;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(work, t);
  for (auto& th : threads) th.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
}

TEST_F(KekTest, RecoversConcurrentlyWhenSessionsAreClosed) {
  auto opened = Hsm::Open(Config(/*max_sessions=*/3));
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  Hsm& hsm = **opened;
  auto kek = hsm.UnwrapKey(mkek_, wrapped_);
  ASSERT_TRUE(kek.ok());
  RawModule raw(token_.module_path());
  ASSERT_NE(raw.Session(token_.label(), token_.pin()), CK_INVALID_HANDLE);
  const std::uint64_t generation = hsm.generation();
  // Between the two phases, with no call in flight (SoftHSM2 itself is not safe against a
  // session being closed under a running call), every session is closed behind the Hsm's back;
  // then all threads hit the dead sessions at once and must recover.
  RoundTripAcrossAFault(hsm, *kek, [&]() noexcept {
    raw.f()->C_CloseAllSessions(raw.slot());
    raw.ForgetSession();
  });
  EXPECT_GT(hsm.generation(), generation);
}

TEST_F(KekTest, RecoversConcurrentlyWhenTheModuleIsFinalized) {
  auto opened = Hsm::Open(Config(/*max_sessions=*/3));
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  Hsm& hsm = **opened;
  auto kek = hsm.UnwrapKey(mkek_, wrapped_);
  ASSERT_TRUE(kek.ok());
  RawModule raw(token_.module_path());
  const std::uint64_t generation = hsm.generation();
  // Between the two phases the module is finalised behind the Hsm's back: all threads then get
  // CKR_CRYPTOKI_NOT_INITIALIZED at once, and exactly one re-initialisation must serve them all.
  RoundTripAcrossAFault(hsm, *kek, [&]() noexcept { raw.f()->C_Finalize(nullptr); });
  EXPECT_EQ(hsm.generation(), generation + 1);
  EXPECT_EQ(hsm_->generation(), generation);  // the other Hsm notices on its next call
  EXPECT_TRUE(hsm_->WrapData(kek_, AsBytes("x"), {}).ok());
  EXPECT_EQ(hsm_->generation(), generation + 1);
}

TEST_F(KekTest, RecoversWhenTheModuleIsFinalizedBehindItsBack) {
  const auto dek = Bytes("0123456789abcdef0123456789abcdef");
  auto before = hsm_->WrapData(kek_, dek, Bytes("aad"));
  ASSERT_TRUE(before.ok());
  const std::uint64_t generation = hsm_->generation();
  {
    RawModule raw(token_.module_path());
    ASSERT_EQ(raw.f()->C_Finalize(nullptr),
              CKR_OK);  // the next call sees CKR_CRYPTOKI_NOT_INITIALIZED
  }
  auto plain = hsm_->UnwrapData(kek_, *before, Bytes("aad"));
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_TRUE(std::ranges::equal(plain->span(), dek));
  EXPECT_GT(hsm_->generation(), generation);
  EXPECT_TRUE(hsm_->WrapData(kek_, dek, Bytes("aad")).ok());
  EXPECT_TRUE(hsm_->FindSecretKey("lockbox/mkek/v1").ok());
}

// --- Signing ------------------------------------------------------------------------------------

// Verifies a JWS-style signature (ES256 raw r||s, or Ed25519) with OpenSSL from the JWK alone.
bool VerifyWithJwk(const nlohmann::json& jwk, std::span<const std::uint8_t> message,
                   std::span<const std::uint8_t> sig) {
  EVP_PKEY* pkey = nullptr;
  std::vector<std::uint8_t> der_sig;
  const EVP_MD* md = nullptr;
  if (jwk.at("kty") == "OKP") {
    auto x = crypto::Base64UrlDecode(jwk.at("x").get<std::string>());
    if (!x.ok() || x->size() != 32) return false;
    pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, x->data(), x->size());
    der_sig.assign(sig.begin(), sig.end());
  } else {
    auto x = crypto::Base64UrlDecode(jwk.at("x").get<std::string>());
    auto y = crypto::Base64UrlDecode(jwk.at("y").get<std::string>());
    if (!x.ok() || !y.ok() || x->size() != 32 || y->size() != 32 || sig.size() != 64) return false;
    std::vector<std::uint8_t> point{0x04};
    point.insert(point.end(), x->begin(), x->end());
    point.insert(point.end(), y->begin(), y->end());
    OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size());
    OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
    if (EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
      pkey = nullptr;
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    ECDSA_SIG* es = ECDSA_SIG_new();
    ECDSA_SIG_set0(es, BN_bin2bn(sig.data(), 32, nullptr), BN_bin2bn(sig.data() + 32, 32, nullptr));
    unsigned char* der = nullptr;
    const int len = i2d_ECDSA_SIG(es, &der);
    der_sig.assign(der, der + len);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    md = EVP_sha256();
  }
  if (pkey == nullptr) return false;
  EVP_MD_CTX* mctx = EVP_MD_CTX_new();
  const bool ok =
      EVP_DigestVerifyInit(mctx, nullptr, md, nullptr, pkey) == 1 &&
      EVP_DigestVerify(mctx, der_sig.data(), der_sig.size(), message.data(), message.size()) == 1;
  EVP_MD_CTX_free(mctx);
  EVP_PKEY_free(pkey);
  return ok;
}

TEST_F(HsmTest, Es256SignatureVerifiesWithOpenSsl) {
  auto hsm = OpenOrDie();
  ASSERT_NE(hsm, nullptr);
  auto key = hsm->GenerateSigningKey(SigningAlgorithm::kEcdsaP256Sha256, "lockbox/audit/v1");
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  auto jwk = hsm->PublicJwk(*key);
  ASSERT_TRUE(jwk.ok()) << jwk.status().ToString();
  EXPECT_EQ((*jwk)["kty"], "EC");
  EXPECT_EQ((*jwk)["crv"], "P-256");
  EXPECT_EQ((*jwk)["alg"], "ES256");
  EXPECT_EQ((*jwk)["use"], "sig");
  EXPECT_EQ((*jwk)["kid"], "lockbox/audit/v1");
  EXPECT_FALSE(jwk->contains("d"));
  const auto msg = Bytes("{\"log_id\":\"x\",\"seq\":42}");
  auto sig = hsm->Sign(*key, msg);
  ASSERT_TRUE(sig.ok()) << sig.status().ToString();
  ASSERT_EQ(sig->size(), 64u);
  EXPECT_TRUE(VerifyWithJwk(*jwk, msg, *sig));
  auto other = Bytes("{\"log_id\":\"x\",\"seq\":43}");
  EXPECT_FALSE(VerifyWithJwk(*jwk, other, *sig));

  auto priv = hsm->GetAttributes(key->private_key);
  ASSERT_TRUE(priv.ok()) << priv.status().ToString();
  EXPECT_TRUE(priv->token && priv->sensitive && priv->never_extractable && priv->sign);
  EXPECT_FALSE(priv->extractable || priv->decrypt || priv->unwrap);

  auto found = hsm->FindSigningKey("lockbox/audit/v1");
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_EQ(found->algorithm, SigningAlgorithm::kEcdsaP256Sha256);
  auto sig2 = hsm->Sign(*found, msg);
  ASSERT_TRUE(sig2.ok());
  EXPECT_TRUE(VerifyWithJwk(*jwk, msg, *sig2));
  EXPECT_EQ(hsm->GenerateSigningKey(SigningAlgorithm::kEcdsaP256Sha256, "lockbox/audit/v1")
                .status()
                .code(),
            StatusCode::kAlreadyExists);

  auto n = hsm->DestroyObjectsByLabel("lockbox/audit/v1");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2u);
  EXPECT_EQ(hsm->FindSigningKey("lockbox/audit/v1").status().code(), StatusCode::kNotFound);
}

// SignDigest signs the digest as given (a hash the caller chose): OpenSSL verifies it over that
// digest, not over another; Ed25519 keys and out-of-range digests are refused.
TEST_F(HsmTest, EcdsaSignDigestVerifiesWithOpenSsl) {
  auto hsm = OpenOrDie();
  ASSERT_NE(hsm, nullptr);
  auto key = hsm->GenerateSigningKey(SigningAlgorithm::kEcdsaP256Sha256, "lockbox/transit/d");
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  auto jwk = hsm->PublicJwk(*key);
  ASSERT_TRUE(jwk.ok());
  auto public_key = crypto::PublicKeyFromJwk(*jwk);
  ASSERT_TRUE(public_key.ok()) << public_key.status().ToString();
  const auto digest = crypto::Digest(crypto::HashAlgorithm::kSha512, Bytes("message"));
  auto sig = hsm->SignDigest(*key, digest);
  ASSERT_TRUE(sig.ok()) << sig.status().ToString();
  EXPECT_TRUE(public_key->VerifyEcdsaDigest(digest, *sig).ok());
  const auto other = crypto::Digest(crypto::HashAlgorithm::kSha384, Bytes("message"));
  EXPECT_EQ(public_key->VerifyEcdsaDigest(other, *sig).code(), StatusCode::kDataLoss);
  EXPECT_EQ(hsm->SignDigest(*key, {}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(hsm->SignDigest(*key, std::vector<std::uint8_t>(65, 1)).status().code(),
            StatusCode::kInvalidArgument);
  hsm::SigningKey as_ed25519 = *key;
  as_ed25519.algorithm = SigningAlgorithm::kEd25519;
  EXPECT_EQ(hsm->SignDigest(as_ed25519, digest).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(HsmTest, Ed25519SignatureVerifiesWithOpenSsl) {
  auto hsm = OpenOrDie();
  ASSERT_NE(hsm, nullptr);
  {
    RawModule raw(token_.module_path());
    CK_SESSION_HANDLE s = raw.Session(token_.label(), token_.pin());
    CK_MECHANISM_INFO info{};
    if (raw.f()->C_GetMechanismInfo(raw.slot(), CKM_EDDSA, &info) != CKR_OK ||
        raw.f()->C_GetMechanismInfo(raw.slot(), CKM_EC_EDWARDS_KEY_PAIR_GEN, &info) != CKR_OK) {
      GTEST_SKIP() << "module lacks CKM_EDDSA / CKM_EC_EDWARDS_KEY_PAIR_GEN";
    }
    (void)s;
  }
  auto key = hsm->GenerateSigningKey(SigningAlgorithm::kEd25519, "lockbox/identity/v1");
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  auto jwk = hsm->PublicJwk(*key);
  ASSERT_TRUE(jwk.ok()) << jwk.status().ToString();
  EXPECT_EQ((*jwk)["kty"], "OKP");
  EXPECT_EQ((*jwk)["crv"], "Ed25519");
  EXPECT_EQ((*jwk)["alg"], "EdDSA");
  EXPECT_EQ((*jwk)["kid"], "lockbox/identity/v1");
  const auto msg = Bytes("eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJmbiJ9");
  auto sig = hsm->Sign(*key, msg);
  ASSERT_TRUE(sig.ok()) << sig.status().ToString();
  EXPECT_EQ(sig->size(), 64u);
  EXPECT_TRUE(VerifyWithJwk(*jwk, msg, *sig));
  EXPECT_FALSE(VerifyWithJwk(*jwk, Bytes("something else"), *sig));
  auto found = hsm->FindSigningKey("lockbox/identity/v1");
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_EQ(found->algorithm, SigningAlgorithm::kEd25519);
  auto priv = hsm->GetAttributes(found->private_key);
  ASSERT_TRUE(priv.ok());
  EXPECT_TRUE(priv->sensitive && priv->never_extractable && priv->sign);
  EXPECT_FALSE(priv->extractable);
  ASSERT_TRUE(hsm->DestroyObject(found->private_key).ok());
  ASSERT_TRUE(hsm->DestroyObject(found->public_key).ok());
  EXPECT_EQ(hsm->FindSigningKey("lockbox/identity/v1").status().code(), StatusCode::kNotFound);
}

// --- Seen from outside: pkcs11-tool ------------------------------------------------------------

TEST_F(HsmTest, PkcsToolSeesASensitiveNeverExtractableMasterKey) {
  {
    auto hsm = OpenOrDie();
    ASSERT_NE(hsm, nullptr);
    ASSERT_TRUE(hsm->GenerateMasterKey("lockbox/mkek/v1").ok());
  }
  const std::string out_file = token_.dir().file("pkcs11-tool.out");
  const std::string cmd = "SOFTHSM2_CONF='" + token_.conf_file() + "' pkcs11-tool --module '" +
                          token_.module_path() + "' --login --pin '" + token_.pin() +
                          "' --token-label '" + token_.label() + "' --list-objects >'" + out_file +
                          "' 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream in(out_file);
  const std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << out;
  const auto at = out.find("label:      lockbox/mkek/v1");
  ASSERT_NE(at, std::string::npos) << out;
  // The object's block: from "Secret Key Object" to the next blank-line-separated object.
  const auto begin = out.rfind("Secret Key Object", at);
  ASSERT_NE(begin, std::string::npos) << out;
  const auto end = out.find("Object;", at);
  const std::string block =
      out.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
  EXPECT_NE(block.find("AES"), std::string::npos) << block;
  EXPECT_NE(block.find("sensitive"), std::string::npos) << block;
  EXPECT_NE(block.find("never extractable"), std::string::npos) << block;
  EXPECT_EQ(block.find("Value:"), std::string::npos) << block;
  EXPECT_NE(block.find("wrap"), std::string::npos) << block;
}

// --- Wycheproof AES-KW / AES-KWP against SoftHSM2's CKM_AES_KEY_WRAP(_PAD) ----------------------
// KWP wraps every KEK; KW is the fallback for modules without KWP. Every vector of each file is
// checked: valid ones must unwrap to the exact key, invalid ones must be refused, acceptable ones
// may go either way but must never unwrap to anything else.

void CheckWycheproofKeyWrap(const SoftHsmToken& token, Hsm* hsm, const char* file,
                            CK_MECHANISM_TYPE mechanism) {
  ASSERT_NE(hsm, nullptr);  // initialises the module and logs in
  std::ifstream in(testing::TestDataDir() / "wycheproof" / file);
  ASSERT_TRUE(in) << file << " not found";
  const auto doc = nlohmann::json::parse(in);
  RawModule raw(token.module_path());
  CK_SESSION_HANDLE s = raw.Session(token.label(), token.pin());
  ASSERT_NE(s, CK_INVALID_HANDLE);
  auto* f = raw.f();
  int checked = 0;
  for (const auto& group : doc.at("testGroups")) {
    for (const auto& t : group.at("tests")) {
      SCOPED_TRACE(t.at("tcId").get<int>());
      const auto key = crypto::HexDecode(t.at("key").get<std::string>()).value();
      const auto msg = crypto::HexDecode(t.at("msg").get<std::string>()).value();
      auto ct = crypto::HexDecode(t.at("ct").get<std::string>()).value();
      const std::string result = t.at("result");
      // Test-only: import the wrapping key in the clear (never done outside tests).
      CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
      CK_KEY_TYPE kt = CKK_AES;
      CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
      CK_ATTRIBUTE kt_tmpl[] = {{CKA_CLASS, &cls, sizeof cls},
                                {CKA_KEY_TYPE, &kt, sizeof kt},
                                {CKA_TOKEN, &no, sizeof no},
                                {CKA_UNWRAP, &yes, sizeof yes},
                                {CKA_VALUE, const_cast<std::uint8_t*>(key.data()), key.size()}};
      CK_OBJECT_HANDLE wrapping = CK_INVALID_HANDLE;
      ASSERT_EQ(f->C_CreateObject(s, kt_tmpl, std::size(kt_tmpl), &wrapping), CKR_OK);
      CK_KEY_TYPE gk = CKK_GENERIC_SECRET;
      CK_ATTRIBUTE u_tmpl[] = {{CKA_CLASS, &cls, sizeof cls},
                               {CKA_KEY_TYPE, &gk, sizeof gk},
                               {CKA_TOKEN, &no, sizeof no},
                               {CKA_SENSITIVE, &no, sizeof no},
                               {CKA_EXTRACTABLE, &yes, sizeof yes}};
      CK_MECHANISM mech{mechanism, nullptr, 0};
      CK_OBJECT_HANDLE out = CK_INVALID_HANDLE;
      CK_RV rv = f->C_UnwrapKey(s, &mech, wrapping, ct.empty() ? nullptr : ct.data(), ct.size(),
                                u_tmpl, std::size(u_tmpl), &out);
      if (result == "valid") {
        EXPECT_EQ(rv, CKR_OK) << CkrName(rv);
      } else if (result == "invalid") {
        EXPECT_NE(rv, CKR_OK) << t.at("comment") << " was accepted";
      }
      if (rv == CKR_OK) {
        std::vector<std::uint8_t> value(msg.size() + 16);
        CK_ATTRIBUTE a{CKA_VALUE, value.data(), value.size()};
        EXPECT_EQ(f->C_GetAttributeValue(s, out, &a, 1), CKR_OK);
        value.resize(a.ulValueLen);
        EXPECT_EQ(value, msg);
        f->C_DestroyObject(s, out);
      }
      f->C_DestroyObject(s, wrapping);
      ++checked;
    }
  }
  EXPECT_EQ(checked, doc.at("numberOfTests").get<int>());
}

TEST_F(HsmTest, WycheproofAesKwpVectors) {
  CheckWycheproofKeyWrap(token_, OpenOrDie().get(), "aes_kwp_test.json", CKM_AES_KEY_WRAP_PAD);
}

TEST_F(HsmTest, WycheproofAesKwVectors) {
  CheckWycheproofKeyWrap(token_, OpenOrDie().get(), "aes_wrap_test.json", CKM_AES_KEY_WRAP);
}

}  // namespace
}  // namespace lockbox::hsm
