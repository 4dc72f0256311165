"""ONNX's own node test cases, run through `visiond run`.

Every test case in onnx's node/ and simple/ suites whose graph uses only
operators visiond implements runs here. Operands that visiond requires to
be constant (weights, shapes, axes, bounds: the same rule its loader
enforces) and every integer input become initializers, as they are in real
models; float data inputs stay runtime inputs. Outputs must match ONNX's
expected outputs with the tolerances onnx's own backend runner uses.

A few cases exercise features visiond deliberately does not support; they
are listed in UNSUPPORTED with the reason, and for them the test asserts
that loading fails cleanly with an error naming the problem, rather than
crashing or producing numbers.
"""
import glob
import os
import subprocess

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from visiond_test import run_visiond

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT_BUILD = os.environ.get("VISIOND_BUILD",
                            os.path.join(os.path.dirname(os.path.dirname(HERE)), "build"))
DATA = os.path.join(ROOT_BUILD, "onnx-node")

SUPPORTED_OPS = {
    "Conv", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "LeakyRelu", "Clip",
    "Sigmoid", "HardSigmoid", "HardSwish", "Exp", "MaxPool", "AveragePool",
    "GlobalAveragePool", "GlobalMaxPool", "BatchNormalization", "LRN", "Softmax", "Concat",
    "Flatten", "Reshape", "Transpose", "Slice", "Split", "Pad", "Squeeze", "Unsqueeze",
    "Gather", "Shape", "Cast", "ReduceMean", "Dropout", "Identity", "Constant",
    # transformers, segmentation and detection (issue 12)
    "Erf", "Gelu", "Sqrt", "Reciprocal", "Neg", "Abs", "Tanh", "Softplus", "Mish", "Log", "Pow",
    "Mod", "Min", "Max", "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "And",
    "Or", "Not", "Where", "LayerNormalization", "InstanceNormalization", "LogSoftmax",
    "ReduceSum", "ReduceMax", "ReduceMin", "PRelu", "Expand", "ConstantOfShape", "Range", "Tile",
    "GatherElements", "ScatterND", "Einsum", "Resize", "Upsample", "ConvTranspose", "TopK",
    "ArgMax", "ArgMin", "NonMaxSuppression",
}
# operand positions that must be constants (engine/shape_infer.c: op_const_inputs)
CONST_POSITIONS = {
    "Conv": {1, 2}, "BatchNormalization": {1, 2, 3, 4}, "Clip": {1, 2}, "Pad": {1, 2, 3},
    "Reshape": {1}, "Slice": {1, 2, 3, 4}, "Split": {1}, "Squeeze": {1}, "Unsqueeze": {1},
    "ReduceMean": {1}, "Gather": {1}, "Dropout": {1, 2},
    "ReduceSum": {1}, "ReduceMax": {1}, "ReduceMin": {1}, "LayerNormalization": {1, 2},
    "InstanceNormalization": {1, 2}, "PRelu": {1}, "Expand": {1}, "Tile": {1},
    "ConstantOfShape": {0}, "Range": {0, 1, 2}, "ScatterND": {1}, "Resize": {1, 2, 3},
    "Upsample": {1}, "ConvTranspose": {1, 2}, "TopK": {1}, "NonMaxSuppression": {2, 3, 4},
}
TENSOR_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.INT64, onnx.TensorProto.INT32,
                onnx.TensorProto.BOOL}

