#!/usr/bin/python3
"""Integration test of a fleet lamina starts itself: four hosts (network
namespaces A, B, C, D on one bridge, netns.py), each running OpenSSH's sshd
with a key made here, none running laminad.  B, C and D each have their
own /var/lib/lamina and /run/dpdk (sshd runs in a mount namespace of its
own), so nothing of a laminad's state is shared, and every laminad uses
the default control port.  From A:

  - `lamina devices` finds nothing; `lamina devices add ssh://root@HOST`
    for B, C and D asks each what it offers (`laminad --describe-host`
    over ssh) and starts nothing; `lamina bench` and `lamina plan` with no
    devices file use those three; `lamina deploy` of the plan (ResNet-18
    in 3 or more stages over B, C and D) starts a laminad on each over
    ssh, its port on the interface that host routes to the others through,
    ships each its stages' model files (laminad opens model files only
    from its own store: no path is shared), and the answers are bitwise
    equal to `lamina run`;
  - the fleet key reaches each laminad over ssh's stdin (`laminad
    --fleet-key -`): on no command line there, and its log names the
    fleet's fingerprint;
  - a second deployment of the same model reuses the shipped files (none
    is sent again);
  - `lamina teardown` while D is cut off stops B's and C's laminads and
    names D and what may be left there; once D is back, teardown again
    stops every laminad it started (over the control channel, cleaning
    up over ssh), and leaves no laminad, state file, log,
    stored model file or DPDK run folder on any host (they run without
    hugepages: nr_hugepages is the whole machine's, shared with others);
  - a host without laminad gets a one-line error saying how to install it
    (from `devices add` and from deploy); a host ssh cannot reach, one
    naming it.

Every namespace, sshd and laminad the test makes is removed at the end,
also on failure.  Root only (namespaces, sshd); skipped (77) without
sshd or ssh.
"""
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

from harness import (LAMINA, MODELS, TMP, check, fleet_key_path, plan_doc,
                     summary)
from netns import Net

LAMINAD = os.environ["LAMINAD"]
ADDR = {"A": "10.77.0.1", "B": "10.77.0.2", "C": "10.77.0.3",
        "D": "10.77.0.4"}
PORT = 7700                # laminad's default control port, on every host
STATE = "/var/lib/lamina"  # laminad's default state folder, as root, and
RUN = "/run/dpdk"          # DPDK's run folders: each host has its own
NET = Net("lmf", "lf", hosts="ABCD")
WORK = os.path.join(TMP, "fleet")


