#!/usr/bin/env python3
"""Turns keyring_bench's JSON into the Markdown table of BENCHMARKS.md, with each keyring figure
divided by the raw AES-256-GCM ceiling of the same size measured in the same run."""
import json
import re
import sys


def main(path):
    with open(path) as f:
        data = json.load(f)
    rows = {}
    for b in data["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        name = re.sub(r"_median$", "", b["name"])
        ns = b["real_time"] * {"ns": 1, "us": 1e3, "ms": 1e6}[b["time_unit"]]
        rows[name] = ns

    def raw(op, size):
        return rows.get(f"BM_RawAesGcm{op}/{size}")

    ctx = data["context"]
    print(f"Host: {ctx.get('num_cpus')} CPUs at {ctx.get('mhz_per_cpu')} MHz, "
          f"build {ctx.get('library_build_type')}, {ctx.get('date')}\n")
    print("| operation | bytes | DEK cache | time/op | ops/s | ratio to raw AES-GCM |")
    print("|---|---|---|---|---|---|")
    for name, ns in rows.items():
        m = re.match(r"BM_(RawAesGcm|Keyring)(Encrypt|Decrypt)/(?:bytes:)?(\d+)(?:/cache:(\d))?", name)
        if m:
            kind, op, size, cache = m.groups()
            ceiling = raw(op, size)
            ratio = f"{ns / ceiling:.2f}x" if ceiling else "-"
            label = "raw AES-256-GCM" if kind == "RawAesGcm" else "keyring"
            cache_txt = "-" if cache is None else ("on" if cache == "1" else "off")
            print(f"| {label} {op.lower()} | {size} | {cache_txt} | {ns / 1e3:.2f} µs | "
                  f"{1e9 / ns:,.0f} | {ratio} |")
        else:
            print(f"| {name[3:]} | 32 | - | {ns / 1e3:.2f} µs | {1e9 / ns:,.0f} | - |")


if __name__ == "__main__":
    main(sys.argv[1])
