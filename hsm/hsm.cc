// Hsm over a PKCS#11 module. See hsm.h for the contract.
//
// Structure:
//  - Module: one per module path per process (registry, refcounted). Owns the dlopen handle and
//    the C_Initialize/C_Finalize pair. Every PKCS#11 call runs under the module's shared lock;
//    re-initialisation (C_Finalize + C_Initialize) takes it exclusively, so no call is ever in
//    flight while the library is torn down. `epoch` counts re-initialisations.
//  - Hsm (P11Hsm): the token (slot found by label), the user PIN (locked memory), a long-lived
//    "owner" session that creates every session object (unwrapped KEKs), and a bounded pool of
//    R/W sessions leased to one thread at a time.
//  - The owner session holds a sentinel data object: while it exists, the owner session (and
//    every session object it made) is alive. If it is gone, the owner is re-opened and the
//    generation bumped.
//  - Key handles are generation-bound. Every handle this Hsm hands out has a recipe (token object:
//    class + label; unwrapped KEK: wrapping key + wrapped bytes), so a handle from an older
//    generation is transparently re-resolved (found again / unwrapped again) instead of failing.
//  - Retry: each operation runs at most twice. Session errors (handle invalid, session closed,
//    user not logged in) drop the session and retry on a fresh one (which logs in); device errors
//    (device error/removed, token not present, cryptoki not initialised) re-initialise the module
//    and retry; stale key handles after a lost owner session are re-resolved and retried.
#include "hsm/hsm.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <p11-kit/pkcs11.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <shared_mutex>
#include <utility>

#include "crypto/encoding.h"
#include "crypto/hash.h"
#include "crypto/random.h"
#include "hsm/ckr.h"

namespace lockbox::hsm {
namespace {

constexpr std::size_t kAesKeyBytes = 32;
constexpr std::size_t kWrappedKekBytes = kAesKeyBytes + 8;
constexpr std::size_t kGcmIvBytes = 12;
constexpr std::size_t kGcmTagBytes = 16;
constexpr std::size_t kMaxPinFileBytes = 1024;
constexpr std::size_t kMaxDigestBytes = 64;  // SHA-512, the longest hash transit offers
constexpr std::string_view kSentinelLabel = "lockbox/hsm/owner-sentinel";

// DER: OBJECT IDENTIFIER 1.2.840.10045.3.1.7 (prime256v1 / P-256).
constexpr std::uint8_t kP256Params[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
// DER: OBJECT IDENTIFIER 1.3.101.112 (id-Ed25519, RFC 8410).
constexpr std::uint8_t kEd25519OidParams[] = {0x06, 0x03, 0x2b, 0x65, 0x70};
// DER: PrintableString "edwards25519" (PKCS#11 3.0 curve name form).
constexpr std::uint8_t kEd25519NameParams[] = {0x13, 0x0c, 'e', 'd', 'w', 'a', 'r',
                                               'd',  's',  '2', '5', '5', '1', '9'};

std::string Octal(mode_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

std::string TrimPadded(const unsigned char* s, std::size_t n) {
  std::string out(reinterpret_cast<const char*>(s), n);
  while (!out.empty() && (out.back() == ' ' || out.back() == '\0')) out.pop_back();
  return out;
}

// --- Attribute templates ---------------------------------------------------------------------
class Template {
 public:
  Template& Bool(CK_ATTRIBUTE_TYPE type, bool value) {
    return Raw(type,
               std::vector<std::uint8_t>{static_cast<std::uint8_t>(value ? CK_TRUE : CK_FALSE)});
  }
  Template& Ulong(CK_ATTRIBUTE_TYPE type, CK_ULONG value) {
    std::vector<std::uint8_t> bytes(sizeof value);
    std::memcpy(bytes.data(), &value, sizeof value);
    return Raw(type, std::move(bytes));
  }
  Template& Bytes(CK_ATTRIBUTE_TYPE type, std::span<const std::uint8_t> value) {
    return Raw(type, std::vector<std::uint8_t>(value.begin(), value.end()));
  }
  Template& Str(CK_ATTRIBUTE_TYPE type, std::string_view value) {
    return Bytes(type, crypto::AsBytes(value));
  }
  CK_ATTRIBUTE* data() { return attrs_.data(); }
  CK_ULONG size() const { return attrs_.size(); }

 private:
  Template& Raw(CK_ATTRIBUTE_TYPE type, std::vector<std::uint8_t> bytes) {
    store_.push_back(std::move(bytes));
    auto& b = store_.back();
    attrs_.push_back(CK_ATTRIBUTE{type, b.empty() ? nullptr : b.data(), b.size()});
    return *this;
  }
  std::deque<std::vector<std::uint8_t>> store_;  // deque: element addresses stay stable
  std::vector<CK_ATTRIBUTE> attrs_;
};

// --- Module registry -------------------------------------------------------------------------

// Reader/writer lock that prefers writers: a re-initialisation is not starved by a steady stream
// of operations (glibc's default rwlock, behind std::shared_mutex, prefers readers). Not
// recursive: no thread takes it shared twice.
class WriterPreferringMutex {
 public:
  WriterPreferringMutex() {
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&lock_, &attr);
    pthread_rwlockattr_destroy(&attr);
  }
  ~WriterPreferringMutex() { pthread_rwlock_destroy(&lock_); }
  WriterPreferringMutex(const WriterPreferringMutex&) = delete;
  WriterPreferringMutex& operator=(const WriterPreferringMutex&) = delete;
  void lock() { pthread_rwlock_wrlock(&lock_); }
  void unlock() { pthread_rwlock_unlock(&lock_); }
  void lock_shared() { pthread_rwlock_rdlock(&lock_); }
  void unlock_shared() { pthread_rwlock_unlock(&lock_); }

 private:
  pthread_rwlock_t lock_;
};

struct Module {
  std::string path;
  void* dl = nullptr;
  CK_FUNCTION_LIST_PTR f = nullptr;
  std::size_t refs = 0;
  bool we_initialized = false;
  // Shared: any PKCS#11 call. Exclusive: C_Finalize/C_Initialize.
  WriterPreferringMutex mu;
  std::uint64_t epoch = 0;  // bumped by each re-initialisation (guarded by mu)
};

std::mutex g_registry_mu;
std::map<std::string, Module*>& Registry() {
  static auto* registry = new std::map<std::string, Module*>();
  return *registry;
}

CK_RV InitializeModule(Module& m) {
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  return m.f->C_Initialize(&args);
}

// Sanitizer builds keep the module mapped after dlclose, so LeakSanitizer can name it in its
// reports: leaks inside the PKCS#11 module itself (SoftHSM2's EdDSA code leaks an ASN.1 string per
// signature) are then suppressed by module name (tools/lsan.supp), never ours.
#if defined(__SANITIZE_ADDRESS__)
constexpr int kDlopenExtraFlags = RTLD_NODELETE;
#else
constexpr int kDlopenExtraFlags = 0;
#endif

StatusOr<Module*> AcquireModule(const std::string& path) {
  std::lock_guard lock(g_registry_mu);
  auto& registry = Registry();
  if (auto it = registry.find(path); it != registry.end()) {
    ++it->second->refs;
    return it->second;
  }
  void* dl = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | kDlopenExtraFlags);
  if (dl == nullptr) {
    const char* err = dlerror();
    return UnavailableError("cannot load PKCS#11 module " + path + ": " +
                            (err != nullptr ? err : "dlopen failed"));
  }
  auto get_list = reinterpret_cast<CK_C_GetFunctionList>(dlsym(dl, "C_GetFunctionList"));
  if (get_list == nullptr) {
    dlclose(dl);
    return UnavailableError("cannot load PKCS#11 module " + path + ": no C_GetFunctionList");
  }
  CK_FUNCTION_LIST_PTR f = nullptr;
  if (CK_RV rv = get_list(&f); rv != CKR_OK || f == nullptr) {
    dlclose(dl);
    return UnavailableError("cannot load PKCS#11 module " + path +
                            ": C_GetFunctionList: " + std::string(CkrName(rv)));
  }
  auto m = std::make_unique<Module>();
  m->path = path;
  m->dl = dl;
  m->f = f;
  CK_RV rv = InitializeModule(*m);
  if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
    dlclose(dl);
    return UnavailableError("cannot initialise PKCS#11 module " + path +
                            ": C_Initialize: " + std::string(CkrName(rv)));
  }
  m->we_initialized = (rv == CKR_OK);
  m->refs = 1;
  Module* raw = m.release();
  registry[path] = raw;
  return raw;
}

void ReleaseModule(Module* m) {
  std::lock_guard lock(g_registry_mu);
  if (--m->refs > 0) return;
  Registry().erase(m->path);
  {
    std::unique_lock mlock(m->mu);
    if (m->we_initialized) m->f->C_Finalize(nullptr);
  }
  dlclose(m->dl);
  delete m;
}

// --- Failure classification ----------------------------------------------------------------
enum class Recovery { kNone, kSession, kDevice, kHandle };

Recovery Classify(CK_RV rv) {
  switch (rv) {
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED:
    case CKR_USER_NOT_LOGGED_IN:
      return Recovery::kSession;
    case CKR_DEVICE_ERROR:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_DEVICE_REMOVED:
    case CKR_CRYPTOKI_NOT_INITIALIZED:
      return Recovery::kDevice;
    case CKR_KEY_HANDLE_INVALID:
    case CKR_OBJECT_HANDLE_INVALID:
    case CKR_WRAPPING_KEY_HANDLE_INVALID:
    case CKR_UNWRAPPING_KEY_HANDLE_INVALID:
      return Recovery::kHandle;
    default:
      return Recovery::kNone;
  }
}

bool SessionOrDeviceFailure(CK_RV rv) {
  return Classify(rv) == Recovery::kSession || Classify(rv) == Recovery::kDevice;
}

// Recipe for re-creating a handle after its generation went stale.
struct Recipe {
  bool token = true;
  CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
  std::string label;                  // token objects
  KeyHandle wrapping;                 // unwrapped keys: the key that unwrapped them
  std::vector<std::uint8_t> wrapped;  // unwrapped keys: the wrapped bytes (not secret)
  CK_OBJECT_HANDLE current = CK_INVALID_HANDLE;
  std::uint64_t current_generation = 0;
};

Recipe TokenRecipe(CK_OBJECT_CLASS cls, std::string label) {
  Recipe r;
  r.token = true;
  r.cls = cls;
  r.label = std::move(label);
  return r;
}

Recipe UnwrappedRecipe(const KeyHandle& wrapping, std::span<const std::uint8_t> wrapped) {
  Recipe r;
  r.token = false;
  r.wrapping = wrapping;
  r.wrapped.assign(wrapped.begin(), wrapped.end());
  return r;
}

class P11Hsm;

// One operation attempt's state: the leased session and the first CKR failure seen.
struct Call {
  P11Hsm* hsm;
  CK_FUNCTION_LIST_PTR f;
  CK_SESSION_HANDLE session;
  std::uint64_t generation;  // the Hsm's generation when the attempt started
  CK_RV rv = CKR_OK;
  // An operation may be left active in the session: close it instead of returning it.
  bool dirty = false;

