#!/usr/bin/python3
"""export_models.py: export lamina's test models to ONNX with random weights.

  /usr/bin/python3 tools/export_models.py OUTDIR [--only NAME,NAME] [--force]
                                           [--dynamic-batch]

Every model is built after torch.manual_seed(0), in eval mode, and exported
with opset 13, batch 1, input "input", output "output" (multi_output has
"logits" and "features") and constant folding on (except shape_reshape).
Torchvision classifiers (random init, 1x3x224x224 unless noted): resnet18,
resnet50, mobilenet_v2, squeezenet1_1, vgg11, mobilenet_v3_large,
efficientnet_b1 (1x3x240x240, its native size), mnasnet0_5, regnet_x_400mf,
convnext_small, wide_resnet50_2, densenet169, inception_v3 (1x3x299x299, no
aux logits), shufflenet_v2_x0_5 (its channel shuffle keeps x.size(0) in the
graph, as shape_reshape does, so it runs at any batch).  Small synthetic
graphs (1x3x32x32 unless noted) that each exercise one graph shape the
slicer must handle: branches, concat, multi_output, residual,
shape_reshape, dynamic_batch, effnet_block, transformer (1x16x64).

Models whose batch is not simply axis 0 of a static shape (issue 14; the
batch models of tests/integration/test_batch.py, not in the contract
list):
  enc_bf      a 2-layer nn.TransformerEncoder (d_model 32, 4 heads,
              feed-forward 64), batch-first, and a Linear head: input
              [batch, 8, 32], output [batch, 8, 10], batch symbolic
  enc_sf      the same layers sequence-first (torch's default attention
              layout): input [8, batch, 32], output [8, batch, 10], the
              batch symbolic on axis 1 (also with --dynamic-batch)
  cnn_dyn     Conv+BatchNorm+ReLU twice, max pooling, then two heads: one
              through x.view(x.size(0), -1), one through nn.Flatten after
              average pooling; input [batch, 3, 16, 16], output [batch, 10]
  literal_b1  a conv and x.view(x.size(0), -1) exported at the fixed batch
              1: the Reshape target holds the batch as the literal 1
  fixed_b2    exported at the fixed batch 2: a conv, then x.view(3, -1),
              which cuts across samples: it runs at batch 2 only; input
              [2, 3, 4, 4], output [3, 5]

Random initialisation alone makes useless test models: BatchNorm's running
statistics start at mean 0, variance 1, so every block shrinks (or grows)
its activations: MobileNetV2's logits came out near 2e-9 (and ResNet-50's
at 64), where a tolerance relative to max(1, |output|) passes any answer.  So before export
(make_testable): normalisation layers get random affine parameters (gamma
in [0.5, 1.5], beta in [-0.25, 0.25], so a runtime that drops them is
caught), so do the biases that torchvision initialises to zero (uniform in
[-0.1, 0.1]: VGG's, ConvNeXt's, the classifiers' of the mobile nets; as
zeros torch also exported them as one tensor shared through Identity
nodes), ConvNeXt's layer scales (1e-6 at init, which would hide its whole
residual branch) are drawn from [0.2, 0.6], and BatchNorm statistics are
set from CALIB_BATCHES batches of uniform [-1, 1] inputs (the tests'
distribution) with only the BatchNorm layers in train mode, momentum None
(a cumulative average), under torch.no_grad().  Outputs then are O(1).

With --dynamic-batch, NAME_dyn.onnx is written instead of NAME.onnx: the
same model and weights with dim 0 of every input and output symbolic
("batch"), for running onnxruntime at other batch sizes (benchmarks).

Each file is checked with onnx.checker and reported as "NAME size_bytes" on
stdout; progress goes to stderr.  Existing files are kept unless --force.
Run with Debian's Python (/usr/bin/python3), which has torch and onnx.
"""
import argparse
import contextlib
import hashlib
import os
import sys

import onnx
import torch
import torchvision
from torch import nn

SMALL = (1, 3, 32, 32)


def conv_bn_relu(cin, cout, k=3, stride=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False),
        nn.BatchNorm2d(cout), nn.ReLU())


