"""Writes the safetensors files of the golden data (shared by the generator scripts of this folder)."""
import json
import struct

import torch

ST_DTYPE = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
            torch.uint8: "U8"}


def write_safetensors(path, tensors, metadata):
    """8-byte little-endian header length, JSON header (padded to 8 bytes), raw little-endian data."""
    header, blobs, off = {}, [], 0
    for name, t in tensors:
        t = t.contiguous()
        raw = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        header[name] = {"dtype": ST_DTYPE[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
