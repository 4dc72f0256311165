"""The CUDA backend on a real GPU, in tests that cannot pass by accident.

- `visiond run` and `bench` with `--device cuda` are strict: a device fault
  fails them (exit 4), and each run here also checks its summary line says
  no batch fell back to the CPU, so a GPU result is never a CPU one;
- the conformance models (VISIOND_GPU_MODELS, comma-separated, picks a
  subset) at batch 1 and 4: GPU within 1e-3 relative of the CPU backend and
  of PyTorch;
- convolution shapes (1x1, 3x3 stride 1 and 2, 5x5, 7x7 stride 2, 11x11
  stride 4, grouped, depthwise, dilated): every algorithm the backend
  reports as able to run, forced in turn, gives the CPU's output;
- exhaustive selection writes the algorithm cache (a shape met twice in one
  run is timed once) and a second load reads all of it back;
- the daemon on the device: classify, detect and v2 infer over HTTP on
  images generated here (a bare GPU machine has no photo packages), answers
  equal to a CPU daemon's, no batch fallen back, readiness not degraded.

Without a GPU every test is skipped with the reason, unless
VISIOND_EXPECT_GPU=1, when each fails instead (an all-skipped run must not
look green on a GPU machine). VISIOND_GPU_DEVICE=cpu lets the CPU stand in
for the GPU: the whole suite runs as a rehearsal (make gpu-test does that).
"""
import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "conformance"))
sys.path.insert(0, os.path.join(HERE, "..", "daemon"))
from make_models import BATCHES, MODELS  # noqa: E402
from visiond_test import BUILD, ROOT, run_visiond  # noqa: E402

DEVICE = os.environ.get("VISIOND_GPU_DEVICE", "cuda")
EXPECT = os.environ.get("VISIOND_EXPECT_GPU") == "1"
SUBSET = [m for m in os.environ.get("VISIOND_GPU_MODELS", "").split(",") if m] or list(MODELS)
MNIST = os.path.join(ROOT, "models", "mnist", "model.onnx")

_probe = run_visiond("info", "--model", MNIST, "--device", DEVICE)
_backend = next((l.split(None, 1)[1] for l in _probe.stdout.splitlines()
                 if l.startswith("backend")), "")
GPU = _probe.returncode == 0 and _backend.startswith(DEVICE.split(":")[0])
WHY = _probe.stderr.strip() or _probe.stdout.strip() or f"backend is '{_backend}'"

if not GPU and not EXPECT:
    pytestmark = pytest.mark.skipif(True, reason=f"no GPU here: {WHY}")


@pytest.fixture(autouse=True)
def _a_gpu_is_there():
    if not GPU:  # only reached with VISIOND_EXPECT_GPU=1
        pytest.fail(f"VISIOND_EXPECT_GPU=1 but {DEVICE} is not usable: {WHY}")


def test_the_device_is_the_backend():
    """visiond info names the device's backend (the probe's own check, shown)."""
    print(f"{DEVICE}: {_backend}")
    assert _backend.startswith(DEVICE.split(":")[0])


ALGOS_SHAPES = {  # name: (C, M, H, kernel, stride, pad, dilation, group)
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
                                                 "make_models.py"), out, *SUBSET], check=True)
    return out


def run(model, x_path, out_path, device, *extra):
    r = run_visiond("run", "--model", model, "--input", x_path, "--output", out_path,
                    "--device", device, *extra)
    assert r.returncode == 0, r.stderr
    assert f"on {device.split(':')[0]}" in r.stderr and "0 batches fell back" in r.stderr, \
        r.stderr
    return np.load(out_path)


def close(a, b, rel=1e-3):
    return float(np.abs(a - b).max()) <= rel * float(np.abs(b).max())


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("model", SUBSET)
def test_model_on_device_matches_cpu_and_pytorch(models_dir, tmp_path, model, batch):
    d = os.path.join(models_dir, model)
    x = os.path.join(d, f"input_b{batch}.npy")
    cpu = run(os.path.join(d, "model.onnx"), x, str(tmp_path / "cpu.npy"), "cpu")
    dev = run(os.path.join(d, "model.onnx"), x, str(tmp_path / "dev.npy"), DEVICE)
    torch_out = np.load(os.path.join(d, f"torch_b{batch}.npy"))
    assert close(dev, cpu), float(np.abs(dev - cpu).max())
    assert close(dev, torch_out), float(np.abs(dev - torch_out).max())


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


def algo_report(model, *extra):
    r = run_visiond("bench", "--model", model, "--batch", "2", "--iters", "1", "--warmup", "0",
                    "--device", DEVICE, "--algos", "--json", *extra)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["fallbacks"] == 0
    return out["algorithms"][0]


