"""Recomputes q4-ops in real PyTorch and compares with a2's metrics.json and saved .pt files.

usage: /usr/bin/python3 scripts/check-q4-torch.py OUTPUTS/q4-ops [TOLERANCE]
Works for any (N, C, L) input: BatchNorm1d(C), conv1d with the weight a2 used (metrics'
conv1d.weightShape: the file's (C_out, C_in, k), or (1, 1, k) for the assignment's (k, 1, 1)
one-kernel filter), Linear over the last axis. Prints the largest difference per op for tfjs,
by hand and both saved .pt files; exits 1 if any exceeds TOLERANCE (default 1e-5), measured
relative to max(1, |torch value|): float32 carries ~7 digits, so outputs of size 30 can differ
from PyTorch's own summation order by a few 1e-6 in absolute terms.
"""
import json
import sys
from pathlib import Path

import torch

run = Path(sys.argv[1])
tolerance = float(sys.argv[2]) if len(sys.argv) > 2 else 1e-5
metrics = json.loads((run / "metrics.json").read_text())
x = torch.load(run / "pixel_input.pt")
n, c, length = x.shape
conv = metrics["ops"]["conv1d"]
filt = torch.load(run / "filter.pt")
w = filt.reshape(conv.get("weightShape", [1, 1, filt.numel()]))
weight, bias = torch.load(run / "linear_weight.pt"), torch.load(run / "linear_bias.pt")

bn = torch.nn.BatchNorm1d(c, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=True)
with torch.no_grad():
    linear.weight.copy_(weight)
    linear.bias.copy_(bias)
    torch_out = {
        "maxpool1d": torch.nn.MaxPool1d(kernel_size=2, stride=1, padding=0, dilation=1, return_indices=False, ceil_mode=False)(x),
        "avgpool1d": torch.nn.AvgPool1d(kernel_size=2, stride=1, padding=0, ceil_mode=False, count_include_pad=True)(x),
        "conv1d": torch.nn.functional.conv1d(x, w, bias=None, stride=1, padding=0, dilation=1, groups=1),
        "sigmoid": torch.nn.Sigmoid()(x),
        "batchnorm1d": bn.train()(x),
        "linear": linear(x),
    }
    eval_out = bn.eval()(x)
    # PyTorch's own reading of a (k, 1, 1) filter: k filters of width 1.
    other = torch.nn.functional.conv1d(x, filt) if "threeFiltersReading" in conv else None


def scaled_diff(expected, got):
    return ((expected - got).abs() / expected.abs().clamp(min=1.0)).max().item()


worst = 0.0
for op, expected in torch_out.items():
    got = metrics["ops"][op]
    assert list(expected.shape) == got["shape"], f"{op}: shape {list(expected.shape)} vs {got['shape']}"
    e = expected.flatten()
    diffs = {
        "tfjs": scaled_diff(e, torch.tensor(got["tfjs"])),
        "mine": scaled_diff(e, torch.tensor(got["mine"])),
        f"tfjs_{op}_out.pt": scaled_diff(expected, torch.load(run / f"tfjs_{op}_out.pt")),
        f"my_{op}_out.pt": scaled_diff(expected, torch.load(run / f"my_{op}_out.pt")),
    }
    worst = max(worst, *diffs.values())
    print(f"{op:12s} " + "  ".join(f"|torch-{k}| {d:.2e}" for k, d in diffs.items()))
b = metrics["ops"]["batchnorm1d"]
extra = [
    ("bn running_mean", bn.running_mean, b["runningMean"], b["tfjsRunningMean"]),
    ("bn running_var", bn.running_var, b["runningVar"], b["tfjsRunningVar"]),
    ("bn eval output", eval_out.flatten(), b["evalOutput"], b["tfjsEvalOutput"]),
]
if other is not None:
    assert list(other.shape) == conv["threeFiltersReading"]["shape"], f"threeFiltersReading: shape {list(other.shape)}"
    extra.append(("conv1d k×(1,1,1)", other.flatten(), conv["threeFiltersReading"]["mine"], None))
for name, expected, mine, tfjs in extra:
    d_mine = scaled_diff(expected.flatten(), torch.tensor(mine))
    d_tfjs = scaled_diff(expected.flatten(), torch.tensor(tfjs)) if tfjs is not None else 0.0
    worst = max(worst, d_mine, d_tfjs)
    print(f"{name:16s} |torch-mine| {d_mine:.2e}" + (f"  |torch-tfjs| {d_tfjs:.2e}" if tfjs is not None else ""))
print(f"input {tuple(x.shape)}, worst {worst:.2e} (tolerance {tolerance:.0e})")
sys.exit(0 if worst <= tolerance else 1)
