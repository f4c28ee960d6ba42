#!/usr/bin/python3
"""Integration tests of `lamina run`, one operator at a time.

Run by meson with Debian's python3 (it has numpy and onnx):
    test_ops.py GROUP     GROUP: conv, linear, elementwise, shape, spatial,
                          fusion, graph, optional, errors, cli
    test_ops.py list      the cases of every group

Each case is a small ONNX model made with onnx.helper around one operator
(or a short chain the runtime fuses, in the fusion group), run through
`lamina run` and onnxruntime (tools/ort/run.js) on fixed-seed random
inputs, at one thread and at --threads 2; every output must agree to
max|diff| / max(1, max|ref|) <= 1e-4, and integer outputs exactly.  The
graph group checks the executor (aliases, in-place reuse, outputs that are
read again); the optional group holds operators beyond the required set,
which lamina may refuse at load time as the contract says, or must compute
right.  The tensors the operator computes on are graph
inputs, so lamina's kernels run rather than its constant folding; weights,
shapes, axes and the like are initializers, as exported models have them.
Graph outputs declare the shapes onnx's shape inference gives them.

The errors group holds the contract's failures: an operator or attribute
the runtime lacks is refused at load time in one line naming the node and
its op (and nothing is written); an input of the wrong dtype, rank or shape
gets one line naming the input; a missing --input is explained; --batch on
a graph whose Reshape holds batch 1 as a literal follows the batch, and on
one whose Reshape cuts across samples is refused naming it.  The cli group checks
--repeat's single latency line, --profile's rows and --help.
"""
import os
import re
import subprocess
import sys
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from harness import ORT, TMP, check, fresh_dir, lamina, note, summary
import harness

TOL = 1e-4
F32 = TensorProto.FLOAT
I64 = TensorProto.INT64
BOOL = TensorProto.BOOL



# ---- building models ----

class Case:
    """One model and its inputs.

    inputs   [(name, array)]: graph inputs, fed from .npy files
    outputs  [name] or [(name, elem_type)]: graph outputs; shapes (and
             the type where not given) come from onnx's inference
    inits    {name: array}: initializers
    opset    default-domain opset; ir the IR version (None: onnx's default
             for the opset is not needed by onnxruntime, 8 suits 7..17)
    checker  run onnx.checker (off for opsets newer than the installed
             onnx knows, and for deliberately odd graphs)
    out_shapes {name: dims} for outputs onnx cannot infer
    optional an operator or form beyond what the runtime must support:
             lamina may refuse it at load time (one line naming the node
             and op, as for any unsupported op), but if it runs it, the
             outputs must be right
    fused    the op column of `lamina run --profile`, node by node, that
             the runtime's fusion must leave (["Conv+HardSwish"]): the
             fusion really happened, and nothing else was left over; the
             outputs must also match `lamina run --no-fuse`
    """

    def __init__(self, name, nodes, inputs, outputs, inits=None, opset=17,
                 ir=None, domains=(), checker=True, value_info=(),
                 out_shapes=None, optional=False, fused=None):
        self.name = name
        self.optional = optional
        self.fused = fused
        self.inputs = inputs
        # an output given by name alone takes its type from inference
        plain = TensorProto.UNDEFINED if checker else F32
        self.outputs = [o if isinstance(o, tuple) else (o, plain)
                        for o in outputs]
        for i, n in enumerate(nodes):
            if not n.name:
                n.name = f"{n.op_type.lower()}_{i}"
        self.nodes = nodes
        graph = helper.make_graph(
            nodes, name,
            [helper.make_tensor_value_info(
                n, onnx.mapping.NP_TYPE_TO_TENSOR_TYPE[a.dtype], a.shape)
             for n, a in inputs],
            [helper.make_tensor_value_info(n, t, (out_shapes or {}).get(n))
             for n, t in self.outputs],
            initializer=[numpy_helper.from_array(np.asarray(a), n)
                         for n, a in (inits or {}).items()],
            value_info=list(value_info))
        opsets = [helper.make_opsetid("", opset)]
        opsets += [helper.make_opsetid(d, 1) for d in domains]
        self.model = helper.make_model(graph, opset_imports=opsets,
                                       producer_name="lamina-tests")
        self.model.ir_version = ir or (9 if opset > 17 else 8)
        if checker:
            # graph outputs need a shape to be valid ONNX: take onnx's
            # inference (strict, so a mistake in a case shows here)
            self.model = onnx.shape_inference.infer_shapes(
                self.model, strict_mode=True, data_prop=True)
            onnx.checker.check_model(self.model)


def vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def node(op, ins, outs, **attrs):
    return helper.make_node(op, ins, outs, **attrs)


class Rng:
    """Fixed-seed random tensors, one stream per case."""

    def __init__(self, seed_text):
        self.g = np.random.default_rng(zlib.crc32(seed_text.encode()))

    def f(self, *shape, lo=-1.0, hi=1.0):
        return self.g.uniform(lo, hi, size=shape).astype(np.float32)

    def pos(self, *shape, lo=0.5, hi=2.0):
        return self.f(*shape, lo=lo, hi=hi)

    def away(self, *shape):
        """Magnitudes in [0.5, 2], either sign: safe denominators."""
        sign = np.where(self.g.integers(0, 2, size=shape) == 0, -1, 1)
        return (self.pos(*shape) * sign).astype(np.float32)

    def i(self, *shape, lo=0, hi=4):
        return self.g.integers(lo, hi, size=shape).astype(np.int64)

    def b(self, *shape):
        return self.g.integers(0, 2, size=shape).astype(np.bool_)


def i64(*v):
    return np.array(v, dtype=np.int64)


def f32(*v):
    return np.array(v, dtype=np.float32)


GROUPS = {}


def group(name):
    """Register a generator of Cases under a group."""
    def add(fn):
        GROUPS.setdefault(name, []).append(fn)
        return fn
    return add


# ---- conv ----

def conv_case(r, name, x_shape, w_shape, bias=True, **attrs):
    x = r.f(*x_shape)
    w = r.f(*w_shape) * (1.0 / np.sqrt(np.prod(w_shape[1:])))
    inits = {"w": w.astype(np.float32)}
    ins = ["x", "w"]
    if bias:
        inits["b"] = r.f(w_shape[0])
        ins.append("b")
    return Case(name, [node("Conv", ins, ["y"], **attrs)], [("x", x)], ["y"],
                inits)


@group("conv")
def conv_cases(r):
    yield conv_case(r, "conv_3x3_pad1", [1, 16, 14, 14], [32, 16, 3, 3],
                    pads=[1, 1, 1, 1])
    yield conv_case(r, "conv_3x3_nobias", [1, 16, 14, 14], [32, 16, 3, 3],
                    bias=False, pads=[1, 1, 1, 1])
    yield conv_case(r, "conv_3x3_64ch_28", [1, 64, 28, 28], [64, 64, 3, 3],
                    pads=[1, 1, 1, 1])
    yield conv_case(r, "conv_3x3_nopad", [1, 8, 11, 13], [16, 8, 3, 3])
    yield conv_case(r, "conv_strided", [1, 8, 15, 15], [16, 8, 3, 3],
                    strides=[2, 2], pads=[1, 1, 1, 1])
    yield conv_case(r, "conv_stride_hw", [1, 8, 15, 16], [16, 8, 3, 3],
                    strides=[1, 2], pads=[1, 1, 1, 1])
    yield conv_case(r, "conv_7x7_s2_stem", [1, 3, 32, 32], [16, 3, 7, 7],
                    strides=[2, 2], pads=[3, 3, 3, 3])
    yield conv_case(r, "conv_dilated", [1, 8, 16, 16], [8, 8, 3, 3],
                    dilations=[2, 2], pads=[2, 2, 2, 2])
    yield conv_case(r, "conv_dilated_strided", [1, 4, 17, 17], [8, 4, 3, 3],
                    dilations=[2, 3], strides=[2, 2], pads=[1, 2, 1, 2])
    yield conv_case(r, "conv_grouped", [1, 16, 10, 10], [32, 4, 3, 3],
                    group=4, pads=[1, 1, 1, 1])
    yield conv_case(r, "conv_grouped_1x1", [1, 24, 7, 7], [12, 8, 1, 1],
                    group=3)
    yield conv_case(r, "conv_depthwise", [1, 32, 12, 12], [32, 1, 3, 3],
                    group=32, pads=[1, 1, 1, 1])
    yield conv_case(r, "conv_depthwise_s2", [1, 24, 13, 13], [24, 1, 3, 3],
                    group=24, strides=[2, 2], pads=[1, 1, 1, 1])
    yield conv_case(r, "conv_depthwise_5x5", [1, 17, 11, 11], [17, 1, 5, 5],
                    group=17, pads=[2, 2, 2, 2])
    yield conv_case(r, "conv_depthwise_mult2", [1, 8, 9, 9], [16, 1, 3, 3],
                    group=8, pads=[1, 1, 1, 1])
    yield conv_case(r, "conv_depthwise_dilated", [1, 16, 12, 12],
                    [16, 1, 3, 3], group=16, dilations=[2, 2],
                    pads=[2, 2, 2, 2])
    yield conv_case(r, "conv_asym_pads", [1, 4, 9, 10], [8, 4, 3, 3],
                    pads=[1, 0, 0, 2])
    yield conv_case(r, "conv_same_upper_s2", [1, 4, 9, 9], [8, 4, 3, 3],
                    auto_pad="SAME_UPPER", strides=[2, 2])
    yield conv_case(r, "conv_same_upper_4x4", [1, 4, 8, 8], [8, 4, 4, 4],
                    auto_pad="SAME_UPPER")
    yield conv_case(r, "conv_same_lower", [1, 4, 8, 8], [8, 4, 4, 4],
                    auto_pad="SAME_LOWER")
    yield conv_case(r, "conv_valid", [1, 4, 8, 8], [8, 4, 3, 3],
                    auto_pad="VALID")
    yield conv_case(r, "conv_1x1_image", [1, 16, 1, 1], [8, 16, 1, 1])
    yield conv_case(r, "conv_1x1_image_3x3", [1, 16, 1, 1], [8, 16, 3, 3],
                    pads=[1, 1, 1, 1])
    yield conv_case(r, "conv_pointwise", [1, 64, 14, 14], [24, 64, 1, 1])
    yield conv_case(r, "conv_pointwise_s2", [1, 32, 14, 14], [64, 32, 1, 1],
                    strides=[2, 2])
    yield conv_case(r, "conv_ch3_to_5", [1, 3, 20, 20], [5, 3, 3, 3],
                    pads=[1, 1, 1, 1])
    yield conv_case(r, "conv_ch5_to_17", [1, 5, 12, 12], [17, 5, 3, 3],
                    pads=[1, 1, 1, 1])
    yield conv_case(r, "conv_ch17_to_3", [1, 17, 12, 12], [3, 17, 3, 3],
                    pads=[1, 1, 1, 1])
    yield conv_case(r, "conv_ch17_winograd_size", [1, 17, 30, 30],
                    [33, 17, 3, 3], pads=[1, 1, 1, 1])
    yield conv_case(r, "conv_pad_gt_kernel", [1, 4, 6, 6], [4, 4, 2, 2],
                    pads=[3, 3, 3, 3])
    yield conv_case(r, "conv_kernel_1x3", [1, 6, 10, 12], [8, 6, 1, 3],
                    pads=[0, 1, 0, 1])
    yield conv_case(r, "conv_kernel_5x1", [1, 6, 10, 12], [8, 6, 5, 1],
                    pads=[2, 0, 2, 0])
    yield conv_case(r, "conv_batch2", [2, 8, 9, 9], [16, 8, 3, 3],
                    pads=[1, 1, 1, 1])
    yield conv_case(r, "conv_batch3_depthwise", [3, 8, 9, 9], [8, 1, 3, 3],
                    group=8, pads=[1, 1, 1, 1])
    # the vector depthwise paths (rows, blocked) and the direct kernel
    # (stems, grouped convs)
    yield conv_case(r, "conv_depthwise_7x7", [1, 33, 14, 14], [33, 1, 7, 7],
                    group=33, pads=[3, 3, 3, 3])
    yield conv_case(r, "conv_depthwise_5x5_s2", [1, 20, 17, 19],
                    [20, 1, 5, 5], group=20, strides=[2, 2],
                    pads=[2, 2, 2, 2])
    yield conv_case(r, "conv_depthwise_3x3_wide", [1, 7, 9, 70],
                    [7, 1, 3, 3], group=7, pads=[1, 1, 1, 1])
    yield conv_case(r, "conv_depthwise_7x7_s2_asym", [2, 9, 15, 12],
                    [9, 1, 7, 7], group=9, strides=[2, 2],
                    pads=[3, 2, 1, 3])
    yield conv_case(r, "conv_stem_3x3_s2", [1, 3, 37, 41], [16, 3, 3, 3],
                    strides=[2, 2], pads=[1, 1, 1, 1])
    yield conv_case(r, "conv_grouped_8_of_4", [2, 32, 13, 11],
                    [32, 4, 3, 3], group=8, pads=[1, 1, 1, 1])
    yield conv_case(r, "conv_grouped_2_of_16_s2", [1, 32, 15, 15],
                    [32, 16, 3, 3], group=2, strides=[2, 2],
                    pads=[1, 1, 1, 1])
    # grouped.c: groups of 16 to 64 output channels with the channels in
    # the vector (RegNetX's widths at 7x7 and 14x14, odd sizes), stems of
    # 16 to 64 channels (7x7 s2 3->64 at batch 2), and a strided 1x1
    # (its pixels gathered before the GEMM)
    yield conv_case(r, "conv_grouped_25_of_16_7x7", [1, 400, 7, 7],
                    [400, 16, 3, 3], group=25, pads=[1, 1, 1, 1])
    yield conv_case(r, "conv_grouped_3_of_16_s2_odd", [2, 48, 15, 13],
                    [48, 16, 3, 3], group=3, strides=[2, 2],
                    pads=[1, 1, 1, 1])
    yield conv_case(r, "conv_grouped_2_of_32_14x14", [1, 64, 14, 14],
                    [64, 32, 3, 3], group=2, pads=[1, 1, 1, 1])
    yield conv_case(r, "conv_grouped_2_of_48_s2", [1, 10, 19, 23],
                    [96, 5, 3, 3], group=2, strides=[2, 2],
                    pads=[1, 1, 1, 1])
    yield conv_case(r, "conv_stem_7x7_s2_64", [2, 3, 33, 45],
                    [64, 3, 7, 7], strides=[2, 2], pads=[3, 3, 3, 3])
    yield conv_case(r, "conv_stem_3x3_s2_32_valid", [1, 3, 59, 31],
                    [32, 3, 3, 3], strides=[2, 2])
    yield conv_case(r, "conv_1x1_s2_wide", [2, 24, 9, 71],
                    [40, 24, 1, 1], strides=[2, 2])


