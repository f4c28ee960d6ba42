#!/usr/bin/python3
"""A plan's stages on two laminads on two hosts, nothing lost with frames.

Namespaces A - M - B (netns.py), one laminad in A and one in B, each with
an af_packet port on its veth (laminad --port).  The laminads are driven
through lamina-client-test (describe for each port's MAC and address, then
LoadStage with the remote edges): stage 0 and the ingress in A, stage 1 in
B, whose output comes back to A's ingress.  Checks:
  - ResNet-18 split in two at batch 1 gives outputs bitwise equal to
    `lamina run` of the whole model;
  - with 1% and 5% of frames dropped in M both ways, 2,000 requests of the
    digits model from 8 clients are each answered exactly once with the
    right output (the ingress re-sends what was lost);
  - everything started is stopped and the namespaces are removed.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np

from harness import check, digits_references, summary
from netns import ADDR, Net

LAMINA = os.environ["LAMINA"]
LAMINAD = os.environ["LAMINAD"]
CLIENT = os.environ["LAMINA_CLIENT_TEST"]
MODELS = os.environ["LAMINA_MODELS"]
SRC = os.environ["LAMINA_SRC"]
TMP = os.path.join(os.environ["LAMINA_TMP"], f"hosts{os.getpid()}")
NET = Net("lmh", "lh", both_ways=True)
CTL, ING = 7790, 7791  # each namespace has its own loopback
DEP_TAG = f"{os.getpid() & 0xffffff:06x}"


def run(*args):
    return subprocess.run([LAMINA, *args], capture_output=True, text=True)


class Laminad:
    """A laminad in namespace `host`, with its port on the host's veth."""

    def __init__(self, host, core):
        self.host = host
        self.state = os.path.join(TMP, "state" + host)
        self.pid = None
        p = NET.ns_run(host, LAMINAD, "--control-port", str(CTL),
                       "--hugepages", "no", "--memory", "1024",
                       "--cores", str(core), "--state-dir", self.state,
                       "--port", NET.ifs[host.lower()], ok=False)
        check(p.returncode == 0, f"laminad starts in {host}: {p.stderr}")
        if p.returncode == 0:
            st = json.load(open(os.path.join(self.state,
                                             f"laminad-{CTL}.json")))
            self.pid = st["pid"]
        self.log = os.path.join(self.state, f"laminad-{CTL}.log")

    def client(self, *args, ingress=False, timeout=300):
        return subprocess.run(
            ["ip", "netns", "exec", NET.ns[self.host], CLIENT,
             str(ING if ingress else CTL), *map(str, args)],
            capture_output=True, text=True, timeout=timeout)

    def describe(self):
        p = self.client("describe")
        check(p.returncode == 0, f"describe {self.host}: {p.stderr}")
        return json.loads(p.stdout) if p.returncode == 0 else {}

    def alive(self):
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                return f.read().split()[2] != "Z"
        except (FileNotFoundError, TypeError):
            return False

    def stop(self):
        if not self.pid:
            return
        self.client("shutdown", timeout=30)
        for _ in range(100):
            if not self.alive():
                break
            time.sleep(0.05)
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            check(False, f"laminad in {self.host} exits on shutdown")


def ip_str(v):
    return ".".join(str(v >> s & 255) for s in (24, 16, 8, 0))


def deploy(a, b, dep, lam, n, batch, retry_ms):
    """Stage 0 (slices 0..n/2-1) in A, stage 1 in B, answers back to A."""
    da, db = a.describe(), b.describe()
    check(da.get("port_ip") and ip_str(da["port_ip"]) == ADDR["A"] and
          len(da.get("port_mac", "")) == 17 and da.get("port_mtu") == 9000,
          f"describe reports A's port: {da}")
    to_a = f"next={da.get('port_mac')}@{ADDR['A']}"
    to_b = f"next={db.get('port_mac')}@{ADDR['B']}"
    k = n // 2
    p = b.client("load-one", dep, 1, 2, lam, k, n - 1, batch,
                 "input=remote", to_a)
    check(p.returncode == 0, f"load stage 1 of {dep} in B: {p.stderr}")
    p = a.client("load-one", dep, 0, 2, lam, 0, k - 1, batch, to_b,
                 "answers=remote", f"retry={retry_ms}")
    check(p.returncode == 0, f"load stage 0 of {dep} in A: {p.stderr}")
    for d, host in ((b, "B"), (a, "A")):  # from the last to the first
        p = d.client("start", dep)
        check(p.returncode == 0, f"start {dep} in {host}: {p.stderr}")