class Branches(nn.Module):
    """Two conv branches (3x3, 5x5) joined by Add+ReLU, concatenated with a
    third (1x1) branch."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 16, 3, padding=1)
        self.b = nn.Conv2d(3, 16, 5, padding=2)
        self.c = nn.Conv2d(3, 8, 1)

    def forward(self, x):
        return torch.cat([torch.relu(self.a(x) + self.b(x)), self.c(x)], dim=1)


class Concat(nn.Module):
    """Inception-like block: 1x1 | 1x1->3x3 | maxpool->1x1, concatenated on
    channels, then another conv."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU())
        self.b1 = nn.Sequential(nn.Conv2d(16, 8, 1), nn.ReLU())
        self.b2 = nn.Sequential(nn.Conv2d(16, 8, 1), nn.ReLU(),
                                nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.b3 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1),
                                nn.Conv2d(16, 8, 1), nn.ReLU())
        self.head = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.ReLU())

    def forward(self, x):
        x = self.stem(x)
        return self.head(torch.cat([self.b1(x), self.b2(x), self.b3(x)], dim=1))


class MultiOutput(nn.Module):
    """Conv trunk with two heads: "features" (a 1x1 conv taken mid-trunk,
    which the classifier also consumes) and "logits" (Gemm)."""

    def __init__(self):
        super().__init__()
        self.trunk1 = nn.Sequential(conv_bn_relu(3, 16, stride=2), conv_bn_relu(16, 32, stride=2))
        self.feat = nn.Conv2d(32, 8, 1)
        self.trunk2 = nn.Sequential(conv_bn_relu(32, 64, stride=2), conv_bn_relu(64, 64))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64 + 8, 10)

    def forward(self, x):
        mid = self.trunk1(x)
        features = self.feat(mid)
        deep = self.trunk2(mid)
        pooled = torch.cat([self.pool(deep), self.pool(features)], dim=1)
        return self.fc(torch.flatten(pooled, 1)), features


