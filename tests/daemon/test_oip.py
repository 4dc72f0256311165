"""The Open Inference Protocol as real clients speak it: JSON, the binary
tensor data extension (binary inputs and outputs, the raw form, BYTES
images), the classification extension, and the datatypes converted at the
edge. The client (oip_client.py) is written from the protocol's text; the
answers are checked against `visiond run` on the same tensors, and every
answer also passes the OpenAPI contract (oip_contract.py, through
Daemon.request)."""
import json
import os
import subprocess

import numpy as np
import pytest

import oip_client as oip
from daemon import Daemon
from visiond_test import BIN, ROOT

MNIST = os.path.join(ROOT, "models", "mnist")
INFER = "/v2/models/mnist/infer"


@pytest.fixture(scope="module")
def daemon(repo_dir):
    d = Daemon(repo_dir).start()
    yield d
    assert d.stop() == 0


def run_reference(tmp_path, x):
    """`visiond run` on the float32 tensor x: the model's logits."""
    xin, yout = str(tmp_path / "x.npy"), str(tmp_path / "y.npy")
    np.save(xin, x.astype(np.float32))
    r = subprocess.run([BIN, "run", "--model", os.path.join(MNIST, "model.onnx"), "--input",
                        xin, "--output", yout, "--device", "cpu"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return np.load(yout)


def post(d, body, headers, path=INFER):
    status, hdrs, data = d.request("POST", path, body, headers)
    doc, outs = oip.decode(status, hdrs, data)
    return status, hdrs, doc, outs


def digits(n, seed=0):
    return np.random.default_rng(seed).random((n, 1, 28, 28)).astype(np.float32)


def test_server_lists_its_extensions(daemon):
    status, body = daemon.json("GET", "/v2")
    assert status == 200
    # exactly what is served: the repository endpoints answer on this loopback listener
    assert body["extensions"] == ["binary_tensor_data", "classification", "model_repository"]


@pytest.mark.parametrize("binary_in,binary_out", [(False, False), (True, False), (False, True),
                                                  (True, True)])
def test_json_and_binary_agree_with_run(daemon, tmp_path, binary_in, binary_out):
    x = digits(3, seed=1)
    want = run_reference(tmp_path, x)
    body, headers = oip.encode({"image": x}, binary=binary_in, binary_output=binary_out,
                               request_id="r-7")
    status, hdrs, doc, outs = post(daemon, body, headers)
    assert status == 200, doc
    assert doc["id"] == "r-7" and doc["model_name"] == "mnist"
    assert ("Inference-Header-Content-Length" in hdrs) == binary_out
    got = outs["logits"]
    assert got.dtype == np.float32 and got.shape == (3, 10)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_raw_request(daemon, tmp_path):
    x = digits(1, seed=2)
    want = run_reference(tmp_path, x)
    body, headers = oip.encode_raw(x)
    status, hdrs, doc, outs = post(daemon, body, headers)
    assert status == 200, doc
    # the raw form answers every output binary
    assert doc["outputs"][0]["parameters"]["binary_data_size"] == 40
    np.testing.assert_allclose(outs["logits"], want, rtol=1e-5, atol=1e-5)
    bad, headers = oip.encode_raw(digits(2))
    status, _, doc, _ = post(daemon, bad, headers)
    assert status == 400 and "3136 bytes" in doc["error"]


@pytest.mark.parametrize("dtype,binary", [
    (t, b) for t in ("FP16", "FP64", "UINT8", "INT8", "INT32", "INT64", "BOOL")
    for b in (False, True) if (t, b) != ("BOOL", False)])  # JSON booleans are not numbers
def test_datatypes_are_converted_at_the_edge(daemon, tmp_path, dtype, binary):
    rng = np.random.default_rng(3)
    if dtype in ("FP16", "FP64"):
        x = rng.random((2, 1, 28, 28)).astype(oip.DTYPES[dtype])
    elif dtype == "BOOL":
        x = rng.random((2, 1, 28, 28)) > 0.5
    else:
        x = rng.integers(0, 100, (2, 1, 28, 28)).astype(oip.DTYPES[dtype])
    want = run_reference(tmp_path, x.astype(np.float32))
    body, headers = oip.encode({"image": x}, binary=binary)
    status, _, doc, outs = post(daemon, body, headers)
    assert status == 200, doc
    np.testing.assert_allclose(outs["logits"], want, rtol=1e-4, atol=1e-4)


def test_classification_extension(daemon, tmp_path):
    x = digits(2, seed=4)
    logits = run_reference(tmp_path, x)
    labels = open(os.path.join(MNIST, "labels.txt")).read().split()
    for binary in (False, True):
        outputs = [{"name": "logits", "parameters": {"classification": 3,
                                                      "binary_data": binary}}]
        body, headers = oip.encode({"image": x}, outputs=outputs)
        status, _, doc, outs = post(daemon, body, headers)
        assert status == 200, doc
        (o,) = doc["outputs"]
        assert o["datatype"] == "BYTES" and o["shape"] == [2, 3]
        got = outs["logits"]
        assert len(got) == 6
        for row in range(2):
            top = np.argsort(-logits[row], kind="stable")[:3]
            for rank, idx in enumerate(top):
                value, index, label = got[row * 3 + rank].split(":")
                assert int(index) == idx and label == labels[idx]
                # C's %f: six decimals
                assert len(value.split(".")[1]) == 6
                assert abs(float(value) - logits[row][idx]) <= 2e-5


def test_encoded_images_as_bytes(daemon):
    """A BYTES input of encoded images goes through /classify's decoding and
    preprocessing: the same scores as /v1 for the same PNG."""
    png = open(os.path.join(MNIST, "sample-7.png"), "rb").read()
    status, v1 = daemon.classify("mnist", png, top_k=10)
    assert status == 200
    body, headers = oip.encode({"image": [png, png]})
    status, _, doc, outs = post(daemon, body, headers)
    assert status == 200, doc
    logits = outs["logits"]
    assert logits.shape == (2, 10)
    probs = np.exp(logits[0] - logits[0].max())
    probs /= probs.sum()
    for p in v1["results"][0]["predictions"]:
        assert abs(probs[p["index"]] - p["score"]) < 1e-5
    np.testing.assert_array_equal(logits[0], logits[1])
    # one of them not an image: 400 naming it
    body, headers = oip.encode({"image": [png, b"not an image"]})
    status, _, doc, _ = post(daemon, body, headers)
    assert status == 400 and "image 2" in doc["error"]


def malformed():
    x = digits(1)
    good, h = oip.encode({"image": x}, binary=True)
    n = int(h[oip.HEADER])
    doc = json.loads(good[:n])
    cases = []

    def with_doc(mutate, tail=good[n:], header=None):
        d = json.loads(good[:n])
        mutate(d)
        text = json.dumps(d).encode()
        return (text + tail, {"Content-Type": "application/octet-stream",
                              oip.HEADER: str(len(text)) if header is None else header})

    cases.append(("size off by one", *with_doc(
        lambda d: d["inputs"][0]["parameters"].update(binary_data_size=3135), tail=good[n:-1]),
        "binary_data_size must be 3136"))
    cases.append(("bytes left over", *with_doc(lambda d: None, tail=good[n:] + b"xx"),
                  "add up to"))
    cases.append(("size past the body", *with_doc(
        lambda d: d["inputs"][0]["parameters"].update(binary_data_size=10 ** 12)),
        "binary_data_size"))
    cases.append(("header past the body", good, {"Content-Type": "application/octet-stream",
                                                 oip.HEADER: str(len(good) + 1)}, "body has"))
    cases.append(("header not a number", good, {"Content-Type": "application/octet-stream",
                                                 oip.HEADER: "12abc"}, "byte count"))
    cases.append(("unknown datatype", *with_doc(
        lambda d: d["inputs"][0].update(datatype="FP8")), "datatype"))
    cases.append(("data and binary", *with_doc(
        lambda d: d["inputs"][0].update(data=[1])), "both"))
    cases.append(("huge batch", *with_doc(
        lambda d: d["inputs"][0].update(shape=[2 ** 40, 1, 28, 28])), "queue"))
    cases.append(("bad classification", json.dumps(
        {"inputs": [{"name": "image", "shape": [1, 1, 28, 28], "datatype": "FP32",
                     "data": [0] * 784}],
         "outputs": [{"name": "logits", "parameters": {"classification": "3"}}]}).encode(),
        {"Content-Type": "application/json"}, "classification"))
    cases.append(("classification over the cap", json.dumps(
        {"inputs": [{"name": "image", "shape": [1, 1, 28, 28], "datatype": "FP32",
                     "data": [0] * 784}],
         "outputs": [{"name": "logits", "parameters": {"classification": 1001}}]}).encode(),
        {"Content-Type": "application/json"}, "from 1 to 1000"))
    deep = b'{"inputs": [{"name": "image", "parameters": ' + b'{"a": ' * 100 + b"1" + \
        b"}" * 100 + b"}]}"
    cases.append(("nested 100 deep", deep, {"Content-Type": "application/json"}, "deep"))
    return cases


@pytest.mark.parametrize("what,body,headers,message", malformed(),
                         ids=[c[0] for c in malformed()])
def test_malformed_requests_are_refused(daemon, what, body, headers, message):
    status, hdrs, data = daemon.request("POST", INFER, body, headers)
    doc = json.loads(data)
    assert status == 400 and message in doc["error"], (what, status, doc)
    assert daemon.request("GET", "/v2/health/live")[0] == 200