def teardown_dep(a, b, dep):
    for d in (a, b):
        p = d.client("teardown", dep)
        check(p.returncode == 0, f"teardown {dep} in {d.host}: {p.stderr}")


def resnet(a, b):
    path = os.path.join(MODELS, "resnet18.onnx")
    if not check(os.path.exists(path), f"{path} (build the test models)"):
        return
    lam = os.path.join(TMP, "resnet18.lam")
    p = run("slice", path, "-o", lam, "--force")
    check(p.returncode == 0, f"slice resnet18: {p.stderr}")
    n = len(json.load(open(os.path.join(lam, "manifest.json")))["slices"])
    x = np.random.default_rng(7).standard_normal((1, 3, 224, 224))
    xf, rf, yf = (os.path.join(TMP, f) for f in ("x.npy", "ref.npy",
                                                 "y.npy"))
    np.save(xf, x.astype(np.float32))
    p = run("run", path, "--input", xf, "--output", rf)
    check(p.returncode == 0, f"lamina run resnet18: {p.stderr}")
    dep = f"d-{DEP_TAG}01"
    deploy(a, b, dep, lam, n, 1, 500)
    p = a.client("infer", dep, yf, xf, ingress=True)
    if check(p.returncode == 0, f"infer resnet18 over A and B: {p.stderr}"):
        y, ref = np.load(yf), np.load(rf)
        check(y.shape == ref.shape and y.dtype == ref.dtype and
              y.tobytes() == ref.tobytes(),
              "resnet18 over two hosts: bitwise equal to lamina run")
        print(f"resnet18 split at slice {n // 2} of {n} over A and B: "
              "bitwise equal to lamina run", flush=True)
    teardown_dep(a, b, dep)


def resends(log, dep):
    """(resent, duplicate answers, given up) logged at teardown."""
    try:
        text = open(log).read()
    except OSError:
        return None
    m = re.findall(rf"deployment {dep}: (\d+) request\(s\) re-sent, (\d+) "
                   r"duplicate answer\(s\) dropped, (\d+) given up", text)
    return tuple(map(int, m[-1])) if m else None


def lossy(a, b):
    lam = os.path.join(TMP, "digits.lam")
    p = run("slice", os.path.join(SRC, "models", "digits.onnx"), "-o", lam,
            "--force")
    check(p.returncode == 0, f"slice digits: {p.stderr}")
    n = len(json.load(open(os.path.join(lam, "manifest.json")))["slices"])
    xs, es = digits_references(TMP)
    for i, pct in enumerate((1, 5)):
        dep = f"d-{DEP_TAG}{i + 2:02x}"
        NET.drop(pct)
        before = NET.dropped("A") + NET.dropped("B")
        deploy(a, b, dep, lam, n, 1, 50)
        p = a.client("stress", dep, xs, es, 8, 2000, 8, ingress=True,
                     timeout=600)
        check(p.returncode == 0 and "ok 2000 requests" in p.stdout,
              f"{pct}% of frames dropped: 2,000 requests answered once "
              f"and right: {p.stdout}{p.stderr}")
        print(f"{pct}% loss:", p.stdout.strip(), flush=True)
        lost = NET.dropped("A") + NET.dropped("B") - before
        check(lost > 0, f"{pct}%: frames were really dropped ({lost})")
        teardown_dep(a, b, dep)
        r = resends(a.log, dep)
        print(f"{pct}% loss: {lost} frames dropped; ingress: re-sent, "
              f"duplicate answers dropped, given up: {r}", flush=True)
        check(r is not None and r[0] > 0 and r[2] == 0,
              f"{pct}%: lost requests were re-sent, none given up ({r})")
    NET.drop(0)


def main():
    if os.geteuid() != 0:
        print("SKIP: needs root for network namespaces")
        return 77
    os.makedirs(TMP, exist_ok=True)
    NET.teardown()
    laminads = []
    try:
        NET.setup()
        NET.drop(0)
        a = Laminad("A", 0)
        laminads.append(a)
        b = Laminad("B", 1 if os.cpu_count() > 1 else 0)
        laminads.append(b)
        if a.pid and b.pid:
            resnet(a, b)
            lossy(a, b)
    finally:
        for d in laminads:
            d.stop()
        NET.teardown()
    check(not any(d.alive() for d in laminads), "every laminad stopped")
    check(not NET.left(), "namespaces removed")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
