"""Memory per model: /metrics' visiond_model_resident_bytes and
visiond_model_memory_bytes{part} and `visiond info`'s memory line, held to
the process's own resident size as the kernel counts it (/proc/PID/statm).

What a model holds is allocated at load (weights, the backend's packed or
transformed copies, the arena and workspace of its largest batch); pages
of the arena and workspace that no batch has touched yet are not in the
RSS, so the RSS a load adds lies between the weights' part and the whole.
"""
import json
import os
import re
import shutil

from conftest import IMAGENET, add_model, conformance_model
from daemon import Daemon, sanitized_binary
from visiond_test import run_visiond

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOG = "/usr/share/darknet/data/dog.jpg"


def rss(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def float_initializers(path):
    import numpy as np
    import onnx
    return sum(int(np.prod(t.dims)) for t in onnx.load(path).graph.initializer
               if t.data_type == onnx.TensorProto.FLOAT)


def memory_series(text, model):
    parts = {m.group(1): float(m.group(2)) for m in re.finditer(
        rf'visiond_model_memory_bytes\{{model="{model}",version="1",part="(\w+)"\}} (\S+)', text)}
    m = re.search(rf'visiond_model_resident_bytes\{{model="{model}",version="1"\}} (\S+)', text)
    return parts, float(m.group(1)) if m else None


def test_model_memory_matches_what_the_process_holds(tmp_path):
    repo = str(tmp_path / "models")
    shutil.copytree(os.path.join(ROOT, "models", "mnist"), os.path.join(repo, "mnist"))
    d = Daemon(repo).start()
    try:
        with open(os.path.join(ROOT, "models", "mnist", "sample-7.png"), "rb") as f:
            assert d.classify("mnist", f.read())[0] == 200
        before = rss(d.proc.pid)
        onnx_path = conformance_model("resnet18")
        add_model(repo, "resnet18", onnx_path, IMAGENET)
        status, body = d.json("POST", "/v2/repository/models/resnet18/load", b"{}")
        assert status == 200, body
        with open(DOG, "rb") as f:
            jpeg = f.read()
        for _ in range(3):
            assert d.classify("resnet18", jpeg, "image/jpeg")[0] == 200
        grew = rss(d.proc.pid) - before
        _, _, text = d.request("GET", "/metrics")
        parts, resident = memory_series(text.decode(), "resnet18")
        print(f"resnet18: {json.dumps(parts)}, resident {resident / 2**20:.1f} MiB; "
              f"the process's RSS grew {grew / 2**20:.1f} MiB")
        assert set(parts) == {"weights", "backend_weights", "arena", "workspace"}
        assert resident == sum(parts.values())
        assert parts["weights"] == 4 * float_initializers(onnx_path)
        assert parts["arena"] > 0 and parts["workspace"] >= 0
        held_at_load = parts["weights"] + parts["backend_weights"]
        if not sanitized_binary():  # AddressSanitizer's shadow and quarantine count too
            assert 0.9 * held_at_load <= grew <= resident + 32 * 2**20, (grew, parts)
        mnist_parts, mnist_resident = memory_series(text.decode(), "mnist")
        assert 0 < mnist_resident < 16 * 2**20

        status, _ = d.json("POST", "/v2/repository/models/resnet18/unload", b"{}")
        assert status == 200
        _, _, text = d.request("GET", "/metrics")
        parts, resident = memory_series(text.decode(), "resnet18")
        assert resident == 0 and not any(parts.values()), "an unloaded version holds nothing"
    finally:
        d.stop()


def test_info_reports_memory():
    model = os.path.join(ROOT, "models", "faces", "model.onnx")
    r = run_visiond("info", "--model", model, "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    mem = info["memory"]
    assert mem["weights"] == info["parameters"] * 4
    assert mem["resident"] == mem["weights"] + mem["backend_weights"] + mem["arena"] + \
        mem["workspace"]
    assert mem["arena"] >= info["peak_activation_bytes"] > 0
    assert mem["process_rss"] > mem["weights"]
    r = run_visiond("info", "--model", model)
    assert re.search(r"^memory +[\d.]+ MB resident: [\d.]+ MB weights", r.stdout, re.M), r.stdout
