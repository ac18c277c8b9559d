"""sys/* through python3-hvac and raw HTTP: health, seal status, mounts, auth methods, policies,
capabilities, internal UI mounts, audit-log endpoints, metrics, and the wire rules of the API."""
import json
import unittest

import hvac
import requests

from harness import ServerTestCase


class SysTest(ServerTestCase):
    def test_health_and_status_calls(self):
        health = self.root.sys.read_health_status(method="GET")
        self.assertTrue(health["initialized"])
        self.assertFalse(health["sealed"])
        self.assertIn("server_time_utc", health)
        head = self.root.sys.read_health_status(method="HEAD")
        self.assertEqual(head.status_code, 200)
        self.assertEqual(head.content, b"")
        status, _, _ = self.server.request("GET", "sys/health?activecode=299", token="")
        self.assertEqual(status, 299)
        self.assertTrue(self.root.sys.is_initialized())
        self.assertFalse(self.root.sys.is_sealed())
        seal = self.root.sys.read_seal_status()
        self.assertEqual(seal["type"], "shamir")
        # Terraform parses the version as semver.
        self.assertRegex(seal["version"], r"^\d+\.\d+\.\d+")
        leader = self.root.sys.read_leader_status()
        self.assertFalse(leader["ha_enabled"])

    def test_mount_lifecycle(self):
        mounts = self.root.sys.list_mounted_secrets_engines()
        self.assertIn("secret/", mounts["data"])
        self.assertIn("secret/", mounts, "sys/mounts data is also injected at the top level")
        self.assertEqual(mounts["data"]["secret/"]["options"], {"version": "2"})
        self.root.sys.enable_secrets_engine("transit", path="transit-sys")
        self.root.sys.enable_secrets_engine("kv", path="kvv2-sys", options={"version": 2})
        mounts = self.root.sys.list_mounted_secrets_engines()["data"]
        self.assertEqual(mounts["transit-sys/"]["type"], "transit")
        self.assertEqual(mounts["kvv2-sys/"]["options"], {"version": "2"})
        with self.assertRaises((hvac.exceptions.InvalidRequest, hvac.exceptions.UnexpectedError)):
            self.root.sys.enable_secrets_engine("transit", path="transit-sys")
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            self.root.sys.enable_secrets_engine("transit", path="transit-sys/nested")
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            self.root.sys.enable_secrets_engine("nosuchengine", path="nope")
        self.root.sys.tune_mount_configuration("kvv2-sys", default_lease_ttl="1h", max_lease_ttl="2h")
        tune = self.root.sys.read_mount_configuration("kvv2-sys")
        self.assertEqual(tune["data"]["default_lease_ttl"], 3600)
        self.assertEqual(tune["data"]["max_lease_ttl"], 7200)
        # Data written under a mount survives a remount and is purged when the mount goes.
        self.root.secrets.kv.v2.create_or_update_secret("a", {"v": "1"}, mount_point="kvv2-sys")
        self.root.sys.move_backend("kvv2-sys", "kvv2-moved")
        read = self.root.secrets.kv.v2.read_secret_version("a", mount_point="kvv2-moved")
        self.assertEqual(read["data"]["data"], {"v": "1"})
        self.root.sys.disable_secrets_engine("kvv2-moved")
        self.root.sys.enable_secrets_engine("kv", path="kvv2-moved", options={"version": 2})
        with self.assertRaises(hvac.exceptions.InvalidPath):
            self.root.secrets.kv.v2.read_secret_version("a", mount_point="kvv2-moved")
        self.root.sys.disable_secrets_engine("kvv2-moved")
        self.root.sys.disable_secrets_engine("transit-sys")
        self.root.sys.disable_secrets_engine("never-mounted")  # 204 as in Vault
        self.assertNotIn("transit-sys/", self.root.sys.list_mounted_secrets_engines()["data"])

    def test_auth_methods(self):
        methods = self.root.sys.list_auth_methods()
        self.assertIn("token/", methods["data"])
        self.root.sys.enable_auth_method("approle", path="approle-sys")
        self.assertIn("approle-sys/", self.root.sys.list_auth_methods())
        self.root.sys.disable_auth_method("approle-sys")
        self.assertNotIn("approle-sys/", self.root.sys.list_auth_methods()["data"])

    def test_policy_crud_hcl_and_json(self):
        hcl = 'path "secret/data/a/*" {\n  capabilities = ["read", "list"]\n}\n'
        self.root.sys.create_or_update_policy("reader-sys", hcl)
        self.assertEqual(self.root.sys.read_policy("reader-sys")["data"]["rules"], hcl)
        doc = {"path": {"transit/encrypt/k": {"capabilities": ["update"]}}}
        self.root.sys.create_or_update_policy("json-sys", doc)
        self.assertEqual(json.loads(self.root.sys.read_policy("json-sys")["data"]["rules"]), doc)
        names = self.root.sys.list_policies()["data"]["policies"]
        for name in ("root", "default", "reader-sys", "json-sys"):
            self.assertIn(name, names)
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            self.root.sys.create_or_update_policy("bad", 'path "x" { capabilities = ["fly"] }')
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            self.root.sys.delete_policy("default")
        self.root.sys.delete_policy("json-sys")
        with self.assertRaises(hvac.exceptions.InvalidPath):
            self.root.sys.read_policy("json-sys")
        # The CLI/Terraform flavour.
        status, _, _ = self.server.request("PUT", "sys/policies/acl/acl-sys", body={"policy": hcl})
        self.assertEqual(status, 204)
        status, body, _ = self.server.request("GET", "sys/policies/acl/acl-sys")
        self.assertEqual(body["data"]["policy"], hcl)
        status, body, _ = self.server.request("LIST", "sys/policies/acl")
        self.assertIn("acl-sys", body["data"]["keys"])
        self.assertNotIn("keys", body, "sys/policies/acl is not injected")

    def test_capabilities_and_internal_mounts(self):
        self.root.sys.create_or_update_policy(
            "caps-sys", 'path "secret/data/a/*" { capabilities = ["read"] }')
        token = self.root.auth.token.create(policies=["caps-sys"], ttl="10m")["auth"]["client_token"]
        limited = self.server.client(token)
        caps = limited.sys.get_capabilities(["secret/data/a/x", "secret/data/b"])
        self.assertEqual(caps["secret/data/a/x"], ["read"])
        self.assertEqual(caps["secret/data/b"], ["deny"])
        status, body, _ = self.server.request("GET", "sys/internal/ui/mounts/secret/foo", token=token)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["data"]["path"], "secret/")
        self.assertEqual(body["data"]["options"]["version"], "2")
        status, _, _ = self.server.request("GET", "sys/internal/ui/mounts/nomount/x", token=token)
        self.assertEqual(status, 403)

    def test_audit_log_endpoints(self):
        status, jwks, r = self.server.request("GET", "sys/audit-log/public-key", token="")
        self.assertEqual(status, 200)
        self.assertEqual(r.headers["Content-Type"], "application/json")
        self.assertEqual(jwks["keys"][0]["kty"], "EC")
        with open(self.server.data_dir + "/audit-public-key.jwk") as f:
            on_disk = json.load(f)
        self.assertEqual(jwks["keys"][0]["x"], on_disk["x"])
        status, head, _ = self.server.request("GET", "sys/audit-log/head")
        self.assertEqual(status, 200, head)
        self.assertGreater(head["data"]["seq"], 0)
        self.assertRegex(head["data"]["hash"], r"^[0-9a-f]{64}$")
        self.assertEqual(head["data"]["checkpoint"].count("."), 2)
        status, _, _ = self.server.request("GET", "sys/audit-log/head", token="")
        self.assertEqual(status, 403)

    def test_metrics(self):
        self.root.sys.read_health_status(method="GET")
        status, _, r = self.server.request("GET", "sys/metrics?format=prometheus")
        self.assertEqual(status, 200)
        text = r.text
        for series in ("lockbox_http_requests_total", "lockbox_http_request_duration_seconds_bucket",
                       "lockbox_hsm_call_duration_seconds", "lockbox_store_commit_batch",
                       "lockbox_store_commit_duration_seconds_bucket"):
            self.assertIn(series, text)

    def test_wire_rules(self):
        # LIST verb, ?list=true, and a bad list value.
        self.root.secrets.kv.v2.create_or_update_secret("wire/x", {"a": "b"})
        status, body, _ = self.server.request("LIST", "secret/metadata/wire")
        self.assertEqual((status, body["data"]["keys"]), (200, ["x"]))
        status, body, _ = self.server.request("GET", "secret/metadata/wire?list=true")
        self.assertEqual((status, body["data"]["keys"]), (200, ["x"]))
        status, body, _ = self.server.request("GET", "secret/metadata/wire?list=maybe")
        self.assertErrors(status, body, 400)
        # Errors: JSON, the exact content type, no stack traces; request ids echoed.
        status, body, r = self.server.request("GET", "nosuchmount/x")
        self.assertErrors(status, body, 404, "no handler for route")
        self.assertEqual(r.headers["Content-Type"], "application/json")
        status, body, r = self.server.request("GET", "sys/mounts", headers={"X-Request-Id": "req-123"})
        self.assertEqual(r.headers.get("X-Request-Id"), "req-123")
        self.assertEqual(body["request_id"], "req-123")
        status, body, _ = self.server.request("POST", "sys/policy/x", raw_body="{not json")
        self.assertErrors(status, body, 400)
        status, body, _ = self.server.request("POST", "sys/policy/x", raw_body="[1,2]")
        self.assertErrors(status, body, 400)
        status, body, _ = self.server.request("BREW", "sys/mounts")
        self.assertErrors(status, body, 405)
        status, body, _ = self.server.request("GET", "sys/mounts", token="lbx.not-a-token")
        self.assertErrors(status, body, 403, "permission denied")
        status, body, _ = self.server.request("GET", "sys/mounts", token="")
        self.assertErrors(status, body, 403)
        status, body, _ = self.server.request("GET", "sys/mounts", headers={"X-Vault-Wrap-TTL": "60s"})
        self.assertErrors(status, body, 400, "wrapping")
        # Bearer tokens work too.
        r = requests.get(self.server.address + "/v1/sys/mounts", verify=self.server.verify,
                         headers={"Authorization": "Bearer " + self.server.root_token})
        self.assertEqual(r.status_code, 200)
        # Nothing of the malformed requests changed the policy list.
        self.assertNotIn("x", self.root.sys.list_policies()["data"]["policies"])

    def test_limits(self):
        status, body, _ = self.server.request("POST", "secret/data/big",
                                              raw_body='{"data":{"v":"' + "a" * (2 << 20) + '"}}')
        self.assertEqual(status, 413)
        with self.assertRaises(hvac.exceptions.InvalidPath):
            self.root.secrets.kv.v2.read_secret_version("big")

    def test_every_request_is_audited_with_denials(self):
        self.root.sys.create_or_update_policy("none-sys", 'path "secret/data/b" { capabilities = ["read"] }')
        token = self.root.auth.token.create(policies=["none-sys"], ttl="10m")["auth"]
        status, _, _ = self.server.request("GET", "secret/data/a/secret1", token=token["client_token"])
        self.assertEqual(status, 403)
        events = self.audit_events()
        denied = [e for e in events if e.get("outcome") == "denied" and e.get("path") == "secret/data/a/secret1"]
        self.assertTrue(denied, "the denial is in the audit log")
        self.assertEqual(denied[-1]["actor"], token["accessor"])
        text = json.dumps(events)
        self.assertNotIn(token["client_token"], text)
        self.assertNotIn(self.server.root_token, text)


if __name__ == "__main__":
    unittest.main()
