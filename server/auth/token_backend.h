// The token auth method, mounted at "auth/token/" (reference §3; Vault's token store paths):
// create, create-orphan, create/:role, lookup(-self|-accessor), renew(-self|-accessor),
// revoke(-self|-accessor|-orphan), accessors (LIST) and token roles (roles/:name).
//
// Vault's rules are kept exactly: a child inherits its parent's policies when it names none;
// callers without sudo may only ask for a subset of their own policies (400 "child policies must
// be subset of parent"); "root" only comes from a root parent; "default" is added unless
// no_default_policy; `id`, no_parent and period need sudo; a num_uses token cannot create
// children; roles filter policies (allowed/disallowed, with globs) and set orphan, renewable,
// period, explicit max TTL, num_uses, bound CIDRs and a path suffix.
//
// Security properties: every token state change (issue, renew, revoke) and every role change
// commits together with its audit event (Response::audited); audit events and errors carry
// accessors, never tokens; accessors (sudo) and revoke-orphan (sudo) are root-protected paths.
// Thread safety: thread-safe (state lives in the TokenStore and the store).
#pragma once

#include <chrono>
#include <memory>

#include "crypto/status.h"
#include "server/audit_log/event_log.h"
#include "server/auth/token_store.h"
#include "server/logical/logical.h"
#include "server/store/store.h"

namespace lockbox::auth {

struct TokenBackendOptions {
  // TTL of a token created without ttl (and without the root policy): config default_lease_ttl.
  std::chrono::seconds default_ttl{std::chrono::hours(768)};
  // Cap on every TTL, counted from creation: config max_lease_ttl.
  std::chrono::seconds max_ttl{std::chrono::hours(768)};
};

// Makes the "auth/token/" backend. Token roles live in the token store's token_roles table
// (TokenStoreMigrations(), applied by TokenStore::Open). `tokens`, `store` and `events` must
// outlive the backend.
StatusOr<std::unique_ptr<logical::Backend>> NewTokenBackend(TokenStore& tokens, store::Store& store,
                                                            audit_log::EventLog& events,
                                                            TokenBackendOptions options = {});

}  // namespace lockbox::auth
