"""Backends as modules: the binary links no CUDA library, loads the CUDA
backend (libvisiond_cuda.so beside it) with dlopen, and runs on the CPU,
saying once why, when the module, its libraries or a GPU are missing.

The libraries are hidden the way a machine without CUDA lacks them: in a
private mount namespace, an empty folder is mounted over each folder the
module's CUDA libraries resolve to (needs root, as make test runs here)."""
import os
import re
import shutil
import subprocess

import pytest

from daemon import Daemon
from visiond_test import BIN, BUILD, ROOT

MNIST = os.path.join(ROOT, "models", "mnist", "model.onnx")
MODULE = os.path.join(os.path.dirname(BIN), "libvisiond_cuda.so")
needs_module = pytest.mark.skipif(not os.path.exists(MODULE),
                                  reason="this build has no CUDA module (built with CUDA=0)")


def cuda_library_dirs():
    out = subprocess.run(["ldd", MODULE], capture_output=True, text=True, check=True).stdout
    dirs = {os.path.dirname(m.group(1))
            for m in re.finditer(r"libcu\w*\.so[.\d]* => (\S+)", out)}
    assert dirs, out
    return sorted(dirs)


def run_hidden(args, tmp_path):
    """Runs visiond with the module's CUDA libraries hidden."""
    empty = tmp_path / "empty"
    empty.mkdir(exist_ok=True)
    mounts = " && ".join(f"mount --bind {empty} {d}" for d in cuda_library_dirs())
    script = f'{mounts} && exec "$@"'
    return subprocess.run(["unshare", "--mount", "sh", "-c", script, "sh", BIN, *args],
                          capture_output=True, text=True, timeout=120)


def lone_binary(tmp_path, extra_files=()):
    """A copy of the binary in a folder of its own, with `extra_files`
    ({name: bytes}) beside it."""
    folder = tmp_path / "alone"
    folder.mkdir(parents=True)
    shutil.copy(BIN, folder / "visiond")
    for name, data in dict(extra_files).items():
        (folder / name).write_bytes(data)
    return str(folder / "visiond")


def test_the_binary_links_no_cuda_library():
    out = subprocess.run(["ldd", BIN], capture_output=True, text=True, check=True).stdout
    assert not re.search(r"libcu(da|dnn|blas)", out), out


