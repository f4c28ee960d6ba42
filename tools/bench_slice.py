#!/usr/bin/python3
"""Benchmark `lamina slice`: wall time and peak memory on a model.

    tools/bench_slice.py [--lamina build/control/lamina] [--runs 5] MODEL.onnx

Prints the median and range of wall-clock seconds over the runs and the
largest peak resident set size (from wait4's rusage), beside the model's
size, as the ratio the foundation issue targets (time < 1 s, RSS < 2x).
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--lamina", default="build/control/lamina")
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    size = os.path.getsize(a.model)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.lam")
        one_run(a.lamina, a.model, out)  # warm the page cache
        runs = [one_run(a.lamina, a.model, out) for _ in range(a.runs)]
    times = [t for t, _ in runs]
    rss = max(r for _, r in runs)
    print(f"model           {os.path.basename(a.model)}  "
          f"{size / 2**20:.1f} MiB")
    print(f"slice time      median {statistics.median(times):.3f} s  "
          f"(min {min(times):.3f}, max {max(times):.3f}, {a.runs} runs)")
    print(f"peak RSS        {rss / 2**20:.1f} MiB  = "
          f"{rss / size:.2f} x model size")


if __name__ == "__main__":
    main()
