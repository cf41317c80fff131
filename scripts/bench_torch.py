"""PyTorch reference for `npm run bench`: the same three nets, one training step each, images/s.

usage: /usr/bin/python3 scripts/bench_torch.py THREADS STEPS Q5_WIDTHS(comma-separated)
Prints one JSON object: {"torch": version, "threads": n, "nets": {name: {"batch": b, "imagesPerSecond": x}}}.
"""
import json
import statistics
import sys
import time

import torch
from torch import nn

threads, steps = int(sys.argv[1]), int(sys.argv[2])
widths = [int(w) for w in sys.argv[3].split(",")]
torch.set_num_threads(threads)
torch.manual_seed(0)


def fc_ae(lam=32):
    dims = [784, 196, 49, lam, 49, 196, 784]
    layers = [nn.Flatten()]
    for a, b in zip(dims, dims[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers, nn.Unflatten(1, (1, 28, 28)))


def conv_ae(lam=32):
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(392, lam), nn.ReLU(), nn.Linear(lam, 392), nn.ReLU(), nn.Unflatten(1, (8, 7, 7)),
        nn.ConvTranspose2d(8, 8, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
        nn.ConvTranspose2d(16, 16, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
        nn.Conv2d(16, 1, 3, padding=1), nn.Sigmoid(),
    )


def cifar_net(w):
    def cbr(cin, cout, pool):
        layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=False)]
        if pool:
            layers.append(nn.MaxPool2d(2))
        return layers + [nn.BatchNorm2d(cout), nn.ReLU()]
    layers = cbr(3, w[0], False)
    for a, b in zip(w, w[1:]):
        layers += cbr(a, b, True) + cbr(b, b, False)
    return nn.Sequential(*layers, nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(w[-1], 10, bias=False))


def bench(model, x, loss_fn, opt):
    times = []
    for i in range(steps + 3):
        t = time.perf_counter()
        opt.zero_grad()
        loss = loss_fn(model(x))
        loss.backward()
        opt.step()
        if i >= 3:
            times.append(time.perf_counter() - t)
    return x.shape[0] / statistics.median(times)


result = {"torch": torch.__version__, "threads": threads, "nets": {}}
x = torch.rand(256, 1, 28, 28)
m = fc_ae()
result["nets"]["q2-fc-ae"] = {"batch": 256, "imagesPerSecond": bench(m, x, lambda y: (y - x).abs().mean(), torch.optim.Adam(m.parameters(), 1e-3))}
x = torch.rand(128, 1, 28, 28)
m = conv_ae()
result["nets"]["q2-conv-ae"] = {"batch": 128, "imagesPerSecond": bench(m, x, lambda y: (y - x).abs().mean(), torch.optim.Adam(m.parameters(), 1e-3))}
x = torch.randn(128, 3, 32, 32)
labels = torch.randint(0, 10, (128,))
m = cifar_net(widths)
ce = nn.CrossEntropyLoss(label_smoothing=0.2)
result["nets"]["q5-cifar"] = {"batch": 128, "imagesPerSecond": bench(m, x, lambda y: ce(y, labels), torch.optim.SGD(m.parameters(), 0.1, momentum=0.9, nesterov=True))}
print(json.dumps(result))
