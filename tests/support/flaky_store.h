// A test decorator around a real store: while `fail_commits` is set, every Commit fails with
// UNAVAILABLE before its unit runs (as a full disk or a closed store would).
#pragma once

#include <atomic>
#include <functional>
#include <utility>
#include <vector>

#include "server/store/store.h"

namespace lockbox::testing {

class FlakyStore : public store::Store {
 public:
  explicit FlakyStore(store::Store& inner) : inner_(inner) {}
  std::atomic<bool> fail_commits{false};

  Status Migrate(const std::vector<store::Migration>& m) override { return inner_.Migrate(m); }
  Status Commit(store::UnitOfWork unit) override {
    if (fail_commits) return UnavailableError("store: database or disk is full");
    return inner_.Commit(std::move(unit));
  }
  Status Read(const std::function<Status(store::Transaction&)>& reader) override {
    return inner_.Read(reader);
  }
  store::CommitStats stats() const override { return inner_.stats(); }

 private:
  store::Store& inner_;
};

}  // namespace lockbox::testing
