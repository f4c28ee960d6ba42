#!/usr/bin/python3
"""Integration tests of `lamina run` on the exported models.

Run by meson with Debian's python3 (it has numpy and onnx):
    test_run.py model NAME     one exported model (tests/meson.build
                               test_models): batch 1, and batch 8 unless
                               NAME is in HEAVY
    test_run.py batch8 NAME    batch 8 alone (HEAVY models, a test of its
                               own so it runs beside the others)

For the model, with fixed-seed random inputs (float32 uniform in [-1, 1],
integers small and non-negative), every output of `lamina run` is compared
with onnxruntime's (tools/ort/run.js, the oracle) relative to the output's
own scale:
    max|diff| <= 1e-4 * max|ref|
and the reference must say something (max|ref| > 1e-3, not all values
equal): tools/export_models.py sets BatchNorm statistics from data so the
random-weight models give O(1) outputs; max|ref| is printed.

Then:
  - `--threads 2` gives the same outputs as one thread (same bound);
  - `--batch 8` on the batch-1 model is compared with onnxruntime running
    the 8 samples one at a time through one session (run.js --per-sample),
    stacked.  HEAVY models (the big networks, whose batch 8 costs most of a
    minute under the sanitizers) skip the separate two-thread run at batch
    1 and run batch 8 with --threads 2 instead, so both paths stay checked.
    A graph that holds its batch as a literal in Reshape targets (the
    transformer: torch's attention reshapes to [seq, batch*heads, head_dim]
    with numbers) follows the batch too: lamina finds the batch axis of
    every tensor and rewrites those targets (runtime/batch.c), so every
    model here must give the right answer at 8.  Models whose samples
    truly mix are test_batch.py's and test_ops.py's.
"""
import os
import subprocess
import sys
import time
import zlib

import numpy as np
import onnx

from harness import LAMINA, MODELS, ORT, TMP, check, fresh_dir, summary
import harness

# Models whose batch 8 is a test of its own (tests/meson.build lists the
# same), run with two threads; the rest do batch 1, two threads at batch
# 1 and batch 8 in one test.
HEAVY = {"resnet50", "vgg11", "wide_resnet50_2", "convnext_small",
         "densenet169", "inception_v3", "efficientnet_b1"}
BATCH = 8

TOL = 1e-4  # max|diff| / max|ref|



def np_dtype(elem_type):
    return onnx.mapping.TENSOR_TYPE_TO_NP_TYPE[elem_type]


def graph_inputs(model):
    """(name, numpy dtype, dims) of the inputs that are not initializers;
    symbolic dims are taken as 1."""
    inits = {t.name for t in model.graph.initializer}
    out = []
    for v in model.graph.input:
        if v.name in inits:
            continue
        tt = v.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else 1
                for d in tt.shape.dim]
        out.append((v.name, np_dtype(tt.elem_type), dims))
    return out


def random_array(rng, dtype, shape):
    if np.issubdtype(dtype, np.floating):
        return rng.uniform(-1, 1, size=shape).astype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    return rng.integers(0, 4, size=shape).astype(dtype)


def timed(argv):
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True)
    return p, time.perf_counter() - t0


def lamina_run(model, feeds, outs, *extra):
    """Run `lamina run`; feeds and outs map tensor names to .npy paths."""
    argv = [LAMINA, "run", model]
    for name, path in feeds.items():
        argv += ["--input", f"{name}={path}"]
    for name, path in outs.items():
        argv += ["--output", f"{name}={path}"]
    p, dt = timed(argv + list(extra))
    print(f"  lamina run {' '.join(extra) or '(defaults)'}: {dt:.2f} s",
          flush=True)
    return p


def ort_run(model, feeds, outs, *extra):
    argv = ["node", os.path.join(ORT, "run.js"), model, *extra]
    for name, path in feeds.items():
        argv += ["--input", f"{name}={path}"]
    for name, path in outs.items():
        argv += ["--output", f"{name}={path}"]
    p, _ = timed(argv)
    if p.returncode != 0:
        raise SystemExit(f"onnxruntime failed on {model}: {p.stderr.strip()}")