def convt_case(r, name, x_shape, w_shape, bias=True, **attrs):
    x = r.f(*x_shape)
    inits = {"w": r.f(*w_shape) * 0.3}
    ins = ["x", "w"]
    if bias:
        group_ = attrs.get("group", 1)
        inits["b"] = r.f(w_shape[1] * group_)
        ins.append("b")
    return Case(name, [node("ConvTranspose", ins, ["y"], **attrs)],
                [("x", x)], ["y"], inits)


@group("conv")
def convtranspose_cases(r):
    yield convt_case(r, "convt_s1", [1, 8, 6, 6], [8, 4, 3, 3])
    yield convt_case(r, "convt_s2_pad1", [1, 8, 7, 7], [8, 4, 3, 3],
                     strides=[2, 2], pads=[1, 1, 1, 1])
    yield convt_case(r, "convt_s2_outpad", [1, 8, 7, 7], [8, 4, 3, 3],
                     strides=[2, 2], pads=[1, 1, 1, 1],
                     output_padding=[1, 1])
    yield convt_case(r, "convt_k4_s2_upsample", [1, 16, 5, 5], [16, 8, 4, 4],
                     strides=[2, 2], pads=[1, 1, 1, 1], bias=False)
    yield convt_case(r, "convt_groups", [1, 8, 5, 5], [8, 3, 3, 3],
                     group=2, strides=[2, 2])
    yield convt_case(r, "convt_depthwise", [1, 6, 5, 5], [6, 1, 3, 3],
                     group=6, strides=[2, 2], pads=[1, 1, 1, 1],
                     output_padding=[1, 1])
    yield convt_case(r, "convt_stride_hw", [1, 4, 5, 6], [4, 5, 3, 2],
                     strides=[3, 2])
    yield convt_case(r, "convt_dilated", [1, 4, 5, 5], [4, 4, 3, 3],
                     dilations=[2, 2])


# ---- Gemm, MatMul ----

@group("linear")
def gemm_cases(r):
    def gemm(name, a_shape, b_shape, c=None, b_input=False, **attrs):
        inits, ins = {}, [("a", r.f(*a_shape))]
        if b_input:
            ins.append(("b", r.f(*b_shape)))
        else:
            inits["b"] = r.f(*b_shape)
        names = ["a", "b"]
        if c is not None:
            inits["c"] = r.f(*c)
            names.append("c")
        return Case(name, [node("Gemm", names, ["y"], **attrs)], ins, ["y"],
                    inits)

    yield gemm("gemm_basic_bias", [4, 8], [8, 5], c=[5])
    yield gemm("gemm_no_c", [4, 8], [8, 5])
    yield gemm("gemm_transA", [8, 4], [8, 5], c=[5], transA=1)
    yield gemm("gemm_transB_linear", [3, 64], [10, 64], c=[10], transB=1)
    yield gemm("gemm_transAB", [8, 4], [5, 8], c=[5], transA=1, transB=1)
    yield gemm("gemm_alpha_beta", [4, 8], [8, 5], c=[4, 5], alpha=0.5,
               beta=2.0)
    yield gemm("gemm_c_row", [4, 8], [8, 5], c=[1, 5])
    yield gemm("gemm_c_col", [4, 8], [8, 5], c=[4, 1])
    yield gemm("gemm_c_scalar", [4, 8], [8, 5], c=[], beta=0.5)
    yield gemm("gemm_c_1", [4, 8], [8, 5], c=[1])
    yield gemm("gemm_b_input", [4, 8], [8, 5], c=[5], b_input=True)
    yield gemm("gemm_b_input_transB", [4, 8], [5, 8], b_input=True,
               transB=1, alpha=2.0)
    yield gemm("gemm_fc1000", [1, 512], [1000, 512], c=[1000], transB=1)
    yield gemm("gemm_m16_odd", [16, 100], [100, 37], c=[37])


@group("linear")
def matmul_cases(r):
    def mm(name, a_shape, b_shape, b_input=True):
        ins = [("a", r.f(*a_shape))]
        inits = {}
        if b_input:
            ins.append(("b", r.f(*b_shape)))
        else:
            inits["b"] = r.f(*b_shape)
        return Case(name, [node("MatMul", ["a", "b"], ["y"])], ins, ["y"],
                    inits)

    yield mm("matmul_2d", [4, 8], [8, 5])
    yield mm("matmul_2d_const_b", [4, 8], [8, 5], b_input=False)
    yield mm("matmul_3d_const_b", [2, 16, 64], [64, 32], b_input=False)
    yield mm("matmul_4d_const_b_odd", [1, 3, 7, 40], [40, 50],
             b_input=False)
    yield mm("matmul_batched", [3, 4, 8], [3, 8, 5])
    yield mm("matmul_batched_4d", [2, 3, 4, 8], [2, 3, 8, 5])
    yield mm("matmul_broadcast_b", [2, 3, 4, 8], [8, 5])
    yield mm("matmul_broadcast_both", [2, 1, 4, 8], [3, 8, 5])
    yield mm("matmul_broadcast_a", [4, 8], [2, 8, 5])
    yield mm("matmul_1d_left", [8], [8, 5])
    yield mm("matmul_1d_left_batched", [8], [3, 8, 5])
    yield mm("matmul_1d_right", [4, 8], [8])
    yield mm("matmul_1d_right_batched", [2, 4, 8], [8])
    yield mm("matmul_1d_both", [8], [8])
    yield mm("matmul_attention_scores", [1, 4, 16, 16], [1, 4, 16, 16])


# ---- elementwise ----

def unary(name, op, x, opset=17, ins_extra=(), inits=None, checker=True,
          **attrs):
    return Case(name, [node(op, ["x", *ins_extra], ["y"], **attrs)],
                [("x", x)], ["y"], inits, opset=opset, checker=checker)


@group("elementwise")
def unary_cases(r):
    big = (1, 24, 17, 19)   # not a multiple of any vector width
    yield unary("relu", "Relu", r.f(*big, lo=-4, hi=4))
    yield unary("relu_scalar", "Relu", np.array(-0.5, np.float32))
    yield unary("leaky_relu", "LeakyRelu", r.f(*big, lo=-4, hi=4), alpha=0.2)
    yield unary("leaky_relu_default", "LeakyRelu", r.f(2, 3, 5))
    yield unary("clip_inputs", "Clip", r.f(*big, lo=-4, hi=4),
                ins_extra=["lo", "hi"], inits={"lo": f32(-1.5)[0],
                                               "hi": f32(2.5)[0]})
    yield Case("clip_max_only", [node("Clip", ["x", "", "hi"], ["y"])],
               [("x", r.f(3, 7, lo=-4, hi=4))], ["y"],
               {"hi": np.array(0.5, np.float32)})
    yield unary("clip_no_bounds", "Clip", r.f(3, 7, lo=-4, hi=4))
    yield unary("clip_relu6_opset11", "Clip", r.f(*big, lo=-8, hi=8),
                opset=11, ins_extra=["lo", "hi"],
                inits={"lo": np.array(0, np.float32),
                       "hi": np.array(6, np.float32)})
    yield unary("clip_attrs_opset10", "Clip", r.f(*big, lo=-4, hi=4),
                opset=10, min=-0.5, max=0.75)
    yield unary("clip_attr_min_opset10", "Clip", r.f(4, 9, lo=-4, hi=4),
                opset=10, min=0.0)
    yield unary("sigmoid", "Sigmoid", r.f(*big, lo=-10, hi=10))
    yield unary("hard_sigmoid", "HardSigmoid", r.f(*big, lo=-5, hi=5),
                alpha=0.3, beta=0.6)
    yield unary("hard_sigmoid_default", "HardSigmoid", r.f(3, 11, lo=-5,
                                                           hi=5))
    yield unary("hard_swish", "HardSwish", r.f(*big, lo=-5, hi=5))
    yield unary("tanh", "Tanh", r.f(*big, lo=-5, hi=5))
    yield unary("erf", "Erf", r.f(*big, lo=-3, hi=3))
    yield unary("sqrt", "Sqrt", r.f(*big, lo=0, hi=9))
    yield unary("exp", "Exp", r.f(*big, lo=-5, hi=5))
    yield unary("identity", "Identity", r.f(2, 3, 4))
    yield unary("dropout_inference", "Dropout", r.f(2, 3, 4))
    yield Case("dropout_ratio_mask",
               [node("Dropout", ["x", "ratio"], ["y", "mask"])],
               [("x", r.f(2, 3, 4))], ["y", ("mask", BOOL)],
               {"ratio": np.array(0.3, np.float32)})
    yield unary("dropout_opset10", "Dropout", r.f(2, 3, 4), opset=10,
                ratio=0.2)


@group("elementwise")
def gelu_cases(r):
    # Gelu is opset 20, newer than the installed onnx package knows, so the
    # checker is skipped; run() notes and skips it if onnxruntime refuses.
    for approx in ("none", "tanh"):
        yield unary(f"gelu_{approx}", "Gelu", r.f(1, 24, 17, 19, lo=-4,
                                                   hi=4),
                    opset=20, checker=False, approximate=approx)


BROADCASTS = [
    ("same", [2, 3, 4, 5], [2, 3, 4, 5]),
    ("row", [2, 3, 4, 5], [5]),
    ("channel", [2, 3, 4, 5], [3, 1, 1]),
    ("both", [2, 1, 4, 1], [1, 3, 1, 5]),
    ("left", [1, 5], [2, 3, 4, 5]),
    ("scalar", [2, 3, 4, 5], []),
    ("long", [1, 24, 17, 19], [1, 24, 1, 1]),
]


