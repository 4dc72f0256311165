"""The Open Inference Protocol's OpenAPI document (../shared/oip,
open_inference_rest.yaml, Apache-2.0) as the contract for every /v2
answer the test suite receives: Daemon.request() hands each one here.

The document's component schemas are used as they are, through Debian's
python3-jsonschema (OpenAPI 3.0 schemas are JSON Schema for what they use
here); its paths say which schema an answer must meet:
  GET /v2                              metadata_server_response | ..._error_response
  GET /v2/models/{m}[/versions/{v}]    metadata_model_response | ..._error_response
  POST .../infer                       inference_response | inference_error_response
Health answers have no body in the document; anything else under /v2 that
is not the model repository extension (Triton's, not in this document)
must be one of these. Every error, everywhere under /v2, is {"error": str}.
"""
import json
import os
import re

import jsonschema
import yaml

from visiond_test import ROOT


def spec_path():
    for d in (os.environ.get("VISIOND_SHARED_OIP"), os.path.join(ROOT, "..", "shared", "oip"),
              "/work/shared/oip"):
        if d and os.path.isfile(os.path.join(d, "open_inference_rest.yaml")):
            return os.path.join(d, "open_inference_rest.yaml")
    raise FileNotFoundError("../shared/oip/open_inference_rest.yaml (the OIP contract)")


_SPEC = None


def spec():
    global _SPEC
    if _SPEC is None:
        with open(spec_path()) as f:
            _SPEC = yaml.safe_load(f)
    return _SPEC


def validator(schema_name):
    doc = spec()
    schema = doc["components"]["schemas"][schema_name]
    resolver = jsonschema.RefResolver.from_schema(doc)
    return jsonschema.Draft7Validator(schema, resolver=resolver)


MODEL = r"/v2/models/[^/]+(/versions/[^/]+)?"
ROUTES = [  # (method, path pattern, schema for 200, schema for errors)
    ("GET", r"/v2/?", "metadata_server_response", "metadata_server_error_response"),
    ("GET", MODEL + "/?", "metadata_model_response", "metadata_model_error_response"),
    ("POST", MODEL + "/infer/?", "inference_response", "inference_error_response"),
]
ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
# The health answers: the OpenAPI document gives them no body, its text
# (inference_rest.md, "Health") gives these objects; the status carries the
# verdict (200 or 4xx), the body says the same.
LIVE = {"type": "object", "properties": {"live": {"type": "boolean"}}, "required": ["live"]}
MODEL_READY = {"type": "object", "properties": {"name": {"type": "string"},
                                                "ready": {"type": "boolean"}},
               "required": ["name", "ready"]}
HEALTH = [(r"/v2/health/(live|ready)/?", LIVE), (MODEL + "/ready/?", MODEL_READY)]


def schema_for(method, path, status):
    """The schema name an answer must meet, or None where the document has
    none (health, the repository extension)."""
    path = path.split("?", 1)[0]
    for m, pattern, ok, err in ROUTES:
        if m == method and re.fullmatch(pattern, path):
            return ok if status == 200 else err
    return None


def check(method, path, status, headers, body):
    """Raises AssertionError if a /v2 answer breaks the contract."""
    if not path.startswith("/v2") or method == "HEAD":
        return
    lower = {k.lower(): v for k, v in headers.items()}
    ctype = lower.get("content-type", "")
    binary_len = lower.get("inference-header-content-length")
    if binary_len is not None:
        # the binary tensor data extension: the JSON, then each binary
        # output's bytes (binary_data_size) in order, and nothing else
        assert status == 200 and ctype == "application/octet-stream", (path, status, ctype)
        n = int(binary_len)
        doc = json.loads(body[:n])
        sizes = [(o.get("parameters") or {}).get("binary_data_size")
                 for o in doc.get("outputs", [])]
        assert sum(s or 0 for s in sizes) == len(body) - n, (path, sizes, len(body), n)
        for o, size in zip(doc.get("outputs", []), sizes):
            if size is not None:  # its data is the bytes, not a "data" member
                assert "data" not in o, o
                o["data"] = []
        body = json.dumps(doc).encode()
        ctype = "application/json"
    assert ctype.startswith("application/json"), (method, path, status, ctype)
    doc = json.loads(body) if body else None
    for pattern, schema in HEALTH:
        if method == "GET" and re.fullmatch(pattern, path.split("?", 1)[0]):
            errors = list(jsonschema.Draft7Validator(schema).iter_errors(doc))
            assert not errors, (method, path, status, doc, [e.message for e in errors])
            verdict = doc.get("ready", doc.get("live"))
            assert (status == 200) == verdict, (method, path, status, doc)
            return
    if status != 200:
        errors = list(jsonschema.Draft7Validator(ERROR).iter_errors(doc))
        assert not errors, (method, path, status, doc, [e.message for e in errors])
    name = schema_for(method, path, status)
    if name is None:
        return
    errors = list(validator(name).iter_errors(doc))
    assert not errors, (method, path, status, name, [e.message for e in errors][:5])
