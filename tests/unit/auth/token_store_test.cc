#include "server/auth/token_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "crypto/encoding.h"
#include "crypto/hash.h"
#include "tests/unit/auth/token_test_env.h"

namespace lockbox::auth {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

class TokenStoreTest : public TokenTestBase {};

TEST_F(TokenStoreTest, IssuedTokenAuthenticatesWithItsPrincipal) {
  TokenParams params = Params({"B", "a", " a ", "default"});
  params.display_name = "token-app";
  params.meta = {{"team", "blue"}};
  const IssuedToken issued = MustIssue(params);
  EXPECT_TRUE(issued.client_token.starts_with("lbx."));
  EXPECT_EQ(issued.client_token.size(), 4u + 43u);  // base64url of 32 bytes
  EXPECT_TRUE(crypto::Base64UrlDecode(issued.client_token.substr(4)).ok());
  EXPECT_EQ(issued.entry.policies, (std::vector<std::string>{"a", "b", "default"}));
  EXPECT_FALSE(issued.entry.accessor.empty());
  EXPECT_EQ(issued.entry.expire_time, now_ + hours(1));

  auto principal = tokens_->Authenticate(issued.client_token, "127.0.0.1");
  ASSERT_TRUE(principal.ok()) << principal.status().ToString();
  EXPECT_EQ(principal->accessor, issued.entry.accessor);
  EXPECT_EQ(principal->policies, (std::vector<std::string>{"a", "b", "default"}));
  EXPECT_FALSE(principal->root);
  EXPECT_EQ(principal->display_name, "token-app");
  EXPECT_EQ(principal->metadata.at("team"), "blue");
  EXPECT_EQ(principal->expire_time, now_ + hours(1));
  EXPECT_EQ(principal->entity_id, "");

  std::string tampered = issued.client_token;
  tampered.back() = tampered.back() == 'A' ? 'B' : 'A';
  for (const std::string& bad : {tampered, std::string(), std::string("lbx."),
                                 issued.entry.accessor, std::string(600, 'x')}) {
    auto refused = tokens_->Authenticate(bad, "127.0.0.1");
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().code(), StatusCode::kPermissionDenied);
    EXPECT_EQ(refused.status().message(), "permission denied");
  }
}

TEST_F(TokenStoreTest, OnlyTheTokensHashIsStored) {
  const IssuedToken issued = MustIssue(Params({"a"}));
  auto rows = real_store_->Query("SELECT * FROM tokens", {});
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  const auto digest = crypto::Sha256(issued.client_token);
  bool hash_found = false;
  for (const auto& value : rows->front()) {
    if (const auto* text = std::get_if<std::string>(&value)) {
      EXPECT_EQ(text->find(issued.client_token.substr(4)), std::string::npos);
    }
    if (const auto* blob = std::get_if<store::Blob>(&value)) {
      hash_found =
          hash_found || std::equal(blob->begin(), blob->end(), digest.begin(), digest.end());
    }
  }
  EXPECT_TRUE(hash_found);
}

TEST_F(TokenStoreTest, WarmCacheAuthenticatesWithoutReadingTheStore) {
  const IssuedToken issued = MustIssue(Params({"a"}));
  const auto before = store_->reads.load();
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(Authenticates(issued.client_token));
  EXPECT_EQ(store_->reads.load(), before);  // warmed when the issue committed

  OpenTokens();  // a restart: the cache is cold
  const auto cold = store_->reads.load();
  ASSERT_TRUE(Authenticates(issued.client_token));
  EXPECT_EQ(store_->reads.load(), cold + 1);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(Authenticates(issued.client_token));
  EXPECT_EQ(store_->reads.load(), cold + 1);
}

