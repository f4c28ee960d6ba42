#!/usr/bin/python3
"""The Open Inference Protocol clients against a test double of a server
(oip_server.py, in this process, on a free port).

    test_client.py python   lamina_client (python/): every datatype round
                            trip, bitwise in binary and exact in JSON;
                            BYTES; health and metadata; errors with the
                            server's text and status; every misbehaving
                            answer raises InferenceServerError; keep-alive
                            reuse and one reconnect; 200 requests in
                            flight through infer_async
    test_client.py cli      `lamina infer --url`: the same round trips
                            through .npy files, names from metadata,
                            --parameter, --repeat on one connection, and
                            every misbehaving answer ends in a non-zero
                            exit and one line, never a crash
    test_client.py schema   the spec validator (oip_schema.py): the double's
                            answers to every endpoint pass, broken ones
                            fail
"""
import http.client
import os
import subprocess
import sys
import time

import numpy as np

from harness import LAMINA, SRC, check, free_port, fresh_dir, \
    one_line_error, summary
import oip_schema
from oip_server import BAD_MODES, DTYPES, OipServer, run_model

sys.path.insert(0, os.path.join(SRC, "python"))
import lamina_client  # noqa: E402
from lamina_client import Client, InferenceServerError, ProtocolError  # noqa

# What each misbehaving answer must be reported as (both clients).
BAD_WORDS = {
    "unavailable": "503: model bad_unavailable is loading",
    "html_error": "500: <html><body> <h1>Internal Server Error",
    "bogus_json": "not JSON", "not_object": "outputs",
    "deep_json": "not JSON", "truncated": "cut short",
    "close_early": "closed the connection", "close_mid": "empty",
    "header_long": "Inference-Header-Content-Length",
    "header_short": "not JSON",
    "header_bogus": "Inference-Header-Content-Length",
    "size_mismatch": "binary_data_size", "size_overflow":
    "binary_data_size", "size_negative": "binary_data_size",
    "trailing": "bytes of binary data belong to no output",
    "huge_shape": "output 'y'", "negative_shape": "shape",
    "bad_datatype": "FP128", "missing_output": "no output 'y'",
    "data_count": "3 ", "data_type": "output 'y'",
    "data_range": "output 'y'", "wrong_id": "request",
}


def sample(dt, binary, batch=2, seed=0, jansson=False):
    """A [batch, 4] tensor of type dt with its edge values: extremes of
    integers; for floats -0, subnormals, large values and, in binary
    only, infinities and NaN (JSON cannot carry them).  jansson: in JSON,
    UINT64 values whose y = 2x + 1 stays below 2^63 (lamina infer reads
    JSON with jansson, whose integers are int64)."""
    rng = np.random.default_rng(seed)
    d = DTYPES[dt]
    n = batch * 4
    if dt == "BOOL":
        v = rng.integers(0, 2, n).astype(bool)
        v[:2] = [True, False]
    elif d.kind in "iu":
        info = np.iinfo(d)
        hi = (1 << 62) - 1 if jansson and not binary and dt == "UINT64" \
            else info.max
        v = rng.integers(info.min, hi, n, dtype=d, endpoint=True)
        v[:3] = [info.min, hi, 0]
    else:
        info = np.finfo(d)
        v = (rng.standard_normal(n) * 100).astype(d)
        edge = [-0.0, info.tiny / 4, info.max / 4, -info.max / 4, 1 / 3]
        if binary:
            edge += [np.inf, -np.inf, np.nan]
        v[:len(edge)] = np.array(edge, dtype=d)
    return v.reshape(batch, 4)


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and \
        a.tobytes() == b.tobytes()


