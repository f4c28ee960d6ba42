#!/usr/bin/python3
"""Integration tests of `lamina slice` and `lamina inspect`.

Run by meson with Debian's python3 (it has the onnx package):
    test_slice.py contract MODEL   the slicing contract on one exported model
    test_slice.py errors           every bad input gets a clean one-line error
    test_slice.py cli              options, --help, inspect, --force

The contract (docs/formats.md, "manifest.json"; slicer/include/lamina/manifest.h): manifest.json lists every slice with
its file, inputs, outputs, nodes and costs; every slice file is a valid ONNX
model with the source's opset and IR version whose inputs and outputs are the
manifest's, in order, with value_info for every intermediate tensor; slices
carry only the initializers their nodes read and add at most 5% to the
model's size; running the slices in order in onnxruntime reproduces the
model's outputs to 1e-5 of their scale (checked by tools/ort/check_slices.js,
which also refuses exported test models whose outputs are degenerate).
"""
import json
import os
import re
import shutil
import subprocess
import sys

import onnx
import onnx.numpy_helper

from harness import BAD, MODELS, ORT, TMP, check, summary
import harness


def run(*args, ok=True):
    return harness.lamina(*args, ok=ok)


def fresh(name):
    path = os.path.join(TMP, name)
    if os.path.lexists(path):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


def ort_check(model, out_dir, test_model=True, extra=()):
    """The slices chained in onnxruntime give the model's outputs to
    1e-5 of their own scale (max|diff| <= 1e-5 max|ref|); for the exported
    test models the outputs must also be non-degenerate (max|ref| > 1e-3,
    not all equal), or the check would say nothing.  extra: more options
    of check_slices.js (--batch N)."""
    extra = (["--min-scale", "1e-3"] if test_model else []) + list(extra)
    p = subprocess.run(["node", os.path.join(ORT, "check_slices.js"), model,
                        out_dir, "--tol", "1e-5", *extra],
                       capture_output=True, text=True)
    print(p.stdout.strip())
    check(p.returncode == 0,
          f"onnxruntime chain check of {out_dir}: {p.stderr.strip()}")


def tensor_bytes(t):
    if t.HasField("raw_data"):
        return len(t.raw_data)
    for kv in t.external_data:
        if kv.key == "length":
            return int(kv.value)
    return onnx.numpy_helper.to_array(t).nbytes


# A batch axis in a slice file: the model's symbolic batch, with the rows
# per sample around it ("batch", "batch*4", "16*batch").
BATCH_DIM = re.compile(r"^(?:(\d+)\*)?([^*\d][^*]*)(?:\*(\d+))?$")


def check_dims(man, v, listed, tag):
    """Every dim of a slice file's tensor is filled in, but the batch axis,
    which is the symbolic batch when the model follows any batch; for a
    tensor the manifest lists, on its batch_axis with its rows per
    sample."""
    dims = v.type.tensor_type.shape.dim
    symbolic = [(k, d.dim_param) for k, d in enumerate(dims)
                if not d.HasField("dim_value")]
    if not check(len(symbolic) <= 1 and
                 all(BATCH_DIM.match(p) for _, p in symbolic),
                 f"{tag}: shape of {v.name} is filled in but for one batch "
                 f"axis: {symbolic}"):
        return
    check(not symbolic or "batch_fixed" not in man,
          f"{tag}: {v.name} has a symbolic batch, the model keeps its own")
    if listed is None:
        return
    axis = listed.get("batch_axis")
    if not symbolic:
        check(axis is None or "batch_fixed" in man,
              f"{tag}: {v.name} has batch_axis {axis} in the manifest but "
              f"no symbolic batch in the file")
        return
    k, p = symbolic[0]
    mo = BATCH_DIM.match(p)
    per = int(mo.group(1) or 1) * int(mo.group(3) or 1)
    check(k == axis and listed["shape"][k] == per * man["batch"],
          f"{tag}: {v.name} has '{p}' on axis {k}; the manifest says batch "
          f"axis {axis}, shape {listed['shape']} at batch {man['batch']}")