TEST_F(TokenStoreTest, ExpiryFollowsTheClock) {
  TokenParams params = Params({"a"});
  params.ttl = seconds(60);
  const IssuedToken issued = MustIssue(params);
  now_ += seconds(59);
  EXPECT_TRUE(Authenticates(issued.client_token));
  now_ += seconds(1);
  EXPECT_FALSE(Authenticates(issued.client_token));
  EXPECT_EQ(tokens_->LookupToken(issued.client_token).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(tokens_->LookupAccessor(issued.entry.accessor).status().code(), StatusCode::kNotFound);
  auto accessors = tokens_->ListAccessors();
  ASSERT_TRUE(accessors.ok());
  EXPECT_TRUE(accessors->empty());
}

TEST_F(TokenStoreTest, DefaultAndMaxTtlApply) {
  TokenParams params = Params({"a"});
  params.ttl = seconds(0);
  EXPECT_EQ(MustIssue(params).entry.creation_ttl, hours(2));  // default_ttl
  params.ttl = hours(100);
  EXPECT_EQ(MustIssue(params).entry.creation_ttl, hours(24));  // max_ttl
  params.ttl = minutes(30);
  params.explicit_max_ttl = minutes(5);
  EXPECT_EQ(MustIssue(params).entry.creation_ttl, minutes(5));
}

TEST_F(TokenStoreTest, RevokeCascadesToGrandchildrenAtOnce) {
  const IssuedToken root = MustIssueRoot();
  const IssuedToken child = MustIssue(Params({"a"}, root.entry.accessor));
  const IssuedToken grandchild = MustIssue(Params({"a"}, child.entry.accessor));
  const IssuedToken sibling = MustIssue(Params({"a"}, root.entry.accessor));
  for (const auto* t : {&root, &child, &grandchild, &sibling}) {
    ASSERT_TRUE(Authenticates(t->client_token));  // all cached
  }
  ASSERT_TRUE(tokens_->Revoke(child.entry.accessor, false, caller_, "auth/token/revoke").ok());
  EXPECT_FALSE(Authenticates(child.client_token));
  EXPECT_FALSE(Authenticates(grandchild.client_token));
  EXPECT_TRUE(Authenticates(root.client_token));
  EXPECT_TRUE(Authenticates(sibling.client_token));
  EXPECT_EQ(TokenRows(), 2);

  auto events = EventsWithOp("token.revoke");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].path, "auth/token/revoke");
  EXPECT_EQ(events[0].actor, "test-actor");
  EXPECT_EQ(events[0].details["accessor"], child.entry.accessor);
  EXPECT_EQ(events[0].details["revoked"], 2);

  EXPECT_EQ(tokens_->Revoke(child.entry.accessor, false, caller_).code(), StatusCode::kNotFound);
}

TEST_F(TokenStoreTest, RevokeWithOrphanChildrenKeepsThemAlive) {
  const IssuedToken parent = MustIssueRoot();
  const IssuedToken child = MustIssue(Params({"a"}, parent.entry.accessor));
  const IssuedToken grandchild = MustIssue(Params({"a"}, child.entry.accessor));
  ASSERT_TRUE(Authenticates(child.client_token));
  ASSERT_TRUE(tokens_->Revoke(parent.entry.accessor, true, caller_).ok());
  EXPECT_FALSE(Authenticates(parent.client_token));
  EXPECT_TRUE(Authenticates(child.client_token));
  EXPECT_TRUE(Authenticates(grandchild.client_token));
  auto orphan = tokens_->LookupToken(child.client_token);
  ASSERT_TRUE(orphan.ok());
  EXPECT_TRUE(orphan->orphan());  // the cached copy was refreshed too
  EXPECT_EQ(tokens_->LookupAccessor(grandchild.entry.accessor)->parent_accessor,
            child.entry.accessor);
  // The orphan is still the root of its own subtree.
  ASSERT_TRUE(tokens_->Revoke(child.entry.accessor, false, caller_).ok());
  EXPECT_FALSE(Authenticates(grandchild.client_token));
}

