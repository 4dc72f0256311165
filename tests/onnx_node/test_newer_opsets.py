"""Operators newer than the ONNX release Debian packages (onnx 1.12 has
node tests up to opset 17): Gelu (opset 20, both approximations) and Mish
(opset 18), against PyTorch's own functions, through `visiond run`; and
the Gelu that older exporters spell as Div/Erf/Add/Mul/Mul, which visiond
fuses into one node, against the same reference."""
import numpy as np
import pytest
import torch
from onnx import TensorProto, helper

from visiond_test import run_visiond

X = np.random.default_rng(7).normal(0, 3, size=(2, 5, 33)).astype(np.float32)


def run_graph(tmp_path, nodes, opset, inits=()):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5, 33])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    g = helper.make_graph(nodes, "g", [x], [y], initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    path = tmp_path / "m.onnx"
    path.write_bytes(m.SerializeToString())
    np.save(tmp_path / "x.npy", X)
    r = run_visiond("run", "--model", str(path), "--input", str(tmp_path / "x.npy"),
                    "--output", str(tmp_path / "y.npy"))
    assert r.returncode == 0, r.stderr
    return np.load(tmp_path / "y.npy")


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_opset20(tmp_path, approximate):
    got = run_graph(tmp_path, [helper.make_node("Gelu", ["x"], ["y"], approximate=approximate)], 20)
    want = torch.nn.functional.gelu(torch.from_numpy(X), approximate=approximate).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_mish_opset18(tmp_path):
    got = run_graph(tmp_path, [helper.make_node("Mish", ["x"], ["y"])], 18)
    want = torch.nn.functional.mish(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_gelu_as_older_exporters_spell_it(tmp_path):
    c = [helper.make_tensor(n, TensorProto.FLOAT, [], [v])
         for n, v in (("sqrt2", 1.4142135381698608), ("one", 1.0), ("half", 0.5))]
    nodes = [helper.make_node("Div", ["x", "sqrt2"], ["d"]), helper.make_node("Erf", ["d"], ["e"]),
             helper.make_node("Add", ["e", "one"], ["a"]), helper.make_node("Mul", ["x", "a"], ["m"]),
             helper.make_node("Mul", ["m", "half"], ["y"])]
    got = run_graph(tmp_path, nodes, 13, c)
    want = torch.nn.functional.gelu(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    r = run_visiond("info", "--model", str(tmp_path / "m.onnx"))
    assert r.returncode == 0 and "Gelu" in r.stdout and "Erf" not in r.stdout, r.stdout
