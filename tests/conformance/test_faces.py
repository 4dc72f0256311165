"""The shipped face detector (models/faces, Ultraface slim-320) on every real
photo in ../shared/data/ultraface: the daemon's own input tensors
(`visiond preprocess`), one batch of all the photos and each photo alone,
through `visiond run` against ONNX Runtime, both outputs. The photos show
faces, so each must have priors the model is sure of: a test on a model
that outputs noise would fail there.
"""
import os
import subprocess

import numpy as np
import pytest

from visiond_test import face_photos, run_visiond

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MODEL_DIR = os.path.join(ROOT, "models", "faces")


PHOTOS = face_photos()
ORT_RUN = os.path.join(ROOT, "tests", "tools", "ort_run.js")


@pytest.fixture(scope="module")
def batch(tmp_path_factory, visiond_bin):
    d = tmp_path_factory.mktemp("faces")
    tensors = []
    for i, photo in enumerate(PHOTOS):
        out = d / f"x{i}.npy"
        r = run_visiond("preprocess", "--model-dir", MODEL_DIR, "--image", photo,
                        "--output", str(out))
        assert r.returncode == 0, r.stderr
        tensors.append(np.load(out))
    x = np.concatenate(tensors)
    assert x.shape == (len(PHOTOS), 3, 240, 320)
    path = d / "batch.npy"
    np.save(path, x)
    return d, path, x


def _visiond(model, x_path, d, tag):
    outs = [d / f"{tag}_scores.npy", d / f"{tag}_boxes.npy"]
    r = run_visiond("run", "--model", model, "--input", str(x_path), "--output", str(outs[0]),
                    "--output", str(outs[1]), "--device", "cpu")
    assert r.returncode == 0, r.stderr
    return [np.load(p) for p in outs]


def _ort(model, x_path, d, tag):
    subprocess.run(["node", ORT_RUN, "run", model, str(x_path), str(d / f"{tag}_ort%d.npy"), "2"],
                   check=True)
    return [np.load(d / f"{tag}_ort{i}.npy") for i in range(2)]


def test_there_are_photos():
    assert len(PHOTOS) >= 5


def test_faces_match_onnx_runtime_on_every_photo(batch, visiond_bin):
    d, x_path, x = batch
    model = os.path.join(MODEL_DIR, "model.onnx")
    scores, boxes = _visiond(model, x_path, d, "all")
    ort_scores, ort_boxes = _ort(model, x_path, d, "all")
    n = len(PHOTOS)
    assert scores.shape == ort_scores.shape == (n, 4420, 2)
    assert boxes.shape == ort_boxes.shape == (n, 4420, 4)
    np.testing.assert_allclose(scores, ort_scores, atol=2e-5, rtol=0)
    np.testing.assert_allclose(boxes, ort_boxes, atol=2e-5, rtol=0)
    for i in range(n):  # every photo has faces the detector is sure of
        assert float(ort_scores[i, :, 1].max()) > 0.9, PHOTOS[i]
    # each photo alone gives what it gave in the batch
    for i in range(n):
        one = d / f"one{i}.npy"
        np.save(one, x[i:i + 1])
        s1, b1 = _visiond(model, one, d, f"one{i}")
        np.testing.assert_allclose(s1[0], scores[i], atol=1e-5, rtol=0)
        np.testing.assert_allclose(b1[0], boxes[i], atol=1e-5, rtol=0)
