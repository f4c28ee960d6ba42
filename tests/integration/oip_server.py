#!/usr/bin/python3
"""oip_server.py: a TEST DOUBLE of an Open Inference Protocol server
(KServe v2 / Triton HTTP/REST, with Triton's binary tensor data
extension) over trivial numpy models, for the tests of the clients
(python/lamina_client and `lamina infer --url`).  It is not lamina's
server and serves no real model.

    srv = OipServer()                 # 127.0.0.1, a free port, a thread
    srv.url                           # "http://127.0.0.1:PORT"
    srv.stats                         # connections, requests, in flight
    srv.drop_connections()            # close every kept-alive connection
    srv.close()
    /usr/bin/python3 oip_server.py --port 8000    # by hand, until ^C

It follows docs/specs/open-inference-protocol/: every request body is
checked against the spec's schema (oip_schema.request_errors) and against
the model; errors are {"error": "..."} with 400 (bad request), 404
(unknown model, version or path), 405, 411 and 503.  Every answer it
builds is checked against the spec's schema too; violations are kept in
srv.stats["schema_errors"] for the tests to look at.

Models (version "1"; batch is the first dim, 1..MAX_BATCH):
  affine_<type>  for type in fp16 fp32 fp64 int8 .. int64 uint8 .. uint64
                 bool: input x <TYPE> [-1, 4]; outputs y = x * 2 + 1 in
                 TYPE (wrapping; bool: not x), echo = x, total = FP64 [-1]
                 row sums of x
  pair           inputs a FP32 [-1, 4], b INT64 [-1, 4]; output
                 sum FP64 [-1, 4] = a + b
  text           input s BYTES [-1]; outputs upper BYTES [-1] (s upper-
                 cased), length INT64 [-1]
  bad_<mode>     misbehaves on infer (any inputs), see BAD_MODES

Request parameters of this double (servers take their own parameters):
"test_delay_ms" (wait before answering), "test_nested" (JSON data as
nested lists rather than flat), "timeout" (accepted, as Triton's).
"""
import argparse
import http.server
import json
import os
import socket
import struct
import sys
import threading
import time
import urllib.parse

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oip_schema  # noqa: E402

MAX_BATCH = 8
HDR = "Inference-Header-Content-Length"

DTYPES = {
    "BOOL": np.dtype(np.bool_), "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"), "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"), "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
}

# What each bad_<mode> model does on infer.
BAD_MODES = {
    "unavailable": "503 {\"error\": \"model bad_unavailable is loading\"}",
    "html_error": "500 with an HTML body (no {\"error\"})",
    "bogus_json": "200, body '{\"outputs\": [' (not JSON)",
    "not_object": "200, body [1, 2, 3]",
    "deep_json": "200, 100000 nested '['",
    "truncated": "200, Content-Length promises twice the body sent, then "
                 "the connection closes",
    "close_early": "the connection closes before any answer",
    "close_mid": "the status line and half the headers, then close",
    "header_long": "Inference-Header-Content-Length past the body",
    "header_short": "Inference-Header-Content-Length inside the JSON",
    "header_bogus": "Inference-Header-Content-Length: -5",
    "size_mismatch": "binary_data_size 12 for a [1, 4] FP32 output",
    "size_overflow": "binary_data_size past the bytes that follow",
    "size_negative": "binary_data_size -16",
    "trailing": "4 bytes after the last binary output",
    "huge_shape": "shape [4611686018427387904, 4611686018427387904]",
    "negative_shape": "shape [-1, 4]",
    "bad_datatype": "datatype FP128",
    "missing_output": "no outputs at all",
    "data_count": "JSON data with 3 elements for shape [1, 4]",
    "data_type": "JSON data holding strings for FP32",
    "data_range": "JSON data 300 for UINT8",
    "wrong_id": "an id other than the request's",
    "slow": "a good answer after 3 s",
}


class BadRequest(Exception):
    def __init__(self, status, msg):
        super().__init__(msg)
        self.status = status


def _model_table():
    models = {}
    for dt in DTYPES:
        models["affine_" + dt.lower()] = {
            "inputs": [("x", dt, [-1, 4])],
            "outputs": [("y", dt, [-1, 4]), ("echo", dt, [-1, 4]),
                        ("total", "FP64", [-1])]}
    models["pair"] = {"inputs": [("a", "FP32", [-1, 4]),
                                 ("b", "INT64", [-1, 4])],
                      "outputs": [("sum", "FP64", [-1, 4])]}
    models["text"] = {"inputs": [("s", "BYTES", [-1])],
                      "outputs": [("upper", "BYTES", [-1]),
                                  ("length", "INT64", [-1])]}
    return models


