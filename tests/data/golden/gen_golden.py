#!/usr/bin/python3
"""Generates the WeightNormSparsifier golden masks in tests/data/golden/*.safetensors from PyTorch.

Run with Debian's python3-torch (1.13, package torch.ao.sparsity):  /usr/bin/python3 gen_golden.py
Torch 1.13's WeightNorm helpers crash on shapes the block does not divide, so the masks come from
`reference_update_mask`, the current algorithm written with torch ops (block scores by avg_pool2d with
ceil_mode, tensor-level topk over the padded grid, block-level topk over unfolded NaN-padded tiles, both
masks cropped to h x w). The script first checks that reference against torch's own
WeightNormSparsifier (and CubicSL) on every configuration whose shape the block divides, and refuses
to write anything on a mismatch. Random data is redrawn until no two scores that the selection compares
are equal: the tie rule is the library's, not torch's, and is tested with hand-derived cases.

Each file holds: `weight` (the layer's weight, in its dtype), `mask_<i>` (u8 0/1, the mask after the
i-th sparsifier step), and `__metadata__` = {"config": JSON} with sparsity_level, sparse_block_shape,
zeros_per_block (null = block size), norm ("L1"|"L2"), steps, levels (the sparsity level each step
used) and scheduler (null or the CubicSL arguments).
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.ao.sparsity import CubicSL, WeightNormSparsifier
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_io import write_safetensors  # noqa: E402

OUT = os.path.dirname(os.path.abspath(__file__))



def norm_fn(w, norm):
    return w.abs() if norm == "L1" else w * w


def block_scores(s, block):
    """Mean of s over each tile (edge tiles over their in-range elements), in the scores' dtype."""
    if block[0] * block[1] == 1:
        return s.flatten()
    if s.dtype in (torch.float16, torch.bfloat16):
        # Same as torch's opmath: sum and divide in float32, round the mean to the scores' dtype.
        pooled = F.avg_pool2d(s.float()[None, None], kernel_size=block, stride=block, ceil_mode=True)
        return pooled.to(s.dtype).flatten()
    return F.avg_pool2d(s[None, None], kernel_size=block, stride=block, ceil_mode=True).flatten()


def reference_update_mask(w, sl, block, z, norm):
    """The current WeightNormSparsifier.update_mask (spec 3.1) on the masked weight w; returns a bool
    mask of w's shape (both the tensor-level and block-level masks cropped to h x w)."""
    bh, bw = block
    vpb = bh * bw
    h, wd = w.shape
    if sl <= 0 or z == 0:
        return torch.ones(h, wd, dtype=torch.bool)
    if sl >= 1 and z == vpb:
        return torch.zeros(h, wd, dtype=torch.bool)
    s = norm_fn(w, norm)
    dh, dw = (bh - h % bh) % bh, (bw - wd % bw) % bw
    H, W = h + dh, wd + dw
    tiles_r, tiles_c = H // bh, W // bw
    if sl >= 1:
        tmask = torch.zeros(H, W)
    else:
        scores = block_scores(s, block)
        L = scores.numel()
        assert L == tiles_r * tiles_c
        k = max(0, min(L - 1, int(round(sl * L))))
        # f16 -> f32 is exact and keeps the order (torch 1.13 has no Half topk on CPU).
        _, idx = torch.topk(scores.float() if scores.dtype == torch.float16 else scores, k=k, largest=False)
        sel = torch.ones(L)
        sel[idx] = 0
        tmask = sel.reshape(tiles_r, tiles_c).repeat_interleave(bh, 0).repeat_interleave(bw, 1)
    if z == vpb:
        return tmask[:h, :wd] != 0
    padded = torch.full((H, W), float("nan"), dtype=s.dtype)
    padded[:h, :wd] = s
    unf = F.unfold(padded.float()[None, None] if s.dtype in (torch.float16, torch.bfloat16) else padded[None, None],
                   kernel_size=block, stride=block)[0]  # (vpb, L): column = tile, row = position in tile
    _, idx = torch.topk(unf, k=z, dim=0, largest=False)
    bm = torch.ones_like(unf, dtype=torch.float32)
    bm.scatter_(0, idx, 0.0)
    bmask = F.fold(bm[None], output_size=(H, W), kernel_size=block, stride=block)[0, 0]
    return torch.logical_or(tmask != 0, bmask != 0)[:h, :wd]