# test name -> the words the load error must contain
UNSUPPORTED = {
    "test_averagepool_3d_default": "3-D windows",
    "test_maxpool_3d_default": "3-D windows",
    "test_maxpool_with_argmax_2d_precomputed_pads": "Indices output of MaxPool",
    "test_maxpool_with_argmax_2d_precomputed_strides": "Indices output of MaxPool",
    "test_batchnorm_epsilon_training_mode": "training_mode",
    "test_batchnorm_example_training_mode": "training_mode",
    "test_dropout_default_mask": "not computed",
    "test_dropout_default_mask_ratio": "not computed",
    "test_training_dropout": "training mode",
    "test_training_dropout_default": "training mode",
    "test_training_dropout_default_mask": "training mode",
    "test_training_dropout_mask": "training mode",
    "test_training_dropout_zero_ratio_mask": "not computed",
    # cases written for opsets before 7, which visiond does not load
    "test_globalaveragepool": "opsets 7 to 21",
    "test_globalaveragepool_precomputed": "opsets 7 to 21",
    "test_globalmaxpool": "opsets 7 to 21",
    "test_globalmaxpool_precomputed": "opsets 7 to 21",
    "test_hardsigmoid": "opsets 7 to 21",
    "test_hardsigmoid_default": "opsets 7 to 21",
    "test_hardsigmoid_example": "opsets 7 to 21",
    "test_instancenorm_epsilon": "opsets 7 to 21",
    "test_instancenorm_example": "opsets 7 to 21",
    "test_softplus": "opsets 7 to 21",
    "test_softplus_example": "opsets 7 to 21",
    "test_not_2d": "opsets 7 to 21",
    "test_not_3d": "opsets 7 to 21",
    "test_not_4d": "opsets 7 to 21",
    # deliberately not implemented: 3-D transposed convolution, cubic and
    # crop-and-resize interpolation (load errors name them)
    "test_convtranspose_3d": "ConvTranspose of",
    "test_resize_downsample_scales_cubic": "'mode' = 'cubic'",
    "test_resize_downsample_scales_cubic_A_n0p5_exclude_outside": "'mode' = 'cubic'",
    "test_resize_downsample_scales_cubic_align_corners": "'mode' = 'cubic'",
    "test_resize_downsample_sizes_cubic": "'mode' = 'cubic'",
    "test_resize_upsample_scales_cubic": "'mode' = 'cubic'",
    "test_resize_upsample_scales_cubic_A_n0p5_exclude_outside": "'mode' = 'cubic'",
    "test_resize_upsample_scales_cubic_align_corners": "'mode' = 'cubic'",
    "test_resize_upsample_scales_cubic_asymmetric": "'mode' = 'cubic'",
    "test_resize_upsample_sizes_cubic": "'mode' = 'cubic'",
    "test_resize_tf_crop_and_resize": "tf_crop_and_resize",
    # a graph that computes nothing from its inputs is not a model visiond serves
    "test_constant": "no runtime input",
}
# Cases whose data is int32 only to keep the expected values exact; the
# operator's indexing is what they test, so they run on the same values as
# float32 (exactly representable).
AS_FLOAT = {"test_edge_pad", "test_reflect_pad"}


def _data_dir():
    subprocess.run(["/usr/bin/python3", os.path.join(HERE, "gen_node_data.py"), DATA], check=True)
    return DATA


def _elem_types(model):
    g = model.graph
    for vi in list(g.input) + list(g.output):
        yield vi.type.tensor_type.elem_type


def collect():
    cases = []
    for suite in ("node", "simple"):
        for d in sorted(glob.glob(os.path.join(DATA, suite, "test_*"))):
            path = os.path.join(d, "model.onnx")
            if not os.path.exists(path):
                continue
            m = onnx.load(path)
            ops = {n.op_type for n in m.graph.node}
            if not ops or not ops <= SUPPORTED_OPS or any(n.domain not in ("", "ai.onnx")
                                                         for n in m.graph.node):
                continue
            if not set(_elem_types(m)) <= TENSOR_TYPES and os.path.basename(d) not in AS_FLOAT:
                continue  # double, float16, uint8, string ...: visiond computes float32
            cases.append(d)
    return cases


if not os.path.exists(os.path.join(DATA, "stamp")):
    _data_dir()
CASES = collect()


def test_node_cases_were_found():
    # guards against a selection that silently runs nothing
    assert len(CASES) > 150


