#include "server/auth/token_store.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "crypto/encoding.h"
#include "crypto/hash.h"
#include "crypto/random.h"
#include "server/auth/backend_util.h"
#include "server/auth/cidr.h"
#include "server/logical/fields.h"

namespace lockbox::auth {
namespace {

using std::chrono::seconds;
using TokenHash = std::array<std::uint8_t, 32>;

constexpr std::string_view kTokenPrefix = "lbx.";
constexpr std::size_t kTokenRandomBytes = 32;
constexpr std::size_t kAccessorRandomBytes = 24;
// Longer presented tokens are refused before hashing; custom ids are limited to this too.
constexpr std::size_t kMaxTokenLength = 512;
constexpr std::size_t kCacheShards = 16;
// Parameters per "IN (...)" list (SQLite allows 32766; PostgreSQL 65535).
constexpr std::size_t kInListChunk = 256;

constexpr std::string_view kDefaultRenewPath = "auth/token/renew";
constexpr std::string_view kDefaultRevokePath = "auth/token/revoke";

// The columns ParseRow() reads, in order.
constexpr std::string_view kColumns =
    "accessor, token_hash, parent_accessor, policies, meta, display_name, path, role, "
    "bound_cidrs, creation_time, creation_ttl, expire_time, last_renewal_time, explicit_max_ttl, "
    "period, num_uses, renewable";

Status Denied() { return PermissionDeniedError("permission denied"); }
Status TokenNotFound() { return NotFoundError("token not found"); }

// Store failures reach the client as 503: the token store fails closed but says why.
Status AsUnavailable(const Status& s) {
  if (s.ok() || s.code() == StatusCode::kUnavailable) return s;
  return UnavailableError("token store: " + s.message());
}

// A token as stored: the SHA-256 of the token, its entry, and its bound CIDRs parsed once.
struct StoredToken {
  TokenHash hash{};
  TokenEntry entry;
  std::vector<Cidr> cidrs;
};

struct TokenHashHasher {
  std::size_t operator()(const TokenHash& h) const {
    std::size_t v = 0;
    std::memcpy(&v, h.data(), sizeof(v));  // a SHA-256 prefix is already uniform
    return v;
  }
};

bool Expired(const TokenEntry& entry, Clock::time_point now) {
  return entry.expire_time.has_value() && now >= *entry.expire_time;
}

std::string Sql(std::string_view head, std::string_view tail = {}) {
  std::string sql(head);
  sql += tail;
  return sql;
}

// "?, ?, ?" for `n` parameters.
std::string Placeholders(std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += i == 0 ? "?" : ", ?";
  return out;
}

StatusOr<nlohmann::json> ParseJsonColumn(const store::Row& row, std::size_t column) {
  LOCKBOX_ASSIGN_OR_RETURN(std::string text, store::GetText(row, column));
  nlohmann::json value = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return DataLossError("token store: malformed stored JSON");
  return value;
}

StatusOr<std::vector<std::string>> StringListColumn(const store::Row& row, std::size_t column) {
  LOCKBOX_ASSIGN_OR_RETURN(nlohmann::json value, ParseJsonColumn(row, column));
  std::vector<std::string> out;
  if (!value.is_array()) return DataLossError("token store: malformed stored list");
  for (const auto& item : value) {
    if (!item.is_string()) return DataLossError("token store: malformed stored list");
    out.push_back(item.get<std::string>());
  }
  return out;
}

StatusOr<std::optional<Clock::time_point>> OptionalTimeColumn(const store::Row& row,
                                                              std::size_t column) {
  if (store::IsNull(row, column)) return std::optional<Clock::time_point>();
  LOCKBOX_ASSIGN_OR_RETURN(std::int64_t nanos, store::GetInt(row, column));
  return std::optional<Clock::time_point>(FromUnixNanos(nanos));
}

StatusOr<StoredToken> ParseRow(const store::Row& row) {
  StoredToken t;
  TokenEntry& e = t.entry;
  LOCKBOX_ASSIGN_OR_RETURN(e.accessor, store::GetText(row, 0));
  LOCKBOX_ASSIGN_OR_RETURN(store::Blob hash, store::GetBlob(row, 1));
  if (hash.size() != t.hash.size()) return DataLossError("token store: malformed token hash");
  std::copy(hash.begin(), hash.end(), t.hash.begin());
  LOCKBOX_ASSIGN_OR_RETURN(e.parent_accessor, store::GetText(row, 2));
  LOCKBOX_ASSIGN_OR_RETURN(e.policies, StringListColumn(row, 3));
  LOCKBOX_ASSIGN_OR_RETURN(nlohmann::json meta, ParseJsonColumn(row, 4));
  if (!meta.is_object()) return DataLossError("token store: malformed stored metadata");
  for (const auto& [key, value] : meta.items()) {
    if (!value.is_string()) return DataLossError("token store: malformed stored metadata");
    e.meta[key] = value.get<std::string>();
  }
  LOCKBOX_ASSIGN_OR_RETURN(e.display_name, store::GetText(row, 5));
  LOCKBOX_ASSIGN_OR_RETURN(e.path, store::GetText(row, 6));
  LOCKBOX_ASSIGN_OR_RETURN(e.role, store::GetText(row, 7));
  LOCKBOX_ASSIGN_OR_RETURN(e.bound_cidrs, StringListColumn(row, 8));
  LOCKBOX_ASSIGN_OR_RETURN(std::int64_t creation, store::GetInt(row, 9));
  e.creation_time = FromUnixNanos(creation);
  LOCKBOX_ASSIGN_OR_RETURN(std::int64_t creation_ttl, store::GetInt(row, 10));
  e.creation_ttl = seconds(creation_ttl);
  LOCKBOX_ASSIGN_OR_RETURN(e.expire_time, OptionalTimeColumn(row, 11));
  LOCKBOX_ASSIGN_OR_RETURN(e.last_renewal_time, OptionalTimeColumn(row, 12));
  LOCKBOX_ASSIGN_OR_RETURN(std::int64_t explicit_max, store::GetInt(row, 13));
  e.explicit_max_ttl = seconds(explicit_max);
  LOCKBOX_ASSIGN_OR_RETURN(std::int64_t period, store::GetInt(row, 14));
  e.period = seconds(period);
  LOCKBOX_ASSIGN_OR_RETURN(e.num_uses, store::GetInt(row, 15));
  LOCKBOX_ASSIGN_OR_RETURN(std::int64_t renewable, store::GetInt(row, 16));
  e.renewable = renewable != 0;
  auto cidrs = ParseCidrList(e.bound_cidrs, "bound_cidrs");
  if (!cidrs.ok()) return DataLossError("token store: malformed stored bound_cidrs");
  t.cidrs = std::move(*cidrs);
  return t;
}

store::Value OptionalTimeValue(const std::optional<Clock::time_point>& time) {
  return time ? store::Value(ToUnixNanos(*time)) : store::Value(nullptr);
}

Status InsertRow(store::Transaction& tx, const StoredToken& t) {
  const TokenEntry& e = t.entry;
  auto r = tx.Execute(
      Sql("INSERT INTO tokens (", kColumns) +
          ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      {e.accessor, store::Blob(t.hash.begin(), t.hash.end()), e.parent_accessor,
       nlohmann::json(e.policies).dump(), nlohmann::json(e.meta).dump(), e.display_name, e.path,
       e.role, nlohmann::json(e.bound_cidrs).dump(), ToUnixNanos(e.creation_time),
       std::int64_t{e.creation_ttl.count()}, OptionalTimeValue(e.expire_time),
       OptionalTimeValue(e.last_renewal_time), std::int64_t{e.explicit_max_ttl.count()},
       std::int64_t{e.period.count()}, e.num_uses, std::int64_t{e.renewable ? 1 : 0}});
  return r.status();
}

// Reads the token stored under `column` = `key` inside a unit or read transaction.
StatusOr<std::optional<StoredToken>> SelectToken(store::Transaction& tx, std::string_view column,
                                                 store::Value key) {
  LOCKBOX_ASSIGN_OR_RETURN(auto rows, tx.Query(Sql("SELECT ", kColumns) + " FROM tokens WHERE " +
                                                   std::string(column) + " = ?",
                                               {std::move(key)}));
  if (rows.empty()) return std::optional<StoredToken>();
  LOCKBOX_ASSIGN_OR_RETURN(StoredToken t, ParseRow(rows.front()));
  return std::optional<StoredToken>(std::move(t));
}

logical::Principal PrincipalFor(const TokenEntry& e) {
  logical::Principal p;
  p.accessor = e.accessor;
  p.policies = e.policies;
  p.root = std::find(e.policies.begin(), e.policies.end(), "root") != e.policies.end();
  p.display_name = e.display_name;
  p.metadata = e.meta;
  p.expire_time = e.expire_time;
  return p;
}

std::string JoinPolicies(const std::vector<std::string>& policies) {
  std::string out;
  for (const auto& p : policies) out += (out.empty() ? "" : ",") + p;
  return out;
}

audit::Event TokenEvent(std::string op, std::string_view path, const keyring::Caller& caller) {
  audit::Event event;
  event.op = std::move(op);
  event.path = std::string(path);
  event.request_id = caller.request_id;
  event.actor = caller.actor;
  event.remote_addr = caller.remote_addr;
  return event;
}

// The bounded token cache: SHA-256 of a token → its immutable stored form.
//
// Sharded (one shared_mutex per shard). Every invalidation bumps its shard's generation, and a
// value loaded from the database is inserted only if the generation is still the one seen
// before the load: a reader that loaded a row just before a revocation committed can therefore
// never re-insert the revoked token after the revocation's invalidation ran. When a shard is
// full an arbitrary entry is evicted.
class TokenCache {
 public:
  explicit TokenCache(std::size_t capacity)
      : per_shard_(std::max<std::size_t>(1, capacity / kCacheShards)) {}

