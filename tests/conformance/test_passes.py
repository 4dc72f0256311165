"""What the graph passes and the memory plan did to real exports, seen
through `visiond info --json` and `visiond bench --json`."""
import json
import os

from visiond_test import run_visiond


def layers_of(path, batch=1):
    r = run_visiond("bench", "--model", path, "--batch", str(batch), "--iters", "1",
                    "--warmup", "0", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["layers"]


def info(path, batch):
    r = run_visiond("info", "--model", path, "--batch", str(batch), "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_resnet18_batchnorms_folded_and_relus_fused(models_dir):  # noqa: F811
    path = os.path.join(models_dir, "resnet18", "model.onnx")
    ops = [layer["op"] for layer in layers_of(path)]
    assert "BatchNormalization" not in ops  # all 20 follow a Conv
    assert ops.count("Conv+Relu") == 9      # conv1 and the first conv of each block
    # each block's second conv absorbs the residual Add and the Relu after it
    assert ops.count("Conv+Add+Relu") == 8 and "Add" not in ops and "Relu" not in ops
    assert ops.count("Conv") == 3           # the downsampling 1x1 convs
    assert info(path, 1)["nodes_in_file"] > len(ops)


def test_densenet_keeps_standalone_batchnorms(models_dir):  # noqa: F811
    path = os.path.join(models_dir, "densenet121", "model.onnx")
    ops = [layer["op"] for layer in layers_of(path)]
    # norm1 of every dense layer follows a Concat, not a Conv: it must stay
    assert ops.count("BatchNormalization") >= 58
    assert "Pad" not in ops  # the exporter's all-zero Pads are gone


def test_mobilenet_clip_fused(models_dir):  # noqa: F811
    ops = [layer["op"] for layer in layers_of(os.path.join(models_dir, "mobilenet_v2",
                                                            "model.onnx"))]
    assert ops.count("Conv+Clip") == 35 and "Clip" not in ops


def test_shufflenet_shape_chains_folded(models_dir):  # noqa: F811
    path = os.path.join(models_dir, "shufflenet_v2_x1_0", "model.onnx")
    ops = {layer["op"] for layer in layers_of(path, batch=3)}
    assert not ops & {"Shape", "Gather", "Unsqueeze", "Cast", "Reshape"}
    assert "Transpose" in ops  # the channel shuffle itself runs


def test_peak_activation_memory_scales_with_batch(models_dir):  # noqa: F811
    path = os.path.join(models_dir, "resnet50", "model.onnx")
    one, eight = info(path, 1), info(path, 8)
    assert one["peak_activation_bytes"] > 0
    assert 7.5 < eight["peak_activation_bytes"] / one["peak_activation_bytes"] <= 8.01
    assert eight["flops"] == 8 * one["flops"]
    # the arena is far smaller than all activations side by side
    layers = layers_of(path)
    total = 0
    for layer in layers:
        n = 1
        for d in layer["output"].split("x"):
            n *= int(d)
        total += 4 * n
    assert one["peak_activation_bytes"] < total / 4