def compare(got, ref, tag, model_output=True):
    """Check got against the reference to TOL of its scale; a reference
    from onnxruntime (model_output) must also be non-degenerate."""
    harness.compare(got, ref, tag, TOL, model_output=model_output)


def setup(name, part):
    """(model path, parsed model, inputs, output names, work folder, rng);
    each part has its own folder, as they may run at the same time."""
    model = os.path.join(MODELS, name + ".onnx")
    proto = onnx.load(model, load_external_data=False)
    work = fresh_dir(f"run/{name}-{part}")
    return (model, proto, graph_inputs(proto),
            [o.name for o in proto.graph.output], work,
            np.random.default_rng(zlib.crc32(name.encode())))


def paths(work, kind, tag, names):
    return {n: os.path.join(work, f"{kind}{i}_{tag}.npy")
            for i, n in enumerate(names)}


def test_batch1(name):
    model, proto, inputs, outputs, work, rng = setup(name, "b1")
    feeds = paths(work, "in", "b1", [n for n, _, _ in inputs])
    for (n, dt, dims) in inputs:
        np.save(feeds[n], random_array(rng, dt, dims))
    ref = paths(work, "ref", "b1", outputs)
    ort_run(model, feeds, ref)
    got = paths(work, "out", "b1", outputs)
    p = lamina_run(model, feeds, got)
    if not check(p.returncode == 0,
                 f"{name}: lamina run failed: {p.stderr.strip()}"):
        return
    for o in outputs:
        compare(np.load(got[o]), np.load(ref[o]), f"{name} '{o}'")
    if name in HEAVY:
        return  # two threads are checked at batch 8

    # two threads: the same outputs
    got2 = paths(work, "out", "t2", outputs)
    p = lamina_run(model, feeds, got2, "--threads", "2")
    if check(p.returncode == 0,
             f"{name} --threads 2: lamina run failed: {p.stderr.strip()}"):
        for o in outputs:
            compare(np.load(got2[o]), np.load(got[o]),
                    f"{name} '{o}' --threads 2 against 1 thread",
                    model_output=False)


def test_batch8(name):
    """--batch 8 on the batch-1 model against onnxruntime on each sample."""
    model, proto, inputs, outputs, work, rng = setup(name, f"b{BATCH}")
    rng = np.random.default_rng(zlib.crc32(name.encode()) + BATCH)
    feeds8 = paths(work, "in", f"b{BATCH}", [n for n, _, _ in inputs])
    for (n, dt, dims) in inputs:
        np.save(feeds8[n], random_array(rng, dt, [BATCH] + dims[1:]))
    ref8 = paths(work, "ref", f"b{BATCH}", outputs)
    ort_run(model, feeds8, ref8, "--per-sample")
    got8 = paths(work, "out", f"b{BATCH}", outputs)
    extra = ["--batch", str(BATCH)]
    if name in HEAVY:
        extra += ["--threads", "2"]
    p = lamina_run(model, feeds8, got8, *extra)
    if not check(p.returncode == 0, f"{name} {' '.join(extra)}: lamina run "
                 f"failed: {p.stderr.strip()}"):
        return
    for o in outputs:
        compare(np.load(got8[o]), np.load(ref8[o]),
                f"{name} '{o}' {' '.join(extra)} against 8 single samples")


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    os.makedirs(TMP, exist_ok=True)
    if what == "model" and len(sys.argv) == 3:
        test_batch1(sys.argv[2])
        if sys.argv[2] not in HEAVY:
            test_batch8(sys.argv[2])
    elif what == "batch8" and len(sys.argv) == 3:
        test_batch8(sys.argv[2])
    else:
        raise SystemExit("usage: test_run.py model|batch8 NAME")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