class BasicBlock(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(ch, ch, 3, padding=1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(),
            nn.Conv2d(ch, ch, 3, padding=1, bias=False), nn.BatchNorm2d(ch))

    def forward(self, x):
        return torch.relu(self.body(x) + x)


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv_bn_relu(3, 16)
        self.blocks = nn.Sequential(BasicBlock(16), BasicBlock(16), BasicBlock(16))

    def forward(self, x):
        return self.blocks(self.stem(x))


class ShapeReshape(nn.Module):
    """x.view(x.size(0), -1) after a conv.  See fix_batch_1 for how the graph
    keeps Shape/Gather/Unsqueeze/Concat feeding the Reshape."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8 * 16 * 16, 10)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        return self.fc(x.view(x.size(0), -1))


class SmallConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))

    def forward(self, x):
        return self.body(x)


class SiLU(nn.Module):
    """x * sigmoid(x), written out so the graph has Sigmoid + Mul."""

    def forward(self, x):
        return x * torch.sigmoid(x)


class EffnetBlock(nn.Module):
    """Stem conv, then an MBConv block: 1x1 expand, depthwise 3x3, squeeze-
    excitation (GlobalAveragePool, 1x1 convs, Sigmoid, Mul), 1x1 project,
    identity skip."""

    def __init__(self, ch=16, expand=4, squeeze=4):
        super().__init__()
        mid = ch * expand
        self.stem = nn.Sequential(nn.Conv2d(3, ch, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(ch), SiLU())
        self.expand = nn.Sequential(nn.Conv2d(ch, mid, 1, bias=False), nn.BatchNorm2d(mid), SiLU())
        self.depthwise = nn.Sequential(nn.Conv2d(mid, mid, 3, padding=1, groups=mid, bias=False),
                                       nn.BatchNorm2d(mid), SiLU())
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(mid, squeeze, 1), SiLU(),
                                nn.Conv2d(squeeze, mid, 1), nn.Sigmoid())
        self.project = nn.Sequential(nn.Conv2d(mid, ch, 1, bias=False), nn.BatchNorm2d(ch))

    def forward(self, x):
        x = self.stem(x)
        y = self.depthwise(self.expand(x))
        y = y * self.se(y)
        return self.project(y) + x


class Transformer(nn.Module):
    def __init__(self):
        super().__init__()
        layer = nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=128,
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(self.encoder(x))


class Encoder(nn.Module):
    """A small transformer encoder with a head; batch_first False is
    torch's default, sequence-first layout ([seq, batch, d])."""

    def __init__(self, batch_first):
        super().__init__()
        layer = nn.TransformerEncoderLayer(d_model=32, nhead=4,
                                           dim_feedforward=64,
                                           batch_first=batch_first)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        return self.head(self.encoder(x))


class CnnDyn(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(conv_bn_relu(3, 8), nn.MaxPool2d(2),
                                  conv_bn_relu(8, 16))
        self.fc = nn.Sequential(nn.Linear(16 * 8 * 8, 32), nn.ReLU(),
                                nn.Linear(32, 10))
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(16, 10))

    def forward(self, x):
        x = self.body(x)
        return self.fc(x.view(x.size(0), -1)) + self.pool(x)


class LiteralB1(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 6)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        return self.fc(x.view(x.size(0), -1))


class FixedB2(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.fc = nn.Linear(64, 5)

    def forward(self, x):
        # [2, 6, 4, 4] -> [3, 64]: rows that mix the two samples
        return self.fc(torch.relu(self.conv(x)).view(3, -1))


def batch_on(axis):
    return {"dynamic_axes": {"input": {axis: "batch"},
                             "output": {axis: "batch"}}}


def fix_batch_1(model):
    """Set dim 0 of the graph's inputs and outputs back to 1.

    torch 1.13 turns x.size(0) into a Constant whenever the input shape is
    static, even with do_constant_folding=False.  So shape_reshape is
    exported with a dynamic batch (which keeps Shape -> Gather -> Unsqueeze
    -> Concat -> Reshape in the graph) and then pinned back to batch 1."""
    for value in list(model.graph.input) + list(model.graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_value = 1
    del model.graph.value_info[:]  # may still name the symbolic batch


def torchvision_model(name, **kwargs):
    return lambda: getattr(torchvision.models, name)(weights=None, **kwargs)


CALIB_BATCHES = 4  # batches of CALIB_SIZE random inputs for BatchNorm
CALIB_SIZE = 4
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm,
         nn.GroupNorm)
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def make_testable(model, shape):
    """Give a randomly initialised model weights whose outputs are O(1)
    and depend on every layer (see the docstring at the top).  The model
    is left in eval mode."""
    model.eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, NORMS) and getattr(m, "weight", None) is not None:
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.25, 0.25)
            elif isinstance(m, (nn.Conv2d, nn.Linear)) and \
                    m.bias is not None and not m.bias.any():
                m.bias.uniform_(-0.1, 0.1)
            if isinstance(m, torchvision.models.convnext.CNBlock):
                m.layer_scale.uniform_(0.2, 0.6)
        bns = [m for m in model.modules() if isinstance(m, BATCH_NORMS)]
        if not bns:
            return model
        saved = [m.momentum for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches
            m.train()          # only these: dropout and the like stay off
        for _ in range(CALIB_BATCHES):
            model(torch.rand(CALIB_SIZE, *shape[1:]) * 2 - 1)
        for m, mom in zip(bns, saved):
            m.momentum = mom
        model.eval()
    return model


DYNAMIC_BATCH = {"input": {0: "batch"}, "output": {0: "batch"}}

# name -> (constructor, input shape, extra torch.onnx.export arguments,
#          function applied to the exported ModelProto or None)
MODELS = {
    "resnet18": (torchvision_model("resnet18"), (1, 3, 224, 224), {}, None),
    "resnet50": (torchvision_model("resnet50"), (1, 3, 224, 224), {}, None),
    "mobilenet_v2": (torchvision_model("mobilenet_v2"), (1, 3, 224, 224), {}, None),
    "squeezenet1_1": (torchvision_model("squeezenet1_1"), (1, 3, 224, 224), {}, None),
    "vgg11": (torchvision_model("vgg11"), (1, 3, 224, 224), {}, None),
    "mobilenet_v3_large": (torchvision_model("mobilenet_v3_large"),
                           (1, 3, 224, 224), {}, None),
    "efficientnet_b1": (torchvision_model("efficientnet_b1"), (1, 3, 240, 240),
                        {}, None),
    "mnasnet0_5": (torchvision_model("mnasnet0_5"), (1, 3, 224, 224), {}, None),
    "regnet_x_400mf": (torchvision_model("regnet_x_400mf"), (1, 3, 224, 224),
                       {}, None),
    "convnext_small": (torchvision_model("convnext_small"), (1, 3, 224, 224),
                       {}, None),
    "wide_resnet50_2": (torchvision_model("wide_resnet50_2"), (1, 3, 224, 224),
                        {}, None),
    "densenet169": (torchvision_model("densenet169"), (1, 3, 224, 224), {},
                    None),
    "inception_v3": (torchvision_model("inception_v3", aux_logits=False,
                                       init_weights=True),
                     (1, 3, 299, 299), {}, None),
    "shufflenet_v2_x0_5": (torchvision_model("shufflenet_v2_x0_5"),
                           (1, 3, 224, 224), {"dynamic_axes": DYNAMIC_BATCH},
                           fix_batch_1),
    "branches": (Branches, SMALL, {}, None),
    "concat": (Concat, SMALL, {}, None),
    "multi_output": (MultiOutput, SMALL, {"output_names": ["logits", "features"]}, None),
    "residual": (Residual, SMALL, {}, None),
    "shape_reshape": (ShapeReshape, SMALL,
                      {"do_constant_folding": False, "dynamic_axes": DYNAMIC_BATCH},
                      fix_batch_1),
    "dynamic_batch": (SmallConvNet, SMALL, {"dynamic_axes": DYNAMIC_BATCH}, None),
    "effnet_block": (EffnetBlock, SMALL, {}, None),
    "transformer": (Transformer, (1, 16, 64), {}, None),
    # the batch models (test_batch.py)
    "enc_bf": (lambda: Encoder(True), (1, 8, 32), batch_on(0), None),
    "enc_sf": (lambda: Encoder(False), (8, 1, 32), batch_on(1), None),
    "cnn_dyn": (CnnDyn, (1, 3, 16, 16), batch_on(0), None),
    "literal_b1": (LiteralB1, (1, 3, 8, 8), {}, None),
    "fixed_b2": (FixedB2, (2, 3, 4, 4), {}, None),
}


def export(name, path, dynamic_batch=False):
    make, shape, extra, post = MODELS[name]
    torch.manual_seed(0)
    model = make_testable(make(), shape)
    kwargs = {"opset_version": 13, "input_names": ["input"], "output_names": ["output"],
              "do_constant_folding": True}
    kwargs.update(extra)
    if dynamic_batch:
        if "dynamic_axes" not in extra:  # enc_sf's batch is axis 1
            kwargs["dynamic_axes"] = {
                n: {0: "batch"}
                for n in kwargs["input_names"] + kwargs["output_names"]}
        post = None  # fix_batch_1 would pin the batch again
    tmp = path + ".tmp"
    # Not under torch.no_grad(): with grad enabled, torch's eval-mode
    # "fast path" for TransformerEncoder (a fused op ONNX cannot express)
    # stays off, so the transformer exports as plain ops.
    torch.onnx.export(model, torch.randn(*shape), tmp, **kwargs)
    if post:
        proto = onnx.load(tmp)
        post(proto)
        onnx.save(proto, tmp)
    onnx.checker.check_model(tmp)
    os.replace(tmp, path)  # only complete, checked files get the final name


def main():
    ap = argparse.ArgumentParser(description="Export lamina's ONNX test models.")
    ap.add_argument("outdir")
    ap.add_argument("--only", help="comma-separated names (default: all): " + ",".join(MODELS))
    ap.add_argument("--force", action="store_true", help="re-export existing files")
    ap.add_argument("--dynamic-batch", action="store_true",
                    help="write NAME_dyn.onnx with a symbolic batch dim instead")
    args = ap.parse_args()

    names = list(MODELS)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in MODELS]
        if unknown:
            ap.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    os.makedirs(args.outdir, exist_ok=True)
    torch.set_num_threads(min(2, os.cpu_count() or 1))

    # models exported by another version of this script are stale: a fixed
    # recipe (random biases, BatchNorm statistics) must reach old builds too
    with open(__file__, "rb") as f:
        recipe = hashlib.sha256(f.read()).hexdigest()
    stamp = os.path.join(args.outdir, ".recipe" + ("_dyn" if args.dynamic_batch else ""))
    try:
        with open(stamp) as f:
            stale = f.read().strip() != recipe
    except FileNotFoundError:
        stale = True
    suffix = "_dyn" if args.dynamic_batch else ""
    if stale and not args.only:
        # a partial run (--only) cannot vouch for the other models
        with contextlib.suppress(FileNotFoundError):
            os.unlink(stamp)
    for name in names:
        path = os.path.join(args.outdir, name + suffix + ".onnx")
        if os.path.exists(path) and not args.force and not stale:
            continue  # already exported: quiet, the test build asks often
        else:
            print(f"{name}{suffix}: exporting to {path}", file=sys.stderr)
            export(name, path, args.dynamic_batch)
        print(f"{name}{suffix} {os.path.getsize(path)}", flush=True)
    if stale and not args.only:
        with open(stamp + ".tmp", "w") as f:
            f.write(recipe + "\n")
        os.replace(stamp + ".tmp", stamp)


if __name__ == "__main__":
    main()
