#!/usr/bin/python3
"""Writes the ONNX models of the interop test (Debian's python3-onnx and numpy; deterministic).

A small MLP whose weights are stored every way an ONNX model stores them:
  fc1.weight  MatMul's B, (in, out), raw_data
  fc2.weight  Gemm's B with transB=1, (out, in), raw_data
  fc3.weight  Gemm's B with transB=0, (in, out), raw_data
  fc4.weight  a Constant node's value, (in, out), float_data (typed field), MatMul's B
  scale.weight  a 2-D FLOAT initializer used by Mul: not a weight, never picked
  out_shape     an INT64 initializer (Reshape): passes through
Files written into OUT_DIR:
  mlp.onnx                       everything inline
  mlp_ext.onnx, mlp_ext.onnx.data  the same model, its raw_data tensors in one external data file
  mlp_ref.onnx                   the same graph with the four weights as graph inputs (for the reference run)
  weights.json                   the dense weights and the input X
usage: make_models.py OUT_DIR
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, external_data_helper, helper, numpy_helper

D_IN, H1, H2, H3, D_OUT, BATCH = 16, 32, 24, 16, 8, 3


def weights():
    rng = np.random.default_rng(20240612)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)
    # Weights scaled by 1/sqrt(fan_in) keep every activation near 1, so float32 rounding stays far below
    # the test's 1e-5 tolerance.
    w = lambda fan_in, *s: (rng.standard_normal(s) / np.sqrt(fan_in)).astype(np.float32)
    return {
        "fc1.weight": w(D_IN, D_IN, H1),    # (in, out)
        "fc2.weight": w(H1, H2, H1),        # (out, in): transB=1
        "fc3.weight": w(H2, H2, H3),        # (in, out)
        "fc4.weight": w(H3, H3, D_OUT),     # (in, out), in a Constant node
    }, {
        "fc1.bias": f(H1),
        "fc2.bias": f(H2),
        "fc3.bias": f(H3),
        "scale.weight": (np.abs(f(1, D_OUT)) + 0.5).astype(np.float32),
    }, f(BATCH, D_IN)


def graph(w, b, weights_as_inputs):
    nodes = [
        helper.make_node("MatMul", ["X", "fc1.weight"], ["mm1"]),
        helper.make_node("Add", ["mm1", "fc1.bias"], ["a1"]),
        helper.make_node("Relu", ["a1"], ["h1"]),
        helper.make_node("Gemm", ["h1", "fc2.weight", "fc2.bias"], ["g2"], transB=1),
        helper.make_node("Relu", ["g2"], ["h2"]),
        helper.make_node("Gemm", ["h2", "fc3.weight", "fc3.bias"], ["g3"]),
        helper.make_node("Relu", ["g3"], ["h3"]),
        helper.make_node("MatMul", ["h3", "fc4.weight"], ["mm4"]),
        helper.make_node("Mul", ["mm4", "scale.weight"], ["s4"]),
        helper.make_node("Reshape", ["s4", "out_shape"], ["Y"]),
    ]
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, [BATCH, D_IN])]
    inits = [numpy_helper.from_array(v, k) for k, v in b.items()]
    inits.append(numpy_helper.from_array(np.array([-1, D_OUT], dtype=np.int64), "out_shape"))
    if weights_as_inputs:
        for k, v in w.items():
            inputs.append(helper.make_tensor_value_info(k, TensorProto.FLOAT, list(v.shape)))
    else:
        for k in ("fc1.weight", "fc2.weight", "fc3.weight"):
            inits.insert(0, numpy_helper.from_array(w[k], k))
        # A Constant node holding its tensor in float_data (raw=False), not raw_data.
        v = w["fc4.weight"]
        const = helper.make_tensor("fc4.weight", TensorProto.FLOAT, v.shape, v.flatten().tolist(), raw=False)
        nodes.insert(0, helper.make_node("Constant", [], ["fc4.weight"], value=const))
    outputs = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [BATCH, D_OUT])]
    g = helper.make_graph(nodes, "mlp", inputs, outputs, inits)
    m = helper.make_model(g, producer_name="sparsity-tests", opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    w, b, x = weights()
    dense = graph(w, b, weights_as_inputs=False)
    onnx.checker.check_model(dense)
    onnx.save(dense, os.path.join(out, "mlp.onnx"))
    ext = graph(w, b, weights_as_inputs=False)
    # Every raw_data tensor but the Reshape's shape (ONNX Runtime's shape inference reads it before the
    # external data is loaded) goes into one external file.
    external_data_helper.convert_model_to_external_data(
        ext, all_tensors_to_one_file=True, location="mlp_ext.onnx.data", size_threshold=64)
    onnx.save(ext, os.path.join(out, "mlp_ext.onnx"))
    onnx.checker.check_model(os.path.join(out, "mlp_ext.onnx"))
    ref = graph(w, b, weights_as_inputs=True)
    onnx.checker.check_model(ref)
    onnx.save(ref, os.path.join(out, "mlp_ref.onnx"))
    # The stored orientation of each weight: (in, out) for MatMul's B and Gemm's B without transB.
    transposed = {"fc1.weight": True, "fc2.weight": False, "fc3.weight": True, "fc4.weight": True}
    with open(os.path.join(out, "weights.json"), "w") as f:
        json.dump({"X": {"shape": list(x.shape), "data": [float(v) for v in x.flatten()]},
                   "weights": {k: {"shape": list(v.shape), "transposed": transposed[k],
                                   "data": [float(t) for t in v.flatten()]} for k, v in w.items()}}, f)


if __name__ == "__main__":
    main()