TEST_F(TokenStoreTest, NumUsesAreCountedDurablyAndTheLastUseRunsThenRevokes) {
  TokenParams params = Params({"a"});
  params.num_uses = 2;
  const IssuedToken issued = MustIssue(params);
  auto first = tokens_->Authenticate(issued.client_token, "127.0.0.1");
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first->last_use);
  EXPECT_EQ(tokens_->LookupAccessor(issued.entry.accessor)->num_uses, 1);
  OpenTokens();  // the count survives a restart
  // The last use is granted; the token is spent (refused, still visible) until revoked.
  auto last = tokens_->Authenticate(issued.client_token, "127.0.0.1");
  ASSERT_TRUE(last.ok());
  EXPECT_TRUE(last->last_use);
  EXPECT_EQ(last->accessor, issued.entry.accessor);
  EXPECT_FALSE(Authenticates(issued.client_token));  // third use
  ASSERT_TRUE(tokens_->LookupToken(issued.client_token).ok());
  EXPECT_EQ(tokens_->LookupToken(issued.client_token)->num_uses, -1);
  EXPECT_TRUE(EventsWithOp("token.revoke").empty());

  ASSERT_TRUE(tokens_->RevokeSpent(issued.entry.accessor).ok());
  EXPECT_EQ(TokenRows(), 0);
  EXPECT_FALSE(Authenticates(issued.client_token));
  auto events = EventsWithOp("token.revoke");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].details["reason"], "num_uses exhausted");
  EXPECT_EQ(events[0].actor, issued.entry.accessor);
  // Already gone (say the request was revoke-self): nothing more happens.
  ASSERT_TRUE(tokens_->RevokeSpent(issued.entry.accessor).ok());
  EXPECT_EQ(EventsWithOp("token.revoke").size(), 1u);
}

TEST_F(TokenStoreTest, ATidyInTheSameBatchAsTheLastUseLeavesTheTokenAlone) {
  TokenParams params = Params({"a"});
  params.num_uses = 1;
  const IssuedToken once = MustIssue(params);
  auto queued_at_least = [&](std::uint64_t n) {
    while (real_store_->stats().queued < n) std::this_thread::yield();
  };
  // A gate unit holds the writer until the last use and then the tidy are queued behind it:
  // both run in the next batch, the use first.
  std::atomic<bool> gate_running{false};
  std::thread gate([&] {
    EXPECT_TRUE(real_store_
                    ->Commit([&](store::Transaction&) {
                      gate_running = true;
                      queued_at_least(2);
                      return Status::Ok();
                    })
                    .ok());
  });
  while (!gate_running) std::this_thread::yield();
  StatusOr<logical::Principal> used = UnavailableError("not run");
  std::thread use([&] { used = tokens_->Authenticate(once.client_token, "127.0.0.1"); });
  queued_at_least(1);
  std::thread tidy([&] { EXPECT_TRUE(tokens_->RevokeExpired(caller_).ok()); });
  gate.join();
  use.join();
  tidy.join();
  ASSERT_TRUE(used.ok()) << used.status().ToString();
  EXPECT_TRUE(used->last_use);
  EXPECT_EQ(TokenRows(), 1) << "the tidy revoked a token whose request was still running";
  EXPECT_TRUE(EventsWithOp("token.revoke").empty());
  ASSERT_TRUE(tokens_->RevokeSpent(once.entry.accessor).ok());
  EXPECT_EQ(TokenRows(), 0);
}

TEST_F(TokenStoreTest, TidyTakesASpentTokenWhoseRevocationFailed) {
  TokenParams params = Params({"a"});
  params.num_uses = 1;
  const IssuedToken spent = MustIssue(params);
  ASSERT_TRUE(tokens_->Authenticate(spent.client_token, "127.0.0.1")->last_use);
  store_->fail_commits = true;
  EXPECT_FALSE(tokens_->RevokeSpent(spent.entry.accessor).ok());
  store_->fail_commits = false;
  EXPECT_FALSE(Authenticates(spent.client_token));  // still spent
  ASSERT_TRUE(tokens_->RevokeExpired(caller_).ok());
  EXPECT_EQ(TokenRows(), 0);
  EXPECT_EQ(EventsWithOp("token.revoke").size(), 1u);
}

