#!/usr/bin/python3
"""Integration tests of models whose batch is not simply axis 0 of a
static shape (issue 14: batch handling that follows the model).

Run by meson with Debian's python3; the models are exported by
tools/export_models.py into LAMINA_MODELS (enc_bf, enc_sf, cnn_dyn,
literal_b1, fixed_b2):
    test_batch.py slice MODEL   lamina slice: the batch and batch axes in
                                the manifest, the symbolic batch in the
                                slice files, the slices chained in
                                onnxruntime at batch 1 and 8 (one slicing),
                                and a slicing at batch 8 stating batch 8
    test_batch.py run MODEL     lamina run at batch 1 and 8, of the model
                                and of its slices chained (one slicing),
                                against onnxruntime: max|diff| <= 1e-4 x
                                max|ref|; the fixed-batch model refused at
                                other batches, naming the node
    test_batch.py bench         lamina bench --batch 1,8: bytes per batch
                                (8x at 8, not 64x, also when sliced at
                                8); lamina plan; the fixed-batch model
                                benched at its batch only

The deployment of the sequence-first encoder is test_deploy.py
transformer.
"""
import json
import os
import subprocess
import sys

import numpy as np

from harness import MODELS, ORT, TMP, check, fresh_dir, summary
import harness

TOL = 1e-4  # max|diff| <= TOL * max|ref|

# name -> batch axis of input and output (None: no batch), the input shape
# at the batch exported, whether the batch is symbolic, and for the model
# that keeps its batch: that batch and the node that keeps it
INFO = {
    "enc_bf": {"axis": 0, "shape": [1, 8, 32], "dynamic": True},
    "enc_sf": {"axis": 1, "shape": [8, 1, 32], "dynamic": True},
    "cnn_dyn": {"axis": 0, "shape": [1, 3, 16, 16], "dynamic": True},
    "literal_b1": {"axis": 0, "shape": [1, 3, 8, 8], "dynamic": False},
    "fixed_b2": {"axis": None, "shape": [2, 3, 4, 4], "dynamic": False,
                 "own": 2, "node": "/Reshape"},
}


def lamina(*args):
    return harness.lamina(*args)


def model_path(name):
    return os.path.join(MODELS, name + ".onnx")


def shape_at(name, b):
    info = INFO[name]
    shape = list(info["shape"])
    shape[info["axis"] if info["axis"] is not None else 0] = b
    return shape


def slice_model(name, work, *extra):
    lam = os.path.join(work, name + "".join(extra).replace("=", "_")
                       .replace(",", "_") + ".lam")
    p = lamina("slice", model_path(name), "-o", lam, "--force", *extra)
    if not check(p.returncode == 0, f"slice {name} {extra}: {p.stderr}"):
        return None, None
    return lam, json.load(open(os.path.join(lam, "manifest.json")))


def safe(name):
    return name.replace("/", "_").replace(":", "_")


def ort_run(model, feeds, outs):
    argv = ["node", os.path.join(ORT, "run.js"), model]
    for n, f in feeds.items():
        argv += ["--input", f"{n}={f}"]
    for n, f in outs.items():
        argv += ["--output", f"{n}={f}"]
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"onnxruntime failed on {model}: {p.stderr}")


def compare(got, ref, tag):
    harness.compare(got, ref, tag, TOL, model_output=True)


# ---- slice ----

def ort_check(model, lam, *extra):
    from test_slice import ort_check as chain
    chain(model, lam, extra=extra)


