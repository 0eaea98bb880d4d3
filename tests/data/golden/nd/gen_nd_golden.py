#!/usr/bin/python3
"""Generates the golden masks for N-D (conv) weights in tests/data/golden/nd/*.safetensors.

Run with Debian's python3-torch (1.13):  /usr/bin/python3 gen_nd_golden.py

Two independent references:
- N:M on a weight of rank >= 3 follows NVIDIA ASP (apex/contrib/sparsity/sparse_masklib.py), written here
  again from its published algorithm: a conv weight (K, C, R, S) is permuted to (R, S, K, C) and viewed as
  a (R*S*K, C) matrix (a Conv1d weight (K, C, R) as (K*R, C)); each row is cut into groups of M
  consecutive input channels, and each group keeps the N entries of largest |w| (the valid N-of-M pattern
  with the largest sum of |w|; patterns are enumerated and scored with a matrix product, as ASP does).
  The mask is permuted back. C must be a multiple of M (ASP skips other layers).
- Block and unstructured pruning of a weight of rank >= 3 is torch 1.13's own WeightNormSparsifier on a
  Linear whose weight is the (out, in * prod(k)) matrix in memory order, reshaped back.
Random weights are redrawn until no selection depends on a tie.

Each file holds `weight` (the N-D weight, f32), `mask_0` (u8 0/1) and `__metadata__` = {"config": JSON}
with sparsity_level, sparse_block_shape, zeros_per_block, norm and reference ("asp" | "torch_2d").
"""
import itertools
import json
import os
import struct
import sys

import numpy as np
import torch
from torch import nn
from torch.ao.sparsity import WeightNormSparsifier
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from golden_io import write_safetensors  # noqa: E402

OUT = os.path.dirname(os.path.abspath(__file__))


def asp_patterns(m, n):
    """Every 0/1 vector of length m with n ones (the valid N:M patterns)."""
    return torch.tensor([p for p in itertools.product([0.0, 1.0], repeat=m) if sum(p) == n])


def asp_mn_1d(matrix, m, n):
    """ASP's mn_1d_best: per group of m consecutive entries of each row, the pattern of n kept entries with
    the largest sum of |w|."""
    assert matrix.shape[1] % m == 0
    groups = matrix.abs().reshape(-1, m)
    patterns = asp_patterns(m, n)
    scores = groups @ patterns.t()
    best = scores.argmax(dim=1)
    # No group may have two best patterns (the choice would be the enumeration order's).
    top2 = scores.topk(2, dim=1).values
    if bool((top2[:, 0] == top2[:, 1]).any()):
        return None
    return patterns[best].reshape(matrix.shape)


def asp_mask(w, m, n):
    """ASP's create_mask for a 3-D (Conv1d) or 4-D (Conv2d) weight."""
    if w.dim() == 3:
        k, c, r = w.shape
        t = w.permute(0, 2, 1).reshape(k * r, c)
        mask = asp_mn_1d(t, m, n)
        return None if mask is None else mask.reshape(k, r, c).permute(0, 2, 1).contiguous()
    k, c, r, s = w.shape
    t = w.permute(2, 3, 0, 1).reshape(r * s * k, c)
    mask = asp_mn_1d(t, m, n)
    return None if mask is None else mask.reshape(r, s, k, c).permute(2, 3, 0, 1).contiguous()


def torch_2d_mask(w, sl, block, z, norm):
    """torch 1.13's WeightNormSparsifier on the (out, in * prod(k)) matrix, one step; None on a tie."""
    mat = w.reshape(w.shape[0], -1)
    s = mat.abs() if norm == "L1" else mat * mat
    bh, bw = block
    tiles = torch.nn.functional.avg_pool2d(s[None, None], kernel_size=block, stride=block).flatten()
    k = max(0, min(tiles.numel() - 1, int(round(sl * tiles.numel()))))
    order = tiles.sort().values
    if 0 < k < order.numel() and order[k - 1] == order[k]:
        return None
    if z < bh * bw:
        unf = torch.nn.functional.unfold(s[None, None], kernel_size=block, stride=block)[0]
        srt = unf.sort(dim=0).values
        if bool((srt[z - 1] == srt[z]).any()):
            return None
    lin = nn.Linear(mat.shape[1], mat.shape[0], bias=False)
    with torch.no_grad():
        lin.weight.copy_(mat)
    model = nn.Sequential(lin)
    sp = WeightNormSparsifier(sparsity_level=sl, sparse_block_shape=tuple(block), zeros_per_block=z,
                              norm=1 if norm == "L1" else 2)
    sp.prepare(model, [{"tensor_fqn": "0.weight"}])
    sp.step()
    return (sp.groups[0]["module"].parametrizations.weight[0].mask != 0).float().reshape(w.shape)


CASES = [
    # name, shape, sparsity_level, block, zeros_per_block, norm, reference
    ("conv2d_2of4", (8, 16, 3, 3), 1.0, (1, 4), 2, "L1", "asp"),
    ("conv2d_1of4", (6, 8, 3, 2), 1.0, (1, 4), 3, "L1", "asp"),
    ("conv2d_2of8", (4, 16, 2, 3), 1.0, (1, 8), 6, "L1", "asp"),
    ("conv2d_1x1_2of4", (12, 32, 1, 1), 1.0, (1, 4), 2, "L1", "asp"),
    ("conv1d_2of4", (5, 12, 3), 1.0, (1, 4), 2, "L1", "asp"),
    ("conv2d_blocks_2x4", (8, 4, 3, 3), 0.5, (2, 4), None, "L2", "torch_2d"),
    ("conv2d_unstructured", (6, 5, 3, 3), 0.6, (1, 1), None, "L1", "torch_2d"),
    ("conv2d_blocks_1x3_nm", (4, 6, 3, 2), 0.7, (2, 3), 4, "L2", "torch_2d"),
]


def main():
    gen = torch.Generator().manual_seed(1234)
    written = 0
    for name, shape, sl, block, z, norm, ref in CASES:
        zeros = z if z is not None else block[0] * block[1]
        for _ in range(100):
            w = torch.randn(shape, generator=gen, dtype=torch.float32)
            if ref == "asp":
                mask = asp_mask(w, block[1], block[1] - zeros)
            else:
                mask = torch_2d_mask(w, sl, block, zeros, norm)
            if mask is not None:
                break
        else:
            sys.exit(f"{name}: no tie-free weight in 100 draws")
        cfg = {"sparsity_level": sl, "sparse_block_shape": list(block), "zeros_per_block": z, "norm": norm,
               "reference": ref}
        write_safetensors(os.path.join(OUT, name + ".safetensors"), [("weight", w), ("mask_0", mask.to(torch.uint8))],
                          {"config": json.dumps(cfg), "torch_version": torch.__version__})
        written += 1
        print(f"{name}: {shape} {ref} zeros={int((mask == 0).sum())}/{mask.numel()}")
    print(f"{written} golden files written to {OUT}")


if __name__ == "__main__":
    main()