@group("elementwise")
def binary_cases(r):
    for op in ("Add", "Sub", "Mul", "Div", "Pow"):
        for tag, sa, sb in BROADCASTS:
            if op == "Div":
                a, b = r.f(*sa), r.away(*sb)
            elif op == "Pow":
                a, b = r.pos(*sa), r.f(*sb, lo=-2, hi=2)
            else:
                a, b = r.f(*sa), r.f(*sb)
            yield Case(f"{op.lower()}_{tag}", [node(op, ["a", "b"], ["y"])],
                       [("a", a), ("b", b)], ["y"])
        # a constant operand, as exported models have (bias, scale)
        b = r.away(3, 1, 1) if op != "Pow" else r.f(3, 1, 1, lo=-2, hi=2)
        a = r.pos(2, 3, 4, 5) if op == "Pow" else r.f(2, 3, 4, 5)
        yield Case(f"{op.lower()}_const_b", [node(op, ["a", "b"], ["y"])],
                   [("a", a)], ["y"], {"b": b})
        yield Case(f"{op.lower()}_const_a", [node(op, ["b", "a"], ["y"])],
                   [("a", r.away(2, 3, 4, 5))], ["y"],
                   {"b": r.pos(3, 1, 1) if op == "Pow" else b})
    # integer arithmetic, as shape computations do
    for op in ("Add", "Sub", "Mul", "Div"):
        yield Case(f"{op.lower()}_int64", [node(op, ["a", "b"], ["y"])],
                   [("a", r.i(2, 5, lo=-20, hi=20)),
                    ("b", r.i(5, lo=1, hi=5))], [("y", I64)])
    # Pow as LayerNorm exports it: x^2 and x^3 of negative bases, x^0.5
    for e in (2.0, 3.0):
        yield Case(f"pow_exponent_{e:g}", [node("Pow", ["a", "e"], ["y"])],
                   [("a", r.f(2, 16, 64, lo=-3, hi=3))], ["y"],
                   {"e": np.array(e, np.float32)})
    yield Case("pow_exponent_0.5", [node("Pow", ["a", "e"], ["y"])],
               [("a", r.pos(2, 16, 64))], ["y"],
               {"e": np.array(0.5, np.float32)})


# ---- shape and data movement ----

@group("shape")
def concat_split_cases(r):
    yield Case("concat_axis1", [node("Concat", ["a", "b", "c"], ["y"],
                                     axis=1)],
               [("a", r.f(2, 3, 4, 5)), ("b", r.f(2, 1, 4, 5)),
                ("c", r.f(2, 6, 4, 5))], ["y"])
    yield Case("concat_axis_neg1", [node("Concat", ["a", "b"], ["y"],
                                         axis=-1)],
               [("a", r.f(2, 3, 4)), ("b", r.f(2, 3, 7))], ["y"])
    yield Case("concat_axis0", [node("Concat", ["a", "b"], ["y"], axis=0)],
               [("a", r.f(1, 3, 4)), ("b", r.f(2, 3, 4))], ["y"])
    yield Case("concat_with_const", [node("Concat", ["a", "k"], ["y"],
                                          axis=1)],
               [("a", r.f(1, 3, 4))], ["y"], {"k": r.f(1, 2, 4)})
    yield Case("concat_int64", [node("Concat", ["a", "b"], ["y"], axis=0)],
               [("a", r.i(3)), ("b", r.i(2))], [("y", I64)])
    yield Case("split_sizes", [node("Split", ["x", "s"], ["y0", "y1", "y2"],
                                    axis=1)],
               [("x", r.f(2, 6, 4))], ["y0", "y1", "y2"],
               {"s": i64(2, 3, 1)})
    yield Case("split_equal", [node("Split", ["x"], ["y0", "y1", "y2"],
                                    axis=-1)],
               [("x", r.f(2, 3, 12))], ["y0", "y1", "y2"])
    yield Case("split_axis0", [node("Split", ["x"], ["y0", "y1"])],
               [("x", r.f(4, 5))], ["y0", "y1"])
    yield Case("split_attr_opset11", [node("Split", ["x"], ["y0", "y1"],
                                           axis=1, split=[1, 4])],
               [("x", r.f(2, 5, 3))], ["y0", "y1"], opset=11)


@group("shape")
def slice_cases(r):
    def sl(name, x, starts, ends, axes=None, steps=None, opset=17):
        ins, inits = ["x", "st", "en"], {"st": i64(*starts), "en": i64(*ends)}
        if axes is not None:
            ins.append("ax")
            inits["ax"] = i64(*axes)
        if steps is not None:
            if axes is None:
                raise ValueError("steps need axes")
            ins.append("sp")
            inits["sp"] = i64(*steps)
        return Case(name, [node("Slice", ins, ["y"])], [("x", x)], ["y"],
                    inits, opset=opset)

    big = np.iinfo(np.int64).max
    yield sl("slice_basic", r.f(4, 10), [1, 2], [3, 8])
    yield sl("slice_axes", r.f(2, 6, 8), [1], [5], axes=[2])
    yield sl("slice_neg_axes", r.f(2, 6, 8), [1], [-1], axes=[-2])
    yield sl("slice_steps", r.f(2, 9, 10), [0, 1], [9, 10], axes=[1, 2],
             steps=[2, 3])
    yield sl("slice_reverse", r.f(3, 7), [-1], [-big], axes=[1], steps=[-1])
    yield sl("slice_neg_step2", r.f(3, 10), [-1], [-6], axes=[1],
             steps=[-2])
    yield sl("slice_neg_step_clamp", r.f(4, 9), [big, 7], [-big, 1],
             axes=[0, 1], steps=[-1, -3])
    yield sl("slice_end_huge", r.f(2, 5, 6), [2], [big], axes=[2])
    yield sl("slice_neg_start", r.f(2, 5, 6), [-3], [big], axes=[1])
    yield sl("slice_end_clamped", r.f(3, 5), [1], [100], axes=[0])
    yield Case("slice_int64_out",
               [node("Slice", ["x", "st", "en", "ax", "sp"], ["y"])],
               [("x", r.i(4, 6, lo=-9, hi=9))], [("y", I64)],
               {"st": i64(-1), "en": i64(-5), "ax": i64(1), "sp": i64(-1)})


@group("shape")
def reshape_cases(r):
    for axis in (0, 1, 2, -1):
        yield Case(f"flatten_axis{axis}",
                   [node("Flatten", ["x"], ["y"], axis=axis)],
                   [("x", r.f(2, 3, 4, 5))], ["y"])

    def rs(name, x, shape):
        return Case(name, [node("Reshape", ["x", "s"], ["y"])], [("x", x)],
                    ["y"], {"s": i64(*shape)})

    yield rs("reshape_basic", r.f(2, 3, 4, 5), [6, 20])
    yield rs("reshape_minus1", r.f(2, 3, 4, 5), [2, -1, 5])
    yield rs("reshape_zero_copies", r.f(2, 3, 4, 5), [0, 0, -1])
    yield rs("reshape_to_1d", r.f(2, 3, 4), [-1])
    yield rs("reshape_int64", r.i(2, 6), [3, 4])
    # a reshaped tensor read by a kernel afterwards (aliasing)
    yield Case("reshape_then_relu",
               [node("Reshape", ["x", "s"], ["t"]),
                node("Relu", ["t"], ["y"])],
               [("x", r.f(2, 3, 4))], ["y"], {"s": i64(4, 6)})
    for perm in ([0, 2, 3, 1], [3, 1, 0, 2], [0, 3, 1, 2], None):
        tag = "default" if perm is None else "".join(map(str, perm))
        attrs = {} if perm is None else {"perm": perm}
        yield Case(f"transpose_{tag}",
                   [node("Transpose", ["x"], ["y"], **attrs)],
                   [("x", r.f(2, 3, 4, 5))], ["y"])
    yield Case("transpose_2d", [node("Transpose", ["x"], ["y"], perm=[1, 0])],
               [("x", r.f(37, 19))], ["y"])
    yield Case("transpose_attention", [node("Transpose", ["x"], ["y"],
                                            perm=[1, 0, 2])],
               [("x", r.f(16, 4, 16))], ["y"])
    yield Case("squeeze_axes", [node("Squeeze", ["x", "a"], ["y"])],
               [("x", r.f(2, 1, 4, 1))], ["y"], {"a": i64(1)})
    yield Case("squeeze_all", [node("Squeeze", ["x"], ["y"])],
               [("x", r.f(1, 3, 1, 4))], ["y"])
    yield Case("squeeze_neg_axes", [node("Squeeze", ["x", "a"], ["y"])],
               [("x", r.f(2, 1, 4, 1))], ["y"], {"a": i64(-1, 1)})
    yield Case("squeeze_attr_opset11", [node("Squeeze", ["x"], ["y"],
                                             axes=[0])],
               [("x", r.f(1, 3, 4))], ["y"], opset=11)
    yield Case("unsqueeze_axes", [node("Unsqueeze", ["x", "a"], ["y"])],
               [("x", r.f(3, 4))], ["y"], {"a": i64(0, 3)})
    yield Case("unsqueeze_neg", [node("Unsqueeze", ["x", "a"], ["y"])],
               [("x", r.f(3, 4))], ["y"], {"a": i64(-1)})
    yield Case("unsqueeze_int64", [node("Unsqueeze", ["x", "a"], ["y"])],
               [("x", r.i(3))], [("y", I64)], {"a": i64(0)})
    yield Case("unsqueeze_attr_opset11",
               [node("Unsqueeze", ["x"], ["y"], axes=[1])],
               [("x", r.f(3, 4))], ["y"], opset=11)


@group("shape")
def gather_cases(r):
    yield Case("gather_axis0_const", [node("Gather", ["x", "i"], ["y"])],
               [("x", r.f(5, 4))], ["y"], {"i": i64(4, 0, 2)})
    yield Case("gather_axis1_input", [node("Gather", ["x", "i"], ["y"],
                                           axis=1)],
               [("x", r.f(2, 6, 3)), ("i", r.i(2, 2, lo=0, hi=6))], ["y"])
    yield Case("gather_negative", [node("Gather", ["x", "i"], ["y"],
                                        axis=-1)],
               [("x", r.f(3, 7)), ("i", i64(-1, -7, 3))], ["y"])
    yield Case("gather_scalar_index", [node("Gather", ["x", "i"], ["y"],
                                            axis=1)],
               [("x", r.f(2, 5, 3))], ["y"], {"i": np.array(3, np.int64)})
    yield Case("gather_int64_data", [node("Gather", ["x", "i"], ["y"])],
               [("x", r.i(6, lo=-50, hi=50)), ("i", r.i(4, lo=0, hi=6))],
               [("y", I64)])
    yield Case("gather_embedding", [node("Gather", ["w", "i"], ["y"])],
               [("i", r.i(2, 5, lo=0, hi=32))], ["y"], {"w": r.f(32, 16)})


