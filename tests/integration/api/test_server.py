"""The server as operators run it: TLS (dev certificates), lockboxd --config on an empty data dir
(uninitialized until sys/init), graceful shutdown, and the audit log verified offline."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import unittest

import hvac
import requests

from harness import LOCKBOX_AUDIT, LOCKBOXD, ServerTestCase


def curl(*args):
    return subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", *args],
                          capture_output=True, text=True, timeout=30)


class TlsTest(ServerTestCase):
    tls = True

    def test_hvac_over_tls(self):
        self.assertTrue(self.server.address.startswith("https://"))
        self.assertTrue(self.root.sys.is_initialized())
        self.root.secrets.kv.v2.create_or_update_secret("tls", {"v": "1"})
        self.assertEqual(self.root.secrets.kv.v2.read_secret_version("tls")["data"]["data"], {"v": "1"})

    def test_protocol_versions(self):
        url = self.server.address + "/v1/sys/health"
        ca = self.server.ca_cert
        self.assertEqual(curl("--cacert", ca, "--tlsv1.2", "--tls-max", "1.2", url).stdout, "200")
        self.assertEqual(curl("--cacert", ca, "--tlsv1.3", url).stdout, "200")
        old = curl("--cacert", ca, "--tlsv1.1", "--tls-max", "1.1", url)
        self.assertNotEqual(old.returncode, 0, "TLS 1.1 must be refused")
        self.assertEqual(old.stdout, "000")
        # An untrusted client (no CA) fails the handshake; a client certificate is ignored.
        self.assertNotEqual(curl(url).returncode, 0)
        tls_dir = os.path.join(self.server.data_dir, "tls")
        self.assertEqual(curl("--cacert", ca, "--cert", os.path.join(tls_dir, "server.pem"),
                              "--key", os.path.join(tls_dir, "server-key.pem"), url).stdout, "200")

    def test_plain_http_to_tls_port_fails(self):
        plain = self.server.address.replace("https://", "http://")
        with self.assertRaises(requests.exceptions.RequestException):
            r = requests.get(plain + "/v1/sys/health", timeout=5)
            if r.status_code == 200:
                raise AssertionError("plain HTTP answered on the TLS port")
            raise requests.exceptions.ConnectionError("refused as expected")


class ConfigModeTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="lockbox-config-")
        self.config = os.path.join(self.dir, "lockbox.json")
        with open(self.config, "w") as f:
            json.dump({"listener": {"address": "127.0.0.1:0", "tls_disable": True},
                       "storage": {"path": os.path.join(self.dir, "data")},
                       "default_lease_ttl": "1h", "max_lease_ttl": "24h"}, f)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def _start(self):
        proc = subprocess.Popen([LOCKBOXD, "--config", self.config], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        address = None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Api Address: "):
                address = line.split(": ", 1)[1].strip()
            if line.startswith("lockboxd: ready"):
                break
        self.assertIsNotNone(address, "".join(lines))
        return proc, address

    def test_uninitialized_until_init_then_usable_and_clean_shutdown(self):
        proc, address = self._start()
        try:
            r = requests.get(address + "/v1/sys/health")
            self.assertEqual(r.status_code, 501)
            self.assertFalse(r.json()["initialized"])
            r = requests.get(address + "/v1/sys/mounts", headers={"X-Vault-Token": "x"})
            self.assertEqual(r.status_code, 503)
            self.assertIn("errors", r.json())
            client = hvac.Client(url=address)
            self.assertFalse(client.sys.is_initialized())
            result = client.sys.initialize(secret_shares=1, secret_threshold=1)
            self.assertTrue(result["root_token"])
            self.assertEqual(len(result["keys"]), 1)
            with self.assertRaises(hvac.exceptions.InvalidRequest):
                client.sys.initialize(secret_shares=1, secret_threshold=1)
            client.token = result["root_token"]
            self.assertTrue(client.sys.is_initialized())
            self.assertNotIn("secret/", client.sys.list_mounted_secrets_engines()["data"])
            client.sys.enable_secrets_engine("kv", path="kv", options={"version": 2})
            client.secrets.kv.v2.create_or_update_secret("x", {"v": "1"}, mount_point="kv")
            # sys/seal refuses everything until unsealed with the init key.
            client.sys.seal()
            self.assertTrue(client.sys.is_sealed())
            r = requests.get(address + "/v1/kv/data/x", headers={"X-Vault-Token": result["root_token"]})
            self.assertEqual(r.status_code, 503)
            client.sys.submit_unseal_key(result["keys"][0])
            self.assertFalse(client.sys.is_sealed())
            self.assertEqual(client.secrets.kv.v2.read_secret_version("x", mount_point="kv")["data"]["data"],
                             {"v": "1"})
        finally:
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(60)
        self.assertEqual(rc, 0)
        # The restarted server is initialized and keeps its data.
        proc, address = self._start()
        try:
            client = hvac.Client(url=address, token=result["root_token"])
            self.assertEqual(client.secrets.kv.v2.read_secret_version("x", mount_point="kv")["data"]["data"],
                             {"v": "1"})
        finally:
            proc.send_signal(signal.SIGINT)
            self.assertEqual(proc.wait(60), 0)
        data = os.path.join(self.dir, "data")
        verify = subprocess.run([LOCKBOX_AUDIT, "verify", "--db", os.path.join(data, "lockbox.db"),
                                 "--public-key", os.path.join(data, "audit-public-key.pem")],
                                capture_output=True, text=True)
        self.assertEqual(verify.returncode, 0, verify.stdout + verify.stderr)


if __name__ == "__main__":
    unittest.main()
