#!/usr/bin/python3
"""make bench-cpu: visiond against ONNX Runtime on the CPU, same thread count,
same models (the conformance exports), alternating the two in one run.

Each model's effective GFLOP/s (its direct-convolution FLOPs over the
measured time, so Winograd can exceed the machine) is printed next to the
machine's measured SGEMM peak: `visiond bench --sgemm`, a 1024^3 SGEMM on
the same threads with the BLAS kernel visiond chose at start-up.

Each round runs `visiond bench --json` and ONNX Runtime's Node.js binding
(tests/tools/ort_run.js bench), each in a fresh process with its own
warm-up, one after the other, the order swapping every round; the figure
per side is the median over rounds of each round's median, and the ratio
(visiond / ORT; below 1.0: visiond is faster) is the median over rounds
of the two sides' ratio within the round, printed with the rounds' range:
the bench machine is shared and its speed drifts by up to 2x over minutes,
which a ratio taken within one round mostly cancels. Not a test: it
asserts nothing. The header says which BLAS kernel each side ran and what
was done with the caller's OpenBLAS settings (tests/bench/bench_env.py).
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import bench_env  # noqa: E402

DEFAULT_MODELS = ("resnet18,resnet50,squeezenet1_1,mobilenet_v2,googlenet,vgg16,"
                  "vit_b_16,convnext_tiny,deeplabv3_mobilenet_v3_large,faces")
# models shipped in the repository rather than exported by the conformance set
SHIPPED = {"faces": os.path.join(ROOT, "models", "faces", "model.onnx")}


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def run_json(cmd, env=None):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
    return json.loads(r.stdout.strip().splitlines()[-1] if cmd[0] == "node" else r.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--models", default=DEFAULT_MODELS)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--budget-ms", type=float, default=1000,
                    help="target time per side per round; sets the iteration count")
    bench_env.add_argument(ap)
    args = ap.parse_args()
    vd_env, env_note = bench_env.visiond_env(args.keep_blas_env)
    build = os.path.abspath(args.build)
    visiond = os.path.join(build, "visiond")
    models = args.models.split(",")
    batches = [int(b) for b in args.batches.split(",")]
    conf = os.path.join(build, "conformance")
    exported = [m for m in models if m not in SHIPPED]
    if exported:
        subprocess.run(["/usr/bin/python3",
                        os.path.join(ROOT, "tests", "conformance", "make_models.py"), conf,
                        *exported], check=True)
    env = dict(os.environ, ORT_DIR=os.path.join(build, "ort"))
    ort_js = os.path.join(ROOT, "tests", "tools", "ort_run.js")

    def model_path(name):
        return SHIPPED.get(name) or os.path.join(conf, name, "model.onnx")

    info = subprocess.run([visiond, "info", "--model", model_path(models[0])],
                          capture_output=True, text=True, env=vd_env).stdout
    backend = next((l.split(None, 1)[1] for l in info.splitlines() if l.startswith("backend")), "?")
    peak = run_json([visiond, "bench", "--sgemm", "--size", "1024", "--iters", "20",
                     "--threads", str(args.threads), "--json"], env=vd_env)
    print(f"# bench-cpu {time.strftime('%Y-%m-%d %H:%M')}  {cpu_name()}, {os.cpu_count()} cores")
    print(f"# environment: {env_note}")
    print(f"# visiond {backend}")
    print(f"# ONNX Runtime (onnxruntime-node) intra-op threads {args.threads}: "
          f"{bench_env.ort_gemm_description()}")
    print(f"# SGEMM peak (1024^3, {args.threads} threads): {peak['gflops_per_s']:.1f} GFLOP/s, "
          f"{peak['blas']}")
    print(f"# {args.rounds} alternating rounds; per side: median of per-round medians")
    print("# ratio: median over rounds of visiond/ORT within the round (range: the rounds' "
          "spread); GFLOP/s: visiond's effective rate")
    print(f"{'model':16} {'batch':>5} {'visiond ms':>11} {'ORT ms':>9} {'ratio':>6} "
          f"{'range':>11} {'GFLOP/s':>9} {'of SGEMM peak':>14}")
    rows = []
    kernels_seen = set()
    for model in models:
        path = model_path(model)
        for batch in batches:
            probe = run_json([visiond, "bench", "--model", path, "--batch", str(batch),
                              "--iters", "2", "--warmup", "1", "--threads", str(args.threads),
                              "--json"], env=vd_env)
            iters = max(3, min(50, int(args.budget_ms / max(probe["median_ms"], 0.1))))
            vd, ort = [], []
            flops = probe["flops"]
            for rnd in range(args.rounds):
                def run_visiond():
                    r = run_json([visiond, "bench", "--model", path, "--batch", str(batch),
                                  "--iters", str(iters), "--warmup", "2", "--threads",
                                  str(args.threads), "--json"], env=vd_env)
                    vd.append(r["median_ms"])
                    kernels_seen.add(r["backend"].split(";")[0])

                def run_ort():
                    o = run_json(["node", ort_js, "bench", path, str(batch), str(iters),
                                  str(args.threads), "2"], env=env)
                    ort.append(o["median_ms"])
                # alternate who goes first, so neither always runs on a warmer machine
                for side in ((run_visiond, run_ort) if rnd % 2 == 0 else (run_ort, run_visiond)):
                    side()
            v, o = statistics.median(vd), statistics.median(ort)
            # the ratio pairs each round's two runs, so a slow spell of the
            # (shared, noisy) machine lands on both sides of the same ratio
            ratios = [a / b for a, b in zip(vd, ort)]
            ratio = statistics.median(ratios)
            rows.append((model, batch, v, o, ratio))
            eff = flops / (v * 1e6)
            print(f"{model:16} {batch:>5} {v:>11.2f} {o:>9.2f} {ratio:>6.2f} "
                  f"{min(ratios):>5.2f}-{max(ratios):<5.2f} "
                  f"{eff:>9.1f} {eff / peak['gflops_per_s']:>13.0%}", flush=True)
    worst = max(r[4] for r in rows)
    print(f"# worst ratio {worst:.2f}; geometric mean "
          f"{statistics.geometric_mean([r[4] for r in rows]):.2f}")
    print(f"# visiond's timed runs used: {'; '.join(sorted(kernels_seen))}")


if __name__ == "__main__":
    sys.exit(main())
