#!/usr/bin/python3
"""Integration test of `lamina plan` on a profile and devices it writes.

The profile is synthetic (written here, so the best plan is known by hand):
four slices, devices of different speed and memory, and links.  It checks the
plan file's contract, that memory is never exceeded, the latency budget, the
explain text, and the errors a user meets.
"""
import json
import os
import shutil
import sys

from harness import check, summary, lamina as run
import harness

TMP = os.path.join(harness.TMP, "plan")



MIB = 1 << 20


def write_folder(name, times, weights, cuts, handoff=1.0):
    """A slice folder with a manifest and a profile for batch 1."""
    d = os.path.join(TMP, name)
    os.makedirs(d)
    n = len(weights)
    man = {"format": "lamina-slices", "version": 1, "source": "m.onnx",
           "inputs": [], "outputs": [], "slices": [
        {"index": i, "file": f"slice_{i}.onnx", "inputs": [], "outputs": [],
         "nodes": [f"n{i}"], "flops": 1, "param_bytes": weights[i],
         "output_bytes": cuts[i] if i < n - 1 else 40,
         "cut_bytes": cuts[i] if i < n - 1 else 40, "label": f"L{i}"}
        for i in range(n)]}
    json.dump(man, open(os.path.join(d, "manifest.json"), "w"))
    devs = sorted(times)
    prof = {"format": "lamina-profile", "version": 1, "slices": n,
            "devices": devs,
            "batches": [{"batch": 1, "handoff_us": handoff,
                         "input_bytes": 100,
                         "cut_bytes": cuts[:n - 1],
                         "slices": [{"index": i, "weight_bytes": weights[i],
                                     "arena_bytes": 1024,
                                     "output_bytes": cuts[i] if i < n - 1
                                     else 40,
                                     "time_us": {dv: times[dv][i]
                                                 for dv in devs}}
                                    for i in range(n)]}]}
    json.dump(prof, open(os.path.join(d, "profile.json"), "w"))
    return d


def write_devices(name, devices, links):
    path = os.path.join(TMP, name)
    json.dump({"devices": devices, "links": links}, open(path, "w"))
    return path


def dev(name, cores, mem):
    return {"name": name, "cores": cores, "memory_bytes": mem,
            "numa_node": 0, "address": "127.0.0.1"}


def main():
    shutil.rmtree(TMP, ignore_errors=True)
    os.makedirs(TMP)
    # a fast device that can hold only half the model, a slow one that
    # holds all of it, a fast link between them
    d = write_folder("two", {"fast": [100, 100, 100, 100],
                             "slow": [400, 400, 400, 400]},
                     [40 * MIB] * 4, [1000, 1000, 1000])
    devs = write_devices("two.json", [dev("fast", 1, 100 * MIB),
                                      dev("slow", 1, 1000 * MIB)],
                         [{"from": "fast", "to": "slow", "latency_us": 10,
                           "gbps": 8},
                          {"from": "slow", "to": "fast", "latency_us": 10,
                           "gbps": 8}])
    out = os.path.join(TMP, "plan.json")
    p = run("plan", d, "--devices", devs, "--objective", "latency",
            "-o", out, "--explain")
    check(p.returncode == 0, f"plan latency: {p.stderr}")
    plan = json.load(open(out))
    check(plan["objective"] == "latency" and plan["batch"] == 1,
          "objective and batch recorded")
    st = plan["stages"]
    covered = [i for s in st for i in range(s["slices"][0],
                                            s["slices"][1] + 1)]
    check(covered == [0, 1, 2, 3], f"stages cover every slice once: {st}")
    # 100 MiB with 10% headroom holds two 40 MiB slices, not three
    for s in st:
        if s["device"] == "fast":
            check(s["slices"][1] - s["slices"][0] + 1 <= 2,
                  f"fast device within its memory: {s}")
    # best: two slices on fast (200) + transfer (10 + 1 us) + two on slow
    # (800) = 1011 us; all on slow would be 1600
    lat = plan["predicted"]["latency_us"]
    check(abs(lat - 1011.0) < 1e-6 * 1011, f"optimal latency {lat}")
    check("bottleneck" in p.stdout.lower() or "limit" in p.stdout.lower(),
          f"explain names the limit: {p.stdout}")

    p = run("plan", d, "--devices", devs, "--objective", "throughput",
            "-o", out, "-q")
    check(p.returncode == 0 and p.stdout == "", f"plan throughput: {p.stderr}")
    plan = json.load(open(out))
    # one core each: the slowest stage bounds the rate; two on fast and
    # two on slow gives 800 us, the best split under memory
    rps = plan["predicted"]["throughput_rps"]
    check(abs(rps - 1e6 / 800) < 1e-6 * rps, f"optimal throughput {rps}")

    # nothing fits: a slice larger than any device
    big = write_folder("big", {"fast": [1, 1], "slow": [1, 1]},
                       [10, 2000 * MIB], [10])
    p = run("plan", big, "--devices", devs, "--objective", "latency",
            "-o", os.path.join(TMP, "none.json"))
    check(p.returncode != 0 and "slice 1" in p.stderr and
          not os.path.exists(os.path.join(TMP, "none.json")),
          f"infeasible names the slice: {p.stderr!r}")

    # a manifest of another format or version is refused, not guessed at
    for key, value, needle in [("format", "something-else", "format"),
                               ("version", 99, "version 99")]:
        bad = write_folder(f"bad-{key}", {"fast": [1, 1], "slow": [1, 1]},
                           [10, 10], [10])
        mp = os.path.join(bad, "manifest.json")
        man = json.load(open(mp))
        man[key] = value
        json.dump(man, open(mp, "w"))
        p = run("plan", bad, "--devices", devs, "--objective", "latency",
                "-o", os.path.join(TMP, "none.json"))
        check(p.returncode != 0 and needle in p.stderr and
              len(p.stderr.strip().splitlines()) == 1 and
              not os.path.exists(os.path.join(TMP, "none.json")),
              f"plan refuses a manifest with a wrong {key}: {p.stderr!r}")

    for args, needle in [
            ((d, "-o", out), "--objective"),
            ((d, "--objective", "latency"), "-o"),
            ((d, "--objective", "speed", "-o", out), "latency"),
            ((os.path.join(TMP, "none"), "--objective", "latency", "-o", out),
             "none")]:
        p = run("plan", *args)
        check(p.returncode != 0 and needle in p.stderr and
              len(p.stderr.strip().splitlines()) == 1,
              f"plan {args}: {p.stderr!r}")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
