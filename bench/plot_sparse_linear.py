#!/usr/bin/env python3
"""Speedup of the sparse-linear kernels over the dense Eigen baseline, from sparsity_bench JSON output.

    sparsity_bench --benchmark_filter='DenseLinear|SparseLinear' --benchmark_repetitions=3 \\
                   --benchmark_format=json --benchmark_out=bench/results/sparse_linear.json
    python3 bench/plot_sparse_linear.py bench/results/sparse_linear.json \\
            -o bench/results/sparse_linear.png --table --targets

Every ratio is dense time / sparse time for the same shape and batch in the same run (medians over the
repetitions; wall time, which is what the two-thread variants need).
"""
import argparse
import json
import re
import statistics
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DENSE = re.compile(r"^BM_DenseLinear/(\d+)/(\d+)/(\d+)$")
SPARSE = re.compile(r"^BM_SparseLinear<(\w+),(\w+)(,2threads)?>/(\d+)/(\d+)/(\d+)/(\d+)$")
FORMATS = ["nm2of4", "bsr1x8", "bsr8x1", "bitmask", "csr"]
UNIT_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


def load(path, metric):
    """({(out, in, batch): ms}, {(fmt, dtype, threads, out, in, batch, sparsity): ms}, context):
    medians of `metric` (real_time or cpu_time) over the repetitions."""
    with open(path) as f:
        data = json.load(f)
    dense, sparse = defaultdict(list), defaultdict(list)
    for b in data["benchmarks"]:
        if b.get("error_occurred") or b.get("run_type") == "aggregate":
            continue
        name = b.get("run_name", b["name"])
        ms = b[metric] * UNIT_MS[b.get("time_unit", "ns")]
        if m := DENSE.match(name):
            dense[tuple(int(g) for g in m.groups())].append(ms)
        elif m := SPARSE.match(name):
            fmt, dtype, two, out, inp, batch, sp = m.groups()
            sparse[(fmt, dtype, 2 if two else 1, int(out), int(inp), int(batch), int(sp))].append(ms)
    med = lambda d: {k: statistics.median(v) for k, v in d.items()}  # noqa: E731
    return med(dense), med(sparse), data.get("context", {})


def speedups(dense, sparse):
    """{key: dense ms / sparse ms} for every sparse run whose dense baseline ran."""
    out = {}
    for key, ms in sparse.items():
        base = dense.get(key[3:6])
        if base:
            out[key] = base / ms
    return out


