"""Models that change while the daemon runs: version folders and the
version policy, SIGHUP, the poll and the model repository endpoints, a
failed reload that leaves the old version serving, systemd's reload
protocol, and the two promises that matter most: no request dropped while
a model is swapped under load, and no memory kept after unloads.

The models are small CNNs made here with PyTorch, one set of weights per
version, so every answer can be checked against PyTorch for the version
that says it served it."""
import json
import os
import shutil
import signal
import socket
import threading
import time
import urllib.request
import warnings

import numpy as np
import pytest
import torch

import oip_contract
from daemon import Daemon, sanitized_binary
from visiond_test import BIN

SIZE = 32  # the small models' input: 3 x 32 x 32


class SmallNet(torch.nn.Module):
    def __init__(self, width, classes=10, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, width, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(width, width, 3, stride=2, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(width, width, 3, padding=1), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
            torch.nn.Linear(width, classes))

    def forward(self, x):
        return self.body(x)


def export(model, path, size=SIZE):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    kwargs = {}
    if "dynamo" in torch.onnx.export.__code__.co_varnames:
        kwargs["dynamo"] = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), torch.zeros(1, 3, size, size), path, opset_version=13,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}}, **kwargs)


def model_json(policy=None, size=SIZE, batch=8):
    cfg = {"input": {"width": size, "height": size, "resize": "stretch"},
           "batching": {"max_batch_size": batch, "max_queue_delay_us": 500}}
    if policy is not None:
        cfg["version_policy"] = policy
    return cfg


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    """Two versions of one small model: their ONNX files and PyTorch modules."""
    d = tmp_path_factory.mktemp("versions")
    nets = {v: SmallNet(16, seed=v) for v in (1, 2)}
    files = {}
    for v, net in nets.items():
        files[v] = str(d / f"v{v}.onnx")
        export(net, files[v])
    return nets, files


def make_repo(tmp_path, files, policy=None, layout=(1, 2)):
    repo = tmp_path / "models"
    m = repo / "small"
    for v in layout:
        os.makedirs(m / str(v))
        shutil.copy(files[v], m / str(v) / "model.onnx")
    write_json(str(m / "model.json"), model_json(policy))
    return str(repo)


def tensor(seed):
    return np.random.default_rng(seed).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)


