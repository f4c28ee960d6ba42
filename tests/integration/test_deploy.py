#!/usr/bin/python3
"""Integration test of lamina deploy, infer, status and teardown.

    test_deploy.py digits          the whole flow on the bundled digits model:
                                   slice, bench, plan, deploy, infer real
                                   digit images (bitwise equal to lamina run),
                                   status, teardown (twice), a laminad killed
                                   with -9, an undo after a failed load; a
                                   plan over two laminads on this host (their
                                   edges over memif pairs)
    test_deploy.py errors          what a user meets: bad plans, remote
                                   devices, unknown ids, no laminad
    test_deploy.py memory          ResNet-18 in 2 stages, benched and
                                   planned: laminad's memory grows by what
                                   the plan charged (within 10%); a plan
                                   charging less is refused at deploy
    test_deploy.py transformer     a sequence-first transformer encoder
                                   (batch on axis 1) sliced once, benched
                                   at 1 and 8, 2 stages at each: bitwise
                                   equal to lamina run; requests that are
                                   not the whole batch refused saying why
    test_deploy.py model NAME      NAME (from LAMINA_MODELS) in 1-, 2- and
                                   4-stage plans at batch 1 and 8: outputs
                                   bitwise equal to lamina run of the model
    test_deploy.py two-stages NAME...
                                   each NAME in 2 stages at batch 1:
                                   bitwise equal to lamina run, nothing left

Every deployment lives in a state folder of its own under LAMINA_TMP and
uses a free block of control ports from 17700 up, so a laminad someone
runs on 7700, or another test run, is never touched.  Whatever the test started, it stops (the finally blocks
tear down every recorded deployment and kill what is left).
"""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

from harness import (LAMINA, MODELS, SRC, TMP, check, fresh_dir, plan_doc,
                     summary)
from memcheck import describe, grows_as_planned

CLIENT = os.environ.get("LAMINA_CLIENT_TEST")



def free_ports(n=8):
    """A base port with n free ports above it, so that test runs of other
    build folders (or a user's laminad) on this host are left alone."""
    import socket
    for base in range(17700 + (os.getpid() % 200) * 10, 60000, 10):
        try:
            socks = []
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise SystemExit("no free loopback ports")


PORT = free_ports()


def lam(*args, state=None, timeout=600):
    """Run lamina with --state-dir for the commands that take it."""
    args = list(args)
    if state and args[0] in ("deploy", "infer", "status", "teardown"):
        args += ["--state-dir", state]
    return subprocess.run([LAMINA, *args], capture_output=True, text=True,
                          timeout=timeout)


def records(state):
    return sorted(glob.glob(os.path.join(state, "d-*.json")))


def laminad_pids(state):
    """Pids of laminads a record of state names (alive or not)."""
    pids = set()
    for f in records(state):
        try:
            for ld in json.load(open(f))["laminads"]:
                if ld.get("pid"):
                    pids.add(ld["pid"])
        except (OSError, ValueError):
            pass
    for f in glob.glob(os.path.join(state, "laminad-*.json")):
        try:
            pids.add(json.load(open(f))["pid"])
        except (OSError, ValueError, KeyError):
            pass
    return pids