MODELS = _model_table()


def run_model(name, x):
    """{output: array} of model name on inputs x ({input: array})."""
    if name == "pair":
        return {"sum": x["a"].astype(np.float64) + x["b"]}
    if name == "text":
        s = x["s"]
        return {"upper": np.array([v.upper() for v in s], dtype=object),
                "length": np.array([len(v) for v in s], dtype=np.int64)}
    v = x["x"]
    with np.errstate(over="ignore", invalid="ignore"):
        y = np.logical_not(v) if v.dtype == np.bool_ else \
            (v * v.dtype.type(2) + v.dtype.type(1)).astype(v.dtype)
        return {"y": y, "echo": v.copy(),
                "total": v.astype(np.float64).sum(axis=1)}


# ---- tensors in and out ----

def _flatten(data, out):
    for v in data:
        if isinstance(v, list):
            _flatten(v, out)
        else:
            out.append(v)
    return out


def _json_tensor(where, dt, shape, data):
    flat = _flatten(data, [])
    n = int(np.prod(shape, dtype=object)) if shape else 1
    if len(flat) != n:
        raise BadRequest(400, f"{where}: {len(flat)} elements for shape "
                         f"{shape}")
    if dt == "BYTES":
        if not all(isinstance(v, str) for v in flat):
            raise BadRequest(400, f"{where}: BYTES data must be strings")
        return np.array([v.encode() for v in flat], dtype=object)
    ok = {"BOOL": lambda v: isinstance(v, bool)}.get(
        dt, (lambda v: isinstance(v, int) and not isinstance(v, bool))
        if DTYPES[dt].kind in "iu" else
        (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)))
    if not all(ok(v) for v in flat):
        raise BadRequest(400, f"{where}: data holds a value that is not "
                         f"{dt}")
    if DTYPES[dt].kind in "iu":
        info = np.iinfo(DTYPES[dt])
        if not all(info.min <= v <= info.max for v in flat):
            raise BadRequest(400, f"{where}: data out of {dt}'s range")
    return np.array(flat, dtype=DTYPES[dt]).reshape(shape)


def _binary_tensor(where, dt, shape, raw):
    n = int(np.prod(shape, dtype=object)) if shape else 1
    if dt == "BYTES":
        elems, off = [], 0
        for _ in range(n):
            if len(raw) - off < 4:
                raise BadRequest(400, f"{where}: BYTES data ends early")
            (k,) = struct.unpack_from("<I", raw, off)
            if k > len(raw) - off - 4:
                raise BadRequest(400, f"{where}: BYTES element too long")
            elems.append(bytes(raw[off + 4:off + 4 + k]))
            off += 4 + k
        if off != len(raw):
            raise BadRequest(400, f"{where}: bytes after the BYTES data")
        return np.array(elems, dtype=object)
    if len(raw) != n * DTYPES[dt].itemsize:
        raise BadRequest(400, f"{where}: binary_data_size {len(raw)} for "
                         f"shape {shape} of {dt}")
    return np.frombuffer(raw, dtype=DTYPES[dt]).reshape(shape).copy()


def _encode_output(name, dt, a, binary, nested):
    """(JSON object, raw bytes or None) of one output."""
    obj = {"name": name, "shape": list(a.shape), "datatype": dt}
    if dt == "BYTES":
        if binary:
            raw = b"".join(struct.pack("<I", len(v)) + v
                           for v in a.reshape(-1))
            obj["parameters"] = {"binary_data_size": len(raw)}
            return obj, raw
        data = [v.decode() for v in a.reshape(-1)]
        obj["data"] = np.array(data).reshape(a.shape).tolist() \
            if nested else data
        return obj, None
    a = np.ascontiguousarray(a, dtype=DTYPES[dt])
    if binary:
        obj["parameters"] = {"binary_data_size": a.nbytes}
        return obj, a.tobytes()
    obj["data"] = a.tolist() if nested else a.reshape(-1).tolist()
    return obj, None


# ---- the protocol ----

