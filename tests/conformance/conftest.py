"""The conformance models, exported once per session (cached under build/)."""
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="session")
def models_dir(build_dir):
    out = os.path.join(build_dir, "conformance")
    subprocess.run([sys.executable, os.path.join(HERE, "make_models.py"), out], check=True)
    return out
