"""The whole daemon built for ARM (make ARCH=arm64 / ARCH=armhf), run under
qemu-user against the ARM libraries, over real HTTP on loopback.

VISIOND_BIN is the emulated binary (build-<arch>/visiond-emulated, a
wrapper that execs qemu); the native build's visiond serves the same
requests as the reference: the two must agree (same classes, scores and
boxes within float rounding), and the README's first curl must answer as
the README says.
"""
import concurrent.futures as cf
import json
import os
import re
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "tests", "daemon"))

from daemon import Daemon  # noqa: E402
from visiond_test import BIN, BUILD, face_photos  # noqa: E402

NATIVE = os.path.join(BUILD, "visiond")
MODELS = os.path.join(ROOT, "models")


@pytest.fixture(scope="module")
def emulated():
    assert "emulated" in os.path.basename(BIN), f"{BIN}: run through make arm-test"
    d = Daemon(MODELS, binary=BIN).start(timeout=180)
    yield d
    assert d.stop() == 0, d.log()


@pytest.fixture(scope="module")
def native():
    d = Daemon(MODELS, binary=NATIVE).start()
    yield d
    d.stop()


def readme_curl():
    """The README's first curl command (the default model), as text."""
    text = open(os.path.join(ROOT, "README.md")).read()
    m = re.search(r"^(curl -s -H 'Content-Type: image/png'.*?\n.*?)\n", text, re.M)
    assert m, "README's first curl example not found"
    return m.group(1).replace("\\\n", " ")


def test_readme_curl_answers_as_the_readme_says(emulated, native):
    cmd = readme_curl()
    answers = {}
    for name, d in (("emulated", emulated), ("native", native)):
        out = subprocess.run(["bash", "-c", cmd.replace("127.0.0.1:8080", f"127.0.0.1:{d.port}")],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        answers[name] = json.loads(out.stdout)
    got, ref = answers["emulated"], answers["native"]
    print(f"README curl under {os.path.basename(BIN)}: {json.dumps(got['results'])}")
    top = got["results"][0]["predictions"]
    assert got["model"] == "mnist" and got["model_version"] == 1
    assert top[0]["index"] == 7 and top[0]["label"] == "7" and top[0]["score"] > 0.99
    assert [p["index"] for p in top] == [p["index"] for p in ref["results"][0]["predictions"]]
    for a, b in zip(top, ref["results"][0]["predictions"]):
        assert abs(a["score"] - b["score"]) <= 1e-5, (a, b)


def test_faces_detect_matches_native(emulated, native):
    photo = face_photos()[0]
    with open(photo, "rb") as f:
        jpeg = f.read()
    path = "/v1/models/faces/detect"
    hdr = {"Content-Type": "image/jpeg"}
    s1, got = emulated.json("POST", path, jpeg, hdr, timeout=120)
    s2, ref = native.json("POST", path, jpeg, hdr)
    assert s1 == 200 and s2 == 200, (got, ref)
    g, r = got["results"][0]["detections"], ref["results"][0]["detections"]
    assert len(r) > 0 and len(g) == len(r), (len(g), len(r))
    for a, b in zip(g, r):
        assert max(abs(x - y) for x, y in zip(a["box"], b["box"])) < 0.5, (a, b)
        assert abs(a["score"] - b["score"]) < 1e-4, (a, b)
    print(f"faces: {len(g)} detections in {os.path.basename(photo)}, as the native binary")


def test_concurrent_clients_probes_and_metrics(emulated):
    with open(os.path.join(MODELS, "mnist", "sample-7.png"), "rb") as f:
        png = f.read()

    def one(_):
        status, body = emulated.classify("mnist", png, top_k=1)
        return status, body["results"][0]["predictions"][0]["index"] if status == 200 else body

    with cf.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(24)))
    assert results == [(200, 7)] * 24
    status, _, _ = emulated.request("GET", "/v2/health/ready")
    assert status == 200
    status, _, text = emulated.request("GET", "/metrics")
    assert status == 200
    m = re.search(rb'visiond_requests_total\{[^}]*model="mnist"[^}]*code="200"[^}]*\} (\d+)', text)
    assert m and int(m.group(1)) >= 24, text[:2000]
