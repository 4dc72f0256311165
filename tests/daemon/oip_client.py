"""A small Open Inference Protocol client written from the protocol's text
(../shared/oip/inference_rest.md) and Triton's binary tensor data and
classification extensions, not from visiond: what a KServe or Triton
client puts on the wire, and how it reads the answer.

    body, headers = encode({"x": array}, binary=True, outputs=[...])
    outputs = decode(status, headers, body)   # {name: numpy array or list of str}
"""
import json
import struct

import numpy as np

DTYPES = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
          "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
          "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64}
HEADER = "Inference-Header-Content-Length"


def datatype_of(array):
    for name, t in DTYPES.items():
        if array.dtype == np.dtype(t):
            return name
    raise ValueError(array.dtype)


def bytes_tensor(items):
    """BYTES binary layout: each element a 4-byte little-endian length, then its bytes."""
    return b"".join(struct.pack("<I", len(b)) + b for b in items)


def encode(inputs, binary=False, outputs=None, binary_output=None, request_id=None):
    """inputs: {name: numpy array, or list of bytes for BYTES}. Returns (body, headers)."""
    doc = {"inputs": []}
    blobs = []
    for name, value in inputs.items():
        if isinstance(value, list):  # BYTES: binary only
            data = bytes_tensor(value)
            doc["inputs"].append({"name": name, "shape": [len(value)], "datatype": "BYTES",
                                  "parameters": {"binary_data_size": len(data)}})
            blobs.append(data)
            continue
        entry = {"name": name, "shape": list(value.shape), "datatype": datatype_of(value)}
        if binary:
            data = np.ascontiguousarray(value).astype(value.dtype.newbyteorder("<")).tobytes()
            entry["parameters"] = {"binary_data_size": len(data)}
            blobs.append(data)
        else:
            entry["data"] = value.ravel().tolist()
        doc["inputs"].append(entry)
    if outputs is not None:
        doc["outputs"] = outputs
    if binary_output is not None:
        doc["parameters"] = {"binary_data_output": binary_output}
    if request_id is not None:
        doc["id"] = request_id
    text = json.dumps(doc).encode()
    if not blobs:
        return text, {"Content-Type": "application/json"}
    return text + b"".join(blobs), {"Content-Type": "application/octet-stream",
                                     HEADER: str(len(text))}


def encode_raw(array):
    """The raw form: no JSON, the one input's bytes; header 0."""
    return (np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes(),
            {"Content-Type": "application/octet-stream", HEADER: "0"})


def decode(status, headers, body):
    """The answer's outputs by name: numpy arrays, or lists of str for BYTES.
    Returns (document, outputs)."""
    h = {k.lower(): v for k, v in headers.items()}
    n = int(h[HEADER.lower()]) if HEADER.lower() in h else len(body)
    doc = json.loads(body[:n])
    if status != 200:
        return doc, None
    at = n
    out = {}
    for o in doc["outputs"]:
        shape = o["shape"]
        size = (o.get("parameters") or {}).get("binary_data_size")
        if size is None:
            data = o["data"]
            out[o["name"]] = (list(data) if o["datatype"] == "BYTES"
                              else np.array(data, dtype=DTYPES[o["datatype"]]).reshape(shape))
            continue
        blob = body[at:at + size]
        at += size
        if o["datatype"] == "BYTES":
            items, p = [], 0
            while p < len(blob):
                (k,) = struct.unpack_from("<I", blob, p)
                items.append(blob[p + 4:p + 4 + k].decode())
                p += 4 + k
            out[o["name"]] = items
        else:
            out[o["name"]] = np.frombuffer(
                blob, dtype=np.dtype(DTYPES[o["datatype"]]).newbyteorder("<")).reshape(shape)
    assert at == len(body), (at, len(body))
    return doc, out
