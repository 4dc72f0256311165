#!/usr/bin/env python3
"""device_run.sh's last step: its phases' outcomes, logs and measurements
gathered into OUT/results.json and OUT/results.md (what gets committed under
bench/results/). Every number comes from that run; a phase that failed or ran
out of time says so.

usage: results.py OUT DEVICE
"""
import json
import os
import sys


def lines(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except OSError:
        return []


def main():
    out, device = sys.argv[1], sys.argv[2]
    phases = [json.loads(l) for l in lines(os.path.join(out, "phases.jsonl")) if l.strip()]
    rows = [json.loads(l) for l in lines(os.path.join(out, "bench.jsonl")) if l.strip()]
    for p in phases:  # each phase's last words: pytest's summary, or the error
        log = [l for l in lines(os.path.join(out, p["phase"] + ".log")) if l.strip()]
        p["summary"] = log[-1] if log else ""
    smoke = lines(os.path.join(out, "smoke.log"))
    result = {"device": device, "smoke": smoke, "phases": phases,
              "bench": [r for r in rows if r["kind"] == "bench"],
              "algorithms": [r for r in rows if r["kind"] == "algorithms"],
              "gain": [r for r in rows if r["kind"] == "gain"]}
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(result, f, indent=1)
    md = [f"# visiond on {device}", "", "```", *smoke[:12], "```", "",
          "| phase | outcome | seconds (limit) | last line |", "|---|---|---|---|"]
    for p in phases:
        outcome = "timed out" if p["timed_out"] else "ok" if p["rc"] == 0 else f"rc {p['rc']}"
        md.append(f"| {p['phase']} | {outcome} | {p['seconds']} ({p['limit']}) | "
                  f"{p['summary'][:120]} |")
    if result["bench"]:
        md += ["", "visiond times host memory to host memory; PyTorch is timed both ways, the "
               "ratio compares end to end (PyTorch ms / visiond ms: above 1, visiond is faster).",
               "", "| model | batch | visiond ms | PyTorch on device ms | PyTorch end to end ms "
               "| visiond img/s | ratio |", "|---|---|---|---|---|---|---|"]
        for r in result["bench"]:
            md.append(f"| {r['model']} | {r['batch']} | {r['visiond_ms']:.2f} | "
                      f"{r['torch_on_device_ms']:.2f} | {r['torch_end_to_end_ms']:.2f} | "
                      f"{r['visiond_img_s']:.0f} | {r['ratio_end_to_end']:.2f} |")
    for g in result["gain"]:
        md += ["", f"Per-layer selection on {g['model']} at batch {g['batch']}: " +
               (g["skipped"] if "skipped" in g else
                f"{g['per_layer_ms']:.2f} ms against {g['implicit_gemm_ms']:.2f} ms always "
                f"IMPLICIT_GEMM ({g['speedup']:.2f}x)")]
    for t in result["algorithms"]:
        md += ["", f"## Algorithms of {t['model']} at batch {t['batch']}", "",
               "| layer | mode | chosen | candidates (ms / MiB, or why not) |", "|---|---|---|---|"]
        for l in t["layers"]:
            c = ", ".join(f"{x['name']} {x['ms']:.3f}/{x['workspace'] / 2 ** 20:.0f}"
                          if x["ms"] is not None and x["ms"] >= 0
                          else f"{x['name']} ({x['status']})" for x in l["candidates"])
            md.append(f"| {l['layer']} | {l['mode']} | {l['chosen']} | {c} |")
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md[:40]))


if __name__ == "__main__":
    main()
