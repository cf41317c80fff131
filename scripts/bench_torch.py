"""PyTorch reference for `npm run bench`: the same nets, one training step per request, so that
the caller can alternate its own steps with PyTorch's and both see the same machine (on a shared
host the speed of the cores moves by 2x within seconds).

Each net in every configuration PyTorch's CPU path offers here: NCHW fp32 (the default),
channels_last fp32 (conv nets only), and channels_last + bf16 autocast (fp32 weights, bf16
products), so a2 is compared with PyTorch's strongest setting, not its default.

usage: /usr/bin/python3 scripts/bench_torch.py THREADS Q5_WIDTHS RECIPE_JSON
(Q5_WIDTHS comma-separated, the previous q5 net's; RECIPE_JSON the current recipe's widths, batch,
labelSmoothing, momentum, logitScale and bnScale, as experiments/cifar.ts has them.) Prints
{"torch", "threads", "nets": {net: [{"config", "precision"}]}} once, then for each stdin line
{"net", "config"} one line {"net", "config", "precision", "batch", "seconds"} or {"net", "config",
"error"}; a request {"probe": true} answers {"probeGflops", "probeCopyGBs"}: the bf16 matrix
product's rate for 0.15 s (it runs on AMX here), the cores' compute speed at that moment, to tell
the host's fast and slow phases apart, and the memory bandwidth of a 64 MiB copy (bytes read and
written) for 0.1 s. The first request for a net and configuration builds it and runs three warm-up
steps first.
"""
import json
import sys
import time

import torch
from torch import nn

USAGE = "usage: bench_torch.py THREADS Q5_WIDTHS RECIPE_JSON (e.g. 2 32,64,128,256 '{\"widths\": [24,64,128,128], ...}')"
if len(sys.argv) != 4:
    sys.exit(f"bench_torch.py: expected 3 arguments, found {len(sys.argv) - 1}; {USAGE}")
try:
    threads = int(sys.argv[1])
    widths = [int(w) for w in sys.argv[2].split(",")]
    recipe = json.loads(sys.argv[3])
    for key in ("widths", "batch", "labelSmoothing", "momentum", "logitScale", "bnScale"):
        recipe[key]
except (ValueError, KeyError, TypeError) as e:
    sys.exit(f"bench_torch.py: bad argument ({type(e).__name__}: {e}); {USAGE}")
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


class Scale(nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


def recipe_net(r):
    """The current q5 recipe's net as experiments/cifar.ts builds it: a 2x2 whitening stem of 24
    channels whose kernel stays fixed (its bias learns), conv-pool-BN-ReLU and conv-BN-ReLU blocks,
    BatchNorm's scale fixed unless bnScale, and scaled logits."""
    def cbr(cin, cout, pool):
        layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=False)]
        if pool:
            layers.append(nn.MaxPool2d(2))
        norm = nn.BatchNorm2d(cout)
        norm.weight.requires_grad_(r["bnScale"])
        return layers + [norm, nn.ReLU()]
    stem = nn.Conv2d(3, 24, 2)
    stem.weight.requires_grad_(False)
    layers, cin = [stem, nn.ReLU()], 24
    for width in r["widths"][1:]:
        layers += cbr(cin, width, True) + cbr(width, width, False)
        cin = width
    head = [nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(cin, 10, bias=False), Scale(r["logitScale"])]
    return nn.Sequential(*layers, *head)


def stepper(model, x, loss_fn, opt, autocast):
    """One training step per call; returns its seconds."""
    def step():
        t = time.perf_counter()
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = loss_fn(model(x))
        loss.backward()
        opt.step()
        return time.perf_counter() - t
    return step


CONFIGS = [  # name, precision, channels_last, autocast
    ("NCHW fp32", "fp32", False, False),
    ("channels_last fp32", "fp32", True, False),
    ("channels_last bf16 autocast", "bf16", True, True),
]
NETS = {}


