#include "server/blocking/would_block.h"

#include <gtest/gtest.h>

#include <thread>

namespace lockbox::blocking {
namespace {

TEST(WouldBlockTest, OutsideAnyScopeCallsMayBlock) { EXPECT_FALSE(RefuseToBlock()); }

TEST(WouldBlockTest, InsideAScopeTheCallIsRefusedAndTheScopeMarked) {
  NonBlockingScope scope;
  EXPECT_FALSE(scope.blocked());
  EXPECT_TRUE(RefuseToBlock());
  EXPECT_TRUE(scope.blocked());
  EXPECT_EQ(WouldBlockError().code(), StatusCode::kUnavailable);
}

TEST(WouldBlockTest, TheInnermostScopeIsMarkedAndTheOuterOneRestored) {
  NonBlockingScope outer;
  {
    NonBlockingScope inner;
    EXPECT_TRUE(RefuseToBlock());
    EXPECT_TRUE(inner.blocked());
    EXPECT_FALSE(outer.blocked());
  }
  EXPECT_TRUE(RefuseToBlock());
  EXPECT_TRUE(outer.blocked());
}

TEST(WouldBlockTest, ScopesBelongToTheirThread) {
  NonBlockingScope scope;
  bool other_thread_refused = true;
  std::thread other([&] { other_thread_refused = RefuseToBlock(); });
  other.join();
  EXPECT_FALSE(other_thread_refused);
  EXPECT_FALSE(scope.blocked());
}

TEST(WouldBlockTest, AfterTheScopeEndsCallsMayBlockAgain) {
  { NonBlockingScope scope; }
  EXPECT_FALSE(RefuseToBlock());
}

}  // namespace
}  // namespace lockbox::blocking
