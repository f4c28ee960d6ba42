#!/usr/bin/python3
"""Benchmark lamina's CPU runtime against onnxruntime.

    tools/bench_runtime.py [--lamina build/control/lamina]
        [--models NAME,NAME,...] [--batch 1,8] [--repeat 20] [--rounds 3]
        [--dir build/bench-models] [--peak GFLOPS]
    tools/bench_runtime.py --profile MODEL [--batch N] [--repeat R]

Comparison mode.  --models takes any names tools/export_models.py knows;
the default is every torchvision classifier it exports (the project's
model set: ResNet-18/50, MobileNetV2, SqueezeNet 1.1, VGG-11,
MobileNetV3-Large, EfficientNet-B1, MnasNet 0.5, RegNetX-400MF,
ConvNeXt-Small, Wide ResNet-50, DenseNet-169, Inception v3, ShuffleNetV2
x0.5).  The models are exported into --dir by
tools/export_models.py when missing (batch 1, NAME.onnx; for a batch above 1
also NAME_dyn.onnx, the same weights with a symbolic batch, which is what
onnxruntime runs; lamina runs the batch-1 file with `--batch N`).  Both
runtimes use one thread: `lamina run --threads 1` and tools/ort/run.js's
defaults (one intra-op thread, all graph optimisations).  Each round runs,
for every model and batch, lamina then onnxruntime (the order flips every
round, so neither always runs on a warmer machine), each as
`--repeat R` after its own warm-up, and keeps each side's median latency.
The table shows the median over the rounds:

    model, batch        what ran
    lamina ms, ort ms   median latency of one inference (the whole batch)
    ratio               lamina / ort: below 1 lamina is faster
    lam GF/s, ort GF/s  the model's FLOPs (`lamina inspect --json`,
                        total_flops, a multiply-add counted as 2) per second
    lam %pk, ort %pk    that rate as a share of the single-thread OpenBLAS
                        sgemm peak (build/tools/bench_sgemm, 2048^3): how
                        far each runtime is from the machine's matrix-multiply
                        speed.  Convolutional models reach 60-90% only when
                        nearly all their time is in large GEMM-shaped work;
                        depthwise layers (MobileNetV2) are memory-bound and
                        keep any runtime far lower.
                        The peak is the best of OpenBLAS's own choice of
                        kernels (0.3.21 does not know AMD Zen 4/5 and picks
                        its AVX2 "Haswell" set) and, on AVX-512 CPUs, its
                        SkylakeX set.  Above 100% means less arithmetic
                        than the FLOP count (Winograd 3x3 convolutions).
    spread              (max - min) / median of lamina's per-round medians;
                        above ~10% the machine was busy and the row is
                        noise (the load average is printed at the top).
    min ratio           lamina's fastest run / onnxruntime's fastest run
                        over all rounds: less sensitive to other load than
                        the medians; if it disagrees with ratio, trust
                        neither and rerun on a quiet machine.
    check               max|lamina - ort| / max|ort| on the first round's
                        outputs (relative to the output's own scale): a
                        fast wrong answer shows here.

The last lines give the geometric mean of the ratio per batch size: the
single number to quote, below 1.0 means lamina is faster on these models;
and the largest ratio (the project's target: geometric mean <= 0.85 at
batch 1 and at batch 8, no model above 1.3).  Then, for the three rows
with the largest ratio, the kernels that take lamina's time (a
`--profile` run of that model and batch, summed by kernel: the top four
with their share and GFLOP/s); --no-kernels skips it.

Profile mode runs `lamina run MODEL --profile` (random input, one thread)
and prints lamina's per-node table as it is, then two summaries, by
operator type and by kernel implementation: nodes, total ms, share of the
total and GFLOP/s (fused nodes count under their fused name, e.g.
Conv+Add+Relu; the kernel summary separates, say, depthwise from 1x1
convolutions inside one op type).  Read it to see
where the time goes: the top rows are what to optimise, and an op type
with a low GFLOP/s but a large share is the best target.

Keep other benchmarks off the machine while this runs: the two cores are
shared, and a busy core shows up directly as a slower median.
"""
import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile

