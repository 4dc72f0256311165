"""The daemon over real HTTP on loopback: classify, batching, errors,
KServe v2, and the models listing. One daemon serves the whole module."""
import concurrent.futures as cf
import io
import json
import os
import shutil
import socket
import subprocess

import numpy as np
import pytest
from PIL import Image

from daemon import DEVICE, Daemon, multipart
from visiond_test import run_visiond


@pytest.fixture(scope="module")
def daemon(repo_dir):
    d = Daemon(repo_dir).start()
    yield d
    assert d.stop() == 0, d.log()


def png(arr):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_default_model_accuracy_over_http(daemon, mnist_holdout):
    x, y = mnist_holdout
    assert len(x) >= 500

    def one(i):
        status, body = daemon.classify("mnist", png(x[i]), top_k=1)
        assert status == 200, body
        return body["results"][0]["predictions"][0]["index"]

    with cf.ThreadPoolExecutor(8) as pool:
        predicted = list(pool.map(one, range(len(x))))
    accuracy = float(np.mean(np.asarray(predicted) == y))
    print(f"default model: held-out accuracy over HTTP {accuracy:.4f} on {len(x)} PNG images")
    readme = open(os.path.join(os.path.dirname(__file__), "..", "..", "models", "mnist",
                               "README.md")).read()
    stated = float(readme.split("held-out accuracy: ")[1].split("%")[0]) / 100
    assert accuracy >= stated - 0.002, (accuracy, stated)


def test_concurrent_clients_batch_and_match_unbatched(daemon, mnist_holdout):
    x, _ = mnist_holdout
    images = [png(x[i]) for i in range(64)]
    # unbatched reference: one request at a time
    alone = []
    for img in images:
        status, body = daemon.classify("mnist", img, top_k=10)
        assert status == 200 and body["batch_size"] == 1
        alone.append(body["results"][0]["predictions"])

    def client(c):
        out = []
        for k in range(8):
            i = (c * 8 + k) % len(images)
            status, body = daemon.classify("mnist", images[i], top_k=10)
            out.append((i, status, body))
        return out

    with cf.ThreadPoolExecutor(32) as pool:
        results = [r for rs in pool.map(client, range(32)) for r in rs]
    assert len(results) == 256
    assert all(status == 200 for _, status, _ in results)
    sizes = [body["batch_size"] for _, _, body in results]
    print(f"32 clients: batch sizes seen {sorted(set(sizes))}, mean {np.mean(sizes):.1f}")
    assert max(sizes) > 1
    for i, _, body in results:
        got = body["results"][0]["predictions"]
        assert [p["index"] for p in got] == [p["index"] for p in alone[i]]
        np.testing.assert_allclose([p["score"] for p in got], [p["score"] for p in alone[i]],
                                   rtol=1e-5, atol=1e-7)


def test_multipart_images_answer_in_order(daemon, mnist_holdout):
    x, y = mnist_holdout
    idx = [0, 200, 400, 600, 800, 1000, 1200, 1400]
    body, headers = multipart([("image", f"d{i}.png", "image/png", png(x[i])) for i in idx])
    status, resp = daemon.json("POST", "/v1/models/mnist/classify?top_k=1", body, headers)
    assert status == 200, resp
    assert len(resp["results"]) == len(idx)
    for k, i in enumerate(idx):
        single = daemon.classify("mnist", png(x[i]), top_k=1)[1]
        assert resp["results"][k]["predictions"][0]["index"] == \
            single["results"][0]["predictions"][0]["index"]
    assert set(resp["timing_ms"]) == {"queue", "preprocess", "inference", "total"}


def test_photos_top5_match_run_on_same_tensor(daemon, repo_dir, tmp_path):
    photos = sorted(p for p in os.listdir("/usr/share/darknet/data") if p.endswith(".jpg"))
    assert len(photos) >= 5
    paths = [os.path.join("/usr/share/darknet/data", p) for p in photos]
    model_dir = os.path.join(repo_dir, "squeezenet")
    tensor = tmp_path / "x.npy"
    args = ["preprocess", "--model-dir", model_dir, "--output", str(tensor)]
    for p in paths:
        args += ["--image", p]
    r = run_visiond(*args)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "y.npy"
    r = run_visiond("run", "--model", os.path.join(model_dir, "model.onnx"), "--input",
                    str(tensor), "--output", str(out))
    assert r.returncode == 0, r.stderr
    logits = np.load(out)
    labels = open(os.path.join(model_dir, "labels.txt")).read().splitlines()
    for k, p in enumerate(paths):
        e = np.exp(logits[k] - logits[k].max())
        probs = e / e.sum()
        want = list(np.argsort(-probs, kind="stable")[:5])
        status, body = daemon.classify("squeezenet", open(p, "rb").read(), "image/jpeg")
        assert status == 200, body
        preds = body["results"][0]["predictions"]
        assert [q["index"] for q in preds] == want, p
        assert [q["label"] for q in preds] == [labels[i] for i in want]
        np.testing.assert_allclose([q["score"] for q in preds], probs[want], rtol=1e-4)