def check_answer(tag, x, got, outputs=("y", "echo", "total")):
    ref = run_model("affine", {"x": x})
    check(list(got) == list(outputs),
          f"{tag}: outputs {list(got)}, asked {list(outputs)}")
    for name in outputs:
        if name in got:
            check(same_bits(got[name], ref[name]),
                  f"{tag}: {name} {got[name].dtype} {got[name].shape} "
                  f"differs from {ref[name].dtype} {ref[name].shape}: "
                  f"{got[name].reshape(-1)[:6]} vs "
                  f"{ref[name].reshape(-1)[:6]}")


# ---- the Python client ----

def python_round_trips(srv):
    with Client(srv.url) as c:
        for dt in DTYPES:
            for binary in (True, False):
                x = sample(dt, binary)
                tag = f"python {dt} {'binary' if binary else 'JSON'}"
                check_answer(tag, x, c.infer("affine_" + dt.lower(),
                                             {"x": x}, binary=binary))
        x = sample("FP32", False, batch=3)
        got = c.infer("affine_fp32", {"x": x}, binary=False,
                      parameters={"test_nested": True, "timeout": 500000})
        check_answer("python nested JSON data", x, got)
        for binary in (True, False):
            got = c.infer("affine_int16", {"x": sample("INT16", binary)},
                          outputs=["total", "y"], binary=binary,
                          request_id="r-7")
            check_answer(f"python outputs asked for (binary={binary})",
                         sample("INT16", binary), got, ("total", "y"))
        a = np.arange(8, dtype=np.float32).reshape(2, 4) / 7
        b = np.arange(8, dtype=np.int64).reshape(2, 4) * -3
        got = c.infer("pair", {"a": a, "b": b})
        check(same_bits(got["sum"], a.astype(np.float64) + b),
              "python pair: sum of two inputs of two types")
        for binary in (True, False):
            s = np.array([b"abc", "d\u00e9f".encode(), b""], dtype=object)
            got = c.infer("text", {"s": s}, binary=binary)
            check(list(got["upper"]) == [b"ABC", "D\u00e9F".encode(), b""]
                  and list(got["length"]) == [3, 4, 0],
                  f"python BYTES (binary={binary}): {got}")
        check(lamina_client.datatype_of(np.float16) == "FP16" and
              lamina_client.dtype_of("UINT64") == np.dtype("<u8"),
              "datatype_of and dtype_of")


def python_health(srv):
    with Client(srv.url) as c:
        check(c.is_live() and c.is_ready(), "python: live and ready")
        check(c.is_model_ready("pair") and not c.is_model_ready("nope"),
              "python: pair ready, nope not")
        md = c.server_metadata()
        check("binary_tensor_data" in md.get("extensions", []),
              f"python server_metadata: {md}")
        md = c.model_metadata("pair")
        check([i["name"] for i in md["inputs"]] == ["a", "b"] and
              md["outputs"][0]["datatype"] == "FP64",
              f"python model_metadata: {md}")
        check(c.model_metadata("pair", version="1")["name"] == "pair" and
              c.is_model_ready("pair", version="1") and
              not c.is_model_ready("pair", version="2"),
              "python: versions/1 of pair, no versions/2")
        x = np.ones((1, 4), np.float32)
        check_answer("python infer of versions/1", x,
                     c.infer("affine_fp32", {"x": x}, version="1"))
        expect_error("python infer of versions/2",
                     lambda: c.infer("affine_fp32", {"x": x}, version="2"),
                     404, "no version 2")
        try:
            c.model_metadata("nope")
            check(False, "python model_metadata of an unknown model")
        except InferenceServerError as e:
            check(e.status == 404 and e.message == "no model named 'nope'",
                  f"python model_metadata nope: {e.status} {e.message}")


def expect_error(tag, fn, status, words, cls=InferenceServerError):
    try:
        fn()
        check(False, f"{tag}: no error raised")
    except cls as e:
        check((status == "any" or e.status == status) and words in str(e),
              f"{tag}: {type(e).__name__}({e.status}, {e.message!r}), "
              f"expected {status} and {words!r}")
    except Exception as e:  # noqa: BLE001  (the point of the test)
        check(False, f"{tag}: {type(e).__name__}: {e} (not "
              f"{cls.__name__})")