def parse_request(model, body, header_len):
    """(inputs {name: array}, wanted [(name, binary)], parameters, id)."""
    problems = oip_schema.request_errors(body, header_len)
    if problems:
        raise BadRequest(400, "; ".join(problems))
    head, blob = oip_schema.split_body(body, header_len)
    req = json.loads(head)
    spec = MODELS[model]
    params = req.get("parameters", {})
    want_in = {n: (dt, shape) for n, dt, shape in spec["inputs"]}
    x, off, batch = {}, 0, None
    for inp in req["inputs"]:
        name, dt, shape = inp["name"], inp["datatype"], inp["shape"]
        where = f"input '{name}'"
        if name not in want_in:
            raise BadRequest(400, f"model {model} has no input '{name}'")
        if name in x:
            raise BadRequest(400, f"{where} is given twice")
        if dt != want_in[name][0]:
            raise BadRequest(400, f"{where} has datatype {dt}, the model "
                             f"takes {want_in[name][0]}")
        decl = want_in[name][1]
        if len(shape) != len(decl) or any(d != w for d, w in
                                          zip(shape[1:], decl[1:])):
            raise BadRequest(400, f"{where} has shape {shape}, the model "
                             f"takes {decl}")
        if not 1 <= shape[0] <= MAX_BATCH or batch not in (None, shape[0]):
            raise BadRequest(400, f"{where}: batch {shape[0]}, the model "
                             f"takes 1..{MAX_BATCH}, the same for every "
                             "input")
        batch = shape[0]
        size = (inp.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            x[name] = _binary_tensor(where, dt, shape, blob[off:off + size])
            off += size
        else:
            x[name] = _json_tensor(where, dt, shape, inp["data"])
    missing = [n for n in want_in if n not in x]
    if missing:
        raise BadRequest(400, f"no input '{missing[0]}' for model {model}")
    default = bool(params.get("binary_data_output", False))
    outs = [n for n, _, _ in spec["outputs"]]
    wanted = [(n, default) for n in outs]
    if "outputs" in req:
        wanted = []
        for o in req["outputs"]:
            if o["name"] not in outs:
                raise BadRequest(400, f"model {model} has no output "
                                 f"'{o['name']}'")
            wanted.append((o["name"], bool((o.get("parameters") or {}).get(
                "binary_data", default))))
    return x, wanted, params, req.get("id")


def encode_response(model, y, wanted, req_id, nested):
    """(headers, body) of a 200 answer."""
    types = {n: dt for n, dt, _ in MODELS.get(model, {"outputs": []})
             ["outputs"]}
    doc = {"model_name": model, "model_version": "1", "outputs": []}
    if req_id is not None:
        doc["id"] = req_id
    raws = []
    for name, binary in wanted:
        obj, raw = _encode_output(name, types.get(name, "FP32"), y[name],
                                  binary, nested)
        doc["outputs"].append(obj)
        if raw is not None:
            raws.append(raw)
    try:
        head = json.dumps(doc, allow_nan=False).encode()
    except ValueError:
        raise BadRequest(400, "an output holds NaN or infinity, which JSON "
                         "cannot carry; ask for binary_data") from None
    if not raws:
        return {"Content-Type": "application/json"}, head
    return ({"Content-Type": "application/octet-stream",
             HDR: str(len(head))}, head + b"".join(raws))


def bad_answer(mode, req_id):
    """(status, headers, body) of a bad_<mode> model's infer answer (the
    good one for modes that break the connection instead)."""
    y = np.arange(4, dtype=np.float32).reshape(1, 4)
    good_h, good = encode_response("affine_fp32", {"y": y},
                                   [("y", True)], req_id, False)
    head = json.loads(good[:int(good_h[HDR])])
    out = head["outputs"][0]
    raw = y.tobytes()

    def with_head(doc, tail=raw):
        h = json.dumps(doc).encode()
        return 200, {"Content-Type": "application/octet-stream",
                     HDR: str(len(h))}, h + tail
    if mode == "unavailable":
        return 503, {}, json.dumps({"error": "model bad_unavailable is "
                                    "loading"}).encode()
    if mode == "html_error":
        return 500, {"Content-Type": "text/html"}, \
            b"<html><body>\n<h1>Internal Server Error</h1>\n</body></html>"
    if mode == "bogus_json":
        return 200, {"Content-Type": "application/json"}, b'{"outputs": ['
    if mode == "not_object":
        return 200, {"Content-Type": "application/json"}, b"[1, 2, 3]"
    if mode == "deep_json":
        return 200, {"Content-Type": "application/json"}, b"[" * 100000
    if mode == "header_long":
        return 200, {HDR: str(len(good) + 100)}, good
    if mode == "header_short":
        return 200, {HDR: "10"}, good
    if mode == "header_bogus":
        return 200, {HDR: "-5"}, good
    if mode in ("size_mismatch", "size_overflow", "size_negative"):
        out["parameters"]["binary_data_size"] = {
            "size_mismatch": 12, "size_overflow": 64,
            "size_negative": -16}[mode]
        return with_head(head, raw[:12] if mode == "size_mismatch" else raw)
    if mode == "trailing":
        return with_head(head, raw + b"\0\0\0\0")
    if mode == "huge_shape":
        out["shape"] = [1 << 62, 1 << 62]
        return with_head(head)
    if mode == "negative_shape":
        out["shape"] = [-1, 4]
        return with_head(head)
    if mode == "bad_datatype":
        out["datatype"] = "FP128"
        return with_head(head)
    if mode == "missing_output":
        head["outputs"] = []
        return with_head(head, b"")
    if mode in ("data_count", "data_type", "data_range"):
        del out["parameters"]
        out["data"] = {"data_count": [1.0, 2.0, 3.0],
                       "data_type": ["1", "2", "3", "4"],
                       "data_range": [300, 1, 2, 3]}[mode]
        if mode == "data_range":
            out["datatype"] = "UINT8"
        h = json.dumps(head).encode()
        return 200, {"Content-Type": "application/json"}, h
    if mode == "wrong_id":
        head["id"] = "not-" + str(req_id)
        return with_head(head)
    if mode == "slow":
        time.sleep(3)
    return 200, good_h, good


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive
    server_version = "oip-test-double/1"

    def log_message(self, fmt, *args):
        pass

    def setup(self):
        super().setup()
        # headers and body go out in two writes: without this, Nagle's
        # algorithm and the client's delayed ACK hold the body 40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY,
                                   1)
        st = self.server.stats
        with self.server.lock:
            st["connections"] += 1
            self.server.open_socks.add(self.connection)

    def finish(self):
        with self.server.lock:
            self.server.open_socks.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    # -- answers --

    def _send(self, status, headers, body, endpoint=None):
        if endpoint is not None:
            problems = oip_schema.response_errors(endpoint, status, body,
                                                  headers.get(HDR))
            if problems:
                with self.server.lock:
                    self.server.stats["schema_errors"].extend(problems)
        self.send_response(status)
        headers.setdefault("Content-Type", "application/json")
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status, doc, endpoint=None):
        self._send(status, {}, json.dumps(doc).encode(), endpoint)

    def _error(self, status, msg, endpoint=None):
        self._json(status, {"error": msg}, endpoint)

    def _route(self):
        """(endpoint, model) of the path, or raise BadRequest."""
        path = urllib.parse.urlsplit(self.path).path.rstrip("/")
        parts = [urllib.parse.unquote(p) for p in path.split("/")[1:]]
        if parts == ["v2"]:
            return "server_metadata", None
        if parts == ["v2", "health", "live"]:
            return "live", None
        if parts == ["v2", "health", "ready"]:
            return "ready", None
        if len(parts) >= 3 and parts[:2] == ["v2", "models"]:
            name, rest = parts[2], parts[3:]
            if rest[:1] == ["versions"]:
                if len(rest) < 2 or rest[1] != "1":
                    raise BadRequest(404, f"model {name} has no version "
                                     f"{rest[1] if len(rest) > 1 else ''}")
                rest = rest[2:]
            if name not in MODELS and not (name.startswith("bad_") and
                                           name[4:] in BAD_MODES):
                raise BadRequest(404, f"no model named '{name}'")
            if rest == []:
                return "model_metadata", name
            if rest == ["ready"]:
                return "model_ready", name
            if rest == ["infer"]:
                return "infer", name
        raise BadRequest(404, f"no endpoint {path}")

    def do_GET(self):
        with self.server.lock:
            self.server.stats["requests"] += 1
        try:
            endpoint, model = self._route()
        except BadRequest as e:
            return self._error(e.status, str(e))
        if endpoint == "infer":
            return self._error(405, "infer takes POST")
        if endpoint == "server_metadata":
            return self._json(200, {"name": "oip-test-double",
                                    "version": "1",
                                    "extensions": ["binary_tensor_data"]},
                              endpoint)
        if endpoint in ("live", "ready"):
            return self._json(200, {endpoint: True}, endpoint)
        if endpoint == "model_ready":
            return self._json(200, {"name": model, "ready": True}, endpoint)
        spec = MODELS.get(model, {"inputs": [], "outputs": []})
        self._json(200, {
            "name": model, "versions": ["1"], "platform": "numpy_test",
            "inputs": [{"name": n, "datatype": d, "shape": s}
                       for n, d, s in spec["inputs"]],
            "outputs": [{"name": n, "datatype": d, "shape": s}
                        for n, d, s in spec["outputs"]]}, endpoint)

    def _read_body(self):
        n = self.headers.get("Content-Length")
        if n is None or not n.strip().isdigit():
            raise BadRequest(411, "Content-Length is required")
        n = int(n)
        if n > 1 << 30:
            raise BadRequest(400, f"a {n}-byte body is too large")
        return self.rfile.read(n)

    def do_POST(self):
        st, lock = self.server.stats, self.server.lock
        with lock:
            st["requests"] += 1
            st["in_flight"] += 1
            st["max_in_flight"] = max(st["max_in_flight"], st["in_flight"])
        try:
            self._post()
        finally:
            with lock:
                st["in_flight"] -= 1

    def _post(self):
        try:
            body = self._read_body()
        except BadRequest as e:
            self.close_connection = True   # the body is still unread
            return self._error(e.status, str(e))
        try:
            endpoint, model = self._route()
        except BadRequest as e:
            return self._error(e.status, str(e))
        if endpoint != "infer":
            return self._error(405, f"{endpoint} takes GET")
        if model.startswith("bad_"):
            return self._misbehave(model[4:], body)
        try:
            x, wanted, params, req_id = parse_request(
                model, body, self.headers.get(HDR))
        except BadRequest as e:
            return self._error(e.status, str(e), "infer")
        delay = params.get("test_delay_ms", 0)
        if isinstance(delay, (int, float)) and 0 < delay <= 10000:
            time.sleep(delay / 1000)
        y = run_model(model, x)
        try:
            headers, out = encode_response(model, y, wanted, req_id,
                                           bool(params.get("test_nested")))
        except BadRequest as e:
            return self._error(e.status, str(e), "infer")
        self._send(200, headers, out, "infer")

    def _misbehave(self, mode, body):
        req_id = None
        try:
            hl = self.headers.get(HDR)
            head = body[:int(hl)] if hl and hl.isdigit() else body
            req_id = json.loads(head).get("id")
        except (ValueError, AttributeError):
            pass
        with self.server.lock:
            self.server.stats["bad_requests"][mode] = \
                self.server.stats["bad_requests"].get(mode, 0) + 1
        self.close_connection = mode in ("truncated", "close_early",
                                         "close_mid")
        if mode == "close_early":
            return
        if mode == "close_mid":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: appl")
            return
        status, headers, out = bad_answer(
            "good" if mode == "truncated" else mode, req_id)
        if mode == "truncated":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header(HDR, headers[HDR])
            self.send_header("Content-Length", str(2 * len(out)))
            self.end_headers()
            self.wfile.write(out)
            return
        self._send(status, headers, out)