def test_models_listing(daemon):
    status, body = daemon.json("GET", "/v1/models")
    assert status == 200
    models = {m["name"]: m for m in body["models"]}
    assert models["mnist"]["state"] == "ready"
    assert models["mnist"]["input"]["color"] == "gray"
    assert models["mnist"]["batching"]["max_batch_size"] == 16
    assert models["mnist"]["backend"].startswith(DEVICE.split(":")[0])
    assert models["squeezenet"]["input"]["resize_shorter_side"] == 256
    assert models["broken"]["state"] == "failed"
    assert "unknown key 'widht' in input" in models["broken"]["error"]


def test_broken_model_logged_and_others_serve(daemon):
    assert "model broken failed to load" in daemon.log()
    assert "widht" in daemon.log()
    status, body = daemon.json("GET", "/readyz")
    assert status == 200 and body["degraded"] and body["failed_models"] == ["broken"]
    status, body = daemon.classify("broken", b"\x89PNG")
    assert status == 503 and "failed" in body["error"]


ERROR_CASES = [
    # (method, path, body, headers, status, words in the error)
    ("POST", "/v1/models/nosuch/classify", b"x", {"Content-Type": "image/png"}, 404,
     "unknown model"),
    ("GET", "/v1/models/mnist/classify", None, {}, 405, "not allowed"),
    ("DELETE", "/v1/models", None, {}, 405, "not allowed"),
    ("POST", "/v1/models/mnist/classify", b"hello", {"Content-Type": "text/plain"}, 415,
     "unsupported content type"),
    ("POST", "/v2/models/mnist/infer", b"{}", {"Content-Type": "text/xml"}, 415,
     "unsupported content type"),
    ("POST", "/v1/models/mnist/classify", b"not an image at all",
     {"Content-Type": "image/png"}, 400, "neither a JPEG nor a PNG"),
    ("POST", "/v1/models/mnist/classify", b"\x89PNG\r\n\x1a\n" + b"\0" * 100,
     {"Content-Type": "image/png"}, 400, "undecodable PNG"),
    ("POST", "/v1/models/mnist/classify", b"\xff\xd8\xff\xe0" + b"\x11" * 100,
     {"Content-Type": "image/jpeg"}, 400, "truncated JPEG"),
    ("POST", "/v1/models/mnist/classify", b"", {"Content-Type": "image/png"}, 400, "empty"),
    ("POST", "/v1/models/mnist/classify?top_k=0", b"x", {"Content-Type": "image/png"}, 400,
     "top_k"),
    ("POST", "/v2/models/mnist/infer", b"{not json", {"Content-Type": "application/json"}, 400,
     "invalid JSON"),
    ("POST", "/v2/models/mnist/infer", b'{"inputs": 3}', {}, 400, "inputs"),
    ("GET", "/nowhere", None, {}, 404, "no such endpoint"),
    ("GET", "/v2/models/nosuch", None, {}, 404, "unknown model"),
    ("GET", "/v2/models/mnist/versions/1/infer", None, {}, 405, "not allowed"),
    ("POST", "/v2/health/live", b"", {}, 405, "not allowed"),
    ("GET", "/v2/models/mnist/extra/segments", None, {}, 404, "no such endpoint"),
    ("GET", "/v1/models//classify", None, {}, 404, "no such endpoint"),
]


@pytest.mark.parametrize("method,path,body,headers,status,words", ERROR_CASES)
def test_errors_are_json_and_daemon_keeps_serving(daemon, method, path, body, headers, status,
                                                  words):
    got, hdrs, data = daemon.request(method, path, body, headers)
    assert got == status, data
    assert hdrs.get("Content-Type") == "application/json"
    assert words in json.loads(data)["error"]
    if status == 405:
        assert hdrs.get("Allow") == ("POST" if path.endswith(("/classify", "/infer"))
                                     else "GET, HEAD"), hdrs
    assert daemon.request("GET", "/readyz")[0] == 200


