"""The memory a plan promises is the memory laminad takes: ResNet-18 in 2
stages, benched and planned by lamina, deployed on a laminad the check
starts; laminad's heap and DPDK's heap (Describe's heap_bytes and
dpdk_bytes) must grow by the plan's memory_bytes within 10%.

    from memcheck import grows_as_planned
    grows_as_planned(lamina, laminad, client, resnet18, work, port,
                     heap=True)

With heap=False only DPDK's part (edge pools and rings, against the plan's
ring_bytes) is held to 10% and the heap only to the plan's weights and
arenas plus 10% as a ceiling: AddressSanitizer replaces malloc, and its
counters miss large blocks, so a sanitized laminad cannot measure its own
heap (the package suite runs the whole check on the release build).
then(plan dict, state folder, plan file), when given, runs after the
teardown while laminad still runs, for more checks.
"""
import json
import os
import subprocess
import time

from harness import check


def describe(client, port, env=None):
    p = subprocess.run([client, str(port), "describe"], capture_output=True,
                       text=True, timeout=60, env=env)
    return json.loads(p.stdout) if p.returncode == 0 else None


def grows_as_planned(lamina, laminad, client, model, work, port, heap=True,
                     env=None, then=None):
    state = os.path.join(work, "state")
    os.makedirs(state, exist_ok=True)
    lamdir = os.path.join(work, "r18.lam")

    def lam(*args):
        return subprocess.run([lamina, *args], capture_output=True,
                              text=True, timeout=900, env=env)
    for args in (("slice", model, "-o", lamdir),
                 ("bench", lamdir, "--repeat", "2", "--neighbours", "0")):
        p = lam(*args)
        if not check(p.returncode == 0, f"{args[0]}: {p.stderr}"):
            return
    n = len(json.load(open(os.path.join(lamdir, "manifest.json")))["slices"])
    devs = os.path.join(work, "devices.json")
    json.dump({"devices": [{"name": "local", "cores": 2,
                            "memory_bytes": 4 << 30, "numa_node": 0,
                            "address": f"127.0.0.1:{port}"}]},
              open(devs, "w"))
    plan = os.path.join(work, "plan.json")
    p = lam("plan", lamdir, "--devices", devs, "--stages",
            f"0-{n // 2 - 1},{n // 2}-{n - 1}", "-o", plan, "-q")
    if not check(p.returncode == 0, f"plan --stages: {p.stderr}"):
        return
    doc = json.load(open(plan))
    planned = sum(s["memory_bytes"] for s in doc["stages"])
    rings = sum(s["ring_bytes"] for s in doc["stages"])
    ld = subprocess.Popen([laminad, "--control-port", str(port),
                           "--state-dir", state, "--foreground", "--log",
                           os.path.join(work, "laminad.log"),
                           "--fleet-key", lam("fleet", "key",
                                              "--path").stdout.strip()],
                          env=env)
    try:
        before = None
        for _ in range(600):  # it maps its hugepages first
            before = describe(client, port, env)
            if before is not None:
                break
            time.sleep(0.1)
        if not check(before is not None, "laminad answers describe"):
            return
        p = lam("deploy", plan, "--state-dir", state)
        dep = p.stdout.strip()
        if not check(p.returncode == 0 and dep.startswith("d-"),
                     f"deploy: {p.stderr}"):
            return
        after = describe(client, port, env)
        dheap = after["heap_bytes"] - before["heap_bytes"]
        ddpdk = after["dpdk_bytes"] - before["dpdk_bytes"]
        grown = dheap + ddpdk
        print(f"laminad grew by {grown / 2**20:.1f} MiB (heap "
              f"{dheap / 2**20:.1f}, DPDK {ddpdk / 2**20:.1f}); the plan "
              f"charged {planned / 2**20:.1f} MiB (rings "
              f"{rings / 2**20:.1f}): ratio {grown / planned:.3f}",
              flush=True)
        check(abs(ddpdk / rings - 1) <= 0.10,
              f"DPDK's heap grew by {ddpdk} bytes, the plan charged "
              f"{rings} for pools and rings: not within 10%")
        if heap:
            check(abs(grown / planned - 1) <= 0.10,
                  f"laminad's memory grew by {grown} bytes, the plan "
                  f"charged {planned}: not within 10%")
        else:
            check(dheap <= 1.10 * (planned - rings),
                  f"laminad's heap grew by {dheap} bytes, more than the "
                  f"plan's weights and arenas ({planned - rings}) + 10%")
        check(lam("teardown", dep, "--state-dir", state).returncode == 0,
              "teardown")
        if then:
            then(doc, state, plan)
    finally:
        # shutdown with the key laminad was given (env's config folder)
        if ld.poll() is None:
            subprocess.run([client, str(port), "shutdown"],
                           capture_output=True, timeout=60, env=env)
        try:
            ld.wait(timeout=30)
            check(ld.returncode == 0, f"laminad exits cleanly on shutdown "
                  f"({ld.returncode})")
        except subprocess.TimeoutExpired:
            check(False, "laminad stops on shutdown")
            ld.kill()
            ld.wait()
        # a laminad that did not stop cleanly: give back its hugepages,
        # mount and run folder
        sf = os.path.join(state, f"laminad-{port}.json")
        if os.path.exists(sf):
            subprocess.run([laminad, "--cleanup", sf], capture_output=True,
                           timeout=60, env=env)
        check(not os.path.exists(sf), f"laminad gave back what it took "
              f"({sf} is gone)")