  struct Lookup {
    std::shared_ptr<const StoredToken> token;  // null: not cached
    std::uint64_t generation = 0;
  };

  Lookup Find(const TokenHash& hash) const {
    const Shard& shard = ShardFor(hash);
    std::shared_lock lock(shard.mu);
    auto it = shard.tokens.find(hash);
    return {it == shard.tokens.end() ? nullptr : it->second, shard.generation};
  }

  // Inserts a value loaded from the database unless its shard was invalidated meanwhile.
  void InsertIfUnchanged(std::shared_ptr<const StoredToken> token, std::uint64_t generation) {
    Shard& shard = ShardFor(token->hash);
    std::unique_lock lock(shard.mu);
    if (shard.generation != generation) return;
    InsertLocked(shard, std::move(token));
  }

  // Inserts a token that was just issued (nothing older can be invalidated for it).
  void InsertNew(std::shared_ptr<const StoredToken> token) {
    Shard& shard = ShardFor(token->hash);
    std::unique_lock lock(shard.mu);
    InsertLocked(shard, std::move(token));
  }

  void Invalidate(const TokenHash& hash) {
    Shard& shard = ShardFor(hash);
    std::unique_lock lock(shard.mu);
    shard.tokens.erase(hash);
    ++shard.generation;
  }