class OipServer:
    """The test double on 127.0.0.1:port (0: a free one), in a thread."""

    def __init__(self, port=0):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port),
                                                     Handler)
        self.httpd.daemon_threads = True
        self.httpd.lock = threading.Lock()
        self.httpd.open_socks = set()
        self.httpd.stats = {"connections": 0, "requests": 0, "in_flight": 0,
                            "max_in_flight": 0, "bad_requests": {},
                            "schema_errors": []}
        self.stats = self.httpd.stats
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()

    def reset_stats(self):
        """Zero the counts, once requests still running (a slow answer
        whose client gave up) are done."""
        deadline = time.monotonic() + 10
        while self.stats["in_flight"] and time.monotonic() < deadline:
            time.sleep(0.05)
        with self.httpd.lock:
            for k in ("connections", "requests", "max_in_flight"):
                self.stats[k] = 0
            self.stats["bad_requests"].clear()

    def drop_connections(self):
        """Shut down every open connection, as a server that closes idle
        keep-alive connections does."""
        with self.httpd.lock:
            socks = list(self.httpd.open_socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return len(socks)

    def close(self):
        self.httpd.shutdown()
        self.drop_connections()
        self.httpd.server_close()
        self.thread.join(timeout=10)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=8000)
    args = ap.parse_args()
    srv = OipServer(args.port)
    print(f"oip test double on {srv.url}; models: "
          f"{', '.join(sorted(MODELS))}, bad_<{'|'.join(BAD_MODES)}>",
          flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.close()


if __name__ == "__main__":
    main()