import numpy as np
import onnx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODELS = ("resnet18,resnet50,mobilenet_v2,squeezenet1_1,vgg11,"
                  "mobilenet_v3_large,efficientnet_b1,mnasnet0_5,"
                  "regnet_x_400mf,convnext_small,wide_resnet50_2,densenet169,"
                  "inception_v3,shufflenet_v2_x0_5")
LATENCY = re.compile(r"latency_ms median=([\d.]+) p90=([\d.]+) min=([\d.]+)")


def die(msg):
    raise SystemExit(f"bench_runtime: {msg}")


def run(argv, what):
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode != 0:
        die(f"{what} failed ({p.returncode}): {p.stderr.strip()}")
    return p.stdout


def ensure_models(folder, names, dynamic):
    """Export what is missing from the folder (NAME.onnx, and NAME_dyn.onnx
    when a batch above 1 is wanted)."""
    exporter = os.path.join(ROOT, "tools", "export_models.py")
    for suffix, flag in (("", []), ("_dyn", ["--dynamic-batch"])):
        if suffix and not dynamic:
            continue
        missing = [n for n in names if not os.path.exists(
            os.path.join(folder, n + suffix + ".onnx"))]
        if missing:
            print(f"exporting {', '.join(m + suffix for m in missing)} to "
                  f"{folder} ...", file=sys.stderr, flush=True)
            run(["/usr/bin/python3", exporter, folder, "--only",
                 ",".join(missing), *flag], "export_models.py")


def model_input(path):
    """(name, dims) of the model's one graph input; symbolic dims as 1."""
    m = onnx.load(path, load_external_data=False)
    inits = {t.name for t in m.graph.initializer}
    ins = [v for v in m.graph.input if v.name not in inits]
    if len(ins) != 1:
        die(f"{path}: expected one input, found {len(ins)}")
    dims = [d.dim_value if d.HasField("dim_value") else 1
            for d in ins[0].type.tensor_type.shape.dim]
    return ins[0].name, dims


def make_input(tmp, tag, dims, batch):
    path = os.path.join(tmp, f"{tag}_b{batch}.npy")
    if not os.path.exists(path):
        rng = np.random.default_rng(0)
        np.save(path, rng.uniform(-1, 1, [batch] + dims[1:])
                .astype(np.float32))
    return path


def model_flops(lamina, model, in_name, dims, batch):
    """FLOPs of one inference at the batch, from `lamina inspect --json`;
    batch-1 FLOPs times the batch when inspect cannot re-shape."""
    base = ["inspect", model, "--json"]
    if batch != 1:
        shape = ",".join(str(d) for d in [batch] + dims[1:])
        p = subprocess.run([lamina, *base, "--input-shape",
                            f"{in_name}={shape}"], capture_output=True,
                           text=True)
        if p.returncode == 0:
            return float(json.loads(p.stdout)["total_flops"])
    out = run([lamina, *base], "lamina inspect")
    return float(json.loads(out)["total_flops"]) * batch


def sgemm_peak(args):
    """Single-thread sgemm GFLOP/s at 2048^3 (best of 5)."""
    if args.peak:
        return args.peak, "given"
    exe = args.sgemm
    if not os.path.exists(exe):
        build = os.path.dirname(os.path.dirname(os.path.abspath(exe)))
        print(f"building {exe} ...", file=sys.stderr, flush=True)
        run(["ninja", "-C", build, "tools/bench_sgemm"], "ninja bench_sgemm")
    # OPENBLAS_VERBOSE=2 makes OpenBLAS name the kernel set it picked.
    # OpenBLAS 0.3.21 does not know every AVX-512 core and may fall back to
    # its AVX2 kernels; the peak is the best of what it picks and, where the
    # CPU has AVX-512, its SkylakeX kernels, so no runtime passes 100% by
    # using instructions the reference left out.
    kinds = [None]
    if "avx512f" in open("/proc/cpuinfo").read():
        kinds.append("SkylakeX")
    best, notes = 0.0, []
    for kind in kinds:
        env = dict(os.environ, OPENBLAS_VERBOSE="2")
        if kind:
            env["OPENBLAS_CORETYPE"] = kind
        p = subprocess.run([exe, "--n", "2048", "--threads", "1"],
                           capture_output=True, text=True, env=env)
        out = p.stdout + p.stderr
        m = re.search(r"best_gflops=([\d.]+)", out)
        if p.returncode != 0 or not m:
            die(f"unexpected output from {exe}: {out.strip()}")
        core = re.search(r"Core: (\S+)", out)
        name = core.group(1) if core else (kind or "default")
        notes.append(f"{name} {float(m.group(1)):.1f}")
        best = max(best, float(m.group(1)))
    return best, "best of OpenBLAS kernels: " + ", ".join(notes)