def infer_body(x):
    return json.dumps({"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                                   "data": x.ravel().tolist()}]}).encode()


def reference(net, x):
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy().ravel()


def infer(d, x, path="/v2/models/small/infer"):
    status, out = d.json("POST", path, infer_body(x), {"Content-Type": "application/json"})
    return status, out


def index(d):
    status, rows = d.json("POST", "/v2/repository/index")
    assert status == 200, rows
    return rows


def wait_for(d, predicate, what, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        rows = index(d)
        if predicate(rows):
            return rows
        time.sleep(0.02)
    raise AssertionError(f"{what}: index {index(d)}\n{d.log()[-3000:]}")


def serving(rows, name="small"):
    return sorted(int(r["version"]) for r in rows
                  if r["name"] == name and r["state"] == "READY")


def test_versions_policy_and_addressing(tmp_path, versions):
    nets, files = versions
    repo = make_repo(tmp_path, files)
    d = Daemon(repo).start()
    try:
        x = tensor(1)
        # latest 1 by default: version 2 serves, and answers without a version
        assert serving(index(d)) == [2]
        status, out = infer(d, x)
        assert status == 200, out
        assert out["model_version"] == "2"
        np.testing.assert_allclose(out["outputs"][0]["data"], reference(nets[2], x),
                                   rtol=1e-4, atol=1e-5)
        status, out = infer(d, x, "/v2/models/small/versions/1/infer")
        assert status == 404 and "no version 1" in out["error"]
        status, meta = d.json("GET", "/v2/models/small")
        assert status == 200 and meta["versions"] == ["2"]
        status, body = d.json("GET", "/v2/models/small/versions/1/ready")
        assert status == 400 and body == {"name": "small", "ready": False}
        # every version: each answers as itself, by v1 and v2 routes
        write_json(os.path.join(repo, "small", "model.json"), model_json({"all": {}}))
        d.proc.send_signal(signal.SIGHUP)
        wait_for(d, lambda rows: serving(rows) == [1, 2], "both versions serve")
        status, meta = d.json("GET", "/v2/models/small")
        assert meta["versions"] == ["1", "2"]
        png = image_png(7)
        for v in (1, 2):
            status, out = infer(d, x, f"/v2/models/small/versions/{v}/infer")
            assert status == 200 and out["model_version"] == str(v), out
            np.testing.assert_allclose(out["outputs"][0]["data"], reference(nets[v], x),
                                       rtol=1e-4, atol=1e-5)
            status, out = d.json("POST", f"/v1/models/small/versions/{v}/classify", png,
                                 {"Content-Type": "image/png"})
            assert status == 200 and out["model_version"] == v, out
            status, body = d.json("GET", f"/v2/models/small/versions/{v}/ready")
            assert status == 200 and body["ready"]
            status, body = d.json("GET", f"/v1/models/small/versions/{v}/algorithms")
            assert status == 200 and body["version"] == v
        status, out = d.json("POST", "/v1/models/small/classify", png,
                             {"Content-Type": "image/png"})
        assert status == 200 and out["model_version"] == 2
        # `visiond preprocess` on a version folder reads the model's model.json
        # as the daemon does: its tensor through version 2 gives /classify's scores
        png_path, npy = str(tmp_path / "x.png"), str(tmp_path / "x.npy")
        with open(png_path, "wb") as f:
            f.write(png)
        r = __import__("subprocess").run(
            [BIN, "preprocess", "--model-dir", os.path.join(repo, "small", "2"), "--image",
             png_path, "--output", npy], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        logits = reference(nets[2], np.load(npy))
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        top = out["results"][0]["predictions"]
        assert top[0]["index"] == int(np.argmax(probs))
        np.testing.assert_allclose([p["score"] for p in top],
                                   [probs[p["index"]] for p in top], rtol=1e-4, atol=1e-6)
        for bad, code in (("0", 404), ("01", 404), ("x", 404), ("3", 404),
                          ("99999999999999999999", 404)):
            status, out = infer(d, x, f"/v2/models/small/versions/{bad}/infer")
            assert status == code and "version" in out["error"], (bad, out)
        status, listing = d.json("GET", "/v1/models")
        (small,) = [m for m in listing["models"] if m["name"] == "small"]
        assert small["state"] == "ready" and small["version"] == 2
        assert [v["version"] for v in small["versions"]] == [1, 2]
        # specific versions
        write_json(os.path.join(repo, "small", "model.json"),
                   model_json({"specific": {"versions": [1]}}))
        d.proc.send_signal(signal.SIGHUP)
        rows = wait_for(d, lambda rows: serving(rows) == [1] and not any(
            r["state"] == "UNLOADING" for r in rows), "only version 1 serves")
        status, out = infer(d, x)
        assert status == 200 and out["model_version"] == "1"
        # a bad policy is refused, and what serves keeps serving
        write_json(os.path.join(repo, "small", "model.json"),
                   model_json({"latest": {"num_versions": 0}}))
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 30
        while "num_versions" not in d.log() and time.time() < deadline:
            time.sleep(0.05)
        assert "version_policy.latest.num_versions must be an integer from 1" in d.log()
        status, out = infer(d, x)
        assert status == 200 and out["model_version"] == "1"
        # a policy naming no version in the folder: said, and nothing is taken down
        write_json(os.path.join(repo, "small", "model.json"),
                   model_json({"specific": {"versions": [7]}}))
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 30
        while "names none of the 2 versions" not in json.dumps(
                d.json("GET", "/v1/models")[1]) and time.time() < deadline:
            time.sleep(0.05)
        (small,) = [m for m in d.json("GET", "/v1/models")[1]["models"] if m["name"] == "small"]
        assert "names none of the 2 versions" in small["error"], small
        status, out = infer(d, x)
        assert status == 200 and out["model_version"] == "1"
    finally:
        assert d.stop() == 0


def image_png(seed):
    from PIL import Image
    import io
    a = np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def test_swap_under_load_drops_nothing(tmp_path, versions):
    """16 clients send continuously while the model is swapped 20 times
    between two versions (SIGHUP and the load endpoint, in turn): every
    request is answered 200 by one version or the other, with that
    version's numbers."""
    nets, files = versions
    repo = make_repo(tmp_path, files, policy={"specific": {"versions": [1]}})
    json_path = os.path.join(repo, "small", "model.json")
    d = Daemon(repo, extra_args=["--threads", "1"]).start()
    inputs = [tensor(100 + i) for i in range(16)]
    bodies = [infer_body(x) for x in inputs]
    refs = {v: [reference(nets[v], x) for x in inputs] for v in (1, 2)}
    stop = threading.Event()
    answers = []  # (client, status, version, data or error)
    errors = []

    def client(i):
        conn = None
        while not stop.is_set():
            try:
                import http.client
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
                conn.request("POST", "/v2/models/small/infer", body=bodies[i],
                             headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                raw = resp.read()
                oip_contract.check("POST", "/v2/models/small/infer", resp.status,
                                   dict(resp.getheaders()), raw)
                data = json.loads(raw)
                if resp.status == 200:
                    answers.append((i, 200, data["model_version"], data["outputs"][0]["data"]))
                else:
                    answers.append((i, resp.status, None, data.get("error")))
            except Exception as e:  # a reset or a timeout is a dropped request
                errors.append(f"client {i}: {e!r}")
                conn = None

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    swaps = []
    try:
        time.sleep(0.5)
        for k in range(20):
            target = 2 if k % 2 == 0 else 1
            other = 3 - target
            write_json(json_path, model_json({"specific": {"versions": [target]}}))
            t0 = time.time()
            if k % 4 < 2:
                d.proc.send_signal(signal.SIGHUP)
                how = "SIGHUP"
            else:
                status, body = d.json("POST", "/v2/repository/models/small/load")
                assert status == 200, body
                how = "load"
            wait_for(d, lambda rows: serving(rows) == [target] and not any(
                r.get("version") == str(other) for r in rows), f"swap {k} to {target}")
            swaps.append((how, time.time() - t0, len(answers)))
            time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
        code = d.stop()
    bad = [a for a in answers if a[1] != 200]
    assert not errors, errors[:5]
    assert not bad, bad[:5]
    assert code == 0
    by_version = {"1": 0, "2": 0}
    for i, _, version, data in answers:
        by_version[version] += 1
        np.testing.assert_allclose(data, refs[int(version)][i], rtol=1e-4, atol=1e-5)
    # both served, and each swap took effect while requests were flowing
    assert by_version["1"] > 50 and by_version["2"] > 50, by_version
    assert len(swaps) == 20
    print(f"\nswap under load: {len(answers)} requests from 16 clients, all 200 "
          f"({by_version['1']} by version 1, {by_version['2']} by version 2); 20 swaps, "
          f"median {np.median([s[1] for s in swaps]) * 1000:.0f} ms to take over, "
          f"slowest {max(s[1] for s in swaps) * 1000:.0f} ms")


def test_failed_reload_keeps_the_old_version(tmp_path, versions):
    nets, files = versions
    repo = make_repo(tmp_path, files)
    d = Daemon(repo).start()
    x = tensor(3)
    try:
        # a broken version 3 appears: version 2 keeps serving, the index says why
        os.makedirs(os.path.join(repo, "small", "3"))
        with open(os.path.join(repo, "small", "3", "model.onnx"), "wb") as f:
            f.write(b"\x08\x07this is not an onnx model")
        d.proc.send_signal(signal.SIGHUP)
        rows = wait_for(d, lambda rows: any(r.get("version") == "3" and r["state"] ==
                                            "UNAVAILABLE" for r in rows), "version 3 failed")
        (v3,) = [r for r in rows if r.get("version") == "3"]
        assert v3["reason"], v3
        assert serving(rows) == [2]
        status, out = infer(d, x)
        assert status == 200 and out["model_version"] == "2"
        assert "model small version 3 failed to load" in d.log()
        status, body = d.json("POST", "/v2/repository/models/small/load")
        assert status == 400 and "version 3" in body["error"], body
        status, listing = d.json("GET", "/v1/models")
        (small,) = [m for m in listing["models"] if m["name"] == "small"]
        assert small["state"] == "ready" and small["version"] == 2
        assert any(v["version"] == 3 and v["state"] == "failed" and v["error"]
                   for v in small["versions"]), small
        metrics = d.request("GET", "/metrics")[2].decode()
        assert 'visiond_model_load_failures_total{model="small"} 2' in metrics
        assert 'visiond_model_versions_loaded{model="small"} 1' in metrics
        assert 'visiond_model_version_ready{model="small",version="2"} 1' in metrics
        assert 'visiond_model_load_duration_seconds_count{model="small"} 3' in metrics
        # a bad reload of the version serving: it keeps serving, says why
        shutil.rmtree(os.path.join(repo, "small", "3"))
        with open(os.path.join(repo, "small", "2", "model.onnx"), "r+b") as f:
            f.truncate(100)
        d.proc.send_signal(signal.SIGHUP)
        rows = wait_for(d, lambda rows: any(r.get("version") == "2" and r["reason"]
                                            for r in rows), "version 2's reload failed")
        assert serving(rows) == [2]
        status, out = infer(d, x)
        assert status == 200 and out["model_version"] == "2"
        np.testing.assert_allclose(out["outputs"][0]["data"], reference(nets[2], x),
                                   rtol=1e-4, atol=1e-5)
        assert "(the version loaded before keeps serving)" in d.log()
        # fixed on disk: the next read takes it
        shutil.copy(files[2], os.path.join(repo, "small", "2", "model.onnx"))
        d.proc.send_signal(signal.SIGHUP)
        wait_for(d, lambda rows: serving(rows) == [2] and not any(
            r["reason"] or r["state"] == "UNLOADING" for r in rows), "version 2 reloaded")
        # unload, load, unknown names, a body the endpoints do not take
        status, body = d.json("POST", "/v2/repository/models/small/unload")
        assert status == 200, body
        status, out = infer(d, x)
        assert status == 503 and "unloaded" in out["error"]
        rows = wait_for(d, lambda rows: rows == [{"name": "small", "state": "UNAVAILABLE",
                                                  "reason": "unloaded"}], "unloaded")
        d.proc.send_signal(signal.SIGHUP)  # an unloaded model stays unloaded
        time.sleep(0.5)
        assert serving(index(d)) == []
        assert d.json("POST", "/v2/repository/index", b'{"ready": true}')[1] == []
        status, body = d.json("POST", "/v2/repository/models/small/load")
        assert status == 200, body
        status, out = infer(d, x)
        assert status == 200 and out["model_version"] == "2"
        for path, body, code in (("/v2/repository/models/nothere/load", b"", 400),
                                 ("/v2/repository/models/nothere/unload", b"", 400),
                                 ("/v2/repository/models/small/load", b'{"parameters": '
                                  b'{"config": "{}"}}', 400),
                                 ("/v2/repository/index", b"[1]", 400),
                                 ("/v2/repository/index", b"x" * 70000, 413)):
            status, out = d.json("POST", path, body, {"Content-Type": "application/json"})
            assert status == code and out["error"], (path, out)
    finally:
        assert d.stop() == 0


def test_poll_picks_up_a_new_version(tmp_path, versions):
    nets, files = versions
    repo = make_repo(tmp_path, files, layout=(1,))
    cfg = tmp_path / "visiond.json"
    cfg.write_text(json.dumps({"repository_poll_s": 1}))
    d = Daemon(repo, config=str(cfg)).start()
    try:
        x = tensor(4)
        assert infer(d, x)[1]["model_version"] == "1"
        # a version written under a temporary name and renamed in, as a deployment should
        os.makedirs(os.path.join(repo, "small", "tmp"))
        shutil.copy(files[2], os.path.join(repo, "small", "tmp", "model.onnx"))
        os.rename(os.path.join(repo, "small", "tmp"), os.path.join(repo, "small", "2"))
        wait_for(d, lambda rows: serving(rows) == [2], "the poll loaded version 2", timeout=20)
        status, out = infer(d, x)
        assert status == 200 and out["model_version"] == "2"
        np.testing.assert_allclose(out["outputs"][0]["data"], reference(nets[2], x),
                                   rtol=1e-4, atol=1e-5)
        # a model folder removed: gone at the next poll
        shutil.rmtree(os.path.join(repo, "small"))
        wait_for(d, lambda rows: rows == [], "the model is gone", timeout=20)
        assert infer(d, x)[0] == 404
    finally:
        assert d.stop() == 0


def test_model_control_only_where_allowed(tmp_path, versions):
    _, files = versions
    repo = make_repo(tmp_path, files)
    # any address: off unless configured
    d = Daemon(repo, extra_args=["--listen", "0.0.0.0:0"]).start()
    try:
        status, body = d.json("POST", "/v2/repository/index")
        assert status == 403 and "model_control" in body["error"]
        status, body = d.json("POST", "/v2/repository/models/small/unload")
        assert status == 403
        assert d.json("GET", "/v2")[1]["extensions"] == ["binary_tensor_data", "classification"]
        assert infer(d, tensor(5))[0] == 200
    finally:
        assert d.stop() == 0
    cfg = tmp_path / "on.json"
    cfg.write_text(json.dumps({"model_control": True}))
    d = Daemon(repo, config=str(cfg), extra_args=["--listen", "0.0.0.0:0"]).start()
    try:
        assert d.json("POST", "/v2/repository/index")[0] == 200
        assert d.json("GET", "/v2")[1]["extensions"] == ["binary_tensor_data", "classification",
                                                         "model_repository"]
    finally:
        assert d.stop() == 0
    cfg.write_text(json.dumps({"model_control": False}))
    d = Daemon(repo, config=str(cfg)).start()  # loopback, but turned off
    try:
        assert d.json("POST", "/v2/repository/index")[0] == 403
    finally:
        assert d.stop() == 0


def test_systemd_reload_protocol(tmp_path, versions):
    """With NOTIFY_SOCKET set (as systemd does for Type=notify), a SIGHUP is
    bracketed by RELOADING=1 (with MONOTONIC_USEC) and READY=1."""
    _, files = versions
    repo = make_repo(tmp_path, files, layout=(1,))
    sock_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(30)
    env = dict(os.environ, NOTIFY_SOCKET=sock_path)
    d = Daemon(repo, env=env).start()

    def next_message():
        return sock.recv(4096).decode()

    try:
        msg = next_message()
        assert msg.startswith("READY=1") and "serving 1 of 1 models" in msg, msg
        os.makedirs(os.path.join(repo, "small", "2"))
        shutil.copy(files[2], os.path.join(repo, "small", "2", "model.onnx"))
        d.proc.send_signal(signal.SIGHUP)
        msg = next_message()
        assert msg.startswith("RELOADING=1\nMONOTONIC_USEC="), msg
        usec = int(msg.split("\n")[1].split("=")[1])
        assert abs(usec / 1e6 - time.monotonic()) < 5
        msg = next_message()
        assert msg.startswith("READY=1"), msg
        # READY=1 came once version 2 was serving
        assert serving(index(d)) == [2]
    finally:
        assert d.stop() == 0
        sock.close()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_unload_returns_memory(tmp_path):
    """50 unload/load cycles of a 9 MB model, with requests each time: the
    resident size after the last is within 5% of after the first. (Under
    AddressSanitizer, 5 cycles check the memory safety of unloading
    instead, and its leak check at exit what was not freed.)"""
    cycles = 5 if sanitized_binary() else 50
    net = SmallNet(320, classes=1000, seed=9)
    repo = tmp_path / "models"
    export(net, str(repo / "big" / "1" / "model.onnx"), size=64)
    write_json(str(repo / "big" / "model.json"), model_json(size=64, batch=4))
    size_mb = os.path.getsize(repo / "big" / "1" / "model.onnx") / 1e6
    d = Daemon(str(repo), extra_args=["--threads", "1"]).start()
    x = np.random.default_rng(0).standard_normal((4, 3, 64, 64)).astype(np.float32)
    body = infer_body(x)
    want = reference(net, x)
    rss = []  # after the initial load, then after each cycle
    try:
        for cycle in range(cycles + 1):
            if cycle:
                status, out = d.json("POST", "/v2/repository/models/big/unload")
                assert status == 200, out
                wait_for(d, lambda rows: rows == [{"name": "big", "state": "UNAVAILABLE",
                                                   "reason": "unloaded"}], "drained")
                status, out = d.json("POST", "/v2/repository/models/big/load")
                assert status == 200, out
            for _ in range(3):
                status, out = d.json("POST", "/v2/models/big/infer", body,
                                     {"Content-Type": "application/json"})
                assert status == 200, out
            if cycle in (0, cycles):
                np.testing.assert_allclose(out["outputs"][0]["data"], want, rtol=1e-3,
                                           atol=1e-4)
            rss.append(rss_kib(d.proc.pid))
    finally:
        assert d.stop() == 0
    if sanitized_binary():
        return
    first, last = rss[1], rss[-1]
    print(f"\nRSS with a {size_mb:.1f} MB model: {rss[0] / 1024:.1f} MiB after the initial "
          f"load, {first / 1024:.1f} MiB after the first unload/load cycle, "
          f"{last / 1024:.1f} MiB after 50 cycles ({(last - first) / first:+.1%}); "
          f"smallest {min(rss[1:]) / 1024:.1f}, largest {max(rss[1:]) / 1024:.1f} MiB")
    print("RSS MiB by cycle: " + " ".join(f"{k / 1024:.0f}" for k in rss))
    assert abs(last - first) <= 0.05 * first, rss
    assert max(rss[1:]) - min(rss[1:]) <= 0.05 * first, rss  # no cycle strays either

