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
    finally:
        assert d.stop() == 0


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


def test_images_as_bytes_give_the_same_answers(repo_dir, tmp_path):
    photos = [os.path.join("/usr/share/darknet/data", p) for p in ("dog.jpg", "eagle.jpg")]
    answers = {}
    for transfer in ("floats", "bytes"):
        d = Daemon(repo_dir, config=config(tmp_path, image_transfer=transfer)).start()
        try:
            status, body = d.json("GET", "/v1/models")
            sq = next(m for m in body["models"] if m["name"] == "squeezenet")
            assert sq["image_transfer"] == transfer
            answers[transfer] = [d.classify("squeezenet", open(p, "rb").read(), "image/jpeg",
                                            top_k=5)[1]["results"][0]["predictions"]
                                 for p in photos]
        finally:
            assert d.stop() == 0
    for a, b in zip(answers["floats"], answers["bytes"]):
        assert [p["index"] for p in a] == [p["index"] for p in b]
        np.testing.assert_allclose([p["score"] for p in a], [p["score"] for p in b], rtol=1e-6)
