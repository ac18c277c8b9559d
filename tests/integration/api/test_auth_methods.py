"""AppRole and identity tokens through python3-hvac; identity JWTs verified with
python3-jwcrypto against the JWKS the server publishes."""
import base64
import json
import time
import unittest

import hvac
import requests
from jwcrypto import jwk, jwt

from harness import ServerTestCase


class AppRoleTest(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root.sys.enable_auth_method("approle")
        cls.root.sys.create_or_update_policy(
            "fn", 'path "secret/data/fn/*" { capabilities = ["read"] }')

    def test_role_crud_and_login(self):
        approle = self.root.auth.approle
        approle.create_or_update_approle("fn-role", token_policies=["fn"], token_ttl="10m",
                                          secret_id_num_uses=0)
        role = approle.read_role("fn-role")["data"]
        self.assertEqual(role["token_policies"], ["fn"])
        self.assertEqual(role["token_ttl"], 600)
        self.assertEqual(role["token_type"], "default")
        self.assertIn("fn-role", approle.list_roles()["data"]["keys"])
        role_id = approle.read_role_id("fn-role")["data"]["role_id"]
        secret = approle.generate_secret_id("fn-role", metadata={"foo": "bar"})["data"]
        login = self.server.anonymous().auth.approle.login(role_id, secret["secret_id"])["auth"]
        self.assertEqual(login["policies"], ["default", "fn"])
        self.assertEqual(login["metadata"]["foo"], "bar")
        self.assertEqual(login["metadata"]["role_name"], "fn-role")
        self.assertEqual(login["lease_duration"], 600)
        self.root.secrets.kv.v2.create_or_update_secret("fn/db", {"password": "pw"})
        fn = self.server.client(login["client_token"])
        self.assertEqual(fn.secrets.kv.v2.read_secret_version("fn/db")["data"]["data"]["password"], "pw")
        with self.assertRaises(hvac.exceptions.Forbidden):
            fn.secrets.kv.v2.read_secret_version("other")
        looked = approle.read_secret_id("fn-role", secret["secret_id"])["data"]
        self.assertEqual(looked["metadata"], {"foo": "bar"})
        self.assertIn(secret["secret_id_accessor"],
                      approle.list_secret_id_accessors("fn-role")["data"]["keys"])
        approle.destroy_secret_id("fn-role", secret["secret_id"])
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            self.server.anonymous().auth.approle.login(role_id, secret["secret_id"])
        approle.delete_role("fn-role")
        with self.assertRaises(hvac.exceptions.InvalidPath):
            approle.read_role("fn-role")

    def test_default_ttls_are_short(self):
        approle = self.root.auth.approle
        approle.create_or_update_approle("short-role", token_policies=["fn"])
        role_id = approle.read_role_id("short-role")["data"]["role_id"]
        secret = approle.generate_secret_id("short-role")["data"]["secret_id"]
        login = self.server.anonymous().auth.approle.login(role_id, secret)["auth"]
        self.assertEqual(login["lease_duration"], 15 * 60)
        data = self.server.client(login["client_token"]).auth.token.lookup_self()["data"]
        self.assertLessEqual(data["explicit_max_ttl"], 3600)
        self.assertGreater(data["explicit_max_ttl"], 0)

    def test_secret_id_num_uses(self):
        approle = self.root.auth.approle
        approle.create_or_update_approle("uses-role", token_policies=["fn"], secret_id_num_uses=2)
        role_id = approle.read_role_id("uses-role")["data"]["role_id"]
        secret = approle.generate_secret_id("uses-role")["data"]["secret_id"]
        anon = self.server.anonymous()
        anon.auth.approle.login(role_id, secret)
        anon.auth.approle.login(role_id, secret)
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            anon.auth.approle.login(role_id, secret)

    def test_cidr_binding(self):
        approle = self.root.auth.approle
        approle.create_or_update_approle("cidr-role", token_policies=["fn"])
        role_id = approle.read_role_id("cidr-role")["data"]["role_id"]
        inside = approle.generate_secret_id("cidr-role", cidr_list=["127.0.0.1/32"])["data"]["secret_id"]
        outside = approle.generate_secret_id("cidr-role", cidr_list=["10.1.2.0/24"])["data"]["secret_id"]
        anon = self.server.anonymous()
        self.assertIn("client_token", anon.auth.approle.login(role_id, inside)["auth"])
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            anon.auth.approle.login(role_id, outside)

    def test_bad_logins(self):
        approle = self.root.auth.approle
        approle.create_or_update_approle("neg-role", token_policies=["fn"])
        role_id = approle.read_role_id("neg-role")["data"]["role_id"]
        anon = self.server.anonymous()
        for rid, sid in ((role_id, "wrong"), ("no-such-role", "x"), (role_id, "")):
            status, body, _ = self.server.request("POST", "auth/approle/login", token="",
                                                  body={"role_id": rid, "secret_id": sid})
            self.assertErrors(status, body, 400)
        status, body, _ = self.server.request("POST", "auth/approle/login", token="", body={})
        self.assertErrors(status, body, 400, "missing role_id")
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            approle.create_or_update_approle("bad-role", secret_id_ttl="forever")
        with self.assertRaises(hvac.exceptions.InvalidPath):
            approle.read_role("bad-role")
        # Secret ids never reach the audit log.
        secret = approle.generate_secret_id("neg-role")["data"]["secret_id"]
        anon.auth.approle.login(role_id, secret)
        self.assertNotIn(secret, json.dumps(self.audit_events()))


def kid_of(token):
    header = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]