  // Records a failing CK_RV (the first one decides recovery) and turns it into a Status.
  Status Check(const char* function, CK_RV r) {
    if (r == CKR_OK) return Status::Ok();
    if (rv == CKR_OK) rv = r;
    return CkrToStatus(function, r);
  }
};

class P11Hsm final : public Hsm {
 public:
  P11Hsm(HsmConfig config, Module* module, crypto::SecureBuffer pin)
      : config_(std::move(config)), module_(module), pin_(std::move(pin)) {
    if (config_.max_sessions == 0) config_.max_sessions = 1;
  }

  ~P11Hsm() override {
    {
      std::shared_lock mlock(module_->mu);
      const bool live = connected_ && conn_epoch_ == module_->epoch;
      if (live) {
        std::lock_guard plock(pool_mu_);
        for (const auto& s : idle_) {
          if (s.generation == generation_.load()) module_->f->C_CloseSession(s.handle);
        }
        idle_.clear();
        // Closing the owner destroys every session object (unwrapped KEK) it created.
        if (owner_ != CK_INVALID_HANDLE) module_->f->C_CloseSession(owner_);
      }
    }
    ReleaseModule(module_);
  }

  P11Hsm(const P11Hsm&) = delete;
  P11Hsm& operator=(const P11Hsm&) = delete;

  Status Start() {
    std::shared_lock mlock(module_->mu);
    CK_RV rv = CKR_OK;
    Status s = Connect(&rv);
    if (!s.ok()) return s;
    CK_MECHANISM_INFO info{};
    wrap_mechanism_ = CKM_AES_KEY_WRAP;
    if (module_->f->C_GetMechanismInfo(slot_, CKM_AES_KEY_WRAP_PAD, &info) == CKR_OK &&
        (info.flags & CKF_WRAP) != 0 && (info.flags & CKF_UNWRAP) != 0) {
      wrap_mechanism_ = CKM_AES_KEY_WRAP_PAD;
    }
    return Status::Ok();
  }

  std::uint64_t generation() const override { return generation_.load(); }

  // ---------------------------------------------------------------------------------------------
  StatusOr<KeyHandle> GenerateMasterKey(std::string_view label) override {
    std::lock_guard glock(generate_mu_);
    return Run<KeyHandle>([&](Call& c) -> StatusOr<KeyHandle> {
      auto found = FindOne(c, CKO_SECRET_KEY, label);
      if (found.ok()) return AlreadyExistsError("secret key '" + std::string(label) + "' exists");
      if (found.status().code() != StatusCode::kNotFound) return found.status();
      Template t;
      t.Ulong(CKA_CLASS, CKO_SECRET_KEY)
          .Ulong(CKA_KEY_TYPE, CKK_AES)
          .Ulong(CKA_VALUE_LEN, kAesKeyBytes)
          .Bool(CKA_TOKEN, true)
          .Bool(CKA_PRIVATE, true)
          .Bool(CKA_SENSITIVE, true)
          .Bool(CKA_EXTRACTABLE, false)
          .Bool(CKA_MODIFIABLE, false)
          .Bool(CKA_WRAP, true)
          .Bool(CKA_UNWRAP, true)
          .Bool(CKA_ENCRYPT, false)
          .Bool(CKA_DECRYPT, false)
          .Bool(CKA_SIGN, false)
          .Bool(CKA_VERIFY, false)
          .Bool(CKA_DERIVE, false)
          .Str(CKA_LABEL, label);
      CK_MECHANISM mech{CKM_AES_KEY_GEN, nullptr, 0};
      CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
      LOCKBOX_RETURN_IF_ERROR(
          c.Check("C_GenerateKey", c.f->C_GenerateKey(c.session, &mech, t.data(), t.size(), &obj)));
      return Issue(c, obj, TokenRecipe(CKO_SECRET_KEY, std::string(label)));
    });
  }

