#include "server/secrets/kv_read_cache.h"

#include <gtest/gtest.h>

#include <functional>
#include <vector>

namespace lockbox::secrets::internal {
namespace {

// Only the hooks matter to the cache: a unit that commits or rolls back on demand.
class HookTransaction : public store::Transaction {
 public:
  StatusOr<std::int64_t> Execute(std::string_view, const std::vector<store::Value>&) override {
    return std::int64_t{0};
  }
  StatusOr<std::vector<store::Row>> Query(std::string_view,
                                          const std::vector<store::Value>&) override {
    return std::vector<store::Row>{};
  }
  void OnRollback(std::function<void()> undo) override { undos_.push_back(std::move(undo)); }
  void OnCommit(std::function<void()> done) override { commits_.push_back(std::move(done)); }

  void Commit() {
    for (auto& f : commits_) f();
    commits_.clear();
    undos_.clear();
  }
  void Rollback() {
    for (auto it = undos_.rbegin(); it != undos_.rend(); ++it) (*it)();
    commits_.clear();
    undos_.clear();
  }

 private:
  std::vector<std::function<void()>> undos_, commits_;
};

std::shared_ptr<const StoredVersion> Version(std::uint64_t n, std::size_t ciphertext_size = 10) {
  auto v = std::make_shared<StoredVersion>();
  v->version = n;
  v->ciphertext = std::string(ciphertext_size, 'c');
  return v;
}

TEST(KvReadCacheTest, FillThenFind) {
  KvReadCache cache(10, 1 << 20);
  EXPECT_EQ(cache.Find("a"), nullptr);
  cache.Fill("a", Version(3), cache.FillTicket());
  ASSERT_NE(cache.Find("a"), nullptr);
  EXPECT_EQ(cache.Find("a")->version, 3u);
  EXPECT_EQ(cache.Find("b"), nullptr);
}

TEST(KvReadCacheTest, AChangingPathIsNeitherServedNorFilled) {
  KvReadCache cache(10, 1 << 20);
  cache.Fill("a", Version(1), cache.FillTicket());
  cache.Fill("b", Version(1), cache.FillTicket());
  HookTransaction tx;
  cache.Changing(tx, "a");
  EXPECT_EQ(cache.Find("a"), nullptr);
  EXPECT_NE(cache.Find("b"), nullptr);              // other paths stay warm
  cache.Fill("a", Version(1), cache.FillTicket());  // a snapshot from before the commit
  EXPECT_EQ(cache.Find("a"), nullptr);
  tx.Commit();
  EXPECT_EQ(cache.Find("a"), nullptr);
  cache.Fill("a", Version(2), cache.FillTicket());
  EXPECT_EQ(cache.Find("a")->version, 2u);
}

TEST(KvReadCacheTest, ATicketTakenBeforeACommitCannotFill) {
  KvReadCache cache(10, 1 << 20);
  const auto ticket = cache.FillTicket();  // reader starts its snapshot...
  HookTransaction tx;
  cache.Changing(tx, "a");  // ...a writer changes the path and commits...
  tx.Commit();
  cache.Fill("a", Version(1), ticket);  // ...the stale snapshot must not be cached
  EXPECT_EQ(cache.Find("a"), nullptr);
}

TEST(KvReadCacheTest, RollbackEndsTheChangeToo) {
  KvReadCache cache(10, 1 << 20);
  const auto ticket = cache.FillTicket();
  HookTransaction tx;
  cache.Changing(tx, "a");
  tx.Rollback();
  cache.Fill("a", Version(1), ticket);
  EXPECT_EQ(cache.Find("a"), nullptr);
  cache.Fill("a", Version(1), cache.FillTicket());
  EXPECT_NE(cache.Find("a"), nullptr);
}

TEST(KvReadCacheTest, OverlappingChangesOfOnePathWaitForTheLast) {
  KvReadCache cache(10, 1 << 20);
  HookTransaction first, second;
  cache.Changing(first, "a");
  cache.Changing(second, "a");
  first.Commit();
  cache.Fill("a", Version(1), cache.FillTicket());
  EXPECT_EQ(cache.Find("a"), nullptr);
  second.Commit();
  cache.Fill("a", Version(2), cache.FillTicket());
  EXPECT_EQ(cache.Find("a")->version, 2u);
}

TEST(KvReadCacheTest, ChangingAllDropsEverything) {
  KvReadCache cache(10, 1 << 20);
  cache.Fill("a", Version(1), cache.FillTicket());
  cache.Fill("b", Version(1), cache.FillTicket());
  HookTransaction tx;
  cache.ChangingAll(tx);
  EXPECT_EQ(cache.size(), 0u);
  cache.Fill("c", Version(1), cache.FillTicket());
  EXPECT_EQ(cache.Find("c"), nullptr);
  tx.Commit();
  cache.Fill("c", Version(1), cache.FillTicket());
  EXPECT_NE(cache.Find("c"), nullptr);
}

TEST(KvReadCacheTest, BoundedByEntriesLeastRecentlyUsedFirst) {
  KvReadCache cache(2, 1 << 20);
  cache.Fill("a", Version(1), cache.FillTicket());
  cache.Fill("b", Version(1), cache.FillTicket());
  EXPECT_NE(cache.Find("a"), nullptr);  // a is now the most recently used
  cache.Fill("c", Version(1), cache.FillTicket());
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_NE(cache.Find("a"), nullptr);
  EXPECT_EQ(cache.Find("b"), nullptr);
  EXPECT_NE(cache.Find("c"), nullptr);
}

TEST(KvReadCacheTest, BoundedByBytes) {
  KvReadCache cache(100, 3000);
  cache.Fill("a", Version(1, 1000), cache.FillTicket());
  cache.Fill("b", Version(1, 1000), cache.FillTicket());
  cache.Fill("c", Version(1, 1000), cache.FillTicket());  // 3 x (1000 + overhead) > 3000
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.Find("a"), nullptr);
  cache.Fill("huge", Version(1, 5000), cache.FillTicket());  // larger than the whole cache
  EXPECT_EQ(cache.Find("huge"), nullptr);
  EXPECT_EQ(cache.size(), 2u);
}

}  // namespace
}  // namespace lockbox::secrets::internal
