#!/usr/bin/python3
"""Benchmark a lamina pipeline against its plan and against onnxruntime.

    tools/bench_pipeline.py [--build build-p] [--model MODEL.onnx]
        [--rounds 3] [--requests 240] [--clients 4] [--window 1]
        [--bench-repeat 30] [--ort-repeat 40] [--port 17900]
        [--max-load 1.5] [--wait 300] [--json FILE] [--laminad PATH]

One run does the whole comparison of the dataplane issue's Performance
section on ResNet-18 at batch 1 (the default model):

 1. `lamina slice` the model, write devices.json giving the local device
    2 cores (devices-1core.json: 1) and `lamina bench` it for each: on one
    pinned core, for the 2-core device with the model running on the other
    core meanwhile (profile.json), for the 1-core one alone
    (profile-1core.json).
 2. Plans, all deployed with `--poll busy`:
      1 stage 1 core    `lamina plan --objective throughput --max-stages 1`
                        on the 1-core device
      2 stages 2 cores  the planner's plan when it makes 2 stages on the
                        2-core device; it does not (one device holds one run
                        of slices, and one stage replicated on both cores is
                        never slower than a split), so then a plan.json of
                        our own: the split of the slices into two runs whose
                        larger profiled time is least, predicted the way the
                        planner predicts (stage time = sum of its slices'
                        profiled times, period = the larger stage time,
                        latency = the sum plus one ring handoff).  The table
                        marks it "(own split)".
      1 stage x2 cores  the planner's own throughput plan on 2 cores (the
                        whole model replicated on both): shown for reference.
 3. Every round deploys each plan (the order flips every round), sends a
    warm-up, then --requests requests from --clients concurrent clients with
    --window requests in flight each (tests/lamina-client-test stress, the C
    client library; every answer is checked bitwise against `lamina run`),
    reads `lamina status --json` before and after, and tears down.  Then
    onnxruntime-node (tools/ort/run.js, 2 intra-op threads, all graph
    optimisations) runs the same model on the same input, one request at a
    time: its requests/s is 1000 / median latency in ms (its API has no
    pipelining; two sessions on two cores would be the 1-stage x2 row).
 4. The table gives, per configuration, the median over the rounds of:
      rps          answered requests / wall time of the measured stream
      pred rps     plan.json predicted.throughput_rps
      meas/pred    their ratio
      stage us     per stage: busy time / requests of the measured stream
                   (status --json busy_s, summed over a stage's replicas,
                   so it is the time of one request on one core) / the
                   plan's predicted_us; then the ratio
      p50, p99     client-side latency (send to answer) of the measured
                   stream: with clients x window requests in flight this
                   includes their queueing, about in-flight x period
    and the ratios 2-stage / 1-stage (the issue's target: >= 1.8; also per
    round, the two measured minutes apart, and their median) and lamina
    2-stage / onnxruntime 2 threads.  Per-round figures go to stderr.
    Pinned workers cannot move away from a cpu another process takes (a
    `lamina bench` elsewhere pins to the last cpu, for one); onnxruntime's
    threads can, so on a shared host lamina's rounds vary more than its.

The machine's load average is printed first; above --max-load the run
waits (at most --wait seconds) for a quieter moment.  Everything runs on
loopback, in its own --state-dir under the build folder, with control ports
from --port, and every deployment is torn down, even on failure.  On a
2-cpu host the client threads and laminad's main lcore (ingress, egress)
share the two cpus with the two workers of the 2-stage plan, while the
1-stage plan leaves them a cpu of their own: the ratio pays for that.
"""
import argparse
import json
import os
import re
import statistics
import time

from benchlib import Deployments, die, note, run, stress_result

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORT_LAT = re.compile(r"latency_ms median=([\d.]+) p90=([\d.]+) min=([\d.]+)")


def load_average():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def wait_quiet(limit, wait):
    """Wait (at most `wait` s) for the 1-minute load to drop to `limit`."""
    deadline = time.monotonic() + wait
    load = load_average()
    while load > limit and time.monotonic() < deadline:
        note(f"load average {load:.2f} > {limit}: waiting ...")
        time.sleep(15)
        load = load_average()
    if load > limit:
        note(f"load average still {load:.2f}: measuring anyway (noisy)")
    return load


