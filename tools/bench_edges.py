#!/usr/bin/python3
"""Activations between two laminads on one host (memif) and in one (a ring).

    tools/bench_edges.py [--build build] [--sizes 65536,819200,3145728]
        [--requests 600] [--clients 2] [--window 4] [--rounds 3]
        [--port 18100]

For each activation size S the script exports a model whose only large
tensor is the one between its two slices: x [1, 1] -> Expand to
[1, S / 4] -> ReduceSum -> y [1, 1] (sliced at --granularity node, so
Expand and ReduceSum are one slice each).  Requests and answers are 4
bytes; the edge between the stages carries S bytes per request.  Each round
deploys it twice with `lamina deploy` (the two alternate):

  1 laminad    both stages on one device: a ring between them, only a
               pointer moves (the in-process path);
  2 laminads   stage 0 on one device, stage 1 on another, both on this
               host at different ports: lamina starts two laminads and
               joins them with a memif pair (the bundle is cut into
               9000-byte frames with a CRC each, copied into the memif
               ring, reassembled into the consumer's mempool buffer);

and streams --requests requests from --clients clients with --window in
flight each (tests/lamina-client-test stress: every answer checked bitwise
against `lamina run`).  Printed per size, medians over the rounds:
bundles/s across the edge (= requests/s), GB/s (S x bundles/s), and memcpy
of S bytes on this machine (numpy, median of 50) for scale.  Every
deployment is torn down, also on failure.  Needs root (DPDK).
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

from benchlib import Deployments, die, plan_doc, run, stress_result

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def export(path, size):
    """x [1, 1] -> Expand [1, size/4] -> ReduceSum -> y [1, 1]."""
    import onnx
    from onnx import TensorProto, helper
    n = size // 4
    g = helper.make_graph(
        [helper.make_node("Expand", ["x", "shape"], ["wide"], name="expand"),
         helper.make_node("ReduceSum", ["wide", "axes"], ["y"],
                          name="sum", keepdims=1)],
        "edge", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                               [1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor("shape", TensorProto.INT64, [2], [1, n]),
         helper.make_tensor("axes", TensorProto.INT64, [1], [1])])
    onnx.save(helper.make_model(g, opset_imports=[
        helper.make_opsetid("", 13)]), path)


def plan(path, lamdir, port, two):
    names = ("a", "b") if two else ("local",)
    devs = [{"name": d, "address": f"127.0.0.1:{port + 10 * i}",
             "numa_node": 0, "cores": 1 if two else 2,
             "memory_bytes": 2 << 30} for i, d in enumerate(names)]
    stages = [{"device": names[0], "slices": [0, 0], "cores": 1},
              {"device": names[-1], "slices": [1, 1], "cores": 1}]
    with open(path, "w") as f:
        json.dump(plan_doc(lamdir, 1, 2, devs, stages), f)
    return path


def memcpy_gbs(size):
    a = np.ones(size, dtype=np.uint8)
    b = np.empty_like(a)
    times = []
    for _ in range(50):
        t = time.perf_counter()
        np.copyto(b, a)
        times.append(time.perf_counter() - t)
    return size / statistics.median(times) / 1e9


def measure(args, deps, planfile, x, e):
    """Deploy, warm up, stream, tear down: requests/s."""
    dep = deps.deploy(planfile)
    try:
        port = str(deps.status(dep)["ingress_port"])
        base = [args.client, port, "stress", dep, x, e, str(args.clients)]
        run(base + [str(4 * args.clients * args.window), str(args.window)],
            "warm-up")
        out = run(base + [str(args.requests), str(args.window)], "stress")
        return stress_result(out, "stress")["rps"]
    finally:
        deps.teardown(dep)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--sizes", default="65536,819200,3145728")
    ap.add_argument("--requests", type=int, default=600)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--window", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--port", type=int, default=18100,
                    help="control ports PORT and PORT+10 (and +1, +11)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        die("needs root (DPDK)")
    args.lamina = os.path.join(args.build, "control", "lamina")
    args.client = os.path.join(args.build, "tests", "lamina-client-test")
    work = os.path.join(args.build, "bench-edges")
    state = os.path.join(work, "state")
    os.makedirs(state, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"machine: {os.cpu_count()} cpus; {args.rounds} rounds of "
          f"{args.requests} requests from {args.clients} clients x "
          f"{args.window} in flight; medians")
    rows = []
    # each laminad chooses how it polls: two of them share this host
    deps = Deployments(args.lamina, state, poll=None)
    try:
        for size in sizes:
            model = os.path.join(work, f"edge{size}.onnx")
            lamdir = os.path.join(work, f"edge{size}.lam")
            export(model, size)
            run([args.lamina, "slice", model, "-o", lamdir, "--force",
                 "--granularity", "node"], "lamina slice")
            n = len(json.load(open(os.path.join(lamdir,
                                                "manifest.json")))["slices"])
            if n != 2:
                die(f"{model}: {n} slices, expected 2")
            x, e = (os.path.join(work, f) for f in ("x.npy", "e.npy"))
            np.save(x, np.arange(1, 9, dtype=np.float32).reshape(8, 1))
            ys = []
            for i in range(8):
                xi = os.path.join(work, "xi.npy")
                yi = os.path.join(work, "yi.npy")
                np.save(xi, np.load(x)[i:i + 1])
                run([args.lamina, "run", model, "--input", xi, "--output",
                     yi], "lamina run")
                ys.append(np.load(yi))
            np.save(e, np.concatenate(ys))
            one = plan(os.path.join(work, "one.json"), lamdir, args.port,
                       False)
            two = plan(os.path.join(work, "two.json"), lamdir, args.port,
                       True)
            got = {"one": [], "two": []}
            for r in range(args.rounds):
                order = ("one", "two") if r % 2 == 0 else ("two", "one")
                for k in order:
                    rps = measure(args, deps, one if k == "one" else two,
                                  x, e)
                    got[k].append(rps)
                    print(f"  {size} bytes, round {r + 1}: "
                          f"{'1 laminad' if k == 'one' else '2 laminads'} "
                          f"{rps:.0f} bundles/s", file=sys.stderr)
            rows.append((size, statistics.median(got["two"]),
                         statistics.median(got["one"]), memcpy_gbs(size)))
    finally:
        deps.close()
    print(f"\n{'bundle':>10} {'memif bundles/s':>16} {'memif GB/s':>11} "
          f"{'ring bundles/s':>15} {'ring GB/s':>10} {'memcpy GB/s':>12}")
    for size, two, one, mc in rows:
        print(f"{size:>10} {two:>16.0f} {two * size / 1e9:>11.2f} "
              f"{one:>15.0f} {one * size / 1e9:>10.2f} {mc:>12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
