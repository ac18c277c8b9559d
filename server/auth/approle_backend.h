// The AppRole auth method (`auth/<mount>/`, reference §4): roles, role-ids, secret-ids and login.
//
// A role names the token a machine gets (policies, TTLs, CIDR bindings); a machine proves itself
// with the role's role_id plus a secret-id generated for it, and receives a service token from
// the TokenStore (path "auth/<mount>/login"). Tokens default to a 15 minute TTL and a 1 hour
// explicit max TTL unless the role (or the mount's tuning) says otherwise.
//
// Security properties:
//  - Secret-ids are stored only as HMAC-SHA256 under a random per-role key (a salt that also
//    keeps equal custom secret-ids of two roles apart); the stored and presented HMACs are
//    compared in constant time. A secret-id is returned once, at generation, and never appears
//    in a log, an audit event or an error.
//  - Login failures all answer 400 "invalid role or secret ID" (unknown role, unknown, expired or
//    exhausted secret-id, client address outside the CIDR bindings): nothing tells which part was
//    wrong. The audit record of the failure (EventLog::Record) does name the reason.
//  - A secret-id's use is checked and spent (num_uses decremented, the entry deleted at 0) in
//    one unit of work on the store's single writer, together with the login's audit event, so
//    concurrent logins can never spend one use twice. The use is spent before the token is
//    issued (TokenStore::Issue commits its own unit): if issuing then fails, the use stays spent
//    and the failure is audited (fail closed, as Vault does).
//  - Every state change commits with its audit event in one unit; bad input changes nothing.
// Storage (component "approle"): rows keyed by the mount's uuid, so a remount keeps them and
// Purge() deletes them.
// Thread safety: thread-safe (all state lives in the store).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/status.h"
#include "server/audit_log/event_log.h"
#include "server/auth/token_store.h"
#include "server/logical/logical.h"
#include "server/store/store.h"

namespace lockbox::auth {

struct AppRoleOptions {
  // A login's token TTL when neither the role (token_ttl) nor the mount sets one.
  std::chrono::seconds default_token_ttl{std::chrono::minutes(15)};
  // Its explicit max TTL when neither the role (token_max_ttl / token_explicit_max_ttl) nor the
  // mount sets one.
  std::chrono::seconds default_token_max_ttl{std::chrono::hours(1)};
  // Injectable wall clock (secret-id expiry, creation times).
  std::function<Clock::time_point()> clock = [] { return Clock::now(); };
  // "hmac-sha256:<hex>" of a value under the audit HMAC key (AuditLog::Hmac). When set, a failed
  // login with an unknown role_id is recorded with the role_id's HMAC; unset: as "role:unknown".
  std::function<std::string(std::string_view)> audit_hmac;
};

// The approle tables, for the store's Migrate() (the factory applies them too).
std::vector<store::Migration> AppRoleMigrations();

// Makes the backend of one AppRole mount. `tokens`, `store` and `events` must outlive it.
StatusOr<std::unique_ptr<logical::Backend>> NewAppRoleBackend(const logical::MountEntry& mount,
                                                              TokenStore& tokens,
                                                              store::Store& store,
                                                              audit_log::EventLog& events,
                                                              AppRoleOptions options = {});

}  // namespace lockbox::auth