 private:
  struct Shard {
    mutable std::shared_mutex mu;
    std::unordered_map<TokenHash, std::shared_ptr<const StoredToken>, TokenHashHasher> tokens;
    std::uint64_t generation = 0;
  };

  void InsertLocked(Shard& shard, std::shared_ptr<const StoredToken> token) {
    if (shard.tokens.size() >= per_shard_ && !shard.tokens.contains(token->hash)) {
      shard.tokens.erase(shard.tokens.begin());
    }
    const TokenHash hash = token->hash;
    shard.tokens[hash] = std::move(token);
  }

  Shard& ShardFor(const TokenHash& hash) { return shards_[hash[31] % kCacheShards]; }
  const Shard& ShardFor(const TokenHash& hash) const { return shards_[hash[31] % kCacheShards]; }

  const std::size_t per_shard_;
  std::array<Shard, kCacheShards> shards_;
};

class TokenStoreImpl final : public TokenStore {
 public:
  TokenStoreImpl(store::Store& store, audit_log::EventLog& events, TokenStoreOptions options)
      : store_(store),
        events_(events),
        options_(std::move(options)),
        cache_(options_.cache_entries) {}

  StatusOr<logical::Principal> Authenticate(std::string_view client_token,
                                            std::string_view remote_addr) override {
    if (client_token.empty() || client_token.size() > kMaxTokenLength) return Denied();
    const TokenHash hash = crypto::Sha256(client_token);
    LOCKBOX_ASSIGN_OR_RETURN(auto token, Find(hash));
    if (token == nullptr) return Denied();
    const Clock::time_point now = options_.clock();
    if (Expired(token->entry, now)) {
      cache_.Invalidate(hash);  // refused from now on anyway; free the slot
      return Denied();
    }
    if (token->entry.num_uses < 0) return Denied();  // spent
    if (!token->cidrs.empty() && !AnyCidrContains(token->cidrs, remote_addr)) return Denied();
    if (token->entry.num_uses > 0) return SpendUse(hash, now);
    return PrincipalFor(token->entry);
  }

  StatusOr<IssuedToken> Issue(const TokenParams& params, const keyring::Caller& caller) override {
    LOCKBOX_ASSIGN_OR_RETURN(auto stored, NewToken(params));
    std::string client_token;
    if (params.id) {
      client_token = *params.id;
    } else {
      const crypto::SecureBuffer random = crypto::RandomSecret(kTokenRandomBytes);
      client_token = std::string(kTokenPrefix) + crypto::Base64UrlEncode(random.span());
    }
    stored->hash = crypto::Sha256(client_token);

    audit::Event event = TokenEvent("token.create", params.path, caller);
    const TokenEntry& e = stored->entry;
    event.details = {{"accessor", e.accessor},
                     {"policies", JoinPolicies(e.policies)},
                     {"ttl", e.creation_ttl.count()},
                     {"num_uses", e.num_uses},
                     {"orphan", e.orphan()}};
    if (!e.parent_accessor.empty()) event.details["parent_accessor"] = e.parent_accessor;
    if (!e.role.empty()) event.details["role"] = e.role;

    Status s = store_.Commit([&](store::Transaction& tx) -> Status {
      if (!e.parent_accessor.empty()) {
        LOCKBOX_ASSIGN_OR_RETURN(auto parent, SelectToken(tx, "accessor", e.parent_accessor));
        if (!parent || Expired(parent->entry, e.creation_time)) {
          return InvalidArgumentError("parent token lookup failed: no parent found");
        }
      }
      if (params.id) {
        LOCKBOX_ASSIGN_OR_RETURN(auto rows,
                                 tx.Query("SELECT accessor FROM tokens WHERE token_hash = ?",
                                          {store::Blob(stored->hash.begin(), stored->hash.end())}));
        if (!rows.empty()) return InvalidArgumentError("cannot create a token with a duplicate ID");
      }
      LOCKBOX_RETURN_IF_ERROR(InsertRow(tx, *stored));
      LOCKBOX_RETURN_IF_ERROR(events_.Append(tx, event));
      tx.OnCommit([this, stored] { cache_.InsertNew(stored); });
      return Status::Ok();
    });
    if (!s.ok()) return s;
    return IssuedToken{std::move(client_token), stored->entry};
  }

