#!/usr/bin/python3
"""export_digits.py: train lamina's small real-weights test model.

Trains a small CNN on scikit-learn's bundled 8x8 digits (no download) with
fixed seeds, and exports it to ONNX for lamina's end-to-end tests:

  DIR/digits.onnx          input "image" 1x1x8x8 float32 in [0,1] (pixel/16),
                           output "logits" 1x10, opset 13
  DIR/digits_samples.npy   16 held-out images, float32 (16, 1, 8, 8)
  DIR/digits_labels.npy    their labels, int64 (16,)

Run with Debian's Python: /usr/bin/python3 tools/export_digits.py [--out DIR]
Prints the held-out test accuracy (training stops once it is >= 0.95).
"""
import argparse
import os
import random
import sys

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

SEED = 0
MIN_EPOCHS = 10
MAX_EPOCHS = 100
TARGET_ACCURACY = 0.95


class DigitsNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.MaxPool2d(2),                                 # 8x8 -> 4x4
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, 64), nn.ReLU(),
            nn.Linear(64, 10),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    repo_models = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models")
    ap.add_argument("--out", default=os.path.normpath(repo_models),
                    help="output directory (default: the repository's models/)")
    args = ap.parse_args()

    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # same float sums on every machine

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None, :, :]  # N,1,8,8
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=0.2, random_state=SEED, stratify=labels)
    x_train, y_train = torch.from_numpy(x_train), torch.from_numpy(y_train)
    x_test_t, y_test_t = torch.from_numpy(x_test), torch.from_numpy(y_test)

    model = DigitsNet()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(SEED)
    acc = 0.0
    for epoch in range(1, MAX_EPOCHS + 1):
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        for i in range(0, len(order), 64):
            idx = order[i:i + 64]
            opt.zero_grad()
            loss_fn(model(x_train[idx]), y_train[idx]).backward()
            opt.step()
        acc = accuracy(model, x_test_t, y_test_t)
        print(f"epoch {epoch} test_accuracy {acc:.4f}", file=sys.stderr)
        if epoch >= MIN_EPOCHS and acc >= TARGET_ACCURACY:
            break
    if acc < TARGET_ACCURACY:
        sys.exit(f"export_digits.py: test accuracy {acc:.4f} < {TARGET_ACCURACY}")
    print(f"test_accuracy {acc:.4f}")

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "digits.onnx")
    model.eval()
    torch.onnx.export(model, torch.zeros(1, 1, 8, 8), path, opset_version=13,
                      input_names=["image"], output_names=["logits"],
                      do_constant_folding=True)
    np.save(os.path.join(args.out, "digits_samples.npy"), x_test[:16].copy())
    np.save(os.path.join(args.out, "digits_labels.npy"), y_test[:16].copy())

    import onnx  # imported late: only needed for the check
    onnx.checker.check_model(onnx.load(path))
    print(f"{path} {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