def latency(out, what):
    lines = [l for l in out.splitlines() if l.startswith("latency_ms")]
    m = LATENCY.fullmatch(lines[-1].strip()) if lines else None
    if not m:
        die(f"{what}: no 'latency_ms median=... p90=... min=...' line in "
            f"{out.strip()!r}")
    return float(m.group(1)), float(m.group(3))


def time_lamina(args, model, x, batch, out=None):
    argv = [args.lamina, "run", model, "--input", x, "--threads", "1",
            "--repeat", str(args.repeat)]
    if batch != 1:
        argv += ["--batch", str(batch)]
    if out:
        argv += ["--output", out]
    return latency(run(argv, f"lamina run {os.path.basename(model)} "
                       f"batch {batch}"), "lamina run")


def time_ort(args, model, x, out=None):
    argv = ["node", os.path.join(ROOT, "tools", "ort", "run.js"), model,
            "--input", x, "--threads", "1", "--repeat", str(args.repeat)]
    if out:
        argv += ["--output", out]
    return latency(run(argv, f"onnxruntime {os.path.basename(model)}"),
                   "run.js")


def scaled_diff(a_path, b_path):
    a = np.load(a_path).astype(np.float64)
    b = np.load(b_path).astype(np.float64)
    if a.shape != b.shape:
        return float("inf")
    scale = float(np.max(np.abs(b)))
    diff = float(np.max(np.abs(a - b)))
    return diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))


