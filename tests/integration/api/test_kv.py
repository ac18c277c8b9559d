"""KV v2 and v1 through python3-hvac and raw HTTP, plus the at-rest and concurrency guarantees:
no plaintext in the SQLite file or its WAL, swapped ciphertext rows fail to read, and concurrent
check-and-set writers lose no update."""
import json
import sqlite3
import threading
import unittest
import uuid

import hvac

from harness import ServerTestCase


class KvV2Test(ServerTestCase):
    def kv(self):
        return self.root.secrets.kv.v2

    def test_write_read_versions_and_metadata(self):
        kv = self.kv()
        self.assertEqual(kv.create_or_update_secret("app/db", {"user": "u", "n": 1})["data"]["version"], 1)
        kv.create_or_update_secret("app/db", {"user": "u2"}, cas=1)
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            kv.create_or_update_secret("app/db", {"user": "u3"}, cas=1)
        latest = kv.read_secret_version("app/db")["data"]
        self.assertEqual(latest["data"], {"user": "u2"})
        self.assertEqual(latest["metadata"]["version"], 2)
        self.assertRegex(latest["metadata"]["created_time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
        self.assertEqual(latest["metadata"]["deletion_time"], "")
        self.assertFalse(latest["metadata"]["destroyed"])
        self.assertEqual(kv.read_secret_version("app/db", version=1)["data"]["data"], {"user": "u", "n": 1})
        meta = kv.read_secret_metadata("app/db")["data"]
        self.assertEqual(meta["current_version"], 2)
        self.assertEqual(sorted(meta["versions"]), ["1", "2"])
        self.assertEqual(meta["delete_version_after"], "0s")
        self.assertEqual(kv.list_secrets("app")["data"]["keys"], ["db"])
        self.assertIn("app/", kv.list_secrets("")["data"]["keys"])

    def test_delete_undelete_destroy(self):
        kv = self.kv()
        kv.create_or_update_secret("life", {"v": "1"})
        kv.create_or_update_secret("life", {"v": "2"})
        kv.delete_latest_version_of_secret("life")
        status, body, _ = self.server.request("GET", "secret/data/life")
        self.assertEqual(status, 404)
        self.assertNotIn("errors", body, "a deleted version answers with the raw envelope")
        self.assertIsNone(body["data"]["data"])
        self.assertNotEqual(body["data"]["metadata"]["deletion_time"], "")
        kv.undelete_secret_versions("life", [2])
        self.assertEqual(kv.read_secret_version("life")["data"]["data"], {"v": "2"})
        kv.destroy_secret_versions("life", [1])
        status, body, _ = self.server.request("GET", "secret/data/life?version=1")
        self.assertEqual(status, 404)
        self.assertTrue(body["data"]["metadata"]["destroyed"])
        kv.undelete_secret_versions("life", [1])
        status, _, _ = self.server.request("GET", "secret/data/life?version=1")
        self.assertEqual(status, 404, "undelete cannot revive a destroyed version")
        kv.delete_metadata_and_all_versions("life")
        with self.assertRaises(hvac.exceptions.InvalidPath):
            kv.read_secret_metadata("life")

    def test_config_max_versions_and_cas_required(self):
        self.root.sys.enable_secrets_engine("kv", path="kvcfg", options={"version": 2})
        kv = self.root.secrets.kv.v2
        kv.configure(max_versions=2, cas_required=False, mount_point="kvcfg")
        config = kv.read_configuration(mount_point="kvcfg")["data"]
        self.assertEqual(config["max_versions"], 2)
        for i in range(4):
            kv.create_or_update_secret("k", {"i": i}, mount_point="kvcfg")
        meta = kv.read_secret_metadata("k", mount_point="kvcfg")["data"]
        self.assertEqual(sorted(meta["versions"]), ["3", "4"])
        self.assertEqual(meta["oldest_version"], 3)
        kv.update_metadata("k", cas_required=True, mount_point="kvcfg")
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            kv.create_or_update_secret("k", {"i": 9}, mount_point="kvcfg")
        kv.create_or_update_secret("k", {"i": 9}, cas=4, mount_point="kvcfg")
        status, body, _ = self.server.request(
            "POST", "kvcfg/metadata/k", body={"delete_version_after": "1h30m",
                                              "custom_metadata": {"owner": "team-a"}})
        self.assertEqual(status, 204, body)
        meta = kv.read_secret_metadata("k", mount_point="kvcfg")["data"]
        self.assertEqual(meta["delete_version_after"], "1h30m0s")
        self.assertEqual(meta["custom_metadata"], {"owner": "team-a"})

    def test_patch(self):
        kv = self.kv()
        kv.create_or_update_secret("patchme", {"a": "1", "b": "2"})
        status, body, _ = self.server.request(
            "PATCH", "secret/data/patchme", body={"data": {"b": None, "c": "3"}},
            headers={"Content-Type": "application/merge-patch+json"})
        self.assertEqual(status, 200, body)
        self.assertEqual(kv.read_secret_version("patchme")["data"]["data"], {"a": "1", "c": "3"})
        status, _, _ = self.server.request("PATCH", "secret/data/patchme", body={"data": {"x": "y"}},
                                           headers={"Content-Type": "application/json"})
        self.assertEqual(status, 415)

    def test_malformed_requests_change_nothing(self):
        kv = self.kv()
        kv.create_or_update_secret("stable", {"v": "1"})
        for body in ({"data": "not-an-object"}, {}, {"data": {"v": "2"}, "options": {"cas": "x"}}):
            status, resp, _ = self.server.request("POST", "secret/data/stable", body=body)
            self.assertErrors(status, resp, 400)
        status, resp, _ = self.server.request("GET", "secret/data/stable?version=abc")
        self.assertErrors(status, resp, 400)
        self.assertEqual(kv.read_secret_metadata("stable")["data"]["current_version"], 1)
        status, resp, _ = self.server.request("GET", "secret/nosuchpath/x")
        self.assertEqual(status, 404)

    def test_no_plaintext_at_rest_and_reads_audited(self):
        marker = "lbx-marker-" + uuid.uuid4().hex
        self.kv().create_or_update_secret("rest/probe", {"value": marker})
        self.assertEqual(self.kv().read_secret_version("rest/probe")["data"]["data"]["value"], marker)
        for suffix in ("", "-wal"):
            try:
                with open(self.server.db_path + suffix, "rb") as f:
                    self.assertNotIn(marker.encode(), f.read(), "plaintext in lockbox.db" + suffix)
            except FileNotFoundError:
                pass
        events = self.audit_events()
        reads = [e for e in events if e.get("path") == "secret/data/rest/probe" and "read" in e.get("op", "")]
        self.assertTrue(reads, "the read is audited")
        self.assertNotIn(marker, json.dumps(events))

    def test_swapped_rows_fail_to_read(self):
        kv = self.kv()
        kv.create_or_update_secret("swap/a", {"v": "a"})
        kv.create_or_update_secret("swap/b", {"v": "b"})
        con = sqlite3.connect(self.server.db_path, timeout=30)
        try:
            tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            table = next(t for t in tables if t.startswith("kv") and "version" in t)
            cols = [r[1] for r in con.execute("PRAGMA table_info(%s)" % table)]
            path_col = next(c for c in cols if c in ("path", "key"))
            blob_col = next(c for c in cols if c in ("ciphertext", "value", "data", "sealed"))
            a = con.execute("SELECT %s FROM %s WHERE %s LIKE '%%swap/a'" % (blob_col, table, path_col)).fetchone()[0]
            b = con.execute("SELECT %s FROM %s WHERE %s LIKE '%%swap/b'" % (blob_col, table, path_col)).fetchone()[0]
            con.execute("UPDATE %s SET %s = ? WHERE %s LIKE '%%swap/a'" % (table, blob_col, path_col), (b,))
            con.execute("UPDATE %s SET %s = ? WHERE %s LIKE '%%swap/b'" % (table, blob_col, path_col), (a,))
            con.commit()
        finally:
            con.close()
        # Restart so no cache can answer, then both reads must fail rather than leak.
        self.server.stop()
        from harness import Server
        type(self).server = Server(data_dir=self.server.data_dir)
        type(self).root = self.server.client()
        for path in ("swap/a", "swap/b"):
            status, body, _ = self.server.request("GET", "secret/data/" + path)
            self.assertGreaterEqual(status, 400, body)
            self.assertNotIn('"v"', json.dumps(body or {}))

    def test_concurrent_cas_writers_lose_nothing(self):
        kv = self.kv()
        kv.create_or_update_secret("race", {"writer": "init"})
        wins = []
        lock = threading.Lock()

        def writer(n):
            client = self.server.client()
            for i in range(15):
                while True:
                    current = client.secrets.kv.v2.read_secret_metadata("race")["data"]["current_version"]
                    try:
                        v = client.secrets.kv.v2.create_or_update_secret(
                            "race", {"writer": n, "i": i}, cas=current)["data"]["version"]
                    except hvac.exceptions.InvalidRequest:
                        continue
                    with lock:
                        wins.append((v, n, i))
                    break

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        versions = sorted(v for v, _, _ in wins)
        self.assertEqual(versions, list(range(2, 2 + 8 * 15)), "every cas win is its own version")
        meta = kv.read_secret_metadata("race")["data"]
        self.assertEqual(meta["current_version"], 1 + 8 * 15)
        for v, n, i in wins[-5:]:
            status, body, _ = self.server.request("GET", "secret/data/race?version=%d" % v)
            if status == 200:
                self.assertEqual(body["data"]["data"], {"writer": n, "i": i})


class KvV1Test(ServerTestCase):
    def test_v1_basics(self):
        self.root.sys.enable_secrets_engine("kv", path="kv1")
        self.root.sys.enable_secrets_engine("generic", path="gen")
        kv1 = self.root.secrets.kv.v1
        kv1.create_or_update_secret("a/b", {"x": "1"}, mount_point="kv1")
        self.assertEqual(kv1.read_secret("a/b", mount_point="kv1")["data"], {"x": "1"})
        self.assertEqual(kv1.list_secrets("a", mount_point="kv1")["data"]["keys"], ["b"])
        kv1.delete_secret("a/b", mount_point="kv1")
        with self.assertRaises(hvac.exceptions.InvalidPath):
            kv1.read_secret("a/b", mount_point="kv1")
        with self.assertRaises(hvac.exceptions.InvalidPath):
            kv1.list_secrets("a", mount_point="kv1")
        kv1.create_or_update_secret("g", {"y": "2"}, mount_point="gen")
        self.assertEqual(kv1.read_secret("g", mount_point="gen")["data"], {"y": "2"})
        mounts = self.root.sys.list_mounted_secrets_engines()["data"]
        self.assertEqual(mounts["gen/"]["type"], "kv")


if __name__ == "__main__":
    unittest.main()
