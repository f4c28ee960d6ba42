"""Validate Open Inference Protocol bodies against the specification's
OpenAPI file (docs/specs/open-inference-protocol/open_inference_rest.yaml)
with python3-jsonschema, for the tests of any OIP server or client.

    from oip_schema import response_errors, errors
    problems = response_errors("infer", status, body,
                               headers.get("Inference-Header-Content-Length"))
    check(not problems, "; ".join(problems))
    errors(doc, "inference_request")      # one schema of the yaml, by name

The yaml is OpenAPI 3.0: its schemas live under components/schemas and
refer to each other as '#/components/schemas/NAME'; they are validated as
JSON Schema draft 7 (OpenAPI 3.0's schemas are a subset; draft 7 for
if/then, which picks the binary extension's form) against a root document that
holds components/, so every $ref resolves inside the file.

What the yaml leaves out and inference_rest.md or the binary tensor data
extension (Triton's extension_binary_data.md) say, added here and marked
so in each message:
  - error bodies must be {"error": string} (the yaml does not require it);
  - parameter values are strings, numbers or booleans; dims are >= 0
    (>= -1 in metadata);
  - with the binary extension an input or output carries
    parameters.binary_data_size (an integer >= 0) instead of "data", the
    JSON is followed by those bytes in order, and nothing else.
"""
import copy
import functools
import json
import os

import jsonschema
import yaml

SPEC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                    "docs", "specs", "open-inference-protocol",
                    "open_inference_rest.yaml")

# the success schema of each endpoint (None: the yaml gives no body)
ENDPOINTS = {
    "server_metadata": "metadata_server_response",
    "model_metadata": "metadata_model_response",
    "infer": "inference_response",
    "live": None, "ready": None, "model_ready": None,
}

_HDR = "Inference-Header-Content-Length"


@functools.lru_cache(maxsize=None)
def _components(binary):
    """The yaml's components/schemas, with the additions listed above."""
    with open(SPEC) as f:
        spec = yaml.safe_load(f)
    schemas = copy.deepcopy(spec["components"]["schemas"])
    # inference_rest.md, "Parameters": $string | $number | $boolean
    schemas["parameters"]["additionalProperties"] = {
        "type": ["string", "number", "boolean"]}
    # inference_rest.md: dims of tensors are representable as unsigned
    # 64-bit integers; in metadata, -1 is a variable-size dim
    for name in ("request_input", "response_output"):
        schemas[name]["properties"]["shape"]["items"]["minimum"] = 0
    schemas["metadata_tensor"]["properties"]["shape"]["items"]["minimum"] = -1
    if binary:
        for name in ("request_input", "response_output"):
            json_form = schemas[name]
            bin_form = copy.deepcopy(json_form)
            bin_form["required"] = [r for r in bin_form["required"]
                                    if r != "data"] + ["parameters"]
            bin_form["properties"]["parameters"] = {
                "allOf": [{"$ref": "#/components/schemas/parameters"}],
                "required": ["binary_data_size"],
                "properties": {"binary_data_size": {"type": "integer",
                                                    "minimum": 0}}}
            bin_form["not"] = {"required": ["data"]}
            schemas[name] = {
                "if": {"required": ["parameters"], "properties": {
                    "parameters": {"required": ["binary_data_size"]}}},
                "then": bin_form, "else": json_form}
    return {"components": {"schemas": schemas}}


def errors(doc, schema, binary=True):
    """Messages (empty when valid) for doc against components/schemas/
    schema; binary admits the binary tensor data extension's form."""
    root = dict(_components(binary))
    root["$ref"] = "#/components/schemas/" + schema
    v = jsonschema.Draft7Validator(root)
    return [f"{schema}: {'/'.join(str(p) for p in e.absolute_path) or '.'}"
            f": {e.message}" for e in v.iter_errors(doc)]


def split_body(body, header_length):
    """(JSON bytes, binary bytes) of a body, per the header's value (None:
    all JSON).  Raises ValueError when the value does not fit."""
    if header_length is None:
        return body, b""
    text = str(header_length).strip()
    if not text.isascii() or not text.isdigit() or int(text) > len(body):
        raise ValueError(f"{_HDR} {header_length!r} for a "
                         f"{len(body)}-byte body")
    return body[:int(text)], body[int(text):]


def _binary_sizes(items):
    return [(it.get("parameters") or {}).get("binary_data_size")
            for it in items if isinstance(it, dict)]


def response_errors(endpoint, status, body, header_length=None):
    """Messages (empty when valid) for an answer of endpoint (a key of
    ENDPOINTS) with HTTP status, body bytes and the value of its
    Inference-Header-Content-Length header (None when absent)."""
    if endpoint not in ENDPOINTS:
        raise KeyError(f"endpoint {endpoint!r}: one of {sorted(ENDPOINTS)}")
    try:
        head, blob = split_body(body, header_length)
    except ValueError as e:
        return [str(e)]
    if status != 200 or ENDPOINTS[endpoint] is not None:
        try:
            doc = json.loads(head)
        except (ValueError, RecursionError) as e:
            return [f"{endpoint}: HTTP {status} body is not JSON ({e})"]
    if status != 200:
        # inference_rest.md: "The HTTP body must contain the ..._error_
        # response object", {"error": $string}
        if not isinstance(doc, dict) or not isinstance(doc.get("error"),
                                                       str):
            return [f"{endpoint}: HTTP {status} body is not "
                    "{\"error\": string} (inference_rest.md)"]
        return []
    if ENDPOINTS[endpoint] is None:
        return []
    problems = errors(doc, ENDPOINTS[endpoint])
    if endpoint == "infer" and not problems:
        sizes = [s for s in _binary_sizes(doc["outputs"]) if s is not None]
        if sizes and header_length is None:
            problems.append(f"binary outputs without {_HDR} (binary "
                            "extension)")
        if sum(sizes) != len(blob):
            problems.append(f"outputs' binary_data_size add up to "
                            f"{sum(sizes)}, {len(blob)} bytes follow the "
                            "JSON (binary extension)")
    return problems


def request_errors(body, header_length=None):
    """Messages (empty when valid) for an inference request's body."""
    try:
        head, blob = split_body(body, header_length)
        doc = json.loads(head)
    except (ValueError, RecursionError) as e:
        return [f"inference request: {e}"]
    problems = errors(doc, "inference_request")
    if not problems:
        sizes = [s for s in _binary_sizes(doc["inputs"]) if s is not None]
        if sum(sizes) != len(blob):
            problems.append(f"inputs' binary_data_size add up to "
                            f"{sum(sizes)}, {len(blob)} bytes follow the "
                            "JSON (binary extension)")
    return problems
