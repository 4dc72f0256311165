"""Every CPU convolution algorithm, on every micro-kernel this CPU can run,
against PyTorch, on the shapes that stress them: 1x1, 3x3 stride 1 and 2,
5x5, 7x7 stride 2, 11x11 stride 4, grouped, depthwise, dilated, channel
counts that are not multiples of 16, partial Winograd tiles, a fused
residual and activations with and without a vector epilogue.

A residual is either the conv's own input (True) or, in the "chain" cases,
an earlier map that nothing reads after the conv, so the plan puts the
conv's output in the residual's buffer (plan.h, PLAN_RESIDUAL_IN_PLACE):
blocked, NCHW ("chain_nchw": a channel Softmax reads the sum, which keeps
it NCHW, and one before it keeps the conv's input NCHW too) and, with 288
channels, more than one reduction chunk.

Each case is a "sandwich" exported from PyTorch: a 1x1 conv turns the NCHW
input into blocked activations, the conv under test runs blocked -> blocked
(or NCHW -> NCHW when `bare`, where the conv reads the graph input and
writes the graph output), and a last 1x1 conv reads its result. The conv
under test is forced to each algorithm `visiond bench --algos` lists as
applicable, and the report must show the forced algorithm was the one run.
"""
import functools
import json
import os
import re

import numpy as np
import pytest
import torch
from torch import nn

from visiond_test import run_visiond

# name: (cin, cout, kernel, stride, pad, dilation, groups, residual, act, hw, bare)
CASES = {
    "1x1":           (32, 48, 1, 1, 0, 1, 1, False, "relu", 13, False),
    "3x3":           (32, 64, 3, 1, 1, 1, 1, False, "relu", 15, False),
    "3x3_residual":  (48, 48, 3, 1, 1, 1, 1, True, "relu", 10, False),
    "3x3_odd_ch":    (24, 40, 3, 1, 1, 1, 1, False, "relu6", 9, False),
    "3x3_s2":        (24, 40, 3, 2, 1, 1, 1, False, "none", 17, False),
    "5x5":           (16, 20, 5, 1, 2, 1, 1, False, "leaky", 11, False),
    "7x7_s2_image":  (3, 32, 7, 2, 3, 1, 1, False, "relu", 30, True),
    "11x11_s4":      (3, 16, 11, 4, 2, 1, 1, False, "relu", 63, True),
    "3x3_bare":      (20, 36, 3, 1, 1, 1, 1, False, "none", 12, True),
    "grouped":       (32, 64, 3, 1, 1, 1, 4, False, "relu", 9, False),
    "depthwise":     (48, 48, 3, 1, 1, 1, 48, True, "relu6", 14, False),
    "depthwise_s2":  (40, 40, 5, 2, 2, 1, 40, False, "hardswish", 15, False),
    "dilated":       (32, 32, 3, 1, 2, 2, 1, False, "sigmoid", 12, False),
    # the padded-plane depthwise path (stride 1, not 3x3): ConvNeXt's 7x7,
    # a dilated 5x5 as in DeepLab's MobileNetV3, wider than one 16-column tile
    "depthwise_7x7": (32, 32, 7, 1, 3, 1, 32, True, "none", 19, False),
    "dw_5x5_dil2":   (24, 24, 5, 1, 4, 2, 24, False, "hardswish", 21, False),
    "1x1_in_place":  (288, 288, 1, 1, 0, 1, 1, "chain", "relu", 7, False),
    "3x3_in_place":  (48, 48, 3, 1, 1, 1, 1, "chain", "relu", 10, False),
    "dw_in_place":   (48, 48, 3, 1, 1, 1, 48, "chain", "relu6", 14, False),
    "grouped_in_place": (32, 32, 3, 1, 1, 1, 4, "chain", "relu", 9, False),
    "3x3_in_place_nchw": (32, 32, 3, 1, 1, 1, 1, "chain_nchw", "relu", 12, False),
    "1x1_in_place_nchw": (32, 32, 1, 1, 0, 1, 1, "chain_nchw", "none", 12, False),
    "dw_in_place_nchw": (48, 48, 3, 1, 1, 1, 48, "chain_nchw", "relu", 14, False),
}
BATCH = 2
ISAS = ["avx512", "avx2", "neon", "generic"]


