"""Starts a real lockboxd for the API integration tests and hands out clients.

Each test module starts its own server in dev mode on a temporary data dir and a free port chosen
by the kernel (--dev-listen-address 127.0.0.1:0); the server prints its address and root token,
then "lockboxd: ready". Clients are the real ones: python3-hvac, requests, curl.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import unittest

import hvac
import requests

LOCKBOXD = os.environ.get("LOCKBOXD", "build/bin/lockboxd")
LOCKBOX_AUDIT = os.environ.get("LOCKBOX_AUDIT", "build/bin/lockbox-audit")
START_TIMEOUT = 60


class Server:
    def __init__(self, tls=False, extra_args=(), data_dir=None):
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="lockbox-api-")
        args = [LOCKBOXD, "--dev", "--data-dir", self.data_dir,
                "--dev-listen-address", "127.0.0.1:0"]
        if tls:
            args.append("--dev-tls")
        args.extend(extra_args)
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.output = []
        self.address = None
        self.root_token = None
        self.ca_cert = None
        ready = threading.Event()

        def pump():
            for line in self.proc.stdout:
                self.output.append(line)
                key, _, value = line.strip().partition(": ")
                if key == "Api Address":
                    self.address = value.strip()
                elif key == "Root Token":
                    self.root_token = value.strip()
                elif key == "CA Cert":
                    self.ca_cert = value.strip()
                elif line.startswith("lockboxd: ready"):
                    ready.set()
            ready.set()

        self.pump = threading.Thread(target=pump, daemon=True)
        self.pump.start()
        if not ready.wait(START_TIMEOUT) or self.address is None or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError("lockboxd did not start:\n" + "".join(self.output))
        self.verify = self.ca_cert if tls else False
        self.db_path = os.path.join(self.data_dir, "lockbox.db")

    def client(self, token=None):
        return hvac.Client(url=self.address, token=token if token is not None else self.root_token,
                           verify=self.verify)

    def anonymous(self):
        return hvac.Client(url=self.address, token=None, verify=self.verify)

    def request(self, method, path, token=None, body=None, headers=None, raw_body=None):
        """A raw HTTP request: returns (status, parsed JSON or None, response)."""
        h = {"X-Vault-Token": token if token is not None else self.root_token}
        if token == "":
            h = {}
        if headers:
            h.update(headers)
        data = raw_body if raw_body is not None else (json.dumps(body) if body is not None else None)
        r = requests.request(method, self.address + "/v1/" + path.lstrip("/"), headers=h,
                             data=data, verify=self.verify, timeout=30)
        try:
            parsed = r.json() if r.content else None
        except ValueError:
            parsed = None
        return r.status_code, parsed, r

    def stop(self, sig=signal.SIGTERM):
        rc = None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                rc = self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait()
        else:
            rc = self.proc.returncode
        self.pump.join(5)
        return rc

    def cleanup(self):
        self.stop()
        if self.own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


class ServerTestCase(unittest.TestCase):
    """One server per test class."""
    tls = False

    @classmethod
    def setUpClass(cls):
        cls.server = Server(tls=cls.tls)
        cls.root = cls.server.client()

    @classmethod
    def tearDownClass(cls):
        cls.server.cleanup()

    def assertErrors(self, status, body, code, contains=None):
        self.assertEqual(status, code, body)
        self.assertIsInstance(body, dict, body)
        self.assertIn("errors", body)
        self.assertIsInstance(body["errors"], list)
        if contains is not None:
            self.assertTrue(any(contains in e for e in body["errors"]), body)

    def audit_events(self):
        """Every audit event so far, parsed, read from the database with the sqlite3 module."""
        import sqlite3
        con = sqlite3.connect("file:%s?mode=ro" % self.server.db_path, uri=True)
        try:
            rows = con.execute("SELECT body FROM audit_records WHERE kind = 'event' ORDER BY pos").fetchall()
        finally:
            con.close()
        return [json.loads(r[0]) for r in rows]
