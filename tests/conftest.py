"""Session fixtures and the conformance table (see visiond_test.py)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from visiond_test import BIN, BUILD, RESULTS  # noqa: E402


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
