#include "server/core/policy_store.h"

namespace lockbox::core {
namespace {

// Distinct policy sets are few in practice; a full cache is simply cleared.
constexpr std::size_t kMaxCachedAcls = 4096;

// Length-prefixed, so that no two different lists share a key.
std::string CacheKey(const std::vector<std::string>& policies) {
  std::string key;
  for (const std::string& name : policies) {
    key.append(std::to_string(name.size())).append(":").append(name);
  }
  return key;
}

}  // namespace

StatusOr<std::unique_ptr<PolicyStore>> PolicyStore::Load(store::Store& store) {
  std::unique_ptr<PolicyStore> out(new PolicyStore(store));
  LOCKBOX_ASSIGN_OR_RETURN(auto rows,
                           store.Query("SELECT name, raw FROM core_policies ORDER BY name", {}));
  for (const store::Row& row : rows) {
    LOCKBOX_ASSIGN_OR_RETURN(std::string name, store::GetText(row, 0));
    LOCKBOX_ASSIGN_OR_RETURN(std::string raw, store::GetText(row, 1));
    auto parsed = policy::ParsePolicy(name, raw);
    if (!parsed.ok()) {
      return DataLossError("stored policy \"" + name +
                           "\" does not parse: " + parsed.status().message());
    }
    out->policies_.emplace(name, std::make_shared<const policy::Policy>(std::move(*parsed)));
  }
  return out;
}

std::shared_ptr<const policy::Policy> PolicyStore::Get(std::string_view name) const {
  std::shared_lock lock(mutex_);
  auto it = policies_.find(name);
  return it == policies_.end() ? nullptr : it->second;
}

std::vector<std::string> PolicyStore::Names() const {
  std::shared_lock lock(mutex_);
  std::vector<std::string> names;
  names.reserve(policies_.size());
  for (const auto& [name, policy] : policies_) names.push_back(name);
  return names;
}

Status PolicyStore::InsertRow(store::Transaction& tx, const policy::Policy& parsed) {
  LOCKBOX_RETURN_IF_ERROR(
      tx.Execute("DELETE FROM core_policies WHERE name = ?", {parsed.name}).status());
  return tx
      .Execute("INSERT INTO core_policies (name, raw) VALUES (?, ?)", {parsed.name, parsed.raw})
      .status();
}

Status PolicyStore::Put(policy::Policy parsed, const InUnit& also) {
  std::lock_guard write_lock(write_mutex_);
  LOCKBOX_RETURN_IF_ERROR(store_.Commit([&](store::Transaction& tx) -> Status {
    LOCKBOX_RETURN_IF_ERROR(InsertRow(tx, parsed));
    return also(tx);
  }));
  Publish(std::move(parsed));
  return Status::Ok();
}

Status PolicyStore::Delete(std::string_view name, const InUnit& also) {
  std::lock_guard write_lock(write_mutex_);
  LOCKBOX_RETURN_IF_ERROR(store_.Commit([&](store::Transaction& tx) -> Status {
    LOCKBOX_RETURN_IF_ERROR(
        tx.Execute("DELETE FROM core_policies WHERE name = ?", {std::string(name)}).status());
    return also(tx);
  }));
  std::unique_lock lock(mutex_);
  auto it = policies_.find(name);
  if (it != policies_.end()) policies_.erase(it);
  ClearAclCache();
  return Status::Ok();
}

void PolicyStore::Publish(policy::Policy parsed) {
  std::unique_lock lock(mutex_);
  const std::string name = parsed.name;
  policies_.insert_or_assign(name, std::make_shared<const policy::Policy>(std::move(parsed)));
  ClearAclCache();
}

void PolicyStore::ClearAclCache() {
  std::lock_guard cache_lock(cache_mutex_);
  acl_cache_.clear();
}

policy::Acl PolicyStore::AclFor(const std::vector<std::string>& policies) const {
  const std::string key = CacheKey(policies);
  std::shared_lock lock(mutex_);
  {
    std::lock_guard cache_lock(cache_mutex_);
    auto it = acl_cache_.find(key);
    if (it != acl_cache_.end()) return it->second;
  }
  // Compiled under the shared lock, so no change can interleave with it.
  std::vector<const policy::Policy*> found;
  for (const std::string& name : policies) {
    auto it = policies_.find(name);
    if (it != policies_.end()) found.push_back(it->second.get());
  }
  policy::Acl acl = policy::Acl::Compile(found);
  std::lock_guard cache_lock(cache_mutex_);
  if (acl_cache_.size() >= kMaxCachedAcls) acl_cache_.clear();
  acl_cache_.insert_or_assign(key, acl);
  return acl;
}

}  // namespace lockbox::core