  StatusOr<TokenEntry> LookupToken(std::string_view client_token) override {
    if (client_token.empty() || client_token.size() > kMaxTokenLength) return TokenNotFound();
    LOCKBOX_ASSIGN_OR_RETURN(auto token, Find(crypto::Sha256(client_token)));
    if (token == nullptr || Expired(token->entry, options_.clock())) return TokenNotFound();
    return token->entry;
  }

  StatusOr<TokenEntry> LookupAccessor(std::string_view accessor) override {
    std::optional<StoredToken> token;
    Status s = store_.Read([&](store::Transaction& tx) -> Status {
      LOCKBOX_ASSIGN_OR_RETURN(token, SelectToken(tx, "accessor", std::string(accessor)));
      return Status::Ok();
    });
    if (!s.ok()) return AsUnavailable(s);
    if (!token || Expired(token->entry, options_.clock())) return TokenNotFound();
    return token->entry;
  }

  StatusOr<TokenEntry> Renew(std::string_view accessor, seconds increment,
                             const keyring::Caller& caller, std::string_view api_path) override {
    if (increment < seconds(0)) return InvalidArgumentError("increment must not be negative");
    const Clock::time_point now = options_.clock();
    audit::Event event =
        TokenEvent("token.renew", api_path.empty() ? kDefaultRenewPath : api_path, caller);
    TokenEntry renewed;
    Status s = store_.Commit([&](store::Transaction& tx) -> Status {
      LOCKBOX_ASSIGN_OR_RETURN(auto token, SelectToken(tx, "accessor", std::string(accessor)));
      if (!token || Expired(token->entry, now)) return TokenNotFound();
      TokenEntry& e = token->entry;
      if (!e.expire_time || !e.renewable) {
        return FailedPreconditionError("lease is not renewable");
      }
      LOCKBOX_ASSIGN_OR_RETURN(
          seconds ttl,
          CalculateTtl({increment, e.creation_ttl, e.period, e.explicit_max_ttl, e.creation_time},
                       options_.default_ttl, options_.max_ttl, now));
      e.expire_time = now + ttl;
      e.last_renewal_time = now;
      LOCKBOX_RETURN_IF_ERROR(
          tx.Execute("UPDATE tokens SET expire_time = ?, last_renewal_time = ? WHERE accessor = ?",
                     {ToUnixNanos(*e.expire_time), ToUnixNanos(now), e.accessor})
              .status());
      event.details = {{"accessor", e.accessor}, {"ttl", ttl.count()}};
      LOCKBOX_RETURN_IF_ERROR(events_.Append(tx, event));
      tx.OnCommit([this, hash = token->hash] { cache_.Invalidate(hash); });
      renewed = e;
      return Status::Ok();
    });
    if (!s.ok()) return s;
    return renewed;
  }

  Status Revoke(std::string_view accessor, bool orphan_children, const keyring::Caller& caller,
                std::string_view api_path) override {
    audit::Event event =
        TokenEvent("token.revoke", api_path.empty() ? kDefaultRevokePath : api_path, caller);
    return store_.Commit([&](store::Transaction& tx) -> Status {
      LOCKBOX_ASSIGN_OR_RETURN(std::size_t revoked,
                               RevokeInUnit(tx, std::string(accessor), orphan_children));
      if (revoked == 0) return TokenNotFound();
      event.details = {{"accessor", std::string(accessor)},
                       {"revoked", revoked},
                       {"orphan_children", orphan_children}};
      return events_.Append(tx, event);
    });
  }

  Status RevokeByPathPrefix(std::string_view path_prefix, const keyring::Caller& caller) override {
    if (path_prefix.empty()) return InvalidArgumentError("path prefix must not be empty");
    audit::Event event = TokenEvent("token.revoke", path_prefix, caller);
    return store_.Commit([&](store::Transaction& tx) -> Status {
      LOCKBOX_ASSIGN_OR_RETURN(
          auto rows,
          tx.Query("SELECT accessor FROM tokens WHERE substr(path, 1, ?) = ?",
                   {static_cast<std::int64_t>(path_prefix.size()), std::string(path_prefix)}));
      LOCKBOX_ASSIGN_OR_RETURN(std::size_t revoked, RevokeAll(tx, rows));
      event.details = {{"path_prefix", std::string(path_prefix)}, {"revoked", revoked}};
      return events_.Append(tx, event);
    });
  }