def python_errors(srv):
    x = sample("FP32", True)
    with Client(srv.url) as c:
        expect_error("python wrong datatype",
                     lambda: c.infer("affine_fp32",
                                     {"x": np.zeros((2, 4), np.int8)}),
                     400, "input 'x' has datatype INT8, the model takes "
                     "FP32")
        expect_error("python batch too large",
                     lambda: c.infer("affine_fp32",
                                     {"x": np.zeros((9, 4), np.float32)}),
                     400, "batch 9")
        expect_error("python unknown model",
                     lambda: c.infer("nope", {"x": x}), 404,
                     "no model named 'nope'")
        expect_error("python unknown output",
                     lambda: c.infer("affine_fp32", {"x": x},
                                     outputs=["z"]), 400, "no output 'z'")
        for mode in BAD_MODES:
            if mode == "slow":
                continue
            # an error status or a connection closed unanswered is not
            # a malformed answer; every other mode is
            cls = InferenceServerError if mode in (
                "unavailable", "html_error", "close_early") else ProtocolError
            expect_error(f"python bad_{mode}",
                         lambda: c.infer("bad_" + mode, {"x": x},
                                         outputs=["y"], request_id=1),
                         "any", BAD_WORDS[mode], cls)
        try:
            c.infer("affine_fp32", {"x": x}, binary=False)
            check(False, "python: NaN sent as JSON")
        except ValueError as e:
            check("NaN" in str(e), f"python NaN in JSON: {e}")
    with Client(srv.url, timeout=0.5) as c:
        t0 = time.monotonic()
        expect_error("python timeout", lambda: c.infer("bad_slow",
                                                       {"x": x}),
                     None, "no answer within 0.5 s")
        check(time.monotonic() - t0 < 2.5, "python timeout: waited "
              f"{time.monotonic() - t0:.1f} s for a 0.5 s timeout")
    port = free_port()
    with Client(f"http://127.0.0.1:{port}") as c:
        expect_error("python refused", c.is_live, None,
                     f"cannot connect to http://127.0.0.1:{port}: "
                     "connection refused")


def python_connections(srv):
    x = sample("FP64", True)
    srv.reset_stats()
    with Client(srv.url, concurrency=4) as c:
        for i in range(50):
            c.infer("affine_fp64", {"x": x})
        check(srv.stats["connections"] == 1,
              f"python keep-alive: 50 requests took "
              f"{srv.stats['connections']} connections")
        srv.drop_connections()
        time.sleep(0.1)
        check_answer("python after the server dropped the connection", x,
                     c.infer("affine_fp64", {"x": x}))
        check(srv.stats["connections"] == 2,
              f"python reconnect: {srv.stats['connections']} connections")
        # a connection that served a request is tried once more; a new one
        # (after the failure closed the kept one) is not
        for conn, tries in (("kept", 2), ("new", 3)):
            expect_error(f"python close_early on a {conn} connection",
                         lambda: c.infer("bad_close_early", {"x": x}), None,
                         "closed the connection")
            n = srv.stats["bad_requests"].get("close_early")
            check(n == tries, f"python close_early on a {conn} "
                  f"connection: {n} tries in all, expected {tries}")