class IdentityTest(ServerTestCase):
    def jwks(self):
        r = requests.get(self.server.address + "/v1/identity/oidc/.well-known/keys",
                         verify=self.server.verify)
        self.assertEqual(r.status_code, 200)
        return jwk.JWKSet.from_json(r.text)

    def test_identity_token_verifies_against_jwks(self):
        identity = self.root.secrets.identity
        identity.create_named_key("fn-key", algorithm="ES256", allowed_client_ids=["*"],
                                  verification_ttl="1h", rotation_period="24h")
        identity.create_or_update_role("fn-id", key="fn-key", ttl="5m")
        token = self.root.auth.token.create(policies=["default"], ttl="10m")["auth"]
        self.root.sys.create_or_update_policy(
            "id-user", 'path "identity/oidc/token/fn-id" { capabilities = ["read"] }')
        user = self.root.auth.token.create(policies=["id-user"], ttl="10m")["auth"]
        issued = self.server.client(user["client_token"]).secrets.identity.generate_signed_id_token("fn-id")
        signed = issued["data"]["token"]
        verified = jwt.JWT(jwt=signed, key=self.jwks(), algs=["ES256"])
        claims = json.loads(verified.claims)
        now = time.time()
        for claim in ("iss", "sub", "aud", "iat", "exp", "jti"):
            self.assertIn(claim, claims)
        self.assertLessEqual(claims["exp"] - claims["iat"], 300)
        self.assertLess(abs(claims["iat"] - now), 60)
        self.assertEqual(claims["sub"], user["accessor"])
        # The same JWKS at the well-known root path.
        r = requests.get(self.server.address + "/.well-known/jwks.json", verify=self.server.verify)
        self.assertEqual(r.status_code, 200)
        jwt.JWT(jwt=signed, key=jwk.JWKSet.from_json(r.text), algs=["ES256"])
        # Tampered payload fails verification.
        header, payload, sig = signed.split(".")
        tampered = header + "." + payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1] + "." + sig
        with self.assertRaises(Exception):
            jwt.JWT(jwt=tampered, key=self.jwks(), algs=["ES256"])
        # A token without access to the role cannot get one.
        with self.assertRaises(hvac.exceptions.Forbidden):
            self.server.client(token["client_token"]).secrets.identity.generate_signed_id_token("fn-id")

    def test_rotation_keeps_old_key_published(self):
        identity = self.root.secrets.identity
        identity.create_named_key("rot-key", algorithm="ES256", allowed_client_ids=["*"],
                                  verification_ttl="1h")
        identity.create_or_update_role("rot-id", key="rot-key", ttl="5m")
        before = self.root.secrets.identity.generate_signed_id_token("rot-id")["data"]["token"]
        status, _, _ = self.server.request("POST", "identity/oidc/key/rot-key/rotate", body={})
        self.assertIn(status, (200, 204))
        after = self.root.secrets.identity.generate_signed_id_token("rot-id")["data"]["token"]
        keys = self.jwks()
        jwt.JWT(jwt=before, key=keys, algs=["ES256"])
        jwt.JWT(jwt=after, key=keys, algs=["ES256"])
        self.assertNotEqual(kid_of(before), kid_of(after), "rotation signs with a new key")


if __name__ == "__main__":
    unittest.main()
