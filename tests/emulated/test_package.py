"""The Debian package of an ARM build (make ARCH=arm64 deb / ARCH=armhf deb):
what it holds, that apt can install it on that architecture (its
dependencies resolve against Debian's archive for it), and that the
packaged binary, run under qemu-user, serves the packaged default models
with the packaged configuration.

VISIOND_DEB names the package; VISIOND_BIN's wrapper says which qemu.
"""
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
from visiond_test import BIN  # noqa: E402

DEB = os.environ.get("VISIOND_DEB", "")
WANT = {
    "./usr/bin/visiond", "./lib/systemd/system/visiond.service", "./etc/visiond/visiond.json",
    "./etc/default/visiond", "./usr/share/visiond/models/fetch.sh",
    "./usr/share/visiond/models/mnist/model.onnx", "./usr/share/visiond/models/mnist/model.json",
    "./usr/share/visiond/models/mnist/labels.txt", "./usr/share/visiond/models/faces/model.onnx",
    "./usr/share/visiond/models/faces/model.json", "./usr/share/visiond/models/faces/LICENSE",
}


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    assert DEB and os.path.exists(DEB), f"VISIOND_DEB={DEB!r}: run through make arm-test"
    root = tmp_path_factory.mktemp("pkg")
    subprocess.run(["dpkg-deb", "-x", DEB, str(root)], check=True)
    return root


def field(name):
    return subprocess.run(["dpkg-deb", "-f", DEB, name], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_contents_and_control(package):
    listing = subprocess.run(["dpkg-deb", "-c", DEB], capture_output=True, text=True,
                             check=True).stdout
    files = {line.split()[-1] for line in listing.splitlines()}
    assert WANT <= files, WANT - files
    arch = field("Architecture")
    assert arch in ("arm64", "armhf") and arch in os.path.basename(DEB)
    depends = field("Depends")
    for lib in ("libopenblas0-openmp", "libmicrohttpd12", "libjansson4", "libgnutls30",
                "libjpeg62-turbo", "libpng16-16", "libprotobuf-c1", "libsystemd0", "libc6"):
        assert re.search(rf"\b{lib}\b", depends), (lib, depends)
    conffiles = subprocess.run(["dpkg-deb", "--ctrl-tarfile", DEB], capture_output=True,
                               check=True).stdout
    assert b"conffiles" in conffiles
    elf = subprocess.run(["file", str(package / "usr/bin/visiond")], capture_output=True,
                         text=True).stdout
    assert ("aarch64" if arch == "arm64" else "ARM, EABI5") in elf and "stripped" in elf, elf
    assert "not stripped" not in elf
    config = json.loads((package / "etc/visiond/visiond.json").read_text())
    assert config["models"] == "/usr/share/visiond/models"
    assert config["listen"].startswith("127.0.0.1:"), "the package listens on loopback"
    unit = (package / "lib/systemd/system/visiond.service").read_text()
    assert "ExecStart=/usr/bin/visiond serve --config /etc/visiond/visiond.json" in unit
    size = os.path.getsize(DEB)
    print(f"{os.path.basename(DEB)}: {size / 1e6:.2f} MB, {len(files)} entries, Depends: {depends}")


def test_apt_resolves_its_dependencies():
    """apt-get's simulation: every dependency exists for the package's
    architecture in the configured Debian archive (multiarch)."""
    r = subprocess.run(["apt-get", "install", "-s", "-q", os.path.abspath(DEB)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^Inst visiond(:\w+)? ", r.stdout, re.M), r.stdout


def test_packaged_binary_serves_packaged_models(package, tmp_path):
    qemu = re.search(r"exec (\S+) ", open(BIN).read()).group(1)
    wrapper = tmp_path / "visiond-packaged"
    wrapper.write_text(f'#!/bin/sh\nexec {qemu} {package}/usr/bin/visiond "$@"\n')
    wrapper.chmod(0o755)
    d = Daemon(str(package / "usr/share/visiond/models"), binary=str(wrapper),
               config=str(package / "etc/visiond/visiond.json")).start(timeout=180)
    try:
        with open(package / "usr/share/visiond/models/mnist/sample-7.png", "rb") as f:
            status, body = d.classify("mnist", f.read(), top_k=1)
        assert status == 200 and body["results"][0]["predictions"][0]["index"] == 7, body
        status, body = d.json("GET", "/v1/models")
        assert sorted(m["name"] for m in body["models"]) == ["faces", "mnist"]
    finally:
        assert d.stop() == 0, d.log()