def lamina_in(host, *args, env=None, timeout=900):
    return subprocess.run(["ip", "netns", "exec", NET.ns[host], LAMINA,
                           *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def state_of(host):
    """host's own state folder, as this test (outside it) sees it."""
    return NET.own_path(WORK, host, STATE)


def left_on(host):
    """What of a laminad is left in host's state folder."""
    return sorted(os.listdir(state_of(host)))


def run_dirs():
    """DPDK run folders left on B, C and D."""
    return sorted(f"{h}:{d}" for h in "BCD"
                  for d in os.listdir(NET.own_path(WORK, h, RUN)))


def devices(path, hosts, ssh_for):
    devs = [{"name": h, "cores": 1, "memory_bytes": 2 << 30,
             "numa_node": 0, "address": f"{ADDR[h]}:{PORT}",
             **({"ssh": ssh_for(h)} if ssh_for(h) else {})}
            for h in hosts]
    with open(path, "w") as f:
        json.dump({"devices": devs}, f)
    return devs


def resnet_plan(lam, n, devs, path):
    """ResNet-18 in 3 stages, one on each of B, C and D."""
    k = n // 3
    stages = [{"device": "B", "slices": [0, k - 1], "cores": 1},
              {"device": "C", "slices": [k, 2 * k - 1], "cores": 1},
              {"device": "D", "slices": [2 * k, n - 1], "cores": 1}]
    with open(path, "w") as f:
        json.dump(plan_doc(lam, 1, n, devs, stages), f)
    return path


def lamina_ok(what, *args, env):
    p = lamina_in("A", *args, env=env)
    check(p.returncode == 0, f"{what}: {p.stderr}")
    return p


def fleet(env, lam, n, x, ref):
    """The flow a user follows from nothing: no laminad answers, hosts are
    added by their ssh address, benched and planned for, and deploy
    starts what is missing."""
    state = os.path.join(WORK, "state")
    env = dict(env, LAMINA_STATE_DIR=state)
    for h in "BCD":
        check(not NET.laminads(h), f"no laminad in {h} at the start")
    p = lamina_ok("devices on an empty fleet", "devices", "--json",
                  env=env)
    check(p.returncode == 0 and json.loads(p.stdout)["devices"] == [],
          f"lamina devices finds nothing: {p.stdout!r}")
    for h in "BCD":
        p = lamina_ok(f"devices add {h}", "devices", "add",
                      f"ssh://root@{ADDR[h]}",
                      "--laminad", LAMINAD, env=env)
        check(f"root@{ADDR[h]}: 2 cores" in p.stdout,
              f"devices add {h} says what the host offers: {p.stdout!r}")
    check(not any(NET.laminads(h) for h in "BCD"),
          "adding hosts starts no laminad")
    p = lamina_ok("devices", "devices", "--json", "--timeout", "300",
                  env=env)
    listed = {d["address"]: d for d in json.loads(p.stdout)["devices"]}
    check(sorted(listed) == sorted(ADDR[h] for h in "BCD") and
          all(d["cores"] == 2 and d["memory_free_bytes"] > 0 and
              d["added_by_hand"] and not d["answering"] and
              d["port"] == PORT for h in "BCD"
              for d in [listed.get(ADDR[h], {"cores": 0})]),
          f"lamina devices lists B, C, D with their cores and memory: "
          f"{p.stdout}")
    p = lamina_ok("devices table", "devices", "--timeout", "300", env=env)
    check(all(re.search(rf"^{re.escape(ADDR[h])} .* 2 .*no laminad yet "
                        r"\(described over ssh\), added by hand", p.stdout,
                        re.M) for h in "BCD"),
          f"the table shows the hosts described over ssh: {p.stdout}")
    # bench and plan over the fleet: no devices file anywhere
    p = lamina_ok("bench over the fleet", "bench", lam, "--repeat", "3",
                  "--warmup", "1", "--neighbours", "0", "--quiet", env=env)
    prof = json.load(open(os.path.join(lam, "profile.json")))
    derived = prof.get("derived", {})
    check(all(ADDR[h] in prof["devices"] and
              "CPU model" in derived.get(ADDR[h], {}).get("note", "")
              for h in "BCD"),
          f"the profile gives the three hosts this host's times (same cpu "
          f"model), and says so: {prof['devices']} {derived}")
    plan = os.path.join(WORK, "plan.json")
    p = lamina_ok("plan over the fleet", "plan", lam, "--objective",
                  "throughput", "-o", plan, env=env)
    doc = json.load(open(plan))
    on = sorted({s["device"] for s in doc["stages"]})
    check(len(doc["stages"]) >= 3 and on == sorted(ADDR[h] for h in "BCD"),
          f"ResNet-18 planned in 3 or more stages over B, C, D: "
          f"{[(s['device'], s['slices']) for s in doc['stages']]}")
    t0 = time.monotonic()
    p = lamina_in("A", "deploy", plan, "--laminad", LAMINAD,
                  "--hugepages", "no", env=env)
    if not check(p.returncode == 0, f"deploy over ssh: {p.stderr}"):
        return
    dep = p.stdout.strip().split()[-1]
    print(f"deploy over ssh: {time.monotonic() - t0:.1f} s", flush=True)
    for h in "BCD":
        check(len(NET.laminads(h)) == 1, f"a laminad started in {h}: "
              f"{NET.laminads(h)}")
    rec = json.load(open(os.path.join(state, dep + ".json")))
    check(all(ld["started"] and ld["ssh"] for ld in rec["laminads"]),
          "the record says lamina started them over ssh")
    # the fleet key went over ssh's stdin: on no command line, and every
    # laminad proves it holds it (deploy needed that) and logs its
    # fingerprint
    key = open(fleet_key_path()).read().strip()
    fp = lamina_in("A", "fleet", "key", env=env).stdout.strip()
    for h in "BCD":
        for pid in NET.laminads(h):
            argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            check(b"--fleet-key" in argv and
                  argv[argv.index(b"--fleet-key") + 1] == b"-" and
                  key.encode() not in b" ".join(argv),
                  f"{h}'s laminad read the key from stdin, not its "
                  f"command line: {argv}")
        log = os.path.join(state_of(h), f"laminad-{PORT}.log")
        check(len(fp) == 16 and f"fleet key {fp}" in open(log).read(),
              f"{h}'s laminad logs the fleet's fingerprint {fp}")
    yf = os.path.join(WORK, "y.npy")
    p = lamina_in("A", "infer", dep, "--input", x, "--output", yf,
                  "--state-dir", state, env=env)
    if check(p.returncode == 0, f"infer: {p.stderr}"):
        check(np.load(yf).tobytes() == np.load(ref).tobytes(),
              "ResNet-18 over B, C, D: bitwise equal to lamina run")
    stored = {h: glob.glob(os.path.join(state_of(h), f"laminad-{PORT}.store",
                                         "sha256", "*")) for h in "BCD"}
    check(all(stored[h] for h in "BCD"),
          f"each laminad stored its stages' files: "
          f"{ {h: len(v) for h, v in stored.items()} }")
    # a second deployment of the same plan: nothing shipped again
    p = lamina_in("A", "deploy", plan, "--state-dir", state, env=env)
    if check(p.returncode == 0, f"second deploy: {p.stderr}"):
        dep2 = p.stdout.strip().split()[-1]
        again = {h: glob.glob(os.path.join(
            state_of(h), f"laminad-{PORT}.store", "sha256", "*"))
            for h in "BCD"}
        check(again == stored, "the second deployment reuses the files")
        p = lamina_in("A", "teardown", dep2, "--state-dir", state, env=env)
        check(p.returncode == 0, f"teardown of the second: {p.stderr}")
        for h in "BCD":
            check(len(NET.laminads(h)) == 1, f"{h}'s laminad stays for the "
                  "first deployment")
    # D is cut off the bridge: teardown stops what it reaches and says
    # what may be left on D; once D is back a second teardown finishes
    NET.ns_run("M", "ip", "link", "set", NET.ifs["dm"], "down")
    try:
        p = lamina_in("A", "teardown", dep, "--state-dir", state, env=env,
                      timeout=300)
    finally:
        NET.ns_run("M", "ip", "link", "set", NET.ifs["dm"], "up")
    check(p.returncode != 0 and ADDR["D"] in p.stderr and
          "could not reach" in p.stderr and "may be left there" in
          p.stderr and f"lamina teardown {dep}" in p.stderr,
          f"teardown with D gone names D and what may be left there: "
          f"{p.stderr!r}")
    check(not NET.laminads("B") and not NET.laminads("C") and
          len(NET.laminads("D")) == 1,
          "B's and C's laminads are stopped, D's is left running")
    check(os.path.exists(os.path.join(state, dep + ".json")),
          "the record stays for a later teardown")
    p = lamina_in("A", "teardown", dep, "--state-dir", state, env=env)
    check(p.returncode == 0, f"teardown once D is back: {p.stderr}")
    time.sleep(0.5)
    for h in "BCD":
        check(not NET.laminads(h),
              f"no laminad left in {h}: {NET.laminads(h)}")
        check(not left_on(h), f"nothing of {h}'s laminad left in its {STATE}: "
              f"{left_on(h)}")
    check(not run_dirs(), f"no DPDK run folder left: {run_dirs()} "
          f"(teardown said: {p.stderr.strip()})")
    left = [f for f in os.listdir(state) if f != "devices-cache.json"]
    check(not left, f"no record left: {left}")


def refusals(env, lam, n):
    """A host without laminad, and one ssh cannot reach."""
    state = os.path.join(WORK, "state-bad")
    os.makedirs(state, exist_ok=True)
    devs = devices(os.path.join(WORK, "devices-bad.json"), "BCD",
                   lambda h: f"root@{ADDR[h]}")
    plan = resnet_plan(lam, n, devs, os.path.join(WORK, "plan-bad.json"))
    p = lamina_in("A", "devices", "add", f"ssh://root@{ADDR['B']}",
                  "--laminad", "/nonexistent/laminad", "--state-dir", state,
                  env=env)
    err = p.stderr.replace("lamina devices: asking", "").split("\n", 1)[-1]
    check(p.returncode != 0 and "install lamina there" in err and
          err.count("\n") == 1,
          f"devices add, no laminad there: one line: {p.stderr!r}")
    check(not os.path.exists(os.path.join(state, "devices-cache.json")) or
          ADDR["B"] not in open(os.path.join(state,
                                             "devices-cache.json")).read(),
          "a host that cannot run laminad is not added")
    p = lamina_in("A", "deploy", plan, "--state-dir", state, "--laminad",
                  "/nonexistent/laminad", env=env)
    check(p.returncode != 0 and "install lamina there" in p.stderr and
          p.stderr.count("\n") == 1,
          f"no laminad there: one line saying how to install: {p.stderr!r}")
    for d in devs:
        d["ssh"] = f"root@{ADDR[d['name']]}:2222"  # nothing listens
    plan = resnet_plan(lam, n, devs, os.path.join(WORK, "plan-bad2.json"))
    p = lamina_in("A", "deploy", plan, "--state-dir", state, env=env)
    check(p.returncode != 0 and "cannot reach" in p.stderr and
          "10.77.0." in p.stderr, f"ssh cannot reach: {p.stderr!r}")
    for h in "BCD":
        check(not NET.laminads(h) and not left_on(h),
              f"nothing started or left in {h}")
    check(not [f for f in os.listdir(state) if f != "devices-cache.json"],
          "no record left of the failed deploys")


def main():
    if os.geteuid() != 0 or not os.path.exists("/usr/sbin/sshd") or \
            not shutil.which("ssh"):
        print("skipped: needs root, sshd and ssh")
        return 77
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    NET.teardown()
    NET.setup()
    try:
        env = dict(os.environ, LAMINA_SSH=NET.sshd(WORK, "BCD", own=(STATE, RUN)))
        model = os.path.join(MODELS, "resnet18.onnx")
        lam = os.path.join(WORK, "r18.lam")
        subprocess.run([LAMINA, "slice", model, "-o", lam], check=True,
                       capture_output=True)
        n = len(json.load(open(os.path.join(lam, "manifest.json")))
                ["slices"])
        x, ref = os.path.join(WORK, "x.npy"), os.path.join(WORK, "ref.npy")
        np.save(x, np.random.default_rng(5).standard_normal(
            (1, 3, 224, 224)).astype(np.float32))
        subprocess.run([LAMINA, "run", model, "-i", x, "-o", ref],
                       check=True, capture_output=True)
        fleet(env, lam, n, x, ref)
        refusals(env, lam, n)
    finally:
        for h in "BCD":
            for pid in NET.laminads(h):
                os.kill(pid, signal.SIGKILL)
        for h in "BCD":
            if h in NET.sshds:
                NET.in_host(h, LAMINAD, "--cleanup-port", str(PORT), ok=False)
        NET.teardown()
    return summary()


if __name__ == "__main__":
    sys.exit(main())
