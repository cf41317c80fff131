"""Recomputes q4-ops in real PyTorch and compares with a2's metrics.json.

usage: /usr/bin/python3 scripts/check-q4-torch.py OUTPUTS/q4-ops
Prints the largest |torch - tfjs| and |torch - mine| per op; exits 1 if any exceeds 1e-6,
measured relative to max(1, |torch value|): float32 carries ~7 digits, so outputs of size 30
can differ from PyTorch's own summation order by a few 1e-6 in absolute terms.
"""
import json
import sys
from pathlib import Path

import torch

run = Path(sys.argv[1])
metrics = json.loads((run / "metrics.json").read_text())
x = torch.load(run / "pixel_input.pt")
w = torch.load(run / "filter.pt").reshape(1, 1, -1)
weight, bias = torch.load(run / "linear_weight.pt"), torch.load(run / "linear_bias.pt")

bn = torch.nn.BatchNorm1d(1, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
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



def scaled_diff(expected, got):
    return ((expected - got).abs() / expected.abs().clamp(min=1.0)).max().item()


worst = 0.0
for op, expected in torch_out.items():
    got = metrics["ops"][op]
    assert list(expected.shape) == got["shape"], f"{op}: shape {list(expected.shape)} vs {got['shape']}"
    e = expected.flatten()
    d_tfjs = scaled_diff(e, torch.tensor(got["tfjs"]))
    d_mine = scaled_diff(e, torch.tensor(got["mine"]))
    d_saved = scaled_diff(e, torch.load(run / f"my_{op}_out.pt").flatten())
    worst = max(worst, d_tfjs, d_mine, d_saved)
    print(f"{op:12s} |torch-tfjs| {d_tfjs:.2e}  |torch-mine| {d_mine:.2e}  |torch-my_{op}_out.pt| {d_saved:.2e}")
b = metrics["ops"]["batchnorm1d"]
for name, expected, got in [
    ("running_mean", bn.running_mean, b["runningMean"]),
    ("running_var", bn.running_var, b["runningVar"]),
    ("eval output", eval_out.flatten(), b["evalOutput"]),
]:
    d = scaled_diff(expected.flatten(), torch.tensor(got))
    worst = max(worst, d)
    print(f"{'bn ' + name:12s} |torch-mine| {d:.2e}")
print(f"worst {worst:.2e}")
sys.exit(0 if worst <= 1e-6 else 1)
