"""lamina_client: a client of the Open Inference Protocol (KServe v2,
Triton's HTTP/REST API) for any server that speaks it: lamina's laminad,
Triton, KServe.  Standard library and numpy only.

    import numpy as np
    from lamina_client import Client
    with Client("http://127.0.0.1:8000") as c:
        y = c.infer("digits", {"image": np.zeros((1, 1, 8, 8), "f4")})
        print({name: a.shape for name, a in y.items()})

Tensors travel as Triton's binary tensor data extension by default (a
JSON header, then the raw little-endian tensors; the
Inference-Header-Content-Length header gives the JSON's length) and as
JSON arrays with binary=False.  Datatypes map to numpy both ways: BOOL,
UINT8..UINT64, INT8..INT64, FP16, FP32, FP64, and BYTES (numpy object,
bytes or str arrays; 4-byte-length-prefixed elements in binary).

Every answer is untrusted: a wrong length, a bad shape or datatype,
data that does not fit the shape raise ProtocolError; an HTTP error
status raises InferenceServerError with the server's {"error"} text.

Connections are HTTP/1.1 keep-alive (http.client), kept in a pool of
`concurrency` connections; a request that finds its idle connection
dropped by the server is sent again once on a new one.  infer_async
returns a concurrent.futures.Future; up to `concurrency` requests are in
flight at once, each on its own connection.
"""
import concurrent.futures
import http.client
import json
import queue
import socket
import struct
import threading
import urllib.parse

import numpy as np

__all__ = ["Client", "InferenceServerError", "ProtocolError",
           "datatype_of", "dtype_of"]

# OIP datatype <-> numpy dtype (little-endian on the wire)
_DTYPES = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("u1"), "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"), "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("i1"), "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"), "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}
_KIND_SIZE = {(d.kind, d.itemsize): name for name, d in _DTYPES.items()
              if name != "BYTES"}

# parameters of the binary tensor data extension
_HDR_LEN = "Inference-Header-Content-Length"


class InferenceServerError(Exception):
    """A request that failed.  status is the HTTP status the server
    answered with (None when no usable answer came: connection refused,
    timed out, dropped); message is the server's {"error"} text, or what
    went wrong."""

    def __init__(self, status, message):
        super().__init__(status, message)
        self.status = status
        self.message = message

    def __str__(self):
        if self.status is None:
            return self.message
        return f"HTTP {self.status}: {self.message}"


class ProtocolError(InferenceServerError):
    """The server answered something the protocol does not allow (a body
    that is not JSON, lengths or shapes that do not add up, ...)."""


