#!/usr/bin/env python3
"""Bandwidth vs size of the mask kernels next to memcpy, from sparsity_bench JSON output.

    sparsity_bench --benchmark_filter='BM_Memcpy|Mask<f32' --benchmark_format=json \
                   --benchmark_out=bench/results/mask_kernels.json
    python3 bench/plot_bandwidth.py bench/results/mask_kernels.json -o bench/results/mask_kernels.png
"""
import argparse
import json
import re
import statistics
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

NAME = re.compile(r"^(BM_\w+)(?:<([^>]*)>)?/(\d+)")


def load(path):
    """{(family, params): {n: median bytes/s}} over the repetitions of each benchmark, and the same
    for the real time in ms."""
    with open(path) as f:
        data = json.load(f)
    runs = defaultdict(list)
    times = defaultdict(list)
    for b in data["benchmarks"]:
        if b.get("run_type") == "aggregate" or b.get("error_occurred"):
            continue
        m = NAME.match(b["name"])
        if not m or "bytes_per_second" not in b:
            continue
        family, params, n = m.group(1), m.group(2) or "", int(m.group(3))
        runs[(family, params, n)].append(b["bytes_per_second"])
        scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b.get("time_unit", "ns")]
        times[(family, params, n)].append(b["real_time"] * scale)
    out = defaultdict(dict)
    ms = defaultdict(dict)
    for (family, params, n), values in runs.items():
        out[(family, params)][n] = statistics.median(values)
        ms[(family, params)][n] = statistics.median(times[(family, params, n)])
    return out, ms, data.get("context", {})


def print_table(series, ms, n):
    base = series.get(("BM_Memcpy", ""), {}).get(n)
    print(f"| kernel | GB/s | ms | vs memcpy |\n|---|---:|---:|---:|")
    rows = sorted(((fam, params), pts[n]) for (fam, params), pts in series.items() if n in pts)
    for (fam, params), bps in rows:
        name = f"{fam}<{params}>" if params else fam
        ratio = f"{bps / base:.2f}x" if base else "-"
        print(f"| `{name}` | {bps / 1e9:.1f} | {ms[(fam, params)][n]:.3g} | {ratio} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json")
    ap.add_argument("-o", "--output", default="mask_kernels.png")
    ap.add_argument("--dtype", default="f32")
    ap.add_argument("--table", type=int, metavar="N",
                    help="also print a markdown table of every mask kernel at N elements (median GB/s, ratio to memcpy)")
    args = ap.parse_args()
    series, ms, context = load(args.json)
    if args.table:
        print_table(series, ms, args.table)
    memcpy = series.get(("BM_Memcpy", ""), {})
    forms = ["bytes", "bits", "float"]
    families = [("BM_ApplyMask", "out of place"), ("BM_SquashMask", "in place")]
    fig, axes = plt.subplots(len(families), len(forms), figsize=(15, 8), sharex=True, sharey=True)
    for row, (family, label) in enumerate(families):
        for col, form in enumerate(forms):
            ax = axes[row][col]
            for (fam, params), points in sorted(series.items()):
                parts = params.split(",")
                if fam != family or len(parts) != 3 or parts[0] != args.dtype or parts[1] != form:
                    continue
                xs = sorted(points)
                ax.plot(xs, [points[x] / 1e9 for x in xs], marker="o", label=parts[2])
            if memcpy:
                xs = sorted(memcpy)
                ax.plot(xs, [memcpy[x] / 1e9 for x in xs], "k--", marker="x", label="memcpy")
            ax.set_xscale("log", base=2)
            ax.set_title(f"{family[3:]} ({label}), {args.dtype}, {form} mask")
            ax.grid(True, which="both", alpha=0.3)
            if col == 0:
                ax.set_ylabel("GB/s (bytes read + written)")
            if row == len(families) - 1:
                ax.set_xlabel("elements")
            ax.legend(fontsize=8)
    cpu = context.get("host_name", "")
    fig.suptitle(f"sparsity mask kernels vs memcpy ({context.get('num_cpus', '?')} CPUs {cpu}, one thread)")
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