  Status RevokeExpired(const keyring::Caller& caller) override {
    const Clock::time_point now = options_.clock();
    audit::Event event = TokenEvent("token.revoke", "auth/token/tidy", caller);
    return store_.Commit([&](store::Transaction& tx) -> Status {
      LOCKBOX_ASSIGN_OR_RETURN(
          auto rows,
          tx.Query("SELECT accessor FROM tokens WHERE expire_time IS NOT NULL AND expire_time <= ?",
                   {ToUnixNanos(now)}));
      if (!rows.empty()) {
        LOCKBOX_ASSIGN_OR_RETURN(std::size_t revoked, RevokeAll(tx, rows));
        event.details = {{"reason", "expired"}, {"revoked", revoked}};
        LOCKBOX_RETURN_IF_ERROR(events_.Append(tx, event));
      }
      // Spent tokens whose request could not revoke them; each is audited as it would have been.
      LOCKBOX_ASSIGN_OR_RETURN(auto spent,
                               tx.Query("SELECT accessor FROM tokens WHERE num_uses < 0", {}));
      for (const store::Row& row : spent) {
        LOCKBOX_ASSIGN_OR_RETURN(std::string accessor, store::GetText(row, 0));
        if (SpentInFlight(accessor)) continue;
        LOCKBOX_ASSIGN_OR_RETURN(auto token, SelectToken(tx, "accessor", accessor));
        if (token) LOCKBOX_RETURN_IF_ERROR(RevokeSpentInUnit(tx, token->entry));
      }
      return Status::Ok();
    });
  }

  StatusOr<std::vector<std::string>> ListAccessors() override {
    auto rows = store_.Query("SELECT accessor, expire_time FROM tokens ORDER BY accessor", {});
    if (!rows.ok()) return AsUnavailable(rows.status());
    const Clock::time_point now = options_.clock();
    std::vector<std::string> out;
    for (const auto& row : *rows) {
      LOCKBOX_ASSIGN_OR_RETURN(auto expire, OptionalTimeColumn(row, 1));
      if (expire && now >= *expire) continue;
      LOCKBOX_ASSIGN_OR_RETURN(std::string accessor, store::GetText(row, 0));
      out.push_back(std::move(accessor));
    }
    return out;
  }

  Clock::time_point Now() const override { return options_.clock(); }

 private:
  // The token with this hash, from the cache or else the database (then cached); null if none.
  // Expiry is the caller's to check.
  StatusOr<std::shared_ptr<const StoredToken>> Find(const TokenHash& hash) {
    const TokenCache::Lookup cached = cache_.Find(hash);
    if (cached.token != nullptr) return cached.token;
    std::optional<StoredToken> loaded;
    Status s = store_.Read([&](store::Transaction& tx) -> Status {
      LOCKBOX_ASSIGN_OR_RETURN(
          loaded, SelectToken(tx, "token_hash", store::Blob(hash.begin(), hash.end())));
      return Status::Ok();
    });
    if (!s.ok()) return AsUnavailable(s);
    if (!loaded || !crypto::ConstantTimeEquals(loaded->hash, hash)) {
      return std::shared_ptr<const StoredToken>();
    }
    auto token = std::make_shared<const StoredToken>(std::move(*loaded));
    cache_.InsertIfUnchanged(token, cached.generation);
    return token;
  }

  // Validates `params` and builds the new token's entry (everything but its hash).
  StatusOr<std::shared_ptr<StoredToken>> NewToken(const TokenParams& params) const {
    if (params.id && (params.id->empty() || params.id->size() > kMaxTokenLength)) {
      return InvalidArgumentError("token id must be 1 to 512 characters");
    }
    if (params.id && params.id->starts_with(kTokenPrefix)) {
      return InvalidArgumentError("custom token ids may not start with \"lbx.\"");
    }
    if (params.num_uses < 0) return InvalidArgumentError("number of uses cannot be negative");
    if (params.ttl < seconds(0) || params.explicit_max_ttl < seconds(0) ||
        params.period < seconds(0)) {
      return InvalidArgumentError("ttl, explicit_max_ttl and period must not be negative");
    }
    if (params.path.empty()) return InvalidArgumentError("token path must not be empty");
    auto stored = std::make_shared<StoredToken>();
    LOCKBOX_ASSIGN_OR_RETURN(stored->cidrs, ParseCidrList(params.bound_cidrs, "bound_cidrs"));

    TokenEntry& e = stored->entry;
    e.policies = SanitizePolicies(params.policies, /*add_default=*/false);
    if (e.policies.empty()) return InvalidArgumentError("a token needs at least one policy");
    const bool root = e.policies == std::vector<std::string>{"root"};
    const Clock::time_point now = options_.clock();
    seconds ttl(0);
    if (root && params.ttl == seconds(0) && params.period == seconds(0)) {
      ttl = params.explicit_max_ttl;  // non-expiring unless bounded explicitly
    } else {
      LOCKBOX_ASSIGN_OR_RETURN(
          ttl, CalculateTtl({seconds(0), params.ttl, params.period, params.explicit_max_ttl, now},
                            options_.default_ttl, options_.max_ttl, now));
    }
    e.accessor = crypto::Base64UrlEncode(crypto::RandomVector(kAccessorRandomBytes));
    e.meta = params.meta;
    e.display_name = params.display_name;
    e.path = params.path;
    e.creation_time = now;
    e.creation_ttl = ttl;
    if (ttl > seconds(0)) e.expire_time = now + ttl;
    e.explicit_max_ttl = params.explicit_max_ttl;
    e.period = params.period;
    e.num_uses = params.num_uses;
    e.renewable = params.renewable && ttl > seconds(0);  // a non-expiring token has no lease
    e.parent_accessor = params.parent_accessor;
    e.role = params.role;
    // A non-expiring root token is not CIDR-bound (Vault drops the binding too).
    if (ttl > seconds(0)) e.bound_cidrs = params.bound_cidrs;
    if (ttl == seconds(0)) stored->cidrs.clear();
    return stored;
  }