  StatusOr<KeyHandle> FindSecretKey(std::string_view label) override {
    return Run<KeyHandle>([&](Call& c) -> StatusOr<KeyHandle> {
      LOCKBOX_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE obj, FindOne(c, CKO_SECRET_KEY, label));
      return Issue(c, obj, TokenRecipe(CKO_SECRET_KEY, std::string(label)));
    });
  }

  // ---------------------------------------------------------------------------------------------
  StatusOr<std::vector<std::uint8_t>> GenerateWrappedKey(const KeyHandle& wrapping_key) override {
    return Run<std::vector<std::uint8_t>>([&](Call& c) -> StatusOr<std::vector<std::uint8_t>> {
      LOCKBOX_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE wrapper, Resolve(c, wrapping_key));
      Template t;
      t.Ulong(CKA_CLASS, CKO_SECRET_KEY)
          .Ulong(CKA_KEY_TYPE, CKK_AES)
          .Ulong(CKA_VALUE_LEN, kAesKeyBytes)
          .Bool(CKA_TOKEN, false)
          .Bool(CKA_PRIVATE, true)
          .Bool(CKA_SENSITIVE, true)
          .Bool(CKA_EXTRACTABLE, true)  // only so that it can be wrapped, right below
          .Bool(CKA_ENCRYPT, true)
          .Bool(CKA_DECRYPT, true)
          .Bool(CKA_WRAP, false)
          .Bool(CKA_UNWRAP, false)
          .Bool(CKA_SIGN, false)
          .Bool(CKA_VERIFY, false)
          .Bool(CKA_DERIVE, false);
      CK_MECHANISM gen{CKM_AES_KEY_GEN, nullptr, 0};
      CK_OBJECT_HANDLE kek = CK_INVALID_HANDLE;
      LOCKBOX_RETURN_IF_ERROR(
          c.Check("C_GenerateKey", c.f->C_GenerateKey(c.session, &gen, t.data(), t.size(), &kek)));
      // The transient KEK dies here whatever happens (and with the session at the latest).
      struct Destroyer {
        Call& c;
        CK_OBJECT_HANDLE obj;
        ~Destroyer() { c.f->C_DestroyObject(c.session, obj); }
      } destroyer{c, kek};
      CK_MECHANISM wrap{wrap_mechanism_, nullptr, 0};
      CK_ULONG len = 0;
      LOCKBOX_RETURN_IF_ERROR(
          c.Check("C_WrapKey", c.f->C_WrapKey(c.session, &wrap, wrapper, kek, nullptr, &len)));
      std::vector<std::uint8_t> out(len);
      LOCKBOX_RETURN_IF_ERROR(
          c.Check("C_WrapKey", c.f->C_WrapKey(c.session, &wrap, wrapper, kek, out.data(), &len)));
      out.resize(len);
      return out;
    });
  }

  StatusOr<KeyHandle> UnwrapKey(const KeyHandle& wrapping_key,
                                std::span<const std::uint8_t> wrapped) override {
    if (wrapped.empty()) return DataLossError("C_UnwrapKey: empty wrapped key");
    return Run<KeyHandle>([&](Call& c) -> StatusOr<KeyHandle> {
      LOCKBOX_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE obj, UnwrapInOwner(c, wrapping_key, wrapped));
      // The KEK can only be re-created later if its wrapping key can be found again.
      Adopt(c, wrapping_key);
      return Issue(c, obj, UnwrappedRecipe(wrapping_key, wrapped));
    });
  }

  // ---------------------------------------------------------------------------------------------
  StatusOr<std::vector<std::uint8_t>> WrapData(const KeyHandle& kek,
                                               std::span<const std::uint8_t> data,
                                               std::span<const std::uint8_t> aad) override {
    return Run<std::vector<std::uint8_t>>([&](Call& c) -> StatusOr<std::vector<std::uint8_t>> {
      LOCKBOX_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE key, Resolve(c, kek));
      std::vector<std::uint8_t> iv = crypto::RandomVector(kGcmIvBytes);  // fresh per attempt
      CK_GCM_PARAMS params = GcmParams(iv, aad);
      CK_MECHANISM mech{CKM_AES_GCM, &params, sizeof params};
      LOCKBOX_RETURN_IF_ERROR(c.Check("C_EncryptInit", c.f->C_EncryptInit(c.session, &mech, key)));
      CK_ULONG len = 0;
      CK_BYTE empty = 0;  // some modules refuse a null input pointer even for 0 bytes
      auto* in = data.empty() ? &empty : const_cast<CK_BYTE_PTR>(data.data());
      CK_RV rv = c.f->C_Encrypt(c.session, in, data.size(), nullptr, &len);
      if (rv != CKR_OK) {
        c.dirty = true;
        return c.Check("C_Encrypt", rv);
      }
      std::vector<std::uint8_t> out(kGcmIvBytes + len);
      std::copy(iv.begin(), iv.end(), out.begin());
      LOCKBOX_RETURN_IF_ERROR(c.Check(
          "C_Encrypt", c.f->C_Encrypt(c.session, in, data.size(), out.data() + kGcmIvBytes, &len)));
      out.resize(kGcmIvBytes + len);
      if (len != data.size() + kGcmTagBytes)
        return InternalError("C_Encrypt: unexpected GCM output length");
      return out;
    });
  }

  StatusOr<crypto::SecureBuffer> UnwrapData(const KeyHandle& kek,
                                            std::span<const std::uint8_t> wrapped,
                                            std::span<const std::uint8_t> aad) override {
    if (wrapped.size() < kGcmIvBytes + kGcmTagBytes) {
      return DataLossError("wrapped data too short (" + std::to_string(wrapped.size()) + " bytes)");
    }
    return Run<crypto::SecureBuffer>([&](Call& c) -> StatusOr<crypto::SecureBuffer> {
      LOCKBOX_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE key, Resolve(c, kek));
      std::vector<std::uint8_t> iv(wrapped.begin(), wrapped.begin() + kGcmIvBytes);
      CK_GCM_PARAMS params = GcmParams(iv, aad);
      CK_MECHANISM mech{CKM_AES_GCM, &params, sizeof params};
      LOCKBOX_RETURN_IF_ERROR(c.Check("C_DecryptInit", c.f->C_DecryptInit(c.session, &mech, key)));
      auto* in = const_cast<CK_BYTE_PTR>(wrapped.data() + kGcmIvBytes);
      const CK_ULONG in_len = wrapped.size() - kGcmIvBytes;
      CK_ULONG len = 0;
      CK_RV rv = c.f->C_Decrypt(c.session, in, in_len, nullptr, &len);
      if (rv != CKR_OK) {
        c.dirty = true;
        return DecryptFailure(c, rv);
      }
      crypto::SecureBuffer out(std::max<CK_ULONG>(len, in_len));
      len = out.size();
      rv = c.f->C_Decrypt(c.session, in, in_len, out.data(), &len);
      if (rv != CKR_OK) return DecryptFailure(c, rv);
      if (len == out.size()) return out;
      auto exact = crypto::SecureBuffer::Copy(out.span().first(len));
      return exact;
    });
  }

  // ---------------------------------------------------------------------------------------------
  StatusOr<SigningKey> GenerateSigningKey(SigningAlgorithm algorithm,
                                          std::string_view label) override {
    std::lock_guard glock(generate_mu_);
    return Run<SigningKey>([&](Call& c) -> StatusOr<SigningKey> {
      auto found = FindOne(c, CKO_PRIVATE_KEY, label);
      if (found.ok()) return AlreadyExistsError("signing key '" + std::string(label) + "' exists");
      if (found.status().code() != StatusCode::kNotFound) return found.status();
      const bool ed = algorithm == SigningAlgorithm::kEd25519;
      std::vector<std::span<const std::uint8_t>> param_choices;
      if (ed) {
        param_choices = {kEd25519OidParams, kEd25519NameParams};
      } else {
        param_choices = {kP256Params};
      }
      CK_MECHANISM mech{ed ? CKM_EC_EDWARDS_KEY_PAIR_GEN : CKM_EC_KEY_PAIR_GEN, nullptr, 0};
      CK_RV rv = CKR_OK;
      CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE, priv = CK_INVALID_HANDLE;
      for (auto params : param_choices) {
        Template pt;
        pt.Ulong(CKA_CLASS, CKO_PUBLIC_KEY)
            .Ulong(CKA_KEY_TYPE, ed ? CKK_EC_EDWARDS : CKK_EC)
            .Bool(CKA_TOKEN, true)
            .Bool(CKA_PRIVATE, false)
            .Bool(CKA_VERIFY, true)
            .Bool(CKA_ENCRYPT, false)
            .Bool(CKA_WRAP, false)
            .Bool(CKA_DERIVE, false)
            .Bytes(CKA_EC_PARAMS, params)
            .Str(CKA_LABEL, label)
            .Str(CKA_ID, label);
        Template kt;
        kt.Ulong(CKA_CLASS, CKO_PRIVATE_KEY)
            .Ulong(CKA_KEY_TYPE, ed ? CKK_EC_EDWARDS : CKK_EC)
            .Bool(CKA_TOKEN, true)
            .Bool(CKA_PRIVATE, true)
            .Bool(CKA_SENSITIVE, true)
            .Bool(CKA_EXTRACTABLE, false)
            .Bool(CKA_SIGN, true)
            .Bool(CKA_DECRYPT, false)
            .Bool(CKA_UNWRAP, false)
            .Bool(CKA_DERIVE, false)
            .Str(CKA_LABEL, label)
            .Str(CKA_ID, label);
        rv = c.f->C_GenerateKeyPair(c.session, &mech, pt.data(), pt.size(), kt.data(), kt.size(),
                                    &pub, &priv);
        // Another encoding of the curve may be accepted (Ed25519: OID vs. curve name).
        if (rv != CKR_ATTRIBUTE_VALUE_INVALID && rv != CKR_CURVE_NOT_SUPPORTED &&
            rv != CKR_DOMAIN_PARAMS_INVALID && rv != CKR_TEMPLATE_INCONSISTENT) {
          break;
        }
      }
      LOCKBOX_RETURN_IF_ERROR(c.Check("C_GenerateKeyPair", rv));
      SigningKey key;
      key.algorithm = algorithm;
      key.label = std::string(label);
      key.private_key = Issue(c, priv, TokenRecipe(CKO_PRIVATE_KEY, key.label));
      key.public_key = Issue(c, pub, TokenRecipe(CKO_PUBLIC_KEY, key.label));
      return key;
    });
  }

  StatusOr<SigningKey> FindSigningKey(std::string_view label) override {
    return Run<SigningKey>([&](Call& c) -> StatusOr<SigningKey> {
      LOCKBOX_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE priv, FindOne(c, CKO_PRIVATE_KEY, label));
      LOCKBOX_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE pub, FindOne(c, CKO_PUBLIC_KEY, label));
      CK_KEY_TYPE type = 0;
      CK_ATTRIBUTE a{CKA_KEY_TYPE, &type, sizeof type};
      LOCKBOX_RETURN_IF_ERROR(
          c.Check("C_GetAttributeValue", c.f->C_GetAttributeValue(c.session, priv, &a, 1)));
      SigningKey key;
      if (type == CKK_EC) {
        key.algorithm = SigningAlgorithm::kEcdsaP256Sha256;
        LOCKBOX_ASSIGN_OR_RETURN(auto params, GetBytes(c, pub, CKA_EC_PARAMS));
        if (!std::ranges::equal(params, std::span<const std::uint8_t>(kP256Params))) {
          return InvalidArgumentError("signing key '" + std::string(label) + "' is not on P-256");
        }
      } else if (type == CKK_EC_EDWARDS) {
        key.algorithm = SigningAlgorithm::kEd25519;
      } else {
        return InvalidArgumentError("key '" + std::string(label) + "' is not an EC signing key");
      }
      key.label = std::string(label);
      key.private_key = Issue(c, priv, TokenRecipe(CKO_PRIVATE_KEY, key.label));
      key.public_key = Issue(c, pub, TokenRecipe(CKO_PUBLIC_KEY, key.label));
      return key;
    });
  }

  StatusOr<std::vector<std::uint8_t>> Sign(const SigningKey& key,
                                           std::span<const std::uint8_t> message) override {
    if (key.algorithm == SigningAlgorithm::kEd25519) return SignInput(key, message);
    const auto digest = crypto::Sha256(message);
    return SignInput(key, digest);
  }

  StatusOr<std::vector<std::uint8_t>> SignDigest(const SigningKey& key,
                                                 std::span<const std::uint8_t> digest) override {
    if (key.algorithm == SigningAlgorithm::kEd25519) {
      return InvalidArgumentError("Ed25519 keys sign messages, not digests");
    }
    if (digest.empty() || digest.size() > kMaxDigestBytes) {
      return InvalidArgumentError("a digest to sign must be 1 to 64 bytes");
    }
    return SignInput(key, digest);
  }

  // CKM_EDDSA over a message or CKM_ECDSA over a digest.
  StatusOr<std::vector<std::uint8_t>> SignInput(const SigningKey& key,
                                                std::span<const std::uint8_t> input) {
    const bool ed = key.algorithm == SigningAlgorithm::kEd25519;
    return Run<std::vector<std::uint8_t>>([&](Call& c) -> StatusOr<std::vector<std::uint8_t>> {
      LOCKBOX_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE priv, Resolve(c, key.private_key));
      CK_MECHANISM mech{ed ? CKM_EDDSA : CKM_ECDSA, nullptr, 0};
      LOCKBOX_RETURN_IF_ERROR(c.Check("C_SignInit", c.f->C_SignInit(c.session, &mech, priv)));
      std::vector<std::uint8_t> sig(64);
      CK_ULONG len = sig.size();
      LOCKBOX_RETURN_IF_ERROR(
          c.Check("C_Sign", c.f->C_Sign(c.session, const_cast<CK_BYTE_PTR>(input.data()),
                                        input.size(), sig.data(), &len)));
      if (len != 64)
        return InternalError("C_Sign: unexpected signature length " + std::to_string(len));
      return sig;
    });
  }

  StatusOr<nlohmann::json> PublicJwk(const SigningKey& key) override {
    return Run<nlohmann::json>([&](Call& c) -> StatusOr<nlohmann::json> {
      LOCKBOX_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE pub, Resolve(c, key.public_key));
      LOCKBOX_ASSIGN_OR_RETURN(auto der, GetBytes(c, pub, CKA_EC_POINT));
      const bool ed = key.algorithm == SigningAlgorithm::kEd25519;
      const std::size_t point_len = ed ? 32 : 65;
      std::span<const std::uint8_t> point(der);
      // DER OCTET STRING (04 len point); some modules return the bare point.
      if (point.size() == point_len + 2 && point[0] == 0x04 && point[1] == point_len) {
        point = point.subspan(2);
      } else if (point.size() != point_len) {
        return InternalError("CKA_EC_POINT: unexpected encoding (" + std::to_string(der.size()) +
                             " bytes)");
      }
      nlohmann::json jwk;
      if (ed) {
        jwk = {{"kty", "OKP"},
               {"crv", "Ed25519"},
               {"x", crypto::Base64UrlEncode(point)},
               {"alg", "EdDSA"}};
      } else {
        if (point[0] != 0x04) return InternalError("CKA_EC_POINT: not an uncompressed point");
        jwk = {{"kty", "EC"},
               {"crv", "P-256"},
               {"x", crypto::Base64UrlEncode(point.subspan(1, 32))},
               {"y", crypto::Base64UrlEncode(point.subspan(33, 32))},
               {"alg", "ES256"}};
      }
      jwk["kid"] = key.label;
      jwk["use"] = "sig";
      return jwk;
    });
  }

  // ---------------------------------------------------------------------------------------------
  Status DestroyObject(const KeyHandle& key) override {
    if (key.generation < generation_.load()) {
      // A session object of an older generation died with its owner session already.
      std::lock_guard lock(recipes_mu_);
      auto it = recipes_.find({key.object, key.generation});
      if (it != recipes_.end() && !it->second.token &&
          it->second.current_generation != generation_.load()) {
        recipes_.erase(it);
        return Status::Ok();
      }
    }
    auto r = Run<bool>([&](Call& c) -> StatusOr<bool> {
      LOCKBOX_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE obj, Resolve(c, key));
      LOCKBOX_RETURN_IF_ERROR(c.Check("C_DestroyObject", c.f->C_DestroyObject(c.session, obj)));
      return true;
    });
    if (r.ok() || r.status().code() == StatusCode::kNotFound) {
      std::lock_guard lock(recipes_mu_);
      recipes_.erase({key.object, key.generation});
    }
    return r.status();
  }

  StatusOr<std::size_t> DestroyObjectsByLabel(std::string_view label) override {
    auto r = Run<std::size_t>([&](Call& c) -> StatusOr<std::size_t> {
      Template t;
      t.Str(CKA_LABEL, label);
      LOCKBOX_ASSIGN_OR_RETURN(auto objects, Find(c, t));
      std::size_t n = 0;
      for (CK_OBJECT_HANDLE obj : objects) {
        CK_RV rv = c.f->C_DestroyObject(c.session, obj);
        if (rv == CKR_OBJECT_HANDLE_INVALID) continue;  // destroyed concurrently
        LOCKBOX_RETURN_IF_ERROR(c.Check("C_DestroyObject", rv));
        ++n;
      }
      return n;
    });
    if (r.ok()) {
      std::lock_guard lock(recipes_mu_);
      std::erase_if(recipes_,
                    [&](const auto& kv) { return kv.second.token && kv.second.label == label; });
    }
    return r;
  }

  StatusOr<KeyAttributes> GetAttributes(const KeyHandle& key) override {
    return Run<KeyAttributes>([&](Call& c) -> StatusOr<KeyAttributes> {
      LOCKBOX_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE obj, Resolve(c, key));
      const CK_ATTRIBUTE_TYPE types[] = {
          CKA_TOKEN,   CKA_SENSITIVE, CKA_EXTRACTABLE, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE,
          CKA_ENCRYPT, CKA_DECRYPT,   CKA_WRAP,        CKA_UNWRAP,           CKA_SIGN};
      constexpr std::size_t n = std::size(types);
      CK_BBOOL values[n] = {};
      CK_ATTRIBUTE attrs[n];
      for (std::size_t i = 0; i < n; ++i)
        attrs[i] = CK_ATTRIBUTE{types[i], &values[i], sizeof(CK_BBOOL)};
      CK_RV rv = c.f->C_GetAttributeValue(c.session, obj, attrs, n);
      // Attributes that do not apply to this object class come back unavailable: left false.
      if (rv != CKR_OK && rv != CKR_ATTRIBUTE_TYPE_INVALID && rv != CKR_ATTRIBUTE_SENSITIVE) {
        return c.Check("C_GetAttributeValue", rv);
      }
      auto get = [&](std::size_t i) {
        return attrs[i].ulValueLen == sizeof(CK_BBOOL) && values[i] == CK_TRUE;
      };
      KeyAttributes out;
      out.token = get(0);
      out.sensitive = get(1);
      out.extractable = get(2);
      out.always_sensitive = get(3);
      out.never_extractable = get(4);
      out.encrypt = get(5);
      out.decrypt = get(6);
      out.wrap = get(7);
      out.unwrap = get(8);
      out.sign = get(9);
      auto label = GetBytes(c, obj, CKA_LABEL);
      if (label.ok()) out.label.assign(label->begin(), label->end());
      return out;
    });
  }

  // Used by Call users.
  CK_FUNCTION_LIST_PTR f() const { return module_->f; }

 private:
  struct PooledSession {
    CK_SESSION_HANDLE handle = CK_INVALID_HANDLE;
    std::uint64_t generation = 0;
  };

  // RAII lease of a pool session: returned to the pool on destruction unless dropped.
  class Lease {
   public:
    Lease(P11Hsm* hsm, PooledSession s) : hsm_(hsm), s_(s) {}
    Lease(Lease&& o) noexcept : hsm_(std::exchange(o.hsm_, nullptr)), s_(o.s_) {}
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (hsm_ != nullptr) hsm_->ReturnSession(s_, /*keep=*/true);
    }
    CK_SESSION_HANDLE handle() const { return s_.handle; }
    std::uint64_t generation() const { return s_.generation; }
    // The session is dead: forget it without closing (its handle number may be reused).
    void Drop() {
      if (hsm_ != nullptr) std::exchange(hsm_, nullptr)->ReturnSession(s_, /*keep=*/false);
    }
    // The session is alive but in an unknown state: close it.
    void Close() {
      if (hsm_ != nullptr) {
        hsm_->module_->f->C_CloseSession(s_.handle);
        Drop();
      }
    }

   private:
    P11Hsm* hsm_;
    PooledSession s_;
  };

  static CK_GCM_PARAMS GcmParams(std::vector<std::uint8_t>& iv, std::span<const std::uint8_t> aad) {
    CK_GCM_PARAMS p{};
    p.pIv = iv.data();
    p.ulIvLen = iv.size();
    p.ulIvBits = iv.size() * 8;
    p.pAAD = const_cast<CK_BYTE_PTR>(aad.data());
    p.ulAADLen = aad.size();
    p.ulTagBits = kGcmTagBytes * 8;
    return p;
  }

  // A GCM decryption failure is an authentication failure unless the session or device failed.
  static Status DecryptFailure(Call& c, CK_RV rv) {
    Status s = c.Check("C_Decrypt", rv);
    if (SessionOrDeviceFailure(rv) || Classify(rv) == Recovery::kHandle) return s;
    return DataLossError(s.message() + " (authentication failed: wrong key, AAD or tampered data)");
  }

  // A handle tagged with the generation its attempt started in (a recovery by another thread
  // meanwhile makes it stale, never wrongly current).
  KeyHandle Issue(const Call& c, CK_OBJECT_HANDLE obj, Recipe recipe) {
    KeyHandle h{obj, c.generation};
    recipe.current = obj;
    recipe.current_generation = h.generation;
    std::lock_guard lock(recipes_mu_);
    recipes_[{h.object, h.generation}] = std::move(recipe);
    return h;
  }

  // Gives a current-generation handle this Hsm did not issue (e.g. an MKEK found through another
  // Hsm on the same module) a recipe, if it is a labelled token object.
  void Adopt(Call& c, const KeyHandle& h) {
    if (h.generation != c.generation) return;
    {
      std::lock_guard lock(recipes_mu_);
      if (recipes_.contains({h.object, h.generation})) return;
    }
    CK_BBOOL token = CK_FALSE;
    CK_OBJECT_CLASS cls = 0;
    CK_ATTRIBUTE attrs[] = {{CKA_TOKEN, &token, sizeof token}, {CKA_CLASS, &cls, sizeof cls}};
    if (c.f->C_GetAttributeValue(c.session, h.object, attrs, std::size(attrs)) != CKR_OK ||
        token != CK_TRUE) {
      return;
    }
    auto label = GetBytes(c, h.object, CKA_LABEL);
    if (!label.ok() || label->empty()) return;
    Recipe r = TokenRecipe(cls, std::string(label->begin(), label->end()));
    r.current = h.object;
    r.current_generation = h.generation;
    std::lock_guard lock(recipes_mu_);
    recipes_.try_emplace({h.object, h.generation}, std::move(r));
  }

  // Current object handle for `h`, re-creating it from its recipe if its generation is stale.
  StatusOr<CK_OBJECT_HANDLE> Resolve(Call& c, const KeyHandle& h) {
    const std::uint64_t gen = generation_.load();
    if (h.generation == gen) return h.object;
    if (h.generation > gen) return InvalidArgumentError("key handle from an unknown generation");
    std::unique_lock lock(recipes_mu_);
    auto it = recipes_.find({h.object, h.generation});
    if (it == recipes_.end()) {
      return FailedPreconditionError("stale key handle (generation " +
                                     std::to_string(h.generation) + ", now " + std::to_string(gen) +
                                     ") with no way to re-create it");
    }
    Recipe& r = it->second;
    if (r.current_generation == gen) return r.current;
    CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
    if (r.token) {
      LOCKBOX_ASSIGN_OR_RETURN(obj, FindOne(c, r.cls, r.label));
    } else {
      KeyHandle wrapping = r.wrapping;
      std::vector<std::uint8_t> wrapped = r.wrapped;
      lock.unlock();  // unwrapping resolves the wrapping key, which takes this lock
      auto unwrapped = UnwrapInOwner(c, wrapping, wrapped);
      lock.lock();
      if (!unwrapped.ok()) return unwrapped.status();
      obj = *unwrapped;
      it = recipes_.find({h.object, h.generation});
      if (it == recipes_.end()) {  // destroyed meanwhile
        c.f->C_DestroyObject(c.session, obj);
        return NotFoundError("key handle destroyed");
      }
    }
    it->second.current = obj;
    it->second.current_generation = gen;
    return obj;
  }

  // Unwraps a KEK into a session object of the owner session (so it outlives pool sessions).
  StatusOr<CK_OBJECT_HANDLE> UnwrapInOwner(Call& c, const KeyHandle& wrapping_key,
                                           std::span<const std::uint8_t> wrapped) {
    // RFC 3394 / RFC 5649 wrapping of a 32-byte key is exactly 40 bytes.
    if (wrapped.size() != kWrappedKekBytes) {
      return DataLossError("wrapped key is " + std::to_string(wrapped.size()) + " bytes, want " +
                           std::to_string(kWrappedKekBytes));
    }
    LOCKBOX_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE wrapper, Resolve(c, wrapping_key));
    Template t;
    t.Ulong(CKA_CLASS, CKO_SECRET_KEY)
        .Ulong(CKA_KEY_TYPE, CKK_AES)
        .Bool(CKA_TOKEN, false)
        .Bool(CKA_PRIVATE, true)
        .Bool(CKA_SENSITIVE, true)
        .Bool(CKA_EXTRACTABLE, false)
        .Bool(CKA_ENCRYPT, true)
        .Bool(CKA_DECRYPT, true)
        .Bool(CKA_WRAP, false)
        .Bool(CKA_UNWRAP, false)
        .Bool(CKA_SIGN, false)
        .Bool(CKA_VERIFY, false)
        .Bool(CKA_DERIVE, false);
    CK_MECHANISM mech{wrap_mechanism_, nullptr, 0};
    CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
    {
      std::lock_guard lock(conn_mu_);
      // The owner must be alive and ours before anything is created in it.
      if (!OwnerAliveLocked()) {
        Status s = ReopenOwnerLocked(&c.rv);
        if (!s.ok()) return s;
      }
      CK_RV rv = c.f->C_UnwrapKey(owner_, &mech, wrapper, const_cast<CK_BYTE_PTR>(wrapped.data()),
                                  wrapped.size(), t.data(), t.size(), &obj);
      if (rv != CKR_OK) {
        Status s = c.Check("C_UnwrapKey", rv);
        // An integrity failure of the key-wrap algorithm: the wrapped bytes are not ours.
        if (rv == CKR_GENERAL_ERROR || rv == CKR_FUNCTION_FAILED || rv == CKR_DATA_INVALID ||
            rv == CKR_DATA_LEN_RANGE || rv == CKR_ENCRYPTED_DATA_INVALID) {
          return DataLossError(s.message() + " (wrapped key rejected)");
        }
        return s;
      }
    }
    // Belt and braces: some modules (SoftHSM2) leave CKA_VALUE_LEN at 0 on unwrapped keys, so
    // only a value that is there and wrong is refused (the wrapped length was checked already).
    CK_ULONG value_len = 0;
    CK_ATTRIBUTE a{CKA_VALUE_LEN, &value_len, sizeof value_len};
    CK_RV rv = c.f->C_GetAttributeValue(c.session, obj, &a, 1);
    if (rv == CKR_OK && value_len != 0 && value_len != kAesKeyBytes) {
      c.f->C_DestroyObject(c.session, obj);
      return DataLossError("C_UnwrapKey: unwrapped key is not AES-256");
    }
    return obj;
  }

  StatusOr<std::vector<CK_OBJECT_HANDLE>> Find(Call& c, Template& t) {
    LOCKBOX_RETURN_IF_ERROR(
        c.Check("C_FindObjectsInit", c.f->C_FindObjectsInit(c.session, t.data(), t.size())));
    std::vector<CK_OBJECT_HANDLE> out;
    CK_RV rv = CKR_OK;
    for (;;) {
      CK_OBJECT_HANDLE batch[32];
      CK_ULONG n = 0;
      rv = c.f->C_FindObjects(c.session, batch, std::size(batch), &n);
      if (rv != CKR_OK || n == 0) break;
      out.insert(out.end(), batch, batch + n);
    }
    CK_RV frv = c.f->C_FindObjectsFinal(c.session);
    LOCKBOX_RETURN_IF_ERROR(c.Check("C_FindObjects", rv));
    LOCKBOX_RETURN_IF_ERROR(c.Check("C_FindObjectsFinal", frv));
    return out;
  }

  StatusOr<CK_OBJECT_HANDLE> FindOne(Call& c, CK_OBJECT_CLASS cls, std::string_view label) {
    Template t;
    t.Ulong(CKA_CLASS, cls).Bool(CKA_TOKEN, true).Str(CKA_LABEL, label);
    LOCKBOX_ASSIGN_OR_RETURN(auto objects, Find(c, t));
    const char* what = cls == CKO_SECRET_KEY    ? "secret key"
                       : cls == CKO_PRIVATE_KEY ? "private key"
                                                : "public key";
    if (objects.empty())
      return NotFoundError(std::string(what) + " '" + std::string(label) + "' not found");
    if (objects.size() > 1) {
      return FailedPreconditionError(std::to_string(objects.size()) + " objects of class " + what +
                                     " labelled '" + std::string(label) + "'");
    }
    return objects.front();
  }

  StatusOr<std::vector<std::uint8_t>> GetBytes(Call& c, CK_OBJECT_HANDLE obj,
                                               CK_ATTRIBUTE_TYPE type) {
    CK_ATTRIBUTE a{type, nullptr, 0};
    LOCKBOX_RETURN_IF_ERROR(
        c.Check("C_GetAttributeValue", c.f->C_GetAttributeValue(c.session, obj, &a, 1)));
    if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION) return InternalError("attribute unavailable");
    std::vector<std::uint8_t> out(a.ulValueLen);
    a.pValue = out.data();
    LOCKBOX_RETURN_IF_ERROR(
        c.Check("C_GetAttributeValue", c.f->C_GetAttributeValue(c.session, obj, &a, 1)));
    out.resize(a.ulValueLen);
    return out;
  }

  // --- Connection (call with the module lock held shared) ----------------------------------

  // Finds the token, opens and logs in the owner session, makes the sentinel.
  Status Connect(CK_RV* failed) {
    std::lock_guard lock(conn_mu_);
    return ConnectLocked(failed);
  }

  Status ConnectLocked(CK_RV* failed) {
    auto* f = module_->f;
    auto fail = [&](const char* fn, CK_RV rv) {
      *failed = rv;
      return CkrToStatus(fn, rv);
    };
    CK_ULONG count = 0;
    if (CK_RV rv = f->C_GetSlotList(CK_TRUE, nullptr, &count); rv != CKR_OK)
      return fail("C_GetSlotList", rv);
    std::vector<CK_SLOT_ID> slots(count);
    if (CK_RV rv = f->C_GetSlotList(CK_TRUE, slots.data(), &count); rv != CKR_OK)
      return fail("C_GetSlotList", rv);
    slots.resize(count);
    std::optional<CK_SLOT_ID> slot;
    for (CK_SLOT_ID s : slots) {
      CK_TOKEN_INFO info{};
      if (f->C_GetTokenInfo(s, &info) != CKR_OK) continue;
      if (TrimPadded(info.label, sizeof info.label) == config_.token_label) {
        slot = s;
        break;
      }
    }
    if (!slot) return NotFoundError("PKCS#11 token '" + config_.token_label + "' not found");
    slot_ = *slot;
    conn_epoch_ = module_->epoch;
    connected_ = false;
    Status s = ReopenOwnerLocked(failed);
    if (!s.ok()) return s;
    connected_ = true;
    return Status::Ok();
  }

  StatusOr<CK_SESSION_HANDLE> OpenSession(CK_RV* failed) {
    CK_SLOT_ID slot;
    {
      std::lock_guard lock(conn_mu_);
      slot = slot_;
    }
    return OpenSessionOn(slot, failed);
  }

  StatusOr<CK_SESSION_HANDLE> OpenSessionOn(CK_SLOT_ID slot, CK_RV* failed) {
    auto* f = module_->f;
    CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
    CK_RV rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &h);
    if (rv != CKR_OK) {
      *failed = rv;
      return CkrToStatus("C_OpenSession", rv);
    }
    // Login state is per application and token: the first login covers every session.
    rv = f->C_Login(h, CKU_USER, pin_.data(), pin_.size());
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
      f->C_CloseSession(h);
      *failed = rv;
      return CkrToStatus("C_Login", rv);
    }
    return h;
  }

  bool OwnerAliveLocked() {
    if (owner_ == CK_INVALID_HANDLE) return false;
    std::uint8_t value[sizeof sentinel_] = {};
    CK_ATTRIBUTE a{CKA_VALUE, value, sizeof value};
    CK_RV rv = module_->f->C_GetAttributeValue(owner_, sentinel_object_, &a, 1);
    return rv == CKR_OK && a.ulValueLen == sizeof sentinel_ &&
           std::memcmp(value, sentinel_, sizeof value) == 0;
  }

  // Opens a fresh owner session with its sentinel; every older session object is lost, so the
  // generation is bumped (which also retires the idle pool sessions).
  Status ReopenOwnerLocked(CK_RV* failed) {
    auto owner = OpenSessionOn(slot_, failed);
    if (!owner.ok()) return owner.status();
    crypto::RandomBytes(sentinel_);
    Template t;
    t.Ulong(CKA_CLASS, CKO_DATA)
        .Bool(CKA_TOKEN, false)
        .Bool(CKA_PRIVATE, true)
        .Str(CKA_LABEL, kSentinelLabel)
        .Bytes(CKA_VALUE, sentinel_);
    CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
    CK_RV rv = module_->f->C_CreateObject(*owner, t.data(), t.size(), &obj);
    if (rv != CKR_OK) {
      module_->f->C_CloseSession(*owner);
      *failed = rv;
      return CkrToStatus("C_CreateObject", rv);
    }
    const bool had_owner = owner_ != CK_INVALID_HANDLE;
    owner_ = *owner;
    sentinel_object_ = obj;
    if (had_owner) BumpGeneration();
    return Status::Ok();
  }

  void BumpGeneration() {
    std::lock_guard plock(pool_mu_);
    generation_.fetch_add(1);
    open_ -= idle_.size();  // dead with the old generation: forgotten, never closed
    idle_.clear();
    pool_cv_.notify_all();
  }

  // Makes sure this Hsm's sessions belong to the module's current initialisation.
  Status EnsureConnected(CK_RV* failed) {
    std::lock_guard lock(conn_mu_);
    if (connected_ && conn_epoch_ == module_->epoch) return Status::Ok();
    if (conn_epoch_ != module_->epoch) {
      // The module was re-initialised (by us or another Hsm on it): every handle is gone.
      owner_ = CK_INVALID_HANDLE;
      connected_ = false;
      BumpGeneration();
    }
    Status s = ConnectLocked(failed);
    return s;
  }

  // --- Pool ----------------------------------------------------------------------------------
  StatusOr<Lease> Borrow(CK_RV* failed) {
    {
      std::unique_lock lock(pool_mu_);
      for (;;) {
        pool_cv_.wait(lock, [&] { return !idle_.empty() || open_ < config_.max_sessions; });
        if (!idle_.empty()) {
          PooledSession s = idle_.back();
          idle_.pop_back();
          if (s.generation == generation_.load()) return Lease(this, s);
          --open_;  // stale: forget
          continue;
        }
        ++open_;
        break;
      }
    }
    const std::uint64_t gen = generation_.load();
    auto h = OpenSession(failed);
    if (!h.ok()) {
      std::lock_guard lock(pool_mu_);
      --open_;
      pool_cv_.notify_one();
      return h.status();
    }
    return Lease(this, PooledSession{*h, gen});
  }

  void ReturnSession(PooledSession s, bool keep) {
    std::lock_guard lock(pool_mu_);
    if (keep && s.generation == generation_.load()) {
      idle_.push_back(s);
    } else {
      --open_;
    }
    pool_cv_.notify_one();
  }

  // Runs `op` on a leased session; on a recoverable failure recovers and retries once.
  template <typename T>
  StatusOr<T> Run(const std::function<StatusOr<T>(Call&)>& op) {
    for (int attempt = 0;; ++attempt) {
      Recovery recovery = Recovery::kNone;
      std::uint64_t epoch = 0;
      {
        std::shared_lock mlock(module_->mu);
        epoch = module_->epoch;
        CK_RV failed = CKR_OK;
        Status status;
        std::optional<StatusOr<T>> result;
        std::uint64_t attempt_generation = generation_.load();
        if (status = EnsureConnected(&failed); status.ok()) {
          auto lease = Borrow(&failed);
          if (!lease.ok()) {
            status = lease.status();
          } else {
            attempt_generation = lease->generation();
            Call c{this, module_->f, lease->handle(), attempt_generation};
            result.emplace(op(c));
            if (result->ok()) return std::move(*result);
            failed = c.rv;
            if (SessionOrDeviceFailure(failed)) {
              lease->Drop();
            } else if (c.dirty) {
              lease->Close();
            }
          }
        }
        StatusOr<T> out = result ? std::move(*result) : StatusOr<T>(status);
        recovery = Classify(failed);
        if (attempt > 0 || recovery == Recovery::kNone) return out;
        if (recovery == Recovery::kSession || recovery == Recovery::kHandle) {
          // Did the owner session (and the session objects it holds) die too?
          std::lock_guard lock(conn_mu_);
          if (failed == CKR_USER_NOT_LOGGED_IN && owner_ != CK_INVALID_HANDLE) {
            // Logged out behind our back: log the application in again.
            module_->f->C_Login(owner_, CKU_USER, pin_.data(), pin_.size());
          }
          if (generation_.load() != attempt_generation) {
            // Another thread recovered meanwhile: retry with fresh sessions and handles.
          } else if (!OwnerAliveLocked()) {
            CK_RV ignored = CKR_OK;
            Status s = ReopenOwnerLocked(&ignored);
            if (!s.ok()) {
              if (Classify(ignored) != Recovery::kDevice) return s;
              recovery = Recovery::kDevice;
            }
          } else if (recovery == Recovery::kHandle) {
            return out;  // a genuinely unknown (e.g. destroyed) handle
          }
        }
      }
      if (recovery == Recovery::kDevice) Reinitialize(epoch);
    }
  }

  // C_Finalize + C_Initialize, unless someone already did it since `seen_epoch`.
  void Reinitialize(std::uint64_t seen_epoch) {
    std::unique_lock mlock(module_->mu);
    if (module_->epoch != seen_epoch) return;
    module_->f->C_Finalize(nullptr);
    InitializeModule(*module_);  // a failure shows up as CKR_CRYPTOKI_NOT_INITIALIZED next time
    module_->we_initialized = true;
    ++module_->epoch;
  }

  HsmConfig config_;
  Module* module_;
  crypto::SecureBuffer pin_;
  CK_MECHANISM_TYPE wrap_mechanism_ = CKM_AES_KEY_WRAP_PAD;
  std::atomic<std::uint64_t> generation_{0};
  std::mutex generate_mu_;  // check-then-create of labelled keys

  // Connection state.
  std::mutex conn_mu_;
  bool connected_ = false;
  std::uint64_t conn_epoch_ = 0;
  CK_SLOT_ID slot_ = 0;
  CK_SESSION_HANDLE owner_ = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE sentinel_object_ = CK_INVALID_HANDLE;
  std::uint8_t sentinel_[16] = {};

  // Pool.
  std::mutex pool_mu_;
  std::condition_variable pool_cv_;
  std::vector<PooledSession> idle_;
  std::size_t open_ = 0;

  // Recipes of handed-out handles, keyed by (object, generation).
  std::mutex recipes_mu_;
  std::map<std::pair<CK_OBJECT_HANDLE, std::uint64_t>, Recipe> recipes_;
};

}  // namespace

