#!/usr/bin/python3
"""Integration tests of `lamina run` on the exported models.

Run by meson with Debian's python3 (it has numpy and onnx):
    test_run.py model NAME     one exported model (tests/meson.build test_models)

For the model, with fixed-seed random inputs (float32 uniform in [-1, 1],
integers small and non-negative), every output of `lamina run` is compared
with onnxruntime's (tools/ort/run.js, the oracle):
    max|diff| / max(1, max|ref|) <= 1e-4   and   max|diff| / max|ref| <= 1e-3
The second bound catches models whose outputs are all tiny (MobileNetV2 with
random weights), where the first would pass anything.

Then:
  - `--threads 2` gives the same outputs as one thread (first bound);
  - for the models in BATCH8, `--batch 8` on the batch-1 model is compared
    with onnxruntime run on each of the 8 samples and the results stacked.
    A graph that hard-codes its batch in a Reshape constant (the transformer:
    torch's attention reshapes to [seq, batch*heads, head_dim] as literals)
    cannot be re-batched; there the contract is a clear one-line error
    naming the Reshape (correct outputs are accepted too).
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

# Models checked at --batch 8 (the big torchvision ones but ResNet-50 and
# VGG-11, whose time under the sanitizers is better spent elsewhere).
BATCH8 = {"resnet18", "mobilenet_v2", "squeezenet1_1", "transformer",
          "branches", "concat", "multi_output", "residual", "shape_reshape",
          "dynamic_batch", "effnet_block"}
BATCH = 8
# Models whose graphs hard-code batch 1 in Reshape constants: a clear error
# is right for them (correct outputs would do too).
FIXED_BATCH = {"transformer"}

ABS_TOL = 1e-4  # max|diff| / max(1, max|ref|)
REL_TOL = 1e-3  # max|diff| / max|ref|



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


def ort_run(model, feeds, outs):
    argv = ["node", os.path.join(ORT, "run.js"), model]
    for name, path in feeds.items():
        argv += ["--input", f"{name}={path}"]
    for name, path in outs.items():
        argv += ["--output", f"{name}={path}"]
    p, _ = timed(argv)
    if p.returncode != 0:
        raise SystemExit(f"onnxruntime failed on {model}: {p.stderr.strip()}")


def compare(got, ref, tag, rel=True):
    """Check got against the reference at the module's tolerances; `rel`
    adds the bound relative to the largest reference value."""
    harness.compare(got, ref, tag, ABS_TOL, REL_TOL if rel else None)


def one_line_error(p, tag):
    lines = p.stderr.strip().splitlines()
    check(p.returncode != 0, f"{tag}: non-zero exit")
    check(len(lines) == 1, f"{tag}: one-line error, got {lines}")
    print(f"  {tag}: {p.stderr.strip()}")
    return p.stderr.strip()


def test_model(name):
    model = os.path.join(MODELS, name + ".onnx")
    proto = onnx.load(model, load_external_data=False)
    inputs = graph_inputs(proto)
    outputs = [o.name for o in proto.graph.output]
    work = fresh_dir(f"run/{name}")
    rng = np.random.default_rng(zlib.crc32(name.encode()))

    def paths(kind, tag, names):
        return {n: os.path.join(work, f"{kind}{i}_{tag}.npy")
                for i, n in enumerate(names)}

    # batch as exported, against onnxruntime
    feeds = paths("in", "b1", [n for n, _, _ in inputs])
    for (n, dt, dims) in inputs:
        np.save(feeds[n], random_array(rng, dt, dims))
    ref = paths("ref", "b1", outputs)
    ort_run(model, feeds, ref)
    got = paths("out", "b1", outputs)
    p = lamina_run(model, feeds, got)
    if not check(p.returncode == 0,
                 f"{name}: lamina run failed: {p.stderr.strip()}"):
        return
    for o in outputs:
        compare(np.load(got[o]), np.load(ref[o]), f"{name} '{o}'")

    # two threads: the same outputs
    got2 = paths("out", "t2", outputs)
    p = lamina_run(model, feeds, got2, "--threads", "2")
    if check(p.returncode == 0,
             f"{name} --threads 2: lamina run failed: {p.stderr.strip()}"):
        for o in outputs:
            compare(np.load(got2[o]), np.load(got[o]),
                    f"{name} '{o}' --threads 2 against 1 thread", rel=False)

    if name not in BATCH8:
        return
    # --batch 8 against onnxruntime on each sample
    feeds8 = paths("in", f"b{BATCH}", [n for n, _, _ in inputs])
    samples = [dict() for _ in range(BATCH)]
    for (n, dt, dims) in inputs:
        x = random_array(rng, dt, [BATCH] + dims[1:])
        np.save(feeds8[n], x)
        for i in range(BATCH):
            path = os.path.join(work, f"in_{n.replace('/', '_')}_s{i}.npy")
            np.save(path, x[i:i + 1])
            samples[i][n] = path
    per_sample = []
    for i in range(BATCH):
        outs = paths("ref", f"s{i}", outputs)
        ort_run(model, samples[i], outs)
        per_sample.append(outs)
    got8 = paths("out", f"b{BATCH}", outputs)
    p = lamina_run(model, feeds8, got8, "--batch", str(BATCH))
    reshapes = {n.name for n in proto.graph.node if n.op_type == "Reshape"}
    if name in FIXED_BATCH and p.returncode != 0:
        err = one_line_error(p, f"{name} --batch {BATCH}")
        check(any(r in err for r in reshapes) or "Reshape" in err,
              f"{name} --batch {BATCH}: the error names the Reshape that "
              f"hard-codes the batch: {err!r}")
        return
    if not check(p.returncode == 0, f"{name} --batch {BATCH}: lamina run "
                 f"failed: {p.stderr.strip()}"):
        return
    for o in outputs:
        ref8 = np.concatenate([np.load(s[o]) for s in per_sample])
        compare(np.load(got8[o]), ref8,
                f"{name} '{o}' --batch {BATCH} against 8 single samples")


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    os.makedirs(TMP, exist_ok=True)
    if what == "model" and len(sys.argv) == 3:
        test_model(sys.argv[2])
    else:
        raise SystemExit("usage: test_run.py model NAME")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
