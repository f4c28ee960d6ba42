#!/usr/bin/python3
"""Hostile input and bad timing against lamina and laminad (issue 13).

    test_hardening.py npy          a .npy whose bytes overflow: lamina run
                                   answers with an error, never a crash
    test_hardening.py paths        nothing outside the state folder is
                                   deleted on a record's, a state file's or
                                   a LoadStage's word
    test_hardening.py lockout      idle connections (500 on each port, and
                                   past the tables) lock no one out; an
                                   unresponsive laminad another deployment
                                   uses is not killed by a teardown
    test_hardening.py interrupt    SIGINT at 20 random moments of a deploy:
                                   nothing is left behind each time
    test_hardening.py concurrent   10 deploys of one plan at once: each
                                   succeeds or fails in one line; the
                                   teardowns leave hugepages and DPDK's run
                                   folders as they were
    test_hardening.py state        a full state file system does not stop
                                   a teardown; status says when a laminad
                                   is gone

Each case uses a state folder of its own under LAMINA_TMP and a free block
of ports, and stops whatever it started (laminads by pid).  Cases that
need root (hugepages, tmpfs, signals to laminad) are skipped without it.
"""
import glob
import json
import os
import random
import resource
import signal
import socket
import struct
import subprocess
import sys
import time

import numpy as np

import ctlwire
from harness import (LAMINA, MODELS, SRC, check, fleet_key_path, fresh_dir,
                     summary)
import test_deploy as td

CLIENT = os.environ.get("LAMINA_CLIENT_TEST")
LAMINAD = os.environ.get("LAMINAD")
DIGITS = os.path.join(SRC, "models", "digits.onnx")


def machine():
    """What a deploy takes from the machine and must give back."""
    with open("/proc/sys/vm/nr_hugepages") as f:
        huge = int(f.read())
    runs = sorted(os.listdir("/var/run/dpdk")) \
        if os.path.isdir("/var/run/dpdk") else []
    with open("/proc/mounts") as f:
        mounts = sorted(l.split()[1] for l in f if " hugetlbfs " in l)
    return {"nr_hugepages": huge, "dpdk run folders": runs,
            "hugetlbfs mounts": mounts}


def laminads_of(state):
    """Pids of running laminads started with --state-dir state."""
    pids = []
    for d in glob.glob("/proc/[0-9]*"):
        try:
            argv = open(os.path.join(d, "cmdline"), "rb").read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"laminad") and \
                state.encode() in argv and td.alive(int(d[6:])):
            pids.append(int(d[6:]))
    return pids


def digits_plan(work, port, cores=2):
    """The digits model sliced, benched and planned on one device."""
    lamdir = os.path.join(work, "digits.lam")
    td.lam("slice", DIGITS, "-o", lamdir)
    td.lam("bench", lamdir, "--repeat", "2", "--neighbours", "0")
    devs = td.devices_json(os.path.join(work, "devices.json"), port,
                           cores=cores)
    plan = os.path.join(work, "plan.json")
    p = td.lam("plan", lamdir, "--objective", "latency", "--devices", devs,
               "-o", plan)
    check(p.returncode == 0, f"plan: {p.stderr}")
    return plan


def sample(work):
    x = np.load(os.path.join(SRC, "models", "digits_samples.npy"))
    path = os.path.join(work, "x0.npy")
    np.save(path, x[:1].astype(np.float32))
    return path


# ---- 2: a .npy whose bytes overflow ----

def test_npy():
    work = fresh_dir("hardening-npy")
    bad = os.path.join(work, "huge.npy")
    hdr = b"{'descr': '<f4', 'fortran_order': False, " \
          b"'shape': (4611686018427387905,), }"
    hdr += b" " * (63 - (10 + len(hdr)) % 64) + b"\n"
    with open(bad, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr +
                b"\0\0\0\0")
    p = subprocess.run([LAMINA, "run", os.path.join(MODELS,
                                                    "dynamic_batch.onnx"),
                        "--input", bad], capture_output=True, text=True)
    check(p.returncode == 1 and "too large" in p.stderr and
          len(p.stderr.strip().splitlines()) == 1,
          f"an overflowing .npy is refused in one line, exit 1 (not a "
          f"crash): {p.returncode} {p.stderr!r}")


# ---- 1, 6, 8: paths laminad and lamina act on are their own ----

field = ctlwire.field


def control_call(port, body_num, body):
    """One lamina.Request on laminad's control port, built by hand (so it
    can carry what lamina itself never sends) and sealed with the fleet
    key; the parsed reply."""
    ch = ctlwire.Channel(port, ctlwire.load_key(fleet_key_path()))
    try:
        return ch.call(7, body_num, body)
    finally:
        ch.close()


