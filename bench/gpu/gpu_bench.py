#!/usr/bin/env python3
"""Issue 4's GPU benchmark, run on the device machine by run_on_device.sh.

For resnet50, resnet18, alexnet, vgg16, squeezenet1_1 and mobilenet_v2
(torchvision, random weights: speed does not depend on them), at batch 1,
8, 32 and 64, side by side in one run with PyTorch on the same GPU (fp32,
TF32 off, eval, inference_mode, cudnn.benchmark = True): images per second
and milliseconds per batch, alternating the two over several rounds and
reporting medians. Then the per-layer algorithm tables of resnet50 and
vgg16 at batch 32, and the gain of per-layer selection (exhaustive) over
always IMPLICIT_GEMM. Writes results.md and results.json to --out.

Every number comes from this run on this device; nothing is estimated.
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

import torch
import torchvision

MODELS = ["resnet50", "resnet18", "alexnet", "vgg16", "squeezenet1_1", "mobilenet_v2"]


def export(name, path):
    m = getattr(torchvision.models, name)(weights=None).eval()
    x = torch.randn(1, 3, 224, 224)
    torch.onnx.export(m, x, path, opset_version=17, input_names=["input"],
                      output_names=["output"], dynamo=False,
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    return m


def torch_ms(model, batch, iters):
    x = torch.randn(batch, 3, 224, 224, device="cuda")
    with torch.inference_mode():
        for _ in range(10):
            model(x)
        torch.cuda.synchronize()
        times = []
        for _ in range(iters):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            model(x)
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
    return statistics.median(times)


def visiond(args, onnx_path, batch, iters, *extra):
    r = subprocess.run([args.visiond, "bench", "--model", onnx_path, "--batch", str(batch),
                        "--iters", str(iters), "--warmup", "10", "--device", "cuda", "--json",
                        "--algo-cache", args.cache, *extra], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(r.stderr)
    return json.loads(r.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--visiond", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--batches", default="1,8,32,64")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=30)
    args = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    tmp = tempfile.mkdtemp()
    args.cache = os.path.join(tmp, "algos.tsv")
    rows, tables, gains = [], {}, []
    for name in args.models.split(","):
        path = os.path.join(tmp, f"{name}.onnx")
        model = export(name, path).cuda()
        for batch in [int(b) for b in args.batches.split(",")]:
            vd, pt = [], []
            visiond(args, path, batch, 3)  # selection and cache warm-up
            for _ in range(args.rounds):
                vd.append(visiond(args, path, batch, args.iters)["median_ms"])
                pt.append(torch_ms(model, batch, args.iters))
            v, p = statistics.median(vd), statistics.median(pt)
            rows.append({"model": name, "batch": batch, "visiond_ms": v, "torch_ms": p,
                         "visiond_img_s": batch * 1e3 / v, "torch_img_s": batch * 1e3 / p})
            print(json.dumps(rows[-1]), flush=True)
            if name in ("resnet50", "vgg16"):
                ig = statistics.median(visiond(args, path, batch, args.iters, "--conv-algo",
                                               "IMPLICIT_GEMM")["median_ms"] for _ in range(2))
                gains.append({"model": name, "batch": batch, "per_layer_ms": v,
                              "implicit_gemm_ms": ig, "speedup": ig / v})
                if batch == 32:
                    tables[name] = visiond(args, path, batch, 3, "--algos")["algorithms"]
        del model
        torch.cuda.empty_cache()
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"rows": rows, "gains": gains, "algorithms": tables,
                   "date": time.strftime("%Y-%m-%d %H:%M"), "torch": torch.__version__,
                   "cudnn": torch.backends.cudnn.version(),
                   "device": torch.cuda.get_device_name()}, f, indent=1)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(f"# GPU benchmark, {torch.cuda.get_device_name()}, "
                f"{time.strftime('%Y-%m-%d')}\n\n")
        f.write("| model | batch | visiond ms | PyTorch ms | visiond img/s | PyTorch img/s | "
                "ratio |\n|---|---|---|---|---|---|---|\n")
        for r in rows:
            f.write(f"| {r['model']} | {r['batch']} | {r['visiond_ms']:.2f} | "
                    f"{r['torch_ms']:.2f} | {r['visiond_img_s']:.0f} | {r['torch_img_s']:.0f} | "
                    f"{r['visiond_img_s'] / r['torch_img_s']:.2f} |\n")
        f.write("\n## Per-layer selection against always IMPLICIT_GEMM\n\n| model | batch | "
                "per-layer ms | IMPLICIT_GEMM ms | speed-up |\n|---|---|---|---|---|\n")
        for g in gains:
            f.write(f"| {g['model']} | {g['batch']} | {g['per_layer_ms']:.2f} | "
                    f"{g['implicit_gemm_ms']:.2f} | {g['speedup']:.2f} |\n")
        for name, layers in tables.items():
            f.write(f"\n## Algorithms of {name} at batch 32\n\n| layer | chosen | candidates "
                    "(ms, MiB) |\n|---|---|---|\n")
            for l in layers:
                c = ", ".join(f"{x['name']} {x['ms']:.3f}/{x['workspace'] / 2**20:.0f}"
                              if x["ms"] >= 0 else f"{x['name']} ({x['status']})"
                              for x in l["candidates"])
                f.write(f"| {l['layer']} | {l['chosen']} | {c} |\n")


if __name__ == "__main__":
    main()
