// TokenStore: Lockbox's service tokens (DESIGN.md §5, reference §3).
//
// A token is "lbx." + base64url(32 random bytes); only its SHA-256 is stored. Each token has an
// accessor (a second random id), policies, TTL / explicit max TTL / period, renewability,
// num_uses, a parent (revoking a parent revokes its subtree unless orphaned) and the path that
// issued it ("auth/token/create", "auth/approle/login", "auth/token/root").
//
// Security properties:
//  - Expired or revoked tokens are refused by Authenticate at once, in every thread (the cache
//    entry is dropped in the same unit of work that revokes the token, before the call returns).
//  - Authenticate does no database read for a cached token; the cache is bounded.
//  - Tokens and their hashes are compared in constant time; a token never appears in a log,
//    audit record or error message (audit records carry the accessor).
//  - Every issue, renew and revoke commits with its audit event in one unit of work.
// Thread safety: all methods are thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "crypto/status.h"
#include "server/audit_log/event_log.h"
#include "server/keyring/keyring.h"
#include "server/logical/logical.h"
#include "server/store/store.h"

namespace lockbox::auth {

using Clock = std::chrono::system_clock;

// What a new token gets. Callers (token backend, AppRole, init) resolve defaults and policy
// inheritance before calling Issue(); Issue() sanitises policies (SanitizePolicies) and applies
// the store's default and max TTL (see Issue()).
struct TokenParams {
  std::optional<std::string> id;  // a caller-chosen token id (root only); nullopt: random
  std::vector<std::string> policies;
  std::map<std::string, std::string> meta;
  std::string display_name = "token";  // stored as given ("token-<name>" is the backend's job)
  std::string path = "auth/token/create";
  std::chrono::seconds ttl{0};               // 0: the default TTL; a root token never expires
  std::chrono::seconds explicit_max_ttl{0};  // 0: none
  std::chrono::seconds period{0};            // 0: not periodic
  std::int64_t num_uses = 0;                 // 0: unlimited
  bool renewable = true;
  std::string parent_accessor;  // "": orphan
  std::string role;             // token role name, if created from one
  std::vector<std::string> bound_cidrs;
};

struct TokenEntry {
  std::string accessor;
  std::vector<std::string> policies;
  std::map<std::string, std::string> meta;
  std::string display_name;
  std::string path;
  Clock::time_point creation_time;
  std::chrono::seconds creation_ttl{0};
  std::optional<Clock::time_point> expire_time;        // nullopt: never expires
  std::optional<Clock::time_point> last_renewal_time;  // nullopt: never renewed
  std::chrono::seconds explicit_max_ttl{0};
  std::chrono::seconds period{0};
  std::int64_t num_uses = 0;  // remaining; 0: unlimited; -1: last use spent, revocation pending
  bool renewable = false;
  std::string parent_accessor;
  std::string role;
  std::vector<std::string> bound_cidrs;
  bool orphan() const { return parent_accessor.empty(); }
};

struct IssuedToken {
  std::string client_token;  // returned to the caller once, never stored
  TokenEntry entry;
};

struct TokenStoreOptions {
  std::chrono::seconds max_ttl{std::chrono::hours(768)};  // system max (config max_lease_ttl)
  // The TTL of a token issued with ttl 0 and without the root policy (config default_lease_ttl).
  std::chrono::seconds default_ttl{std::chrono::hours(768)};
  std::size_t cache_entries = 100'000;
  std::function<Clock::time_point()> clock = [] { return Clock::now(); };
};

class TokenStore {
 public:
  // Applies the token tables' migrations and loads nothing eagerly.
  static StatusOr<std::unique_ptr<TokenStore>> Open(store::Store& store,
                                                    audit_log::EventLog& events,
                                                    TokenStoreOptions options = {});
  virtual ~TokenStore() = default;

  // The hot path: the caller behind `client_token`, checked against expiry and, when the token is
  // bound to CIDRs, `remote_addr`. Counts one use of a num_uses token, durably. The last use marks
  // the token spent (num_uses -1: refused from then on, still visible to lookups) and sets
  // Principal::last_use: the request runs, then the caller revokes it with RevokeSpent() (as
  // Vault revokes after the request). PERMISSION_DENIED "permission denied" for unknown, expired,
  // spent or revoked tokens.
  virtual StatusOr<logical::Principal> Authenticate(std::string_view client_token,
                                                    std::string_view remote_addr) = 0;

  // Revokes a spent token (see Authenticate) with its subtree, audited as "num_uses exhausted".
  // OK if it is gone already (the request revoked it itself) or not spent.
  virtual Status RevokeSpent(std::string_view accessor) = 0;