def python_concurrency(srv):
    srv.reset_stats()
    xs = [np.full((1, 4), i, dtype=np.int32) + np.arange(4, dtype=np.int32)
          for i in range(200)]
    t0 = time.monotonic()
    with Client(srv.url, concurrency=8) as c:
        futs = [c.infer_async("affine_int32", {"x": x}, request_id=i,
                              parameters={"test_delay_ms": 20})
                for i, x in enumerate(xs)]
        answers = [f.result(timeout=60) for f in futs]
        many = c.infer_many("affine_int32", [{"x": x} for x in xs[:40]],
                            binary=False)
    took = time.monotonic() - t0
    bad = [i for i, (x, a) in enumerate(zip(xs, answers))
           if not same_bits(a["y"], x * 2 + 1)]
    check(not bad, f"python async: answers {bad[:5]} are not their "
          "request's")
    check(all(same_bits(a["echo"], x) for x, a in zip(xs, many)),
          "python infer_many: answers in request order")
    st = srv.stats
    print(f"  200 requests of 20 ms, 8 at a time: {took:.2f} s, "
          f"{st['max_in_flight']} in flight at most, "
          f"{st['connections']} connections")
    check(4 <= st["max_in_flight"] <= 8, f"python async: at most "
          f"{st['max_in_flight']} requests in flight, 8 allowed")
    check(st["connections"] <= 8, f"python async: {st['connections']} "
          "connections for a pool of 8")


# ---- lamina infer --url ----

def infer(srv_url, model, *args):
    return subprocess.run([LAMINA, "infer", "--url", srv_url, model, *args],
                          capture_output=True, text=True, timeout=120)


def cli_round_trips(srv, d):
    for dt in DTYPES:
        for binary in (True, False):
            x = sample(dt, binary, seed=1, jansson=True)
            xf = os.path.join(d, f"x_{dt}.npy")
            np.save(xf, x)
            outs = {n: os.path.join(d, f"{n}_{dt}_{binary}.npy")
                    for n in ("y", "echo", "total")}
            args = ["-i", "x=" + xf] + [a for n, p in outs.items()
                                        for a in ("-o", f"{n}={p}")]
            p = infer(srv.url, "affine_" + dt.lower(), *args,
                      *([] if binary else ["--json"]))
            tag = f"cli {dt} {'binary' if binary else 'JSON'}"
            if check(p.returncode == 0, f"{tag}: {p.stderr.strip()}"):
                check_answer(tag, x, {n: np.load(f) for n, f in
                                      outs.items()})
    # names from the model's metadata; nested JSON; parameters
    xf = os.path.join(d, "x_FP32.npy")
    yf = os.path.join(d, "y.npy")
    p = infer(srv.url, "affine_fp32", "-i", xf, "-o", f"total={yf}",
              "--json", "-p", "test_nested=true", "-p", "timeout=500000")
    if check(p.returncode == 0, f"cli nested JSON: {p.stderr}"):
        check_answer("cli nested JSON", np.load(xf), {"total": np.load(yf)},
                     ("total",))
    p = infer(srv.url, "affine_uint8", "-i", os.path.join(d, "x_UINT8.npy"))
    check(p.returncode == 0 and p.stdout.splitlines() ==
          ["y: uint8 2x4", "echo: uint8 2x4", "total: float64 2"],
          f"cli without --output: {p.stdout!r} {p.stderr}")
    a, b = os.path.join(d, "a.npy"), os.path.join(d, "b.npy")
    np.save(a, np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4))
    np.save(b, np.arange(8, dtype=np.int64).reshape(2, 4) - 4)
    p = infer(srv.url, "pair", "-i", f"b={b}", "-i", f"a={a}", "-o", yf)
    if check(p.returncode == 0, f"cli pair: {p.stderr}"):
        check(same_bits(np.load(yf), np.load(a).astype(np.float64) +
                        np.load(b)), "cli pair: sum")
    p = infer(srv.url, "pair", "-i", a, "-i", f"b={b}")
    check(one_line_error(p, "the model has 2 inputs ('a', 'b')"),
          f"cli pair, an input without a name: {p.stderr}")
    p = infer(srv.url, "pair", "-i", f"a={a}")
    check(one_line_error(p, "no --input for the model's input 'b'")
          or one_line_error(p, "no input 'b'"),
          f"cli pair, an input missing: {p.stderr}")