@needs_module
def test_the_module_loads_and_says_once_why_the_gpu_is_not_used(repo_dir):
    r = subprocess.run([BIN, "info", "--model", MNIST, "--device", "auto"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "backend    cpu" in r.stdout
    # a machine without a GPU: the module loaded, and says there is no device
    assert re.search(r"no cuda device is usable here \(cudaGetDeviceCount: .+\): running on "
                     r"the cpu", r.stderr), r.stderr
    d = Daemon(repo_dir).start()
    try:
        assert d.classify("mnist", open(os.path.join(ROOT, "models", "mnist", "sample-7.png"),
                                        "rb").read())[0] == 200
    finally:
        assert d.stop() == 0, d.log()
    cuda_lines = [l for l in d.log_lines if "cuda" in l.lower()]
    assert len(cuda_lines) == 1 and "backend cuda: not used: cudaGetDeviceCount" in cuda_lines[0], \
        d.log()


@needs_module
@pytest.mark.skipif(os.geteuid() != 0, reason="hiding libraries needs a mount namespace (root)")
def test_the_binary_runs_with_the_modules_libraries_hidden(tmp_path):
    r = run_hidden(["bench", "--model", MNIST, "--device", "auto", "--batch", "2", "--iters",
                    "3"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert re.search(r"the cuda backend module did not load \(libcu\w+\.so[.\d]*: cannot open "
                     r"shared object file.*\): running on the cpu", r.stderr), r.stderr
    assert r.stderr.count("did not load") == 1, r.stderr
    # asked for by name, the GPU is an error that names the missing library
    r = run_hidden(["info", "--model", MNIST, "--device", "cuda"], tmp_path)
    assert r.returncode != 0
    assert re.search(r"device 'cuda' asked for, but the cuda backend module did not load "
                     r"\(libcu\w+\.so", r.stderr), r.stderr


def test_without_the_module_the_cpu_runs_and_cuda_is_refused(tmp_path):
    alone = lone_binary(tmp_path)
    r = subprocess.run([alone, "info", "--model", MNIST, "--device", "auto"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "backend    cpu" in r.stdout, r.stderr
    assert "cuda" not in r.stderr, r.stderr
    r = subprocess.run([alone, "info", "--model", MNIST, "--device", "cuda:0"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "device 'cuda:0' asked for, but this visiond has no cuda backend" in r.stderr, r.stderr


def test_a_broken_module_is_named_and_skipped(tmp_path, repo_dir):
    alone = lone_binary(tmp_path, {"libvisiond_broken.so": b"not an ELF file\n" * 8})
    r = subprocess.run([alone, "info", "--model", MNIST, "--device", "broken"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert re.search(r"device 'broken' asked for, but the broken backend module did not load "
                     r"\(.*libvisiond_broken\.so: .*\)", r.stderr), r.stderr
    args = [alone, "serve", "--listen", "127.0.0.1:0", "--models", repo_dir, "--device", "auto"]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in p.stdout:
            lines.append(line)
            if "listening on" in line:
                break
    finally:
        p.terminate()
        p.wait(30)
    assert any("backend broken: not used: its module did not load" in l for l in lines), lines
    assert any("backend cpu: " in l for l in lines), lines


TESTDEV = os.path.join(BUILD, "testmod", "libvisiond_testdev.so")
needs_testdev = pytest.mark.skipif(not os.path.exists(TESTDEV),
                                   reason="make daemon-test builds the test module")


def with_testdev(tmp_path):
    """The binary with the test device's module beside it (and no other)."""
    os.makedirs(tmp_path, exist_ok=True)
    return lone_binary(tmp_path, {"libvisiond_testdev.so": open(TESTDEV, "rb").read()})


@needs_testdev
def test_device_faults_are_answered_by_the_host_with_its_own_plans(tmp_path, repo_dir):
    """The test device has the highest priority, so `auto` puts every model
    on it; it plans without the CPU's channel-block room and fails every
    batch. Each batch is re-run on the CPU through plans of the CPU's own
    (squeezenet's 1000-channel classifier does not fill its last block):
    answers as from a CPU daemon, every batch counted as a fallback."""
    photo = open("/usr/share/darknet/data/dog.jpg", "rb").read()
    digit = open(os.path.join(ROOT, "models", "mnist", "sample-7.png"), "rb").read()
    answers = {}
    for name, binary in (("cpu", BIN), ("testdev", with_testdev(tmp_path))):
        d = Daemon(repo_dir, binary=binary, extra_args=["--device", "auto"]).start()
        try:
            got = []
            for _ in range(3):
                status, body = d.classify("squeezenet", photo, "image/jpeg", top_k=3)
                assert status == 200, body
                got.append(body["results"][0]["predictions"])
            status, body = d.classify("mnist", digit, top_k=1)
            assert status == 200 and body["results"][0]["predictions"][0]["index"] == 7, body
            text = d.request("GET", "/metrics")[2].decode()
            fallbacks = sum(int(v) for v in re.findall(
                r'^visiond_inference_fallbacks_total\{model="(?:squeezenet|mnist)"\} (\d+)',
                text, re.M))
            answers[name] = (got, fallbacks)
        finally:
            assert d.stop() == 0, d.log()
        if name == "testdev":
            assert any("backend testdev: 1 device" in l for l in d.log_lines), d.log()
    assert answers["cpu"][1] == 0
    assert answers["testdev"][1] >= 4  # every batch: 3 of squeezenet, 1 of mnist
    for a, b in zip(answers["cpu"][0], answers["testdev"][0]):
        assert [p["index"] for p in a] == [p["index"] for p in b]
        assert [p["score"] for p in a] == pytest.approx([p["score"] for p in b], rel=1e-5)


@needs_testdev
def test_a_model_goes_where_every_step_can_run(tmp_path):
    binary = with_testdev(tmp_path)
    env = dict(os.environ, VISIOND_TESTDEV_REFUSE="Conv,Gemm")
    r = subprocess.run([binary, "info", "--model", MNIST, "--device", "auto"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    assert "backend    cpu" in r.stdout
    m = re.search(r"the testdev backend cannot run (\d+) steps of this model \((.*)\): running "
                  r"it on the cpu", r.stderr)
    assert m, r.stderr
    assert int(m.group(1)) >= 3 and "Conv refused by the test" in m.group(2), r.stderr
    # info names each operator with the backend that runs it, and why
    assert re.search(r"^  Conv\S* +\d+ +[\d.]+% +cpu$", r.stdout, re.M), r.stdout
    assert re.search(r"^placement +the testdev backend cannot run", r.stdout, re.M), r.stdout
    r = subprocess.run([binary, "info", "--model", MNIST, "--device", "testdev"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode != 0
    assert "device 'testdev' cannot run" in r.stderr and "Conv refused by the test" in r.stderr
    # nothing refused: the model stays on the test device
    r = subprocess.run([binary, "info", "--model", MNIST, "--device", "auto"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "backend    testdev" in r.stdout, r.stdout + r.stderr
    assert re.search(r"^  Conv\S* +\d+ +[\d.]+% +testdev$", r.stdout, re.M), r.stdout
    assert "placement" not in r.stdout


@needs_testdev
def test_batches_are_gathered_where_the_backend_reads_them(tmp_path, repo_dir):
    """The batcher gathers each batch into the backend's own host memory
    (pinned on a GPU), so the backend copies no input on the host: counted
    by the backend, shown in /metrics. Without such memory every batch is
    one copy more."""
    digit = open(os.path.join(ROOT, "models", "mnist", "sample-7.png"), "rb").read()
    copies = {}
    for host in ("own", "plain"):
        env = dict(os.environ, VISIOND_TESTDEV_NO_HOST="1" if host == "plain" else "0")
        d = Daemon(repo_dir, binary=with_testdev(tmp_path / host), env=env,
                   extra_args=["--device", "auto"]).start()
        try:
            for _ in range(5):
                assert d.classify("mnist", digit, top_k=1)[0] == 200
            text = d.request("GET", "/metrics")[2].decode()
            m = re.search(r'^visiond_input_host_copies_total\{model="mnist"\} (\d+)', text, re.M)
            f = re.search(r'^visiond_inference_fallbacks_total\{model="mnist"\} (\d+)', text,
                          re.M)
            assert m and f, text[:3000]
            copies[host] = (int(m.group(1)), int(f.group(1)))
        finally:
            assert d.stop() == 0, d.log()
    assert copies["own"] == (0, 5), copies
    assert copies["plain"] == (5, 5), copies
