// Would-block detection: lets a thread that must not block (an HTTP I/O thread) attempt a request
// anyway, and fall back to a thread that may block only when the attempt needs to.
//
// Inside a NonBlockingScope, every call that can block — store reads and commits, HSM calls,
// waiting for an audit record — calls RefuseToBlock() first, which marks the scope and makes the
// call fail at once with WouldBlockError() instead of blocking. The scope's owner then discards
// whatever the attempt produced (answer, audit event, metrics) and runs the request again where
// it may block. So an attempt must change nothing that a re-run would get wrong before its first
// blocking call: in practice, only reads are attempted (they change state only through the store,
// which refuses, and the caches they fill are idempotent), and the writes a backend declares to be
// such uses (logical::Backend::IsAttemptableUse: transit's encrypt, decrypt, sign…). Waiting for a
// mutex is not detected: locks that an attempt may take must not be held across blocking calls on
// its hot path (the one exception, a key version's KEK lock held while the HSM unwraps that KEK,
// is taken only when a read or use also misses the DEK cache).
// Thread safety: a scope belongs to the thread that made it; the innermost one is marked.
#pragma once

#include "crypto/status.h"

namespace lockbox::blocking {

class NonBlockingScope {
 public:
  NonBlockingScope();
  ~NonBlockingScope();
  NonBlockingScope(const NonBlockingScope&) = delete;
  NonBlockingScope& operator=(const NonBlockingScope&) = delete;

  // True once a call in this scope refused to block.
  bool blocked() const { return blocked_; }

 private:
  friend bool RefuseToBlock();
  bool blocked_ = false;
  NonBlockingScope* previous_;
};

// For calls that can block: true (and the current scope marked blocked) if this thread is inside
// a NonBlockingScope; the caller then returns WouldBlockError() without blocking.
bool RefuseToBlock();

// UNAVAILABLE "operation would block".
Status WouldBlockError();

}  // namespace lockbox::blocking
