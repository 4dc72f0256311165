"""Conformance: torchvision CNNs through `visiond run` against PyTorch and
ONNX Runtime, at batch 1 and 4 (VISIOND_CONFORMANCE_BATCHES=1,2 picks
others: the emulated ARM runs), within max|diff| <= 1e-4 * max|ref| + 1e-5.

The reference outputs must be informative for the bound to mean anything,
so each test first checks that the logits vary across classes and across
the images of the batch.
"""
import os
import sys

import numpy as np
import pytest


HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_models import BATCHES, MODELS  # noqa: E402
from references import record, run_against_references  # noqa: E402


TESTED = tuple(int(b) for b in
               os.environ.get("VISIOND_CONFORMANCE_BATCHES", ",".join(map(str, BATCHES))).split(","))


@pytest.mark.parametrize("batch", TESTED)
@pytest.mark.parametrize("model", list(MODELS))
def test_model_matches_references(models_dir, visiond_bin, tmp_path, model, batch):
    got, ref_torch, ref_ort, max_ref = run_against_references(
        os.path.join(models_dir, model), batch, tmp_path)
    assert got.shape == (batch, 1000)
    # an uninformative reference would make the bound vacuous
    assert float(ref_torch.std(axis=1).min()) > 1e-3 * max_ref
    tol = 1e-4 * max_ref + 1e-5
    err_torch, err_ort = record(model, batch, got, ref_torch, ref_ort, max_ref, tol)
    assert err_torch <= tol, f"vs PyTorch: {err_torch} > {tol}"
    assert err_ort <= 1e-4 * float(np.abs(ref_ort).max()) + 1e-5, f"vs ORT: {err_ort}"
