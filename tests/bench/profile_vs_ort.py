#!/usr/bin/python3
"""Where a model's time goes, visiond against ONNX Runtime, by operator.

visiond's side is `visiond bench` (its per-layer medians, fused epilogues
under the operator they are fused into); ONNX Runtime's is its own
profiler (tests/tools/ort_run.js profile): the per-node "kernel_time"
events, first run dropped as warm-up, each node's median over the rest.
ORT fuses differently (FusedConv, FusedMatMul, Attention ...), so rows are
operator types as each side names them, side by side: read them as where
the milliseconds are, not as a one-to-one match. Not a test.

usage: profile_vs_ort.py MODEL.onnx [--batch N] [--iters K] [--threads T]
"""
import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import bench_env  # noqa: E402


def visiond_ops(binary, model, batch, iters, threads, env):
    r = subprocess.run([binary, "bench", "--model", model, "--batch", str(batch), "--iters",
                        str(iters), "--threads", str(threads), "--json"],
                       capture_output=True, text=True, env=env, check=True)
    out = json.loads(r.stdout)
    per = collections.defaultdict(float)
    for layer in out["layers"]:
        per[layer["op"].split("+")[0]] += layer["median_ms"]
    return per, out["median_ms"]


def ort_ops(model, batch, iters, threads, build):
    env = dict(os.environ, ORT_DIR=os.path.join(build, "ort"))
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run(["node", os.path.join(ROOT, "tests", "tools", "ort_run.js"), "profile",
                            os.path.abspath(model), str(batch), str(iters + 1), str(threads),
                            os.path.join(d, "ort")], capture_output=True, text=True, env=env,
                           check=True, cwd=d)
        path = json.loads(r.stdout.strip().splitlines()[-1])["profile"]
        if not path:  # the Node.js binding writes the file when the session goes
            found = [f for f in os.listdir(d) if f.startswith("ort") and f.endswith(".json")]
            if not found:
                raise RuntimeError("ONNX Runtime wrote no profile")
            path = found[0]
        with open(path if os.path.isabs(path) else os.path.join(d, path)) as f:
            events = json.load(f)
    runs = collections.defaultdict(list)  # node -> durations, in run order
    op_of = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            node = e["name"][:-len("_kernel_time")]
            runs[node].append(e["dur"] / 1000.0)
            op_of[node] = e.get("args", {}).get("op_name", "?")
    per = collections.defaultdict(float)
    for node, durs in runs.items():
        per[op_of[node]] += statistics.median(durs[1:] or durs)
    return per


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    bench_env.add_argument(ap)
    args = ap.parse_args()
    env, note = bench_env.visiond_env(args.keep_blas_env)
    vd, vd_total = visiond_ops(os.path.join(args.build, "visiond"), args.model, args.batch,
                               args.iters, args.threads, env)
    ort = ort_ops(args.model, args.batch, args.iters, args.threads, args.build)
    print(f"# {os.path.basename(os.path.dirname(os.path.abspath(args.model)))} batch {args.batch}, "
          f"{args.threads} threads; {note}")
    print(f"# visiond whole run (median) {vd_total:.2f} ms; per-operator sums below")
    print(f"{'visiond operator':22} {'ms':>8}   {'ORT operator':22} {'ms':>8}")
    left = sorted(vd.items(), key=lambda kv: -kv[1])
    right = sorted(ort.items(), key=lambda kv: -kv[1])
    for i in range(max(len(left), len(right))):
        a = left[i] if i < len(left) else ("", None)
        b = right[i] if i < len(right) else ("", None)
        fa = f"{a[1]:8.2f}" if a[1] is not None else " " * 8
        fb = f"{b[1]:8.2f}" if b[1] is not None else " " * 8
        print(f"{a[0]:22} {fa}   {b[0]:22} {fb}")
    print(f"{'total':22} {sum(vd.values()):8.2f}   {'total':22} {sum(ort.values()):8.2f}")


if __name__ == "__main__":
    sys.exit(main())
