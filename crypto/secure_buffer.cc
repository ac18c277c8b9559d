#include "crypto/secure_buffer.h"

#include <sodium.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <array>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define LOCKBOX_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define LOCKBOX_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define LOCKBOX_POISON(p, n) ((void)(p), (void)(n))
#define LOCKBOX_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace lockbox::crypto {
namespace {

// Locked-memory arena. sodium_malloc costs an mmap, two guard-page mprotects and an mlock per call
// (hundreds of microseconds measured here), far too slow for a buffer per request. So small buffers
// are carved from large sodium_malloc'd (locked, guarded, no-dump) chunks, recycled through
// per-size-class free lists and zeroed whenever they are released. Chunks are kept for the
// process's life: locked memory grows to the peak in use, never beyond.
class SecureArena {
 public:
  static constexpr std::size_t kMinClass = 64;
  static constexpr std::size_t kMaxClass = std::size_t{1} << 20;  // larger: sodium_malloc directly
  static constexpr std::size_t kChunkSize = std::size_t{4} << 20;

  static SecureArena& Instance() {
    static SecureArena* arena = new SecureArena();  // never destroyed: buffers may outlive main
    return *arena;
  }

  static bool Fits(std::size_t size) { return size <= kMaxClass; }

  std::uint8_t* Allocate(std::size_t size) {
    const std::size_t cls = ClassIndex(size);
    std::lock_guard lock(mu_);
    auto& free_list = free_[cls];
    const std::size_t block = ClassSize(cls);
    if (!free_list.empty()) {
      std::uint8_t* p = free_list.back();
      free_list.pop_back();
      // Only the requested bytes become addressable, so ASan still sees overruns and reuse.
      LOCKBOX_UNPOISON(p, size);
      return p;
    }
    if (chunk_left_ < block) {
      chunk_ = static_cast<std::uint8_t*>(sodium_malloc(kChunkSize));
      if (chunk_ == nullptr) std::abort();  // no unlocked fallback for secret bytes
      chunk_left_ = kChunkSize;
      sodium_memzero(chunk_, kChunkSize);  // sodium_malloc fills with a canary pattern
      LOCKBOX_POISON(chunk_, kChunkSize);
    }
    std::uint8_t* p = chunk_;
    chunk_ += block;
    chunk_left_ -= block;
    LOCKBOX_UNPOISON(p, size);
    return p;
  }

  void Release(std::uint8_t* p, std::size_t size) {
    const std::size_t cls = ClassIndex(size);
    sodium_memzero(p, size);  // the rest of the block was never handed out, so is still zero
    LOCKBOX_POISON(p, ClassSize(cls));
    std::lock_guard lock(mu_);
    free_[cls].push_back(p);
  }

 private:
  static constexpr std::size_t kClasses =
      std::countr_zero(kMaxClass) - std::countr_zero(kMinClass) + 1;

  static std::size_t ClassIndex(std::size_t size) {
    const std::size_t rounded = std::bit_ceil(size < kMinClass ? kMinClass : size);
    return static_cast<std::size_t>(std::countr_zero(rounded) - std::countr_zero(kMinClass));
  }
  static std::size_t ClassSize(std::size_t cls) { return kMinClass << cls; }

  std::mutex mu_;
  std::array<std::vector<std::uint8_t*>, kClasses> free_;
  std::uint8_t* chunk_ = nullptr;
  std::size_t chunk_left_ = 0;
};

}  // namespace

void InitCrypto() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (sodium_init() < 0) std::abort();
    // No core dumps: they would contain DEKs and plaintexts (invariant 4).
    rlimit no_core{0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  });
}

SecureBuffer::SecureBuffer(std::size_t size) : size_(size) {
  if (size == 0) return;
  InitCrypto();
  if (SecureArena::Fits(size)) {
    data_ = SecureArena::Instance().Allocate(size);  // zero: blocks are zeroed on release
  } else {
    data_ = static_cast<std::uint8_t*>(sodium_malloc(size));
    if (data_ == nullptr) std::abort();  // No unlocked fallback for secret bytes.
    sodium_memzero(data_, size);
  }
}

SecureBuffer SecureBuffer::Copy(std::span<const std::uint8_t> bytes) {
  SecureBuffer out(bytes.size());
  if (!bytes.empty()) std::memcpy(out.data_, bytes.data(), bytes.size());
  return out;
}

SecureBuffer SecureBuffer::Copy(std::string_view bytes) {
  return Copy(std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
}

SecureBuffer::SecureBuffer(SecureBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

SecureBuffer& SecureBuffer::operator=(SecureBuffer&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

SecureBuffer::~SecureBuffer() { Release(); }

void SecureBuffer::Release() {
  if (data_ != nullptr) {
    if (SecureArena::Fits(size_)) {
      SecureArena::Instance().Release(data_, size_);
    } else {
      sodium_free(data_);  // zeroes the region before unmapping it
    }
    data_ = nullptr;
    size_ = 0;
  }
}

void SecureZero(std::span<std::uint8_t> bytes) {
  if (!bytes.empty()) sodium_memzero(bytes.data(), bytes.size());
}

}  // namespace lockbox::crypto
