#!/usr/bin/python3
"""Integration test of laminad's serving front: the Open Inference Protocol
over HTTP, dynamic batching, bounded queues, deadlines, drain, metrics.

    test_serving.py http       every endpoint through real HTTP (curl and
                               python/lamina_client): JSON and binary
                               answers bitwise equal to lamina run, every
                               response valid against the specification's
                               OpenAPI file, bad requests answered with the
                               right status; slow, half-closed and garbage
                               clients beside a normal one; /metrics
                               through promtool; names; lm_client
    test_serving.py batching   1,000 batch-1 requests from 16 clients into
                               a batch-8 plan, each answered once with its
                               own row of lamina run at batch 8; full
                               batches under load, partial ones at low
                               load; the same across two laminads (memif)
    test_serving.py queue      a flood past --max-queue gets 503s, every
                               request admitted is answered once;
                               deadlines; teardown answers what it admitted
    test_serving.py limits     the ingress's documented limits hold: 64
                               requests open per TCP connection (the rest
                               wait in the socket), 1,024 TCP connections
                               (the idle longest closed for a new one,
                               logged), 1,024 HTTP connections (one more
                               waits unserved until some close)

The digits model is deployed by `lamina deploy` as a user would, each test
in a state folder of its own (ports from test_deploy's free block); the
finally blocks tear everything down.
"""
import glob
import http.client
import json
import os
import resource
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time

import numpy as np

from harness import SRC, check, fresh_dir, plan_doc, recv_exact, summary
from oip_schema import response_errors
from test_deploy import (PORT, alive, cleanup, deploy, lam, laminad_pids,
                         nothing_left, write_plan)

sys.path.insert(0, os.path.join(SRC, "python"))
from lamina_client import Client, InferenceServerError  # noqa: E402

HDR = "Inference-Header-Content-Length"
MODEL = os.path.join(SRC, "models", "digits.onnx")


# ---- set-up ----

def slices(lamdir):
    return len(json.load(open(os.path.join(lamdir, "manifest.json")))[
        "slices"])


def setup(name, batch=8):
    """Slice digits into work/digits.lam and plan it in one stage at
    `batch`; returns (work, state, plan, (8 samples, lamina run's answers
    at batch 8))."""
    work = fresh_dir(name)
    state = os.path.join(work, "state")
    os.makedirs(state)
    lamdir = os.path.join(work, "digits.lam")
    p = lam("slice", MODEL, "-o", lamdir)
    if p.returncode:
        raise SystemExit(f"slice: {p.stderr}")
    plan = os.path.join(work, "plan.json")
    write_plan(plan, lamdir, slices(lamdir), [], batch, PORT)
    # references: lamina run of the whole model on 8 held-out digits
    x = np.load(os.path.join(SRC, "models", "digits_samples.npy"))[:8]
    x = np.ascontiguousarray(x, dtype=np.float32)
    xf, yf = os.path.join(work, "x8.npy"), os.path.join(work, "y8.npy")
    np.save(xf, x)
    p = lam("run", MODEL, "-b", "8", "-i", xf, "-o", yf)
    if p.returncode:
        raise SystemExit(f"run: {p.stderr}")
    return work, state, plan, (x, np.load(yf))


def status(dep, state):
    p = lam("status", dep, "--json", state=state)
    return json.loads(p.stdout) if p.returncode == 0 else {}


def base_url(dep, state):
    url = status(dep, state).get("http_url") or ""
    return url.split("/v2/")[0]


