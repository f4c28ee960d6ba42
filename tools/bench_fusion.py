#!/usr/bin/python3
"""Benchmark the runtime's pattern fusions: each fused against the same
graph run as the file has it (`lamina run --no-fuse`).

    tools/bench_fusion.py [--lamina build/control/lamina] [--rounds 3]
        [--repeat 500] [--only NAME,NAME]

Each case is a small ONNX model in the shape and size the fusion meets in
the model set (built here with onnx.helper, random weights), for example
MobileNetV3's squeeze-excitation on 480 channels at 14x14, ConvNeXt-Small's
stage-3 block at 384 channels and 14x14, Inception v3's padded average
pool.  Every round runs, per case, `lamina run --repeat R` fused then
unfused (the order flips every round), one thread, and keeps each side's
median and minimum; the table shows

    case, shape         what ran
    nodes               kernels run per inference, fused / unfused
    fused ms, unf ms    median over the rounds of the per-round medians
    ratio               fused / unfused: below 1 the fusion wins
    min fused, min unf  the fastest single run seen on each side: on a
                        shared machine the less disturbed figure
    min ratio           their ratio
    check               max|fused - unfused| / max|unfused| (outputs of
                        the first round): the fusion must not change the
                        answer

Keep other work off the machine: the cases take tens of microseconds to
milliseconds, so a busy core shows up directly (the load average is
printed at the top).
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

LATENCY = re.compile(r"latency_ms median=([\d.]+) p90=([\d.]+) min=([\d.]+)")
F32 = TensorProto.FLOAT


def die(msg):
    raise SystemExit(f"bench_fusion: {msg}")


def model(name, nodes, x_shape, inits, opset=13):
    rng = np.random.default_rng(abs(hash(name)) % (1 << 32))
    init = []
    for k, (shape, lo, hi) in inits.items():
        init.append(numpy_helper.from_array(
            rng.uniform(lo, hi, shape).astype(np.float32), k))
    g = helper.make_graph(nodes, name,
                          [helper.make_tensor_value_info("x", F32, x_shape)],
                          [helper.make_tensor_value_info("y", F32, None)],
                          initializer=init)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return onnx.shape_inference.infer_shapes(m)


def scalar(v):
    return ([], v, v)


def se_case(c, r, hw, kind):
    """GlobalAveragePool, 1x1 Conv + act, 1x1 Conv, gate, Mul, after a
    Relu (so the block's input is made in the graph, as in a network)."""
    nodes = [helper.make_node("Relu", ["x"], ["c"]),
             helper.make_node("GlobalAveragePool", ["c"], ["p"]),
             helper.make_node("Conv", ["p", "w1", "b1"], ["q"])]
    if kind == "mobilenet_v3":
        nodes += [helper.make_node("Relu", ["q"], ["qa"]),
                  helper.make_node("Conv", ["qa", "w2", "b2"], ["z"]),
                  helper.make_node("HardSigmoid", ["z"], ["g"],
                                   alpha=1.0 / 6)]
    else:
        nodes += [helper.make_node("Sigmoid", ["q"], ["qs"]),
                  helper.make_node("Mul", ["q", "qs"], ["qa"]),
                  helper.make_node("Conv", ["qa", "w2", "b2"], ["z"]),
                  helper.make_node("Sigmoid", ["z"], ["g"])]
    nodes.append(helper.make_node("Mul", ["c", "g"], ["y"]))
    inits = {"w1": ((r, c, 1, 1), -0.1, 0.1), "b1": ((r,), -0.5, 0.5),
             "w2": ((c, r, 1, 1), -0.1, 0.1), "b2": ((c,), -0.5, 0.5)}
    return model(f"se_{kind}_{c}", nodes, [1, c, hw, hw], inits)


def conv_act_case(c, hw, act, k=None):
    """1x1 Conv (c -> k, default c) then an activation as exporters write
    it."""
    k = k or c
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"])]
    inits = {"w": ((k, c, 1, 1), -0.1, 0.1), "b": ((k,), -0.5, 0.5)}
    if act == "hardswish":
        nodes += [helper.make_node("HardSigmoid", ["c"], ["h"],
                                   alpha=1.0 / 6),
                  helper.make_node("Mul", ["c", "h"], ["y"])]
    elif act == "silu":
        nodes += [helper.make_node("Sigmoid", ["c"], ["s"]),
                  helper.make_node("Mul", ["c", "s"], ["y"])]
    else:  # gelu, erf form as torch writes it
        nodes += [helper.make_node("Div", ["c", "k"], ["d"]),
                  helper.make_node("Erf", ["d"], ["e"]),
                  helper.make_node("Add", ["e", "one"], ["a"]),
                  helper.make_node("Mul", ["c", "a"], ["m"]),
                  helper.make_node("Mul", ["m", "half"], ["y"])]
        inits.update(k=scalar(1.4142135), one=scalar(1.0), half=scalar(0.5))
    return model(f"conv_{act}_{c}", nodes, [1, c, hw, hw], inits)


def layernorm_body(x, y, prefix, eps_name):
    """torch's LayerNorm over the last axis before opset 17."""
    p = prefix
    return [helper.make_node("ReduceMean", [x], [p + "mu"], axes=[-1]),
            helper.make_node("Sub", [x, p + "mu"], [p + "d"]),
            helper.make_node("Pow", [p + "d", "two"], [p + "p"]),
            helper.make_node("ReduceMean", [p + "p"], [p + "v"], axes=[-1]),
            helper.make_node("Add", [p + "v", eps_name], [p + "ve"]),
            helper.make_node("Sqrt", [p + "ve"], [p + "sd"]),
            helper.make_node("Div", [p + "d", p + "sd"], [p + "n"]),
            helper.make_node("Mul", [p + "n", p + "g"], [p + "gm"]),
            helper.make_node("Add", [p + "gm", p + "b"], [y])]


def convnext_case(c, hw):
    """ConvNeXt's block after its depthwise conv: Permute, LayerNorm,
    Linear, GELU, Linear, Permute, layer scale, residual."""
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1])]
    nodes += layernorm_body("t", "ln", "l_", "eps")
    nodes += [helper.make_node("MatMul", ["ln", "fc1"], ["m1"]),
              helper.make_node("Add", ["fc1b", "m1"], ["h1"]),
              helper.make_node("Div", ["h1", "k"], ["d"]),
              helper.make_node("Erf", ["d"], ["e"]),
              helper.make_node("Add", ["e", "one"], ["a"]),
              helper.make_node("Mul", ["h1", "a"], ["gm"]),
              helper.make_node("Mul", ["gm", "half"], ["gl"]),
              helper.make_node("MatMul", ["gl", "fc2"], ["m2"]),
              helper.make_node("Add", ["fc2b", "m2"], ["h2"]),
              helper.make_node("Transpose", ["h2"], ["bk"],
                               perm=[0, 3, 1, 2]),
              helper.make_node("Mul", ["ls", "bk"], ["sc"]),
              helper.make_node("Add", ["sc", "x"], ["y"])]
    inits = {"l_g": ((c,), 0.5, 1.5), "l_b": ((c,), -0.2, 0.2),
             "two": scalar(2.0), "eps": scalar(1e-6),
             "fc1": ((c, 4 * c), -0.05, 0.05), "fc1b": ((4 * c,), -0.1, 0.1),
             "fc2": ((4 * c, c), -0.05, 0.05), "fc2b": ((c,), -0.1, 0.1),
             "k": scalar(1.4142135), "one": scalar(1.0), "half": scalar(0.5),
             "ls": ((c, 1, 1), 0.2, 0.6)}
    return model(f"convnext_{c}", nodes, [1, c, hw, hw], inits)