def plot(dense, sparse, path, shapes, batches):
    ratio = speedups(dense, sparse)
    fig, axes = plt.subplots(len(shapes), len(batches), figsize=(6 * len(batches), 4.2 * len(shapes)), squeeze=False)
    styles = {"f32": "-", "bf16": "--"}
    colors = dict(zip(FORMATS, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for r, (out, inp) in enumerate(shapes):
        for c, batch in enumerate(batches):
            ax = axes[r][c]
            for fmt in FORMATS:
                for dtype in ("f32", "bf16"):
                    pts = sorted((k[6], v) for k, v in ratio.items()
                                 if k[:3] == (fmt, dtype, 1) and k[3:6] == (out, inp, batch))
                    if not pts:
                        continue
                    xs, ys = zip(*pts)
                    ax.plot(xs, ys, styles[dtype], marker="o", color=colors[fmt], label=f"{fmt} {dtype}")
            ax.axhline(1.0, color="gray", linewidth=0.8)
            base = dense.get((out, inp, batch))
            ax.set_title(f"{out}x{inp}, batch {batch}" + (f" (dense {base:.3g} ms)" if base else ""))
            ax.set_xlabel("sparsity (%)")
            ax.set_ylabel("dense time / sparse time")
            ax.set_xticks([50, 70, 90])
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7, ncol=2)
    fig.suptitle("sparse_linear vs dense Eigen (one thread, f32 inputs)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def table(dense, sparse):
    ratio = speedups(dense, sparse)
    keys = sorted({k[3:6] for k in ratio})
    for out, inp, batch in keys:
        print(f"\n**{out}x{inp}, batch {batch}** (dense Eigen f32: {dense[(out, inp, batch)]:.3g} ms)\n")
        print("| format | dtype | 50% | 70% | 90% |\n|---|---|---:|---:|---:|")
        for fmt in FORMATS:
            for dtype in ("f32", "bf16"):
                cells = []
                for sp in (50, 70, 90):
                    k = (fmt, dtype, 1, out, inp, batch, sp)
                    cells.append(f"{ratio[k]:.2f}x ({sparse[k]:.3g} ms)" if k in ratio else "-")
                if any(cell != "-" for cell in cells):
                    print(f"| {fmt} | {dtype} | " + " | ".join(cells) + " |")
    two = sorted(k for k in sparse if k[2] == 2)
    if two:
        print("\n**Two threads, batch 64** (one-thread time / two-thread time)\n")
        print("| benchmark | 1 thread | 2 threads | scaling |\n|---|---:|---:|---:|")
        for k in two:
            one = sparse.get(k[:2] + (1,) + k[3:])
            if one:
                print(f"| {k[0]},{k[1]} {k[3]}x{k[4]} {k[6]}% | {one:.3g} ms | {sparse[k]:.3g} ms | {one / sparse[k]:.2f}x |")


def targets(dense, sparse):
    """The sparse-execution targets, each with its measured ratio."""
    ratio = speedups(dense, sparse)

    def r(fmt, dtype, batch, sp, shape=(4096, 4096), threads=1):
        return ratio.get((fmt, dtype, threads) + shape + (batch, sp))

    rows = [
        ("batch 1 f32 4096x4096 nm2of4 >= 1.7x", r("nm2of4", "f32", 1, 50), 1.7),
        ("batch 1 f32 4096x4096 bitmask 50% >= 1.5x", r("bitmask", "f32", 1, 50), 1.5),
        ("batch 1 f32 4096x4096 bsr1x8 90% >= 6x", r("bsr1x8", "f32", 1, 90), 6.0),
        ("batch 1 bf16 nm2of4 >= 3x dense f32", r("nm2of4", "bf16", 1, 50), 3.0),
        ("batch 64 f32 bsr1x8 or bsr8x1 90% >= 4x",
         max(filter(None, [r("bsr1x8", "f32", 64, 90), r("bsr8x1", "f32", 64, 90)]), default=None), 4.0),
        ("batch 64 f32 csr 90% >= 2x", r("csr", "f32", 64, 90), 2.0),
    ]
    print("\n| target | measured | met |\n|---|---:|---|")
    for text, got, want in rows:
        print(f"| {text} | {got:.2f}x | {'yes' if got is not None and got >= want else 'no'} |" if got else f"| {text} | - | - |")
    # Break-even: the lowest sparsity at which the best f32 format beats dense at batch 64.
    best = {sp: max((v for k, v in ratio.items() if k[1:3] == ("f32", 1) and k[3:6] == (4096, 4096, 64) and k[6] == sp),
                    default=None) for sp in (50, 70, 90)}
    at50 = best.get(50)
    print(f"| batch 64 f32: best format breaks even at <= 60% | {at50:.2f}x at 50% | {'yes' if at50 and at50 >= 1 else 'no'} |"
          if at50 else "| batch 64 break-even | - | - |")
    scal = [sparse[k[:2] + (1,) + k[3:]] / sparse[k] for k in sparse if k[2] == 2 and k[:2] + (1,) + k[3:] in sparse]
    if scal:
        print(f"| two threads >= 1.8x one thread at batch 64 | {min(scal):.2f}x to {max(scal):.2f}x "
              f"(median {statistics.median(scal):.2f}x) | {'yes' if min(scal) >= 1.8 else 'no'} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json")
    ap.add_argument("-o", "--output", default="sparse_linear.png")
    ap.add_argument("--metric", choices=["real_time", "cpu_time"], default="real_time",
                    help="time to compare (cpu_time undercounts the two-thread runs)")
    ap.add_argument("--table", action="store_true", help="print markdown tables of the speedups")
    ap.add_argument("--targets", action="store_true", help="print the targets with their measured ratios")
    args = ap.parse_args()
    dense, sparse, _ = load(args.json, args.metric)
    shapes = sorted({k[3:5] for k in sparse})
    plot(dense, sparse, args.output, shapes, [1, 64])
    if args.table:
        table(dense, sparse)
    if args.targets:
        targets(dense, sparse)


if __name__ == "__main__":
    main()
