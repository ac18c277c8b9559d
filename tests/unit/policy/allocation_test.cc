// The ACL hot path must not allocate: this binary replaces the global operator new with a
// counting one and checks that Capabilities/Allows/AnyCapabilityUnder leave the count unchanged.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "policy/policy.h"

namespace {
std::atomic<long> g_allocations{0};
// Results go through volatiles so the optimizer keeps every call.
volatile std::uint32_t g_result_sink = 0;
void* volatile g_pointer_sink = nullptr;
}  // namespace

// Allocation and release go through these out-of-line helpers, so GCC never sees malloc/free
// paired with operator new/delete (-Wmismatched-new-delete).
[[gnu::noinline]] void* CountedAllocate(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void Release(void* p) noexcept { std::free(p); }

void* operator new(std::size_t size) { return CountedAllocate(size); }
void* operator new[](std::size_t size) { return CountedAllocate(size); }
void operator delete(void* p) noexcept { Release(p); }
void operator delete[](void* p) noexcept { Release(p); }
void operator delete(void* p, std::size_t) noexcept { Release(p); }
void operator delete[](void* p, std::size_t) noexcept { Release(p); }

namespace lockbox::policy {
namespace {

TEST(AllocationTest, LookupsDoNotAllocate) {
  // Exact, glob and '+' rules, nested prefixes, and paths exercising every lookup branch.
  StatusOr<Policy> policy = ParsePolicy("p", R"(
path "secret/data/exact" { capabilities = ["read"] }
path "secret/metadata/folder" { capabilities = ["list"] }
path "secret/*" { capabilities = ["read", "list"] }
path "secret/data/*" { capabilities = ["create", "update"] }
path "secret/data/team-*" { capabilities = ["deny"] }
path "secret/+/shared/*" { capabilities = ["read"] }
path "secret/+/+/foo/*" { capabilities = ["update"] }
path "+/config" { capabilities = ["read"] }
path "auth/+/login" { capabilities = ["update"] }
)");
  ASSERT_TRUE(policy.ok()) << policy.status().ToString();
  StatusOr<Policy> other = ParsePolicy("default", DefaultPolicyText());
  ASSERT_TRUE(other.ok());
  const Policy* set[] = {&*policy, &*other};
  const Acl acl = Acl::Compile(set);
  // Long paths to be sure nothing fits in a small-string buffer by accident.
  const std::string long_path = "secret/data/" + std::string(300, 'x') + "/y";
  const std::vector<std::string> paths = {"secret/data/exact",
                                          "secret/metadata/folder/",
                                          "secret/data/x",
                                          "secret/data/team-a",
                                          "secret/a/shared/b",
                                          "secret/a/b/foo/c",
                                          "kv/config",
                                          "auth/approle/login",
                                          "transit/keys/k",
                                          "/secret/other",
                                          "cubbyhole/x/y/z",
                                          long_path,
                                          "",
                                          "/",
                                          "secret/",
                                          "+/config"};

  const long before = g_allocations.load();
  for (int repeat = 0; repeat < 100; ++repeat) {
    for (const std::string& path : paths) {
      g_result_sink = acl.Capabilities(path);
      g_result_sink = acl.Allows(path, kRead, repeat % 2 == 0) ? 1u : 0u;
      g_result_sink = acl.AnyCapabilityUnder(path) ? 2u : 0u;
    }
  }
  const long after = g_allocations.load();
  EXPECT_EQ(after - before, 0) << "allocations on the ACL hot path";

  // The counter itself works (the check above could not pass vacuously).
  const long probe_before = g_allocations.load();
  g_pointer_sink = ::operator new(64);
  ::operator delete(g_pointer_sink);
  EXPECT_GE(g_allocations.load() - probe_before, 1);
}

}  // namespace
}  // namespace lockbox::policy