def activation(name):
    return {"relu": nn.ReLU(), "relu6": nn.ReLU6(), "leaky": nn.LeakyReLU(0.1),
            "sigmoid": nn.Sigmoid(), "hardswish": nn.Hardswish(), "none": nn.Identity()}[name]


class Sandwich(nn.Module):
    def __init__(self, cin, cout, k, stride, pad, dil, groups, residual, act, bare):
        super().__init__()
        self.bare = bare
        self.pre = nn.Conv2d(3, cin, 1)
        self.conv = nn.Conv2d(cin, cout, k, stride, pad, dil, groups)
        self.act = activation(act)
        self.residual = residual
        if residual in ("chain", "chain_nchw"):
            self.mid = nn.Conv2d(cin, cin, 1)
        self.post = nn.Conv2d(cout, 8, 1)

    def forward(self, x):
        if self.bare:
            return self.act(self.conv(x))
        h = torch.relu(self.pre(x))
        if self.residual in ("chain", "chain_nchw"):
            g = torch.relu(self.mid(h))
            if self.residual == "chain_nchw":
                g = torch.softmax(g, 1)
            y = self.act(self.conv(g) + h)
            return self.post(torch.softmax(y, 1) if self.residual == "chain_nchw" else y)
        y = self.conv(h)
        if self.residual:
            y = y + h
        return self.post(self.act(y))


@pytest.fixture(scope="module")
def cases_dir(build_dir):
    out = os.path.join(build_dir, "cpu_algos")
    os.makedirs(out, exist_ok=True)
    return out


