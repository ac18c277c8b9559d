#include "server/blocking/would_block.h"

namespace lockbox::blocking {
namespace {

thread_local NonBlockingScope* current_scope = nullptr;

}  // namespace

NonBlockingScope::NonBlockingScope() : previous_(current_scope) { current_scope = this; }

NonBlockingScope::~NonBlockingScope() { current_scope = previous_; }

bool RefuseToBlock() {
  if (current_scope == nullptr) return false;
  current_scope->blocked_ = true;
  return true;
}

Status WouldBlockError() { return UnavailableError("operation would block"); }

}  // namespace lockbox::blocking
