import json, subprocess, statistics, sys, os
env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENBLAS_", "OMP_", "GOMP_"))}
models = sys.argv[1].split(","); batches = [int(b) for b in sys.argv[2].split(",")]; rounds = int(sys.argv[3])
bins = {"after": "/work/main/build/visiond", "before": "/tmp/pre11/build/visiond"}
res = {}
for r in range(rounds):
    for m in models:
        for b in batches:
            order = ["after", "before"] if r % 2 == 0 else ["before", "after"]
            for side in order:
                out = subprocess.run([bins[side], "bench", "--model", f"/work/main/build/conformance/{m}/model.onnx",
                                      "--batch", str(b), "--iters", "20", "--warmup", "3", "--json"],
                                     capture_output=True, text=True, env=env, check=True).stdout
                ms = json.loads(out)["median_ms"]
                res.setdefault((m, b), {}).setdefault(side, []).append(ms)
print(f"{'model':16} {'batch':>5} {'before ms':>10} {'after ms':>10} {'after/before (median of rounds, range)':>40}")
for (m, b), d in res.items():
    ratios = [a / c for a, c in zip(d["after"], d["before"])]
    print(f"{m:16} {b:5d} {statistics.median(d['before']):10.2f} {statistics.median(d['after']):10.2f} "
          f"{statistics.median(ratios):10.3f} ({min(ratios):.3f}-{max(ratios):.3f})")