def call(url, method, path, body=None, headers=None, timeout=30):
    """(status, headers dict, body bytes) of one request."""
    host = url.split("//")[1]
    c = http.client.HTTPConnection(host, timeout=timeout)
    c.request(method, path, body, headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict(r.getheaders()), data


def infer_body(x, binary, rid=None, outputs_binary=None):
    """A request body (and headers) for input 'image' = x."""
    inp = {"name": "image", "shape": list(x.shape), "datatype": "FP32"}
    doc = {"inputs": [inp]}
    if rid is not None:
        doc["id"] = rid
    if binary:
        inp["parameters"] = {"binary_data_size": x.nbytes}
        doc["parameters"] = {"binary_data_output": True}
        head = json.dumps(doc).encode()
        return head + x.tobytes(), {HDR: str(len(head))}
    inp["data"] = x.flatten().tolist()
    if outputs_binary is not None:
        doc["outputs"] = [{"name": "logits",
                           "parameters": {"binary_data": outputs_binary}}]
    return json.dumps(doc).encode(), {"Content-Type": "application/json"}


def logits_of(status_code, headers, data):
    """The logits of an infer answer (binary or JSON)."""
    hl = headers.get(HDR)
    head = json.loads(data[:int(hl)] if hl else data)
    out = head["outputs"][0]
    if "data" in out:
        return np.array(out["data"], np.float32).reshape(out["shape"])
    return np.frombuffer(data[int(hl):], np.float32).reshape(out["shape"])


def metric(url, name, **labels):
    """The sum of a metric's samples whose labels include `labels`."""
    _, _, text = call(url, "GET", "/metrics")
    total = 0.0
    for line in text.decode().splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        key, value = line.rsplit(" ", 1)
        if key.split("{")[0] != name:
            continue
        if all(f'{k}="{v}"' in key for k, v in labels.items()):
            total += float(value)
    return total


# ---- http: the endpoints ----

def test_http():
    work, state, plan, (x, y) = setup("serving-http")
    try:
        dep = deploy(plan, state, "--name", "digits")
        if not dep:
            return
        url = base_url(dep, state)
        check(url.startswith("http://127.0.0.1:"), f"http_url: {url}")
        endpoints(url)
        answers(url, x, y)
        refusals(url, x)
        rough_clients(url, x, y)
        metrics(url, dep)
        names(plan, state, dep, url)
        tcp_ingress(work, dep, state, x, y)
        pids = laminad_pids(state)
        p = lam("teardown", dep, state=state)
        check(p.returncode == 0, f"teardown: {p.stderr}")
        nothing_left(state, pids, "after teardown")
    finally:
        cleanup(state)


def endpoints(url):
    for path, ep, want in [("/v2", "server_metadata", 200),
                           ("/v2/", "server_metadata", 200),
                           ("/v2/health/live", "live", 200),
                           ("/v2/health/ready", "ready", 200),
                           ("/v2/models/digits", "model_metadata", 200),
                           ("/v2/models/digits/versions/1", "model_metadata",
                            200),
                           ("/v2/models/digits/ready", "model_ready", 200),
                           ("/v2/models/nope", "model_metadata", 404),
                           ("/v2/models/nope/ready", "model_ready", 404)]:
        st, hd, body = call(url, "GET", path)
        check(st == want, f"GET {path}: {st}, expected {want}")
        problems = response_errors(ep, st, body, hd.get(HDR))
        check(not problems, f"GET {path} valid: {problems}")
    st, _, body = call(url, "GET", "/v2/models/digits")
    meta = json.loads(body)
    check(meta["inputs"] == [{"name": "image", "datatype": "FP32",
                              "shape": [-1, 1, 8, 8]}] and
          meta["outputs"][0]["shape"] == [-1, 10] and
          meta["properties"]["max_batch_size"] == "8",
          f"model metadata: {meta}")
    with Client(url) as c:
        check(c.is_live() and c.is_ready() and c.is_model_ready("digits"),
              "python client: live, ready, model ready")
        check(c.server_metadata()["name"] == "lamina" and
              "binary_tensor_data" in c.server_metadata()["extensions"],
              "python client: server metadata")
    # curl, as the docs show it
    p = subprocess.run(["curl", "-sf", url + "/v2/health/ready"],
                       capture_output=True, text=True, timeout=30)
    check(p.returncode == 0 and json.loads(p.stdout) == {"ready": True},
          f"curl ready: {p.returncode} {p.stdout}")


def answers(url, x, y):
    """1 to 8 rows, JSON and binary, curl and the python client: bitwise
    equal to lamina run's rows."""
    for rows in (1, 3, 8):
        for binary in (False, True):
            xs = x[:rows]
            body, hd = infer_body(xs, binary, rid=f"r{rows}")
            st, rh, data = call(url, "POST", "/v2/models/digits/infer", body,
                                hd)
            tag = f"{rows} row(s), {'binary' if binary else 'JSON'}"
            check(st == 200, f"{tag}: {st} {data[:200]}")
            if st != 200:
                continue
            problems = response_errors("infer", st, data, rh.get(HDR))
            check(not problems, f"{tag}: valid response: {problems}")
            got = logits_of(st, rh, data)
            head = json.loads(data[:int(rh[HDR])] if HDR in rh else data)
            check(head.get("id") == f"r{rows}" and
                  head.get("model_name") == "digits", f"{tag}: id, name")
            check(got.shape == (rows, 10) and
                  got.tobytes() == y[:rows].tobytes(),
                  f"{tag}: bitwise equal to lamina run")
    # JSON in, binary out (per output), and the reverse
    body, hd = infer_body(x[:2], False, outputs_binary=True)
    st, rh, data = call(url, "POST", "/v2/models/digits/infer", body, hd)
    check(st == 200 and HDR in rh and
          logits_of(st, rh, data).tobytes() == y[:2].tobytes(),
          f"JSON request, binary output: {st} {rh.get(HDR)}")
    with Client(url) as c:
        for binary in (True, False):
            got = c.infer("digits", {"image": x[2:6]}, binary=binary)
            check(got["logits"].tobytes() == y[2:6].tobytes(),
                  f"python client ({'binary' if binary else 'JSON'}): "
                  "bitwise")
    # curl with the binary extension, from files
    tmp = fresh_dir("serving-http-curl")
    body, hd = infer_body(x[:1], True)
    bf = os.path.join(tmp, "body.bin")
    open(bf, "wb").write(body)
    p = subprocess.run(["curl", "-s", "-D", "-", "-o",
                        os.path.join(tmp, "out.bin"), "--data-binary",
                        "@" + bf, "-H", f"{HDR}: {hd[HDR]}",
                        url + "/v2/models/digits/infer"],
                       capture_output=True, text=True, timeout=30)
    hl = [ln.split(":")[1].strip() for ln in p.stdout.splitlines()
          if ln.lower().startswith(HDR.lower())]
    data = open(os.path.join(tmp, "out.bin"), "rb").read()
    check(p.returncode == 0 and hl and
          data[int(hl[0]):] == y[:1].tobytes(),
          f"curl --data-binary: rc {p.returncode}, header {hl}")


def refusals(url, x):
    """Every malformed request gets its status and {"error"}; the server
    keeps serving."""
    good, ghd = infer_body(x[:1], False)
    cases = [
        ("not JSON", b"{nope", {}, 400, "not JSON"),
        ("wrong shape", json.dumps({"inputs": [{
            "name": "image", "shape": [1, 1, 8, 9], "datatype": "FP32",
            "data": [0] * 72}]}).encode(), {}, 400, "shape"),
        ("too many rows", json.dumps({"inputs": [{
            "name": "image", "shape": [9, 1, 8, 8], "datatype": "FP32",
            "data": [0] * 576}]}).encode(), {}, 400, "1 to 8 rows"),
        ("wrong datatype", json.dumps({"inputs": [{
            "name": "image", "shape": [1, 1, 8, 8], "datatype": "FP64",
            "data": [0] * 64}]}).encode(), {}, 400, "FP32"),
        ("unknown input", json.dumps({"inputs": [{
            "name": "img", "shape": [1, 1, 8, 8], "datatype": "FP32",
            "data": [0] * 64}]}).encode(), {}, 400, "'image'"),
        ("short binary", good[:40], {HDR: "30"}, 400, ""),
    ]
    for tag, body, hd, want, words in cases:
        st, rh, data = call(url, "POST", "/v2/models/digits/infer", body, hd)
        ok = check(st == want, f"{tag}: {st}, expected {want}: {data[:200]}")
        problems = response_errors("infer", st, data, rh.get(HDR))
        check(not problems, f"{tag}: valid error body: {problems}")
        if ok and words:
            check(words in json.loads(data)["error"],
                  f"{tag}: says '{words}': {data[:200]}")
    oversize(url)
    st, _, data = call(url, "POST", "/v2/models/nope/infer", good, ghd)
    check(st == 404 and "nope" in json.loads(data)["error"],
          f"unknown model: {st}")
    st, rh, _ = call(url, "GET", "/v2/models/digits/infer")
    check(st == 405 and "POST" in rh.get("Allow", ""), f"GET infer: {st}")
    st, _, _ = call(url, "POST", "/v2/health/live", b"{}")
    check(st == 405, f"POST live: {st}")
    st, _, data = call(url, "GET", "/v3/whatever")
    check(st == 404 and "error" in json.loads(data), f"unknown path: {st}")
    with Client(url) as c:
        try:
            c.infer("digits", {"image": np.zeros((1, 2, 8, 8), "f4")})
            check(False, "python client: wrong shape raised nothing")
        except InferenceServerError as e:
            check(e.status == 400 and "shape" in str(e),
                  f"python client: 400 with the server's text: {e}")


def read_reply(s):
    """Status line and body of the one reply on socket s."""
    s.settimeout(30)
    got = b""
    while True:
        try:
            chunk = s.recv(65536)
        except OSError:
            break
        if not chunk:
            break
        got += chunk
        head, _, body = got.partition(b"\r\n\r\n")
        n = [int(ln.split(b":")[1]) for ln in head.split(b"\r\n")
             if ln.lower().startswith(b"content-length:")]
        if n and len(body) >= n[0]:
            break
    return got.split(b"\r\n", 1)[0], got.partition(b"\r\n\r\n")[2]


def oversize(url):
    """A body over the model's limit is refused with 413 before it is
    read: by its Content-Length, or (chunked) as it comes."""
    host, port = url.split("//")[1].split(":")
    s = socket.create_connection((host, int(port)))
    s.sendall(b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\n"
              b"Content-Length: 3000000\r\n\r\n")
    line, body = read_reply(s)
    s.close()
    check(line.startswith(b"HTTP/1.1 413") and
          b"bytes" in json.loads(body).get("error", "").encode(),
          f"oversize by Content-Length: {line} {body[:100]}")
    s = socket.create_connection((host, int(port)))
    s.sendall(b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n" % 65536 + b" " * 65536 + b"\r\n"
    try:
        for _ in range(17):  # 1 MiB and a bit: past the limit
            s.sendall(chunk)
        s.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # refused and closed half-way: what is wanted
    line, _ = read_reply(s)
    s.close()
    check(line.startswith(b"HTTP/1.1 413"), f"oversize, chunked: {line}")


def rough_clients(url, x, y):
    """A stalled request, a trickling body, a half-closed connection and
    garbage beside a normal client, who is served at once throughout."""
    host, port = url.split("//")[1].split(":")
    port = int(port)
    body, hd = infer_body(x[:1], True)
    head = (f"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\n"
            f"{HDR}: {hd[HDR]}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
    stalled = socket.create_connection((host, port))
    stalled.sendall(head + body[:10])  # and nothing more
    headers_only = socket.create_connection((host, port))
    headers_only.sendall(b"POST /v2/models/digits/infer HTTP/1.1\r\nHo")
    garbage = socket.create_connection((host, port))
    garbage.sendall(b"\x00\xff" * 1000 + b"\r\n\r\n")
    trickle = socket.create_connection((host, port))
    trickle.sendall(head)
    t0 = time.monotonic()
    with Client(url) as c:
        for i in range(20):
            trickle.sendall(body[i * 10:(i + 1) * 10])
            got = c.infer("digits", {"image": x[i % 8:i % 8 + 1]})
            check(got["logits"].tobytes() == y[i % 8:i % 8 + 1].tobytes(),
                  f"normal client answered right beside rough ones ({i})")
    check(time.monotonic() - t0 < 20, "normal client not held up: "
          f"{time.monotonic() - t0:.1f} s for 20 requests")
    trickle.sendall(body[200:])
    trickle.settimeout(30)
    reply = b""
    while b"\r\n\r\n" not in reply:
        chunk = trickle.recv(65536)
        if not chunk:
            break
        reply += chunk
    check(reply.startswith(b"HTTP/1.1 200"), f"trickled request answered: "
          f"{reply[:40]!r}")
    # half-closed: a whole request, then our side shut at once.  A client
    # that closes its side before the answer is taken as gone
    # (libmicrohttpd, when it reads the end before the answer is queued):
    # it gets its answer or a clean close, never half an answer, and
    # nothing of its request stays behind
    half = socket.create_connection((host, port))
    half.sendall(head + body)
    half.shutdown(socket.SHUT_WR)
    line, got = read_reply(half)
    check((line.startswith(b"HTTP/1.1 200") and
           got.endswith(y[:1].tobytes())) or (not line and not got),
          f"half-closed connection: its answer or a clean close: {line}")
    # half-closed half-way through a request: never answered (it holds
    # only its connection, until the idle timeout), others go on
    part = socket.create_connection((host, port))
    part.sendall(head + body[:50])
    part.shutdown(socket.SHUT_WR)
    with Client(url) as c:
        got = c.infer("digits", {"image": x[:1]})
        check(got["logits"].tobytes() == y[:1].tobytes(),
              "served beside a half-closed half request")
    part.close()
    st, _, _ = call(url, "GET", "/v2/health/live")
    check(st == 200, "still live after rough clients")
    time.sleep(0.2)
    check(metric(url, "lamina_queue_depth") == 0 and
          metric(url, "lamina_in_flight_requests") == 0,
          "nothing of the rough clients' requests left queued")
    for s in (stalled, headers_only, garbage, trickle, half):
        s.close()


def metrics(url, dep):
    """/metrics passes promtool and counts what was sent."""
    st, hd, text = call(url, "GET", "/metrics")
    check(st == 200 and hd.get("Content-Type", "").startswith("text/plain"),
          f"/metrics: {st} {hd.get('Content-Type')}")
    if shutil.which("promtool"):
        p = subprocess.run(["promtool", "check", "metrics"], input=text,
                           capture_output=True, timeout=60)
        check(p.returncode == 0, "promtool check metrics: "
              f"{p.stdout.decode()} {p.stderr.decode()}")
    else:
        check(False, "promtool (Debian's prometheus) is installed")
    req = metric(url, "lamina_requests_total", deployment="digits")
    samples = metric(url, "lamina_samples_total", deployment="digits")
    batches = metric(url, "lamina_batches_total", deployment="digits")
    bad = metric(url, "lamina_errors_total", deployment="digits",
                 kind="invalid")
    count = metric(url, "lamina_request_seconds_count", deployment="digits")
    check(req >= 20 and samples > req and batches >= 1,
          f"metrics count requests {req}, samples {samples}, batches "
          f"{batches}")
    check(bad >= 7, f"metrics count invalid requests: {bad}")
    check(count >= req, f"every answer has a latency: {count} >= {req}")
    run = metric(url, "lamina_stage_samples_total", deployment="digits",
                 stage="0")
    check(run >= samples, f"stage 0 ran every sample: {run} >= {samples}")


def names(plan, state, dep, url):
    """The default name is the model's stem, made unique per laminad; a
    name asked for that is taken is refused."""
    second = deploy(plan, state)
    if second:
        st = status(second, state)
        check(st.get("name") == "digits-2" and
              st.get("http_url", "").endswith("/v2/models/digits-2"),
              f"second deployment named digits-2: {st.get('name')}")
        s, _, _ = call(url, "GET", "/v2/models/digits-2/ready")
        s2, _, _ = call(url, "GET", f"/v2/models/{second}/ready")
        check(s == 200 and s2 == 200, "served by name and by id")
        lam("teardown", second, state=state)
    p = lam("deploy", plan, "--name", "digits", state=state)
    check(p.returncode != 0 and "digits" in p.stderr and
          "name" in p.stderr, f"a taken name is refused: {p.stderr}")
    p = lam("deploy", plan, "--name", "no/slash", state=state)
    check(p.returncode != 0 and "--name" in p.stderr,
          f"a bad name is refused: {p.stderr}")


def tcp_ingress(work, dep, state, x, y):
    """lm_client (lamina infer ID) with 1 of the plan's 8 rows."""
    xf, yf = os.path.join(work, "x1.npy"), os.path.join(work, "y1.npy")
    np.save(xf, x[5:6])
    p = lam("infer", dep, "-i", xf, "-o", yf, state=state)
    check(p.returncode == 0 and
          np.load(yf).tobytes() == y[5:6].tobytes(),
          f"lamina infer with 1 row: {p.stderr}")


# ---- batching ----

def flood(url, x, y, n, clients, name="digits", timeout=None):
    """n batch-1 requests from `clients` threads (each its own keep-alive
    connection); returns (statuses by request, wrong answers, answers
    seen per request id)."""
    statuses = [None] * n
    wrong, seen = [], {}
    lock = threading.Lock()
    host = url.split("//")[1]

    def worker(k):
        c = http.client.HTTPConnection(host, timeout=60)
        for i in range(k, n, clients):
            body, hd = infer_body(x[i % 8:i % 8 + 1], True, rid=str(i))
            if timeout is not None:
                hd["Timeout-Us"] = str(timeout)
            try:
                c.request("POST", f"/v2/models/{name}/infer", body, hd)
                r = c.getresponse()
                data = r.read()
            except OSError as e:
                statuses[i] = str(e)
                c = http.client.HTTPConnection(host, timeout=60)
                continue
            statuses[i] = r.status
            if r.status != 200:
                continue
            hl = int(r.getheader(HDR))
            head = json.loads(data[:hl])
            with lock:
                seen[head["id"]] = seen.get(head["id"], 0) + 1
            if head["id"] != str(i) or \
                    data[hl:] != y[i % 8:i % 8 + 1].tobytes():
                with lock:
                    wrong.append(i)
        c.close()
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return statuses, wrong, seen


def batch_sizes(url, name="digits"):
    """Batches dispatched by size, from the metrics' histogram."""
    _, _, text = call(url, "GET", "/metrics")
    cum = {}
    for line in text.decode().splitlines():
        if line.startswith("lamina_batch_size_bucket") and \
                f'deployment="{name}"' in line:
            le = line.split('le="')[1].split('"')[0]
            cum[le] = float(line.rsplit(" ", 1)[1])
    return cum


def test_batching():
    work, state, plan, (x, y) = setup("serving-batching")
    try:
        dep = deploy(plan, state, "--max-queue-delay-us", "5000")
        if not dep:
            return
        url = base_url(dep, state)
        statuses, wrong, seen = flood(url, x, y, 1000, 16)
        check(statuses.count(200) == 1000,
              f"1000 requests answered 200: "
              f"{[s for s in statuses if s != 200][:5]}")
        check(not wrong, f"each answered with its own row: {wrong[:10]}")
        check(len(seen) == 1000 and set(seen.values()) == {1},
              "each answered once")
        cum = batch_sizes(url)
        full = cum.get("8", 0) - cum.get("7", 0)
        check(full >= 0.5 * cum.get("+Inf", 1),
              f"full batches under load: {full} of {cum.get('+Inf')} "
              f"({cum})")
        # low load: one at a time, each waits its delay and goes alone
        before = cum.get("1", 0)
        with Client(url) as c:
            for i in range(5):
                c.infer("digits", {"image": x[i:i + 1]})
        after = batch_sizes(url).get("1", 0)
        check(after - before == 5,
              f"partial batches at low load: {after - before} of 5 alone")
        st = status(dep, state)
        check(st.get("recent", {}).get("inferences_per_s", 0) > 0 and
              st.get("samples", 0) >= 1005 and
              st.get("batch_sizes", [0])[0] >= 5 and
              abs(sum(st.get("batch_sizes", [])) - st.get("batches", -1))
              == 0, f"status: rates and batch sizes {st.get('recent')} "
              f"{st.get('batch_sizes')}")
        p = lam("status", dep, state=state)
        check("inferences/s over the last" in p.stdout,
              f"status table speaks of inferences/s: {p.stdout[:400]}")
        lam("teardown", dep, state=state)
        two_laminads(work, state, x, y)
    finally:
        cleanup(state)


def two_laminads(work, state, x, y):
    """Batching where the pipeline crosses two laminads (memif)."""
    lamdir = os.path.join(work, "digits.lam")
    n = slices(lamdir)
    plan = os.path.join(work, "plan2.json")
    json.dump(plan_doc(lamdir, 8, n,
                       [{"name": d, "address": f"127.0.0.1:{port}",
                         "numa_node": 0, "cores": 1, "memory_bytes": 1 << 30}
                        for d, port in (("a", PORT + 4), ("b", PORT + 6))],
                       [{"device": "a", "slices": [0, n // 2 - 1],
                         "cores": 1},
                        {"device": "b", "slices": [n // 2, n - 1],
                         "cores": 1}]),
              open(plan, "w"))
    dep = deploy(plan, state)
    if not dep:
        return
    url = base_url(dep, state)
    statuses, wrong, seen = flood(url, x, y, 300, 8)
    check(statuses.count(200) == 300 and not wrong and
          set(seen.values()) == {1},
          f"across laminads: 300 answered once, right "
          f"({statuses.count(200)} ok, {len(wrong)} wrong)")
    cum = batch_sizes(url)
    check(cum.get("+Inf", 0) < 300, f"across laminads: batched ({cum})")
    lam("teardown", dep, state=state)


# ---- queue bound, deadlines, drain ----

def test_queue():
    work, state, plan, (x, y) = setup("serving-queue")
    try:
        # a long delay: requests gather; at most 2 may wait
        dep = deploy(plan, state, "--max-queue", "2",
                     "--max-queue-delay-us", "300000", "--name", "q")
        if not dep:
            return
        url = base_url(dep, state)
        statuses, wrong, seen = flood(url, x, y, 64, 32, name="q")
        ok, busy = statuses.count(200), statuses.count(503)
        check(ok + busy == 64 and busy > 0 and ok >= 2,
              f"a flood past the queue: {ok} answered, {busy} 503: "
              f"{[s for s in statuses if s not in (200, 503)][:5]}")
        check(not wrong and set(seen.values()) <= {1} and len(seen) == ok,
              "every admitted request answered once, right")
        full = metric(url, "lamina_errors_total", deployment="q",
                      kind="queue_full")
        check(full == busy, f"metrics count the 503s: {full} == {busy}")
        # deadlines: 50 ms in a queue whose batch waits 300 ms
        t0 = time.monotonic()
        before = metric(url, "lamina_stage_samples_total", deployment="q")
        body, hd = infer_body(x[:1], True)
        hd["Timeout-Us"] = "50000"
        st, _, data = call(url, "POST", "/v2/models/q/infer", body, hd)
        dt = time.monotonic() - t0
        check(st == 503 and b"timeout" in data and dt < 2,
              f"expired request answered 503 ({st}, {dt:.2f} s): "
              f"{data[:200]}")
        time.sleep(0.4)
        after = metric(url, "lamina_stage_samples_total", deployment="q")
        check(after == before, f"an expired request is not run: stage "
              f"samples {before} -> {after}")
        body, hd = infer_body(x[:1], False)
        doc = json.loads(body)
        doc["parameters"] = {"timeout": 30000000}
        st, _, data = call(url, "POST", "/v2/models/q/infer",
                           json.dumps(doc).encode(), hd)
        check(st == 200, f"a request within its timeout: {st}")
        drain(url, dep, state, x, y)
    finally:
        cleanup(state)


def drain(url, dep, state, x, y):
    """Teardown answers the requests it admitted before it, then stops."""
    results = [None, None]
    host = url.split("//")[1]

    def one(k):
        c = http.client.HTTPConnection(host, timeout=60)
        body, hd = infer_body(x[k:k + 1], True)
        c.request("POST", "/v2/models/q/infer", body, hd)
        r = c.getresponse()
        results[k] = (r.status, r.read(), r.getheader(HDR))

    ts = [threading.Thread(target=one, args=(k,)) for k in range(2)]
    for t in ts:
        t.start()
    time.sleep(0.1)  # admitted, gathering (the batch waits 300 ms)
    pids = laminad_pids(state)
    p = lam("teardown", dep, state=state)
    for t in ts:
        t.join()
    check(p.returncode == 0, f"teardown: {p.stderr}")
    for k, r in enumerate(results):
        check(r and r[0] == 200 and r[1][int(r[2]):] ==
              y[k:k + 1].tobytes(), f"request {k} admitted before "
              f"teardown answered: {r and r[0]}")
    check(not [q for q in pids if alive(q)], "laminad stopped")


# ---- the ingress's limits (docs/serving.md, "Limits") ----

WINDOW = 64          # dataplane/ingress.h LM_DP_CONN_WINDOW
TCP_CONNS = 1024     # dataplane/ingress.h LM_DP_MAX_CONNS
HTTP_CONNS = 1024    # dataplane/http.c HTTP_CONNS


def wire_request(rid, dep, x):
    """An lm_client request (lamina/wire.h) of one float32 tensor."""
    body = struct.pack("<Q32sI", rid, dep.encode(), 1)
    body += struct.pack("<II", 1, x.ndim)
    body += struct.pack(f"<{x.ndim}q", *x.shape)
    body += struct.pack("<Q", x.nbytes) + x.tobytes()
    return struct.pack("<II", 0x51524d4c, len(body)) + body


def wire_answer(s):
    """(request id, status, output bytes or message), None when closed."""
    h = recv_exact(s, 8)
    if h is None:
        return None
    _, length = struct.unpack("<II", h)
    body = recv_exact(s, length)
    rid, status, n = struct.unpack_from("<QiI", body)
    if status:
        return rid, status, body[16:16 + n].decode()
    rank, = struct.unpack_from("<I", body, 20)
    return rid, 0, body[16 + 16 + 8 * rank:]


def closed_soon(s, within=5.0):
    """Whether the peer closed s within `within` seconds (after what it
    sent first, which is read and dropped)."""
    s.settimeout(within)
    try:
        while s.recv(65536):
            pass
        return True
    except socket.timeout:
        return False
    except OSError:
        return True


def window(dep, state, x, y):
    """One connection sends 100 requests without reading: laminad takes
    64 into the queue and reads no further from it until answers go out;
    another connection is not held up.  Every request is answered once,
    right."""
    ing = status(dep, state)["ingress_port"]
    a = socket.create_connection(("127.0.0.1", ing), timeout=60)
    b = socket.create_connection(("127.0.0.1", ing), timeout=60)
    a.sendall(b"".join(wire_request(i, "lim", x[i % 8:i % 8 + 1])
                       for i in range(100)))
    time.sleep(1)
    depth = status(dep, state).get("queue", {}).get("depth")
    check(depth == WINDOW, f"one connection: {WINDOW} requests open of "
          f"the 100 sent ({depth} in the queue)")
    b.sendall(b"".join(wire_request(1000 + i, "lim", x[i:i + 1])
                       for i in range(8)))
    time.sleep(0.5)
    depth = status(dep, state).get("queue", {}).get("depth")
    check(depth == WINDOW + 8, f"another connection is not held up "
          f"({depth} in the queue)")
    seen = {}
    for s, n in ((b, 8), (a, 100)):
        for _ in range(n):
            r = wire_answer(s)
            if r is None:
                break
            seen[r[0]] = seen.get(r[0], 0) + 1
            i = r[0] - 1000 if r[0] >= 1000 else r[0] % 8
            got = np.frombuffer(r[2], np.float32) if r[1] == 0 else None
            ref = y[i]
            check(got is not None and got.shape == (ref.size,) and
                  np.max(np.abs(got - ref.ravel())) <=
                  1e-4 * np.max(np.abs(ref)),
                  f"request {r[0]}: answered with its row ({r[1]})")
    check(sorted(seen) == list(range(100)) + list(range(1000, 1008)) and
          set(seen.values()) == {1}, "every request answered once")
    a.close()
    b.close()


def tcp_connections(dep, state, x, y, log):
    """1,100 idle connections to the ingress port: laminad keeps 1,024,
    closing the one idle longest for each new one; a request on a new
    connection is answered."""
    ing = status(dep, state)["ingress_port"]
    socks = []
    try:
        for _ in range(TCP_CONNS + 76):
            socks.append(socket.create_connection(("127.0.0.1", ing),
                                                  timeout=10))
        time.sleep(1)
        first = sum(closed_soon(s, 0.2) for s in socks[:76])
        last = sum(closed_soon(s, 0.05) for s in socks[-200:])
        check(first == 76 and last == 0,
              f"{TCP_CONNS} ingress connections kept: the first 76 of "
              f"{len(socks)} closed ({first}), the last 200 open "
              f"({200 - last})")
        s = socket.create_connection(("127.0.0.1", ing), timeout=30)
        s.sendall(wire_request(7, "lim", x[:1]))
        r = wire_answer(s)
        check(r is not None and r[0] == 7 and r[1] == 0,
              f"a new connection beside them is served: {r and r[:2]}")
        s.close()
        check("ingress: every connection is taken" in open(log).read(),
              "laminad logs the connections it closes")
    finally:
        for s in socks:
            s.close()


def http_connections(dep, state, x, log):
    """1,024 idle HTTP connections: one more is not served (libmicrohttpd
    accepts no more: it waits in the kernel's accept queue); once some
    go, it is served, and so is a request on a new connection."""
    host, port = base_url(dep, state).split("//")[1].split(":")
    socks = []
    try:
        for _ in range(HTTP_CONNS):
            socks.append(socket.create_connection((host, int(port)),
                                                  timeout=10))
        time.sleep(1)
        extra = socket.create_connection((host, int(port)), timeout=10)
        extra.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n"
                      b"Connection: close\r\n\r\n")
        extra.settimeout(2)
        try:
            early = extra.recv(4096)
        except socket.timeout:
            early = None
        check(early is None, f"HTTP connection {HTTP_CONNS + 1} is not "
              f"served while {HTTP_CONNS} are open: {early!r}")
        for s in socks[:8]:
            s.close()
        socks = socks[8:]
        extra.settimeout(30)
        try:
            late = extra.recv(4096)
        except OSError:
            late = b""
        check(late.startswith(b"HTTP/1.1 200"), f"... and served once "
              f"some are gone: {late[:40]!r}")
        extra.close()
        time.sleep(1)
        body, hd = infer_body(x[:1], True)
        st, _, _ = call(f"http://{host}:{port}", "POST",
                        "/v2/models/lim/infer", body, hd)
        check(st == 200, f"served once some are gone: {st}")
    finally:
        for s in socks:
            s.close()


def test_limits():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2400:
        raise SystemExit(77)  # not enough descriptors for the test
    resource.setrlimit(resource.RLIMIT_NOFILE,
                       (min(8192, hard) if hard != resource.RLIM_INFINITY
                        else 8192, hard))
    work, state, plan, (x, y) = setup("serving-limits", batch=128)
    try:
        # batches of 128 that wait 5 s: requests stay in the queue
        dep = deploy(plan, state, "--max-queue-delay-us", "5000000",
                     "--name", "lim")
        if not dep:
            return
        log = glob.glob(os.path.join(state, "laminad-*.log"))[0]
        window(dep, state, x, y)
        tcp_connections(dep, state, x, y, log)
        http_connections(dep, state, x, log)
    finally:
        cleanup(state)


def main():
    what = sys.argv[1:]
    if what == ["http"]:
        test_http()
    elif what == ["batching"]:
        test_batching()
    elif what == ["queue"]:
        test_queue()
    elif what == ["limits"]:
        test_limits()
    else:
        raise SystemExit("usage: test_serving.py http|batching|queue|"
                         "limits")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