@group("shape")
def misc_cases(r):
    yield Case("constant_add",
               [node("Constant", [], ["c"],
                     value=numpy_helper.from_array(r.f(3, 4), "c")),
                node("Add", ["x", "c"], ["y"])],
               [("x", r.f(2, 3, 4))], ["y"])
    yield Case("constant_value_float",
               [node("Constant", [], ["c"], value_float=0.25),
                node("Mul", ["x", "c"], ["y"])],
               [("x", r.f(2, 3))], ["y"])
    yield Case("constant_value_ints",
               [node("Constant", [], ["s"], value_ints=[3, 2]),
                node("Reshape", ["x", "s"], ["y"])],
               [("x", r.f(2, 3))], ["y"], out_shapes={"y": [3, 2]})
    yield Case("shape", [node("Shape", ["x"], ["y"])],
               [("x", r.f(2, 3, 4))], [("y", I64)])
    yield Case("shape_start_end", [node("Shape", ["x"], ["y"], start=1,
                                        end=-1)],
               [("x", r.f(2, 3, 4, 5))], [("y", I64)])
    # the exported x.view(x.size(0), -1) path, batch from a graph input
    yield Case("shape_gather_reshape",
               [node("Shape", ["x"], ["s"]),
                node("Gather", ["s", "zero"], ["n"], axis=0),
                node("Unsqueeze", ["n", "ax"], ["n1"]),
                node("Concat", ["n1", "minus1"], ["shape"], axis=0),
                node("Reshape", ["x", "shape"], ["y"])],
               [("x", r.f(2, 3, 4, 5))], ["y"],
               {"zero": np.array(0, np.int64), "ax": i64(0),
                "minus1": i64(-1)})
    yield Case("cast_float_to_int64", [node("Cast", ["x"], ["y"], to=I64)],
               [("x", r.f(3, 5, lo=-10, hi=10))], [("y", I64)])
    yield Case("cast_int64_to_float", [node("Cast", ["x"], ["y"], to=F32)],
               [("x", r.i(3, 5, lo=-1000, hi=1000))], ["y"])
    yield Case("cast_float_to_float", [node("Cast", ["x"], ["y"], to=F32)],
               [("x", r.f(3, 5))], ["y"])
    yield Case("cast_shape_to_float",
               [node("Shape", ["x"], ["s"]),
                node("Cast", ["s"], ["sf"], to=F32),
                node("Mul", ["x", "sf"], ["y"])],
               [("x", r.f(2, 3, 3))], ["y"])
    yield Case("where_const_cond",
               [node("Where", ["c", "a", "b"], ["y"])],
               [("a", r.f(2, 3, 4)), ("b", r.f(2, 3, 4))], ["y"],
               {"c": r.b(3, 4)})
    yield Case("where_broadcast",
               [node("Where", ["c", "a", "b"], ["y"])],
               [("a", r.f(2, 1, 4)), ("b", r.f(3, 1))], ["y"],
               {"c": r.b(2, 3, 1)})
    yield Case("where_scalar_other",
               [node("Where", ["c", "a", "b"], ["y"])],
               [("a", r.f(1, 4, 4, 4))], ["y"],
               {"c": r.b(1, 1, 4, 4), "b": np.array(-1e9, np.float32)})
    yield Case("where_cond_input",
               [node("Where", ["c", "a", "b"], ["y"])],
               [("c", r.b(2, 3, 4)), ("a", r.f(2, 3, 4)),
                ("b", r.f(2, 3, 4))], ["y"])
    yield Case("expand_basic", [node("Expand", ["x", "s"], ["y"])],
               [("x", r.f(3, 1))], ["y"], {"s": i64(2, 3, 4)})
    yield Case("expand_row", [node("Expand", ["x", "s"], ["y"])],
               [("x", r.f(1, 4))], ["y"], {"s": i64(3, 4)})
    yield Case("expand_smaller_shape", [node("Expand", ["x", "s"], ["y"])],
               [("x", r.f(2, 3, 1))], ["y"], {"s": i64(1, 5)})
    yield Case("expand_int64", [node("Expand", ["x", "s"], ["y"])],
               [("x", r.i(1, 3, lo=-5, hi=5))], [("y", I64)],
               {"s": i64(2, 1, 3)})


# ---- pooling, normalisation, resize, padding ----

