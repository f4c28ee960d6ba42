#!/usr/bin/python3
"""Benchmark a fleet lamina starts itself: the time from `lamina deploy` to
the first answer of ResNet-18 in 3 stages over four namespace hosts, cold
and warm, and the time `lamina devices` takes to list the fleet.

    tools/bench_fleet.py [--build build-release] [--rounds 3]
        [--hugepages no|auto] [--json FILE]

Four hosts (network namespaces A, B, C, D on one bridge, as the fleet
test makes them, tests/integration/netns.py), each of B, C and D running
OpenSSH's sshd with a key made here.  lamina runs in A.  Each round:

cold   no laminad anywhere: `lamina deploy` starts one on each of B, C and
       D over ssh, ships each its stages' files (the stores are empty),
       loads and starts them; then `lamina infer` of one sample.  Timed:
       deploy, and deploy + first answer.
warm   with the cold deployment still up: a second deployment of the same
       plan (laminads answering, files stored already), then one infer.
add    (when lamina has `devices add`) `lamina devices add ssh://root@H`
       for each of B, C and D into an empty devices cache, before any
       laminad runs: one ssh round trip that asks the host what it offers
       (`laminad --describe-host`); the mean per host.
devices  (when lamina has `devices`) `lamina devices --json` from A with
       the three laminads up: its wall time and how many it listed.

Then both are torn down and the round checks that no laminad is left.
Every answer is compared bitwise with `lamina run` on this host.  The
tables give medians over the rounds.  Root only; needs sshd and ssh.
Everything made (namespaces, sshd, laminads, files) is removed at the
end, also on failure.
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

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from benchlib import die, note, plan_doc, run  # noqa: E402
from netns import ADDR, Net  # noqa: E402

PORTS = {"B": 7810, "C": 7820, "D": 7830}


class Fleet:
    def __init__(self, args, net, work, env):
        self.args, self.net, self.work, self.env = args, net, work, env
        self.state = os.path.join(work, "state")
        os.makedirs(self.state, exist_ok=True)

    def lamina(self, *argv, timeout=900):
        """lamina in A: (seconds it took, its stdout); dies on failure."""
        t0 = time.monotonic()
        p = subprocess.run(["ip", "netns", "exec", self.net.ns["A"],
                            self.args.lamina, *argv], capture_output=True,
                           text=True, timeout=timeout, env=self.env)
        took = time.monotonic() - t0
        if p.returncode != 0:
            die(f"lamina {argv[0]}: {p.stderr.strip()}")
        return took, p.stdout

    def deploy_and_answer(self, plan, x, ref):
        """Seconds to deploy, seconds to the first answer (from the start
        of the deploy), and the deployment."""
        t0 = time.monotonic()
        took, out = self.lamina("deploy", plan, "--state-dir", self.state,
                                "--laminad", self.args.laminad,
                                "--hugepages", self.args.hugepages,
                                "--quiet")
        dep = out.strip().split()[-1]
        y = os.path.join(self.work, "y.npy")
        self.lamina("infer", dep, "--input", x, "--output", y,
                    "--state-dir", self.state)
        first = time.monotonic() - t0
        if np.load(y).tobytes() != np.load(ref).tobytes():
            die(f"{dep}: the answer differs from lamina run's")
        return took, first, dep

    def teardown(self, dep):
        self.lamina("teardown", dep, "--state-dir", self.state)


def prepare(args, work):
    """The slice folder, its plan over B, C and D, a sample and its
    answer from lamina run."""
    model = os.path.join(args.build, "tests", "models", "resnet18.onnx")
    if not os.path.exists(model):
        die(f"{model}: missing (meson compile -C {args.build} "
            "tests/models.stamp)")
    lam = os.path.join(work, "r18.lam")
    run([args.lamina, "slice", model, "-o", lam, "--force"], "slice")
    n = len(json.load(open(os.path.join(lam, "manifest.json")))["slices"])
    devs = [{"name": h, "cores": 1, "memory_bytes": 2 << 30,
             "numa_node": 0, "address": f"{ADDR[h]}:{PORTS[h]}",
             "ssh": f"root@{ADDR[h]}"} for h in "BCD"]
    k = n // 3
    stages = [{"device": "B", "slices": [0, k - 1], "cores": 1},
              {"device": "C", "slices": [k, 2 * k - 1], "cores": 1},
              {"device": "D", "slices": [2 * k, n - 1], "cores": 1}]
    plan = os.path.join(work, "plan.json")
    with open(plan, "w") as f:
        json.dump(plan_doc(lam, 1, n, devs, stages), f)
    x, ref = os.path.join(work, "x.npy"), os.path.join(work, "ref.npy")
    np.save(x, np.random.default_rng(5).standard_normal(
        (1, 3, 224, 224)).astype(np.float32))
    run([args.lamina, "run", model, "-i", x, "-o", ref], "lamina run")
    shipped = sum(os.path.getsize(os.path.join(lam, f))
                  for f in os.listdir(lam))
    return plan, x, ref, n, shipped


def has_devices(args):
    p = subprocess.run([args.lamina, "devices", "--help"],
                       capture_output=True, text=True)
    return p.returncode == 0 and "--laminad" in p.stdout


def add_hosts(fleet, i):
    """Mean seconds of `lamina devices add` per host, into an empty
    cache."""
    cache = os.path.join(fleet.work, f"cache-{i}")
    took = [fleet.lamina("devices", "add", f"ssh://root@{ADDR[h]}",
                         "--port", str(PORTS[h]), "--laminad",
                         fleet.args.laminad, "--state-dir", cache)[0]
            for h in "BCD"]
    return sum(took) / len(took)


def one_round(fleet, plan, x, ref, devices, i):
    net = fleet.net
    for h in "BCD":
        if net.laminads(h):
            die(f"a laminad runs in {h} before the cold deploy")
    r = {}
    if devices:
        r["add_s"] = add_hosts(fleet, i)
    cold, cold_first, dep = fleet.deploy_and_answer(plan, x, ref)
    r.update(cold_deploy_s=cold, cold_first_answer_s=cold_first)
    try:
        warm, warm_first, dep2 = fleet.deploy_and_answer(plan, x, ref)
        r.update(warm_deploy_s=warm, warm_first_answer_s=warm_first)
        fleet.teardown(dep2)
        if devices:
            took, out = fleet.lamina("devices", "--json")
            listed = json.loads(out)
            listed = listed.get("devices", listed) \
                if isinstance(listed, dict) else listed
            r.update(devices_s=took, devices_listed=len(listed))
    finally:
        fleet.teardown(dep)
    time.sleep(0.5)
    for h in "BCD":
        if net.laminads(h):
            die(f"teardown left a laminad in {h}")
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build-release"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--hugepages", choices=["no", "auto"], default="no")
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args()
    if os.geteuid() != 0 or not os.path.exists("/usr/sbin/sshd") or \
            not shutil.which("ssh"):
        die("needs root, sshd and ssh")
    args.build = os.path.abspath(args.build)
    args.lamina = os.path.join(args.build, "control", "lamina")
    args.laminad = os.path.join(args.build, "dataplane", "laminad")
    for f in (args.lamina, args.laminad):
        if not os.access(f, os.X_OK):
            die(f"{f}: not built (meson compile -C {args.build})")
    work = tempfile.mkdtemp(prefix="bench_fleet.")
    net = Net("lbf", "bf", hosts="ABCD")
    net.teardown()
    rounds = []
    try:
        net.setup()
        env = dict(os.environ, LAMINA_SSH=net.sshd(work, "BCD"))
        plan, x, ref, n, shipped = prepare(args, work)
        devices = has_devices(args)
        fleet = Fleet(args, net, work, env)
        note(f"load average before: {open('/proc/loadavg').read().split()[0]}")
        for i in range(args.rounds):
            r = one_round(fleet, plan, x, ref, devices, i)
            note(f"  round {i + 1}: " + ", ".join(
                f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                for k, v in r.items()))
            rounds.append(r)
    finally:
        for h in "BCD":
            for pid in net.laminads(h):
                os.kill(pid, signal.SIGKILL)
            subprocess.run([args.laminad, "--cleanup-port", str(PORTS[h])],
                           capture_output=True)
        net.teardown()
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    print(f"\nResNet-18 in 3 stages over 3 namespace hosts started over ssh "
          f"({n} slices, {shipped / 2**20:.1f} MiB shipped cold), medians "
          f"of {len(rounds)} rounds")
    print(f"  {'':34} {'deploy s':>9} {'first answer s':>15}")
    print(f"  {'cold (no laminad, empty stores)':34} "
          f"{med['cold_deploy_s']:9.2f} {med['cold_first_answer_s']:15.2f}")
    print(f"  {'warm (laminads up, files stored)':34} "
          f"{med['warm_deploy_s']:9.2f} {med['warm_first_answer_s']:15.2f}")
    if "add_s" in med:
        print(f"  lamina devices add ssh://...: {med['add_s']:.2f} s a host")
    if "devices_s" in med:
        print(f"  lamina devices: {med['devices_s']:.2f} s, listed "
              f"{med['devices_listed']:.0f}")
    else:
        print("  lamina devices: not in this build")
    note(f"load average after: {open('/proc/loadavg').read().split()[0]}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rounds": rounds, "medians": med}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