def test_slice(name):
    from test_slice import check_manifest_and_files
    info = INFO[name]
    work = fresh_dir(f"batch-slice/{name}")
    model = model_path(name)
    lam, man = slice_model(name, work)
    if not lam:
        return
    check_manifest_and_files(model, lam)
    tensors = [t for s in man["slices"] for t in s["inputs"] + s["outputs"]]
    if "own" in info:
        check(man["batch"] == info["own"] and
              info["node"] in man.get("batch_fixed", ""),
              f"{name}: batch {man['batch']}, fixed by "
              f"{man.get('batch_fixed')!r}")
        check(all("batch_axis" not in t for t in tensors + man["inputs"]),
              f"{name}: no batch axes when the model keeps its batch")
        ort_check(model, lam)
        return
    ax = info["axis"]
    check(man["batch"] == 1 and "batch_fixed" not in man,
          f"{name}: sliced at batch 1, any batch: {man.get('batch_fixed')}")
    check(man["inputs"][0].get("batch_axis") == ax and
          man["outputs"][0].get("batch_axis") == ax,
          f"{name}: batch axis {ax} of the input and output: "
          f"{man['inputs'][0]} {man['outputs'][0]}")
    check(all("batch_axis" in t for t in tensors),
          f"{name}: every tensor crossing a cut holds the batch")
    if name.startswith("enc"):
        # layer granularity cuts inside attention: heads merged with the
        # batch ([batch*4, 8, 8]), and the batch moved by Transposes
        check(len(man["slices"]) >= 20, f"{name}: {len(man['slices'])} "
              "slices at layer granularity")
        merged = [t for t in tensors
                  if t["shape"][t["batch_axis"]] == 4 * man["batch"]]
        axes = {t["batch_axis"] for t in tensors}
        check(merged and axes == {0, 1},
              f"{name}: batch*heads in {len(merged)} cut tensors, batch "
              f"axes {sorted(axes)}")
    ort_check(model, lam)
    if not info["dynamic"]:
        return
    ort_check(model, lam, "--batch", "8")
    # sliced at batch 8: the same axes, the shapes and bytes of batch 8
    lam8, man8 = slice_model(name, work, "--input-shape",
                             "input=" + ",".join(map(str, shape_at(name, 8))))
    if not lam8:
        return
    check(man8["batch"] == 8 and
          man8["inputs"][0]["shape"] == shape_at(name, 8),
          f"{name} sliced at 8: batch {man8['batch']}, input "
          f"{man8['inputs'][0]['shape']}")
    check([s["cut_bytes"] for s in man8["slices"]] ==
          [8 * s["cut_bytes"] for s in man["slices"]],
          f"{name} sliced at 8: cut bytes 8x those at 1")
    ort_check(model, lam8)
    ort_check(model, lam8, "--batch", "1")


# ---- run ----

def run_chain(lam, man, feeds, batch, work, tag):
    """lamina run of every slice in order at `batch`; the model's outputs
    (name -> array), or None after a failure."""
    have = dict(feeds)
    for s in man["slices"]:
        argv = ["run", os.path.join(lam, s["file"])]
        if "batch_fixed" not in man:
            # slices of a fixed-batch model run at theirs, as sliced
            argv += ["--batch", str(batch)]
        for t in s["inputs"]:
            argv += ["--input", f"{t['name']}={have[t['name']]}"]
        outs = {}
        for t in s["outputs"]:
            outs[t["name"]] = os.path.join(work, f"{tag}_{safe(t['name'])}"
                                                 ".npy")
            argv += ["--output", f"{t['name']}={outs[t['name']]}"]
        p = lamina(*argv)
        if not check(p.returncode == 0, f"{tag}: lamina run {s['file']}: "
                     f"{p.stderr.strip()}"):
            return None
        have.update(outs)
    return {t["name"]: np.load(have[t["name"]]) for t in man["outputs"]}


def reference(name, x, b, work):
    """onnxruntime's output at batch b: the model itself when it takes b,
    else each sample alone, stacked along the batch axis."""
    info, model = INFO[name], model_path(name)
    ax = info["axis"] if info["axis"] is not None else 0
    if info["dynamic"] or b == info["shape"][ax]:
        np.save(os.path.join(work, "xr.npy"), x)
        ort_run(model, {"input": os.path.join(work, "xr.npy")},
                {"output": os.path.join(work, "r.npy")})
        return np.load(os.path.join(work, "r.npy"))
    parts = []
    for i in range(b):
        np.save(os.path.join(work, "xi.npy"), np.take(x, [i], axis=ax))
        ort_run(model, {"input": os.path.join(work, "xi.npy")},
                {"output": os.path.join(work, "ri.npy")})
        parts.append(np.load(os.path.join(work, "ri.npy")))
    return np.concatenate(parts, axis=ax)


