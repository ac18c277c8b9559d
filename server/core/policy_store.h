// PolicyStore: the ACL policies (reference §7) and the compiled ACL of each token's policy set.
//
// Policies are stored in `core_policies` with their raw text verbatim (what sys/policy returns)
// and kept parsed in memory. A token's ACL is compiled once per distinct sorted policy list and
// cached; a policy change clears the cache under the same exclusive lock that publishes it, so the
// next request after a change always sees it. `root` is not stored (Acl::Root() is used for root
// tokens) and names of policies that do not exist simply contribute no rules (deny by default).
// Thread safety: all methods are thread-safe.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/status.h"
#include "policy/policy.h"
#include "server/store/store.h"

namespace lockbox::core {

// Runs inside the unit of work that makes a change (e.g. appending the change's audit event).
using InUnit = std::function<Status(store::Transaction&)>;

class PolicyStore {
 public:
  // Loads and parses every stored policy. DATA_LOSS if a stored policy no longer parses (fail
  // closed: a server must not run with a policy it cannot enforce).
  static StatusOr<std::unique_ptr<PolicyStore>> Load(store::Store& store);

  // nullptr if there is no such policy.
  std::shared_ptr<const policy::Policy> Get(std::string_view name) const;
  // Stored policy names, sorted (without "root").
  std::vector<std::string> Names() const;

  // Stores `parsed` (replacing a policy of the same name) in one unit with `also`, then publishes
  // it.
  Status Put(policy::Policy parsed, const InUnit& also);
  // Deletes the policy (a no-op if it does not exist) in one unit with `also`.
  Status Delete(std::string_view name, const InUnit& also);

  // For init, which writes the default policy inside its own unit: the row, then Publish() once
  // that unit has committed.
  static Status InsertRow(store::Transaction& tx, const policy::Policy& parsed);
  void Publish(policy::Policy parsed);

  // The compiled ACL of a (sorted, lower-case) policy list.
  policy::Acl AclFor(const std::vector<std::string>& policies) const;

 private:
  explicit PolicyStore(store::Store& store) : store_(store) {}
  void ClearAclCache();  // under the exclusive lock of mutex_

  store::Store& store_;
  std::mutex write_mutex_;  // serialises Put/Delete so memory follows the commit order
  mutable std::shared_mutex mutex_;
  std::map<std::string, std::shared_ptr<const policy::Policy>, std::less<>> policies_;
  // Filled under the shared lock of mutex_ (so always current), cleared under its exclusive lock.
  mutable std::mutex cache_mutex_;
  mutable std::map<std::string, policy::Acl, std::less<>> acl_cache_;
};

}  // namespace lockbox::core