def compare(args):
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    batches = [int(b) for b in args.batch.split(",")]
    if any(b < 1 for b in batches):
        die("--batch sizes must be >= 1")
    os.makedirs(args.dir, exist_ok=True)
    ensure_models(args.dir, names, any(b != 1 for b in batches))
    peak, peak_note = sgemm_peak(args)
    load = os.getloadavg()
    print(f"sgemm peak {peak:.1f} GFLOP/s, 1 thread ({peak_note})")
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on "
          f"{os.cpu_count()} CPUs; {args.rounds} rounds of --repeat "
          f"{args.repeat}")

    tmp = tempfile.mkdtemp(prefix="bench_runtime.")
    jobs = []
    for n in names:
        model = os.path.join(args.dir, n + ".onnx")
        in_name, dims = model_input(model)
        for b in batches:
            ort_model = model if b == 1 else os.path.join(args.dir,
                                                          n + "_dyn.onnx")
            jobs.append({
                "name": n, "batch": b, "model": model, "ort_model": ort_model,
                "x": make_input(tmp, n, dims, b),
                "flops": model_flops(args.lamina, model, in_name, dims, b),
                "lam": [], "ort": [], "lam_min": [], "ort_min": [],
                "check": None})

    for r in range(args.rounds):
        for j in jobs:
            outs = None
            if r == 0:
                outs = (os.path.join(tmp, f"{j['name']}_b{j['batch']}.lam.npy"),
                        os.path.join(tmp, f"{j['name']}_b{j['batch']}.ort.npy"))
            sides = [("lam", lambda o: time_lamina(
                args, j["model"], j["x"], j["batch"], o)),
                ("ort", lambda o: time_ort(args, j["ort_model"], j["x"], o))]
            if r % 2:
                sides.reverse()
            for key, fn in sides:
                o = None if outs is None else outs[0 if key == "lam" else 1]
                med, low = fn(o)
                j[key].append(med)
                j[key + "_min"].append(low)
            if outs:
                j["check"] = scaled_diff(*outs)
            print(f"  round {r + 1}: {j['name']} batch {j['batch']}: "
                  f"lamina {j['lam'][-1]:.2f} ms, ort {j['ort'][-1]:.2f} ms",
                  file=sys.stderr, flush=True)

    w = max([14] + [len(j["name"]) for j in jobs])
    hdr = (f"{'model':<{w}} {'batch':>5} {'lamina ms':>10} {'ort ms':>9} "
           f"{'ratio':>6} {'lam GF/s':>9} {'ort GF/s':>9} {'lam %pk':>8} "
           f"{'ort %pk':>8} {'spread':>7} {'min ratio':>9} {'check':>8}")
    print()
    print(hdr)
    print("-" * len(hdr))
    ratios, min_ratios, every = {}, {}, []
    for j in jobs:
        lam = statistics.median(j["lam"])
        ort = statistics.median(j["ort"])
        ratio = lam / ort
        min_ratio = min(j["lam_min"]) / min(j["ort_min"])
        ratios.setdefault(j["batch"], []).append(ratio)
        every.append(ratio)
        min_ratios.setdefault(j["batch"], []).append(min_ratio)
        lam_gf = j["flops"] / (lam * 1e-3) * 1e-9
        ort_gf = j["flops"] / (ort * 1e-3) * 1e-9
        spread = (max(j["lam"]) - min(j["lam"])) / lam
        print(f"{j['name']:<{w}} {j['batch']:>5} {lam:>10.2f} {ort:>9.2f} "
              f"{ratio:>6.2f} {lam_gf:>9.1f} {ort_gf:>9.1f} "
              f"{100 * lam_gf / peak:>7.1f}% {100 * ort_gf / peak:>7.1f}% "
              f"{100 * spread:>6.1f}% {min_ratio:>9.2f} {j['check']:>8.1e}")
    print()

    def gmean(xs):
        return math.exp(sum(math.log(x) for x in xs) / len(xs))

    for b, rs in ratios.items():
        worst = max((r, j["name"]) for r, j in
                    zip(rs, [j for j in jobs if j["batch"] == b]))
        print(f"geometric mean of lamina/ort at batch {b}: {gmean(rs):.3f} "
              f"({len(rs)} models; of the min ratios "
              f"{gmean(min_ratios[b]):.3f}); largest {worst[0]:.2f} "
              f"({worst[1]})")
    if not args.no_kernels:
        slowest_kernels(args, jobs, every)
    for f in os.listdir(tmp):
        os.remove(os.path.join(tmp, f))
    os.rmdir(tmp)


def parse_profile(text):
    """Rows of lamina's --profile table: (name, op, kernel, ms, pct, gflops).

    A row is a line whose last three fields are numbers (ms, % of total,
    GFLOP/s; a '%' sign or '-' allowed) after at least name, op and kernel.
    """
    def num(s):
        s = s.rstrip("%")
        if s in ("-", "n/a"):
            return 0.0
        return float(s)

    rows = []
    for line in text.splitlines():
        f = line.split()
        if len(f) < 6 or f[0].startswith("latency_ms"):
            continue
        try:
            ms, pct, gf = num(f[-3]), num(f[-2]), num(f[-1])
        except ValueError:
            continue
        rows.append((f[0], f[1], " ".join(f[2:-3]), ms, pct, gf))
    return rows


def profile_rows(args, model, batch):
    """lamina's --profile rows of model (a path) at batch."""
    in_name, dims = model_input(model)
    with tempfile.TemporaryDirectory(prefix="bench_runtime.") as tmp:
        x = make_input(tmp, "input", dims, batch)
        argv = [args.lamina, "run", model, "--input", f"{in_name}={x}",
                "--threads", "1", "--profile", "--repeat", str(args.repeat)]
        if batch != 1:
            argv += ["--batch", str(batch)]
        out = run(argv, "lamina run --profile")
    return out, parse_profile(out)


