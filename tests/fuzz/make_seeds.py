#!/usr/bin/python3
"""Writes the fuzzers' seed corpora (tests/fuzz/corpus/<name>/): small
valid inputs of each kind the harness takes, made from the project's own
data (the default model, its sample digit) and from Debian's PIL, numpy and
onnx. The files are committed; this script says how they were made and
remakes them:

    /usr/bin/python3 tests/fuzz/make_seeds.py
"""
import io
import json
import os

import numpy as np
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MNIST = os.path.join(ROOT, "models", "mnist")


def write(kind, name, data):
    d = os.path.join(HERE, "corpus", kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def onnx_seeds():
    rng = np.random.default_rng(0)

    def model(nodes, inputs, outputs, inits=(), opset=13):
        g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)]) \
            .SerializeToString()

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b")
    write("onnx", "conv_relu_pool", model(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("MaxPool", ["r"], ["y"], kernel_shape=[2, 2], strides=[2, 2])],
        [x], [y], [w, b]))
    dw = numpy_helper.from_array(rng.standard_normal((3, 1, 3, 3)).astype(np.float32), "dw")
    write("onnx", "depthwise_concat", model(
        [helper.make_node("Conv", ["x", "dw"], ["d"], group=3, pads=[1, 1, 1, 1]),
         helper.make_node("Concat", ["x", "d"], ["c"], axis=1),
         helper.make_node("GlobalAveragePool", ["c"], ["y"])], [x], [y], [dw]))
    fw = numpy_helper.from_array(rng.standard_normal((5, 192)).astype(np.float32), "fw")
    write("onnx", "flatten_gemm_softmax", model(
        [helper.make_node("Flatten", ["x"], ["f"]),
         helper.make_node("Gemm", ["f", "fw"], ["g"], transB=1),
         helper.make_node("Softmax", ["g"], ["y"], axis=1)], [x], [y], [fw]))
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [3, 4, 5])
    c = helper.make_tensor_value_info("c", TensorProto.FLOAT, [5])
    write("onnx", "add_broadcast", model([helper.make_node("Add", ["a", "c"], ["y"])], [a, c],
                                         [y]))
    write("onnx", "mnist", open(os.path.join(MNIST, "model.onnx"), "rb").read())


def image_seeds():
    rng = np.random.default_rng(1)
    rgb = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    for name, img, kw in [("baseline.jpg", rgb, dict(format="JPEG", quality=80)),
                          ("progressive.jpg", rgb, dict(format="JPEG", progressive=True)),
                          ("gray.jpg", rgb.convert("L"), dict(format="JPEG")),
                          ("cmyk.jpg", rgb.convert("CMYK"), dict(format="JPEG")),
                          ("rgb.png", rgb, dict(format="PNG")),
                          ("interlaced.png", rgb, dict(format="PNG", interlace=1)),
                          ("palette.png", rgb.convert("P"), dict(format="PNG")),
                          ("gray_alpha.png", rgb.convert("LA"), dict(format="PNG"))]:
        buf = io.BytesIO()
        img.save(buf, **kw)
        write("image", name, buf.getvalue())
    sixteen = Image.fromarray((rng.integers(0, 65536, (16, 16))).astype(np.uint16))
    buf = io.BytesIO()
    sixteen.save(buf, format="PNG")
    write("image", "gray16.png", buf.getvalue())


def npy_seeds():
    for name, arr in [("f4", np.arange(24, dtype=np.float32).reshape(2, 3, 4)),
                      ("f8", np.linspace(-1, 1, 10)), ("i8", np.arange(-3, 3, dtype=np.int64)),
                      ("scalar", np.float32(3.5)), ("empty", np.zeros((0, 4), np.float32))]:
        buf = io.BytesIO()
        np.save(buf, arr)
        write("npy", name, buf.getvalue())


def http_seeds():
    digit = open(os.path.join(MNIST, "sample-7.png"), "rb").read()

    def post(path, body, ctype, extra=b""):
        return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\n").encode() + extra + b"\r\n" + body

    write("http", "get_probes", b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
          b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\nGET /v2/models/mnist/ready HTTP/1.1\r\n\r\n")
    write("http", "get_metadata", b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"
          b"GET /v2/models/mnist HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n")
    write("http", "classify_raw", post("/v1/models/mnist/classify?top_k=3", digit, "image/png"))
    boundary = "fuzzboundary"
    parts = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"f{i}\"; "
                     f"filename=\"d{i}.png\"\r\nContent-Type: image/png\r\n\r\n".encode() + digit +
                     b"\r\n" for i in range(2)) + f"--{boundary}--\r\n".encode()
    write("http", "classify_multipart", post("/v1/models/mnist/classify", parts,
                                             f"multipart/form-data; boundary={boundary}"))
    x = np.round(np.random.default_rng(2).random(784), 3).tolist()
    v2 = json.dumps({"id": "1", "inputs": [{"name": "image", "shape": [1, 1, 28, 28],
                                            "datatype": "FP32", "data": x}],
                     "outputs": [{"name": "logits"}]}).encode()
    write("http", "infer_v2", post("/v2/models/mnist/infer", v2, "application/json"))
    chunked = (b"POST /v1/models/mnist/classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n" + f"{len(digit):x}\r\n".encode() + digit +
               b"\r\n0\r\n\r\n")
    write("http", "classify_chunked", chunked)
    write("http", "expect_continue", post("/v1/models/mnist/classify", digit, "image/png",
                                          b"Expect: 100-continue\r\n"))
    # the face detector (models/faces): boxes as JSON, drawn as a JPEG; the page
    write("http", "detect_raw", post("/v1/models/faces/detect", digit, "image/png"))
    write("http", "detect_render", post("/v1/models/faces/detect?render=jpeg", digit, "image/png"))
    write("http", "detect_multipart", post("/v1/models/faces/detect", parts,
                                           f"multipart/form-data; boundary={boundary}"))
    write("http", "get_page", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    # the binary tensor data extension: UINT8 binary input, binary and
    # classified outputs; the raw form; encoded images as BYTES
    pixels = np.random.default_rng(3).integers(0, 256, 784, dtype=np.uint8).tobytes()
    head = json.dumps({"inputs": [{"name": "image", "shape": [1, 1, 28, 28], "datatype": "UINT8",
                                   "parameters": {"binary_data_size": 784}}],
                       "outputs": [{"name": "logits", "parameters": {"binary_data": True,
                                                                     "classification": 2}}]})
    write("http", "infer_binary", post("/v2/models/mnist/infer", head.encode() + pixels,
                                       "application/octet-stream",
                                       f"Inference-Header-Content-Length: {len(head)}\r\n"
                                       .encode()))
    raw = np.random.default_rng(4).random(784).astype("<f4").tobytes()
    write("http", "infer_raw", post("/v2/models/mnist/infer", raw, "application/octet-stream",
                                    b"Inference-Header-Content-Length: 0\r\n"))
    blob = len(digit).to_bytes(4, "little") + digit
    head = json.dumps({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                                   "parameters": {"binary_data_size": len(blob)}}],
                       "parameters": {"binary_data_output": True}})
    write("http", "infer_bytes", post("/v2/models/mnist/infer", head.encode() + blob,
                                      "application/octet-stream",
                                      f"Inference-Header-Content-Length: {len(head)}\r\n"
                                      .encode()))


if __name__ == "__main__":
    onnx_seeds()
    image_seeds()
    npy_seeds()
    http_seeds()
