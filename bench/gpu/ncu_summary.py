#!/usr/bin/env python3
"""Sums Nsight Compute's per-kernel durations by kernel name.

Reads the CSV of `ncu --csv --metrics gpu__time_duration.sum ...` (one row
per kernel launch) and prints JSON: the total GPU time, and for the kernels
that take the most of it, the launch count, total and mean time, and share.
nsys is not on the device image; ncu with --cache-control none and
--clock-control none, one metric, is the per-kernel timer that is.
Usage: ncu_summary.py FILE.csv [--top N] [--divide K]   (K: e.g. steps run)
"""
import argparse
import csv
import io
import json
import re
import sys


def short_name(name: str) -> str:
    # "void ns::Kernel<bf16, 64>(args...)" -> "ns::Kernel<bf16, 64>"
    name = re.sub(r"^void ", "", name)
    depth = 0
    for i, ch in enumerate(name):
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "(" and depth == 0:
            return name[:i]
    return name


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("csv_file")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--divide", type=float, default=1.0)
    args = ap.parse_args()
    text = open(args.csv_file, encoding="utf-8", errors="replace").read()
    # ncu prints its own log lines ("==PROF==") before the CSV header.
    start = text.find('"ID"')
    if start < 0:
        print(json.dumps({"error": "no ncu CSV header in " + args.csv_file}))
        return 1
    totals = {}
    for row in csv.DictReader(io.StringIO(text[start:])):
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        value = float(row["Metric Value"].replace(",", ""))
        unit = row.get("Metric Unit", "ns")
        ns = value * {"ns": 1.0, "nsecond": 1.0, "us": 1e3, "usecond": 1e3, "ms": 1e6, "msecond": 1e6}.get(unit, 1.0)
        entry = totals.setdefault(short_name(row["Kernel Name"]), [0, 0.0])
        entry[0] += 1
        entry[1] += ns
    grand = sum(t for _, t in totals.values())
    ranked = sorted(totals.items(), key=lambda kv: -kv[1][1])
    out = {
        "total_ms": grand / 1e6 / args.divide,
        "launches": sum(c for c, _ in totals.values()) / args.divide,
        "kernels": [
            {"name": name[:160], "count": count / args.divide, "total_ms": ns / 1e6 / args.divide,
             "mean_us": ns / 1e3 / count, "share": ns / grand if grand else 0.0}
            for name, (count, ns) in ranked[: args.top]
        ],
    }
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
