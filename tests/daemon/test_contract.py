"""The contract check every /v2 answer goes through (oip_contract.py) must
itself be able to fail: answers that break the OIP document are refused,
ones that meet it pass. The document is the one in ../shared/oip."""
import json

import pytest

import oip_contract

JSON = {"Content-Type": "application/json"}


def check(method, path, status, doc, headers=JSON):
    oip_contract.check(method, path, status, headers, json.dumps(doc).encode())


def test_the_document_is_the_shared_one():
    assert oip_contract.spec_path().endswith("oip/open_inference_rest.yaml")
    assert "inference_response" in oip_contract.spec()["components"]["schemas"]


GOOD = [
    ("GET", "/v2", 200, {"name": "visiond", "version": "0.3.0", "extensions": []}),
    ("GET", "/v2/models/m", 200, {"name": "m", "platform": "onnxruntime_onnx", "versions": ["1"],
                                  "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}]}),
    ("GET", "/v2/models/m/versions/2", 200, {"name": "m", "platform": "p"}),
    ("POST", "/v2/models/m/infer", 200, {"model_name": "m", "model_version": "1", "outputs": [
        {"name": "y", "shape": [1, 2], "datatype": "FP32", "data": [0.5, 1]}]}),
    ("POST", "/v2/models/m/versions/1/infer", 400, {"error": "bad"}),
    ("GET", "/v2/health/ready", 200, {"live": True, "ready": True}),
    ("GET", "/v2/models/m/ready", 400, {"name": "m", "ready": False}),
]

BAD = [
    ("GET", "/v2", 200, {"name": "visiond", "version": "0.3.0"}),  # no extensions
    ("GET", "/v2", 200, {"name": "visiond", "version": 3, "extensions": []}),
    ("GET", "/v2/models/m", 200, {"name": "m"}),  # no platform
    ("GET", "/v2/models/m", 200, {"name": "m", "platform": "p", "versions": [1]}),
    ("GET", "/v2/models/m", 200, {"name": "m", "platform": "p",
                                  "inputs": [{"name": "x", "shape": [1]}]}),  # no datatype
    ("POST", "/v2/models/m/infer", 200, {"model_name": "m"}),  # no outputs
    ("POST", "/v2/models/m/infer", 200, {"model_name": "m", "model_version": 1, "outputs": []}),
    ("POST", "/v2/models/m/infer", 200, {"model_name": "m", "outputs": [
        {"name": "y", "shape": ["1"], "datatype": "FP32", "data": [1]}]}),
    ("POST", "/v2/models/m/infer", 400, {"message": "bad"}),  # errors are {"error": ...}
    ("GET", "/v2/nothing", 404, {"detail": "x"}),
    ("GET", "/v2/health/ready", 200, {"live": True, "ready": False}),  # status disagrees
    ("GET", "/v2/models/m/ready", 200, {"ready": True}),  # no name
]


@pytest.mark.parametrize("method,path,status,doc", GOOD)
def test_conforming_answers_pass(method, path, status, doc):
    check(method, path, status, doc)


@pytest.mark.parametrize("method,path,status,doc", BAD)
def test_breaking_answers_fail(method, path, status, doc):
    with pytest.raises(AssertionError):
        check(method, path, status, doc)


def test_v2_answers_are_json():
    with pytest.raises(AssertionError):
        oip_contract.check("GET", "/v2", 200, {"Content-Type": "text/plain"}, b"visiond")