def alive(pid):
    """A running (not zombie) laminad with this pid."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
        comm = open(f"/proc/{pid}/comm").read().strip()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in "ZX" and \
        comm.startswith("laminad")


def cleanup(state):
    """Tear down whatever is recorded in state, then kill leftovers and
    have laminad give back what they held."""
    pids = laminad_pids(state)
    for f in records(state):
        lam("teardown", os.path.basename(f)[:-5], state=state, timeout=120)
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    time.sleep(0.1)
    laminad = os.environ.get("LAMINAD")
    for f in glob.glob(os.path.join(state, "laminad-*.json")):
        if laminad:  # what a killed laminad held: hugepages, run folder
            subprocess.run([laminad, "--cleanup", f], capture_output=True)


def devices_json(path, port, cores=4, address="127.0.0.1"):
    json.dump({"devices": [{"name": "local", "cores": cores,
                            "memory_bytes": 4 << 30, "numa_node": 0,
                            "address": f"{address}:{port}"}]},
              open(path, "w"))
    return path


def write_plan(path, model_dir, n_slices, cuts, batch, port):
    """A plan with stages ending at the given cuts on one device."""
    bounds = [0] + [c + 1 for c in cuts] + [n_slices]
    stages = [{"device": "local", "slices": [bounds[i], bounds[i + 1] - 1],
               "cores": 1} for i in range(len(bounds) - 1)]
    json.dump(plan_doc(model_dir, batch, n_slices,
                       [{"name": "local", "address": f"127.0.0.1:{port}",
                         "numa_node": 0, "cores": max(4, len(stages)),
                         "memory_bytes": 4 << 30}], stages),
              open(path, "w"))
    return path


def nothing_left(state, pids, what):
    """No record, no laminad state file or log, no laminad running."""
    left = [os.path.basename(f) for f in os.listdir(state)]
    check(not left, f"{what}: state folder empty, has {left}")
    check(not [p for p in pids if alive(p)],
          f"{what}: no laminad running (pids {pids})")


def deploy(plan, state, *extra):
    p = lam("deploy", plan, *extra, state=state)
    dep = p.stdout.strip()
    ok = check(p.returncode == 0 and dep.startswith("d-") and len(dep) == 10,
               f"deploy {plan}: rc {p.returncode} out {p.stdout!r} "
               f"err {p.stderr!r}")
    return dep if ok else None


def deploy_started(plan, state, n):
    """Deploy plan, which must start n laminads; (id, their pids)."""
    dep = deploy(plan, state)
    if not dep:
        return None, set()
    pids = laminad_pids(state)
    check(len(pids) == n and all(alive(p) for p in pids),
          f"deploy started {n} laminad(s): {pids}")
    return dep, pids


def same_bytes(a, b):
    x, y = np.load(a), np.load(b)
    return x.dtype == y.dtype and x.shape == y.shape and \
        x.tobytes() == y.tobytes()


# ---- the digits flow ----

def test_digits():
    work = fresh_dir("deploy-digits")
    state = os.path.join(work, "state")
    os.makedirs(state)
    model = os.path.join(SRC, "models", "digits.onnx")
    lamdir = os.path.join(work, "digits.lam")
    huge = nr_hugepages()
    try:
        lam("slice", model, "-o", lamdir)
        p = lam("bench", lamdir, "--batch", "1,8", "--repeat", "3")
        check(p.returncode == 0, f"bench: {p.stderr}")
        devs = devices_json(os.path.join(work, "devices.json"), PORT)
        plan = os.path.join(work, "plan.json")
        p = lam("plan", lamdir, "--objective", "throughput", "--batch", "1",
                "--devices", devs, "-o", plan)
        check(p.returncode == 0, f"plan: {p.stderr}")
        check(json.load(open(plan)).get("model") == os.path.realpath(lamdir),
              "the plan records its slice folder")
        flow(work, state, model, plan)
        shared(work, state, plan)
        crash(work, state, plan)
        failed_load(work, state, lamdir, devs)
        two_laminads(work, state, lamdir)
        wide_over_memif(work, state)
        # laminads exiting while DPDK still holds some of their pages
        # once left those in the pool (laminad --cleanup now gives them
        # back after the exit)
        check(nr_hugepages() == huge, f"nr_hugepages back to {huge}: "
              f"{nr_hugepages()}")
    finally:
        cleanup(state)


def nr_hugepages():
    with open("/proc/sys/vm/nr_hugepages") as f:
        return int(f.read())


def flow(work, state, model, plan):
    dep, pids = deploy_started(plan, state, 1)
    if not dep:
        return
    rec = json.load(open(os.path.join(state, dep + ".json")))
    check(rec["status"] == "running" and rec["laminads"][0]["started"] and
          all(s["status"] == "loaded" for s in rec["stages"]),
          f"record: running, laminad started by it, stages loaded: {rec}")
    samples = np.load(os.path.join(SRC, "models", "digits_samples.npy"))
    labels = np.load(os.path.join(SRC, "models", "digits_labels.npy"))
    right = 0
    for i in range(len(samples)):
        x = os.path.join(work, f"x{i}.npy")
        y, ref = os.path.join(work, f"y{i}.npy"), os.path.join(work,
                                                              f"r{i}.npy")
        np.save(x, samples[i:i + 1])
        p = lam("infer", dep, "--input", x, "--output", y, state=state)
        if not check(p.returncode == 0, f"infer {i}: {p.stderr}"):
            continue
        lam("run", model, "--input", x, "--output", ref)
        check(same_bytes(y, ref), f"digit {i}: bitwise equal to lamina run")
        right += int(np.load(y).argmax()) == int(labels[i])
    check(right >= len(samples) - 2,
          f"{right} of {len(samples)} digits recognised")
    x0 = os.path.join(work, "x0.npy")
    p = lam("infer", dep, "--input", f"image={x0}", "--repeat", "20",
            state=state)
    check(p.returncode == 0 and "latency_ms median=" in p.stdout and
          "logits: float32 1x10" in p.stdout,
          f"infer --repeat, NAME=: {p.stdout!r} {p.stderr!r}")
    p = lam("infer", dep, "--input", f"nope={x0}", state=state)
    check(p.returncode != 0 and "no input 'nope'" in p.stderr,
          f"infer names an unknown input: {p.stderr!r}")
    p = lam("status", dep, state=state)
    check(p.returncode == 0 and "p50" in p.stdout and "p99" in p.stdout and
          "inferences/s" in p.stdout, f"status: {p.stdout!r} {p.stderr!r}")
    print(p.stdout)
    p = lam("status", dep, "--json", state=state)
    if check(p.returncode == 0, f"status --json: {p.stderr}"):
        st = json.loads(p.stdout)
        check(st["requests"] >= len(samples) + 21,
              f"status counts the requests: {st['requests']}")
        check(st["latency_us"]["p50"] is not None and
              st["latency_us"]["p50"] <= st["latency_us"]["p99"],
              f"latency percentiles: {st['latency_us']}")
        check(len(st["stages"]) == len(rec["stages"]) and
              all(s.get("batches", 0) > 0 for s in st["stages"]),
              f"every stage ran: {st['stages']}")
    p = lam("status", state=state)
    check(p.returncode == 0 and dep in p.stdout, f"status lists: {p.stdout}")
    p = lam("teardown", dep, state=state)
    check(p.returncode == 0, f"teardown: {p.stderr}")
    nothing_left(state, pids, "after teardown")
    p = lam("teardown", dep, state=state)
    check(p.returncode == 0 and "nothing to do" in p.stderr,
          f"teardown again: rc {p.returncode} {p.stderr!r}")
    p = lam("infer", dep, "--input", x0, state=state)
    check(p.returncode != 0 and "no deployment" in p.stderr,
          f"infer after teardown: {p.stderr!r}")


def two_plan(path, lamdir, n):
    """Stage 0 (slice 0) on laminad a, the rest on laminad b, both here."""
    json.dump(plan_doc(lamdir, 1, n,
                       [{"name": d, "address": f"127.0.0.1:{port}",
                         "numa_node": 0, "cores": 1, "memory_bytes": 1 << 30}
                        for d, port in (("a", PORT + 4), ("b", PORT + 6))],
                       [{"device": "a", "slices": [0, 0], "cores": 1},
                        {"device": "b", "slices": [1, n - 1], "cores": 1}]),
              open(path, "w"))
    return path


def sockets(dep):
    """The abstract memif sockets of deployment dep (/proc/net/unix lists
    them with a leading '@'): no file is made for them."""
    names = set()
    with open("/proc/net/unix") as f:
        for line in f:
            path = line.split()[-1] if len(line.split()) > 7 else ""
            if path.startswith(f"@lamina-memif-{dep}-"):
                names.add(path[1:])
    return sorted(names)


def two_laminads(work, state, lamdir):
    """Two laminads on this host, which deploy starts: stage 0 in one, the
    rest in the other, the tensors and the answers over memif pairs on
    abstract sockets (no file in the state folder or anywhere); teardown
    leaves nothing, also after both laminads were killed with -9."""
    n = len(json.load(open(os.path.join(lamdir, "manifest.json")))["slices"])
    plan = two_plan(os.path.join(work, "two.json"), lamdir, n)
    dep, pids = deploy_started(plan, state, 2)
    if not dep:
        return
    socks = sockets(dep)
    check(socks == [f"lamina-memif-{dep}-e1", f"lamina-memif-{dep}-e2"],
          f"a memif socket for the edge between them and one for the "
          f"answers: {socks}")
    check(not [f for f in os.listdir(state) if f.endswith(".sock")],
          "no socket file in the state folder")
    samples = np.load(os.path.join(SRC, "models", "digits_samples.npy"))
    for i in range(len(samples)):
        x, y = os.path.join(work, f"x{i}.npy"), os.path.join(work,
                                                             f"two{i}.npy")
        p = lam("infer", dep, "--input", x, "--output", y, state=state)
        if check(p.returncode == 0, f"infer {i} over two laminads: "
                 f"{p.stderr}"):
            check(same_bytes(y, os.path.join(work, f"r{i}.npy")),
                  f"digit {i} over two laminads: bitwise equal to lamina "
                  "run")
    p = lam("infer", dep, "--input", os.path.join(work, "x0.npy"),
            "--repeat", "500", state=state)
    check(p.returncode == 0 and "latency_ms median=" in p.stdout,
          f"500 requests over two laminads: {p.stdout!r} {p.stderr!r}")
    print("two laminads over memif:", p.stdout.strip().splitlines()[-1])
    p = lam("status", dep, "--json", state=state)
    if check(p.returncode == 0, f"status over two laminads: {p.stderr}"):
        ran = [s.get("batches", 0) for s in json.loads(p.stdout)["stages"]]
        check(len(ran) == 2 and min(ran) >= 500 + len(samples),
              f"both stages ran every request: {ran}")
    p = lam("teardown", dep, state=state)
    check(p.returncode == 0, f"teardown of two laminads: {p.stderr}")
    nothing_left(state, pids, "after teardown of two laminads")
    check(not sockets(dep), "no memif socket after teardown")
    # killed: abstract sockets go with their processes
    dep, pids = deploy_started(plan, state, 2)
    if not dep:
        return
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    check(not sockets(dep), "no memif socket left by killed laminads")
    p = lam("teardown", dep, state=state)
    check(p.returncode == 0, f"teardown after kill -9 of two laminads: "
          f"{p.stderr}")
    nothing_left(state, pids, "after a crash of two laminads")


def wide_over_memif(work, state):
    """A 3 MB activation between two laminads on this host with 8 requests
    in flight: the memif ring (2,048 frames, ~6 such bundles) fills and the
    sender resumes when there is room instead of losing frames, so every
    answer is right and no bundle is lost on the way (the ingress may
    still send a request again that waited long in the queue)."""
    sys.path.insert(0, os.path.join(SRC, "tools"))
    from bench_edges import export
    model = os.path.join(work, "wide.onnx")
    export(model, 3 << 20)
    lamdir = os.path.join(work, "wide.lam")
    p = lam("slice", model, "-o", lamdir, "--granularity", "node")
    if not check(p.returncode == 0, f"slice the wide model: {p.stderr}"):
        return
    xs, es = (os.path.join(work, f) for f in ("wide-x.npy", "wide-e.npy"))
    rows = np.arange(1, 9, dtype=np.float32).reshape(8, 1)
    np.save(xs, rows)
    ys = []
    for i in range(len(rows)):
        xi, yi = os.path.join(work, "wx.npy"), os.path.join(work, "wy.npy")
        np.save(xi, rows[i:i + 1])
        lam("run", model, "--input", xi, "--output", yi)
        ys.append(np.load(yi))
    np.save(es, np.concatenate(ys))
    dep, pids = deploy_started(two_plan(os.path.join(work, "wide.json"),
                                        lamdir, 2), state, 2)
    if not dep:
        return
    st = json.loads(lam("status", dep, "--json", state=state).stdout)
    p = subprocess.run([CLIENT, str(st["ingress_port"]), "stress", dep, xs,
                        es, "4", "400", "8"], capture_output=True,
                       text=True, timeout=600)
    check(p.returncode == 0 and "ok 400 requests" in p.stdout,
          f"400 requests with 3 MB activations over memif, 32 in flight: "
          f"{p.stdout}{p.stderr}")
    print("3 MB over memif:", p.stdout.strip().splitlines()[0]
          if p.stdout else p.stderr)
    st = json.loads(lam("status", dep, "--json", state=state).stdout)
    check(st.get("send_lost") == 0 and st.get("gave_up") == 0,
          f"memif lost nothing: {st.get('send_lost')} bundles not sent, "
          f"{st.get('gave_up')} requests given up (re-sent as late: "
          f"{st.get('resent')})")
    p = lam("teardown", dep, state=state)
    check(p.returncode == 0, f"teardown: {p.stderr}")
    nothing_left(state, pids, "after the wide model over memif")


def shared(work, state, plan):
    """Two deployments on one laminad lamina started: it stops with the
    last of them (whichever started it)."""
    a = deploy(plan, state)
    b = deploy(plan, state)
    if not a or not b:
        return
    pids = laminad_pids(state)
    rb = json.load(open(os.path.join(state, b + ".json")))
    check(len(pids) == 1 and not rb["laminads"][0]["started"],
          f"the second deployment uses the first one's laminad: {pids}")
    p = lam("teardown", a, state=state)
    check(p.returncode == 0 and all(alive(x) for x in pids),
          f"teardown of the first leaves laminad to the second: {p.stderr}")
    x, y = os.path.join(work, "x0.npy"), os.path.join(work, "shared.npy")
    p = lam("infer", b, "--input", x, "--output", y, state=state)
    check(p.returncode == 0 and same_bytes(y, os.path.join(work, "r0.npy")),
          f"the second deployment still serves: {p.stderr}")
    p = lam("teardown", b, state=state)
    check(p.returncode == 0, f"teardown of the second: {p.stderr}")
    nothing_left(state, pids, "after both teardowns")


def dpdk_dirs(state):
    """DPDK run folders of the laminads state names."""
    out = []
    for f in glob.glob(os.path.join(state, "laminad-*.json")):
        prefix = json.load(open(f)).get("file_prefix")
        if prefix:
            out.append(os.path.join("/var/run/dpdk" if os.geteuid() == 0
                                    else os.environ.get("XDG_RUNTIME_DIR",
                                                        "/tmp") + "/dpdk",
                                    prefix))
    return out


def crash(work, state, plan):
    dep = deploy(plan, state)
    if not dep:
        return
    pids = laminad_pids(state)
    runs = dpdk_dirs(state)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    p = lam("status", dep, state=state)
    check(p.returncode != 0 and "teardown" in p.stderr and
          len(p.stderr.strip().splitlines()) == 1,
          f"status of a dead laminad says what to do: {p.stderr!r}")
    p = lam("teardown", dep, state=state)
    check(p.returncode == 0, f"teardown after kill -9: {p.stderr}")
    nothing_left(state, pids, "after a crash")
    check(not [d for d in runs if os.path.exists(d)],
          f"DPDK run folders removed: {runs}")
    p = lam("teardown", dep, state=state)
    check(p.returncode == 0 and "nothing to do" in p.stderr,
          "teardown after a crash is idempotent")


def failed_load(work, state, lamdir, devs):
    """A stage laminad cannot load: deploy undoes everything."""
    bad = os.path.join(work, "bad.lam")
    subprocess.run(["cp", "-r", lamdir, bad], check=True)
    last = sorted(glob.glob(os.path.join(bad, "slice_*.onnx")))[-1]
    with open(last, "r+b") as f:
        f.truncate(20)
    plan = os.path.join(work, "bad-plan.json")
    lam("plan", bad, "--objective", "latency", "--devices", devs, "-o", plan)
    p = lam("deploy", plan, state=state)
    check(p.returncode != 0 and p.stdout == "" and
          len(p.stderr.strip().splitlines()) == 1,
          f"deploy of a broken slice fails with one line: {p.stderr!r}")
    time.sleep(0.2)
    nothing_left(state, laminad_pids(state), "after a failed deploy")
    p = subprocess.run(["pgrep", "-x", "laminad", "-a"], capture_output=True,
                       text=True)
    check(f"--control-port {PORT} " not in p.stdout,
          f"no laminad on port {PORT} left: {p.stdout}")


# ---- errors ----

def test_errors():
    work = fresh_dir("deploy-errors")
    state = os.path.join(work, "state")
    os.makedirs(state)
    lamdir = os.path.join(work, "digits.lam")
    lam("slice", os.path.join(SRC, "models", "digits.onnx"), "-o", lamdir)
    n = len(json.load(open(os.path.join(lamdir, "manifest.json")))["slices"])
    try:
        for cmd in ("deploy", "infer", "status", "teardown"):
            p = lam(cmd, "--help")
            check(p.returncode == 0 and p.stdout.startswith("usage: lamina "
                                                            + cmd),
                  f"{cmd} --help")
        remote = os.path.join(work, "remote.json")
        json.dump(plan_doc(lamdir, 1, n,
                           [{"name": "far", "address": "192.0.2.7",
                             "numa_node": 0, "cores": 1,
                             "memory_bytes": 1 << 30}],
                           [{"device": "far", "slices": [0, n - 1],
                             "cores": 1}], objective="latency"),
                  open(remote, "w"))
        old = os.path.join(work, "old.json")
        doc = json.load(open(write_plan(old, lamdir, n, [], 1, PORT + 4)))
        del doc["model"]
        json.dump(doc, open(old, "w"))
        other = fresh_dir("deploy-errors-other")
        for args, needle in [
                (("deploy", os.path.join(work, "none.json")), "none.json"),
                (("deploy", remote), "not on this host"),
                (("deploy", old), "--model"),
                (("deploy", old, "--model", other), "manifest"),
                (("deploy", old, "--model", lamdir, "--poll", "fast"),
                 "--poll"),
                (("deploy", old, "--model", lamdir, "--laminad", "/bin/false"),
                 "laminad"),
                (("deploy",), "PLAN.json"),
                (("infer", "d-00000000", "--input", "x.npy"),
                 "no deployment"),
                (("infer", "d-00000000"), "--input"),
                (("status", "d-00000000"), "no deployment"),
                (("status", "../etc"), "not a deployment id"),
                (("teardown", "x/y"), "not a deployment id"),
                (("teardown", "d-1", "--poll", "busy"), "unknown option")]:
            p = lam(*args, state=state)
            check(p.returncode != 0 and needle in p.stderr and
                  len(p.stderr.strip().splitlines()) == 1,
                  f"{' '.join(args)}: rc {p.returncode} {p.stderr!r}")
            check(not records(state), f"{args}: no record left")
        p = lam("teardown", "d-00000000", state=state)
        check(p.returncode == 0 and "nothing to do" in p.stderr,
              f"teardown of nothing: {p.stderr!r}")
        env = dict(os.environ, LAMINA_STATE_DIR=state)
        p = subprocess.run([LAMINA, "status"], capture_output=True, text=True,
                           env=env)
        check(p.returncode == 0 and state in p.stdout,
              f"LAMINA_STATE_DIR is the state folder: {p.stdout!r}")
    finally:
        cleanup(state)
    check(not os.listdir(state), f"nothing left: {os.listdir(state)}")


# ---- bigger models, several stages ----

def slice_model(work, name):
    """NAME of LAMINA_MODELS sliced into work/NAME.lam: (its .onnx, the
    folder, the manifest), or None after a failed check."""
    model = os.path.join(MODELS, name + ".onnx")
    lamdir = os.path.join(work, name + ".lam")
    p = lam("slice", model, "-o", lamdir)
    if not check(p.returncode == 0, f"slice {name}: {p.stderr}"):
        return None
    return (model, lamdir,
            json.load(open(os.path.join(lamdir, "manifest.json"))))


def test_model(name):
    work = fresh_dir("deploy-" + name)
    state = os.path.join(work, "state")
    os.makedirs(state)
    sliced = slice_model(work, name)
    if not sliced:
        return
    model, lamdir, man = sliced
    n = len(man["slices"])
    shape = man["inputs"][0]["shape"]
    rng = np.random.default_rng(1)
    try:
        for batch in (1, 8):
            x = os.path.join(work, f"x{batch}.npy")
            ref = os.path.join(work, f"ref{batch}.npy")
            np.save(x, rng.standard_normal([batch] + shape[1:])
                    .astype(np.float32))
            p = lam("run", model, "--input", x, "--output", ref,
                    "--batch", str(batch))
            if not check(p.returncode == 0, f"run {name}: {p.stderr}"):
                continue
            for k in (1, 2, 4):
                cuts = [n * (i + 1) // k - 1 for i in range(k - 1)]
                plan = write_plan(os.path.join(work, f"p{k}-{batch}.json"),
                                  lamdir, n, cuts, batch, PORT + 2)
                what = f"{name} batch {batch}, {k} stage(s)"
                t0 = time.perf_counter()
                dep = deploy(plan, state)
                if not dep:
                    continue
                y = os.path.join(work, f"y{k}-{batch}.npy")
                p = lam("infer", dep, "--input", x, "--output", y,
                        state=state)
                check(p.returncode == 0 and same_bytes(y, ref),
                      f"{what}: bitwise equal to lamina run {p.stderr}")
                pids = laminad_pids(state)
                p = lam("teardown", dep, state=state)
                check(p.returncode == 0, f"{what}: teardown {p.stderr}")
                nothing_left(state, pids, what)
                print(f"{what}: {time.perf_counter() - t0:.1f} s",
                      flush=True)
    finally:
        cleanup(state)


def test_two_stages(names):
    """Each model of names sliced, planned in 2 stages cut halfway at
    batch 1, deployed, answering bitwise equal to lamina run, torn down
    leaving nothing: every family the runtime has kernels for goes
    through the dataplane too (test_model covers 1, 2 and 4 stages at
    batch 1 and 8 for ResNet-18 and MobileNetV2)."""
    work = fresh_dir("deploy-two-stages")
    state = os.path.join(work, "state")
    os.makedirs(state)
    rng = np.random.default_rng(2)
    try:
        for name in names:
            t0 = time.perf_counter()
            sliced = slice_model(work, name)
            if not sliced:
                continue
            model, lamdir, man = sliced
            n = len(man["slices"])
            x = os.path.join(work, name + "-x.npy")
            ref = os.path.join(work, name + "-ref.npy")
            np.save(x, rng.standard_normal([1] + man["inputs"][0]["shape"]
                                           [1:]).astype(np.float32))
            p = lam("run", model, "--input", x, "--output", ref)
            if not check(p.returncode == 0, f"run {name}: {p.stderr}"):
                continue
            plan = write_plan(os.path.join(work, name + "-plan.json"),
                              lamdir, n, [n // 2 - 1], 1, PORT + 3)
            dep = deploy(plan, state)
            if dep:
                y = os.path.join(work, name + "-y.npy")
                p = lam("infer", dep, "--input", x, "--output", y,
                        state=state)
                check(p.returncode == 0 and same_bytes(y, ref),
                      f"{name} in 2 stages ({n} slices): bitwise equal to "
                      f"lamina run {p.stderr}")
                pids = laminad_pids(state)
                p = lam("teardown", dep, state=state)
                check(p.returncode == 0, f"{name}: teardown {p.stderr}")
                nothing_left(state, pids, name)
            shutil.rmtree(lamdir, ignore_errors=True)
            print(f"{name}: {time.perf_counter() - t0:.1f} s", flush=True)
    finally:
        cleanup(state)


# ---- a sequence-first transformer, sliced once, at batch 1 and 8 ----

def test_transformer():
    """The sequence-first encoder (tools/export_models.py enc_sf:
    input [8, batch, 32], the batch on axis 1 and merged with the heads
    inside attention), sliced once at layer granularity: bench at batch 1
    and 8, plan 2 stages at each, deploy, lamina infer bitwise equal to
    lamina run.  At batch 8 single samples are batched as for a CNN
    (moved_batch)."""
    work = fresh_dir("deploy-transformer")
    state = os.path.join(work, "state")
    os.makedirs(state)
    model = os.path.join(MODELS, "enc_sf.onnx")
    lamdir = os.path.join(work, "enc_sf.lam")
    p = lam("slice", model, "-o", lamdir)
    if not check(p.returncode == 0, f"slice enc_sf: {p.stderr}"):
        return
    man = json.load(open(os.path.join(lamdir, "manifest.json")))
    n = len(man["slices"])
    check(n >= 20 and man["inputs"][0].get("batch_axis") == 1,
          f"enc_sf: {n} slices, input {man['inputs'][0]}")
    p = lam("bench", lamdir, "--batch", "1,8", "--repeat", "3", "--quiet")
    if not check(p.returncode == 0, f"bench enc_sf 1,8: {p.stderr}"):
        return
    devs = devices_json(os.path.join(work, "devices.json"), PORT + 2)
    rng = np.random.default_rng(7)
    try:
        for b in (1, 8):
            x, ref = (os.path.join(work, f"x{b}.npy"),
                      os.path.join(work, f"ref{b}.npy"))
            np.save(x, rng.uniform(-1, 1, [8, b, 32]).astype(np.float32))
            p = lam("run", model, "--input", x, "--output", ref, "--batch",
                    str(b))
            if not check(p.returncode == 0, f"run enc_sf: {p.stderr}"):
                continue
            plan = os.path.join(work, f"plan{b}.json")
            p = lam("plan", lamdir, "--objective", "throughput", "--batch",
                    str(b), "--stages", f"0-{n // 2 - 1},{n // 2}-{n - 1}",
                    "--devices", devs, "-o", plan, "--quiet")
            if not check(p.returncode == 0, f"plan enc_sf at {b}: "
                         f"{p.stderr}"):
                continue
            dep = deploy(plan, state)
            if not dep:
                continue
            what = f"enc_sf batch {b}, 2 stages"
            y = os.path.join(work, f"y{b}.npy")
            p = lam("infer", dep, "--input", x, "--output", y, state=state)
            check(p.returncode == 0 and same_bytes(y, ref),
                  f"{what}: bitwise equal to lamina run {p.stderr}")
            if b == 8:
                moved_batch(work, state, dep, x, ref)
            pids = laminad_pids(state)
            p = lam("teardown", dep, state=state)
            check(p.returncode == 0, f"{what}: teardown {p.stderr}")
            nothing_left(state, pids, what)
    finally:
        cleanup(state)


def moved_batch(work, state, dep, x, ref):
    """A deployment of the sequence-first model at batch 8 (its batch on
    axis 1) batches single samples as a CNN's does: 32 requests of one
    sample from 8 clients over HTTP, gathered into batches, and one on
    the wire, are each answered
    with their sample of lamina run's batch, bitwise; a request of 3
    samples is refused saying what the model takes; the metadata shows
    the batch axis; a whole batch over HTTP answers what lamina run
    does."""
    from concurrent.futures import ThreadPoolExecutor

    from test_serving import HDR, base_url, call, status
    x8, r8 = np.load(x), np.load(ref)
    one = os.path.join(work, "one.npy")
    y1 = os.path.join(work, "y-one.npy")
    np.save(one, x8[:, :1])
    p = lam("infer", dep, "--input", one, "--output", y1, state=state)
    check(p.returncode == 0 and
          np.load(y1).tobytes() == r8[:, :1].tobytes(),
          f"a 1-sample request on the wire: its sample of lamina run's "
          f"batch, bitwise {p.stderr!r}")
    three = os.path.join(work, "three.npy")
    np.save(three, x8[:, :3])
    p = lam("infer", dep, "--input", three, state=state)
    check(p.returncode != 0 and "8x1x32 or 8x8x32" in p.stderr,
          f"a 3-sample request refused on the wire, saying what the "
          f"model takes: {p.stderr!r}")
    url = base_url(dep, state)
    name = (status(dep, state).get("http_url") or "").rsplit("/", 1)[-1]
    if not check(url.startswith("http://") and name,
                 f"http url: {url!r}, model {name!r}"):
        return
    st, _, body = call(url, "GET", "/v2/models/" + name)
    meta = json.loads(body) if st == 200 else {}
    check(meta.get("inputs", [{}])[0].get("shape") == [8, -1, 32],
          f"metadata shows the batch on axis 1: {meta}")

    def post(i):
        doc = {"inputs": [{"name": "input", "shape": [8, 1, 32],
                           "datatype": "FP32",
                           "data": x8[:, i:i + 1].flatten().tolist()}]}
        st, _, body = call(url, "POST", f"/v2/models/{name}/infer",
                           json.dumps(doc).encode(),
                           {"Content-Type": "application/json"})
        if st != 200:
            return f"sample {i}: {st} {body[:200]!r}"
        out = json.loads(body)["outputs"][0]
        got = np.array(out["data"], np.float32).reshape(out["shape"])
        want = r8[:, i:i + 1]
        if got.shape != want.shape or got.tobytes() != want.tobytes():
            return (f"sample {i}: shape {got.shape}, max diff "
                    f"{np.abs(got - want).max() if got.shape == want.shape else '-'}")
        return None

    before = status(dep, state)
    with ThreadPoolExecutor(8) as pool:
        errors = [e for e in pool.map(post, list(range(8)) * 4) if e]
    check(not errors, f"HTTP: 8 clients sending one sample at a time, "
          f"each answer its sample of lamina run's batch, bitwise: "
          f"{errors}")
    after = status(dep, state)
    batches = after.get("batches", 0) - before.get("batches", 0)
    samples = after.get("samples", 0) - before.get("samples", 0)
    check(samples == 32 and 0 < batches <= 24,
          f"the 32 single samples were gathered into batches: {samples} "
          f"samples in {batches} batches")
    doc = {"inputs": [{"name": "input", "shape": [8, 3, 32],
                       "datatype": "FP32",
                       "data": x8[:, :3].flatten().tolist()}]}
    st, _, body = call(url, "POST", f"/v2/models/{name}/infer",
                       json.dumps(doc).encode(),
                       {"Content-Type": "application/json"})
    check(st == 400 and b"1 sample or the whole batch of 8" in body,
          f"HTTP: a 3-sample request gets 400 saying why: {st} {body!r}")
    head = json.dumps({"inputs": [{"name": "input", "shape": list(x8.shape),
                                   "datatype": "FP32", "parameters":
                                   {"binary_data_size": x8.nbytes}}],
                       "parameters": {"binary_data_output": True}}).encode()
    st, hd, body = call(url, "POST", f"/v2/models/{name}/infer",
                        head + x8.tobytes(), {HDR: str(len(head))})
    ok = st == 200
    if ok:
        hl = int(hd.get(HDR, 0))
        out = json.loads(body[:hl])["outputs"][0]
        got = np.frombuffer(body[hl:], np.float32).reshape(out["shape"])
        ok = got.shape == r8.shape and got.tobytes() == r8.tobytes()
    check(ok, f"HTTP: a whole batch, bitwise equal to lamina run: {st}")


# ---- the memory a plan promises is the memory laminad takes ----

LAMINAD = os.environ.get("LAMINAD")


def test_memory():
    """ResNet-18 in 2 stages, benched and planned by lamina: laminad's
    memory grows by the plan's memory_bytes, within 10% (memcheck.py; in
    a sanitized build its DPDK part, the heap a ceiling); a plan that
    charges less than a stage takes is refused at deploy with the
    numbers, and nothing of it stays loaded."""
    work = fresh_dir("deploy-memory")

    def refused(doc, state, plan):
        # a plan charging half of a stage's weights is refused
        doc["stages"][1]["weight_bytes"] /= 2
        json.dump(doc, open(plan, "w"))
        p = lam("deploy", plan, state=state)
        check(p.returncode != 0 and "stage 1 takes" in p.stderr and
              "of weights, more than the" in p.stderr,
              f"deploy refuses a stage above its plan: {p.stderr!r}")
        d = describe(CLIENT, PORT)
        check(d is not None and not d["deployments"] and
              not d["busy_cores"], f"nothing of it stays loaded: {d}")
        check(not [f for f in os.listdir(state) if f.startswith("d-")],
              "no record left of the refused deployment")
    try:
        grows_as_planned(LAMINA, os.environ["LAMINAD"], CLIENT,
                         os.path.join(MODELS, "resnet18.onnx"), work, PORT,
                         heap=not os.environ.get("LAMINA_SANITIZED"),
                         then=refused)
    finally:
        cleanup(os.path.join(work, "state"))


def main():
    os.makedirs(TMP, exist_ok=True)
    what = sys.argv[1:]
    if what == ["digits"]:
        test_digits()
    elif what == ["errors"]:
        test_errors()
    elif what == ["memory"]:
        test_memory()
    elif what == ["transformer"]:
        test_transformer()
    elif len(what) == 2 and what[0] == "model":
        test_model(what[1])
    elif len(what) >= 2 and what[0] == "two-stages":
        test_two_stages(what[1:])
    else:
        raise SystemExit("usage: test_deploy.py digits|errors|memory|"
                         "transformer|model NAME|two-stages NAME...")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
