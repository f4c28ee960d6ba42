#!/usr/bin/python3
"""Integration test of laminad, the dataplane service, through its client
library (lamina-client-test) and raw sockets.

Starts laminad without hugepages on free loopback ports and checks:
  - outputs through 1-, 2- and 4-stage deployments of the digits model,
    ResNet-18 and MobileNetV2, at batch 1 and 8, are bitwise equal to
    `lamina run` of the whole model;
  - 10,000 requests from 8 concurrent clients are each answered once with
    their own output (digits, 2 stages), also with a replicated stage;
  - bad requests (wrong shape or dtype, truncated, oversize, unknown
    deployment, bad framing) get error answers, or for broken framing a
    closed connection, while the service keeps serving;
  - malformed control messages get error replies; a client older than
    the fleet handshake gets one clear error;
  - two laminads coexist; SIGTERM and Shutdown both exit cleanly, leaving
    no state file and no DPDK run folder.
"""
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

import numpy as np

import ctlwire
from harness import (check, digits_references, fleet_key_path, free_port,
                     recv_exact, summary)

LAMINA = os.environ["LAMINA"]
LAMINAD = os.environ["LAMINAD"]
CLIENT = os.environ["LAMINA_CLIENT_TEST"]
MODELS = os.environ["LAMINA_MODELS"]
SRC = os.environ["LAMINA_SRC"]
TMP = os.path.join(os.environ["LAMINA_TMP"], "laminad")
STATE = os.path.join(TMP, "state")

EINVAL, ENOENT, EMSGSIZE, EAGAIN = 22, 2, 90, 11
MAGIC_RQ, MAGIC_RS = 0x51524d4c, 0x53524d4c


class Laminad:
    def __init__(self):
        self.ctl, self.ing = free_port(), free_port()
        p = subprocess.run([LAMINAD, "--control-port", str(self.ctl),
                            "--ingress-port", str(self.ing),
                            "--hugepages", "no", "--memory", "512",
                            "--state-dir", STATE,
                            "--fleet-key", fleet_key_path()],
                           capture_output=True, text=True, timeout=60)
        check(p.returncode == 0, f"laminad starts: {p.stderr}")
        self.state_file = os.path.join(STATE, f"laminad-{self.ctl}.json")
        self.state = json.load(open(self.state_file))
        self.pid = self.state["pid"]

    def client(self, *args, ingress=False, timeout=300):
        port = self.ing if ingress else self.ctl
        return subprocess.run([CLIENT, str(port), *map(str, args)],
                              capture_output=True, text=True,
                              timeout=timeout)

    def alive(self):
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        # a zombie of ours is not alive
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                return f.read().split()[2] != "Z"
        except FileNotFoundError:
            return False

    def wait_exit(self, what):
        for _ in range(200):
            if not self.alive():
                break
            time.sleep(0.05)
        check(not self.alive(), f"{what}: laminad exits")
        check(not os.path.exists(self.state_file),
              f"{what}: state file removed")
        check(not os.path.exists(self.state["run_dir"]),
              f"{what}: DPDK run folder {self.state['run_dir']} removed")
        check(not os.path.exists(self.store()),
              f"{what}: its store of model files removed")
        check(not os.path.exists(os.path.join(
            "/var/run/dpdk", self.state["file_prefix"])),
            f"{what}: nothing under /var/run/dpdk")

    def store(self, kind=""):
        return os.path.join(STATE, f"laminad-{self.ctl}.store", kind)

    def stored(self):
        """The files in the store, complete."""
        try:
            return sorted(os.listdir(self.store("sha256")))
        except OSError:
            return []

    def kill(self):
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)


def run(*args):
    return subprocess.run([LAMINA, *args], capture_output=True, text=True)


def slice_model(path, name):
    out = os.path.join(TMP, name + ".lam")
    p = run("slice", path, "-o", out, "--force")
    check(p.returncode == 0, f"slice {name}: {p.stderr}")
    return out, json.load(open(os.path.join(out, "manifest.json")))


def ranges(n, k):
    """k contiguous ranges covering n slices."""
    k = min(k, n)
    cuts = [round(i * n / k) for i in range(k + 1)]
    return [f"{cuts[i]}-{cuts[i + 1] - 1}" for i in range(k)]