TEST_F(TokenStoreTest, TheTidyFindsSpentTokensThroughTheirIndex) {
  // The query the tidy runs on the commit writer must not scan every token.
  auto plan =
      real_store_->Query("EXPLAIN QUERY PLAN SELECT accessor FROM tokens WHERE num_uses < 0", {});
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  std::string details;
  for (const store::Row& row : *plan) details += *store::GetText(row, 3) + "\n";
  EXPECT_NE(details.find("tokens_spent"), std::string::npos) << details;
}

TEST_F(TokenStoreTest, RevokeSpentLeavesALiveTokenAlone) {
  TokenParams params = Params({"a"});
  params.num_uses = 2;
  const IssuedToken limited = MustIssue(params);
  const IssuedToken unlimited = MustIssue(Params({"a"}));
  ASSERT_TRUE(tokens_->RevokeSpent(limited.entry.accessor).ok());
  ASSERT_TRUE(tokens_->RevokeSpent(unlimited.entry.accessor).ok());
  EXPECT_TRUE(Authenticates(limited.client_token));
  EXPECT_TRUE(Authenticates(unlimited.client_token));
  EXPECT_TRUE(EventsWithOp("token.revoke").empty());
}

TEST_F(TokenStoreTest, TidyRevokesASpentTokenItsRequestDidNotRevoke) {
  TokenParams params = Params({"a"});
  params.num_uses = 1;
  const IssuedToken spent = MustIssue(params);
  const IssuedToken child = MustIssue(Params({"a"}, spent.entry.accessor));
  ASSERT_TRUE(tokens_->Authenticate(spent.client_token, "127.0.0.1")->last_use);
  // While its request runs, the tidy leaves it alone: the request's record comes first.
  ASSERT_TRUE(tokens_->RevokeExpired(caller_).ok());
  EXPECT_EQ(TokenRows(), 2);
  EXPECT_TRUE(EventsWithOp("token.revoke").empty());
  OpenTokens();  // say the server stopped before RevokeSpent
  EXPECT_FALSE(Authenticates(spent.client_token));
  ASSERT_TRUE(tokens_->RevokeExpired(caller_).ok());
  EXPECT_EQ(TokenRows(), 0);  // with its subtree
  EXPECT_FALSE(Authenticates(child.client_token));
  auto events = EventsWithOp("token.revoke");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].details["reason"], "num_uses exhausted");
}

TEST_F(TokenStoreTest, NumUsesFailClosedWhenTheStoreFails) {
  TokenParams params = Params({"a"});
  params.num_uses = 1;
  const IssuedToken issued = MustIssue(params);
  store_->fail_commits = true;
  auto refused = tokens_->Authenticate(issued.client_token, "127.0.0.1");
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable);
  store_->fail_commits = false;
  EXPECT_TRUE(Authenticates(issued.client_token));  // the use was not spent by the failure
  EXPECT_FALSE(Authenticates(issued.client_token));
}

