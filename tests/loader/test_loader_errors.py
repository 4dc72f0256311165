"""Failure paths of the model loader: each bad file must be refused with
exit status 2 and one clear message naming the file and what is wrong,
never a crash (the sanitizer run repeats these under ASan/UBSan)."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from visiond_test import run_visiond


def conv_model(path, *, op="Conv", with_weight=True, weight_dims=(8, 3, 3, 3),
               input_dims=("N", 3, 32, 32), opset=13, raw_weight=None):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(input_dims))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    inits = []
    if with_weight:
        if raw_weight is not None:
            inits.append(raw_weight)
        else:
            w = np.random.default_rng(0).standard_normal(weight_dims).astype(np.float32)
            inits.append(numpy_helper.from_array(w, "W"))
    node = helper.make_node(op, ["x", "W"], ["y"], name="conv1")
    g = helper.make_graph([node], "g", [x], [y], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    with open(path, "wb") as f:
        f.write(m.SerializeToString())
    return str(path)


def raw_tensor(name, dims, values):
    """A TensorProto built by hand: onnx.helper refuses inconsistent ones."""
    t = TensorProto()
    t.name = name
    t.data_type = TensorProto.FLOAT
    t.dims.extend(dims)
    t.float_data.extend(values)
    return t


def expect_load_error(path, *words):
    r = run_visiond("info", "--model", str(path))
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    msg = r.stderr.strip()
    assert msg.count("\n") == 0, f"one line expected: {msg!r}"
    assert str(path) in msg, msg
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"
    return msg


def test_valid_model_loads(tmp_path):
    r = run_visiond("info", "--model", conv_model(tmp_path / "ok.onnx"))
    assert r.returncode == 0, r.stderr
    assert "1x8x30x30" in r.stdout


def test_empty_file(tmp_path):
    p = tmp_path / "empty.onnx"
    p.write_bytes(b"")
    expect_load_error(p, "empty")


def test_missing_file(tmp_path):
    r = run_visiond("info", "--model", str(tmp_path / "nope.onnx"))
    assert r.returncode == 2 and "cannot open" in r.stderr


@pytest.mark.parametrize("seed", range(8))
def test_random_bytes(tmp_path, seed):
    p = tmp_path / "random.onnx"
    p.write_bytes(np.random.default_rng(seed).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    expect_load_error(p, "not an ONNX model")


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.999])
def test_truncated_model(tmp_path, fraction):
    full = conv_model(tmp_path / "full.onnx", weight_dims=(64, 3, 7, 7))
    data = open(full, "rb").read()
    p = tmp_path / "truncated.onnx"
    p.write_bytes(data[: int(len(data) * fraction)])
    r = run_visiond("info", "--model", str(p))
    assert r.returncode == 2, r.stderr
    assert str(p) in r.stderr


def test_unsupported_operator(tmp_path):
    p = conv_model(tmp_path / "lstm.onnx", op="LSTM")
    expect_load_error(p, "unsupported operator 'LSTM'", "node 'conv1'")


def test_unsupported_domain(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    node = helper.make_node("Gelu", ["x"], ["y"], name="act", domain="com.microsoft")
    g = helper.make_graph([node], "g", [x], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13),
                                            helper.make_opsetid("com.microsoft", 1)])
    p = tmp_path / "domain.onnx"
    p.write_bytes(m.SerializeToString())
    expect_load_error(p, "'Gelu'", "com.microsoft", "node 'act'")


def test_absurd_initializer_dimensions(tmp_path):
    w = raw_tensor("W", [1 << 40, 1 << 40, 3, 3], [])
    p = conv_model(tmp_path / "absurd.onnx", raw_weight=w)
    expect_load_error(p, "absurd dimensions", "'W'")


def test_absurd_input_dimensions(tmp_path):
    p = conv_model(tmp_path / "huge_input.onnx", input_dims=("N", 3, 1 << 30, 1 << 30))
    expect_load_error(p, "absurd dimensions")


def test_initializer_data_does_not_match_shape(tmp_path):
    w = raw_tensor("W", [8, 3, 3, 3], [0.0] * 10)
    p = conv_model(tmp_path / "short.onnx", raw_weight=w)
    expect_load_error(p, "'W'", "holds 10 values")


def test_small_data_claiming_gigabytes_is_refused_before_allocating(tmp_path):
    """108 bytes of raw data under a shape of 2 G values (what the ONNX
    fuzzer found: an 8 GB allocation): refused from the sizes alone, and
    fast, under a memory limit far below what the shape claims."""
    import os
    import resource
    import subprocess
    from visiond_test import BIN
    w = raw_tensor("W", [2113828852], [])
    w.raw_data = bytes(108)
    p = conv_model(tmp_path / "claims.onnx", raw_weight=w)

    with open(BIN, "rb") as f:
        sanitized = b"__asan_init" in f.read()

    def limit():  # AddressSanitizer reserves terabytes of address space: it gets its own limit
        if not sanitized:
            resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") +
               ":max_allocation_size_mb=1024:allocator_may_return_null=0")
    r = subprocess.run([BIN, "info", "--model", str(p)], capture_output=True, text=True,
                       preexec_fn=limit, timeout=60, env=env)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "'W'" in r.stderr and "108 bytes of raw data" in r.stderr, r.stderr


def test_missing_initializer(tmp_path):
    p = conv_model(tmp_path / "no_weight.onnx", with_weight=False)
    expect_load_error(p, "reads 'W'", "missing initializer", "node 'conv1'")


def test_weights_that_do_not_fit(tmp_path):
    p = conv_model(tmp_path / "mismatch.onnx", weight_dims=(8, 5, 3, 3))
    expect_load_error(p, "node 'conv1' (Conv)", "do not fit")


def test_opset_out_of_range(tmp_path):
    p = conv_model(tmp_path / "old.onnx", opset=3)
    expect_load_error(p, "opset 3", "7 to 21")


def test_graph_output_not_produced(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("nowhere", TensorProto.FLOAT, None)
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    p = tmp_path / "dangling.onnx"
    p.write_bytes(helper.make_model(g).SerializeToString())
    expect_load_error(p, "'nowhere'")


def test_cycle(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("b", TensorProto.FLOAT, None)
    nodes = [helper.make_node("Add", ["x", "b"], ["a"], name="n1"),
             helper.make_node("Relu", ["a"], ["b"], name="n2")]
    g = helper.make_graph(nodes, "g", [x], [y])
    p = tmp_path / "cycle.onnx"
    p.write_bytes(helper.make_model(g).SerializeToString())
    expect_load_error(p, "cycle")


def test_operands_that_do_not_broadcast(tmp_path):
    """A 150-byte two-input Add of 3x4x61 and 5: shape inference used to read
    the output shape it had not written (a crash in some runs), so it is
    loaded many times; every load must give the same one-line error."""
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [3, 4, 61])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [5])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    g = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"], name="add")], "g",
                          [a, b], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    p = tmp_path / "bad_add.onnx"
    p.write_bytes(m.SerializeToString())
    assert p.stat().st_size < 200
    for _ in range(10):
        expect_load_error(p, "add", "do not broadcast")


def test_model_file_that_is_a_fifo(tmp_path):
    """Opening a FIFO for reading waits for a writer: the loader must refuse
    it at once instead."""
    import os
    p = tmp_path / "fifo.onnx"
    os.mkfifo(p)
    r = run_visiond("info", "--model", str(p), timeout=20)
    assert r.returncode == 2 and "not a regular file" in r.stderr, r.stderr


def one_node_model(path, node, inputs, inits=(), opset=17):
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    g = helper.make_graph([node], "g", inputs, [y], initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    with open(path, "wb") as f:
        f.write(m.SerializeToString())
    return str(path)


@pytest.mark.parametrize("mode,coord,words", [
    ("cubic", "half_pixel", ["'mode' = 'cubic'"]),
    ("linear", "tf_crop_and_resize", ["'coordinate_transformation_mode' = 'tf_crop_and_resize'"]),
])
def test_unimplemented_resize_is_named(tmp_path, mode, coord, words):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up2", mode=mode,
                            coordinate_transformation_mode=coord)
    p = one_node_model(tmp_path / "resize.onnx", node, [x], [scales])
    expect_load_error(p, "node 'up2' (Resize)", *words)


@pytest.mark.parametrize("equation,words", [
    ("...ij,...jk->...ik", ["ellipsis"]),
    ("ij,jk,kl->il", ["does not match its 2 inputs"]),
])
def test_unsupported_einsum_is_named(tmp_path, equation, words):
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 4, 5])
    b = numpy_helper.from_array(np.ones((5, 6), np.float32), "b")
    node = helper.make_node("Einsum", ["a", "b"], ["y"], name="contract", equation=equation)
    p = one_node_model(tmp_path / "einsum.onnx", node, [a], [b])
    expect_load_error(p, "node 'contract' (Einsum)", *words)