def bitwise(d, model, name, man, rng):
    inp = man["inputs"][0]
    for batch in (1, 8):
        shape = [batch] + inp["shape"][1:]
        x = rng.standard_normal(shape).astype(np.float32)
        xf = os.path.join(TMP, f"{name}-x{batch}.npy")
        rf = os.path.join(TMP, f"{name}-ref{batch}.npy")
        np.save(xf, x)
        p = run("run", model, "--input", xf, "--output", rf,
                "--batch", str(batch))
        check(p.returncode == 0, f"lamina run {name}: {p.stderr}")
        ref = np.load(rf)
        for k in (1, 2, 4):
            dep = f"{name}-s{k}-b{batch}"
            lam = os.path.join(TMP, name + ".lam")
            p = d.client("load", dep, lam, batch,
                         *ranges(len(man["slices"]), k))
            check(p.returncode == 0, f"load {dep}: {p.stderr}")
            yf = os.path.join(TMP, f"{dep}-y.npy")
            p = d.client("infer", dep, yf, xf, ingress=True)
            ok = p.returncode == 0
            check(ok, f"infer {dep}: {p.stderr}")
            if ok:
                y = np.load(yf)
                check(y.shape == ref.shape and y.dtype == ref.dtype and
                      y.tobytes() == ref.tobytes(),
                      f"{dep}: bitwise equal to lamina run "
                      f"(max diff {np.abs(y - ref).max()})")
            p = d.client("teardown", dep)
            check(p.returncode == 0, f"teardown {dep}: {p.stderr}")


# ---- raw ingress requests ----

def request(rid, dep, tensors, length=None, magic=MAGIC_RQ):
    body = struct.pack("<Q32sI", rid, dep.encode(), len(tensors))
    for dt, dims, data in tensors:
        body += struct.pack("<II", dt, len(dims))
        body += struct.pack(f"<{len(dims)}q", *dims)
        body += struct.pack("<Q", len(data)) + data
    return struct.pack("<II", magic,
                       len(body) if length is None else length) + body


def answer(s):
    """(request id, status, message or tensors), or None when closed."""
    h = recv_exact(s, 8)
    if h is None:
        return None
    magic, length = struct.unpack("<II", h)
    body = recv_exact(s, length)
    rid, status, n = struct.unpack_from("<QiI", body)
    if status:
        return rid, status, body[16:16 + n].decode()
    off, out = 16, []
    for _ in range(n):
        dt, rank = struct.unpack_from("<II", body, off)
        dims = struct.unpack_from(f"<{rank}q", body, off + 8)
        nb, = struct.unpack_from("<Q", body, off + 8 + 8 * rank)
        off += 16 + 8 * rank
        out.append((dt, dims, body[off:off + nb]))
        off += nb
    return rid, 0, out


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def bad_requests(d, dep, x, ref):
    good = (1, list(x.shape), x.tobytes())
    s = connect(d.ing)
    s.sendall(request(1, dep, [good]))
    a = answer(s)
    check(a is not None and a[0] == 1 and a[1] == 0 and
          a[2][0][2] == ref.tobytes(), "raw request answered bitwise")
    cases = [
        ("wrong shape", [(1, [1, 1, 8, 9], x.tobytes() + bytes(32))],
         -EINVAL, "expected float32 1x1x8x8"),
        ("wrong dtype", [(11, list(x.shape), x.astype(np.float64)
                          .tobytes())], -EINVAL, "float64"),
        ("wrong count", [good, good], -EINVAL, "takes 1 input"),
        ("wrong nbytes", [(1, list(x.shape), x.tobytes()[:-4])], -EINVAL,
         "bytes"),
        ("rank 9", [(1, [1] * 9, x.tobytes())], -EINVAL, "rank 9"),
    ]
    for i, (what, tensors, status, needle) in enumerate(cases):
        s.sendall(request(100 + i, dep, tensors))
        a = answer(s)
        check(a is not None and a[0] == 100 + i and a[1] == status and
              needle in a[2], f"{what}: error answer {a}")
    # unknown deployment, and a length beyond what the tensors use
    s.sendall(request(200, "nosuch", [good]))
    a = answer(s)
    check(a is not None and a[1] == -ENOENT and "nosuch" in a[2],
          f"unknown deployment: {a}")
    raw = request(201, dep, [good])
    raw = raw[:4] + struct.pack("<I", len(raw) - 8 + 16) + raw[8:] + \
        bytes(16)
    s.sendall(raw)
    a = answer(s)
    check(a is not None and a[0] == 201 and a[1] == -EINVAL and
          "after the last tensor" in a[2], f"trailing bytes: {a}")
    # pipelined: the connection still serves, answers matched by id
    s.sendall(request(300, dep, [good]) + request(301, dep, [good]))
    got = sorted([answer(s), answer(s)], key=lambda a: a[0])
    check([a[0] for a in got] == [300, 301] and
          all(a[1] == 0 and a[2][0][2] == ref.tobytes() for a in got),
          "the same connection serves after every error")
    s.close()
    # oversize: refused by its length alone
    s = connect(d.ing)
    s.sendall(request(400, dep, [], length=(256 << 20) + 1)[:52])
    a = answer(s)
    check(a is not None and a[0] == 400 and a[1] == -EMSGSIZE,
          f"oversize: {a}")
    s.close()
    # broken framing closes that connection only
    s = connect(d.ing)
    s.sendall(request(500, dep, [good], magic=0x12345678))
    check(answer(s) is None, "bad magic: connection closed")
    s.close()
    s = connect(d.ing)
    s.sendall(request(501, dep, [good])[:70])
    s.close()  # truncated mid-request
    s = connect(d.ing)
    s.sendall(request(502, dep, [good]))
    a = answer(s)
    check(a is not None and a[0] == 502 and a[1] == 0,
          "serves after a truncated request and a bad magic")
    s.close()