ROUTES = [
    # every endpoint of the route table, as a client writes it: (method, path, status)
    ("GET", "/metrics", 200), ("GET", "/healthz", 200), ("GET", "/readyz", 200),
    ("GET", "/v1/models", 200), ("GET", "/v1/models/", 200),
    ("GET", "/v1/models/mnist/algorithms", 200), ("GET", "/v2", 200), ("GET", "/v2/", 200),
    ("GET", "/v2/health/live", 200), ("HEAD", "/v2/health/live", 200),
    ("GET", "/v2/health/ready", 200), ("GET", "/v2/models/mnist", 200),
    ("GET", "/v2/models/mnist/versions/1", 200), ("GET", "/v2/models/mnist/ready", 200),
    ("GET", "/v2/models/mnist/versions/1/ready", 200),
]


@pytest.mark.parametrize("method,path,status", ROUTES)
def test_every_route_answers(daemon, method, path, status):
    assert daemon.request(method, path)[0] == status


def test_infer_with_a_version_in_the_path(daemon):
    body = json.dumps({"inputs": [{"name": "image", "shape": [1, 1, 28, 28], "datatype": "FP32",
                                   "data": [0.0] * 784}]}).encode()
    for path in ("/v2/models/mnist/infer", "/v2/models/mnist/versions/1/infer"):
        got, _, data = daemon.request("POST", path, body, {"Content-Type": "application/json"})
        assert got == 200, data
        assert json.loads(data)["outputs"][0]["shape"] == [1, 10]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_body_over_limit_refused(daemon):
    big = b"\0" * (16 * 1024 * 1024 + 1)
    # declared Content-Length over the limit: answered before any body byte is sent
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as s:
        s.sendall(b"POST /v1/models/mnist/classify HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: image/png\r\nContent-Length: 16777217\r\n\r\n")
        reply = b""
        while b"}" not in reply:
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 413"), reply
    assert b"limit" in reply
    # chunked, so only counting can tell
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                        "-H", "Content-Type: image/png", "-H", "Transfer-Encoding: chunked",
                        "--data-binary", "@-", f"http://127.0.0.1:{daemon.port}"
                        "/v1/models/mnist/classify"], input=big, capture_output=True)
    assert r.stdout == b"413"
    assert daemon.request("GET", "/readyz")[0] == 200


def test_image_formats(daemon, tmp_path):
    photo = Image.open("/usr/share/darknet/data/dog.jpg").convert("RGB")
    ref_status, ref = daemon.classify("squeezenet", png(np.asarray(photo)))
    assert ref_status == 200
    variants = {}
    buf = io.BytesIO()
    photo.convert("L").save(buf, "JPEG", quality=95)
    variants["gray jpeg"] = (buf.getvalue(), "image/jpeg", 0.2)
    buf = io.BytesIO()
    photo.save(buf, "JPEG", quality=95, progressive=True)
    variants["progressive jpeg"] = (buf.getvalue(), "image/jpeg", 0.05)
    buf = io.BytesIO()
    photo.convert("CMYK").save(buf, "JPEG", quality=95)
    variants["cmyk jpeg"] = (buf.getvalue(), "image/jpeg", 0.05)
    rgba = np.dstack([np.asarray(photo), np.full(photo.size[::-1], 255, np.uint8)])
    variants["rgba png"] = (png(rgba), "image/png", 1e-6)
    sixteen = (np.asarray(photo.convert("L")).astype(np.uint16) * 257)
    buf = io.BytesIO()
    Image.fromarray(sixteen).save(buf, "PNG")
    variants["16-bit png"] = (buf.getvalue(), "image/png", 0.2)
    for name, (data, ctype, tol) in variants.items():
        status, body = daemon.classify("squeezenet", data, ctype)
        assert status == 200, (name, body)
        p = body["results"][0]["predictions"][0]
        r0 = ref["results"][0]["predictions"][0]
        if tol < 0.1:  # colour kept: the same answer as the RGB PNG
            assert p["index"] == r0["index"], name
            assert abs(p["score"] - r0["score"]) <= tol, (name, p, r0)


