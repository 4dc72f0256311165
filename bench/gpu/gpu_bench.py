#!/usr/bin/env python3
"""The GPU benchmark (device_run.sh's phases d and e), against PyTorch on the
same device in the same run, alternating the two over several rounds and
reporting medians.

--phase bench: for each model (torchvision, random weights: speed does not
  depend on them) and batch, visiond (`visiond bench`, host memory in and out:
  its copies and transfers are in its time) and PyTorch (fp32, TF32 off,
  eval, inference_mode, cudnn.benchmark = True) timed two ways: with the
  input already on the device, and end to end from host bytes (copy in, run,
  copy out), the way visiond is timed. The ratio compares like with like:
  visiond against PyTorch end to end.
--phase algos: the per-layer algorithm table of the first model at the
  largest batch, and the gain of per-layer selection over always
  IMPLICIT_GEMM (on a GPU).

--device cpu lets the CPU stand in (a rehearsal of the script, not a GPU
number). Rows are appended to --out/bench.jsonl as they come, so a phase
stopped at its time limit keeps what it measured.
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


def export(name, path):
    m = getattr(torchvision.models, name)(weights=None).eval()
    kwargs = {"dynamo": False} if "dynamo" in torch.onnx.export.__code__.co_varnames else {}
    if not os.path.exists(path):
        torch.onnx.export(m, torch.randn(1, 3, 224, 224), path, opset_version=17,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, **kwargs)
    return m


def torch_ms(model, batch, iters, device, end_to_end):
    host = torch.randn(batch, 3, 224, 224).pin_memory() if device == "cuda" else \
        torch.randn(batch, 3, 224, 224)
    x = host.to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times = []
    with torch.inference_mode():
        for i in range(iters + 5):
            sync()
            t0 = time.perf_counter()
            y = model(host.to(device, non_blocking=True) if end_to_end else x)
            if end_to_end:
                y = y.cpu()
            sync()
            if i >= 5:
                times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def visiond(args, onnx_path, batch, iters, *extra):
    r = subprocess.run([args.visiond, "bench", "--model", onnx_path, "--batch", str(batch),
                        "--iters", str(iters), "--warmup", "5", "--device", args.device,
                        "--json", "--algo-cache", args.cache, *extra],
                       capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(r.stderr)
    out = json.loads(r.stdout)
    assert out["fallbacks"] == 0  # strict anyway: a GPU time is never the CPU's
    return out


def emit(args, row):
    print(json.dumps(row), flush=True)
    with open(os.path.join(args.out, "bench.jsonl"), "a") as f:
        f.write(json.dumps(row) + "\n")


def bench(args, tmp):
    for name in args.models.split(","):
        path = os.path.join(tmp, f"{name}.onnx")
        model = export(name, path).to(args.device)
        for batch in [int(b) for b in args.batches.split(",")]:
            visiond(args, path, batch, 2)  # algorithm selection, cached for the rounds
            vd, pd, pe = [], [], []
            for _ in range(args.rounds):
                vd.append(visiond(args, path, batch, args.iters)["median_ms"])
                pd.append(torch_ms(model, batch, args.iters, args.device, False))
                pe.append(torch_ms(model, batch, args.iters, args.device, True))
            v, d, e = statistics.median(vd), statistics.median(pd), statistics.median(pe)
            emit(args, {"kind": "bench", "model": name, "batch": batch, "visiond_ms": v,
                        "torch_on_device_ms": d, "torch_end_to_end_ms": e,
                        "visiond_img_s": batch * 1e3 / v, "torch_end_to_end_img_s":
                        batch * 1e3 / e, "ratio_end_to_end": e / v})
        del model
        if args.device == "cuda":
            torch.cuda.empty_cache()


def algos(args, tmp):
    name = args.models.split(",")[0]
    batch = max(int(b) for b in args.batches.split(","))
    path = os.path.join(tmp, f"{name}.onnx")
    export(name, path)
    table = visiond(args, path, batch, 2, "--algos")
    emit(args, {"kind": "algorithms", "model": name, "batch": batch,
                "layers": table["algorithms"]})
    if args.device != "cuda":
        emit(args, {"kind": "gain", "model": name, "batch": batch,
                    "skipped": "IMPLICIT_GEMM is a cuDNN algorithm: no gain to measure here"})
        return
    per_layer = statistics.median(visiond(args, path, batch, args.iters)["median_ms"]
                                  for _ in range(args.rounds))
    ig = statistics.median(visiond(args, path, batch, args.iters, "--conv-algo",
                                   "IMPLICIT_GEMM")["median_ms"] for _ in range(args.rounds))
    emit(args, {"kind": "gain", "model": name, "batch": batch, "per_layer_ms": per_layer,
                "implicit_gemm_ms": ig, "speedup": ig / per_layer})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--visiond", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--phase", choices=["bench", "algos"], default="bench")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--models", default="resnet50,mobilenet_v2")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--workdir", default=None, help="where the ONNX exports stay between phases")
    args = ap.parse_args()
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    tmp = args.workdir or tempfile.mkdtemp()
    os.makedirs(tmp, exist_ok=True)
    args.cache = os.path.join(tmp, "algos.tsv")
    (bench if args.phase == "bench" else algos)(args, tmp)


if __name__ == "__main__":
    main()