StatusOr<crypto::SecureBuffer> ReadPinFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    const int err = errno;
    std::string m = "cannot open PIN file " + path + ": " + std::strerror(err);
    if (err == ENOENT) return NotFoundError(std::move(m));
    return PermissionDeniedError(std::move(m));
  }
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return PermissionDeniedError("cannot stat PIN file " + path);
  if (!S_ISREG(st.st_mode))
    return PermissionDeniedError("PIN file " + path + " is not a regular file");
  const mode_t mode = st.st_mode & 07777;
  if (mode != 0400 && mode != 0600) {
    return PermissionDeniedError("PIN file " + path + " has mode " + Octal(mode) +
                                 "; want 0400 or 0600");
  }
  crypto::SecureBuffer buf(kMaxPinFileBytes + 1);
  std::size_t n = 0;
  while (n < buf.size()) {
    const ssize_t r = ::read(fd, buf.data() + n, buf.size() - n);
    if (r < 0) {
      if (errno == EINTR) continue;
      return PermissionDeniedError("cannot read PIN file " + path);
    }
    if (r == 0) break;
    n += static_cast<std::size_t>(r);
  }
  if (n > kMaxPinFileBytes) return InvalidArgumentError("PIN file " + path + " is too large");
  if (n > 0 && buf.data()[n - 1] == '\n') --n;
  if (n == 0) return InvalidArgumentError("PIN file " + path + " is empty");
  return crypto::SecureBuffer::Copy(buf.span().first(n));
}

StatusOr<std::unique_ptr<Hsm>> Hsm::Open(const HsmConfig& config) {
  if (config.token_label.empty()) return InvalidArgumentError("HSM token label is empty");
  LOCKBOX_ASSIGN_OR_RETURN(crypto::SecureBuffer pin, ReadPinFile(config.pin_file));
  LOCKBOX_ASSIGN_OR_RETURN(Module * module, AcquireModule(config.module_path));
  // From here the P11Hsm owns the module reference (released in its destructor).
  auto hsm = std::make_unique<P11Hsm>(config, module, std::move(pin));
  LOCKBOX_RETURN_IF_ERROR(hsm->Start());
  return std::unique_ptr<Hsm>(std::move(hsm));
}

}  // namespace lockbox::hsm
