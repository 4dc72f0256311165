#!/usr/bin/python3
"""Generates ONNX's own node test cases (model + inputs + expected outputs)
with Debian's python3-onnx, into OUT, once.

onnx 1.12's generators still use NumPy aliases that NumPy 1.24 removed
(np.float, np.int, np.bool, np.object); they are restored before onnx is
imported. usage: gen_node_data.py OUT
"""
import os
import sys

import numpy as np

for alias, target in (("float", float), ("int", int), ("bool", bool), ("object", object)):
    if alias not in np.__dict__:
        setattr(np, alias, target)

import onnx  # noqa: E402
from onnx.backend.test.cmd_tools import main as onnx_cmd  # noqa: E402


def run():
    out = sys.argv[1]
    stamp = os.path.join(out, "stamp")
    if os.path.exists(stamp) and open(stamp).read() == onnx.__version__:
        return
    sys.argv = ["onnx-cmd", "generate-data", "-o", out]
    onnx_cmd()
    with open(stamp, "w") as f:
        f.write(onnx.__version__)


if __name__ == "__main__":
    run()
