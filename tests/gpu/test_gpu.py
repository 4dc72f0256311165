"""The CUDA backend on a real GPU. Without one every test here is skipped,
with the reason (visiond's own message) shown in the summary.

- every conformance model at batch 1 and 4: GPU output within 1e-3 relative
  of the CPU backend's;
- convolution shapes (1x1, 3x3 stride 1 and 2, 5x5, 7x7 stride 2, 11x11
  stride 4, grouped, depthwise, dilated): every algorithm cuDNN reports as
  supported, forced in turn, plus our im2col + cuBLAS path, gives the CPU's
  output;
- exhaustive selection writes the algorithm cache and a second load reads
  it back instead of timing again;
- the daemon's end-to-end suite passes with --device cuda.
"""
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "conformance"))
from make_models import BATCHES, MODELS  # noqa: E402
from visiond_test import BUILD, ROOT, run_visiond  # noqa: E402

MNIST = os.path.join(ROOT, "models", "mnist", "model.onnx")
_probe = run_visiond("info", "--model", MNIST, "--device", "cuda")
GPU, WHY = _probe.returncode == 0, (_probe.stderr.strip() or _probe.stdout.strip())
pytestmark = pytest.mark.skipif(not GPU, reason=f"no GPU here: {WHY}")

ALGOS = ["IMPLICIT_GEMM", "IMPLICIT_PRECOMP_GEMM", "GEMM", "DIRECT", "FFT", "FFT_TILING",
         "WINOGRAD", "WINOGRAD_NONFUSED", "im2col_gemm"]
SHAPES = {  # name: (C, M, H, kernel, stride, pad, dilation, group)
    "1x1": (64, 128, 28, 1, 1, 0, 1, 1),
    "3x3_s1": (64, 64, 56, 3, 1, 1, 1, 1),
    "3x3_s2": (64, 128, 56, 3, 2, 1, 1, 1),
    "5x5": (32, 64, 28, 5, 1, 2, 1, 1),
    "7x7_s2": (3, 64, 112, 7, 2, 3, 1, 1),
    "11x11_s4": (3, 64, 227, 11, 4, 2, 1, 1),
    "grouped": (64, 128, 28, 3, 1, 1, 1, 4),
    "depthwise": (96, 96, 56, 3, 1, 1, 1, 96),
    "dilated": (64, 64, 28, 3, 1, 2, 2, 1),
}


@pytest.fixture(scope="module")
def models_dir():
    out = os.path.join(BUILD, "conformance")
    subprocess.run([sys.executable, os.path.join(ROOT, "tests", "conformance",
                                                 "make_models.py"), out], check=True)
    return out


def run(model, x_path, out_path, device, *extra):
    r = run_visiond("run", "--model", model, "--input", x_path, "--output", out_path,
                    "--device", device, *extra)
    assert r.returncode == 0, r.stderr
    return np.load(out_path)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("model", list(MODELS))
def test_model_gpu_matches_cpu(models_dir, tmp_path, model, batch):
    d = os.path.join(models_dir, model)
    x = os.path.join(d, f"input_b{batch}.npy")
    cpu = run(os.path.join(d, "model.onnx"), x, str(tmp_path / "cpu.npy"), "cpu")
    gpu = run(os.path.join(d, "model.onnx"), x, str(tmp_path / "gpu.npy"), "cuda")
    err = float(np.abs(gpu - cpu).max())
    assert err <= 1e-3 * float(np.abs(cpu).max()), err


def conv_model(path, c, m, h, k, s, p, dil, g):
    rng = np.random.default_rng(c * 1000 + m + k)
    w = rng.standard_normal((m, c // g, k, k)).astype(np.float32) / np.sqrt(c // g * k * k)
    b = rng.standard_normal(m).astype(np.float32) * 0.1
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c, h, h])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", kernel_shape=[k, k],
                            strides=[s, s], pads=[p] * 4, dilations=[dil, dil], group=g)
    graph = helper.make_graph([node], "conv", [x], [y], initializer=[
        numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_supported_algorithm_agrees(tmp_path, shape):
    c, m, h, k, s, p, dil, g = SHAPES[shape]
    model = str(tmp_path / "conv.onnx")
    conv_model(model, c, m, h, k, s, p, dil, g)
    x = np.random.default_rng(1).standard_normal((2, c, h, h)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    cpu = run(model, str(tmp_path / "x.npy"), str(tmp_path / "cpu.npy"), "cpu")
    tried = []
    for algo in ALGOS:
        r = run_visiond("bench", "--model", model, "--batch", "2", "--iters", "1", "--warmup",
                        "0", "--device", "cuda", "--conv-algo", algo, "--algos", "--json")
        assert r.returncode == 0, r.stderr
        layer = json.loads(r.stdout)["algorithms"][0]
        if layer["mode"] != "forced" or layer["chosen"] != algo:
            continue  # cuDNN does not support it for this shape (the table says why)
        gpu = run(model, str(tmp_path / "x.npy"), str(tmp_path / "gpu.npy"), "cuda",
                  "--conv-algo", algo)
        err = float(np.abs(gpu - cpu).max())
        assert err <= 1e-3 * float(np.abs(cpu).max()), (algo, err)
        tried.append(algo)
    assert "IMPLICIT_GEMM" in tried and "im2col_gemm" in tried, tried
    print(f"{shape}: {len(tried)} algorithms agree: {', '.join(tried)}")


def test_exhaustive_choices_are_cached(models_dir, tmp_path):
    model = os.path.join(models_dir, "resnet18", "model.onnx")
    cache = str(tmp_path / "algos.tsv")
    args = ["bench", "--model", model, "--batch", "4", "--iters", "1", "--warmup", "0",
            "--device", "cuda", "--algos", "--json", "--algo-cache", cache]
    first = run_visiond(*args)
    assert first.returncode == 0, first.stderr
    assert all(l["mode"] == "exhaustive" for l in json.loads(first.stdout)["algorithms"])
    lines = open(cache).read().splitlines()
    assert len(lines) >= 10 and all(len(l.split("\t")) == 4 for l in lines)
    second = run_visiond(*args)
    layers = json.loads(second.stdout)["algorithms"]
    assert all(l["mode"] == "cached" for l in layers)
    assert [l["chosen"] for l in layers] == \
        [l["chosen"] for l in json.loads(first.stdout)["algorithms"]]


def test_daemon_suite_on_cuda():
    env = dict(os.environ, VISIOND_TEST_DEVICE="cuda")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        os.path.join(ROOT, "tests", "daemon")], env=env, capture_output=True,
                       text=True, timeout=1800)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
