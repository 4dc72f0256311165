"""docker/Dockerfile.jetson, held to the arm64 cross build that make test
runs: no Docker and no Jetson image here, so its build stage's commands are
run as they are written, with ARCH=arm64 added (Debian's cross compiler
instead of the image's native one, no CUDA), and what they leave must be
what its run stage copies.
"""
import glob
import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCKERFILE = os.path.join(ROOT, "docker", "Dockerfile.jetson")


def instructions():
    """(instruction, text) pairs, continuation lines joined."""
    text = re.sub(r"\\\n", " ", open(DOCKERFILE).read())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_both_jetpacks_from_one_file():
    ins = instructions()
    args = {r.split("=")[0]: r.split("=")[1] for w, r in ins if w == "ARG" and "=" in r}
    assert re.match(r"r36\.\d+\.\d+$", args["L4T"]), "JetPack 6 is the default"
    froms = [r for w, r in ins if w == "FROM"]
    assert froms == ["nvcr.io/nvidia/l4t-jetpack:${L4T} AS build",
                     "nvcr.io/nvidia/l4t-jetpack:${L4T}"]
    head = open(DOCKERFILE).read().split("\nARG")[0]
    assert "--build-arg L4T=r35" in head, "the JetPack 5 build is documented"


def test_build_stage_is_the_cross_build(tmp_path):
    ins = instructions()
    run = [r for w, r in ins if w == "RUN"][0]
    steps = [s.strip() for s in run.split("&&")]
    deps = next(s for s in steps if "scripts/deps.sh" in s)
    make = next(s for s in steps if s.startswith("make "))
    # the schema: Debian's libonnx-dev here, as on Ubuntu 22.04
    env = dict(os.environ, proto="/usr/include/onnx/onnx.proto", SM="72 87")
    r = subprocess.run(["bash", "-c", deps], cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # the make line as written, for arm64, into the cross build's folder
    argv = subprocess.run(["bash", "-c", "printf '%s\\0' " + make.replace("make ", "", 1)],
                          env=env, capture_output=True, text=True).stdout.split("\0")[:-1]
    line = ["make", "ARCH=arm64", *[a.replace("/out", os.path.join(ROOT, "build-arm64"))
                                    for a in argv]]
    assert line[2] == "deb" and "CUDA=1" in line and "WERROR=0" in line, line
    arch = next(a for a in line if a.startswith("CUDA_ARCH="))
    assert arch.split() == ["CUDA_ARCH=-gencode", "arch=compute_72,code=sm_72", "-gencode",
                            "arch=compute_87,code=sm_87"], arch
    r = subprocess.run(line, cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    copy = next(r for w, r in instructions() if w == "COPY" and "--from=build" in r)
    pattern = copy.split()[1].replace("/out", os.path.join(ROOT, "build-arm64"))
    debs = glob.glob(pattern)
    assert len(debs) == 1, (pattern, debs)
    print(f"Dockerfile.jetson's build stage, run for arm64: {' '.join(line[1:])} -> "
          f"{os.path.basename(debs[0])}")
