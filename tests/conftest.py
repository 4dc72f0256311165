"""Session fixtures, the conformance table (see visiond_test.py), and a
test environment that the host's settings do not reach.

Some hosts set OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE for every process, and
OMP_NUM_THREADS or a VISIOND_* knob may be set by a user: a test that
inherited them would check the host's choice, not visiond's. So the session
starts without any OPENBLAS_*, OMP_*, GOMP_* or VISIOND_* variable (but the
harness's own, below), before anything (torch included) is imported; a test
that depends on one of them sets it itself.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from visiond_test import BIN, BUILD, RESULTS, is_host_setting  # noqa: E402

CLEARED = {name: os.environ.pop(name) for name in list(os.environ) if is_host_setting(name)}


def pytest_report_header(config):
    if not CLEARED:
        return "environment: no OPENBLAS_*, OMP_*, GOMP_* or VISIOND_* variable to clear"
    return "environment: cleared " + ", ".join(sorted(CLEARED)) + " (tests set what they need)"


@pytest.fixture(scope="session")
def visiond_bin():
    assert os.access(BIN, os.X_OK), f"{BIN} is not built (run make)"
    return BIN


@pytest.fixture(scope="session")
def build_dir():
    return BUILD


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    tr = terminalreporter
    tr.section("conformance: max |visiond - reference| (tolerance 1e-4 * max|ref| + 1e-5)")
    tr.write_line(f"{'model':20} {'batch':>5} {'max|torch|':>11} {'err vs torch':>13} "
                  f"{'err vs ORT':>11} {'tolerance':>10}  binary")
    for r in RESULTS:
        tr.write_line(f"{r['model']:20} {r['batch']:>5} {r['max_ref']:>11.4g} "
                      f"{r['err_torch']:>13.3e} {r['err_ort']:>11.3e} {r['tol']:>10.3e}  "
                      f"{os.path.basename(os.path.dirname(r['bin']))}/visiond")