  // Counts one use of a num_uses token in its own unit; the last one marks it spent (-1). The
  // use is refused if a concurrent use or a revocation got there first.
  StatusOr<logical::Principal> SpendUse(const TokenHash& hash, Clock::time_point now) {
    logical::Principal principal;
    Status s = store_.Commit([&](store::Transaction& tx) -> Status {
      LOCKBOX_ASSIGN_OR_RETURN(
          auto token, SelectToken(tx, "token_hash", store::Blob(hash.begin(), hash.end())));
      if (!token || Expired(token->entry, now) || token->entry.num_uses <= 0) return Denied();
      const TokenEntry& e = token->entry;
      const std::int64_t left = e.num_uses == 1 ? -1 : e.num_uses - 1;
      LOCKBOX_RETURN_IF_ERROR(
          tx.Execute("UPDATE tokens SET num_uses = ? WHERE accessor = ?", {left, e.accessor})
              .status());
      tx.OnCommit([this, hash] { cache_.Invalidate(hash); });
      if (left < 0) {
        // Marked in flight here, on the writer, so that no later unit (a tidy, even in this
        // batch) sees the token spent without seeing its request still running.
        std::lock_guard lock(spent_mu_);
        spent_in_flight_.insert(e.accessor);
        tx.OnRollback([this, accessor = e.accessor] {
          std::lock_guard undo_lock(spent_mu_);
          spent_in_flight_.erase(accessor);
        });
      }
      principal = PrincipalFor(e);
      principal.last_use = left < 0;
      return Status::Ok();
    });
    if (!s.ok()) return s;
    return principal;
  }

  Status RevokeSpent(std::string_view accessor) override {
    Status revoked = store_.Commit([&](store::Transaction& tx) -> Status {
      LOCKBOX_ASSIGN_OR_RETURN(auto token, SelectToken(tx, "accessor", std::string(accessor)));
      if (!token || token->entry.num_uses >= 0) return Status::Ok();
      return RevokeSpentInUnit(tx, token->entry);
    });
    // Done or failed, the request is over: from now on the tidy takes the token if it is left.
    std::lock_guard lock(spent_mu_);
    spent_in_flight_.erase(std::string(accessor));
    return revoked;
  }

  bool SpentInFlight(const std::string& accessor) {
    std::lock_guard lock(spent_mu_);
    return spent_in_flight_.count(accessor) != 0;
  }

  // Revokes a spent token with its subtree and its own audit event, whose actor is the token.
  Status RevokeSpentInUnit(store::Transaction& tx, const TokenEntry& e) {
    LOCKBOX_RETURN_IF_ERROR(RevokeInUnit(tx, e.accessor, false).status());
    keyring::Caller self;
    self.actor = e.accessor;
    audit::Event event = TokenEvent("token.revoke", e.path, self);
    event.details = {{"accessor", e.accessor}, {"reason", "num_uses exhausted"}};
    return events_.Append(tx, event);
  }

  // Revokes every token whose accessor is in column 0 of `rows` (with its subtree); tokens
  // already revoked as part of an earlier subtree are skipped.
  StatusOr<std::size_t> RevokeAll(store::Transaction& tx, const std::vector<store::Row>& rows) {
    std::size_t revoked = 0;
    for (const auto& row : rows) {
      LOCKBOX_ASSIGN_OR_RETURN(std::string accessor, store::GetText(row, 0));
      LOCKBOX_ASSIGN_OR_RETURN(std::size_t n, RevokeInUnit(tx, accessor, false));
      revoked += n;
    }
    return revoked;
  }