def cli_repeat(srv, d):
    srv.reset_stats()
    p = infer(srv.url, "affine_fp32", "-i",
              os.path.join(d, "x_FP32.npy"), "--repeat", "10")
    check(p.returncode == 0 and "latency_ms median=" in p.stdout and
          "throughput" in p.stdout, f"cli --repeat: {p.stdout} {p.stderr}")
    print("  " + " | ".join(p.stdout.splitlines()[-2:]))
    check(srv.stats["requests"] == 12 and srv.stats["connections"] == 1,
          f"cli --repeat 10: metadata and 11 requests on one connection "
          f"({srv.stats['requests']} requests, "
          f"{srv.stats['connections']} connections)")


def cli_errors(srv, d):
    xf = os.path.join(d, "x_nan.npy")
    np.save(xf, sample("FP32", True))
    url = srv.url
    cases = [
        ("wrong datatype", [url, "affine_int8", "-i", "x=" + xf],
         f"{url}/v2/models/affine_int8/infer: HTTP 400: input 'x' has "
         "datatype FP32, the model takes INT8"),
        ("unknown model", [url, "nope", "-i", "x=" + xf],
         f"{url}/v2/models/nope/infer: HTTP 404: no model named 'nope'"),
        ("unknown model, metadata", [url, "nope", "-i", xf],
         f"{url}/v2/models/nope: HTTP 404: no model named 'nope'"),
        ("unknown output", [url, "affine_fp32", "-i", "x=" + xf, "-o",
                            "z=" + xf],
         "HTTP 400: model affine_fp32 has no output 'z'"),
        ("unknown output, metadata", [url, "affine_fp32", "-i", xf, "-o",
                                      "z=" + xf],
         "the model has no output 'z'"),
        ("JSON and NaN", [url, "affine_fp32", "-i", "x=" + xf, "--json"],
         "NaN or infinity"),
        ("not a URL", ["ftp://x", "m", "-i", "x=" + xf],
         "not an http:// or https:// URL"),
    ]
    port = free_port()
    cases.append(("refused", [f"http://127.0.0.1:{port}", "m", "-i",
                              "x=" + xf],
                  f"cannot connect to http://127.0.0.1:{port}: Connection "
                  "refused"))
    for mode in BAD_MODES:
        if mode != "slow":
            cases.append((f"bad_{mode}", [url, "bad_" + mode, "-i",
                                          "x=" + xf, "-o", "y=" + xf],
                          BAD_WORDS[mode]))
    for tag, args, words in cases:
        p = subprocess.run([LAMINA, "infer", "--url", *args],
                           capture_output=True, text=True, timeout=60)
        check(p.returncode == 1 and one_line_error(p, words),
              f"cli {tag}: exit {p.returncode}, expected one line with "
              f"{words!r}: {p.stderr!r}")
    t0 = time.monotonic()
    p = infer(url, "bad_slow", "-i", "x=" + xf, "--timeout", "1")
    check(one_line_error(p, "bad_slow/infer: no answer within 1 s "
                         "(--timeout)") and time.monotonic() - t0 < 2.5,
          f"cli --timeout 1: {p.stderr!r} after "
          f"{time.monotonic() - t0:.1f} s")
    for args, words in [(["--url", url, "m", "-i", xf, "--state-dir", d],
                         "--state-dir is for a deployment ID"),
                        (["some-id", "-i", xf, "--json"],
                         "--json and --parameter go with --url"),
                        (["--url", url, "m", "-i", xf, "-p", "=1"],
                         "--parameter takes KEY=VALUE")]:
        p = subprocess.run([LAMINA, "infer", *args], capture_output=True,
                           text=True)
        check(one_line_error(p, words), f"cli {args}: {p.stderr!r}")
    # the deployment path is still there
    p = subprocess.run([LAMINA, "infer", "no-such-id", "-i", xf,
                        "--state-dir", d], capture_output=True, text=True)
    check(p.returncode != 0 and "no-such-id" in p.stderr and
          len(p.stderr.strip().splitlines()) == 1,
          f"cli lamina infer ID: {p.stderr!r}")
    p = subprocess.run([LAMINA, "infer", "--help"], capture_output=True,
                       text=True)
    check(p.returncode == 0 and "--url URL MODEL" in p.stdout and
          "lamina infer ID" in p.stdout, "cli infer --help shows both")


