"""Token auth through python3-hvac: create, lookup, renew, revoke (tree, orphan, accessor),
TTL expiry, num_uses, and least-privilege policies on a real server."""
import time
import unittest

import hvac

from harness import ServerTestCase


def wait_until(predicate, timeout=15.0, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


class TokenTest(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # The default policy does not allow creating tokens; parents in these tests need this.
        cls.root.sys.create_or_update_policy(
            "creator", 'path "auth/token/create" { capabilities = ["create", "update"] }')

    def create(self, client=None, **kwargs):
        return (client or self.root).auth.token.create(**kwargs)["auth"]

    def test_create_lookup_shapes(self):
        auth = self.create(policies=["default"], ttl="30m", explicit_max_ttl="5m",
                           meta={"team": "a"}, display_name="fn")
        self.assertTrue(auth["client_token"].startswith("lbx."))
        self.assertEqual(auth["lease_duration"], 300, "capped by explicit_max_ttl")
        self.assertEqual(auth["policies"], ["default"])
        self.assertTrue(auth["renewable"])
        data = self.server.client(auth["client_token"]).auth.token.lookup_self()["data"]
        self.assertEqual(data["accessor"], auth["accessor"])
        self.assertEqual(data["display_name"], "token-fn")
        self.assertEqual(data["meta"], {"team": "a"})
        self.assertEqual(data["path"], "auth/token/create")
        self.assertLessEqual(data["ttl"], 300)
        self.assertIsInstance(data["creation_time"], int)
        by_accessor = self.root.auth.token.lookup_accessor(auth["accessor"])["data"]
        self.assertEqual(by_accessor["id"], "")
        root = self.root.auth.token.lookup_self()["data"]
        self.assertEqual(root["policies"], ["root"])
        self.assertIsNone(root["expire_time"])
        self.assertTrue(self.root.is_authenticated())

    def test_policy_limits_access(self):
        self.root.sys.create_or_update_policy(
            "only-a", 'path "secret/data/a/*" { capabilities = ["create", "read", "update"] }')
        self.root.secrets.kv.v2.create_or_update_secret("a/one", {"v": "1"})
        self.root.secrets.kv.v2.create_or_update_secret("b/two", {"v": "2"})
        limited = self.server.client(self.create(policies=["only-a"], ttl="10m")["client_token"])
        self.assertEqual(limited.secrets.kv.v2.read_secret_version("a/one")["data"]["data"], {"v": "1"})
        with self.assertRaises(hvac.exceptions.Forbidden):
            limited.secrets.kv.v2.read_secret_version("b/two")
        with self.assertRaises(hvac.exceptions.Forbidden):
            limited.sys.list_mounted_secrets_engines()
        # A non-root parent cannot mint a child with more policies than it has.
        with self.assertRaises(hvac.exceptions.Forbidden):
            limited.auth.token.create(policies=["root"])
        with self.assertRaises((hvac.exceptions.Forbidden, hvac.exceptions.InvalidRequest)):
            limited.auth.token.create(policies=["only-a", "other"])

    def test_ttl_expiry_is_enforced(self):
        auth = self.create(policies=["default"], ttl="2s")
        client = self.server.client(auth["client_token"])
        self.assertEqual(client.auth.token.lookup_self()["data"]["accessor"], auth["accessor"])
        # Observe the expiry on the wall clock (the server's TTL is real time).
        self.assertTrue(wait_until(lambda: not client.is_authenticated()))
        with self.assertRaises(hvac.exceptions.Forbidden):
            client.auth.token.lookup_self()

    def test_revoke_cascades_to_children(self):
        parent = self.create(policies=["creator"], ttl="10m")
        parent_client = self.server.client(parent["client_token"])
        child = self.create(parent_client, policies=["creator"], ttl="10m")
        grandchild = self.create(self.server.client(child["client_token"]), ttl="10m")
        self.root.auth.token.revoke(parent["client_token"])
        for t in (parent, child, grandchild):
            self.assertFalse(self.server.client(t["client_token"]).is_authenticated())
        with self.assertRaises(hvac.exceptions.Forbidden):
            self.root.auth.token.lookup(child["client_token"])

    def test_revoke_orphan_keeps_children(self):
        parent = self.create(policies=["creator"], ttl="10m")
        child = self.create(self.server.client(parent["client_token"]), ttl="10m")
        self.root.auth.token.revoke_and_orphan_children(parent["client_token"])
        self.assertFalse(self.server.client(parent["client_token"]).is_authenticated())
        child_client = self.server.client(child["client_token"])
        self.assertTrue(child_client.is_authenticated())
        self.assertTrue(child_client.auth.token.lookup_self()["data"]["orphan"])

    def test_revoke_accessor_and_self(self):
        a = self.create(policies=["default"], ttl="10m")
        self.root.auth.token.revoke_accessor(a["accessor"])
        self.assertFalse(self.server.client(a["client_token"]).is_authenticated())
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            self.root.auth.token.lookup_accessor(a["accessor"])
        b = self.create(policies=["default"], ttl="10m")
        b_client = self.server.client(b["client_token"])
        b_client.auth.token.revoke_self()
        self.assertFalse(b_client.is_authenticated())

    def test_num_uses_exhaustion(self):
        auth = self.create(policies=["default"], num_uses=2, ttl="10m")
        client = self.server.client(auth["client_token"])
        # Each request spends a use (sys/capabilities-self is in the default policy).
        self.assertEqual(client.sys.get_capabilities(["cubbyhole/x"])["capabilities"],
                         ["create", "delete", "list", "read", "update"])
        client.sys.get_capabilities(["cubbyhole/x"])
        with self.assertRaises(hvac.exceptions.Forbidden):
            client.sys.get_capabilities(["cubbyhole/x"])
        with self.assertRaises(hvac.exceptions.Forbidden):
            self.root.auth.token.lookup(auth["client_token"])

    def test_last_use_runs_then_the_token_is_revoked(self):
        # As Vault: the request that spends the last use is served; the token is revoked after it.
        auth = self.create(policies=["default"], num_uses=1, ttl="10m")
        client = self.server.client(auth["client_token"])
        data = client.auth.token.lookup_self()["data"]
        self.assertEqual((data["accessor"], data["num_uses"]), (auth["accessor"], -1))
        with self.assertRaises(hvac.exceptions.Forbidden):
            client.auth.token.lookup_self()
        with self.assertRaises(hvac.exceptions.Forbidden):
            self.root.auth.token.lookup(auth["client_token"])
        # Its last request may be revoke-self: that succeeds, and the token is gone.
        auth = self.create(policies=["default"], num_uses=1, ttl="10m")
        self.server.client(auth["client_token"]).auth.token.revoke_self()
        with self.assertRaises(hvac.exceptions.Forbidden):
            self.root.auth.token.lookup(auth["client_token"])

    def test_renew(self):
        auth = self.create(policies=["default"], ttl="1m", explicit_max_ttl="10m")
        client = self.server.client(auth["client_token"])
        renewed = client.auth.token.renew_self(increment="5m")["auth"]
        self.assertEqual(renewed["client_token"], auth["client_token"])
        self.assertGreater(renewed["lease_duration"], 60)
        self.assertLessEqual(renewed["lease_duration"], 600)
        fixed = self.create(policies=["default"], ttl="1m", renewable=False)
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            self.server.client(fixed["client_token"]).auth.token.renew_self()
        periodic = self.create(policies=["default"], period="30m")
        self.assertEqual(periodic["lease_duration"], 1800)
        renewed = self.root.auth.token.renew_accessor(periodic["accessor"])["auth"]
        self.assertEqual(renewed["lease_duration"], 1800)

    def test_token_roles_and_accessor_list(self):
        self.root.auth.token.create_or_update_role("fn-role", allowed_policies="testpolicy")
        self.assertEqual(self.root.auth.token.read_role("fn-role")["data"]["allowed_policies"],
                         ["testpolicy"])
        auth = self.root.auth.token.create(role_name="fn-role")["auth"]
        self.assertEqual(auth["policies"], ["default", "testpolicy"])
        self.assertIn("fn-role", self.root.auth.token.list_roles()["data"]["keys"])
        self.root.auth.token.delete_role("fn-role")
        self.assertIn(auth["accessor"], self.root.auth.token.list_accessors()["data"]["keys"])

    def test_bad_token_requests_change_nothing(self):
        before = self.root.auth.token.list_accessors()["data"]["keys"]
        status, body, _ = self.server.request("POST", "auth/token/create", body={"ttl": "soon"})
        self.assertErrors(status, body, 400)
        status, body, _ = self.server.request("POST", "auth/token/create", body={"num_uses": "x"})
        self.assertErrors(status, body, 400)
        status, body, _ = self.server.request("POST", "auth/token/lookup", body={"token": "lbx.nope"})
        self.assertErrors(status, body, 403, "bad token")
        self.assertEqual(sorted(before), sorted(self.root.auth.token.list_accessors()["data"]["keys"]))


if __name__ == "__main__":
    unittest.main()
