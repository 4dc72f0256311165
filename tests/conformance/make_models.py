#!/usr/bin/python3
"""Builds the conformance models and their reference outputs.

For each torchvision architecture: random weights from a fixed seed, batch
norm statistics first calibrated on random images (so activations keep a
useful scale through a hundred layers instead of vanishing) and then
randomised, export to ONNX with a dynamic batch axis and the opset listed
below (several opsets on purpose), a fixed random input of 4 images, and
the outputs of PyTorch and of ONNX Runtime for batch 1 and batch 4.

Everything lands in OUT/<model>/; a stamp makes reruns free. Too big to
commit (vgg16 alone is 528 MB), so it is made at test time from Debian's
python3-torch and python3-torchvision.

usage: make_models.py OUT [model ... | modern]   (no model: the first set)
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np

MODELS = {  # name: opset
    "alexnet": 9,
    "vgg16": 11,
    "resnet18": 13,
    "resnet50": 14,
    "squeezenet1_1": 10,
    "mobilenet_v2": 12,
    "googlenet": 15,
    "densenet121": 16,
    "shufflenet_v2_x1_0": 17,
    "efficientnet_b0": 13,
}
# The second set (issue 12): transformer and ConvNeXt backbones, segmenters
# and a YOLO-style detector, with their opsets.
MODERN = {
    "vit_b_16": 17,
    "convnext_tiny": 17,
    "deeplabv3_mobilenet_v3_large": 16,
    "lraspp_mobilenet_v3_large": 13,
    "fcn_resnet50": 11,
    "yolo_tiny": 12,
}
ALL = {**MODELS, **MODERN}
BATCHES = (1, 4)  # what the x86 suites test
# references are made for these (the emulated ARM runs test batch 1 and 2)
REF_BATCHES = (1, 2, 4)
HERE = os.path.dirname(os.path.abspath(__file__))
ORT_RUN = os.path.join(HERE, "..", "tools", "ort_run.js")


def script_digest():
    with open(__file__, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


class SegmentationOut:
    """torchvision's segmenters answer a dict; the export wants the tensor."""

    @staticmethod
    def wrap(model):
        import torch

        class Wrapped(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, x):
                return self.m(x)["out"]

        return Wrapped(model)


def construct(name):
    import torchvision

    if name == "yolo_tiny":
        sys.path.insert(0, HERE)
        from yolo_tiny import YoloTiny
        return YoloTiny()
    if name in ("deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large", "fcn_resnet50"):
        kwargs = {} if name.startswith("lraspp") else {"aux_loss": False}
        m = getattr(torchvision.models.segmentation, name)(weights=None, weights_backbone=None,
                                                           **kwargs)
        return SegmentationOut.wrap(m)
    kwargs = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
    return getattr(torchvision.models, name)(weights=None, **kwargs)


def randomise_other_parameters(model, seed):
    """Layer norms get random affine parameters, and parameters left at a
    constant by initialisation (ViT's zero head) random values, so that
    every weight reaches the output."""
    import torch

    g = torch.Generator().manual_seed(seed + 2)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm) and m.elementwise_affine:
                m.weight.copy_(torch.empty(m.weight.shape).uniform_(0.5, 1.5, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
        for p in model.parameters():
            if p.numel() > 1 and float(p.std()) == 0.0:
                p.copy_(0.02 * torch.randn(p.shape, generator=g))


def build_model(name, seed):
    import torch

    torch.manual_seed(seed)
    model = construct(name)
    randomise_other_parameters(model, seed)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if bns:
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for m in bns:  # random affine parameters first, so calibration sees them
                c = m.num_features
                m.weight.copy_(torch.empty(c).uniform_(0.5, 1.5, generator=g))
                m.bias.copy_(0.2 * torch.randn(c, generator=g))
        # Calibrate: running stats := statistics of a random batch. Only the
        # batch norms train: dropout and stochastic depth stay off.
        model.eval()
        for m in bns:
            m.momentum = 1.0
            m.train()
        with torch.no_grad():
            model(torch.randn(8, 3, 224, 224, generator=g))
            for m in bns:  # then randomise the statistics around the calibrated values
                c = m.num_features
                std = m.running_var.clamp_min(1e-6).sqrt()
                m.running_mean += 0.1 * std * torch.randn(c, generator=g)
                m.running_var *= torch.empty(c).uniform_(0.8, 1.25, generator=g)
    return model.eval()


def seed_of(name):
    """The seed a model's random weights come from (build_model(name, seed_of(name))
    rebuilds the exported model in PyTorch)."""
    return sorted(MODELS).index(name) + 1 if name in MODELS else 100 + sorted(MODERN).index(name)


def make(name, out_dir):
    import torch

    opset = ALL[name]
    seed = seed_of(name)
    d = os.path.join(out_dir, name)
    stamp = os.path.join(d, "stamp.json")
    want = {"digest": script_digest(), "opset": opset, "torch": torch.__version__}
    if os.path.exists(stamp):
        with open(stamp) as f:
            if json.load(f) == want:
                return
    os.makedirs(d, exist_ok=True)
    model = build_model(name, seed)
    g = torch.Generator().manual_seed(1000 + seed)
    x4 = torch.randn(4, 3, 224, 224, generator=g)
    onnx_path = os.path.join(d, "model.onnx")
    kwargs = {}
    if "dynamo" in torch.onnx.export.__code__.co_varnames:  # newer torch: the TorchScript exporter
        kwargs["dynamo"] = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, x4[:1], onnx_path, opset_version=opset,
            input_names=["input"], output_names=["output"],
            training=torch.onnx.TrainingMode.PRESERVE,
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, **kwargs)
    with torch.no_grad():
        for b in REF_BATCHES:
            x = x4[:b].contiguous()
            np.save(os.path.join(d, f"input_b{b}.npy"), x.numpy())
            np.save(os.path.join(d, f"torch_b{b}.npy"), model(x).numpy())
    for b in REF_BATCHES:  # ONNX Runtime's answers (where Node.js is: not on a GPU box)
        if shutil.which("node"):
            subprocess.run(["node", ORT_RUN, "run", onnx_path, os.path.join(d, f"input_b{b}.npy"),
                            os.path.join(d, f"ort_b{b}.npy"), "2"], check=True)
    with open(stamp, "w") as f:
        json.dump(want, f)


def main():
    out_dir = sys.argv[1]
    names = sys.argv[2:] or list(MODELS)
    if names == ["modern"]:
        names = list(MODERN)
    for name in names:
        make(name, out_dir)
        print(f"conformance model ready: {name}", file=sys.stderr)


if __name__ == "__main__":
    main()
