#!/usr/bin/python3
"""make bench-http: the daemon under wrk, next to the engine alone.

For each model, wrk POSTs one JPEG (tests/bench/post_image.lua) at
concurrency 1, 8 and 32 for a fixed time; the table shows throughput, p50
and p99 latency, the mean batch the requests rode in (from the daemon's
own batch-size histogram), and the engine-only throughput of `visiond
bench` at that batch size; then, at concurrency 1, p50 against the sum of
decode + preprocess time (the daemon's histogram) and engine time at
batch 1. Not a test: it asserts nothing.

Then the OIP rows: the dog photo, decoded and resized as squeezenet's
model.json says (`visiond preprocess`), POSTed to /v2/models/.../infer as
a binary UINT8 tensor (Inference-Header-Content-Length) and as the same
numbers in JSON, alternating (three runs each), at concurrency 1 and 8:
req/s, p50 and p99 side by side, and the medians' ratio.

Models: the embedded default (mnist, a digit as JPEG) and squeezenet1_1
(a conformance export with ImageNet preprocessing and jpeg_dct_scaling on,
Debian darknet's 768x576 dog.jpg).

The header says which BLAS kernel the daemon and `visiond bench` ran and
what was done with the caller's OpenBLAS settings (tests/bench/bench_env.py).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "tests", "daemon"))
sys.path.insert(0, HERE)
import bench_env  # noqa: E402


def histogram(text, name, model):
    """(sum, count) of a histogram series for one model."""
    s = re.search(rf'^{name}_sum{{model="{model}"}} (\S+)$', text, re.M)
    c = re.search(rf'^{name}_count{{model="{model}"}} (\S+)$', text, re.M)
    return (float(s.group(1)), float(c.group(1))) if s and c else (0.0, 0.0)


def parse_wrk(out):
    def ms(v):
        n, unit = re.match(r"([\d.]+)(us|ms|s)", v).groups()
        return float(n) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return rps, p50, p99, int(bad.group(1)) if bad else 0, errors.group(1) if errors else ""


def engine_ips(visiond, model_path, batch, threads):
    r = subprocess.run([visiond, "bench", "--model", model_path, "--batch", str(batch),
                        "--iters", "30", "--warmup", "5", "--json"] +
                       (["--threads", str(threads)] if threads else []),
                       capture_output=True, text=True, check=True)
    j = json.loads(r.stdout)
    return batch * 1e3 / j["median_ms"], j["median_ms"]


def engine_backend(visiond, model_path):
    r = subprocess.run([visiond, "bench", "--model", model_path, "--batch", "1", "--iters", "1",
                        "--warmup", "0", "--json"], capture_output=True, text=True, check=True)
    return json.loads(r.stdout)["backend"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--concurrency", default="1,8,32")
    bench_env.add_argument(ap)
    args = ap.parse_args()
    # both sides are visiond (the daemon and `visiond bench`): one environment
    vd_env, env_note = bench_env.visiond_env(args.keep_blas_env)
    os.environ.clear()
    os.environ.update(vd_env)
    build = os.path.abspath(args.build)
    os.environ.setdefault("VISIOND_BUILD", build)
    visiond = os.path.join(build, "visiond")
    from conftest import add_model, conformance_model, imagenet_labels, IMAGENET
    from daemon import Daemon
    from PIL import Image

    repo = tempfile.mkdtemp(prefix="visiond-bench-")
    import shutil
    shutil.copytree(os.path.join(ROOT, "models", "mnist"), os.path.join(repo, "mnist"))
    fast = dict(IMAGENET, batching={"max_batch_size": 16, "max_queue_delay_us": 2000})
    fast["input"] = dict(IMAGENET["input"], jpeg_dct_scaling=True)
    add_model(repo, "squeezenet1_1", conformance_model("squeezenet1_1"), fast, imagenet_labels())
    digit = os.path.join(repo, "digit.jpg")
    Image.open(os.path.join(ROOT, "models", "mnist", "sample-7.png")).save(digit, quality=95)
    cases = [("mnist", digit), ("squeezenet1_1", "/usr/share/darknet/data/dog.jpg")]
    digit_model = os.path.join(repo, "mnist", "model.onnx")

    d = Daemon(repo, extra_args=["--log-level", "info"]).start()
    print(f"# bench-http {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores; "
          f"wrk -t1 for {args.duration} s per row; daemon and wrk share the machine")
    print(f"# environment: {env_note}")
    daemon_blas = next((l.split("backend cpu: ", 1)[1] for l in d.log_lines if "backend cpu: " in l),
                       "? (not in the daemon's log)")
    print(f"# daemon: {daemon_blas}")
    print(f"# engine img/s (visiond bench): {engine_backend(visiond, digit_model)}")
    print(f"{'model':14} {'conc':>4} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'mean batch':>10} "
          f"{'engine img/s':>12} {'http/engine':>11} {'errors':>6}")
    for model, image in cases:
        model_path = os.path.join(repo, model, "model.onnx")
        env = dict(os.environ, IMAGE=image, IMAGE_TYPE="image/jpeg")
        url = f"http://127.0.0.1:{d.port}/v1/models/{model}/classify"
        subprocess.run(["wrk", "-t1", "-c1", "-d2s", "-s",
                        os.path.join(HERE, "post_image.lua"), url], env=env,
                       capture_output=True)  # warm-up
        c1 = None
        for conc in [int(c) for c in args.concurrency.split(",")]:
            before = d.request("GET", "/metrics")[2].decode()
            r = subprocess.run(["wrk", "-t1", f"-c{conc}", f"-d{args.duration}s", "--latency",
                                "-s", os.path.join(HERE, "post_image.lua"), url], env=env,
                               capture_output=True, text=True)
            after = d.request("GET", "/metrics")[2].decode()
            rps, p50, p99, bad, sock = parse_wrk(r.stdout)
            bs = [a - b for a, b in zip(histogram(after, "visiond_batch_size", model),
                                        histogram(before, "visiond_batch_size", model))]
            pp = [a - b for a, b in zip(
                histogram(after, "visiond_preprocess_duration_seconds", model),
                histogram(before, "visiond_preprocess_duration_seconds", model))]
            mean_batch = bs[0] / bs[1] if bs[1] else 0
            batch = max(1, round(mean_batch))
            ips, _ = engine_ips(visiond, model_path, batch, 0)
            print(f"{model:14} {conc:>4} {rps:>8.1f} {p50:>8.2f} {p99:>8.2f} {mean_batch:>10.1f} "
                  f"{ips:>12.1f} {rps / ips:>11.2f} {bad + (1 if sock else 0):>6}", flush=True)
            if conc == 1:
                c1 = (p50, pp[0] / pp[1] * 1e3 if pp[1] else 0)
        if c1:
            _, engine_ms = engine_ips(visiond, model_path, 1, 0)
            print(f"#   {model} at concurrency 1: p50 {c1[0]:.2f} ms vs decode+preprocess "
                  f"{c1[1]:.2f} ms + engine {engine_ms:.2f} ms = {c1[1] + engine_ms:.2f} ms "
                  f"(overhead {c1[0] - c1[1] - engine_ms:+.2f} ms)")
    v2_rows(d, repo, visiond, args)
    d.stop()
    shutil.rmtree(repo)


def v2_rows(d, repo, visiond, args):
    """The same image as a binary UINT8 tensor and as JSON numbers."""
    import numpy as np
    npy = os.path.join(repo, "dog.npy")
    subprocess.run([visiond, "preprocess", "--model-dir", os.path.join(repo, "squeezenet1_1"),
                    "--image", "/usr/share/darknet/data/dog.jpg", "--output", npy], check=True,
                   capture_output=True)
    # the resized pixels (the preprocessed tensor undone): what a camera pipeline holds
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    x = np.load(npy)
    pixels = np.clip(np.rint((x * std[None, :, None, None] + mean[None, :, None, None]) * 255),
                     0, 255).astype(np.uint8)
    head = json.dumps({"inputs": [{"name": "input", "shape": list(pixels.shape),
                                   "datatype": "UINT8",
                                   "parameters": {"binary_data_size": pixels.nbytes}}]}).encode()
    binary = os.path.join(repo, "binary.body")
    with open(binary, "wb") as f:
        f.write(head + pixels.tobytes())
    text = os.path.join(repo, "json.body")
    with open(text, "wb") as f:
        f.write(json.dumps({"inputs": [{"name": "input", "shape": list(pixels.shape),
                                        "datatype": "UINT8",
                                        "data": pixels.ravel().tolist()}]}).encode())
    forms = {"binary": (binary, "application/octet-stream", str(len(head))),
             "json": (text, "application/json", None)}
    url = f"http://127.0.0.1:{d.port}/v2/models/squeezenet1_1/infer"
    print(f"# OIP: squeezenet1_1, dog.jpg as a {'x'.join(map(str, pixels.shape))} UINT8 tensor: "
          f"binary body {os.path.getsize(binary)} bytes, JSON body {os.path.getsize(text)} bytes; "
          f"rows alternate")
    print(f"{'form':8} {'conc':>4} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    results = {}
    for conc in (1, 8):
        for form in ("binary", "json") * 3:  # alternating, three each: medians
            path, ctype, hl = forms[form]
            env = dict(os.environ, IMAGE=path, IMAGE_TYPE=ctype)
            if hl:
                env["INFER_HEADER_LENGTH"] = hl
            r = subprocess.run(["wrk", "-t1", f"-c{conc}", f"-d{max(2, args.duration // 2)}s",
                                "--latency", "-s", os.path.join(HERE, "post_image.lua"), url],
                               env=env, capture_output=True, text=True)
            rps, p50, p99, bad, sock = parse_wrk(r.stdout)
            results.setdefault((form, conc), []).append((rps, p50, p99))
            print(f"{form:8} {conc:>4} {rps:>8.1f} {p50:>8.2f} {p99:>8.2f} "
                  f"{bad + (1 if sock else 0):>6}", flush=True)
        med = {f: [sorted(v[i] for v in results[(f, conc)])[len(results[(f, conc)]) // 2]
                   for i in range(3)] for f in ("binary", "json")}
        print(f"#   concurrency {conc}: binary/JSON req/s {med['binary'][0] / med['json'][0]:.2f}x,"
              f" p50 {med['binary'][1]:.2f} vs {med['json'][1]:.2f} ms, "
              f"p99 {med['binary'][2]:.2f} vs {med['json'][2]:.2f} ms")


if __name__ == "__main__":
    main()
