"""The CPU's BLAS kernel is chosen at start-up, shown, and overridable.

OpenBLAS picks its kernel from the CPU model when it loads; where it picks
an AVX2 kernel on cores with AVX-512, visiond re-executes itself once with
OPENBLAS_CORETYPE set to the AVX-512 kernel. OPENBLAS_CORETYPE=Haswell
stands in for OpenBLAS's wrong pick here, with VISIOND_BLAS_CORETYPE=auto
asking visiond to decide anyway (a user's OPENBLAS_CORETYPE alone stands).

The session starts with none of these variables set (tests/conftest.py), so
each test here sets exactly what it examines.
"""
import json
import os
import re

import pytest

from visiond_test import is_host_setting, run_visiond

AVX512_KERNELS = ("SkylakeX", "Cooperlake", "SapphireRapids")
HAS_AVX512 = " avx512f" in open("/proc/cpuinfo").read()
MNIST = os.path.join(os.path.dirname(__file__), "..", "..", "models", "mnist", "model.onnx")
needs_avx512 = pytest.mark.skipif(not HAS_AVX512, reason="this CPU has no AVX-512")


def backend(**env):
    r = run_visiond("info", "--model", MNIST, env=dict(os.environ, **env))
    assert r.returncode == 0, r.stderr
    line = next(l for l in r.stdout.splitlines() if l.startswith("backend"))
    kernel = re.search(r"(\w+) kernel \(([^)]*)\)", line)
    assert kernel, line
    return kernel.group(1), kernel.group(2), line


def test_the_session_starts_without_host_settings():
    knobs = [k for k in os.environ if is_host_setting(k)]
    assert not knobs, knobs


@needs_avx512
def test_fresh_start_runs_an_avx512_kernel():
    r = run_visiond("info", "--model", MNIST)
    assert r.returncode == 0, r.stderr
    assert any(f"{k} kernel" in r.stdout for k in AVX512_KERNELS), r.stdout


@needs_avx512
def test_avx2_pick_is_replaced_at_start_up():
    kernel, how, line = backend(OPENBLAS_CORETYPE="Haswell", VISIOND_BLAS_CORETYPE="auto")
    assert kernel == "SkylakeX", line
    assert "chosen at start-up" in how and "OpenBLAS alone picked Haswell" in how, line


def test_overrides():
    kernel, how, _ = backend(VISIOND_BLAS_CORETYPE="Haswell")
    assert (kernel, how) == ("Haswell", "set by VISIOND_BLAS_CORETYPE")
    kernel, how, _ = backend(OPENBLAS_CORETYPE="Haswell")  # the user's choice stands
    assert (kernel, how) == ("Haswell", "set by OPENBLAS_CORETYPE")
    r = run_visiond("info", "--model", MNIST, env=dict(os.environ, VISIOND_BLAS_CORETYPE="keep"))
    assert "OpenBLAS's own pick, kept" in r.stdout, r.stdout


def test_sgemm_peak_is_measured_with_the_chosen_kernel():
    r = run_visiond("bench", "--sgemm", "--size", "256", "--iters", "3", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["gflops_per_s"] > 1 and out["size"] == 256
    assert backend()[0] + " kernel" in out["blas"]


def test_thread_count_is_honoured(models_dir):
    """--threads 1: one core's worth of CPU time, BLAS and OpenMP kernels alike
    (the resnet18 export exercises both: convolutions and the Gemm)."""
    import resource
    import subprocess
    import time

    from visiond_test import BIN
    model = os.path.join(models_dir, "resnet18", "model.onnx")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    r = subprocess.run([BIN, "bench", "--model", model, "--batch", "2", "--iters", "10",
                        "--threads", "1", "--json"], capture_output=True, text=True)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert r.returncode == 0, r.stderr
    assert "1 threads" in json.loads(r.stdout)["backend"]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu <= 1.15 * wall, (cpu, wall)


# Settings hosts are seen to hold; visiond's answers must not change with them.
HOST_SETTINGS = {
    "none": {},
    "avx2-kernel": {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "512"},
    "sse3-kernel-one-thread": {"OPENBLAS_CORETYPE": "Prescott", "OPENBLAS_NUM_THREADS": "1",
                               "OMP_NUM_THREADS": "1"},
}


@pytest.mark.parametrize("settings", list(HOST_SETTINGS))
def test_answers_do_not_depend_on_host_settings(models_dir, tmp_path, settings):
    """resnet18 (convolutions on our kernels, the classifier on BLAS) at batch 4
    under each host's settings, against PyTorch within the conformance bound."""
    import numpy as np
    d = os.path.join(models_dir, "resnet18")
    out = tmp_path / "out.npy"
    r = run_visiond("run", "--model", os.path.join(d, "model.onnx"), "--input",
                    os.path.join(d, "input_b4.npy"), "--output", str(out), "--device", "cpu",
                    env=dict(os.environ, **HOST_SETTINGS[settings]))
    assert r.returncode == 0, r.stderr
    got, ref = np.load(out), np.load(os.path.join(d, "torch_b4.npy"))
    assert got.shape == ref.shape
    tol = 1e-4 * float(np.abs(ref).max()) + 1e-5
    assert float(np.abs(got - ref).max()) <= tol
    if "OPENBLAS_CORETYPE" in HOST_SETTINGS[settings]:
        kernel, how, line = backend(**HOST_SETTINGS[settings])
        assert (kernel, how) == (HOST_SETTINGS[settings]["OPENBLAS_CORETYPE"],
                                 "set by OPENBLAS_CORETYPE"), line