TEST_F(TokenStoreTest, BoundCidrsRestrictTheClientAddress) {
  TokenParams params = Params({"a"});
  params.bound_cidrs = {"10.0.0.0/8", "2001:db8::/32"};
  const IssuedToken issued = MustIssue(params);
  EXPECT_TRUE(Authenticates(issued.client_token, "10.1.2.3"));
  EXPECT_TRUE(Authenticates(issued.client_token, "2001:db8::7"));
  EXPECT_FALSE(Authenticates(issued.client_token, "192.168.0.1"));
  EXPECT_FALSE(Authenticates(issued.client_token, ""));
  EXPECT_FALSE(Authenticates(issued.client_token, "not-an-ip"));

  params.bound_cidrs = {"10.0.0.0/33"};
  const auto rows = TokenRows();
  EXPECT_EQ(tokens_->Issue(params, caller_).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(TokenRows(), rows);
}

TEST_F(TokenStoreTest, RenewIsCappedByTheExplicitMaxFromCreation) {
  TokenParams params = Params({"a"});
  params.explicit_max_ttl = hours(2);
  const IssuedToken issued = MustIssue(params);
  now_ += minutes(30);
  auto renewed = tokens_->Renew(issued.entry.accessor, hours(10), caller_);
  ASSERT_TRUE(renewed.ok()) << renewed.status().ToString();
  EXPECT_EQ(renewed->expire_time, issued.entry.creation_time + hours(2));
  EXPECT_EQ(renewed->last_renewal_time, now_);
  EXPECT_EQ(RemainingTtl(*renewed, now_), 90 * 60);
  now_ += hours(2);
  EXPECT_FALSE(Authenticates(issued.client_token));
  EXPECT_EQ(tokens_->Renew(issued.entry.accessor, hours(1), caller_).status().code(),
            StatusCode::kNotFound);
}

TEST_F(TokenStoreTest, RenewIsCappedByTheSystemMaxAndUsesTheTtlWithoutIncrement) {
  const IssuedToken issued = MustIssue(Params({"a"}));  // ttl 1h, system max 24h
  now_ += minutes(50);
  auto renewed = tokens_->Renew(issued.entry.accessor, seconds(0), caller_);
  ASSERT_TRUE(renewed.ok());
  EXPECT_EQ(renewed->expire_time, now_ + hours(1));
  ASSERT_TRUE(Authenticates(issued.client_token));  // the cache saw the renewal
  now_ += hours(1) - minutes(1);
  EXPECT_TRUE(Authenticates(issued.client_token));
  renewed = tokens_->Renew(issued.entry.accessor, hours(48), caller_);
  ASSERT_TRUE(renewed.ok());
  EXPECT_EQ(renewed->expire_time, issued.entry.creation_time + hours(24));
}

TEST_F(TokenStoreTest, NonRenewableTokensAreRefused) {
  TokenParams params = Params({"a"});
  params.renewable = false;
  const IssuedToken issued = MustIssue(params);
  auto refused = tokens_->Renew(issued.entry.accessor, hours(1), caller_);
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(refused.status().message(), "lease is not renewable");
  const IssuedToken root = MustIssueRoot();
  EXPECT_FALSE(root.entry.renewable);
  EXPECT_EQ(tokens_->Renew(root.entry.accessor, hours(1), caller_).status().message(),
            "lease is not renewable");
  EXPECT_TRUE(EventsWithOp("token.renew").empty());
}

TEST_F(TokenStoreTest, PeriodicTokensResetToTheirPeriodBeyondTheSystemMax) {
  TokenParams params = Params({"a"});
  params.period = hours(1);
  const IssuedToken issued = MustIssue(params);
  EXPECT_EQ(issued.entry.expire_time, now_ + hours(1));
  for (int i = 0; i < 40; ++i) {  // 40 × 50 minutes is well past the 24h system max
    now_ += minutes(50);
    auto renewed = tokens_->Renew(issued.entry.accessor, hours(10), caller_);
    ASSERT_TRUE(renewed.ok()) << i << renewed.status().ToString();
    ASSERT_EQ(renewed->expire_time, now_ + hours(1));
  }
  EXPECT_TRUE(Authenticates(issued.client_token));
}

TEST_F(TokenStoreTest, RootTokenNeverExpires) {
  const IssuedToken root = MustIssueRoot();
  EXPECT_EQ(root.entry.policies, std::vector<std::string>{"root"});
  EXPECT_EQ(root.entry.path, "auth/token/root");
  EXPECT_TRUE(root.entry.orphan());
  EXPECT_FALSE(root.entry.expire_time.has_value());
  now_ += hours(24 * 365 * 10);
  auto principal = tokens_->Authenticate(root.client_token, "127.0.0.1");
  ASSERT_TRUE(principal.ok());
  EXPECT_TRUE(principal->root);
  EXPECT_FALSE(principal->expire_time.has_value());
  const auto block = TokenStore::AuthBlock(root.entry, root.client_token, now_);
  EXPECT_EQ(block["lease_duration"], 0);
  EXPECT_EQ(block["renewable"], false);
}

TEST_F(TokenStoreTest, CustomIdsAreHashedAndUnique) {
  auto root = CreateRootToken(*tokens_, std::string("my-root-token"), caller_);
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(root->client_token, "my-root-token");
  EXPECT_TRUE(Authenticates("my-root-token"));
  auto again = CreateRootToken(*tokens_, std::string("my-root-token"), caller_);
  EXPECT_EQ(again.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(again.status().message(), "cannot create a token with a duplicate ID");
  EXPECT_EQ(CreateRootToken(*tokens_, std::string(""), caller_).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(CreateRootToken(*tokens_, std::string("lbx.forged"), caller_).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(AuditText().find("my-root-token"), std::string::npos);
}

TEST_F(TokenStoreTest, MalformedParamsChangeNothing) {
  const auto rows = TokenRows();
  const auto events = AuditEvents().size();
  TokenParams negative = Params({"a"});
  negative.num_uses = -1;
  TokenParams no_policy = Params({" ", ""});
  TokenParams negative_ttl = Params({"a"});
  negative_ttl.ttl = seconds(-5);
  for (const auto* p : {&negative, &no_policy, &negative_ttl}) {
    EXPECT_EQ(tokens_->Issue(*p, caller_).status().code(), StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(TokenRows(), rows);
  EXPECT_EQ(AuditEvents().size(), events);
}

TEST_F(TokenStoreTest, ChildOfARevokedParentIsRefused) {
  const IssuedToken parent = MustIssueRoot();
  ASSERT_TRUE(tokens_->Revoke(parent.entry.accessor, false, caller_).ok());
  auto child = tokens_->Issue(Params({"a"}, parent.entry.accessor), caller_);
  EXPECT_EQ(child.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(child.status().message(), "parent token lookup failed: no parent found");
  EXPECT_EQ(TokenRows(), 0);
}

TEST_F(TokenStoreTest, StoreFailureIssuesNothing) {
  const IssuedToken root = MustIssueRoot();
  const auto rows = TokenRows();
  store_->fail_commits = true;
  auto issued = tokens_->Issue(Params({"a"}, root.entry.accessor), caller_);
  EXPECT_EQ(issued.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(tokens_->Revoke(root.entry.accessor, false, caller_).code(), StatusCode::kUnavailable);
  TokenParams renewable = Params({"a"});
  store_->fail_commits = false;
  const IssuedToken other = MustIssue(renewable);
  store_->fail_commits = true;
  EXPECT_EQ(tokens_->Renew(other.entry.accessor, hours(1), caller_).status().code(),
            StatusCode::kUnavailable);
  store_->fail_commits = false;
  EXPECT_EQ(TokenRows(), rows + 1);
  EXPECT_TRUE(Authenticates(root.client_token));  // the failed revoke changed nothing
  EXPECT_EQ(tokens_->LookupAccessor(other.entry.accessor)->expire_time, other.entry.expire_time);
}

TEST_F(TokenStoreTest, EveryChangeIsAuditedWithoutTheToken) {
  const IssuedToken root = MustIssueRoot();
  const IssuedToken child = MustIssue(Params({"a"}, root.entry.accessor));
  ASSERT_TRUE(
      tokens_->Renew(child.entry.accessor, hours(1), caller_, "auth/token/renew-self").ok());
  ASSERT_TRUE(tokens_->Revoke(child.entry.accessor, false, caller_, "auth/token/revoke-self").ok());

  auto creates = EventsWithOp("token.create");
  ASSERT_EQ(creates.size(), 2u);
  EXPECT_EQ(creates[0].path, "auth/token/root");
  EXPECT_EQ(creates[1].path, "auth/token/create");
  EXPECT_EQ(creates[1].details["accessor"], child.entry.accessor);
  EXPECT_EQ(creates[1].details["parent_accessor"], root.entry.accessor);
  EXPECT_EQ(creates[1].details["policies"], "a");
  EXPECT_EQ(creates[1].actor, "test-actor");
  EXPECT_EQ(creates[1].request_id, "req-1");
  auto renews = EventsWithOp("token.renew");
  ASSERT_EQ(renews.size(), 1u);
  EXPECT_EQ(renews[0].path, "auth/token/renew-self");
  EXPECT_EQ(renews[0].details["accessor"], child.entry.accessor);
  auto revokes = EventsWithOp("token.revoke");
  ASSERT_EQ(revokes.size(), 1u);
  EXPECT_EQ(revokes[0].path, "auth/token/revoke-self");

  const std::string text = AuditText();
  for (const auto* t : {&root, &child}) {
    EXPECT_EQ(text.find(t->client_token.substr(4)), std::string::npos);
    EXPECT_EQ(text.find(crypto::HexEncode(crypto::Sha256(t->client_token))), std::string::npos);
  }
}

TEST_F(TokenStoreTest, RevokeByPathPrefixRevokesOneAuthMount) {
  TokenParams approle = Params({"a"});
  approle.path = "auth/approle/login";
  const IssuedToken login = MustIssue(approle);
  TokenParams other = Params({"a"});
  other.path = "auth/approle2/login";
  const IssuedToken other_login = MustIssue(other);
  const IssuedToken created = MustIssue(Params({"a"}));
  ASSERT_TRUE(tokens_->RevokeByPathPrefix("auth/approle/", caller_).ok());
  EXPECT_FALSE(Authenticates(login.client_token));
  EXPECT_TRUE(Authenticates(other_login.client_token));
  EXPECT_TRUE(Authenticates(created.client_token));
  EXPECT_EQ(tokens_->RevokeByPathPrefix("", caller_).code(), StatusCode::kInvalidArgument);
}

TEST_F(TokenStoreTest, RevokeExpiredTakesChildrenOfExpiredParents) {
  const IssuedToken parent = MustIssue(Params({"a"}));  // 1h
  TokenParams long_lived = Params({"a"}, parent.entry.accessor);
  long_lived.ttl = hours(10);
  const IssuedToken child = MustIssue(long_lived);
  now_ += hours(2);
  EXPECT_TRUE(Authenticates(child.client_token));
  ASSERT_TRUE(tokens_->RevokeExpired(caller_).ok());
  EXPECT_FALSE(Authenticates(child.client_token));
  EXPECT_EQ(TokenRows(), 0);
}

TEST_F(TokenStoreTest, ConcurrentAuthenticationNeverSucceedsAfterRevokeReturns) {
  const IssuedToken issued = MustIssue(Params({"a"}));
  constexpr int kThreads = 16;
  std::atomic<bool> revoked{false};
  std::atomic<int> successes_before{0};
  std::atomic<int> successes_after{0};
  std::atomic<int> running{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      ++running;
      for (int attempts_after = 0; attempts_after < 200;) {
        const bool after = revoked.load();  // read before the call starts
        const bool ok = tokens_->Authenticate(issued.client_token, "127.0.0.1").ok();
        if (ok && after) ++successes_after;
        if (ok && !after) ++successes_before;
        if (after) ++attempts_after;
      }
    });
  }
  while (running.load() < kThreads || successes_before.load() < 10'000) std::this_thread::yield();
  ASSERT_TRUE(tokens_->Revoke(issued.entry.accessor, false, caller_).ok());
  revoked = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(successes_after.load(), 0);
  EXPECT_GE(successes_before.load(), 10'000);
}

// With one cache slot per shard and two tokens of the same shard, the threads keep evicting
// each other's entry and reloading it from the database while the revocation commits: a row
// read just before the commit must never be cached again after Revoke returns.
TEST_F(TokenStoreTest, ColdReadsRacingARevokeNeverResurrectTheToken) {
  options_.cache_entries = 1;
  OpenTokens();
  const IssuedToken target = MustIssue(Params({"a"}));
  const auto shard = [](const std::string& t) { return crypto::Sha256(t)[31] % 16; };
  IssuedToken filler = MustIssue(Params({"a"}));
  while (shard(filler.client_token) != shard(target.client_token)) {
    filler = MustIssue(Params({"a"}));
  }
  std::atomic<bool> revoked{false};
  std::atomic<int> successes_before{0};
  std::atomic<int> successes_after{0};
  std::vector<std::thread> threads;
  const auto reads_before = store_->reads.load();
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&, i] {
      for (int attempts_after = 0; attempts_after < 100;) {
        if (i % 2 == 1) {  // evicts the target's entry
          const bool after = revoked.load();
          ASSERT_TRUE(Authenticates(filler.client_token));
          if (after) ++attempts_after;
          continue;
        }
        const bool after = revoked.load();
        const bool ok = Authenticates(target.client_token);
        if (ok && after) ++successes_after;
        if (ok && !after) ++successes_before;
        if (after) ++attempts_after;
      }
    });
  }
  while (successes_before.load() < 2'000) std::this_thread::yield();
  ASSERT_TRUE(tokens_->Revoke(target.entry.accessor, false, caller_).ok());
  revoked = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(successes_after.load(), 0);
  EXPECT_GT(store_->reads.load() - reads_before, 100u);  // the race really went to the database
}

TEST(TokenTtlTest, CalculateTtlFollowsVault) {
  const Clock::time_point now(seconds(1'800'000'000));
  std::vector<std::string> warnings;
  // The hvac test: ttl 30m with explicit max 5m gives 300 s.
  EXPECT_EQ(*CalculateTtl({seconds(0), minutes(30), seconds(0), minutes(5), now}, hours(768),
                          hours(768), now, &warnings),
            seconds(300));
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0],
            "TTL of \"30m0s\" exceeded the effective max_ttl of \"5m0s\"; TTL value is capped "
            "accordingly");
  // No ttl: the default; an increment wins over the ttl.
  EXPECT_EQ(*CalculateTtl({seconds(0), seconds(0), seconds(0), seconds(0), now}, hours(2),
                          hours(768), now),
            hours(2));
  EXPECT_EQ(
      *CalculateTtl({minutes(7), hours(1), seconds(0), seconds(0), now}, hours(2), hours(768), now),
      minutes(7));
  // A period is capped to the max TTL but not counted from the start without an explicit max.
  EXPECT_EQ(*CalculateTtl({seconds(0), seconds(0), hours(48), seconds(0), now - hours(100)},
                          hours(2), hours(24), now),
            hours(24));
  // Past the max TTL.
  auto past = CalculateTtl({hours(1), hours(1), seconds(0), hours(1), now - hours(2)}, hours(2),
                           hours(24), now);
  EXPECT_EQ(past.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(past.status().message(), "past the max TTL, cannot renew");
}

TEST(TokenPoliciesTest, SanitizePoliciesFollowsVault) {
  EXPECT_EQ(SanitizePolicies({"B", " a", "a", ""}, false), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(SanitizePolicies({"b"}, true), (std::vector<std::string>{"b", "default"}));
  EXPECT_EQ(SanitizePolicies({}, true), (std::vector<std::string>{"default"}));
  EXPECT_EQ(SanitizePolicies({"a", "Root", "b"}, true), (std::vector<std::string>{"root"}));
}

TEST(TokenAuthBlockTest, HasExactlyVaultsFields) {
  TokenEntry entry;
  entry.accessor = "acc";
  entry.policies = {"default", "p"};
  entry.meta = {{"k", "v"}};
  entry.creation_time = Clock::time_point(seconds(1000));
  entry.expire_time = entry.creation_time + seconds(300);
  entry.renewable = true;
  entry.num_uses = 3;
  const auto block = TokenStore::AuthBlock(entry, "tok", entry.creation_time);
  EXPECT_EQ(block, nlohmann::json::parse(R"({"client_token":"tok","accessor":"acc",
    "policies":["default","p"],"token_policies":["default","p"],"metadata":{"k":"v"},
    "lease_duration":300,"renewable":true,"entity_id":"","token_type":"service","orphan":true,
    "mfa_requirement":null,"num_uses":3})"));
  entry.meta.clear();
  EXPECT_TRUE(TokenStore::AuthBlock(entry, "", entry.creation_time)["metadata"].is_null());
}

}  // namespace
}  // namespace lockbox::auth