def check_manifest_and_files(model_path, out_dir):
    """Check the manifest schema and every slice file against it."""
    with open(os.path.join(out_dir, "manifest.json")) as f:
        man = json.load(f)
    src = onnx.load(model_path, load_external_data=False)
    src_opsets = sorted((o.domain, o.version) for o in src.opset_import)
    slices = man["slices"]
    check(len(slices) > 0, "manifest has slices")

    def tensors_ok(lst):
        return isinstance(lst, list) and all(
            isinstance(t["name"], str) and isinstance(t["dtype"], str) and
            all(isinstance(d, int) and d >= 0 for d in t["shape"])
            for t in lst)

    check(tensors_ok(man["inputs"]) and tensors_ok(man["outputs"]),
          "manifest model inputs/outputs are {name,dtype,shape} lists")
    check([t["name"] for t in man["outputs"]] ==
          [o.name for o in src.graph.output], "model outputs in order")
    total = 0
    available = {t["name"] for t in man["inputs"]}
    for i, s in enumerate(slices):
        tag = f"{os.path.basename(out_dir)} slice {i}"
        check(s["index"] == i, f"{tag}: index")
        for key in ("flops", "param_bytes", "output_bytes"):
            check(isinstance(s[key], (int, float)) and s[key] >= 0,
                  f"{tag}: {key}")
        check(tensors_ok(s["inputs"]) and tensors_ok(s["outputs"]),
              f"{tag}: tensor lists")
        check(not os.path.isabs(s["file"]) and ".." not in s["file"],
              f"{tag}: file is relative")
        path = os.path.join(out_dir, s["file"])
        total += os.path.getsize(path)
        m = onnx.load(path)
        try:
            onnx.checker.check_model(m, full_check=True)
            check(True, "")
        except Exception as ex:  # the checker raises several types
            check(False, f"{tag}: onnx checker: {ex}")
        check(m.ir_version == src.ir_version, f"{tag}: IR version")
        check(sorted((o.domain, o.version) for o in m.opset_import) ==
              src_opsets, f"{tag}: opset")
        inits = {t.name for t in m.graph.initializer}
        graph_inputs = [v.name for v in m.graph.input if v.name not in inits]
        check(graph_inputs == [t["name"] for t in s["inputs"]],
              f"{tag}: graph inputs {graph_inputs} match the manifest")
        check([v.name for v in m.graph.output] ==
              [t["name"] for t in s["outputs"]], f"{tag}: graph outputs")
        check([n.name for n in m.graph.node] == s["nodes"],
              f"{tag}: node names")
        for t in s["inputs"]:
            check(t["name"] in available,
                  f"{tag}: input {t['name']} comes from the model or an "
                  f"earlier slice")
        available |= {t["name"] for t in s["outputs"]}
        used = {x for n in m.graph.node for x in n.input if x}
        check(inits <= used, f"{tag}: unused initializers "
              f"{sorted(inits - used)}")
        produced = {x for n in m.graph.node for x in n.output if x}
        declared = {v.name for v in m.graph.value_info}
        outs = {v.name for v in m.graph.output}
        check(produced - outs <= declared,
              f"{tag}: value_info misses {sorted(produced - outs - declared)}")
        listed = {t["name"]: t for t in s["inputs"] + s["outputs"]}
        for v in list(m.graph.value_info) + list(m.graph.input) + \
                list(m.graph.output):
            check_dims(man, v, listed.get(v.name), tag)
    # Sizes.  Weights: no slice stores a weight it does not read (checked
    # above) and none is stored twice but for weights that several slices
    # read (shared layers), which each standalone slice must carry.
    src_size = os.path.getsize(model_path)
    src_weights = sum(tensor_bytes(t) for t in src.graph.initializer)
    src_weights += sum(tensor_bytes(a.t) for n in src.graph.node
                       if n.op_type == "Constant" for a in n.attribute
                       if a.HasField("t"))
    for t in src.graph.initializer:
        for kv in t.external_data:
            if kv.key == "length":
                src_size += int(kv.value)
    copies, size = {}, {}
    for s in slices:
        m = onnx.load(os.path.join(out_dir, s["file"]))
        for t in m.graph.initializer:
            copies[t.name] = copies.get(t.name, 0) + 1
            size[t.name] = tensor_bytes(t)
    slice_weights = sum(size[n] for n in copies)
    shared = sum((copies[n] - 1) * size[n] for n in copies)
    check(slice_weights <= 1.05 * src_weights,
          f"distinct weights in slices {slice_weights} bytes, source "
          f"{src_weights}: within 5%")
    # The files: within 5% of the model (plus the shared weights).  Tiny
    # test graphs are mostly names and shapes, which every standalone
    # slice repeats, so the rule is held on models of real size.
    if src_size > 1 << 20:
        check(total <= 1.05 * src_size + shared,
              f"slice files total {total} bytes, source {src_size} "
              f"(+{shared} shared): within 5%")
    return man