# ---- raw control messages ----

def control_raw(d):
    key = ctlwire.load_key(fleet_key_path())
    ch = ctlwire.Channel(d.ctl, key)
    check(ch.fp == ctlwire.fingerprint(key),
          "the greeting carries the fleet key's fingerprint")
    # id 7, describe {}
    r = ch.call(7, ctlwire.DESCRIBE)
    check(r is not None and r[1] == [7] and 10 in r, "raw describe")
    ch.send(b"\xff\xff\xff\xff\xff")
    r = ch.recv()
    check(r is not None and "lamina.Request" in ctlwire.error_of(r)[1],
          f"garbage gets an error reply: {r}")
    ch.send_raw(struct.pack(">I", 17 << 20))
    r = ch.recv()
    check(r is not None and "16 MiB" in ctlwire.error_of(r)[1],
          "oversize control message: error reply")
    check(ch.recv() is None, "then the connection is closed")
    ch.close()
    # a client older than the handshake sends its request at once and
    # reads the greeting as the reply: an error saying what to do
    s = connect(d.ctl)
    s.sendall(struct.pack(">I", 4) + b"\x08\x07\x52\x00")
    n, = struct.unpack(">I", recv_exact(s, 4))
    reply = ctlwire.parse(recv_exact(s, n))
    err = ctlwire.error_of(reply)
    check(reply.get(1, [0]) == [0] and err and "fleet handshake" in err[1],
          f"an old client gets one clear error: {err}")
    # (laminad's refusal of the request it sent, then the end)
    f = ctlwire.recv_frame(s)
    check(f is not None and "before the fleet handshake" in
          ctlwire.error_of(ctlwire.parse(f))[1] and
          recv_exact(s, 1) is None, "then the connection is closed")
    s.close()


def shipped(d, lam, man):
    """Model files are shipped into laminad's store once, shared by the
    deployments that use them, and removed when none does."""
    n = len(man["slices"])
    for dep in ("ship1", "ship2"):
        p = d.client("load", dep, lam, 1, f"0-{n - 1}")
        check(p.returncode == 0, f"load {dep}: {p.stderr}")
    check(len(d.stored()) == n + 1,
          f"the store holds the manifest and {n} slices once: "
          f"{len(d.stored())} files")
    models = sorted(os.listdir(d.store("models")))
    check(models == ["ship1", "ship2"], f"a folder per deployment: {models}")
    d.client("teardown", "ship1")
    check(len(d.stored()) == n + 1 and
          os.listdir(d.store("models")) == ["ship2"],
          "files ship2 uses stay when ship1 goes")
    d.client("teardown", "ship2")
    check(not d.stored() and not os.listdir(d.store("models")),
          f"no deployment uses them: removed ({d.stored()})")


def control_errors(d, lam):
    for args, needle in [
            (("load-one", "e1", 0, 1, "/nonexistent", 0, 0, 1),
             "/nonexistent"),
            (("load-one", "e1", 0, 1, lam, 0, 99, 1), "99"),
            (("load-one", "e1", 2, 1, lam, 0, 0, 1), "stage 2"),
            (("load-one", "bad id!", 0, 1, lam, 0, 0, 1), "deployment id"),
            (("load-one", "e1", 0, 1, "relative", 0, 0, 1), "its store"),
            (("load-one", "e1", 0, 1, "/etc", 0, 0, 1), "its store"),
            # a file that does not hash to its name, names that are not
            # plain, a file the store does not have
            (("push", "/etc/hostname", "00" * 32), "do not hash"),
            (("load-files", "e1", "../passwd=" + "00" * 32), "plain name"),
            (("load-files", "e1", "manifest.json=" + "ab" * 32),
             "not in the store"),
            (("load-one", "e1", 0, 1, lam, 0, 0, 0), "batch"),
            (("start", "nosuch"), "no deployment"),
            (("stats", "nosuch"), "no deployment"),
            (("empty",), "no body")]:
        p = d.client(*args)
        check(p.returncode != 0 and needle in p.stderr,
              f"control {args}: {p.stderr!r}")
    p = d.client("teardown", "nosuch")
    check(p.returncode == 0, "teardown of an unknown deployment is done")
    # half loaded: start names the missing stage
    p = d.client("load-one", "half", 0, 2, lam, 0, 1, 1)
    check(p.returncode == 0, f"load one of two stages: {p.stderr}")
    p = d.client("start", "half")
    check(p.returncode != 0 and "stage 1 of 2" in p.stderr,
          f"start of a half-loaded deployment: {p.stderr!r}")
    p = d.client("load-one", "half", 0, 2, lam, 0, 1, 1)
    check(p.returncode != 0 and "already" in p.stderr, "stage loaded twice")
    check(d.client("teardown", "half").returncode == 0, "teardown half")


