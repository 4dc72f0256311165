"""Features built for the GPU path that the CPU can exercise too: the CPU
fallback after device faults (injected here, as a testing aid, since no
fault can be caused on purpose on a real GPU), the per-layer algorithm
table, and images handed to the engine as bytes."""
import json
import os
import re
import subprocess

import numpy as np

from daemon import DEVICE, Daemon
from visiond_test import BIN


def config(tmp_path, **keys):
    path = tmp_path / "visiond.json"
    path.write_text(json.dumps(keys))
    return str(path)


def test_device_faults_fall_back_to_cpu(repo_dir, tmp_path, mnist_holdout):
    import io
    from PIL import Image
    x, y = mnist_holdout
    d = Daemon(repo_dir, config=config(tmp_path, inject_faults=3)).start()
    try:
        correct = 0
        for i in range(30):
            buf = io.BytesIO()
            Image.fromarray(x[i]).save(buf, "PNG")
            status, body = d.classify("mnist", buf.getvalue(), top_k=1)
            assert status == 200, body  # no request lost
            correct += body["results"][0]["predictions"][0]["index"] == y[i]
        assert correct >= 28
        text = d.request("GET", "/metrics")[2].decode()
        m = re.search(r'visiond_inference_fallbacks_total\{model="mnist"\} (\d+)', text)
        assert m and int(m.group(1)) >= 10, text[:2000]
        status, body = d.json("GET", "/v2/health/ready")
        assert status == 200 and body["degraded"] and body["cpu_fallback_models"] == ["mnist"]
        # and the log says so, with the device's error
        assert any("ran on the CPU instead (injected device fault" in l for l in d.log_lines), \
            d.log()[-2000:]
    finally:
        assert d.stop() == 0


