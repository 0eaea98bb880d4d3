#!/usr/bin/python3
"""Generates the WandaSparsifier golden data in tests/data/golden/wanda/*.safetensors.

Run with Debian's python3-torch (1.13):  /usr/bin/python3 gen_wanda.py

The masks come from a re-implementation, with torch ops, of the published algorithm (Sun, Liu, Bair,
Kolter, "A Simple and Effective Pruning Approach for Large Language Models", github.com/locuslab/wanda,
lib/prune.py `prune_wanda`): the score is |W| * sqrt(per-input-feature statistic); unstructured pruning
sorts each output row (torch.sort along dim 1, stable) and prunes its first int(in * ratio) entries; N:M
pruning takes every group of M consecutive input columns and prunes the `zeros` smallest scores of each
row's group (torch.topk largest=False). The "tensor" comparison is the library's own (the published code
has none): a stable sort of all scores, k = round-half-even(level * numel) clamped to [0, numel - 1].

Norms are accumulated as the library's ActivationNormCollector defines them: the sum of squares of every
calibration row, per input feature, in float64 and in row order, then sqrt, rounded to float32. The
published code keeps a running mean in float32 instead (lib/layerwrapper.py: scaler_row scaled by
nsamples / (nsamples + batch), plus ||x_j||^2 / nsamples); that only scales a layer's norms by one
constant, and the script checks that masks from that statistic, re-implemented too, are the same as from
the collector's norms, refusing to write anything otherwise.

Random data is redrawn until no cut of any selection has equal scores on both sides (the tie rule is the
library's and is tested with hand-derived cases; torch.topk's is unspecified). Input features get
log-normal scales so that the Wanda masks differ from plain magnitude masks (checked).

Each file holds: `weight` ([out, in], in its dtype), `activations` ([rows, in], the calibration rows in
order), `norms` (F32 [in], the collector's expected output), `mask_<i>` (U8 0/1 after step i), and
`__metadata__` = {"config": JSON} with levels (sparsity level of each step), sparse_block_shape,
zeros_per_block, comparison ("row" | "tensor") and batches (the shapes the rows are fed in, in order:
[in] one row, [r, in] r rows, [b, s, in] b * s rows).
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_io import write_safetensors  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wanda")



# ---- statistics ----------------------------------------------------------------------------------------

def split_batches(acts, batches):
    """The calibration rows cut into the configured batch shapes, in order."""
    out, r = [], 0
    for lead in batches:
        rows = int(np.prod(lead)) if lead else 1
        out.append(acts[r:r + rows].reshape(list(lead) + [acts.shape[1]]))
        r += rows
    assert r == acts.shape[0]
    return out


def collector_norms(acts):
    """sqrt(sum over rows, in row order, of x^2) per feature: float64 sums, rounded to float32."""
    x = acts.double().numpy()
    sums = np.zeros(x.shape[1], dtype=np.float64)
    for row in x:  # one row at a time: the same additions, in the same order, as the library
        sums += row * row
    return torch.from_numpy(np.sqrt(sums).astype(np.float32))


def reference_scaler_row(batches, width):
    """The published running statistic (WrappedGPT.add_batch re-implemented): float32 mean of ||x_j||^2."""
    scaler_row = torch.zeros(width, dtype=torch.float32)
    nsamples = 0
    for inp in batches:
        if inp.dim() == 1:
            inp = inp.unsqueeze(0)
        if inp.dim() == 2:
            inp = inp.unsqueeze(0)
        tmp = inp.shape[0]
        inp = inp.reshape((-1, inp.shape[-1])).t()
        scaler_row *= nsamples / (nsamples + tmp)
        nsamples += tmp
        inp = inp.type(torch.float32)
        scaler_row += torch.norm(inp, p=2, dim=1) ** 2 / nsamples
    return torch.sqrt(scaler_row)


# ---- selection (True = pruned) ------------------------------------------------------------------------

def prune_rows(metric, ratio):
    mask = torch.zeros_like(metric, dtype=torch.bool)
    order = torch.sort(metric, dim=-1, stable=True)[1]
    mask.scatter_(1, order[:, :int(metric.shape[1] * ratio)], True)
    return mask


def prune_groups(metric, zeros, m):
    mask = torch.zeros_like(metric, dtype=torch.bool)
    for ii in range(0, metric.shape[1], m):
        tmp = metric[:, ii:ii + m].float()
        mask.scatter_(1, ii + torch.topk(tmp, zeros, dim=1, largest=False)[1], True)
    return mask


def prune_tensor(metric, level):
    n = metric.numel()
    k = max(0, min(n - 1, int(round(level * n))))
    mask = torch.zeros(n, dtype=torch.bool)
    mask[torch.sort(metric.flatten(), stable=True)[1][:k]] = True
    return mask.reshape(metric.shape)


def same(a, b):
    return a == b or (math.isnan(a) and math.isnan(b))


def cut_is_clear(metric, level, cfg):
    """No selection of this step has equal scores on both sides of its cut."""
    m, z = cfg["block"][1], cfg["zeros"]
    s = metric.double().numpy()
    if m > 1:
        for row in s:
            for ii in range(0, len(row), m):
                g = np.sort(row[ii:ii + m])  # NaN last
                if z < len(g) and same(g[z - 1], g[z]):
                    return False
        return True
    if cfg["comparison"] == "row":
        k = int(s.shape[1] * level)
        return all(not (0 < k < len(r)) or not same(np.sort(r)[k - 1], np.sort(r)[k]) for r in s)
    flat = np.sort(s.flatten())
    k = max(0, min(flat.size - 1, int(round(level * flat.size))))
    return not (0 < k < flat.size) or not same(flat[k - 1], flat[k])


def run_steps(w0, norms, cfg):
    """Masks (True = kept) after each step, scores on the masked weight; None when a cut is tied."""
    keep = torch.ones(w0.shape, dtype=torch.bool)
    masks = []
    for level in cfg["levels"]:
        w = torch.where(keep, w0, torch.zeros((), dtype=w0.dtype))
        metric = torch.abs(w) * norms.reshape((1, -1))  # f16/bf16/f32 * f32 -> f32; f64 * f32 -> f64
        assert metric.dtype == (torch.float64 if w0.dtype == torch.float64 else torch.float32)
        if not cut_is_clear(metric, level, cfg):
            return None
        if cfg["block"][1] > 1:
            pruned = prune_groups(metric, cfg["zeros"], cfg["block"][1])
        elif cfg["comparison"] == "row":
            pruned = prune_rows(metric, level)
        else:
            pruned = prune_tensor(metric, level)
        keep = ~pruned
        masks.append(keep.clone())
    return masks


CASES = [
    # Unstructured, one selection per output row: k = int(in * level).
    dict(name="row_l050", shape=(8, 16), levels=[0.5], batches=[(5,), (7,), (2, 10), ()]),
    dict(name="row_l030_odd", shape=(7, 13), levels=[0.3], batches=[(9,), (3, 4)]),
    # 100 * 0.29 = 28.999999999999996 in binary: k = 28, not 29 (the reference's int()).
    dict(name="row_l029_floor", shape=(4, 100), levels=[0.29], batches=[(40,)]),
    dict(name="row_ramp_sticky", shape=(6, 24), levels=[0.25, 0.5, 0.75], batches=[(6,), (10,)]),
    dict(name="row_nan_inf", shape=(5, 12), levels=[0.6], batches=[(30,)],
         specials={(0, 3): float("nan"), (1, 0): float("inf"), (2, 11): float("-inf")}),
    dict(name="row_f64", shape=(6, 20), levels=[0.5], dtype=torch.float64, batches=[(16,)]),
    dict(name="row_f16", shape=(6, 20), levels=[0.4], dtype=torch.float16, batches=[(16,)]),
    dict(name="row_bf16_acts_bf16", shape=(6, 20), levels=[0.6], dtype=torch.bfloat16, batches=[(4, 4)],
         act_dtype=torch.bfloat16),
    dict(name="row_acts_f16", shape=(5, 16), levels=[0.5], batches=[(12,), (1,)], act_dtype=torch.float16),
    # N:M: [1, M] groups with `zeros` pruned in each (2:4 = zeros 2).
    dict(name="nm_2of4", shape=(8, 16), levels=[1.0], block=(1, 4), zeros=2, batches=[(24,)]),
    dict(name="nm_1of4", shape=(6, 12), levels=[1.0], block=(1, 4), zeros=3, batches=[(24,)]),
    dict(name="nm_4of8", shape=(4, 24), levels=[1.0], block=(1, 8), zeros=4, batches=[(3, 8)]),
    # 14 columns: the last group holds two real columns, both pruned.
    dict(name="nm_2of4_nondiv", shape=(5, 14), levels=[1.0], block=(1, 4), zeros=2, batches=[(20,)]),
    dict(name="nm_2of4_f16", shape=(6, 16), levels=[1.0], block=(1, 4), zeros=2, dtype=torch.float16,
         batches=[(20,)]),
    dict(name="nm_2of4_f64", shape=(6, 16), levels=[1.0], block=(1, 4), zeros=2, dtype=torch.float64,
         batches=[(20,)]),
    # One selection over the whole tensor.
    dict(name="tensor_l050", shape=(8, 12), levels=[0.5], comparison="tensor", batches=[(20,)]),
    # 30 * 0.25 = 7.5 -> 8 and 30 * 0.35 = 10.5 -> 10 (round half to even).
    dict(name="tensor_half_even_up", shape=(6, 5), levels=[0.25], comparison="tensor", batches=[(10,)]),
    dict(name="tensor_half_even_down", shape=(6, 5), levels=[0.35], comparison="tensor", batches=[(10,)]),
    dict(name="tensor_f64_ramp", shape=(5, 9), levels=[0.2, 0.5], comparison="tensor", dtype=torch.float64,
         batches=[(7,)]),
    # At and above the sparsifier's multi-threading threshold (65536 elements), several pieces of rows.
    dict(name="large_row_l050", shape=(64, 1024), levels=[0.5], batches=[(8,)]),
    dict(name="large_row_ramp", shape=(96, 700), levels=[0.3, 0.6], batches=[(2, 4)]),
    dict(name="large_nm_2of4", shape=(64, 1024), levels=[1.0], block=(1, 4), zeros=2, batches=[(8,)]),
    dict(name="large_tensor_ramp", shape=(64, 1024), levels=[0.3, 0.6], comparison="tensor", batches=[(8,)]),
]


def main():
    gen = torch.Generator().manual_seed(20240917)
    os.makedirs(OUT, exist_ok=True)
    written = 0
    for c in CASES:
        cfg = dict(levels=c["levels"], block=list(c.get("block", (1, 1))), comparison=c.get("comparison", "row"))
        cfg["zeros"] = c.get("zeros", cfg["block"][1])
        dtype, act_dtype = c.get("dtype", torch.float32), c.get("act_dtype", torch.float32)
        out_f, in_f = c["shape"]
        n_rows = sum(int(np.prod(b)) if b else 1 for b in c["batches"])
        for attempt in range(500):
            w0 = torch.randn(c["shape"], generator=gen, dtype=torch.float64)
            for (r, col), v in c.get("specials", {}).items():
                w0[r, col] = v
            w0 = w0.to(dtype)
            scales = torch.exp(1.5 * torch.randn(in_f, generator=gen, dtype=torch.float64))
            acts = (torch.randn((n_rows, in_f), generator=gen, dtype=torch.float64) * scales).to(act_dtype)
            norms = collector_norms(acts)
            masks = run_steps(w0, norms, cfg)
            if masks is None:
                continue
            ref = run_steps(w0, reference_scaler_row(split_batches(acts, c["batches"]), in_f), cfg)
            if ref is None or any(not torch.equal(a, b) for a, b in zip(masks, ref)):
                continue  # rounding of the published statistic flips a cut: draw again
            magnitude = run_steps(w0, torch.ones(in_f, dtype=torch.float32), cfg)
            if magnitude is not None and all(torch.equal(a, b) for a, b in zip(masks, magnitude)):
                continue  # the norms must matter
            break
        else:
            sys.exit(f"{c['name']}: could not draw tie-free data")
        meta = dict(levels=cfg["levels"], sparse_block_shape=cfg["block"],
                    zeros_per_block=cfg["zeros"] if "zeros" in c else None, comparison=cfg["comparison"],
                    batches=[list(b) + [in_f] for b in c["batches"]])
        tensors = [("weight", w0), ("activations", acts), ("norms", norms)]
        tensors += [(f"mask_{i}", m.to(torch.uint8)) for i, m in enumerate(masks)]
        write_safetensors(os.path.join(OUT, c["name"] + ".safetensors"), tensors,
                          {"config": json.dumps(meta), "torch_version": torch.__version__})
        written += 1
        print(f"{c['name']}: {c['shape']} {str(dtype)[6:]} levels={cfg['levels']} block={cfg['block']} "
              f"zeros/step={[int((~m).sum()) for m in masks]} (draw {attempt + 1})")
    print(f"{written} golden files written to {OUT}")


if __name__ == "__main__":
    main()