# ---- set-up: slice, bench, devices, plans ----

def devices_file(path, port, cores):
    with open(path, "w") as f:
        json.dump({"devices": [{"name": "local", "cores": cores,
                                "memory_bytes": 4 << 30, "numa_node": 0,
                                "address": f"127.0.0.1:{port}"}]}, f,
                  indent=2)
    return path


def planner(args, lamdir, devices, stages, out, profile=None):
    run([args.lamina, "plan", lamdir, "--objective", "throughput",
         "--batch", "1", "--max-stages", str(stages), "--devices", devices,
         "-o", out, "-q"] + (["--profile", profile] if profile else []),
        f"lamina plan {os.path.basename(out)}")
    with open(out) as f:
        return json.load(f)


def own_two_stage(base, profile, out):
    """A 2-stage, 1-core-per-stage plan on base's device: the split whose
    slower stage is fastest, predicted as the planner would."""
    b = next(x for x in profile["batches"] if x["batch"] == 1)
    dev = base["devices"][0]["name"]
    t = [s["time_us"][dev] for s in b["slices"]]
    n = len(t)
    k = min(range(n - 1), key=lambda c: max(sum(t[:c + 1]), sum(t[c + 1:])))
    times = [sum(t[:k + 1]), sum(t[k + 1:])]
    period = max(max(times), b["handoff_us"])
    plan = {key: base[key] for key in ("format", "version", "model",
                                       "objective", "batch", "slices",
                                       "ring_depth", "devices")
            if key in base}
    plan["max_stages"] = 2
    plan["stages"] = [{"device": dev, "slices": rng, "cores": 1,
                       "predicted_us": tm, "period_us": tm}
                      for rng, tm in (([0, k], times[0]),
                                      ([k + 1, n - 1], times[1]))]
    plan["predicted"] = {"latency_us": sum(times) + b["handoff_us"],
                         "throughput_rps": 1e6 / period,
                         "period_us": period}
    plan["note"] = ("written by tools/bench_pipeline.py: the planner "
                    "replicates one stage on this device instead")
    with open(out, "w") as f:
        json.dump(plan, f, indent=2)
    return plan


# ---- measuring ----

def stress(args, port, dep, x, e, total, clients, window):
    out = run([args.client, str(port), "stress", dep, x, e, str(clients),
               str(total), str(window)], f"stress {dep}", timeout=600)
    return stress_result(out, f"stress {dep}")


def measure(args, deps, cfg, x, e):
    """Deploy cfg's plan, warm it up, stream, read the stage counters."""
    dep = deps.deploy(cfg["file"])
    try:
        st0 = deps.status(dep)
        port = st0["ingress_port"]
        stress(args, port, dep, x, e, 2 * args.clients * args.window,
               args.clients, args.window)
        st0 = deps.status(dep)
        r = stress(args, port, dep, x, e, args.requests, args.clients,
                   args.window)
        st1 = deps.status(dep)
    finally:
        deps.teardown(dep)
    r["stage_us"] = []
    for a, b in zip(st0["stages"], st1["stages"]):
        n = b["batches"] - a["batches"]
        r["stage_us"].append(1e6 * (b["busy_s"] - a["busy_s"]) / n
                             if n > 0 else float("nan"))
    return r


def ort_rps(args, x):
    out = run(["node", os.path.join(ROOT, "tools", "ort", "run.js"),
               args.model, "--input", x, "--threads", "2", "--repeat",
               str(args.ort_repeat), "--warmup", "5"], "onnxruntime run.js")
    m = ORT_LAT.search(out)
    if not m:
        die(f"run.js: unexpected output {out!r}")
    ms = float(m.group(1))
    return {"rps": 1000.0 / ms, "p50_ms": ms}


# ---- report ----

def med(values):
    return statistics.median(values) if values else float("nan")


