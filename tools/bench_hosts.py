#!/usr/bin/python3
"""Benchmark: ResNet-18 split over two hosts, beside the split in one laminad.

    tools/bench_hosts.py [--build build] [--model resnet18.onnx]
        [--rounds 3] [--requests 200] [--clients 4] [--window 1]

As root (network namespaces).  The end-to-end item of the across-hosts
issue's Performance section, in one run:

  hosts     namespaces A - M(bridge) - B (tests/integration/netns.py, veth,
            MTU 9000), one laminad in each with an af_packet port on its
            veth (laminad --port): stage 0 and the ingress in A on cpu 0,
            stage 1 in B on cpu 1, answers back to A over the port.
  1 process one laminad (in A, no port) running the same two stages on cpu 0
            and cpu 1, the edge between them an in-process ring.

The model is cut in the middle of its slices (as tests/integration/
test_hosts.py does), batch 1, workers busy-polling.  Every round measures
both (the order flips every round): a warm-up, then --requests requests
from --clients clients with --window in flight each
(tests/lamina-client-test stress; every answer checked bitwise against
`lamina run`).  The table gives the medians over the rounds of requests/s
and the client-side p50/p99 latency (send to answer).  Not a test: it
checks nothing but the answers, and on a shared machine the figures move.
Every laminad is stopped and the namespaces removed, even on failure.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from netns import Net, pid_alive  # noqa: E402
from benchlib import die, run, stress_result  # noqa: E402

CTL, LOCAL_CTL = 7790, 7794


class Laminad:
    """A laminad in namespace `host` of net, control port ctl."""

    def __init__(self, args, net, host, ctl, cores, state, *extra):
        self.args, self.net, self.host, self.ctl = args, net, host, ctl
        self.pid = None
        os.makedirs(state, exist_ok=True)
        run(["ip", "netns", "exec", net.ns[host], args.laminad,
             "--control-port", str(ctl), "--hugepages", "no", "--memory",
             "1024", "--cores", cores, "--poll", "busy", "--state-dir",
             state, "--fleet-key", args.fleet_key, *extra],
            f"laminad in {host}")
        with open(os.path.join(state, f"laminad-{ctl}.json")) as f:
            self.pid = json.load(f)["pid"]

    def client(self, *argv, ingress=False, timeout=600):
        port = self.ctl + 1 if ingress else self.ctl
        return run(["ip", "netns", "exec", self.net.ns[self.host],
                    self.args.client, str(port), *map(str, argv)],
                   f"{argv[0]} on laminad {self.host}:{self.ctl}", timeout)

    def alive(self):
        return pid_alive(self.pid)

    def stop(self):
        if not self.alive():
            return
        try:
            self.client("shutdown", timeout=30)
        except SystemExit:
            pass
        for _ in range(100):
            if not self.alive():
                return
            time.sleep(0.05)
        os.kill(self.pid, signal.SIGKILL)


def ip_str(v):
    return ".".join(str(v >> s & 255) for s in (24, 16, 8, 0))


def deploy_hosts(a, b, dep, lam, n):
    da, db = (json.loads(d.client("describe")) for d in (a, b))
    k = n // 2
    b.client("load-one", dep, 1, 2, lam, k, n - 1, 1, "input=remote",
             f"next={da['port_mac']}@{ip_str(da['port_ip'])}")
    a.client("load-one", dep, 0, 2, lam, 0, k - 1, 1,
             f"next={db['port_mac']}@{ip_str(db['port_ip'])}",
             "answers=remote", "retry=500")
    b.client("start", dep)
    a.client("start", dep)


def deploy_local(c, dep, lam, n):
    k = n // 2
    c.client("load", dep, lam, 1, f"0-{k - 1}@0", f"{k}-{n - 1}@1")


def stress(args, d, dep, x, e, total):
    out = d.client("stress", dep, x, e, args.clients, total, args.window,
                   ingress=True)
    return stress_result(out, f"stress {dep}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--model")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--window", type=int, default=1)
    args = ap.parse_args()
    if os.geteuid() != 0:
        die("needs root (network namespaces)")
    if not 1 <= args.rounds <= 20 or not 1 <= args.clients <= 64 or \
            not args.clients <= args.requests <= 100000:
        die("--rounds 1..20, --clients 1..64, --requests clients..100000")
    b = args.build
    args.laminad = os.path.join(b, "dataplane", "laminad")
    args.client = os.path.join(b, "tests", "lamina-client-test")
    lamina = os.path.join(b, "control", "lamina")
    model = args.model or os.path.join(b, "tests", "models",
                                       "resnet18.onnx")
    for f in (args.laminad, args.client, lamina, model):
        if not os.path.exists(f):
            die(f"{f} is missing (build first)")
    # the fleet key this user's lamina (and lamina-client-test) proves
    args.fleet_key = subprocess.run([lamina, "fleet", "key", "--path"],
                                    capture_output=True, text=True,
                                    check=True).stdout.strip()

    work = tempfile.mkdtemp(prefix=f"bench_hosts{os.getpid()}.")
    lam = os.path.join(work, "model.lam")
    run([lamina, "slice", model, "-o", lam, "--force"], "lamina slice")
    with open(os.path.join(lam, "manifest.json")) as f:
        n = len(json.load(f)["slices"])
    import numpy as np
    x, e = os.path.join(work, "x.npy"), os.path.join(work, "expected.npy")
    np.save(x, np.random.default_rng(0).uniform(-1, 1, (1, 3, 224, 224))
            .astype(np.float32))
    run([lamina, "run", model, "--input", x, "--output", e], "lamina run")

    net = Net("lbh", "lb")
    net.teardown()
    laminads = []
    res = {"hosts": [], "local": []}
    try:
        net.setup()
        net.drop(0)
        a = Laminad(args, net, "A", CTL, "0", os.path.join(work, "A"),
                    "--port", net.ifs["a"])
        laminads.append(a)
        bb = Laminad(args, net, "B", CTL, "1", os.path.join(work, "B"),
                     "--port", net.ifs["b"])
        laminads.append(bb)
        c = Laminad(args, net, "A", LOCAL_CTL, "0-1",
                    os.path.join(work, "L"))
        laminads.append(c)
        print(f"{os.path.basename(model)} at batch 1, {n} slices cut at "
              f"{n // 2}; {args.requests} requests from {args.clients} "
              f"clients x {args.window} in flight; {args.rounds} rounds; "
              f"load average {os.getloadavg()[0]:.2f}", flush=True)
        for r in range(args.rounds):
            order = ("hosts", "local") if r % 2 == 0 else ("local", "hosts")
            for cfg in order:
                dep = f"bh-{os.getpid() & 0xffff:04x}-{r}{cfg[0]}"
                ing = a if cfg == "hosts" else c
                if cfg == "hosts":
                    deploy_hosts(a, bb, dep, lam, n)
                else:
                    deploy_local(c, dep, lam, n)
                stress(args, ing, dep, x, e, 2 * args.clients)  # warm-up
                m = stress(args, ing, dep, x, e, args.requests)
                res[cfg].append(m)
                print(f"round {r + 1} {cfg}: {m['rps']:.1f} requests/s, "
                      f"p50 {m['p50_ms']:.2f} ms, p99 {m['p99_ms']:.2f} ms",
                      file=sys.stderr, flush=True)
                for d in ((a, bb) if cfg == "hosts" else (c,)):
                    d.client("teardown", dep)
    finally:
        for d in laminads:
            d.stop()
        net.teardown()
        if net.left():
            print("bench_hosts: namespaces left behind", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)

    def med(cfg, key):
        return statistics.median(m[key] for m in res[cfg])

    print()
    print("| configuration | requests/s | p50 ms | p99 ms |")
    print("| --- | ---: | ---: | ---: |")
    for cfg, label in (("hosts", "2 stages on 2 hosts (af_packet, veth)"),
                       ("local", "2 stages in 1 laminad (rings)")):
        print(f"| {label} | {med(cfg, 'rps'):.1f} | "
              f"{med(cfg, 'p50_ms'):.2f} "
              f"| {med(cfg, 'p99_ms'):.2f} |")
    print(f"\nhosts / 1 process throughput: "
          f"{med('hosts', 'rps') / med('local', 'rps'):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