  // Inside a unit: deletes the token and (level by level, not by recursive SQL) its subtree, or,
  // with orphan_children, makes its children orphans. The cache entries of every token touched
  // are dropped when the unit commits, before Commit() returns to the caller. Returns the
  // number of tokens deleted (0: no such token).
  StatusOr<std::size_t> RevokeInUnit(store::Transaction& tx, const std::string& accessor,
                                     bool orphan_children) {
    LOCKBOX_ASSIGN_OR_RETURN(
        auto root, tx.Query("SELECT token_hash FROM tokens WHERE accessor = ?", {accessor}));
    if (root.empty()) return std::size_t{0};
    std::vector<TokenHash> touched;
    LOCKBOX_RETURN_IF_ERROR(AppendHash(root.front(), 0, touched));
    std::vector<std::string> doomed = {accessor};
    if (orphan_children) {
      LOCKBOX_ASSIGN_OR_RETURN(
          auto children,
          tx.Query("SELECT token_hash FROM tokens WHERE parent_accessor = ?", {accessor}));
      for (const auto& row : children) LOCKBOX_RETURN_IF_ERROR(AppendHash(row, 0, touched));
      LOCKBOX_RETURN_IF_ERROR(
          tx.Execute("UPDATE tokens SET parent_accessor = '' WHERE parent_accessor = ?", {accessor})
              .status());
    } else {
      std::unordered_set<std::string> seen = {accessor};
      std::vector<std::string> level = {accessor};
      while (!level.empty()) {
        std::vector<std::string> next;
        for (std::size_t i = 0; i < level.size(); i += kInListChunk) {
          const std::size_t n = std::min(kInListChunk, level.size() - i);
          std::vector<store::Value> params(level.begin() + i, level.begin() + i + n);
          LOCKBOX_ASSIGN_OR_RETURN(
              auto rows, tx.Query("SELECT accessor, token_hash FROM tokens WHERE parent_accessor "
                                  "IN (" +
                                      Placeholders(n) + ")",
                                  params));
          for (const auto& row : rows) {
            LOCKBOX_ASSIGN_OR_RETURN(std::string child, store::GetText(row, 0));
            if (!seen.insert(child).second) continue;
            LOCKBOX_RETURN_IF_ERROR(AppendHash(row, 1, touched));
            doomed.push_back(child);
            next.push_back(std::move(child));
          }
        }
        level = std::move(next);
      }
    }
    for (std::size_t i = 0; i < doomed.size(); i += kInListChunk) {
      const std::size_t n = std::min(kInListChunk, doomed.size() - i);
      std::vector<store::Value> params(doomed.begin() + i, doomed.begin() + i + n);
      LOCKBOX_RETURN_IF_ERROR(
          tx.Execute("DELETE FROM tokens WHERE accessor IN (" + Placeholders(n) + ")", params)
              .status());
    }
    tx.OnCommit([this, touched = std::move(touched)] {
      for (const TokenHash& hash : touched) cache_.Invalidate(hash);
    });
    return doomed.size();
  }

  static Status AppendHash(const store::Row& row, std::size_t column, std::vector<TokenHash>& out) {
    LOCKBOX_ASSIGN_OR_RETURN(store::Blob blob, store::GetBlob(row, column));
    if (blob.size() != sizeof(TokenHash)) return DataLossError("token store: malformed token hash");
    TokenHash hash{};
    std::copy(blob.begin(), blob.end(), hash.begin());
    out.push_back(hash);
    return Status::Ok();
  }

