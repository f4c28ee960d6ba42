#!/usr/bin/python3
"""Benchmark `lamina slice`: wall time and peak memory on a model.

    tools/bench_slice.py [--lamina build/control/lamina] [--runs 5] MODEL.onnx
    tools/bench_slice.py [--lamina ...] [--runs 5] --chain N

Prints the median and range of wall-clock seconds over the runs and the
largest peak resident set size (from wait4's rusage), beside the model's
size, as the ratio the foundation issue targets (time < 1 s, RSS < 2x).
--chain N slices a model of N elementwise nodes in a row (Relu, Sigmoid
and Add by turns) written for the run: the case that was quadratic in the
run length (16k nodes took 4.8 s); it should take well under a second.
Needs Debian's python3 (onnx) for --chain.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time


def one_run(lamina, model, out):
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    p = subprocess.Popen([lamina, "slice", model, "-o", out, "--quiet"])
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"lamina slice failed with {p.returncode}")
    return dt, ru.ru_maxrss * 1024


def chain_model(path, n):
    """n elementwise nodes in a row after the input, as one ONNX file."""
    from onnx import TensorProto, helper, save
    ops = ("Relu", "Sigmoid", "Add")
    nodes, prev = [], "x"
    for i in range(n):
        op = ops[i % 3]
        ins = [prev, prev] if op == "Add" else [prev]
        nodes.append(helper.make_node(op, ins, [f"t{i}"], name=f"n{i}"))
        prev = f"t{i}"
    nodes[-1].output[0] = "y"
    g = helper.make_graph(
        nodes, "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])])
    save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]),
         path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?")
    ap.add_argument("--chain", type=int, metavar="N",
                    help="slice an N-node elementwise chain instead")
    ap.add_argument("--lamina", default="build/control/lamina")
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    if not a.model and not a.chain:
        ap.error("give MODEL.onnx or --chain N")
    with tempfile.TemporaryDirectory() as tmp:
        if a.chain:
            a.model = os.path.join(tmp, f"chain{a.chain}.onnx")
            chain_model(a.model, a.chain)
        size = os.path.getsize(a.model)
        out = os.path.join(tmp, "out.lam")
        one_run(a.lamina, a.model, out)  # warm the page cache
        runs = [one_run(a.lamina, a.model, out) for _ in range(a.runs)]
        times = [t for t, _ in runs]
        rss = max(r for _, r in runs)
        print(f"model           {os.path.basename(a.model)}  "
              f"{size / 2**20:.1f} MiB")
        print(f"slice time      median {statistics.median(times):.3f} s  "
              f"(min {min(times):.3f}, max {max(times):.3f}, {a.runs} "
              "runs)")
        print(f"peak RSS        {rss / 2**20:.1f} MiB  = "
              f"{rss / size:.2f} x model size")


if __name__ == "__main__":
    main()