def test_a_named_device_never_falls_back(tmp_path):
    """run and bench with a device named: a device fault is an error (exit 4)
    naming it, never a CPU result under the device's name; with auto the
    fallback happens and the summary line says so."""
    model = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models",
                         "mnist", "model.onnx")
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(0).random((2, 1, 28, 28), np.float32))
    out = str(tmp_path / "y.npy")
    run = [BIN, "run", "--model", model, "--input", str(x), "--output", out]
    r = subprocess.run(run + ["--device", "cpu", "--inject-faults", "1"], capture_output=True,
                       text=True)
    assert r.returncode == 4 and "injected device fault" in r.stderr, r.stderr
    r = subprocess.run(run + ["--device", "auto", "--inject-faults", "1"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert "1 batch fell back to the CPU: injected device fault" in r.stderr, r.stderr
    r = subprocess.run(run + ["--device", "cpu"], capture_output=True, text=True)
    assert r.returncode == 0 and "0 batches fell back" in r.stderr, r.stderr
    bench = [BIN, "bench", "--model", model, "--batch", "2", "--iters", "3", "--warmup", "1",
             "--json", "--inject-faults", "2"]
    r = subprocess.run(bench + ["--device", "cpu"], capture_output=True, text=True)
    assert r.returncode == 4 and "injected device fault" in r.stderr, r.stderr
    r = subprocess.run(bench + ["--device", "auto"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["fallbacks"] >= 3


def test_algorithm_table(repo_dir):
    d = Daemon(repo_dir).start()
    try:
        status, body = d.json("GET", "/v1/models/squeezenet/algorithms?batch=2")
        assert status == 200, body
        assert body["batch"] == 2 and body["model"] == "squeezenet"
        convs = body["layers"]
        assert len(convs) == 26  # every convolution of squeezenet 1.1
        for layer in convs:
            names = [c["name"] for c in layer["candidates"]]
            assert layer["chosen"] in names
            assert layer["mode"] in ("exhaustive", "heuristic", "cached", "forced")
        # the daemon and `visiond bench --algos` read the same report
        r = subprocess.run([BIN, "bench", "--model", os.path.join(repo_dir, "squeezenet",
                                                                   "model.onnx"),
                            "--batch", "2", "--iters", "1", "--warmup", "0", "--algos", "--json",
                            "--device", DEVICE], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        bench = json.loads(r.stdout)["algorithms"]
        assert [(l["layer"], l["mode"], l["chosen"]) for l in bench] == \
            [(l["layer"], l["mode"], l["chosen"]) for l in convs]
        assert [[(c["name"], c["status"]) for c in l["candidates"]] for l in bench] == \
            [[(c["name"], c["status"]) for c in l["candidates"]] for l in convs]
        if DEVICE == "cpu":
            # The CPU keeps activations in 16-channel blocks: the rule sends the
            # 3x3 expands with >= 32 input channels to blocked Winograd (fires
            # 6-12) and every other convolution to the blocked direct kernel.
            chosen = [l["chosen"] for l in convs]
            assert chosen.count("winograd_nchw16c") == 6, chosen
            assert chosen.count("direct_nchw16c") == 20, chosen
        status, body = d.json("GET", "/v1/models/squeezenet/algorithms?batch=0")
        assert status == 400
    finally:
        assert d.stop() == 0


def test_images_and_tensors_enter_the_same_graph(repo_dir, tmp_path):
    """An image POSTed to /classify enters the model as bytes and the
    graph's NormalizeImage node normalises it; the same image preprocessed
    by `visiond preprocess` and sent as an FP32 tensor to /v2 enters after
    it. Both must give the same scores."""
    photos = [os.path.join("/usr/share/darknet/data", p) for p in ("dog.jpg", "eagle.jpg")]
    d = Daemon(repo_dir).start()
    try:
        for i, photo in enumerate(photos):
            status, body = d.classify("squeezenet", open(photo, "rb").read(), "image/jpeg",
                                      top_k=5)
            assert status == 200, body
            as_bytes = body["results"][0]["predictions"]
            npy = str(tmp_path / f"x{i}.npy")
            r = subprocess.run([BIN, "preprocess", "--model-dir",
                                os.path.join(repo_dir, "squeezenet"), "--image", photo,
                                "--output", npy], capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stderr
            x = np.load(npy)
            status, out = d.json("POST", "/v2/models/squeezenet/infer", json.dumps(
                {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                             "data": x.ravel().tolist()}]}).encode(),
                {"Content-Type": "application/json"})
            assert status == 200, out
            logits = np.array(out["outputs"][0]["data"], dtype=np.float64)
            probs = np.exp(logits - logits.max())
            probs /= probs.sum()
            top = np.argsort(-probs)[:5]
            assert [p["index"] for p in as_bytes] == list(top)
            np.testing.assert_allclose([p["score"] for p in as_bytes], probs[top], rtol=1e-4,
                                       atol=1e-6)
    finally:
        assert d.stop() == 0


def test_gpu_suite_fails_without_a_gpu_when_one_is_expected():
    """tests/gpu skips without a GPU, but with VISIOND_EXPECT_GPU=1 every test
    fails: a GPU machine whose GPU went missing cannot pass as green."""
    import sys
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    probe = subprocess.run([BIN, "info", "--model", os.path.join(root, "models", "mnist",
                                                                  "model.onnx"),
                            "--device", "cuda"], capture_output=True, text=True)
    if probe.returncode == 0:
        import pytest
        pytest.skip("a GPU is here: tests/gpu runs for real")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           os.path.join(root, "tests", "gpu"), "-k", "the_device_is_the_backend"]
    skipped = subprocess.run(cmd, capture_output=True, text=True,
                             env={k: v for k, v in os.environ.items()
                                  if k != "VISIOND_EXPECT_GPU"})
    assert skipped.returncode == 0 and "skipped" in skipped.stdout, skipped.stdout[-1000:]
    failed = subprocess.run(cmd, capture_output=True, text=True,
                            env=dict(os.environ, VISIOND_EXPECT_GPU="1"))
    assert failed.returncode != 0, failed.stdout[-1000:]
    assert "VISIOND_EXPECT_GPU=1 but cuda is not usable" in failed.stdout, failed.stdout[-1000:]