def test_paths():
    work = fresh_dir("hardening-paths")
    state = os.path.join(work, "state")
    other = os.path.join(work, "other")
    os.makedirs(state)
    os.makedirs(other)
    port = td.free_ports()
    decoys = {name: os.path.join(other, name)
              for name in ("important.json", "important.log", "victim",
                           "dpdk-run")}
    for path in decoys.values():
        if path.endswith("dpdk-run"):
            os.makedirs(path)
        else:
            open(path, "w").write("keep me\n")
    before = machine()
    # a record that names files outside the state folder, hugepages and a
    # mount: teardown acts on none of it (records name no paths now)
    rec = {"format": "lamina-deployment", "version": 1, "id": "d-0000bad0",
           "status": "running", "plan": "/x", "model": "/x", "batch": 1,
           "created": "", "created_unix": 0,
           "devices": [{"name": "local", "address": f"127.0.0.1:{port}",
                        "laminad": 0}],
           "laminads": [{"host": "127.0.0.1", "control_port": port,
                         "ingress_port": port + 1, "started": True,
                         "pid": 1, "state_file": decoys["important.json"],
                         "log": decoys["important.log"],
                         "file_prefix": "../../other",
                         "hugepages_reserved": {"page_kb": 2048,
                                                "count": 5,
                                                "mount": other}}],
           "stages": [{"stage": 0, "device": "local", "laminad": 0,
                       "slices": [0, 0], "replicas": 1, "cores": [0],
                       "status": "loaded"}]}
    json.dump(rec, open(os.path.join(state, "d-0000bad0.json"), "w"))
    p = td.lam("teardown", "d-0000bad0", state=state, timeout=120)
    check(all(os.path.exists(f) for f in decoys.values()),
          f"a hostile record deletes nothing outside the state folder "
          f"(teardown: {p.returncode} {p.stderr!r})")
    check(machine() == before, f"... and touches no hugepage or mount: "
          f"{machine()} vs {before}")
    # a dead laminad's state file naming paths outside: --cleanup removes
    # only what is laminad's own
    sf = os.path.join(state, f"laminad-{port}.json")
    json.dump({"format": "laminad-state", "version": 2, "pid": 999999,
               "phase": "up", "control_port": port, "ingress_port": port + 1,
               "listen": "127.0.0.1", "file_prefix": "..",
               "run_dir": decoys["dpdk-run"],
               "hugepages_reserved": {"page_kb": 2048, "count": 0,
                                      "mount": other},
               "log": decoys["important.log"]}, open(sf, "w"))
    p = subprocess.run([LAMINAD, "--cleanup", sf], capture_output=True,
                       text=True)
    check(p.returncode == 0 and not os.path.exists(sf) and
          all(os.path.exists(f) for f in decoys.values()),
          f"laminad --cleanup removes its state file and nothing outside: "
          f"{p.returncode} {p.stderr!r}")
    # --cleanup-port: EAL run folders of that port's laminads that no
    # longer run go (a laminad killed after its state file went left one);
    # another port's, and names not laminad-PORT-PID, stay
    run = "/var/run/dpdk"
    os.makedirs(run, exist_ok=True)
    dead, keep = (os.path.join(run, f"laminad-{port}-999999"),
                  [os.path.join(run, n) for n in
                   (f"laminad-{port + 9}-999999", f"laminad-{port}-9x")])
    for d in [dead] + keep:
        os.makedirs(d, exist_ok=True)
    p = subprocess.run([LAMINAD, "--cleanup-port", str(port),
                        "--state-dir", state], capture_output=True,
                       text=True)
    check(p.returncode == 0 and not os.path.exists(dead) and
          all(os.path.isdir(d) for d in keep),
          f"laminad --cleanup-port removes a dead laminad's run folder of "
          f"its port only: {p.returncode} {p.stderr!r}")
    for d in keep:
        os.rmdir(d)
    # a LoadStage carrying the memif socket paths of earlier versions
    # (fields 15-17, a file to replace): laminad names its sockets itself
    # and never touches the file
    plan = digits_plan(work, port)
    dep = td.deploy(plan, state)
    if dep:
        n = len(json.load(open(os.path.join(work, "digits.lam",
                                            "manifest.json")))["slices"])
        ls = (field(1, b"e-paths") + field(2, 1) + field(3, 2) +
              field(4, os.path.join(work, "digits.lam").encode()) +
              field(5, 1) + field(6, n - 1) + field(7, 1) +
              field(11, 1) + field(16, decoys["victim"].encode()) +
              field(17, decoys["victim"].encode()) + field(20, 1) +
              field(22, 5) + field(23, 5))
        control_call(port, 11, ls)
        control_call(port, 15, field(1, b"e-paths"))  # teardown
        check(open(decoys["victim"]).read() == "keep me\n",
              "a path in a LoadStage is never opened, replaced or removed")
        check(not [f for f in os.listdir(state) if f.endswith(".sock")],
              "no socket file in the state folder")
    td.cleanup(state)
    check(machine() == before, f"everything given back: {machine()}")