def summarise(rows, key):
    """Rows grouped by column key (1: op type, 2: kernel), largest time
    first: (name, nodes, ms, GFLOP/s)."""
    groups = {}
    for row in rows:
        e = groups.setdefault(row[key], [0, 0.0, 0.0])
        e[0] += 1
        e[1] += row[3]
        e[2] += row[5] * row[3] * 1e6  # GFLOP/s x ms -> FLOPs
    return [(name, count, ms, flops / (ms * 1e-3) * 1e-9 if ms > 0 else 0.0)
            for name, (count, ms, flops) in
            sorted(groups.items(), key=lambda kv: -kv[1][1])]


def profile(args):
    model = args.profile
    if not os.path.exists(model):
        folder_model = os.path.join(args.dir, model + ".onnx")
        if not os.path.exists(folder_model):
            os.makedirs(args.dir, exist_ok=True)
            ensure_models(args.dir, [model], False)
        model = folder_model
    out, rows = profile_rows(args, model, int(args.batch.split(",")[0]))
    print(out.rstrip())
    if not rows:
        print("\n(no per-node rows recognised in the output above)")
        return
    total = sum(r[3] for r in rows)
    for title, key in (("op type", 1), ("kernel", 2)):
        print()
        print(f"{title:<28} {'nodes':>5} {'ms':>9} {'share':>7} "
              f"{'GFLOP/s':>8}")
        for name, count, ms, rate in summarise(rows, key):
            print(f"{name:<28} {count:>5} {ms:>9.3f} "
                  f"{100 * ms / total if total else 0:>6.1f}% {rate:>8.1f}")
        print(f"{'total':<28} {len(rows):>5} {total:>9.3f}")


def slowest_kernels(args, jobs, ratios):
    """For the three rows with the largest ratio, the kernels that take
    lamina's time (a --profile run of that model and batch)."""
    worst = sorted(zip(ratios, range(len(jobs))), reverse=True)[:3]
    print()
    print("where the slowest three spend lamina's time (lamina run "
          "--profile, by kernel; top 4):")
    for ratio, i in worst:
        j = jobs[i]
        _, rows = profile_rows(args, j["model"], j["batch"])
        total = sum(r[3] for r in rows)
        print(f"  {j['name']} batch {j['batch']} (ratio {ratio:.2f}, "
              f"profiled {total:.2f} ms):")
        for name, count, ms, rate in summarise(rows, 2)[:4]:
            print(f"    {name:<28} {count:>4} nodes {ms:>9.3f} ms "
                  f"{100 * ms / total if total else 0:>5.1f}% "
                  f"{rate:>7.1f} GFLOP/s")


def main():
    ap = argparse.ArgumentParser(
        description="Benchmark lamina run against onnxruntime "
        "(see the docstring at the top of this file for how to read it).")
    ap.add_argument("--lamina", default="build/control/lamina")
    ap.add_argument("--models", default=DEFAULT_MODELS)
    ap.add_argument("--batch", default="1,8",
                    help="comma-separated batch sizes (profile: the first)")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", default="build/bench-models",
                    help="folder of exported models (made when missing)")
    ap.add_argument("--sgemm", default="build/tools/bench_sgemm",
                    help="the sgemm peak program (built when missing)")
    ap.add_argument("--peak", type=float,
                    help="sgemm peak GFLOP/s to use instead of measuring")
    ap.add_argument("--profile", metavar="MODEL",
                    help="print lamina's per-node profile of MODEL (a path, "
                    "or a name exported into --dir) and a summary by op")
    ap.add_argument("--no-kernels", action="store_true",
                    help="comparison: skip the kernel summary of the "
                    "slowest three")
    args = ap.parse_args()
    if args.repeat < 1 or args.rounds < 1:
        ap.error("--repeat and --rounds must be >= 1")
    if not os.path.exists(args.lamina):
        ap.error(f"{args.lamina} not found (build first: ninja -C build)")
    if args.profile:
        profile(args)
    else:
        compare(args)


if __name__ == "__main__":
    main()
