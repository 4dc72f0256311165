"""What both conformance sets do per model and batch: run `visiond run` on
the saved input, load the PyTorch and ONNX Runtime answers, check the
references are informative (else the bound would be vacuous), and record
the errors for the session's table."""
import os

import numpy as np

from visiond_test import BIN, RESULTS, run_visiond


def run_against_references(d, batch, tmp_path):
    out = tmp_path / "out.npy"
    r = run_visiond("run", "--model", os.path.join(d, "model.onnx"),
                    "--input", os.path.join(d, f"input_b{batch}.npy"), "--output", str(out),
                    "--device", "cpu")
    assert r.returncode == 0, r.stderr
    got = np.load(out)
    ref_torch = np.load(os.path.join(d, f"torch_b{batch}.npy"))
    ref_ort = np.load(os.path.join(d, f"ort_b{batch}.npy"))
    assert got.shape == ref_torch.shape
    assert np.isfinite(got).all()
    max_ref = float(np.abs(ref_torch).max())
    assert max_ref > 1e-2
    if batch > 1:
        assert float(np.abs(ref_torch[0] - ref_torch[1]).max()) > 1e-2 * max_ref
    return got, ref_torch, ref_ort, max_ref


def record(model, batch, got, ref_torch, ref_ort, max_ref, tol):
    err_torch = float(np.abs(got - ref_torch).max())
    err_ort = float(np.abs(got - ref_ort).max())
    RESULTS.append(dict(model=model, batch=batch, max_ref=max_ref, err_torch=err_torch,
                        err_ort=err_ort, tol=tol, bin=BIN))
    return err_torch, err_ort