def test_contract(name):
    model = os.path.join(MODELS, name + ".onnx")
    out = fresh(f"contract/{name}.lam")
    run("slice", model, "-o", out)
    man = check_manifest_and_files(model, out)
    ort_check(model, out)
    if name == "dynamic_batch":
        # a symbolic batch stays symbolic: the slices chain at batch 8 too
        check(man["inputs"][0].get("batch_axis") == 0 and man["batch"] == 1,
              f"the batch axis of the input: {man['inputs'][0]}")
        ort_check(model, out, extra=["--batch", "8"])
    small = os.path.getsize(model) < 4 << 20
    if small:
        # other granularities of the same model keep the contract too
        for opt in (["--granularity", "node"], ["--max-slices", "3"]):
            out2 = fresh(f"contract/{name}{opt[0]}.lam")
            run("slice", model, "-o", out2, *opt)
            man2 = check_manifest_and_files(model, out2)
            ort_check(model, out2)
            if opt[0] == "--max-slices":
                check(len(man2["slices"]) <= 3, "--max-slices 3 honoured")
            else:
                check(len(man2["slices"]) >= len(man["slices"]),
                      "node granularity has at least as many slices")
    if name == "shape_reshape":
        ops = set()
        for s in man["slices"]:
            m = onnx.load(os.path.join(out, s["file"]))
            ops |= {n.op_type for n in m.graph.node}
        check("Reshape" in ops and not ops & {"Shape", "Gather", "Unsqueeze",
                                               "Concat"},
              f"shape subgraph folded into a constant (ops left: {ops})")
    if name == "residual":
        check(any(len(s["inputs"]) == 2 for s in man["slices"]),
              "a cut inside a residual block carries two tensors")


def expect_error(model, needle, out_name="err.lam"):
    out = fresh("errors/" + out_name)
    p = run("slice", model, "-o", out, ok=False)
    lines = p.stderr.strip().splitlines()
    tag = os.path.relpath(model, BAD) if model.startswith(BAD) else model
    check(p.returncode != 0, f"{tag}: non-zero exit")
    check(len(lines) == 1, f"{tag}: one-line error, got {lines}")
    check(needle in p.stderr and os.path.basename(model) in p.stderr,
          f"{tag}: error names the file and says '{needle}': {p.stderr!r}")
    check(not os.path.exists(out), f"{tag}: no output written")
    leftovers = [f for f in os.listdir(os.path.dirname(out))
                 if f.startswith(out_name + ".")]
    check(not leftovers, f"{tag}: no temporary folders left: {leftovers}")