# ---- 4: no lock-out ----

def idle_connections(port, n):
    socks = []
    for _ in range(n):
        try:
            socks.append(socket.create_connection(("127.0.0.1", port),
                                                  timeout=5))
        except OSError:
            break
    return socks


def test_lockout():
    if os.geteuid() != 0:
        raise SystemExit(77)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    work = fresh_dir("hardening-lockout")
    state = os.path.join(work, "state")
    os.makedirs(state)
    port = td.free_ports()
    plan = digits_plan(work, port)
    x = sample(work)
    socks = []
    try:
        a = td.deploy(plan, state)
        if not a:
            return
        # 500 idle connections on each port: far past the control
        # table (64), half the ingress's (1024)
        socks = idle_connections(port, 500) + idle_connections(port + 1,
                                                               500)
        check(len(socks) == 1000, f"1000 idle connections: {len(socks)}")
        b = td.deploy(plan, state)
        p = td.lam("infer", a, "--input", x, state=state)
        check(p.returncode == 0, f"infer beside 1000 idle connections: "
              f"{p.stderr}")
        p = td.lam("status", a, state=state)
        check(p.returncode == 0, f"status beside them: {p.stderr}")
        if b:
            p = td.lam("teardown", b, state=state)
            check(p.returncode == 0, f"teardown beside them: {p.stderr}")
        # an unresponsive laminad another deployment uses is not killed
        b = td.deploy(plan, state)
        pids = laminads_of(state)
        if b and check(len(pids) == 1, f"one laminad: {pids}"):
            os.kill(pids[0], signal.SIGSTOP)
            t0 = time.perf_counter()
            p = td.lam("teardown", a, state=state, timeout=120)
            took = time.perf_counter() - t0
            os.kill(pids[0], signal.SIGCONT)
            check(td.alive(pids[0]),
                  f"teardown of {a} leaves the laminad {b} uses alive "
                  f"({p.stderr.strip()!r})")
            check(p.returncode != 0 and "does not answer" in p.stderr and
                  os.path.exists(os.path.join(state, a + ".json")),
                  f"... says so and keeps {a}'s record: {p.stderr!r}")
            check(took < 30, f"an unresponsive laminad costs the teardown "
                  f"seconds, not minutes ({took:.1f} s)")
            time.sleep(0.5)
            p = td.lam("infer", b, "--input", x, state=state)
            check(p.returncode == 0, f"{b} still serves: {p.stderr}")
            p = td.lam("teardown", a, state=state)
            check(p.returncode == 0, f"teardown of {a} again, once the "
                  f"laminad answers: {p.stderr}")
            p = td.lam("teardown", b, state=state)
            check(p.returncode == 0, f"teardown of {b}: {p.stderr}")
            for _ in range(50):
                if not td.alive(pids[0]):
                    break
                time.sleep(0.1)
            check(not td.alive(pids[0]), "the last teardown stops the "
                  "laminad lamina started")
    finally:
        for s in socks:
            s.close()
        td.cleanup(state)
    check(not laminads_of(state), "no laminad left")


# ---- 3: SIGINT at random moments of a deploy ----