def main():
    shutil.rmtree(TMP, ignore_errors=True)
    os.makedirs(STATE)
    rng = np.random.default_rng(7)
    d = Laminad()
    d2 = None
    try:
        desc = json.loads(d.client("describe").stdout)
        check(desc["ingress_port"] == d.ing and desc["numa"] and
              desc["worker_cores"] and not desc["hugepages"],
              f"describe: {desc}")
        # two laminads coexist
        d2 = Laminad()
        check(d2.alive() and d2.state["file_prefix"] !=
              d.state["file_prefix"], "a second laminad runs beside")

        digits, dman = slice_model(os.path.join(SRC, "models",
                                                "digits.onnx"), "digits")
        control_errors(d, digits)
        control_raw(d)
        bitwise(d, os.path.join(SRC, "models", "digits.onnx"), "digits",
                dman, rng)
        for m in ("resnet18", "mobilenet_v2"):
            path = os.path.join(MODELS, m + ".onnx")
            if not os.path.exists(path):
                check(False, f"{path} missing (build the test models)")
                continue
            _, man = slice_model(path, m)
            bitwise(d, path, m, man, rng)

        shipped(d, digits, dman)

        # many clients: per-sample references from lamina run
        xs, es = digits_references(TMP)
        x, refs = np.load(xs), list(np.load(es)[:, None])
        n = len(dman["slices"])
        for dep, stages in [("many", ranges(n, 2)),
                            ("replicas", [f"0-{n // 2 - 1}",
                                          f"{n // 2}-{n - 1}@0+1"])]:
            p = d.client("load", dep, digits, 1, *stages)
            check(p.returncode == 0, f"load {dep}: {p.stderr}")
            total = 10000 if dep == "many" else 2000
            p = d.client("stress", dep, xs, es, 8, total, 16, ingress=True)
            check(p.returncode == 0 and f"ok {total} requests" in p.stdout,
                  f"{dep}: {total} requests from 8 clients: "
                  f"{p.stdout}{p.stderr}")
            print(dep, p.stdout.strip())
            st = json.loads(d.client("stats", dep).stdout)
            check(st["requests"] == total and st["errors"] == 0 and
                  sum(st["counts"]) == total,
                  f"{dep}: stats count every answer once")
            check(all(s["requests"] == total and s["busy_cycles"] > 0 and
                      sum(s["counts"]) == total for s in st["stages"]),
                  f"{dep}: every stage ran every request")
            if dep == "replicas":
                check(sorted(st["stages"][1]["cores"]) == [0, 1],
                      "the replicated stage runs on two cores")

        # bad requests against the 2-stage digits deployment
        bad_requests(d, "many", x[:1], refs[0])
        st = json.loads(d.client("stats", "many").stdout)
        check(st["errors"] >= 6, f"refusals counted: {st['errors']}")
        # stop: requests are refused, start again: served
        check(d.client("stop", "many").returncode == 0, "stop")
        s = connect(d.ing)
        s.sendall(request(9, "many", [(1, [1, 1, 8, 8], x[:1].tobytes())]))
        a = answer(s)
        check(a is not None and a[1] == -EAGAIN, f"stopped: {a}")
        check(d.client("start", "many").returncode == 0, "start again")
        s.sendall(request(10, "many", [(1, [1, 1, 8, 8], x[:1].tobytes())]))
        a = answer(s)
        check(a is not None and a[1] == 0, f"served again: {a}")
        s.close()
        desc = json.loads(d.client("describe").stdout)
        check(sorted(desc["deployments"]) == ["many", "replicas"],
              f"describe lists deployments: {desc['deployments']}")

        # clean exits: SIGTERM for the second, Shutdown for the first
        os.kill(d2.pid, signal.SIGTERM)
        d2.wait_exit("SIGTERM")
        p = d.client("shutdown")
        check(p.returncode == 0, f"shutdown: {p.stderr}")
        d.wait_exit("shutdown")
    finally:
        d.kill()
        if d2:
            d2.kill()
    return summary()


if __name__ == "__main__":
    sys.exit(main())