@pytest.mark.parametrize("shape", list(ALGOS_SHAPES))
def test_every_algorithm_that_can_run_agrees(tmp_path, shape):
    c, m, h, k, s, p, dil, g = ALGOS_SHAPES[shape]
    model = str(tmp_path / "conv.onnx")
    conv_model(model, c, m, h, k, s, p, dil, g)
    x = np.random.default_rng(1).standard_normal((2, c, h, h)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    cpu = run(model, str(tmp_path / "x.npy"), str(tmp_path / "cpu.npy"), "cpu")
    names = [cand["name"] for cand in algo_report(model)["candidates"]
             if cand["status"].startswith("ok")]
    tried = []
    for algo in names:
        layer = algo_report(model, "--conv-algo", algo)
        if layer["mode"] != "forced" or layer["chosen"] != algo:
            continue  # not for this shape after all (the table says why)
        out = run(model, str(tmp_path / "x.npy"), str(tmp_path / "dev.npy"), DEVICE,
                  "--conv-algo", algo)
        assert close(out, cpu), (algo, float(np.abs(out - cpu).max()))
        tried.append(algo)
    if DEVICE.startswith("cuda"):
        assert "IMPLICIT_GEMM" in tried and "im2col_gemm" in tried, tried
    assert len(tried) >= 1, names
    print(f"{shape}: {len(tried)} algorithms agree: {', '.join(tried)}")


def test_exhaustive_choices_are_cached(models_dir, tmp_path):
    model = os.path.join(models_dir, SUBSET[0], "model.onnx")
    cache = str(tmp_path / "algos.tsv")
    args = ["bench", "--model", model, "--batch", "2", "--iters", "1", "--warmup", "0",
            "--device", DEVICE, "--algos", "--json", "--algo-cache", cache,
            "--conv-algo", "exhaustive"]
    first = run_visiond(*args)
    assert first.returncode == 0, first.stderr
    layers = json.loads(first.stdout)["algorithms"]
    # a shape met again in the same run comes from the cache: timed once
    assert {l["mode"] for l in layers} <= {"exhaustive", "cached"}, layers
    assert any(l["mode"] == "exhaustive" for l in layers)
    lines = open(cache).read().splitlines()
    assert len(lines) == sum(l["mode"] == "exhaustive" for l in layers)
    assert all(len(l.split("\t")) == 4 for l in lines)
    second = run_visiond(*args)
    assert second.returncode == 0, second.stderr
    again = json.loads(second.stdout)["algorithms"]
    assert all(l["mode"] == "cached" for l in again)
    assert [l["chosen"] for l in again] == [l["chosen"] for l in layers]


# --- the daemon on the device, with generated images ------------------------------

def generated_images(n=6):
    """Photos a bare machine can make: gradients, discs and bars, JPEG and PNG."""
    from PIL import Image, ImageDraw
    rng = np.random.default_rng(5)
    out = []
    for i in range(n):
        w, h = int(rng.integers(200, 900)), int(rng.integers(200, 700))
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([(xx * 255 // w), (yy * 255 // h), ((xx + yy) * 127 // (w + h))], -1)
        img = Image.fromarray(base.astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(5):
            x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
            draw.ellipse([x0, y0, x0 + int(rng.integers(10, 120)), y0 + int(rng.integers(10, 120))],
                         fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
        buf = io.BytesIO()
        fmt = "JPEG" if i % 2 == 0 else "PNG"
        img.save(buf, fmt)
        out.append((buf.getvalue(), f"image/{fmt.lower()}"))
    return out


def test_daemon_on_device_answers_as_the_cpu(models_dir, tmp_path):
    from daemon import Daemon
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("mnist", "faces"):
        shutil.copytree(os.path.join(ROOT, "models", name), repo / name)
    cls = SUBSET[0]
    (repo / cls).mkdir()
    os.symlink(os.path.join(models_dir, cls, "model.onnx"), repo / cls / "model.onnx")
    (repo / cls / "model.json").write_text(json.dumps(
        {"input": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}}))
    images = generated_images()
    dev, cpu = Daemon(str(repo), device=DEVICE).start(), Daemon(str(repo), device="cpu").start()
    try:
        for body, ctype in images:
            h = {"Content-Type": ctype}
            a = dev.json("POST", f"/v1/models/{cls}/classify?top_k=5", body, h)
            b = cpu.json("POST", f"/v1/models/{cls}/classify?top_k=5", body, h)
            assert a[0] == b[0] == 200, (a, b)
            pa, pb = a[1]["results"][0]["predictions"], b[1]["results"][0]["predictions"]
            assert pa[0]["index"] == pb[0]["index"]
            assert all(abs(x["score"] - y["score"]) < 1e-3 for x, y in zip(pa, pb))
            a = dev.json("POST", "/v1/models/faces/detect", body, h)
            b = cpu.json("POST", "/v1/models/faces/detect", body, h)
            assert a[0] == b[0] == 200
            da, db = a[1]["results"][0]["detections"], b[1]["results"][0]["detections"]
            assert len(da) == len(db)
            for x, y in zip(da, db):
                assert np.abs(np.array(x["box"]) - y["box"]).max() < 0.5
        x = np.random.default_rng(3).random((2, 1, 28, 28)).astype(np.float32)
        req = json.dumps({"inputs": [{"name": "image", "shape": [2, 1, 28, 28],
                                      "datatype": "FP32", "data": x.ravel().tolist()}]})
        a = dev.json("POST", "/v2/models/mnist/infer", req, {"Content-Type": "application/json"})
        b = cpu.json("POST", "/v2/models/mnist/infer", req, {"Content-Type": "application/json"})
        assert a[0] == b[0] == 200
        assert np.allclose(a[1]["outputs"][0]["data"], b[1]["outputs"][0]["data"], atol=1e-3)
        text = dev.request("GET", "/metrics")[2].decode()
        fallbacks = [l for l in text.splitlines()
                     if l.startswith("visiond_inference_fallbacks_total{")]
        assert fallbacks and all(l.endswith(" 0") for l in fallbacks), fallbacks
        backends = [l for l in text.splitlines() if l.startswith("visiond_backend_info{")]
        assert all(f'backend="{DEVICE.split(":")[0]}"' in l for l in backends), backends
        status, ready = dev.json("GET", "/v2/health/ready")
        assert status == 200 and not ready["degraded"], ready
    finally:
        dev.stop()
        cpu.stop()