def report(args, cfgs, results, ort, load0, load1):
    print(f"\nResNet-18, batch 1, {args.rounds} rounds of {args.requests} "
          f"requests from {args.clients} clients x {args.window} in "
          f"flight, --poll busy; medians over the rounds; load average "
          f"{load0:.2f} at start, {load1:.2f} at end\n")
    hdr = (f"{'config':<26} {'rps':>7} {'pred rps':>8} {'meas/pred':>9} "
           f"{'stage us measured / predicted (ratio)':<44} "
           f"{'p50 ms':>7} {'p99 ms':>7}")
    print(hdr)
    print("-" * len(hdr))
    summary = {}
    for c in cfgs:
        rs = results[c["name"]]
        rps = med([r["rps"] for r in rs])
        pred = c["plan"]["predicted"]["throughput_rps"]
        stages = []
        for i, s in enumerate(c["plan"]["stages"]):
            m = med([r["stage_us"][i] for r in rs])
            stages.append(f"{m:.0f}/{s['predicted_us']:.0f} "
                          f"({m / s['predicted_us']:.2f})")
        p50 = med([r["p50_ms"] for r in rs])
        p99 = med([r["p99_ms"] for r in rs])
        print(f"{c['label']:<26} {rps:>7.2f} {pred:>8.2f} "
              f"{rps / pred:>9.2f} {'  '.join(stages):<44} "
              f"{p50:>7.1f} {p99:>7.1f}")
        summary[c["name"]] = {"rps": rps, "predicted_rps": pred,
                              "p50_ms": p50, "p99_ms": p99,
                              "rounds": rs}
    orps = med([o["rps"] for o in ort])
    oms = med([o["p50_ms"] for o in ort])
    print(f"{'onnxruntime 2 threads':<26} {orps:>7.2f} {'-':>8} {'-':>9} "
          f"{'(one request at a time)':<44} {oms:>7.1f} {'-':>7}")
    one, two = summary["one"]["rps"], summary["two"]["rps"]
    per_round = [b["rps"] / a["rps"] for a, b in
                 zip(results["one"], results["two"])]
    print(f"\n2-stage / 1-stage throughput: {two / one:.2f} (target >= 1.8); "
          f"per round {' '.join(f'{r:.2f}' for r in per_round)}, "
          f"median {med(per_round):.2f}")
    print(f"lamina 2-stage / onnxruntime 2 threads: {two / orps:.2f}")
    if "rep" in summary:
        print(f"lamina 1-stage x2 / onnxruntime 2 threads: "
              f"{summary['rep']['rps'] / orps:.2f}")
    summary["onnxruntime"] = {"rps": orps, "latency_ms": oms, "rounds": ort}
    return summary


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build-p"),
                    help="build folder with lamina, laminad and "
                    "lamina-client-test (default build-p)")
    ap.add_argument("--laminad", help="the laminad to start (default: "
                    "the one beside lamina)")
    ap.add_argument("--model", help="ONNX model (default "
                    "BUILD/tests/models/resnet18.onnx)")
    ap.add_argument("--work", help="work folder (default BUILD/bench-pipeline)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=240,
                    help="measured requests per configuration and round")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--window", type=int, default=1,
                    help="requests in flight per client")
    ap.add_argument("--bench-repeat", type=int, default=30)
    ap.add_argument("--ort-repeat", type=int, default=40)
    ap.add_argument("--port", type=int, default=17900,
                    help="laminad control port (ingress: +1)")
    ap.add_argument("--no-replicated", action="store_true",
                    help="skip the 1-stage x2 reference row")
    ap.add_argument("--max-load", type=float, default=1.5)
    ap.add_argument("--wait", type=float, default=300,
                    help="seconds to wait at most for the load to drop")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    if not (1 <= args.rounds <= 50 and 1 <= args.clients <= 64 and
            args.requests >= args.clients and 1 <= args.window <= 64):
        die("--rounds 1..50, --clients 1..64, --window 1..64, "
            "--requests >= --clients")
    args.requests -= args.requests % args.clients
    build = os.path.abspath(args.build)
    args.lamina = os.path.join(build, "control", "lamina")
    args.client = os.path.join(build, "tests", "lamina-client-test")
    args.model = os.path.abspath(args.model or os.path.join(
        build, "tests", "models", "resnet18.onnx"))
    work = os.path.abspath(args.work or os.path.join(build, "bench-pipeline"))
    for f in (args.lamina, args.client, args.model):
        if not os.path.exists(f):
            die(f"{f} is missing: build first (meson setup {args.build} "
                f"--buildtype=release; meson compile -C {args.build})")
    os.makedirs(work, exist_ok=True)

    with open("/proc/cpuinfo") as f:
        cpu = next((ln.split(":", 1)[1].strip() for ln in f
                    if ln.startswith("model name")), "?")
    print(f"machine: {os.cpu_count()} cpus, {cpu}")
    load0 = wait_quiet(args.max_load, args.wait)
    print(f"load average: {load0:.2f}")

    lamdir = os.path.join(work, "model.lam")
    note("slicing and benchmarking the slices ...")
    run([args.lamina, "slice", args.model, "-o", lamdir, "--force"],
        "lamina slice")
    dev2 = devices_file(os.path.join(work, "devices.json"), args.port, 2)
    dev1 = devices_file(os.path.join(work, "devices-1core.json"),
                        args.port, 1)
    # each device measured as its plans use it: the 2-core one with the
    # model running on its other core meanwhile (lamina bench's default)
    prof1 = os.path.join(work, "profile-1core.json")
    prof2 = os.path.join(lamdir, "profile.json")
    for devs, prof in ((dev1, prof1), (dev2, prof2)):
        run([args.lamina, "bench", lamdir, "--batch", "1", "--repeat",
             str(args.bench_repeat), "--devices", devs, "-o", prof, "-q"],
            "lamina bench")
    with open(prof2) as f:
        profile = json.load(f)

    cfgs = []
    p1 = os.path.join(work, "plan-1stage.json")
    cfgs.append({"name": "one", "label": "1 stage, 1 core", "file": p1,
                 "plan": planner(args, lamdir, dev1, 1, p1, prof1)})
    p2 = os.path.join(work, "plan-2stage.json")
    plan2 = planner(args, lamdir, dev2, 2, p2)
    label2 = "2 stages, 2 cores"
    if len(plan2["stages"]) != 2:
        plan2 = own_two_stage(plan2, profile, p2)
        label2 += " (own split)"
    cfgs.append({"name": "two", "label": label2, "file": p2, "plan": plan2})
    if not args.no_replicated:
        pr = os.path.join(work, "plan-replicated.json")
        plan_r = planner(args, lamdir, dev2, 1, pr)
        cfgs.append({"name": "rep", "label": "1 stage x2 cores (planner)",
                     "file": pr, "plan": plan_r})
    for c in cfgs:
        st = ", ".join(f"slices {s['slices'][0]}-{s['slices'][1]} on "
                       f"{s['cores']} core{'s' if s['cores'] > 1 else ''}"
                       for s in c["plan"]["stages"])
        print(f"plan {c['label']}: {st}; predicted "
              f"{c['plan']['predicted']['throughput_rps']:.1f} requests/s")

    # the input and the answer every request is checked against
    x, e = os.path.join(work, "x.npy"), os.path.join(work, "expected.npy")
    import numpy as np
    np.save(x, np.random.default_rng(0).uniform(-1, 1, (1, 3, 224, 224))
            .astype(np.float32))
    run([args.lamina, "run", args.model, "--input", x, "--output", e],
        "lamina run")

    results = {c["name"]: [] for c in cfgs}
    ort = []
    deps = Deployments(args.lamina, os.path.join(work, "state"),
                       args.laminad)
    try:
        for rnd in range(args.rounds):
            order = cfgs if rnd % 2 == 0 else cfgs[::-1]
            for c in order:
                r = measure(args, deps, c, x, e)
                results[c["name"]].append(r)
                note(f"round {rnd + 1}: {c['label']}: {r['rps']:.2f} "
                     f"requests/s, stages "
                     f"{', '.join(f'{u:.0f}' for u in r['stage_us'])} us, "
                     f"p50 {r['p50_ms']:.1f} ms")
            o = ort_rps(args, x)
            ort.append(o)
            note(f"round {rnd + 1}: onnxruntime 2 threads: "
                 f"{o['rps']:.2f} requests/s ({o['p50_ms']:.2f} ms)")
    finally:
        deps.close()
    summary = report(args, cfgs, results, ort, load0, load_average())
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)


if __name__ == "__main__":
    main()
