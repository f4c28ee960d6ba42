#!/usr/bin/python3
"""Benchmark laminad's serving front: what HTTP costs beside the binary
TCP ingress, and what dynamic batching reaches against the plan.

    tools/bench_serving.py [--build build-release] [--rounds 5]
        [--seconds 8] [--clients 4] [--port 17950] [--parts front,resnet,
        batching] [--json FILE]

front     the digits model at batch 1 (one stage, one core), keep-alive
          connections, --clients of them, closed loop: requests/s and
          client-side p50/p99 of the binary TCP ingress (lamina-client-test
          stress, lamina's C client, every answer checked bitwise),
          HTTP+binary and HTTP+JSON (wrk, an outside load generator, with
          the bodies of the binary tensor data extension and of JSON), and
          HTTP+binary again through hey (another outside one).
resnet    the same for ResNet-18 at batch 1 (TCP and HTTP+binary): the
          issue's target is HTTP+binary within 5% of TCP.
batching  ResNet-18 benched and planned at batch 8 (`lamina bench`,
          `lamina plan --objective throughput --batch 8`), fed batch-1
          requests at high load (4 x --clients connections) through TCP
          and HTTP+binary: samples/s against the plan's predicted
          samples/s (target >= 90%), p99 against the plan's
          max_queue_delay (its period) + 2 periods, and the batch sizes
          laminad dispatched.

Every round runs each configuration once, in an order that rotates, for
--seconds each (TCP: a request count sized from the previous round); the
tables give medians over the rounds and the ratios of the medians.  The
machine's load average is printed before and after: on the 2-cpu
development host the load generator, laminad's main lcore and the
workers share the cpus, so figures are only comparable within one run.
Deployments live in a state folder under the build folder, on control
ports from --port, and are torn down whatever happens.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

import numpy as np

from benchlib import Deployments, die, note, plan_doc, run, stress_result

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HDR = "Inference-Header-Content-Length"

WRK_LUA = """
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
local hl = os.getenv("BENCH_HL")
if hl and hl ~= "" then
  wrk.headers["Inference-Header-Content-Length"] = hl
  wrk.headers["Content-Type"] = "application/octet-stream"
else
  wrk.headers["Content-Type"] = "application/json"
end
"""


def load_average():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def input_name(url):
    """The deployment's (only) input, from its OIP metadata."""
    import urllib.request
    meta = json.load(urllib.request.urlopen(url, timeout=30))
    return meta["inputs"][0]["name"]


def bodies(x, folder, name):
    """The binary and JSON bodies of a batch-1 request of x to input
    `name`; their files and the binary one's JSON length."""
    inp = {"name": name, "shape": list(x.shape), "datatype": "FP32"}
    head = json.dumps({"inputs": [dict(inp, parameters={
        "binary_data_size": x.nbytes})], "parameters": {
            "binary_data_output": True}}).encode()
    binf = os.path.join(folder, "body.bin")
    with open(binf, "wb") as f:
        f.write(head + x.tobytes())
    jsonf = os.path.join(folder, "body.json")
    with open(jsonf, "w") as f:
        json.dump({"inputs": [dict(inp, data=x.flatten().tolist())]}, f)
    return binf, len(head), jsonf


UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(args, url, body, hl, connections, seconds):
    """requests/s, p50 and p99 ms of wrk posting body for `seconds`."""
    env = dict(os.environ, BENCH_BODY=body, BENCH_HL=str(hl or ""))
    threads = min(connections, 2)
    p = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections),
                        "-d", f"{seconds}s", "--latency", "-s", args.lua,
                        url], capture_output=True, text=True, env=env,
                       timeout=seconds + 120)
    out = p.stdout
    if p.returncode != 0:
        die(f"wrk: {p.stderr.strip() or out.strip()}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad:
        die(f"wrk {url}: {bad.group(1)} answers were errors")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {}
    for pct, v, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$",
                                   out, re.M):
        lat[pct] = float(v) * UNIT[unit]
    return {"rps": rps, "p50_ms": lat.get("50"), "p99_ms": lat.get("99")}


def hey(url, body, hl, connections, n):
    """requests/s, p50 and p99 ms of hey posting body n times."""
    p = subprocess.run(["hey", "-n", str(n), "-c", str(connections), "-m",
                        "POST", "-D", body, "-H", f"{HDR}: {hl}", url],
                       capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        die(f"hey: {p.stderr.strip()}")
    codes = re.findall(r"\[(\d+)\]\s+(\d+) responses", p.stdout)
    if any(c != "200" for c, _ in codes):
        die(f"hey {url}: answers {codes}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", p.stdout).group(1))
    lat = dict(re.findall(r"(50|99)% in ([\d.]+) secs", p.stdout))
    return {"rps": rps, "p50_ms": float(lat["50"]) * 1e3,
            "p99_ms": float(lat["99"]) * 1e3}


