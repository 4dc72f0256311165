#!/usr/bin/python3
"""Makes model.onnx from the original Ultraface slim-320 file. Two changes:
the batch dimension of the input and both outputs, from 1 to the symbolic
"batch", so that visiond can batch images (the graph already computes its
reshapes from the input's shape); and the weights leave the list of graph
inputs (an old exporter's habit), which ONNX Runtime otherwise reads as
overridable inputs and does not fold. Weights and nodes are untouched.

usage: make_dynamic.py ORIGINAL.onnx OUT.onnx
"""
import sys

import onnx


def main():
    m = onnx.load(sys.argv[1])
    for v in [m.graph.input[0]] + list(m.graph.output):
        d = v.type.tensor_type.shape.dim[0]
        d.ClearField("dim_value")
        d.dim_param = "batch"
    weights = {t.name for t in m.graph.initializer}
    kept = [v for v in m.graph.input if v.name not in weights]
    del m.graph.input[:]
    m.graph.input.extend(kept)
    onnx.checker.check_model(m)
    onnx.save(m, sys.argv[2])


if __name__ == "__main__":
    main()
