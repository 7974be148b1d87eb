"""What fixing the classifier to a simplex ETF with d = K saves (Zhu et al., NeurIPS 2021's claim).

For each backbone and K, four configurations, all in one run:
  (a) learnable linear head at the backbone width (the baseline)
  (b) d = K "narrow" last block + learnable linear head
  (c) d = K "narrow" last block + fixed ETF head (buffer, not trained)
  (d) backbone width + fixed ETF head
Columns: total and trainable parameters; bytes of parameters + gradients + SGD momentum; peak memory
of one full training step (forward, backward, SGD step) from torch.profiler(profile_memory=True) on
CPU (running sum of allocations in event order) or torch.cuda.max_memory_allocated on CUDA; forward
FLOPs (torch.utils.flop_counter); step time. Savings are relative to (a): (b)-(a) is what narrowing
saves, (d)-(a) what fixing the head saves, (c)-(a) both.

Then a head-only benchmark at d = 2048 for K in {1k, 10k, 100k}: learnable linear vs fixed ETF (a fixed
ETF needs d >= K-1: nclab raises a ConfigError otherwise, it never truncates).

Usage: python bench/fixed_etf.py [--quick]   (CPU sizes: resnet18 CIFAR batch 32; resnet50 64x64 batch 8)
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nclab.errors import ConfigError
from nclab.heads import create_head
from nclab.models import create_model


class Net(nn.Module):
    def __init__(self, backbone, head):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x):
        return self.head(self.backbone(x))


def build(name: str, k: int, stem: str, mode: str) -> Net:
    narrow = mode in ("b", "c")
    backbone = create_model(
        name, stem=stem, feature_dim=k if narrow else None, feature_mode="narrow" if narrow else "project"
    )
    head = create_head("fixed_etf" if mode in ("c", "d") else "linear", backbone.num_features, k)
    return Net(backbone, head)


def peak_step_memory(net: Net, x, y, device) -> float:
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1, momentum=0.9)

    def step():
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # momentum buffers exist from now on, as in training
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = sorted(prof.events(), key=lambda e: e.time_range.start)
    cur = peak = 0
    for e in events:
        cur += e.self_cpu_memory_usage
        peak = max(peak, cur)
    return peak / 2**20


def row(name, k, stem, mode, bs, size, device):
    torch.manual_seed(0)
    net = build(name, k, stem, mode).to(device)
    x = torch.randn(bs, 3, size, size, device=device)
    y = torch.randint(0, k, (bs,), device=device)
    total = sum(p.numel() for p in net.parameters()) + sum(
        b.numel() for n, b in net.named_buffers() if n.endswith("head.weight")
    )
    train = sum(p.numel() for p in net.parameters() if p.requires_grad)
    state_mb = (total + 2 * train) * 4 / 2**20
    with FlopCounterMode(display=False) as fc:
        net(x)
    flops = fc.get_total_flops() / 1e9
    peak = peak_step_memory(net, x, y, device)
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    t0 = time.perf_counter()
    loss = nn.functional.cross_entropy(net(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    t = time.perf_counter() - t0
    return total, train, state_mb, peak, flops, t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="only resnet18 K=10 and the smallest head-only K")
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}")
    cases = [("resnet18", 10, "cifar", 32, 32)]
    if not args.quick:
        cases += [("resnet18", 100, "cifar", 32, 32), ("resnet50", 1000, "imagenet", 8, 64)]
    labels = {
        "a": "(a) width + linear",
        "b": "(b) d=K narrow + linear",
        "c": "(c) d=K narrow + ETF",
        "d": "(d) width + ETF",
    }
    for name, k, stem, bs, size in cases:
        print(f"\n{name} ({stem} stem), K={k}, batch {bs} at {size}x{size}")
        print(
            f"{'config':26} {'params':>10} {'trainable':>10} {'p+g+m MB':>9} {'peak MB':>8} {'GFLOPs':>7} {'step s':>7} | saving vs (a): state, peak"
        )
        base = None
        for mode in "abcd":
            total, train, state, peak, flops, t = row(name, k, stem, mode, bs, size, device)
            base = base or (state, peak)
            print(
                f"{labels[mode]:26} {total:>10,} {train:>10,} {state:>9.1f} {peak:>8.1f} {flops:>7.2f} {t:>7.3f} | "
                f"{100 * (1 - state / base[0]):5.1f}% {100 * (1 - peak / base[1]):5.1f}%"
            )
    print("\nhead only, d = 2048, batch 256: learnable linear vs fixed ETF")
    print(f"{'K':>7} {'head':>8} {'w+g+m MB':>9} {'logits MB':>10} {'step ms':>8}")
    d, bs = 2048, 256
    for k in [1000] if args.quick else [1000, 10_000, 100_000]:
        for kind in ("linear", "fixed_etf"):
            try:
                head = create_head(kind, d, k)
            except ConfigError as err:
                print(f"{k:>7} {kind:>8}  not built: {err}")
                continue
            h = torch.randn(bs, d, requires_grad=True)
            y = torch.randint(0, k, (bs,))
            params = [p for p in head.parameters() if p.requires_grad] + [h]
            opt = torch.optim.SGD(params, lr=0.1, momentum=0.9)
            n_tr = sum(p.numel() for p in head.parameters() if p.requires_grad)
            mb = (k * d + (k if kind == "linear" else 0) + 2 * n_tr) * 4 / 2**20
            t0 = time.perf_counter()
            loss = nn.functional.cross_entropy(head(h), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            print(
                f"{k:>7} {kind:>8} {mb:>9.1f} {bs * k * 4 / 2**20:>10.1f} {1e3 * (time.perf_counter() - t0):>8.1f}"
            )


if __name__ == "__main__":
    main()
