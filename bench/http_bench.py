#!/usr/bin/python3
"""HTTP benchmarks with wrk over loopback, with nginx's static JSON response as the ceiling
measured in the same run, plain HTTP and TLS (keep-alive).

Usage: bench/http_bench.py LOCKBOXD [--duration 10] [--connections 64] [--threads 2]
                           [--only NAME-SUBSTRING] [--transport both|plain|tls]
Prints a Markdown table for BENCHMARKS.md: requests/s, p50, p99, and the ratio to nginx.

Every lockboxd request here is a real one: token authenticated, ACL checked, and audited durably
(synchronous=FULL) before the response.
"""
import argparse
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import ssl

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Lockboxd:
    def __init__(self, binary, tls):
        self.dir = tempfile.mkdtemp(prefix="lockbox-bench-")
        args = [binary, "--dev", "--data-dir", self.dir, "--dev-listen-address", "127.0.0.1:0"]
        if tls:
            args.append("--dev-tls")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.address = self.token = self.ca = None
        for line in self.proc.stdout:
            key, _, value = line.strip().partition(": ")
            if key == "Api Address":
                self.address = value
            elif key == "Root Token":
                self.token = value
            elif key == "CA Cert":
                self.ca = value
            if line.startswith("lockboxd: ready"):
                break
        if self.address is None:
            raise RuntimeError("lockboxd did not start")
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        self.ctx = ssl.create_default_context(cafile=self.ca) if tls else None

    def call(self, method, path, body=None):
        req = urllib.request.Request(self.address + "/v1/" + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"X-Vault-Token": self.token})
        with urllib.request.urlopen(req, context=self.ctx) as r:
            text = r.read()
            return json.loads(text) if text else None

    def metrics(self):
        """The request latency histograms (by route) and the store's commit duration histogram,
        each as {upper bound: cumulative count}, from sys/metrics."""
        req = urllib.request.Request(self.address + "/v1/sys/metrics?format=prometheus",
                                     headers={"X-Vault-Token": self.token})
        with urllib.request.urlopen(req, context=self.ctx) as r:
            text = r.read().decode()
        routes = {}
        for route, le, n in re.findall(
                r'^lockbox_http_request_duration_seconds_bucket\{route="([^"]+)",le="([^"]+)"\} (\d+)',
                text, re.M):
            routes.setdefault(route, {})[float(le)] = int(n)
        commits = {float(le): int(n) for le, n in re.findall(
            r'^lockbox_store_commit_duration_seconds_bucket\{le="([^"]+)"\} (\d+)', text, re.M)}
        return routes, commits

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class Nginx:
    def __init__(self, cert, key):
        self.dir = tempfile.mkdtemp(prefix="nginx-bench-")
        self.plain_port, self.tls_port = free_port(), free_port()
        self.body = json.dumps({"initialized": True, "sealed": False, "standby": False,
                       "performance_standby": False, "replication_performance_mode": "disabled",
                       "replication_dr_mode": "disabled", "server_time_utc": 1700000000,
                       "version": "1.15.0", "cluster_name": "lockbox", "cluster_id": "x" * 36},
                               separators=(",", ":"))
        conf = f"""
worker_processes 2;
daemon off;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{self.plain_port};
    listen 127.0.0.1:{self.tls_port} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    root {self.dir};
    location / {{ default_type application/json; return 200 '{self.body}'; }}
  }}
}}
"""
        with open(os.path.join(self.dir, "nginx.conf"), "w") as f:
            f.write(conf)
        self.proc = subprocess.Popen(["nginx", "-c", os.path.join(self.dir, "nginx.conf"),
                                      "-p", self.dir, "-e", os.path.join(self.dir, "error.log")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_listening(self.plain_port)

    @staticmethod
    def _wait_listening(port):
        import socket
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not start")

    def stop(self):
        self.proc.send_signal(signal.SIGQUIT)
        self.proc.wait(30)
        shutil.rmtree(self.dir, ignore_errors=True)


def wrk(url, args, token=None, method="GET", body=None, spread_keys=False):
    lua = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    lines = [f'wrk.method = "{method}"']
    if token:
        lines.append(f'wrk.headers["X-Vault-Token"] = "{token}"')
    if body is not None:
        lines.append('wrk.headers["Content-Type"] = "application/json"')
        lines.append("wrk.body = [[" + json.dumps(body) + "]]")
    if spread_keys:
        # Each request writes one of 10,000 keys: concurrent writers of one hot key take turns.
        path = "/" + url.split("/", 3)[3]
        lines.append('request = function() return wrk.format(nil, "%s-" .. math.random(1, 10000)) end'
                     % path)
    lua.write("\n".join(lines) + "\n")
    lua.close()
    cmd = ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{args.duration}s",
           "--latency", "-s", lua.name, url]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    os.unlink(lua.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(non2xx.group(1)) if non2xx else 0

    def pct(p):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return {"rps": rps, "p50": pct(50), "p99": pct(99), "errors": errors}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lockboxd")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default="", help="run only the cases whose name contains this")
    ap.add_argument("--transport", choices=("both", "plain", "tls"), default="both")
    args = ap.parse_args()

    rows = []
    for tls in (False, True):
        if args.transport != "both" and tls != (args.transport == "tls"):
            continue
        server = Lockboxd(args.lockboxd, tls)
        try:
            nginx = Nginx(os.path.join(server.dir, "tls", "server.pem") if tls else _dummy_cert(),
                          os.path.join(server.dir, "tls", "server-key.pem") if tls else _dummy_key())
        except Exception:
            server.stop()
            raise
        try:
            scheme = "https" if tls else "http"
            nginx_port = nginx.tls_port if tls else nginx.plain_port
            ceiling = wrk(f"{scheme}://127.0.0.1:{nginx_port}/v1/sys/health", args)
            rows.append(("nginx static JSON (ceiling)", tls, ceiling, ceiling["rps"]))
            base = server.address + "/v1/"
            server.call("POST", "secret/data/bench", {"data": {"value": "x" * 200}})
            server.call("POST", "sys/mounts/transit", {"type": "transit"})
            server.call("POST", "transit/keys/bench", {})
            pt = base64.b64encode(os.urandom(256)).decode()
            ct = server.call("POST", "transit/encrypt/bench", {"plaintext": pt})["data"]["ciphertext"]
            cases = [
                ("GET sys/health", dict(url=base + "sys/health")),
                ("GET auth/token/lookup-self", dict(url=base + "auth/token/lookup-self", token=server.token)),
                ("KV v2 read (200 B, warm)", dict(url=base + "secret/data/bench", token=server.token)),
                ("KV v2 write (200 B, 10k keys)", dict(url=base + "secret/data/bench-w", token=server.token,
                                                       method="POST", body={"data": {"value": "y" * 200}},
                                                       spread_keys=True)),
                ("transit encrypt 256 B", dict(url=base + "transit/encrypt/bench", token=server.token,
                                               method="POST", body={"plaintext": pt})),
                ("transit decrypt 256 B", dict(url=base + "transit/decrypt/bench", token=server.token,
                                               method="POST", body={"ciphertext": ct})),
            ]
            for name, kw in cases:
                if args.only not in name:
                    continue
                url = kw.pop("url")
                before = server.metrics()
                result = wrk(url, args, **kw)
                result.update(server_side(before, server.metrics()))
                rows.append((name, tls, result, ceiling["rps"]))
        finally:
            nginx.stop()
            server.stop()

    print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency, keep-alive, loopback; "
          "every lockboxd request authenticated, ACL-checked and audited durably.\n")
    print("wrk's percentiles are corrected for coordinated omission (a response late by many request "
          "intervals also counts the requests an open-loop client would have sent meanwhile). "
          "Server p99: lockboxd's own histogram (parse to response, not corrected), as the bucket "
          "bound it falls under. Commits > 10 ms: COMMITs (WAL write + sync) that took longer, "
          "of all in the case; every request waiting on one waits that long.\n")
    print("| request | transport | req/s | p50 ms | p99 ms | non-2xx | ratio to nginx "
          "| server p99 ms | commits > 10 ms |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, tls, r, ceiling in rows:
        server = (f"≤ {r['server_p99'] * 1000:g} | {r['slow_commits']} of {r['commits']:,}"
                  if "server_p99" in r else "| ")
        print(f"| {name} | {'TLS' if tls else 'plain'} | {r['rps']:,.0f} | {r['p50']:.2f} | "
              f"{r['p99']:.2f} | {r['errors']} | {r['rps'] / ceiling:.2f} | {server} |")


def server_side(before, after):
    """The busiest route's p99 (as a bucket bound) and the slow commits between two snapshots."""
    (routes0, commits0), (routes1, commits1) = before, after

    def delta(h1, h0):
        return {le: n - h0.get(le, 0) for le, n in h1.items()}

    counts = {route: delta(h, routes0.get(route, {})) for route, h in routes1.items()}
    busiest = max(counts.values(), key=lambda h: h.get(float("inf"), 0))
    total = busiest[float("inf")]
    p99 = min(le for le, n in busiest.items() if n >= 0.99 * total)
    commits = delta(commits1, commits0)
    return {"server_p99": p99, "commits": commits[float("inf")],
            "slow_commits": commits[float("inf")] - commits[0.01]}


_tmp_tls = None


def _dummy_pair():
    """nginx needs a certificate even for the plain run's unused TLS listener."""
    global _tmp_tls
    if _tmp_tls is None:
        d = tempfile.mkdtemp(prefix="nginx-cert-")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", d + "/key.pem", "-out", d + "/cert.pem", "-days", "1",
                        "-subj", "/CN=localhost"], check=True, capture_output=True)
        _tmp_tls = d
    return _tmp_tls


def _dummy_cert():
    return _dummy_pair() + "/cert.pem"


def _dummy_key():
    return _dummy_pair() + "/key.pem"


if __name__ == "__main__":
    sys.exit(main())