def test_errors():
    cases = [
        ("not_onnx.onnx", "not an ONNX model"),
        ("truncated.onnx", "truncated"),
        ("empty.onnx", "empty"),
        ("cycle.onnx", "cycle"),
        ("dangling_input.onnx", "'ghost'"),
        ("missing_initializer.onnx", "'conv.weight'"),
        ("bad_opset.onnx", "opset 99"),
        ("ext_dotdot/model.onnx", "leaves the model's folder"),
        ("ext_abs/model.onnx", "absolute"),
        ("ext_missing/model.onnx", "not found"),
        ("does_not_exist.onnx", "No such file"),
    ]
    for f, needle in cases:
        expect_error(os.path.join(BAD, f), needle)

    # a symlink that leads out of the model's folder
    link_dir = fresh("errors/ext_symlink")
    shutil.copytree(os.path.join(BAD, "ext_ok"), link_dir)
    outside = fresh("errors/outside.bin")
    shutil.move(os.path.join(link_dir, "weights.bin"), outside)
    os.symlink(outside, os.path.join(link_dir, "weights.bin"))
    expect_error(os.path.join(link_dir, "model.onnx"), "outside the model")

    # external data inside the folder works, and slices embed it
    out = fresh("errors/ext_ok.lam")
    model = os.path.join(BAD, "ext_ok", "model.onnx")
    run("slice", model, "-o", out)
    check_manifest_and_files(model, out)
    ort_check(model, out, test_model=False)

    # an existing output folder is refused, and left alone
    out = fresh("errors/exists.lam")
    os.makedirs(out)
    keep = os.path.join(out, "keep.txt")
    open(keep, "w").write("mine")
    p = run("slice", os.path.join(BAD, "good.onnx"), "-o", out, ok=False)
    check(p.returncode != 0 and "already exists" in p.stderr,
          f"existing folder refused: {p.stderr!r}")
    p = run("slice", os.path.join(BAD, "good.onnx"), "-o", out, "--force",
            ok=False)
    check(p.returncode != 0 and os.path.exists(keep),
          "--force does not replace a folder that is not a slicing")

    # an op lamina does not know is sliced when the file declares shapes,
    # and refused by name when it does not
    from onnx import TensorProto, helper
    for declared in (True, False):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
        nodes = [helper.make_node("Relu", ["x"], ["a"], name="relu"),
                 helper.make_node("Mystery", ["a"], ["b"], name="mystery",
                                  domain="com.example"),
                 helper.make_node("Relu", ["b"], ["y"], name="relu2")]
        vi = [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 4])]
        g = helper.make_graph(nodes, "custom", [x], [y],
                              value_info=vi if declared else [])
        m = helper.make_model(g, opset_imports=[
            helper.make_opsetid("", 13), helper.make_opsetid("com.example",
                                                              1)])
        path = fresh(f"errors/custom_{declared}.onnx")
        onnx.save(m, path)
        if declared:
            out = fresh("errors/custom.lam")
            run("slice", path, "-o", out, "--granularity", "node")
            man = json.load(open(os.path.join(out, "manifest.json")))
            check(len(man["slices"]) == 3 and
                  man["slices"][1]["outputs"][0]["shape"] == [1, 4],
                  "unknown op with declared shapes is sliced")
        else:
            expect_error(path, "'mystery'", "custom_undeclared.lam")

    # symbolic spatial dims taken as 1 make the convolution impossible:
    # the error says what was assumed and how to give the real shape
    w = helper.make_tensor("w", TensorProto.FLOAT, [8, 3, 3, 3],
                           [0.1] * 216)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                      [1, 3, "h", "w"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"],
                                            kernel_shape=[3, 3])],
                          "symbolic_hw", [x], [y], [w])
    path = fresh("errors/symbolic_hw.onnx")
    onnx.save(helper.make_model(g, opset_imports=[
        helper.make_opsetid("", 13)]), path)
    expect_error(path, "symbolic input dims were taken as 1, input 'x' "
                 "as 1x3x1x1: give the real shape with --input-shape x=",
                 "symbolic_hw.lam")
    p = run("slice", path, "-o", fresh("errors/symbolic_hw_ok.lam"),
            "--input-shape", "x=1,3,16,16", ok=False)
    check(p.returncode == 0, f"... and slices with --input-shape: "
          f"{p.stderr!r}")