def test_image_pixel_bound(daemon):
    # a tiny PNG whose header claims 60000 x 60000 pixels
    import struct
    import zlib
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + \
            struct.pack(">I", zlib.crc32(kind + payload))

    data = b"\x89PNG\r\n\x1a\n" + \
        chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    status, body = daemon.classify("mnist", data)
    assert status == 400 and "limit" in body["error"], body


def test_v2_protocol(daemon, tmp_path):
    assert daemon.json("GET", "/v2")[1]["name"] == "visiond"
    assert daemon.request("GET", "/v2/health/live")[0] == 200
    assert daemon.request("GET", "/v2/health/ready")[0] == 200
    status, meta = daemon.json("GET", "/v2/models/mnist")
    assert status == 200
    assert meta["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 1, 28, 28]}]
    assert meta["outputs"][0]["shape"] == [-1, 10]
    assert daemon.request("GET", "/v2/models/mnist/ready")[0] == 200
    assert daemon.request("GET", "/v2/models/broken/ready")[0] == 400
    assert daemon.request("GET", "/v2/models/mnist/versions/1/ready")[0] == 200

    x = np.random.default_rng(3).standard_normal((3, 1, 28, 28)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    r = run_visiond("run", "--model", os.path.join(daemon.models_dir, "mnist", "model.onnx"),
                    "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy"))
    assert r.returncode == 0, r.stderr
    want = np.load(tmp_path / "y.npy")
    for data in (x.ravel().tolist(), x.tolist()):  # flat and nested
        req = {"id": "req-7", "inputs": [{"name": "image", "shape": [3, 1, 28, 28],
                                          "datatype": "FP32", "data": data}],
               "outputs": [{"name": "logits"}]}
        status, body = daemon.json("POST", "/v2/models/mnist/infer", json.dumps(req).encode(),
                                   {"Content-Type": "application/json"})
        assert status == 200, body
        assert body["id"] == "req-7" and body["model_name"] == "mnist"
        out = body["outputs"][0]
        assert out["name"] == "logits" and out["shape"] == [3, 10] and out["datatype"] == "FP32"
        np.testing.assert_allclose(np.asarray(out["data"]).reshape(3, 10), want, rtol=1e-5,
                                   atol=1e-6)
    bad = [
        ({"inputs": [{"name": "image", "shape": [1, 1, 28, 27], "datatype": "FP32",
                      "data": [0] * 756}]}, "shape"),
        ({"inputs": [{"name": "image", "shape": [1, 1, 28, 28], "datatype": "FP8",
                      "data": [0] * 784}]}, "datatype"),
        ({"inputs": [{"name": "image", "shape": [1, 1, 28, 28], "datatype": "FP32",
                      "data": [0] * 783}]}, "784 numbers"),
        ({"inputs": [{"name": "other", "shape": [1, 1, 28, 28], "datatype": "FP32",
                      "data": [0] * 784}]}, "unknown"),
        ({"inputs": [{"name": "image", "shape": [1, 1, 28, 28], "datatype": "FP32",
                      "data": [0] * 784}], "outputs": [{"name": "nope"}]}, "unknown output"),
    ]
    for req, words in bad:
        status, body = daemon.json("POST", "/v2/models/mnist/infer", json.dumps(req).encode(),
                                   {"Content-Type": "application/json"})
        assert status == 400 and words in body["error"], (req, body)


def test_queue_full_and_timeouts(daemon):
    photo = open("/usr/share/darknet/data/dog.jpg", "rb").read()

    def one(_):
        status, hdrs, data = daemon.request("POST", "/v1/models/slow/classify", photo,
                                            {"Content-Type": "image/jpeg"})
        return status, hdrs, json.loads(data)

    with cf.ThreadPoolExecutor(24) as pool:
        results = list(pool.map(one, range(48)))
    codes = [s for s, _, _ in results]
    assert set(codes) <= {200, 503, 504}, codes
    assert 503 in codes and 504 in codes, codes
    for status, hdrs, body in results:
        if status == 503:
            assert hdrs.get("Retry-After") == "1" and "queue" in body["error"]
        if status == 504:
            assert "60 ms" in body["error"]
    text = daemon.request("GET", "/metrics")[2].decode()
    assert 'visiond_rejected_total{model="slow",reason="queue_full"}' in text
    assert 'visiond_timeouts_total{model="slow"}' in text
    assert daemon.request("GET", "/readyz")[0] == 200
