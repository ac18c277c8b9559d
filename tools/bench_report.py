#!/usr/bin/env python3
"""Turns the benchmark outputs into the Markdown tables of BENCHMARKS.md. Every figure is set next
to the ceiling measured in the same run: raw OpenSSL AES-256-GCM of the same size for the keyring,
raw batched SQLite inserts for the audit pipeline.

Usage: bench_report.py KEYRING_JSON AUDIT_JSON VERIFY_TXT
"""
import json
import re
import sys


def load(path):
    """Benchmark name -> (ns per iteration, items/s or None, counters)."""
    with open(path) as f:
        data = json.load(f)
    rows = {}
    for b in data["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        name = re.sub(r"_median$", "", b["name"])
        ns = b["real_time"] * {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b["time_unit"]]
        rows[name] = (ns, b.get("items_per_second"), b)
    return data["context"], rows


def keyring_table(rows):
    print("| operation | bytes | DEK cache | time/op | ops/s | ratio to raw AES-GCM |")
    print("|---|---|---|---|---|---|")
    for name, (ns, _, _) in rows.items():
        m = re.match(r"BM_(RawAesGcm|Keyring)(Encrypt|Decrypt)/(?:bytes:)?(\d+)(?:/cache:(\d))?$",
                     name)
        if not m:
            continue
        kind, op, size, cache = m.groups()
        ceiling = rows.get(f"BM_RawAesGcm{op}/{size}")
        ratio = f"{ns / ceiling[0]:.2f}x" if ceiling else "-"
        label = "raw AES-256-GCM" if kind == "RawAesGcm" else "keyring (audit off)"
        cache_txt = "-" if cache is None else ("on" if cache == "1" else "off")
        print(f"| {label} {op.lower()} | {size} | {cache_txt} | {ns / 1e3:.2f} µs | "
              f"{1e9 / ns:,.0f} | {ratio} |")
    print()
    print("| operation | threads | ops/s (audit record durable per op) |")
    print("|---|---|---|")
    for name, (ns, items, _) in rows.items():
        m = re.match(r"BM_AuditedKeyring(Encrypt|Decrypt)/(\d+)/real_time/threads:(\d+)", name)
        if m:
            print(f"| keyring {m.group(1).lower()} {m.group(2)} B | {m.group(3)} | {items:,.0f} |")
    for name, (ns, _, _) in rows.items():
        if name.startswith("BM_SoftHsm"):
            print(f"| raw SoftHSM2 {name[len('BM_SoftHsm'):]} (one C_Encrypt/C_Decrypt) | 1 | "
                  f"{1e9 / ns:,.0f} |")


def audit_table(rows):
    ceiling = next((items for name, (_, items, _) in rows.items()
                    if name.startswith("BM_RawSqliteBatched")), None)
    print("| audit appends (synchronous=FULL) | appends/s | avg batch | ratio to raw SQLite |")
    print("|---|---|---|---|")
    for name, (_, items, b) in rows.items():
        batch = b.get("avg_batch") or b.get("rows_per_tx") or 0
        ratio = f"{items / ceiling:.2f}" if ceiling else "-"
        label = name.replace("BM_AuditRecord", "AuditLog::Record").replace(
            "BM_RawSqliteBatched", "raw SQLite batched inserts")
        print(f"| {label} | {items:,.0f} | {batch:.0f} | {ratio} |")


def main(keyring_json, audit_json, verify_txt):
    ctx, keyring = load(keyring_json)
    print(f"Host: {ctx.get('num_cpus')} CPUs, {ctx.get('mhz_per_cpu')} MHz, "
          f"library build {ctx.get('library_build_type')}, {ctx.get('date')}\n")
    keyring_table(keyring)
    print()
    audit_table(load(audit_json)[1])
    print()
    with open(verify_txt) as f:
        for line in f:
            if "events/s" in line:
                print(f"- {line.strip()}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