# ---- the schema validator ----

def raw(srv, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, r.getheader(oip_schema._HDR), data


def schema_checks(srv):
    x = sample("FP32", True)
    body, headers = lamina_client._encode_request({"x": x}, None, True,
                                                  None, "9")
    jbody, jheaders = lamina_client._encode_request(
        {"x": np.ones((2, 2), np.float32)}, None, False, None, None)
    check(not oip_schema.request_errors(body, headers[oip_schema._HDR]),
          "schema: the Python client's binary request is valid")
    check(not oip_schema.request_errors(jbody), "schema: its JSON request "
          "is valid")
    good = [("server_metadata", "GET", "/v2", None, {}),
            ("live", "GET", "/v2/health/live", None, {}),
            ("ready", "GET", "/v2/health/ready", None, {}),
            ("model_ready", "GET", "/v2/models/pair/ready", None, {}),
            ("model_metadata", "GET", "/v2/models/pair", None, {}),
            ("model_metadata", "GET", "/v2/models/nope", None, {}),
            ("infer", "POST", "/v2/models/affine_fp32/infer", body,
             headers),
            ("infer", "POST", "/v2/models/affine_fp32/versions/1/infer",
             body, headers),
            ("infer", "POST", "/v2/models/affine_fp32/infer", jbody,
             jheaders),   # shape [2, 2]: 400
            ("infer", "POST", "/v2/models/bad_unavailable/infer", body,
             headers)]
    statuses = []
    for endpoint, method, path, b, h in good:
        status, hl, data = raw(srv, method, path, b, h)
        statuses.append(status)
        problems = oip_schema.response_errors(endpoint, status, data, hl)
        check(not problems, f"schema: {method} {path} ({status}): "
              f"{problems}")
    check(statuses == [200] * 5 + [404, 200, 200, 400, 503],
          f"schema: statuses {statuses}")
    # the validator must catch broken answers
    for mode in ("negative_shape", "trailing", "header_long", "not_object",
                 "bogus_json", "size_negative", "html_error"):
        status, hl, data = raw(srv, "POST", f"/v2/models/bad_{mode}/infer",
                               body, headers)
        problems = oip_schema.response_errors("infer", status, data, hl)
        check(problems, f"schema: bad_{mode}'s answer passes validation")
        print(f"  bad_{mode}: {problems[0][:100] if problems else '-'}")
    check(oip_schema.errors({"outputs": []}, "inference_response"),
          "schema: model_name is required")
    check(oip_schema.errors({"model_name": "m", "outputs": [
        {"name": "y", "shape": [1], "datatype": "FP32",
         "parameters": {"binary_data_size": 4}}]}, "inference_response",
        binary=False), "schema: without the extension, data is required")
    check(srv.stats["schema_errors"] == [],
          f"schema: the double's own answers: "
          f"{srv.stats['schema_errors'][:3]}")


def main():
    case = sys.argv[1] if len(sys.argv) > 1 else ""
    srv = OipServer()
    try:
        if case == "python":
            python_health(srv)
            python_round_trips(srv)
            python_errors(srv)
            python_connections(srv)
            python_concurrency(srv)
        elif case == "cli":
            d = fresh_dir("client_cli")
            cli_round_trips(srv, d)
            cli_repeat(srv, d)
            cli_errors(srv, d)
        elif case == "schema":
            schema_checks(srv)
        else:
            raise SystemExit("usage: test_client.py python|cli|schema")
        check(srv.stats["schema_errors"] == [],
              f"{case}: answers of the double that break the schema: "
              f"{srv.stats['schema_errors'][:3]}")
    finally:
        srv.close()
    sys.exit(summary())


if __name__ == "__main__":
    main()
