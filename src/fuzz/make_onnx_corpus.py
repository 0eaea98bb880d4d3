#!/usr/bin/python3
"""Writes the seed corpus of fuzz_onnx into src/fuzz/corpus/onnx (Debian's python3-onnx; deterministic).

Small models covering every path of the reader: raw_data, packed float_data and double_data, a
Constant's value, varint/string/4-bit/unknown tensors, Gemm with and without transB, MatMul, Conv,
an If subgraph, sparse initializers, and external data in "w.bin" (the fuzz target provides a 256-byte
w.bin beside the model).
usage: make_onnx_corpus.py [OUT_DIR]
"""
import os
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "onnx")


def model(nodes, inits, sparse=(), name="g"):
    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 2])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 2])], inits,
                          sparse_initializer=list(sparse))
    m = helper.make_model(g, producer_name="seed", opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def external(name, dims, offset, length=None, location="w.bin"):
    t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=dims, data_location=TensorProto.EXTERNAL)
    for k, v in [("location", location), ("offset", str(offset))] + ([("length", str(length))] if length else []):
        e = t.external_data.add()
        e.key, e.value = k, v
    return t


def save(name, m):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(m.SerializeToString())


def main():
    os.makedirs(OUT, exist_ok=True)
    f32 = lambda *s: np.arange(np.prod(s), dtype=np.float32).reshape(s) / 8
    const = helper.make_node("Constant", [], ["c"], value=helper.make_tensor("c", TensorProto.FLOAT, [2, 2], [1, 2, 3, 4]))
    save("raw_and_constant", model(
        [const, helper.make_node("MatMul", ["X", "w"], ["a"]), helper.make_node("MatMul", ["a", "c"], ["Y"])],
        [numpy_helper.from_array(f32(2, 2), "w")]))
    save("gemm", model(
        [helper.make_node("Gemm", ["X", "wt", "b"], ["a"], transB=1), helper.make_node("Gemm", ["a", "w", "b"], ["Y"])],
        [numpy_helper.from_array(f32(2, 2), "wt"), numpy_helper.from_array(f32(2, 2), "w"),
         numpy_helper.from_array(f32(2), "b")]))
    save("typed_fields", model([helper.make_node("Identity", ["X"], ["Y"])], [
        helper.make_tensor("f", TensorProto.FLOAT, [2], [1.5, -2.0]),
        helper.make_tensor("d", TensorProto.DOUBLE, [2], [0.5, 0.25]),
        helper.make_tensor("h", TensorProto.FLOAT16, [2], np.array([1, -1], dtype=np.float16).view(np.uint16).tolist()),
        helper.make_tensor("i", TensorProto.INT64, [2], [-1, 2]),
        helper.make_tensor("s", TensorProto.STRING, [1], [b"x"]),
        TensorProto(name="i4", data_type=22, dims=[3], raw_data=b"\x12\x03"),
        TensorProto(name="bf", data_type=TensorProto.BFLOAT16, dims=[2], raw_data=b"\x80\x3f\x00\xc0"),
    ]))
    save("external", model(
        [helper.make_node("MatMul", ["X", "e1"], ["a"]), helper.make_node("Add", ["a", "e2"], ["Y"])],
        [external("e1", [2, 2], 0, 16), external("e2", [2], 64), numpy_helper.from_array(f32(2), "inline")]))
    then = helper.make_graph([helper.make_node("Identity", ["w"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", TensorProto.FLOAT, [2, 2])], [external("sub", [2], 128)])
    save("subgraph", model(
        [helper.make_node("If", ["cond"], ["Y"], then_branch=then, else_branch=then),
         helper.make_node("Conv", ["img", "k"], ["o"])],
        [numpy_helper.from_array(f32(2, 2), "w"), numpy_helper.from_array(f32(1, 1, 3, 3), "k")],
        sparse=[helper.make_sparse_tensor(numpy_helper.from_array(f32(2), "sv"),
                                          numpy_helper.from_array(np.array([0, 3], dtype=np.int64), "si"), [4])]))
    save("empty_graph", model([], []))


if __name__ == "__main__":
    main()
