"""Conformance: torchvision CNNs through `visiond run` against PyTorch and
ONNX Runtime, at batch 1 and 4, within max|diff| <= 1e-4 * max|ref| + 1e-5.

The reference outputs must be informative for the bound to mean anything,
so each test first checks that the logits vary across classes and across
the images of the batch.
"""
import os
import sys

import numpy as np
import pytest

from visiond_test import BIN, RESULTS, run_visiond

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_models import BATCHES, MODELS  # noqa: E402


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("model", list(MODELS))
def test_model_matches_references(models_dir, visiond_bin, tmp_path, model, batch):
    d = os.path.join(models_dir, model)
    out = tmp_path / "out.npy"
    r = run_visiond("run", "--model", os.path.join(d, "model.onnx"),
                    "--input", os.path.join(d, f"input_b{batch}.npy"), "--output", str(out),
                    "--device", "cpu")
    assert r.returncode == 0, r.stderr
    got = np.load(out)
    ref_torch = np.load(os.path.join(d, f"torch_b{batch}.npy"))
    ref_ort = np.load(os.path.join(d, f"ort_b{batch}.npy"))
    assert got.shape == ref_torch.shape == (batch, 1000)
    assert np.isfinite(got).all()

    max_ref = float(np.abs(ref_torch).max())
    # an uninformative reference would make the bound vacuous
    assert max_ref > 1e-2 and float(ref_torch.std(axis=1).min()) > 1e-3 * max_ref
    if batch > 1:
        assert float(np.abs(ref_torch[0] - ref_torch[1]).max()) > 1e-2 * max_ref

    tol = 1e-4 * max_ref + 1e-5
    err_torch = float(np.abs(got - ref_torch).max())
    err_ort = float(np.abs(got - ref_ort).max())
    RESULTS.append(dict(model=model, batch=batch, max_ref=max_ref, err_torch=err_torch,
                        err_ort=err_ort, tol=tol, bin=BIN))
    assert err_torch <= tol, f"vs PyTorch: {err_torch} > {tol}"
    assert err_ort <= 1e-4 * float(np.abs(ref_ort).max()) + 1e-5, f"vs ORT: {err_ort}"