def tcp(args, port, dep, xf, yf, connections, n, tol=None):
    """lm_client's figures; answers bitwise equal to yf, or within tol of
    its rows' scale (a plan at another batch than yf's runs other kernel
    paths)."""
    out = run([args.client, str(port), "stress", dep, xf, yf,
               str(connections), str(n), "1"] + ([str(tol)] if tol else []),
              f"stress {dep}", timeout=900)
    return stress_result(out, f"stress {dep}")


def metrics(url):
    """The deployment's batch-size counts from /metrics."""
    import urllib.request
    text = urllib.request.urlopen(url + "/metrics", timeout=30).read()
    cum = {}
    for line in text.decode().splitlines():
        if line.startswith("lamina_batch_size_bucket"):
            le = line.split('le="')[1].split('"')[0]
            cum[le] = float(line.rsplit(" ", 1)[1])
    return cum


def rounds(args, configs):
    """Run every config once per round, rotating the order; medians."""
    res = {name: [] for name, _ in configs}
    for r in range(args.rounds):
        order = configs[r % len(configs):] + configs[:r % len(configs)]
        for name, fn in order:
            m = fn()
            res[name].append(m)
            note(f"  round {r + 1} {name}: {m['rps']:.1f}/s p50 "
                 f"{m['p50_ms']:.3f} ms p99 {m['p99_ms']:.3f} ms")
    return {name: {k: statistics.median(m[k] for m in ms)
                   for k in ("rps", "p50_ms", "p99_ms")}
            for name, ms in res.items()}


def table(title, med, base, unit="requests/s"):
    print(f"\n{title}")
    print(f"  {'path':<22} {unit:>12} {'vs ' + base:>10} {'p50 ms':>9} "
          f"{'p99 ms':>9}")
    for name, m in med.items():
        print(f"  {name:<22} {m['rps']:>12.1f} "
              f"{m['rps'] / med[base]['rps']:>10.3f} {m['p50_ms']:>9.3f} "
              f"{m['p99_ms']:>9.3f}")