def datatype_of(dtype):
    """The OIP datatype name of a numpy dtype ("FP32" for float32)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "OSU":
        return "BYTES"
    name = _KIND_SIZE.get((dtype.kind, dtype.itemsize))
    if name is None:
        raise TypeError(f"numpy dtype {dtype} has no Open Inference "
                        "Protocol datatype")
    return name


def dtype_of(datatype):
    """The numpy dtype of an OIP datatype name (float32 for "FP32")."""
    try:
        return _DTYPES[datatype]
    except (KeyError, TypeError):
        raise TypeError(f"datatype {datatype!r} is not one this client "
                        "reads") from None


# ---- request encoding ----

def _bytes_elements(a):
    """The elements of a BYTES tensor as bytes objects, row-major."""
    out = []
    for v in a.reshape(-1):
        if isinstance(v, str):
            v = v.encode("utf-8")
        elif isinstance(v, (np.bytes_, bytes, bytearray)):
            v = bytes(v)
        else:
            raise TypeError(f"BYTES element {v!r} is not bytes or str")
        out.append(v)
    return out


def _encode_input(name, value, binary):
    """(JSON object, raw bytes or None) of one input tensor."""
    a = np.asarray(value)
    datatype = datatype_of(a.dtype)
    obj = {"name": name, "shape": [int(d) for d in a.shape],
           "datatype": datatype}
    if datatype == "BYTES":
        elems = _bytes_elements(a)
        if binary:
            raw = b"".join(struct.pack("<I", len(e)) + e for e in elems)
            obj["parameters"] = {"binary_data_size": len(raw)}
            return obj, raw
        try:
            obj["data"] = [e.decode("utf-8") for e in elems]
        except UnicodeDecodeError:
            raise ValueError(f"input '{name}': BYTES that are not UTF-8 "
                             "cannot be sent as JSON; use binary=True") \
                from None
        return obj, None
    a = np.ascontiguousarray(a, dtype=_DTYPES[datatype])
    if binary:
        raw = a.tobytes()
        obj["parameters"] = {"binary_data_size": len(raw)}
        return obj, raw
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise ValueError(f"input '{name}' holds NaN or infinity, which "
                         "JSON cannot carry; use binary=True")
    obj["data"] = a.reshape(-1).tolist()
    return obj, None


def _encode_request(inputs, outputs, binary, parameters, request_id):
    """(body bytes, headers) of an inference request."""
    if not isinstance(inputs, dict) or not inputs:
        raise TypeError("inputs must be a non-empty dict {name: array}")
    req = {}
    if request_id is not None:
        req["id"] = str(request_id)
    params = dict(parameters or {})
    if binary and outputs is None:
        params.setdefault("binary_data_output", True)
    if params:
        req["parameters"] = params
    req["inputs"], raws = [], []
    for name, value in inputs.items():
        obj, raw = _encode_input(str(name), value, binary)
        req["inputs"].append(obj)
        if raw is not None:
            raws.append(raw)
    if outputs is not None:
        req["outputs"] = [{"name": str(o), "parameters": {"binary_data":
                                                           bool(binary)}}
                          for o in outputs]
    head = json.dumps(req, allow_nan=False,
                      separators=(",", ":")).encode("utf-8")
    if not raws:
        return head, {"Content-Type": "application/json"}
    return b"".join([head] + raws), {
        "Content-Type": "application/octet-stream",
        _HDR_LEN: str(len(head))}


# ---- response decoding (everything in it is untrusted) ----

def _flatten(data, out, depth=0):
    for v in data:
        if isinstance(v, list):
            if depth > 64:
                raise ValueError("data nested deeper than 64 levels")
            _flatten(v, out, depth + 1)
        else:
            out.append(v)
    return out


def _json_elements(name, datatype, dtype, flat):
    """A numpy array of dtype from the JSON elements, each checked."""
    if datatype == "BYTES":
        if not all(isinstance(v, str) for v in flat):
            raise ValueError("BYTES data holds a non-string")
        return np.array([v.encode("utf-8") for v in flat], dtype=object)
    if datatype == "BOOL":
        if not all(isinstance(v, bool) or v in (0, 1) and
                   isinstance(v, int) for v in flat):
            raise ValueError("BOOL data holds a value other than "
                             "true/false")
        return np.array(flat, dtype=dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        for v in flat:
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"{datatype} data holds {v!r}, not an "
                                 "integer")
            if not info.min <= v <= info.max:
                raise ValueError(f"{datatype} data holds {v}, out of "
                                 "range")
        return np.array(flat, dtype=dtype)
    for v in flat:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"{datatype} data holds {v!r}, not a number")
    with np.errstate(over="ignore"):
        return np.array(flat, dtype=np.float64).astype(dtype)


def _shape_of(out):
    shape = out.get("shape")
    if not isinstance(shape, list) or len(shape) > 64 or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0
            for d in shape):
        raise ValueError(f"shape {shape!r} is not a list of dims >= 0")
    n = 1
    for d in shape:
        n *= d
    return tuple(shape), n


def _decode_bytes(raw, n):
    """n length-prefixed BYTES elements filling raw exactly."""
    elems, off = [], 0
    for _ in range(n):
        if len(raw) - off < 4:
            raise ValueError("BYTES data ends inside a length")
        (k,) = struct.unpack_from("<I", raw, off)
        off += 4
        if k > len(raw) - off:
            raise ValueError("a BYTES element runs past its data")
        elems.append(bytes(raw[off:off + k]))
        off += k
    if off != len(raw):
        raise ValueError(f"{len(raw) - off} bytes after the BYTES elements")
    return np.array(elems, dtype=object) if elems else np.empty(0, object)


def _decode_output(out, blob, off):
    """(name, array, new offset into blob) of one response output."""
    if not isinstance(out, dict):
        raise ValueError("an output is not an object")
    name = out.get("name")
    if not isinstance(name, str):
        raise ValueError("an output has no name")
    try:
        datatype = out.get("datatype")
        dtype = dtype_of(datatype)
        shape, n = _shape_of(out)
        params = out.get("parameters", {})
        if not isinstance(params, dict):
            raise ValueError("parameters is not an object")
        size = params.get("binary_data_size")
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or \
                    size < 0 or size > len(blob) - off:
                raise ValueError(f"binary_data_size {size!r} does not fit "
                                 f"the {len(blob) - off} bytes left")
            raw = blob[off:off + size]
            if datatype == "BYTES":
                a = _decode_bytes(raw, n)
            else:
                if size != n * dtype.itemsize:
                    raise ValueError(f"binary_data_size {size} for shape "
                                     f"{list(shape)} of {datatype}")
                a = np.frombuffer(raw, dtype=dtype).copy()
            return name, a.reshape(shape), off + size
        data = out.get("data")
        if not isinstance(data, list):
            raise ValueError("no data and no binary_data_size")
        flat = _flatten(data, [])
        if len(flat) != n:
            raise ValueError(f"{len(flat)} elements for shape "
                             f"{list(shape)}")
        a = _json_elements(name, datatype, dtype, flat)
        return name, a.reshape(shape), off
    except (ValueError, TypeError, OverflowError) as e:
        raise ValueError(f"output '{name}': {e}") from None


def _decode_response(body, header_len, request_id, wanted):
    """{name: array} of a 200 answer to an inference request."""
    if header_len is not None:
        if not header_len.strip().isdigit() or \
                int(header_len) > len(body):
            raise ValueError(f"{_HDR_LEN} {header_len!r} does not fit the "
                             f"{len(body)}-byte body")
        n = int(header_len)
        head, blob = body[:n], memoryview(body)[n:]
    else:
        head, blob = body, memoryview(b"")
    if not head:
        raise ValueError("the answer is empty")
    try:
        doc = json.loads(head)
    except (ValueError, RecursionError) as e:
        raise ValueError(f"the answer is not JSON ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("outputs"),
                                                   list):
        raise ValueError("the answer has no 'outputs' list")
    if request_id is not None and "id" in doc and \
            doc["id"] != str(request_id):
        raise ValueError(f"the answer is for request {doc['id']!r}, not "
                         f"{str(request_id)!r}")
    result, off = {}, 0
    for out in doc["outputs"]:
        name, a, off = _decode_output(out, blob, off)
        result[name] = a
    if off != len(blob):
        raise ValueError(f"{len(blob) - off} bytes of binary data belong "
                         "to no output")
    for w in wanted or ():
        if w not in result:
            raise ValueError(f"the answer has no output '{w}'")
    return result


def _error_text(body):
    """The server's {"error"} text, else the body's first line."""
    try:
        doc = json.loads(body)
        if isinstance(doc, dict) and isinstance(doc.get("error"), str):
            return doc["error"]
    except (ValueError, RecursionError):
        pass
    text = " ".join(body[:200].decode("utf-8", "replace").split())
    return text or "(no error text)"


# ---- connections ----

# Failures that mean a kept-alive connection was closed by the server
# before it answered: the request can be sent again on a new one.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError,
          BrokenPipeError, ConnectionAbortedError)


class _Conn:
    """One keep-alive HTTP/1.1 connection and whether it has served a
    request (only a used one can have been dropped while idle)."""

    def __init__(self, client):
        cls = http.client.HTTPSConnection if client._https \
            else http.client.HTTPConnection
        self.http = cls(client._host, client._port, timeout=client._timeout)
        self.used = False

    def close(self):
        self.http.close()


class Client:
    """A client of one OIP server at url ("http://host:port[/prefix]").

    timeout: seconds for connecting and for each wait on the socket.
    concurrency: connections kept, and requests in flight at once through
    infer_async.  Close with close() or use as a context manager."""

    def __init__(self, url="http://127.0.0.1:8000", timeout=60.0,
                 concurrency=4):
        if "://" not in url:
            url = "http://" + url
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"{url}: not an http:// or https:// URL")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.url = url.rstrip("/")
        self._https = u.scheme == "https"
        self._host = u.hostname
        self._port = u.port or (443 if self._https else 80)
        self._prefix = u.path.rstrip("/")
        self._timeout = timeout
        self._idle = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(concurrency)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=concurrency, thread_name_prefix="lamina_client")
        self._closed = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Wait for requests in flight, then close every connection."""
        if self._closed:
            return
        self._closed = True
        self._pool.shutdown(wait=True)
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                break

    # -- one HTTP exchange --

    def _exchange(self, conn, method, path, body, headers):
        conn.http.request(method, path, body=body, headers=headers)
        r = conn.http.getresponse()
        data = r.read()
        return r.status, r.getheader(_HDR_LEN), data, r.will_close

    def _request(self, method, path, body=None, headers=None):
        """(status, Inference-Header-Content-Length or None, body)."""
        if self._closed:
            raise InferenceServerError(None, f"{self.url}: client closed")
        path = self._prefix + path
        where = f"{self.url}{path}"
        self._slots.acquire()
        try:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = _Conn(self)
            for attempt in (0, 1):
                try:
                    status, hlen, data, will_close = self._exchange(
                        conn, method, path, body, headers or {})
                    break
                except _STALE as e:
                    conn.close()
                    if attempt or not conn.used:
                        raise InferenceServerError(
                            None, f"{where}: the server closed the "
                            "connection without answering "
                            f"({type(e).__name__})") from None
                    conn = _Conn(self)   # dropped while idle: once more
                except ConnectionRefusedError:
                    conn.close()
                    raise InferenceServerError(
                        None, f"cannot connect to {self.url}: connection "
                        "refused") from None
                except (socket.timeout, TimeoutError):
                    conn.close()
                    raise InferenceServerError(
                        None, f"{where}: no answer within "
                        f"{self._timeout:g} s") from None
                except http.client.IncompleteRead as e:
                    conn.close()
                    raise ProtocolError(
                        None, f"{where}: the answer was cut short after "
                        f"{len(e.partial)} bytes") from None
                except http.client.HTTPException as e:
                    conn.close()
                    raise ProtocolError(
                        None, f"{where}: malformed HTTP answer "
                        f"({type(e).__name__}: {e})") from None
                except OSError as e:
                    conn.close()
                    raise InferenceServerError(
                        None, f"cannot reach {self.url}: "
                        f"{e.strerror or e}") from None
            conn.used = True
            if will_close:
                conn.close()
            else:
                self._idle.put(conn)
            return status, hlen, data
        finally:
            self._slots.release()

    def _get_json(self, path):
        status, _, data = self._request("GET", path)
        if status != 200:
            raise InferenceServerError(status, _error_text(data))
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            doc = None
        if not isinstance(doc, dict):
            raise ProtocolError(status, f"{self.url}{path}: the answer is "
                                "not a JSON object")
        return doc

    def _probe(self, path, key):
        """True for a 200 whose body (if JSON) does not say key: false."""
        status, _, data = self._request("GET", path)
        if status != 200:
            return False
        try:
            doc = json.loads(data) if data.strip() else {}
        except (ValueError, RecursionError):
            return True      # Triton answers health probes with no body
        return not (isinstance(doc, dict) and doc.get(key) is False)

    @staticmethod
    def _model_path(name, version):
        p = "/v2/models/" + urllib.parse.quote(str(name), safe="")
        if version is not None:
            p += "/versions/" + urllib.parse.quote(str(version), safe="")
        return p

    # -- health and metadata --

    def is_live(self):
        """GET /v2/health/live: whether the server says it is live."""
        return self._probe("/v2/health/live", "live")

    def is_ready(self):
        """GET /v2/health/ready: whether the server says it is ready."""
        return self._probe("/v2/health/ready", "ready")

    def is_model_ready(self, name, version=None):
        """GET /v2/models/NAME/ready (False for unknown models too)."""
        return self._probe(self._model_path(name, version) + "/ready",
                           "ready")

    def server_metadata(self):
        """GET /v2: {"name", "version", "extensions"}."""
        return self._get_json("/v2")

    def model_metadata(self, name, version=None):
        """GET /v2/models/NAME: {"name", "platform", "inputs", ...}."""
        return self._get_json(self._model_path(name, version))

    # -- inference --

    def infer(self, name, inputs, outputs=None, binary=True,
              parameters=None, request_id=None, version=None):
        """Run model name on inputs ({input name: array}) and return
        {output name: numpy array}, in the answer's order.

        outputs: names of the outputs wanted (default: all).  binary:
        the binary tensor data extension (default) or JSON arrays.
        parameters: request parameters, passed through as given (e.g.
        {"timeout": 500000}, microseconds, for servers that take it).
        request_id: sent as "id"; an answer for another id is refused.
        Raises InferenceServerError (HTTP errors, with the server's
        text), ProtocolError (malformed answers), TypeError/ValueError
        (inputs that cannot be sent)."""
        body, headers = _encode_request(inputs, outputs, binary,
                                        parameters, request_id)
        path = self._model_path(name, version) + "/infer"
        status, hlen, data = self._request("POST", path, body, headers)
        if status != 200:
            raise InferenceServerError(status, _error_text(data))
        try:
            return _decode_response(data, hlen, request_id, outputs)
        except ValueError as e:
            raise ProtocolError(status, f"{self.url}{path}: {e}") from None

    def infer_async(self, name, inputs, **kwargs):
        """infer() on one of the pool's threads; returns a Future whose
        result(timeout) is infer()'s answer (or raises its error)."""
        if self._closed:
            raise InferenceServerError(None, f"{self.url}: client closed")
        return self._pool.submit(self.infer, name, inputs, **kwargs)

    def infer_many(self, name, requests, **kwargs):
        """Run every {input: array} of requests, up to `concurrency` at
        once; returns the answers in the order of requests."""
        futures = [self.infer_async(name, r, **kwargs) for r in requests]
        return [f.result() for f in futures]
