#!/usr/bin/python3
"""make_bad_models.py: write broken ONNX inputs for the slicer's error tests.

  /usr/bin/python3 tools/make_bad_models.py OUTDIR

Each file is small and deterministic.  One valid model, good.onnx (Conv+Relu,
input "input" 1x3x8x8, output "output" 1x4x8x8), and these broken ones:

  not_onnx.onnx             a text file
  truncated.onnx            good.onnx cut in half
  empty.onnx                0 bytes
  cycle.onnx                two nodes consuming each other's outputs
  dangling_input.onnx       a node input "ghost" that nothing provides
  missing_initializer.onnx  a Conv whose "conv.weight" is neither an
                            initializer nor a graph input
  bad_opset.onnx            default-domain opset_import version 99
  ext_ok/model.onnx         valid; weights in ext_ok/weights.bin (external data)
  ext_dotdot/model.onnx     external data at "../outside.bin" (OUTDIR/outside.bin
                            exists, so only a path check can reject it)
  ext_abs/model.onnx        external data at "/etc/hostname"
  ext_missing/model.onnx    external data at "nothere.bin", which does not exist

The broken models are built as protos directly (onnx.helper does not run the
checker), so they are written exactly as described.  The symlink case is made
by the test that needs it.  Run with Debian's Python (/usr/bin/python3).
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
IR_VERSION = 8


def value(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def model(nodes, inputs, outputs, initializers=(), opset=OPSET, name="lamina_test"):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                             ir_version=IR_VERSION, producer_name="lamina make_bad_models")


def conv_weights():
    rng = np.random.RandomState(0)
    weight = rng.uniform(-0.5, 0.5, (4, 3, 3, 3)).astype(np.float32)
    bias = rng.uniform(-0.1, 0.1, (4,)).astype(np.float32)
    return weight, bias


def conv_model(initializers):
    """Conv(3->4, 3x3, pad 1) + Relu on 1x3x8x8, weights "conv.weight"/"conv.bias"."""
    nodes = [
        helper.make_node("Conv", ["input", "conv.weight", "conv.bias"], ["conv_out"],
                         name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv_out"], ["output"], name="relu"),
    ]
    return model(nodes, [value("input", [1, 3, 8, 8])], [value("output", [1, 4, 8, 8])],
                 initializers)


def good_model():
    weight, bias = conv_weights()
    return conv_model([numpy_helper.from_array(weight, "conv.weight"),
                       numpy_helper.from_array(bias, "conv.bias")])


def external_model(location):
    """conv_model whose weight and bias live in external file `location`:
    weight at offset 0, bias right after it."""
    weight, bias = conv_weights()
    tensors = []
    offset = 0
    for name, array in (("conv.weight", weight), ("conv.bias", bias)):
        t = TensorProto()
        t.name = name
        t.data_type = TensorProto.FLOAT
        t.dims.extend(array.shape)
        t.data_location = TensorProto.EXTERNAL
        for key, val in (("location", location), ("offset", str(offset)),
                         ("length", str(array.nbytes))):
            entry = t.external_data.add()
            entry.key = key
            entry.value = val
        offset += array.nbytes
        tensors.append(t)
    return conv_model(tensors)


def weights_bytes():
    weight, bias = conv_weights()
    return weight.tobytes() + bias.tobytes()


def main():
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        sys.exit("usage: make_bad_models.py OUTDIR")
    out = sys.argv[1]
    written = []

    def write(rel, data):
        path = os.path.join(out, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if isinstance(data, onnx.ModelProto):
            data = data.SerializeToString()
        with open(path, "wb") as f:
            f.write(data)
        written.append((path, len(data)))

    good = good_model()
    onnx.checker.check_model(good)
    good_bytes = good.SerializeToString()
    write("good.onnx", good_bytes)
    write("not_onnx.onnx", b"this is not an ONNX model, just text\n")
    write("truncated.onnx", good_bytes[:len(good_bytes) // 2])
    write("empty.onnx", b"")

    # a -> b -> a: Add consumes Relu's output, Relu consumes Add's output.
    write("cycle.onnx", model(
        [helper.make_node("Add", ["input", "b"], ["a"], name="add"),
         helper.make_node("Relu", ["a"], ["b"], name="relu")],
        [value("input", [1, 4])], [value("b", [1, 4])]))

    write("dangling_input.onnx", model(
        [helper.make_node("Add", ["input", "ghost"], ["output"], name="add")],
        [value("input", [1, 4])], [value("output", [1, 4])]))

    _, bias = conv_weights()
    write("missing_initializer.onnx",
          conv_model([numpy_helper.from_array(bias, "conv.bias")]))

    bad_opset = good_model()
    bad_opset.opset_import[0].version = 99
    write("bad_opset.onnx", bad_opset)

    ext_ok = external_model("weights.bin")
    write("ext_ok/model.onnx", ext_ok)
    write("ext_ok/weights.bin", weights_bytes())
    onnx.checker.check_model(os.path.join(out, "ext_ok", "model.onnx"))

    write("ext_dotdot/model.onnx", external_model("../outside.bin"))
    write("outside.bin", weights_bytes())
    write("ext_abs/model.onnx", external_model("/etc/hostname"))
    write("ext_missing/model.onnx", external_model("nothere.bin"))

    for path, size in written:
        print(f"{path} {size}")


if __name__ == "__main__":
    main()
