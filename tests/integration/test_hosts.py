#!/usr/bin/python3
"""A plan's stages on laminads on two and three hosts, nothing lost.

Namespaces A, B, C joined by a bridge in M (netns.py), one laminad in each
host with an af_packet port on its veth (laminad --port), listening on
every address.  Checks:
  - `lamina plan` over devices A, B (and C) makes a stage on each, and
    `lamina deploy`, run in A, loads and joins them (finding the laminads,
    their ports' MACs and addresses): ResNet-18 at batch 1 over two and
    over three hosts gives outputs through `lamina infer` bitwise equal to
    `lamina run` of the whole model; `lamina status` shows every stage;
    `lamina teardown` removes the stages from every laminad and leaves the
    laminads (lamina did not start them) running;
  - the same split driven through lamina-client-test (describe for each
    port's MAC and address, then LoadStage with the remote edges: stage 0
    and the ingress in A, stage 1 in B, whose output comes back to A):
    bitwise equal to `lamina run`;
  - with 1% and 5% of frames dropped in M both ways, 2,000 requests of the
    digits model from 8 clients are each answered exactly once with the
    right output (the ingress re-sends what was lost);
  - with laminads whose ports duplicate 1% and reorder 2% of the frames
    they send (laminad --fault) and 1% dropped in M, the same: and the
    logs show the duplicates were made and dropped by the receivers;
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

from harness import check, digits_references, fleet_key_path, summary
from netns import ADDR, Net, pid_alive

LAMINA = os.environ["LAMINA"]
LAMINAD = os.environ["LAMINAD"]
CLIENT = os.environ["LAMINA_CLIENT_TEST"]
MODELS = os.environ["LAMINA_MODELS"]
SRC = os.environ["LAMINA_SRC"]
TMP = os.path.join(os.environ["LAMINA_TMP"], f"hosts{os.getpid()}")
NET = Net("lmh", "lh", both_ways=True, hosts="ABC")
CTL, ING = 7790, 7791  # each namespace has its own loopback
DEP_TAG = f"{os.getpid() & 0xffffff:06x}"


def run(*args):
    return subprocess.run([LAMINA, *args], capture_output=True, text=True)


class Laminad:
    """A laminad in namespace `host`, with its port on the host's veth."""

    def __init__(self, host, core, *extra):
        self.host = host
        self.state = os.path.join(TMP, "state" + host)
        self.pid = None
        p = NET.ns_run(host, LAMINAD, "--control-port", str(CTL),
                       "--hugepages", "no", "--memory", "1024",
                       "--cores", str(core), "--state-dir", self.state,
                       "--listen", "0.0.0.0", "--fleet-key", fleet_key_path(),
                       "--port", NET.ifs[host.lower()], *extra, ok=False)
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
        return pid_alive(self.pid)

    def stop(self):
        if not self.pid or not self.alive():
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