def add(net, make, x, loss_of, make_opt, convolutional=True):
    """Registers a net in each configuration that applies to it: (config, precision, build)."""
    configs = []
    for config, precision, channels_last, autocast in CONFIGS:
        if channels_last and not convolutional:
            if not autocast:
                continue  # no 4-D activations: the layout changes nothing
            config, channels_last = "bf16 autocast", False

        def build(channels_last=channels_last, autocast=autocast):
            torch.manual_seed(0)
            model, xx = make(), x
            if channels_last:
                model, xx = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
            return stepper(model, xx, lambda y: loss_of(y.float(), xx), make_opt(model), autocast)
        configs.append((config, precision, build))
    NETS[net] = (x.shape[0], configs)


adam = lambda m: torch.optim.Adam(m.parameters(), 1e-3)
l1 = lambda y, x: (y - x.float()).abs().mean()
add("q2-fc-ae", fc_ae, torch.rand(256, 1, 28, 28), l1, adam, convolutional=False)
add("q2-conv-ae", conv_ae, torch.rand(128, 1, 28, 28), l1, adam)
labels = torch.randint(0, 10, (128,))
ce = nn.CrossEntropyLoss(label_smoothing=0.2)
add("q5-cifar", lambda: cifar_net(widths), torch.randn(128, 3, 32, 32), lambda y, _x: ce(y, labels),
    lambda m: torch.optim.SGD(m.parameters(), 0.1, momentum=0.9, nesterov=True))
recipe_labels = torch.randint(0, 10, (recipe["batch"],))
recipe_ce = nn.CrossEntropyLoss(label_smoothing=recipe["labelSmoothing"])
add("q5-recipe", lambda: recipe_net(recipe), torch.randn(recipe["batch"], 3, 32, 32), lambda y, _x: recipe_ce(y, recipe_labels),
    lambda m: torch.optim.SGD([p for p in m.parameters() if p.requires_grad], 0.1, momentum=recipe["momentum"], nesterov=True))


def warmed(build):
    step = build()
    for _ in range(3):
        step()
    return step


def calls_per_second(call, seconds):
    """`call` once untimed, then as often as fits in `seconds`: calls per second."""
    call()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        call()
        count += 1
    return count / (time.perf_counter() - start)


def probe_gflops(seconds=0.15, n=1024):
    """bf16 n x n matrix products for `seconds`: GFLOP/s, compute-bound (the three 2 MiB operands stay in the L3 cache)."""
    a = torch.ones(n, n, dtype=torch.bfloat16)
    return 2 * n**3 * calls_per_second(lambda: torch.mm(a, a), seconds) / 1e9


def probe_copy_gbs(seconds=0.1, mib=64):
    """Copies of a 64 MiB tensor (far larger than the caches) for `seconds`: GB/s read + written."""
    src = torch.ones(mib * 2**20 // 4)
    dst = torch.empty_like(src)
    return 2 * mib * 2**20 * calls_per_second(lambda: dst.copy_(src), seconds) / 1e9


def error_of(e):
    return str(e).split("\n")[0][:200]


def time_step(request, reply):
    """One step of the requested net and configuration: its precision, batch and seconds into `reply`."""
    net, config = request["net"], request["config"]
    reply.update(net=net, config=config)
    batch, configs = NETS[net]
    precision, build = next((p, b) for c, p, b in configs if c == config)
    reply.update(precision=precision, batch=batch)
    if (net, config) not in built:
        try:
            built[(net, config)] = warmed(build)
        except Exception as e:  # a configuration this build of PyTorch cannot run
            built[(net, config)] = e
    step = built[(net, config)]
    if isinstance(step, Exception):
        raise step
    reply["seconds"] = step()


nets = {net: [{"config": c, "precision": p} for c, p, _ in configs] for net, (_, configs) in NETS.items()}
print(json.dumps({"torch": torch.__version__, "threads": threads, "nets": nets}), flush=True)
built = {}  # (net, config) -> a warmed-up step, or the error its build raised
for line in sys.stdin:
    reply = {}
    try:
        request = json.loads(line)
        if request.get("probe"):
            reply.update(probeGflops=probe_gflops(), probeCopyGBs=probe_copy_gbs())
        else:
            time_step(request, reply)
    except (KeyError, StopIteration):
        reply["error"] = "no such net and configuration here"
    except Exception as e:  # any failure is an answer, never the end of the server
        reply["error"] = error_of(e)
    print(json.dumps(reply), flush=True)