def _bake(model, inputs):
    """Turns integer inputs and constant-position operands into initializers."""
    g = model.graph
    const_names = set()
    for n in g.node:
        for pos in CONST_POSITIONS.get(n.op_type, ()):
            if pos < len(n.input) and n.input[pos]:
                const_names.add(n.input[pos])
    runtime = []
    keep = []
    casts = []
    for vi, arr in zip(list(g.input), inputs):
        if vi.name in const_names:
            g.initializer.append(numpy_helper.from_array(arr, vi.name))
        elif arr.dtype != np.float32:
            # visiond takes float inputs: an integer or boolean operand enters
            # as floats and a Cast makes it what the node reads, so the
            # operator still runs on data only known at run time
            fname = vi.name + "__float"
            casts.append(onnx.helper.make_node("Cast", [fname], [vi.name],
                                               to=vi.type.tensor_type.elem_type))
            fvi = onnx.ValueInfoProto()
            fvi.CopyFrom(vi)
            fvi.name = fname
            fvi.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
            keep.append(fvi)
            runtime.append((fname, arr.astype(np.float32)))
        else:
            keep.append(vi)
            runtime.append((vi.name, arr))
    del g.input[:]
    g.input.extend(keep)
    nodes = casts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    return runtime


@pytest.mark.parametrize("case", CASES, ids=[os.path.basename(c) for c in CASES])
def test_node_case(case, tmp_path, visiond_bin):
    name = os.path.basename(case)
    model = onnx.load(os.path.join(case, "model.onnx"))
    sets = sorted(glob.glob(os.path.join(case, "test_data_set_*")))
    assert sets
    for ds in sets:
        inputs = [numpy_helper.to_array(onnx.load_tensor(p))
                  for p in sorted(glob.glob(os.path.join(ds, "input_*.pb")),
                                  key=lambda p: int(p.rsplit("_", 1)[1][:-3]))]
        expected = [numpy_helper.to_array(onnx.load_tensor(p))
                    for p in sorted(glob.glob(os.path.join(ds, "output_*.pb")),
                                    key=lambda p: int(p.rsplit("_", 1)[1][:-3]))]
        m = onnx.ModelProto()
        m.CopyFrom(model)
        if name in AS_FLOAT:
            for vi in list(m.graph.input)[:1] + list(m.graph.output):
                vi.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
            inputs[0] = inputs[0].astype(np.float32)
            expected = [e.astype(np.float32) for e in expected]
        had_inputs = len(m.graph.input) > 0
        runtime = _bake(m, inputs)
        if not runtime and had_inputs:
            # every operand is one visiond needs constant (ConstantOfShape,
            # Range): an unused runtime input makes it a model, whose
            # outputs are then folded when it is planned
            dummy = onnx.helper.make_tensor_value_info("unused__input", onnx.TensorProto.FLOAT, [1])
            m.graph.input.append(dummy)
            runtime = [("unused__input", np.zeros(1, np.float32))]
        mpath = tmp_path / "model.onnx"
        onnx.save(m, str(mpath))
        args = ["run", "--model", str(mpath)]
        if not runtime:
            r = run_visiond("info", "--model", str(mpath))
            assert r.returncode == 2 and UNSUPPORTED[name] in r.stderr, r.stderr
            return
        for i, (iname, arr) in enumerate(runtime):
            p = tmp_path / f"in{i}.npy"
            np.save(p, arr)
            args += ["--input", f"{iname}={p}"]
        outs = [tmp_path / f"out{i}.npy" for i in range(len(expected))]
        for p in outs:
            args += ["--output", str(p)]
        r = run_visiond(*args)
        if name in UNSUPPORTED:
            assert r.returncode == 2, f"expected a clean load failure, got {r.returncode}: {r.stderr}"
            assert UNSUPPORTED[name] in r.stderr, r.stderr
            return
        assert r.returncode == 0, r.stderr
        nms = any(n.op_type == "NonMaxSuppression" for n in model.graph.node)
        for p, want in zip(outs, expected):
            got = np.load(p)
            if nms:  # visiond plans the most rows there can be; the rest are -1
                assert (got[len(want):] == -1).all(), got
                got = got[:len(want)]
            if want.dtype == np.bool_:  # visiond's booleans are int64 0/1
                np.testing.assert_array_equal(got.astype(bool), want)
            elif want.dtype in (np.int64, np.int32):
                np.testing.assert_array_equal(got, want.astype(np.int64))
            else:
                assert got.shape == want.shape
                np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-7)
