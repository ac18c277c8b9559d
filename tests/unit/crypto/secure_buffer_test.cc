#include "crypto/secure_buffer.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "crypto/random.h"

namespace lockbox::crypto {
namespace {

TEST(SecureBufferTest, DefaultIsEmpty) {
  SecureBuffer b;
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.size(), 0u);
  EXPECT_EQ(b.data(), nullptr);
  EXPECT_TRUE(b.view().empty());
}

TEST(SecureBufferTest, SizedBufferIsZeroed) {
  SecureBuffer b(48);
  ASSERT_EQ(b.size(), 48u);
  ASSERT_NE(b.data(), nullptr);
  EXPECT_TRUE(std::all_of(b.span().begin(), b.span().end(), [](std::uint8_t x) { return x == 0; }));
}

TEST(SecureBufferTest, CopyFromBytesAndString) {
  const std::vector<std::uint8_t> src = {1, 2, 3, 250};
  SecureBuffer a = SecureBuffer::Copy(src);
  ASSERT_EQ(a.size(), src.size());
  EXPECT_TRUE(std::equal(src.begin(), src.end(), a.span().begin()));
  EXPECT_NE(a.data(), src.data());  // a copy, not an alias

  SecureBuffer s = SecureBuffer::Copy(std::string_view("s3cr3t"));
  EXPECT_EQ(s.view(), "s3cr3t");
  EXPECT_EQ(s.size(), 6u);

  SecureBuffer e = SecureBuffer::Copy(std::string_view(""));
  EXPECT_TRUE(e.empty());

  // An explicit Copy of a SecureBuffer is independent of the original.
  SecureBuffer c = SecureBuffer::Copy(s.span());
  c.data()[0] = 'S';
  EXPECT_EQ(s.view(), "s3cr3t");
  EXPECT_EQ(c.view(), "S3cr3t");
}

TEST(SecureBufferTest, MoveLeavesSourceEmpty) {
  SecureBuffer a = SecureBuffer::Copy(std::string_view("key material"));
  const std::uint8_t* original = a.data();
  SecureBuffer b(std::move(a));
  EXPECT_EQ(b.data(), original);
  EXPECT_EQ(b.view(), "key material");
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): testing the moved-from state
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(a.size(), 0u);

  SecureBuffer c = SecureBuffer::Copy(std::string_view("old"));
  c = std::move(b);
  EXPECT_EQ(c.view(), "key material");
  EXPECT_TRUE(b.empty());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(b.data(), nullptr);
}

TEST(SecureBufferTest, ViewAndSpanCoverTheBytes) {
  SecureBuffer b = SecureBuffer::Copy(std::string_view("abc\0def", 7));
  EXPECT_EQ(b.view().size(), 7u);
  EXPECT_EQ(b.view(), std::string_view("abc\0def", 7));
  EXPECT_EQ(b.span().size(), 7u);
  b.span()[1] = 'B';
  EXPECT_EQ(b.view().substr(0, 3), "aBc");
}

TEST(SecureBufferTest, SecureZeroClears) {
  std::vector<std::uint8_t> v = {9, 9, 9};
  SecureZero(v);
  EXPECT_EQ(v, (std::vector<std::uint8_t>{0, 0, 0}));
  SecureZero({});  // empty span is fine
}

TEST(SecureBufferTest, RandomSecretSizes) {
  for (const std::size_t size : {0u, 1u, 16u, 32u, 64u, 4096u}) {
    SCOPED_TRACE(size);
    SecureBuffer s = RandomSecret(size);
    EXPECT_EQ(s.size(), size);
    EXPECT_EQ(s.empty(), size == 0);
  }
  // 32 random bytes are all zero with probability 2^-256.
  SecureBuffer k = RandomSecret(32);
  EXPECT_FALSE(
      std::all_of(k.span().begin(), k.span().end(), [](std::uint8_t x) { return x == 0; }));
}

TEST(SecureBufferTest, RandomVectorsDiffer) {
  const std::vector<std::uint8_t> a = RandomVector(32);
  const std::vector<std::uint8_t> b = RandomVector(32);
  EXPECT_EQ(a.size(), 32u);
  EXPECT_EQ(b.size(), 32u);
  EXPECT_NE(a, b);
  EXPECT_TRUE(RandomVector(0).empty());
}

}  // namespace
}  // namespace lockbox::crypto

namespace lockbox::crypto {
namespace {

// The per-thread random pool is copied into a fork child: the child must not hand out the bytes
// its parent is about to use.
TEST(RandomTest, ForkChildDoesNotRepeatItsParentsBytes) {
  (void)RandomVector(16);  // the pool now holds unused bytes
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const auto bytes = RandomVector(32);
    const bool ok = write(fds[1], bytes.data(), bytes.size()) == 32;
    _exit(ok ? 0 : 1);
  }
  close(fds[1]);
  const auto parent = RandomVector(32);
  std::vector<std::uint8_t> child(32);
  ASSERT_EQ(read(fds[0], child.data(), child.size()), 32);
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_NE(parent, child);
}

TEST(RandomTest, LargeAndSmallRequestsAreFilled) {
  for (std::size_t size : {0, 1, 12, 32, 256, 257, 5000}) {
    const auto a = RandomVector(size), b = RandomVector(size);
    ASSERT_EQ(a.size(), size);
    if (size >= 12) {
      EXPECT_NE(a, b) << size;
    }
  }
}

}  // namespace
}  // namespace lockbox::crypto
