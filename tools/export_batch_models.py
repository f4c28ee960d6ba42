#!/usr/bin/python3
"""export_batch_models.py: export the models of lamina's batch-axis tests.

  /usr/bin/python3 tools/export_batch_models.py OUTDIR [--only NAME,...]
                                                 [--force]

Models whose batch is not simply axis 0 of a static shape (issue 14),
each built after torch.manual_seed(0) in eval mode and exported with
opset 13, input "input" and output "output":

  enc_bf      a 2-layer nn.TransformerEncoder (d_model 32, 4 heads,
              feed-forward 64), batch-first, and a Linear head:
              input [batch, 8, 32], output [batch, 8, 10], batch symbolic
  enc_sf      the same layers sequence-first (torch's default attention
              layout): input [8, batch, 32], output [8, batch, 10], the
              batch symbolic on axis 1
  cnn_dyn     Conv+BatchNorm+ReLU twice, max pooling, then two heads: one
              through x.view(x.size(0), -1) (a Reshape computed from the
              batch), one through nn.Flatten after average pooling;
              input [batch, 3, 16, 16], output [batch, 10]
  literal_b1  a conv and x.view(x.size(0), -1) exported at the fixed batch
              1: the Reshape target holds the batch as the literal 1
              (lamina rewrites it to run at any batch)
  fixed_b2    exported at the fixed batch 2: a conv, then x.view(3, -1),
              which cuts across samples (a literal that is not the
              batch): it runs at batch 2 only; input [2, 3, 4, 4],
              output [3, 5]

BatchNorm statistics come from data (a few training-mode passes over
random batches) before export, so normalisation does not hide wrong
answers.  Each file is checked with onnx.checker and reported as "NAME
size_bytes" on stdout; existing files are kept unless --force.  Run with
Debian's Python (/usr/bin/python3), which has torch and onnx.
"""
import argparse
import os
import sys

import onnx
import torch
from torch import nn


class Encoder(nn.Module):
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
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
            nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16),
            nn.ReLU())
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


def batch_axes(axis):
    return {"input": {axis: "batch"}, "output": {axis: "batch"}}


# name -> (constructor, export input shape, dynamic axes or None)
MODELS = {
    "enc_bf": (lambda: Encoder(True), (1, 8, 32), batch_axes(0)),
    "enc_sf": (lambda: Encoder(False), (8, 1, 32), batch_axes(1)),
    "cnn_dyn": (CnnDyn, (1, 3, 16, 16), batch_axes(0)),
    "literal_b1": (LiteralB1, (1, 3, 8, 8), None),
    "fixed_b2": (FixedB2, (2, 3, 4, 4), None),
}


def calibrate(model, shape):
    """Set BatchNorm running statistics from data: cumulative averages over
    a few training-mode passes of random batches."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if not norms:
        return
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    model.train()
    with torch.no_grad():
        for _ in range(8):
            model(torch.randn(16, *shape[1:]))
    model.eval()


def export(name, path):
    make, shape, dynamic = MODELS[name]
    torch.manual_seed(0)
    model = make()
    calibrate(model, shape)
    model.eval()
    kwargs = {"opset_version": 13, "input_names": ["input"],
              "output_names": ["output"], "do_constant_folding": True}
    if dynamic:
        kwargs["dynamic_axes"] = dynamic
    tmp = path + ".tmp"
    # Not under torch.no_grad(): with grad enabled, torch's eval-mode
    # "fast path" for TransformerEncoder (a fused op ONNX cannot express)
    # stays off, so the encoders export as plain ops.
    torch.onnx.export(model, torch.randn(*shape), tmp, **kwargs)
    onnx.checker.check_model(tmp)
    os.replace(tmp, path)  # only complete, checked files get the final name


def main():
    ap = argparse.ArgumentParser(description="Export the batch-axis test "
                                 "models.")
    ap.add_argument("outdir")
    ap.add_argument("--only", help="comma-separated names (default: all): " +
                    ",".join(MODELS))
    ap.add_argument("--force", action="store_true",
                    help="re-export existing files")
    args = ap.parse_args()
    names = list(MODELS)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in MODELS]
        if unknown:
            ap.error(f"unknown model(s) {', '.join(unknown)}; known: "
                     f"{', '.join(MODELS)}")
    os.makedirs(args.outdir, exist_ok=True)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    for name in names:
        path = os.path.join(args.outdir, name + ".onnx")
        if os.path.exists(path) and not args.force:
            continue  # already exported: quiet, the test build asks often
        print(f"{name}: exporting to {path}", file=sys.stderr)
        export(name, path)
        print(f"{name} {os.path.getsize(path)}", flush=True)


if __name__ == "__main__":
    main()