def test_run(name):
    info = INFO[name]
    work = fresh_dir(f"batch-run/{name}")
    model = model_path(name)
    lam, man = slice_model(name, work)
    if not lam:
        return
    rng = np.random.default_rng(14)
    batches = [info["own"]] if "own" in info else [1, 8]
    for b in batches:
        x = rng.uniform(-1, 1, shape_at(name, b)).astype(np.float32)
        xf, yf = os.path.join(work, f"x{b}.npy"), os.path.join(work,
                                                             f"y{b}.npy")
        np.save(xf, x)
        ref = reference(name, x, b, work)
        p = lamina("run", model, "--input", xf, "--output", yf, "--batch",
                   str(b))
        if check(p.returncode == 0, f"{name} --batch {b}: {p.stderr}"):
            compare(np.load(yf), ref, f"{name} at batch {b}")
        got = run_chain(lam, man, {"input": xf}, b, work, f"b{b}")
        if got is not None:
            compare(got["output"], ref, f"{name}: its {len(man['slices'])} "
                    f"slices chained at batch {b}")
    if "own" not in info:
        return
    # any other batch: one line naming the node and the batch that works
    x = rng.uniform(-1, 1, shape_at(name, 8)).astype(np.float32)
    xf = os.path.join(work, "x8.npy")
    np.save(xf, x)
    p = lamina("run", model, "--input", xf, "--batch", "8")
    err = p.stderr.strip()
    check(p.returncode != 0 and len(err.splitlines()) == 1 and
          f"'{info['node']}'" in err and
          f"batch {info['own']} only" in err,
          f"{name} --batch 8: one line naming the node and batch "
          f"{info['own']}: {err!r}")


# ---- bench ----

def bench(lam, batches):
    p = lamina("bench", lam, "--batch", batches, "--repeat", "3", "--quiet")
    if not check(p.returncode == 0, f"bench {lam} {batches}: {p.stderr}"):
        return None
    return json.load(open(os.path.join(lam, "profile.json")))["batches"]


def test_bench():
    work = fresh_dir("batch-bench")
    for name in ("enc_sf", "cnn_dyn"):
        lam, man = slice_model(name, work)
        lam8, man8 = slice_model(
            name, work, "--input-shape",
            "input=" + ",".join(map(str, shape_at(name, 8))))
        if not lam or not lam8:
            continue
        x_bytes = 4 * int(np.prod(shape_at(name, 1)))
        for tag, folder in (("sliced at 1", lam), ("sliced at 8", lam8)):
            prof = bench(folder, "1,8")
            if not prof:
                continue
            b1, b8 = prof
            check(b1["input_bytes"] == x_bytes and
                  b8["input_bytes"] == 8 * x_bytes,
                  f"{name} {tag}: input bytes {b1['input_bytes']} at 1, "
                  f"{b8['input_bytes']} at 8; the model's input is "
                  f"{x_bytes} per sample")
            check(b8["cut_bytes"] == [8 * c for c in b1["cut_bytes"]] and
                  b1["cut_bytes"] == [s["cut_bytes"]
                                      for s in man["slices"][:-1]],
                  f"{name} {tag}: cut bytes per batch")
            check(all(s8["output_bytes"] == 8 * s1["output_bytes"]
                      for s1, s8 in zip(b1["slices"], b8["slices"])),
                  f"{name} {tag}: slice outputs 8x at batch 8")
        # and it plans like a CNN
        plan = os.path.join(work, name + "-plan.json")
        p = lamina("plan", lam, "--objective", "throughput", "--batch", "8",
                   "-o", plan, "--quiet")
        check(p.returncode == 0 and json.load(open(plan))["batch"] == 8,
              f"{name}: plan at batch 8: {p.stderr}")
    lam, man = slice_model("fixed_b2", work)
    if lam:
        p = lamina("bench", lam, "--batch", "1,2", "--repeat", "1")
        err = p.stderr.strip()
        check(p.returncode != 0 and len(err.splitlines()) == 1 and
              "'/Reshape'" in err and "batch 2 only" in err,
              f"fixed_b2: bench at batch 1 refused naming the node: {err!r}")
        prof = bench(lam, "2")
        check(prof is not None and prof[0]["input_bytes"] == 4 * 2 * 48,
              f"fixed_b2: benched at its batch: {prof and prof[0]}")


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    os.makedirs(TMP, exist_ok=True)
    tests = {"slice": test_slice, "run": test_run}
    if what in tests and len(sys.argv) == 3 and sys.argv[2] in INFO:
        tests[what](sys.argv[2])
    elif what == "bench" and len(sys.argv) == 2:
        test_bench()
    else:
        raise SystemExit("usage: test_batch.py slice|run MODEL, or "
                         "test_batch.py bench")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