def test_cli():
    p = run("--help")
    check("slice" in p.stdout and "inspect" in p.stdout, "lamina --help")
    for cmd in ("slice", "inspect"):
        p = run(cmd, "--help")
        check(p.stdout.startswith(f"usage: lamina {cmd}"),
              f"lamina {cmd} --help")
    p = run("frobnicate", ok=False)
    check(p.returncode == 2 and "unknown command" in p.stderr,
          "unknown command")
    p = run("slice", ok=False)
    check(p.returncode != 0 and "lamina slice:" in p.stderr,
          "slice without arguments explains itself")
    p = run("slice", "x.onnx", "-o", "y", "--bogus", ok=False)
    check(p.returncode != 0 and "--bogus" in p.stderr, "unknown option")

    model = os.path.join(MODELS, "resnet18.onnx")
    out = fresh("cli/r18.lam")
    run("slice", model, "-o", out, "--max-slices", "4")
    man = json.load(open(os.path.join(out, "manifest.json")))
    check(len(man["slices"]) == 4, "--max-slices 4 gives 4 slices")
    flops = [s["flops"] for s in man["slices"]]
    check(max(flops) < 0.5 * sum(flops), f"FLOPs are balanced: {flops}")
    ort_check(model, out)

    # inspect a model and a folder: same rows, JSON parses
    p = run("inspect", out)
    lines = p.stdout.splitlines()
    check(any(l.split()[:4] == ["input", "input", "float32", "1x3x224x224"]
              for l in lines if l.strip()),
          f"inspect DIR names the model's input: {p.stdout}")
    check(any(l.split()[:4] == ["output", "output", "float32", "1x1000"]
              for l in lines if l.strip()),
          f"inspect DIR names the model's output: {p.stdout}")
    header = next(i for i, l in enumerate(lines) if l.split()[:2] ==
                  ["slice", "layer"])
    rows = [l for l in lines[header + 1:] if l.strip()]
    check(len(rows) == 4, f"inspect DIR prints 4 rows: {p.stdout}")
    p = run("inspect", model, "--max-slices", "4", "--json")
    j = json.loads(p.stdout)
    check([s["nodes"] for s in j["slices"]] ==
          [s["nodes"] for s in man["slices"]],
          "inspect MODEL --json agrees with the slice folder")
    p = run("inspect", model)
    check("Conv" in p.stdout and "MFLOPs" in p.stdout, "inspect table")

    # --force replaces an earlier slicing
    run("slice", model, "-o", out, "--force")
    man2 = json.load(open(os.path.join(out, "manifest.json")))
    check(len(man2["slices"]) > 4, "--force replaced the slicing")
    check(not [f for f in os.listdir(os.path.dirname(out))
               if f.startswith("r18.lam.")], "no temporary folders left")

    # --force replaces only exactly an earlier slicing: a folder with a
    # manifest and files it does not list is left alone (issue 13, 9)
    keep = fresh("keep.lam")
    os.makedirs(keep)
    with open(os.path.join(keep, "manifest.json"), "w") as f:
        f.write('{"format": "lamina-slices", "version": 1, "slices": []}')
    with open(os.path.join(keep, "thesis.tex"), "w") as f:
        f.write("years of work")
    p = run("slice", model, "-o", keep, "--force", ok=False)
    check(p.returncode != 0 and "refusing" in p.stderr and
          os.path.exists(os.path.join(keep, "thesis.tex")),
          f"--force leaves a folder with other files alone: {p.stderr!r}")
    fresh("keep.lam2")
    run("slice", model, "-o", keep + "2", "--max-slices", "2")
    with open(os.path.join(keep + "2", "notes.txt"), "w") as f:
        f.write("mine")
    p = run("slice", model, "-o", keep + "2", "--force", ok=False)
    check(p.returncode != 0 and
          os.path.exists(os.path.join(keep + "2", "notes.txt")),
          f"--force leaves a slicing with an extra file alone: {p.stderr!r}")
    shutil.rmtree(keep + "2", ignore_errors=True)

    # slice files named by a manifest stay inside its folder (issue 13, 6)
    esc = fresh("escape.lam")
    os.makedirs(esc)
    run("slice", model, "-o", esc + "/m", "--max-slices", "2")
    mp = os.path.join(esc, "m", "manifest.json")
    man = json.load(open(mp))
    good = man["slices"][1]["file"]
    man["slices"][1]["file"] = "../../../../../../etc/passwd"
    json.dump(man, open(mp, "w"))
    p = run("inspect", esc + "/m", ok=False)
    check(p.returncode != 0 and "file name inside the folder" in p.stderr,
          f"a slice file outside the folder is refused: {p.stderr!r}")
    man["slices"][1]["file"] = good
    json.dump(man, open(mp, "w"))
    target = os.path.join(esc, "outside.onnx")
    os.rename(os.path.join(esc, "m", good), target)
    os.symlink(target, os.path.join(esc, "m", good))
    p = run("bench", esc + "/m", "--repeat", "1", ok=False)
    check(p.returncode != 0 and "symlink" in p.stderr,
          f"a slice file that is a symlink is refused: {p.stderr!r}")

    # symbolic dims: default 1 with a note, or fixed by --input-shape
    dyn = os.path.join(MODELS, "dynamic_batch.onnx")
    out = fresh("cli/dyn.lam")
    p = run("slice", dyn, "-o", out)
    check("taken as 1" in p.stderr, "symbolic dims default to 1, said")
    out = fresh("cli/dyn2.lam")
    name = onnx.load(dyn).graph.input[0].name
    p = run("inspect", dyn, "--input-shape", f"{name}=2,3,32,32", "--json")
    check(json.loads(p.stdout)["inputs"][0]["shape"] == [2, 3, 32, 32],
          "--input-shape fixes the batch dim")
    run("slice", dyn, "-o", out, "--input-shape", f"{name}=2,3,32,32")
    ort_check(dyn, out)
    p = run("inspect", dyn, "--input-shape", "nope=1,2", ok=False)
    check(p.returncode != 0 and "no input 'nope'" in p.stderr,
          "--input-shape names an unknown input")


def main():
    what = sys.argv[1]
    os.makedirs(TMP, exist_ok=True)
    if what == "contract":
        test_contract(sys.argv[2])
    elif what == "errors":
        test_errors()
    elif what == "cli":
        test_cli()
    else:
        raise SystemExit(f"unknown test {what}")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
