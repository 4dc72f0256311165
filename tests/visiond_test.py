"""What every test module shares: where the visiond binary and the build
live, and a way to run the binary.

VISIOND_BIN picks the binary under test (the sanitizer run points it at
build-san/visiond); VISIOND_BUILD is the build folder holding cached test
data (conformance models, ONNX node tests, ONNX Runtime, MNIST digits).
"""
import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("VISIOND_BUILD", os.path.join(ROOT, "build"))
BIN = os.environ.get("VISIOND_BIN", os.path.join(BUILD, "visiond"))

# The harness's own settings: which binary and build folder, which device
# the daemon suite runs on, and tests/gpu's (the device standing in for the
# GPU, whether a GPU must be there, which conformance models), the
# conformance batches (the emulated ARM runs pick theirs), the package
# tests/emulated/test_package.py checks. Every other
# variable of the families below is a host setting that tests/conftest.py
# clears when the session starts.
HARNESS_VARS = ("VISIOND_BIN", "VISIOND_BUILD", "VISIOND_TEST_DEVICE", "VISIOND_GPU_DEVICE",
                "VISIOND_EXPECT_GPU", "VISIOND_GPU_MODELS", "VISIOND_CONFORMANCE_BATCHES",
                "VISIOND_DEB")


def is_host_setting(name):
    """OpenBLAS's, OpenMP's and visiond's knobs, but the harness's own."""
    return bool(re.match(r"(OPENBLAS|G?OMP|VISIOND)_", name)) and name not in HARNESS_VARS


# conformance rows, printed as a table at the end of the session
RESULTS = []


def run_visiond(*args, timeout=600, env=None):
    """Runs the binary, returning the CompletedProcess (never raises on rc)."""
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


def shared_data():
    """../shared/data beside the repository (the face detector and its
    photos); a clone elsewhere (a CI checkout) finds it through
    VISIOND_SHARED_DATA or the workspace's."""
    for d in (os.environ.get("VISIOND_SHARED_DATA"), os.path.join(ROOT, "..", "shared", "data"),
              "/work/shared/data"):
        if d and os.path.isdir(os.path.join(d, "ultraface")):
            return d
    return os.path.join(ROOT, "..", "shared", "data")


def face_photos():
    import glob
    return sorted(os.path.realpath(p)
                  for p in glob.glob(os.path.join(shared_data(), "ultraface", "*.jpg")))