  store::Store& store_;
  audit_log::EventLog& events_;
  const TokenStoreOptions options_;
  TokenCache cache_;
  // Spent tokens whose last request is still running: the tidy leaves them to RevokeSpent(), so
  // that the request's own audit record comes before the revocation.
  std::mutex spent_mu_;
  std::unordered_set<std::string> spent_in_flight_;
};

}  // namespace

std::vector<store::Migration> TokenStoreMigrations() {
  return {{"tokens", 1, R"sql(
CREATE TABLE tokens (
  accessor TEXT PRIMARY KEY,
  token_hash BLOB NOT NULL UNIQUE,
  parent_accessor TEXT NOT NULL,
  policies TEXT NOT NULL,
  meta TEXT NOT NULL,
  display_name TEXT NOT NULL,
  path TEXT NOT NULL,
  role TEXT NOT NULL,
  bound_cidrs TEXT NOT NULL,
  creation_time INTEGER NOT NULL,
  creation_ttl INTEGER NOT NULL,
  expire_time INTEGER,
  last_renewal_time INTEGER,
  explicit_max_ttl INTEGER NOT NULL,
  period INTEGER NOT NULL,
  num_uses INTEGER NOT NULL,
  renewable INTEGER NOT NULL
);
CREATE INDEX tokens_by_parent ON tokens (parent_accessor);
CREATE INDEX tokens_by_expiry ON tokens (expire_time);
CREATE TABLE token_roles (
  name TEXT PRIMARY KEY,
  body TEXT NOT NULL
);
)sql"},
          // The tidy looks for spent tokens (num_uses -1) on the writer, whose time every commit
          // waits for: an index of those few rows instead of a scan of every token.
          {"tokens", 2, "CREATE INDEX tokens_spent ON tokens (accessor) WHERE num_uses < 0;"}};
}

StatusOr<std::unique_ptr<TokenStore>> TokenStore::Open(store::Store& store,
                                                       audit_log::EventLog& events,
                                                       TokenStoreOptions options) {
  if (options.max_ttl <= seconds(0) || options.default_ttl <= seconds(0)) {
    return InvalidArgumentError("token store: default and max TTL must be positive");
  }
  if (!options.clock) return InvalidArgumentError("token store: a clock is required");
  LOCKBOX_RETURN_IF_ERROR(store.Migrate(TokenStoreMigrations()));
  return std::unique_ptr<TokenStore>(
      std::make_unique<TokenStoreImpl>(store, events, std::move(options)));
}

std::int64_t RemainingTtl(const TokenEntry& entry, Clock::time_point now) {
  if (!entry.expire_time || now >= *entry.expire_time) return 0;
  const auto left = *entry.expire_time - now + std::chrono::milliseconds(500);
  return std::chrono::duration_cast<seconds>(left).count();
}

nlohmann::json TokenStore::AuthBlock(const TokenEntry& entry, std::string_view client_token,
                                     Clock::time_point now) {
  return {{"client_token", std::string(client_token)},
          {"accessor", entry.accessor},
          {"policies", entry.policies},
          {"token_policies", entry.policies},
          {"metadata", entry.meta.empty() ? nlohmann::json(nullptr) : nlohmann::json(entry.meta)},
          {"lease_duration", RemainingTtl(entry, now)},
          {"renewable", entry.renewable},
          {"entity_id", ""},
          {"token_type", "service"},
          {"orphan", entry.orphan()},
          {"mfa_requirement", nullptr},
          {"num_uses", entry.num_uses}};
}

StatusOr<IssuedToken> CreateRootToken(TokenStore& tokens, std::optional<std::string> id,
                                      const keyring::Caller& caller) {
  TokenParams params;
  params.id = std::move(id);
  params.policies = {"root"};
  params.display_name = "root";
  params.path = "auth/token/root";
  params.renewable = false;
  return tokens.Issue(params, caller);
}

std::vector<std::string> SanitizePolicies(std::vector<std::string> policies, bool add_default) {
  std::vector<std::string> out;
  bool has_default = false;
  for (std::string& p : policies) {
    const auto first = p.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) continue;
    p = p.substr(first, p.find_last_not_of(" \t\r\n") - first + 1);
    std::transform(p.begin(), p.end(), p.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (p == "root") return {"root"};
    if (p == "default") has_default = true;
    out.push_back(std::move(p));
  }
  if (add_default && !has_default) out.push_back("default");
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

StatusOr<seconds> CalculateTtl(const TtlInputs& inputs, seconds default_ttl, seconds system_max,
                               Clock::time_point now, std::vector<std::string>* warnings) {
  // Whole seconds, as Vault computes TTLs.
  const auto now_s = std::chrono::floor<seconds>(now);
  const auto start =
      inputs.start == Clock::time_point{} ? now_s : std::chrono::floor<seconds>(inputs.start);
  seconds max_ttl = system_max;
  if (inputs.explicit_max > seconds(0) && inputs.explicit_max < max_ttl) {
    max_ttl = inputs.explicit_max;
  }
  if (max_ttl <= seconds(0)) return InternalError("max TTL must be greater than zero");
  auto warn = [&](std::string text) {
    if (warnings != nullptr) warnings->push_back(std::move(text));
  };
  auto quoted = [](seconds d) { return "\"" + logical::FormatGoDuration(d) + "\""; };

  seconds ttl(0);
  std::optional<Clock::time_point> max_valid_time;
  if (inputs.period > seconds(0)) {
    ttl = inputs.period;
    if (ttl > max_ttl) {
      warn("period of " + quoted(ttl) + " exceeded the effective max_ttl of " + quoted(max_ttl) +
           "; period value is capped accordingly");
      ttl = max_ttl;
    }
    if (inputs.explicit_max > seconds(0)) max_valid_time = start + inputs.explicit_max;
  } else {
    ttl = inputs.increment > seconds(0) ? inputs.increment
          : inputs.ttl > seconds(0)     ? inputs.ttl
                                        : default_ttl;
    max_valid_time = start + max_ttl;
  }
  if (max_valid_time) {
    const auto max_valid_ttl = std::chrono::duration_cast<seconds>(*max_valid_time - now_s);
    if (max_valid_ttl <= seconds(0)) {
      return FailedPreconditionError("past the max TTL, cannot renew");
    }
    if (ttl > max_valid_ttl) {
      warn("TTL of " + quoted(ttl) + " exceeded the effective max_ttl of " + quoted(max_valid_ttl) +
           "; TTL value is capped accordingly");
      ttl = max_valid_ttl;
    }
  }
  return ttl;
}

}  // namespace lockbox::auth