def check_no_ties(w, sl, block, z, norm):
    """True when no selection of this step has equal scores on both sides of its cut (ties elsewhere,
    e.g. among the zeros of already pruned weights, do not change the selected set)."""
    bh, bw = block
    vpb = bh * bw
    if sl <= 0 or z == 0 or (sl >= 1 and z == vpb):
        return True
    s = norm_fn(w, norm)
    if sl < 1:
        sc = block_scores(s, block).double().numpy()
        L = sc.size
        k = max(0, min(L - 1, int(round(sl * L))))
        order = np.sort(sc[~np.isnan(sc)])
        # Only the cut matters: equal scores on both sides of it would make the selected set tie-dependent.
        if 0 < k < len(order) and order[k - 1] == order[k]:
            return False
    if z < vpb:
        h, wd = w.shape
        H, W = -(-h // bh) * bh, -(-wd // bw) * bw
        padded = np.full((H, W), np.nan)
        padded[:h, :wd] = s.double().numpy()
        for r in range(0, H, bh):
            for c in range(0, W, bw):
                t = padded[r:r + bh, c:c + bw].flatten()
                fin = np.sort(t[~np.isnan(t)])
                # the z-th and (z+1)-th smallest must differ (NaN handled: real NaN + padding NaN at the cut)
                if z < len(fin) and fin[z - 1] == fin[z]:
                    return False
                n_nan_real = np.count_nonzero(np.isnan(padded[r:min(r + bh, h), c:min(c + bw, wd)]))
                if z > len(fin) and n_nan_real > 0 and len(t) - len(fin) > n_nan_real:
                    return False  # the cut falls among real and padding NaNs: tie-dependent
                if z > len(fin) and n_nan_real > 1 and z - len(fin) < n_nan_real:
                    return False
    return True


def cubic_levels(sl, sched, steps):
    """Sparsity level of each sparsifier step: the scheduler ctor sets epoch 0, then
    sparsifier.step(); scheduler.step() alternate."""
    return [CubicSL.sparsity_compute_fn(sched["init_sl"], sl, t, sched["init_t"], sched["delta_t"],
                                        sched["total_t"], sched.get("initially_zero", False))
            for t in range(steps)]


def run_reference(w0, cfg):
    levels = cfg["levels"]
    z = cfg["zeros_per_block"] if cfg["zeros_per_block"] is not None else cfg["block"][0] * cfg["block"][1]
    mask = torch.ones(w0.shape, dtype=torch.bool)
    masks = []
    for sl in levels:
        wm = torch.where(mask, w0, torch.zeros((), dtype=w0.dtype))  # select: pruned -> +0
        if not check_no_ties(wm, sl, cfg["block"], z, cfg["norm"]):
            return None
        mask = reference_update_mask(wm, sl, cfg["block"], z, cfg["norm"])
        masks.append(mask.clone())
    return masks


def run_torch(w0, cfg):
    """torch 1.13's own WeightNormSparsifier (+ CubicSL) on a Linear holding w0; masks per step."""
    z = cfg["zeros_per_block"] if cfg["zeros_per_block"] is not None else cfg["block"][0] * cfg["block"][1]
    lin = nn.Linear(w0.shape[1], w0.shape[0], bias=False).to(w0.dtype)
    with torch.no_grad():
        lin.weight.copy_(w0)
    model = nn.Sequential(lin)
    sp = WeightNormSparsifier(sparsity_level=cfg["sparsity_level"], sparse_block_shape=tuple(cfg["block"]),
                              zeros_per_block=z, norm=1 if cfg["norm"] == "L1" else 2)
    sp.prepare(model, [{"tensor_fqn": "0.weight"}])
    sched = None
    if cfg["scheduler"] is not None:
        s = cfg["scheduler"]
        sched = CubicSL(sp, init_sl=s["init_sl"], init_t=s["init_t"], delta_t=s["delta_t"], total_t=s["total_t"],
                        initially_zero=s.get("initially_zero", False))
    masks = []
    for i in range(cfg["steps"]):
        assert abs(sp.groups[0]["sparsity_level"] - cfg["levels"][i]) == 0, "scheduler level mismatch"
        sp.step()
        masks.append(sp.groups[0]["module"].parametrizations.weight[0].mask != 0)
        if sched is not None:
            sched.step()
    return masks


def make_weight(shape, dtype, gen, specials=None):
    w = torch.randn(shape, generator=gen, dtype=torch.float64)
    if specials:
        for (r, c), v in specials.items():
            w[r, c] = v
    return w.to(dtype)


CONFIGS = [
    # name, shape, dtype, sl, block, zpb, norm, specials, scheduler, steps
    dict(name="nondiv_cols_1x4_l2", shape=(13, 10), sl=0.5, block=(1, 4)),
    dict(name="nondiv_both_2x2_l1", shape=(10, 13), sl=0.5, block=(2, 2), norm="L1"),
    dict(name="nondiv_3x5_l2", shape=(9, 17), sl=0.35, block=(3, 5)),
    dict(name="col_block_4x1", shape=(12, 16), sl=0.6, block=(4, 1)),
    dict(name="unstructured_1x1_l1", shape=(16, 16), sl=0.3, block=(1, 1), norm="L1"),
    dict(name="nm_2of4", shape=(8, 16), sl=1.0, block=(1, 4), z=2),
    dict(name="nm_2of4_nondiv", shape=(7, 10), sl=1.0, block=(1, 4), z=2),
    dict(name="zpb1_2x2_l2", shape=(12, 12), sl=0.5, block=(2, 2), z=1),
    dict(name="zpb3_2x4_nondiv_l1", shape=(11, 14), sl=0.4, block=(2, 4), z=3, norm="L1"),
    dict(name="zpb3_8x1_l2", shape=(20, 6), sl=0.5, block=(8, 1), z=3),
    # L = 10 tiles: 0.25 * 10 = 2.5 -> 2 (half to even rounds down), 0.35 * 10 = 3.5 -> 4 (rounds up).
    dict(name="round_half_down", shape=(2, 20), sl=0.25, block=(1, 4)),
    dict(name="round_half_up", shape=(2, 20), sl=0.35, block=(1, 4)),
    dict(name="clamp_l_minus_1", shape=(2, 20), sl=0.99, block=(1, 4)),
    dict(name="clamp_single_tile", shape=(3, 3), sl=0.9, block=(4, 4)),
    dict(name="cubic_multi_step_l2", shape=(16, 24), sl=0.8, block=(1, 4), steps=6,
         scheduler=dict(init_sl=0.1, init_t=1, delta_t=1, total_t=4)),
    dict(name="cubic_multi_step_zpb2_l1", shape=(12, 16), sl=0.75, block=(1, 4), z=2, norm="L1", steps=5,
         scheduler=dict(init_sl=0.0, init_t=0, delta_t=2, total_t=2)),
    dict(name="cubic_multi_step_nondiv_2x2", shape=(9, 11), sl=0.6, block=(2, 2), steps=4,
         scheduler=dict(init_sl=0.2, init_t=0, delta_t=1, total_t=3)),
    # One NaN tile, one +inf and one -inf tile (both score +inf); k = L - 1 keeps only the NaN tile.
    dict(name="nan_inf_tiles_clamp", shape=(4, 12), sl=0.99, block=(1, 4),
         specials={(0, 1): float("nan"), (1, 5): float("inf"), (3, 10): float("-inf")}),
    dict(name="nan_inf_unstructured_l1", shape=(6, 8), sl=0.5, block=(1, 1), norm="L1",
         specials={(0, 0): float("nan"), (2, 3): float("inf"), (5, 7): float("-inf")}),
    # Inside a tile NaN > +inf > finite: z = 3 prunes the two finite values and the inf.
    dict(name="nan_inf_in_tile_zpb3", shape=(4, 8), sl=1.0, block=(1, 4), z=3,
         specials={(0, 1): float("nan"), (0, 2): float("inf"), (2, 6): float("-inf"), (3, 0): float("nan")}),
    dict(name="f64_2x3_l2", shape=(13, 9), sl=0.5, block=(2, 3), dtype=torch.float64),
    dict(name="f64_2of4", shape=(8, 8), sl=1.0, block=(1, 4), z=2, dtype=torch.float64),
    dict(name="bf16_1x4", shape=(8, 12), sl=0.5, block=(1, 4), dtype=torch.bfloat16),
    dict(name="f16_1x2_l1", shape=(8, 12), sl=0.5, block=(1, 2), norm="L1", dtype=torch.float16),
    dict(name="f16_2of4", shape=(6, 8), sl=1.0, block=(1, 4), z=2, dtype=torch.float16),
    dict(name="default_zpb_4x4_nondiv", shape=(33, 41), sl=0.6, block=(4, 4), z=None),
    dict(name="wide_rows_1x4", shape=(96, 200), sl=0.7, block=(1, 4)),
    dict(name="wide_rows_2of4_l1", shape=(64, 96), sl=1.0, block=(1, 4), z=2, norm="L1"),
    # Above the sparsifier's multi-threading threshold (65536 elements): checked with 1 and 2 threads.
    dict(name="large_1x4_l2", shape=(272, 256), sl=0.6, block=(1, 4)),
    dict(name="large_2of4_nondiv_l1", shape=(257, 270), sl=1.0, block=(1, 4), z=2, norm="L1"),
    dict(name="large_cubic_2x2_zpb1", shape=(256, 258), sl=0.7, block=(2, 2), z=1, steps=3,
         scheduler=dict(init_sl=0.3, init_t=0, delta_t=1, total_t=2)),
]


def main():
    gen = torch.Generator().manual_seed(20240611)
    written = 0
    notes = []
    for c in CONFIGS:
        cfg = dict(name=c["name"], sparsity_level=c["sl"], block=list(c["block"]), zeros_per_block=c.get("z"),
                   norm=c.get("norm", "L2"), steps=c.get("steps", 1), scheduler=c.get("scheduler"))
        if cfg["zeros_per_block"] is None:
            cfg["zeros_per_block"] = None
        dtype = c.get("dtype", torch.float32)
        if cfg["scheduler"] is not None:
            cfg["levels"] = cubic_levels(cfg["sparsity_level"], cfg["scheduler"], cfg["steps"])
        else:
            cfg["levels"] = [cfg["sparsity_level"]] * cfg["steps"]
        masks = None
        for attempt in range(200):
            w0 = make_weight(c["shape"], dtype, gen, c.get("specials"))
            masks = run_reference(w0, cfg)
            if masks is not None:
                break
        assert masks is not None, f"{cfg['name']}: could not draw tie-free data"
        h, wd = c["shape"]
        divisible = h % cfg["block"][0] == 0 and wd % cfg["block"][1] == 0
        if divisible:
            try:
                tm = run_torch(w0, cfg)
            except Exception as e:  # noqa: BLE001 - recorded and reported, never silently passed
                tm = None
                notes.append(f"{cfg['name']}: torch's own WeightNormSparsifier fails ({type(e).__name__}: {e})")
            if tm is not None:
                for i, (a, b) in enumerate(zip(masks, tm)):
                    if not torch.equal(a, b):
                        sys.exit(f"{cfg['name']}: reference differs from torch at step {i}")
                cfg["verified_against_torch"] = True
        meta_cfg = {k: cfg[k] for k in ("sparsity_level", "zeros_per_block", "norm", "steps", "levels", "scheduler")}
        meta_cfg["sparse_block_shape"] = cfg["block"]
        meta_cfg["verified_against_torch"] = cfg.get("verified_against_torch", False)
        tensors = [("weight", w0)] + [(f"mask_{i}", m.to(torch.uint8)) for i, m in enumerate(masks)]
        write_safetensors(os.path.join(OUT, cfg["name"] + ".safetensors"), tensors,
                          {"config": json.dumps(meta_cfg), "torch_version": torch.__version__})
        written += 1
        print(f"{cfg['name']}: {tuple(c['shape'])} {str(dtype)[6:]} levels={[round(x, 4) for x in cfg['levels']]}"
              f" zeros={[int((m == 0).sum()) for m in masks]}"
              f"{' (checked against torch)' if cfg.get('verified_against_torch') else ''}")
    for n in notes:
        print("note:", n)
    print(f"{written} golden files written to {OUT}")


if __name__ == "__main__":
    main()