@group("spatial")
def pool_cases(r):
    def pool(name, op, x_shape, **attrs):
        return Case(name, [node(op, ["x"], ["y"], **attrs)],
                    [("x", r.f(*x_shape))], ["y"])

    yield pool("maxpool_2x2_s2", "MaxPool", [1, 8, 12, 12],
               kernel_shape=[2, 2], strides=[2, 2])
    yield pool("maxpool_3x3_s2_pad1", "MaxPool", [1, 16, 15, 15],
               kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    yield pool("maxpool_3x3_s1_same", "MaxPool", [2, 5, 9, 9],
               kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    yield pool("maxpool_ceil", "MaxPool", [1, 4, 13, 13],
               kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
    yield pool("maxpool_ceil_pad", "MaxPool", [1, 4, 14, 11],
               kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
               ceil_mode=1)
    yield pool("maxpool_dilated", "MaxPool", [1, 4, 12, 12],
               kernel_shape=[3, 3], dilations=[2, 2])
    yield pool("maxpool_dilated_strided_ceil", "MaxPool", [1, 3, 13, 13],
               kernel_shape=[2, 2], dilations=[2, 2], strides=[2, 2],
               ceil_mode=1)
    yield pool("maxpool_asym_pads", "MaxPool", [1, 4, 9, 9],
               kernel_shape=[3, 3], pads=[0, 1, 2, 0])
    yield pool("maxpool_same_upper", "MaxPool", [1, 4, 9, 9],
               kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")
    yield pool("maxpool_rect", "MaxPool", [1, 4, 10, 9],
               kernel_shape=[2, 3], strides=[2, 1])
    yield pool("avgpool_2x2_s2", "AveragePool", [1, 8, 12, 12],
               kernel_shape=[2, 2], strides=[2, 2])
    yield pool("avgpool_pad_exclude", "AveragePool", [1, 4, 9, 9],
               kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    yield pool("avgpool_pad_include", "AveragePool", [1, 4, 9, 9],
               kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1)
    yield pool("avgpool_ceil", "AveragePool", [1, 4, 13, 13],
               kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
    yield pool("avgpool_ceil_pad_include", "AveragePool", [1, 4, 14, 14],
               kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
               ceil_mode=1, count_include_pad=1)
    yield pool("avgpool_asym_pads_include", "AveragePool", [1, 4, 9, 9],
               kernel_shape=[3, 3], pads=[1, 0, 0, 2], count_include_pad=1)
    # Inception's 3x3 stride-1 averages on odd planes (pool.c's AVX-512
    # plane path), and wide rows
    yield pool("avgpool_3x3_s1_35", "AveragePool", [2, 3, 35, 35],
               kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    yield pool("avgpool_3x3_s1_17_include", "AveragePool", [1, 5, 17, 17],
               kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1)
    yield pool("maxpool_3x3_s1_wide", "MaxPool", [1, 2, 6, 70],
               kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    yield pool("global_avgpool", "GlobalAveragePool", [2, 5, 7, 7])
    yield pool("global_avgpool_1x1", "GlobalAveragePool", [1, 17, 1, 1])
    yield pool("global_avgpool_big", "GlobalAveragePool", [1, 1280, 7, 7])


@group("spatial")
def norm_cases(r):
    def bn(name, x_shape, eps=1e-5):
        c = x_shape[1]
        inits = {"s": r.f(c), "b": r.f(c), "m": r.f(c), "v": r.pos(c)}
        return Case(name, [node("BatchNormalization",
                                ["x", "s", "b", "m", "v"], ["y"],
                                epsilon=eps)],
                    [("x", r.f(*x_shape))], ["y"], inits)

    yield bn("batchnorm_4d", [2, 6, 5, 5], eps=1e-3)
    yield bn("batchnorm_3d", [2, 6, 7])
    yield bn("batchnorm_2d", [4, 6])
    yield bn("batchnorm_17ch", [1, 17, 9, 9])
    for axis in (-1, 1):
        yield Case(f"reducemean_axis{axis}_keep",
                   [node("ReduceMean", ["x"], ["y"], axes=[axis])],
                   [("x", r.f(2, 3, 64))], ["y"])
    yield Case("reducemean_axes12_nokeep",
               [node("ReduceMean", ["x"], ["y"], axes=[1, 2], keepdims=0)],
               [("x", r.f(2, 3, 4, 5))], ["y"])
    yield Case("reducemean_all", [node("ReduceMean", ["x"], ["y"])],
               [("x", r.f(2, 3, 4))], ["y"])
    yield Case("reducemean_spatial", [node("ReduceMean", ["x"], ["y"],
                                           axes=[2, 3])],
               [("x", r.f(1, 32, 7, 7))], ["y"])
    for axis in (-1, 1, 0):
        yield Case(f"softmax_axis{axis}",
                   [node("Softmax", ["x"], ["y"], axis=axis)],
                   [("x", r.f(2, 3, 4, 5, lo=-10, hi=10))], ["y"])
    yield Case("softmax_large_values", [node("Softmax", ["x"], ["y"])],
               [("x", r.f(4, 1000, lo=-80, hi=80))], ["y"])
    # opset < 13: softmax over the flattened dims from axis on
    yield Case("softmax_opset11_axis1",
               [node("Softmax", ["x"], ["y"], axis=1)],
               [("x", r.f(2, 3, 4))], ["y"], opset=11)
    yield Case("softmax_opset11_default",
               [node("Softmax", ["x"], ["y"])],
               [("x", r.f(2, 3, 4))], ["y"], opset=11)

    def ln(name, x_shape, axis, bias=True, eps=1e-5):
        norm_shape = x_shape[axis:]
        inits = {"s": r.f(*norm_shape)}
        ins = ["x", "s"]
        if bias:
            inits["b"] = r.f(*norm_shape)
            ins.append("b")
        return Case(name, [node("LayerNormalization", ins, ["y"], axis=axis,
                                epsilon=eps)],
                    [("x", r.f(*x_shape, lo=-3, hi=3))], ["y"], inits)

    yield ln("layernorm_last", [2, 16, 64], -1)
    yield ln("layernorm_last_nobias", [2, 16, 64], -1, bias=False)
    yield ln("layernorm_axis1", [2, 4, 8], 1, eps=1e-3)
    yield ln("layernorm_2d", [5, 33], 1)


@group("spatial")
def pad_cases(r):
    def pad(name, x_shape, pads, mode, value=None, opset=17):
        ins, inits = ["x", "p"], {"p": i64(*pads)}
        if value is not None:
            ins.append("v")
            inits["v"] = np.array(value, np.float32)
        return Case(name, [node("Pad", ins, ["y"], mode=mode)],
                    [("x", r.f(*x_shape))], ["y"], inits, opset=opset)

    yield pad("pad_constant_zero", [1, 3, 5, 6], [0, 0, 1, 2, 0, 0, 3, 1],
              "constant")
    yield pad("pad_constant_value", [1, 3, 5, 6], [0, 0, 1, 2, 0, 0, 3, 1],
              "constant", value=0.5)
    yield pad("pad_constant_channels", [1, 3, 4, 4], [0, 2, 0, 0, 0, 1, 0, 0],
              "constant", value=-1.0)
    yield pad("pad_constant_negative", [1, 3, 6, 6],
              [0, 0, -1, 2, 0, 0, 1, -2], "constant")
    yield pad("pad_reflect", [1, 3, 5, 6], [0, 0, 2, 1, 0, 0, 1, 3],
              "reflect")
    yield pad("pad_edge", [1, 3, 5, 6], [0, 0, 3, 1, 0, 0, 1, 4], "edge")
    yield pad("pad_reflect_2d", [4, 5], [1, 2, 3, 1], "reflect")
    yield Case("pad_attrs_opset10",
               [node("Pad", ["x"], ["y"], mode="constant",
                     pads=[0, 0, 1, 1, 0, 0, 1, 1], value=2.0)],
               [("x", r.f(1, 2, 3, 3))], ["y"], opset=10)


@group("spatial")
def resize_cases(r):
    def resize(name, x_shape, scales=None, sizes=None, opset=13, **attrs):
        ins, inits = ["x", "", ""], {}
        if opset < 13:  # roi and scales are required before opset 13
            ins[1:3] = ["roi", "sc"]
            inits["roi"] = np.zeros(0, np.float32)
            inits["sc"] = np.zeros(0, np.float32)
        if scales is not None:
            ins[2] = "sc"
            inits["sc"] = f32(*scales)
        if sizes is not None:
            ins.append("sz")
            inits["sz"] = i64(*sizes)
        return Case(name, [node("Resize", ins, ["y"], **attrs)],
                    [("x", r.f(*x_shape))], ["y"], inits, opset=opset)

    yield resize("resize_nearest_asym_floor", [1, 3, 4, 5], [1, 1, 2, 2],
                 mode="nearest", coordinate_transformation_mode="asymmetric",
                 nearest_mode="floor")
    yield resize("resize_nearest_default", [1, 3, 5, 4], [1, 1, 2, 3],
                 mode="nearest")
    yield resize("resize_nearest_sizes", [1, 3, 5, 4],
                 sizes=[1, 3, 7, 9], mode="nearest")
    yield resize("resize_nearest_half_pixel_round", [1, 2, 6, 6],
                 sizes=[1, 2, 4, 9], mode="nearest",
                 coordinate_transformation_mode="half_pixel",
                 nearest_mode="round_prefer_ceil")
    yield resize("resize_nearest_align_corners", [1, 2, 4, 5],
                 sizes=[1, 2, 7, 8], mode="nearest",
                 coordinate_transformation_mode="align_corners")
    yield resize("resize_linear_half_pixel", [1, 3, 4, 5], [1, 1, 2, 2],
                 mode="linear", coordinate_transformation_mode="half_pixel")
    yield resize("resize_linear_align_corners", [1, 3, 4, 5],
                 sizes=[1, 3, 7, 11], mode="linear",
                 coordinate_transformation_mode="align_corners")
    yield resize("resize_linear_asymmetric", [1, 3, 4, 6], [1, 1, 1.5, 1.5],
                 mode="linear", coordinate_transformation_mode="asymmetric")
    yield resize("resize_linear_down", [1, 3, 8, 8], [1, 1, 0.5, 0.5],
                 mode="linear", coordinate_transformation_mode="half_pixel")
    yield resize("resize_linear_pytorch_half_pixel", [1, 2, 5, 5],
                 sizes=[1, 2, 9, 1], mode="linear",
                 coordinate_transformation_mode="pytorch_half_pixel")
    yield resize("resize_nearest_opset11", [1, 2, 3, 3], [1, 1, 2, 2],
                 opset=11, mode="nearest",
                 coordinate_transformation_mode="asymmetric",
                 nearest_mode="floor")


# ---- fusion: chains the executor folds into one kernel ----

@group("fusion")
def fusion_cases(r):
    def conv_then(name, tail, extra_inputs=(), inits_extra=None, ch=16):
        w = (r.f(ch, 8, 3, 3) * 0.3).astype(np.float32)
        nodes = [node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1])]
        nodes += tail
        inits = {"w": w, "b": r.f(ch)}
        inits.update(inits_extra or {})
        return Case(name, nodes, [("x", r.f(1, 8, 10, 10)), *extra_inputs],
                    ["y"], inits)

    yield conv_then("conv_relu", [node("Relu", ["c"], ["y"])])
    yield conv_then("conv_leakyrelu", [node("LeakyRelu", ["c"], ["y"],
                                            alpha=0.1)])
    yield conv_then("conv_clip6", [node("Clip", ["c", "lo", "hi"], ["y"])],
                    inits_extra={"lo": np.array(0, np.float32),
                                 "hi": np.array(6, np.float32)})
    yield conv_then("conv_sigmoid", [node("Sigmoid", ["c"], ["y"])])
    yield conv_then("conv_silu", [node("Sigmoid", ["c"], ["s"]),
                                  node("Mul", ["c", "s"], ["y"])])
    yield conv_then("conv_hardswish", [node("HardSwish", ["c"], ["y"])])
    yield conv_then("conv_hardsigmoid", [node("HardSigmoid", ["c"], ["y"])])
    yield conv_then("conv_tanh", [node("Tanh", ["c"], ["y"])])
    yield conv_then("conv_add_relu", [node("Add", ["c", "skip"], ["a"]),
                                      node("Relu", ["a"], ["y"])],
                    extra_inputs=[("skip", r.f(1, 16, 10, 10))])
    yield conv_then("conv_add_skip_first", [node("Add", ["skip", "c"],
                                                 ["y"])],
                    extra_inputs=[("skip", r.f(1, 16, 10, 10))])
    yield conv_then("conv_add_broadcast", [node("Add", ["c", "k"], ["y"])],
                    inits_extra={"k": r.f(16, 1, 1)})
    # the intermediate is also a graph output: fusing must keep it
    c = conv_then("conv_relu_both_out", [node("Relu", ["c"], ["y"])])
    yield Case("conv_relu_both_out", c.nodes, c.inputs, ["y", "c"],
               {t.name: numpy_helper.to_array(t)
                for t in c.model.graph.initializer})
    # the intermediate read twice: Conv -> Relu and Conv -> Sigmoid
    yield conv_then("conv_two_readers",
                    [node("Relu", ["c"], ["r1"]),
                     node("Sigmoid", ["c"], ["r2"]),
                     node("Add", ["r1", "r2"], ["y"])])
    yield conv_then("conv_bn_relu",
                    [node("BatchNormalization", ["c", "s", "bb", "m", "v"],
                          ["n"]),
                     node("Relu", ["n"], ["y"])],
                    inits_extra={"s": r.f(16), "bb": r.f(16), "m": r.f(16),
                                 "v": r.pos(16)})
    yield Case("gemm_relu", [node("Gemm", ["a", "w", "b"], ["g"], transB=1),
                             node("Relu", ["g"], ["y"])],
               [("a", r.f(3, 32))], ["y"], {"w": r.f(10, 32), "b": r.f(10)})
    yield Case("matmul_add_bias", [node("MatMul", ["a", "w"], ["m"]),
                                   node("Add", ["m", "b"], ["y"])],
               [("a", r.f(2, 16, 64))], ["y"],
               {"w": r.f(64, 32), "b": r.f(32)}, fused=["MatMul"])
    yield Case("matmul_add_relu", [node("MatMul", ["a", "w"], ["m"]),
                                   node("Add", ["b", "m"], ["s"]),
                                   node("Relu", ["s"], ["y"])],
               [("a", r.f(2, 16, 64))], ["y"],
               {"w": r.f(64, 32), "b": r.f(1, 32)}, fused=["MatMul+Relu"])
    # a full-size constant is not a bias row: left to the Add
    yield Case("matmul_add_full", [node("MatMul", ["a", "w"], ["m"]),
                                   node("Add", ["m", "b"], ["y"])],
               [("a", r.f(2, 5, 12))], ["y"],
               {"w": r.f(12, 7), "b": r.f(2, 5, 7)},
               fused=["MatMul", "Add"])
    yield Case("convt_relu", [node("ConvTranspose", ["x", "w"], ["c"],
                                   strides=[2, 2]),
                              node("Relu", ["c"], ["y"])],
               [("x", r.f(1, 4, 5, 5))], ["y"], {"w": r.f(4, 6, 3, 3)})


@group("fusion")
def pattern_fusion_cases(r):
    """The exporters' decompositions the runtime turns into single nodes
    (runtime/fuse.c), checked against onnxruntime on the unfused graph and
    by the ops --profile shows.  Odd sizes: 13 and 20 channels, 7x9 planes,
    so no count is a whole number of vectors."""
    sqrt2, ln_eps = np.array(1.4142135, np.float32), 1e-6
    one, half = np.array(1.0, np.float32), np.array(0.5, np.float32)

    def conv_in(ch=13, cin=8):
        return ([node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1])],
                {"w": (r.f(ch, cin, 3, 3) * 0.4), "b": r.f(ch)},
                [("x", r.f(2, cin, 7, 9, lo=-2, hi=2))])

    def with_conv(name, tail, fused, inits=None, ch=13):
        nodes, w, ins = conv_in(ch)
        w.update(inits or {})
        return Case(name, nodes + tail, ins, ["y"], w, fused=fused)

    def alone(name, tail, fused, inits=None, shape=(2, 13, 7, 9)):
        return Case(name, tail, [("c", r.f(*shape, lo=-4, hi=4))], ["y"],
                    inits or {}, fused=fused)

    hswish = [node("HardSigmoid", ["c"], ["h"], alpha=1.0 / 6),
              node("Mul", ["c", "h"], ["y"])]
    yield with_conv("conv_hardswish_decomposed", hswish, ["Conv+HardSwish"])
    yield alone("hardswish_decomposed_alone", hswish, ["HardSwish"])
    yield with_conv("conv_hardsigmoid_mul_02",
                    [node("HardSigmoid", ["c"], ["h"], alpha=0.2, beta=0.4),
                     node("Mul", ["h", "c"], ["y"])], ["Conv+HardSwish"])
    silu = [node("Sigmoid", ["c"], ["s"]), node("Mul", ["s", "c"], ["y"])]
    yield with_conv("conv_silu_fused", silu, ["Conv+SiLU"])
    yield alone("silu_alone", silu, ["SiLU"], shape=(3, 5, 11))

    # GELU, erf form, in the orders exporters write it
    def erf_gelu(order, scale="div"):
        pre = ([node("Div", ["c", "k"], ["d"])] if scale == "div" else
               [node("Mul", ["k", "c"], ["d"])])
        body = pre + [node("Erf", ["d"], ["e"]),
                      node("Add", ["e", "one"], ["a"])]
        if order == 1:    # (x (1 + erf)) 0.5, torch
            body += [node("Mul", ["c", "a"], ["m"]),
                     node("Mul", ["m", "half"], ["y"])]
        elif order == 2:  # (x 0.5) (1 + erf)
            body += [node("Mul", ["c", "half"], ["h"]),
                     node("Mul", ["h", "a"], ["y"])]
        else:             # x ((1 + erf) 0.5)
            body += [node("Mul", ["a", "half"], ["m"]),
                     node("Mul", ["c", "m"], ["y"])]
        k = sqrt2 if scale == "div" else np.array(1 / 1.4142135, np.float32)
        return body, {"k": k, "one": one, "half": half}

    for order in (1, 2, 3):
        body, consts = erf_gelu(order)
        yield with_conv(f"conv_gelu_erf_order{order}", body, ["Conv+Gelu"],
                        consts)
    body, consts = erf_gelu(1, scale="mul")
    yield with_conv("conv_gelu_erf_mul", body, ["Conv+Gelu"], consts)
    yield alone("gelu_erf_alone", body, ["Gelu"], consts)
    # a transformer's Linear (MatMul, bias) then GELU, 3-d
    lin = [node("MatMul", ["t", "wl"], ["mm"]),
           node("Add", ["mm", "bl"], ["c"])] + body
    yield Case("matmul_bias_gelu", lin, [("t", r.f(2, 9, 24))], ["y"],
               dict(consts, wl=r.f(24, 40), bl=r.f(40)),
               fused=["MatMul+Gelu"])
    # a constant that is not 1/sqrt(2): left as it is, still right
    body, consts = erf_gelu(1)
    consts["k"] = np.array(1.5, np.float32)
    yield with_conv("conv_not_gelu", body,
                    ["Conv", "Div", "Erf", "Add", "Mul", "Mul"], consts)
    # tanh form, as torch writes nn.GELU(approximate="tanh")
    for cube in ("mul", "pow"):
        pre = ([node("Mul", ["c", "c"], ["sq"]),
                node("Mul", ["c", "sq"], ["cu"])] if cube == "mul" else
               [node("Pow", ["c", "three"], ["cu"])])
        body = pre + [node("Mul", ["kappa", "cu"], ["kc"]),
                      node("Add", ["c", "kc"], ["u"]),
                      node("Mul", ["beta", "u"], ["in"]),
                      node("Tanh", ["in"], ["t"]),
                      node("Add", ["one", "t"], ["a"]),
                      node("Mul", ["c", "a"], ["m"]),
                      node("Mul", ["half", "m"], ["y"])]
        consts = {"kappa": np.array(0.044715, np.float32),
                  "beta": np.array(0.7978845608, np.float32),
                  "three": np.array(3.0, np.float32), "one": one,
                  "half": half}
        yield with_conv(f"conv_gelu_tanh_{cube}", body, ["Conv+GeluTanh"],
                        consts)
    yield alone("gelu_tanh_alone", body, ["Gelu"], consts,
                shape=(1, 20, 5, 3))

    # LayerNorm written out (torch before opset 17), last axis and axis 1
    def ln_body(axis, affine=True, square="pow"):
        body = [node("ReduceMean", ["c"], ["mu"], axes=[axis]),
                node("Sub", ["c", "mu"], ["d"]),
                node("Pow", ["d", "two"], ["p"]) if square == "pow" else
                node("Mul", ["d", "d"], ["p"]),
                node("ReduceMean", ["p"], ["var"], axes=[axis]),
                node("Add", ["var", "eps"], ["ve"]),
                node("Sqrt", ["ve"], ["sd"]),
                node("Div", ["d", "sd"], ["n" if affine else "y"])]
        if affine:
            body += [node("Mul", ["n", "gamma"], ["g"]),
                     node("Add", ["g", "beta"], ["y"])]
        return body

    ln_consts = {"two": np.array(2.0, np.float32),
                 "eps": np.array(ln_eps, np.float32)}
    yield alone("layernorm_decomposed_last", ln_body(-1),
                ["LayerNormalization"],
                dict(ln_consts, gamma=r.f(37), beta=r.f(37)),
                shape=(2, 5, 37))
    yield alone("layernorm_decomposed_noaffine", ln_body(-1, False),
                ["LayerNormalization"], ln_consts, shape=(3, 20))
    yield alone("layernorm_decomposed_mul_square",
                ln_body(-1, square="mul"), ["LayerNormalization"],
                dict(ln_consts, gamma=r.f(19), beta=r.f(19)),
                shape=(2, 3, 19))
    yield with_conv("conv_layernorm_decomposed_channels", ln_body(1),
                    ["Conv", "LayerNormChannels"],
                    dict(ln_consts, gamma=r.f(13, 1, 1), beta=r.f(13, 1, 1)))

    # ConvNeXt's block: depthwise 7x7, Permute, LayerNorm, Linear, GELU,
    # Linear, Permute, layer scale, residual; and its LayerNorm2d
    ch = 20
    block = [node("Conv", ["x", "dw", "dwb"], ["c"], group=ch,
                  pads=[3, 3, 3, 3]),
             node("Transpose", ["c"], ["t"], perm=[0, 2, 3, 1])]
    ln = ln_body(-1)
    ln[0].input[0] = ln[1].input[0] = "t"
    ln[-1].output[0] = "lnout"
    body, gconsts = erf_gelu(1)
    for n_ in body:
        n_.input[:] = ["h1" if i == "c" else i for i in n_.input]
    body[-1].output[0] = "gl"
    block += ln + [node("MatMul", ["lnout", "fc1"], ["m1"]),
                   node("Add", ["fc1b", "m1"], ["h1"])] + body + [
        node("MatMul", ["gl", "fc2"], ["m2"]),
        node("Add", ["fc2b", "m2"], ["h2"]),
        node("Transpose", ["h2"], ["back"], perm=[0, 3, 1, 2]),
        node("Mul", ["scale", "back"], ["sc"]),
        node("Add", ["sc", "x"], ["y"])]
    # the two patterns' intermediates get distinct names
    for n_ in body:
        n_.input[:] = [i if i in ("h1", "k", "one", "half") else "g_" + i
                       for i in n_.input]
        n_.output[:] = [o if o == "gl" else "g_" + o for o in n_.output]
    inits = dict(ln_consts, **gconsts, dw=r.f(ch, 1, 7, 7) * 0.3,
                 dwb=r.f(ch), gamma=r.f(ch), beta=r.f(ch),
                 fc1=r.f(ch, 4 * ch) * 0.3, fc1b=r.f(4 * ch),
                 fc2=r.f(4 * ch, ch) * 0.2, fc2b=r.f(ch),
                 scale=r.f(ch, 1, 1))
    yield Case("convnext_block", block, [("x", r.f(2, ch, 7, 9))], ["y"],
               inits, fused=["Conv", "LayerNormChannels", "Conv+Gelu",
                             "Conv+Add"])
    yield Case("convnext_downsample",
               [node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
                node("LayerNormalization", ["t", "g", "b"], ["n"],
                     axis=-1, epsilon=1e-6),
                node("Transpose", ["n"], ["u"], perm=[0, 3, 1, 2]),
                node("Conv", ["u", "w", "wb"], ["y"], strides=[2, 2],
                     kernel_shape=[2, 2])],
               [("x", r.f(1, ch, 7, 9))], ["y"],
               {"g": r.f(ch), "b": r.f(ch), "w": r.f(2 * ch, ch, 2, 2),
                "wb": r.f(2 * ch)},
               fused=["LayerNormChannels", "Conv"])
    # a transposed chain whose middle is also an output: left alone
    yield Case("channels_last_read_twice",
               [node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
                node("MatMul", ["t", "w"], ["m"]),
                node("Transpose", ["m"], ["y"], perm=[0, 3, 1, 2])],
               [("x", r.f(1, 8, 5, 3))], ["y", "m"], {"w": r.f(8, 6)},
               fused=["Transpose", "MatMul", "Transpose"])

    # Pad then AveragePool (torch's avg_pool2d with padding, Inception)
    def pad_pool(name, fused, **attrs):
        return Case(name, [node("Pad", ["x", "p"], ["xp"]),
                           node("AveragePool", ["xp"], ["y"],
                                kernel_shape=[3, 3], **attrs)],
                    [("x", r.f(2, 13, 7, 9))], ["y"],
                    {"p": i64(0, 0, 1, 2, 0, 0, 1, 0)}, fused=fused)

    yield pad_pool("pad_avgpool", ["AveragePool"], strides=[1, 1])
    yield pad_pool("pad_avgpool_counted_pads", ["AveragePool"],
                   pads=[1, 0, 0, 1], count_include_pad=1, strides=[2, 1])
    # own pads left uncounted, or ceil_mode: not the same, left apart
    yield pad_pool("pad_avgpool_uncounted_pads", ["Pad", "AveragePool"],
                   pads=[1, 1, 1, 1])
    yield pad_pool("pad_avgpool_ceil", ["Pad", "AveragePool"],
                   strides=[2, 2], ceil_mode=1)

    # DenseNet's BN -> Relu on a concatenation (no conv to fold into):
    # one pass; also with channels last in a 2-d BN
    bnp = {"s": r.f(13), "bb": r.f(13), "m": r.f(13), "v": r.pos(13)}
    yield Case("concat_bn_relu",
               [node("Concat", ["x", "x2"], ["cat"], axis=1),
                node("BatchNormalization", ["cat", "s", "bb", "m", "v"],
                     ["n"]),
                node("Relu", ["n"], ["y"])],
               [("x", r.f(2, 6, 7, 9)), ("x2", r.f(2, 7, 7, 9))], ["y"],
               bnp, fused=["Concat", "BatchNormalization+Relu"])
    yield Case("bn2d_clip",
               [node("BatchNormalization", ["x", "s", "bb", "m", "v"],
                     ["n"]),
                node("Clip", ["n", "lo", "hi"], ["y"])],
               [("x", r.f(5, 13, lo=-3, hi=3))], ["y"],
               dict(bnp, lo=np.array(0, np.float32),
                    hi=np.array(1, np.float32)),
               fused=["BatchNormalization+Clip"])

    # Conv followed by a per-channel scale and shift: into the weights
    yield with_conv("conv_channel_scale_shift",
                    [node("Mul", ["c", "k"], ["m"]),
                     node("Add", ["kb", "m"], ["y"])], ["Conv"],
                    {"k": r.f(1, 13, 1, 1), "kb": r.f(13, 1, 1)})

    # squeeze-excitation: MobileNetV3 (Relu, HardSigmoid) and
    # EfficientNet (SiLU, Sigmoid) gates on 20 channels squeezed to 5
    def se(name, act1, gate, batch=2):
        nodes = [node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
                 node("GlobalAveragePool", ["c"], ["p"]),
                 node("Conv", ["p", "w1", "b1"], ["q"])]
        nodes += act1("q", "qa") + [node("Conv", ["qa", "w2", "b2"], ["z"])]
        nodes += gate("z", "g") + [node("Mul", ["c", "g"], ["y"])]
        return Case(name, nodes, [("x", r.f(batch, 8, 7, 9))], ["y"],
                    {"w": r.f(20, 8, 3, 3) * 0.4, "b": r.f(20),
                     "w1": r.f(5, 20, 1, 1), "b1": r.f(5),
                     "w2": r.f(20, 5, 1, 1), "b2": r.f(20)},
                    fused=["Conv", "SqueezeExcite"])

    yield se("se_relu_hardsigmoid", lambda a, b: [node("Relu", [a], [b])],
             lambda a, b: [node("HardSigmoid", [a], [b], alpha=1.0 / 6)])
    yield se("se_silu_sigmoid",
             lambda a, b: [node("Sigmoid", [a], [a + "s"]),
                           node("Mul", [a, a + "s"], [b])],
             lambda a, b: [node("Sigmoid", [a], [b])], batch=3)


# ---- graph structure: aliasing, in-place reuse, outputs read again ----

@group("graph")
def graph_cases(r):
    # Reshape aliases a graph input; the Relu after it may run in place
    # only if nothing reads the input later, and here Add does.
    yield Case("alias_of_input_read_later",
               [node("Reshape", ["x", "s"], ["t"]),
                node("Relu", ["t"], ["u"]),
                node("Reshape", ["u", "s2"], ["v"]),
                node("Add", ["x", "v"], ["y"])],
               [("x", r.f(2, 3, 4))], ["y"],
               {"s": i64(6, 4), "s2": i64(2, 3, 4)})
    # the same through Flatten/Squeeze/Unsqueeze of an intermediate
    yield Case("alias_of_intermediate_read_later",
               [node("Sigmoid", ["x"], ["a"]),
                node("Unsqueeze", ["a", "ax"], ["b"]),
                node("Tanh", ["b"], ["c"]),
                node("Squeeze", ["c", "ax"], ["d"]),
                node("Mul", ["a", "d"], ["y"])],
               [("x", r.f(3, 5))], ["y"], {"ax": i64(0)})
    # an intermediate that is a graph output and is read by an
    # elementwise op that could otherwise overwrite it
    yield Case("output_also_read",
               [node("Add", ["x", "k"], ["a"]),
                node("Relu", ["a"], ["y"])],
               [("x", r.f(2, 8))], ["a", "y"], {"k": r.f(8)})
    yield Case("output_read_twice_inplace",
               [node("Exp", ["x"], ["a"]),
                node("Neg", ["a"], ["n"]),
                node("Sigmoid", ["a"], ["b"]),
                node("Add", ["n", "b"], ["y"])],
               [("x", r.f(2, 8))], ["a", "y"])
    # a graph input straight to an output
    yield Case("identity_input_to_output",
               [node("Identity", ["x"], ["y"]),
                node("Relu", ["x"], ["z"])],
               [("x", r.f(2, 3))], ["y", "z"])
    # an initializer as a graph output, through Identity
    yield Case("constant_output",
               [node("Identity", ["k"], ["c"]),
                node("Add", ["x", "k"], ["y"])],
               [("x", r.f(2, 3))], ["c", "y"], {"k": r.f(2, 3)})
    # the same tensor twice in one node
    yield Case("same_tensor_twice_add",
               [node("Relu", ["x"], ["a"]),
                node("Add", ["a", "a"], ["y"])],
               [("x", r.f(3, 7))], ["y"])
    yield Case("same_tensor_twice_concat",
               [node("Sigmoid", ["x"], ["a"]),
                node("Concat", ["a", "a", "x"], ["y"], axis=1)],
               [("x", r.f(2, 3, 4))], ["y"])
    yield Case("same_tensor_twice_matmul",
               [node("MatMul", ["x", "x"], ["y"])],
               [("x", r.f(6, 6))], ["y"])
    # a diamond of convolutions, the shape of a residual block
    yield Case("diamond",
               [node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
                node("Relu", ["a"], ["b"]),
                node("Conv", ["b", "w2"], ["c"], pads=[1, 1, 1, 1]),
                node("Conv", ["x", "w3"], ["d"]),
                node("Add", ["c", "d"], ["e"]),
                node("Relu", ["e"], ["y"])],
               [("x", r.f(1, 8, 9, 9))], ["y"],
               {"w1": r.f(8, 8, 3, 3) * 0.3, "w2": r.f(8, 8, 3, 3) * 0.3,
                "w3": r.f(8, 8, 1, 1)})
    # a long chain of in-place elementwise ops and a wide fan-out
    chain = [node("Relu", ["x"], ["t0"])]
    for i in range(1, 12):
        op = ("Sigmoid", "Tanh", "Exp", "Relu")[i % 4]
        chain.append(node(op, [f"t{i - 1}"], [f"t{i}"]))
    chain.append(node("Add", ["t11", "t3"], ["y"]))
    yield Case("chain_inplace", chain, [("x", r.f(4, 33))], ["y"])
    fan = [node("Relu", ["x"], ["a"])]
    fan += [node("Mul", ["a", f"k{i}"], [f"m{i}"]) for i in range(6)]
    fan += [node("Concat", [f"m{i}" for i in range(6)], ["y"], axis=0)]
    yield Case("fan_out", fan, [("x", r.f(2, 5))], ["y"],
               {f"k{i}": np.array(i - 2.5, np.float32) for i in range(6)})
    # two inputs and two outputs in an order unlike the nodes'
    yield Case("outputs_out_of_order",
               [node("Add", ["a", "b"], ["s"]),
                node("Mul", ["a", "b"], ["m"])],
               [("b", r.f(3, 4)), ("a", r.f(3, 4))], ["m", "s"])
    # a larger convolution, with the threads splitting real work
    yield Case("conv_56x56_64ch",
               [node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
                node("Relu", ["c"], ["y"])],
               [("x", r.f(1, 64, 56, 56))], ["y"],
               {"w": r.f(64, 64, 3, 3) * 0.05, "b": r.f(64)})
    yield Case("depthwise_112x112",
               [node("Conv", ["x", "w"], ["c"], group=32, strides=[2, 2],
                     pads=[1, 1, 1, 1]),
                node("Clip", ["c", "lo", "hi"], ["y"])],
               [("x", r.f(1, 32, 112, 112))], ["y"],
               {"w": r.f(32, 1, 3, 3), "lo": np.array(0, np.float32),
                "hi": np.array(6, np.float32)})
    yield Case("elementwise_large", [node("Mul", ["a", "b"], ["y"])],
               [("a", r.f(1, 64, 56, 56)), ("b", r.f(1, 64, 1, 1))], ["y"])


# ---- beyond the required set: refused cleanly or computed right ----

@group("optional")
def optional_cases(r):
    def opt(name, nodes, inputs, outputs, inits=None, **kw):
        return Case(name, nodes, inputs, outputs, inits, optional=True, **kw)

    yield opt("conv_1d", [node("Conv", ["x", "w"], ["y"], pads=[1, 1])],
              [("x", r.f(1, 4, 20))], ["y"], {"w": r.f(8, 4, 3)})
    yield opt("conv_3d", [node("Conv", ["x", "w"], ["y"])],
              [("x", r.f(1, 2, 5, 5, 5))], ["y"], {"w": r.f(3, 2, 3, 3, 3)})
    yield opt("maxpool_1d", [node("MaxPool", ["x"], ["y"],
                                  kernel_shape=[3], strides=[2])],
              [("x", r.f(1, 4, 15))], ["y"])
    yield opt("global_maxpool", [node("GlobalMaxPool", ["x"], ["y"])],
              [("x", r.f(1, 8, 5, 5))], ["y"])
    for op in ("ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd"):
        if op == "ReduceSum":  # axes became an input at opset 13
            yield opt("reducesum", [node(op, ["x", "ax"], ["y"])],
                      [("x", r.f(2, 3, 4))], ["y"], {"ax": i64(1)})
        else:
            yield opt(op.lower(), [node(op, ["x"], ["y"], axes=[1])],
                      [("x", r.f(2, 3, 4))], ["y"])
    for op in ("Neg", "Abs", "Reciprocal", "Floor", "Ceil", "Softplus",
               "Elu", "Selu", "Sin", "Cos"):
        yield opt(op.lower(), [node(op, ["x"], ["y"])],
                  [("x", r.away(3, 7))], ["y"])
    yield opt("log", [node("Log", ["x"], ["y"])], [("x", r.pos(3, 7))],
              ["y"])
    yield opt("prelu", [node("PRelu", ["x", "s"], ["y"])],
              [("x", r.f(1, 4, 3, 3))], ["y"], {"s": r.f(4, 1, 1)})
    for op in ("Min", "Max", "Mean", "Sum"):
        yield opt(op.lower() + "_variadic", [node(op, ["a", "b", "c"],
                                                   ["y"])],
                  [("a", r.f(2, 3)), ("b", r.f(3)), ("c", r.f(2, 1))], ["y"])
    yield opt("pow_int64_exponent", [node("Pow", ["x", "e"], ["y"])],
              [("x", r.f(3, 4))], ["y"], {"e": np.array(3, np.int64)})
    yield opt("where_int64", [node("Where", ["c", "a", "b"], ["y"])],
              [("a", r.i(2, 3, lo=-9, hi=9)), ("b", r.i(2, 3, lo=-9, hi=9))],
              [("y", I64)], {"c": r.b(2, 3)})
    yield opt("cast_float_to_bool", [node("Cast", ["x"], ["y"], to=BOOL)],
              [("x", np.round(r.f(3, 4)))], [("y", BOOL)])
    yield opt("cast_bool_to_float", [node("Cast", ["x"], ["y"], to=F32)],
              [("x", r.b(3, 4))], ["y"])
    yield opt("equal_where_mask",
              [node("Equal", ["a", "b"], ["m"]),
               node("Where", ["m", "x", "z"], ["y"])],
              [("a", r.i(2, 4, lo=0, hi=2)), ("x", r.f(2, 4))], ["y"],
              {"b": i64(1), "z": np.array(0, np.float32)})
    yield opt("instance_norm", [node("InstanceNormalization",
                                     ["x", "s", "b"], ["y"])],
              [("x", r.f(2, 3, 5, 5))], ["y"], {"s": r.f(3), "b": r.f(3)})
    yield opt("depth_to_space", [node("DepthToSpace", ["x"], ["y"],
                                      blocksize=2)],
              [("x", r.f(1, 8, 3, 3))], ["y"])
    yield opt("conv_weights_input", [node("Conv", ["x", "w"], ["y"])],
              [("x", r.f(1, 3, 6, 6)), ("w", r.f(4, 3, 3, 3))], ["y"])
    yield opt("reducemean_opset18_axes_input",
              [node("ReduceMean", ["x", "ax"], ["y"])],
              [("x", r.f(2, 3, 4))], ["y"], {"ax": i64(-1)}, opset=18,
              checker=False)
    yield opt("split_opset18_num_outputs",
              [node("Split", ["x"], ["y0", "y1"], axis=1, num_outputs=2)],
              [("x", r.f(2, 6))], ["y0", "y1"], opset=18, checker=False)
    yield opt("pad_opset18_axes",
              [node("Pad", ["x", "p", "", "ax"], ["y"], mode="reflect")],
              [("x", r.f(1, 2, 5, 5))], ["y"],
              {"p": i64(1, 2, 2, 1), "ax": i64(2, 3)}, opset=18,
              checker=False)
    yield opt("resize_opset19_half_pixel_symmetric",
              [node("Resize", ["x", "", "sc"], ["y"], mode="linear",
                    coordinate_transformation_mode="half_pixel_symmetric")],
              [("x", r.f(1, 2, 4, 4))], ["y"], {"sc": f32(1, 1, 1.5, 1.5)},
              opset=19, checker=False)
    yield opt("layernorm_opset17_in_opset21",
              [node("LayerNormalization", ["x", "s", "b"], ["y"])],
              [("x", r.f(2, 8))], ["y"], {"s": r.f(8), "b": r.f(8)},
              opset=21, checker=False)


# ---- running the cases ----

def ort(*args):
    return subprocess.run(["node", os.path.join(ORT, "run.js"), *args],
                          capture_output=True, text=True)


def write_case(case, work):
    """Save the model and inputs; return (model path, --input and --output
    arguments, {output name: path})."""
    path = os.path.join(work, case.name + ".onnx")
    onnx.save(case.model, path)
    args = []
    for i, (n, a) in enumerate(case.inputs):
        f = os.path.join(work, f"{case.name}.in{i}.npy")
        np.save(f, a)
        args += ["--input", f"{n}={f}"]
    return path, args


def out_args(case, work, tag):
    files = {n: os.path.join(work, f"{case.name}.{tag}{i}.npy")
             for i, (n, _) in enumerate(case.outputs)}
    args = []
    for n, f in files.items():
        args += ["--output", f"{n}={f}"]
    return files, args


def compare(got, ref, tag):
    harness.compare(got, ref, tag, TOL)


def run_case(case, work):
    model, in_args = write_case(case, work)
    ref, ref_args = out_args(case, work, "ref")
    p = ort(model, *in_args, *ref_args)
    if p.returncode != 0:
        if not case.model.graph.node[0].op_type == "Gelu":
            check(False, f"{case.name}: onnxruntime refused the test model "
                  f"(a bug in the test): {p.stderr.strip()}")
        else:
            note(f"{case.name}: skipped, onnxruntime cannot run it: "
                 f"{p.stderr.strip()}")
        return
    before = len(harness.failures)
    for threads in ("1", "2"):
        got, got_args = out_args(case, work, "out" + threads)
        p = lamina("run", model, *in_args, *got_args, "--threads", threads)
        if p.returncode != 0 and case.optional:
            refused_cleanly(case, p)
            return
        tag = case.name + (" --threads 2" if threads == "2" else "")
        if not check(p.returncode == 0,
                     f"{tag}: lamina run failed: {p.stderr.strip()}"):
            break
        for n in got:
            if check(os.path.exists(got[n]),
                     f"{tag}: output '{n}' not written"):
                compare(np.load(got[n]), np.load(ref[n]), f"{tag} '{n}'")
    if case.fused is not None:
        p = lamina("run", model, *in_args, "--profile")
        ops = profile_ops(p.stdout)
        check(p.returncode == 0 and ops == case.fused,
              f"{case.name}: --profile shows ops {ops}, expected "
              f"{case.fused}: {p.stderr.strip()}")
        # and the same numbers as lamina's own unfused graph
        unf, unf_args = out_args(case, work, "unfused")
        fus, fus_args = out_args(case, work, "fused")
        p = lamina("run", model, *in_args, *unf_args, "--no-fuse")
        q = lamina("run", model, *in_args, *fus_args)
        if check(p.returncode == 0 and q.returncode == 0,
                 f"{case.name} --no-fuse: {p.stderr.strip()} "
                 f"{q.stderr.strip()}"):
            for n in unf:
                compare(np.load(fus[n]), np.load(unf[n]),
                        f"{case.name} '{n}' fused against --no-fuse")
    print(f"{'ok  ' if len(harness.failures) == before else 'BAD '} {case.name}",
          flush=True)


def profile_ops(text):
    """The op column of `lamina run --profile`'s rows, in order: a row is
    a line whose last three fields are numbers (ms, %, GFLOP/s)."""
    ops = []
    for line in text.splitlines():
        f = line.split()
        if len(f) < 6 or line.startswith("latency_ms"):
            continue
        try:
            [float(x.rstrip("%")) for x in f[-3:] if x not in ("-",)]
        except ValueError:
            continue
        ops.append(f[1])
    return ops


def refused_cleanly(case, p):
    """An optional case lamina does not run: fine when refused the way any
    unsupported op must be (one line naming a node and its op)."""
    err = p.stderr.strip()
    named = any(f"'{n.name}'" in err and n.op_type in err
                for n in case.nodes)
    if check(len(err.splitlines()) == 1 and named,
             f"{case.name}: (optional) refused without one line naming the "
             f"node and op: {err!r}"):
        note(f"{case.name}: not supported (optional): {err}")


def cases_of(group_name):
    for fn in GROUPS[group_name]:
        # one random stream per generator, so adding a case to one family
        # does not change the inputs of another
        yield from fn(Rng(fn.__name__))


def test_group(name):
    work = fresh_dir(f"ops/{name}")
    seen = set()
    for case in cases_of(name):
        assert case.name not in seen, f"duplicate case {case.name}"
        seen.add(case.name)
        run_case(case, work)


# ---- errors and the command line ----

def expect_error(p, tag, needles=(), any_of=()):
    """A failed run: non-zero exit, one line on stderr holding every needle
    and at least one of any_of.  Returns the line."""
    err = p.stderr.strip()
    check(p.returncode != 0, f"{tag}: non-zero exit (got {p.returncode})")
    check(len(err.splitlines()) == 1,
          f"{tag}: one-line error, got {err.splitlines()}")
    for n in needles:
        check(n in err, f"{tag}: the error says {n!r}: {err!r}")
    if any_of:
        check(any(n in err for n in any_of),
              f"{tag}: the error says one of {list(any_of)}: {err!r}")
    print(f"  {tag}: {err}", flush=True)
    return err


def refused_at_load(case, work, op, node_name, also=()):
    """An op or attribute lamina cannot run: refused naming the node and op,
    and nothing written."""
    model, in_args = write_case(case, work)
    out = os.path.join(work, case.name + ".out.npy")
    p = lamina("run", model, *in_args, "--output", out)
    expect_error(p, case.name, needles=(node_name, op, *also))
    check(not os.path.exists(out), f"{case.name}: no output written")
    check("latency_ms" not in p.stdout, f"{case.name}: nothing ran")


def test_errors():
    work = fresh_dir("ops/errors")
    r = Rng("errors")

    # an operator in a custom domain; shapes declared so that only the
    # runtime, not shape inference, can object
    refused_at_load(Case(
        "custom_op",
        [node("Relu", ["x"], ["a"], name="pre"),
         helper.make_node("Mystery", ["a"], ["b"], name="mystery_node",
                          domain="com.example"),
         node("Relu", ["b"], ["y"], name="post")],
        [("x", r.f(1, 4))], ["y"], domains=["com.example"],
        value_info=[vi("b", F32, [1, 4])], checker=False),
        work, "Mystery", "mystery_node")
    # a standard operator the runtime does not implement
    refused_at_load(Case(
        "nms",
        [node("NonMaxSuppression", ["boxes", "scores", "k"], ["sel"],
              name="nms_node")],
        [("boxes", r.f(1, 6, 4)), ("scores", r.f(1, 1, 6))],
        [("sel", I64)], {"k": i64(3)},
        value_info=[]), work, "NonMaxSuppression", "nms_node")
    refused_at_load(Case(
        "resize_cubic",
        [node("Resize", ["x", "", "sc"], ["y"], name="resize_node",
              mode="cubic")],
        [("x", r.f(1, 2, 4, 4))], ["y"], {"sc": f32(1, 1, 2, 2)},
        opset=13), work, "Resize", "resize_node", also=("cubic",))

    # wrong inputs: one line naming the input
    base = Case("inputs_model",
                [node("Conv", ["image", "w"], ["c"]),
                 node("Relu", ["c"], ["y"])],
                [("image", r.f(1, 3, 8, 8))], ["y"], {"w": r.f(4, 3, 3, 3)})
    model, good_args = write_case(base, work)
    out = os.path.join(work, "inputs_model.out.npy")
    bad = {
        "dtype_float64": r.f(1, 3, 8, 8).astype(np.float64),
        "dtype_int64": r.i(1, 3, 8, 8),
        "rank": r.f(3, 8, 8),
        "rank_high": r.f(1, 1, 3, 8, 8),
        "shape": r.f(1, 3, 8, 9),
        "batch": r.f(2, 3, 8, 8),
    }
    for tag, arr in bad.items():
        f = os.path.join(work, f"bad_{tag}.npy")
        np.save(f, arr)
        p = lamina("run", model, "--input", f"image={f}", "--output", out)
        expect_error(p, f"wrong input {tag}", needles=("image",))
        p = lamina("run", model, "--input", f, "--output", out)
        expect_error(p, f"wrong input {tag} (unnamed)", needles=("image",))
    # not an .npy file at all, and a missing one
    f = os.path.join(work, "not_npy.npy")
    open(f, "w").write("hello\n")
    expect_error(lamina("run", model, "--input", f"image={f}"),
                 "input not .npy", needles=("not_npy.npy",))
    expect_error(lamina("run", model, "--input",
                        f"image={work}/nope.npy"),
                 "input file missing", needles=("nope.npy",))
    # names that are not the model's
    expect_error(lamina("run", model, *good_args, "--output",
                        f"ghost={out}"), "unknown output name",
                 needles=("ghost", "its output is: 'y'"))
    f = os.path.join(work, "good.npy")
    np.save(f, r.f(1, 3, 8, 8))
    expect_error(lamina("run", model, "--input", f"ghost={f}"),
                 "unknown input name", needles=("ghost",
                                                "its input is: 'image'"))
    # a missing --input
    expect_error(lamina("run", model, "--output", out), "missing --input",
                 any_of=("image", "--input"))
    two = Case("two_inputs", [node("Add", ["a", "b"], ["y"])],
               [("a", r.f(2, 3)), ("b", r.f(2, 3))], ["y"])
    model2, _ = write_case(two, work)
    fa = os.path.join(work, "two_a.npy")
    np.save(fa, r.f(2, 3))
    expect_error(lamina("run", model2, "--input", f"a={fa}"),
                 "one of two inputs missing", needles=("'b'",))
    expect_error(lamina("run", model2, "--input", fa),
                 "unnamed input for a two-input model", any_of=("NAME", "a"))
    expect_error(lamina("run", model2, "--input", f"a={fa}", "--input",
                        f"b={fa}", "--input", f"a={fa}"),
                 "input given twice", needles=("'a'",),
                 any_of=("twice", "more than once", "again", "duplicate"))
    check(not os.path.exists(out), "no output written by failed runs")

    # --batch on a graph whose Reshape holds batch 1 as a literal: it is
    # rewritten to follow the batch (issue 14) ...
    hard = Case("hardcoded_reshape",
                [node("Relu", ["x"], ["r"]),
                 node("Reshape", ["r", "s"], ["y"], name="flatten_b1")],
                [("x", r.f(1, 3, 4, 4))], ["y"], {"s": i64(1, -1)})
    model3, _ = write_case(hard, work)
    f8 = os.path.join(work, "hard_b8.npy")
    x8 = r.f(8, 3, 4, 4)
    np.save(f8, x8)
    out8 = os.path.join(work, "hard_b8.out.npy")
    p = lamina("run", model3, "--input", f8, "--output", out8,
               "--batch", "8")
    if check(p.returncode == 0, f"--batch 8 with Reshape to [1,-1]: "
             f"{p.stderr.strip()}"):
        compare(np.load(out8), np.maximum(x8, 0).reshape(8, -1),
                "--batch 8 with Reshape to [1,-1]")
    # ... and one whose Reshape cuts across samples runs at its batch only
    mixed = Case("across_samples",
                 [node("Relu", ["x"], ["r"]),
                  node("Reshape", ["r", "s"], ["y"], name="rows_of_4")],
                 [("x", r.f(2, 6))], ["y"], {"s": i64(3, 4)})
    model4, _ = write_case(mixed, work)
    f8b = os.path.join(work, "mixed_b8.npy")
    np.save(f8b, r.f(8, 6))
    out8b = os.path.join(work, "mixed_b8.out.npy")
    p = lamina("run", model4, "--input", f8b, "--output", out8b,
               "--batch", "8")
    expect_error(p, "--batch 8 with a Reshape across samples",
                 needles=("rows_of_4", "batch 2 only"))
    check(not os.path.exists(out8b), "--batch refused: no output written")
    # and --batch values that make no sense
    for v in ("0", "-1", "x"):
        p = lamina("run", model3, "--input", f8, "--batch", v)
        expect_error(p, f"--batch {v}", needles=("--batch",))


def test_cli():
    work = fresh_dir("ops/cli")
    r = Rng("cli")
    p = lamina("run", "--help")
    check(p.returncode == 0 and p.stdout.startswith("usage: lamina run"),
          f"lamina run --help: {p.stdout[:80]!r}")
    for opt in ("--input", "--output", "--threads", "--batch", "--repeat",
                "--profile", "--no-fuse"):
        check(opt in p.stdout, f"lamina run --help mentions {opt}")
    p = lamina("--help")
    check(" run " in p.stdout, "lamina --help lists run")
    # usage errors may print the usage after the one-line reason
    p = lamina("run")
    check(p.returncode != 0 and "lamina run" in p.stderr,
          f"run without a model explains itself: {p.stderr!r}")
    p = lamina("run", "x.onnx", "--bogus")
    check(p.returncode != 0 and "--bogus" in p.stderr,
          f"unknown option named: {p.stderr!r}")
    expect_error(lamina("run", os.path.join(work, "missing.onnx"),
                        "--input", "x.npy"), "model missing",
                 needles=("missing.onnx",))

    case = Case("cli_model",
                [node("Conv", ["x", "w", "b"], ["c"], name="the_conv",
                      pads=[1, 1, 1, 1]),
                 node("Relu", ["c"], ["r"], name="the_relu"),
                 node("GlobalAveragePool", ["r"], ["g"], name="the_pool"),
                 node("Flatten", ["g"], ["f"], name="the_flatten"),
                 node("Gemm", ["f", "fw", "fb"], ["y"], name="the_gemm",
                      transB=1)],
                [("x", r.f(1, 8, 16, 16))], ["y"],
                {"w": r.f(16, 8, 3, 3), "b": r.f(16), "fw": r.f(10, 16),
                 "fb": r.f(10)})
    model, in_args = write_case(case, work)
    ref, ref_args = out_args(case, work, "ref")
    ort(model, *in_args, *ref_args)

    # --repeat: outputs still right, exactly one line on stdout
    got, got_args = out_args(case, work, "rep")
    p = lamina("run", model, *in_args, *got_args, "--repeat", "5")
    lines = p.stdout.strip().splitlines()
    num = r"\d+(\.\d+)?"
    check(p.returncode == 0 and len(lines) == 1 and re.fullmatch(
        rf"latency_ms median={num} p90={num} min={num}", lines[0]),
        f"--repeat 5 prints one latency line: {p.stdout!r} {p.stderr!r}")
    if p.returncode == 0 and lines:
        vals = [float(x) for x in re.findall(r"=(\d+(?:\.\d+)?)", lines[0])]
        check(len(vals) == 3 and vals[2] <= vals[0] <= vals[1],
              f"min <= median <= p90: {lines[0]}")
        compare(np.load(got["y"]), np.load(ref["y"]), "--repeat 5 output")
    # no --repeat: no latency line
    p = lamina("run", model, *in_args)
    check(p.returncode == 0 and "latency_ms" not in p.stdout,
          f"a run without --repeat prints no latency: {p.stdout!r}")
    # --threads 2 --repeat 3 --batch 1 together
    p = lamina("run", model, *in_args, *got_args, "--threads", "2",
               "--repeat", "3", "--batch", "1")
    check(p.returncode == 0, f"--threads 2 --repeat 3 --batch 1: "
          f"{p.stderr.strip()}")
    if p.returncode == 0:
        compare(np.load(got["y"]), np.load(ref["y"]), "--threads 2 output")

    # --profile: a row per executed node with its op, kernel, ms and %
    p = lamina("run", model, *in_args, "--profile")
    text = p.stdout + p.stderr
    print(text)
    check(p.returncode == 0, f"--profile runs: {p.stderr.strip()}")
    for n in ("the_conv", "the_pool", "the_gemm"):
        check(n in text, f"--profile names node {n}")
    for op in ("Conv", "GlobalAveragePool", "Gemm"):
        check(op in text, f"--profile names op {op}")
    check("%" in text or "pct" in text.lower(),
          "--profile shows the share of the total")
    check(re.search(r"gflop", text, re.I) is not None,
          "--profile shows GFLOP/s")
    p = lamina("run", model, *in_args, "--profile", "--repeat", "4")
    check(p.returncode == 0 and len(re.findall(r"latency_ms", p.stdout)) == 1,
          f"--profile --repeat 4 still prints one latency line: "
          f"{p.stderr.strip()}")


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    os.makedirs(TMP, exist_ok=True)
    if what == "list":
        for g in GROUPS:
            print(g, " ".join(c.name for c in cases_of(g)))
        return 0
    if what in GROUPS:
        test_group(what)
    elif what == "errors":
        test_errors()
    elif what == "cli":
        test_cli()
    else:
        raise SystemExit(f"usage: test_ops.py {'|'.join(GROUPS)}|errors|cli"
                         f"|list")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