def layernorm2d_case(c, hw):
    """ConvNeXt's LayerNorm2d: Permute, LayerNorm, Permute."""
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1])]
    nodes += layernorm_body("t", "ln", "l_", "eps")
    nodes.append(helper.make_node("Transpose", ["ln"], ["y"],
                                  perm=[0, 3, 1, 2]))
    inits = {"l_g": ((c,), 0.5, 1.5), "l_b": ((c,), -0.2, 0.2),
             "two": scalar(2.0), "eps": scalar(1e-6)}
    return model(f"layernorm2d_{c}", nodes, [1, c, hw, hw], inits)


def pad_pool_case(c, hw):
    """torch's avg_pool2d(3, stride 1, padding 1): Pad, AveragePool."""
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Pad", ["r", "pads"], ["p"]),
             helper.make_node("AveragePool", ["p"], ["y"],
                              kernel_shape=[3, 3])]
    m = model(f"pad_avgpool_{c}", nodes, [1, c, hw, hw], {})
    m.graph.initializer.append(numpy_helper.from_array(
        np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads"))
    return onnx.shape_inference.infer_shapes(m)


# name -> (what, builder)
CASES = {
    "se_mnv3_72": ("MobileNetV3 SE 72x28x28 /24", lambda: se_case(
        72, 24, 28, "mobilenet_v3")),
    "se_mnv3_480": ("MobileNetV3 SE 480x14x14 /120", lambda: se_case(
        480, 120, 14, "mobilenet_v3")),
    "se_mnv3_960": ("MobileNetV3 SE 960x7x7 /240", lambda: se_case(
        960, 240, 7, "mobilenet_v3")),
    "se_effnet_240": ("EfficientNet SE 240x28x28 /10", lambda: se_case(
        240, 10, 28, "efficientnet")),
    "se_effnet_1152": ("EfficientNet SE 1152x8x8 /48", lambda: se_case(
        1152, 48, 8, "efficientnet")),
    "hardswish": ("1x1 Conv + HardSigmoid*x 120x28x28", lambda:
                  conv_act_case(120, 28, "hardswish")),
    "silu": ("1x1 Conv + Sigmoid*x 240x28x28", lambda:
             conv_act_case(240, 28, "silu")),
    "gelu": ("1x1 Conv + erf GELU 384>1536x14x14", lambda:
             conv_act_case(384, 14, "gelu", 1536)),
    "convnext_96": ("ConvNeXt block 96x56x56", lambda:
                    convnext_case(96, 56)),
    "convnext_384": ("ConvNeXt block 384x14x14", lambda:
                     convnext_case(384, 14)),
    "layernorm2d_192": ("LayerNorm2d 192x28x28", lambda:
                        layernorm2d_case(192, 28)),
    "pad_avgpool_288": ("Pad + AveragePool 288x35x35", lambda:
                        pad_pool_case(288, 35)),
}


def run(argv, what):
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode != 0:
        die(f"{what} failed ({p.returncode}): {p.stderr.strip()}")
    return p.stdout


def timed(lamina, path, x, repeat, fuse, out=None):
    argv = [lamina, "run", path, "--input", f"x={x}", "--threads", "1",
            "--repeat", str(repeat)]
    if not fuse:
        argv.append("--no-fuse")
    if out:
        argv += ["--output", f"y={out}"]
    m = LATENCY.search(run(argv, f"lamina run {os.path.basename(path)}"))
    if not m:
        die(f"no latency line from lamina run {path}")
    return float(m.group(1)), float(m.group(3))


def nodes(lamina, path, x, fuse):
    argv = [lamina, "run", path, "--input", f"x={x}", "--profile"]
    if not fuse:
        argv.append("--no-fuse")
    text = run(argv, "lamina run --profile")
    count = 0
    for line in text.splitlines():
        f = line.split()
        try:
            if len(f) >= 6 and not line.startswith("latency_ms"):
                float(f[-3])
                count += 1
        except ValueError:
            pass
    return count


def main():
    ap = argparse.ArgumentParser(
        description="Benchmark lamina's pattern fusions against --no-fuse "
        "(see the docstring at the top of this file).")
    ap.add_argument("--lamina", default="build/control/lamina")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=500)
    ap.add_argument("--only", help="comma-separated: " + ",".join(CASES))
    args = ap.parse_args()
    if not os.path.exists(args.lamina):
        ap.error(f"{args.lamina} not found (build first: ninja -C build)")
    names = list(CASES)
    if args.only:
        names = [n for n in args.only.split(",") if n]
        bad = [n for n in names if n not in CASES]
        if bad:
            ap.error(f"unknown case(s) {', '.join(bad)}")
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on "
          f"{os.cpu_count()} CPUs; {args.rounds} rounds of --repeat "
          f"{args.repeat}, one thread")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_fusion.") as tmp:
        jobs = []
        for n in names:
            what, build = CASES[n]
            m = build()
            path = os.path.join(tmp, n + ".onnx")
            onnx.save(m, path)
            dims = [d.dim_value for d in
                    m.graph.input[0].type.tensor_type.shape.dim]
            x = os.path.join(tmp, n + "_x.npy")
            np.save(x, np.random.default_rng(1).uniform(-2, 2, dims)
                    .astype(np.float32))
            jobs.append({"name": n, "what": what, "path": path, "x": x,
                         "nodes": (nodes(args.lamina, path, x, True),
                                   nodes(args.lamina, path, x, False)),
                         True: [], False: [], "min": {True: [], False: []}})
        for r in range(args.rounds):
            for j in jobs:
                order = [True, False] if r % 2 == 0 else [False, True]
                for fuse in order:
                    out = (os.path.join(tmp, f"{j['name']}_{fuse}.npy")
                           if r == 0 else None)
                    med, low = timed(args.lamina, j["path"], j["x"],
                                     args.repeat, fuse, out)
                    j[fuse].append(med)
                    j["min"][fuse].append(low)
                if r == 0:
                    a = np.load(os.path.join(tmp, f"{j['name']}_True.npy"))
                    b = np.load(os.path.join(tmp, f"{j['name']}_False.npy"))
                    scale = float(np.max(np.abs(b)))
                    j["check"] = float(np.max(np.abs(a - b))) / scale
                print(f"  round {r + 1}: {j['name']}: fused "
                      f"{j[True][-1]:.3f} ms, unfused {j[False][-1]:.3f} ms",
                      file=sys.stderr, flush=True)
    hdr = (f"{'case':<16} {'shape':<33} {'nodes':>7} {'fused ms':>9} "
           f"{'unf ms':>8} {'ratio':>6} {'min fused':>9} {'min unf':>8} "
           f"{'min ratio':>9} {'check':>8}")
    print()
    print(hdr)
    print("-" * len(hdr))
    for j in jobs:
        f, u = statistics.median(j[True]), statistics.median(j[False])
        mf, mu = min(j["min"][True]), min(j["min"][False])
        print(f"{j['name']:<16} {j['what']:<33} "
              f"{j['nodes'][0]:>3}/{j['nodes'][1]:<3} {f:>9.3f} {u:>8.3f} "
              f"{f / u:>6.2f} {mf:>9.3f} {mu:>8.3f} {mf / mu:>9.2f} "
              f"{j['check']:>8.1e}")


if __name__ == "__main__":
    main()