def export(case, directory):
    cin, cout, k, stride, pad, dil, groups, residual, act, hw, bare = CASES[case]
    torch.manual_seed(sum(case.encode()))
    model = Sandwich(cin, cout, k, stride, pad, dil, groups, residual, act, bare).eval()
    x = torch.randn(BATCH, cin if bare else 3, hw, hw)
    path = os.path.join(directory, f"{case}.onnx")
    torch.onnx.export(model, x, path, opset_version=13, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    with torch.no_grad():
        ref = model(x).numpy()
    np.save(os.path.join(directory, f"{case}_x.npy"), x.numpy())
    return path, ref


def target_report(path, env, algo=None):
    args = ["bench", "--model", path, "--batch", str(BATCH), "--iters", "1", "--warmup", "0",
            "--algos", "--json"]
    if algo:
        args += ["--conv-algo", algo]
    r = run_visiond(*args, env=env)
    assert r.returncode == 0, r.stderr
    algos = json.loads(r.stdout)["algorithms"]
    # the conv under test: the only one in a bare case, else the one before
    # the last (the chains have a 1x1 conv in front of it)
    return algos[0] if len(algos) == 1 else algos[-2]


def isa_env(isa):
    return dict(os.environ, VISIOND_CPU_ISA=isa)


# the micro-kernel set each VISIOND_CPU_ISA value names, as the binary reports it
ISA_NAMES = {"avx512": "AVX-512", "avx2": "AVX2+FMA", "neon": "NEON", "generic": "portable C"}
MNIST = os.path.join(os.path.dirname(__file__), "..", "..", "models", "mnist", "model.onnx")


@functools.lru_cache(maxsize=None)
def cpu_has(isa):
    """Whether the binary under test runs this kernel set: asked of the
    binary itself (under qemu, the host's /proc/cpuinfo says nothing)."""
    r = run_visiond("info", "--model", MNIST, "--device", "cpu", env=isa_env(isa))
    assert r.returncode == 0, r.stderr
    return f"convolutions: {ISA_NAMES[isa]} kernels" in r.stdout


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("case", list(CASES))
def test_every_cpu_algorithm_matches_pytorch(cases_dir, tmp_path, case, isa):
    if not cpu_has(isa):
        pytest.skip(f"this CPU has no {isa}")
    path, ref = export(case, cases_dir)
    env = isa_env(isa)
    applicable = [c["name"] for c in target_report(path, env)["candidates"]
                  if c["status"] == "ok"]
    assert applicable, "no algorithm applies"
    tol = 1e-4 * float(np.abs(ref).max()) + 1e-5
    for algo in applicable:
        report = target_report(path, env, algo)
        assert report["chosen"] == algo and report["mode"] == "forced", report
        out = tmp_path / f"{algo}.npy"
        r = run_visiond("run", "--model", path, "--input",
                        os.path.join(cases_dir, f"{case}_x.npy"), "--output", str(out),
                        "--device", "cpu", "--conv-algo", algo, env=env)
        assert r.returncode == 0, r.stderr
        got = np.load(out)
        assert got.shape == ref.shape
        err = float(np.abs(got - ref).max())
        assert err <= tol, f"{case} {algo} on {isa}: max|diff| {err:.3g} > {tol:.3g}"


def test_blocked_algorithms_are_the_ones_chosen(cases_dir):
    """The sandwiches really put the middle conv on blocked tensors."""
    expect = {"3x3": "winograd_nchw16c", "1x1": "direct_nchw16c",
              "depthwise": "depthwise_nchw16c", "grouped": "im2col_gemm"}
    for case, algo in expect.items():
        path, _ = export(case, cases_dir)
        names = {c["name"]: c["status"] for c in target_report(path, None)["candidates"]}
        assert names[algo] == "ok", (case, names)


def gemm_model(path, m, k, n, trans_b, alpha, beta, relu):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(m * 100 + n + trans_b)
    w = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    c = rng.standard_normal(n).astype(np.float32)
    nodes = [helper.make_node("Gemm", ["a", "w", "c"], ["g"], transB=trans_b, alpha=alpha,
                              beta=beta)]
    nodes.append(helper.make_node("Relu" if relu else "Identity", ["g"], ["y"]))
    graph = helper.make_graph(
        nodes, "gemm", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(c, "c")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return w, c


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("m", [1, 3, 8, 9])
@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm_small_and_large_batch_matches_numpy(cases_dir, tmp_path, isa, m, trans_b):
    """The classifier path: the streaming kernel for m <= 8 rows (with
    column and depth tails: n = 70, k = 37), SGEMM above."""
    if not cpu_has(isa):
        pytest.skip(f"this CPU has no {isa}")
    k, n, alpha, beta = 37, 70, 0.5, 2.0
    path = os.path.join(cases_dir, f"gemm_{m}_{trans_b}.onnx")
    w, c = gemm_model(path, m, k, n, trans_b, alpha, beta, relu=True)
    a = np.random.default_rng(m).standard_normal((m, k)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    ref = np.maximum(alpha * (a @ (w.T if trans_b else w)) + beta * c, 0)
    r = run_visiond("run", "--model", path, "--input", str(tmp_path / "a.npy"), "--output",
                    str(tmp_path / "y.npy"), "--device", "cpu", env=isa_env(isa))
    assert r.returncode == 0, r.stderr
    got = np.load(tmp_path / "y.npy")
    assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max() + 1e-5


# name: (max?, kernel, stride, pad, ceil_mode, count_include_pad, dilation, hw)
POOLS = {
    "max3_s2_ceil":        (True, 3, 2, 0, True, False, 1, 20),
    "max2_s2":             (True, 2, 2, 0, False, False, 1, 17),
    "max3_s1_pad":         (True, 3, 1, 1, False, False, 1, 13),
    "max3_s2_dilated":     (True, 3, 2, 1, False, False, 2, 23),
    "avg2_s2":             (False, 2, 2, 0, False, False, 1, 16),
    "avg3_s1_pad_incl":    (False, 3, 1, 1, False, True, 1, 11),
    "avg3_s2_pad_excl":    (False, 3, 2, 1, True, False, 1, 14),
    "avg5_s3_ceil_incl":   (False, 5, 3, 2, True, True, 1, 19),
}


def pool_sandwich(path, is_max, k, stride, pad, ceil, incl, dil, hw):
    """Conv 1x1 (3 -> 40 channels: a partial last block) -> pool -> Conv 1x1,
    written with onnx.helper so the pool keeps its own pads (PyTorch exports
    count_include_pad as a separate Pad)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(k * 10 + stride)
    w1 = rng.standard_normal((40, 3, 1, 1)).astype(np.float32)
    w2 = rng.standard_normal((8, 40, 1, 1)).astype(np.float32)
    attrs = dict(kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4,
                 ceil_mode=int(ceil))
    if is_max:
        attrs["dilations"] = [dil, dil]
    else:
        attrs["count_include_pad"] = int(incl)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["h"]),
             helper.make_node("MaxPool" if is_max else "AveragePool", ["h"], ["p"], **attrs),
             helper.make_node("Conv", ["p", "w2"], ["y"])]
    graph = helper.make_graph(
        nodes, "pool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, hw, hw])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return torch.from_numpy(w1), torch.from_numpy(w2)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("case", list(POOLS))
def test_blocked_pools_match_pytorch(cases_dir, tmp_path, case, isa):
    if not cpu_has(isa):
        pytest.skip(f"this CPU has no {isa}")
    is_max, k, stride, pad, ceil, incl, dil, hw = POOLS[case]
    path = os.path.join(cases_dir, f"pool_{case}.onnx")
    w1, w2 = pool_sandwich(path, is_max, k, stride, pad, ceil, incl, dil, hw)
    x = torch.randn(BATCH, 3, hw, hw, generator=torch.Generator().manual_seed(hw))
    h = torch.nn.functional.conv2d(x, w1)  # negative values: max pads with -inf
    if is_max:
        h = torch.nn.functional.max_pool2d(h, k, stride, pad, dil, ceil_mode=ceil)
    else:
        h = torch.nn.functional.avg_pool2d(h, k, stride, pad, ceil_mode=ceil,
                                           count_include_pad=incl)
    ref = torch.nn.functional.conv2d(h, w2).numpy()
    np.save(tmp_path / "x.npy", x.numpy())
    r = run_visiond("bench", "--model", path, "--batch", str(BATCH), "--iters", "1",
                    "--warmup", "0", "--json", env=isa_env(isa))
    assert r.returncode == 0, r.stderr
    assert "Pool" in json.loads(r.stdout)["layers"][1]["op"]
    r = run_visiond("run", "--model", path, "--input", str(tmp_path / "x.npy"), "--output",
                    str(tmp_path / "y.npy"), "--device", "cpu", env=isa_env(isa))
    assert r.returncode == 0, r.stderr
    got = np.load(tmp_path / "y.npy")
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max() + 1e-5, case


KEY = re.compile(r"^cpu:[^|]+\|threads\d+\|n\d+ c\d+ h\d+ w\d+\|m\d+ k\d+x\d+\|s\d+,\d+\|"
                 r"d\d+,\d+\|p\d+,\d+,\d+,\d+\|g\d+\|nchw(16c)?>nchw(16c)?$")


def test_one_policy_and_one_cache(cases_dir, tmp_path):
    """The engine's selection policy on the CPU: "exhaustive" times every
    algorithm that can run and writes the cache in the one key format;
    "auto" then takes the cached choices; "heuristic" times nothing; a
    name the backend does not have is refused with the names it has."""
    path, _ = export("3x3", cases_dir)
    cache = str(tmp_path / "algos.tsv")

    def report(*extra):
        r = run_visiond("bench", "--model", path, "--batch", str(BATCH), "--iters", "1",
                        "--warmup", "0", "--algos", "--json", "--device", "cpu", *extra)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)["algorithms"]

    first = report("--conv-algo", "exhaustive", "--algo-cache", cache)
    assert all(l["mode"] == "exhaustive" for l in first)
    for layer in first:
        timed = [c for c in layer["candidates"] if c["ms"] is not None and c["ms"] >= 0]
        assert {c["name"] for c in timed} == \
            {c["name"] for c in layer["candidates"] if c["status"] == "ok"}
        assert layer["chosen"] == min(timed, key=lambda c: c["ms"])["name"]
    lines = open(cache).read().splitlines()
    assert len(lines) == len(first)
    for line in lines:
        key, algo, workspace, ms = line.split("\t")
        assert KEY.match(key), key
        assert int(workspace) >= 0 and float(ms) >= 0
    again = report("--algo-cache", cache)  # auto: the cache's choices
    assert [l["mode"] for l in again] == ["cached"] * len(first)
    assert [l["chosen"] for l in again] == [l["chosen"] for l in first]
    plain = report("--conv-algo", "heuristic", "--algo-cache", cache)
    assert all(l["mode"] == "heuristic" for l in plain)
    assert all(c["ms"] is None or c["ms"] < 0 for l in plain for c in l["candidates"])
    r = run_visiond("bench", "--model", path, "--batch", "1", "--iters", "1", "--device", "cpu",
                    "--conv-algo", "WINOGRAD_NONFUSED")
    assert r.returncode != 0
    assert "unknown convolution algorithm 'WINOGRAD_NONFUSED' for the cpu backend" in r.stderr
    assert "winograd_nchw16c" in r.stderr