def samples(args, model, folder, shape):
    """16 inputs of the model's shape (row i for request i % 16), and
    lamina run's answers for them, one row at a time."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((16,) + shape[1:], dtype=np.float32)
    xf, yf = os.path.join(folder, "x.npy"), os.path.join(folder, "y.npy")
    np.save(xf, x)
    ys = []
    for i in range(16):
        xi = os.path.join(folder, f"x{i}.npy")
        yi = os.path.join(folder, f"y{i}.npy")
        np.save(xi, x[i:i + 1])
        run([args.lamina, "run", model, "-i", xi, "-o", yi],
            "lamina run")
        ys.append(np.load(yi))
    np.save(yf, np.concatenate(ys))
    return x, xf, yf


def one_stage_plan(args, model, folder, batch, port):
    lamdir = os.path.join(folder, "model.lam")
    run([args.lamina, "slice", model, "-o", lamdir, "--force"], "slice")
    n = len(json.load(open(os.path.join(lamdir, "manifest.json")))["slices"])
    plan = os.path.join(folder, f"plan-{batch}.json")
    with open(plan, "w") as f:
        json.dump(plan_doc(lamdir, batch, n,
                           [{"name": "local",
                             "address": f"127.0.0.1:{port}",
                             "numa_node": 0, "cores": 1,
                             "memory_bytes": 8 << 30}],
                           [{"device": "local", "slices": [0, n - 1],
                             "cores": 1}]), f)
    return lamdir, plan


def front(args, deps, name, model, shape, folder, json_too):
    lamdir, plan = one_stage_plan(args, model, folder, 1, args.port)
    x, xf, yf = samples(args, model, folder, shape)
    dep = deps.deploy(plan)
    try:
        st = deps.status(dep)
        url, port = st["http_url"], st["ingress_port"]
        binf, hl, jsonf = bodies(x[:1], folder, input_name(url))
        base = url.split("/v2/")[0]
        c = args.clients
        # size the TCP run from a short one: about --seconds long
        probe = tcp(args, port, dep, xf, yf, c, 200)
        n_tcp = max(200, int(probe["rps"] * args.seconds))
        configs = [("TCP (lm_client)",
                    lambda: tcp(args, port, dep, xf, yf, c, n_tcp)),
                   ("HTTP+binary (wrk)",
                    lambda: wrk(args, url + "/infer", binf, hl, c,
                                args.seconds)),
                   ("HTTP+binary (hey)",
                    lambda: hey(url + "/infer", binf, hl, c, n_tcp))]
        if json_too:
            configs.append(("HTTP+JSON (wrk)",
                            lambda: wrk(args, url + "/infer", jsonf, None,
                                        c, args.seconds)))
        med = rounds(args, configs)
        table(f"{name}, batch 1, {c} keep-alive connections (medians of "
              f"{args.rounds} rounds)", med, "TCP (lm_client)")
        note(f"  batches dispatched: {metrics(base)}")
        return med
    finally:
        deps.teardown(dep)


def batching(args, deps, model, shape, folder):
    lamdir, _ = one_stage_plan(args, model, folder, 8, args.port)
    prof = os.path.join(folder, "profile.json")
    devs = os.path.join(folder, "devices.json")
    with open(devs, "w") as f:
        json.dump({"devices": [{"name": "local", "cores": 1,
                                "memory_bytes": 8 << 30, "numa_node": 0,
                                "address": f"127.0.0.1:{args.port}"}]}, f)
    run([args.lamina, "bench", lamdir, "--batch", "8", "--devices", devs,
         "--repeat", "10", "-o", prof, "--quiet"], "lamina bench",
        timeout=3600)
    plan = os.path.join(folder, "plan-8.json")
    run([args.lamina, "plan", lamdir, "--objective", "throughput",
         "--batch", "8", "--devices", devs, "--profile", prof, "-o", plan,
         "-q"], "lamina plan")
    pred = json.load(open(plan))["predicted"]
    x, xf, yf = samples(args, model, folder, shape)
    dep = deps.deploy(plan)
    c = 4 * args.clients
    try:
        st = deps.status(dep)
        url, port = st["http_url"], st["ingress_port"]
        binf, hl, _ = bodies(x[:1], folder, input_name(url))
        base = url.split("/v2/")[0]
        n_tcp = max(400, int(pred["throughput_rps"] * args.seconds))
        med = rounds(args, [
            ("TCP (lm_client)", lambda: tcp(args, port, dep, xf, yf, c,
                                            n_tcp, tol=1e-4)),
            ("HTTP+binary (wrk)", lambda: wrk(args, url + "/infer", binf,
                                              hl, c, args.seconds))])
        table(f"ResNet-18 planned at batch 8, batch-1 requests from {c} "
              f"connections (medians of {args.rounds} rounds)", med,
              "TCP (lm_client)", unit="samples/s")
        period_ms = pred["period_us"] / 1e3
        delay_ms = st["queue"]["max_delay_us"] / 1e3
        print(f"  plan: {pred['throughput_rps']:.1f} samples/s predicted, "
              f"period {period_ms:.2f} ms, max queue delay {delay_ms:.2f} "
              f"ms; p99 bound max delay + 2 periods = "
              f"{delay_ms + 2 * period_ms:.2f} ms")
        for name, m in med.items():
            print(f"  {name}: {100 * m['rps'] / pred['throughput_rps']:.1f}"
                  f"% of predicted samples/s")
        cum = metrics(base)
        note(f"  batches dispatched by size (cumulative): {cum}")
        return {"measured": med, "predicted": pred, "max_delay_ms": delay_ms,
                "batch_sizes": cum}
    finally:
        deps.teardown(dep)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build-release"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--port", type=int, default=17950)
    ap.add_argument("--parts", default="front,resnet,batching")
    ap.add_argument("--json")
    args = ap.parse_args()
    args.lamina = os.path.join(args.build, "control", "lamina")
    args.client = os.path.join(args.build, "tests", "lamina-client-test")
    laminad = os.path.join(args.build, "dataplane", "laminad")
    resnet = os.path.join(args.build, "tests", "models", "resnet18.onnx")
    digits = os.path.join(ROOT, "models", "digits.onnx")
    for f in (args.lamina, args.client, laminad):
        if not os.path.exists(f):
            die(f"{f} is missing: meson compile -C {args.build}")
    for tool in ("wrk", "hey"):
        if not shutil.which(tool):
            die(f"{tool} is missing (tools/setup installs it)")
    parts = args.parts.split(",")
    if ("resnet" in parts or "batching" in parts) and \
            not os.path.exists(resnet):
        die(f"{resnet} is missing: meson compile -C {args.build} "
            "tests/models")
    work = os.path.join(args.build, "bench-serving")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    args.lua = os.path.join(work, "post.lua")
    with open(args.lua, "w") as f:
        f.write(WRK_LUA)
    print(f"load average before: {load_average()}")
    deps = Deployments(args.lamina, os.path.join(work, "state"), laminad)
    out = {}
    try:
        if "front" in parts:
            d = os.path.join(work, "digits")
            os.makedirs(d)
            out["digits"] = front(args, deps, "digits", digits,
                                  (1, 1, 8, 8), d, True)
        if "resnet" in parts:
            d = os.path.join(work, "resnet")
            os.makedirs(d)
            out["resnet18"] = front(args, deps, "ResNet-18", resnet,
                                    (1, 3, 224, 224), d, False)
        if "batching" in parts:
            d = os.path.join(work, "batching")
            os.makedirs(d)
            out["batching"] = batching(args, deps, resnet, (1, 3, 224, 224),
                                       d)
    finally:
        deps.close()
    print(f"load average after: {load_average()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
