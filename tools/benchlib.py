"""What the Python benchmarks in tools/ (and the integration tests)
share: running a step or dying with one line, plans written by hand,
reading lamina-client-test's stress output, and lamina's
deployments in a state folder of the benchmark's own, torn down (and
their laminads killed) whatever happens.

    from benchlib import Deployments, die, note, plan_doc, run, stress_result
"""
import glob
import json
import os
import re
import signal
import subprocess
import sys

STRESS = re.compile(r"ok (\d+) requests from \d+ clients in ([\d.]+) s.*\n"
                    r"latency_ms p50=([\d.]+) p90=[\d.]+ p99=([\d.]+)")


def die(msg):
    raise SystemExit(f"{os.path.basename(sys.argv[0])}: {msg}")


def note(msg):
    print(msg, file=sys.stderr, flush=True)


def run(argv, what, timeout=900):
    """argv's stdout; dies naming `what` when it fails or times out."""
    try:
        p = subprocess.run(argv, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        die(f"{what} took more than {timeout} s")
    if p.returncode != 0:
        die(f"{what} failed ({p.returncode}): "
            f"{(p.stderr or p.stdout).strip()}")
    return p.stdout


RING_DEPTH = 4  # LM_PLAN_RING_DEPTH (optimizer.h)
KEEP = 4 * RING_DEPTH  # LM_PLAN_KEEP


def plan_doc(model, batch, n_slices, devices, stages, objective="throughput"):
    """A plan.json (version 2) written by hand: devices as devices.json
    has them, stages as [{"device", "slices", "cores"}].  The pools laminad
    is told to make are those `lamina plan` would state (optimizer.h:
    RING_DEPTH bundles plus one per replica at each end on the device);
    the memory per stage is left unbounded (2^40 bytes), since a hand plan
    has no profile: deploy's check against it cannot fail."""
    out = []
    several = len({s["device"] for s in stages}) > 1
    for i, s in enumerate(stages):
        first = i == 0 or stages[i - 1]["device"] != s["device"]
        last = i + 1 == len(stages) or stages[i + 1]["device"] != s["device"]
        prev = 0 if first else stages[i - 1]["cores"]
        out.append(dict(s, weight_bytes=1 << 40, arena_bytes=1 << 40,
                        ring_bytes=1 << 40,
                        in_bundles=RING_DEPTH + prev + s["cores"],
                        out_bundles=RING_DEPTH + s["cores"] if last else 0,
                        answers_bundles=RING_DEPTH if i == 0 and several
                        else 0))
    return {"format": "lamina-plan", "version": 2, "model": model,
            "objective": objective, "batch": batch, "slices": n_slices,
            "keep": KEEP if several else 0, "devices": devices,
            "stages": out}


def stress_result(out, what):
    """requests/s and client-side p50/p99 from `lamina-client-test ...
    stress` output (answered requests over the stream's wall time)."""
    m = STRESS.search(out)
    if not m:
        die(f"{what}: unexpected output {out!r}")
    return {"rps": int(m.group(1)) / float(m.group(2)),
            "p50_ms": float(m.group(3)), "p99_ms": float(m.group(4))}


class Deployments:
    """lamina deploy, status and teardown in one state folder; close()
    tears down everything recorded there, then kills a laminad it names
    that is still alive (only ones this run started live there)."""

    def __init__(self, lamina, state, laminad=None, poll="busy"):
        self.lamina, self.state = lamina, state
        self.extra = (["--laminad", laminad] if laminad else []) + \
            (["--poll", poll] if poll else [])
        os.makedirs(state, exist_ok=True)

    def lam(self, *argv, timeout=300):
        return subprocess.run([self.lamina, *argv, "--state-dir",
                               self.state], capture_output=True, text=True,
                              timeout=timeout)

    def deploy(self, plan):
        p = self.lam("deploy", plan, "--quiet", *self.extra)
        dep = p.stdout.strip()
        if p.returncode != 0 or not dep.startswith("d-"):
            die(f"deploy {plan}: {p.stderr.strip()}")
        return dep

    def status(self, dep):
        p = self.lam("status", dep, "--json")
        if p.returncode != 0:
            die(f"status {dep}: {p.stderr.strip()}")
        return json.loads(p.stdout)

    def teardown(self, dep):
        p = self.lam("teardown", dep)
        if p.returncode != 0:
            note(f"teardown {dep}: {p.stderr.strip()}")

    def pids(self):
        out = set()
        for f in glob.glob(os.path.join(self.state, "*.json")):
            try:
                with open(f) as fh:
                    doc = json.load(fh)
            except (OSError, ValueError):
                continue
            if not isinstance(doc, dict):
                continue
            if doc.get("pid"):
                out.add(doc["pid"])
            out.update(ld["pid"] for ld in doc.get("laminads", [])
                       if ld.get("pid"))
        return out

    def close(self):
        pids = self.pids()
        for f in sorted(glob.glob(os.path.join(self.state, "d-*.json"))):
            self.teardown(os.path.basename(f)[:-5])
        for pid in pids:
            try:
                with open(f"/proc/{pid}/comm") as fh:
                    if not fh.read().startswith("laminad"):
                        continue
                os.kill(pid, signal.SIGKILL)
                note(f"killed leftover laminad {pid}")
            except OSError:
                pass
