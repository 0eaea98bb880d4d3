#!/usr/bin/python3
"""Generates the global-ranking golden masks in tests/data/golden/global/*.safetensors from PyTorch.

Run with Debian's python3-torch (1.13):  /usr/bin/python3 gen_global_golden.py

Each file is one call of torch.nn.utils.prune.global_unstructured(params, pruning_method=L1Unstructured,
amount=a) over the weights of two Linear layers and a Conv2d layer of different scales: torch prunes the
k = round(a * total) entries of smallest |w| over all the weights together. Weights are redrawn until the
k-th and (k+1)-th smallest |w| differ (the tie rule is the library's, tested by hand-derived cases).

Each file holds `weight_<i>` (f32), `mask_<i>` (u8 0/1, torch's weight_mask) and `__metadata__` =
{"config": JSON} with amount, total, k and the layers' kinds and shapes.
"""
import json
import os
import struct
import sys

import torch
import torch.nn.utils.prune as prune
from torch import nn
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from golden_io import write_safetensors  # noqa: E402

OUT = os.path.dirname(os.path.abspath(__file__))


def layers(gen):
    model = nn.Sequential(nn.Linear(24, 16, bias=False), nn.Linear(40, 8, bias=False),
                          nn.Conv2d(6, 4, 3, bias=False))
    with torch.no_grad():
        for layer, scale in zip(model, (1.0, 0.3, 2.0)):
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * scale)
    return model


def main():
    gen = torch.Generator().manual_seed(77)
    written = 0
    for amount in (0.3, 0.55, 0.8, 0.05):
        for _ in range(100):
            model = layers(gen)
            weights = [m.weight.detach().clone() for m in model]
            mags = torch.cat([w.abs().flatten() for w in weights]).sort().values
            total = mags.numel()
            k = round(amount * total)
            if 0 < k < total and mags[k - 1] != mags[k]:
                break
        else:
            sys.exit(f"amount {amount}: no tie-free draw")
        prune.global_unstructured([(m, "weight") for m in model], pruning_method=prune.L1Unstructured, amount=amount)
        masks = [m.weight_mask.detach().to(torch.uint8) for m in model]
        assert sum(int((mk == 0).sum()) for mk in masks) == k
        cfg = {"amount": amount, "total": total, "k": k,
               "layers": [{"kind": type(m).__name__, "shape": list(w.shape)} for m, w in zip(model, weights)]}
        tensors = [(f"weight_{i}", w) for i, w in enumerate(weights)] + [(f"mask_{i}", mk) for i, mk in enumerate(masks)]
        name = f"global_l1_{int(round(amount * 100)):02d}.safetensors"
        write_safetensors(os.path.join(OUT, name), tensors, {"config": json.dumps(cfg), "torch_version": torch.__version__})
        written += 1
        print(f"{name}: total {total} k {k} pruned per layer {[int((mk == 0).sum()) for mk in masks]}")
    print(f"{written} golden files written to {OUT}")


if __name__ == "__main__":
    main()