def test_interrupt():
    if os.geteuid() != 0:
        raise SystemExit(77)
    work = fresh_dir("hardening-interrupt")
    state = os.path.join(work, "state")
    os.makedirs(state)
    port = td.free_ports()
    plan = digits_plan(work, port)
    before = machine()
    t0 = time.perf_counter()
    dep = td.deploy(plan, state)
    took = time.perf_counter() - t0
    td.cleanup(state)
    print(f"a whole deploy takes {took:.2f} s")
    rng = random.Random(13)
    for i in range(20):
        delay = rng.uniform(0, took * 1.1)
        p = subprocess.Popen([LAMINA, "deploy", plan, "--state-dir", state],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        time.sleep(delay)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
        dep = out.strip()
        if p.returncode == 0 and dep:  # it finished before the signal
            td.lam("teardown", dep, state=state)
        # laminad exits a moment after the undo's shutdown
        for _ in range(50):
            if not laminads_of(state):
                break
            time.sleep(0.1)
        left = os.listdir(state)
        now = machine()
        check(not left and not laminads_of(state) and now == before,
              f"SIGINT {delay * 1000:.0f} ms into a deploy (exit "
              f"{p.returncode}, {err.strip()!r}): left {left}, "
              f"laminads {laminads_of(state)}, machine {now} vs {before}")
    td.cleanup(state)
    for pid in laminads_of(state):
        os.kill(pid, signal.SIGKILL)


# ---- 5: deploys at once ----

def test_concurrent():
    if os.geteuid() != 0:
        raise SystemExit(77)
    work = fresh_dir("hardening-concurrent")
    state = os.path.join(work, "state")
    os.makedirs(state)
    port = td.free_ports()
    plan = digits_plan(work, port)
    before = machine()
    procs = [subprocess.Popen([LAMINA, "deploy", plan, "--state-dir", state],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(10)]
    deps, failures = [], []
    for p in procs:
        out, err = p.communicate(timeout=300)
        if p.returncode == 0:
            deps.append(out.strip())
        else:
            failures.append(err.strip())
    print(f"{len(deps)} of 10 deployed; failures: {failures}")
    check(deps, "at least one of 10 concurrent deploys succeeds")
    check(all(len(f.splitlines()) == 1 and f.startswith("lamina deploy:")
              for f in failures),
          f"every failure is one line: {failures}")
    check(len(laminads_of(state)) == 1,
          f"one laminad for the port: {laminads_of(state)}")
    x = sample(work)
    for dep in deps:
        p = td.lam("infer", dep, "--input", x, state=state)
        check(p.returncode == 0, f"infer {dep}: {p.stderr}")
    downs = [subprocess.Popen([LAMINA, "teardown", dep, "--state-dir",
                               state], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for dep in deps]
    for p in downs:
        _, err = p.communicate(timeout=300)
        check(p.returncode == 0, f"concurrent teardown: {err!r}")
    for _ in range(50):
        if not laminads_of(state):
            break
        time.sleep(0.1)
    check(not os.listdir(state) and not laminads_of(state) and
          machine() == before,
          f"after 10 deploys and their teardowns: left "
          f"{os.listdir(state)}, laminads {laminads_of(state)}, machine "
          f"{machine()} vs {before}")
    td.cleanup(state)


# ---- 10: a full state file system; status of a dead laminad ----

def test_state():
    if os.geteuid() != 0:
        raise SystemExit(77)
    work = fresh_dir("hardening-state")
    state = os.path.join(work, "state")
    os.makedirs(state)
    port = td.free_ports()
    plan = digits_plan(work, port)
    before = machine()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "lamina-test",
                    state], check=True)
    try:
        dep = td.deploy(plan, state)
        if dep:
            with open(os.path.join(state, "filler"), "wb") as f:
                try:
                    while True:
                        f.write(b"\0" * 65536)
                except OSError:
                    pass  # full
            p = td.lam("teardown", dep, state=state)
            check(p.returncode == 0 and
                  not os.path.exists(os.path.join(state, dep + ".json")),
                  f"teardown on a full state file system: {p.stderr!r}")
            os.unlink(os.path.join(state, "filler"))
        dep = td.deploy(plan, state)
        if dep:
            for pid in laminads_of(state):
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.3)
            p = td.lam("status", state=state)
            check(p.returncode == 0 and dep in p.stdout and
                  " down " in p.stdout,
                  f"status lists a deployment whose laminad died as down: "
                  f"{p.stdout!r}")
            p = td.lam("teardown", dep, state=state)
            check(p.returncode == 0, f"teardown after the crash: "
                  f"{p.stderr!r}")
        check(not os.listdir(state), f"state folder empty: "
              f"{os.listdir(state)}")
    finally:
        td.cleanup(state)
        subprocess.run(["umount", state])
    check(machine() == before, f"everything given back: {machine()}")


def main():
    what = sys.argv[1:]
    cases = {"npy": test_npy, "paths": test_paths, "lockout": test_lockout,
             "interrupt": test_interrupt, "concurrent": test_concurrent,
             "state": test_state}
    if len(what) != 1 or what[0] not in cases:
        raise SystemExit("usage: test_hardening.py " + "|".join(cases))
    cases[what[0]]()
    return summary()


if __name__ == "__main__":
    sys.exit(main())