  // Issues a token. Its TTL is CalculateTtl() of the params under the store's default and max
  // TTL, except that a token holding the root policy with ttl 0 and no period never expires
  // (unless it has an explicit max TTL). INVALID_ARGUMENT for malformed params (policies, CIDRs,
  // negative numbers), a duplicate `id` or a parent that no longer exists (checked in the unit
  // that inserts the child, so no child escapes its parent's revocation); UNAVAILABLE if the
  // store fails (then nothing is issued).
  virtual StatusOr<IssuedToken> Issue(const TokenParams& params, const keyring::Caller& caller) = 0;

  // Lookups for the token backend; NOT_FOUND if unknown, expired or revoked.
  virtual StatusOr<TokenEntry> LookupToken(std::string_view client_token) = 0;
  virtual StatusOr<TokenEntry> LookupAccessor(std::string_view accessor) = 0;

  // Renews to min(increment or the token's TTL, explicit max, system max); a periodic token is
  // reset to its period. FAILED_PRECONDITION "lease is not renewable" if the token is not
  // renewable (or never expires), "past the max TTL, cannot renew" once its max TTL (counted from
  // creation) is used up; NOT_FOUND "token not found" if unknown, expired or revoked.
  // `api_path` is the audit event's path ("" → "auth/token/renew").
  virtual StatusOr<TokenEntry> Renew(std::string_view accessor, std::chrono::seconds increment,
                                     const keyring::Caller& caller,
                                     std::string_view api_path = {}) = 0;

  // Revokes the token and its whole subtree (orphan_children: the children become orphans).
  // NOT_FOUND if there is no such token. `api_path` is the audit event's path
  // ("" → "auth/token/revoke").
  virtual Status Revoke(std::string_view accessor, bool orphan_children,
                        const keyring::Caller& caller, std::string_view api_path = {}) = 0;

  // Revokes every token whose path starts with `path_prefix` (an auth mount being disabled).
  virtual Status RevokeByPathPrefix(std::string_view path_prefix,
                                    const keyring::Caller& caller) = 0;

  // Revokes every expired token with its subtree (a child dies with its parent, as in Vault's
  // expiration manager), and every spent token that RevokeSpent() did not reach (a crash, a
  // failed commit). Both are refused anyway; the core runs this periodically so that their
  // children stop working and the table does not grow.
  virtual Status RevokeExpired(const keyring::Caller& caller) = 0;

  // Accessors of every live (unexpired) token, sorted.
  virtual StatusOr<std::vector<std::string>> ListAccessors() = 0;

  // The store's clock (TokenStoreOptions::clock), for remaining-TTL arithmetic by its callers.
  virtual Clock::time_point Now() const = 0;

  // The envelope's "auth" block for a token just issued or renewed (client_token "" for
  // renew-accessor): client_token, accessor, policies, token_policies, metadata, lease_duration,
  // renewable, entity_id, token_type, orphan, mfa_requirement, num_uses.
  static nlohmann::json AuthBlock(const TokenEntry& entry, std::string_view client_token,
                                  Clock::time_point now);
};

// The token store's schema, for the store's Migrate(): tokens (by accessor, with the token's
// SHA-256) and token_roles (the token backend's roles, JSON bodies).
std::vector<store::Migration> TokenStoreMigrations();

// Makes the root token at initialisation: policies ["root"], path "auth/token/root", display name
// "root", orphan, never expires, not renewable. `id`: a chosen token (dev mode), else random.
StatusOr<IssuedToken> CreateRootToken(TokenStore& tokens, std::optional<std::string> id,
                                      const keyring::Caller& caller);

// Seconds left before the token expires at `now`, rounded to the nearest second (never
// negative); 0 for a token that never expires.
std::int64_t RemainingTtl(const TokenEntry& entry, Clock::time_point now);

// Vault's policyutil.SanitizePolicies: trims and lower-cases, drops empty names, reduces any list
// holding "root" to ["root"], appends "default" if `add_default` (unless root), sorts, dedups.
std::vector<std::string> SanitizePolicies(std::vector<std::string> policies, bool add_default);

// Vault's framework.CalculateTTL for tokens. `start` is the creation time: the max TTL, the
// smaller of `system_max` and a non-zero `explicit_max`, counts from it. A periodic token gets
// `period` (capped to the max TTL) and only an explicit max caps it from `start`; otherwise
// `increment`, else `ttl`, else `default_ttl`, capped at start + max TTL. Warnings (capping) are
// appended to `warnings` if non-null. FAILED_PRECONDITION "past the max TTL, cannot renew".
struct TtlInputs {
  std::chrono::seconds increment{0};
  std::chrono::seconds ttl{0};
  std::chrono::seconds period{0};
  std::chrono::seconds explicit_max{0};
  Clock::time_point start;
};
StatusOr<std::chrono::seconds> CalculateTtl(const TtlInputs& inputs,
                                            std::chrono::seconds default_ttl,
                                            std::chrono::seconds system_max, Clock::time_point now,
                                            std::vector<std::string>* warnings = nullptr);

}  // namespace lockbox::auth
