// Identity tokens (the `identity/` mount, OIDC-style JWTs): named signing keys inside the HSM,
// roles that say which key signs and for how long, tokens for the calling principal, and the
// public JWKS + OpenID discovery document anyone can use to verify those tokens offline.
//
// Paths (relative to the mount): oidc/key/:name (POST/GET/DELETE, LIST oidc/key),
// oidc/key/:name/rotate (POST), oidc/role/:name (POST/GET/DELETE, LIST oidc/role),
// oidc/token/:role (GET), oidc/.well-known/keys and oidc/.well-known/openid-configuration (GET,
// unauthenticated, raw JSON), oidc/introspect (POST {"token"} → raw {"active": bool}).
//
// A token is a JWS compact JWT, header {alg, kid, typ:"JWT"}, claims {iss, sub, aud, iat, exp,
// jti}: sub is the caller's entity_id (or, lacking one, its token accessor), aud the role's
// client_id, exp = iat + min(role ttl, what is left of the caller's token).
//
// Security properties:
//  - Signing keys are generated in the HSM (label "lockbox/identity/<key>/v<N>", ES256 = P-256
//    or EdDSA = Ed25519); their private halves never leave it. The kid is the RFC 7638
//    thumbprint of the public JWK.
//  - Rotation makes a new version the signer; the old public key stays in the JWKS until
//    rotation time + verification_ttl, which is never shorter than any role's ttl on that key,
//    so every token it signed expires before its key disappears. Then the key is pruned: its
//    HSM objects are destroyed and it leaves the JWKS. Keys rotate by themselves every
//    rotation_period (checked on every token, key and JWKS request).
//  - Every key/role change commits with its audit event; every token issued is recorded
//    durably (op "identity.token": role, key, jti; never the JWT) before it is returned.
// Storage (component "identity"): keys, key versions (public JWK, HSM label) and roles, keyed
// by the mount's uuid; an in-memory copy answers token and JWKS requests without a database read.
// Thread safety: thread-safe. Changes are serialised by one mutex; token issuance only takes a
// shared lock to copy what it needs and signs outside it.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "crypto/status.h"
#include "hsm/hsm.h"
#include "server/audit_log/event_log.h"
#include "server/logical/logical.h"
#include "server/store/store.h"

namespace lockbox::auth {

struct IdentityOptions {
  // The "iss" claim; the discovery document's jwks_uri is issuer + "/.well-known/keys".
  std::string issuer = "http://127.0.0.1:8200/v1/identity/oidc";
  std::chrono::seconds default_role_ttl{std::chrono::minutes(15)};
  std::chrono::seconds max_role_ttl{std::chrono::hours(24)};
  // For keys created without these fields (and the "default" key, created on first use).
  std::chrono::seconds default_rotation_period{std::chrono::hours(24)};
  std::chrono::seconds default_verification_ttl{std::chrono::hours(24)};
  std::chrono::seconds min_rotation_period{std::chrono::minutes(1)};
  // Injectable wall clock (iat/exp, rotation schedule, pruning).
  std::function<std::chrono::system_clock::time_point()> clock = [] {
    return std::chrono::system_clock::now();
  };
};

// The identity tables, for the store's Migrate() (the factory applies them too).
std::vector<store::Migration> IdentityMigrations();

// Makes the backend of the identity mount and loads its keys and roles. `hsm`, `store` and
// `events` must outlive it.
StatusOr<std::unique_ptr<logical::Backend>> NewIdentityBackend(const logical::MountEntry& mount,
                                                               hsm::Hsm& hsm, store::Store& store,
                                                               audit_log::EventLog& events,
                                                               IdentityOptions options = {});

}  // namespace lockbox::auth