def deploy(a, b, dep, lam, n, batch, retry_ms, mtu=9000):
    """Stage 0 (slices 0..n/2-1) in A, stage 1 in B, answers back to A."""
    da, db = a.describe(), b.describe()
    check(da.get("port_ip") and ip_str(da["port_ip"]) == ADDR["A"] and
          len(da.get("port_mac", "")) == 17 and da.get("port_mtu") == mtu,
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


def retry_ms(model, x, in_flight, floor):
    """The ingress's re-send timeout for a model: a few times the time a
    request can spend in the pipeline, in_flight requests queued at this
    build's speed of one (`lamina run`; the sanitizer build is ten times
    slower than the release one), never below floor.  Too short a timeout
    re-sends requests that are only waiting, and the copies flood the
    pipeline."""
    p = run("run", model, "--input", x, "--repeat", "5")
    m = re.search(r"median=([\d.]+)", p.stdout)
    check(p.returncode == 0 and m, f"lamina run {model}: {p.stderr}")
    ms = float(m.group(1)) if m else 100.0
    return max(floor, int(4 * ms * in_flight))


def resnet(a, b):
    path = os.path.join(MODELS, "resnet18.onnx")
    if not check(os.path.exists(path), f"{path} (build the test models)"):
        return None
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
    deploy(a, b, dep, lam, n, 1, retry_ms(path, xf, 1, 500))
    p = a.client("infer", dep, yf, xf, ingress=True)
    if check(p.returncode == 0, f"infer resnet18 over A and B: {p.stderr}"):
        y, ref = np.load(yf), np.load(rf)
        check(y.shape == ref.shape and y.dtype == ref.dtype and
              y.tobytes() == ref.tobytes(),
              "resnet18 over two hosts: bitwise equal to lamina run")
        print(f"resnet18 split at slice {n // 2} of {n} over A and B: "
              "bitwise equal to lamina run", flush=True)
    teardown_dep(a, b, dep)
    return lam, xf, rf


def lamina_in(host, *args, timeout=600):
    """`lamina` run in namespace host."""
    return subprocess.run(["ip", "netns", "exec", NET.ns[host], LAMINA,
                           *args], capture_output=True, text=True,
                          timeout=timeout)


def devices_file(path, hosts):
    """devices.json for laminads on hosts (A first: lamina runs there, so
    its device is on loopback), every pair linked (veth: ~8 Gbit/s)."""
    devs = [{"name": h, "cores": 1, "memory_bytes": 2 << 30, "numa_node": 0,
             "address": f"{'127.0.0.1' if h == 'A' else ADDR[h]}:{CTL}"}
            for h in hosts]
    links = [{"from": f, "to": t, "latency_us": 50, "gbps": 8}
             for f in hosts for t in hosts if f != t]
    with open(path, "w") as f:
        json.dump({"devices": devs, "links": links}, f)
    return path


def deployed(laminads, lam, x, ref):
    """ResNet-18 planned, deployed, inferred, shown and torn down over the
    hosts of laminads, lamina running in A."""
    hosts = "".join(d.host for d in laminads)
    tag = f"{len(hosts)} hosts"
    devs = devices_file(os.path.join(TMP, f"devices-{hosts}.json"), hosts)
    prof = os.path.join(TMP, f"profile-{hosts}.json")
    speeds = [a for h in hosts[1:] for a in ("--model-speed", f"{h}=1@A")]
    p = run("bench", lam, "--devices", devs, "--device", "A", "--repeat",
            "3", "-q", "-o", prof, *speeds)
    check(p.returncode == 0, f"bench for {tag}: {p.stderr}")
    plan = os.path.join(TMP, f"plan-{hosts}.json")
    p = lamina_in("A", "plan", lam, "--objective", "throughput", "--devices",
                  devs, "--profile", prof, "-o", plan, "-q")
    if not check(p.returncode == 0, f"plan over {tag}: {p.stderr}"):
        return
    stages = json.load(open(plan))["stages"]
    check(sorted(st["device"] for st in stages) == sorted(hosts),
          f"the plan puts a stage on each of {hosts}: {stages}")
    state = os.path.join(TMP, "deploy-state")
    p = lamina_in("A", "deploy", plan, "--state-dir", state)
    if not check(p.returncode == 0, f"deploy over {tag}: {p.stderr}"):
        return
    dep = p.stdout.strip().split()[-1]
    yf = os.path.join(TMP, f"y-{hosts}.npy")
    p = lamina_in("A", "infer", dep, "--input", x, "--output", yf,
                  "--state-dir", state)
    if check(p.returncode == 0, f"infer over {tag}: {p.stderr}"):
        y, r = np.load(yf), np.load(ref)
        check(y.shape == r.shape and y.tobytes() == r.tobytes(),
              f"resnet18 deployed over {tag}: bitwise equal to lamina run")
        print(f"resnet18 deployed over {tag}: bitwise equal to lamina run",
              flush=True)
    p = lamina_in("A", "status", dep, "--state-dir", state)
    check(p.returncode == 0, f"status over {tag}: {p.stderr}")
    print(f"lamina status over {tag}:\n{p.stdout.rstrip()}", flush=True)
    p = lamina_in("A", "status", dep, "--json", "--state-dir", state)
    if check(p.returncode == 0, f"status over {tag}: {p.stderr}"):
        st = json.loads(p.stdout)
        ran = [s.get("batches", 0) for s in st.get("stages", [])]
        check(len(ran) == len(hosts) and all(r >= 1 for r in ran),
              f"status shows {len(hosts)} stages that ran: {ran}")
    p = lamina_in("A", "teardown", dep, "--state-dir", state)
    check(p.returncode == 0, f"teardown over {tag}: {p.stderr}")
    for d in laminads:
        check(d.alive(), f"laminad in {d.host} (not lamina's) still runs")
        check(dep not in d.describe().get("deployments", []),
              f"teardown removed {dep} from {d.host}")
    p = lamina_in("A", "status", dep, "--state-dir", state)
    check(p.returncode != 0, "the record is gone after teardown")


def log_text(log):
    try:
        with open(log) as f:
            return f.read()
    except OSError:
        return None


def resends(log, dep):
    """(resent, duplicate answers, given up) logged at teardown."""
    text = log_text(log)
    if text is None:
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
    retry = retry_ms(os.path.join(SRC, "models", "digits.onnx"),
                     os.path.join(TMP, "s0.npy"), 64, 50)
    for i, pct in enumerate((1, 5)):
        dep = f"d-{DEP_TAG}{i + 2:02x}"
        NET.drop(pct)
        before = NET.dropped("A") + NET.dropped("B")
        deploy(a, b, dep, lam, n, 1, retry)
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


def port_counts(log, dep):
    """What net.c logged at dep's teardown: the frames its senders
    duplicated and swapped, and the duplicate and stale fragments its
    receiver dropped (summed)."""
    text = log_text(log)
    if text is None:
        return None
    tx = re.findall(rf"deployment {dep}: edge \d+ sent \d+ bundle\(s\) .*"
                    r"fault injection: (\d+) duplicated, (\d+) swapped", text)
    rx = re.findall(rf"deployment {dep}: port received \d+ frame\(s\), \d+ "
                    r"bundle\(s\); dropped (\d+) duplicate, (\d+) stale", text)
    return {"duplicated": sum(int(d) for d, _ in tx),
            "swapped": sum(int(w) for _, w in tx),
            "dup_dropped": sum(int(d) for d, _ in rx),
            "stale_dropped": sum(int(st) for _, st in rx)}


def faulty(a, b):
    """Frames duplicated (1%) and reordered (2%) by the senders, 1% lost."""
    lam = os.path.join(TMP, "digits.lam")
    n = len(json.load(open(os.path.join(lam, "manifest.json")))["slices"])
    xs, es = digits_references(TMP)
    dep = f"d-{DEP_TAG}10"
    NET.drop(1)
    before = NET.dropped("A") + NET.dropped("B")
    retry = retry_ms(os.path.join(SRC, "models", "digits.onnx"),
                     os.path.join(TMP, "s0.npy"), 64, 50)
    deploy(a, b, dep, lam, n, 1, retry, mtu=1500)
    p = a.client("stress", dep, xs, es, 8, 2000, 8, ingress=True,
                 timeout=600)
    check(p.returncode == 0 and "ok 2000 requests" in p.stdout,
          "frames duplicated 1%, reordered 2%, dropped 1%: 2,000 requests "
          f"answered once and right: {p.stdout}{p.stderr}")
    print("duplicated, reordered, 1% loss:", p.stdout.strip(), flush=True)
    lost = NET.dropped("A") + NET.dropped("B") - before
    teardown_dep(a, b, dep)
    NET.drop(0)
    ca, cb = port_counts(a.log, dep), port_counts(b.log, dep)
    print(f"duplicated, reordered: {lost} frames dropped in M; A's port: "
          f"{ca}; B's port: {cb}", flush=True)
    if not check(ca is not None and cb is not None,
                 "both laminads logged their port's counters"):
        return
    for host, c in (("A", ca), ("B", cb)):
        check(c["duplicated"] > 0, f"{host}'s port duplicated frames ({c})")
    check(ca["swapped"] > 0, f"A's port reordered frames ({ca})")
    # a copy arriving while its bundle is pending is a duplicate, after it
    # completed a stale fragment: either way dropped, never a 2nd bundle
    # (stale also counts the rest of a bundle whose frame M dropped)
    made = ca["duplicated"] + cb["duplicated"]
    dups = ca["dup_dropped"] + cb["dup_dropped"]
    stale = ca["stale_dropped"] + cb["stale_dropped"]
    check(dups > 0 and dups + stale >= made - lost,
          f"the receivers dropped the duplicates ({made} made, {lost} "
          f"frames lost in M; {dups} duplicate and {stale} stale dropped)")
    r = resends(a.log, dep)
    check(r is not None and r[2] == 0, f"none given up ({r})")


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
        c = Laminad("C", 0)
        laminads.append(c)
        if a.pid and b.pid and c.pid:
            got = resnet(a, b)
            if got:
                deployed([a, b], *got)
                deployed([a, b, c], *got)
            lossy(a, b)
        for d in laminads:
            d.stop()
        # the transport reorders within a bundle: at MTU 1500 the digits
        # activations A sends are several frames (its answers still one)
        fault = ("--fault", "dup=10000,swap=20000", "--mtu", "1500")
        a = Laminad("A", 0, *fault)
        laminads.append(a)
        b = Laminad("B", 1 if os.cpu_count() > 1 else 0, *fault)
        laminads.append(b)
        if a.pid and b.pid:
            faulty(a, b)
    finally:
        for d in laminads:
            d.stop()
        NET.teardown()
    check(not any(d.alive() for d in laminads), "every laminad stopped")
    check(not NET.left(), "namespaces removed")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
